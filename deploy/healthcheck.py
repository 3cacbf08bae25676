"""Container health check: exit 0 when ``GET /healthz`` on the callback port answers 200, else 1.

The image's HEALTHCHECK runs ``python /app/deploy/healthcheck.py`` inside the container. The port and
address come from the configuration the app reads (``config.json`` next to ``app.py``, then environment
variables), so a changed ``wechatcom_kf_port`` needs no change here. With
``wechatcom_kf_callback_ip_allowlist`` on, add ``127.0.0.1`` to ``wechatcom_kf_allowlist_extra``.
"""

from __future__ import annotations

import http.client
import sys
from pathlib import Path

TIMEOUT_SECONDS = 3.0
ANY_ADDRESS = {"", "0.0.0.0", "::", "[::]"}


def target() -> tuple[str, int]:
    """(host, port) of the callback server as configured; loopback when it listens on every address."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import config

    values = config.load_config()
    host = str(values.get("wechatcom_kf_host", "") or "").strip()
    port = int(values.get("wechatcom_kf_port", 9899))
    return ("127.0.0.1" if host in ANY_ADDRESS else host.strip("[]")), port


def main() -> int:
    try:
        host, port = target()
    except (ValueError, OSError) as exc:
        print(f"unhealthy: configuration: {exc}")
        return 1
    connection = http.client.HTTPConnection(host, port, timeout=TIMEOUT_SECONDS)
    try:
        connection.request("GET", "/healthz")
        status = connection.getresponse().status
    except OSError as exc:
        print(f"unhealthy: {host}:{port}/healthz: {exc}")
        return 1
    finally:
        connection.close()
    print(f"{host}:{port}/healthz: {status}")
    return 0 if status == 200 else 1


if __name__ == "__main__":
    sys.exit(main())
