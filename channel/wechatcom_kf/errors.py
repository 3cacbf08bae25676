"""The channel's exception hierarchy and the one errcode (+ errmsg) -> exception mapping.

Callers decide whether to retry from the exception type (``retryable``), never by parsing text: the
only place that reads an errmsg is :func:`error_for`. Messages are redacted (``redaction.py``).
Error codes: https://developer.work.weixin.qq.com/document/path/90313
"""

from __future__ import annotations

from .redaction import redact

__all__ = [
    "KfAccessTokenInvalid",
    "KfApiError",
    "KfCredentialError",
    "KfDuplicateMsgId",
    "KfError",
    "KfMediaError",
    "KfNetworkError",
    "KfRateLimited",
    "KfSendForbidden",
    "KfSendLimitReached",
    "KfSendWindowExpired",
    "KfSessionEnded",
    "KfSessionStateInvalid",
    "KfSyncTokenInvalid",
    "KfSystemBusy",
    "describe_fail_type",
    "errcode_hint",
    "error_for",
    "is_duplicate_msgid",
]

# WeCom's answer to a reused send msgid is UNCONFIRMED. 40058 ("invalid parameter") is what the
# emulator answers, with the text "msgid exists"; a public report quotes "msg_id重复". 40058 is also
# the answer to a too-long text or a malformed field, so the code alone proves nothing: a refusal is a
# duplicate only when its text says so. Anything else is a failure, never a delivery.
_DUPLICATE_TEXTS = ("msgid exists", "msg_id exists", "msgid重复", "msg_id重复", "duplicate msgid")


class KfError(Exception):
    """Base of every error raised by the channel's WeCom KF layer."""

    retryable: bool = False

    def __init__(self, message: str, *, errcode: int | None = None, api: str = "", errmsg: str = "") -> None:
        super().__init__(redact(message))
        self.errcode = errcode
        self.api = api
        self.errmsg = redact(errmsg)


class KfNetworkError(KfError):
    """Timeout, connection error, HTTP 5xx or a body that is not JSON."""

    retryable = True

    def __init__(
        self,
        message: str,
        *,
        api: str = "",
        ambiguous: bool = True,
        http_status: int | None = None,
    ) -> None:
        super().__init__(message, api=api)
        # True when the request may have reached WeCom (a resend could act twice).
        self.ambiguous = ambiguous
        self.http_status = http_status


class KfSystemBusy(KfError):
    """errcode -1: WeCom is busy; retry later."""

    retryable = True


class KfRateLimited(KfError):
    """45009 (frequency) or 45033 (concurrency) limit."""

    retryable = True


class KfAccessTokenInvalid(KfError):
    """40014 / 42001 / 41001. The client refreshes the token once per call; callers do not retry."""

    retryable = False


class KfCredentialError(KfError):
    """Wrong secret or the app may not use the KF API (40001, 95011, 95012, 95017, 95023)."""


class KfSyncTokenInvalid(KfError):
    """95007: the callback Token passed to sync_msg is expired or forged; pull without it."""


class KfSendForbidden(KfError):
    """The session does not allow sending now; base of the specific send refusals."""


class KfSendLimitReached(KfSendForbidden):
    """95001: already 5 messages since the customer's last message."""


class KfSendWindowExpired(KfSendForbidden):
    """95002: more than 48 h since the customer's last message."""


class KfSessionStateInvalid(KfSendForbidden):
    """95018: the session state does not allow API sends (e.g. a human took it)."""


class KfSessionEnded(KfSendForbidden):
    """95013: the session has already ended."""


class KfDuplicateMsgId(KfError):
    """A send carrying our msgid was refused because that msgid was used: it was sent before."""


class KfMediaError(KfError):
    """Invalid/expired media_id, over-size media, or a local download / conversion failure."""


class KfApiError(KfError):
    """Any other non-zero errcode or unexpected answer."""


_TYPE_BY_ERRCODE: dict[int, type[KfError]] = {
    -1: KfSystemBusy,
    45009: KfRateLimited,
    45033: KfRateLimited,
    40014: KfAccessTokenInvalid,
    42001: KfAccessTokenInvalid,
    41001: KfAccessTokenInvalid,
    40001: KfCredentialError,
    95011: KfCredentialError,
    95012: KfCredentialError,
    95017: KfCredentialError,
    95023: KfCredentialError,
    95007: KfSyncTokenInvalid,
    95001: KfSendLimitReached,
    95002: KfSendWindowExpired,
    95018: KfSessionStateInvalid,
    95013: KfSessionEnded,
    40007: KfMediaError,
    40005: KfMediaError,  # invalid file type
    40006: KfMediaError,  # invalid file size
    40009: KfMediaError,  # invalid image size
    830002: KfMediaError,  # download too large for one request
}


def is_duplicate_msgid(errmsg: str) -> bool:
    """True when a send's refusal text says the msgid was already used."""
    text = errmsg.lower().replace(" ", "")
    return any(phrase.replace(" ", "") in text for phrase in _DUPLICATE_TEXTS)


def error_for(errcode: int, errmsg: str, api: str, *, msgid_sent: bool = False) -> KfError:
    """Map a WeCom answer to its exception; ``msgid_sent`` marks a send that carried our msgid."""
    if msgid_sent and errcode not in _TYPE_BY_ERRCODE and is_duplicate_msgid(errmsg):
        cls: type[KfError] = KfDuplicateMsgId
    else:
        cls = _TYPE_BY_ERRCODE.get(errcode, KfApiError)
    text = f"{api or 'wecom api'}: errcode {errcode}: {errmsg}"
    hint = errcode_hint(errcode)
    if hint:
        text = f"{text} ({hint})"
    return cls(text, errcode=errcode, api=api, errmsg=errmsg)


# --- operator help ----------------------------------------------------------------------------------

_FAIL_TYPES: dict[int, str] = {
    0: "unknown reason",
    1: "KF account deleted",
    2: "app closed",
    4: "session expired (more than 48 h since the customer's message)",
    5: "session closed",
    6: "over the 5-message limit per customer message",
    7: "video channel not bound",
    8: "corp not verified",
    9: "video channel not bound and corp not verified",
    10: "customer rejected the messages",
    11: "no member has logged in to the WeCom app",
    12: "message type forbidden by the KF component",
    13: "security restriction",
}


def describe_fail_type(n: int) -> str:
    """Meaning of ``fail_type`` in a ``msg_send_fail`` event."""
    return _FAIL_TYPES.get(n, f"fail_type {n} (undocumented)")


_HINTS: dict[int, str] = {
    -1: "WeCom is busy; retried with backoff",
    40001: "invalid secret: check wechatcom_corp_id and wechatcom_kf_secret (the self-built app's secret)",
    40007: "invalid or expired media_id (media ids live 3 days)",
    40014: "invalid access_token; it is re-fetched once per call",
    41001: "access_token missing from the URL",
    42001: "access_token expired; it is re-fetched once per call",
    40058: "invalid parameter",
    45002: "text over 2048 bytes",
    45009: "API frequency limit reached; backing off",
    45033: "too many concurrent calls; lower concurrency",
    95000: "invalid open_kfid",
    95001: "5-message limit per customer message reached",
    95002: "48 h send window since the customer's last message has passed",
    95004: "open_kfid does not exist (deleted or another corp)",
    95007: "sync_msg token expired or invalid; pull again without it",
    95011: "KF runs inside WeCom but the token comes from a standalone-KF secret",
    95012: "KF runs standalone but the token comes from a joint-mode secret",
    95013: "the session has already ended",
    95014: "not a receptionist of this KF account, or not activated (admin console → 微信客服 → 接待人员)",
    95016: "service state transition not allowed (e.g. the session already ended or is with a human)",
    95017: "KF API switch is off: admin console → 微信客服 → 可调用接口的应用 (add this app)",
    95018: "session state does not allow API sends (a human took it, or the session expired)",
    95019: "the receptionist stopped or suspended receiving (停止接待/暂时挂起)",
    95023: "KF API access was granted to another (代开发) app",
    830002: "media too large for one download",
}


def errcode_hint(errcode: int | None) -> str:
    """A short hint for operators about ``errcode``; empty when there is none."""
    if errcode is None:
        return ""
    return _HINTS.get(errcode, "")
