"""Where operators read what ``metrics.py`` counts: a ``/metrics`` server of its own, and the callback
handler that counts its answers and tells the callback port's ``/readyz`` how ready the service is.

The metrics server is never the public callback port: it binds ``wechatcom_kf_metrics_host``
(127.0.0.1 by default) on ``wechatcom_kf_metrics_port``, and is off when the port is 0 (the default:
a port the operator did not ask for could clash with another instance or CoW's web console, and the
library is then not needed at all). It is prometheus_client's own threaded server, which answers any
path with the metrics. A port that cannot be bound is logged and the channel runs on without
metrics: the customers are answered either way, and Prometheus reports the target down.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

from .edge.callback import CallbackHandler, Response
from .metrics import KfMetrics

logger = logging.getLogger(__name__)

STOP_TIMEOUT_SECONDS = 5.0


def metrics_port(port: int, callback_port: int) -> int:
    """The metrics port setting, checked (0: off); ValueError naming the setting."""
    if not 0 <= port <= 65535:
        raise ValueError(f"wechatcom_kf_metrics_port must be 0 (off) or a port number, got {port}")
    if port and port == callback_port:
        raise ValueError(
            f"wechatcom_kf_metrics_port {port} is the callback port (wechatcom_kf_port): metrics are never "
            "served on the public port; choose another port"
        )
    return port


class MetricsServer:
    """prometheus_client's HTTP server for one registry; ``start`` binds, ``stop`` closes."""

    def __init__(self, registry: Any, host: str, port: int) -> None:
        self._registry = registry
        self.host = host
        self._port = port
        self._httpd: Any = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port once started (the configured one before)."""
        return int(self._httpd.server_port) if self._httpd is not None else self._port

    def start(self) -> bool:
        """Serve in a daemon thread; False (logged) when the address cannot be bound."""
        from prometheus_client import start_http_server

        try:
            self._httpd, self._thread = start_http_server(self._port, addr=self.host, registry=self._registry)
        except OSError as exc:
            logger.error(
                "metrics not served: cannot listen on %s:%d (%s); check wechatcom_kf_metrics_port",
                self.host,
                self._port,
                exc.strerror or type(exc).__name__,
            )
            return False
        logger.info("metrics at http://%s:%d/metrics", self.host, self.port)
        return True

    def stop(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(STOP_TIMEOUT_SECONDS)


class ObservedCallbackHandler(CallbackHandler):
    """The callback handler as the service runs it: answers counted by status, and the readiness that
    the callback server's ``/readyz`` reports (``edge.http_server.ReportsReadiness``)."""

    def __init__(
        self, *args: Any, metrics: KfMetrics, readiness: Callable[[], str | None], **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self._metrics = metrics
        self._readiness = readiness

    def handle_get(self, query: Mapping[str, str]) -> Response:
        return self._counted(super().handle_get(query))

    def handle_post(self, query: Mapping[str, str], body: bytes) -> Response:
        try:
            response = super().handle_post(query, body)
        except Exception:  # the server answers 500 (WeCom retries): count it as such
            self._metrics.callbacks.labels("500").inc()
            raise
        return self._counted(response)

    def not_ready_reason(self) -> str | None:
        return self._readiness()

    def _counted(self, response: Response) -> Response:
        self._metrics.callbacks.labels(str(response.status)).inc()
        return response
