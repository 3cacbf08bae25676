"""Trace one customer text with a multi-part reply through the channel and print its path.

    python scripts/trace_message.py [--parts 3] [--json]

Starts the WeCom emulator and the ``wechatcom_kf`` channel in this process (loopback, real HTTP, real
callback encryption), installs a profiler on every thread (``threading.setprofile``), sends one text
whose answer needs several ``kf/send_msg`` parts, and prints:

- the threads the message passes through, in the order they first touch it (a thread "touches" the
  message when a function of ``channel/`` is called with the callback Token or the inbound msgid
  somewhere in its arguments); hand-offs = threads - 1, counted up to the reply's last ``send_msg``;
- the channel class's entry points: methods of the ``wechatcom_kf`` channel class called from another
  file while handling the message (who calls in, from which thread).

Nothing is mocked: the bot is a plain ``Bot`` whose answer is long enough to be split.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

import config  # noqa: E402
from bridge.bridge import Bridge  # noqa: E402
from bridge.context import Context  # noqa: E402
from bridge.reply import Reply, ReplyType  # noqa: E402
from models.bot import Bot  # noqa: E402
from sandbox.emulator import WeComEmulator  # noqa: E402

CHANNEL_DIR = str(REPO_ROOT / "channel")
CHANNEL_FILE = str(REPO_ROOT / "channel" / "wechatcom_kf" / "wechatcom_kf_channel.py")
API_DIR = str(REPO_ROOT / "channel" / "wechatcom_kf" / "api")
MAX_DEPTH, MAX_ITEMS = 3, 64
PNG_1X1 = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
    "0000000d49444154789c6360f8cfc0000003010100c9fe92ef0000000049454e44ae426082"
)


class LongAnswerBot(Bot):
    """Answers with ``parts`` paragraphs of ~1.5 KB each: one ``kf/send_msg`` per paragraph."""

    def __init__(self, parts: int) -> None:
        self.parts = parts

    def reply(self, query: str, context: Context | None = None) -> Reply:
        paragraph = "这是一段较长的回答，用来检验分段发送。" * 28
        return Reply(ReplyType.TEXT, "\n\n".join(f"{n + 1}. {paragraph}" for n in range(self.parts)))


@dataclasses.dataclass
class Touch:
    seq: int
    thread: str
    function: str
    caller_file: str
    file: str


def _values(value: Any) -> Iterator[Any]:
    """The values directly inside ``value`` (containers, dataclasses, plain objects)."""
    if isinstance(value, dict):
        yield from itertools.islice(itertools.chain(value.keys(), value.values()), MAX_ITEMS)
    elif isinstance(value, list | tuple | set | frozenset):
        yield from itertools.islice(value, MAX_ITEMS)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value)[:MAX_ITEMS]:
            yield getattr(value, f.name, None)
    elif hasattr(value, "__dict__") and type(value).__module__.split(".")[0] in ("channel", "bridge"):
        yield from itertools.islice(vars(value).values(), MAX_ITEMS)


def contains_marker(value: Any, markers: tuple[str, ...], depth: int = 0) -> bool:
    if isinstance(value, str):
        return any(m in value for m in markers)
    if depth >= MAX_DEPTH or isinstance(value, bytes | int | float | bool) or value is None:
        return False
    try:
        return any(contains_marker(v, markers, depth + 1) for v in _values(value))
    except Exception:  # an object that refuses inspection is not the message
        return False


class Tracer:
    """Records calls of functions under ``channel/`` whose arguments carry a marker."""

    def __init__(self) -> None:
        self.markers: tuple[str, ...] = ()
        self.touches: list[Touch] = []
        self.api_sends: list[int] = []  # seq of each KfApi.send_msg call
        self.entries: dict[str, set[str]] = {}  # channel-class method -> kinds of thread calling it
        self._seq = itertools.count()
        self._lock = threading.Lock()
        self.active = False

    def profile(self, frame: FrameType, event: str, arg: Any) -> None:
        if event != "call" or not self.active or not self.markers:
            return
        code = frame.f_code
        path = code.co_filename
        if not path.startswith(CHANNEL_DIR):
            return
        if code.co_name == "send_msg" and path.startswith(API_DIR):
            with self._lock:
                self.api_sends.append(next(self._seq))
        caller = frame.f_back.f_code.co_filename if frame.f_back else ""
        thread = threading.current_thread().name
        if path == CHANNEL_FILE and caller.startswith(CHANNEL_DIR) and caller != CHANNEL_FILE:
            with self._lock:
                self.entries.setdefault(code.co_qualname, set()).add(_thread_kind(thread))
        names = [n for n in code.co_varnames[: code.co_argcount] if n not in ("self", "cls")]
        if not any(contains_marker(frame.f_locals.get(n), self.markers) for n in names):
            return
        with self._lock:
            self.touches.append(Touch(next(self._seq), thread, code.co_qualname, caller, path))


def run(parts: int, attachment: bool = False) -> dict[str, Any]:
    tracer = Tracer()
    emu = WeComEmulator().start()
    with tempfile.TemporaryDirectory() as tmp:
        overrides = {
            **emu.channel_config(),
            "wechatcom_kf_host": "127.0.0.1",
            "wechatcom_kf_port": 0,
            "wechatcom_kf_cursor_dir": str(Path(tmp) / "state"),
            "wechatcom_kf_skip_history_on_first_start": False,
            "bot_type": "echo",
        }
        config_file = Path(tmp) / "config.json"
        config_file.write_text("{}", encoding="utf-8")
        config.load_config(str(config_file), overrides=overrides, environ={})
        Bridge().reset()
        Bridge().set_bot(LongAnswerBot(parts))
        from channel.wechatcom_kf.wechatcom_kf_channel import WechatComKfChannel

        # Threads started from here on run the profiler (it stays idle until the message is sent).
        threading.setprofile(tracer.profile)
        channel = WechatComKfChannel()
        channel.channel_type = "wechatcom_kf"
        server = threading.Thread(target=channel.startup, name="callback-loop", daemon=True)
        server.start()
        if not channel.wait_ready(10):
            raise SystemExit("the callback server did not start")
        emu.callback_url = f"http://127.0.0.1:{channel.port}/wxkf/"
        try:
            return _trace_one(emu, channel, tracer, parts, attachment)
        finally:
            threading.setprofile(None)
            channel.stop()
            server.join(15)
            emu.stop()
            Bridge().reset()


def _trace_one(
    emu: WeComEmulator, channel: Any, tracer: Tracer, parts: int, attachment: bool
) -> dict[str, Any]:
    user = emu.add_customer("追踪")
    kf = emu.default_kfid
    markers: list[str] = []
    if attachment:  # a screenshot alone: it waits the merge window for a question, then is answered
        markers.append(emu.customer_media(kf, user, "image", PNG_1X1, filename="shot.png", notify=False))
    else:
        markers.append(emu.customer_text(kf, user, "请详细介绍一下退货流程", notify=False))
    params, body = emu.encrypt_callback(kf)
    markers.append(_callback_token(emu, params, body))
    tracer.markers = tuple(markers)
    tracer.active = True
    sys.setprofile(tracer.profile)
    status, _ = emu.post_callback_raw(body, params)
    emu.wait_for_sends(parts, timeout=30, user=user)
    channel.wait_idle(10)
    time.sleep(0.2)
    tracer.active = False
    sys.setprofile(None)
    return _summary(tracer, status, len(emu.sends_to(user)))


def _callback_token(emu: WeComEmulator, params: dict[str, str], body: bytes) -> str:
    """The sync Token inside an encrypted callback (decrypted here as the channel will)."""
    from wechatpy.enterprise.crypto import WeChatCrypto

    crypto = WeChatCrypto(emu.callback_token, emu.aes_key, emu.corp_id)
    encrypt = body.decode().split("<Encrypt><![CDATA[")[1].split("]]>")[0]
    plain = crypto.decrypt_message(
        {"Encrypt": encrypt}, params["msg_signature"], params["timestamp"], params["nonce"]
    )
    return plain.split("<Token><![CDATA[")[1].split("]]>")[0]


def _summary(tracer: Tracer, status: int, sent: int) -> dict[str, Any]:
    last_send = tracer.api_sends[-1] if tracer.api_sends else None
    path = [t for t in tracer.touches if last_send is None or t.seq <= last_send]
    threads: list[str] = []
    for touch in path:
        if touch.thread not in threads:
            threads.append(touch.thread)
    entries = tracer.entries
    modules = {Path(t.file).relative_to(REPO_ROOT).as_posix() for t in path}
    return {
        "callback_status": status,
        "parts_sent": sent,
        "threads_in_order": [_thread_kind(t) for t in threads],
        "hand_offs": max(0, len(threads) - 1),
        "channel_entry_points": {name: sorted(kinds) for name, kinds in sorted(entries.items())},
        "channel_entry_point_count": len(entries),
        "modules_touched": len(modules),
    }


def _thread_kind(name: str) -> str:
    """A thread's name without its pool number (``kf-pull_0`` -> ``kf-pull``)."""
    return name.rstrip("0123456789").rstrip("_-") or name


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", type=int, default=3, help="reply parts (2..5)")
    parser.add_argument("--attachment", action="store_true", help="an image alone instead of a text")
    parser.add_argument("--json", action="store_true", help="print one JSON object only")
    args = parser.parse_args(argv)
    result = run(max(2, min(5, args.parts)), args.attachment)
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
        return 0
    print(f"callback answered {result['callback_status']}, {result['parts_sent']} part(s) sent")
    print(f"threads, in the order they touch the message: {' -> '.join(result['threads_in_order'])}")
    print(f"thread hand-offs: {result['hand_offs']}")
    print(f"channel class entry points: {result['channel_entry_point_count']}")
    for name, kinds in result["channel_entry_points"].items():
        print(f"  {name}  (from {', '.join(kinds)})")
    print(f"channel modules whose functions receive the message: {result['modules_touched']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
