"""Every fixed text a customer can see, owned by the operator: one setting each, Chinese by default.

Nothing else in the channel writes words to a customer: the bot's answers, and these texts. A text
with a placeholder (``{kind}``, ``{url}``) is a template; an optional text left empty is not sent,
a required one left empty falls back to its default (a customer is never left without an answer).
"""

from __future__ import annotations

import string
from dataclasses import dataclass

from ..setting_spec import SettingSpec


@dataclass(frozen=True)
class _Text:
    field: str
    default: str
    description: str
    placeholders: tuple[str, ...] = ()
    optional: bool = False  # empty = not sent

    @property
    def setting(self) -> str:
        return f"wechatcom_kf_{self.field}_text"


_TEXTS: tuple[_Text, ...] = (
    _Text(
        "welcome",
        "",
        "用户进入会话时的欢迎语，空表示不发送 / welcome on enter_session, empty = none",
        optional=True,
    ),
    _Text(
        "handoff",
        "正在为您转接人工客服，请稍候。",
        "转接到接待人员后发给用户 / sent after the session was given to a receptionist",
    ),
    _Text(
        "queue",
        "已为您转入人工客服排队，客服接入后会尽快回复您，请稍候。",
        "转入待接入池（排队）后发给用户 / sent after the session was put into the queue",
    ),
    _Text(
        "handoff_failed",
        "抱歉，暂时无法为您转接人工客服，请稍后再试。您也可以继续向我提问。",
        "转人工失败时发给用户（机器人继续接待）/ sent when a hand-off failed (the bot goes on answering)",
    ),
    _Text(
        "off_hours",
        "您好，现在是非工作时间，人工客服上班后会尽快回复您。",
        "非营业时间的提示，每位用户每个休息时段一次 / off-hours notice, once per customer per closed period",
        optional=True,
    ),
    _Text(
        "model_error",
        "抱歉，暂时无法回答您的问题，请稍后再试。",
        "模型出错或不可用时发给用户 / sent when the model failed or is unavailable",
    ),
    _Text(
        "voice_not_configured",
        "抱歉，暂时无法识别语音，请发送文字。",
        "未配置语音识别时回复语音消息 / answer to a voice message when no speech-to-text is configured",
    ),
    _Text(
        "media_unreadable",
        "抱歉，没能读取您发送的{kind}，请重新发送，或用文字描述您的问题。",
        "客户发来的图片/语音/视频/文件损坏、无法下载或无法识别时（不调用模型）/ the customer's media was "
        "corrupt, undownloadable or unreadable (the model is not asked)",
        ("kind",),
    ),
    _Text(
        "media_failed",
        "{kind}发送失败，请稍后再试。",
        "回复中的图片/语音/视频/文件无法发送时（{kind} = 图片、语音、视频、文件）/ a reply's media could "
        "not be sent ({kind} = its kind in Chinese)",
        ("kind",),
    ),
    _Text(
        "media_too_big",
        "{kind}太大，无法发送。",
        "回复中的媒体超过企业微信大小限制时 / a reply's media is over WeCom's size limit",
        ("kind",),
    ),
    _Text(
        "video_link",
        "视频无法直接发送，请点击链接观看：{url}",
        "视频链接无法作为视频发送时 / a video URL that cannot be sent as a video",
        ("url",),
    ),
    _Text(
        "voice_cut",
        "语音较长，其余部分未能发送。",
        "语音回复超出条数限制被截断时 / a voice reply cut at the 5-message budget",
    ),
    _Text(
        "truncated",
        "…（内容过长，已截断）",
        "超长回复截断处的标记 / marker where an over-long answer was cut",
    ),
    _Text(
        "flood",
        "您发送的消息较多，以下是合并后的回复：",
        "用户短时间内连发多条消息、合并回复时放在回复前 / put before the one answer to a burst of messages",
        optional=True,
    ),
    _Text(
        "thinking",
        "正在思考，请稍候…",
        "模型较慢时的等待提示（wechatcom_kf_thinking_notice_seconds 大于 0 时）/ the waiting notice "
        "while the model is slow (when wechatcom_kf_thinking_notice_seconds is above 0)",
        optional=True,
    ),
    _Text(
        "ai_disclosure",
        "以下回复由 AI 生成，仅供参考。",
        "AI 生成内容提示（wechatcom_kf_ai_disclosure 开启时）/ AI-generated label (when "
        "wechatcom_kf_ai_disclosure is on)",
        optional=True,
    ),
)

TEXT_SPECS: tuple[SettingSpec, ...] = tuple(
    SettingSpec(t.setting, t.default, str, t.setting.upper(), t.description) for t in _TEXTS
)

_DEFAULTS = {t.field: t.default for t in _TEXTS}


@dataclass(frozen=True)
class CustomerTexts:
    welcome: str = ""
    handoff: str = _DEFAULTS["handoff"]
    queue: str = _DEFAULTS["queue"]
    handoff_failed: str = _DEFAULTS["handoff_failed"]
    off_hours: str = _DEFAULTS["off_hours"]
    model_error: str = _DEFAULTS["model_error"]
    voice_not_configured: str = _DEFAULTS["voice_not_configured"]
    media_unreadable: str = _DEFAULTS["media_unreadable"]
    media_failed: str = _DEFAULTS["media_failed"]
    media_too_big: str = _DEFAULTS["media_too_big"]
    video_link: str = _DEFAULTS["video_link"]
    voice_cut: str = _DEFAULTS["voice_cut"]
    truncated: str = _DEFAULTS["truncated"]
    flood: str = _DEFAULTS["flood"]
    thinking: str = _DEFAULTS["thinking"]
    ai_disclosure: str = _DEFAULTS["ai_disclosure"]

    @classmethod
    def from_settings(cls, values: dict[str, str]) -> CustomerTexts:
        """Texts from setting values by setting name; ValueError naming the setting of a bad template."""
        chosen: dict[str, str] = {}
        for text in _TEXTS:
            value = str(values.get(text.setting, text.default) or "").strip()
            if not value and not text.optional:
                value = text.default
            _check_template(text, value)
            chosen[text.field] = value
        return cls(**chosen)

    def media_unreadable_for(self, kind: str) -> str:
        return self.media_unreadable.format(kind=media_label(kind))

    def media_failed_for(self, kind: str) -> str:
        return self.media_failed.format(kind=media_label(kind))

    def media_too_big_for(self, kind: str) -> str:
        return self.media_too_big.format(kind=media_label(kind))


MEDIA_LABELS = {"image": "图片", "voice": "语音", "video": "视频", "file": "文件"}


def media_label(kind: str) -> str:
    return MEDIA_LABELS.get(kind, "消息")


def _check_template(text: _Text, value: str) -> None:
    try:
        names = {name for _, name, _, _ in string.Formatter().parse(value) if name is not None}
    except ValueError as exc:
        raise ValueError(f"{text.setting}: {exc} (write {{{{ and }}}} for literal braces)") from None
    unknown = names - set(text.placeholders)
    if unknown:
        allowed = ", ".join("{" + p + "}" for p in text.placeholders) or "none"
        raise ValueError(f"{text.setting}: unknown placeholder {{{sorted(unknown)[0]}}} (allowed: {allowed})")
