"""CoW's ``config.py`` in miniature: ``conf()``, ``load_config()`` and the ``available_setting`` table.

Unknown keys (not in the table): CoW 1.x raises ``Exception("key ... not in available_setting")`` from
``__getitem__``/``__setitem__`` (so already while loading such a key from config.json) and from
``get``; 2.0 (to 2.0.7; 2.0.8 at DEBUG) logs a warning from ``__getitem__``/``__setitem__`` (at load)
while ``get`` is a plain lookup; 2.1 is silent. Environment variables are applied only
for keys in the table (upstream evaluates them; this fake parses literals, never code). Only the number
of keys is logged (upstream logs the config, masking only names with "key"/"secret").
"""

from __future__ import annotations

import ast
import json
import logging
import os
from pathlib import Path
from typing import Any

import host_profile as profile

from common.log import logger

_EVERY_VERSION: dict[str, Any] = {
    "open_ai_api_key": "",
    "model": "gpt-3.5-turbo",
    "bot_type": "",
    "single_chat_prefix": ["bot", "@bot"],
    "single_chat_reply_prefix": "[bot] ",
    "single_chat_reply_suffix": "",
    "group_chat_prefix": ["@bot"],
    "image_create_prefix": ["画", "看", "找"],
    "concurrency_in_session": 1,
    "nick_name_black_list": [],
    "voice_reply_voice": False,
    "always_reply_voice": False,
    "wechatcom_corp_id": "",
    "wechatcomapp_token": "",
    "wechatcomapp_port": 9898,
    "wechatcomapp_secret": "",
    "wechatcomapp_agent_id": "",
    "wechatcomapp_aes_key": "",
    "channel_type": "",
    "debug": False,
    "appdata_dir": "",
    "web_port": 9899,
}
_SINCE_2_0: dict[str, Any] = {"web_console": True, "agent": False}
_SINCE_2_1: dict[str, Any] = {
    "wechat_kf_corp_id": "",
    "wechat_kf_token": "",
    "wechat_kf_port": 9888,
    "wechat_kf_secret": "",
    "wechat_kf_aes_key": "",
    "wechat_kf_cursor_path": "~/.wechat_kf_cursors.json",
}

# The values are hints only (as upstream): nothing is read from here.
available_setting: dict[str, Any] = {
    **_EVERY_VERSION,
    **(_SINCE_2_0 if profile.RELEASE >= (2, 0) else {}),
    **(_SINCE_2_1 if profile.RELEASE >= (2, 1) else {}),
}
_warned: set[str] = set()


def _check_key(key: str) -> None:
    if key in available_setting or (not profile.STRICT_CONFIG and key.startswith("_")):
        return
    if profile.STRICT_CONFIG:
        raise Exception(f"key {key} not in available_setting")  # as CoW 1.x does
    if profile.WARN_UNKNOWN_KEYS and key not in _warned:
        _warned.add(key)
        logger.warning(f"[Config] key '{key}' not in available_setting, may not take effect")


class Config(dict):  # type: ignore[type-arg]
    def __init__(self, values: dict[str, Any] | None = None) -> None:
        super().__init__()
        for key, value in (values or {}).items():
            self[key] = value
        self.user_datas: dict[str, dict[str, Any]] = {}

    def __getitem__(self, key: str) -> Any:
        _check_key(key)
        return super().__getitem__(key)

    def __setitem__(self, key: str, value: Any) -> None:
        _check_key(key)
        super().__setitem__(key, value)

    def get(self, key: str, default: Any = None) -> Any:
        if not profile.STRICT_CONFIG and (key.startswith("_") or key not in available_setting):
            return super().get(key, default)  # 2.x: a plain dict lookup, no check, no log
        try:
            return self[key]
        except KeyError:
            return default

    def get_user_data(self, user: str) -> dict[str, Any]:
        return self.user_datas.setdefault(user, {})


config = Config()


def _env_value(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return {"true": True, "false": False}.get(text, text)


def load_config() -> None:
    global config
    path = Path("./config.json")
    if not path.exists():
        logger.info("配置文件不存在，将使用config-template.json模板")
        path = Path("./config-template.json")
    config = Config(json.loads(path.read_text(encoding="utf-8")))
    for name, value in os.environ.items():
        key = name.lower()
        if key in available_setting:
            logger.info(f"[INIT] override config by environ args: {key}")
            config[key] = _env_value(value)
    if config.get("debug", False):
        logger.setLevel(logging.DEBUG)
    logger.info(f"[INIT] load config: {len(config)} keys")


def conf() -> Config:
    return config
