"""A small multipart/form-data parser (the stdlib ``cgi`` module is deprecated)."""

from __future__ import annotations

from dataclasses import dataclass
from email.message import Message
from urllib.parse import unquote


@dataclass(frozen=True)
class Part:
    name: str
    filename: str | None
    content_type: str | None
    data: bytes


def _params(header_value: str) -> Message:
    msg = Message()
    msg["content-type"] = header_value
    return msg


def boundary_of(content_type: str) -> str | None:
    if not content_type.lower().startswith("multipart/form-data"):
        return None
    value = _params(content_type).get_param("boundary")
    return value if isinstance(value, str) and value else None


def _disposition(value: str) -> tuple[str, str | None]:
    msg = Message()
    msg["content-disposition"] = value
    name = msg.get_param("name", header="content-disposition")
    filename = msg.get_filename()
    return (name if isinstance(name, str) else ""), (unquote(filename) if filename else None)


def parse(content_type: str, body: bytes, max_parts: int = 32) -> list[Part]:
    """Parts of a multipart/form-data body; [] when it is not one."""
    boundary = boundary_of(content_type)
    if boundary is None:
        return []
    delimiter = b"--" + boundary.encode("latin-1")
    parts: list[Part] = []
    for chunk in body.split(delimiter)[1:]:
        if chunk.startswith(b"--") or len(parts) >= max_parts:
            break
        chunk = chunk.removeprefix(b"\r\n")
        head, sep, data = chunk.partition(b"\r\n\r\n")
        if not sep:
            continue
        headers: dict[str, str] = {}
        for line in head.decode("utf-8", "replace").split("\r\n"):
            key, _, value = line.partition(":")
            headers[key.strip().lower()] = value.strip()
        name, filename = _disposition(headers.get("content-disposition", ""))
        parts.append(Part(name, filename, headers.get("content-type"), data.removesuffix(b"\r\n")))
    return parts


def field(parts: list[Part], name: str) -> Part | None:
    return next((p for p in parts if p.name == name), None)
