"""The sandbox chat page in a real headless Chromium, against the emulator and the real channel.

The app is assembled in-process the way ``python app.py --sandbox`` does it (load the configuration,
start the sandbox, create the channel, serve it in a thread), so the test can also reach the emulator's
fault knobs and records. ``tests/sandbox/test_launcher.py`` runs the real command line.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re
import shutil
import struct
import tempfile
import threading
import time
import wave
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from PIL import Image

import config
from channel.channel_factory import create_channel
from sandbox.launcher import SANDBOX_WELCOME_TEXT, SandboxHandle, start_sandbox

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT = ROOT / "test-output" / "sandbox.png"
PHONE_SCREENSHOT = ROOT / "test-output" / "sandbox-360.png"
WAIT = 20.0  # seconds for anything the page should show; a bound, not an expectation
QUIET = 1.5  # seconds we keep watching to be sure the bot stays silent

MESSAGES_JS = """
return Array.from(document.querySelectorAll('#messages [data-testid="message"]')).map(m => ({
  from: m.dataset.from, type: m.dataset.msgtype, text: m.innerText,
  img: (m.querySelector('img') || {}).src || null,
  audio: (m.querySelector('audio') || {}).src || null,
  file: (m.querySelector('a.file-card') || {}).href || null}));
"""
PROTOCOL_JS = """
return Array.from(document.querySelectorAll('#protocol-list [data-testid="protocol-entry"]')).map(e => ({
  kind: e.dataset.kind, api: e.dataset.api, errcode: e.dataset.errcode, seq: Number(e.dataset.seq),
  limit: e.classList.contains('limit'), text: e.innerText}));
"""


def _find_browser() -> tuple[str, str]:
    driver = (
        "/usr/bin/chromedriver" if os.path.exists("/usr/bin/chromedriver") else shutil.which("chromedriver")
    )
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if not driver or not browser:
        pytest.fail(
            "headless Chromium is required for the sandbox browser tests: install the Debian packages "
            "`chromium` and `chromium-driver` (bash scripts/check.sh installs them)",
            pytrace=False,
        )
    return browser, driver


@pytest.fixture(scope="module")
def sandbox_app() -> Iterator[tuple[SandboxHandle, Any]]:
    """Configuration -> sandbox -> channel, like app.py; the echo bot answers (no API key)."""
    browser_paths = _find_browser()  # fail before starting anything when the browser is missing
    assert browser_paths
    previous = config.conf()
    work = tempfile.mkdtemp(prefix="sandbox-browser-")
    empty_config = os.path.join(work, "config.json")
    with open(empty_config, "w", encoding="utf-8") as fh:
        json.dump({"open_ai_api_key": "", "bot_type": ""}, fh)
    config.load_config(empty_config, environ={})
    handle = start_sandbox(config.conf())
    channel: Any = create_channel("wechatcom_kf")
    thread = threading.Thread(target=channel.startup, name="sandbox-browser-channel", daemon=True)
    thread.start()
    try:
        assert channel.wait_ready(10.0), "the channel's callback server did not start"
        yield handle, channel
    finally:
        channel.stop()
        thread.join(15.0)
        handle.stop()
        config.config = previous
        shutil.rmtree(work, ignore_errors=True)


@pytest.fixture(scope="module")
def driver(sandbox_app: tuple[SandboxHandle, Any]) -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, chromedriver = _find_browser()
    profile = tempfile.mkdtemp(prefix="sandbox-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1440,900",
        "--lang=zh-CN",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    drv = webdriver.Chrome(service=Service(chromedriver), options=options)
    drv.set_page_load_timeout(30)
    try:
        yield drv
    finally:
        drv.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def page(driver: Any, sandbox_app: tuple[SandboxHandle, Any]) -> Any:
    handle, _ = sandbox_app
    driver.get(handle.url)
    wait_for(
        driver, lambda: driver.execute_script("return document.body.dataset.ready === '1'"), "page ready"
    )
    return driver


def wait_for(driver: Any, predicate: Callable[[], Any], what: str, timeout: float = WAIT) -> Any:
    """Poll ``predicate`` (bounded in time); fail naming ``what`` and showing the page's messages."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            shown = driver.execute_script(MESSAGES_JS)
            pytest.fail(f"timed out waiting for {what}; messages on the page: {shown}")
        time.sleep(0.1)


def messages(driver: Any) -> list[dict[str, Any]]:
    return list(driver.execute_script(MESSAGES_JS))


def protocol(driver: Any) -> list[dict[str, Any]]:
    return list(driver.execute_script(PROTOCOL_JS))


def by_id(driver: Any, testid: str) -> Any:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.CSS_SELECTOR, f'[data-testid="{testid}"]')


def add_customer(driver: Any, nickname: str) -> str:
    by_id(driver, "customer-add-name").send_keys(nickname)
    by_id(driver, "customer-add").click()
    wait_for(driver, lambda: nickname in by_id(driver, "chat-title").text, f"customer {nickname} selected")
    userid = driver.execute_script("return document.querySelector('.customer-item.selected').dataset.userid")
    assert userid
    return str(userid)


def send_text(driver: Any, text: str) -> None:
    box = by_id(driver, "message-input")
    box.send_keys(text)
    by_id(driver, "send-button").click()
    wait_for(
        driver,
        lambda: any(m["from"] == "customer" and text in m["text"] for m in messages(driver)),
        f"own message {text!r}",
    )


def bot_texts(driver: Any) -> list[str]:
    return [m["text"] for m in messages(driver) if m["from"] == "bot"]


def test_text_round_trip(page: Any) -> None:
    add_customer(page, "Alice")
    send_text(page, "你好 sandbox")
    wait_for(page, lambda: any("你说：你好 sandbox" in t for t in bot_texts(page)), "the echo reply")
    # Between them the page may show system notes (the bot claiming the session: service_state 1).
    shown = [m["from"] for m in messages(page) if m["from"] != "system"]
    assert shown == ["customer", "bot"]


def test_message_text_is_shown_as_text_never_as_html(page: Any) -> None:
    add_customer(page, "<b>Mallory</b>")
    payload = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>'
    send_text(page, payload)
    wait_for(page, lambda: any(payload in t for t in bot_texts(page)), "the echoed markup")
    assert page.execute_script("return window.__xss === undefined")
    assert (
        page.execute_script("return document.querySelectorAll('#messages img, #messages script').length") == 0
    )
    assert "<b>Mallory</b>" in by_id(page, "chat-title").text


def test_enter_session_brings_the_welcome(page: Any) -> None:
    add_customer(page, "Bob")
    by_id(page, "enter-session").click()
    wait_for(page, lambda: any(SANDBOX_WELCOME_TEXT in t for t in bot_texts(page)), "the welcome text")
    assert sum(SANDBOX_WELCOME_TEXT in t for t in bot_texts(page)) == 1


def test_image_upload_is_answered(page: Any, tmp_path: Path) -> None:
    add_customer(page, "Carol")
    picture = tmp_path / "photo.png"
    Image.new("RGB", (64, 48), (7, 193, 96)).save(picture)
    by_id(page, "upload-image").send_keys(str(picture))
    wait_for(
        page,
        lambda: any(m["from"] == "customer" and m["type"] == "image" and m["img"] for m in messages(page)),
        "the uploaded image in the chat",
    )
    wait_for(page, lambda: any("图片" in t for t in bot_texts(page)), "the reply to the image")
    image = next(m for m in messages(page) if m["type"] == "image")
    assert "/sandbox/media/" in image["img"]
    loaded = page.execute_script(
        "const i = document.querySelector('#messages img'); return i.complete && i.naturalWidth;"
    )
    assert loaded == 64


def _tone_wav(path: Path, seconds: float = 1.0) -> None:
    rate = 8000
    frames = b"".join(
        struct.pack("<h", int(6000 * math.sin(2 * math.pi * 440 * n / rate)))
        for n in range(int(rate * seconds))
    )
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(frames)


def test_voice_upload_plays_back_and_is_answered(page: Any, tmp_path: Path) -> None:
    add_customer(page, "Vera")
    clip = tmp_path / "hello.wav"
    _tone_wav(clip)
    by_id(page, "upload-voice").send_keys(str(clip))
    voice = wait_for(
        page,
        lambda: next((m for m in messages(page) if m["type"] == "voice" and m["audio"]), None),
        "the voice message with a player",
    )
    assert voice["from"] == "customer"
    assert "/sandbox/media/" in voice["audio"] and "format=wav" in voice["audio"]
    played = requests.get(voice["audio"], timeout=5)
    assert played.status_code == 200 and played.content[:4] == b"RIFF"
    # Without speech-to-text the bot still answers (it says it cannot read voice) rather than staying silent.
    wait_for(page, lambda: bot_texts(page), "a reply to the voice message")


def test_file_upload_offers_a_download(page: Any, tmp_path: Path) -> None:
    add_customer(page, "Fiona")
    doc = tmp_path / "order-123.txt"
    doc.write_text("订单 123：两件商品\n", encoding="utf-8")
    by_id(page, "upload-file").send_keys(str(doc))
    shown = wait_for(
        page,
        lambda: next((m for m in messages(page) if m["type"] == "file" and m["file"]), None),
        "the file card",
    )
    assert "order-123.txt" in shown["text"]
    assert requests.get(shown["file"], timeout=5).content == doc.read_bytes()


def test_takeover_silences_the_bot_until_hand_back(page: Any, sandbox_app: tuple[SandboxHandle, Any]) -> None:
    handle, channel = sandbox_app
    emu = handle.emulator
    user = add_customer(page, "Dave")
    by_id(page, "takeover").click()
    wait_for(page, lambda: by_id(page, "session-state").get_attribute("data-state") == "3", "state 3 (human)")

    sends_before = len(emu.sends_to(user))
    send_text(page, "有人吗")
    # The channel pulled and handled the message (finished without answering), then stays quiet.
    wait_for(
        page,
        lambda: any(
            "有人吗" in json.dumps(e.get("response"), ensure_ascii=False)
            for e in emu.protocol_log()
            if e.get("api") == "kf/sync_msg"
        ),
        "the message pulled by kf/sync_msg",
    )
    assert channel.wait_idle(WAIT)
    time.sleep(QUIET)
    assert len(emu.sends_to(user)) == sends_before
    assert bot_texts(page) == []

    by_id(page, "servicer-input").send_keys("人工客服为您服务")
    by_id(page, "servicer-send").click()
    wait_for(
        page,
        lambda: any(m["from"] == "servicer" and "人工客服为您服务" in m["text"] for m in messages(page)),
        "the receptionist's message",
    )
    assert channel.wait_idle(WAIT)
    assert bot_texts(page) == []

    by_id(page, "handback").click()
    wait_for(page, lambda: by_id(page, "session-state").get_attribute("data-state") != "3", "hand back")
    send_text(page, "还在吗")
    wait_for(page, lambda: any("你说：还在吗" in t for t in bot_texts(page)), "the bot answering again")
    assert not any("有人吗" in t for t in bot_texts(page))


def test_protocol_pane_lists_the_calls_in_order(page: Any) -> None:
    add_customer(page, "Erin")
    start = max((e["seq"] for e in protocol(page)), default=0)
    send_text(page, "协议")
    wait_for(page, lambda: any("你说：协议" in t for t in bot_texts(page)), "the echo reply")

    def new_entries() -> list[dict[str, Any]]:
        return [e for e in protocol(page) if e["seq"] > start]

    wait_for(
        page,
        lambda: any(e["api"] == "kf/send_msg" and "Erin" in e["text"] for e in new_entries()),
        "send_msg to Erin in the pane",
    )
    entries = new_entries()
    assert [e["seq"] for e in entries] == sorted(e["seq"] for e in entries)
    apis = [e["api"] for e in entries]
    assert "callback" in apis and "kf/sync_msg" in apis, entries
    send_to_erin = next(i for i, e in enumerate(entries) if e["api"] == "kf/send_msg" and "Erin" in e["text"])
    # The pane reads in causal order: the callback, then the pull it caused, then the reply.
    assert apis.index("callback") < apis.index("kf/sync_msg") < send_to_erin, entries
    assert all(e["limit"] == (e["errcode"] not in ("", "0")) for e in protocol(page)), protocol(page)


def test_enforced_limits_are_highlighted(page: Any, sandbox_app: tuple[SandboxHandle, Any]) -> None:
    handle, _ = sandbox_app
    add_customer(page, "Frank")
    handle.emulator.faults.rate_limit_next(1)
    send_text(page, "限流")
    wait_for(page, lambda: any(e["errcode"] == "45009" for e in protocol(page)), "the 45009 entry")
    limited = [e for e in protocol(page) if e["errcode"] == "45009"]
    assert all(e["limit"] for e in limited)
    count = int(by_id(page, "limit-count").get_attribute("data-count"))
    assert count >= len(limited) >= 1
    # The channel backs off and still answers.
    wait_for(page, lambda: any("你说：限流" in t for t in bot_texts(page)), "the reply after the back-off")


@contextlib.contextmanager
def _quiet_urllib3() -> Iterator[None]:
    """This test plays the app by hand and puts credentials in URLs on purpose; keep urllib3's DEBUG
    request lines (which would copy them) out of the run's log scan, which guards the app's logs."""
    urllib3_logger = logging.getLogger("urllib3")
    previous = urllib3_logger.level
    urllib3_logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        urllib3_logger.setLevel(previous)


def _app_call(emu: Any, api: str, body: dict[str, Any]) -> dict[str, Any]:
    """One cgi-bin call the way the app makes it: gettoken, then the token in the query string."""
    with _quiet_urllib3():
        params = {"corpid": emu.corp_id, "corpsecret": emu.secret}
        token = requests.get(emu.api_base + "gettoken", params=params, timeout=5).json()["access_token"]
        answer = requests.post(emu.api_base + api, params={"access_token": token}, json=body, timeout=5)
    result: dict[str, Any] = answer.json()
    return result


def _synced_items(emu: Any, kf: str) -> list[dict[str, Any]]:
    """Every item kf/sync_msg returns for ``kf`` (paging while has_more)."""
    items: list[dict[str, Any]] = []
    cursor = ""
    while True:
        page = _app_call(emu, "kf/sync_msg", {"open_kfid": kf, "cursor": cursor})
        assert page["errcode"] == 0, page
        items += page["msg_list"]
        cursor = page["next_cursor"]
        if not page["has_more"]:
            return items


def test_menu_buttons_send_the_click_back(page: Any, sandbox_app: tuple[SandboxHandle, Any]) -> None:
    handle, _ = sandbox_app
    emu = handle.emulator
    kf = emu.default_kfid
    user = add_customer(page, "Grace")
    send_text(page, "看看")
    wait_for(page, lambda: bot_texts(page), "the bot's reply (the customer has written: sends allowed)")
    menu = {
        "head_content": "请选择 choose",
        "list": [
            {"type": "click", "click": {"id": "m-201", "content": "查订单 orders"}},
            {"type": "click", "click": {"id": "m-202", "content": "营业时间 hours"}},
            {"type": "view", "view": {"url": "https://example.com/faq", "content": "常见问题 FAQ"}},
            {"type": "text", "text": {"content": "或直接留言 or just write"}},
        ],
        "tail_content": "谢谢 thanks",
    }
    sent = _app_call(
        emu, "kf/send_msg", {"touser": user, "open_kfid": kf, "msgtype": "msgmenu", "msgmenu": menu}
    )
    assert sent["errcode"] == 0, sent
    buttons = wait_for(
        page,
        lambda: page.find_elements("css selector", '#messages [data-testid="menu-click"]'),
        "the menu's click buttons",
    )
    assert [(b.get_attribute("data-menu-id"), b.text) for b in buttons] == [
        ("m-201", "查订单 orders"),
        ("m-202", "营业时间 hours"),
    ]
    shown = next(m for m in messages(page) if m["type"] == "msgmenu")
    assert shown["from"] == "bot"
    assert all(part in shown["text"] for part in ("请选择 choose", "或直接留言 or just write", "谢谢 thanks"))
    link = page.find_element("css selector", '#messages a[data-testid="menu-view"]')
    assert (link.get_attribute("href"), link.text) == ("https://example.com/faq", "常见问题 FAQ")

    buttons[0].click()
    wait_for(
        page,
        lambda: page.find_elements("css selector", '#messages [data-from="customer"][data-menu-id="m-201"]'),
        "the click shown as the customer's message",
    )
    clicked = [m for m in _synced_items(emu, kf) if m.get("external_userid") == user and m["origin"] == 3]
    assert clicked[-1]["msgtype"] == "text"
    assert clicked[-1]["text"] == {"content": "查订单 orders", "menu_id": "m-201"}


def test_screenshot_of_a_conversation(page: Any, tmp_path: Path) -> None:
    add_customer(page, "小明")
    by_id(page, "enter-session").click()
    wait_for(page, lambda: any(SANDBOX_WELCOME_TEXT in t for t in bot_texts(page)), "the welcome text")
    send_text(page, "请问你们几点营业？")
    wait_for(page, lambda: any("几点营业" in t for t in bot_texts(page)), "the echo reply")
    picture = tmp_path / "receipt.png"
    Image.new("RGB", (160, 120), (250, 157, 59)).save(picture)
    by_id(page, "upload-image").send_keys(str(picture))
    wait_for(page, lambda: any("图片" in t for t in bot_texts(page)), "the reply to the image")
    errors = [e for e in page.get_log("browser") if e["level"] == "SEVERE" and "favicon" not in e["message"]]
    assert errors == [], errors
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    assert page.save_screenshot(str(SCREENSHOT))
    assert SCREENSHOT.stat().st_size > 10_000


# ---------- narrow windows, the root address, the status, notices and session states ----------

CJK = re.compile("[\u4e00-\u9fff]")
NOTICES_JS = """
return Array.from(document.querySelectorAll('#messages [data-from="system"]')).map(m => m.innerText);
"""
FITS_JS = """
const r = arguments[0].getBoundingClientRect();
return r.width > 0 && r.height > 0 && r.left >= 0 && r.right <= window.innerWidth;
"""
# The element itself (not something covering it) is what a tap at its centre reaches.
REACHABLE_JS = """
const e = arguments[0]; e.scrollIntoView({block: 'center'});
const r = e.getBoundingClientRect();
const hit = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
return hit === e || e.contains(hit);
"""
NO_SIDEWAYS_SCROLL_JS = "return document.documentElement.scrollWidth <= window.innerWidth"


@contextlib.contextmanager
def viewport(driver: Any, width: int, height: int, mobile: bool) -> Iterator[None]:
    """The page at ``width`` x ``height`` CSS px (``mobile``: a phone's viewport), then the window's again."""
    metrics = {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile}
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
    try:
        assert driver.execute_script("return window.innerWidth") == width
        yield
    finally:
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def open_page(driver: Any, url: str) -> Any:
    driver.get(url)
    wait_for(
        driver, lambda: driver.execute_script("return document.body.dataset.ready === '1'"), "page ready"
    )
    return driver


def assert_chat_usable(driver: Any, nickname: str) -> None:
    """Add a customer, check the message box and the send button are on screen and reachable, send a
    message and see it and the bot's echo; the page never scrolls sideways."""
    add_customer(driver, nickname)
    for testid in ("message-input", "send-button"):
        element = by_id(driver, testid)
        assert element.is_displayed() and element.is_enabled(), testid
        assert driver.execute_script(REACHABLE_JS, element), f"{testid} is covered"
        assert driver.execute_script(FITS_JS, element), f"{testid} is not inside the window's width"
    text = f"{nickname} 窄屏"
    send_text(driver, text)
    wait_for(driver, lambda: any(f"你说：{text}" in t for t in bot_texts(driver)), "the echo reply")
    assert driver.execute_script(NO_SIDEWAYS_SCROLL_JS), driver.execute_script(
        "return [document.documentElement.scrollWidth, window.innerWidth]"
    )


def test_phone_width_one_column_chat_first(driver: Any, sandbox_app: tuple[SandboxHandle, Any]) -> None:
    handle, _ = sandbox_app
    with viewport(driver, 360, 740, mobile=True):
        open_page(driver, handle.url)
        assert driver.execute_script(NO_SIDEWAYS_SCROLL_JS)
        assert_chat_usable(driver, "Pia")
        tops = driver.execute_script(
            "return ['.chat', '.sidebar', '.protocol'].map(s => document.querySelector(s)"
            ".getBoundingClientRect().top + window.scrollY)"
        )
        assert tops == sorted(tops), f"one column, the chat first: {tops}"
        # The protocol log sits below, collapsed until opened; open, it still fits the width.
        assert not by_id(driver, "protocol-list").is_displayed()
        toggle = by_id(driver, "protocol-toggle")
        assert toggle.get_attribute("aria-expanded") == "false"
        toggle.click()
        wait_for(driver, lambda: by_id(driver, "protocol-list").is_displayed(), "the protocol log opened")
        wait_for(driver, lambda: protocol(driver), "protocol entries")
        assert driver.execute_script(NO_SIDEWAYS_SCROLL_JS)
        assert driver.execute_script(FITS_JS, by_id(driver, "protocol-list"))
        toggle.click()
        wait_for(driver, lambda: not by_id(driver, "protocol-list").is_displayed(), "the log collapsed")
        driver.execute_script("window.scrollTo(0, 0)")
        PHONE_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        assert driver.save_screenshot(str(PHONE_SCREENSHOT))
    assert PHONE_SCREENSHOT.stat().st_size > 5_000


def test_1024_width_three_columns_fit(driver: Any, sandbox_app: tuple[SandboxHandle, Any]) -> None:
    handle, _ = sandbox_app
    with viewport(driver, 1024, 768, mobile=False):
        open_page(driver, handle.url)
        assert_chat_usable(driver, "Tess")
        boxes = driver.execute_script(
            "return ['.sidebar', '.chat', '.protocol'].map(s => {"
            "const r = document.querySelector(s).getBoundingClientRect(); return [r.left, r.right, r.top];})"
        )
        (_, side_right, side_top), (chat_left, chat_right, chat_top), (log_left, log_right, log_top) = boxes
        assert side_top == chat_top == log_top, boxes
        assert side_right <= chat_left and chat_right <= log_left and log_right <= 1024, boxes
        assert by_id(driver, "protocol-list").is_displayed()
        assert not by_id(driver, "protocol-toggle").is_displayed()


def test_status_turns_connected_and_back(driver: Any, sandbox_app: tuple[SandboxHandle, Any]) -> None:
    handle, _ = sandbox_app
    open_page(driver, handle.url)
    status = by_id(driver, "conn-status")
    # Well before the first long-poll's 20 s wait ends, whether or not anything arrived.
    wait_for(driver, lambda: status.get_attribute("data-state") == "online", "connected", timeout=5.0)
    assert "已连接" in status.text
    # The emulator stops answering (every fetch fails): the status says so, and recovers after.
    driver.execute_script(
        "window.__fetch = window.fetch;"
        "window.fetch = () => Promise.reject(new TypeError('emulator unreachable (test)'));"
    )
    try:
        by_id(driver, "message-input").send_keys("断线")
        by_id(driver, "send-button").click()
        wait_for(driver, lambda: status.get_attribute("data-state") == "offline", "disconnected")
        assert "断开" in status.text
    finally:
        driver.execute_script("window.fetch = window.__fetch;")
    wait_for(driver, lambda: status.get_attribute("data-state") == "online", "connected again")
    assert "已连接" in status.text


def test_takeover_notice_is_chinese(page: Any) -> None:
    add_customer(page, "Hana")
    by_id(page, "takeover").click()
    notice = wait_for(
        page,
        lambda: next((n for n in page.execute_script(NOTICES_JS) if "接管" in n), None),
        "the takeover notice",
    )
    assert "zhangsan" in notice and "took over" not in notice
    by_id(page, "handback").click()
    wait_for(page, lambda: any("结束" in n for n in page.execute_script(NOTICES_JS)), "the hand-back notice")
    notices = page.execute_script(NOTICES_JS)
    assert notices and all(CJK.search(n) for n in notices), notices
    assert not any(word in n for n in notices for word in ("session", "customer", "->")), notices


def session_badge(driver: Any) -> tuple[str, str]:
    badge = by_id(driver, "session-state")
    return str(badge.get_attribute("data-state")), str(badge.text)


def test_fresh_session_is_not_shown_as_ended(page: Any, sandbox_app: tuple[SandboxHandle, Any]) -> None:
    handle, _ = sandbox_app
    user = add_customer(page, "Ivan")
    assert "已结束" not in session_badge(page)[1]
    by_id(page, "enter-session").click()
    wait_for(page, lambda: any(SANDBOX_WELCOME_TEXT in t for t in bot_texts(page)), "the welcome text")
    # State 4 is WeCom's "ended / not started": entered, nothing ended yet.
    wait_for(page, lambda: session_badge(page)[0] == "4", "state 4 in the badge")
    assert "未开始" in session_badge(page)[1] and "已结束" not in session_badge(page)[1]

    send_text(page, "你好")
    wait_for(page, lambda: any("你说：你好" in t for t in bot_texts(page)), "the echo reply")
    assert "已结束" not in session_badge(page)[1]
    by_id(page, "takeover").click()
    wait_for(page, lambda: session_badge(page)[0] == "3", "state 3 (human)")
    by_id(page, "handback").click()
    wait_for(page, lambda: session_badge(page)[0] == "4", "state 4 after the hand-back")
    assert "已结束" in session_badge(page)[1]

    # A reloaded page tells the two apart from the conversation it reads back.
    open_page(page, handle.url)
    # In one script: the list is redrawn whenever the feed brings something (a found element may go stale).
    page.execute_script(f"document.querySelector('.customer-item[data-userid=\"{user}\"]').click()")
    wait_for(page, lambda: "Ivan" in by_id(page, "chat-title").text, "Ivan selected again")
    wait_for(page, lambda: "已结束" in session_badge(page)[1], "still ended after a reload")


def test_root_address_redirects_to_the_page(driver: Any, sandbox_app: tuple[SandboxHandle, Any]) -> None:
    handle, _ = sandbox_app
    root = handle.emulator.base_url  # the emulator's address as the log prints it
    answer = requests.get(root, allow_redirects=False, timeout=5)
    assert answer.status_code == 302, (answer.status_code, answer.text)
    assert requests.compat.urljoin(root, answer.headers["Location"]) == handle.url
    open_page(driver, root)
    assert driver.current_url == handle.url
    assert by_id(driver, "message-input").is_displayed()
