"""Adding a channel's branch to a CoW tree's ``channel/channel_factory.py``, as text.

- ``add_factory_branch``: one more branch in ``create_channel``'s if/elif chain on ``channel_type``,
  written like its neighbours (indentation, quotes, ``ch = X()`` or ``return X()``, a blank line after
  the import or not), after the ``wechat_kf`` branch, else after ``wechatcom_app``, else last.
- ``branch_state`` / ``check_factory``: whether the branch is there; the check of the edited file.
"""

from __future__ import annotations

import ast
from collections.abc import Sequence
from dataclasses import dataclass

from .cow_tree import BOM, TreeError, compared_name, factory_chain, indent_of, parse_source


@dataclass(frozen=True)
class ChannelClass:
    """A channel as a factory branch names it."""

    channel_type: str  # "wechatcom_kf"
    const_name: str  # "WECHATCOM_KF", used when the host's common/const.py defines it
    module: str  # "channel.wechatcom_kf.wechatcom_kf_channel"
    class_name: str


@dataclass(frozen=True)
class BranchState:
    present: bool
    imports: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (module, names) imported in the branch


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
    branch = _find_branch(factory_chain(parse_source(source, "channel_factory.py")), channel_type, const_name)
    return BranchState(branch is not None, _branch_imports(branch) if branch is not None else ())


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
    chain = factory_chain(tree)
    if not chain:
        raise TreeError("channel/channel_factory.py has no if/elif chain in create_channel")
    anchor = (
        _find_branch(chain, "wechat_kf", "WECHAT_KF") or _find_branch(chain, "wechatcom_app") or chain[-1]
    )
    lines = source.splitlines(keepends=True)
    newline = "\r\n" if "\r\n" in source else "\n"
    head, body = indent_of(lines[chain[0].lineno - 1]), indent_of(lines[anchor.body[0].lineno - 1])
    if target.const_name in const_names and _imports_const(tree):
        value = f"const.{target.const_name}"
    else:
        value = f"{_quote(chain, source)}{target.channel_type}{_quote(chain, source)}"
    variable, blank = _body_style(chain, anchor)
    param = compared_name(chain[0].test)
    text = [f"{head}elif {param} == {value}:", f"{body}from {target.module} import {target.class_name}"]
    text += [""] if blank else []
    text.append(
        f"{body}{variable} = {target.class_name}()" if variable else f"{body}return {target.class_name}()"
    )
    at = anchor.body[-1].end_lineno or anchor.body[-1].lineno
    prefix = "" if lines[at - 1].endswith(("\n", "\r")) else newline
    return "".join([*lines[:at], prefix + newline.join(text) + newline, *lines[at:]])


def branch_count(source: str) -> int:
    return len(factory_chain(parse_source(source, "channel_factory.py")))


def check_factory(text: str, original: str, target: ChannelClass) -> None:
    """The edited factory compiles, has the branch, and its chain grew by exactly one branch."""
    compile(text.removeprefix(BOM), "channel/channel_factory.py", "exec")
    if not branch_state(text, target.channel_type, target.const_name).present:
        raise ValueError("the new branch is not found")
    if branch_count(text) != branch_count(original) + 1:
        raise ValueError("the if/elif chain did not grow by exactly one branch")
