"""The WeCom Customer Service (微信客服) channel: CoW's face of ``KfService``.

Lifecycle (``startup`` serves the callback endpoint at ``/wxkf/``, ``stop``), and the two points where
the host calls in with a customer's turn: ``send(reply, context)`` hands each reply to the turn's
delivery, and ``_handle(context)`` (the host's pipeline for one context) closes the delivery when the
host is done, so every accepted message is finished exactly once. Everything else lives in
``service.py`` and the modules it wires.
"""

from __future__ import annotations

import errno
import getpass
import logging
import os
import socket
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
from .outbound.audio import amr_ffmpeg
from .outbound.delivery import Delivery
from .service import KfService
from .settings import KfSettings, StartupError, invalid_setting, load_kf_settings
from .store import CLAIM_LEASE_SECONDS, StoreError
from .store.adopt import adopt_cursor_file
from .store.main_file import FILE_NAME

logger = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parents[2]  # the directory holding the ``channel`` package
STOP_TIMEOUT_SECONDS = 10.0


def resolve_state_dir(cursor_dir: str) -> Path:
    """``wechatcom_kf_cursor_dir``; a relative path is taken from the project root, not the CWD."""
    path = Path(cursor_dir or "tmp").expanduser()
    return path if path.is_absolute() else PROJECT_ROOT / path


def load_checked_settings(defaults: dict[str, Any] | None = None) -> KfSettings:
    """Read the channel's settings; ValueError naming every missing required key, a value that
    cannot work (StartupError) or a port clash."""
    settings = load_kf_settings(conf(), defaults=defaults)
    missing = settings.missing_required()
    if missing:
        raise ValueError("missing required settings: " + ", ".join(missing))
    problem = invalid_setting(settings)
    if problem:
        raise StartupError(problem)
    console = web_console_port(conf())
    if console is not None and console == settings.wechatcom_kf_port:
        raise ValueError(
            f"wechatcom_kf_port {console} is the port of CoW's web console (web_port, web_console on): "
            "set wechatcom_kf_port to another port, or web_port / web_console: false"
        )
    return settings


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers)
        return str(os.getuid()) if hasattr(os, "getuid") else "?"


def both(zh: str, en: str) -> str:
    """One line for the operator: Chinese first (the users are Chinese developers), English beside."""
    return f"{zh} / {en}"


def check_state_dir(path: Path) -> None:
    """StartupError unless ``path`` is a directory we can create and write files in."""
    where = f"wechatcom_kf_cursor_dir {path}"
    other = (
        "或把 wechatcom_kf_cursor_dir 设为可写的目录",
        "or set wechatcom_kf_cursor_dir to a writable directory",
    )
    if path.exists() and not path.is_dir():
        raise StartupError(
            both(
                f"状态目录 {where} 是一个文件，不是目录：请移走该文件，{other[0]}（不存在时自动创建）",
                f"{where} is a file, not a directory: move the file away, {other[1]} (created when missing)",
            )
        )
    user = _user()
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise StartupError(
            both(
                f"状态目录 {where} 不存在且无法创建（{exc.strerror}）："
                f"请为运行本程序的用户 {user} 创建它，{other[0]}",
                f"{where} does not exist and cannot be created ({exc.strerror}): create it for the user "
                f"running the bot ({user}), {other[1]}",
            )
        ) from None
    probe = path / f".{FILE_NAME}.{os.getpid()}-probe.tmp"  # a crash leaves a temp file the store removes
    try:
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        probe.unlink()
    except OSError as exc:
        raise StartupError(
            both(
                f"状态目录 {where} 不可写（{exc.strerror}）：请让运行本程序的用户 {user} 可写"
                f"（如 chown -R {user} {path}），{other[0]}",
                f"{where} is not writable ({exc.strerror}): make it writable for the user running the bot "
                f"({user}), e.g. chown -R {user} {path}, {other[1]}",
            )
        ) from None


def bind_problem(host: str, port: int, exc: OSError) -> str:
    """One line for a failed bind of the callback server, naming the setting to change."""
    reason = exc.strerror or str(exc)
    key = f"wechatcom_kf_port {port}"
    if exc.errno == errno.EADDRINUSE:
        return both(
            f"回调端口 {key} 已被其他进程占用（本程序是否已在运行？）："
            "请停止该进程，或把 wechatcom_kf_port 设为空闲端口",
            f"{key} is in use by another process (is the bot already running? ss -ltnp 'sport = :{port}' "
            "shows it): stop that process or set wechatcom_kf_port to a free port",
        )
    if exc.errno == errno.EACCES:
        return both(
            f"回调端口 {key} 无权监听（{reason}；1024 以下端口需要 root）："
            "请改用 1024 以上端口，由反向代理转发",
            f"{key} may not be bound by this user ({reason}; ports below 1024 need root): set "
            "wechatcom_kf_port to a port above 1024 behind a reverse proxy",
        )
    return both(
        f"无法在 wechatcom_kf_host {host} 上监听（{reason}）："
        "请把 wechatcom_kf_host 设为 0.0.0.0（所有网卡）或本机地址",
        f"wechatcom_kf_host {host} cannot be listened on ({reason}): set wechatcom_kf_host to 0.0.0.0 "
        "(all interfaces) or an address of this machine",
    )


def check_bind(host: str, port: int) -> None:
    """StartupError unless the callback server can bind ``host``:``port`` as asyncio will: every
    address the host resolves to, SO_REUSEADDR, IPv6 only on IPv6, families without support skipped."""
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        for family, kind, proto, _name, address in dict.fromkeys(infos):
            try:
                sock = socket.socket(family, kind, proto)
            except OSError:
                continue
            with sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == getattr(socket, "AF_INET6", None):
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                sock.bind(address)
    except OSError as exc:  # socket.gaierror included: a host name that does not resolve
        raise StartupError(bind_problem(host, port, exc)) from None


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
        self._host_workers: HostWorkers | None = None
        if settings.wechatcom_kf_own_dispatch and not runs_in_this_runtime(conf()):
            self._host_workers = HostWorkers(self._handle, concurrency(lambda k, d: safe_get(conf(), k, d)))
        self._kf_server: CallbackServer | None = None
        self._kf_server_created = threading.Event()
        self._kf_server_lock = threading.Lock()
        self._kf_stopped = threading.Event()
        # Raised by check_startup(), not here: an upstream CoW would print a traceback for it.
        self._startup_error: StartupError | None = None
        try:
            self.kf = self._open_service(settings)
        except StartupError as exc:
            self._startup_error = exc

    def _open_service(self, settings: KfSettings) -> KfService:
        check_state_dir(self.state_dir)
        try:
            if settings.wechatcom_kf_adopt_cursor_file and not settings.wechatcom_kf_redis_url:
                adopt_cursor_file(Path(settings.wechatcom_kf_adopt_cursor_file).expanduser(), self.state_dir)
            return KfService(
                settings,
                compose=self._compose_context,
                produce=self._produce_turn,
                state_dir=self.state_dir,
                claim_lease_seconds=self.claim_lease_seconds,
            )
        except StoreError as exc:  # e.g. a corrupt state file: its message says what to do
            raise StartupError(str(exc)) from None

    # --- lifecycle --------------------------------------------------------------------------------

    def check_startup(self) -> None:
        """Raise StartupError for what would stop ``startup()``: an unusable state directory or state
        file, a callback port that cannot be bound. This runtime calls it before it starts a thread."""
        if self._startup_error is not None:
            raise self._startup_error
        check_bind(self.kf_settings.wechatcom_kf_host, self.kf_settings.wechatcom_kf_port)
        amr_ffmpeg()  # warns once when voice replies cannot be encoded; not a reason to refuse

    def startup(self) -> None:
        """Serve the callback endpoint until ``stop()``; blocks. A StartupError is raised in this
        runtime (one line, exit 2) and logged as one ERROR line in an upstream CoW."""
        try:
            self.check_startup()
            self._serve()
        except StartupError as exc:
            self._kf_server_created.set()  # wait_ready() answers False at once
            if runs_in_this_runtime(conf()):
                raise
            logger.error("wechatcom_kf channel cannot start: %s", exc)

    def _serve(self) -> None:
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
        try:
            self._kf_server.serve()
        except OSError as exc:  # the port was taken after check_startup()
            raise StartupError(
                bind_problem(settings.wechatcom_kf_host, settings.wechatcom_kf_port, exc)
            ) from None

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
        if self._startup_error is None:
            self._drain()
        with self._kf_server_lock:
            if self._kf_server is not None:
                self._kf_server.stop()
        host_stop = getattr(super(), "stop", None)  # older CoW hosts have no ChatChannel.stop

        def stop_host() -> None:
            if self._host_workers is not None and not self._host_workers.shutdown(STOP_TIMEOUT_SECONDS):
                logger.warning("turns still with the bot at stop are answered after the next start")
            if callable(host_stop):
                host_stop()

        if self._startup_error is not None:  # there is no service to stop
            stop_host()
            return
        self.kf.stop(STOP_TIMEOUT_SECONDS, stop_host)
        logger.info("wechatcom_kf channel stopped")

    def _drain(self) -> None:
        """Tell load balancers first (/readyz 503), and keep answering WeCom while they notice."""
        self.kf.readiness.stopping.set()
        seconds = self.kf_settings.wechatcom_kf_drain_seconds
        if seconds > 0 and self._kf_server is not None:
            logger.info("stopping: /readyz answers 503 for %.0f s before the callback port closes", seconds)
            time.sleep(seconds)

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
