"""AMR-NB parsing: magic and duration (RFC 4867 storage format, 20 ms per frame)."""

from __future__ import annotations

AMR_MAGIC = b"#!AMR\n"
FRAME_SECONDS = 0.02
# Frame sizes in bytes including the 1-byte frame header, by frame type (mode) 0-15.
# 0-7 speech modes 4.75-12.2 kbit/s, 8 SID, 9-14 reserved (invalid), 15 NO_DATA.
_FRAME_BYTES = {0: 13, 1: 14, 2: 16, 3: 18, 4: 20, 5: 21, 6: 27, 7: 32, 8: 6, 15: 1}


class AmrError(ValueError):
    """Not a valid AMR-NB file."""


def is_amr(data: bytes) -> bool:
    return data.startswith(AMR_MAGIC)


def amr_duration(data: bytes) -> float:
    """Seconds of audio in an AMR-NB file; raises AmrError on a bad magic or frame header."""
    if not is_amr(data):
        raise AmrError("missing #!AMR magic")
    offset = len(AMR_MAGIC)
    frames = 0
    while offset < len(data):
        mode = (data[offset] >> 3) & 0x0F
        size = _FRAME_BYTES.get(mode)
        if size is None:
            raise AmrError(f"reserved frame type {mode} at byte {offset}")
        if offset + size > len(data):
            raise AmrError(f"truncated frame at byte {offset}")
        offset += size
        frames += 1
    return frames * FRAME_SECONDS
