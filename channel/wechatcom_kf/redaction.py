"""Secret redaction: every text that may reach a log line passes through :func:`redact` first.

requests' exception messages carry the URL with ``access_token=``, gettoken URLs carry
``corpsecret=``; the corp secret, callback token, AES key, Redis password and every access_token the
channel obtains are registered here and replaced wherever they appear.
"""

from __future__ import annotations

import re
import threading

_PARAM_RE = re.compile(r"(?i)\b(access_token|corpsecret|secret)(=|%3D)[^&\s'\"<>]*")
_JSON_RE = re.compile(r"(?i)([\"'](?:access_token|corpsecret|secret)[\"']\s*:\s*[\"'])[^\"']*")
_MAX_SECRETS = 64
_MIN_SECRET_LEN = 6  # shorter values would redact ordinary words
_secrets: dict[str, None] = {}  # insertion-ordered; oldest dropped beyond _MAX_SECRETS
_secrets_lock = threading.Lock()


def register_secret(value: str | None) -> None:
    """Make :func:`redact` remove ``value`` wherever it appears (bounded registry)."""
    if not value or len(value) < _MIN_SECRET_LEN:
        return
    with _secrets_lock:
        _secrets.pop(value, None)
        _secrets[value] = None
        while len(_secrets) > _MAX_SECRETS:
            del _secrets[next(iter(_secrets))]


def redact(text: object) -> str:
    """Return ``text`` with access tokens, corp secrets and registered secrets replaced by ``***``."""
    out = _PARAM_RE.sub(lambda m: f"{m.group(1)}{m.group(2)}***", str(text))
    out = _JSON_RE.sub(lambda m: f"{m.group(1)}***", out)
    with _secrets_lock:
        known = list(_secrets)
    for secret in known:
        if secret in out:
            out = out.replace(secret, "***")
    return out
