"""Small distinct PNG images, and a loopback HTTP server handing them out (for replies naming URLs)."""

from __future__ import annotations

import io
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

from PIL import Image

from sandbox.harness import LOOPBACK

COLOURS = ((200, 30, 30), (30, 160, 60), (40, 60, 200), (220, 180, 20), (120, 40, 160))


def png_bytes(index: int, size: int = 48) -> bytes:
    """A PNG that differs from every other index's (colour and a marker pixel)."""
    image = Image.new("RGB", (size, size), COLOURS[index % len(COLOURS)])
    image.putpixel((index % size, index // size % size), (255, 255, 255))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def write_pngs(directory: Path, count: int, first: int = 0) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(first, first + count):
        path = directory / f"image-{i}.png"
        path.write_bytes(png_bytes(i))
        paths.append(path)
    return paths


class _Files(BaseHTTPRequestHandler):
    files: ClassVar[dict[str, bytes]] = {}

    def do_GET(self) -> None:
        body = self.files.get(self.path.lstrip("/"))
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - http.server's name
        return


class ImageServer:
    """Serves ``files`` (name -> bytes) on 127.0.0.1 until ``stop()``."""

    def __init__(self, files: dict[str, bytes]) -> None:
        handler = type("Files", (_Files,), {"files": dict(files)})
        self._server = ThreadingHTTPServer((LOOPBACK, 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.1,), daemon=True)

    def url(self, name: str) -> str:
        return f"http://{LOOPBACK}:{self._server.server_address[1]}/{name}"

    def start(self) -> ImageServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def __enter__(self) -> ImageServer:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()
