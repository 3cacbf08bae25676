"""The WeCom Customer Service (微信客服) channel: lifecycle, turn dispatch and ``send``.

callback (``/wxkf/``) → ``Puller`` → ``Router`` → ``TurnAssembler`` → prepare (media, takeover
check) → ``_compose_context`` → ``produce`` → ChatChannel worker → bot → ``send`` → ``ReplySender``.
Every accepted inbound message is finished exactly once: customer messages in ``_handle``'s
``finally`` (after ``send`` returned), the others where they are processed.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bridge.context import Context
from bridge.reply import Reply, ReplyType
from channel.chat_channel import ChatChannel
from config import conf

from .api import KfApi
from .budget import BudgetLedger
from .callback import CallbackHandler
from .errors import KfSessionStateInvalid, register_secret
from .events import EventHandler, Recalls
from .http_server import CallbackServer
from .inbound.turns import Turn
from .outbound.planner import OutboundPart, plan_reply, text_part
from .outbound.sender import ReplySender, SendOutcome
from .puller import Puller
from .router import KeyedExecutor, Router
from .settings import KfSettings, load_kf_settings
from .store import CLAIM_LEASE_SECONDS, JsonFileStore, StateStore
from .takeover import Takeover
from .wechatcom_kf_message import WechatComKfMessage

logger = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parents[2]  # the directory holding the ``channel`` package
MEDIA_DIR_NAME = "wechatcom_kf_media"
PREPARE_WORKERS = 8
EVENT_WORKERS = 4
STOP_TIMEOUT_SECONDS = 10.0
SEND_ROUNDS = 4  # a reply interrupted by a transient error (after the client's own retries) is resent
SEND_RETRY_BASE_SECONDS = 2.0
SEND_RETRY_CAP_SECONDS = 10.0
# A multi-part reply's planned texts, kept until its turn is finished: a turn re-handled after a crash
# resends them instead of asking the bot again (a new answer's parts would mix with the sent ones).
PLAN_KEY_PREFIX = "plan:"
PLAN_TTL_SECONDS = 48 * 3600.0


def resolve_state_dir(cursor_dir: str) -> Path:
    """``wechatcom_kf_cursor_dir``; a relative path is taken from the project root, not the CWD."""
    path = Path(cursor_dir or "tmp").expanduser()
    return path if path.is_absolute() else PROJECT_ROOT / path


def load_checked_settings() -> KfSettings:
    """Read the channel's settings; ValueError naming every missing required key."""
    settings = load_kf_settings(conf().get)
    missing = settings.missing_required()
    if missing:
        raise ValueError("missing required settings: " + ", ".join(missing))
    return settings


class WechatComKfChannel(ChatChannel):
    """``channel_type: "wechatcom_kf"``."""

    # Everything else is planned into KF messages (text, image, voice, video, file) or a text notice.
    NOT_SUPPORT_REPLYTYPE = [ReplyType.CARD, ReplyType.INVITE_ROOM, ReplyType.MINIAPP]  # noqa: RUF012
    # How long a claim on an accepted message outlives this instance if it dies (tests shorten it).
    claim_lease_seconds: float = CLAIM_LEASE_SECONDS

    def __init__(self) -> None:
        super().__init__()
        settings = load_checked_settings()
        for secret in (
            settings.wechatcom_kf_secret,
            settings.wechatcom_kf_token,
            settings.wechatcom_kf_aes_key,
        ):
            register_secret(secret)
        self.kf_settings = settings
        self.state_dir = resolve_state_dir(settings.wechatcom_kf_cursor_dir)
        self.media_dir = self.state_dir / MEDIA_DIR_NAME
        self.instance_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._kf_callback = CallbackHandler(
            settings.wechatcom_kf_token,
            settings.wechatcom_kf_aes_key,
            settings.wechatcom_corp_id,
            self._schedule,
        )
        self.api = KfApi(
            settings.wechatcom_corp_id,
            settings.wechatcom_kf_secret,
            api_base=settings.wechatcom_kf_api_base,
            timeout=settings.wechatcom_kf_request_timeout,
        )
        self.store = self._make_store(settings)
        self.ledger = BudgetLedger()
        self.recalls = Recalls()
        self.takeover = Takeover(self.store, self.api)
        self._kf_sender = ReplySender(self.api)
        self._kf_event_pool = ThreadPoolExecutor(max_workers=EVENT_WORKERS, thread_name_prefix="kf-event")
        self._kf_prepare = KeyedExecutor(PREPARE_WORKERS, "kf-prepare")
        self.router = Router(
            store=self.store,
            events=self._make_event_handler,
            takeover=self.takeover,
            ledger=self.ledger,
            make_message=self._make_message,
            on_turn=self._on_turn,
            merge_window_seconds=settings.wechatcom_kf_merge_window_seconds,
        )
        self.puller = Puller(
            self.api,
            self.store,
            self.router.handle_items,
            settings,
            self.instance_id,
            lease_seconds=self.claim_lease_seconds,
            inflight=self.router.inflight_ids,
        )
        self._kf_server: CallbackServer | None = None
        self._kf_server_created = threading.Event()
        self._kf_server_lock = threading.Lock()
        self._kf_stopped = threading.Event()

    def _make_store(self, settings: KfSettings) -> StateStore:
        """JSON file by default; Redis (shared by several instances) when a Redis URL is configured."""
        redis_url = settings.wechatcom_kf_redis_url
        if redis_url:
            from .store import RedisStore  # redis-py is needed only by deployments that use it

            register_secret(urlsplit(redis_url).password)
            return RedisStore(redis_url, prefix=settings.wechatcom_kf_redis_prefix)
        return JsonFileStore(self.state_dir)

    # --- lifecycle --------------------------------------------------------------------------------

    def startup(self) -> None:
        """Serve the callback endpoint until ``stop()``; blocks."""
        settings = self.kf_settings
        with self._kf_server_lock:
            if self._kf_stopped.is_set():
                return
            self._kf_server = CallbackServer(
                self._kf_callback,
                settings.wechatcom_kf_host,
                settings.wechatcom_kf_port,
                settings.wechatcom_kf_http_backlog,
            )
            self._kf_server_created.set()
        logger.info("wechatcom_kf channel starting (state dir %s)", self.state_dir)
        # Unfinished messages of a previous run (or of a dead instance) are answered without waiting
        # for a callback; the maintenance thread then renews claims and takes over expired ones.
        recovered = self.puller.recover()
        if recovered:
            logger.info("%d unfinished message(s) dispatched at start", recovered)
        self.puller.start_maintenance()
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
        """Stop serving, drain pulls and queued turns within a timeout, flush the store."""
        if self._kf_stopped.is_set():
            return
        self._kf_stopped.set()
        with self._kf_server_lock:
            if self._kf_server is not None:
                self._kf_server.stop()
        if not self.puller.stop(STOP_TIMEOUT_SECONDS):
            logger.warning("pulls did not finish in time; unfinished items are re-pulled after a restart")
        self.router.close()
        self._kf_prepare.shutdown(STOP_TIMEOUT_SECONDS)
        host_stop = getattr(super(), "stop", None)  # older CoW hosts have no ChatChannel.stop
        if callable(host_stop):
            host_stop()
        self._kf_event_pool.shutdown(wait=True, cancel_futures=False)
        self.store.close()
        self.api.close()
        logger.info("wechatcom_kf channel stopped")

    def wait_idle(self, timeout: float) -> bool:
        """Wait until nothing is pulled or in flight (tests and benchmarks)."""
        return self.puller.wait_idle(timeout) and self.router.wait_idle(timeout)

    # --- inbound ----------------------------------------------------------------------------------

    def _schedule(self, open_kfid: str, token: str) -> None:
        self.puller.schedule(open_kfid, token)

    def _make_event_handler(self, finish: Any) -> EventHandler:
        return EventHandler(
            self.api,
            self.takeover,
            self.recalls,
            self.kf_settings.wechatcom_kf_welcome_text,
            self._kf_event_pool,
            finish,
        )

    def _make_message(self, item: dict[str, Any]) -> WechatComKfMessage:
        return WechatComKfMessage(item, self.api, self.media_dir)

    def _on_turn(self, turn: Turn) -> None:
        # Called with the assembler's lock held: only queue here (per-customer order is kept).
        if not self._kf_prepare.submit(turn.key, lambda: self._dispatch_turn(turn)):
            logger.info("channel stopping: turn of %s left pending for the next start", turn.key)

    def _dispatch_turn(self, turn: Turn) -> None:
        open_kfid, user = turn.key
        if self.recalls.any_recalled(turn.msgids):
            logger.info("turn of %s/%s recalled before it was answered", open_kfid, user)
            self.router.finish_turn(turn.key, turn.msgids)
            return
        if not self.takeover.bot_may_answer(open_kfid, user):
            self.router.finish_turn(turn.key, turn.msgids)
            return
        try:
            turn.prepare()
            ctype, content, kwargs = turn.to_context_args()
            context = self._compose_context(ctype, content, msg=turn.last, isgroup=False, **kwargs)
        except Exception:
            logger.exception("preparing the turn of %s/%s failed; not answered", open_kfid, user)
            context = None
        if context is None:
            self.router.finish_turn(turn.key, turn.msgids)
            return
        context["kf_msgids"] = turn.msgids
        self.produce(context)

    def _handle(self, context: Context) -> None:
        msgids = list(context.get("kf_msgids") or [])
        msg = context.get("msg")
        ours = bool(msgids) and isinstance(msg, WechatComKfMessage)
        try:
            saved = self._load_plan(context, str(msgids[-1])) if ours else None
            if saved is None:
                super()._handle(context)
            else:
                self._resume_plan(saved, context)
        finally:
            if ours and isinstance(msg, WechatComKfMessage):
                self.router.finish_turn((msg.open_kfid, msg.external_userid), msgids)
                # After finishing: a crash in between leaves only a stale plan, never a new answer.
                plan_key = context.get("kf_plan_key")
                if plan_key:
                    self._set_plan(str(plan_key), None)

    # --- outbound ---------------------------------------------------------------------------------

    def send(self, reply: Reply, context: Context) -> None:
        """Send ``reply`` to the customer of ``context``; never raises (the host would resend)."""
        try:
            self._send_kf(reply, context)
        except Exception:
            logger.exception("sending a %s reply failed", getattr(reply, "type", None))

    def _send_kf(self, reply: Reply, context: Context) -> None:
        target = self._send_target(context)
        if target is None:
            return
        key, msgids = target
        parts = plan_reply(reply, self.ledger.allowance_for(key, msgids), self.kf_settings)
        if parts:
            self._deliver(context, key, msgids, parts)

    def _send_target(self, context: Context) -> tuple[tuple[str, str], list[str]] | None:
        """The customer and the turn's msgids when the bot may answer now; None to send nothing."""
        msg = context.get("msg")
        if not isinstance(msg, WechatComKfMessage):
            logger.warning("reply without its KF message cannot be sent")
            return None
        open_kfid, user = msg.open_kfid, msg.external_userid
        msgids = [str(m) for m in (context.get("kf_msgids") or [msg.msg_id])]
        if self.recalls.any_recalled(msgids):
            logger.info("reply to %s/%s dropped: the customer recalled the message", open_kfid, user)
            return None
        if not self.takeover.bot_may_answer(open_kfid, user):
            return None
        # Here, not in the callback path: the claim is one API call, once per customer session.
        if not self.takeover.claim_for_bot(open_kfid, user):
            return None
        return (open_kfid, user), msgids

    def _deliver(
        self, context: Context, key: tuple[str, str], msgids: list[str], parts: list[OutboundPart]
    ) -> None:
        # A plugin may send more than once per context: later sends get their own msgid range.
        sends = int(context.get("kf_sends", 0))
        context["kf_sends"] = sends + 1
        base = msgids[-1] if sends == 0 else f"{msgids[-1]}/{sends}"
        # Only the turn's first reply is resumable (a re-handled turn is looked up by msgids[-1]);
        # a single part needs no plan: there is nothing it could be mixed with.
        if sends == 0 and len(parts) > 1 and not context.get("kf_plan_key"):
            self._save_plan(context, base, parts)
        outcome = self._send_parts(key, parts, base)
        if isinstance(outcome.stopped_by, KfSessionStateInvalid):
            self.takeover.mark_human(key[0], key[1], "send refused with 95018")

    # --- reply plans (exactly once across a crash in the middle of a multi-part reply) -------------

    def _save_plan(self, context: Context, base: str, parts: list[OutboundPart]) -> None:
        # Media parts are not saved (their upload is not reproducible from a plan): such a reply is
        # answered anew after a crash, as before.
        if any(part.msgtype != "text" or part.upload is not None for part in parts):
            logger.debug("reply plan with media parts not saved")
            return
        texts = [str(part.body.get("content", "")) for part in parts]
        key = PLAN_KEY_PREFIX + base
        if self._set_plan(key, json.dumps(texts, ensure_ascii=False)):
            context["kf_plan_key"] = key

    def _load_plan(self, context: Context, base: str) -> list[OutboundPart] | None:
        """The saved text parts of the turn ending with ``base``, or None (none, or unreadable)."""
        key = PLAN_KEY_PREFIX + base
        try:
            raw = self.store.get_flag(key)
            if raw is None:
                return None
            texts = json.loads(raw)
        except Exception as exc:
            logger.warning("reading a reply plan failed (%s); the bot answers anew", type(exc).__name__)
            return None
        context["kf_plan_key"] = key  # dropped when the turn is finished, even if unusable
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
            logger.warning("malformed reply plan ignored; the bot answers anew")
            return None
        return [text_part(text) for text in texts]

    def _resume_plan(self, parts: list[OutboundPart], context: Context) -> None:
        """Send the saved parts of an interrupted reply; parts already sent are refused as duplicates."""
        try:
            target = self._send_target(context)
            if target is None:
                return
            key, msgids = target
            logger.info("resuming an interrupted %d-part reply to %s/%s", len(parts), key[0], key[1])
            allowance = self.ledger.allowance_for(key, msgids)
            if allowance > 0:
                self._deliver(context, key, msgids, parts[:allowance])
        except Exception:
            logger.exception("resuming an interrupted reply failed")

    def _set_plan(self, key: str, value: str | None) -> bool:
        try:
            self.store.set_flag(key, value, None if value is None else PLAN_TTL_SECONDS)
        except Exception as exc:  # without a plan a crash may mix answers; sending is still better
            logger.warning("updating a reply plan failed: %s", type(exc).__name__)
            return False
        return True

    def _send_parts(self, key: tuple[str, str], parts: list[Any], base: str) -> SendOutcome:
        """Send, and resend after a transient failure the API client gave up on (bounded rounds).

        Resending is safe: parts that went out carry the same msgids and are refused as duplicates.
        """
        open_kfid, user = key
        counted = 0
        for round_no in range(1, SEND_ROUNDS + 1):
            outcome = self._kf_sender.send(parts, touser=user, open_kfid=open_kfid, msgid_base=base)
            # Duplicates of this turn's earlier rounds were counted already; older ones were not.
            self.ledger.consume(key, max(0, outcome.delivered - counted))
            counted = max(counted, outcome.delivered)
            error = outcome.stopped_by
            if error is None or not error.retryable or round_no == SEND_ROUNDS:
                return outcome
            delay = min(SEND_RETRY_CAP_SECONDS, SEND_RETRY_BASE_SECONDS * 2 ** (round_no - 1))
            logger.warning(
                "reply to %s/%s interrupted by %s; resending in %.1f s",
                open_kfid,
                user,
                type(error).__name__,
                delay,
            )
            if self._kf_stopped.wait(delay):
                break
        return outcome
