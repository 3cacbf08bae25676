"""The deployer docs agree with the code: generated reference, template keys, commands, links."""

from __future__ import annotations

import importlib.util
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from config import all_settings

ROOT = Path(__file__).resolve().parents[1]


def _load_generator() -> Any:
    # scripts/ is not a package: load the script by path, as `python scripts/...` runs it.
    spec = importlib.util.spec_from_file_location(
        "gen_config_reference", ROOT / "scripts" / "gen_config_reference.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


render = _load_generator().render
DOCS = ROOT / "docs"
# The root README is the front door; it is checked like the pages under docs/.
DOC_FILES = [*sorted(DOCS.glob("*.md")), ROOT / "README.md"]
FENCE = re.compile(r"^```([\w-]*)\s*$")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
SHELLS = {"", "bash", "sh", "shell", "console"}


def _code_lines(path: Path) -> list[str]:
    """Lines inside shell code blocks of a Markdown file."""
    lines: list[str] = []
    in_block, is_shell = False, False
    for line in path.read_text(encoding="utf-8").splitlines():
        match = FENCE.match(line.strip())
        if match:
            in_block, is_shell = (not in_block), match.group(1) in SHELLS
            continue
        if in_block and is_shell:
            lines.append(line.strip())
    return lines


def _python_commands(line: str) -> list[list[str]]:
    """Each `python ...` command in a shell line (also after `&&`, `;` or leading VAR=value)."""
    commands = []
    for part in re.split(r"&&|;|\|\|", line.split(" #", 1)[0]):
        try:
            words = shlex.split(part)
        except ValueError:
            continue
        while words and re.match(r"^[A-Z_][A-Z0-9_]*=", words[0]):
            words.pop(0)
        if words and words[0] in ("python", "python3"):
            commands.append(words[1:])
    return commands


def _all_python_commands() -> list[tuple[str, list[str]]]:
    found = []
    for path in DOC_FILES:
        for line in _code_lines(path):
            found += [(f"{path.name}: {line}", args) for args in _python_commands(line)]
    return found


def test_configuration_reference_is_generated_from_the_settings_table() -> None:
    current = (DOCS / "configuration.md").read_text(encoding="utf-8")
    assert current == render(), "run: python scripts/gen_config_reference.py > docs/configuration.md"


def test_every_setting_is_in_the_reference_with_its_env_var() -> None:
    text = (DOCS / "configuration.md").read_text(encoding="utf-8")
    for spec in all_settings():
        assert f"| `{spec.name}` |" in text, spec.name
        if spec.env:
            assert f"`{spec.env}`" in text, spec.env


def test_generator_check_mode_agrees() -> None:
    result = subprocess.run(
        [sys.executable, "scripts/gen_config_reference.py", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


def test_every_key_of_the_config_template_is_documented() -> None:
    template = ROOT / "config-template.json"
    assert template.exists(), "config-template.json is missing"
    keys = json.loads(template.read_text(encoding="utf-8")).keys()
    declared = {spec.name for spec in all_settings()}
    reference = (DOCS / "configuration.md").read_text(encoding="utf-8")
    undocumented = [k for k in keys if k not in declared or f"| `{k}` |" not in reference]
    assert not undocumented, f"config-template.json keys missing from docs/configuration.md: {undocumented}"


def test_python_commands_in_docs_refer_to_existing_files_or_modules() -> None:
    commands = _all_python_commands()
    assert any(args[:1] == ["app.py"] for _, args in commands), "the docs should show `python app.py`"
    for where, args in commands:
        if not args or args[0] == "-c":
            continue
        if args[0] == "-m":
            module = args[1]
            assert importlib.util.find_spec(module) is not None, f"{where}: no module {module}"
            continue
        assert (ROOT / args[0]).is_file(), f"{where}: no file {args[0]}"


def test_pip_requirement_files_in_docs_exist() -> None:
    for path in DOC_FILES:
        for line in _code_lines(path):
            for name in re.findall(r"pip install .*?-r\s+(\S+)", line):
                # docs/operations.md installs a clone at /opt/cow-kf: its files are this tree's
                assert (ROOT / name.removeprefix("/opt/cow-kf/")).is_file(), f"{path.name}: {line}"


@pytest.mark.parametrize("path", DOC_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    for target in LINK.findall(text):
        if re.match(r"^[a-z]+:", target) or target.startswith("#"):
            continue
        file_part = target.split("#", 1)[0]
        assert (path.parent / file_part).exists(), f"{path.name}: broken link {target}"


def test_docs_index_lists_every_page() -> None:
    index = (DOCS / "README.md").read_text(encoding="utf-8")
    for page in DOCS.glob("*.md"):
        if page.name != "README.md":
            assert f"]({page.name})" in index, page.name
