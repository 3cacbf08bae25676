from __future__ import annotations

import re
from dataclasses import fields

import pytest

from channel.wechatcom_kf.desk.texts import TEXT_SPECS, CustomerTexts


def test_every_text_is_a_setting_and_a_field() -> None:
    assert [s.name for s in TEXT_SPECS] == [f"wechatcom_kf_{f.name}_text" for f in fields(CustomerTexts)]


def test_defaults_are_chinese_without_internals() -> None:
    for spec in TEXT_SPECS:
        text = re.sub(r"\{\w+\}", "", str(spec.default)).replace("AI", "")  # "AI 生成" is the label
        assert not re.search(r"[A-Za-z]", text), spec.name
        assert "ERROR" not in text and "INFO" not in text


def test_configured_texts_replace_the_defaults_and_empty_required_ones_fall_back() -> None:
    texts = CustomerTexts.from_settings(
        {
            "wechatcom_kf_handoff_text": "稍等",
            "wechatcom_kf_model_error_text": "  ",
            "wechatcom_kf_flood_text": "",
        }
    )
    assert texts.handoff == "稍等"
    assert texts.model_error == CustomerTexts().model_error  # required: never empty
    assert texts.flood == ""  # optional: empty = not sent


def test_templates_take_only_their_placeholders() -> None:
    texts = CustomerTexts.from_settings({"wechatcom_kf_media_too_big_text": "{kind}超过限制"})
    assert texts.media_too_big_for("video") == "视频超过限制"
    with pytest.raises(ValueError, match=r"wechatcom_kf_media_failed_text: unknown placeholder \{name\}"):
        CustomerTexts.from_settings({"wechatcom_kf_media_failed_text": "{name}失败"})
    with pytest.raises(ValueError, match="wechatcom_kf_handoff_text"):
        CustomerTexts.from_settings({"wechatcom_kf_handoff_text": "转接中{"})
