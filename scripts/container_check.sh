#!/usr/bin/env bash
# Build the container image (Dockerfile) and run it: /healthz answers 200, the image's HEALTHCHECK
# reports healthy, the sandbox starts inside it and SIGTERM stops it with exit code 0.
#
# Usage: bash scripts/container_check.sh     (root or sudo: installs podman, runc, debootstrap with apt)
# Prints one line, "container check: ok (...)" or "container check: FAILED: ...", and exits non-zero on
# failure; the log of a failed step is printed above that line.
#
# The base image: BASE_IMAGE when set (e.g. debian:bookworm-slim from a registry). Otherwise one is made
# from Debian's packages, for machines that reach no image registry: debootstrap (minbase, like
# bookworm-slim) from DEBIAN_MIRROR, by default the Debian mirror apt is configured with here, imported
# as localhost/cowkf-bookworm-base and kept in the image store for the next run
# (CONTAINER_CHECK_REBUILD_BASE=1 makes it again). Certificates this machine trusts beyond Debian's set
# (/usr/local/share/ca-certificates) are put into that local base, so that a TLS-inspecting proxy between
# the build and PyPI is trusted during the build; images from a registry get none of them.
#
# Everything lives in an image store of its own, CONTAINER_CHECK_STORE (default: under $TMPDIR or /tmp),
# not in the system's; CONTAINER_CHECK_PURGE=1 deletes it at the end, base image included.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
TMP_BASE=${TMPDIR:-/tmp}
STORE=${CONTAINER_CHECK_STORE:-$TMP_BASE/cowkf-container-store}
LOCAL_BASE=localhost/cowkf-bookworm-base:latest
IMAGE=localhost/cowkf:check
NAME=cowkf-check-$$
STARTED=$(date +%s)
WORK=""
STEP="setup"

say() { echo "== $*" >&2; }
finish() {
  local rc=$?
  trap - EXIT
  if [ -n "$WORK" ]; then
    for c in "$NAME-app" "$NAME-sandbox"; do
      $SUDO podman rm -f -v -t 0 "$c" >/dev/null 2>&1 || true
    done
    $SUDO podman rmi -f "$IMAGE" >/dev/null 2>&1 || true
    $SUDO podman image prune -f >/dev/null 2>&1 || true # layers of a failed build
    $SUDO podman volume rm -f "$NAME-data" >/dev/null 2>&1 || true
    $SUDO rm -rf "$WORK"
  fi
  if [ "${CONTAINER_CHECK_PURGE:-0}" = 1 ]; then
    $SUDO rm -rf "$STORE"
  fi
  if [ $rc -eq 0 ]; then
    echo "container check: ok (base $BASE${TIMES}, total $(($(date +%s) - STARTED)) s)"
  else
    echo "container check: FAILED: $STEP"
  fi
  exit $rc
}
trap finish EXIT
fail() {
  echo "$*" >&2
  exit 1
}
TIMES=""
timed() { # timed LABEL command...: run, add "LABEL N s" to the result line
  local label=$1 t0
  shift
  STEP=$label
  t0=$(date +%s)
  "$@"
  TIMES="$TIMES, $label $(($(date +%s) - t0)) s"
}

# -- tools ----------------------------------------------------------------------------------------
need=()
command -v podman >/dev/null 2>&1 || need+=(podman)
# runc: crun (podman's default) refuses hosts with cgroup v1 and v2 mounted together (hybrid mode)
command -v runc >/dev/null 2>&1 || need+=(runc)
[ -n "${BASE_IMAGE:-}" ] || command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)
if [ ${#need[@]} -gt 0 ]; then
  say "installing Debian packages: ${need[*]}"
  STEP="apt-get install ${need[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

WORK=$(mktemp -d "$TMP_BASE/cowkf-container-check.XXXXXX")
$SUDO mkdir -p "$STORE"
# Podman settings for this check only: its own image store; runc; resource limits this sandbox may
# set (without CAP_SYS_RESOURCE a container cannot get podman's default of 1048576 open files).
nofile=$(ulimit -Hn)
{ [ "$nofile" = unlimited ] || [ "$nofile" -gt 65536 ]; } && nofile=65536
cat >"$WORK/storage.conf" <<EOF
[storage]
driver = "overlay"
graphroot = "$STORE/storage"
runroot = "$STORE/run"
EOF
cat >"$WORK/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=4096:4096"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
export CONTAINERS_STORAGE_CONF="$WORK/storage.conf" CONTAINERS_CONF="$WORK/containers.conf"
[ -z "$SUDO" ] || SUDO="sudo --preserve-env=CONTAINERS_STORAGE_CONF,CONTAINERS_CONF"
pm() { $SUDO podman "$@"; }
# run/stop without systemd: podman 4 logs that it cannot add a timer for the HEALTHCHECK (which is why
# health() below runs it); that noise goes to a file, shown when a step fails.
pmq() { $SUDO podman "$@" 2>>"$WORK/podman.log"; }

# -- base image -----------------------------------------------------------------------------------
debian_mirror() { # the first bookworm mirror in apt's sources (deb822 .sources, then sources.list)
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    awk 'BEGIN{RS=""} /Suites:[^\n]*bookworm([ \n]|$)/ && /URIs:/ {
           for (i = 1; i <= NF; i++) if ($i == "URIs:") { print $(i + 1); exit } }' "$f"
  done | grep -v -- '-security' | head -n 1
  awk '$1 == "deb" && $3 == "bookworm" { print $2; exit }' /etc/apt/sources.list 2>/dev/null || true
}
make_base() {
  local mirror rootfs="$WORK/rootfs"
  mirror=${DEBIAN_MIRROR:-$(debian_mirror | head -n 1)}
  [ -n "$mirror" ] || fail "no Debian mirror found in apt's sources: set DEBIAN_MIRROR"
  say "debootstrap bookworm (minbase)"
  $SUDO debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$WORK/debootstrap.log" 2>&1 ||
    {
      tail -n 20 "$WORK/debootstrap.log" >&2
      fail "debootstrap failed"
    }
  if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
    $SUDO mkdir -p "$rootfs/usr/local/share/ca-certificates"
    $SUDO cp /usr/local/share/ca-certificates/*.crt "$rootfs/usr/local/share/ca-certificates/"
  fi
  $SUDO rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  say "importing the root file system as $LOCAL_BASE"
  $SUDO tar -C "$rootfs" -c . | pm import --quiet --change 'CMD ["bash"]' - "$LOCAL_BASE" >/dev/null
  $SUDO rm -rf "$rootfs"
}
if [ -n "${BASE_IMAGE:-}" ]; then
  BASE=$BASE_IMAGE
else
  BASE=$LOCAL_BASE
  if [ "${CONTAINER_CHECK_REBUILD_BASE:-0}" = 1 ] || ! pm image exists "$LOCAL_BASE"; then
    timed "base" make_base
  fi
fi

# -- build ----------------------------------------------------------------------------------------
# The build context is a copy outside the work tree: the files git would commit (tracked and new,
# ignored ones left out), and .dockerignore applies on top.
say "copying the build context"
STEP="build context"
mkdir -p "$WORK/context"
if git -C "$ROOT" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  git -C "$ROOT" ls-files -z --cached --others --exclude-standard |
    while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
    tar -C "$ROOT" --null -T - -cf - | tar -C "$WORK/context" -xf -
else
  tar -C "$ROOT" --exclude=.git -cf - . | tar -C "$WORK/context" -xf -
fi
build_args=(--build-arg "BASE_IMAGE=$BASE")
[ -z "${PIP_INDEX_URL:-}" ] || build_args+=(--build-arg "PIP_INDEX_URL=$PIP_INDEX_URL")
build() {
  say "building $IMAGE from $BASE"
  pm build --format docker --pull=never "${build_args[@]}" -t "$IMAGE" "$WORK/context" \
    >"$WORK/build.log" 2>&1 || {
    tail -n 30 "$WORK/build.log" >&2
    fail "build failed"
  }
  grep -q "AMR-NB voice encoding works" "$WORK/build.log" || fail "the build did not check AMR voice"
  [ "$(pm image inspect --format '{{json .Config.Healthcheck}}' "$IMAGE")" != null ] ||
    fail "the image has no HEALTHCHECK"
}
if [ -n "${BASE_IMAGE:-}" ]; then
  STEP="pull $BASE"
  pm image exists "$BASE" || pm pull "$BASE" >/dev/null
fi
timed "build" build

# -- run ------------------------------------------------------------------------------------------
health() { # health CONTAINER: run the image's HEALTHCHECK until healthy (podman has no scheduler here)
  for _ in $(seq 1 30); do
    if pm healthcheck run "$1" >/dev/null 2>&1; then
      return 0
    fi
    sleep 1
  done
  pm logs "$1" 2>&1 | tail -n 30 >&2
  tail -n 5 "$WORK/podman.log" >&2 2>/dev/null || true
  fail "$1: HEALTHCHECK never healthy"
}
http_status() { # http_status URL: the status code, 000 when nothing answers
  python3 - "$1" <<'EOF' 2>/dev/null || echo 000
import sys, urllib.error, urllib.request
try:
    print(urllib.request.urlopen(sys.argv[1], timeout=3).status)
except urllib.error.HTTPError as exc:
    print(exc.code)
EOF
}
run_app() {
  # The real start (not the sandbox): fake credentials, a WeCom API nobody answers, the echo bot.
  # /healthz is 200 while the process answers; /readyz stays 503 (no access_token) and is not asked.
  local port="" status
  say "running the image as a service"
  pmq run -d --name "$NAME-app" -p 127.0.0.1::9899 -v "$NAME-data:/data" \
    -e WECHATCOM_CORP_ID=wwcontainercheck -e WECHATCOM_KF_SECRET=container-check \
    -e WECHATCOM_KF_TOKEN=containercheck -e WECHATCOM_KF_AES_KEY=abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG \
    -e WECHATCOM_KF_API_BASE=http://127.0.0.1:9/cgi-bin/ -e BOT_TYPE=echo \
    "$IMAGE" >/dev/null
  port=$(pm port "$NAME-app" 9899/tcp | sed 's/.*://')
  status=000
  for _ in $(seq 1 30); do
    status=$(http_status "http://127.0.0.1:$port/healthz")
    [ "$status" = 200 ] && break
    sleep 1
  done
  [ "$status" = 200 ] || {
    pm logs "$NAME-app" 2>&1 | tail -n 30 >&2
    fail "GET /healthz through the published port: $status"
  }
  health "$NAME-app"
  [ "$(pm inspect --format '{{.State.Healthcheck.Status}}' "$NAME-app")" = healthy ] ||
    fail "the HEALTHCHECK status is not healthy"
  # shellcheck disable=SC2016 # expanded by the container's shell
  pm exec "$NAME-app" sh -c 'test "$(id -u)" != 0 && test -w /data' ||
    fail "the app runs as root or cannot write /data"
  pmq stop -t 30 "$NAME-app" >/dev/null
  [ "$(pm inspect --format '{{.State.ExitCode}}' "$NAME-app")" = 0 ] || {
    pm logs "$NAME-app" 2>&1 | tail -n 30 >&2
    fail "SIGTERM did not stop the app with exit code 0"
  }
}
run_sandbox() {
  # --sandbox: the emulator and the channel inside the container, both on its loopback.
  local url=""
  say "running the image with --sandbox"
  pmq run -d --name "$NAME-sandbox" "$IMAGE" --sandbox >/dev/null
  for _ in $(seq 1 30); do
    url=$(pm logs "$NAME-sandbox" 2>/dev/null | sed -n 's/^sandbox: //p' | head -n 1)
    [ -n "$url" ] && break
    sleep 1
  done
  [ -n "$url" ] || {
    pm logs "$NAME-sandbox" 2>&1 | tail -n 30 >&2
    fail "the sandbox printed no page address"
  }
  health "$NAME-sandbox"
  pm exec "$NAME-sandbox" python -c \
    "import sys, urllib.request; sys.exit(urllib.request.urlopen(sys.argv[1], timeout=5).status != 200)" \
    "$url" || fail "the sandbox page $url did not answer 200"
  pmq stop -t 30 "$NAME-sandbox" >/dev/null
}
timed "run" run_app
timed "sandbox" run_sandbox
STEP="done"
