"""The channel's settings: one reader of the environment per host, one precedence everywhere."""

from __future__ import annotations

from pathlib import Path

import pytest

import config
from channel.wechatcom_kf.settings import load_kf_settings


class UpstreamConfig(dict):
    """An upstream CoW ``Config``: a dict that knows nothing of the channel's environment variables."""


def test_in_this_runtime_overrides_beat_an_exported_environment_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("WECHATCOM_KF_API_BASE", "http://exported.invalid/cgi-bin/")
    path = tmp_path / "config.json"
    path.write_text('{"wechatcom_kf_api_base": "http://from-file.invalid/cgi-bin/"}', encoding="utf-8")
    cfg = config.load_config(str(path), overrides={"wechatcom_kf_api_base": "http://127.0.0.1:1/cgi-bin/"})
    # config.py applied the environment below the overrides; the channel must not read it again.
    assert load_kf_settings(cfg).wechatcom_kf_api_base == "http://127.0.0.1:1/cgi-bin/"


def test_in_this_runtime_the_environment_beats_config_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("WECHATCOM_KF_PORT", "9123")
    path = tmp_path / "config.json"
    path.write_text('{"wechatcom_kf_port": 9001}', encoding="utf-8")
    assert load_kf_settings(config.load_config(str(path))).wechatcom_kf_port == 9123


def test_in_an_upstream_host_the_channel_reads_the_environment_itself(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("WECHATCOM_KF_PORT", "9124")
    monkeypatch.setenv("WECHAT_KF_TOKEN", "token-from-the-alias")
    host = UpstreamConfig({"wechatcom_kf_port": 9001, "wechatcom_kf_welcome_text": "您好"})
    settings = load_kf_settings(host)
    assert settings.wechatcom_kf_port == 9124  # environment > config.json, as in this runtime
    assert settings.wechatcom_kf_token == "token-from-the-alias"
    assert settings.desk.texts.welcome == "您好"


def test_a_malformed_environment_value_names_the_variable(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("WECHATCOM_KF_PORT", "abc")
    with pytest.raises(ValueError, match="WECHATCOM_KF_PORT"):
        load_kf_settings(UpstreamConfig())


def test_every_customer_text_comes_from_config_json_and_its_environment_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    import json
    from dataclasses import fields

    from channel.wechatcom_kf.desk.texts import TEXT_SPECS, CustomerTexts

    templates = {"media_failed": "{kind}坏了", "media_too_big": "{kind}太大", "video_link": "看 {url}"}
    wanted = {f.name: templates.get(f.name, f"运营者的{f.name}") for f in fields(CustomerTexts)}
    values = {f"wechatcom_kf_{name}_text": text for name, text in wanted.items()}
    path = tmp_path / "config.json"
    path.write_text(json.dumps(values, ensure_ascii=False), encoding="utf-8")
    monkeypatch.setenv("WECHATCOM_KF_HANDOFF_TEXT", "来自环境变量")
    texts = load_kf_settings(config.load_config(str(path))).desk.texts
    assert {f.name: getattr(texts, f.name) for f in fields(CustomerTexts)} == {
        **wanted,
        "handoff": "来自环境变量",
    }
    assert len(TEXT_SPECS) == len(wanted)
