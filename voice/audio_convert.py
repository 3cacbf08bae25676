"""Audio conversion through an ffmpeg that can encode AMR-NB (WeChat voice messages).

Debian's packaged ffmpeg has no AMR-NB encoder, so the system binary is used only when it lists
`libopencore_amrnb`; otherwise the binary shipped with imageio-ffmpeg (which has it).
Conversions call ffmpeg directly: pydub would need ffprobe, which imageio-ffmpeg does not ship.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import shutil
import subprocess
import tempfile
import threading
import uuid
import warnings

logger = logging.getLogger(__name__)

FFMPEG_TIMEOUT = 300.0  # seconds; a conversion never hangs a worker for longer
_PCM_RATE = 8000  # decode rate used to measure durations (2 bytes per sample, mono)
_CHUNK = 64 * 1024

_ENCODE_ARGS: dict[str, list[str]] = {
    "amr": ["-ar", "8000", "-ac", "1", "-c:a", "libopencore_amrnb", "-b:a", "12.2k", "-f", "amr"],
    "wav": ["-ar", "16000", "-ac", "1", "-c:a", "pcm_s16le", "-f", "wav"],
    "mp3": ["-ac", "1", "-c:a", "libmp3lame", "-b:a", "64k", "-f", "mp3"],
}

_lock = threading.Lock()
_ffmpeg: str | None = None


class AudioConversionError(Exception):
    """The input could not be decoded or the output not written."""


def ffmpeg_exe() -> str:
    """Path of an ffmpeg with an AMR-NB encoder (cached); also makes pydub use it."""
    global _ffmpeg
    with _lock:
        if _ffmpeg is None:
            _ffmpeg = _find_ffmpeg()
            _configure_pydub(_ffmpeg)
        return _ffmpeg


def _find_ffmpeg() -> str:
    system = shutil.which("ffmpeg")
    if system and _has_amrnb_encoder(system):
        return system
    try:
        import imageio_ffmpeg
    except ImportError as exc:
        raise AudioConversionError("no ffmpeg with an AMR-NB encoder: install imageio-ffmpeg") from exc
    exe: str = imageio_ffmpeg.get_ffmpeg_exe()
    logger.debug("using ffmpeg from imageio-ffmpeg: %s", exe)
    return exe


def _has_amrnb_encoder(exe: str) -> bool:
    try:
        out = subprocess.run(
            [exe, "-hide_banner", "-encoders"],
            capture_output=True,
            timeout=30,
            check=False,
            stdin=subprocess.DEVNULL,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    return b"libopencore_amrnb" in out


def _configure_pydub(exe: str) -> None:
    try:
        with warnings.catch_warnings():
            # pydub warns at import when PATH has no ffmpeg, and about audioop on newer Pythons.
            warnings.simplefilter("ignore")
            from pydub import AudioSegment
    except ImportError:
        return
    AudioSegment.converter = exe


def any_to_wav(src_path: str, dst_path: str) -> None:
    """Converts any audio to 16 kHz mono 16-bit PCM WAV (what speech recognition wants)."""
    _convert(src_path, dst_path, _ENCODE_ARGS["wav"])


def any_to_amr(src_path: str, dst_path: str) -> None:
    """Converts any audio to AMR-NB, 8 kHz mono (the format WeChat plays as a voice message)."""
    _convert(src_path, dst_path, _ENCODE_ARGS["amr"])


def any_to_mp3(src_path: str, dst_path: str) -> None:
    """Converts any audio to mono MP3."""
    _convert(src_path, dst_path, _ENCODE_ARGS["mp3"])


def audio_duration(path: str) -> float:
    """Duration in seconds, measured by decoding (container headers are often missing or wrong)."""
    _check_input(path)
    cmd = [ffmpeg_exe(), "-nostdin", "-hide_banner", "-loglevel", "error", "-i", path]
    cmd += ["-vn", "-ac", "1", "-ar", str(_PCM_RATE), "-f", "s16le", "-"]
    total = 0
    # stderr goes to a file: a full stderr pipe would block ffmpeg while we read stdout.
    with tempfile.TemporaryFile() as err, subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err) as proc:
        assert proc.stdout is not None
        timer = threading.Timer(FFMPEG_TIMEOUT, proc.kill)
        timer.start()
        try:
            while chunk := proc.stdout.read(_CHUNK):
                total += len(chunk)
            code = proc.wait()
        finally:
            timer.cancel()
        err.seek(0)
        stderr = err.read(64 * 1024)
    if code != 0 or total == 0:
        raise AudioConversionError(f"cannot decode audio {os.path.basename(path)}: {_last_line(stderr)}")
    return total / (2 * _PCM_RATE)


def split_audio(src_path: str, max_seconds: float, dst_dir: str, fmt: str | None = None) -> list[str]:
    """Cuts audio into consecutive parts of at most `max_seconds` each, written into `dst_dir`.

    The parts' format is `fmt` ("amr", "wav", "mp3"), by default the source's extension when it is
    one of those, else WAV. Returns the part paths in order (one part when the audio is short enough).
    """
    if max_seconds <= 0:
        raise ValueError("max_seconds must be positive")
    ext = (fmt or os.path.splitext(src_path)[1].lstrip(".")).lower()
    if ext not in _ENCODE_ARGS:
        ext = "wav"
    duration = audio_duration(src_path)
    count = max(1, math.ceil(duration / max_seconds - 1e-3))  # no part for a rounding crumb
    os.makedirs(dst_dir, exist_ok=True)
    tag = uuid.uuid4().hex[:12]  # several splits may share dst_dir
    parts: list[str] = []
    for index in range(count):
        dst = os.path.join(dst_dir, f"part-{tag}-{index + 1:02d}.{ext}")
        # -ss/-t after -i: sample-accurate cuts (the audio is decoded and re-encoded anyway).
        window = ["-ss", f"{index * max_seconds:.3f}", "-t", f"{max_seconds:.3f}"]
        _convert(src_path, dst, window + _ENCODE_ARGS[ext])
        parts.append(dst)
    return parts


def _convert(src_path: str, dst_path: str, out_args: list[str]) -> None:
    _check_input(src_path)
    cmd = [ffmpeg_exe(), "-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-i", src_path, "-vn"]
    cmd += [*out_args, dst_path]
    try:
        proc = subprocess.run(cmd, capture_output=True, timeout=FFMPEG_TIMEOUT, check=False)
    except subprocess.TimeoutExpired as exc:
        _remove(dst_path)
        raise AudioConversionError(f"ffmpeg timed out converting {os.path.basename(src_path)}") from exc
    if proc.returncode != 0 or not os.path.isfile(dst_path) or os.path.getsize(dst_path) == 0:
        _remove(dst_path)
        raise AudioConversionError(f"cannot convert {os.path.basename(src_path)}: {_last_line(proc.stderr)}")


def _check_input(path: str) -> None:
    if not os.path.isfile(path):
        raise AudioConversionError(f"audio file not found: {os.path.basename(path)}")
    if os.path.getsize(path) == 0:
        raise AudioConversionError(f"audio file is empty: {os.path.basename(path)}")


def _remove(path: str) -> None:
    with contextlib.suppress(OSError):
        os.remove(path)


def _last_line(stderr: bytes) -> str:
    lines = [ln for ln in stderr.decode("utf-8", "replace").splitlines() if ln.strip()]
    return lines[-1][:200] if lines else "ffmpeg failed"
