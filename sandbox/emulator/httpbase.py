"""A ThreadingHTTPServer that treats a client going away as routine, not as a crash."""

from __future__ import annotations

import logging
import sys
from http.server import ThreadingHTTPServer
from typing import Any

from sandbox.emulator.redact import redact_text

logger = logging.getLogger(__name__)
# A client killed mid-request (the crash tests SIGKILL the app) resets or half-closes its socket;
# socket.timeout is TimeoutError since 3.10. ConnectionError covers reset, broken pipe and abort.
CLIENT_GONE: tuple[type[BaseException], ...] = (ConnectionError, TimeoutError)


class QuietThreadingHTTPServer(ThreadingHTTPServer):
    """The stdlib default prints a traceback to stderr for every failed request; log instead."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        peer = client_address[1] if isinstance(client_address, tuple) and len(client_address) > 1 else ""
        if isinstance(exc, CLIENT_GONE):
            logger.debug("client :%s went away: %s", peer, type(exc).__name__)
            return
        # No traceback: its frames could hold request data; the type and a redacted text suffice.
        logger.warning(
            "request from :%s failed: %s: %s", peer, type(exc).__name__, redact_text(str(exc))[:200]
        )
