import contextlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


class _Routes(dict):
    """path -> (status, body, send_content_length)."""


def _handler(routes):
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            status, body, with_length = routes.get(self.path.split("?")[0], (404, b"not found", True))
            self.send_response(status)
            self.send_header("Content-Type", "application/octet-stream")
            if with_length:
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            # The client may stop reading at its size cap.
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.wfile.write(body)

        def log_message(self, format, *args):  # noqa: A002
            pass

    return Handler


@pytest.fixture
def http_files():
    """A loopback HTTP server; ``serve(path, body, status=200, length=True)`` returns the URL."""
    routes = _Routes()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(routes))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"

    class Files:
        def __init__(self):
            self.base = base

        def __call__(self, path, body, status=200, length=True):
            routes[path] = (status, body, length)
            return base + path

    yield Files()
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)
