"""Suite-wide fixtures.

``_no_secret_in_any_log`` collects every log record of the whole run (DEBUG included) and fails the
run if the corp secret, callback token, AES key or any access_token that an emulator issued appears
in it (invariant 8). ``emu`` is a started WeCom emulator per test. ``redis_url`` starts one real
redis-server for the run; tests isolate themselves with key prefixes.
"""

from __future__ import annotations

import logging
import pathlib
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
import redis

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


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real redis-server for the whole run (tests isolate themselves with key prefixes)."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed; the Redis tests need it (apt install redis-server)")
    workdir = tmp_path_factory.mktemp("redis")
    port = _free_port()
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    args += ["--dir", str(workdir)]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=0.5)
        for _ in range(100):  # up to ~5 s
            try:
                if client.ping():
                    break
            except redis.ConnectionError:
                if proc.poll() is not None:
                    pytest.fail(f"redis-server exited with code {proc.returncode}")
                time.sleep(0.05)
        else:
            pytest.fail("redis-server did not answer PING")
        client.close()
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
