import random
import re
import unicodedata

import pytest

from channel.wechatcom_kf.outbound.text import TRUNCATION_MARKER, split_text

MARKER = TRUNCATION_MARKER
CHINESE = (
    "的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会"
    "可主发年动同工也能下过子说产种面而方后多定行学法所民得经"
)
PUNCT = "，。！？；、：,.!?;:"
EMOJI = ["🙂", "👍🏽", "👨‍👩‍👧‍👦", "🇨🇳", "🇺🇸", "❤️", "1️⃣", "é", "ñ", "🏴󠁧󠁢󠁳󠁣󠁴󠁿"]
WORDS = ["hello", "world", "price", "3.14", "example.com", "1,000", "a_b", "OK"]


def _nows(text):
    return re.sub(r"\s", "", text)


def _token(rng):
    roll = rng.random()
    if roll < 0.45:
        return rng.choice(CHINESE)
    if roll < 0.6:
        return " " + rng.choice(WORDS)
    if roll < 0.75:
        return rng.choice(PUNCT)
    if roll < 0.85:
        return rng.choice(EMOJI)
    if roll < 0.93:
        return "\n"
    if roll < 0.97:
        return "\n\n"
    return " "


def random_texts(count, seed=20240521):
    rng = random.Random(seed)
    for _ in range(count):
        length = rng.choice([5, 50, 300, 1500, 4000])
        yield "".join(_token(rng) for _ in range(rng.randint(1, length)))


def _cluster_intact(part):
    first, last = part[0], part[-1]
    if unicodedata.category(first) in ("Mn", "Me", "Mc") or 0xFE00 <= ord(first) <= 0xFE0F:
        return False
    if first == "\u200d" or last == "\u200d" or 0x1F3FB <= ord(first) <= 0x1F3FF:
        return False
    regional = sum(1 for ch in part if 0x1F1E6 <= ord(ch) <= 0x1F1FF)
    return regional % 2 == 0


def check_invariants(text, max_bytes, max_parts):
    parts = split_text(text, max_bytes=max_bytes, max_parts=max_parts)
    assert len(parts) <= max_parts
    for part in parts:
        assert part, "empty part"
        assert part == part.strip()
        assert len(part.encode("utf-8")) <= max_bytes
    truncated = bool(parts) and parts[-1].endswith(MARKER)
    joined = _nows("".join(parts))
    if truncated:
        assert joined.endswith(_nows(MARKER))
        kept = joined[: -len(_nows(MARKER))]
        assert _nows(text).startswith(kept)
        assert len(kept) < len(_nows(text))
    else:
        assert joined == _nows(text)
    if len(_nows(text).encode("utf-8")) > max_bytes * max_parts:
        assert truncated
    if len(text.strip().encode("utf-8")) <= max_bytes:
        assert parts == ([text.strip()] if text.strip() else [])
    for part in parts:
        body = part[: -len(MARKER)] if truncated and part is parts[-1] else part
        assert _cluster_intact(body), repr(body[:3] + "…" + body[-3:])
    return parts


@pytest.mark.parametrize(("max_bytes", "max_parts"), [(48, 1), (64, 3), (100, 5), (300, 2), (2048, 5)])
def test_split_invariants_on_random_texts(max_bytes, max_parts):
    for text in random_texts(120, seed=max_bytes * 31 + max_parts):
        check_invariants(text, max_bytes, max_parts)


def test_long_chinese_answer_fits_five_parts_with_marker():
    rng = random.Random(3)
    paragraphs: list[str] = []
    while len("\n\n".join(paragraphs).encode()) < 15_000:
        sentences = [
            "".join(rng.choice(CHINESE) for _ in range(rng.randint(8, 40))) + rng.choice("。！？")
            for _ in range(rng.randint(2, 6))
        ]
        paragraphs.append("".join(sentences))
    text = "\n\n".join(paragraphs)
    assert len(text.encode()) >= 15_000
    parts = check_invariants(text, 2048, 5)
    assert len(parts) == 5
    assert all(len(p.encode()) <= 2048 for p in parts)
    assert parts[-1].endswith(MARKER)
    assert not any(p.endswith(MARKER) for p in parts[:-1])


def test_short_text_is_one_part():
    assert split_text("  你好，世界  ") == ["你好，世界"]
    assert split_text("   \n ") == []


def test_paragraph_boundaries_preferred():
    paragraphs = [f"第{n}段。" + "内容" * 20 for n in range(10)]  # each 66 bytes
    parts = split_text("\n\n".join(paragraphs), max_bytes=200, max_parts=10)
    for part in parts:
        pieces = part.split("\n\n")
        assert all(piece in paragraphs for piece in pieces)


def test_sentence_boundaries_preferred_over_characters():
    text = "".join(f"这是第{n}句话，内容不长。" for n in range(40))
    parts = split_text(text, max_bytes=150, max_parts=20)
    assert len(parts) > 3
    assert all(part.endswith("。") for part in parts)


def test_ascii_dot_inside_number_or_domain_not_a_sentence_end():
    text = ("visit example.com for 3.14 and more words " * 10).strip()
    parts = split_text(text, max_bytes=60, max_parts=20)
    assert all(not part.endswith(("example.", "3.")) for part in parts)
    assert _nows("".join(parts)) == _nows(text)


def test_emoji_never_split():
    text = "👨‍👩‍👧‍👦" * 40 + "🇨🇳🇺🇸" * 30
    for max_bytes in (48, 49, 57, 64, 99):
        check_invariants(text, max_bytes, 100)


def test_huge_input_is_bounded_and_marked():
    text = "字" * 2_000_000
    parts = split_text(text, max_bytes=2048, max_parts=5)
    assert len(parts) == 5 and parts[-1].endswith(MARKER)


def test_content_hidden_behind_whitespace_is_still_marked():
    assert split_text("开头" + " " * 50_000 + "结尾", max_bytes=100, max_parts=2) == ["开头", "结尾"]
    parts = split_text("开头" + " " * 50_000 + "字" * 300, max_bytes=100, max_parts=2)
    assert len(parts) == 2 and parts[0] == "开头" and parts[-1].endswith(MARKER)


def test_lone_surrogate_does_not_break_encoding():
    parts = split_text("前\ud800后" * 10, max_bytes=48, max_parts=5)
    assert parts
    for part in parts:
        part.encode("utf-8")


def test_bad_arguments():
    with pytest.raises(ValueError):
        split_text("x", max_parts=0)
    with pytest.raises(ValueError):
        split_text("x", max_bytes=10)
