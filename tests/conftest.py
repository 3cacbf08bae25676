"""Suite-wide fixtures.

``_no_secret_in_any_log`` collects every log record of the whole run (DEBUG included) and fails the
run if the corp secret, callback token, AES key or any access_token that an emulator issued appears
in it (invariant 8). ``emu`` is a started WeCom emulator per test. ``redis_url`` starts one real
redis-server for the run; tests isolate themselves with key prefixes.
"""

from __future__ import annotations

import logging
import pathlib
import sys
from collections.abc import Iterator

import pytest

from sandbox.emulator import WeComEmulator

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))


class _CollectingHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
        except Exception:  # a broken format string is still worth scanning raw
            text = f"{record.msg!r} {record.args!r}"
        if record.exc_info and record.exc_info[1] is not None:
            text += " " + repr(record.exc_info[1])
        self.lines.append(text)


@pytest.fixture(scope="session", autouse=True)
def _no_secret_in_any_log() -> Iterator[None]:
    handler = _CollectingHandler()
    root = logging.getLogger()
    previous_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(previous_level)
    secrets = set(WeComEmulator.secrets_of_all_emulators())
    everything = "\n".join(handler.lines)
    leaked = [secret for secret in secrets if secret in everything]
    assert not leaked, f"{len(leaked)} secret(s) appear in the logs, e.g. in: " + next(
        line[:200].replace(leaked[0], "<SECRET>") for line in handler.lines if leaked[0] in line
    )


@pytest.fixture
def emu() -> Iterator[WeComEmulator]:
    """A started WeCom KF emulator on loopback, stopped after the test."""
    emulator = WeComEmulator().start()
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real redis-server for the whole run (tests isolate themselves with key prefixes)."""
    from tests.redis_helpers import RedisServer

    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    try:
        yield server.url
    finally:
        server.stop()
