"""One declared setting (name, default, type, environment variable, description) and how a value from
the environment or config.json is brought to its type — never by evaluating code."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class SettingSpec:
    name: str
    default: Any
    kind: type
    env: str | None
    description: str
    aliases: tuple[str, ...] = ()
    secret: bool = False


def parse_setting_value(raw: str, kind: type) -> Any:
    """Parse an environment variable's text into ``kind``; never evaluates code.

    Raises ValueError naming what was expected when the text does not fit.
    """
    text = raw.strip()
    if kind is bool:
        lowered = text.lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off", ""):
            return False
        raise ValueError(f"expected a boolean (true/false), got {raw!r}")
    if kind is int:
        return int(text)
    if kind is float:
        return float(text)
    if kind in (list, dict):
        if kind is list and not text.startswith("["):
            return [part.strip() for part in text.split(",") if part.strip()]
        value = json.loads(text)
        if not isinstance(value, kind):
            raise ValueError(f"expected a JSON {kind.__name__}, got {raw!r}")
        return value
    return raw


def coerce_setting_value(value: Any, kind: type) -> Any:
    """Bring a config.json value to ``kind`` (JSON gives ints for floats, strings for numbers...)."""
    if isinstance(value, str) and kind is not str:
        return parse_setting_value(value, kind)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind is not Any and not isinstance(value, kind):
        raise ValueError(f"expected {kind.__name__}, got {type(value).__name__}")
    return value
