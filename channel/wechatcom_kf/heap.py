"""Give freed heap memory back to the system (glibc's ``malloc_trim``), from the maintenance thread.

Python objects larger than 512 bytes (JSON bodies, pages of sync_msg items, the dicts of a page) come
from glibc's malloc, and with dozens of worker threads glibc keeps one arena per thread (up to 8 per
core). A burst leaves those arenas holding freed memory that glibc keeps for reuse: RSS stays at the
burst's high-water mark long after the objects are gone (docs/performance.md measures it).
``malloc_trim(0)`` returns the free pages of every arena. Elsewhere than glibc this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys
from collections.abc import Callable

logger = logging.getLogger(__name__)

TRIM_SECONDS = 60.0


def _load_malloc_trim() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim  # absent from musl
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


_malloc_trim = _load_malloc_trim()


def release_free_memory() -> bool:
    """Return freed heap pages to the system; False where that is not possible."""
    if _malloc_trim is None:
        return False
    _malloc_trim(0)
    return True
