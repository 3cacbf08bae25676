"""Audio conversion for the browser page with a real ffmpeg (imageio-ffmpeg ships AMR-NB)."""

from __future__ import annotations

import logging
import subprocess
import tempfile
from pathlib import Path

logger = logging.getLogger(__name__)
FFMPEG_TIMEOUT = 60.0
MAX_VOICE_SECONDS = 60


class AudioError(RuntimeError):
    """ffmpeg is missing or could not convert the input."""


def _ffmpeg() -> str:
    try:
        import imageio_ffmpeg
    except ImportError as exc:  # pragma: no cover - imageio-ffmpeg is a runtime dependency
        raise AudioError("imageio-ffmpeg is not installed") from exc
    return str(imageio_ffmpeg.get_ffmpeg_exe())


def _convert(data: bytes, in_name: str, out_name: str, args: list[str]) -> bytes:
    """Run ffmpeg on temp files (some containers, e.g. MP4 from Safari, cannot be read from a pipe)."""
    with tempfile.TemporaryDirectory(prefix="emu-audio-") as tmp:
        src, dst = Path(tmp) / in_name, Path(tmp) / out_name
        src.write_bytes(data)
        cmd = [_ffmpeg(), "-hide_banner", "-loglevel", "error", "-y", "-i", str(src), *args, str(dst)]
        try:
            done = subprocess.run(cmd, capture_output=True, timeout=FFMPEG_TIMEOUT, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise AudioError(f"ffmpeg failed: {type(exc).__name__}") from exc
        if done.returncode != 0 or not dst.exists():
            logger.debug("ffmpeg stderr: %s", done.stderr[-500:].decode("utf-8", "replace"))
            raise AudioError("ffmpeg could not convert the audio")
        return dst.read_bytes()


def to_amr(data: bytes) -> bytes:
    """Any audio the browser recorded (webm/ogg/wav/mp4) → AMR-NB 8 kHz mono, cut at 60 s."""
    args = ["-vn", "-ac", "1", "-ar", "8000", "-c:a", "libopencore_amrnb", "-b:a", "12.2k"]
    return _convert(data, "input.bin", "output.amr", [*args, "-t", str(MAX_VOICE_SECONDS), "-f", "amr"])


def to_wav(data: bytes) -> bytes:
    """AMR (or any audio) → 16-bit PCM WAV that every browser plays."""
    return _convert(data, "input.amr", "output.wav", ["-vn", "-c:a", "pcm_s16le", "-f", "wav"])
