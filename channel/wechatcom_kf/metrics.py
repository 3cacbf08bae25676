"""What the channel counts for Prometheus, and what ``/readyz`` answers from.

One ``KfMetrics`` per channel instance, on a ``CollectorRegistry`` of its own (never the process-wide
one: tests and several instances in one process must not clash). prometheus_client is imported only
when ``wechatcom_kf_metrics_port`` turns metrics on; otherwise every metric is a no-op
(``NO_METRICS``), so the channel still runs in a CoW host where the library is missing. The parts that
count take a ``metrics`` argument and call ``metrics.<name>.inc()`` / ``.observe()`` where the event
happens; what other parts count already (refusals, messages in flight, token fetches, readiness) is
read at scrape time by ``_StateCollector``.

Readiness is answered from cached state only, never with I/O per request: a store probe written
periodically by the maintenance thread (``StoreProbe``), the outcome of the last access_token fetch
(``TokenWatch``, fed by ``observed_token_fetch`` on the token client), and the lifecycle.
Label values are bounded: errcodes outside the known table are "other", takeover causes are classes.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, cast

from .errors import errcode_hint
from .oncelog import OutageLog
from .redaction import redact

logger = logging.getLogger(__name__)

PREFIX = "wechatcom_kf_"
# Seconds from handing a turn to the host until its first reply (the bot, plugins, the host's queue).
BOT_LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 8.0, 13.0, 20.0, 30.0, 60.0, 120.0, 300.0)
# Seconds from the customer's send_time (whole seconds) until the last part of the answer was
# accepted; after downtime up to WeCom's 48 h send window.
REPLY_LATENCY_BUCKETS = (
    *(1.0, 2.0, 3.0, 5.0, 8.0, 13.0, 20.0, 30.0, 60.0, 120.0, 300.0),
    *(900.0, 3600.0, 6 * 3600.0, 48 * 3600.0),
)
F = TypeVar("F", bound=Callable[..., Any])


class Counted(Protocol):
    def inc(self, amount: float = 1) -> None: ...


class CountedBy(Protocol):
    def labels(self, *values: str) -> Counted: ...


class Observed(Protocol):
    def observe(self, amount: float) -> None: ...


class _Null:
    """Every metric when metrics are off: accepts the calls, keeps nothing."""

    def labels(self, *values: str) -> _Null:
        return self

    def inc(self, amount: float = 1) -> None:
        pass

    def observe(self, amount: float) -> None:
        pass


class _Maker:
    """Builds metrics on ``registry``, or no-ops when it is None."""

    def __init__(self, registry: Any | None) -> None:
        self.registry = registry
        if registry is not None:
            import prometheus_client

            self._lib: Any = prometheus_client

    def counter(self, name: str, doc: str) -> Counted:
        if self.registry is None:
            return _Null()
        return cast(Counted, self._lib.Counter(PREFIX + name, doc, registry=self.registry))

    def counter_by(self, name: str, doc: str, *labels: str) -> CountedBy:
        if self.registry is None:
            return _Null()
        return cast(CountedBy, self._lib.Counter(PREFIX + name, doc, labels, registry=self.registry))

    def histogram(self, name: str, doc: str, buckets: tuple[float, ...]) -> Observed:
        if self.registry is None:
            return _Null()
        metric = self._lib.Histogram(PREFIX + name, doc, buckets=buckets, registry=self.registry)
        return cast(Observed, metric)


class KfMetrics:
    """The channel's counters and histograms (names without the ``wechatcom_kf_`` prefix)."""

    def __init__(self, registry: Any | None = None) -> None:
        make = _Maker(registry)
        self.registry = registry
        self.callbacks = make.counter_by("callbacks", "Callback answers by HTTP status", "status")
        self.pulls = make.counter_by(
            "pulls",
            "Pull jobs (coalesced sync_msg loops) by outcome: ok, retry, failed, unexpected",
            "outcome",
        )
        self.sync_pages = make.counter("sync_msg_pages", "sync_msg answers (pages) received")
        self.accepted = make.counter("messages_accepted", "Items (messages, events) taken for handling")
        self.finished = make.counter("messages_finished", "Items finished durably in the state store")
        self.skipped = make.counter_by(
            "messages_skipped", "Items not handled, by reason: history, age, duplicate", "reason"
        )
        self.sends = make.counter_by(
            "sends",
            "send_msg parts by result (sent, duplicate, notice, skipped, retry, refused) and errcode",
            "result",
            "errcode",
        )
        self.budget_exhausted = make.counter("budget_exhausted", "Replies with no send left in the budget")
        self.bot_latency = make.histogram(
            "bot_latency_seconds", "Turn handed to the host until its first reply", BOT_LATENCY_BUCKETS
        )
        self.reply_latency = make.histogram(
            "reply_latency_seconds",
            "Customer's send_time until the last part of the answer was accepted",
            REPLY_LATENCY_BUCKETS,
        )
        self.handoffs = make.counter_by(
            "handoffs", "Hand-offs to a human by outcome: receptionist, queue, refused", "outcome"
        )
        self.takeovers = make.counter_by("takeovers", "Sessions a human took, by cause", "cause")
        self.releases = make.counter("sessions_released", "Sessions back with the bot after a human")
        self.store_errors = make.counter("store_errors", "Failed state store calls (each attempt)")

    @classmethod
    def enabled(cls) -> KfMetrics:
        """Metrics on a registry of their own; ValueError when prometheus_client is missing."""
        try:
            from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector
        except ImportError:
            raise ValueError(
                "wechatcom_kf_metrics_port is set but prometheus_client is not installed: "
                "pip install prometheus_client (or set wechatcom_kf_metrics_port to 0)"
            ) from None
        registry = CollectorRegistry()
        ProcessCollector(registry=registry)  # memory and CPU of the process (Linux)
        PlatformCollector(registry=registry)
        return cls(registry)

    def watch_state(self, state: StateSources) -> None:
        """Expose what other parts count already, read at every scrape."""
        if self.registry is not None:
            self.registry.register(_StateCollector(state))


NO_METRICS = KfMetrics()


def errcode_label(errcode: int | None) -> str:
    """A bounded label value: a known errcode, "none" (no errcode: network), else "other"."""
    if errcode is None:
        return "none"
    return str(errcode) if errcode == 0 or errcode_hint(errcode) else "other"


_TAKEOVER_CAUSES = (
    ("receptionist message", "receptionist_message"),
    ("session_status_change", "session_status_change"),
    ("send refused", "send_refused"),
    ("handed off", "handoff"),
    ("service state", "service_state"),
)


def takeover_cause(reason: str) -> str:
    """The class of a takeover's free-text reason (a bounded label value)."""
    return next((cause for prefix, cause in _TAKEOVER_CAUSES if reason.startswith(prefix)), "other")


# --- access_token fetches ------------------------------------------------------------------------


class TokenWatch:
    """Outcomes of a token client's access_token fetches (thread-safe)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self.fetched = 0
        self.failed = 0
        self.last_success: float | None = None  # epoch seconds
        self.failing = False  # the last fetch failed: no usable token until one succeeds

    def succeeded(self) -> None:
        with self._lock:
            self.fetched += 1
            self.last_success = self._clock()
            self.failing = False

    def fail(self) -> None:
        with self._lock:
            self.failed += 1
            self.failing = True


_WATCHES: weakref.WeakKeyDictionary[Any, TokenWatch] = weakref.WeakKeyDictionary()
_WATCHES_LOCK = threading.Lock()


def token_watch(client: Any) -> TokenWatch:
    """The watch of ``client``'s fetches (created on first use)."""
    with _WATCHES_LOCK:
        watch = _WATCHES.get(client)
        if watch is None:
            watch = _WATCHES[client] = TokenWatch()
        return watch


def observed_token_fetch(fetch: F) -> F:
    """Decorates a token client's ``fetch_access_token``: every outcome goes to its ``token_watch``."""

    @functools.wraps(fetch)
    def observed(client: Any, *args: Any, **kwargs: Any) -> Any:
        watch = token_watch(client)
        try:
            result = fetch(client, *args, **kwargs)
        except Exception:
            watch.fail()
            raise
        watch.succeeded()
        return result

    return cast(F, observed)


# --- readiness -----------------------------------------------------------------------------------


class _Values(Protocol):
    def set_value(self, key: str, value: str | None, ttl_seconds: float | None) -> None: ...


class StoreProbe:
    """Writes one small value per ``check()`` (a maintenance task); ``problem()`` reads the outcome.

    The probe goes to the backend itself, not through the retrying wrapper: a failure is an answer
    here, not something to wait out. A probe that has not run for ``stale_after`` seconds (the
    maintenance thread is stuck, e.g. behind a store call that keeps retrying) is a problem too.
    """

    def __init__(
        self,
        store: _Values,
        key: str,
        interval: float,
        *,
        on_error: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._key = key
        self._ttl = max(60.0, 4 * interval)
        self.stale_after = max(60.0, 4 * interval)
        self._on_error = on_error
        self._clock = clock
        self._outage = OutageLog(logger, "state store (readiness probe)")
        self._lock = threading.Lock()
        self._writable = True  # the outcome of the last check (none yet: the store just opened)
        self._checked_at = clock()

    def check(self) -> None:
        writable = True
        try:
            self._store.set_value(self._key, str(int(time.time())), self._ttl)
        except Exception as exc:  # whatever the backend raises, the answer is "not writable"
            writable = False
            self._outage.failed(redact(exc))
            self._on_error()
        else:
            self._outage.succeeded()
        with self._lock:
            self._writable, self._checked_at = writable, self._clock()

    def problem(self) -> str | None:
        with self._lock:
            writable, checked_at = self._writable, self._checked_at
        if not writable:
            return "state store not writable"
        if self._clock() - checked_at > self.stale_after:
            return "state store check overdue"
        return None


class Readiness:
    """Why the channel should not get traffic now, or None: answered from cached state only."""

    def __init__(self, store: StoreProbe, token: TokenWatch) -> None:
        self._store = store
        self._token = token
        self.started = threading.Event()
        self.stopping = threading.Event()

    def reason(self) -> str | None:
        if self.stopping.is_set():
            return "shutting down"
        if not self.started.is_set():
            return "starting"
        problem = self._store.problem()
        if problem is not None:
            return problem
        if self._token.failing:
            return "no WeCom access_token: the last fetch failed"
        return None


# --- read at scrape time -------------------------------------------------------------------------


@dataclass(frozen=True)
class StateSources:
    refusals: Callable[[], Mapping[str, int]]
    pending: Callable[[], int]
    token: TokenWatch
    not_ready: Callable[[], str | None]


class _StateCollector:
    """What other parts count already, as metric families at every scrape (no I/O)."""

    def __init__(self, state: StateSources) -> None:
        self._state = state

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        state = self._state
        refused = CounterMetricFamily(
            PREFIX + "refusals", "Requests the edge refused, by kind", labels=["kind"]
        )
        for kind, count in sorted(state.refusals().items()):
            refused.add_metric([kind], count)
        yield refused
        yield GaugeMetricFamily(
            PREFIX + "messages_pending", "Items taken and not finished yet", value=state.pending()
        )
        token = state.token
        fetches = CounterMetricFamily(
            PREFIX + "token_fetches", "access_token fetches by outcome", labels=["outcome"]
        )
        fetches.add_metric(["ok"], token.fetched)
        fetches.add_metric(["failed"], token.failed)
        yield fetches
        yield GaugeMetricFamily(
            PREFIX + "token_last_success_timestamp_seconds",
            "When an access_token was last fetched (0: not yet)",
            value=token.last_success or 0.0,
        )
        yield GaugeMetricFamily(
            PREFIX + "ready", "1 when /readyz answers 200", value=0.0 if state.not_ready() else 1.0
        )
