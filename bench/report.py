"""Targets and the human summary printed after the JSON lines. Targets are reported, never asserted."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Target:
    label: str
    figure: Callable[[dict[str, Any]], Any]  # the figure from one scenario's JSON (or one burst run)
    check: Callable[[Any], bool]  # on the figure; a None figure is below target
    wanted: str
    unit: str = ""


def _exactly_once(run: dict[str, Any]) -> tuple[int, int, int] | None:
    """(answered, messages, duplicates) of one burst run."""
    try:
        answered, missing, dups = int(run["answered"]), int(run["missing"]), int(run["duplicates"])
    except (KeyError, TypeError, ValueError):
        return None
    return answered, answered + missing, dups


def _once_ok(value: tuple[int, int, int]) -> bool:
    answered, messages, dups = value
    return answered == messages and dups == 0


TARGETS: dict[str, list[Target]] = {
    "ack": [Target("callback p99", lambda r: r.get("p99_ms"), lambda v: v < 10, "< 10 ms", " ms")],
    "burst": [
        Target(
            "all answered exactly once",
            _exactly_once,
            _once_ok,
            "(answered, messages, duplicates) = (N, N, 0)",
        ),
        Target("ratio to ideal", lambda r: r.get("ratio"), lambda v: v <= 1.5, "<= 1.5"),
    ],
    "throughput": [
        Target(
            "replies per second",
            lambda r: r.get("replies_per_s"),
            lambda v: v >= 500,
            ">= 500 (2 cores)",
            "/s",
        )
    ],
    "memory": [
        Target(
            "RSS growth per 100k messages",
            lambda r: r.get("growth_mb_per_100k"),
            lambda v: v < 50,
            "< 50 MB",
            " MB",
        )
    ],
    "soak": [
        Target(
            "RSS growth per 100k messages",
            lambda r: r.get("growth_mb_per_100k"),
            lambda v: v <= 30,
            "<= 30 MB",
            " MB",
        ),
        Target("RSS at the end", lambda r: r.get("rss_end_mb"), lambda v: v <= 200, "<= 200 MB", " MB"),
        Target(
            "replies/s, last segment / first",
            lambda r: r.get("rate_last_vs_first"),
            lambda v: v >= 0.9,
            ">= 0.9",
        ),
    ],
    "firstpart": [
        Target(
            "first part / last part (streamed)",
            lambda r: r.get("first_over_last"),
            lambda v: v <= 0.4,
            "<= 0.4",
        )
    ],
}
BURST_LAST_REPLY = Target(
    "time to last reply", lambda r: r.get("time_to_last_reply_s"), lambda v: v < 3, "< 3 s at 256", " s"
)


def _verdict(target: Target, data: dict[str, Any]) -> str:
    value = target.figure(data)
    try:
        ok = value is not None and target.check(value)
    except (TypeError, ValueError):
        ok = False
    shown = "n/a" if value is None else f"{value}{target.unit}"
    return f"{target.label}: {shown} (target {target.wanted}) {'ok' if ok else 'below target'}"


def _info(result: dict[str, Any]) -> str:
    name = result.get("scenario")
    if name == "ack":
        return (
            f"p50 {result.get('p50_ms')} ms, max {result.get('max_ms')} ms, non-200 {result.get('non_200')}"
        )
    if name == "throughput":
        return f"{result.get('cpu_s_per_1000')} app CPU s per 1,000 messages"
    if name == "crypto":
        return f"{result.get('ops_per_s')} verify+decrypt per second on one core"
    if name == "memory":
        return (
            f"RSS start {result.get('rss_start_mb')} MB, before {result.get('rss_before_mb')} MB, "
            f"after {result.get('rss_after_mb')} MB, after idle {result.get('rss_after_idle_mb')} MB"
        )
    if name == "soak":
        return (
            f"{result.get('replies')} replies from {result.get('customers')} customers, RSS start "
            f"{result.get('rss_start_mb')} MB, end {result.get('rss_end_mb')} MB, after idle "
            f"{result.get('rss_after_idle_mb')} MB"
        )
    if name == "compaction":
        return (
            f"{result.get('done_ids')} done ids ({result.get('held_mb')} MB held): compaction peak "
            f"{result.get('compaction_peak_mb')} MB, {result.get('compaction_cpu_s')} CPU s; load peak "
            f"{result.get('load_peak_mb')} MB, {result.get('load_cpu_s')} CPU s"
        )
    if name == "restart":
        parts = []
        for key in ("cold", "warm"):
            run = result.get(key) or {}
            parts.append(
                f"{key}: port {run.get('port_open_s')} s, first 200 {run.get('first_callback_200_s')} s, "
                f"first reply {run.get('first_reply_s')} s"
            )
        return "; ".join(parts)
    return ""


def summary_lines(results: list[dict[str, Any]]) -> list[str]:
    """A few lines per scenario: each target with "ok" or "below target", and the main figure otherwise."""
    lines = ["", "summary (targets are reported, not asserted):"]
    for result in results:
        name = str(result.get("scenario"))
        head = f"  {name:<10}"
        if result.get("error"):
            lines.append(f"{head} ERROR {result['error']}")
            continue
        if result.get("timed_out"):
            lines.append(f"{head} TIMED OUT (partial figures)")
        if name == "burst":
            for run in result.get("runs", []):
                targets = [*TARGETS["burst"], *([BURST_LAST_REPLY] if run.get("concurrency") == 256 else [])]
                verdicts = "; ".join(_verdict(t, run) for t in targets)
                lines.append(f"{head} concurrency {run.get('concurrency')}: {verdicts}")
            continue
        for target in TARGETS.get(name, []):
            lines.append(f"{head} {_verdict(target, result)}")
        info = _info(result)
        if info:
            lines.append(f"{head} {info}")
    return lines
