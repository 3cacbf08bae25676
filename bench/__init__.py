"""Benchmarks: ``python -m bench`` drives the real app (a subprocess) through the WeCom emulator."""
