"""A streamed answer's early parts are exactly the first parts of the whole answer's plan: checked for
every prefix of Markdown answers of every shape (paragraphs, lists, code, tables, setext headings,
long lines without boundaries, emoji), for several budgets."""

from __future__ import annotations

import random

import pytest

from channel.wechatcom_kf.outbound.early_parts import ON_PARTIAL_TEXT, settled_answer_parts
from channel.wechatcom_kf.outbound.markdown import markdown_to_plain
from channel.wechatcom_kf.outbound.text import split_text


def _answers() -> list[str]:
    rng = random.Random(7)
    para = "这是一段比较长的回答，用来说明退货、换货和发票的流程。" * 9
    pieces = [
        para,
        "## 退货流程\n\n1. 登录账号\n2. 找到订单\n3. 点击**申请退货**",
        "```python\nprint('hello')\n\nx = 1\n```",
        "| 项目 | 说明 |\n|---|---|\n| 运费 | 免费 |\n| 时效 | 3 天 |",
        "标题\n=====\n正文一行。",
        "长" * 1000 + "\n=====",  # a long line that the next one turns into a heading
        "| " + "列" * 900 + " |\n|---|\n| 值 |",  # a long table header, its delimiter row after it
        "x" * 3000,  # no boundary at all
        "😀👍🏽🇨🇳" * 200,
        "Short line.\nAnother line, with a comma, and more words to fill the window.",
        "普通的一行字，" * 120 + "**结尾加粗**",  # prose until its end
    ]
    answers = []
    for _ in range(12):
        chosen = [rng.choice(pieces) for _ in range(rng.randint(3, 9))]
        answers.append("\n\n".join(chosen))
    return answers


@pytest.mark.parametrize("budget", [2, 3, 5])
@pytest.mark.parametrize("answer", _answers())
def test_early_parts_are_a_prefix_of_the_final_plan(answer: str, budget: int) -> None:
    final = split_text(markdown_to_plain(answer), max_bytes=2048, max_parts=budget)
    newlines = {i + 1 for i, char in enumerate(answer) if char == "\n"}  # right after each line
    for end in sorted(set(range(0, len(answer) + 1, 37)) | newlines):
        early = settled_answer_parts(answer[:end], max_bytes=2048, budget=budget)
        assert early == final[: len(early)], f"prefix {end}"
        assert len(early) <= budget - 1  # the part that may need the marker waits for the end


@pytest.mark.parametrize(
    "line",
    [
        "**重点**" * 60,  # converts to far less than it is while being written
        "说明：" + "[链接](https://example.com/a)" * 20,
        "这一行是普通的文字，" * 30,  # prose: converts to itself
        "这一行是普通的文字，" * 30 + "\n=====",  # prose, then a heading
    ],
)
def test_a_line_still_being_written_settles_only_what_the_whole_answer_has(line: str) -> None:
    para = "这是一段比较长的回答，用来说明退货、换货和发票的流程。" * 9
    answer = f"{para}\n\n{para}\n\n{line}"
    final = split_text(markdown_to_plain(answer), max_bytes=2048, max_parts=5)
    for end in range(len(answer) + 1):
        early = settled_answer_parts(answer[:end], max_bytes=2048, budget=5)
        assert early == final[: len(early)], f"prefix {end}"


def test_a_three_part_answer_settles_its_first_part_early() -> None:
    paragraphs = [f"第{i}段：" + "退货须在签收后七天内申请，商品需保持完好。" * 6 for i in range(1, 16)]
    answer = "\n\n".join(paragraphs)  # three nearly full parts
    final = split_text(markdown_to_plain(answer), max_bytes=2048, max_parts=5)
    assert len(final) == 3
    at = next(
        end for end in range(len(answer) + 1) if settled_answer_parts(answer[:end], max_bytes=2048, budget=5)
    )
    assert at < 0.38 * len(answer)  # once the text runs past the first part's window
    assert settled_answer_parts(answer, max_bytes=2048, budget=5) == final[:2]  # the last waits for the end


def test_a_part_before_a_long_line_of_prose_goes_before_the_line_ends() -> None:
    answer = "开头一段说明。" * 80 + "\n\n" + "接着是很长的一段普通文字，没有换行，" * 80
    final = split_text(markdown_to_plain(answer), max_bytes=2048, max_parts=5)
    assert final[0] == "开头一段说明。" * 80  # the plan cuts at the paragraph break
    at = next(
        end for end in range(len(answer) + 1) if settled_answer_parts(answer[:end], max_bytes=2048, budget=5)
    )
    assert at < 0.4 * len(answer)  # not when the line's newline arrives, at the very end


def test_the_customer_text_is_applied_before_cutting() -> None:
    answer = "\n\n".join(["第一段说明。" * 60, "第二段说明。" * 60, "第三段说明。" * 60, "结尾"])
    preamble = "以下回复由 AI 生成，仅供参考。"
    final = split_text(markdown_to_plain(f"{preamble}\n\n{answer}"), max_bytes=2048, max_parts=5)
    early = settled_answer_parts(
        answer, max_bytes=2048, budget=5, customer_text=lambda t: f"{preamble}\n\n{t}"
    )
    assert early and early == final[: len(early)] and early[0].startswith(preamble)


def test_the_context_key_is_the_one_the_streaming_bots_call() -> None:
    from models.streaming import ON_PARTIAL_TEXT as BOTS_KEY

    assert ON_PARTIAL_TEXT == BOTS_KEY
