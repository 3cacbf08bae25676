"""The WeCom Customer Service (微信客服) channel: CoW's face of ``KfService``.

Lifecycle (``startup`` serves the callback endpoint at ``/wxkf/``, ``stop``), and the two points where
the host calls in with a customer's turn: ``send(reply, context)`` hands each reply to the turn's
delivery, and ``_handle(context)`` (the host's pipeline for one context) closes the delivery when the
host is done, so every accepted message is finished exactly once. Everything else lives in
``service.py`` and the modules it wires.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any, ClassVar

from bridge.context import Context
from bridge.reply import Reply, ReplyType
from channel.chat_channel import ChatChannel
from config import conf

from .edge.http_server import CallbackServer
from .host import join_host_log, runs_in_this_runtime, safe_get, web_console_port
from .host_workers import HostWorkers, concurrency
from .inbound.dispatch import DELIVERY_KEY
from .outbound.delivery import Delivery
from .service import KfService
from .settings import KfSettings, load_kf_settings
from .store import CLAIM_LEASE_SECONDS
from .store.adopt import adopt_cursor_file

logger = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parents[2]  # the directory holding the ``channel`` package
STOP_TIMEOUT_SECONDS = 10.0


def resolve_state_dir(cursor_dir: str) -> Path:
    """``wechatcom_kf_cursor_dir``; a relative path is taken from the project root, not the CWD."""
    path = Path(cursor_dir or "tmp").expanduser()
    return path if path.is_absolute() else PROJECT_ROOT / path


def load_checked_settings(defaults: dict[str, Any] | None = None) -> KfSettings:
    """Read the channel's settings; ValueError naming every missing required key or a port clash."""
    settings = load_kf_settings(conf(), defaults=defaults)
    missing = settings.missing_required()
    if missing:
        raise ValueError("missing required settings: " + ", ".join(missing))
    console = web_console_port(conf())
    if console is not None and console == settings.wechatcom_kf_port:
        raise ValueError(
            f"wechatcom_kf_port {console} is the port of CoW's web console (web_port, web_console on): "
            "set wechatcom_kf_port to another port, or web_port / web_console: false"
        )
    return settings


class WechatComKfChannel(ChatChannel):
    """``channel_type: "wechatcom_kf"``."""

    # Everything else is planned into KF messages (text, image, voice, video, file) or a text notice.
    NOT_SUPPORT_REPLYTYPE = [ReplyType.CARD, ReplyType.INVITE_ROOM, ReplyType.MINIAPP]  # noqa: RUF012
    # How long a claim on an accepted message outlives this instance if it dies (tests shorten it).
    claim_lease_seconds: float = CLAIM_LEASE_SECONDS
    # Defaults that differ under another name (upstream's ``wechat_kf`` listens on 9888).
    setting_defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self) -> None:
        super().__init__()
        join_host_log(conf())
        settings = load_checked_settings(self.setting_defaults)
        self.kf_settings = settings
        self.state_dir = resolve_state_dir(settings.wechatcom_kf_cursor_dir)
        if settings.wechatcom_kf_adopt_cursor_file and not settings.wechatcom_kf_redis_url:
            adopt_cursor_file(Path(settings.wechatcom_kf_adopt_cursor_file).expanduser(), self.state_dir)
        self._host_workers: HostWorkers | None = None
        if settings.wechatcom_kf_own_dispatch and not runs_in_this_runtime(conf()):
            self._host_workers = HostWorkers(self._handle, concurrency(lambda k, d: safe_get(conf(), k, d)))
        self.kf = KfService(
            settings,
            compose=self._compose_context,
            produce=self._produce_turn,
            state_dir=self.state_dir,
            claim_lease_seconds=self.claim_lease_seconds,
        )
        self._kf_server: CallbackServer | None = None
        self._kf_server_created = threading.Event()
        self._kf_server_lock = threading.Lock()
        self._kf_stopped = threading.Event()

    # --- lifecycle --------------------------------------------------------------------------------

    def startup(self) -> None:
        """Serve the callback endpoint until ``stop()``; blocks."""
        settings = self.kf_settings
        with self._kf_server_lock:
            if self._kf_stopped.is_set():
                return
            allowlist = self.kf.allowlist
            self._kf_server = CallbackServer(
                self.kf.callback,
                settings.wechatcom_kf_host,
                settings.wechatcom_kf_port,
                settings.wechatcom_kf_http_backlog,
                limits=self.kf.edge_limits,
                allow=allowlist.allows if allowlist is not None else None,
                refusals=self.kf.refusals,
            )
            self._kf_server_created.set()
        logger.info("wechatcom_kf channel starting (state dir %s)", self.state_dir)
        self.kf.start()
        self._kf_server.serve()

    def wait_ready(self, timeout: float) -> bool:
        """Wait until the callback server is bound (tests, sandbox); False on timeout."""
        deadline = time.monotonic() + timeout
        if not self._kf_server_created.wait(timeout) or self._kf_server is None:
            return False
        return self._kf_server.ready.wait(max(0.0, deadline - time.monotonic()))

    @property
    def port(self) -> int:
        """The callback server's bound port (after ``wait_ready``)."""
        if self._kf_server is None:
            raise RuntimeError("the callback server is not started")
        return self._kf_server.port

    def stop(self) -> None:
        """Stop serving, drain pulls and turns within a timeout, let the host finish, close the store."""
        if self._kf_stopped.is_set():
            return
        self._kf_stopped.set()
        with self._kf_server_lock:
            if self._kf_server is not None:
                self._kf_server.stop()
        host_stop = getattr(super(), "stop", None)  # older CoW hosts have no ChatChannel.stop

        def stop_host() -> None:
            if self._host_workers is not None and not self._host_workers.shutdown(STOP_TIMEOUT_SECONDS):
                logger.warning("turns still with the bot at stop are answered after the next start")
            if callable(host_stop):
                host_stop()

        self.kf.stop(STOP_TIMEOUT_SECONDS, stop_host)
        logger.info("wechatcom_kf channel stopped")

    def wait_idle(self, timeout: float) -> bool:
        """Wait until nothing is pulled, queued or in flight (tests and benchmarks)."""
        return self.kf.wait_idle(timeout)

    # --- the host's calls -------------------------------------------------------------------------

    def _produce_turn(self, context: Context) -> None:
        """Hand a turn to the host: its own queue here, the channel's workers in an upstream CoW."""
        if self._host_workers is None:
            self.produce(context)
            return
        delivery = context.get(DELIVERY_KEY)
        key = delivery.key if isinstance(delivery, Delivery) else context.get("session_id")
        if not self._host_workers.produce(context, key):
            logger.info("channel stopping: a turn is answered after the next start")

    def _handle(self, context: Context) -> None:
        try:
            super()._handle(context)
        finally:
            delivery = context.get(DELIVERY_KEY)
            if isinstance(delivery, Delivery):
                try:
                    self.kf.desk.on_close(context, delivery)
                finally:
                    delivery.close()

    def send(self, reply: Reply, context: Context) -> None:
        """Send ``reply`` to the customer of ``context``; never raises (the host would resend)."""
        delivery = context.get(DELIVERY_KEY)
        if not isinstance(delivery, Delivery):
            logger.warning(
                "a %s reply without its customer turn cannot be sent", getattr(reply, "type", None)
            )
            return
        try:
            for_customer = self.kf.desk.on_reply(reply, context, delivery)
            if for_customer is not None:
                delivery.send(for_customer)
        except Exception:
            logger.exception("sending a %s reply failed", getattr(reply, "type", None))
