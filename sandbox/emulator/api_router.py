"""Routes /cgi-bin/<api> calls: faults, access_token check, handler, rejection and protocol records."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sandbox.emulator import kf_api, kf_misc_api, media
from sandbox.emulator.models import ApiError, ApiRequest, RawResponse, Rejection
from sandbox.emulator.redact import redact_text, redact_value

if TYPE_CHECKING:
    from sandbox.emulator.emulator import WeComEmulator

logger = logging.getLogger(__name__)
Handler = Callable[["WeComEmulator", ApiRequest], "dict[str, Any] | RawResponse"]

# api -> (allowed methods, handler, needs access_token)
ROUTES: dict[str, tuple[tuple[str, ...], Handler, bool]] = {
    "gettoken": (("GET",), kf_misc_api.gettoken, False),
    "getcallbackip": (("GET",), kf_misc_api.getcallbackip, True),
    "kf/sync_msg": (("POST",), kf_api.sync_msg, True),
    "kf/send_msg": (("POST",), kf_api.send_msg, True),
    "kf/send_msg_on_event": (("POST",), kf_api.send_msg_on_event, True),
    "kf/service_state/get": (("POST",), kf_misc_api.service_state_get, True),
    "kf/service_state/trans": (("POST",), kf_misc_api.service_state_trans, True),
    "kf/customer/batchget": (("POST",), kf_misc_api.customer_batchget, True),
    "kf/account/list": (("POST", "GET"), kf_misc_api.account_list, True),
    "kf/servicer/list": (("GET",), kf_misc_api.servicer_list, True),
    "media/upload": (("POST",), media.upload, True),
    "media/get": (("GET",), media.get, True),
}
MAX_LOGGED_ITEMS = 20


@dataclass
class HttpAnswer:
    status: int
    content_type: str = "application/json; charset=utf-8"
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False


def _json_answer(payload: dict[str, Any]) -> HttpAnswer:
    return HttpAnswer(200, body=json.dumps(payload, ensure_ascii=False).encode("utf-8"))


def request_summary(emu: WeComEmulator, req: ApiRequest) -> dict[str, Any]:
    """What the protocol log and rejections show of a request: no credentials, media as sizes."""
    summary: dict[str, Any] = {"method": req.method, "api": req.api, "query": redact_value(req.query)}
    if req.api == "media/upload":
        summary["body"] = {"bytes": len(req.body)}
    elif req.body:
        try:
            summary["body"] = redact_value(json.loads(req.body.decode("utf-8")), emu.secrets())
        except (UnicodeDecodeError, ValueError):
            summary["body"] = redact_text(req.body[:200].decode("utf-8", "replace"), emu.secrets())
    return summary


def _response_summary(payload: dict[str, Any] | RawResponse) -> dict[str, Any]:
    if isinstance(payload, RawResponse):
        return {"content_type": payload.content_type, "bytes": len(payload.body)}
    shown = dict(payload)
    if isinstance(shown.get("msg_list"), list) and len(shown["msg_list"]) > MAX_LOGGED_ITEMS:
        shown["msg_count"] = len(shown["msg_list"])
        shown["msg_list"] = shown["msg_list"][:MAX_LOGGED_ITEMS]
    return redact_value(shown)


def _run(emu: WeComEmulator, req: ApiRequest) -> dict[str, Any] | RawResponse:
    methods, handler, needs_token = ROUTES[req.api]
    if needs_token:
        emu.tokens.lifetime = emu.faults.invalidate_tokens_every
        emu.tokens.check_access_token(req.query.get("access_token"))
    if req.method not in methods:
        raise ApiError(40058, f"require {'/'.join(methods)} method")
    return handler(emu, req)


def handle(emu: WeComEmulator, req: ApiRequest) -> HttpAnswer:
    """Answer one API call, applying the fault knobs first."""
    if req.api not in ROUTES:
        return HttpAnswer(404, "text/plain; charset=utf-8", b"not found")
    decision = emu.faults.decide(req.api)
    if decision.delay > 0:
        req.delay = min(decision.delay, 30.0)
        time.sleep(req.delay)
    if decision.drop:
        _log(emu, req, {"dropped": True}, None, status=0)
        return HttpAnswer(0, drop=True)
    if decision.error_5xx:
        _log(emu, req, {"http_status": 500}, None, status=500)
        return HttpAnswer(500, "text/plain; charset=utf-8", b"Internal Server Error")
    try:
        if decision.rate_limited:
            raise ApiError(45009, "api freq out of limit", injected=True)
        payload = _run(emu, req)
    except ApiError as exc:
        _reject(emu, req, exc)
        return _json_answer({"errcode": exc.errcode, "errmsg": exc.errmsg})
    _log(emu, req, _response_summary(payload), 0, status=200)
    if isinstance(payload, RawResponse):
        return HttpAnswer(payload.status, payload.content_type, payload.body, payload.headers)
    return _json_answer(payload)


def _reject(emu: WeComEmulator, req: ApiRequest, exc: ApiError) -> None:
    summary = request_summary(emu, req)
    rejection = Rejection(req.api, exc.errcode, exc.errmsg, summary, time.time(), exc.injected)
    with emu.state.changed:
        emu.state.rejections.append(rejection)
        emu.state.changed.notify_all()
    logger.info("emulator rejected %s: errcode %s (%s)", req.api, exc.errcode, exc.errmsg)
    _log(emu, req, {"errcode": exc.errcode, "errmsg": exc.errmsg}, exc.errcode, status=200, summary=summary)
    emu.feed_rejection(req, rejection)


def _log(
    emu: WeComEmulator,
    req: ApiRequest,
    response: dict[str, Any],
    errcode: int | None,
    *,
    status: int,
    summary: dict[str, Any] | None = None,
) -> None:
    entry: dict[str, Any] = {
        "kind": "api",
        "api": req.api,
        "request": summary if summary is not None else request_summary(emu, req),
        "response": response,
        "errcode": errcode,
        "status": status,
    }
    if req.delay:
        entry["delay"] = req.delay
    emu.state.add_protocol(entry)
