"""Recognising a CoW tree, reading its files as text with ``ast`` (never imported), and writing into it.

- ``recognise``: ``app.py``, ``config.py`` with an ``available_setting`` dict and
  ``channel/channel_factory.py`` with ``create_channel``; the flavour: CowAgent 2.1.x (its
  ``channel/wechat_kf/`` or ``const.WECHAT_KF``), CoW 1.x (its ``Config`` raises on keys missing from
  ``available_setting``), else CoW 2.0.x.
- ``factory_chain`` / ``available_setting_dict``: where the two edited files are edited
  (``factory_edit.py`` and ``settings_edit.py`` do the edits).
- ``install_folder`` / ``write_checked``: the writes, each with its backup and its way back.
"""

from __future__ import annotations

import ast
import difflib
import filecmp
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

FLAVOUR_2_1 = "CowAgent 2.1.x"
FLAVOUR_2_0 = "CoW 2.0.x"
FLAVOUR_1 = "CoW 1.x"
BOM = "\ufeff"
INSTALLER_FILES = frozenset({"install.py", "install_support"})  # a tool of this repo, not of the host


class TreeError(Exception):
    """The directory is not a CoW tree this installer knows, or one of its files cannot be edited."""


class WriteError(Exception):
    """A write into the tree failed; what it had changed is restored."""


@dataclass(frozen=True)
class CowTree:
    root: Path
    flavour: str
    const_names: frozenset[str]  # names assigned at the top of common/const.py

    @property
    def factory(self) -> Path:
        return self.root / "channel" / "channel_factory.py"

    @property
    def config(self) -> Path:
        return self.root / "config.py"

    @property
    def app(self) -> Path:
        return self.root / "app.py"


def read_source(path: Path) -> str:
    """A file's text as it is (line endings kept, a UTF-8 BOM kept as its first character)."""
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            return handle.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise TreeError(f"cannot read {path}: {exc}") from None


def parse_source(text: str, name: str) -> ast.Module:
    try:
        return ast.parse(text.removeprefix(BOM), filename=name)
    except SyntaxError as exc:
        raise TreeError(f"{name} does not parse: {exc.msg} (line {exc.lineno})") from None


def indent_of(line: str) -> str:
    return line[: len(line) - len(line.lstrip())]


def _top_level_names(tree: ast.Module) -> frozenset[str]:
    names: set[str] = set()
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else []
        if isinstance(node, ast.AnnAssign):
            targets = [node.target]
        names.update(target.id for target in targets if isinstance(target, ast.Name))
    return frozenset(names)


def available_setting_dict(tree: ast.Module) -> ast.Dict | None:
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "available_setting" for t in node.targets
        ):
            value: ast.expr | None = node.value
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            value = node.value if node.target.id == "available_setting" else None
        else:
            continue
        if isinstance(value, ast.Dict):
            return value
    return None


def config_raises_on_unknown_keys(tree: ast.Module) -> bool:
    """CoW 1.x: ``Config.__getitem__`` / ``__setitem__`` raise for a key not in available_setting."""
    return any(
        isinstance(node, ast.FunctionDef)
        and node.name in ("__getitem__", "__setitem__")
        and any(isinstance(inner, ast.Raise) for inner in ast.walk(node))
        for node in ast.walk(tree)
    )


def _create_channel(tree: ast.Module) -> ast.FunctionDef | None:
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == "create_channel":
            return node
    return None


def compared_name(test: ast.expr) -> str | None:
    if isinstance(test, ast.Compare) and isinstance(test.left, ast.Name):
        return test.left.id
    return None


def factory_chain(tree: ast.Module) -> list[ast.If]:
    """The branches of create_channel's first if/elif chain on its parameter, in order."""
    func = _create_channel(tree)
    if func is None:
        return []
    param = func.args.args[0].arg if func.args.args else "channel_type"
    for stmt in func.body:
        if isinstance(stmt, ast.If) and compared_name(stmt.test) == param:
            chain = [stmt]
            while len(chain[-1].orelse) == 1 and isinstance(chain[-1].orelse[0], ast.If):
                chain.append(chain[-1].orelse[0])
            return chain
    return []


def recognise(root: Path) -> CowTree:
    """The tree at ``root`` and its flavour; TreeError naming what is missing."""
    if not root.is_dir():
        raise TreeError(f"{root} is not a directory")
    for rel in ("app.py", "config.py", "channel/channel_factory.py"):
        if not (root / rel).is_file():
            raise TreeError(f"{root} is not a CoW tree: {rel} is missing")
    config = parse_source(read_source(root / "config.py"), "config.py")
    if available_setting_dict(config) is None:
        raise TreeError(f"{root} is not a CoW tree: config.py has no available_setting dict")
    factory = parse_source(read_source(root / "channel" / "channel_factory.py"), "channel_factory.py")
    if not factory_chain(factory):
        raise TreeError(f"{root}: channel/channel_factory.py has no if/elif chain in create_channel")
    const_path = root / "common" / "const.py"
    consts = (
        _top_level_names(parse_source(read_source(const_path), "common/const.py"))
        if const_path.is_file()
        else frozenset()
    )
    if (root / "channel" / "wechat_kf").is_dir() or "WECHAT_KF" in consts:
        flavour = FLAVOUR_2_1
    else:
        flavour = FLAVOUR_1 if config_raises_on_unknown_keys(config) else FLAVOUR_2_0
    return CowTree(root, flavour, consts)


# --- other facts about the host and about our package -------------------------------------------


def app_plugin_gate(source: str) -> list[str] | None:
    """CoW 1.x's app.py loads plugins only for the channel types it lists: that list, or None."""
    for node in ast.walk(parse_source(source, "app.py")):
        if not isinstance(node, ast.If):
            continue
        test = node.test
        if not (isinstance(test, ast.Compare) and isinstance(test.ops[0], ast.In)):
            continue
        listed = test.comparators[0]
        attributes = [n.attr for stmt in node.body for n in ast.walk(stmt) if isinstance(n, ast.Attribute)]
        if isinstance(listed, ast.List | ast.Tuple) and "load_plugins" in attributes:
            return [e.value for e in listed.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)]
    return None


def _base_name(node: ast.expr) -> str:
    return node.attr if isinstance(node, ast.Attribute) else node.id if isinstance(node, ast.Name) else ""


def class_names(path: Path, base: str | None = None) -> list[str]:
    """Classes defined at the top of ``path`` (those with a base named ``base``, if given)."""
    tree = parse_source(read_source(path), path.name)
    return [
        node.name
        for node in tree.body
        if isinstance(node, ast.ClassDef) and (base is None or any(_base_name(b) == base for b in node.bases))
    ]


# --- files ------------------------------------------------------------------------------------------


def package_files(root: Path) -> dict[str, Path]:
    """A package's files by relative posix path, without caches and without this installer."""
    if not root.is_dir():
        return {}
    files: dict[str, Path] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if "__pycache__" in rel.parts or path.suffix in (".pyc", ".pyo") or rel.parts[0] in INSTALLER_FILES:
            continue
        if path.is_file():
            files[rel.as_posix()] = path
    return files


def unique_backup(path: Path, stamp: str) -> Path:
    """``<name>.bak-<stamp>``, numbered when two runs share a second."""
    candidate = path.with_name(f"{path.name}.bak-{stamp}")
    number = 2
    while candidate.exists() or candidate.is_symlink():
        candidate = path.with_name(f"{path.name}.bak-{stamp}-{number}")
        number += 1
    return candidate


def folder_changes(src_files: dict[str, Path], dst: Path) -> tuple[list[str], list[str], list[str]]:
    """(changed, added, removed) relative paths going from ``dst`` to the source files."""
    dst_files = package_files(dst)
    changed = [
        r for r in src_files if r in dst_files and not filecmp.cmp(src_files[r], dst_files[r], shallow=False)
    ]
    added = [r for r in src_files if r not in dst_files]
    removed = [r for r in dst_files if r not in src_files]
    return changed, added, removed


def install_folder(src_files: dict[str, Path], dst: Path, backup: Path | None, stamp: str) -> None:
    """Copy into a staging folder, move ``dst`` to ``backup``, then the staging folder to ``dst``."""
    staging = dst.with_name(f".{dst.name}.new-{stamp}")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        for rel, path in src_files.items():
            target = staging / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
        if backup is not None:
            os.replace(dst, backup)
        os.replace(staging, dst)
    except OSError as exc:
        if backup is not None and backup.exists() and not dst.exists():
            os.replace(backup, dst)
        shutil.rmtree(staging, ignore_errors=True)
        raise WriteError(f"copying into {dst} failed: {exc}") from None


def unified_diff(old: str, new: str, rel: str) -> str:
    return "".join(
        difflib.unified_diff(
            old.splitlines(keepends=True), new.splitlines(keepends=True), f"a/{rel}", f"b/{rel}"
        )
    )


def write_text(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    with temporary.open("w", encoding="utf-8", newline="") as handle:
        handle.write(text)
    shutil.copymode(path, temporary)
    os.replace(temporary, path)


def write_checked(path: Path, planned: str, new: str, backup: Path, verify: Callable[[str], None]) -> None:
    """Back ``path`` up, write ``new``, check what was written; the original comes back on failure."""
    if read_source(path) != planned:
        raise WriteError(f"{path} changed while installing; it was left as it is")
    shutil.copy2(path, backup)
    write_text(path, new)
    try:
        verify(read_source(path))
    except (SyntaxError, ValueError, TreeError) as exc:
        shutil.copy2(backup, path)
        raise WriteError(
            f"{path.name}: the edited file failed its check ({exc}); the original is restored"
        ) from None
