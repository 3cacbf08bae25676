"""Adding a channel's keys to ``available_setting`` in a CoW tree's ``config.py``, as text.

- ``add_available_settings``: ``"key": default,`` lines before the dict's closing brace (CoW 1.x
  refuses config.json keys it does not list).
- ``setting_keys`` / ``check_settings``: the keys the dict holds; the check of the edited file.
"""

from __future__ import annotations

import ast
import io
import json
import tokenize
from collections.abc import Sequence
from typing import Any

from .cow_tree import BOM, TreeError, available_setting_dict, indent_of, parse_source


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
    indent = indent_of(lines[table.keys[0].lineno - 1]) if table.keys and table.keys[0] else "    "
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


def check_settings(text: str, keys: Sequence[str]) -> None:
    """The edited config.py compiles and its available_setting holds every key."""
    compile(text.removeprefix(BOM), "config.py", "exec")
    missing = set(keys) - setting_keys(text)
    if missing:
        raise ValueError("keys missing after the edit: " + ", ".join(sorted(missing)))
