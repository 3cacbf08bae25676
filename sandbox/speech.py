"""Voice in the sandbox: when no speech-to-text is configured, a local fake transcribes.

The fake is the OpenAI-compatible fake the tests use (``sandbox/fake_openai.py``) on loopback; the
speech provider pointed at it is handed to the Bridge, so a voice message sent from the chat page
goes the real way (download, conversion, upload, transcription) and the bot answers its text.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sandbox.fake_openai import FakeOpenAIServer

logger = logging.getLogger(__name__)

SANDBOX_TRANSCRIPTION = "（沙盒：模拟的语音识别结果）你好，我想咨询一下"


@dataclass
class SandboxSpeech:
    server: FakeOpenAIServer
    voice: Any  # the speech provider handed to the Bridge

    def stop(self) -> None:
        from bridge.bridge import VOICE_TO_TEXT, Bridge

        Bridge().unset_bot(self.voice, VOICE_TO_TEXT)
        self.server.stop()


def start_sandbox_speech(config: Mapping[str, Any]) -> SandboxSpeech | None:
    """A fake transcription for the sandbox, or None when the configuration has a real one."""
    from voice.factory import voice_to_text_type

    if voice_to_text_type(config.get):
        return None
    from bridge.bridge import VOICE_TO_TEXT, Bridge
    from models.openai_http import OpenAIHttpClient
    from voice.openai_voice import OpenAIVoice

    server = FakeOpenAIServer(transcription_text=SANDBOX_TRANSCRIPTION)
    voice = OpenAIVoice(OpenAIHttpClient("sandbox", server.start(), timeout=30.0))
    Bridge().set_bot(voice, VOICE_TO_TEXT)
    logger.info(
        "sandbox: voice messages are transcribed by a local fake; set model_provider (openai, "
        "siliconflow) with its key, or voice_to_text, for real speech recognition"
    )
    return SandboxSpeech(server, voice)
