"""The channel inside fake upstream CoW hosts (1.7, 2.0, CowAgent 2.1), over real HTTP against the
emulator: ``python app.py`` of a tree from ``tests/cow_host`` (the host's dispatch, retries, multi-send,
config and logging as upstream has them, see ``shared/cow-contract.md``).

Oracles count what the host saw (the bot's calls, every ``send()`` call and exception) as well as what
the emulator received, so an answer given twice fails even when WeCom would have taken it. No timing
assertions: waits are bounded, results are counts.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from sandbox.emulator import SentMessage, WeComEmulator
from sandbox.harness import free_port, wait_until
from tests.cow_host import VERSIONS, HostProcess, kf_settings, launch
from tests.cow_host.media import ImageServer, write_pngs

MULTI_SEND_VERSIONS = ("2.0", "2.1")  # CoW 2.x sends a text's images as separate send() calls
EXTRA_REPLIES_VERSIONS = ("2.1",)  # reply.extra_replies: CowAgent 2.1
SEND_BUDGET = 5  # kf/send_msg per customer message
SETTLE_SECONDS = 1.0  # how long a late duplicate gets to show up once everything is answered
ANSWER_TIMEOUT = 30.0


# --- helpers ----------------------------------------------------------------------------------------


def settled_sends(emu: WeComEmulator, user: str, expected: int) -> list[SentMessage]:
    """The sends to ``user`` once ``expected`` arrived (or the time is up) and nothing more came."""
    with contextlib.suppress(TimeoutError):  # fewer: the assertions name what did arrive
        emu.wait_for_sends(expected, timeout=ANSWER_TIMEOUT, user=user)
    wait_until(lambda: len(emu.sends_to(user)) > expected, SETTLE_SECONDS)
    return emu.sends_to(user)


def fingerprint(emu: WeComEmulator, sent: SentMessage) -> str:
    """What the customer sees of one send: the text, or a hash of the media's bytes."""
    if sent.msgtype == "text":
        return f"text:{sent.text}"
    media_id = str(sent.body.get("media_id", ""))
    try:
        digest = hashlib.sha256(emu.uploaded_media(media_id).data).hexdigest()[:16]
    except KeyError:
        digest = media_id
    return f"{sent.msgtype}:{digest}"


def duplicates(emu: WeComEmulator, sends: list[SentMessage]) -> list[str]:
    counts = Counter(fingerprint(emu, s) for s in sends)
    return [key for key, n in counts.items() if n > 1]


def rejections_for(emu: WeComEmulator, user: str, errcode: int) -> int:
    return sum(1 for r in emu.rejections if r.errcode == errcode and user in json.dumps(r.request))


def finish(host: HostProcess, handled: int) -> None:
    """Wait until the host finished ``handled`` contexts (its _send retries included)."""
    done = host.wait_events("handled", handled, ANSWER_TIMEOUT)
    assert len(done) >= handled, f"the host finished {len(done)} of {handled} contexts:\n{host.tail()}"


def assert_no_send_raised(host: HostProcess) -> None:
    raised = host.events("send_error")
    assert raised == [], f"send() raised {len(raised)} time(s), so CoW resent: {raised[:3]}"


def image_bot(images: ImageServer, paths: list[Path], **extra: Any) -> dict[str, Any]:
    return {
        "latency": 0.2,
        "image_refs": {"http": [images.url(p.name) for p in paths], "file": [str(p) for p in paths]},
        **extra,
    }


# --- scenarios ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("dispatch", ["channel", "host"])
@pytest.mark.parametrize("version", VERSIONS)
def test_burst_of_20_customers_each_answered_exactly_once(
    emu: WeComEmulator, tmp_path: Path, version: str, dispatch: str
) -> None:
    """``dispatch``: the channel's own workers (its default in a CoW host), or CoW's queue, polled by
    one consumer thread for 8 handler threads (``wechatcom_kf_own_dispatch: false``)."""
    kf = emu.default_kfid
    settings = {"wechatcom_kf_own_dispatch": dispatch == "channel"}
    with launch(emu, tmp_path, version, bot={"latency": 0.2}, settings=settings) as host:
        users = [emu.add_customer(f"客户{i}") for i in range(20)]
        questions = {user: f"第{i}位客户的问题" for i, user in enumerate(users)}
        for user, question in questions.items():
            emu.customer_text(kf, user, question)
        emu.wait_for_sends(len(users), timeout=ANSWER_TIMEOUT)
        finish(host, len(users))
        wait_until(lambda: len(emu.sends) > len(users), SETTLE_SECONDS)
        asked = Counter(event["query"] for event in host.events("bot_call"))
        answers = {user: [s.text for s in emu.sends_to(user)] for user in users}
    assert asked == Counter(questions.values()), "the bot must be asked exactly once per message"
    assert answers == {user: [f"答：{q}"] for user, q in questions.items()}
    assert_no_send_raised(host)
    queued = len(host.events("produce"))
    assert queued == (len(users) if dispatch == "host" else 0), f"{queued} contexts went through CoW's queue"


def test_cow17_with_the_channel_settings_only_in_environment_variables(
    emu: WeComEmulator, tmp_path: Path
) -> None:
    """CoW 1.x raises for keys it does not know (config.json or ``conf().get``): the channel's settings
    can only come from its environment variables there."""
    kf, user = emu.default_kfid, emu.add_customer("环境变量客户")
    with launch(emu, tmp_path, "1.7", in_env=True) as host:
        config = json.loads((host.tree / "config.json").read_text(encoding="utf-8"))
        assert not [key for key in config if key.startswith(("wechatcom", "wechat_kf"))]
        emu.customer_text(kf, user, "只用环境变量")
        sends = settled_sends(emu, user, 1)
        finish(host, 1)
    assert [s.text for s in sends] == ["答：只用环境变量"]
    assert [e["query"] for e in host.events("bot_call")] == ["只用环境变量"]


@pytest.mark.parametrize("version", MULTI_SEND_VERSIONS)
def test_port_of_the_web_console_is_refused_in_one_clear_line(
    emu: WeComEmulator, tmp_path: Path, version: str
) -> None:
    port = free_port()
    host = launch(
        emu,
        tmp_path,
        version,
        settings={"wechatcom_kf_port": port},
        config={"web_console": True, "web_port": port},
        wait=False,
    )
    with host:
        lines = host.wait_output(
            lambda line: "wechatcom_kf_port" in line and "web_port" in line and "[config.py:" not in line,
            20.0,
        )
    assert lines, f"no log line names wechatcom_kf_port and web_port:\n{host.tail()}"


@pytest.mark.parametrize("source", ["http", "file"])
@pytest.mark.parametrize("version", MULTI_SEND_VERSIONS)
def test_text_with_two_images_is_three_messages_within_budget(
    emu: WeComEmulator, tmp_path: Path, version: str, source: str
) -> None:
    """CoW 2.x sends the text, then each image it finds in it (a URL, or a local path as
    ``file://...``) with its own ``send()``: the customer gets each once, within the budget."""
    kf, user = emu.default_kfid, emu.add_customer("看图的客户")
    paths = write_pngs(tmp_path / "images", 2)
    with ImageServer({p.name: p.read_bytes() for p in paths}) as images:
        bot = image_bot(images, paths)
        with launch(emu, tmp_path, version, bot=bot) as host:
            emu.customer_text(kf, user, f"MULTI_{source.upper()} 发两张图")
            finish(host, 1)
            sends = settled_sends(emu, user, 3)
    assert len(host.events("send")) == 3, "the host makes three send() calls"
    assert len(sends) <= SEND_BUDGET
    assert_no_send_raised(host)
    assert [s.msgtype for s in sends] == ["text", "image", "image"], [fingerprint(emu, s) for s in sends]
    assert duplicates(emu, sends) == []


@pytest.mark.parametrize("version", EXTRA_REPLIES_VERSIONS)
def test_extra_replies_and_images_share_one_budget(emu: WeComEmulator, tmp_path: Path, version: str) -> None:
    """Text + 2 images + 3 extra_replies = 6 send() calls for one customer message: at most 5 reach
    the customer, none twice, and the channel counts the budget itself (no send refused with 95001)."""
    kf, user = emu.default_kfid, emu.add_customer("要附件的客户")
    paths = write_pngs(tmp_path / "images", 3)
    with ImageServer({p.name: p.read_bytes() for p in paths[:2]}) as images:
        bot = image_bot(
            images,
            paths[:2],
            extra_images=[str(paths[2])],
            extra_texts=["补充说明一", "补充说明二"],
        )
        with launch(emu, tmp_path, version, bot=bot) as host:
            emu.customer_text(kf, user, "EXTRA 要附件")
            finish(host, 1)
            sends = settled_sends(emu, user, SEND_BUDGET)
    assert len(host.events("send")) == 6, "the host makes six send() calls"
    assert 1 <= len(sends) <= SEND_BUDGET
    assert duplicates(emu, sends) == []
    assert_no_send_raised(host)
    assert rejections_for(emu, user, 95001) == 0, "the channel must not send past the budget"


@pytest.mark.parametrize("version", VERSIONS)
def test_send_refused_after_a_silent_takeover_is_not_resent_by_the_host(
    emu: WeComEmulator, tmp_path: Path, version: str
) -> None:
    """A receptionist takes the session while the bot thinks (no event reaches the channel): WeCom
    answers 95018. ``send`` must handle it without raising, or CoW's ``_send`` tries twice more."""
    kf, user = emu.default_kfid, emu.add_customer("被接待的客户")
    with launch(emu, tmp_path, version, bot={"latency": 0.2, "slow_latency": 2.0}) as host:
        emu.customer_text(kf, user, "SLOW 请稍等")
        asked = host.wait_events("bot_call", 1, ANSWER_TIMEOUT)
        assert asked, f"the bot was not asked:\n{host.tail()}"
        emu.take_over(kf, user, notify=False)
        finish(host, 1)
        wait_until(lambda: rejections_for(emu, user, 95018) > 1, SETTLE_SECONDS)
    assert_no_send_raised(host)
    assert len(host.events("send")) == 1
    assert emu.sends_to(user) == []
    assert rejections_for(emu, user, 95018) <= 1, "the refused send was repeated"


@pytest.mark.parametrize("version", VERSIONS)
def test_api_failures_are_handled_inside_send(emu: WeComEmulator, tmp_path: Path, version: str) -> None:
    """HTTP 500s and dropped connections on WeCom's API: the channel retries on its own, every customer
    gets one answer, and no failure escapes ``send`` into CoW's resend."""
    kf = emu.default_kfid
    with launch(emu, tmp_path, version, bot={"latency": 0.2}) as host:
        users = [emu.add_customer(f"故障客户{i}") for i in range(8)]
        emu.faults.seed(20240521)
        emu.faults.error_5xx_rate, emu.faults.drop_rate = 0.2, 0.1
        for i, user in enumerate(users):
            emu.customer_text(kf, user, f"故障中的问题{i}")
        emu.wait_for_sends(len(users), timeout=ANSWER_TIMEOUT)
        finish(host, len(users))
        injected = emu.faults.counts["error_5xx"] + emu.faults.counts["dropped"]
        emu.faults.reset()
        wait_until(lambda: len(emu.sends) > len(users), SETTLE_SECONDS)
        asked = Counter(event["query"] for event in host.events("bot_call"))
    assert injected > 0, "no fault was injected: the scenario tested nothing"
    assert asked == Counter(f"故障中的问题{i}" for i in range(len(users)))
    assert {user: len(emu.sends_to(user)) for user in users} == dict.fromkeys(users, 1)
    assert_no_send_raised(host)


@pytest.mark.parametrize("version", VERSIONS)
def test_channel_info_lines_reach_the_host_log(emu: WeComEmulator, tmp_path: Path, version: str) -> None:
    """CoW's ``log`` logger has its own handler and does not propagate; the root logger has none: the
    channel's INFO lines must come out through the host's handler (its ``[INFO][...]`` format)."""
    kf, user = emu.default_kfid, emu.add_customer("看日志的客户")
    with launch(emu, tmp_path, version) as host:
        lines = host.wait_output(lambda line: "wechatcom_kf channel starting" in line, 10.0)
        emu.customer_text(kf, user, "日志")
        settled_sends(emu, user, 1)
        finish(host, 1)
    assert [line for line in lines if line.startswith("[INFO][")], f"not in the host's log:\n{host.tail()}"
    output = host.output()
    assert [secret for secret in emu.secrets() if secret in output] == [], "a secret is in the host's log"


def test_cowagent_starts_the_channel_under_its_wechat_kf_name(emu: WeComEmulator, tmp_path: Path) -> None:
    """CowAgent 2.1's factory loads ``channel.wechat_kf.wechat_kf_channel.WechatKfChannel``, configured
    with upstream's ``wechat_kf_*`` keys."""
    ours = kf_settings(emu, tmp_path / "state", free_port())
    renamed = {
        "wechat_kf_corp_id": ours["wechatcom_corp_id"],
        "wechat_kf_secret": ours["wechatcom_kf_secret"],
        "wechat_kf_token": ours["wechatcom_kf_token"],
        "wechat_kf_aes_key": ours["wechatcom_kf_aes_key"],
        "wechat_kf_port": ours["wechatcom_kf_port"],
    }
    removed = dict.fromkeys(
        (
            "wechatcom_corp_id",
            "wechatcom_kf_secret",
            "wechatcom_kf_token",
            "wechatcom_kf_aes_key",
            "wechatcom_kf_port",
        )
    )
    kf, user = emu.default_kfid, emu.add_customer("升级的客户")
    with launch(emu, tmp_path, "2.1", channel_type="wechat_kf", settings={**removed, **renamed}) as host:
        emu.customer_text(kf, user, "换了名字")
        sends = settled_sends(emu, user, 1)
        finish(host, 1)
    assert [s.text for s in sends] == ["答：换了名字"]
