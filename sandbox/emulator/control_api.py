"""JSON control API and static files for the browser chat page (see README.md)."""

from __future__ import annotations

import json
import logging
import mimetypes
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from sandbox.emulator import control_actions
from sandbox.emulator.api_router import HttpAnswer
from sandbox.emulator.audio import AudioError
from sandbox.emulator.redact import redact_value

if TYPE_CHECKING:
    from sandbox.emulator.emulator import WeComEmulator

logger = logging.getLogger(__name__)
WEB_DIR = Path(__file__).resolve().parents[1] / "web"
PAGE_PATH = "/sandbox/"
PLACEHOLDER = (
    "<!doctype html><meta charset='utf-8'><title>WeCom KF sandbox</title>"
    "<h1>WeCom KF sandbox / 微信客服沙盒</h1><p>The chat page (sandbox/web/index.html) is not installed. "
    "The JSON control API is under <code>/sandbox/api/</code>.</p>"
).encode()


class BadRequest(ValueError):
    """A control-API request the page should not have sent (answered 400)."""


def json_answer(payload: dict[str, Any], status: int = 200) -> HttpAnswer:
    return HttpAnswer(status, body=json.dumps(payload, ensure_ascii=False).encode("utf-8"))


def _text(status: int, message: str) -> HttpAnswer:
    return HttpAnswer(status, "text/plain; charset=utf-8", message.encode("utf-8"))


def static_file(name: str) -> HttpAnswer:
    """A file under sandbox/web/, never outside it."""
    root = WEB_DIR.resolve()
    target = (root / name).resolve()
    if not name or not target.is_relative_to(root) or not target.is_file():
        return _text(404, "not found")
    ctype = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
    if ctype.startswith("text/") or ctype in ("application/javascript", "application/json"):
        ctype += "; charset=utf-8"
    return HttpAnswer(200, ctype, target.read_bytes(), {"Cache-Control": "no-cache"})


def index_page() -> HttpAnswer:
    index = WEB_DIR / "index.html"
    if index.is_file():
        return HttpAnswer(200, "text/html; charset=utf-8", index.read_bytes(), {"Cache-Control": "no-cache"})
    return HttpAnswer(200, "text/html; charset=utf-8", PLACEHOLDER)


def _since_wait(query: dict[str, str]) -> tuple[int, float]:
    try:
        return int(query.get("since", "0") or 0), min(max(float(query.get("wait", "0") or 0), 0.0), 60.0)
    except ValueError:
        raise BadRequest("since and wait must be numbers") from None


def long_poll(emu: WeComEmulator, source: str, query: dict[str, str]) -> HttpAnswer:
    since, wait = _since_wait(query)
    store = emu.state.feed if source == "feed" else emu.state.protocol
    items = emu.state.items_since(store, since, wait, hold_pending=True)
    items = redact_value(items, emu.secrets())
    following = max([since, *(int(i["seq"]) for i in items)])
    return json_answer({"items": items, "next": following})


def state_dump(emu: WeComEmulator) -> HttpAnswer:
    with emu.state.lock:
        payload = {
            "accounts": [{"open_kfid": a.open_kfid, "name": a.name} for a in emu.state.accounts.values()],
            "customers": [
                {"external_userid": c.external_userid, "nickname": c.nickname}
                for c in emu.state.customers.values()
            ],
            "states": {f"{kf}|{user}": s.state for (kf, user), s in emu.state.sessions.items()},
            "servicers": sorted(emu.state.servicers),
            "servicer_list": [
                {"userid": s.userid, "status": s.status, "stop_type": s.stop_type}
                for s in sorted(emu.state.servicers.values(), key=lambda s: s.userid)
            ],
            "default_kfid": emu.default_kfid,
        }
    return json_answer(payload)


def root_redirect() -> HttpAnswer:
    """The emulator's root (the address in the log) sends a browser on to the chat page."""
    body = "聊天页面在 /sandbox/ · the chat page is at /sandbox/\n".encode()
    return HttpAnswer(302, "text/plain; charset=utf-8", body, {"Location": PAGE_PATH})


def _get_routes(emu: WeComEmulator, path: str, query: dict[str, str]) -> HttpAnswer:
    if path in ("", "/"):
        return root_redirect()
    if path in ("/sandbox", "/sandbox/", "/sandbox/index.html"):
        return index_page()
    if path.startswith("/sandbox/static/"):
        return static_file(unquote(path[len("/sandbox/static/") :]))
    if path == "/sandbox/api/state":
        return state_dump(emu)
    if path == "/sandbox/api/feed":
        return long_poll(emu, "feed", query)
    if path == "/sandbox/api/protocol":
        return long_poll(emu, "protocol", query)
    if path.startswith("/sandbox/media/"):
        return control_actions.media_file(emu, path[len("/sandbox/media/") :], query.get("format", ""))
    return _text(404, "not found")


POST_ROUTES: dict[str, Callable[[WeComEmulator, dict[str, str], bytes], dict[str, Any]]] = {
    "/sandbox/api/accounts": control_actions.add_account,
    "/sandbox/api/customers": control_actions.add_customer,
    "/sandbox/api/send": control_actions.send,
    "/sandbox/api/click": control_actions.click,
    "/sandbox/api/upload": control_actions.upload,
    "/sandbox/api/enter": control_actions.enter,
    "/sandbox/api/takeover": control_actions.takeover,
    "/sandbox/api/handback": control_actions.handback,
    "/sandbox/api/servicer_send": control_actions.servicer_send,
    "/sandbox/api/recall": control_actions.recall,
}


def handle(
    emu: WeComEmulator, method: str, path: str, query: dict[str, str], headers: dict[str, str], body: bytes
) -> HttpAnswer:
    """Serve one /sandbox request (or the root, redirected to the page); bad input → 400 with a JSON
    ``error``."""
    try:
        if method == "GET":
            return _get_routes(emu, path, query)
        route = POST_ROUTES.get(path)
        if method != "POST" or route is None:
            return _text(404, "not found")
        return json_answer(route(emu, headers, body))
    except (BadRequest, control_actions.BadInput, KeyError) as exc:
        return json_answer({"error": str(exc).strip("'\"")}, 400)
    except AudioError as exc:
        return json_answer({"error": str(exc)}, 400)
