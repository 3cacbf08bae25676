"""The JSON control API the browser page uses, static files and media playback conversion."""

from __future__ import annotations

import http.client
import io
import math
import pathlib
import struct
import subprocess
import tempfile
import threading
import wave

import imageio_ffmpeg
import pytest
import requests

from sandbox.emulator import control_api
from sandbox.emulator.amr import amr_duration


def wav_bytes(seconds: float = 1.0) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        frames = int(16000 * seconds)
        w.writeframes(b"".join(struct.pack("<h", int(8000 * math.sin(i / 10))) for i in range(frames)))
    return out.getvalue()


@pytest.fixture
def page(emu):
    def call(method: str, path: str, **kwargs):
        return requests.request(method, emu.base_url + path.lstrip("/"), timeout=10, **kwargs)

    return call


def test_directory_endpoints(emu, page):
    kf = page("POST", "/sandbox/api/accounts", json={"name": "售后"}).json()["open_kfid"]
    user = page("POST", "/sandbox/api/customers", json={"nickname": "李四"}).json()["external_userid"]
    state = page("GET", "/sandbox/api/state").json()
    assert {"open_kfid": kf, "name": "售后"} in state["accounts"]
    assert {"external_userid": user, "nickname": "李四"} in state["customers"]


def test_send_fires_a_callback_and_appears_in_the_feed(emu, page, receiver):
    user = emu.add_customer("王五")
    answer = page(
        "POST",
        "/sandbox/api/send",
        json={"open_kfid": emu.default_kfid, "external_userid": user, "text": "在吗"},
    )
    assert answer.status_code == 200 and answer.json()["msgid"]
    assert receiver.wait(1)[0]["OpenKfId"] == emu.default_kfid
    feed = page("GET", "/sandbox/api/feed?since=0").json()
    (item,) = feed["items"]
    assert (item["from"], item["text"], item["external_userid"]) == ("customer", "在吗", user)
    assert feed["next"] == item["seq"]
    states = page("GET", "/sandbox/api/state").json()["states"]
    assert states[f"{emu.default_kfid}|{user}"] == 0


def test_feed_long_poll_returns_when_something_happens(emu, page):
    user = emu.add_customer()
    start = page("GET", "/sandbox/api/feed?since=0").json()["next"]
    result = {}

    def poll():
        result["feed"] = page("GET", f"/sandbox/api/feed?since={start}&wait=10").json()

    thread = threading.Thread(target=poll)
    thread.start()
    emu.customer_text(emu.default_kfid, user, "wake up", notify=False)
    thread.join(timeout=15)
    assert [i["text"] for i in result["feed"]["items"]] == ["wake up"]


def test_takeover_handback_servicer_enter_recall(emu, page):
    kf, user = emu.default_kfid, emu.add_customer()
    pair = {"open_kfid": kf, "external_userid": user}
    assert page("POST", "/sandbox/api/enter", json=pair).json()["welcome_code"]
    msgid = page("POST", "/sandbox/api/send", json={**pair, "text": "hi"}).json()["msgid"]
    assert page("POST", "/sandbox/api/takeover", json={**pair, "servicer_userid": "lisi"}).json() == {
        "state": 3
    }
    assert page("POST", "/sandbox/api/servicer_send", json={**pair, "text": "人工"}).json()["msgid"]
    assert page("POST", "/sandbox/api/handback", json=pair).json() == {"state": 4}
    assert page("POST", "/sandbox/api/recall", json={**pair, "msgid": msgid}).json()["msgid"]
    froms = [i["from"] for i in page("GET", "/sandbox/api/feed").json()["items"]]
    assert froms == ["system", "customer", "system", "servicer", "system", "system"]


def test_bad_input_is_400(emu, page):
    assert (
        page(
            "POST", "/sandbox/api/send", json={"open_kfid": "wkx", "external_userid": "wmx", "text": "a"}
        ).status_code
        == 400
    )
    assert page("POST", "/sandbox/api/send", data=b"not json").status_code == 400
    assert page("GET", "/sandbox/api/nope").status_code == 404


def webm_bytes(seconds: float) -> bytes:
    """What Chrome's MediaRecorder produces (Opus in WebM), made with the same real ffmpeg."""
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = pathlib.Path(tmp) / "in.wav", pathlib.Path(tmp) / "out.webm"
        src.write_bytes(wav_bytes(seconds))
        cmd = [
            imageio_ffmpeg.get_ffmpeg_exe(),
            "-loglevel",
            "error",
            "-i",
            str(src),
            "-c:a",
            "libopus",
            str(dst),
        ]
        subprocess.run(cmd, check=True, timeout=60)
        return dst.read_bytes()


@pytest.mark.parametrize("fmt", ["wav", "webm"])
def test_voice_upload_is_converted_to_amr_and_played_back_as_wav(emu, page, fmt):
    kf, user = emu.default_kfid, emu.add_customer()
    recording = wav_bytes(1.0) if fmt == "wav" else webm_bytes(1.0)
    files = {"file": (f"rec.{fmt}", recording, f"audio/{fmt}")}
    data = {"open_kfid": kf, "external_userid": user, "kind": "voice"}
    answer = page("POST", "/sandbox/api/upload", data=data, files=files)
    assert answer.status_code == 200, answer.text
    media_id = emu.messages(kf)[-1]["voice"]["media_id"]
    stored = emu.uploaded_media(media_id)
    assert stored.data.startswith(b"#!AMR\n") and stored.filename == "rec.amr"
    assert amr_duration(stored.data) == pytest.approx(1.0, abs=0.1)
    item = page("GET", "/sandbox/api/feed").json()["items"][-1]
    assert item["media_url"] == f"/sandbox/media/{media_id}?format=wav"
    played = page("GET", item["media_url"])
    assert played.headers["Content-Type"] == "audio/wav" and played.content.startswith(b"RIFF")


def test_image_upload_keeps_png_and_undecodable_input_is_400(emu, page):
    kf, user = emu.default_kfid, emu.add_customer()
    data = {"open_kfid": kf, "external_userid": user, "kind": "image"}
    png = b"\x89PNG\r\n\x1a\n" + b"\0" * 20
    assert page("POST", "/sandbox/api/upload", data=data, files={"file": ("a.png", png)}).status_code == 200
    assert (
        page("POST", "/sandbox/api/upload", data=data, files={"file": ("a.gif", b"junkjunk")}).status_code
        == 400
    )


def test_page_placeholder_static_files_and_traversal_guard(emu, page, tmp_path, monkeypatch):
    monkeypatch.setattr(control_api, "WEB_DIR", tmp_path / "missing")
    placeholder = page("GET", "/sandbox/")
    assert placeholder.status_code == 200 and "sandbox" in placeholder.text
    web = tmp_path / "web"
    web.mkdir()
    (web / "index.html").write_text("<h1>chat</h1>", encoding="utf-8")
    (web / "app.js").write_text("console.log(1)", encoding="utf-8")
    (tmp_path / "secret.txt").write_text("no", encoding="utf-8")
    monkeypatch.setattr(control_api, "WEB_DIR", web)
    assert page("GET", "/sandbox/").text == "<h1>chat</h1>"
    js = page("GET", "/sandbox/static/app.js")
    assert js.text == "console.log(1)" and "javascript" in js.headers["Content-Type"]
    for raw_path in (
        "/sandbox/static/../secret.txt",
        "/sandbox/static/%2e%2e/secret.txt",
        "/sandbox/static/",
    ):
        conn = http.client.HTTPConnection("127.0.0.1", emu.port, timeout=5)
        conn.request("GET", raw_path)  # sent as is, not normalised by a client library
        assert conn.getresponse().status == 404
        conn.close()


def test_click_reaches_the_app_as_a_customer_text_with_menu_id(emu, page, receiver):
    kf, user = emu.default_kfid, emu.add_customer()
    pair = {"open_kfid": kf, "external_userid": user}
    answer = page("POST", "/sandbox/api/click", json={**pair, "menu_id": "101", "content": "满意"})
    assert answer.status_code == 200, answer.text
    msgid = answer.json()["msgid"]
    assert receiver.wait(1)[0]["OpenKfId"] == kf
    (item,) = emu.messages(kf)
    assert (item["msgid"], item["origin"], item["msgtype"]) == (msgid, 3, "text")
    assert item["text"] == {"content": "满意", "menu_id": "101"}
    (shown,) = page("GET", "/sandbox/api/feed").json()["items"]
    assert (shown["from"], shown["text"], shown["menu_id"]) == ("customer", "满意", "101")


@pytest.mark.parametrize(
    "extra",
    [{"content": "满意"}, {"menu_id": "101"}, {"menu_id": "x" * 129, "content": "满意"}],
    ids=["no-menu-id", "no-content", "menu-id-too-long"],
)
def test_bad_click_is_400(emu, page, extra):
    pair = {"open_kfid": emu.default_kfid, "external_userid": emu.add_customer()}
    answer = page("POST", "/sandbox/api/click", json={**pair, **extra})
    assert answer.status_code == 400 and answer.json()["error"]
    assert emu.messages(emu.default_kfid) == []
