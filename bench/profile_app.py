"""Run ``app.py`` under cProfile in every thread: ``python -m bench.profile_app OUT.prof [app args]``.

``python -m cProfile app.py`` would profile only the main thread, which in the app merely waits for a
signal; the work happens in the HTTP, puller and dispatcher threads. So each new thread enables its own
profiler (through ``threading.setprofile``) and all of them are merged into OUT.prof when the app exits.
The timer is each thread's CPU clock, so time spent waiting (locks, sockets, the GIL) is not counted and
the merged figures add up to the process's CPU time.
"""

from __future__ import annotations

import cProfile
import pstats
import runpy
import sys
import threading
import time
from pathlib import Path
from typing import Any

_profiles: list[cProfile.Profile] = []
_lock = threading.Lock()


def _start_thread_profiler(*_args: Any) -> None:
    # Called once as the new thread's first profile event; enabling replaces this hook for the thread.
    profile = cProfile.Profile(time.thread_time)
    with _lock:
        _profiles.append(profile)
    profile.enable()


def _dump(out: Path) -> None:
    with _lock:
        profiles = list(_profiles)
    stats: pstats.Stats | None = None
    for profile in profiles:
        profile.disable()
        try:
            if stats is None:
                stats = pstats.Stats(profile)
            else:
                stats.add(profile)
        except (TypeError, ValueError):  # a thread that recorded nothing
            continue
    if stats is not None:
        stats.dump_stats(str(out))


def main() -> None:
    if len(sys.argv) < 2:
        raise SystemExit("usage: python -m bench.profile_app OUT.prof [app.py arguments]")
    out = Path(sys.argv[1])
    sys.argv = ["app.py", *sys.argv[2:]]
    threading.setprofile(_start_thread_profiler)
    _start_thread_profiler()
    try:
        runpy.run_path("app.py", run_name="__main__")
    finally:
        threading.setprofile(None)
        _dump(out)


if __name__ == "__main__":
    main()
