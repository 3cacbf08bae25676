"""CoW's channel factory: an if/elif chain, ``ch.channel_type`` set on the instance.

``wechatcom_kf`` is the branch a deployment adds for this channel (none upstream has it); CowAgent 2.1
has the ``wechat_kf`` branch.
"""

from __future__ import annotations

import host_profile as profile

from channel.channel import Channel
from common import const


def create_channel(channel_type: str) -> Channel:
    ch: Channel
    if channel_type == "web":
        from channel.web.web_channel import WebChannel

        ch = WebChannel()
    elif channel_type == "wechatcom_kf":
        from channel.wechatcom_kf.wechatcom_kf_channel import WechatComKfChannel

        ch = WechatComKfChannel()
    elif profile.WECHAT_KF_BRANCH and channel_type == const.WECHAT_KF:
        from channel.wechat_kf.wechat_kf_channel import WechatKfChannel

        ch = WechatKfChannel()
    else:
        raise RuntimeError(f"unknown channel_type {channel_type!r}")
    ch.channel_type = channel_type
    return ch
