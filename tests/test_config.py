import json
import logging
import os

import pytest

import config
from channel.wechatcom_kf.settings import KF_SETTINGS, coerce_setting_value

ROOT = os.path.dirname(os.path.abspath(config.__file__))


@pytest.fixture(autouse=True)
def keep_global_config():
    saved = config.config
    yield
    config.config = saved


def write_json(tmp_path, data, name="config.json"):
    path = tmp_path / name
    path.write_text(json.dumps(data), encoding="utf-8")
    return str(path)


def test_precedence_default_file_env_overrides(tmp_path):
    path = write_json(tmp_path, {"model": "from-file", "temperature": 0.1, "max_history_turns": 3})
    cfg = config.load_config(
        path,
        environ={"TEMPERATURE": "0.9", "MAX_HISTORY_TURNS": "5"},
        overrides={"max_history_turns": 7},
    )
    assert cfg["model"] == "from-file"  # file over default
    assert cfg["temperature"] == 0.9  # env over file
    assert cfg["max_history_turns"] == 7  # overrides over env
    assert cfg["bot_type"] == ""  # untouched default
    assert config.conf() is cfg  # the global was replaced


def test_env_values_are_parsed_by_type_never_evaluated(tmp_path):
    env = {
        "DEBUG": "true",
        "CONCURRENCY_IN_SESSION": "3",
        "REQUEST_TIMEOUT": "2.5",
        "SINGLE_CHAT_PREFIX": '["bot", "@"]',
        "CLEAR_MEMORY_COMMANDS": "#reset, #clear",
        "MODEL": "__import__('os')",
        "OPEN_AI_API_KEY": "__import__('os').system('true')",
        "WECHATCOM_KF_PORT": "9901",
    }
    cfg = config.load_config(write_json(tmp_path, {}), environ=env)
    assert cfg["debug"] is True
    assert cfg["concurrency_in_session"] == 3
    assert cfg["request_timeout"] == 2.5
    assert cfg["single_chat_prefix"] == ["bot", "@"]
    assert cfg["clear_memory_commands"] == ["#reset", "#clear"]
    assert cfg["model"] == "__import__('os')"
    assert cfg["open_ai_api_key"] == "__import__('os').system('true')"
    assert cfg["wechatcom_kf_port"] == 9901


def test_malformed_env_value_names_the_variable(tmp_path):
    with pytest.raises(ValueError, match="MAX_HISTORY_TURNS"):
        config.load_config(write_json(tmp_path, {}), environ={"MAX_HISTORY_TURNS": "__import__('os')"})
    with pytest.raises(ValueError, match="DEBUG"):
        config.load_config(write_json(tmp_path, {}), environ={"DEBUG": "maybe"})


def test_malformed_file_value_names_the_key(tmp_path):
    with pytest.raises(ValueError, match="config key max_history_turns"):
        config.load_config(write_json(tmp_path, {"max_history_turns": "many"}), environ={})


def test_bad_json_and_missing_file_are_clear(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"model": }', encoding="utf-8")
    with pytest.raises(ValueError, match="invalid JSON at line 1"):
        config.load_config(str(bad), environ={})
    with pytest.raises(FileNotFoundError):
        config.load_config(str(tmp_path / "absent.json"), environ={})


def test_unknown_key_warns_once_naming_it(tmp_path, caplog):
    path = write_json(tmp_path, {"modle": "typo", "model": "m"})
    with caplog.at_level(logging.WARNING, logger="config"):
        cfg = config.load_config(path, environ={})
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "'modle'" in warnings[0]
    assert cfg.get("modle") == "typo"  # kept for plugins that read it


def test_migration_alias_maps_to_primary_and_primary_wins(tmp_path):
    cfg = config.load_config(write_json(tmp_path, {"wechat_kf_corp_id": "ww-alias"}), environ={})
    assert cfg["wechatcom_corp_id"] == "ww-alias"
    both = {"wechat_kf_corp_id": "ww-alias", "wechatcom_corp_id": "ww-primary"}
    assert config.load_config(write_json(tmp_path, both), environ={})["wechatcom_corp_id"] == "ww-primary"
    cfg = config.load_config(write_json(tmp_path, {}), environ={"WECHAT_KF_SECRET": "s"})
    assert cfg["wechatcom_kf_secret"] == "s"


def test_channel_type_accepts_a_list(tmp_path):
    cfg = config.load_config(write_json(tmp_path, {"channel_type": ["terminal", "wechatcom_kf"]}), environ={})
    assert cfg["channel_type"] == "terminal,wechatcom_kf"


def test_log_config_masks_every_secret(tmp_path, caplog):
    secrets = {
        "open_ai_api_key": "sk-live-123456",
        "wechatcom_kf_secret": "corp-secret-abc",
        "wechatcom_kf_token": "cb-token-xyz",
        "wechatcom_kf_aes_key": "A" * 43,
        "db_password": "hunter2",
        "extra": {"nested_token": "tok-nested-999"},
        "conversation_max_tokens": 3000,
    }
    config.load_config(write_json(tmp_path, secrets), environ={})
    with caplog.at_level(logging.INFO, logger="config"):
        config.log_config()
    text = "\n".join(r.getMessage() for r in caplog.records)
    for value in ("sk-live-123456", "corp-secret-abc", "cb-token-xyz", "A" * 43, "hunter2", "tok-nested-999"):
        assert value not in text
    shown = config.logged_config(text)
    assert shown["open_ai_api_key"] == "***"
    assert shown["db_password"] == "***"
    assert shown["conversation_max_tokens"] == 3000  # a size, not a token
    assert "model" not in shown  # at its default: docs/configuration.md has it
    settings_at_default = len(config.defaults()) - 5  # the five declared keys above
    assert f"({settings_at_default} more setting(s) at their defaults)" in text


def test_is_secret_key():
    assert config.is_secret_key("wechatcom_kf_token")
    assert config.is_secret_key("linkai_api_key")
    assert config.is_secret_key("accesstoken")
    assert not config.is_secret_key("conversation_max_tokens")
    assert not config.is_secret_key("model")


def test_every_key_is_declared_once_with_env_and_description():
    settings = config.all_settings()
    names = [s.name for s in settings]
    assert len(names) == len(set(names))
    assert {s.name for s in KF_SETTINGS} <= set(names)
    for spec in settings:
        assert spec.env and spec.description, spec.name
        assert coerce_setting_value(spec.default, spec.kind) == spec.default, spec.name
    required = {
        "channel_type", "debug", "bot_type", "model", "open_ai_api_key", "open_ai_api_base", "proxy",
        "request_timeout", "character_desc", "temperature", "max_history_turns", "conversation_max_tokens",
        "expires_in_seconds", "vision_input", "voice_to_text", "text_to_voice", "voice_to_text_model",
        "text_to_voice_model", "tts_voice_id", "voice_reply_voice", "single_chat_prefix",
        "single_chat_reply_prefix", "single_chat_reply_suffix", "concurrency_in_session",
        "max_concurrent_sessions", "plugin_trigger_prefix", "appdata_dir",
    }  # fmt: skip
    assert required <= set(names)
    assert next(s for s in settings if s.name == "open_ai_api_key").secret


def test_template_matches_the_table():
    with open(os.path.join(ROOT, "config-template.json"), encoding="utf-8") as fh:
        template = json.load(fh)
    by_name = {s.name: s for s in config.all_settings()}
    deployer_keys = (
        "channel_type", "wechatcom_corp_id", "wechatcom_kf_secret", "wechatcom_kf_token",
        "wechatcom_kf_aes_key", "open_ai_api_key", "open_ai_api_base", "model", "character_desc",
    )  # fmt: skip
    for key in deployer_keys:
        assert key in template
    for key, value in template.items():
        assert key in by_name, f"{key} is not declared in config.py"
        spec = by_name[key]
        assert coerce_setting_value(value, spec.kind) == value, key
        assert value == spec.default, f"{key}: template and declared default differ"


def test_loading_creates_no_file_and_appdata_only_on_request(tmp_path):
    before = sorted(os.listdir(ROOT))
    data_dir = tmp_path / "appdata"
    config.load_config(write_json(tmp_path, {"appdata_dir": str(data_dir)}), environ={})
    config.log_config()
    assert sorted(os.listdir(ROOT)) == before
    assert not data_dir.exists()
    assert config.get_appdata_dir() == str(data_dir)
    assert data_dir.is_dir()


def test_plugin_config_helpers():
    config.write_plugin_config({"Hello": {"greeting": "hi"}})
    try:
        assert config.pconf("hello") == {"greeting": "hi"}
        assert config.pconf("HELLO") == {"greeting": "hi"}
        config.remove_plugin_config("Hello")
        assert config.pconf("hello") is None
    finally:
        config.plugin_config.clear()
