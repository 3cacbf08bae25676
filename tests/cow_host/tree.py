"""Materialise a fake CoW host tree (``skeleton/`` + the repo's channel folders) in a directory."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from sandbox.harness import REPO_ROOT

SKELETON = Path(__file__).resolve().parent / "skeleton"
# The release each fake stands for (the upstream tags its behaviour was read from).
# (2.0.7, not 2.0.8: 2.0.8 logs unknown config keys at DEBUG instead of WARNING.)
RELEASES = {"1.7": "1.7.6", "2.0": "2.0.7", "2.1": "2.1.7"}
VERSIONS = tuple(RELEASES)
CHANNEL_FOLDERS = ("wechatcom_kf", "wechat_kf")  # wechat_kf: the alias package, when the repo has it
# Where the channel folders are copied from: the repo's ``channel/``, or COW_HOST_CHANNEL_DIR (e.g. an
# exported older commit's ``channel/``, to run the scenarios against it).
CHANNEL_SOURCE = Path(os.environ.get("COW_HOST_CHANNEL_DIR") or REPO_ROOT / "channel")
_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc")


def make_host(
    directory: Path,
    version: str,
    config: dict[str, Any],
    *,
    bot: dict[str, Any] | None = None,
) -> Path:
    """A fresh fake CoW ``version`` tree in ``directory/cow-<version>``: ``config`` is its config.json,
    ``bot`` the scripted bot's settings (see ``skeleton/bridge/bridge.py``). Returns the tree."""
    if version not in RELEASES:
        raise ValueError(f"unknown CoW version {version!r}; one of {VERSIONS}")
    tree = directory / f"cow-{version}"
    if tree.exists():
        shutil.rmtree(tree)
    shutil.copytree(SKELETON, tree, ignore=_IGNORE)
    (tree / "host_version.py").write_text(f'VERSION = "{RELEASES[version]}"\n', encoding="utf-8")
    for folder in CHANNEL_FOLDERS:
        source = CHANNEL_SOURCE / folder
        if source.is_dir():
            shutil.copytree(source, tree / "channel" / folder, ignore=_IGNORE)
    write_json(tree / "config.json", config)
    write_json(tree / "host_bot.json", bot or {})
    return tree


def write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, ensure_ascii=False, indent=2), encoding="utf-8")
