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
from redis.backoff import NoBackoff
from redis.retry import Retry

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


class PortTaken(Exception):
    """redis-server could not bind its port: another process took it after ``free_port`` chose it."""

    def __init__(self, port: int) -> None:
        super().__init__(f"port {port} is already in use")
        self.port = port


class RedisServer:
    """One redis-server on a loopback port (no persistence unless ``extra_args`` ask for it)."""

    def __init__(self, workdir: Path, extra_args: tuple[str, ...] = (), port: int | None = None) -> None:
        self.binary = redis_binary()
        self.workdir = workdir
        self.port_was_chosen_here = port is None
        self.port = port or free_port()
        self.extra_args = extra_args
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self, **kwargs: Any) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=1, **kwargs)

    def start(self, timeout: float = 10) -> RedisServer:
        """Start and wait for PING. A port of our own choosing that another process took between
        ``free_port`` and the bind is chosen again; a port the caller fixed raises ``PortTaken``."""
        for _attempt in range(5):
            try:
                return self._start_once(timeout)
            except PortTaken:
                if not self.port_was_chosen_here:
                    raise
                self.port = free_port()
        pytest.fail("redis-server found no free loopback port in 5 tries")

    def _start_once(self, timeout: float) -> RedisServer:
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        args += ["--appendonly", "no", "--dir", str(self.workdir), *self.extra_args]  # later ones win
        log_path = self.workdir / f"redis-{self.port}.log"
        with log_path.open("ab") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        proc = self.proc
        # one short try per poll: a PING to a port that someone else listens on must not hang
        client = self.client(socket_timeout=1, retry=Retry(NoBackoff(), 0))

        def answers() -> bool:
            if proc.poll() is not None:
                self.proc = None
                said = log_path.read_text(errors="replace").strip().splitlines()[-3:]
                if any("Address already in use" in line for line in said):
                    raise PortTaken(self.port)
                pytest.fail(f"redis-server exited with code {proc.returncode}: {' | '.join(said)}")
            try:
                return bool(client.ping())
            except (redis.ConnectionError, redis.TimeoutError):
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
