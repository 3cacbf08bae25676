"""Small real media for tests: the channel decodes customers' images before a model sees them."""

from __future__ import annotations

import io

from PIL import Image


def tiny_png(width: int = 4, height: int = 3, color: str = "red") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buf, format="PNG")
    return buf.getvalue()
