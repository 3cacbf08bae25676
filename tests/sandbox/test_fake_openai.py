import logging
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from sandbox.fake_openai import FakeOpenAIServer

AUTH = {"Authorization": "Bearer k"}
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def fake():
    with FakeOpenAIServer() as server:
        yield server


def wait_for(predicate, seconds: float = 10.0) -> bool:
    """Polls (bounded): the server counts a call out just after the client got its answer."""
    deadline = time.monotonic() + seconds
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.01)
    return predicate()


def chat(base: str, text: str) -> requests.Response:
    body = {"model": "m", "messages": [{"role": "user", "content": text}]}
    return requests.post(f"{base}/chat/completions", json=body, headers=AUTH, timeout=10)


def test_default_answer_and_recording(fake):
    resp = chat(fake.base_url, "你好")
    assert resp.status_code == 200
    assert resp.json()["choices"][0]["message"]["content"] == "答：你好"
    assert fake.requests[-1]["messages"][0]["content"] == "你好"
    assert fake.base_url.startswith("http://127.0.0.1:") and fake.base_url.endswith("/v1")


def test_custom_reply_fn_and_missing_auth():
    with FakeOpenAIServer(reply_fn=lambda body: "固定回答") as server:
        assert chat(server.base_url, "x").json()["choices"][0]["message"]["content"] == "固定回答"
        resp = requests.post(f"{server.base_url}/chat/completions", json={"messages": []}, timeout=10)
        assert resp.status_code == 401


def test_fail_next_counts_down(fake):
    fake.fail_next(2, 500)
    statuses = [chat(fake.base_url, "x").status_code for _ in range(3)]
    assert statuses == [500, 500, 200]
    assert fake.calls == 3


def test_bad_requests_get_4xx(fake):
    url = f"{fake.base_url}/chat/completions"
    assert requests.post(url, data=b"{nope", headers=AUTH, timeout=10).status_code == 400
    assert requests.post(f"{fake.base_url}/nothing", json={}, headers=AUTH, timeout=10).status_code == 404
    speech = f"{fake.base_url}/audio/speech"
    resp = requests.post(speech, json={"input": "x", "response_format": "ogg"}, headers=AUTH, timeout=10)
    assert resp.status_code == 400
    assert requests.post(f"{fake.base_url}/audio/transcriptions", headers=AUTH, timeout=10).status_code == 400


def test_peak_concurrency_is_tracked(fake):
    release = threading.Event()
    fake.reply_fn = lambda body: release.wait(10) and "ok"
    threads = [threading.Thread(target=chat, args=(fake.base_url, str(i))) for i in range(5)]
    for t in threads:
        t.start()
    assert wait_for(lambda: fake.current_concurrency == 5)
    release.set()
    for t in threads:
        t.join(timeout=10)
    assert fake.peak_concurrency == 5
    assert wait_for(lambda: fake.current_concurrency == 0)


def test_transcription_records_upload(fake):
    files = {"file": ("a.wav", b"RIFF1234", "audio/wav")}
    resp = requests.post(
        f"{fake.base_url}/audio/transcriptions", data={"model": "w"}, files=files, headers=AUTH, timeout=10
    )
    assert resp.json() == {"text": fake.transcription_text}
    assert fake.uploads[-1] == {"model": "w", "filename": "a.wav", "data": b"RIFF1234", "size": 8}


def test_speech_wav_length_follows_speech_seconds(fake):
    fake.speech_seconds = 0.5
    body = {"input": "你好", "response_format": "wav"}
    resp = requests.post(f"{fake.base_url}/audio/speech", json=body, headers=AUTH, timeout=10)
    assert resp.content[:4] == b"RIFF"
    assert len(resp.content) == 44 + 16000  # header + 0.5 s of 16 kHz 16-bit mono samples


def test_runs_as_a_subprocess_with_control_api():
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "sandbox.fake_openai", "--port", "0", "--latency", "0"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("FAKE_OPENAI_READY http://127.0.0.1:")
        base = line.split()[1]
        root = base.rsplit("/v1", 1)[0]
        requests.post(f"{root}/_fake/config", json={"fail_next": 1, "fail_status": 429}, timeout=10)
        assert chat(base, "a").status_code == 429
        assert chat(base, "b").status_code == 200
        stats = requests.get(f"{root}/_fake/stats", timeout=10).json()
        assert stats["calls"] == 2 and stats["peak_concurrency"] == 1
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0


def test_stop_wakes_sleeping_calls():
    server = FakeOpenAIServer(latency=30)
    base = server.start()
    errors: list[str] = []

    def call() -> None:
        try:
            chat(base, "x")
        except requests.RequestException as exc:
            errors.append(type(exc).__name__)

    t = threading.Thread(target=call)
    t.start()
    assert wait_for(lambda: server.current_concurrency == 1)
    server.stop()
    t.join(timeout=10)
    assert not t.is_alive()  # the 30 s latency did not hold the call


def test_failing_reply_fn_answers_500_and_server_keeps_serving(fake):
    answers = iter([ValueError("boom"), "好的"])

    def reply_fn(body):
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    fake.reply_fn = reply_fn
    assert chat(fake.base_url, "a").status_code == 500
    assert chat(fake.base_url, "b").json()["choices"][0]["message"]["content"] == "好的"
    assert wait_for(lambda: fake.current_concurrency == 0)


def test_client_reset_mid_request_is_quiet_and_server_keeps_serving(fake, caplog, capfd):
    caplog.set_level(logging.DEBUG, logger="sandbox.emulator.httpbase")
    sock = socket.create_connection(("127.0.0.1", fake.port), timeout=5)
    sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()  # an RST, like a client killed by SIGKILL
    assert wait_for(lambda: any("went away" in r.getMessage() for r in caplog.records))
    assert all(r.levelno == logging.DEBUG for r in caplog.records if r.name.startswith("sandbox"))
    assert capfd.readouterr().err == ""
    assert chat(fake.base_url, "还在吗").json()["choices"][0]["message"]["content"] == "答：还在吗"
