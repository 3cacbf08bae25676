"""Who gets in at the edge: the allowlist hook, connections per address, requests per address.

Used on the event-loop thread only, so there are no locks. Memory is bounded: a connection count exists
only while the address has connections open, and rate buckets are kept for at most
``MAX_TRACKED_ADDRESSES`` addresses, least recently seen out first. An evicted address starts again
with a full bucket: that weakens its limit a little but never refuses anyone else, which is what
matters when many addresses are sprayed at the port.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Iterable

from ..oncelog import OncePerKey
from .callback import FORBIDDEN
from .limits import EdgeLimits
from .refusals import Refusals
from .wire import TOO_MANY_REQUESTS, HttpError

logger = logging.getLogger(__name__)

MAX_TRACKED_ADDRESSES = 65_536
_MINUTE = 60.0


class Gate:
    """``connect`` before a connection's first byte is read, ``request`` at each complete head."""

    def __init__(self, limits: EdgeLimits, allow: Callable[[str], bool] | None, refusals: Refusals) -> None:
        self._limits = limits
        self._allow = allow
        self._refusals = refusals
        self._allow_failed = OncePerKey()
        self._open: dict[str, int] = {}
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # address -> (tokens, at)

    @property
    def addresses_open(self) -> int:
        return len(self._open)

    def connect(self, address: str, proxied: bool) -> bool:
        """Admit and count a connection from ``address``; False (not counted) to close it at once.

        A trusted proxy is neither allowlist-checked here (its own address is not what an allowlist
        lists: its requests are checked instead) nor capped (each connection carries other clients)."""
        if not proxied and not self._allowed(address):
            self._refusals.refuse("address not allowed", address)
            return False
        count = self._open.get(address, 0)
        cap = self._limits.max_connections_per_address
        if not proxied and cap and count >= cap:
            self._refusals.refuse("connections per address over the limit", f"{cap} from {address}")
            return False
        self._open[address] = count + 1
        return True

    def disconnect(self, address: str) -> None:
        count = self._open.get(address, 0) - 1
        if count > 0:
            self._open[address] = count
        else:
            self._open.pop(address, None)

    def request(self, peer: str, proxied: bool, headers: Iterable[tuple[bytes, bytes]], now: float) -> None:
        """Raise ``HttpError`` (403, 429) unless a request with these headers from ``peer`` may go on."""
        client = peer
        if proxied:
            client = self._limits.client_address(peer, headers)
            if not self._allowed(client):
                raise HttpError(FORBIDDEN, "address not allowed", f"{client} via a proxy")
        if not self._take(client, now):
            rate = self._limits.requests_per_address_per_minute
            raise HttpError(TOO_MANY_REQUESTS, "rate limited", f"{rate}/min from {client}")

    def prune(self, now: float) -> None:
        """Forget buckets untouched for a minute: they are full again, the same as no bucket."""
        while self._buckets:
            address, (_, at) = next(iter(self._buckets.items()))
            if now - at < _MINUTE:
                return  # the rest were used more recently (the dict is in order of last use)
            del self._buckets[address]

    def _take(self, address: str, now: float) -> bool:
        """Spend one request from ``address``'s token bucket; False when it is empty."""
        rate = self._limits.requests_per_address_per_minute
        if not rate:
            return True
        previous = self._buckets.pop(address, None)
        if previous is None:
            tokens = float(rate)
        else:
            tokens = min(float(rate), previous[0] + (now - previous[1]) * rate / _MINUTE)
        allowed = tokens >= 1.0
        self._buckets[address] = (tokens - 1.0 if allowed else tokens, now)  # now the most recent
        if len(self._buckets) > MAX_TRACKED_ADDRESSES:
            self._buckets.popitem(last=False)
        return allowed

    def _allowed(self, address: str) -> bool:
        if self._allow is None:
            return True
        try:
            return bool(self._allow(address))
        except Exception:
            # Fail open: every callback is still signature-checked, and a broken allowlist must not
            # make the bot deaf. The traceback once, for whoever fixes it.
            if self._allow_failed.first("allow"):
                logger.exception("callback allowlist check failed; letting addresses in")
            return True
