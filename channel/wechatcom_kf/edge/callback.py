"""The callback endpoint's logic, independent of the HTTP server (invariant 1: ack fast).

Verify the signature and decrypt with wechatpy's ``WeChatCrypto`` (built once at start), read
``Token`` and ``OpenKfId`` with ElementTree and schedule a pull — no network I/O here. Callback
protocol: https://developer.work.weixin.qq.com/document/path/90930 and /94670.

Why libraries rather than hand-written code: the crypto is the one WeCom's own samples and the emulator
use, and a real XML parser reads what a regular expression would misread (comments, entities, CDATA
split across sections). Both cost microseconds next to the network; DTDs are refused before parsing,
so nothing is expanded or fetched.

Status codes: 200 verified (GET: the plaintext echo; POST: ``success`` — WeCom accepts an empty body
or ``success``, we answer the literal so a human reading access logs sees it was handled),
400 malformed, 403 bad signature or corp id, 405 other methods, 413 body over the cap.
Answers never carry a traceback or any detail beyond a short reason.
"""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from wechatpy.enterprise.crypto import WeChatCrypto
from wechatpy.enterprise.exceptions import InvalidCorpIdException
from wechatpy.exceptions import InvalidSignatureException

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024
MAX_PARAM_CHARS = 1024
SUCCESS_BODY = "success"
_FORGED = (InvalidSignatureException, InvalidCorpIdException)


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

BAD_REQUEST = Response(400, "bad request")
FORBIDDEN = Response(403, "forbidden")
TOO_LARGE = Response(413, "payload too large")


class MalformedXml(ValueError):
    """The XML is not what a WeCom callback carries."""


def parse_xml_fields(text: str | bytes) -> dict[str, str]:
    """Child elements of an ``<xml>`` root as ``{tag: text}``; refuses DTDs (no entity expansion)."""
    raw = text.encode("utf-8") if isinstance(text, str) else text
    if len(raw) > MAX_BODY_BYTES * 2:
        raise MalformedXml("xml too large")
    upper = raw.upper()
    if b"<!DOCTYPE" in upper or b"<!ENTITY" in upper:
        raise MalformedXml("DTDs are not accepted")
    try:
        root = ET.fromstring(raw)
    except ET.ParseError as exc:
        raise MalformedXml("not well-formed xml") from exc
    if root.tag != "xml":
        raise MalformedXml("root element is not <xml>")
    return {child.tag: (child.text or "").strip() for child in root}


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
    """Verifies and decrypts callbacks, then calls ``schedule(open_kfid, token)``."""

    def __init__(
        self,
        token: str,
        aes_key: str,
        corp_id: str,
        schedule: Callable[[str, str], None],
        max_body_bytes: int = MAX_BODY_BYTES,
    ) -> None:
        self._crypto = _new_crypto(token, aes_key, corp_id)
        self._schedule = schedule
        self._max_body = max_body_bytes

    @property
    def max_body_bytes(self) -> int:
        return self._max_body

    def handle_get(self, query: Mapping[str, str]) -> Response:
        """URL verification: answer the decrypted ``echostr`` within WeCom's 1 s."""
        params = _signature_params(query, "echostr")
        if params is None:
            return BAD_REQUEST
        signature, timestamp, nonce, echostr = params
        try:
            echo = self._crypto.check_signature(signature, timestamp, nonce, echostr)
        except _FORGED:
            logger.warning("callback URL verification with a bad signature or corp id refused")
            return FORBIDDEN
        except Exception as exc:  # garbage in the echostr: whatever wechatpy raised, it is a 400
            logger.warning("callback URL verification: undecryptable echostr (%s)", type(exc).__name__)
            return BAD_REQUEST
        logger.info("callback URL verified")
        return Response(200, echo)

    def handle_post(self, query: Mapping[str, str], body: bytes) -> Response:
        """A message push: verify, decrypt, schedule the pull, answer at once."""
        if len(body) > self._max_body:
            return TOO_LARGE
        params = _signature_params(query)
        if params is None:
            return BAD_REQUEST
        signature, timestamp, nonce, _ = params
        try:
            encrypt = parse_xml_fields(body).get("Encrypt")
        except MalformedXml as exc:
            logger.info("callback with a malformed body refused (%s)", exc)
            return BAD_REQUEST
        if not encrypt:
            logger.info("callback without an Encrypt element refused")
            return BAD_REQUEST
        try:
            # The envelope is already parsed (DTD refused): hand wechatpy the dict it accepts.
            plain = self._crypto.decrypt_message({"Encrypt": encrypt}, signature, timestamp, nonce)
            fields = parse_xml_fields(plain)
        except _FORGED as exc:
            logger.warning("callback refused: %s", type(exc).__name__)
            return FORBIDDEN
        except Exception as exc:  # undecryptable or not XML: never a 500 for garbage input
            logger.warning("callback with an undecryptable payload refused (%s)", type(exc).__name__)
            return BAD_REQUEST
        self._dispatch(fields)
        return Response(200, SUCCESS_BODY)

    def _dispatch(self, fields: dict[str, str]) -> None:
        msg_type, event = fields.get("MsgType"), fields.get("Event")
        token, open_kfid = fields.get("Token", ""), fields.get("OpenKfId", "")
        if msg_type == "event" and event == "kf_msg_or_event" and token and open_kfid:
            logger.debug("kf_msg_or_event for %s", open_kfid)
            self._schedule(open_kfid, token)
            return
        logger.debug("callback ignored: MsgType=%s Event=%s", msg_type, event)


def _signature_params(query: Mapping[str, str], extra: str | None = None) -> tuple[str, str, str, str] | None:
    """``(msg_signature, timestamp, nonce, extra or "")``, or None when one is missing or absurd."""
    names = ["msg_signature", "timestamp", "nonce", *([extra] if extra else [])]
    values: list[str] = []
    for name in names:
        value = query.get(name)
        if not isinstance(value, str) or not value or len(value) > MAX_PARAM_CHARS:
            return None
        values.append(value)
    return values[0], values[1], values[2], values[3] if extra else ""
