"""Hostile loopback clients for the abuse tests, run as their own process (stdlib only):

    python tests/abuse/abuse_clients.py '<json config>'

prints one JSON line of counters on stdout and exits. Two modes:

- ``slowloris``: ``count`` connections from ``source``, each doing one thing every ~``interval`` s:
  send the next byte of a request head that never ends, or, when the server closed it, reconnect.
- ``flood``: ``requests`` prepared requests (random bytes, forged and malformed callbacks) posted from
  several ``sources`` by ``concurrency`` connections, each waiting for its answer before the next.

Why a process of its own, on one asyncio loop: 2,000 connections cost a few MB and no thread here, and
the test process (which hosts the emulator and times the legitimate callbacks) keeps its GIL. Every
loop ends at ``seconds`` at the latest; every socket is closed with a reset at the end, so the run
leaves no TIME_WAIT behind.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import random
import socket
import struct
import sys
import time
from collections import Counter
from typing import Any
from urllib.parse import urlencode

CONNECT_TIMEOUT = 3.0
ANSWER_TIMEOUT = 12.0  # longer than the edge's head deadline: a hung request is seen as one
# A request head that never ends: the drip sends it one byte at a time.
SLOW_HEAD = b"POST /wxkf/?msg_signature=0&timestamp=0&nonce=0 HTTP/1.1\r\nHost: kf\r\nX-Slow: " + b"a" * 4000


def _reset(writer: asyncio.StreamWriter | None) -> None:
    """Close with RST (SO_LINGER 0): no TIME_WAIT left behind by thousands of sockets."""
    if writer is None:
        return
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


def _closed(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    return writer.is_closing() or reader.at_eof() or reader.exception() is not None


async def _connect(
    host: str, port: int, source: str
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
    try:
        return await asyncio.wait_for(
            asyncio.open_connection(host, port, local_addr=(source, 0)), CONNECT_TIMEOUT
        )
    except (TimeoutError, OSError):
        return None


# --- slowloris --------------------------------------------------------------------------------------


class _Slow:
    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.open = 0
        self.peak_open = 0
        self.longest_held = 0.0  # seconds the server let one slow connection live


async def _slow_client(cfg: dict[str, Any], stats: _Slow, end: float, rng: random.Random) -> None:
    interval = float(cfg["interval"])
    await asyncio.sleep(rng.uniform(0, interval))  # the clients' first ticks spread over one interval
    while time.monotonic() < end:
        conn = await _connect(cfg["host"], int(cfg["port"]), cfg["source"])
        if conn is None:
            stats.counts["connect_failed"] += 1
            await asyncio.sleep(interval * rng.uniform(0.8, 1.2))
            continue
        reader, writer = conn
        stats.counts["connects"] += 1
        stats.open += 1
        stats.peak_open = max(stats.peak_open, stats.open)
        opened, sent = time.monotonic(), 0
        try:
            while time.monotonic() < end:
                writer.write(SLOW_HEAD[sent : sent + 1] or b"a")
                sent += 1
                await asyncio.sleep(min(interval * rng.uniform(0.8, 1.2), max(0.0, end - time.monotonic())))
                if _closed(reader, writer):
                    stats.counts["closed_by_server"] += 1
                    stats.counts["closed_after_one_byte"] += int(sent == 1)
                    stats.longest_held = max(stats.longest_held, time.monotonic() - opened)
                    break
        finally:
            stats.open -= 1
            _reset(writer)


async def slowloris(cfg: dict[str, Any]) -> dict[str, Any]:
    end = time.monotonic() + float(cfg["seconds"])
    stats = _Slow()
    rng = random.Random(int(cfg.get("seed", 1)))
    count = int(cfg["count"])
    await asyncio.gather(*(_slow_client(cfg, stats, end, random.Random(rng.random())) for _ in range(count)))
    return {**stats.counts, "peak_open": stats.peak_open, "longest_held_s": round(stats.longest_held, 1)}


# --- flood ------------------------------------------------------------------------------------------


def _http(method: str, query: dict[str, str], body: bytes = b"", path: str = "/wxkf/") -> bytes:
    target = path + ("?" + urlencode(query) if query else "")
    head = f"{method} {target} HTTP/1.1\r\nHost: kf\r\nContent-Type: text/xml\r\n"
    if method in ("POST", "PUT"):
        head += f"Content-Length: {len(body)}\r\n"
    return (head + "\r\n").encode("ascii") + body


def _forged(rng: random.Random, age: float = 0.0) -> bytes:
    query = {
        "msg_signature": os.urandom(20).hex(),
        "timestamp": str(int(time.time() - age)),
        "nonce": str(rng.randrange(10**9)),
    }
    encrypt = base64.b64encode(os.urandom(rng.choice((32, 256, 400)))).decode("ascii")
    body = f"<xml><ToUserName><![CDATA[ww0]]></ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"
    return _http("POST", query, body.encode("ascii"))


def _garbage(rng: random.Random) -> bytes:
    """One hostile request; the mix is what scanners and forgers send."""
    kind = rng.randrange(10)
    if kind <= 1:  # random bytes, ended like a head so the parser gets to refuse them
        return os.urandom(rng.randrange(1, 512)) + b"\r\n\r\n"
    if kind <= 3:
        return _forged(rng)
    if kind == 4:
        return _forged(rng, age=3 * 86400)
    if kind == 5:
        bomb = (
            b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa">]><xml><Encrypt>&a;</Encrypt></xml>'
        )
        return _http("POST", {"msg_signature": "0", "timestamp": "1", "nonce": "1"}, bomb)
    if kind == 6:
        return _http("GET", {}, path=rng.choice(("/", "/admin", "/wxkf/../etc/passwd", "/.env")))
    if kind == 7:  # a body declared far over the cap: 413 before it is read
        return b"POST /wxkf/?a=1 HTTP/1.1\r\nHost: kf\r\nContent-Length: 10000000\r\n\r\n" + os.urandom(64)
    if kind == 8:
        return _http("PUT", {}, path="/wxkf/")
    return _http("POST", {}, b"<xml/>")


async def _read_answer(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """(status, keep-alive) of one answer."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    length, close = 0, False
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name, value = name.strip().lower(), value.strip().lower()
        if name == "content-length":
            length = int(value)
        elif name == "connection":
            close = value == "close"
    if length:
        await reader.readexactly(length)
    return int(lines[0].split(" ")[1]), not close


async def _flood_worker(cfg: dict[str, Any], source: str, jobs: list[bytes], counts: Counter[str]) -> None:
    end = time.monotonic() + float(cfg["seconds"])
    conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
    for raw in jobs:
        if time.monotonic() > end:
            counts["not_sent"] += 1
            continue
        if conn is None:
            conn = await _connect(cfg["host"], int(cfg["port"]), source)
            if conn is None:
                counts["connect_failed"] += 1
                continue
        reader, writer = conn
        try:
            writer.write(raw)
            status, keep = await asyncio.wait_for(_read_answer(reader), ANSWER_TIMEOUT)
        except (
            OSError,
            TimeoutError,
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
            ValueError,
        ):
            counts["no_answer"] += 1
            status, keep = 0, False
        else:
            counts[str(status)] += 1
        if not keep:
            _reset(writer)
            conn = None
    if conn is not None:
        _reset(conn[1])


async def flood(cfg: dict[str, Any]) -> dict[str, Any]:
    rng = random.Random(int(cfg.get("seed", 2)))
    jobs = [_garbage(rng) for _ in range(int(cfg["requests"]))]
    sources: list[str] = list(cfg["sources"])
    workers = int(cfg["concurrency"])
    counts: Counter[str] = Counter()
    started = time.monotonic()
    await asyncio.gather(
        *(_flood_worker(cfg, sources[i % len(sources)], jobs[i::workers], counts) for i in range(workers))
    )
    return {**counts, "elapsed_s": round(time.monotonic() - started, 2)}


def main() -> None:
    cfg = json.loads(sys.argv[1])
    mode = {"slowloris": slowloris, "flood": flood}[cfg["mode"]]
    result = asyncio.run(mode(cfg))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
