"""Fixtures of the abuse tests (invariants 1 and 7 with hostile clients on loopback): ``python app.py``
subprocesses stopped by their PID at the end of each test, a fake model, and the FIGURES summary
printed at the end of the run."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sandbox.emulator import WeComEmulator
from sandbox.fake_openai import FakeOpenAIServer
from sandbox.harness import AppProcess
from tests.abuse.abuse_helpers import FIGURES, new_app, start_ready


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """The measured numbers, one ``FIGURES`` line per test (with or without ``-s``)."""
    if FIGURES:
        terminalreporter.write_line("")
        for line in FIGURES:
            terminalreporter.write_line(f"FIGURES {line}")


@pytest.fixture
def app_factory(emu: WeComEmulator, tmp_path: Path) -> Iterator[Callable[..., AppProcess]]:
    """``app_factory(**settings)``: a ready ``python app.py`` for ``emu``; all stopped (SIGTERM) at end."""
    apps: list[AppProcess] = []

    def start(**settings: Any) -> AppProcess:
        app = new_app(emu, tmp_path / f"app{len(apps)}", **settings)
        apps.append(app)
        return start_ready(app)

    try:
        yield start
    finally:
        for app in apps:
            app.stop()


@pytest.fixture
def fake_llm() -> Iterator[FakeOpenAIServer]:
    """A fake OpenAI-compatible server (50 ms per call) that counts its calls."""
    server = FakeOpenAIServer(latency=0.05)
    server.start()
    try:
        yield server
    finally:
        server.stop()
