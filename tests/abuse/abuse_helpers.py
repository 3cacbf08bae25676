"""Helpers of the abuse tests: the app as ``python app.py``, legitimate WeCom traffic from 127.0.0.2
while hostile clients (``abuse_clients.py``, a process of its own) use other loopback addresses, and
the hostile bodies of invariant 7.

Addresses: Linux routes all of 127/8 to lo, so a socket can be bound to any of them. 127.0.0.2 plays
WeCom (the emulator's ``callback_source_address``, and what its getcallbackip answers when a test turns
the allowlist on); 127.0.0.1 and 127.0.0.1x play outsiders.
"""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from sandbox.emulator import WeComEmulator
from sandbox.harness import AppProcess, wait_until
from tests.e2e.e2e_helpers import answers_per_message

WECOM_SOURCE = "127.0.0.2"
OUTSIDER = "127.0.0.1"
FLOOD_SOURCES = ["127.0.0.11", "127.0.0.12", "127.0.0.13", "127.0.0.14"]
WECOM_TIMEOUT = 5.0  # WeCom gives up on an answer after 5 s (and retries)
CLIENTS_SCRIPT = Path(__file__).with_name("abuse_clients.py")
FIGURES: list[str] = []  # printed again at the end of the run (conftest.py)

# Production defaults except the bot: an echo bot answers at once, so every wait below is the edge's.
APP_SETTINGS: dict[str, Any] = {
    "bot_type": "echo",
    "wechatcom_kf_request_timeout": 5.0,
    "shutdown_timeout_seconds": 5.0,
}
ALLOWLIST_READY = "allowing callbacks from WeCom's"
# What the legitimate traffic itself logs (one line per reply, the bot's creation): not the flood's.
TRAFFIC_LOG_MARKS = ("outbound.delivery: turn finished: ", "creating chat provider")


def figure(line: str) -> None:
    """Keep one FIGURES line for the summary printed at the end of the run (conftest.py)."""
    FIGURES.append(line)


def new_app(emu: WeComEmulator, workdir: Path, **settings: Any) -> AppProcess:
    """``python app.py`` for ``emu`` (not started); the emulator's callbacks then come from 127.0.0.2."""
    emu.callback_source_address = WECOM_SOURCE
    return AppProcess(emu, {**APP_SETTINGS, **settings}, workdir)


def start_ready(app: AppProcess) -> AppProcess:
    """Start ``app`` and wait until a URL verification is answered and, with the allowlist on, WeCom's
    callback IPs are fetched (so it no longer fails open)."""
    app.start()
    app.wait_ready(30, verified=True)
    if app.values.get("wechatcom_kf_callback_ip_allowlist"):
        assert wait_until(lambda: ALLOWLIST_READY in app.log_text(), 15), app.log_tail()
    return app


def settled(probe: Callable[[], object], quiet: float, timeout: float) -> bool:
    """Wait until ``probe()`` has not changed for ``quiet`` s (at most ``timeout``); True if it settled."""
    deadline = time.monotonic() + timeout
    value, since = probe(), time.monotonic()
    while time.monotonic() < deadline:  # bounded
        time.sleep(0.1)
        current = probe()
        if current != value:
            value, since = current, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return True
    return False


def log_lines(app: AppProcess) -> int:
    return len(app.log_text().splitlines())


def sync_calls(emu: WeComEmulator) -> int:
    return sum(
        1 for e in emu.protocol_log() if e.get("kind") == "api" and str(e.get("api")).endswith("sync_msg")
    )


# --- hostile clients in their own process -------------------------------------------------------------


class HostileClients:
    """``abuse_clients.py`` with ``cfg``; ``result()`` waits (bounded) for its JSON counters."""

    def __init__(self, **cfg: Any) -> None:
        self.seconds = float(cfg["seconds"])
        self.proc = subprocess.Popen(
            [sys.executable, str(CLIENTS_SCRIPT), json.dumps(cfg)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )

    def running(self) -> bool:
        return self.proc.poll() is None

    def result(self) -> dict[str, Any]:
        try:
            out, err = self.proc.communicate(timeout=self.seconds + 30)
        except subprocess.TimeoutExpired:
            self.stop()
            raise AssertionError("the hostile clients did not end in time") from None
        assert self.proc.returncode == 0, err.decode(errors="replace")[-2000:]
        return dict(json.loads(out.decode().strip().splitlines()[-1]))

    def stop(self) -> None:
        """Only this process, by its PID."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def slowloris(port: int, seconds: float, *, count: int = 2000, source: str = OUTSIDER) -> HostileClients:
    return HostileClients(
        mode="slowloris",
        host="127.0.0.1",
        port=port,
        source=source,
        count=count,
        interval=2.0,
        seconds=seconds,
    )


# --- legitimate WeCom traffic ---------------------------------------------------------------------------


@dataclass
class Callback:
    latency: float  # seconds until the final answer (the first one, when it was a 200)
    first_status: int  # the first attempt's HTTP status (0: no answer)
    final_status: int
    attempts: int


@dataclass
class WeComTraffic:
    """One customer message and its callback every ``every`` s from 127.0.0.2, in a thread, from
    ``start()`` to ``stop()`` and at most ``limit`` times; each callback timed and its attempts read
    from the emulator's protocol log (only this thread fires callbacks meanwhile)."""

    emu: WeComEmulator
    every: float = 0.4
    limit: int = 200
    customers: int = 40  # round robin, so no customer comes near the flood guard (5 in 10 s)
    msgids: list[str] = field(default_factory=list)
    callbacks: list[Callback] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._users = [self.emu.add_customer(f"顾客{i}") for i in range(self.customers)]
        self._thread = threading.Thread(target=self._run, name="wecom-traffic", daemon=True)

    def start(self) -> WeComTraffic:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Idempotent; waits for the callback in flight (at most WeCom's 3 attempts)."""
        self._stop.set()
        if not self._thread.is_alive():
            return
        self._thread.join(3 * (WECOM_TIMEOUT + 1) + 5)
        assert not self._thread.is_alive(), "the legitimate traffic did not stop"

    def _run(self) -> None:
        kf = self.emu.default_kfid
        seq = self._last_seq()
        for n in range(self.limit):
            if self._stop.is_set():
                return
            started = time.monotonic()
            self.msgids.append(
                self.emu.customer_text(kf, self._users[n % len(self._users)], f"问题{n}", notify=False)
            )
            fired = time.monotonic()
            final = self.emu.fire_callback(kf)
            latency = time.monotonic() - fired
            log = self.emu.protocol_log(since=seq)
            seq = int(log[-1]["seq"]) if log else seq
            entries = [e for e in log if e.get("kind") == "callback" and "attempt" in e.get("request", {})]
            first = next((e for e in entries if e["request"]["attempt"] == 1), None)
            first_status = int(first["response"]["status"]) if first else 0
            assert isinstance(final, int)
            self.callbacks.append(Callback(latency, first_status, final, len(entries)))
            self._stop.wait(max(0.0, self.every - (time.monotonic() - started)))

    def _last_seq(self) -> int:
        log = self.emu.protocol_log()
        return int(log[-1]["seq"]) if log else 0

    # -- what it measured
    @property
    def first_attempt_ok(self) -> int:
        return sum(1 for c in self.callbacks if c.first_status == 200)

    @property
    def within_5s(self) -> int:
        """Answered 200 on the first attempt, in under WeCom's 5 s."""
        return sum(1 for c in self.callbacks if c.first_status == 200 and c.latency < WECOM_TIMEOUT)

    @property
    def max_latency(self) -> float:
        return max((c.latency for c in self.callbacks if c.first_status == 200), default=0.0)

    def unanswered(self, timeout: float = 30.0) -> list[str]:
        """Customer messages without exactly one reply, after waiting up to ``timeout`` for them."""
        wait_until(
            lambda: all(n == 1 for n in answers_per_message(self.emu, self.msgids).values()), timeout, 0.1
        )
        return [m for m, n in answers_per_message(self.emu, self.msgids).items() if n != 1]

    def summary(self) -> str:
        total = len(self.callbacks)
        ratio = self.first_attempt_ok / total if total else 0.0
        final_200 = sum(c.final_status == 200 for c in self.callbacks)
        return (
            f"callbacks={total} answered_within_5s={self.within_5s}/{total} first_attempt_ratio={ratio:.3f} "
            f"max_first_attempt_s={self.max_latency:.3f} final_200={final_200}"
        )


# --- hostile bodies (invariant 7) -------------------------------------------------------------------------


def _laughs(levels: int = 9) -> str:
    """The billion-laughs DTD: 10**levels expansions from under 1 KB."""
    lines = ['<!ENTITY l0 "ha">']
    lines += [f'<!ENTITY l{i} "{("&l" + str(i - 1) + ";") * 10}">' for i in range(1, levels + 1)]
    return f"<!DOCTYPE xml [{''.join(lines)}]><xml><Encrypt>&l{levels};</Encrypt></xml>"


def _declared(encoding: str) -> bytes:
    return (
        f'<?xml version="1.0" encoding="{encoding}"?><xml><Encrypt><![CDATA[abc]]></Encrypt></xml>'.encode()
    )


HOSTILE_BODIES: dict[str, bytes] = {
    "utf-16 bom entity bomb": '<?xml version="1.0" encoding="UTF-16"?>'.encode("utf-16")
    + _laughs().encode("utf-16")[2:],
    "utf-16-le entity bomb, no bom": ('<?xml version="1.0" encoding="UTF-16LE"?>' + _laughs()).encode(
        "utf-16-le"
    ),
    "utf-32": '<?xml version="1.0" encoding="UTF-32"?><xml><Encrypt>abc</Encrypt></xml>'.encode("utf-32"),
    "declares utf-16-le": _declared("UTF-16-LE"),
    "declares utf-32": _declared("UTF-32"),
    "declares gbk": _declared("GBK"),
    "declares gb18030": _declared("GB18030"),
    "declares big5": _declared("Big5"),
    "declares shift_jis": _declared("Shift_JIS"),
    "declares an unknown encoding": _declared("x-no-such-encoding"),
    "utf-8 doctype entity bomb": ('<?xml version="1.0"?>' + _laughs()).encode(),
    "utf-8 external entity": b'<!DOCTYPE xml [<!ENTITY e SYSTEM "file:///etc/passwd">]><xml><Encrypt>&e;</Encrypt></xml>',
}


def hostile_query(emu: WeComEmulator) -> dict[str, str]:
    """A well-formed, fresh query (a real signature of another envelope): the body alone is hostile."""
    params, _ = emu.encrypt_callback(emu.default_kfid)
    return params


def post(
    conn: http.client.HTTPConnection,
    query: dict[str, str],
    body: bytes,
    headers: dict[str, str] | None = None,
) -> tuple[int, bytes]:
    conn.request(
        "POST",
        f"/wxkf/?{urlencode(query)}",
        body=body,
        headers={"Content-Type": "text/xml", **(headers or {})},
    )
    resp = conn.getresponse()
    return resp.status, resp.read()


def connection(port: int, source: str = OUTSIDER, timeout: float = 10.0) -> http.client.HTTPConnection:
    """A keep-alive HTTP connection from ``source``."""
    return http.client.HTTPConnection("127.0.0.1", port, timeout=timeout, source_address=(source, 0))
