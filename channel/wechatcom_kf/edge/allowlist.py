"""WeCom's callback source addresses as an allowlist for the callback port (invariant 1).

获取企业微信回调IP段: https://developer.work.weixin.qq.com/document/path/90238 (copy: /98988).
``GET cgi-bin/getcallbackip`` answers ``{"errcode":0,"errmsg":"ok","ip_list":[...]}``; the ranges may
change, old and new ones are then both served for a while, and WeCom advises pulling the list daily.
Entries are exact addresses in the current doc, ``101.226.103.*`` in older copies, and CIDR
(``101.226.103.0/25``) in the WeChat Official Account twin of the API: all three are accepted.

``allows`` runs on the event loop for every connection: it reads one immutable snapshot (no lock, no
I/O). ``refresh`` runs on the maintenance thread: fetch, swap the snapshot, keep the list in the store
so that a restart lets WeCom in before its first fetch succeeds. With no list at all it fails open: an
allowlist that cannot be fetched must not make the bot deaf.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from ..oncelog import OncePerKey
from ..redaction import redact
from ..store.base import KeyValues

logger = logging.getLogger(__name__)

STORE_KEY = "callback-ips"
STORE_TTL_SECONDS = 7 * 86400
REFRESH_SECONDS = 3600.0
RETRY_SECONDS = 60.0  # while failing, ``due`` asks again this often
STALE_SECONDS = 86400.0  # WeCom advises a daily pull: an older list may miss new ranges
MAX_ENTRIES = 4096
FAIL_OPEN_WARNING = "the allowlist cannot be fetched: allowing every address until it can (%s)"

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_entry(text: str) -> IpNetwork | None:
    """``1.2.3.4``, ``1.2.3.*`` (trailing octets only) or ``1.2.3.0/24`` as a network; None if malformed."""
    text = text.strip()
    if "*" in text:
        return _parse_wildcard(text)
    try:
        network = ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None
    if isinstance(network, ipaddress.IPv6Network) and network.prefixlen >= 96:
        mapped = network.network_address.ipv4_mapped
        if mapped is not None:
            return ipaddress.IPv4Network((mapped, network.prefixlen - 96))
    return network


def _parse_wildcard(text: str) -> IpNetwork | None:
    parts = text.split(".")
    fixed = [part for part in parts if part != "*"]
    if len(parts) != 4 or not fixed or parts[: len(fixed)] != fixed:
        return None  # "*.*.*.*" (everything) and "1.*.3.4" are not ranges WeCom would mean
    if not all(part.isdigit() and len(part) <= 3 and int(part) <= 255 for part in fixed):
        return None
    base = ".".join(fixed + ["0"] * (4 - len(fixed)))
    return ipaddress.IPv4Network(f"{base}/{8 * len(fixed)}")


def parse_address(address: str) -> IpAddress | None:
    """A peer address as the event loop reports it (``::ffff:1.2.3.4`` becomes ``1.2.3.4``)."""
    text = address.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


class _Matcher:
    """Networks grouped by (version, prefix length): a lookup costs one set probe per group."""

    def __init__(self, networks: Iterable[IpNetwork]) -> None:
        groups: dict[tuple[int, int], set[int]] = {}
        for net in networks:
            groups.setdefault((net.version, net.prefixlen), set()).add(int(net.network_address))
        self._groups = tuple(
            (version, _mask(version, prefixlen), frozenset(nets))
            for (version, prefixlen), nets in sorted(groups.items(), key=lambda item: -item[0][1])
        )

    def matches(self, ip: IpAddress) -> bool:
        value, version = int(ip), ip.version
        return any(v == version and (value & mask) in nets for v, mask, nets in self._groups)


def _mask(version: int, prefixlen: int) -> int:
    bits = 32 if version == 4 else 128
    return ((1 << prefixlen) - 1) << (bits - prefixlen)


@dataclass(frozen=True)
class AllowlistState:
    """For metrics: what ``allows`` decides from now."""

    entries: int  # WeCom's entries in use (the operator's extra ones not counted)
    extra_entries: int
    last_refresh: float | None  # wall-clock time the list in use was fetched (None: never)
    source: str  # "fetched" (by this process), "stored" (read at start) or "none"
    fail_open: bool  # True: every address is allowed, there is no list yet
    failures: int  # failed refreshes since the last good one


@dataclass(frozen=True)
class _Snapshot:
    matcher: _Matcher
    entries: tuple[str, ...]
    fetched_at: float | None
    source: str

    @property
    def fail_open(self) -> bool:
        return not self.entries


_NOTHING = _Snapshot(_Matcher(()), (), None, "none")


class CallbackIpAllowlist:
    """Which peers may talk to the callback port: WeCom's callback IPs plus the operator's ``extra``."""

    def __init__(
        self,
        fetch: Callable[[], list[str]],
        store: KeyValues,
        *,
        extra: Iterable[str] = (),
        refresh_seconds: float = REFRESH_SECONDS,
        retry_seconds: float = RETRY_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._fetch = fetch
        self._store = store
        self._clock = clock
        self.refresh_seconds = refresh_seconds
        self.retry_seconds = retry_seconds
        extra_entries = list(extra)
        self._extra = _Matcher(_parse_extra(extra_entries))
        self._extra_count = len(extra_entries)
        self._refresh_lock = threading.Lock()  # refreshes only; ``allows`` never takes it
        self._malformed = OncePerKey()
        self._failures = 0
        self._warned_open = False
        self._warned_stale = False
        self._last_attempt: float | None = None
        self._last_success: float | None = None
        self._snapshot = self._load_stored()

    # --- the event loop's side ---------------------------------------------------------------------

    def allows(self, address: str) -> bool:
        """Whether a connection from ``address`` may be served (always True while failing open)."""
        snapshot = self._snapshot  # one read: refresh swaps the whole object
        if snapshot.fail_open:
            return True
        ip = parse_address(address)
        if ip is None:
            return False
        return self._extra.matches(ip) or snapshot.matcher.matches(ip)

    def state(self) -> AllowlistState:
        snapshot = self._snapshot
        return AllowlistState(
            entries=len(snapshot.entries),
            extra_entries=self._extra_count,
            last_refresh=snapshot.fetched_at,
            source=snapshot.source,
            fail_open=snapshot.fail_open,
            failures=self._failures,
        )

    # --- the maintenance thread's side -------------------------------------------------------------

    def due(self) -> bool:
        """Whether a ``refresh`` is due: none succeeded within ``refresh_seconds`` and none was tried
        within ``retry_seconds`` (so a ticker calling this every minute retries failures quickly)."""
        now = self._clock()
        if self._last_success is not None and now - self._last_success < self.refresh_seconds:
            return False
        return self._last_attempt is None or now - self._last_attempt >= self.retry_seconds

    def refresh(self) -> bool:
        """Fetch the list (blocking) and use it; on failure keep the last known one. True on success."""
        with self._refresh_lock:
            now = self._clock()
            self._last_attempt = now
            try:
                raw = list(self._fetch())
            except Exception as exc:  # any failure of the fetch is a failed refresh, never a crash
                self._failed(f"{type(exc).__name__}: {redact(exc)}")
                return False
            entries, networks = self._parse_fetched(raw)
            if not networks:
                self._failed("WeCom answered an empty ip_list" if not raw else "no usable entry in ip_list")
                return False
            previous = self._snapshot
            self._snapshot = _Snapshot(_Matcher(networks), tuple(entries), now, "fetched")
            self._last_success = now
            self._save(entries, now)
            self._succeeded(previous)
            return True

    # --- helpers -----------------------------------------------------------------------------------

    def _parse_fetched(self, raw: Sequence[object]) -> tuple[list[str], list[IpNetwork]]:
        """The usable entries (as received) and their networks; malformed ones logged once each."""
        entries: list[str] = []
        networks: list[IpNetwork] = []
        for item in raw[:MAX_ENTRIES]:
            text = item.strip() if isinstance(item, str) else ""
            network = parse_entry(text) if text else None
            if network is None:
                if self._malformed.first(repr(item)[:100]):
                    logger.warning("skipping a malformed entry of WeCom's callback IP list: %.100r", item)
                continue
            entries.append(text)
            networks.append(network)
        if len(raw) > MAX_ENTRIES and self._malformed.first("too many"):
            logger.warning(
                "WeCom's callback IP list has %d entries; using the first %d", len(raw), MAX_ENTRIES
            )
        return entries, networks

    def _load_stored(self) -> _Snapshot:
        try:
            raw = self._store.get_value(STORE_KEY)
        except Exception as exc:  # a cache we cannot read only means waiting for the first fetch
            logger.warning("cannot read the stored callback IP list (%s)", type(exc).__name__)
            return _NOTHING
        if raw is None:
            return _NOTHING
        doc = _decode_stored(raw)
        if doc is None:
            logger.warning("ignoring a malformed stored callback IP list")
            return _NOTHING
        stored, fetched_at = doc
        entries, networks = self._parse_fetched(list(stored))
        if not networks:
            return _NOTHING
        logger.info(
            "using the stored list of %d WeCom callback IP entries until it is refreshed", len(entries)
        )
        return _Snapshot(_Matcher(networks), tuple(entries), fetched_at, "stored")

    def _save(self, entries: list[str], now: float) -> None:
        value = json.dumps({"ip_list": entries, "fetched_at": now}, separators=(",", ":"))
        try:
            self._store.set_value(STORE_KEY, value, STORE_TTL_SECONDS)
        except Exception as exc:  # the list is in use anyway; only a restart would miss it
            logger.warning("cannot store the callback IP list (%s)", type(exc).__name__)

    def _failed(self, reason: str) -> None:
        self._failures += 1
        snapshot = self._snapshot
        if snapshot.fail_open:
            if not self._warned_open:
                self._warned_open = True
                logger.warning(FAIL_OPEN_WARNING, reason)
            else:
                logger.debug("callback IP list still unavailable (%s)", reason)
            return
        age = None if snapshot.fetched_at is None else self._clock() - snapshot.fetched_at
        if age is not None and age >= STALE_SECONDS and not self._warned_stale:
            self._warned_stale = True
            logger.warning(
                "WeCom's callback IP list could not be refreshed for %.0f h (%s); new WeCom ranges may "
                "be refused until it is",
                age / 3600,
                reason,
            )
        elif self._failures == 1:
            logger.info("cannot refresh WeCom's callback IP list (%s); keeping the last known one", reason)
        else:
            logger.debug("callback IP list still not refreshed (%s)", reason)

    def _succeeded(self, previous: _Snapshot) -> None:
        failures, self._failures = self._failures, 0
        self._warned_stale = False
        count = len(self._snapshot.entries)
        if previous.fail_open:
            was_open, self._warned_open = self._warned_open, False
            if was_open:
                logger.info("the allowlist is fetched: allowing WeCom's %d callback IP entries only", count)
            else:
                logger.info("allowing callbacks from WeCom's %d callback IP entries", count)
        elif failures:
            logger.info("WeCom's callback IP list refreshed again after %d failure(s)", failures)
        elif set(previous.entries) != set(self._snapshot.entries):
            logger.info("WeCom's callback IP list changed: %d entries now", count)
        else:
            logger.debug("WeCom's callback IP list refreshed, unchanged")


def _parse_extra(entries: list[str]) -> list[IpNetwork]:
    """The operator's entries: a malformed one is a configuration error, named at start."""
    networks: list[IpNetwork] = []
    for entry in entries:
        network = parse_entry(entry) if isinstance(entry, str) else None
        if network is None:
            raise ValueError(f"not an IP address, a.b.c.* range or CIDR range: {entry!r}")
        networks.append(network)
    return networks


def _decode_stored(raw: str) -> tuple[list[object], float | None] | None:
    try:
        doc = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("ip_list"), list):
        return None
    fetched_at = doc.get("fetched_at")
    return doc["ip_list"], float(fetched_at) if isinstance(fetched_at, int | float) else None
