"""Speech through OpenAI-compatible audio APIs.

Speech to text: https://platform.openai.com/docs/api-reference/audio/createTranscription
Text to speech: https://platform.openai.com/docs/api-reference/audio/createSpeech
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
import time
import uuid

from bridge.reply import Reply, ReplyType
from models.openai_http import OpenAIHttpClient, OpenAIRequestError, chinese_error_message
from voice.audio_convert import AudioConversionError, any_to_wav
from voice.voice import Voice

logger = logging.getLogger(__name__)

# Formats the transcription API accepts as they are; anything else (AMR, SILK...) is converted to WAV.
STT_FORMATS = frozenset({"flac", "m4a", "mp3", "mp4", "mpeg", "mpga", "oga", "ogg", "wav", "webm"})
MAX_UPLOAD_BYTES = 25 * 1024 * 1024  # the API's documented file limit
MAX_TTS_CHARS = 4096  # the API's documented input limit
TTS_FORMATS = frozenset({"mp3", "wav", "opus", "aac", "flac"})


class OpenAIVoice(Voice):
    """Transcribes voice files and synthesizes speech; files go to a private temp dir made on first use."""

    def __init__(
        self,
        client: OpenAIHttpClient,
        *,
        stt_model: str = "whisper-1",
        tts_model: str = "tts-1",
        tts_voice: str = "alloy",
        response_format: str = "mp3",
        keep_seconds: float = 3600.0,
    ) -> None:
        if response_format not in TTS_FORMATS:
            raise ValueError(f"response_format must be one of {sorted(TTS_FORMATS)}")
        self.stt_model = stt_model
        self.tts_model = tts_model
        self.tts_voice = tts_voice
        self.response_format = response_format
        self.keep_seconds = keep_seconds
        self.client = client
        self._dir: str | None = None
        self._dir_lock = threading.Lock()

    @property
    def out_dir(self) -> str:
        """The temp dir for synthesized audio (created on first use, not at import)."""
        with self._dir_lock:
            if self._dir is None:
                self._dir = tempfile.mkdtemp(prefix="cow-voice-")
            return self._dir

    def voiceToText(self, voice_file: str) -> Reply:  # noqa: N802 - CoW's method name
        """Transcribes a local audio file; TEXT with the words, or ERROR."""
        try:
            data, filename = self._upload_bytes(voice_file)
        except AudioConversionError as exc:
            logger.warning("[openai-voice] cannot read voice file: %s", exc)
            return Reply(ReplyType.ERROR, "抱歉，无法识别这段语音的格式。")
        if len(data) > MAX_UPLOAD_BYTES:
            return Reply(ReplyType.ERROR, "抱歉，这段语音太长了，无法识别。")
        try:
            resp = self.client.post(
                "audio/transcriptions",
                data={"model": self.stt_model, "response_format": "json"},
                files={"file": (filename, data, "application/octet-stream")},
            )
            text = resp.json().get("text")
        except OpenAIRequestError as err:
            logger.warning("[openai-voice] transcription failed: %s", err)
            return Reply(ReplyType.ERROR, chinese_error_message(err))
        except (ValueError, AttributeError):
            return Reply(ReplyType.ERROR, "抱歉，语音识别服务返回了无法识别的内容。")
        if not isinstance(text, str):
            return Reply(ReplyType.ERROR, "抱歉，语音识别服务返回了无法识别的内容。")
        logger.debug("[openai-voice] transcribed: %s", text)
        return Reply(ReplyType.TEXT, text.strip())

    def textToVoice(self, text: str) -> Reply:  # noqa: N802 - CoW's method name
        """Synthesizes speech; VOICE with a local file path (the caller may delete it), or ERROR."""
        text = (text or "").strip()
        if not text:
            return Reply(ReplyType.ERROR, "抱歉，没有可以朗读的内容。")
        body = {
            "model": self.tts_model,
            "input": text[:MAX_TTS_CHARS],
            "voice": self.tts_voice,
            "response_format": self.response_format,
        }
        try:
            resp = self.client.post("audio/speech", json=body)
        except OpenAIRequestError as err:
            logger.warning("[openai-voice] speech synthesis failed: %s", err)
            return Reply(ReplyType.ERROR, chinese_error_message(err))
        if not resp.content:
            return Reply(ReplyType.ERROR, "抱歉，语音合成服务没有返回音频。")
        self._purge_old_files()
        path = os.path.join(self.out_dir, f"tts-{uuid.uuid4().hex}.{self.response_format}")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(resp.content)
        return Reply(ReplyType.VOICE, path)

    def _upload_bytes(self, voice_file: str) -> tuple[bytes, str]:
        ext = os.path.splitext(voice_file)[1].lstrip(".").lower()
        if not os.path.isfile(voice_file):
            raise AudioConversionError("voice file not found")
        if ext in STT_FORMATS:
            with open(voice_file, "rb") as f:
                return f.read(MAX_UPLOAD_BYTES + 1), f"voice.{ext}"
        with tempfile.TemporaryDirectory(prefix="cow-stt-") as tmp:
            wav = os.path.join(tmp, "voice.wav")
            any_to_wav(voice_file, wav)
            with open(wav, "rb") as f:
                return f.read(MAX_UPLOAD_BYTES + 1), "voice.wav"

    def _purge_old_files(self) -> None:
        """Deletes synthesized files older than `keep_seconds`, so the temp dir stays bounded."""
        deadline = time.time() - self.keep_seconds
        try:
            entries = list(os.scandir(self.out_dir))
        except OSError:
            return
        for entry in entries[:10_000]:
            try:
                if entry.is_file() and entry.stat().st_mtime < deadline:
                    os.remove(entry.path)
            except OSError:
                continue
