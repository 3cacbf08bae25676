"""Any audio ffmpeg can read → AMR-NB (8 kHz mono) parts of at most 60 s and 2 MB each.

WeCom voice messages must be AMR. Debian's packaged ffmpeg has no AMR-NB encoder, so the system ffmpeg
is used only when it lists ``libopencore_amrnb``; otherwise the static build shipped by imageio-ffmpeg.
ffmpeg is called directly (decode once to PCM, cut the PCM, encode each cut): pydub would need ffprobe,
which imageio-ffmpeg does not ship, and cutting raw PCM is exact to the sample.
"""

from __future__ import annotations

import functools
import logging
import shutil
import subprocess

from .media import MB, MediaProblem, MediaUpload

logger = logging.getLogger(__name__)

VOICE_MAX_BYTES = 2 * MB
VOICE_MAX_SECONDS = 60.0
VOICE_PART_SECONDS = 59.0  # a little under the limit: AMR frames are 20 ms and players round up
AMR_MAGIC = b"#!AMR\n"

_RATE = 8000
_BYTES_PER_SECOND = _RATE * 2  # s16le mono
_FFMPEG_TIMEOUT = 60.0
_ENCODER = "libopencore_amrnb"
_QUIET = ("-hide_banner", "-nostdin", "-loglevel", "error")


@functools.lru_cache(maxsize=1)
def amr_ffmpeg() -> str | None:
    """Path of an ffmpeg with an AMR-NB encoder, or None when there is none."""
    system = shutil.which("ffmpeg")
    if system:
        try:
            listing = subprocess.run(
                [system, "-hide_banner", "-encoders"], capture_output=True, timeout=15, check=False
            ).stdout
            if _ENCODER.encode() in listing:
                return system
        except (OSError, subprocess.SubprocessError):
            logger.warning("system ffmpeg could not list its encoders")
    try:
        import imageio_ffmpeg

        return str(imageio_ffmpeg.get_ffmpeg_exe())
    except Exception:  # ImportError or its own RuntimeError when the binary is missing
        logger.warning("no ffmpeg with an AMR-NB encoder (install imageio-ffmpeg)")
        return None


def _run(args: list[str], stdin: bytes | None, what: str) -> bytes:
    try:
        done = subprocess.run(args, input=stdin, capture_output=True, timeout=_FFMPEG_TIMEOUT, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        raise MediaProblem(f"ffmpeg {what} failed: {type(exc).__name__}") from None
    if done.returncode != 0:
        tail = done.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or [""]
        raise MediaProblem(f"ffmpeg {what} exited {done.returncode}: {tail[0][:200]}")
    return done.stdout


def decode_pcm(path: str, max_seconds: float) -> bytes:
    """The first ``max_seconds`` of ``path`` as 8 kHz mono s16le PCM."""
    ffmpeg = amr_ffmpeg()
    if ffmpeg is None:
        raise MediaProblem("no ffmpeg available")
    pcm_out = f"-vn -ac 1 -ar {_RATE} -acodec pcm_s16le -f s16le pipe:1".split()
    args = [ffmpeg, *_QUIET, "-i", path, "-t", f"{max_seconds:.3f}", *pcm_out]
    return _run(args, None, "decode")


def to_wav(path: str, max_seconds: float = VOICE_MAX_SECONDS) -> bytes:
    """``path`` as a 16 kHz mono 16-bit WAV, what speech-to-text services accept (AMR they do not)."""
    ffmpeg = amr_ffmpeg()
    if ffmpeg is None:
        raise MediaProblem("no ffmpeg available")
    wav_out = ["-vn", "-ac", "1", "-ar", "16000", "-acodec", "pcm_s16le", "-f", "wav", "pipe:1"]
    return _run([ffmpeg, *_QUIET, "-i", path, "-t", f"{max_seconds:.3f}", *wav_out], None, "decode")


def encode_amr(pcm: bytes) -> bytes:
    """8 kHz mono s16le PCM → an AMR-NB file (12.2 kbit/s)."""
    ffmpeg = amr_ffmpeg()
    if ffmpeg is None:
        raise MediaProblem("no ffmpeg available")
    pcm_in = f"-f s16le -ar {_RATE} -ac 1 -i pipe:0".split()
    args = [ffmpeg, *_QUIET, *pcm_in, "-c:a", _ENCODER, "-b:a", "12.2k", "-f", "amr", "pipe:1"]
    return _run(args, pcm, "encode")


def _cut_points(total_bytes: int, part_bytes: int, max_bytes: int) -> list[tuple[int, int]]:
    """[start, end) byte ranges of PCM; a tail that still fits is merged into the part before it."""
    ranges = []
    start = 0
    while start < total_bytes:
        end = min(total_bytes, start + part_bytes)
        if total_bytes - start <= max_bytes:
            end = total_bytes
        ranges.append((start, end))
        start = end
    return ranges


def voice_parts(
    path: str,
    max_parts: int,
    *,
    part_seconds: float = VOICE_PART_SECONDS,
    max_seconds: float = VOICE_MAX_SECONDS,
    max_bytes: int = VOICE_MAX_BYTES,
) -> tuple[list[MediaUpload], bool]:
    """Up to ``max_parts`` AMR uploads of ``path``, and whether audio was left over.

    Only ``max_parts`` parts' worth of audio (plus a second, to detect leftovers) is ever decoded.
    """
    pcm = decode_pcm(path, (max_parts - 1) * part_seconds + max_seconds + 1.0)
    pcm = pcm[: len(pcm) - len(pcm) % 2]
    if not pcm:
        raise MediaProblem("no audio decoded")
    part_bytes = int(part_seconds * _RATE) * 2
    limit_bytes = int(max_seconds * _RATE) * 2
    ranges = _cut_points(len(pcm), part_bytes, limit_bytes)
    leftover = len(ranges) > max_parts
    uploads = []
    for number, (start, end) in enumerate(ranges[:max_parts], start=1):
        amr = encode_amr(pcm[start:end])
        if not amr.startswith(AMR_MAGIC) or len(amr) > max_bytes:
            raise MediaProblem(f"AMR part {number} invalid or {len(amr)} bytes > {max_bytes}")
        uploads.append(MediaUpload("voice", f"voice_{number}.amr", amr, "audio/amr"))
    logger.debug(
        "voice: %.1f s decoded -> %d AMR part(s), leftover=%s",
        len(pcm) / _BYTES_PER_SECOND,
        len(uploads),
        leftover,
    )
    return uploads, leftover
