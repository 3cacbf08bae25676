"""Customer media through the real protocol: emulator -> kf/sync_msg -> media/get via KfApi -> disk."""

from __future__ import annotations

import io
import re
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image
from wechatpy.enterprise.crypto import WeChatCrypto

from bridge.context import ContextType
from channel.wechatcom_kf.api import KfApi
from channel.wechatcom_kf.inbound.items import CustomerMessage, parse_item
from channel.wechatcom_kf.inbound.turns import Turn, TurnAssembler
from channel.wechatcom_kf.wechatcom_kf_message import WechatComKfMessage
from channel.wechatcom_kf.workers import KeyedWorkers
from sandbox.emulator import WeComEmulator


@pytest.fixture
def api(emu: WeComEmulator) -> Iterator[KfApi]:
    client = KfApi(emu.corp_id, emu.secret, api_base=emu.api_base, timeout=5.0)
    try:
        yield client
    finally:
        client.close()


def pull_customer_items(emu: WeComEmulator, api: KfApi) -> list[CustomerMessage]:
    """Pull like the channel does: decrypt a real signed callback for its Token, then sync_msg."""
    params, body = emu.encrypt_callback(emu.default_kfid)
    crypto = WeChatCrypto(emu.callback_token, emu.aes_key, emu.corp_id)
    xml = crypto.decrypt_message(body, params["msg_signature"], params["timestamp"], params["nonce"])
    match = re.search(r"<Token><!\[CDATA\[(.*?)\]\]></Token>", xml)
    assert match is not None
    page = api.sync_msg(emu.default_kfid, None, match.group(1))
    items = [parse_item(raw, emu.default_kfid) for raw in page.msg_list]
    return [item for item in items if isinstance(item, CustomerMessage)]


def png_bytes() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 30, 30)).save(out, format="PNG")
    return out.getvalue()


def test_media_from_the_emulator_is_saved_safely(emu: WeComEmulator, api: KfApi, tmp_path: Path) -> None:
    user = emu.add_customer(nickname="张三")
    kf = emu.default_kfid
    png = png_bytes()
    emu.customer_media(kf, user, "image", png, filename="../../evil.png", notify=False)
    emu.customer_media(kf, user, "file", b"%PDF-1.4 quarterly", filename="a/../../b.sh", notify=False)
    emu.customer_media(kf, user, "image", b"\xff\xd8\xff" + b"\x00" * (2 * 1024 * 1024), notify=False)
    emu.customer_text(kf, user, "图里这是什么？", notify=False)
    media_dir = tmp_path / "media"
    messages = [WechatComKfMessage(item, api, media_dir) for item in pull_customer_items(emu, api)]
    assert [m.msgtype for m in messages] == ["image", "file", "image", "text"]

    turns: list[Turn] = []
    workers = KeyedWorkers("test-customer", 1)
    assembler = TurnAssembler(workers, 60.0, turns.append)
    for message in messages:
        assert assembler.submit(message)
    assert workers.wait_idle(10)  # the question took the attachments along: no window waits
    assert len(turns) == 1
    workers.shutdown(5)
    turns[0].prepare()
    image, doc, too_big, _ = messages

    assert Path(image.content).read_bytes() == png
    assert doc.display_name == "b.sh" and doc.content.endswith(".pdf")
    for saved in (image, doc):
        path = Path(saved.content).resolve()
        assert path.parent == media_dir.resolve()
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert too_big.ctype == ContextType.TEXT and "图片下载失败" in too_big.content  # over the 2 MB cap
    assert sorted(p.suffix for p in media_dir.iterdir()) == [".pdf", ".png"]

    ctype, content, kwargs = turns[0].to_context_args()
    assert ctype == ContextType.TEXT
    assert kwargs["image_paths"] == [image.content]
    assert kwargs["kf_msgids"] == [m.msg_id for m in messages]
    assert "[用户发送了文件：b.sh]" in content and "图片下载失败" in content
    assert content.endswith("图里这是什么？")
