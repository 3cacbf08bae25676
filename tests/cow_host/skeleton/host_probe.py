"""Test-only: what the fake host saw (bot calls, send() calls and failures, finished contexts), one
JSON object per line in ``host_events.jsonl`` next to this file."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

EVENTS_FILE = Path(__file__).resolve().parent / "host_events.jsonl"
_lock = threading.Lock()


def record(kind: str, **fields: Any) -> None:
    line = json.dumps({"kind": kind, "time": time.time(), **fields}, ensure_ascii=False, default=str)
    with _lock, EVENTS_FILE.open("a", encoding="utf-8") as out:
        out.write(line + "\n")
