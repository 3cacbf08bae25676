"""Install this repo's ``wechatcom_kf`` channel into an existing chatgpt-on-wechat (CoW) tree.

    python -m channel.wechatcom_kf.install /path/to/cow [--dry-run] [--add-settings]
        [--python /path/to/cow/venv/bin/python] [--as-wechat-kf]

Run it from this repo's root with this repo's Python. It imports nothing from the host: the host's
files are read as text (``install_support/cow_tree.py``) and the host's interpreter is only asked, in
a subprocess, for its version and its installed packages (``install_support/packages.py``).

1. copy ``channel/wechatcom_kf/`` to ``<cow>/channel/wechatcom_kf/`` (without ``__pycache__`` and
   without this installer); an older copy is moved to ``wechatcom_kf.bak-<YYYYmmdd-HHMMSS>`` first.
   ``--as-wechat-kf`` also puts this repo's ``channel/wechat_kf/`` over upstream's (CowAgent 2.1.x);
2. add the ``wechatcom_kf`` branch to ``channel/channel_factory.py`` (backup, diff, compile check);
3. ``--add-settings``: add the channel's keys to ``available_setting`` in ``config.py`` (CoW 1.x refuses
   config.json keys it does not list); without it a 1.x tree gets the environment-variable note;
4. install the missing third-party packages into the target interpreter as ``pkg>=minimum``; an
   installed package is never upgraded or downgraded.

A second run finds nothing to do; ``--dry-run`` prints the plan and changes nothing. Exit status: 0
done, 1 a step failed (its change is restored), 2 a usage or tree problem (one line naming it).
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from . import install_support as te
from .install_support import packages as pk

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parents[1]
WECHAT_KF_DIR = REPO_ROOT / "channel" / "wechat_kf"
FACTORY_REL = "channel/channel_factory.py"
CHANNEL_MODULE = "channel.wechatcom_kf.wechatcom_kf_channel"
SETTINGS_COMMENT = "wechatcom_kf 渠道 / channel (python -m channel.wechatcom_kf.install --add-settings)"
REQUIRED_SETTINGS = ("wechatcom_corp_id", "wechatcom_kf_secret", "wechatcom_kf_token", "wechatcom_kf_aes_key")

NOTE_ENV_1X = (
    "CoW 1.x 遇到 config.json 里 available_setting 未登记的键会报错退出：不要把 wechatcom_* 键写进 "
    'config.json（只写 "channel_type": "wechatcom_kf"），改用渠道自己读取的环境变量 {zh}…；'
    "或加 --add-settings 重新运行。"
    " / CoW 1.x stops on a config.json key missing from available_setting: keep the wechatcom_* keys out "
    'of config.json (only "channel_type": "wechatcom_kf") and set the environment variables the channel '
    "reads itself ({en}, … see settings.py), or rerun with --add-settings."
)
NOTE_SECRETS_1X = (
    "CoW 1.x 会在启动日志里明文打印 available_setting 中登记过的键对应的环境变量，config.json 里的 "
    "wechatcom_kf_token 也不会被遮住：登记之后密钥就会出现在日志里。不想这样就不要用 --add-settings，"
    "只用环境变量 / CoW 1.x prints, in clear, the environment variables of keys declared in "
    "available_setting, and does not mask wechatcom_kf_token in config.json: once declared, the secrets "
    "reach its log. To avoid that, skip --add-settings and use environment variables only."
)
NOTE_PLUGINS_1X = (
    'app.py 只为它列出的渠道加载插件，其中没有 "wechatcom_kf"：用插件就把它加进那个列表 / app.py loads '
    'plugins only for the channel types it lists, and "wechatcom_kf" is not one: add it there to use plugins.'
)
NOTE_WEB_CONSOLE = (
    "CoW 2.x 的网页控制台默认监听 web_port 9899，wechatcom_kf_port 默认 {port}：请让两者不同，或设 "
    '"web_console": false / CoW 2.x serves its web console on web_port 9899 unless "web_console": false, '
    "and wechatcom_kf_port defaults to {port}: keep the two apart."
)
NEXT_STEP = 'config.json: "channel_type": "wechatcom_kf"{alt}, "single_chat_prefix": [""]; python app.py'


class UsageError(Exception):
    """A usage or tree problem: exit status 2 with this one line."""


def say(zh: str, en: str, rest: str = "") -> str:
    return f"{zh} / {en}" + (f" {rest}" if rest else "")


@dataclass(frozen=True)
class Step:
    would: str  # printed by --dry-run
    done: str  # printed after it ran
    run: Callable[[], None]
    detail: str = ""  # a unified diff, printed under the line


@dataclass
class Plan:
    tree: te.CowTree
    header: list[str]
    steps: list[Step] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    ours_as_wechat_kf: bool = False  # --as-wechat-kf put (or found) our channel/wechat_kf/ there

    def step(
        self,
        what: tuple[str, str, str],
        done: tuple[str, str, str],
        run: Callable[[], None],
        detail: str = "",
    ) -> None:
        self.steps.append(Step(say(*what), say(*done), run, detail))

    def note(self, zh: str, en: str, rest: str) -> None:
        self.notes.append(say(zh, en, rest))


# --- what the channel is and needs ---------------------------------------------------------------------


def our_channel() -> te.ChannelClass:
    """The ChatChannel subclass in ``wechatcom_kf_channel.py``, as the factory branch names it."""
    names = te.class_names(PACKAGE_DIR / "wechatcom_kf_channel.py", base="ChatChannel")
    if not names:
        raise UsageError(f"{PACKAGE_DIR / 'wechatcom_kf_channel.py'} defines no ChatChannel subclass")
    return te.ChannelClass("wechatcom_kf", "WECHATCOM_KF", CHANNEL_MODULE, names[0])


def channel_settings() -> list[Any]:
    """The channel's SettingSpecs (``settings.py`` imports cleanly without a loaded config)."""
    try:
        from .settings import KF_SETTINGS
    except Exception as exc:  # the channel's own code is broken: there is nothing to install
        raise UsageError(f"cannot read channel/wechatcom_kf/settings.py: {exc}") from None
    return list(KF_SETTINGS)


def setting_entries() -> list[tuple[str, Any]]:
    """Every key the channel reads from config.json (aliases after their key) with its default."""
    return [(name, spec.default) for spec in channel_settings() for name in (spec.name, *spec.aliases)]


def channel_needs(with_wechat_kf: bool) -> pk.Needs:
    folders = [PACKAGE_DIR, WECHAT_KF_DIR] if with_wechat_kf else [PACKAGE_DIR]
    files = [
        path for folder in folders for rel, path in te.package_files(folder).items() if rel.endswith(".py")
    ]
    try:
        return pk.needs_of(files, REPO_ROOT / "requirements.txt")
    except (OSError, SyntaxError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot work out the channel's packages: {exc}") from None


# --- planning -------------------------------------------------------------------------------------------


def plan_folder(plan: Plan, src: Path, dst: Path, stamp: str) -> None:
    """Copy ``src`` to ``dst``; a different ``dst`` is moved to a backup first; the same: nothing."""
    src_files = te.package_files(src)
    src_rel, dst_rel = (
        f"{src.relative_to(REPO_ROOT).as_posix()}/",
        f"{dst.relative_to(plan.tree.root).as_posix()}/",
    )
    count = f"({len(src_files)} 个文件 / files)"
    if not dst.exists() and not dst.is_symlink():
        what = f"{src_rel} → {dst_rel} {count}"
        plan.step(
            ("将复制", "would copy", what),
            ("已复制", "copied", what),
            partial(te.install_folder, src_files, dst, None, stamp),
        )
        return
    changed, added, removed = te.folder_changes(src_files, dst)
    if not (changed or added or removed):
        plan.unchanged.append(say("已是最新", "up to date:", f"{dst_rel} {count}"))
        return
    backup = te.unique_backup(dst, stamp)
    counts = f"{len(changed)} changed, {len(added)} new, {len(removed)} gone"
    what = f"{dst_rel} ({counts}); 备份 / backup → {backup.name}/"
    plan.step(
        ("将替换", "would replace", what),
        ("已替换", "replaced", what),
        partial(te.install_folder, src_files, dst, backup, stamp),
    )


def plan_wechat_kf(plan: Plan, stamp: str) -> None:
    """``--as-wechat-kf``: our ``channel/wechat_kf/`` over upstream's, loaded by CowAgent's own branch."""
    if not WECHAT_KF_DIR.is_dir():
        plan.note(
            "已跳过",
            "skipped:",
            "--as-wechat-kf: 本仓库没有 channel/wechat_kf/ / this repo has no channel/wechat_kf/",
        )
        return
    state = te.branch_state(te.read_source(plan.tree.factory), "wechat_kf", "WECHAT_KF")
    if not state.present:
        plan.note(
            "已跳过",
            "skipped:",
            f"--as-wechat-kf: {FACTORY_REL} has no wechat_kf branch (CowAgent 2.1+ only)",
        )
        return
    for module, names in state.imports:
        path = WECHAT_KF_DIR / (module.removeprefix("channel.wechat_kf.").replace(".", "/") + ".py")
        if not (
            module.startswith("channel.wechat_kf.")
            and path.is_file()
            and set(names) <= set(te.class_names(path))
        ):
            plan.note(
                "已跳过",
                "skipped:",
                f"--as-wechat-kf: our channel/wechat_kf/ has no {module}.{', '.join(names)}",
            )
            return
    plan.ours_as_wechat_kf = True
    plan_folder(plan, WECHAT_KF_DIR, plan.tree.root / "channel" / "wechat_kf", stamp)


def plan_factory(plan: Plan, target: te.ChannelClass, stamp: str) -> None:
    path = plan.tree.factory
    source = te.read_source(path)
    state = te.branch_state(source, target.channel_type, target.const_name)
    if state.present:
        plan.unchanged.append(say("已有分支", "branch present:", f"{FACTORY_REL}: {target.channel_type}"))
        if not any(module == target.module and target.class_name in names for module, names in state.imports):
            plan.note(
                "注意",
                "note:",
                f"{FACTORY_REL}: its {target.channel_type} branch does not load {target.class_name}",
            )
        return
    new = te.add_factory_branch(source, target, plan.tree.const_names)
    try:
        te.check_factory(new, source, target)
    except (SyntaxError, ValueError) as exc:
        raise UsageError(f"{FACTORY_REL}: cannot add a branch that compiles ({exc})") from None
    backup = te.unique_backup(path, stamp)
    what = f"{target.channel_type} → {FACTORY_REL}"
    verify = partial(te.check_factory, original=source, target=target)
    run = partial(te.write_checked, path, source, new, backup, verify)
    done = ("已添加分支", "added the branch", f"{what}; 备份 / backup → channel/{backup.name}")
    plan.step(
        ("将添加分支", "would add the branch", what), done, run, te.unified_diff(source, new, FACTORY_REL)
    )


def plan_settings(plan: Plan, add: bool, stamp: str) -> None:
    path, entries = plan.tree.config, setting_entries()
    source = te.read_source(path)
    keys = [key for key, _ in entries]
    if set(keys) <= te.setting_keys(source):
        if add or plan.tree.flavour == te.FLAVOUR_1:
            plan.unchanged.append(
                say("已登记", "already in available_setting:", f"config.py ({len(keys)} keys)")
            )
        return
    if not add:
        if plan.tree.flavour == te.FLAVOUR_1:
            envs = [spec.env for spec in channel_settings() if spec.name in REQUIRED_SETTINGS and spec.env]
            plan.note("注意", "note:", NOTE_ENV_1X.format(zh="、".join(envs), en=", ".join(envs)))
        return
    if plan.tree.flavour == te.FLAVOUR_1:
        plan.note("注意", "note:", NOTE_SECRETS_1X)
    new, added = te.add_available_settings(source, entries, SETTINGS_COMMENT)
    te.check_settings(new, keys)
    backup = te.unique_backup(path, stamp)
    what = f"{len(added)} keys → available_setting, config.py"
    run = partial(te.write_checked, path, source, new, backup, partial(te.check_settings, keys=keys))
    done = ("已登记", "added", f"{what}; 备份 / backup → {backup.name}")
    plan.step(("将登记", "would add", what), done, run, te.unified_diff(source, new, "config.py"))


def plan_packages(plan: Plan, found: pk.Probe, needs: pk.Needs, python: str) -> None:
    decision = pk.decide_packages(needs, found.packages)
    if decision.satisfied:
        plan.unchanged.append(
            say("已安装", "installed:", ", ".join(f"{req.name} {v}" for req, v in decision.satisfied))
        )
    for req, have in decision.too_old:
        plan.note("版本偏低，未改动", "below the minimum, left alone:", f"{req.name} {have} < {req.minimum}")
    for req, version, setting in decision.optional:
        if version:
            plan.unchanged.append(say("可选", "optional:", f"{req.name} {version} (for {setting})"))
        else:
            hint = shlex.join([python, "-m", "pip", "install", req.spec])
            plan.note("可选", "optional:", f"{req.name}: 仅 {setting} 需要 / only {setting} needs it: {hint}")
    if decision.install:
        specs = " ".join(req.spec for req in decision.install)
        command = shlex.join(pk.pip_command(python, decision.install, "<installed-versions.txt>"))
        run = partial(pk.pip_install, python, decision.install, found.distributions, plan.tree.root)
        plan.step(("将安装", "would install", f"{specs}\n  {command}"), ("已安装", "installed", specs), run)


def host_notes(plan: Plan) -> None:
    gate = te.app_plugin_gate(te.read_source(plan.tree.app))
    if gate is not None and "wechatcom_kf" not in gate:
        plan.note("注意", "note:", NOTE_PLUGINS_1X)
    if plan.tree.flavour != te.FLAVOUR_1:
        port = next((spec.default for spec in channel_settings() if spec.name == "wechatcom_kf_port"), 9899)
        plan.note("注意", "note:", NOTE_WEB_CONSOLE.format(port=port))


def given_python(python: str | None) -> str | None:
    """``--python`` as given; a relative path is made absolute (symlinks kept: a venv is a symlink)."""
    if python and os.sep in python and not os.path.isabs(python):
        return os.path.abspath(os.path.expanduser(python))
    return python


def build_plan(args: argparse.Namespace) -> Plan:
    cow = Path(args.cow).expanduser().resolve()
    if cow == REPO_ROOT:
        raise UsageError(f"{cow} is this repository itself; give the root of a CoW tree")
    try:
        tree = te.recognise(cow)
        python = given_python(args.python) or pk.default_python(cow)
        needs = channel_needs(args.as_wechat_kf)
        found = pk.probe_target(python, needs.names, cow)
        header = [say("CoW 目录", "CoW tree:", f"{cow} ({tree.flavour})")]
        plan = Plan(
            tree,
            [
                *header,
                say("目标 Python", "target Python:", f"{python} ({'.'.join(map(str, found.version))})"),
            ],
        )
        stamp = time.strftime("%Y%m%d-%H%M%S")
        plan_folder(plan, PACKAGE_DIR, cow / "channel" / "wechatcom_kf", stamp)
        if args.as_wechat_kf:
            plan_wechat_kf(plan, stamp)
        plan_factory(plan, our_channel(), stamp)
        plan_settings(plan, args.add_settings, stamp)
    except (te.TreeError, pk.ProbeError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    plan_packages(plan, found, needs, python)
    host_notes(plan)
    return plan


# --- running ---------------------------------------------------------------------------------------------


def run_plan(plan: Plan, dry_run: bool) -> int:
    print("\n".join(plan.header))
    if dry_run:
        print(say("演练", "dry run:", "只列出将做的改动，不写文件 / what would change; nothing is written"))
    for step in plan.steps:
        if not dry_run:
            try:
                step.run()
            except (te.WriteError, pk.InstallError, OSError) as exc:
                print(say("失败", "failed:", str(exc)), file=sys.stderr)
                return 1
        print(step.would if dry_run else step.done)
        if step.detail:
            print(step.detail.rstrip("\n"))
    for line in [*plan.unchanged, *plan.notes]:
        print(line)
    if not plan.steps:
        print(say("无需改动", "nothing to do"))
    elif dry_run:
        print(say("演练结束，未做任何改动", "dry run: nothing was changed"))
    else:
        alt = ' (或 / or "wechat_kf")' if plan.ours_as_wechat_kf else ""
        print(say("下一步", "next:", NEXT_STEP.format(alt=alt)))
        print(say("完成", "done"))
    return 0


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m channel.wechatcom_kf.install",
        description="Install the wechatcom_kf channel into a chatgpt-on-wechat (CoW / CowAgent) tree.",
    )
    parser.add_argument("cow", help="the CoW root (app.py, config.py, channel/channel_factory.py)")
    parser.add_argument("--dry-run", action="store_true", help="print what would change; change nothing")
    parser.add_argument(
        "--add-settings", action="store_true", help="add the channel's keys to config.py's available_setting"
    )
    parser.add_argument(
        "--python", help="the CoW's interpreter (default: <cow>/venv, <cow>/.venv, else this one)"
    )
    parser.add_argument(
        "--as-wechat-kf",
        action="store_true",
        help="also put channel/wechat_kf/ over upstream's (CowAgent 2.1)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        plan = build_plan(args)
    except UsageError as exc:
        print(say("错误", "error:", str(exc)), file=sys.stderr)
        return 2
    return run_plan(plan, args.dry_run)


if __name__ == "__main__":
    sys.exit(main())
