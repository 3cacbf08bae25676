import random
import re

import pytest

from channel.wechatcom_kf.outbound.msgid import make_msgid, welcome_msgid

_CHARSET = re.compile(r"^[0-9a-zA-Z_-]+$")


def _random_msgids(count):
    rng = random.Random(7)
    alphabet = "abcXYZ0123456789_-你好🙂"
    return ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 80))) for _ in range(count)] + [
        "from_msgid_4622416642169452483",
        "",
    ]


def test_msgid_is_deterministic_short_and_in_charset():
    for inbound in _random_msgids(300):
        for part in (0, 1, 4, 999_999):
            msgid = make_msgid(inbound, part)
            assert msgid == make_msgid(inbound, part)
            assert len(msgid.encode("utf-8")) <= 32
            assert _CHARSET.match(msgid)


def test_msgid_distinct_for_distinct_inputs():
    inbounds = sorted(set(_random_msgids(500)))
    ids = {make_msgid(inbound, part) for inbound in inbounds for part in range(6)}
    assert len(ids) == len(inbounds) * 6
    # Concatenation ambiguity: ("a1", 2) vs ("a", 12) must differ.
    assert make_msgid("a1", 2) != make_msgid("a", 12)


def test_part_number_out_of_range_is_refused():
    with pytest.raises(ValueError):
        make_msgid("m", -1)
    with pytest.raises(ValueError):
        make_msgid("m", 1_000_000)


def test_welcome_msgid():
    a, b = welcome_msgid("code-1"), welcome_msgid("code-2")
    assert a == welcome_msgid("code-1") and a != b
    assert len(a) <= 32 and _CHARSET.match(a)
    assert a not in {make_msgid("code-1", n) for n in range(5)}
