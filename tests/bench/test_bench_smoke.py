"""``python -m bench --smoke`` runs end to end and prints one JSON line per scenario with the expected
keys. A structure check of the benchmark itself, not a gate on the figures (machines are noisy)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

EXPECTED_KEYS = {
    "ack": {"callbacks", "in_flight", "p50_ms", "p99_ms", "max_ms", "non_200", "serial_p99_ms"},
    "burst": {"customers", "bot_latency_s", "runs"},
    "throughput": {"messages", "customers", "replies", "replies_per_s", "cpu_s_per_1000", "app_cpu_s"},
    "crypto": {"via", "ops", "ops_per_s", "failures"},
    "memory": {"messages", "rss_start_mb", "rss_before_mb", "rss_after_mb", "rss_after_idle_mb", "growth_mb"},
    "restart": {"cold", "warm"},
    "cowhost": {"customers", "bot_latency_s", "runtime_s", "hosts"},
    "soak": {"messages", "customers", "samples", "rss_start_mb", "rss_end_mb", "rss_after_idle_mb"},
    "firstpart": {"answer_bytes", "streamed", "not_streamed", "first_over_last"},
    "compaction": {"done_ids", "compaction_peak_mb", "compaction_cpu_s", "load_peak_mb", "load_cpu_s"},
}
SOAK_SAMPLE_KEYS = {"messages", "rss_mb", "replies_per_s", "cpu_ms_per_msg"}
BURST_RUN_KEYS = {
    "concurrency",
    "answered",
    "missing",
    "duplicates",
    "time_to_last_reply_s",
    "reply_p50_s",
    "reply_p99_s",
    "ideal_s",
    "ratio",
    "timed_out",
}
RESTART_KEYS = {"port_open_s", "first_callback_200_s", "first_reply_s", "timed_out"}


def test_smoke_run_prints_one_json_line_per_scenario_with_the_expected_keys() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:] + proc.stdout[-2000:]
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert [line["scenario"] for line in lines] == list(EXPECTED_KEYS)
    for line in lines:
        name = line["scenario"]
        assert "error" not in line, line
        missing = (EXPECTED_KEYS[name] | {"timed_out", "smoke"}) - set(line)
        assert not missing, f"{name} lacks {sorted(missing)}"
        assert line["smoke"] is True
    burst = lines[1]
    assert [run["concurrency"] for run in burst["runs"]] == [64, 256]
    for run in burst["runs"]:
        assert not BURST_RUN_KEYS - set(run), run
    for phase in ("cold", "warm"):
        assert not RESTART_KEYS - set(lines[5][phase]), lines[5]
    soak = next(line for line in lines if line["scenario"] == "soak")
    assert [sample["messages"] for sample in soak["samples"]] == [0, 250, 500, 750, 1000]
    assert all(not SOAK_SAMPLE_KEYS - set(sample) for sample in soak["samples"])
    assert soak["replies"] == 1000
    first = next(line for line in lines if line["scenario"] == "firstpart")
    assert first["streamed"]["parts"] == first["not_streamed"]["parts"] == 3  # the same parts either way
    assert "summary" in proc.stdout.split("\n{")[-1]
