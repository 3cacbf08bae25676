"""Fixtures of the end-to-end tests: the WeCom emulator and the channel, both on loopback over real
HTTP with real callback encryption. The channel runs in this process (``runner``) or as
``python app.py`` in a subprocess (see test_e2e_crash_recovery.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge.bridge import Bridge
from sandbox.emulator import WeComEmulator
from sandbox.fake_openai import FakeOpenAIServer
from tests.e2e.e2e_helpers import ChannelRunner


@pytest.fixture
def runner(emu: WeComEmulator, tmp_path: Path) -> Iterator[ChannelRunner]:
    r = ChannelRunner(emu, tmp_path)
    try:
        yield r
    finally:
        r.stop_all()
        Bridge().reset()


@pytest.fixture
def fake_llm() -> Iterator[FakeOpenAIServer]:
    """A fake OpenAI-compatible server (50 ms per call) for ``app.py`` subprocesses; counts its calls."""
    server = FakeOpenAIServer(latency=0.05)
    server.start()
    try:
        yield server
    finally:
        server.stop()
