"""``python app.py --doctor`` against the WeCom emulator and the fake model, over real HTTP.

Each test writes a config.json like a deployment's (the emulator's credentials and API base, a free
loopback port, a state directory, the fake OpenAI server) and runs the doctor, in this process
(``run_doctor``) or as ``python app.py --doctor --config <file>``; the output is one line per check.
"""

from __future__ import annotations

import io
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import config
from channel.wechatcom_kf import doctor_model
from channel.wechatcom_kf.doctor import CHECKS, run_doctor
from channel.wechatcom_kf.doctor_wecom import ip_in_errmsg, token_failure
from channel.wechatcom_kf.errors import KfApiError
from channel.wechatcom_kf.store import JsonFileStore
from sandbox.emulator import WeComEmulator
from sandbox.fake_openai import FakeOpenAIServer
from sandbox.harness import REPO_ROOT, clean_environ, free_port

# Short names of the checks, in CHECKS order.
NAMES = ("settings", "gettoken", "accounts", "port", "state", "ffmpeg", "model", "service_state")
MODEL_KEY = "sk-test-key-for-fake-server"


@pytest.fixture
def model_base() -> Iterator[str]:
    """The base URL of a fake OpenAI-compatible server (``http://127.0.0.1:<port>/v1``)."""
    server = FakeOpenAIServer()
    base = server.start()
    try:
        yield base
    finally:
        server.stop()


def doctor_config(emu: WeComEmulator, tmp_path: Path, model_base: str, **overrides: Any) -> dict[str, Any]:
    return {
        **emu.channel_config(),
        "wechatcom_kf_host": "127.0.0.1",
        "wechatcom_kf_port": free_port(),
        "wechatcom_kf_cursor_dir": str(tmp_path / "state"),
        "bot_type": "openai",
        "open_ai_api_key": MODEL_KEY,
        "open_ai_api_base": model_base,
        **overrides,
    }


def write_config(tmp_path: Path, values: dict[str, Any]) -> Path:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(values, ensure_ascii=False), encoding="utf-8")
    return path


def by_check(output: str) -> dict[str, str]:
    """The doctor's lines by check name; exactly one line per check, in order."""
    lines = output.splitlines()
    assert len(lines) == len(CHECKS), output
    for (label, _), line in zip(CHECKS, lines, strict=True):
        assert f" {label}: " in line, line
    return dict(zip(NAMES, lines, strict=True))


def doctor(tmp_path: Path, values: dict[str, Any]) -> tuple[int, dict[str, str]]:
    """Run the doctor in this process on ``values`` written as config.json."""
    config.load_config(str(write_config(tmp_path, values)), environ={})
    out = io.StringIO()
    code = run_doctor(config.conf(), out=out)
    print(out.getvalue())  # shown by pytest on failure
    return code, by_check(out.getvalue())


def app_doctor(tmp_path: Path, values: dict[str, Any], *flags: str) -> subprocess.CompletedProcess[str]:
    """``python app.py --doctor [flags] --config <tmp>/config.json``."""
    return subprocess.run(
        [sys.executable, "app.py", "--doctor", *flags, "--config", str(write_config(tmp_path, values))],
        cwd=REPO_ROOT,
        env=clean_environ(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def status(line: str) -> str:
    return line.split("]", 1)[0].lstrip("[")


def closed_port_url() -> str:
    """A loopback URL nobody listens on (a port that was free a moment ago)."""
    return f"http://127.0.0.1:{free_port()}/v1"


# --- the app.py subprocess ----------------------------------------------------------------------------


def test_good_configuration_exits_0_with_every_line_ok(emu, tmp_path, model_base):
    done = app_doctor(tmp_path, doctor_config(emu, tmp_path, model_base))
    lines = by_check(done.stdout)
    assert done.returncode == 0, done.stdout + done.stderr
    assert all(line.startswith("[ok]") for line in lines.values()), done.stdout
    assert "access_token" in lines["gettoken"]
    assert f"客服 ({emu.default_kfid})" in lines["accounts"]
    assert "/v1" in lines["model"] and "gpt-4o-mini" in lines["model"]
    assert emu.secret not in done.stdout + done.stderr and MODEL_KEY not in done.stdout + done.stderr


def test_wrong_secret_exits_nonzero_naming_the_setting_and_the_fix(emu, tmp_path, model_base):
    values = doctor_config(emu, tmp_path, model_base, wechatcom_kf_secret="not-the-apps-secret-at-all")
    done = app_doctor(tmp_path, values)
    lines = by_check(done.stdout)
    assert done.returncode != 0
    line = lines["gettoken"]
    assert line.startswith("[FAIL]") and "40001" in line
    assert "wechatcom_kf_secret" in line and "修复 fix:" in line
    assert "self-built app" in line and "not the KF admin's" in line and "自建应用" in line
    # What needs a token is skipped, not failed again; the rest is still checked.
    assert status(lines["accounts"]) == status(lines["service_state"]) == "skip"
    assert all(status(lines[name]) == "ok" for name in ("settings", "port", "state", "model"))


def test_sandbox_doctor_checks_the_sandbox(tmp_path):
    done = app_doctor(tmp_path, {"wechatcom_kf_port": 0}, "--sandbox")
    first, *rest = done.stdout.splitlines()
    assert first.startswith("sandbox: http://127.0.0.1:")
    lines = by_check("\n".join(rest))
    assert done.returncode == 0, done.stdout + done.stderr
    assert all(line.startswith("[ok]") for line in lines.values()), done.stdout
    assert "echo" in lines["model"]
    assert "sandbox stopped" in done.stderr  # and its temporary state removed


# --- in this process ----------------------------------------------------------------------------------


def test_no_account_bound_to_the_app_says_so(emu, tmp_path, model_base):
    emu.account_list_empty = True
    code, lines = doctor(tmp_path, doctor_config(emu, tmp_path, model_base))
    assert code != 0
    line = lines["accounts"]
    assert line.startswith("[FAIL]")
    assert "no KF account is bound to this app: 微信客服 → API → 可调用接口的应用" in line
    assert status(lines["gettoken"]) == "ok"


def test_unreachable_model_says_so(emu, tmp_path, model_base):
    values = doctor_config(emu, tmp_path, model_base, open_ai_api_base=closed_port_url())
    started = time.monotonic()
    code, lines = doctor(tmp_path, values)
    assert code != 0 and time.monotonic() - started < 30
    line = lines["model"]
    assert line.startswith("[FAIL]") and "unreachable" in line and "open_ai_api_base" in line
    assert "无法连接" in line
    assert all(status(lines[name]) == "ok" for name in NAMES if name != "model")


def test_model_missing_from_the_endpoints_list_is_a_warning(emu, tmp_path, model_base):
    code, lines = doctor(tmp_path, doctor_config(emu, tmp_path, model_base, model="no-such-model"))
    assert code == 0 and status(lines["model"]) == "warn"
    assert "no-such-model is not in its model list" in lines["model"]


def test_echo_bot_is_a_warning_that_customers_get_echoes(emu, tmp_path, model_base):
    code, lines = doctor(tmp_path, doctor_config(emu, tmp_path, model_base, bot_type="echo"))
    assert code == 0  # warnings do not fail
    assert status(lines["model"]) == "warn" and "customers get echoes" in lines["model"]


@pytest.mark.parametrize(
    ("values", "words"),
    [
        ({"bot_type": "", "open_ai_api_key": ""}, "open_ai_api_key is empty: the bot cannot answer"),
        ({"bot_type": "dify"}, "unknown bot_type 'dify'"),
    ],
)
def test_bot_settings_app_py_refuses_fail(emu, tmp_path, model_base, values, words):
    code, lines = doctor(tmp_path, doctor_config(emu, tmp_path, model_base, **values))
    assert code != 0 and lines["model"].startswith("[FAIL]") and words in lines["model"]


def test_the_bot_names_and_defaults_agree_with_the_runtime():
    from models.bot_factory import KNOWN_BOT_TYPES
    from models.openai_http import DEFAULT_API_BASE
    from models.providers import DEFAULT_MODEL

    assert {doctor_model.ECHO, *doctor_model.OPENAI_BOT_TYPES} <= {name.lower() for name in KNOWN_BOT_TYPES}
    assert doctor_model.DEFAULT_MODEL_BASE == DEFAULT_API_BASE
    # An empty `model` is the preset's default; without a preset, this one.
    assert config.defaults()["model"] == "" and DEFAULT_MODEL == doctor_model.DEFAULT_MODEL


def runtime_doctor(tmp_path: Path, values: dict[str, Any]) -> tuple[int, dict[str, str]]:
    """The doctor as ``python app.py --doctor`` runs it: with this runtime's own bot check."""
    from app import runtime_bot
    from models.providers import apply_endpoint

    config.load_config(str(write_config(tmp_path, values)), environ={})
    apply_endpoint(config.conf())
    out = io.StringIO()
    code = run_doctor(config.conf(), out=out, runtime_bot=runtime_bot(False))
    return code, by_check(out.getvalue())


def test_a_dify_app_is_probed_and_a_wrong_key_named(emu, tmp_path, model_base):
    from tests.models.fake_dify import API_KEY, FakeDify

    with FakeDify() as dify:
        values = doctor_config(emu, tmp_path, model_base, bot_type="dify", dify_api_base=dify.base_url)
        code, lines = runtime_doctor(tmp_path, {**values, "dify_api_key": API_KEY})
        assert status(lines["model"]) == "ok" and "Dify" in lines["model"], lines["model"]
        code, lines = runtime_doctor(tmp_path, {**values, "dify_api_key": "app-wrong"})
    assert code != 0 and status(lines["model"]) == "FAIL"
    assert "dify_api_key" in lines["model"] and "app-wrong" not in lines["model"]


def test_the_runtime_check_decides_what_the_doctor_calls_unknown(emu, tmp_path, model_base):
    # CoW's provider name is a bot_type this runtime runs (the preset's endpoint, here the fake).
    values = doctor_config(emu, tmp_path, model_base, bot_type="deepseek", deepseek_api_key=MODEL_KEY)
    _code, lines = runtime_doctor(tmp_path, values)
    # Probed with the preset's model (the fake lists others: a warning, not "unknown bot_type").
    assert status(lines["model"]) == "warn" and "deepseek-v4-flash" in lines["model"], lines["model"]
    code, lines = runtime_doctor(tmp_path, {**values, "bot_type": "baidu"})
    assert code != 0 and status(lines["model"]) == "FAIL" and "unknown bot_type 'baidu'" in lines["model"]


def test_missing_settings_are_named_and_what_needs_them_is_skipped(emu, tmp_path, model_base):
    values = doctor_config(emu, tmp_path, model_base, wechatcom_kf_secret="", wechatcom_kf_aes_key="")
    code, lines = doctor(tmp_path, values)
    assert code != 0
    line = lines["settings"]
    assert line.startswith("[FAIL]")
    assert "wechatcom_kf_secret (WECHATCOM_KF_SECRET)" in line and "wechatcom_kf_aes_key" in line
    assert {status(lines[n]) for n in ("gettoken", "accounts", "port", "state", "service_state")} == {"skip"}
    assert status(lines["model"]) == "ok"


def test_callback_port_in_use_says_so(emu, tmp_path, model_base):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        port = holder.getsockname()[1]
        code, lines = doctor(tmp_path, doctor_config(emu, tmp_path, model_base, wechatcom_kf_port=port))
    assert code != 0
    line = lines["port"]
    assert line.startswith("[FAIL]") and f"127.0.0.1:{port}" in line and "already in use" in line


def test_state_directory_not_writable_says_so(emu, tmp_path, model_base):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory", encoding="utf-8")
    values = doctor_config(emu, tmp_path, model_base, wechatcom_kf_cursor_dir=str(blocker / "state"))
    code, lines = doctor(tmp_path, values)
    assert code != 0
    assert lines["state"].startswith("[FAIL]") and "not writable" in lines["state"]
    assert status(lines["service_state"]) == "skip"


def test_state_directory_check_leaves_nothing_behind(emu, tmp_path, model_base):
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    code, lines = doctor(tmp_path, doctor_config(emu, tmp_path, model_base))
    assert code == 0 and "writable" in lines["state"]
    assert list(state_dir.iterdir()) == []


def test_unreachable_redis_says_so(emu, tmp_path, model_base):
    url = f"redis://:pw-of-the-redis-server@127.0.0.1:{free_port()}/0"
    code, lines = doctor(tmp_path, doctor_config(emu, tmp_path, model_base, wechatcom_kf_redis_url=url))
    assert code != 0
    line = lines["state"]
    assert line.startswith("[FAIL]") and "PING" in line and "pw-of-the-redis-server" not in line


def test_reachable_redis_answers_ping(emu, tmp_path, model_base, redis_url):
    code, lines = doctor(tmp_path, doctor_config(emu, tmp_path, model_base, wechatcom_kf_redis_url=redis_url))
    assert code == 0 and lines["state"].startswith("[ok]") and "PING" in lines["state"]


# --- receives but cannot reply (95018) ----------------------------------------------------------------


def remember_customers(state_dir: Path, open_kfid: str, users: list[str]) -> None:
    """Pending items of ``users`` in the JSON state, as the channel leaves them."""
    store = JsonFileStore(state_dir)
    now = int(time.time())
    items = [
        {
            "msgid": f"from_msgid_{i}",
            "open_kfid": open_kfid,
            "external_userid": user,
            "send_time": now - i,
            "origin": 3,
            "msgtype": "text",
            "text": {"content": "你好"},
        }
        for i, user in enumerate(users)
    ]
    store.accept_page(open_kfid, "cursor-1", items)
    store.close()


def test_service_states_of_recent_customers_are_counted(emu, tmp_path, model_base):
    kf = emu.default_kfid
    bot_user, human_user = emu.add_customer(), emu.add_customer()
    for user in (bot_user, human_user):
        emu.customer_text(kf, user, "你好", notify=False)
    emu.take_over(kf, human_user, notify=False)  # state 3: a receptionist owns it
    remember_customers(tmp_path / "state", kf, [bot_user, human_user])
    code, lines = doctor(tmp_path, doctor_config(emu, tmp_path, model_base))
    assert code == 0
    line = lines["service_state"]
    assert line.startswith("[ok]")
    assert "latest 2 customer(s): 1 the bot may answer (state 0/1), 1 queued or with a human" in line


def test_every_recent_customer_with_a_human_is_a_warning_naming_95018(emu, tmp_path, model_base):
    kf = emu.default_kfid
    user = emu.add_customer()
    emu.customer_text(kf, user, "你好", notify=False)
    emu.take_over(kf, user, notify=False)
    remember_customers(tmp_path / "state", kf, [user])
    code, lines = doctor(tmp_path, doctor_config(emu, tmp_path, model_base))
    assert code == 0
    assert lines["service_state"].startswith("[warn]") and "95018" in lines["service_state"]


def test_no_recent_customer_is_ok_and_explains_why_nothing_is_pulled(emu, tmp_path, model_base):
    code, lines = doctor(tmp_path, doctor_config(emu, tmp_path, model_base))
    assert code == 0 and "rate limited" in lines["service_state"]
    assert not [entry for entry in emu.protocol_log() if entry.get("api") == "kf/sync_msg"]


# --- explanations of gettoken refusals WeCom gives and the emulator does not --------------------------


def test_untrusted_ip_names_the_address_from_the_errmsg():
    errmsg = "not allow to access from your ip, hint: [1700000000], from ip: 203.0.113.7, more info at x"
    result = token_failure(KfApiError("gettoken", errcode=60020, errmsg=errmsg), "https://qyapi/")
    assert "203.0.113.7" in result.summary and "企业可信IP" in result.summary
    assert "add 203.0.113.7" in result.fix
    assert ip_in_errmsg("no address here") is None


@pytest.mark.parametrize(
    ("errcode", "words"),
    [(40013, "wechatcom_corp_id"), (48002, "可调用接口的应用"), (40001, "self-built app")],
)
def test_gettoken_refusals_are_explained(errcode, words):
    result = token_failure(KfApiError("gettoken", errcode=errcode, errmsg="x"), "https://qyapi/")
    assert str(errcode) in result.summary and words in result.summary + result.fix
