"""Invariants 1, 3 and 7 at the callback port of ``python app.py``, with hostile clients on loopback:
slow clients that reconnect, hostile XML bodies, HEAD, replays, a garbage flood and a flooding
customer. Legitimate callbacks are the emulator's real encrypted ones, sent from 127.0.0.2; outsiders
use 127.0.0.1 (and 127.0.0.1x). Every loop is bounded in count and time."""

from __future__ import annotations

import re
import socket
import time
from collections import Counter
from urllib.parse import urlencode

import pytest

from sandbox.emulator.crypto import signature
from sandbox.harness import wait_until
from tests.abuse.abuse_helpers import (
    FLOOD_SOURCES,
    HOSTILE_BODIES,
    OUTSIDER,
    TRAFFIC_LOG_MARKS,
    WECOM_SOURCE,
    HostileClients,
    WeComTraffic,
    connection,
    figure,
    hostile_query,
    log_lines,
    post,
    settled,
    slowloris,
    sync_calls,
)
from tests.e2e.e2e_helpers import pending_left

SLOW_SECONDS = 22.0  # the slow clients' phase: two head deadlines (10 s) and then some
RAMP_SECONDS = 2.5  # the 2,000 first connections spread over one drip interval (2 s)
HOSTILE_REQUESTS = 500
CPU_BUDGET_MS = 5.0  # per hostile request; the XML guard needs microseconds, expat on a bomb 100+ ms
FLOOD_REQUESTS = 20_000
MAX_LOG_LINES_FOR_FLOOD = 12  # one line per refusal kind per minute (about 8 kinds), plus a few


def _no_traceback(app) -> None:
    text = app.log_text()
    assert "Traceback" not in text, text[max(0, text.index("Traceback") - 500) :][:3000]


@pytest.mark.parametrize("allowlist", [True, False], ids=["allowlist_on", "allowlist_off"])
def test_slowloris_with_reconnects_does_not_crowd_out_wecom(emu, app_factory, allowlist):
    if allowlist:
        emu.callback_ips = [WECOM_SOURCE]
    app = app_factory(wechatcom_kf_callback_ip_allowlist=allowlist)
    cpu0 = app.cpu_seconds()
    traffic = WeComTraffic(emu)
    slow = slowloris(app.port, SLOW_SECONDS)
    try:
        time.sleep(RAMP_SECONDS)
        traffic.start()
        time.sleep(SLOW_SECONDS - RAMP_SECONDS - 1.0)  # the callbacks stop a second before the attack
        traffic.stop()
        attack = slow.result()
    finally:
        traffic.stop()
        slow.stop()
    cpu = app.cpu_seconds() - cpu0
    unanswered = traffic.unanswered()
    label = "on" if allowlist else "off"
    figure(
        f"slowloris allowlist={label}: slow_clients=2000 {traffic.summary()} "
        f"messages={len(traffic.msgids)} unanswered={len(unanswered)} "
        f"slow_connects={attack.get('connects', 0)} "
        f"closed_by_server={attack.get('closed_by_server', 0)} longest_held_s={attack.get('longest_held_s')} "
        f"app_cpu_s={cpu:.2f} app_rss_mb={app.rss_mb():.0f}"
    )
    assert attack.get("connects", 0) >= 2000, attack  # the attack ran: every client connected at least once
    assert len(traffic.callbacks) >= 30
    if allowlist:
        # Refused before a byte is read: no slow connection outlives its first drip interval.
        assert attack["longest_held_s"] < 4.0, attack
        assert traffic.within_5s == len(traffic.callbacks), traffic.summary()
    else:
        # 64 per address are held until the head deadline (10 s), the rest refused at once.
        assert 8.0 <= attack["longest_held_s"] <= 15.0, attack
        assert traffic.first_attempt_ok >= 0.95 * len(traffic.callbacks), traffic.summary()
        assert all(c.final_status == 200 for c in traffic.callbacks), traffic.summary()
    assert unanswered == [], f"{len(unanswered)} customer messages not answered exactly once"
    _no_traceback(app)


def test_hostile_bodies_are_refused_for_next_to_no_cpu(emu, app_factory):
    app = app_factory()
    query = hostile_query(emu)
    conn = connection(app.port)
    try:
        for name, body in HOSTILE_BODIES.items():
            status, answer = post(conn, query, body)
            assert (status, answer) == (400, b"bad request"), name
        bodies = list(HOSTILE_BODIES.values())
        cpu0, started = app.cpu_seconds(), time.monotonic()
        statuses = Counter(post(conn, query, bodies[i % len(bodies)])[0] for i in range(HOSTILE_REQUESTS))
        cpu, elapsed = app.cpu_seconds() - cpu0, time.monotonic() - started
    finally:
        conn.close()
    per_request_ms = cpu / HOSTILE_REQUESTS * 1000.0
    figure(
        f"hostile bodies: requests={HOSTILE_REQUESTS} kinds={len(bodies)} statuses={dict(statuses)} "
        f"app_cpu_s={cpu:.3f} cpu_per_request_ms={per_request_ms:.3f} wall_s={elapsed:.2f}"
    )
    assert statuses == {400: HOSTILE_REQUESTS}
    assert per_request_ms < CPU_BUDGET_MS
    assert app.alive()
    _no_traceback(app)


def _answer(sock: socket.socket, head_only: bool) -> tuple[int, dict[str, str], bytes]:
    """Read one answer: status, headers, body (none for a HEAD, whatever Content-Length says)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        assert chunk, "connection closed before the answer's head"
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    length = 0 if head_only else int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = sock.recv(4096)
        assert chunk, "connection closed inside the body"
        rest += chunk
    assert len(rest) == length, f"{len(rest) - length} unexpected bytes after the answer"
    return int(lines[0].split(" ")[1]), headers, rest


def _nothing_more(sock: socket.socket) -> bool:
    """No byte (a body sent after a HEAD) and no close arrives within 0.3 s."""
    sock.settimeout(0.3)
    try:
        sock.recv(1)
    except TimeoutError:
        return True
    finally:
        sock.settimeout(5)
    return False


def test_head_is_answered_without_a_body_and_the_connection_goes_on(emu, app_factory):
    app = app_factory()
    verify = emu.crypto.encrypt_echostr("20261201")
    target = "/wxkf/?" + urlencode(verify)  # echostr is base64: "+" must be escaped
    results = []
    with socket.create_connection(("127.0.0.1", app.port), timeout=5, source_address=(OUTSIDER, 0)) as sock:
        for path, expected in (("/wxkf/", 400), ("/", 404), (target, 200)):
            sock.sendall(f"HEAD {path} HTTP/1.1\r\nHost: kf\r\n\r\n".encode())
            status, headers, body = _answer(sock, head_only=True)
            assert (status, body) == (expected, b""), path
            assert _nothing_more(sock), f"HEAD {path}: a body followed the head"
            sock.sendall(f"GET {target} HTTP/1.1\r\nHost: kf\r\n\r\n".encode())
            get_status, get_headers, get_body = _answer(sock, head_only=False)
            assert (get_status, get_body) == (200, b"20261201"), f"GET after HEAD {path}"
            if path == target:  # the HEAD announced the length the GET then sent
                assert headers["content-length"] == get_headers["content-length"] == "8"
            results.append(f"{path.split('?')[0]}={status}")
    figure(
        f"head: {' '.join(results)} no body after any HEAD; GET answered 200 on the same connection each time"
    )


def test_a_replayed_envelope_pulls_once_and_an_old_one_is_refused(emu, app_factory):
    app = app_factory()
    kf = emu.default_kfid
    user = emu.add_customer("重放")
    msgid = emu.customer_text(kf, user, "只回一次", notify=False)
    params, body = emu.encrypt_callback(kf)
    before = sync_calls(emu)
    statuses = [emu.post_callback_raw(body, params)[0] for _ in range(20)]
    assert statuses == [200] * 20
    emu.wait_for_sends(1, timeout=15)
    time.sleep(1.0)  # a second pull would have started by now
    pulls = sync_calls(emu) - before
    assert pulls == 1
    assert [s.reply_to for s in emu.sends] == [msgid]

    # Signed by WeCom, but two days old: refused, nothing pulled.
    params, body = emu.encrypt_callback(kf)
    match = re.search(rb"<Encrypt><!\[CDATA\[(.*?)\]\]></Encrypt>", body)
    assert match is not None
    old = str(int(time.time()) - 2 * 86400)
    stale = {
        "timestamp": old,
        "nonce": params["nonce"],
        "msg_signature": signature(emu.callback_token, old, params["nonce"], match.group(1).decode()),
    }
    before = sync_calls(emu)
    stale_status = emu.post_callback_raw(body, stale)[0]
    time.sleep(0.5)
    assert stale_status == 403
    assert sync_calls(emu) == before
    figure(
        f"replay: same envelope x20 -> {dict(Counter(statuses))} extra_sync_msg={pulls}; "
        f"2-day-old -> {stale_status}"
    )
    _no_traceback(app)


def test_a_garbage_flood_leaves_wecom_answered_and_the_log_quiet(emu, app_factory):
    app = app_factory()
    lines_before = log_lines(app)
    flood = HostileClients(
        mode="flood", host="127.0.0.1", port=app.port, sources=FLOOD_SOURCES,
        requests=FLOOD_REQUESTS, concurrency=48, seconds=60,
    )  # fmt: skip
    traffic = WeComTraffic(emu, every=0.25)
    try:
        traffic.start()
        wait_until(lambda: not flood.running(), 60, 0.1)
        traffic.stop()
        result = flood.result()
    finally:
        traffic.stop()
        flood.stop()
    unanswered = traffic.unanswered()
    time.sleep(0.5)
    added = app.log_text().splitlines()[lines_before:]
    ours = [line for line in added if not any(mark in line for mark in TRAFFIC_LOG_MARKS)]
    answered = sum(v for k, v in result.items() if k.isdigit())
    figure(
        f"garbage flood: requests={FLOOD_REQUESTS} sources={len(FLOOD_SOURCES)} answered={answered} "
        f"statuses={ {k: v for k, v in result.items() if k.isdigit()} } "
        f"no_answer={result.get('no_answer', 0)} "
        f"elapsed_s={result['elapsed_s']} {traffic.summary()} unanswered={len(unanswered)} "
        f"log_lines_added={len(added)} of_them_not_from_the_legitimate_traffic={len(ours)}"
    )
    assert answered == FLOOD_REQUESTS, result
    assert "200" not in result, "a forged callback was accepted"
    assert traffic.within_5s == len(traffic.callbacks) > 0, traffic.summary()
    assert unanswered == []
    assert len(ours) <= MAX_LOG_LINES_FOR_FLOOD, "\n".join(ours[:40])
    _no_traceback(app)


def test_one_customer_flooding_is_handled_whole_with_few_model_calls(emu, app_factory, fake_llm):
    # The flood guard is on by default (5 messages in 10 s); the e2e helpers turn it off, these do not.
    app = app_factory(
        bot_type="openai", open_ai_api_key="sk-test-key-for-fake-server", open_ai_api_base=fake_llm.base_url
    )
    kf, user = emu.default_kfid, emu.add_customer("连发")
    texts = [f"连发第{i}条" for i in range(100)]  # "条" ends each: none is a part of another
    msgids = []
    started = time.monotonic()
    for i, text in enumerate(texts):  # 100 messages in 2 s, each announced by its own callback
        msgids.append(emu.customer_text(kf, user, text, notify=True))
        time.sleep(max(0.0, started + (i + 1) * 0.02 - time.monotonic()))
    burst = time.monotonic() - started

    def asked() -> set[str]:
        prompts = " ".join(str(m.get("content")) for r in fake_llm.requests for m in r["messages"])
        return {t for t in texts if t in prompts}

    assert wait_until(lambda: len(asked()) == len(texts), 60, 0.2), (
        f"never asked about {set(texts) - asked()}"
    )
    settled(lambda: (fake_llm.calls, len(emu.sends)), quiet=2.0, timeout=20)
    assert app.stop() == 0
    sends = emu.sends
    # The fake model answers "答：<the turn's text>": a reply covers the messages of its turn.
    covered = {t for t in texts if any(t in s.text for s in sends)}
    after_latest = sum(1 for s in sends if s.reply_to == msgids[-1])  # WeCom allows 5 after the latest
    over_budget = [r for r in emu.rejections if r.errcode == 95001]
    figure(
        f"customer flood: messages=100 burst_s={burst:.2f} model_calls={fake_llm.calls} replies={len(sends)} "
        f"messages_in_a_delivered_reply={len(covered)} sends_after_latest_message={after_latest}/5 "
        f"rejections_95001={len(over_budget)}"
    )
    assert over_budget == []
    assert not emu.rejections
    assert fake_llm.calls <= 25, "the flood guard should merge the burst into a few turns"
    assert pending_left(app.state_dir) == {}, "every message finished"
    assert texts[-1] in covered, "the burst's last message has an answer"
    # An answer the model gave is dropped only when WeCom's budget (5 sends after the customer's latest
    # message) is used up; otherwise every message is in a reply the customer received.
    missing = [t for t in texts if t not in covered]
    assert not missing or after_latest == 5, (
        f"{len(sends)} of {fake_llm.calls} answers delivered with {5 - after_latest} sends of the budget "
        f"unused; no reply covers {len(missing)} messages, e.g. {missing[:6]}"
    )
    _no_traceback(app)
