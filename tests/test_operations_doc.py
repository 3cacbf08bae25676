"""docs/operations.md's systemd unit and installation steps: the unit passes ``systemd-analyze verify``
(silent: no unknown key, no bad value, an executable ExecStart) and agrees with the steps above it
(user, paths, the config the service starts with)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OPERATIONS = ROOT / "docs" / "operations.md"
CODE_DIR = "/opt/cow-kf"


def _block_after(marker: str, fence: str) -> str:
    text = OPERATIONS.read_text(encoding="utf-8")
    after = text[text.index(marker) :]
    return after.split(f"```{fence}\n", 1)[1].split("```", 1)[0]


def unit_text() -> str:
    return _block_after("/etc/systemd/system/cow-kf.service", "ini")


def steps_text() -> str:
    return _block_after("### 2.1", "bash")


def unit_values(unit: str) -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    for line in unit.splitlines():
        match = re.match(r"^(\w+)=(.*)$", line)
        if match:
            values.setdefault(match.group(1), []).append(match.group(2))
    return values


def test_the_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is missing: scripts/check.sh installs Debian's systemd package"
    # The documented paths under a scratch root: the interpreter must exist and be executable.
    root = tmp_path / "root"
    venv_bin = root / CODE_DIR.lstrip("/") / ".venv" / "bin"
    venv_bin.mkdir(parents=True)
    (venv_bin / "python").symlink_to(sys.executable)
    unit = unit_text().replace(CODE_DIR, f"{root}{CODE_DIR}")
    path = tmp_path / "cow-kf.service"
    path.write_text(unit, encoding="utf-8")
    result = subprocess.run(
        [analyze, "verify", str(path)], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    ours = [line for line in result.stderr.splitlines() if "cow-kf.service" in line]
    assert result.returncode == 0 and ours == [], result.stderr


def test_the_unit_and_the_steps_agree() -> None:
    unit, steps = unit_values(unit_text()), steps_text()
    user = unit["User"][0]
    assert re.search(rf"useradd --system .* {user}\n", steps)
    exec_start = unit["ExecStart"][0].split()
    assert exec_start[0] == f"{CODE_DIR}/.venv/bin/python" and f"python3 -m venv {CODE_DIR}/.venv" in steps
    config = exec_start[exec_start.index("--config") + 1]
    assert f"-g {user} {CODE_DIR}/config-template.json {config}" in steps  # readable by the service
    env_file = unit["EnvironmentFile"][0]
    assert f"install -m 600 -o root -g root /dev/null {env_file}" in steps  # root only: systemd reads it
    writable = unit["ReadWritePaths"][0].split()
    assert f"install -d -m 700 -o {user} -g {user} {' '.join(writable)}" in steps
    assert unit["RestartPreventExitStatus"] == ["2"]  # configuration errors are not restarted
