"""CoW's logger: named "log", its own stdout handler, not propagating; the root logger has no handler."""

from __future__ import annotations

import logging
import sys

FORMAT = "[%(levelname)s][%(asctime)s][%(filename)s:%(lineno)d] - %(message)s"


def _host_logger() -> logging.Logger:
    log = logging.getLogger("log")
    for handler in list(log.handlers):
        log.removeHandler(handler)
        handler.close()
    log.propagate = False
    console = logging.StreamHandler(sys.stdout)
    console.setFormatter(logging.Formatter(FORMAT, datefmt="%Y-%m-%d %H:%M:%S"))
    log.addHandler(console)
    log.setLevel(logging.INFO)
    return log


logger = _host_logger()
