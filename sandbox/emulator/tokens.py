"""Access tokens (gettoken) and the short-lived sync tokens carried by callbacks."""

from __future__ import annotations

import threading
import time

from sandbox.emulator.models import ACCESS_TOKEN_TTL, SYNC_TOKEN_TTL, ApiError
from sandbox.emulator.state import random_token


class TokenRegistry:
    """Issues and checks tokens. Wall-clock ages for access tokens, the emulator clock for sync tokens."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._issued: dict[str, float] = {}  # access_token -> issued at (monotonic)
        self._revoked: set[str] = set()
        self._current: str | None = None
        self._sync: dict[str, tuple[str, float]] = {}  # sync token -> (open_kfid, expires_at)
        self.lifetime: float | None = None  # seconds; set from faults.invalidate_tokens_every
        self.all_issued: list[str] = []

    def issue_access_token(self) -> tuple[str, int]:
        """Return the current token while it is valid (as WeCom does), else a fresh one."""
        with self._lock:
            if self._current is not None and self._state(self._current) == 0:
                age = time.monotonic() - self._issued[self._current]
                return self._current, max(1, int(ACCESS_TOKEN_TTL - age))
            token = random_token(64, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")
            self._issued[token] = time.monotonic()
            self._current = token
            self.all_issued.append(token)
            return token, ACCESS_TOKEN_TTL

    def _state(self, token: str) -> int:
        """0 valid, 40014 unknown or revoked, 42001 expired."""
        issued = self._issued.get(token)
        if issued is None or token in self._revoked:
            return 40014
        age = time.monotonic() - issued
        limit = ACCESS_TOKEN_TTL if self.lifetime is None else min(self.lifetime, ACCESS_TOKEN_TTL)
        return 42001 if age >= limit else 0

    def check_access_token(self, token: str | None) -> None:
        """Raise the documented errcode for a missing (41001), invalid (40014) or expired (42001) token."""
        if not token:
            raise ApiError(41001, "access_token missing")
        with self._lock:
            code = self._state(token)
        if code == 40014:
            raise ApiError(40014, "invalid access_token")
        if code == 42001:
            raise ApiError(42001, "access_token expired")

    def revoke_all(self) -> None:
        with self._lock:
            self._revoked.update(self._issued)
            self._current = None

    def issue_sync_token(self, open_kfid: str, now: float) -> str:
        """A callback ``Token`` for sync_msg, valid 10 minutes for this open_kfid."""
        token = "ENC" + random_token(40)
        with self._lock:
            # Drop expired ones so the table stays bounded under long runs.
            if len(self._sync) > 10000:
                self._sync = {k: v for k, v in self._sync.items() if v[1] > now}
            self._sync[token] = (open_kfid, now + SYNC_TOKEN_TTL)
        return token

    def check_sync_token(self, token: str, open_kfid: str, now: float) -> None:
        with self._lock:
            entry = self._sync.get(token)
        if entry is None or entry[0] != open_kfid or entry[1] <= now:
            raise ApiError(95007, "invalid msg token")

    def issued_access_tokens(self) -> list[str]:
        with self._lock:
            return list(self.all_issued)
