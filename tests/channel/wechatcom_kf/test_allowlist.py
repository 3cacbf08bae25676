"""CallbackIpAllowlist: matching, the stored list, failing open, and the real list from the emulator."""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from channel.wechatcom_kf.api import KfApi
from channel.wechatcom_kf.edge.allowlist import (
    FAIL_OPEN_WARNING,
    STORE_KEY,
    STORE_TTL_SECONDS,
    CallbackIpAllowlist,
    parse_address,
    parse_entry,
)
from channel.wechatcom_kf.errors import KfError, KfNetworkError
from channel.wechatcom_kf.retry import RetryPolicy
from channel.wechatcom_kf.store.json_store import JsonFileStore
from sandbox.emulator import WeComEmulator

LOGGER = "channel.wechatcom_kf.edge.allowlist"


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Fetch:
    """A fetch whose answer (a list, or an exception to raise) the test sets; counts its calls."""

    def __init__(self, answer: list[str] | Exception) -> None:
        self.answer = answer
        self.calls = 0

    def __call__(self) -> list[str]:
        self.calls += 1
        if isinstance(self.answer, Exception):
            raise self.answer
        return list(self.answer)


def down() -> Fetch:
    return Fetch(KfNetworkError("getcallbackip: connect timeout", api="getcallbackip"))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[JsonFileStore]:
    s = JsonFileStore(tmp_path / "state")
    yield s
    s.close()


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> Callable[[int], list[str]]:
    caplog.set_level(logging.DEBUG, logger=LOGGER)

    def at(level: int) -> list[str]:
        return [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno == level]

    return at


def allowlist(fetch: Callable[[], list[str]], store: JsonFileStore, **kwargs) -> CallbackIpAllowlist:
    return CallbackIpAllowlist(fetch, store, **kwargs)


# --- matching ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "network"),
    [
        ("101.226.103.15", "101.226.103.15/32"),
        (" 101.226.103.15 ", "101.226.103.15/32"),
        ("101.226.103.*", "101.226.103.0/24"),
        ("101.226.*.*", "101.226.0.0/16"),
        ("10.*.*.*", "10.0.0.0/8"),
        ("101.226.103.0/25", "101.226.103.0/25"),
        ("101.226.103.77/24", "101.226.103.0/24"),  # host bits set: still the range
        ("240e:e1::/32", "240e:e1::/32"),
        ("::ffff:101.226.103.15", "101.226.103.15/32"),
        ("::ffff:101.226.103.0/120", "101.226.103.0/24"),
    ],
)
def test_entries_parse_to_networks(entry: str, network: str):
    assert str(parse_entry(entry)) == network


@pytest.mark.parametrize(
    "entry",
    [
        "",
        "*",
        "*.*.*.*",
        "1.*.3.4",
        "1.2.*.4",
        "256.1.1.*",
        "1.2.3",
        "1.2.3.*.*",
        "a.b.c.*",
        "1.2.3.4/33",
        "x",
    ],
)
def test_malformed_entries_are_none(entry: str):
    assert parse_entry(entry) is None


def test_peer_addresses_parse_with_mapped_ipv6_unwrapped():
    assert str(parse_address("::ffff:1.2.3.4")) == "1.2.3.4"
    assert str(parse_address("[::1]")) == "::1"
    assert str(parse_address("fe80::1%eth0")).startswith("fe80::1")
    assert parse_address("not-an-address") is None
    assert parse_address("") is None


def test_exact_wildcard_and_cidr_entries_allow_what_they_cover(store: JsonFileStore):
    fetch = Fetch(["182.254.11.176", "101.226.103.*", "81.69.103.0/24", "240e:e1::/32"])
    a = allowlist(fetch, store)
    assert a.refresh()
    for address in ("182.254.11.176", "101.226.103.0", "101.226.103.255", "81.69.103.205", "240e:e1::5"):
        assert a.allows(address), address
    for address in ("182.254.11.177", "101.226.104.1", "81.69.104.1", "240e:e2::5", "8.8.8.8"):
        assert not a.allows(address), address


def test_ipv4_mapped_ipv6_peers_match_ipv4_entries(store: JsonFileStore):
    a = allowlist(Fetch(["101.226.103.*", "127.0.0.2"]), store)
    assert a.refresh()
    assert a.allows("::ffff:101.226.103.9")
    assert a.allows("::ffff:127.0.0.2")
    assert not a.allows("::ffff:101.226.104.9")


def test_loopback_is_not_implicitly_allowed(store: JsonFileStore):
    a = allowlist(Fetch(["127.0.0.2"]), store)
    assert a.refresh()
    assert a.allows("127.0.0.2")
    for address in ("127.0.0.1", "::1", "::ffff:127.0.0.1", "localhost", "garbage"):
        assert not a.allows(address), address


def test_extra_entries_are_always_allowed(store: JsonFileStore):
    a = allowlist(Fetch(["101.226.103.*"]), store, extra=["10.0.0.7", "192.168.1.*", "172.16.0.0/12"])
    assert a.refresh()
    for address in ("10.0.0.7", "192.168.1.20", "172.31.255.1", "::ffff:10.0.0.7", "101.226.103.1"):
        assert a.allows(address), address
    assert not a.allows("10.0.0.8")
    assert a.state().extra_entries == 3


def test_a_malformed_extra_entry_is_a_configuration_error(store: JsonFileStore):
    with pytest.raises(ValueError, match=r"1\.2\.\*\.4"):
        allowlist(Fetch([]), store, extra=["10.0.0.7", "1.2.*.4"])


# --- the stored list ------------------------------------------------------------------------------


def test_refresh_stores_the_list_and_a_new_instance_uses_it_before_fetching(tmp_path: Path):
    clock = Clock()
    first_store = JsonFileStore(tmp_path / "state")
    assert allowlist(Fetch(["101.226.103.*", "127.0.0.2"]), first_store, clock=clock).refresh()
    stored = json.loads(first_store.get_value(STORE_KEY) or "")
    assert stored == {"ip_list": ["101.226.103.*", "127.0.0.2"], "fetched_at": clock.now}
    first_store.close()

    restarted = JsonFileStore(tmp_path / "state")  # a new process reads the same directory
    fetch = down()
    again = allowlist(fetch, restarted, clock=Clock(clock.now + 600))
    assert fetch.calls == 0
    assert again.allows("101.226.103.4") and again.allows("127.0.0.2")
    assert not again.allows("127.0.0.1")
    state = again.state()
    assert (state.entries, state.source, state.fail_open, state.last_refresh) == (
        2,
        "stored",
        False,
        clock.now,
    )
    assert not again.refresh()  # WeCom unreachable after the restart: the stored list stays in use
    assert again.allows("101.226.103.4") and not again.allows("8.8.8.8")
    restarted.close()


def test_the_stored_list_expires_with_its_ttl(tmp_path: Path):
    store_clock = Clock()
    s = JsonFileStore(tmp_path / "state", clock=store_clock)
    assert allowlist(Fetch(["127.0.0.2"]), s).refresh()
    store_clock.now += STORE_TTL_SECONDS + 1
    late = allowlist(down(), s)
    assert late.state().fail_open and late.allows("8.8.8.8")
    s.close()


def test_a_malformed_stored_value_is_ignored(store: JsonFileStore, logs):
    for junk in ("not json", json.dumps(["127.0.0.2"]), json.dumps({"ip_list": ["nope"]})):
        store.set_value(STORE_KEY, junk, None)
        a = allowlist(down(), store)
        assert a.state().fail_open, junk
    assert logs(logging.WARNING)  # said, not silently dropped


def test_a_stored_list_without_a_time_is_used(store: JsonFileStore, logs):
    store.set_value(STORE_KEY, json.dumps({"ip_list": ["127.0.0.2"]}), None)
    a = allowlist(down(), store)
    assert a.allows("127.0.0.2") and not a.allows("127.0.0.1")
    assert a.state().last_refresh is None
    assert not a.refresh()
    assert logs(logging.WARNING) == []


def test_a_failing_store_does_not_fail_the_refresh(logs):
    class BrokenStore:
        def get_value(self, key: str) -> str | None:
            raise OSError("disk gone")

        def set_value(self, key: str, value: str | None, ttl_seconds: float | None) -> None:
            raise OSError("disk gone")

    a = CallbackIpAllowlist(Fetch(["127.0.0.2"]), BrokenStore())
    assert a.state().fail_open
    assert a.refresh()
    assert a.allows("127.0.0.2") and not a.allows("127.0.0.1")
    assert any("cannot store" in line for line in logs(logging.WARNING))


# --- failures -------------------------------------------------------------------------------------


def test_fetch_failure_with_no_list_fails_open_with_one_warning(store: JsonFileStore, logs):
    fetch = down()
    a = allowlist(fetch, store)
    assert a.state().fail_open and a.state().source == "none"
    for _ in range(3):
        assert not a.refresh()
    assert fetch.calls == 3
    assert a.allows("8.8.8.8") and a.allows("127.0.0.1") and a.allows("garbage")
    warnings = logs(logging.WARNING)
    assert len(warnings) == 1
    assert warnings[0].startswith(FAIL_OPEN_WARNING.split(" (")[0])
    assert "KfNetworkError" in warnings[0]
    assert a.state().failures == 3

    fetch.answer = ["127.0.0.2"]
    assert a.refresh()
    infos = [line for line in logs(logging.INFO) if "allowlist is fetched" in line]
    assert len(infos) == 1
    assert a.allows("127.0.0.2") and not a.allows("8.8.8.8")
    state = a.state()
    assert (state.fail_open, state.failures, state.entries, state.source) == (False, 0, 1, "fetched")
    assert len(logs(logging.WARNING)) == 1


def test_failure_after_a_good_list_keeps_the_old_list(store: JsonFileStore, logs):
    clock = Clock()
    fetch = Fetch(["101.226.103.*"])
    a = allowlist(fetch, store, clock=clock)
    assert a.refresh()
    fetch.answer = RuntimeError("boom")
    clock.now += 3600
    assert not a.refresh()
    clock.now += 3600
    assert not a.refresh()
    assert a.allows("101.226.103.1") and not a.allows("8.8.8.8")
    state = a.state()
    assert (state.fail_open, state.failures, state.last_refresh) == (False, 2, clock.now - 7200)
    assert logs(logging.WARNING) == []  # a blip with a list in hand is not an alarm
    fetch.answer = ["101.226.62.*"]
    assert a.refresh()
    assert a.allows("101.226.62.1") and not a.allows("101.226.103.1")
    assert any("again after 2 failure" in line for line in logs(logging.INFO))


def test_a_list_not_refreshed_for_a_day_is_warned_about_once(store: JsonFileStore, logs):
    clock = Clock()
    fetch = Fetch(["101.226.103.*"])
    a = allowlist(fetch, store, clock=clock)
    assert a.refresh()
    fetch.answer = RuntimeError("boom")
    for _ in range(30):
        clock.now += 3600
        assert not a.refresh()
    warnings = logs(logging.WARNING)
    assert len(warnings) == 1 and "could not be refreshed for 24 h" in warnings[0]
    assert a.allows("101.226.103.1")


def test_an_empty_list_is_a_failure(store: JsonFileStore, logs):
    fetch = Fetch([])
    a = allowlist(fetch, store)
    assert not a.refresh()
    assert a.state().fail_open and a.allows("8.8.8.8")
    assert "empty ip_list" in logs(logging.WARNING)[0]
    fetch.answer = ["127.0.0.2"]
    assert a.refresh()
    fetch.answer = []
    assert not a.refresh()  # never lock everyone out: the last list stays
    assert a.allows("127.0.0.2") and not a.allows("8.8.8.8")
    assert json.loads(store.get_value(STORE_KEY) or "")["ip_list"] == ["127.0.0.2"]


def test_malformed_entries_are_skipped_and_logged_once(store: JsonFileStore, logs):
    a = allowlist(Fetch(["127.0.0.2", "1.*.3.4", "*", "127.0.0.3"]), store)
    assert a.refresh() and a.refresh()
    assert a.allows("127.0.0.2") and a.allows("127.0.0.3") and not a.allows("1.2.3.4")
    skipped = [line for line in logs(logging.WARNING) if "malformed entry" in line]
    assert len(skipped) == 2
    assert a.state().entries == 2
    assert json.loads(store.get_value(STORE_KEY) or "")["ip_list"] == ["127.0.0.2", "127.0.0.3"]


def test_only_malformed_entries_is_a_failure(store: JsonFileStore):
    a = allowlist(Fetch(["*.*.*.*", "None"]), store)
    assert not a.refresh()
    assert a.state().fail_open


def test_due_follows_refresh_and_retry_intervals(store: JsonFileStore):
    clock = Clock()
    fetch = down()
    a = allowlist(fetch, store, clock=clock, refresh_seconds=3600, retry_seconds=60)
    assert a.due()
    assert not a.refresh()
    assert not a.due()
    clock.now += 60
    assert a.due()
    fetch.answer = ["127.0.0.2"]
    assert a.refresh()
    clock.now += 3599
    assert not a.due()
    clock.now += 1
    assert a.due()


def test_state_reports_entries_time_and_fail_open(store: JsonFileStore):
    clock = Clock()
    a = allowlist(Fetch(["127.0.0.2", "127.0.0.3", "10.0.0.0/8"]), store, clock=clock, extra=["192.0.2.1"])
    before = a.state()
    assert (before.entries, before.last_refresh, before.fail_open) == (0, None, True)
    assert a.refresh()
    after = a.state()
    assert (after.entries, after.extra_entries, after.last_refresh, after.fail_open) == (
        3,
        1,
        clock.now,
        False,
    )


# --- against the emulator, over real HTTP ----------------------------------------------------------


@pytest.fixture
def api(emu: WeComEmulator) -> Iterator[KfApi]:
    quick = RetryPolicy(base=0.001, cap=0.01, max_attempts=2)
    client = KfApi(emu.corp_id, emu.secret, api_base=emu.api_base, timeout=5.0, quick=quick)
    yield client
    client.close()


def test_client_get_callback_ips_returns_the_emulators_list(emu: WeComEmulator, api: KfApi):
    assert api.get_callback_ips() == ["127.0.0.2", "127.0.0.3"]
    emu.callback_ips = ["101.226.103.*", "81.69.103.0/24"]
    assert api.get_callback_ips() == ["101.226.103.*", "81.69.103.0/24"]
    apis = [e["api"] for e in emu.protocol_log() if e["kind"] == "api"]
    assert apis == ["gettoken", "getcallbackip", "getcallbackip"]


def test_client_get_callback_ips_raises_a_kf_error_on_an_errcode(emu: WeComEmulator, api: KfApi):
    emu.faults.callback_ip_errcode = 48002
    with pytest.raises(KfError) as info:
        api.get_callback_ips()
    assert info.value.errcode == 48002
    assert info.value.api == "getcallbackip"


def test_allowlist_on_the_client_fails_open_then_follows_the_emulator(
    emu: WeComEmulator, api: KfApi, store: JsonFileStore, logs
):
    emu.faults.callback_ip_errcode = -1  # system busy, retried inline then given up
    a = CallbackIpAllowlist(api.get_callback_ips, store)
    assert not a.refresh()
    assert a.allows("8.8.8.8")
    assert len(logs(logging.WARNING)) == 1
    emu.faults.callback_ip_errcode = None
    assert a.refresh()
    assert a.allows("127.0.0.2") and a.allows("127.0.0.3")
    assert not a.allows("127.0.0.1")


def test_a_real_connection_from_a_callback_ip_is_allowed(
    emu: WeComEmulator, api: KfApi, store: JsonFileStore
):
    """The peer address as a server socket reports it, from a client bound to WeCom's (emulated) IP."""
    a = CallbackIpAllowlist(api.get_callback_ips, store)
    assert a.refresh()
    listener = socket.create_server(("127.0.0.1", 0))
    seen: list[str] = []
    try:
        for source in ("127.0.0.2", "127.0.0.1"):
            try:
                client = socket.create_connection(
                    listener.getsockname(), timeout=5, source_address=(source, 0)
                )
            except OSError as exc:  # only Linux routes all of 127/8 to lo by default
                pytest.skip(f"cannot bind {source}: {exc}")
            with client:
                peer, _ = listener.accept()
                with peer:
                    seen.append(peer.getpeername()[0])
    finally:
        listener.close()
    assert seen == ["127.0.0.2", "127.0.0.1"]
    assert [a.allows(address) for address in seen] == [True, False]


def test_a_dual_stack_peer_is_seen_as_mapped_ipv6_and_allowed(
    emu: WeComEmulator, api: KfApi, store: JsonFileStore
):
    if not socket.has_dualstack_ipv6():
        pytest.skip("no dual-stack IPv6 here")
    a = CallbackIpAllowlist(api.get_callback_ips, store)
    assert a.refresh()
    try:
        listener = socket.create_server(("::", 0), family=socket.AF_INET6, dualstack_ipv6=True)
    except OSError as exc:
        pytest.skip(f"no dual-stack listener: {exc}")
    try:
        port = listener.getsockname()[1]
        try:
            client = socket.create_connection(("127.0.0.2", port), timeout=5, source_address=("127.0.0.2", 0))
        except OSError as exc:
            pytest.skip(f"cannot bind 127.0.0.2: {exc}")
        with client:
            peer, _ = listener.accept()
            with peer:
                address = peer.getpeername()[0]
    finally:
        listener.close()
    assert address == "::ffff:127.0.0.2"
    assert a.allows(address)
