from __future__ import annotations

from typing import Any

import pytest

from channel.wechatcom_kf.desk.menus import check_menu, click_ids

CLICK = {"type": "click", "click": {"id": "handoff", "content": "转人工"}}


def test_a_menu_gets_the_welcome_as_its_head() -> None:
    body = check_menu("m", {"list": [CLICK], "tail_content": "尾"}, "您好")
    assert body == {"list": [CLICK], "head_content": "您好", "tail_content": "尾"}
    assert click_ids(body) == {"handoff"}


def test_an_empty_setting_means_no_menu() -> None:
    assert check_menu("m", {}, "您好") is None


@pytest.mark.parametrize(
    ("menu", "named"),
    [
        ({"list": []}, "non-empty list"),
        ({"list": [CLICK] * 11}, "11 menu items"),
        ({"list": [{"type": "button"}]}, "m.list[0] needs a type"),
        ({"list": [{"type": "click", "click": {"id": "", "content": "x"}}]}, "m.list[0].click.id"),
        ({"list": [{"type": "click", "click": {"id": "x" * 129, "content": "x"}}]}, "129 bytes"),
        ({"list": [{"type": "view", "view": {"url": "ftp://x", "content": "x"}}]}, "http://"),
        ({"list": [CLICK], "head_content": "长" * 400}, "m.head_content"),
    ],
)
def test_bad_menus_are_refused_naming_the_item(menu: dict[str, Any], named: str) -> None:
    with pytest.raises(ValueError, match=named.replace("[", r"\[").replace("]", r"\]")):
        check_menu("m", menu, "")
