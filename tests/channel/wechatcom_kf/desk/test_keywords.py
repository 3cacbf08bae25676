from __future__ import annotations

import pytest

from channel.wechatcom_kf.desk.keywords import KeywordMatcher
from channel.wechatcom_kf.desk.settings import DEFAULT_HANDOFF_KEYWORDS

MATCHER = KeywordMatcher(DEFAULT_HANDOFF_KEYWORDS)


@pytest.mark.parametrize(
    "message",
    ["转人工", "请转人工！", "我要人工", "人工客服。", " 转 人 工 ", "找人工吧", "真人客服谢谢", "ＲＥＡＬ"],
)
def test_whole_short_requests_hand_off(message: str) -> None:
    matcher = KeywordMatcher([*DEFAULT_HANDOFF_KEYWORDS, "real"])
    assert matcher.matches(message)


@pytest.mark.parametrize(
    "message",
    ["人工智能是什么", "不要转人工", "我想问一下人工客服几点上班", "转人工" * 20, "", "请", "谢谢"],
)
def test_sentences_that_mention_a_keyword_do_not(message: str) -> None:
    assert not MATCHER.matches(message)


def test_an_empty_list_turns_keywords_off() -> None:
    off = KeywordMatcher([])
    assert not off and not off.matches("转人工")
