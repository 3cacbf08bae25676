"""A real redis-server started by a test: the run's shared one (``tests/conftest.py``), private ones a
test may stop, kill and restart on the same port (outage tests), and the nodes of a cluster test.

Every process is ended by its PID; only loopback addresses are used.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import redis

from sandbox.harness import free_port, wait_until


def redis_binary() -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed; the Redis tests need it (apt install redis-server)")
    return binary


def wait_for(condition: Any, timeout: float, what: str) -> None:
    """Poll ``condition`` until it holds; fail the test after ``timeout`` seconds."""
    if not wait_until(condition, timeout):
        pytest.fail(f"timed out after {timeout} s waiting for {what}")


class RedisServer:
    """One redis-server on a loopback port (no persistence unless ``extra_args`` ask for it)."""

    def __init__(self, workdir: Path, extra_args: tuple[str, ...] = (), port: int | None = None) -> None:
        self.binary = redis_binary()
        self.workdir = workdir
        self.port = port or free_port()
        self.extra_args = extra_args
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self, **kwargs: Any) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=1, **kwargs)

    def start(self, timeout: float = 10) -> RedisServer:
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        args += ["--appendonly", "no", "--dir", str(self.workdir), *self.extra_args]  # later ones win
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        proc = self.proc
        client = self.client()

        def answers() -> bool:
            if proc.poll() is not None:
                pytest.fail(f"redis-server exited with code {proc.returncode}")
            try:
                return bool(client.ping())
            except redis.ConnectionError:
                return False

        try:
            wait_for(answers, timeout, "redis-server to answer PING")
        finally:
            client.close()
        return self

    def stop(self) -> None:
        """Terminate the process by its PID and wait until it is gone."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)

    def kill(self) -> None:
        """kill -9, as a crash."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)
