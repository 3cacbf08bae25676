# WeCom Customer Service (微信客服) runtime: Debian bookworm, Debian's Python 3.11, a non-root user.
# Build and run: docs/container.md. Quick try (Linux): docker build -t cow-kf . && docker run --rm --network host cow-kf --sandbox
#
# BASE_IMAGE: any Debian bookworm root file system. The default comes from a registry; without one,
# import a root made by debootstrap and pass --build-arg BASE_IMAGE=<that image> (scripts/container_check.sh
# does exactly that). With podman/buildah build with --format docker: the OCI format drops HEALTHCHECK.
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}

# Optional package index for pip (e.g. a mirror closer to the server); unset = PyPI.
ARG PIP_INDEX_URL
ARG DEBIAN_FRONTEND=noninteractive

# Debian's python3 is 3.11 on bookworm; python3-venv because Debian's Python refuses pip outside a
# virtual environment (PEP 668). No Debian ffmpeg: it cannot encode AMR-NB (WeChat voice); the one
# shipped in the imageio-ffmpeg wheel (requirements.txt) can, and is checked below.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates python3 python3-venv tzdata \
    && rm -rf /var/lib/apt/lists/*

ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1

# Dependencies first: this layer is rebuilt only when requirements.txt changes.
COPY requirements.txt /tmp/requirements.txt
RUN python3 -m venv "$VIRTUAL_ENV" \
    && pip install --no-cache-dir --disable-pip-version-check -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# The service user owns only the state directory and the CoW scratch directory (/app/tmp); the code
# stays root's and read-only to it.
RUN groupadd --gid 10001 cowkf \
    && useradd --uid 10001 --gid cowkf --home-dir /data --no-create-home --shell /usr/sbin/nologin cowkf \
    && install -d -o cowkf -g cowkf -m 0700 /data

WORKDIR /app
COPY . /app
RUN python -m compileall -q /app \
    && install -d -o cowkf -g cowkf -m 0700 /app/tmp

USER cowkf:cowkf

# Voice must work in the image: encode one second of silence to AMR-NB as the channel does.
RUN python -c "from channel.wechatcom_kf.outbound.audio import AMR_MAGIC, amr_ffmpeg, encode_amr; \
assert amr_ffmpeg(), 'no AMR-capable ffmpeg'; \
assert encode_amr(bytes(16000)).startswith(AMR_MAGIC), 'AMR encoding failed'; \
print('AMR-NB voice encoding works:', amr_ffmpeg())"

# State (cursor, pending messages, done journal, media): one volume. This environment variable wins
# over wechatcom_kf_cursor_dir in config.json; change it with -e to move the state.
ENV WECHATCOM_KF_CURSOR_DIR=/data
VOLUME ["/data"]

# The callback port (wechatcom_kf_port). The app listens on 0.0.0.0 unless wechatcom_kf_host says otherwise.
EXPOSE 9899

# SIGTERM: stop taking work, finish in-flight messages (shutdown_timeout_seconds), flush, exit 0.
# Give it time: docker stop -t 30 / compose stop_grace_period: 30s.
STOPSIGNAL SIGTERM

# GET /healthz on the configured callback port from inside the container (python, no curl needed).
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "/app/deploy/healthcheck.py"]

# Arguments go to app.py: docker run cow-kf --doctor, docker run cow-kf --sandbox, ...
ENTRYPOINT ["python", "app.py"]
CMD []
