"""What the doctor's checks share: the :class:`Context` they fill in and the :class:`Result` each returns.

Each check takes the Context, may leave something in it for the checks after it (the settings, a client
with a working token, the accounts it sees, a reader of the state store) and returns one Result: a
status, a summary and, when something is wrong, the fix, each in Chinese and English. A check whose
prerequisite failed is skipped (it would only repeat the failure).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .api import KfApi
from .host import HostConfig, safe_get
from .settings import KfSettings
from .store.base import RawItem

OK, WARN, FAIL, SKIP = "ok", "warn", "FAIL", "skip"
PROBE_TIMEOUT_SECONDS = 10.0  # model endpoint and WeCom calls: a doctor should answer quickly


def bilingual(zh: str, en: str, detail: object = "") -> str:
    """ "中文 / English", then ``: detail`` (an error text, usually English) when there is one."""
    return f"{zh} / {en}: {detail}" if detail else f"{zh} / {en}"


@dataclass(frozen=True)
class Result:
    status: str  # OK, WARN, FAIL or SKIP
    summary: str
    fix: str = ""


@dataclass
class Context:
    """What the checks share, filled in as they pass."""

    config: HostConfig
    sandbox: bool = False
    settings: KfSettings | None = None
    api: KfApi | None = None  # set once gettoken worked
    accounts: list[dict[str, Any]] | None = None  # what kf/account/list answered
    read_recent: Callable[[], list[RawItem]] | None = None  # the state store's recent items
    # This runtime's own verdict on its bot settings: (kind "echo"/"openai"/"dify", problem or None).
    # None inside another host, whose bots the channel knows nothing about.
    runtime_bot: Callable[[], tuple[str, str | None]] | None = None
    _closers: list[Callable[[], None]] = field(default_factory=list)

    def get(self, key: str, default: Any = None) -> Any:
        return safe_get(self.config, key, default)

    def on_close(self, closer: Callable[[], None]) -> None:
        self._closers.append(closer)

    def close(self) -> None:
        for closer in reversed(self._closers):
            with contextlib.suppress(Exception):  # closing a client must not hide the report
                closer()
        self._closers.clear()


def skipped(prerequisite: str) -> Result:
    return Result(SKIP, bilingual(f"跳过：{prerequisite} 未通过", f"skipped: {prerequisite} did not pass"))
