"""``python app.py --doctor``: check a deployment with the configuration a start would use.

One line per check, Chinese and English, with the fix when something is wrong::

    [ok]   配置 settings: 已加载，必填项齐全 / loaded, every required setting is set (...)
    [FAIL] 令牌 gettoken: wechatcom_kf_secret 无效 / ... → 修复 fix: 把 wechatcom_kf_secret 设为 ... / ...

The exit code is 1 when any check failed, else 0 (warnings and skips do not fail: a check is skipped
only when one it needs failed). The checks are in ``doctor_local.py``, ``doctor_wecom.py`` and
``doctor_model.py``, what they share in ``doctor_results.py``; nothing here starts the channel, pulls
messages or sends any.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import TextIO

from .doctor_local import check_ffmpeg, check_port, check_settings, check_state
from .doctor_model import check_model
from .doctor_results import FAIL, Context, Result, bilingual
from .doctor_wecom import check_accounts, check_service_states, check_token
from .host import HostConfig
from .redaction import redact

logger = logging.getLogger(__name__)

EXIT_HEALTHY, EXIT_PROBLEMS = 0, 1

Check = Callable[[Context], Result]
CHECKS: tuple[tuple[str, Check], ...] = (
    ("配置 settings", check_settings),
    ("令牌 gettoken", check_token),
    ("客服账号 kf/account/list", check_accounts),
    ("回调端口 callback port", check_port),
    ("状态存储 state store", check_state),
    ("语音 ffmpeg", check_ffmpeg),
    ("模型 model", check_model),
    ("会话状态 service state (95018)", check_service_states),
)


def format_line(label: str, result: Result) -> str:
    """``[status] label: summary`` plus ``→ 修复 fix: ...`` when there is a fix; one line, redacted."""
    line = f"[{result.status}]".ljust(7) + f"{label}: {result.summary}"
    if result.fix:
        line += f" → 修复 fix: {result.fix}"
    return redact(" ".join(line.splitlines()))


def run_check(check: Check, ctx: Context) -> Result:
    """``check(ctx)``; an unexpected exception is that check's failure, never the end of the report."""
    try:
        return check(ctx)
    except Exception as exc:
        logger.debug("doctor check %s raised", check.__name__, exc_info=True)
        detail = f"{type(exc).__name__}: {exc}"
        return Result(FAIL, bilingual("检查本身出错", "the check itself failed", detail))


def run_doctor(
    config: HostConfig,
    *,
    sandbox: bool = False,
    out: TextIO | None = None,
    runtime_bot: Callable[[], tuple[str, str | None]] | None = None,
) -> int:
    """Run every check against ``config`` (``conf()``), print one line each; the exit code.

    ``sandbox``: the configuration was rewritten for the local emulator (the echo bot is fine there).
    ``runtime_bot``: the host's own verdict on its bot settings (kind, problem), when it has one.
    """
    stream = out if out is not None else sys.stdout
    ctx = Context(config, sandbox=sandbox, runtime_bot=runtime_bot)
    failed = False
    try:
        for label, check in CHECKS:
            result = run_check(check, ctx)
            print(format_line(label, result), file=stream, flush=True)
            failed = failed or result.status == FAIL
    finally:
        ctx.close()
    return EXIT_PROBLEMS if failed else EXIT_HEALTHY
