"""A PNG of the soak run with Pillow (already a dependency; no plotting library): RSS and replies per
second against messages handled, two y axes sharing the x axis."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

WIDTH, HEIGHT = 900, 480
LEFT, RIGHT, TOP, BOTTOM = 80, 80, 50, 60
RSS_COLOR = (31, 119, 180)
RATE_COLOR = (214, 39, 40)
GRID = (225, 225, 225)
INK = (40, 40, 40)


def _nice_max(value: float) -> float:
    """The next of 1, 2, 5 x 10^k at or above ``value`` (an axis that ends on a round number)."""
    if value <= 0:
        return 1.0
    step = 1.0
    while step * 10 <= value:
        step *= 10
    while step > value * 10:
        step /= 10
    for factor in (1, 2, 5, 10):
        if step * factor >= value:
            return step * factor
    return step * 10


def _font(size: int) -> Any:
    try:
        return ImageFont.load_default(size)
    except TypeError:  # Pillow < 10.1 has only the fixed bitmap font
        return ImageFont.load_default()


def _scale(value: float, top: float, span: int) -> float:
    return span * (value / top if top else 0.0)


def _series(
    draw: ImageDraw.ImageDraw,
    points: Sequence[tuple[float, float]],
    x_top: float,
    y_top: float,
    color: tuple[int, int, int],
) -> None:
    width, height = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    xy = [(LEFT + _scale(x, x_top, width), TOP + height - _scale(y, y_top, height)) for x, y in points]
    if len(xy) > 1:
        draw.line(xy, fill=color, width=3)
    for x, y in xy:
        draw.ellipse((x - 4, y - 4, x + 4, y + 4), fill=color)


def _axes(draw: ImageDraw.ImageDraw, x_top: float, rss_top: float, rate_top: float) -> None:
    width, height = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    small = _font(13)
    for k in range(6):
        y = TOP + height - height * k / 5
        draw.line((LEFT, y, LEFT + width, y), fill=GRID)
        draw.text((LEFT - 8, y), f"{rss_top * k / 5:g}", fill=RSS_COLOR, font=small, anchor="rm")
        draw.text((LEFT + width + 8, y), f"{rate_top * k / 5:g}", fill=RATE_COLOR, font=small, anchor="lm")
        x = LEFT + width * k / 5
        draw.line((x, TOP + height, x, TOP + height + 5), fill=INK)
        draw.text((x, TOP + height + 8), f"{x_top * k / 5 / 1000:g}k", fill=INK, font=small, anchor="mt")
    draw.rectangle((LEFT, TOP, LEFT + width, TOP + height), outline=INK)
    draw.text((LEFT + width / 2, HEIGHT - 18), "messages handled", fill=INK, font=small, anchor="mm")
    draw.text((LEFT, TOP - 10), "RSS (MB)", fill=RSS_COLOR, font=small, anchor="ld")
    draw.text((LEFT + width, TOP - 10), "replies/s (segment)", fill=RATE_COLOR, font=small, anchor="rd")


def draw_soak(samples: Sequence[dict[str, Any]], path: str | Path, title: str) -> Path:
    """Draw ``samples`` (``messages``, ``rss_mb`` and, except the first, ``replies_per_s``) into ``path``."""
    rss = [(float(s["messages"]), float(s["rss_mb"])) for s in samples if s.get("rss_mb") is not None]
    rate = [(float(s["messages"]), float(s["replies_per_s"])) for s in samples if s.get("replies_per_s")]
    x_top = _nice_max(max((x for x, _ in rss), default=1.0))
    rss_top = _nice_max(max((y for _, y in rss), default=1.0) * 1.1)
    rate_top = _nice_max(max((y for _, y in rate), default=1.0) * 1.1)
    image = Image.new("RGB", (WIDTH, HEIGHT), "white")
    draw = ImageDraw.Draw(image)
    _axes(draw, x_top, rss_top, rate_top)
    _series(draw, rss, x_top, rss_top, RSS_COLOR)
    _series(draw, rate, x_top, rate_top, RATE_COLOR)
    draw.text((WIDTH / 2, 18), title, fill=INK, font=_font(16), anchor="mm")
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    image.save(out, format="PNG")
    return out
