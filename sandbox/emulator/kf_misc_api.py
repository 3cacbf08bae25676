"""gettoken, getcallbackip, service_state, customer/batchget, account/list, servicer/list
(fact sheet §6-§8; getcallbackip: doc 90238)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sandbox.emulator import sessions
from sandbox.emulator.kf_api import check_account, check_customer
from sandbox.emulator.models import SEND_WINDOW, ApiError, ApiRequest

if TYPE_CHECKING:
    from sandbox.emulator.emulator import WeComEmulator

# errmsg of an injected trans refusal (the knob emu.faults.trans_errcode), as the real check would say.
TRANS_ERRMSG = {
    95013: "session already ended",
    95014: "user is not servicer",
    95016: "service state transition not allowed",
    95018: "send msg session status invalid",
    95019: "servicer stopped",
}


def gettoken(emu: WeComEmulator, req: ApiRequest) -> dict[str, Any]:
    """https://developer.work.weixin.qq.com/document/path/91039"""
    if req.query.get("corpid") != emu.corp_id or req.query.get("corpsecret") != emu.secret:
        raise ApiError(40001, "invalid credential")
    token, expires_in = emu.tokens.issue_access_token()
    return {"errcode": 0, "errmsg": "ok", "access_token": token, "expires_in": expires_in}


def getcallbackip(emu: WeComEmulator, req: ApiRequest) -> dict[str, Any]:
    """WeCom's callback source addresses: https://developer.work.weixin.qq.com/document/path/90238"""
    errcode = emu.faults.callback_ip_refusal()
    if errcode is not None:
        raise ApiError(errcode, "system busy" if errcode == -1 else "getcallbackip refused", injected=True)
    return {"errcode": 0, "errmsg": "ok", "ip_list": list(emu.callback_ips)}


def _session_key(emu: WeComEmulator, data: dict[str, Any]) -> tuple[str, str]:
    return check_account(emu, data.get("open_kfid")), check_customer(emu, data, "external_userid")


def service_state_get(emu: WeComEmulator, req: ApiRequest) -> dict[str, Any]:
    """https://developer.work.weixin.qq.com/document/path/94669"""
    open_kfid, user = _session_key(emu, req.json())
    with emu.state.lock:
        session = emu.state.session(open_kfid, user)
        answer: dict[str, Any] = {"errcode": 0, "errmsg": "ok", "service_state": session.state}
        if session.state == 3:
            answer["servicer_userid"] = session.servicer_userid or ""
    return answer


def service_state_trans(emu: WeComEmulator, req: ApiRequest) -> dict[str, Any]:
    """https://developer.work.weixin.qq.com/document/path/94669"""
    data = req.json()
    open_kfid, user = _session_key(emu, data)
    new_state = data.get("service_state")
    if not isinstance(new_state, int):
        raise ApiError(40058, "invalid service_state")
    _injected_refusal(emu, new_state)
    servicer = data.get("servicer_userid")
    code = sessions.transition(
        emu.state, open_kfid, user, new_state, servicer if isinstance(servicer, str) else None
    )
    emu.feed_system(open_kfid, user, f"service_state -> {new_state} (API)")
    answer: dict[str, Any] = {"errcode": 0, "errmsg": "ok"}
    if code:
        answer["msg_code"] = code
    return answer


def _injected_refusal(emu: WeComEmulator, new_state: int) -> None:
    """Raise the errcode set with the trans fault knob, if any (a Rejection with injected=True)."""
    errcode = emu.faults.trans_refusal(new_state)
    if errcode is not None:
        raise ApiError(errcode, TRANS_ERRMSG.get(errcode, "service state trans refused"), injected=True)


def customer_batchget(emu: WeComEmulator, req: ApiRequest) -> dict[str, Any]:
    """https://developer.work.weixin.qq.com/document/path/95159"""
    data = req.json()
    ids = data.get("external_userid_list")
    if not isinstance(ids, list) or not 1 <= len(ids) <= 100:
        raise ApiError(40058, "invalid external_userid_list")
    with_context = bool(data.get("need_enter_session_context"))
    found: list[dict[str, Any]] = []
    invalid: list[Any] = []
    with emu.state.lock:
        now = emu.state.now()
        for user in ids:
            customer = emu.state.customers.get(user) if isinstance(user, str) else None
            if customer is None:
                invalid.append(user)
                continue
            entry: dict[str, Any] = {
                "external_userid": customer.external_userid,
                "nickname": customer.nickname,
                "avatar": "",
                "gender": customer.gender,
                "unionid": customer.unionid,
            }
            if with_context:
                entry["enter_session_context"] = _latest_enter(emu, user, now)
            found.append(entry)
    return {"errcode": 0, "errmsg": "ok", "customer_list": found, "invalid_external_userid": invalid}


def _latest_enter(emu: WeComEmulator, user: str, now: float) -> dict[str, Any]:
    latest: tuple[float, dict[str, Any]] | None = None
    for (_, uid), session in emu.state.sessions.items():
        when = session.last_enter_time
        if uid != user or when is None or session.last_enter is None or now - when > SEND_WINDOW:
            continue
        if latest is None or when > latest[0]:
            latest = (when, session.last_enter)
    return dict(latest[1]) if latest else {}


def account_list(emu: WeComEmulator, req: ApiRequest) -> dict[str, Any]:
    """https://developer.work.weixin.qq.com/document/path/94661"""
    data = req.json() if req.method == "POST" else {}
    offset = data.get("offset", 0)
    limit = data.get("limit", 100)
    if not isinstance(offset, int) or not isinstance(limit, int) or offset < 0 or not 1 <= limit <= 100:
        raise ApiError(40058, "invalid offset or limit")
    with emu.state.lock:
        accounts = [] if emu.account_list_empty else list(emu.state.accounts.values())
        accounts = accounts[offset : offset + limit]
        listed = [
            {"open_kfid": a.open_kfid, "name": a.name, "avatar": "", "manage_privilege": True}
            for a in accounts
        ]
    return {"errcode": 0, "errmsg": "ok", "account_list": listed}


def servicer_list(emu: WeComEmulator, req: ApiRequest) -> dict[str, Any]:
    """https://developer.work.weixin.qq.com/document/path/94645 (status 0 receiving, 1 stopped;
    stop_type 0 stopped, 1 temporarily suspended)."""
    check_account(emu, req.query.get("open_kfid"))
    with emu.state.lock:
        servicers = sorted(emu.state.servicers.values(), key=lambda s: s.userid)
        listed = [{"userid": s.userid, "status": s.status, "stop_type": s.stop_type} for s in servicers]
    return {"errcode": 0, "errmsg": "ok", "servicer_list": listed}
