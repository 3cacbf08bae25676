"""CoW's Voice base: speech to text and text to speech, each answering with a Reply."""

from __future__ import annotations

from bridge.reply import Reply


class Voice:
    """`voiceToText` -> TEXT (or ERROR); `textToVoice` -> VOICE with a local file path (or ERROR)."""

    def voiceToText(self, voice_file: str) -> Reply:  # noqa: N802 - CoW's method name
        raise NotImplementedError

    def textToVoice(self, text: str) -> Reply:  # noqa: N802 - CoW's method name
        raise NotImplementedError
