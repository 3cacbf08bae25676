"""The channel's parts, built from its settings and wired together in one place.

One customer text travels through three hand-offs::

    callback (edge, asyncio loop) --schedule--> account worker: pull, accept, route
        --submit--> customer worker: merge window, gate, media, compose --produce--> host worker: bot
        --send--> delivery: plan, send, record; finished when nothing is left to send

The host (this project's runtime or an upstream CoW) owns the last worker; everything before it runs
on two ``KeyedWorkers`` pools, keyed by account and by customer. One ``Ticker`` thread renews claims,
sweeps for orphaned work and prunes old media. The customer-service desk (``desk/``) sits at the
customer worker (who answers a turn: the bot, a human, an off-hours notice) and at ``send`` (what the
customer sees of a reply). Every part counts into the instance's ``KfMetrics`` (metrics.py), served on
a loopback port of its own when ``wechatcom_kf_metrics_port`` is set; ``/readyz`` on the callback port
answers from a store probe the ticker writes, the last token fetch and the lifecycle.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from bridge.context import Context

from . import heap
from .api import KfApi
from .desk.customers import CustomerDirectory
from .desk.front_desk import FrontDesk
from .desk.handoff import HandOff
from .edge.allowlist import CallbackIpAllowlist
from .edge.limits import EdgeLimits
from .edge.refusals import Refusals
from .errors import KfError
from .inbound.dispatch import DELIVERY_KEY, TurnDispatcher
from .inbound.events import EventHandler, Welcome
from .inbound.inflight import InFlight
from .inbound.items import CustomerMessage
from .inbound.media import prune_media
from .inbound.puller import HistoryPolicy, Puller
from .inbound.router import Router
from .inbound.turns import FloodWatch, TurnAssembler
from .metrics import NO_METRICS, KfMetrics, Readiness, StateSources, StoreProbe, token_watch
from .metrics_server import MetricsServer, ObservedCallbackHandler, metrics_port
from .outbound.deliveries import Deliveries
from .outbound.delivery import Delivery
from .redaction import register_secret
from .session.budget import BudgetLedger
from .session.recalls import Recalls
from .session.takeover import Takeover
from .settings import KfSettings
from .store import CLAIM_LEASE_SECONDS, JsonFileStore, ResilientStore, StateStore
from .store.at_start import open_when_reachable
from .ticker import Ticker
from .wechatcom_kf_message import WechatComKfMessage
from .workers import KeyedWorkers

logger = logging.getLogger(__name__)

ACCOUNT_WORKERS = 4
CUSTOMER_WORKERS = 16  # media downloads, session checks and ``produce`` (which may wait for the host)
# Then the puller waits (accepted items are safe in the store; the rest stays at WeCom). 1,000 keeps
# 16 workers busy; 10,000 held ~80 MB more at a 50k backlog for no throughput (docs/performance.md).
MAX_WAITING_CUSTOMER_JOBS = 1_000
MEDIA_DIR_NAME = "wechatcom_kf_media"
MEDIA_MAX_AGE_SECONDS = 3 * 86400.0  # longer than WeCom's 48 h send window: a turn never loses its media
MEDIA_PRUNE_SECONDS = 3600.0
STORE_MAINTENANCE_SECONDS = 60.0
ALLOWLIST_CHECK_SECONDS = 60.0  # the list is fetched hourly; a failed fetch is retried within a minute
STORE_CHECK_SECONDS = 15.0  # /readyz reports the state store from this periodic write, never per request
TOKEN_RECHECK_SECONDS = 60.0  # after a failed access_token fetch, try again this often (even when idle)


def new_instance_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def edge_limits(settings: KfSettings) -> EdgeLimits:
    """The callback port's limits; ValueError naming the setting of a bad value."""
    deadline = settings.wechatcom_kf_request_deadline_seconds
    try:
        return EdgeLimits(
            head_deadline_seconds=deadline,
            body_deadline_seconds=deadline,
            max_connections_per_address=settings.wechatcom_kf_max_connections_per_address,
            requests_per_address_per_minute=settings.wechatcom_kf_requests_per_address_per_minute,
            trusted_proxies=frozenset(settings.wechatcom_kf_trusted_proxies),
        )
    except ValueError as exc:
        message = str(exc)
        for field, setting in _EDGE_SETTING_OF.items():
            message = message.replace(f"edge limit {field}", setting)
        raise ValueError(message) from None


_EDGE_SETTING_OF = {
    "head_deadline_seconds": "wechatcom_kf_request_deadline_seconds",
    "body_deadline_seconds": "wechatcom_kf_request_deadline_seconds",
    "max_connections_per_address": "wechatcom_kf_max_connections_per_address",
    "requests_per_address_per_minute": "wechatcom_kf_requests_per_address_per_minute",
}


def make_backend(settings: KfSettings, state_dir: Path) -> StateStore:
    """JSON file by default; Redis (shared by several instances) when a Redis URL is configured."""
    redis_url = settings.wechatcom_kf_redis_url
    if redis_url:
        from .store import RedisStore  # redis-py is needed only by deployments that use it

        parts = urlsplit(redis_url)
        register_secret(parts.password)
        return open_when_reachable(
            lambda: RedisStore(
                redis_url,
                prefix=settings.wechatcom_kf_redis_prefix,
                cluster=settings.wechatcom_kf_redis_cluster,
            ),
            f"{parts.hostname}:{parts.port or 6379}",
            settings.wechatcom_kf_redis_start_wait_seconds,
        )
    return JsonFileStore(state_dir)


class KfService:
    """Everything behind the callback endpoint; ``compose`` and ``produce`` are the host's."""

    def __init__(
        self,
        settings: KfSettings,
        *,
        compose: Callable[..., Context | None],
        produce: Callable[[Context], None],
        state_dir: Path,
        claim_lease_seconds: float = CLAIM_LEASE_SECONDS,
    ) -> None:
        for secret in (
            settings.wechatcom_kf_secret,
            settings.wechatcom_kf_token,
            settings.wechatcom_kf_aes_key,
        ):
            register_secret(secret)
        self.instance_id = new_instance_id()
        self.media_dir = state_dir / MEDIA_DIR_NAME
        port = metrics_port(settings.wechatcom_kf_metrics_port, settings.wechatcom_kf_port)
        self.metrics = KfMetrics.enabled() if port else NO_METRICS
        self.metrics_server = (
            MetricsServer(self.metrics.registry, settings.wechatcom_kf_metrics_host, port) if port else None
        )
        self.refusals = Refusals(logging.getLogger("channel.wechatcom_kf.edge"))
        self.callback = ObservedCallbackHandler(
            settings.wechatcom_kf_token,
            settings.wechatcom_kf_aes_key,
            settings.wechatcom_corp_id,
            self._schedule,
            replay_window_seconds=settings.wechatcom_kf_replay_window_seconds,
            refusals=self.refusals,
            metrics=self.metrics,
            readiness=self.not_ready_reason,
        )
        self.edge_limits = edge_limits(settings)
        self.api = KfApi(
            settings.wechatcom_corp_id,
            settings.wechatcom_kf_secret,
            api_base=settings.wechatcom_kf_api_base,
            timeout=settings.wechatcom_kf_request_timeout,
        )
        self.store = ResilientStore(make_backend(settings, state_dir), metrics=self.metrics)
        self.allowlist: CallbackIpAllowlist | None = None
        if settings.wechatcom_kf_callback_ip_allowlist:
            self.allowlist = CallbackIpAllowlist(
                self.api.get_callback_ips, self.store, extra=settings.wechatcom_kf_allowlist_extra
            )
        self.ledger = BudgetLedger()
        self.recalls = Recalls()
        self.takeover = Takeover(self.store, self.api, metrics=self.metrics)
        self.inflight = InFlight(self.store, self.instance_id, claim_lease_seconds, metrics=self.metrics)
        self.accounts = KeyedWorkers("kf-account", ACCOUNT_WORKERS)
        self.customers = KeyedWorkers("kf-customer", CUSTOMER_WORKERS, max_waiting=MAX_WAITING_CUSTOMER_JOBS)
        desk = settings.desk
        self.deliveries = Deliveries(
            api=self.api,
            texts=desk.texts,
            store=self.store,
            inflight=self.inflight,
            takeover=self.takeover,
            recalls=self.recalls,
            ledger=self.ledger,
            workers=self.customers,
            http_timeout=settings.wechatcom_kf_request_timeout,
            metrics=self.metrics,
        )
        self.desk = FrontDesk(
            desk,
            handoff=HandOff(
                self.api, self.takeover, queue_only=desk.handoff.to_queue_only, metrics=self.metrics
            ),
            store=self.store,
            customers=CustomerDirectory(self.api) if desk.customer_info else None,
        )
        self.turns = TurnAssembler(
            self.customers,
            settings.wechatcom_kf_merge_window_seconds,
            TurnDispatcher(self.deliveries, compose, self._timed(produce), admit=self.desk.admit).dispatch,
            flood=FloodWatch(desk.flood_max_messages, desk.flood_window_seconds),
            on_hold=self.ledger.hold_together,
        )
        self.puller = self._inbound(settings, claim_lease_seconds)
        self._observability()
        self.ticker = self._maintenance(claim_lease_seconds)

    def _inbound(self, settings: KfSettings, claim_lease_seconds: float) -> Puller:
        """The account side: the puller and the router it hands accepted items to."""
        self.router = Router(
            inflight=self.inflight,
            takeover=self.takeover,
            events=EventHandler(
                self.api,
                self.takeover,
                self.recalls,
                Welcome.configured(settings.desk.texts.welcome, settings.desk.welcome_menu),
            ),
            ledger=self.ledger,
            turns=self.turns,
            customers=self.customers,
            make_message=self._make_message,
        )
        history = HistoryPolicy(
            settings.wechatcom_kf_skip_history_on_first_start,
            settings.wechatcom_kf_max_message_age_hours * 3600.0,
        )
        return Puller(
            api=self.api,
            store=self.store,
            router=self.router,
            workers=self.accounts,
            history=history,
            owner=self.instance_id,
            lease_seconds=claim_lease_seconds,
            metrics=self.metrics,
        )

    def _observability(self) -> None:
        """What ``/readyz`` answers from, and what the metrics read at scrape time."""
        # The watch is the one ``observed_token_fetch`` feeds.
        self.token_watch = token_watch(self.api.token_client)
        self.store_probe = StoreProbe(
            self.store.backend,
            f"health:{self.instance_id}",
            STORE_CHECK_SECONDS,
            on_error=self.metrics.store_errors.inc,
        )
        self.readiness = Readiness(self.store_probe, self.token_watch)
        self.metrics.watch_state(
            StateSources(self.refusals.snapshot, self.inflight.count, self.token_watch, self.not_ready_reason)
        )

    def _maintenance(self, claim_lease_seconds: float) -> Ticker:
        ticker = Ticker()
        ticker.add("renew claims", claim_lease_seconds / 3, self.inflight.renew)
        ticker.add("sweep for orphaned messages", claim_lease_seconds / 2, self.puller.sweep)
        ticker.add("prune media", MEDIA_PRUNE_SECONDS, self._prune_media)
        ticker.add("store housekeeping", STORE_MAINTENANCE_SECONDS, self.store.maintain)
        ticker.add("return freed memory", heap.TRIM_SECONDS, heap.release_free_memory)
        ticker.add("state store probe", STORE_CHECK_SECONDS, self.store_probe.check, first_after=0)
        ticker.add("access_token after a failed fetch", TOKEN_RECHECK_SECONDS, self._recheck_token)
        if self.allowlist is not None:
            refresh = self._refresh_allowlist
            ticker.add("WeCom's callback IPs", ALLOWLIST_CHECK_SECONDS, refresh, first_after=0)
        return ticker

    def _refresh_allowlist(self) -> None:
        if self.allowlist is not None and self.allowlist.due():
            self.allowlist.refresh()

    def _recheck_token(self) -> None:
        """After a failed fetch nothing else may need a token for a while (a load balancer that
        believes /readyz sends no callbacks): one light call fetches it, so readiness comes back."""
        if not self.token_watch.failing:
            return
        with contextlib.suppress(KfError):  # logged by the client; the watch has the fetch's outcome
            self.api.get_callback_ips()

    def not_ready_reason(self) -> str | None:
        """Why ``/readyz`` answers 503 now, or None; cached state only."""
        return self.readiness.reason()

    def _timed(self, produce: Callable[[Context], None]) -> Callable[[Context], None]:
        """``produce`` noting when the turn went to the host (its delivery measures the bot's latency)."""

        def timed(context: Context) -> None:
            delivery = context.get(DELIVERY_KEY)
            if isinstance(delivery, Delivery):
                delivery.produced_at = time.monotonic()
            produce(context)

        return timed

    def _schedule(self, open_kfid: str, token: str) -> None:
        self.puller.schedule(open_kfid, token)

    def _make_message(self, item: CustomerMessage) -> WechatComKfMessage:
        return WechatComKfMessage(item, self.api, self.media_dir)

    def _prune_media(self) -> int:
        return prune_media(self.media_dir, MEDIA_MAX_AGE_SECONDS)

    def start(self) -> None:
        """Pull every known account once (unfinished work and unpulled messages of the last run) and
        start the maintenance thread."""
        if self.metrics_server is not None:
            self.metrics_server.start()
        known = self.puller.pull_known_accounts()
        if known:
            logger.info("pulling %d known account(s) once at start", known)
        self.ticker.start()
        self.readiness.started.set()

    def wait_idle(self, timeout: float) -> bool:
        """Nothing pulled, queued, waiting to retry or in flight (tests and benchmarks)."""
        return (
            self.accounts.wait_idle(timeout)
            and self.customers.wait_idle(timeout)
            and self.inflight.wait_idle(timeout)
        )

    def stop(self, timeout: float, stop_host: Callable[[], None]) -> None:
        """Stop pulling, drain what is ready, let the host finish its contexts, close the store."""
        self.readiness.stopping.set()
        self.puller.stop()
        if not self.accounts.shutdown(timeout):
            logger.warning("pulls did not finish in time; their items are handled after the next start")
        if not self.customers.shutdown(timeout):
            logger.warning("customer turns did not finish in time; they are handled after the next start")
        stop_host()
        self.ticker.stop()
        self.store.close()
        self.api.close()
        if self.metrics_server is not None:
            self.metrics_server.stop()
