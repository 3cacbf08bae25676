import subprocess
import wave

import pytest

from voice import audio_convert
from voice.audio_convert import (
    AudioConversionError,
    any_to_amr,
    any_to_mp3,
    any_to_wav,
    audio_duration,
    ffmpeg_exe,
    split_audio,
)


def make_sine(path, seconds: float, rate: int = 44100, channels: int = 2) -> str:
    """A real audio file made by ffmpeg's sine source (format from the extension)."""
    cmd = [ffmpeg_exe(), "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi"]
    cmd += ["-i", f"sine=frequency=440:duration={seconds}", "-ar", str(rate), "-ac", str(channels), str(path)]
    subprocess.run(cmd, check=True, timeout=60)
    return str(path)


def decode_to_wav(src, dst) -> wave.Wave_read:
    """Decodes without resampling, so the wav shows the source's own rate and channels."""
    subprocess.run(
        [ffmpeg_exe(), "-nostdin", "-loglevel", "error", "-y", "-i", str(src), "-c:a", "pcm_s16le", str(dst)],
        check=True,
        timeout=60,
    )
    return wave.open(str(dst), "rb")


@pytest.fixture(scope="module")
def long_sine(tmp_path_factory):
    return make_sine(tmp_path_factory.mktemp("audio") / "long.wav", 150, rate=16000, channels=1)


def test_chosen_ffmpeg_encodes_amr_and_pydub_uses_it():
    exe = ffmpeg_exe()
    out = subprocess.run([exe, "-hide_banner", "-encoders"], capture_output=True, timeout=30).stdout
    assert b"libopencore_amrnb" in out
    from pydub import AudioSegment

    assert AudioSegment.converter == exe


def test_any_to_amr_gives_8khz_mono_amr(tmp_path):
    src = make_sine(tmp_path / "in.mp3", 3)
    dst = tmp_path / "out.amr"
    any_to_amr(src, str(dst))
    assert dst.read_bytes().startswith(b"#!AMR\n")
    with decode_to_wav(dst, tmp_path / "back.wav") as w:
        assert w.getframerate() == 8000
        assert w.getnchannels() == 1
        assert abs(w.getnframes() / 8000 - 3.0) < 0.1
    assert abs(audio_duration(str(dst)) - 3.0) < 0.1


def test_any_to_wav_gives_16khz_mono_pcm(tmp_path):
    src = make_sine(tmp_path / "in.amr", 2, rate=8000, channels=1)
    dst = tmp_path / "out.wav"
    any_to_wav(src, str(dst))
    with wave.open(str(dst), "rb") as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (16000, 1, 2)
        assert abs(w.getnframes() / 16000 - 2.0) < 0.1


def test_any_to_mp3_is_decodable(tmp_path):
    src = make_sine(tmp_path / "in.wav", 1)
    dst = tmp_path / "out.mp3"
    any_to_mp3(src, str(dst))
    assert abs(audio_duration(str(dst)) - 1.0) < 0.1


def test_split_150s_into_three_parts_of_at_most_60s(long_sine, tmp_path):
    parts = split_audio(long_sine, 60, str(tmp_path / "parts"), fmt="amr")
    assert len(parts) == 3
    durations = [audio_duration(p) for p in parts]
    assert all(d <= 60.5 for d in durations), durations
    assert abs(sum(durations) - 150.0) < 0.5, durations
    for part in parts:
        with open(part, "rb") as f:
            assert f.read(6) == b"#!AMR\n"


def test_split_keeps_short_audio_whole_in_source_format(tmp_path):
    src = make_sine(tmp_path / "short.wav", 5, rate=16000, channels=1)
    parts = split_audio(src, 60, str(tmp_path / "parts"))
    assert len(parts) == 1
    assert parts[0].endswith(".wav")
    assert abs(audio_duration(parts[0]) - 5.0) < 0.1


def test_split_rejects_non_positive_length(long_sine, tmp_path):
    with pytest.raises(ValueError):
        split_audio(long_sine, 0, str(tmp_path))


def test_undecodable_input_raises_and_leaves_no_output(tmp_path):
    bad = tmp_path / "bad.amr"
    bad.write_bytes(b"this is not audio at all" * 50)
    dst = tmp_path / "out.amr"
    with pytest.raises(AudioConversionError):
        any_to_amr(str(bad), str(dst))
    assert not dst.exists()
    with pytest.raises(AudioConversionError):
        audio_duration(str(bad))


def test_missing_or_empty_input_raises(tmp_path):
    with pytest.raises(AudioConversionError):
        any_to_wav(str(tmp_path / "nope.mp3"), str(tmp_path / "o.wav"))
    empty = tmp_path / "empty.mp3"
    empty.write_bytes(b"")
    with pytest.raises(AudioConversionError):
        any_to_wav(str(empty), str(tmp_path / "o.wav"))


def test_system_ffmpeg_without_amr_is_not_chosen(tmp_path, monkeypatch):
    # A stand-in "ffmpeg" on PATH whose encoder list lacks AMR-NB (like Debian's build).
    fake = tmp_path / "ffmpeg"
    fake.write_text("#!/bin/sh\necho ' A....D pcm_s16le  PCM'\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert audio_convert._find_ffmpeg() != str(fake)
    fake.write_text("#!/bin/sh\necho ' A....D libopencore_amrnb  AMR'\n")
    assert audio_convert._find_ffmpeg() == str(fake)
