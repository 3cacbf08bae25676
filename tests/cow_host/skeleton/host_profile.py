"""What differs between the faked CoW versions; ``host_version.py`` (written per tree) names the version.

Facts from upstream (``shared/cow-contract.md``): 1.x raises for config keys missing from
``available_setting``, 2.0 warns, 2.1 is silent; 2.x starts a web console on ``web_port`` and sends a
text reply's media as separate ``send()`` calls; ``extra_replies`` are sent from 2.1 on; CowAgent 2.1
skips a channel that fails to construct (older versions stop with "App startup failed!") and has
the ``wechat_kf`` factory branch.
"""

from __future__ import annotations

from host_version import VERSION

RELEASE = tuple(int(part) for part in VERSION.split("."))

STRICT_CONFIG = RELEASE < (2, 0)
WARN_UNKNOWN_KEYS = (2, 0) <= RELEASE < (2, 1)
WEB_CONSOLE = RELEASE >= (2, 0)
MULTI_SEND = RELEASE >= (2, 0)
EXTRA_REPLIES = RELEASE >= (2, 1)
SKIP_BROKEN_CHANNEL = RELEASE >= (2, 1)
WECHAT_KF_BRANCH = RELEASE >= (2, 1)
HAS_CHANNEL_STOP = RELEASE >= (2, 0)
# ChatChannel.produce: ``conf().get("concurrency_in_session", 4)`` in 1.7.6, 1 from 2.0 on.
DEFAULT_CONCURRENCY_IN_SESSION = 4 if RELEASE < (2, 0) else 1
DEFAULT_CHANNEL_TYPE = "wx" if RELEASE < (2, 0) else "web"
# A safety net: a fake host left behind by a killed test run ends on its own.
MAX_LIFETIME_SECONDS = 900.0
