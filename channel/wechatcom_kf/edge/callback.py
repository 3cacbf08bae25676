"""The callback endpoint's logic, independent of the HTTP server (invariant 1: ack fast).

Check the timestamp and the signature, drop replays, decrypt with wechatpy's ``PrpCrypto`` (built once
at start), read ``Token`` and ``OpenKfId`` and schedule a pull — no network I/O here. Callback
protocol: https://developer.work.weixin.qq.com/document/path/90930 and /94670.

Why this order: the port faces the internet, so what an outsider can send must cost next to nothing.
Cheapest first: query shape, body size, the XML guard (``xml_guard``: UTF-8 only, no DTD, a few µs),
the timestamp window and the SHA1 signature; the AES decrypt runs for a signed, fresh, unseen
envelope (and, bounded by the body cap, for a bad signature: to tell a wrong Token setting from a
forgery). Why wechatpy for the AES: it is the code WeCom's samples and the emulator use.

Status codes: 200 verified (GET: the plaintext echo; POST: ``success`` — WeCom accepts an empty body
or ``success``, we answer the literal so a human reading access logs sees it was handled; a replay of
an envelope already handled gets the same 200, as WeCom's own retry after a timeout must),
400 malformed or not UTF-8 XML, 403 bad signature, other corp id or a timestamp outside the window
(403 rather than 400: the request is well formed, we refuse to trust it), 413 body over the cap.
Answers never carry a traceback or any detail beyond a short reason; refusals are counted by kind in
``Refusals`` and logged once a minute per kind, WARNING only when the operator must act.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from wechatpy.enterprise.crypto import PrpCrypto, WeChatCrypto
from wechatpy.enterprise.exceptions import InvalidCorpIdException

from ..expiring import ExpiringKeys
from . import xml_guard
from .refusals import Refusals
from .xml_guard import MalformedXml, parse_xml_fields

__all__ = ["MAX_BODY_BYTES", "CallbackHandler", "MalformedXml", "Response", "parse_xml_fields"]

logger = logging.getLogger(__name__)

# WeCom's envelope is under 1.5 KB (a ~550-character Encrypt for a payload whose sync Token is at most
# 128 bytes); 8 KB leaves room for fields WeCom may add and bounds what an outsider makes us read.
MAX_BODY_BYTES = 8 * 1024
MAX_PARAM_CHARS = 1024
MAX_TIMESTAMP_DIGITS = 12
# The sync Token in a callback is valid 10 minutes: an older callback is useless even if authentic.
# The window is applied both ways (WeCom's clock may run ahead of ours).
REPLAY_WINDOW_SECONDS = 600.0
# Only verified envelopes are remembered, so outsiders cannot fill this; 100k is ~80 callbacks/s for
# the 20 minutes a replay stays possible. Overflow evicts the oldest: at worst one extra pull.
MAX_SEEN_ENVELOPES = 100_000
SUCCESS_BODY = "success"

# Refusal kinds (counted in Refusals); xml_guard adds its own ("not utf-8 xml", "dtd or entity", …).
BAD_QUERY = "missing or malformed query"
STALE = "stale timestamp"
STALE_SIGNED = "signed callback with a stale timestamp"
BAD_SIGNATURE = "bad signature"
TOKEN_MISMATCH = "token mismatch"
CORP_MISMATCH = "corp id mismatch"
UNDECRYPTABLE = "undecryptable signed payload"
REPLAYED = "replayed envelope"
UNEXPECTED = "unexpected error"


@dataclass(frozen=True)
class Response:
    status: int
    body: str

    @property
    def reason(self) -> str:
        return _REASONS.get(self.status, "Error")


_REASONS = {
    200: "OK",
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Payload Too Large",
    500: "Internal Server Error",
}

SUCCESS = Response(200, SUCCESS_BODY)
BAD_REQUEST = Response(400, "bad request")
FORBIDDEN = Response(403, "forbidden")
TOO_LARGE = Response(413, "payload too large")


@dataclass(frozen=True)
class _Signed:
    """The signed query parameters of a callback."""

    signature: str
    timestamp: int
    timestamp_text: str
    nonce: str


def _new_crypto(token: str, aes_key: str, corp_id: str) -> WeChatCrypto:
    try:
        crypto = WeChatCrypto(token, aes_key or "", corp_id)
        valid = len(crypto.key) == 32
    except Exception:  # wechatpy raises binascii.Error or AssertionError for a bad key
        valid = False
    if not valid:
        # Say which setting is wrong, never its value.
        raise ValueError("wechatcom_kf_aes_key must be the 43-character EncodingAESKey") from None
    return crypto


class CallbackHandler:
    """Verifies and decrypts callbacks, then calls ``schedule(open_kfid, token)`` once per envelope."""

    def __init__(
        self,
        token: str,
        aes_key: str,
        corp_id: str,
        schedule: Callable[[str, str], None],
        max_body_bytes: int = MAX_BODY_BYTES,
        *,
        replay_window_seconds: float = REPLAY_WINDOW_SECONDS,
        max_seen_envelopes: int = MAX_SEEN_ENVELOPES,
        refusals: Refusals | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if replay_window_seconds <= 0:
            raise ValueError("replay_window_seconds must be positive")
        self._prp = PrpCrypto(_new_crypto(token, aes_key, corp_id).key)
        self._token = token.encode("utf-8")
        self._corp_id = corp_id
        self._schedule = schedule
        self._max_body = max_body_bytes
        self._window = replay_window_seconds
        self._clock = clock
        # A timestamp is fresh from window before it until window after it, so a replay of an envelope
        # can arrive up to two windows after we first saw it.
        self._seen = ExpiringKeys(2 * replay_window_seconds, max_seen_envelopes)
        self._refusals = refusals if refusals is not None else Refusals(logger)

    @property
    def max_body_bytes(self) -> int:
        return self._max_body

    @property
    def refusals(self) -> Refusals:
        return self._refusals

    def handle_get(self, query: Mapping[str, str]) -> Response:
        """URL verification: answer the decrypted ``echostr`` within WeCom's 1 s."""
        try:
            return self._verify_url(query)
        except Exception as exc:  # a bug reached by an outsider's input: a 400, never a 500
            return self._refuse(BAD_REQUEST, UNEXPECTED, type(exc).__name__, logging.WARNING)

    def handle_post(self, query: Mapping[str, str], body: bytes) -> Response:
        """A message push: verify, decrypt, schedule the pull, answer at once."""
        try:
            verdict = self._verify_post(query, body)
        except Exception as exc:  # a bug reached by an outsider's input: a 400, never a 500
            return self._refuse(BAD_REQUEST, UNEXPECTED, type(exc).__name__, logging.WARNING)
        if isinstance(verdict, Response):
            return verdict
        fields, digest = verdict
        # A failure to schedule is ours, not the sender's: it propagates (500, so WeCom retries) and
        # the envelope is marked seen only afterwards, so that retry schedules the pull.
        self._dispatch(fields)
        self._seen.add(digest)
        return SUCCESS

    def _verify_url(self, query: Mapping[str, str]) -> Response:
        params = _signature_params(query, "echostr")
        if params is None:
            return self._refuse(BAD_REQUEST, BAD_QUERY)
        signed, echostr = params
        refused = self._check(signed, echostr)
        if refused is not None:
            return refused
        opened = self._decrypt(echostr)
        if isinstance(opened, Response):
            return opened
        key = b"GET" + _digest(echostr)
        if key not in self._seen:  # a replayed verification is answered again, but logged once
            self._seen.add(key)
            logger.info("callback URL verified")
        return Response(200, opened)

    def _verify_post(self, query: Mapping[str, str], body: bytes) -> Response | tuple[dict[str, str], bytes]:
        """The payload's fields and the envelope's digest, or the answer that refuses it."""
        if len(body) > self._max_body:
            return self._refuse(TOO_LARGE, xml_guard.TOO_LARGE)
        params = _signature_params(query)
        if params is None:
            return self._refuse(BAD_REQUEST, BAD_QUERY)
        signed, _ = params
        try:
            encrypt = parse_xml_fields(body, self._max_body).get("Encrypt", "")
        except MalformedXml as exc:
            status = TOO_LARGE if exc.kind == xml_guard.TOO_LARGE else BAD_REQUEST
            return self._refuse(status, exc.kind, exc.detail)  # our own wording, never the sender's
        if not encrypt:
            return self._refuse(BAD_REQUEST, xml_guard.MALFORMED, "no Encrypt element")
        refused = self._check(signed, encrypt)
        if refused is not None:
            return refused
        # The signature covers Encrypt, so a verified Encrypt seen before is the same callback again
        # (WeCom's retry after a timeout, or a replay): answer as before, schedule nothing.
        digest = _digest(encrypt)
        if digest in self._seen:
            return self._refuse(SUCCESS, REPLAYED)
        plain = self._decrypt(encrypt)
        if isinstance(plain, Response):
            return plain
        try:
            return parse_xml_fields(plain, self._max_body), digest
        except MalformedXml as exc:  # signed by WeCom yet not its payload: the operator should know
            return self._refuse(BAD_REQUEST, f"decrypted payload: {exc.kind}", exc.detail, logging.WARNING)

    def _check(self, signed: _Signed, payload: str) -> Response | None:
        """Refuse a timestamp outside the window or a bad signature; None when both are fine."""
        skew = abs(self._clock() - signed.timestamp)
        if skew > self._window:
            if not self._signature_ok(signed, payload):
                return self._refuse(FORBIDDEN, STALE)
            # Signed by WeCom: our clock is off, or someone replays captured traffic.
            detail = f"{skew:.0f} s from our clock: check NTP, or old callbacks are replayed"
            return self._refuse(FORBIDDEN, STALE_SIGNED, detail, logging.WARNING)
        if self._signature_ok(signed, payload):
            return None
        if self._looks_authentic(payload):
            detail = "our AES key opens a fresh payload but the signature fails: check wechatcom_kf_token"
            return self._refuse(FORBIDDEN, TOKEN_MISMATCH, detail, logging.WARNING)
        return self._refuse(FORBIDDEN, BAD_SIGNATURE)

    def _looks_authentic(self, payload: str) -> bool:
        """Whether a payload with a bad signature is nonetheless WeCom's, fresh: only a holder of our AES
        key makes one that opens for our corp, so then the Token setting is wrong, not the sender. Not
        seen before and a fresh CreateTime, so a captured callback replayed with a made-up signature
        does not raise this alarm."""
        if _digest(payload) in self._seen:
            return False
        try:
            fields = parse_xml_fields(self._prp.decrypt(payload, self._corp_id), self._max_body)
            created = int(fields.get("CreateTime", ""))
        except Exception:  # the usual forgery: neither Token nor AES key known to the sender
            return False
        return abs(self._clock() - created) <= self._window

    def _signature_ok(self, signed: _Signed, payload: str) -> bool:
        """SHA1 of the sorted [Token, timestamp, nonce, payload] (doc 90930), compared in constant time."""
        parts = [self._token, *(p.encode("utf-8") for p in (signed.timestamp_text, signed.nonce, payload))]
        expected = hashlib.sha1(b"".join(sorted(parts))).hexdigest().encode("ascii")
        return hmac.compare_digest(expected, signed.signature.encode("utf-8"))

    def _decrypt(self, payload: str) -> str | Response:
        """The plaintext of a signed payload; a refusal is logged as a WARNING, since only WeCom (or a
        holder of the Token) signs: the AES key or corp id in the settings is wrong."""
        try:
            return str(self._prp.decrypt(payload, self._corp_id))
        except InvalidCorpIdException:
            return self._refuse(FORBIDDEN, CORP_MISMATCH, "check wechatcom_corp_id", logging.WARNING)
        except Exception:
            return self._refuse(BAD_REQUEST, UNDECRYPTABLE, "check wechatcom_kf_aes_key", logging.WARNING)

    def _refuse(self, response: Response, kind: str, detail: str = "", level: int = logging.INFO) -> Response:
        self._refusals.refuse(kind, detail, level)
        return response

    def _dispatch(self, fields: dict[str, str]) -> None:
        msg_type, event = fields.get("MsgType"), fields.get("Event")
        token, open_kfid = fields.get("Token", ""), fields.get("OpenKfId", "")
        if msg_type == "event" and event == "kf_msg_or_event" and token and open_kfid:
            logger.debug("kf_msg_or_event for %s", open_kfid)
            self._schedule(open_kfid, token)
            return
        logger.debug("callback ignored: MsgType=%s Event=%s", msg_type, event)


def _digest(value: str) -> bytes:
    # 16 bytes of SHA-256: collision-free for our purpose and small in a 100k-entry set.
    return hashlib.sha256(value.encode("utf-8")).digest()[:16]


def _signature_params(query: Mapping[str, str], extra: str | None = None) -> tuple[_Signed, str] | None:
    """The signed parameters and ``extra`` (or ""), or None when one is missing or absurd."""
    names = ["msg_signature", "timestamp", "nonce", *([extra] if extra else [])]
    values: list[str] = []
    for name in names:
        value = query.get(name)
        if not isinstance(value, str) or not value or len(value) > MAX_PARAM_CHARS:
            return None
        values.append(value)
    timestamp = values[1]
    if not (timestamp.isascii() and timestamp.isdigit()) or len(timestamp) > MAX_TIMESTAMP_DIGITS:
        return None
    signed = _Signed(values[0], int(timestamp), timestamp, values[2])
    return signed, values[3] if extra else ""
