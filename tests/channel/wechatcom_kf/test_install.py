"""The installer (``python -m channel.wechatcom_kf.install``) against fake CoW trees written here.

Each fake tree is the smallest thing with the shape of one upstream line: CoW 1.x (its ``Config``
raises on keys missing from ``available_setting``), CoW 2.0.x (it only logs), CowAgent 2.1.x (with
``channel/wechat_kf/`` and ``const.WECHAT_KF``). Their factories are if/elif chains in the manner of
each line, and they carry stand-ins for the host modules the channel imports, so the edited factory
can build the copied channel in a subprocess. pip is never run: ``pip_install`` is replaced.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from channel.wechatcom_kf import install
from channel.wechatcom_kf import install_support as te
from channel.wechatcom_kf.install_support import packages as pk

REPO = Path(__file__).resolve().parents[3]

# --- the fake trees -----------------------------------------------------------------------------------

HOST_STUBS = {
    "channel/__init__.py": "",
    "channel/channel.py": """
        class Channel:
            channel_type = ""

            def startup(self):
                raise NotImplementedError
        """,
    "channel/chat_channel.py": """
        from channel.channel import Channel


        class ChatChannel(Channel):
            def __init__(self):
                self.produced = []

            def _compose_context(self, ctype, content, **kwargs):
                return None

            def produce(self, context):
                self.produced.append(context)
        """,
    "channel/chat_message.py": """
        class ChatMessage:
            def __init__(self, raw):
                self._rawmsg = raw
                self.msg_id = self.create_time = self.ctype = self.content = None
                self.from_user_id = self.to_user_id = self.other_user_id = None
                self.from_user_nickname = self.other_user_nickname = None
                self.is_group, self.is_at, self.actual_user_id = False, False, None
                self._prepare_fn, self._prepared = None, False

            def prepare(self):
                if self._prepare_fn and not self._prepared:
                    self._prepared = True
                    self._prepare_fn()
        """,
    "bridge/__init__.py": "",
    "bridge/context.py": """
        from enum import Enum


        class ContextType(Enum):
            TEXT = 1
            VOICE = 2
            IMAGE = 3
            FILE = 4
            VIDEO = 5
            SHARING = 6
            IMAGE_CREATE = 10
            ACCEPT_FRIEND = 19
            JOIN_GROUP = 20
            PATPAT = 21
            FUNCTION = 22
            EXIT_GROUP = 23


        class Context:
            def __init__(self, type=None, content=None, kwargs=None):
                self.type, self.content, self.kwargs = type, content, dict(kwargs or {})

            def __getitem__(self, key):
                return self.kwargs[key]

            def __setitem__(self, key, value):
                self.kwargs[key] = value

            def __contains__(self, key):
                return key in self.kwargs

            def get(self, key, default=None):
                return self.kwargs.get(key, default)
        """,
    "bridge/reply.py": """
        from enum import Enum


        class ReplyType(Enum):
            TEXT = 1
            VOICE = 2
            IMAGE = 3
            IMAGE_URL = 4
            VIDEO_URL = 5
            FILE = 6
            CARD = 7
            INVITE_ROOM = 8
            INFO = 9
            ERROR = 10
            TEXT_ = 11
            VIDEO = 12
            MINIAPP = 13


        class Reply:
            def __init__(self, type=None, content=None):
                self.type, self.content = type, content
        """,
    "common/__init__.py": "",
    "common/log.py": """
        import logging

        logger = logging.getLogger("log")
        """,
    "app.py": """
        from config import conf


        def run():
            return conf().get("channel_type", "wx")
        """,
}

# config.py: a settings table, and the one difference that matters between the lines.
CONFIG = """
    # encoding:utf-8
    available_setting = {{
        "channel_type": "wx",  # which channel runs
        "wechatcom_corp_id": "",  # WeCom app channel
        "web_port": 9899,
    }}


    class Config(dict):
        def __init__(self, d=None):
            super().__init__()
            for key, value in (d or {{}}).items():
                self[key] = value

        def __getitem__(self, key):
    {getitem}
            return super().__getitem__(key)

        def __setitem__(self, key, value):
    {getitem}
            return super().__setitem__(key, value)

        def get(self, key, default=None):
            try:
                return self[key]
            except KeyError:
                return default


    config = Config()


    def conf():
        return config
    """
REFUSES = """        if key not in available_setting:
                raise Exception("key {} not in available_setting".format(key))"""
ACCEPTS = """        if key not in available_setting:
                print("unknown config key", key)"""

# The 1.x factory: string literals for most types, const names for two, `ch` assigned in each branch.
FACTORY_1 = """
    \"\"\"channel factory (a CoW 1.x-like chain)\"\"\"
    from common import const
    from .channel import Channel


    def create_channel(channel_type) -> Channel:
        ch = Channel()
        if channel_type == "wx":
            from channel.wechat.wechat_channel import WechatChannel
            ch = WechatChannel()
        elif channel_type == "terminal":
            from channel.terminal.terminal_channel import TerminalChannel
            ch = TerminalChannel()
        elif channel_type == "wechatcom_app":
            from channel.wechatcom.wechatcomapp_channel import WechatComAppChannel
            ch = WechatComAppChannel()
        elif channel_type == const.FEISHU:
            from channel.feishu.feishu_channel import FeiShuChanel
            ch = FeiShuChanel()
        else:
            raise RuntimeError
        ch.channel_type = channel_type
        return ch
    """
# The 2.0 factory: no "wx" up front, a tuple branch last that renames the type.
FACTORY_2_0 = """
    \"\"\"channel factory (a CoW 2.0-like chain)\"\"\"
    from common import const
    from .channel import Channel


    def create_channel(channel_type) -> Channel:
        ch = Channel()
        if channel_type == "terminal":
            from channel.terminal.terminal_channel import TerminalChannel
            ch = TerminalChannel()
        elif channel_type == "wechatcom_app":
            from channel.wechatcom.wechatcomapp_channel import WechatComAppChannel
            ch = WechatComAppChannel()
        elif channel_type == const.QQ:
            from channel.qq.qq_channel import QQChannel
            ch = QQChannel()
        elif channel_type in (const.WEIXIN, "wx"):
            from channel.weixin.weixin_channel import WeixinChannel
            ch = WeixinChannel()
            channel_type = const.WEIXIN
        else:
            raise RuntimeError
        ch.channel_type = channel_type
        return ch
    """
# The 2.1 factory: as 2.0, plus upstream's KF branch after the WeCom app one.
FACTORY_2_1 = FACTORY_2_0.replace(
    """            ch = WechatComAppChannel()
""",
    """            ch = WechatComAppChannel()
        elif channel_type == const.WECHAT_KF:
            from channel.wechat_kf.wechat_kf_channel import WechatKfChannel
            ch = WechatKfChannel()
""",
).replace("2.0-like", "2.1-like")
CONSTS = 'FEISHU = "feishu"\nQQ = "qq"\nWEIXIN = "weixin"\n'
UPSTREAM_KF = """
    from channel.chat_channel import ChatChannel


    class WechatKfChannel(ChatChannel):
        upstream = True
    """


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")


def make_tree(root: Path, flavour: str) -> Path:
    """A fake CoW tree of ``flavour`` ("1", "2.0" or "2.1") at ``root``."""
    files = dict(HOST_STUBS)
    files["config.py"] = CONFIG.format(getitem=REFUSES if flavour == "1" else ACCEPTS)
    files["channel/channel_factory.py"] = {"1": FACTORY_1, "2.0": FACTORY_2_0, "2.1": FACTORY_2_1}[flavour]
    files["common/const.py"] = CONSTS + ('WECHAT_KF = "wechat_kf"\n' if flavour == "2.1" else "")
    if flavour == "2.1":
        files["channel/wechat_kf/__init__.py"] = ""
        files["channel/wechat_kf/wechat_kf_channel.py"] = UPSTREAM_KF
    _write(root, files)
    return root


def snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(autouse=True)
def no_pip(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[list[str]]]:
    """pip is never run by these tests; a planned install is recorded instead."""
    calls: list[list[str]] = []
    monkeypatch.setattr(pk, "pip_install", lambda python, reqs, *rest: calls.append([r.spec for r in reqs]))
    yield calls


def run(cow: Path, *flags: str, python: str = sys.executable) -> int:
    return install.main([str(cow), "--python", python, *flags])


def build_in_subprocess(cow: Path, channel_type: str) -> list[str]:
    """Create ``channel_type`` with the tree's own factory, the tree first on sys.path."""
    script = textwrap.dedent(
        """
        import os, sys
        sys.path.insert(0, os.getcwd())
        from channel.channel_factory import create_channel
        ch = create_channel(sys.argv[1])
        module = sys.modules[type(ch).__module__]
        print("BUILT", type(ch).__name__, ch.channel_type, module.__file__)
        sys.stdout.flush()
        os._exit(0)
        """
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "WECHAT"))}
    env.update(
        WECHATCOM_CORP_ID="wwfake",
        WECHATCOM_KF_SECRET="fake-secret",
        WECHATCOM_KF_TOKEN="faketoken",
        WECHATCOM_KF_AES_KEY="a" * 43,
        WECHATCOM_KF_CURSOR_DIR=str(cow / "state"),
    )
    result = subprocess.run(
        [sys.executable, "-c", script, channel_type],
        cwd=cow,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    [line] = [line for line in result.stdout.splitlines() if line.startswith("BUILT ")]
    return line.split()[1:]


# --- whole runs -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flavour", "label"), [("1", te.FLAVOUR_1), ("2.0", te.FLAVOUR_2_0), ("2.1", te.FLAVOUR_2_1)]
)
def test_recognises_each_line(tmp_path: Path, flavour: str, label: str) -> None:
    assert te.recognise(make_tree(tmp_path, flavour)).flavour == label


@pytest.mark.parametrize("flavour", ["1", "2.0", "2.1"])
def test_first_run_installs_and_the_factory_builds_the_channel(
    tmp_path: Path, flavour: str, capsys: pytest.CaptureFixture[str]
) -> None:
    cow = make_tree(tmp_path / "cow", flavour)
    original_factory = (cow / "channel" / "channel_factory.py").read_text(encoding="utf-8")
    assert run(cow) == 0
    out = capsys.readouterr().out
    assert "已复制 / copied channel/wechatcom_kf/" in out and "已添加分支 / added the branch" in out
    assert '+    elif channel_type == "wechatcom_kf":' in out  # the diff is shown
    ours = te.package_files(REPO / "channel" / "wechatcom_kf")
    assert te.folder_changes(ours, cow / "channel" / "wechatcom_kf") == ([], [], [])
    assert "install.py" not in te.package_files(cow / "channel" / "wechatcom_kf")
    backups = list((cow / "channel").glob("channel_factory.py.bak-*"))
    assert [b.read_text(encoding="utf-8") for b in backups] == [original_factory]
    name, channel_type, path = build_in_subprocess(cow, "wechatcom_kf")
    assert (name, channel_type) == ("WechatComKfChannel", "wechatcom_kf")
    assert Path(path).resolve().is_relative_to(cow.resolve() / "channel" / "wechatcom_kf")


@pytest.mark.parametrize("flavour", ["1", "2.1"])
def test_second_run_has_nothing_to_do(
    tmp_path: Path, flavour: str, capsys: pytest.CaptureFixture[str]
) -> None:
    cow = make_tree(tmp_path, flavour)
    assert run(cow, "--add-settings") == 0
    before = snapshot(cow)
    capsys.readouterr()
    assert run(cow, "--add-settings") == 0
    out = capsys.readouterr().out
    assert "无需改动 / nothing to do" in out
    assert "已是最新 / up to date: channel/wechatcom_kf/" in out
    assert snapshot(cow) == before  # not even a new backup


@pytest.mark.parametrize("flavour", ["1", "2.0", "2.1"])
def test_dry_run_leaves_every_byte(tmp_path: Path, flavour: str, capsys: pytest.CaptureFixture[str]) -> None:
    cow = make_tree(tmp_path, flavour)
    (cow / "channel" / "wechatcom_kf").mkdir()
    (cow / "channel" / "wechatcom_kf" / "old.py").write_text("OLD = 1\n", encoding="utf-8")
    before = snapshot(cow)
    assert run(cow, "--dry-run", "--add-settings", "--as-wechat-kf") == 0
    out = capsys.readouterr().out
    assert (
        "将替换 / would replace channel/wechatcom_kf/" in out and "将添加分支 / would add the branch" in out
    )
    assert "将登记 / would add" in out and "dry run: nothing was changed" in out
    assert snapshot(cow) == before
    assert sorted(p.name for p in (cow / "channel").iterdir()) == sorted(
        {Path(rel).parts[1] for rel in before if rel.startswith("channel/")}
    )


def test_an_older_copy_is_replaced_and_kept_as_a_backup(tmp_path: Path) -> None:
    cow = make_tree(tmp_path, "2.0")
    old = cow / "channel" / "wechatcom_kf"
    _write(old, {"wechatcom_kf_channel.py": "OLD = True\n", "wechatcom_kf_cursor_store.py": "X = 1\n"})
    assert run(cow) == 0
    [backup] = (cow / "channel").glob("wechatcom_kf.bak-*")
    assert (backup / "wechatcom_kf_cursor_store.py").read_text(encoding="utf-8") == "X = 1\n"
    assert not (old / "wechatcom_kf_cursor_store.py").exists()
    assert "OLD" not in (old / "wechatcom_kf_channel.py").read_text(encoding="utf-8")


def test_add_settings_adds_every_key_once_and_1x_accepts_them(tmp_path: Path) -> None:
    cow = make_tree(tmp_path, "1")
    assert run(cow, "--add-settings") == 0
    assert run(cow, "--add-settings") == 0
    text = (cow / "config.py").read_text(encoding="utf-8")
    for key, _ in install.setting_entries():
        assert text.count(f'"{key}":') == 1, key
    [backup] = cow.glob("config.py.bak-*")
    assert '"wechatcom_kf_token"' not in backup.read_text(encoding="utf-8")
    keys = {key: "x" for key, _ in install.setting_entries() if key.startswith("wechat")}
    check = f"import sys; sys.path.insert(0, '.'); import config; config.Config({keys!r}); print('ok')"
    result = subprocess.run(
        [sys.executable, "-c", check], cwd=cow, capture_output=True, text=True, timeout=60
    )
    assert result.stdout.strip() == "ok", result.stderr


def test_1x_without_add_settings_explains_the_environment(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cow = make_tree(tmp_path, "1")
    assert run(cow) == 0
    out = capsys.readouterr().out
    assert "WECHATCOM_KF_TOKEN" in out and "--add-settings" in out
    assert '"wechatcom_kf_token"' not in (cow / "config.py").read_text(encoding="utf-8")


def test_not_a_cow_tree_is_one_line_and_status_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cow = make_tree(tmp_path, "2.0")
    (cow / "channel" / "channel_factory.py").unlink()
    before = snapshot(cow)
    assert run(cow) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "channel/channel_factory.py" in err[0]
    assert snapshot(cow) == before


def _fake_python(path: Path, version: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    answer = json.dumps({"version": [int(p) for p in version.split(".")], "packages": {}, "all": {}})
    path.write_text(f"#!/bin/sh\necho '{answer}'\n", encoding="utf-8")
    path.chmod(0o755)
    return path


def test_an_old_target_python_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cow = make_tree(tmp_path / "cow", "2.1")
    old = _fake_python(tmp_path / "py38" / "python", "3.8.10")
    before = snapshot(cow)
    assert run(cow, python=str(old)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "3.8.10" in err[0] and "3.10" in err[0]
    assert snapshot(cow) == before


def test_the_cow_venv_is_the_default_interpreter(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cow = make_tree(tmp_path, "2.0")
    venv_python = _fake_python(cow / "venv" / "bin" / "python", "3.9.18")
    assert pk.default_python(cow) == str(venv_python)
    assert install.main([str(cow)]) == 2
    assert "3.9.18" in capsys.readouterr().err


def test_a_relative_python_is_taken_from_where_the_user_stands() -> None:
    assert install.given_python("venv/bin/python") == os.path.abspath("venv/bin/python")
    assert install.given_python("python3") == "python3" and install.given_python(None) is None


def test_missing_packages_are_installed_with_a_lower_bound(
    tmp_path: Path, no_pip: list[list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    cow = make_tree(tmp_path, "2.0")
    bare = _fake_python(tmp_path / "bare" / "python", "3.12.3")  # reports no package installed
    assert run(cow, python=str(bare)) == 0
    [specs] = no_pip
    needs = install.channel_needs(False)
    assert specs == [req.spec for req in needs.required]
    assert all(">=" in spec and "==" not in spec for spec in specs)
    assert not any(spec.startswith("redis") for spec in specs)
    assert "redis" in capsys.readouterr().out  # optional: a note, no install
    no_pip.clear()
    assert run(cow, "--dry-run", python=str(bare)) == 0
    assert no_pip == []


def test_as_wechat_kf_replaces_upstreams_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cow = make_tree(tmp_path / "cow", "2.1")
    assert run(cow, "--as-wechat-kf") == 0
    [backup] = (cow / "channel").glob("wechat_kf.bak-*")
    assert "upstream = True" in (backup / "wechat_kf_channel.py").read_text(encoding="utf-8")
    name, channel_type, path = build_in_subprocess(cow, "wechat_kf")
    assert (name, channel_type) == ("WechatKfChannel", "wechat_kf")
    assert Path(path).resolve().is_relative_to(cow.resolve() / "channel" / "wechat_kf")
    capsys.readouterr()
    assert run(cow, "--as-wechat-kf") == 0
    assert "nothing to do" in capsys.readouterr().out


def test_as_wechat_kf_is_skipped_without_upstreams_branch(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cow = make_tree(tmp_path, "2.0")
    assert run(cow, "--as-wechat-kf") == 0
    assert not (cow / "channel" / "wechat_kf").exists()
    assert "--as-wechat-kf" in capsys.readouterr().out


def test_the_installer_reads_settings_without_a_host_config() -> None:
    check = (
        "import sys; from channel.wechatcom_kf import install; n = len(install.setting_entries()); "
        "print(n, sorted(m for m in ('config', 'bridge', 'common') if m in sys.modules))"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run(
        [sys.executable, "-c", check], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
    )
    count, modules = result.stdout.split(maxsplit=1)
    assert int(count) > 20 and modules.strip() == "[]", result.stderr


# --- the edits, one by one -------------------------------------------------------------------------------

TARGET = te.ChannelClass(
    "wechatcom_kf", "WECHATCOM_KF", "channel.wechatcom_kf.wechatcom_kf_channel", "KfChannel"
)


def test_branch_goes_after_wechat_kf_then_wechatcom_app_in_the_files_style() -> None:
    source = textwrap.dedent(FACTORY_2_1)
    edited = te.add_factory_branch(source, TARGET, frozenset({"WECHAT_KF"}))
    added = [line for line in edited.splitlines() if line not in source.splitlines()]
    assert added == [
        '    elif channel_type == "wechatcom_kf":',
        "        from channel.wechatcom_kf.wechatcom_kf_channel import KfChannel",
        "        ch = KfChannel()",
    ]
    assert edited.index("WechatKfChannel()") < edited.index("KfChannel()\n    elif channel_type == const.QQ")
    assert te.branch_state(edited, "wechatcom_kf", "WECHATCOM_KF").present
    assert (
        te.add_factory_branch(textwrap.dedent(FACTORY_1), TARGET, frozenset()).index(
            'ch = WechatComAppChannel()\n    elif channel_type == "wechatcom_kf"'
        )
        > 0
    )


def test_branch_uses_the_const_when_the_host_defines_it() -> None:
    edited = te.add_factory_branch(textwrap.dedent(FACTORY_1), TARGET, frozenset({"FEISHU", "WECHATCOM_KF"}))
    assert "    elif channel_type == const.WECHATCOM_KF:\n" in edited


def test_branch_in_a_return_style_chain_with_single_quotes() -> None:
    source = (
        "def create_channel(kind):\n"
        "    if kind == 'wx':\n"
        "        from channel.wechat.wechat_channel import WechatChannel\n"
        "\n"
        "        return WechatChannel()\n"
        "    elif kind == 'terminal':\n"
        "        from channel.terminal.terminal_channel import TerminalChannel\n"
        "\n"
        "        return TerminalChannel()\n"
        "    raise RuntimeError\n"
    )
    edited = te.add_factory_branch(source, TARGET, frozenset())
    assert edited.endswith(
        "        return TerminalChannel()\n"
        "    elif kind == 'wechatcom_kf':\n"
        "        from channel.wechatcom_kf.wechatcom_kf_channel import KfChannel\n"
        "\n"
        "        return KfChannel()\n"
        "    raise RuntimeError\n"
    )
    te.check_factory(edited, source, TARGET)


def test_crlf_and_a_bom_survive_the_edit() -> None:
    source = te.BOM + textwrap.dedent(FACTORY_2_0).replace("\n", "\r\n")
    edited = te.add_factory_branch(source, TARGET, frozenset())
    assert edited.startswith(te.BOM) and "\n" not in edited.replace("\r\n", "")
    te.check_factory(edited, source, TARGET)


def test_available_settings_without_a_trailing_comma_and_on_one_line() -> None:
    multi = 'available_setting = {\n    "a": 1,\n    "b": "é"  # last, no comma\n}\n'
    edited, added = te.add_available_settings(multi, [("a", 0), ("c", [1, "x"]), ("d", {"k": True})], "ours")
    assert added == ["c", "d"]
    assert edited == (
        'available_setting = {\n    "a": 1,\n    "b": "é",  # last, no comma\n'
        '    # ours\n    "c": [1, "x"],\n    "d": {"k": True},\n}\n'
    )
    one_line, _ = te.add_available_settings('available_setting = {"a": 1}\n', [("b", 2.5)], "ours")
    assert compile(one_line, "config.py", "exec") and te.setting_keys(one_line) == {"a", "b"}
    assert te.add_available_settings(edited, [("c", 0)], "ours") == (edited, [])


def test_py_literal_is_faithful() -> None:
    for value in ["", '引号"和\\反斜杠\n', 0, 2.5, True, None, [], ["转人工", 1], {"a": [False]}]:
        assert eval(te.py_literal(value)) == value  # a literal written just now
    with pytest.raises(ValueError):
        te.py_literal(float("inf"))


def test_a_failed_check_restores_the_original(tmp_path: Path) -> None:
    path = tmp_path / "channel_factory.py"
    path.write_text("x = 1\n", encoding="utf-8")
    backup = tmp_path / "channel_factory.py.bak-1"

    def refuse(text: str) -> None:
        raise ValueError("no")

    with pytest.raises(te.WriteError, match="restored"):
        te.write_checked(path, "x = 1\n", "x = (\n", backup, refuse)
    assert path.read_text(encoding="utf-8") == "x = 1\n" and backup.read_text(encoding="utf-8") == "x = 1\n"


def test_app_plugin_gate_is_found() -> None:
    gate = 'def start(name):\n    if name in ["wx", "terminal"]:\n        PluginManager().load_plugins()\n'
    assert te.app_plugin_gate(gate) == ["wx", "terminal"]
    assert te.app_plugin_gate("def start(name):\n    PluginManager().load_plugins()\n") is None


# --- package decisions (pure) ------------------------------------------------------------------------------

REQUIREMENTS = """
# pinned
wechatpy==1.8.18
cryptography>=41 ; python_version >= "3.8"
requests==2.34.2  # http
Pillow==13.0.0
imageio-ffmpeg~=0.8.1
redis==8.1.0
-r other.txt
h11
"""


def test_needs_come_from_the_imports_and_requirements() -> None:
    modules = {"os", "json", "PIL.Image", "wechatpy.enterprise.crypto", "requests", "urllib3", "redis", "h11"}
    modules |= {"bridge.context", "config", "channel.chat_channel"}
    needs = pk.third_party_needs(modules, pk.parse_requirements(REQUIREMENTS))
    assert [(r.name, r.minimum) for r in needs.required] == [
        ("wechatpy", "1.8.18"),
        ("cryptography", "41"),
        ("requests", "2.34.2"),
        ("Pillow", "13.0.0"),
        ("h11", None),
    ]
    assert [(r.name, setting) for r, setting in needs.optional] == [("redis", "wechatcom_kf_redis_url")]
    assert needs.unlisted == ("urllib3",)


def test_the_channel_needs_its_block_of_requirements() -> None:
    names = {req.key for req in install.channel_needs(False).required}
    assert {"wechatpy", "cryptography", "requests", "h11", "pillow", "imageio-ffmpeg"} <= names
    assert "redis" not in names and "pydub" not in names
    assert "prometheus-client" not in names  # only with wechatcom_kf_metrics_port: a note, no install
    optional = {req.key: setting for req, setting in install.channel_needs(False).optional}
    assert optional == {"redis": "wechatcom_kf_redis_url", "prometheus-client": "wechatcom_kf_metrics_port"}


def test_decide_installs_only_what_is_missing() -> None:
    needs = pk.third_party_needs(
        {"wechatpy", "requests", "PIL", "h11", "redis"}, pk.parse_requirements(REQUIREMENTS)
    )
    decision = pk.decide_packages(
        needs, {"wechatpy": "1.8.18", "requests": "2.31.0", "pillow": "13.0.0.post1"}
    )
    assert [req.spec for req in decision.install] == ["h11"]
    assert [(req.name, v) for req, v in decision.too_old] == [("requests", "2.31.0")]
    assert [(req.name, v) for req, v in decision.satisfied] == [
        ("wechatpy", "1.8.18"),
        ("Pillow", "13.0.0.post1"),
    ]
    assert [(req.name, v) for req, v, _ in decision.optional] == [("redis", None)]
    everything = pk.decide_packages(needs, {"wechatpy": "2.0", "requests": "3", "pillow": "13", "h11": "0.1"})
    assert everything.install == () and everything.too_old == ()


def test_versions_compare_like_releases() -> None:
    assert pk.meets_minimum("13.0", "13.0.0") is True
    assert pk.meets_minimum("13.0.0rc1", "13.0.0") is False
    assert pk.meets_minimum("2.10.0", "2.9.1") is True
    assert pk.meets_minimum("1!2.0", "1.0") is True
    assert pk.meets_minimum("unknown", "1.0") is None


def test_pip_gets_lower_bounds_and_installed_versions_as_constraints() -> None:
    reqs = [pk.Requirement("h11", "0.16.0"), pk.Requirement("Pillow", None)]
    command = pk.pip_command("/venv/bin/python", reqs, "/tmp/c.txt")
    assert command[:4] == ["/venv/bin/python", "-m", "pip", "install"]
    assert command[-4:] == ["-c", "/tmp/c.txt", "h11>=0.16.0", "Pillow"]
    assert pk.constraints_text({"requests": "2.31.0", "web-py": "0.62", "bad name": "1"}) == (
        "requests==2.31.0\nweb-py==0.62\n"
    )


def test_the_probe_reads_a_real_interpreter(tmp_path: Path) -> None:
    found = pk.probe(sys.executable, ["pytest", "no-such-package-here"], tmp_path)
    assert found.version[:2] == sys.version_info[:2]
    assert found.packages["pytest"] and found.packages["no-such-package-here"] is None
    assert "pytest" in found.distributions
