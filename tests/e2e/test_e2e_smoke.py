"""One customer text goes through the whole channel and is answered once."""

from __future__ import annotations


def test_one_text_message_is_answered(emu, runner):
    runner.start()
    user = emu.add_customer("张三")
    msgid = emu.customer_text(emu.default_kfid, user, "你好")
    sends = emu.wait_for_sends(1, timeout=10)
    assert [s.touser for s in sends] == [user]
    assert sends[0].text == "你说：你好"
    assert sends[0].reply_to == msgid
