"""The test helper that starts redis-servers: a port another process took is told apart from other
failures, and a port the helper chose itself is chosen again."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

import tests.redis_helpers as redis_helpers
from tests.redis_helpers import PortTaken, RedisServer


def listening_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock


def test_a_fixed_port_that_is_taken_raises_port_taken(tmp_path: Path) -> None:
    with listening_socket() as taken:
        port = taken.getsockname()[1]
        with pytest.raises(PortTaken) as raised:
            RedisServer(tmp_path, port=port).start()
    assert raised.value.port == port


def test_a_chosen_port_that_is_taken_is_chosen_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with listening_socket() as taken:
        handed_out = [taken.getsockname()[1]]
        real_free_port = redis_helpers.free_port

        def taken_first() -> int:
            return handed_out.pop() if handed_out else real_free_port()

        monkeypatch.setattr(redis_helpers, "free_port", taken_first)
        server = RedisServer(tmp_path).start()
        try:
            assert server.port != taken.getsockname()[1]
            assert server.client().ping()
        finally:
            server.stop()


def test_another_failure_names_what_redis_said(tmp_path: Path) -> None:
    with pytest.raises(pytest.fail.Exception, match=r"exited with code 1: .*no-such-option"):
        RedisServer(tmp_path, ("--no-such-option", "yes")).start()
