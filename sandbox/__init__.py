"""The sandbox: a WeCom Customer Service emulator and the browser chat page that drives it."""
