"""Typed calls of the WeCom Customer Service (微信客服) API.

Thread-safe: many threads may call one :class:`KfApi` at once. Every error is a
:class:`~channel.wechatcom_kf.errors.KfError` subclass chosen by ``error_for``. ``sync_msg``,
``send_msg`` and ``upload_media`` are tried once (the pull job and the delivery retry them); the
other calls retry briefly inline (``retry.QUICK``).
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import requests

from ..errors import KfApiError, KfMediaError, error_for
from ..retry import ONCE, QUICK, RetryPolicy
from ..settings import WECOM_API_BASE
from .transport import Transport, http_error, to_kf_error

logger = logging.getLogger(__name__)

MEDIA_KINDS = ("image", "voice", "video", "file")
_CHUNK = 64 * 1024
_MAX_ERROR_BODY = 64 * 1024
_BATCHGET_MAX = 100  # external_userid_list accepts 1..100 ids


@dataclass(frozen=True)
class SyncPage:
    next_cursor: str
    has_more: bool
    msg_list: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class ServiceState:
    state: int
    servicer_userid: str | None = None


@dataclass(frozen=True)
class Servicer:
    userid: str
    receiving: bool  # servicer/list status 0 (接待中); 1 = stopped (停止接待)


@dataclass(frozen=True)
class DownloadedMedia:
    data: bytes
    content_type: str | None
    filename: str | None  # raw from Content-Disposition: untrusted, the caller sanitizes it


class KfApi:
    """KF API client on wechatpy's token cache; ``quick`` is the inline retry policy of its calls."""

    def __init__(
        self,
        corp_id: str,
        secret: str,
        *,
        api_base: str = WECOM_API_BASE,
        timeout: float = 10.0,
        quick: RetryPolicy = QUICK,
        session: requests.Session | None = None,
        pool_size: int = 64,
    ) -> None:
        self._quick = quick
        self._t = Transport(
            corp_id, secret, api_base=api_base, timeout=timeout, session=session, pool_size=pool_size
        )

    @property
    def token_client(self) -> Any:
        """The wechatpy client that caches the access_token (what the metrics watch)."""
        return self._t.client

    def access_token(self) -> str:
        """A valid access_token, fetched if needed; raises the mapped KfError (the doctor's check)."""
        return self._t.token()

    @property
    def token_fetches(self) -> int:
        """How many times an access_token was fetched (for tests and diagnostics)."""
        return self._t.client.fetch_count

    def close(self) -> None:
        """Stop pending retries and close the HTTP session (if this client created it)."""
        self._t.close()

    def _post(
        self,
        path: str,
        body: dict[str, Any],
        *,
        once: bool = False,
        idempotent: bool = True,
        msgid_sent: bool = False,
    ) -> dict[str, Any]:
        return self._t.call(
            path,
            lambda token: self._t.json_request("POST", path, token, body=body, msgid_sent=msgid_sent),
            policy=ONCE if once else self._quick,
            idempotent=idempotent,
        )

    # --- messages ---------------------------------------------------------------------------------------

    def sync_msg(
        self, open_kfid: str, cursor: str | None, token: str | None, limit: int = 1000, voice_format: int = 0
    ) -> SyncPage:
        """Pull messages and events: https://developer.work.weixin.qq.com/document/path/94670"""
        body: dict[str, Any] = {"open_kfid": open_kfid, "limit": limit, "voice_format": voice_format}
        if cursor:
            body["cursor"] = cursor
        if token:
            body["token"] = token
        result = self._post("kf/sync_msg", body, once=True)
        return SyncPage(
            next_cursor=str(result.get("next_cursor") or ""),
            has_more=bool(result.get("has_more")),
            msg_list=list(result.get("msg_list") or []),
        )

    def send_msg(
        self, touser: str, open_kfid: str, msgtype: str, body: dict[str, Any], msgid: str | None = None
    ) -> str:
        """Send a message: https://developer.work.weixin.qq.com/document/path/94677

        Tried once: the delivery retries. A reused ``msgid`` raises KfDuplicateMsgId (= sent before).
        """
        payload: dict[str, Any] = {
            "touser": touser,
            "open_kfid": open_kfid,
            "msgtype": msgtype,
            msgtype: body,
        }
        if msgid:
            payload["msgid"] = msgid
        result = self._post("kf/send_msg", payload, once=True, msgid_sent=bool(msgid))
        return str(result.get("msgid") or msgid or "")

    def send_msg_on_event(
        self, code: str, msgtype: str, body: dict[str, Any], msgid: str | None = None
    ) -> str:
        """Welcome / closing message for an event code: https://developer.work.weixin.qq.com/document/path/95122

        The code is single-use: a used or expired code is refused (40058 at the emulator), and a reused
        ``msgid`` raises KfDuplicateMsgId; neither is worth sending again.
        """
        payload: dict[str, Any] = {"code": code, "msgtype": msgtype, msgtype: body}
        if msgid:
            payload["msgid"] = msgid
        result = self._post("kf/send_msg_on_event", payload, idempotent=bool(msgid), msgid_sent=bool(msgid))
        return str(result.get("msgid") or msgid or "")

    # --- sessions and customers -------------------------------------------------------------------------

    def get_service_state(self, open_kfid: str, external_userid: str) -> ServiceState:
        """Session state: https://developer.work.weixin.qq.com/document/path/94669"""
        result = self._post(
            "kf/service_state/get", {"open_kfid": open_kfid, "external_userid": external_userid}
        )
        return ServiceState(int(result.get("service_state", 0)), result.get("servicer_userid") or None)

    def trans_service_state(
        self, open_kfid: str, external_userid: str, service_state: int, servicer_userid: str | None = None
    ) -> str | None:
        """Change the session state; returns ``msg_code`` if any: https://developer.work.weixin.qq.com/document/path/94669"""
        body: dict[str, Any] = {
            "open_kfid": open_kfid,
            "external_userid": external_userid,
            "service_state": service_state,
        }
        if servicer_userid:
            body["servicer_userid"] = servicer_userid
        result = self._post("kf/service_state/trans", body)
        return result.get("msg_code") or None

    def batchget_customer(self, external_userids: list[str]) -> dict[str, dict[str, Any]]:
        """Customer profiles by id, 100 per request: https://developer.work.weixin.qq.com/document/path/95159"""
        found: dict[str, dict[str, Any]] = {}
        ids = list(dict.fromkeys(external_userids))
        for start in range(0, len(ids), _BATCHGET_MAX):
            body = {
                "external_userid_list": ids[start : start + _BATCHGET_MAX],
                "need_enter_session_context": 0,
            }
            result = self._post("kf/customer/batchget", body)
            for customer in result.get("customer_list") or []:
                if isinstance(customer, dict) and customer.get("external_userid"):
                    found[str(customer["external_userid"])] = customer
        return found

    def list_accounts(self) -> list[dict[str, Any]]:
        """KF accounts this app sees (first 100): https://developer.work.weixin.qq.com/document/path/94661"""
        result = self._post("kf/account/list", {"offset": 0, "limit": 100})
        return [a for a in result.get("account_list") or [] if isinstance(a, dict) and a.get("open_kfid")]

    def list_servicers(self, open_kfid: str) -> list[Servicer]:
        """Receptionists of an account: https://developer.work.weixin.qq.com/document/path/94645"""
        path = "kf/servicer/list"
        result = self._t.call(
            path,
            lambda token: self._t.json_request("GET", path, token, params={"open_kfid": open_kfid}),
            policy=self._quick,
        )
        return [
            Servicer(str(entry["userid"]), entry.get("status") == 0)
            for entry in result.get("servicer_list") or []
            if isinstance(entry, dict) and entry.get("userid")
        ]

    def get_callback_ips(self) -> list[str]:
        """WeCom's callback source addresses, as sent (IPs, ``a.b.c.*`` or CIDR; the caller parses them):
        https://developer.work.weixin.qq.com/document/path/90238
        """
        path = "getcallbackip"
        result = self._t.call(
            path, lambda token: self._t.json_request("GET", path, token), policy=self._quick
        )
        entries = result.get("ip_list")
        if not isinstance(entries, list):
            raise KfApiError(f"{path}: answer has no ip_list", api=path)
        return [str(entry) for entry in entries]

    # --- media -------------------------------------------------------------------------------------------

    def upload_media(self, kind: str, filename: str, data: bytes, content_type: str) -> str:
        """Upload a temporary media file: https://developer.work.weixin.qq.com/document/path/90253"""
        if kind not in MEDIA_KINDS:
            raise ValueError(f"media kind must be one of {MEDIA_KINDS}, not {kind!r}")
        logger.debug("uploading %s of %d bytes (%s)", kind, len(data), content_type)

        def send(token: str) -> dict[str, Any]:
            files = {"media": (filename, data, content_type)}
            return self._t.json_request("POST", "media/upload", token, params={"type": kind}, files=files)

        result = self._t.call("media/upload", send, policy=ONCE)
        media_id = result.get("media_id")
        if not isinstance(media_id, str) or not media_id:
            raise KfApiError("media/upload: answer has no media_id", api="media/upload")
        return media_id

    def download_media(self, media_id: str, max_bytes: int) -> DownloadedMedia:
        """Download received media, streamed, at most ``max_bytes``:
        https://developer.work.weixin.qq.com/document/path/90254
        """
        return self._t.call(
            "media/get", lambda token: self._download(token, media_id, max_bytes), policy=self._quick
        )

    def _download(self, token: str, media_id: str, max_bytes: int) -> DownloadedMedia:
        api = "media/get"
        logger.debug("WeCom GET %s media_id=%s", api, media_id)
        try:
            resp = self._t.session.get(
                self._t.api_base + api,
                params={"access_token": token, "media_id": media_id},
                stream=True,
                timeout=self._t.timeout,
            )
        except requests.RequestException as exc:
            raise to_kf_error(exc, api) from None
        with resp:
            if resp.status_code >= 400:
                raise http_error(api, resp)
            content_type = resp.headers.get("Content-Type")
            disposition = resp.headers.get("Content-Disposition")
            length = resp.headers.get("Content-Length", "")
            if length.isdigit() and int(length) > max_bytes:
                raise KfMediaError(f"{api}: {length} bytes is over the limit of {max_bytes}", api=api)
            data = _read_limited(resp, api, max_bytes)
        if not disposition and _looks_like_json(content_type) and len(data) <= _MAX_ERROR_BODY:
            _raise_if_error_body(data, api)  # WeCom answers errors as JSON with status 200
        return DownloadedMedia(data, content_type, parse_content_disposition(disposition))


def _looks_like_json(content_type: str | None) -> bool:
    mime = (content_type or "").split(";")[0].strip().lower()
    return mime in ("application/json", "text/plain")


def _read_limited(resp: requests.Response, api: str, max_bytes: int) -> bytes:
    chunks: list[bytes] = []
    total = 0
    try:
        for chunk in resp.iter_content(_CHUNK):
            total += len(chunk)
            if total > max_bytes:
                raise KfMediaError(f"{api}: media is over the limit of {max_bytes} bytes", api=api)
            chunks.append(chunk)
    except requests.RequestException as exc:
        raise to_kf_error(exc, api) from None
    return b"".join(chunks)


def _raise_if_error_body(raw: bytes, api: str) -> None:
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return
    if isinstance(doc, dict) and "errcode" in doc:
        errcode = int(doc.get("errcode") or 0)
        if errcode != 0:
            raise error_for(errcode, str(doc.get("errmsg", "")), api)


_FILENAME_EXT_RE = re.compile(r"filename\*\s*=\s*([^']*)'[^']*'([^;]+)", re.IGNORECASE)
_FILENAME_QUOTED_RE = re.compile(r'filename\s*=\s*"((?:[^"\\]|\\.)*)"', re.IGNORECASE)
_FILENAME_TOKEN_RE = re.compile(r"filename\s*=\s*([^;\s]+)", re.IGNORECASE)


def parse_content_disposition(value: str | None) -> str | None:
    """The filename of a Content-Disposition header, unsanitized (may be ``../../x``)."""
    if not value:
        return None
    match = _FILENAME_EXT_RE.search(value)
    if match:
        charset = match.group(1).strip() or "utf-8"
        try:
            return unquote(match.group(2).strip().strip('"'), encoding=charset, errors="replace")
        except LookupError:
            return unquote(match.group(2).strip().strip('"'), errors="replace")
    match = _FILENAME_QUOTED_RE.search(value)
    name = re.sub(r"\\(.)", r"\1", match.group(1)) if match else None
    if name is None:
        token = _FILENAME_TOKEN_RE.search(value)
        name = token.group(1) if token else None
    if name is None:
        return None
    try:  # http.client decodes headers as latin-1; WeCom sends UTF-8 names raw
        return name.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return name
