"""The callback endpoint's logic, independent of the web framework (invariant 1: ack fast).

Verify the signature, decrypt (wire-compatible with wechatpy's WeChatCrypto, prepared once), read
``Token`` and ``OpenKfId`` and schedule a pull — no network I/O here. Callback protocol:
https://developer.work.weixin.qq.com/document/path/90930 and /94670.

Status codes: 200 verified (GET: the plaintext echo; POST: ``success`` — WeCom accepts an empty body
or ``success``, we answer the literal so a human reading access logs sees it was handled),
400 malformed, 403 bad signature or corp id, 405 other methods, 413 body over the cap.
Answers never carry a traceback or any detail beyond a short reason.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import re
import struct
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from xml.sax.saxutils import unescape

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024
MAX_PARAM_CHARS = 1024
SUCCESS_BODY = "success"


@dataclass(frozen=True)
class Response:
    status: int
    body: str

    @property
    def status_line(self) -> str:
        return f"{self.status} {_REASONS.get(self.status, 'Error')}"


_REASONS = {
    200: "OK",
    400: "Bad Request",
    403: "Forbidden",
    405: "Method Not Allowed",
    413: "Payload Too Large",
    500: "Internal Server Error",
}

BAD_REQUEST = Response(400, "bad request")
FORBIDDEN = Response(403, "forbidden")
TOO_LARGE = Response(413, "payload too large")


class MalformedXml(ValueError):
    """The XML is not what a WeCom callback carries."""


class BadSignature(Exception):
    """The signature does not match, or the payload names another corp (answered 403)."""


def parse_xml_fields(text: str | bytes) -> dict[str, str]:
    """Child elements of the XML root as ``{tag: text}``; refuses DTDs (no entity expansion)."""
    raw = text.encode("utf-8") if isinstance(text, str) else text
    if len(raw) > MAX_BODY_BYTES * 2:
        raise MalformedXml("xml too large")
    _refuse_dtd(raw)
    try:
        root = ET.fromstring(raw)
    except ET.ParseError as exc:
        raise MalformedXml("not well-formed xml") from exc
    return {child.tag: (child.text or "").strip() for child in root}


def _refuse_dtd(raw: bytes) -> None:
    upper = raw.upper()
    if b"<!DOCTYPE" in upper or b"<!ENTITY" in upper:
        raise MalformedXml("DTDs are not accepted")


# The envelope only matters for its base64 ``Encrypt`` value, which the signature then covers: a
# pattern limited to the base64 alphabet is the cheapest safe reader (nothing to expand or resolve).
_ENCRYPT = re.compile(rb"<Encrypt>\s*(?:<!\[CDATA\[([A-Za-z0-9+/=]*)\]\]>|([A-Za-z0-9+/=]*))\s*</Encrypt>")
# The decrypted payload is authenticated (signature and corp id checked) and flat: one pass over its
# child elements, text or CDATA, is all it needs.
_FIELD = re.compile(rb"<([A-Za-z]\w*)>\s*(?:<!\[CDATA\[(.*?)\]\]>|([^<]*))\s*</\1>", re.S)
_XML_ESCAPES = {"&quot;": '"', "&apos;": "'"}


def read_encrypt(body: bytes) -> str:
    """The ``Encrypt`` value of a callback envelope; MalformedXml when there is none."""
    _refuse_dtd(body)
    match = _ENCRYPT.search(body)
    value = (match.group(1) or match.group(2)) if match else None
    if not value:
        raise MalformedXml("no Encrypt element")
    return value.decode("ascii")


def read_payload_fields(plain: bytes) -> dict[str, str]:
    """Flat ``{tag: text}`` of a decrypted payload; MalformedXml when it is not one."""
    start = plain.find(b"<xml>")
    if start < 0 or not plain.rstrip().endswith(b"</xml>"):
        raise MalformedXml("not a callback payload")
    fields: dict[str, str] = {}
    try:
        for tag, cdata, text in _FIELD.findall(plain, start + 5):
            value = cdata.decode("utf-8") if cdata else unescape(text.decode("utf-8"), _XML_ESCAPES)
            fields[tag.decode("ascii")] = value.strip()
    except UnicodeDecodeError as exc:
        raise MalformedXml("payload is not UTF-8") from exc
    return fields


class CallbackCrypto:
    """WeCom's callback crypto (doc 90930: SHA1 signature, AES-256-CBC, PKCS#7 to 32 bytes).

    Wire-compatible with wechatpy's ``WeChatCrypto`` (the emulator encrypts with it), but the key,
    the cipher and the token are prepared once instead of on every callback.
    """

    def __init__(self, token: str, aes_key: str, corp_id: str) -> None:
        try:
            key = base64.b64decode((aes_key or "") + "=", validate=True)
        except (binascii.Error, ValueError):
            key = b""
        if len(key) != 32:
            # Say which setting is wrong, never its value.
            raise ValueError("wechatcom_kf_aes_key must be the 43-character EncodingAESKey")
        self._cipher = Cipher(algorithms.AES(key), modes.CBC(key[:16]))
        self._token = token
        self._corp_id = corp_id.encode("utf-8")

    def verify_and_decrypt(self, signature: str, timestamp: str, nonce: str, encrypted: str) -> bytes:
        """The plaintext message; BadSignature (403) or MalformedXml (400) otherwise."""
        signed = "".join(sorted([self._token, timestamp, nonce, encrypted])).encode("utf-8")
        expected = hashlib.sha1(signed).hexdigest().encode("ascii")
        if not hmac.compare_digest(expected, signature.encode("utf-8", "replace")):
            raise BadSignature("signature mismatch")
        try:
            raw = base64.b64decode(encrypted)
            decryptor = self._cipher.decryptor()
            plain = decryptor.update(raw) + decryptor.finalize()
        except (binascii.Error, ValueError) as exc:
            raise MalformedXml("undecryptable payload") from exc
        pad = plain[-1] if plain else 0
        content = plain[16 : len(plain) - pad]
        if not 1 <= pad <= 32 or len(content) < 4:
            raise MalformedXml("bad padding")
        (length,) = struct.unpack(">I", content[:4])
        if length > len(content) - 4:
            raise MalformedXml("bad length")
        if content[4 + length :] != self._corp_id:
            raise BadSignature("payload of another corp")
        return content[4 : 4 + length]


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
        self._crypto = CallbackCrypto(token, aes_key, corp_id)
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
            echo = self._crypto.verify_and_decrypt(signature, timestamp, nonce, echostr)
        except BadSignature:
            logger.warning("callback URL verification with a bad signature refused")
            return FORBIDDEN
        except MalformedXml as exc:
            logger.warning("callback URL verification: undecryptable echostr (%s)", exc)
            return BAD_REQUEST
        logger.info("callback URL verified")
        return Response(200, echo.decode("utf-8", "replace"))

    def handle_post(self, query: Mapping[str, str], body: bytes) -> Response:
        """A message push: verify, decrypt, schedule the pull, answer at once."""
        if len(body) > self._max_body:
            return TOO_LARGE
        params = _signature_params(query)
        if params is None:
            return BAD_REQUEST
        signature, timestamp, nonce, _ = params
        try:
            encrypt = read_encrypt(body)
        except MalformedXml as exc:
            logger.info("callback with a malformed body refused (%s)", exc)
            return BAD_REQUEST
        try:
            plain = self._crypto.verify_and_decrypt(signature, timestamp, nonce, encrypt)
            fields = read_payload_fields(plain)
        except BadSignature as exc:
            logger.warning("callback refused: %s", exc)
            return FORBIDDEN
        except MalformedXml as exc:
            logger.warning("callback with undecryptable payload refused (%s)", exc)
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
