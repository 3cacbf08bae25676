"""Callback encryption and signing, done with wechatpy's enterprise crypto (the real thing)."""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from xml.sax.saxutils import escape

import xmltodict
from wechatpy.enterprise.crypto import PrpCrypto, WeChatCrypto


def new_aes_key() -> str:
    """A 43-character EncodingAESKey (base64 of 32 bytes without the trailing '=')."""
    return base64.b64encode(secrets.token_bytes(32)).decode("ascii")[:-1]


def signature(token: str, timestamp: str, nonce: str, encrypt: str) -> str:
    """SHA1 over the sorted concatenation, as in doc 90930."""
    return hashlib.sha1("".join(sorted([token, timestamp, nonce, encrypt])).encode("utf-8")).hexdigest()


def new_nonce() -> str:
    return str(secrets.randbelow(10**10)).zfill(10)


def kf_event_xml(corp_id: str, create_time: int, sync_token: str, open_kfid: str) -> str:
    """The decrypted callback payload of fact sheet §1."""
    return (
        f"<xml><ToUserName><![CDATA[{corp_id}]]></ToUserName><CreateTime>{create_time}</CreateTime>"
        "<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[kf_msg_or_event]]></Event>"
        f"<Token><![CDATA[{sync_token}]]></Token><OpenKfId><![CDATA[{open_kfid}]]></OpenKfId></xml>"
    )


class CallbackCrypto:
    """Builds signed, encrypted callback requests for one corp."""

    def __init__(self, token: str, aes_key: str, corp_id: str) -> None:
        self.token = token
        self.aes_key = aes_key
        self.corp_id = corp_id
        self._crypto = WeChatCrypto(token, aes_key, corp_id)

    def encrypt_post(self, plaintext_xml: str) -> tuple[dict[str, str], bytes]:
        """Query params and the XML envelope body of one message push."""
        nonce = new_nonce()
        timestamp = str(int(time.time()))
        wrapped = xmltodict.parse(self._crypto.encrypt_message(plaintext_xml, nonce, timestamp))["xml"]
        encrypt = wrapped["Encrypt"]
        body = (
            f"<xml><ToUserName><![CDATA[{escape(self.corp_id)}]]></ToUserName><AgentID></AgentID>"
            f"<Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"
        )
        params = {"msg_signature": wrapped["MsgSignature"], "timestamp": timestamp, "nonce": nonce}
        return params, body.encode("utf-8")

    def encrypt_echostr(self, echo: str) -> dict[str, str]:
        """Query params of a URL-verification GET whose plaintext echo is ``echo``."""
        nonce = new_nonce()
        timestamp = str(int(time.time()))
        echostr = PrpCrypto(self._crypto.key).encrypt(echo, self.corp_id)
        echostr_text = echostr.decode("ascii") if isinstance(echostr, bytes) else str(echostr)
        return {
            "msg_signature": signature(self.token, timestamp, nonce, echostr_text),
            "timestamp": timestamp,
            "nonce": nonce,
            "echostr": echostr_text,
        }
