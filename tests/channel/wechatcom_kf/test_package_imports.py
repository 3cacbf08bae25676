"""The channel package runs inside upstream CoW hosts: it may import only the CoW contract surface
from its host (see shared cow-contract: bridge.context, bridge.reply, channel.chat_channel,
channel.chat_message, common.log, config); everything else is in the package or a library."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[3] / "channel" / "wechatcom_kf"
HOST_ALLOWED = {
    "bridge.context",
    "bridge.reply",
    "channel.chat_channel",
    "channel.chat_message",
    "common.log",
    "config",
}
HOST_TOP_LEVEL = {
    "app",
    "bridge",
    "channel",
    "common",
    "config",
    "models",
    "plugins",
    "voice",
    "sandbox",
    "lib",
}


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
    return names


def test_the_package_imports_only_the_host_contract():
    modules = sorted(PACKAGE.rglob("*.py"))
    assert len(modules) > 10
    offending: list[str] = []
    for path in modules:
        for name in _imports(path):
            top = name.split(".")[0]
            if name.startswith("channel.wechatcom_kf"):
                continue  # absolute imports of the package itself
            if top in HOST_TOP_LEVEL and name not in HOST_ALLOWED:
                offending.append(f"{path.relative_to(PACKAGE)}: {name}")
            elif top not in HOST_TOP_LEVEL and top in sys.stdlib_module_names:
                continue
    assert offending == []
