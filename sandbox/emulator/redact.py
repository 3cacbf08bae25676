"""Keep credentials out of the protocol log, the control API and log lines."""

from __future__ import annotations

import re
from typing import Any

_QUERY_SECRET = re.compile(r"((?:access_token|corpsecret|secret)=)[^&\s\"']+", re.IGNORECASE)
SECRET_KEYS = {"access_token", "corpsecret", "secret", "aes_key", "encodingaeskey"}
SHORT_LIVED_KEYS = {"token", "Token", "code", "welcome_code", "msg_code"}
MASK = "***"


def redact_text(text: str, secrets: list[str] | None = None) -> str:
    """Mask ``access_token=…``/``corpsecret=…`` and any literal secret in ``text``."""
    text = _QUERY_SECRET.sub(r"\1" + MASK, text)
    for secret in secrets or ():
        if secret:
            text = text.replace(secret, MASK)
    return text


def shorten(value: str) -> str:
    """Show only the start of a short-lived token (enough to correlate, useless to replay)."""
    return value[:6] + "…" if len(value) > 8 else MASK


def redact_value(value: Any, secrets: list[str] | None = None) -> Any:
    """A deep copy of a JSON-like value with secrets masked and short-lived tokens shortened."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if str(key).lower() in SECRET_KEYS:
                out[key] = MASK
            elif key in SHORT_LIVED_KEYS and isinstance(item, str):
                out[key] = shorten(item)
            else:
                out[key] = redact_value(item, secrets)
        return out
    if isinstance(value, list):
        return [redact_value(v, secrets) for v in value]
    if isinstance(value, str):
        return redact_text(value, secrets)
    return value
