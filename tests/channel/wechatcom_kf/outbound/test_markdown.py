from channel.wechatcom_kf.outbound.markdown import markdown_to_plain


def test_headings_become_plain_lines():
    assert markdown_to_plain("# 标题\n正文") == "【标题】\n正文"
    assert markdown_to_plain("## **粗体标题** ##") == "【粗体标题】"
    assert markdown_to_plain("#### 小节") == "小节"
    assert markdown_to_plain("Title\n=====") == "【Title】"


def test_emphasis_markers_removed():
    text = "这是**重点**和*斜体*，还有__强调__、_倾斜_与~~删除~~。"
    assert markdown_to_plain(text) == "这是重点和斜体，还有强调、倾斜与删除。"
    assert markdown_to_plain("***both***") == "both"


def test_lists():
    text = "- 一\n* 二\n+ 三\n  - 子项\n1. 第一\n2) 第二\n- [x] 完成\n- [ ] 待办"
    assert markdown_to_plain(text) == "• 一\n• 二\n• 三\n  • 子项\n1. 第一\n2. 第二\n• ☑ 完成\n• ☐ 待办"


def test_links_and_images_keep_urls():
    assert markdown_to_plain("见[官网](https://ex.com/p_a_t_h)。") == "见官网（https://ex.com/p_a_t_h）。"
    assert markdown_to_plain("[https://a.com](https://a.com)") == "https://a.com"
    assert markdown_to_plain('![图](https://img.ex.com/a_b.png "t")') == "https://img.ex.com/a_b.png"
    assert markdown_to_plain("<https://auto.link/x_y>") == "https://auto.link/x_y"
    assert markdown_to_plain("[**粗体链接**](https://b.com)") == "粗体链接（https://b.com）"


def test_code_fences_and_inline_code_keep_code():
    text = "看代码：\n```python\ndef f(a, b):\n    return a*b  # **not bold**\n```\n用 `x_y*z` 即可"
    assert markdown_to_plain(text) == "看代码：\ndef f(a, b):\n    return a*b  # **not bold**\n用 x_y*z 即可"
    assert markdown_to_plain("~~~\n# not a heading\n~~~") == "# not a heading"


def test_tables_become_rows():
    text = "| 名称 | 价格 |\n|------|-----:|\n| 苹果 | **5** |\n| 香蕉 | 3 |\n\n后文"
    assert markdown_to_plain(text) == "名称 | 价格\n苹果 | 5\n香蕉 | 3\n\n后文"


def test_quotes_rules_and_blank_lines():
    text = "> 引用一\n> 引用二\n\n---\n\n\n\n* * *\n\n结束"
    assert markdown_to_plain(text) == "引用一\n引用二\n\n结束"


def test_ordinary_text_is_untouched():
    samples = [
        "今天天气很好，我们去公园散步吧！价格是 3.5 元。",
        "计算 2*3*4 = 24，2**10 = 1024，a * b * c 也行。",
        "访问 https://example.com/a_b_c/*x*/d?q=1_2&r=*y* 查看。",
        "变量 my_var_name、__init__ 和 file_name_v2.txt 保持原样。",
        "100% 正确 #标签 不是标题，1.5 倍，C# 和 F# 语言。",
    ]
    for sample in samples:
        assert markdown_to_plain(sample) == sample


def test_escaped_markers_stay_literal():
    assert markdown_to_plain(r"星号 \*不是斜体\* 和 \# 号") == "星号 *不是斜体* 和 # 号"
