"""The internet-facing edge: the callback HTTP server and the callback logic (verify, decrypt, schedule)."""
