"""OpenAIHttpClient's proxies: the ``proxy`` setting, else the environment's, read once at construction."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from models.openai_http import OpenAIHttpClient, OpenAIRequestError
from sandbox.fake_openai import FakeOpenAIServer

BODY = {"model": "m", "messages": [{"role": "user", "content": "你好"}]}


@pytest.fixture
def fake() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as server:
        yield server


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    return monkeypatch


def dead_proxy() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def client(base: str, **kwargs: object) -> OpenAIHttpClient:
    return OpenAIHttpClient("sk-test", base, max_attempts=1, timeout=5.0, **kwargs)  # type: ignore[arg-type]


def test_environment_proxies_are_taken_when_no_proxy_is_configured(env: pytest.MonkeyPatch):
    env.setenv("HTTPS_PROXY", "http://127.0.0.1:3128")
    env.setenv("HTTP_PROXY", "http://127.0.0.1:3129")
    c = client("https://api.example.com/v1")
    assert c.proxies == {"https": "http://127.0.0.1:3128", "http": "http://127.0.0.1:3129"}
    session = c._session()
    assert session.trust_env is False
    assert session.proxies == c.proxies


def test_the_proxy_setting_wins_over_the_environment(env: pytest.MonkeyPatch):
    env.setenv("HTTPS_PROXY", "http://127.0.0.1:3128")
    c = client("https://api.example.com/v1", proxy="http://127.0.0.1:8888")
    assert c.proxies == {"http": "http://127.0.0.1:8888", "https": "http://127.0.0.1:8888"}


def test_environment_proxy_is_used_for_calls(fake: FakeOpenAIServer, env: pytest.MonkeyPatch):
    env.setenv("HTTP_PROXY", dead_proxy())
    c = client(fake.base_url)
    with pytest.raises(OpenAIRequestError) as info:
        c.post("chat/completions", json=BODY)
    assert info.value.kind == "connection"  # it went to the (closed) proxy, not to the server
    assert fake.calls == 0


def test_no_proxy_covering_loopback_reaches_the_server_directly(
    fake: FakeOpenAIServer, env: pytest.MonkeyPatch
):
    env.setenv("HTTP_PROXY", dead_proxy())
    env.setenv("NO_PROXY", "localhost,127.0.0.1")
    c = client(fake.base_url)
    assert c.proxies == {}
    assert c.post("chat/completions", json=BODY).ok
    assert fake.calls == 1


def test_environment_is_not_read_again_per_call(fake: FakeOpenAIServer, env: pytest.MonkeyPatch):
    c = client(fake.base_url)
    env.setenv("HTTP_PROXY", dead_proxy())  # set after construction: must not matter
    assert c.post("chat/completions", json=BODY).ok
    assert fake.calls == 1
