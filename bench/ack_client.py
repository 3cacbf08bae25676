"""The ack scenario's load generator, run in its own process.

Fifty Python threads posting callbacks from the bench process (which also hosts the emulator) spent
more time fighting over one GIL than the app spent answering: a server that parsed nothing showed a
p99 of 20-27 ms. One asyncio loop in a separate process keeps the client's cost off the app's core
and off the measured latency.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from urllib.parse import urlencode

from bench.harness import LOOPBACK

Job = tuple[dict[str, str], bytes]
Sample = tuple[float, int]  # (latency in seconds, HTTP status)


def _request(params: dict[str, str], body: bytes) -> bytes:
    head = (
        f"POST /wxkf/?{urlencode(params)} HTTP/1.1\r\nHost: {LOOPBACK}\r\n"
        f"Content-Type: text/xml\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("ascii") + body


async def _read_status(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    if length:
        await reader.readexactly(length)
    return int(lines[0].split(" ")[1])


async def _connection(port: int, requests: list[bytes], deadline: float, out: list[Sample]) -> None:
    reader, writer = await asyncio.open_connection(LOOPBACK, port)
    try:
        for raw in requests:
            if time.monotonic() > deadline:
                return
            started = time.perf_counter()
            try:
                writer.write(raw)
                status = await _read_status(reader)
            except (OSError, asyncio.IncompleteReadError, ValueError):
                status = 0
                writer.close()
                reader, writer = await asyncio.open_connection(LOOPBACK, port)
            out.append((time.perf_counter() - started, status))
    finally:
        writer.close()


async def _drive(port: int, jobs: list[Job], in_flight: int, seconds: float) -> list[Sample]:
    raw = [_request(params, body) for params, body in jobs]
    deadline = time.monotonic() + seconds
    out: list[Sample] = []
    await asyncio.gather(*(_connection(port, raw[i::in_flight], deadline, out) for i in range(in_flight)))
    return out


def _child(port: int, jobs: list[Job], in_flight: int, seconds: float, conn: object) -> None:
    result = asyncio.run(_drive(port, jobs, in_flight, seconds))
    conn.send(result)  # type: ignore[attr-defined]
    conn.close()  # type: ignore[attr-defined]


def post_concurrently(port: int, jobs: list[Job], in_flight: int, seconds: float) -> list[Sample]:
    """One sample per callback, ``in_flight`` connections kept busy, posted from a child process."""
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(port, jobs, in_flight, seconds, child), daemon=True)
    proc.start()
    child.close()
    try:
        if not parent.poll(seconds + 30):
            return []
        result: list[Sample] = parent.recv()
        return result
    finally:
        proc.join(5)
        if proc.is_alive():
            proc.kill()
