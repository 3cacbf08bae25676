"""CoW's shared logger. Handlers are configured by app.py only; importing this creates no files."""

import logging

logger = logging.getLogger("log")
