"""Records the emulator keeps and the error type its API handlers raise."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Validity periods from the fact sheet (seconds).
SYNC_TOKEN_TTL = 600.0
SYNC_WINDOW = 3 * 86400.0
SEND_WINDOW = 48 * 3600.0
SEND_BUDGET = 5
MEDIA_TTL = 3 * 86400.0
WELCOME_CODE_TTL = 20.0
CLOSING_CODE_TTL = 20.0
POOL_CODE_TTL = 48 * 3600.0
ACCESS_TOKEN_TTL = 7200
# kf/servicer/list status coding (§7); the servicer_status_change event uses 1 / 2 instead.
SERVICER_RECEIVING = 0
SERVICER_STOPPED = 1


class ApiError(Exception):
    """An errcode answer; raised by handlers and turned into the JSON error body by the router."""

    def __init__(self, errcode: int, errmsg: str, *, injected: bool = False) -> None:
        super().__init__(errcode, errmsg)
        self.errcode = errcode
        self.errmsg = errmsg
        self.injected = injected


@dataclass(frozen=True)
class SentMessage:
    """One successful kf/send_msg or kf/send_msg_on_event."""

    api: str
    open_kfid: str
    touser: str
    msgid: str
    msgtype: str
    body: dict[str, Any]
    time: float
    reply_to: str | None = None

    @property
    def text(self) -> str:
        """The text content, or "" for other message types."""
        return str(self.body.get("content", "")) if self.msgtype == "text" else ""


@dataclass(frozen=True)
class Rejection:
    """One API call answered with a non-zero errcode (request summary already redacted)."""

    api: str
    errcode: int
    errmsg: str
    request: dict[str, Any]
    time: float
    injected: bool = False


@dataclass(frozen=True)
class UploadedMedia:
    """A stored media file: uploaded by the app or attached to a customer message."""

    media_id: str
    kind: str
    filename: str
    content_type: str
    data: bytes
    created_at: float


@dataclass
class Account:
    open_kfid: str
    name: str


@dataclass
class Servicer:
    """A receptionist (接待人员) as ``kf/servicer/list`` reports it: status 0 receiving / 1 stopped,
    stop_type 0 stopped / 1 temporarily suspended (only meaningful while stopped)."""

    userid: str
    status: int = SERVICER_RECEIVING
    stop_type: int = 0


@dataclass
class Customer:
    external_userid: str
    nickname: str
    gender: int = 0
    unionid: str = ""


@dataclass
class Session:
    """Per (open_kfid, external_userid) state: service state, send budget, entry context."""

    state: int = 4
    servicer_userid: str | None = None
    last_msg_time: float | None = None
    last_msgid: str | None = None
    sends_since: int = 0
    pool_code_issued: bool = False
    last_enter: dict[str, Any] | None = None
    last_enter_time: float | None = None
    last_welcome_time: float | None = None


@dataclass
class EventCode:
    """A single-use code for kf/send_msg_on_event."""

    code: str
    kind: str  # "welcome" | "pool" | "closing"
    open_kfid: str
    external_userid: str
    expires_at: float
    state: int | None  # the session state the code is tied to; None for welcome codes
    used: bool = False
    msgtypes: tuple[str, ...] = field(default=("text", "msgmenu"))


@dataclass
class ApiRequest:
    """One call to /cgi-bin/<api>."""

    method: str
    api: str
    query: dict[str, str]
    body: bytes
    headers: dict[str, str]
    delay: float = 0.0  # latency injected by the fault knobs, shown in the protocol log

    def json(self) -> dict[str, Any]:
        """The JSON body; bad JSON or a non-object → 40058."""
        import json

        try:
            value = json.loads(self.body.decode("utf-8") or "{}")
        except (UnicodeDecodeError, ValueError):
            raise ApiError(40058, "invalid json body") from None
        if not isinstance(value, dict):
            raise ApiError(40058, "invalid json body")
        return value


@dataclass
class RawResponse:
    """A non-JSON answer (media bytes)."""

    body: bytes
    content_type: str
    headers: dict[str, str] = field(default_factory=dict)
    status: int = 200
