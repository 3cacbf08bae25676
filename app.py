"""Entry point: ``python app.py [--config PATH] [--sandbox]``.

Loads the configuration, configures logging (the only place that does), loads plugins, starts every
channel named by ``channel_type`` in its own thread and stops them cleanly on SIGINT/SIGTERM.
Exit codes: 0 after a clean stop, 1 when a channel crashed, 2 for a configuration problem (among
them bot settings that could only fake or fail every answer: no model key, an unknown bot_type; and
a channel that cannot start here: its ``check_startup()`` or ``startup()`` raised ValueError, e.g.
a port in use). Each exit 2 is one line on stderr without a traceback: restarting cannot help.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

import config
from channel.channel import Channel

logger = logging.getLogger("app")

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
EXIT_OK, EXIT_CRASHED, EXIT_CONFIG = 0, 1, 2


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="chatgpt-on-wechat compatible runtime")
    parser.add_argument("--config", help="path of config.json (default: config.json next to app.py)")
    parser.add_argument("--sandbox", action="store_true", help="run against the local WeCom emulator")
    parser.add_argument("--doctor", action="store_true", help="check the deployment: one line per check")
    return parser.parse_args(argv)


def configure_logging(debug: bool) -> None:
    root = logging.getLogger()
    if not any(getattr(h, "_cow_app", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        handler._cow_app = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(logging.DEBUG if debug else logging.INFO)


def attach_log_file(values: Any) -> None:
    """Also log to ``log_file`` (rotated) when set; ValueError naming the setting when it cannot."""
    from pathlib import Path

    from common.log_file import open_log_file

    name = str(values.get("log_file", "") or "").strip()
    root = logging.getLogger()
    if not name or any(getattr(h, "_cow_app_file", False) for h in root.handlers):
        return
    path = Path(name).expanduser()
    path = path if path.is_absolute() else Path(config.get_root()) / path
    handler = open_log_file(
        path,
        max_mb=int(values.get("log_file_max_mb", 20)),
        backups=int(values.get("log_file_backups", 5)),
    )
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    handler._cow_app_file = True  # type: ignore[attr-defined]
    root.addHandler(handler)


def channel_types(value: Any) -> list[str]:
    """``channel_type`` as a list: a string, a comma-separated string or a list."""
    items = value if isinstance(value, list | tuple) else str(value or "").split(",")
    return [str(item).strip() for item in items if str(item).strip()]


def fail(message: str) -> int:
    print(message, file=sys.stderr, flush=True)
    return EXIT_CONFIG


def check_bot(*, sandbox: bool) -> str | None:
    """Refuse to answer customers with a fake bot: the problem with the bot settings, or None.

    Only this runtime checks (the channel also runs inside other hosts); see ``check_bot_settings``.
    """
    from models.bot_factory import ECHO, bot_kind, check_bot_settings, sandbox_note

    get = config.conf().get
    problem = check_bot_settings(get, sandbox=sandbox)
    note = sandbox_note(get) if sandbox and problem is None else None
    if note:
        logger.warning("%s", note)
    if problem is None and not sandbox and bot_kind(str(get("bot_type", "") or "")) == ECHO:
        logger.warning(
            'bot_type is "echo": customers get their own words back ("你说：…"), not answers; '
            "set bot_type and open_ai_api_key for a real model"
        )
    return problem


def runtime_bot(sandbox: bool) -> Callable[[], tuple[str, str | None]]:
    """For the doctor: which bot this runtime would run, and the problem that stops it, if any."""

    def verdict() -> tuple[str, str | None]:
        from models.bot_factory import bot_kind, check_bot_settings, effective_bot_type

        get = config.conf().get
        kind = bot_kind(effective_bot_type(get)) or ""
        return kind, check_bot_settings(get, sandbox=sandbox)

    return verdict


class App:
    def __init__(self) -> None:
        self.channels: list[Channel] = []
        self.threads: list[threading.Thread] = []
        self.stop_requested = threading.Event()
        self.crashed = threading.Event()
        self.cannot_start: str | None = None  # why a channel's startup() refused to start
        self.sandbox: Any = None

    def create_channels(self, names: list[str]) -> None:
        from channel.channel_factory import create_channel

        for name in names:
            self.channels.append(create_channel(name))

    def check_channels(self) -> None:
        """Before any thread starts: ValueError from a channel that cannot start (a port in use, an
        unusable state directory), so that is one line and exit 2 rather than a crashed thread."""
        for channel in self.channels:
            check = getattr(channel, "check_startup", None)
            if callable(check):
                check()

    def _serve(self, channel: Channel) -> None:
        try:
            channel.startup()
        except ValueError as exc:  # the channel cannot start as configured (e.g. its port was taken)
            logger.error("channel %s cannot start", channel.channel_type)
            self.cannot_start = str(exc)
        except Exception:
            logger.exception("channel %s crashed", channel.channel_type)
            self.crashed.set()
        finally:
            # A channel that stops serving ends the app: nobody would answer on it any more.
            self.stop_requested.set()

    def start(self) -> None:
        for channel in self.channels:
            thread = threading.Thread(
                target=self._serve, args=(channel,), name=f"channel-{channel.channel_type}"
            )
            thread.daemon = True
            self.threads.append(thread)
            thread.start()
            logger.info("channel %s started", channel.channel_type)

    def shutdown(self, timeout: float) -> None:
        for channel in self.channels:
            try:
                channel.stop()
            except Exception:
                logger.exception("stopping channel %s failed", channel.channel_type)
        for thread in self.threads:
            thread.join(timeout)
            if thread.is_alive():
                logger.warning("%s did not stop within %.0f s", thread.name, timeout)
        if self.sandbox is not None:
            try:
                self.sandbox.stop()
            except Exception:
                logger.exception("stopping the sandbox failed")
        logger.info("stopped")


def _install_signal_handlers(app: App) -> None:
    def on_signal(signum: int, _frame: Any) -> None:
        logger.info("received %s, stopping", signal.Signals(signum).name)
        app.stop_requested.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)


def run(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    configure_logging(debug=False)  # early, so warnings about the configuration are seen
    try:
        cfg = config.load_config(args.config)
    except (ValueError, OSError) as exc:
        return fail(f"configuration error: {exc}")
    configure_logging(debug=bool(cfg.get("debug")))
    try:
        attach_log_file(cfg)
    except ValueError as exc:
        return fail(f"configuration error: {exc}")
    app = App()
    _install_signal_handlers(app)
    if args.sandbox:
        from sandbox.launcher import start_sandbox

        app.sandbox = start_sandbox(config.conf())
        print(f"sandbox: {app.sandbox.url}", flush=True)
    from models.providers import apply_endpoint

    apply_endpoint(config.conf())  # the model preset's base URL, model and key, seen by every reader
    config.log_config()  # after the sandbox's overrides: the values in effect, secrets masked
    if args.doctor:
        from channel.wechatcom_kf.doctor import run_doctor

        try:
            return run_doctor(config.conf(), sandbox=args.sandbox, runtime_bot=runtime_bot(args.sandbox))
        finally:
            app.shutdown(timeout=1.0)  # stops the sandbox, if one was started
    problem = check_bot(sandbox=args.sandbox)
    if problem:
        app.shutdown(timeout=1.0)
        return fail(f"configuration error: {problem}")
    from plugins import PluginManager

    PluginManager().load_plugins()
    try:
        app.create_channels(channel_types(config.conf().get("channel_type")))
    except ValueError as exc:
        app.shutdown(timeout=1.0)
        return fail(f"configuration error: {exc}")
    except RuntimeError as exc:  # a channel's one-line "cannot start now" (e.g. Redis not up yet)
        code = getattr(exc, "exit_code", None)
        if not isinstance(code, int):
            raise
        app.shutdown(timeout=1.0)
        print(f"cannot start: {exc}", file=sys.stderr, flush=True)
        return code
    try:
        app.check_channels()
    except ValueError as exc:
        app.shutdown(timeout=1.0)
        return fail(f"cannot start: {exc}")
    if not app.channels:
        app.shutdown(timeout=1.0)
        return fail("configuration error: channel_type names no channel")
    app.start()
    app.stop_requested.wait()
    app.shutdown(timeout=float(config.conf().get("shutdown_timeout_seconds", 10.0)) + 5.0)
    if app.cannot_start is not None:
        return fail(f"cannot start: {app.cannot_start}")
    return EXIT_CRASHED if app.crashed.is_set() else EXIT_OK


def main() -> None:
    sys.exit(run())


if __name__ == "__main__":
    main()
