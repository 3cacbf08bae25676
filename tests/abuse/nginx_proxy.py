"""Debian's nginx in front of the app, configured with exactly what docs/operations.md §1 documents.

The nginx blocks of that section are read from the page: the top level and ``events`` block, the
``http`` lines (limit zones) and the first ``server`` block, whose ``listen``/``server_name``/``ssl_*``
lines are replaced by a plain loopback listener (no certificate here) and whose ``proxy_pass`` port is
the app's. The ``config.json`` block gives the app's settings. What the wrapper adds is only where
nginx keeps its files: a temporary prefix with the logs, the temp paths and the pid file.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sandbox.harness import REPO_ROOT, free_port

OPERATIONS_DOC = REPO_ROOT / "docs" / "operations.md"
DOCUMENTED_UPSTREAM = "proxy_pass http://127.0.0.1:9899;"
_FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)
_REPLACED = re.compile(r"^\s*(listen|server_name|ssl_[a-z_]+)\s[^;]*;\s*$")
INSTALL_HINT = "nginx is not installed: run scripts/check.sh (it installs it) or apt-get install -y nginx"


def nginx_binary() -> str | None:
    return shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.access(p, os.X_OK)), None)


@dataclass(frozen=True)
class DocumentedConfig:
    main: str  # top level and the events block
    http: str  # lines inside http { }
    site: str  # the first server { } block, as documented
    settings: dict[str, Any]  # the config.json block


def _one(blocks: list[str], marker: str) -> str:
    found = [b for b in blocks if marker in b]
    assert len(found) == 1, (
        f"docs/operations.md §1 should have one code block with {marker!r}, has {len(found)}"
    )
    return found[0]


def _first_server(text: str) -> str:
    start = text.index("server {")
    depth = 0
    for i in range(start, len(text)):
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        if depth == 0 and text[i] == "}":
            return text[start : i + 1]
    raise AssertionError("unbalanced braces in the documented server block")


def documented_config() -> DocumentedConfig:
    text = OPERATIONS_DOC.read_text(encoding="utf-8")
    section = text[text.index("## 1. nginx") : text.index("## 2. ")]
    blocks = _FENCE.findall(section)
    nginx = [body for lang, body in blocks if lang == "nginx"]
    settings = json.loads(
        _one([body for lang, body in blocks if lang == "json"], "wechatcom_kf_trusted_proxies")
    )
    return DocumentedConfig(
        main=_one(nginx, "events {"),
        http=_one(nginx, "limit_req_zone"),
        site=_first_server(_one(nginx, "location /wxkf/")),
        settings=settings,
    )


def render(doc: DocumentedConfig, prefix: Path, listen_port: int, app_port: int) -> str:
    """The documented config with a loopback listener on ``listen_port`` and the app on ``app_port``."""
    assert doc.site.count(DOCUMENTED_UPSTREAM) == 1, f"the documented site should {DOCUMENTED_UPSTREAM!r}"
    lines = [line for line in doc.site.splitlines() if not _REPLACED.match(line)]
    lines.insert(1, f"    listen 127.0.0.1:{listen_port};")
    site = "\n".join(lines).replace(DOCUMENTED_UPSTREAM, f"proxy_pass http://127.0.0.1:{app_port};")
    # As root, nginx would switch its workers to "nobody", who cannot enter pytest's 0700 tmp dirs.
    user = "user root;\n" if os.geteuid() == 0 else ""
    temp = "\n".join(
        f"    {kind}_temp_path {prefix}/{kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return (
        f"{user}error_log {prefix}/error.log warn;\n{doc.main}\n"
        f"http {{\n    access_log {prefix}/access.log;\n{temp}\n{doc.http}\n{site}\n}}\n"
    )


class NginxProcess:
    """``nginx -p <prefix> -c <prefix>/nginx.conf -g 'daemon off; pid ...;'``, stopped by its PID."""

    def __init__(self, binary: str, prefix: Path, app_port: int, doc: DocumentedConfig) -> None:
        self.binary = binary
        self.prefix = prefix
        self.port = free_port()
        prefix.mkdir(parents=True, exist_ok=True)
        self.conf = prefix / "nginx.conf"
        self.conf.write_text(render(doc, prefix, self.port, app_port), encoding="utf-8")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/wxkf/"

    def _command(self, *extra: str) -> list[str]:
        pid = f"pid {self.prefix}/nginx.pid;"
        return [
            self.binary,
            "-p",
            str(self.prefix),
            "-c",
            str(self.conf),
            "-e",
            str(self.prefix / "error.log"),
            *extra,
            "-g",
            pid,
        ]

    def start(self) -> NginxProcess:
        check = subprocess.run(self._command("-t", "-q"), capture_output=True, timeout=30, check=False)
        assert check.returncode == 0, (
            f"nginx -t refused the documented config:\n{check.stderr.decode()}\n{self.conf.read_text()}"
        )
        cmd = self._command()
        cmd[-1] = f"daemon off; {cmd[-1]}"
        log = open(self.prefix / "stderr.log", "wb")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        end = time.monotonic() + 15
        while time.monotonic() < end:  # bounded
            assert self.proc.poll() is None, f"nginx exited:\n{self.error_log()}"
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.05)
        raise TimeoutError(f"nginx did not listen on {self.port}:\n{self.error_log()}")

    def error_log(self) -> str:
        parts = [self.prefix / "error.log", self.prefix / "stderr.log"]
        return "\n".join(p.read_text(errors="replace") for p in parts if p.exists())

    def stop(self) -> None:
        """SIGQUIT (graceful), then SIGTERM, then SIGKILL of the master and its workers, by PID."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        workers = _children(proc.pid)
        for sig in (signal.SIGQUIT, signal.SIGTERM):
            proc.send_signal(sig)
            try:
                proc.wait(5)
                return
            except subprocess.TimeoutExpired:
                continue
        for pid in workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        proc.kill()
        proc.wait(10)


def _children(pid: int) -> list[int]:
    try:
        tasks = Path(f"/proc/{pid}/task").iterdir()
        return [int(c) for t in tasks for c in (t / "children").read_text().split()]
    except OSError:
        return []
