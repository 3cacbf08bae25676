"""Fake chatgpt-on-wechat hosts (CoW 1.7, 2.0, CowAgent 2.1) for running the channel as upstream
would, without upstream's code.

``make_host`` materialises a tree (``skeleton/`` with the version's behaviour, the repo's channel
folders, a config.json and the scripted bot's settings); ``HostProcess`` runs its ``app.py``;
``launch`` does both for an emulator; ``run_burst`` times a burst of customers for benchmarks.
"""

from .burst import run_burst
from .kf import as_environ, kf_settings, launch
from .process import HostProcess
from .tree import RELEASES, VERSIONS, make_host

__all__ = [
    "RELEASES",
    "VERSIONS",
    "HostProcess",
    "as_environ",
    "kf_settings",
    "launch",
    "make_host",
    "run_burst",
]
