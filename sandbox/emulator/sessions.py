"""Service states, the 5-per-message / 48 h send budget and send_msg_on_event codes (§4-§6)."""

from __future__ import annotations

from sandbox.emulator.models import (
    CLOSING_CODE_TTL,
    POOL_CODE_TTL,
    SEND_BUDGET,
    SEND_WINDOW,
    SERVICER_RECEIVING,
    WELCOME_CODE_TTL,
    ApiError,
    EventCode,
    Session,
)
from sandbox.emulator.state import EmulatorState, random_token

# Documented transitions; same-state moves are allowed. 4 ("ended / not started") allows none.
ALLOWED = {0: {1, 2, 3, 4}, 1: {1, 2, 3, 4}, 2: {2, 3, 4}, 3: {3, 4}, 4: set()}
SENDABLE_STATES = (0, 1)


def record_customer_message(state: EmulatorState, open_kfid: str, user: str, msgid: str, when: float) -> None:
    """A customer message re-opens the 48 h window with a fresh budget and moves state 4 to 0."""
    with state.lock:
        session = state.session(open_kfid, user)
        if session.state == 4:
            session.state = 0
            session.servicer_userid = None
            session.pool_code_issued = False
        if session.last_msg_time is None or when >= session.last_msg_time:
            session.last_msg_time = when
            session.last_msgid = msgid
            session.sends_since = 0


def check_can_send(state: EmulatorState, open_kfid: str, user: str) -> Session:
    """Raise 95018 (state), 95002 (48 h) or 95001 (5 sends) when a send_msg is not allowed now."""
    with state.lock:
        session = state.session(open_kfid, user)
        if session.state not in SENDABLE_STATES or session.last_msg_time is None:
            raise ApiError(95018, "send msg session status invalid")
        if state.now() - session.last_msg_time > SEND_WINDOW:
            raise ApiError(95002, "send msg time limit")
        if session.sends_since >= SEND_BUDGET:
            raise ApiError(95001, "send msg count limit")
        return session


def issue_code(state: EmulatorState, kind: str, open_kfid: str, user: str, session_state: int | None) -> str:
    """Register a single-use send_msg_on_event code of ``kind`` (welcome / pool / closing)."""
    ttl = {"welcome": WELCOME_CODE_TTL, "closing": CLOSING_CODE_TTL}.get(kind, POOL_CODE_TTL)
    msgtypes = ("text",) if kind == "pool" else ("text", "msgmenu")
    code = random_token(43)
    with state.lock:
        now = state.now()
        if len(state.codes) > 10000:
            state.codes = {k: v for k, v in state.codes.items() if v.expires_at > now and not v.used}
        state.codes[code] = EventCode(
            code, kind, open_kfid, user, now + ttl, session_state, msgtypes=msgtypes
        )
    return code


def take_code(state: EmulatorState, code: str, msgtype: str) -> EventCode:
    """Validate and consume a code; used/expired/unknown → 40058 (errcode UNCONFIRMED)."""
    with state.lock:
        entry = state.codes.get(code)
        if entry is None or entry.used or entry.expires_at <= state.now():
            raise ApiError(40058, "invalid code")
        if msgtype not in entry.msgtypes:
            raise ApiError(40058, "msgtype not allowed for this code")
        if (
            entry.state is not None
            and state.session(entry.open_kfid, entry.external_userid).state != entry.state
        ):
            raise ApiError(95018, "send msg session status invalid")
        entry.used = True
        return entry


def check_servicer(state: EmulatorState, servicer: str | None) -> None:
    """State 3 needs a known receptionist (else 95014) who is receiving (else 95019).
    https://developer.work.weixin.qq.com/document/path/94669"""
    with state.lock:
        entry = state.servicers.get(servicer) if servicer else None
        if entry is None:
            raise ApiError(95014, "user is not servicer")
        if entry.status != SERVICER_RECEIVING:
            raise ApiError(95019, "servicer stopped")


def transition(
    state: EmulatorState, open_kfid: str, user: str, new_state: int, servicer: str | None
) -> str | None:
    """Move a session; returns a msg_code on the first change to 2/3 and on every change to 4."""
    if new_state not in ALLOWED:
        raise ApiError(40058, "invalid service_state")
    with state.lock:
        session = state.session(open_kfid, user)
        if new_state not in ALLOWED[session.state]:
            raise ApiError(95016, "service state transition not allowed")
        if new_state == 3:
            check_servicer(state, servicer)
        code: str | None = None
        if new_state in (2, 3) and not session.pool_code_issued:
            session.pool_code_issued = True
            code = issue_code(state, "pool", open_kfid, user, new_state)
        elif new_state == 4:
            code = issue_code(state, "closing", open_kfid, user, 4)
        session.state = new_state
        session.servicer_userid = servicer if new_state == 3 else None
        state.changed.notify_all()
        return code
