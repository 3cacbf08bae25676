#!/usr/bin/env bash
# Install everything the checks need, then run every check: lint, format, types, tests, benchmark smoke run.
# Usage: bash scripts/check.sh        (the README's check command; CI runs exactly this)
# Python: $PYTHON when set; else the active virtual environment; else ./.venv, created when missing
# (Debian 12 / Ubuntu 24.04 refuse pip outside a venv, PEP 668). Debian packages are installed with apt
# (as root, or through sudo).
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
apt_install() {
  echo "== installing Debian packages: $*"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >/dev/null
}

if [ -z "${PYTHON:-}" ]; then
  if [ -n "${VIRTUAL_ENV:-}" ]; then
    PYTHON="$VIRTUAL_ENV/bin/python"
  else
    if [ ! -x .venv/bin/python ]; then
      # Debian's python3 has venv only with python3-venv (ensurepip is split off)
      python3 -c "import ensurepip" 2>/dev/null || apt_install python3-venv
      echo "== creating the virtual environment .venv"
      python3 -m venv .venv
    fi
    PYTHON=.venv/bin/python
  fi
fi

# Debian packages the tests talk to for real: headless Chromium (browser tests), redis-server
# (the Redis state store's contract tests) and nginx (the abuse tests run the documented reverse-proxy
# config in front of the app). Installed only when missing.
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
# /usr/sbin is not on every user's PATH; nginx lives there
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx)
# systemd-analyze verifies the unit file of docs/operations.md
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
# CJK glyphs, so the screenshot the browser tests leave for people to look at is readable.
fc-list 2>/dev/null | grep -qi "wqy\|noto sans cjk" || need+=(fonts-wqy-microhei)
if [ ${#need[@]} -gt 0 ]; then
  apt_install "${need[@]}"
fi

echo "== installing Python packages"
"$PYTHON" -m pip install -q --disable-pip-version-check -r requirements-dev.txt

echo "== ruff (lint)"
"$PYTHON" -m ruff check .
echo "== ruff (format)"
"$PYTHON" -m ruff format --check .
echo "== mypy"
"$PYTHON" -m mypy app.py config.py bridge channel models voice plugins common sandbox bench scripts
echo "== pytest"
"$PYTHON" -m pytest -q -p no:cacheprovider
echo "== benchmark smoke run (figures are not a gate)"
"$PYTHON" -m bench --smoke
echo "== container image (build, run, /healthz)"
bash scripts/container_check.sh
