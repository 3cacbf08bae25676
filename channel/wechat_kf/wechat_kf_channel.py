"""``channel_type: "wechat_kf"``: this project's KF channel under upstream CowAgent's name.

CowAgent 2.1 creates ``channel.wechat_kf.wechat_kf_channel.WechatKfChannel`` for ``wechat_kf``; with
this folder copied over upstream's (next to ``channel/wechatcom_kf/``), its existing factory branch
loads ours. Loaded under this name, upstream's spellings and defaults apply, so a CowAgent deployment
keeps its config untouched: the ``wechat_kf_*`` keys and ``WECHAT_KF_*`` variables (accepted by every
setting as aliases), port 9888 when none is set, and upstream's cursor file (``wechat_kf_cursor_path``,
``~/.wechat_kf_cursors.json`` by default) taken over on the first start.
"""

from __future__ import annotations

from typing import Any, ClassVar

from channel.wechatcom_kf.wechatcom_kf_channel import WechatComKfChannel

UPSTREAM_PORT = 9888
UPSTREAM_CURSOR_FILE = "~/.wechat_kf_cursors.json"


class WechatKfChannel(WechatComKfChannel):
    setting_defaults: ClassVar[dict[str, Any]] = {
        "wechatcom_kf_port": UPSTREAM_PORT,
        "wechatcom_kf_adopt_cursor_file": UPSTREAM_CURSOR_FILE,
    }
