"""Host differences handled inside the channel: CoW 1.x's raising ``get``, CoW 2.x's web console, CoW's
``log`` logger, and upstream's cursor file."""

from __future__ import annotations

import json
import logging
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from channel.wechatcom_kf import host
from channel.wechatcom_kf.settings import load_kf_settings
from channel.wechatcom_kf.store import JsonFileStore
from channel.wechatcom_kf.store.adopt import adopt_cursor_file


class Cow17Config(dict):
    """CoW 1.7.6's Config: ``get`` raises for every key missing from ``available_setting``."""

    available = frozenset({"channel_type", "open_ai_api_key"})

    def __getitem__(self, key: str) -> Any:
        if key not in self.available:
            raise Exception(f"key {key} not in available_setting")
        return super().__getitem__(key)

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default


def test_on_cow_1_x_the_channel_reads_its_keys_from_the_environment():
    environ = {"WECHATCOM_CORP_ID": "ww1", "WECHATCOM_KF_PORT": "9001", "WECHAT_KF_TOKEN": "t"}
    settings = load_kf_settings(Cow17Config({"channel_type": "wechatcom_kf"}), environ)
    assert (settings.wechatcom_corp_id, settings.wechatcom_kf_port, settings.wechatcom_kf_token) == (
        "ww1",
        9001,
        "t",
    )
    assert settings.desk.handoff.after_failures == 2  # defaults for everything else


def test_a_name_specific_default_applies_only_when_nothing_is_set():
    assert load_kf_settings({}, {}, defaults={"wechatcom_kf_port": 9888}).wechatcom_kf_port == 9888
    configured = load_kf_settings({"wechat_kf_port": 9777}, {}, defaults={"wechatcom_kf_port": 9888})
    assert configured.wechatcom_kf_port == 9777


@pytest.fixture
def cow_config_module(monkeypatch: pytest.MonkeyPatch) -> Iterator[types.ModuleType]:
    module = types.ModuleType("config")
    module.available_setting = {"web_console": True, "web_port": 9899}  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "config", module)
    yield module


def test_the_web_console_port_of_a_cow_2_host(cow_config_module: types.ModuleType):
    assert host.web_console_port({}) == 9899
    assert host.web_console_port({"web_port": "9000"}) == 9000
    assert host.web_console_port({"web_console": False}) is None


def test_no_web_console_on_cow_1_x_or_in_this_runtime(monkeypatch: pytest.MonkeyPatch):
    module = types.ModuleType("config")
    module.available_setting = {"channel_type": ""}  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "config", module)
    assert host.web_console_port(Cow17Config()) is None

    class ThisRuntime(dict):
        applies_environment = True

    assert host.web_console_port(ThisRuntime()) is None


def test_the_channel_joins_the_host_log(monkeypatch: pytest.MonkeyPatch):
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    cow_log, ours = logging.getLogger(host.HOST_LOGGER), logging.getLogger(host.CHANNEL_LOGGER)
    handler = Keep()
    monkeypatch.setattr(cow_log, "handlers", [handler])
    monkeypatch.setattr(cow_log, "level", logging.INFO)
    monkeypatch.setattr(ours, "handlers", [])
    monkeypatch.setattr(ours, "propagate", True)
    monkeypatch.setattr(ours, "level", logging.NOTSET)
    assert host.join_host_log({})
    assert not host.join_host_log({})  # once
    logging.getLogger("channel.wechatcom_kf.service").info("channel starting")
    assert [r.getMessage() for r in records] == ["channel starting"]


def test_upstream_cursors_are_adopted_once(tmp_path: Path):
    upstream = tmp_path / "wechat_kf_cursors.json"
    upstream.write_text(json.dumps({"wkA": "CURSOR_A", "wkB": "CURSOR_B"}), encoding="utf-8")
    state = tmp_path / "state"
    assert adopt_cursor_file(upstream, state) == 2
    assert adopt_cursor_file(upstream, state) == 0  # the state has its own file now
    store = JsonFileStore(state)
    try:
        assert (store.load_cursor("wkA"), store.load_cursor("wkB")) == ("CURSOR_A", "CURSOR_B")
    finally:
        store.close()


@pytest.mark.parametrize("content", ["not json", "[1, 2]", '{"wkA": 5}', ""])
def test_an_unusable_upstream_file_is_left_alone(tmp_path: Path, content: str):
    upstream = tmp_path / "cursors.json"
    upstream.write_text(content, encoding="utf-8")
    assert adopt_cursor_file(upstream, tmp_path / "state") == 0
    assert not (tmp_path / "state").exists()
