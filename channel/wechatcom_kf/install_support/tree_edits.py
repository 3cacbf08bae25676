"""Recognising a CoW tree and editing two of its files, as text, read with ``ast`` — never imported.

- ``recognise``: ``app.py``, ``config.py`` with an ``available_setting`` dict and
  ``channel/channel_factory.py`` with ``create_channel``; the flavour: CowAgent 2.1.x (its
  ``channel/wechat_kf/`` or ``const.WECHAT_KF``), CoW 1.x (its ``Config`` raises on keys missing from
  ``available_setting``), else CoW 2.0.x.
- ``add_factory_branch``: one more branch in ``create_channel``'s if/elif chain on ``channel_type``,
  written like its neighbours (indentation, quotes, ``ch = X()`` or ``return X()``, a blank line after
  the import or not), after the ``wechat_kf`` branch, else after ``wechatcom_app``, else last.
- ``add_available_settings``: ``"key": default,`` lines before the dict's closing brace.
- ``install_folder`` / ``write_checked``: the writes, each with its backup and its way back.
"""

from __future__ import annotations

import ast
import difflib
import filecmp
import io
import json
import os
import shutil
import tokenize
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
class ChannelClass:
    """A channel as a factory branch names it."""

    channel_type: str  # "wechatcom_kf"
    const_name: str  # "WECHATCOM_KF", used when the host's common/const.py defines it
    module: str  # "channel.wechatcom_kf.wechatcom_kf_channel"
    class_name: str


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


@dataclass(frozen=True)
class BranchState:
    present: bool
    imports: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (module, names) imported in the branch


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
    if not _chain(factory):
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


# --- channel_factory.py ---------------------------------------------------------------------------


def _create_channel(tree: ast.Module) -> ast.FunctionDef | None:
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == "create_channel":
            return node
    return None


def _compared_name(test: ast.expr) -> str | None:
    if isinstance(test, ast.Compare) and isinstance(test.left, ast.Name):
        return test.left.id
    return None


def _chain(tree: ast.Module) -> list[ast.If]:
    """The branches of create_channel's first if/elif chain on its parameter, in order."""
    func = _create_channel(tree)
    if func is None:
        return []
    param = func.args.args[0].arg if func.args.args else "channel_type"
    for stmt in func.body:
        if isinstance(stmt, ast.If) and _compared_name(stmt.test) == param:
            chain = [stmt]
            while len(chain[-1].orelse) == 1 and isinstance(chain[-1].orelse[0], ast.If):
                chain.append(chain[-1].orelse[0])
            return chain
    return []


def _compared_values(branch: ast.If) -> set[str]:
    """String literals and constant names (``const.X`` -> ``X``) the branch compares against."""
    values: set[str] = set()
    if not isinstance(branch.test, ast.Compare):
        return values
    for comparator in branch.test.comparators:
        items = comparator.elts if isinstance(comparator, ast.Tuple | ast.List | ast.Set) else [comparator]
        for item in items:
            if isinstance(item, ast.Constant) and isinstance(item.value, str):
                values.add(item.value)
            elif isinstance(item, ast.Attribute):
                values.add(item.attr)
    return values


def _branch_imports(branch: ast.If) -> tuple[tuple[str, tuple[str, ...]], ...]:
    return tuple(
        (node.module or "", tuple(alias.name for alias in node.names))
        for stmt in branch.body
        for node in ast.walk(stmt)
        if isinstance(node, ast.ImportFrom)
    )


def _find_branch(chain: Sequence[ast.If], *values: str) -> ast.If | None:
    return next((branch for branch in chain if _compared_values(branch) & set(values)), None)


def branch_state(source: str, channel_type: str, const_name: str) -> BranchState:
    """Whether create_channel already has a branch for ``channel_type`` (a literal or const.NAME)."""
    branch = _find_branch(_chain(parse_source(source, "channel_factory.py")), channel_type, const_name)
    return BranchState(branch is not None, _branch_imports(branch) if branch is not None else ())


def _indent(line: str) -> str:
    return line[: len(line) - len(line.lstrip())]


def _quote(chain: Sequence[ast.If], source: str) -> str:
    quotes = [
        (ast.get_source_segment(source, node) or '"')[0]
        for branch in chain
        for node in ast.walk(branch.test)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    ]
    return "'" if quotes.count("'") > quotes.count('"') else '"'


def _body_style(chain: Sequence[ast.If], anchor: ast.If) -> tuple[str | None, bool]:
    """(variable the branches assign, or None for ``return X()``; blank line after the import)."""
    with_import = [b for b in chain if len(b.body) > 1 and isinstance(b.body[0], ast.ImportFrom)]
    reference = anchor if anchor in with_import else (with_import[0] if with_import else anchor)
    statements = reference.body
    start = 1 if isinstance(statements[0], ast.ImportFrom) and len(statements) > 1 else 0
    blank = start == 1 and statements[1].lineno > (statements[0].end_lineno or statements[0].lineno) + 1
    first = statements[start]
    if isinstance(first, ast.Assign) and isinstance(first.targets[0], ast.Name):
        return first.targets[0].id, blank
    return (None, blank) if isinstance(first, ast.Return) else ("ch", blank)


def _imports_const(tree: ast.Module) -> bool:
    return any(
        isinstance(node, ast.ImportFrom)
        and node.module == "common"
        and any(a.name == "const" for a in node.names)
        for node in tree.body
    )


def add_factory_branch(source: str, target: ChannelClass, const_names: frozenset[str]) -> str:
    """``source`` with a branch for ``target`` added to create_channel's chain (TreeError if none)."""
    tree = parse_source(source, "channel_factory.py")
    chain = _chain(tree)
    if not chain:
        raise TreeError("channel/channel_factory.py has no if/elif chain in create_channel")
    anchor = (
        _find_branch(chain, "wechat_kf", "WECHAT_KF") or _find_branch(chain, "wechatcom_app") or chain[-1]
    )
    lines = source.splitlines(keepends=True)
    newline = "\r\n" if "\r\n" in source else "\n"
    head, body = _indent(lines[chain[0].lineno - 1]), _indent(lines[anchor.body[0].lineno - 1])
    if target.const_name in const_names and _imports_const(tree):
        value = f"const.{target.const_name}"
    else:
        value = f"{_quote(chain, source)}{target.channel_type}{_quote(chain, source)}"
    variable, blank = _body_style(chain, anchor)
    param = _compared_name(chain[0].test)
    text = [f"{head}elif {param} == {value}:", f"{body}from {target.module} import {target.class_name}"]
    text += [""] if blank else []
    text.append(
        f"{body}{variable} = {target.class_name}()" if variable else f"{body}return {target.class_name}()"
    )
    at = anchor.body[-1].end_lineno or anchor.body[-1].lineno
    prefix = "" if lines[at - 1].endswith(("\n", "\r")) else newline
    return "".join([*lines[:at], prefix + newline.join(text) + newline, *lines[at:]])


def branch_count(source: str) -> int:
    return len(_chain(parse_source(source, "channel_factory.py")))


# --- config.py: available_setting -----------------------------------------------------------------


def py_literal(value: Any) -> str:
    """A Python literal for a setting default (str, bool, int, float, None, list, dict of those)."""
    if isinstance(value, str):
        text = json.dumps(value, ensure_ascii=False)
    elif value is None or isinstance(value, bool | int | float):
        text = repr(value)
    elif isinstance(value, list | tuple):
        text = "[" + ", ".join(py_literal(item) for item in value) + "]"
    elif isinstance(value, dict):
        text = "{" + ", ".join(f"{py_literal(k)}: {py_literal(v)}" for k, v in value.items()) + "}"
    else:
        raise ValueError(f"no literal for a {type(value).__name__}")
    if ast.literal_eval(text) != (list(value) if isinstance(value, tuple) else value):
        raise ValueError(f"no faithful literal for {value!r}")
    return text


def setting_keys(source: str) -> set[str]:
    table = available_setting_dict(parse_source(source, "config.py"))
    if table is None:
        raise TreeError("config.py has no available_setting dict")
    return {key.value for key in table.keys if isinstance(key, ast.Constant) and isinstance(key.value, str)}


def _char_col(line: str, byte_col: int) -> int:
    """ast columns count UTF-8 bytes; str indexes count characters."""
    return len(line.encode("utf-8")[:byte_col].decode("utf-8", errors="ignore"))


def _has_comma_between(source: str, start: tuple[int, int], end: tuple[int, int]) -> bool:
    tokens = tokenize.generate_tokens(io.StringIO(source.removeprefix(BOM)).readline)
    return any(tok.type == tokenize.OP and tok.string == "," and start <= tok.start < end for tok in tokens)


def add_available_settings(
    source: str, entries: Sequence[tuple[str, Any]], comment: str
) -> tuple[str, list[str]]:
    """``source`` with the missing ``entries`` inserted before available_setting's closing brace."""
    existing = setting_keys(source)
    todo = [(key, value) for key, value in entries if key not in existing]
    if not todo:
        return source, []
    table = available_setting_dict(parse_source(source, "config.py"))
    assert table is not None and table.end_lineno is not None and table.end_col_offset is not None
    lines = source.removeprefix(BOM).splitlines(keepends=True)
    newline = "\r\n" if "\r\n" in source else "\n"
    brace_row, brace_col = table.end_lineno, _char_col(lines[table.end_lineno - 1], table.end_col_offset) - 1
    indent = _indent(lines[table.keys[0].lineno - 1]) if table.keys and table.keys[0] else "    "
    block = "".join(
        f"{indent}{json.dumps(key, ensure_ascii=False)}: {py_literal(value)},{newline}" for key, value in todo
    )
    block = f"{indent}# {comment}{newline}{block}"
    brace_line = lines[brace_row - 1]
    if table.values:
        last = table.values[-1]
        assert last.end_lineno is not None and last.end_col_offset is not None
        last_end = (last.end_lineno, _char_col(lines[last.end_lineno - 1], last.end_col_offset))
        if not _has_comma_between(source, last_end, (brace_row, brace_col)):
            row, col = last_end
            lines[row - 1] = lines[row - 1][:col] + "," + lines[row - 1][col:]
            brace_line = lines[brace_row - 1]
            brace_col += 1 if row == brace_row else 0
    if brace_line[:brace_col].strip():
        lines[brace_row - 1] = brace_line[:brace_col].rstrip() + newline + block + brace_line[brace_col:]
    else:
        lines[brace_row - 1] = block + brace_line
    bom = BOM if source.startswith(BOM) else ""
    return bom + "".join(lines), [key for key, _ in todo]


def unified_diff(old: str, new: str, rel: str) -> str:
    return "".join(
        difflib.unified_diff(
            old.splitlines(keepends=True), new.splitlines(keepends=True), f"a/{rel}", f"b/{rel}"
        )
    )


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


def check_factory(text: str, original: str, target: ChannelClass) -> None:
    """The edited factory compiles, has the branch, and its chain grew by exactly one branch."""
    compile(text.removeprefix(BOM), "channel/channel_factory.py", "exec")
    if not branch_state(text, target.channel_type, target.const_name).present:
        raise ValueError("the new branch is not found")
    if branch_count(text) != branch_count(original) + 1:
        raise ValueError("the if/elif chain did not grow by exactly one branch")


def check_settings(text: str, keys: Sequence[str]) -> None:
    """The edited config.py compiles and its available_setting holds every key."""
    compile(text.removeprefix(BOM), "config.py", "exec")
    missing = set(keys) - setting_keys(text)
    if missing:
        raise ValueError("keys missing after the edit: " + ", ".join(sorted(missing)))
