"""``compaction``: what the JSON store's housekeeping costs with a full dedup window.

A store holding ``--store-ids`` finished msgids (default 1,000,000: three days of a busy account) is
compacted, closed and opened again. Peak memory is traced (tracemalloc) in one pass; CPU is timed in
another without tracing, which would slow it several times. A compaction runs under the store's write
lock, so its CPU is also how long finishing a message can wait while it runs.
"""

from __future__ import annotations

import gc
import shutil
import tempfile
import time
from collections.abc import Callable
from typing import Any

from bench.harness import Deadline, Options, peak_mb, rounded
from channel.wechatcom_kf.store.json_store import JsonFileStore

NAME = "compaction"
KF = "wkBENCH"
DEAD_VALUES = 3000  # value lines set and deleted: what makes a journal worth compacting
PAGE = 100_000  # ids recorded per accept_page


def _filled_store(directory: str, ids: int) -> JsonFileStore:
    store = JsonFileStore(directory)
    for start in range(0, ids, PAGE):
        done = [f"msg_{i:09d}" for i in range(start, min(ids, start + PAGE))]
        store.accept_page(KF, f"c{start}", [], done, "bench", 60)
    for i in range(DEAD_VALUES):
        store.set_value(f"plan:{i}", "p", 3600)
        store.set_value(f"plan:{i}", None, None)
    return store


def _measure(work: Callable[[], object], traced: bool) -> float:
    """Peak MB of ``work`` (traced) or its CPU seconds."""
    if traced:
        return peak_mb(work)
    gc.collect()
    started = time.process_time()
    work()
    return time.process_time() - started


def _one_pass(ids: int, traced: bool) -> tuple[float, float]:
    """(compaction, load): peak MB when ``traced``, else CPU seconds."""
    directory = tempfile.mkdtemp(prefix="kf-bench-compaction-")
    try:
        store = _filled_store(directory, ids)
        compaction = _measure(store.compact, traced)
        for i in range(DEAD_VALUES):  # dead lines again, so that the load compacts too
            store.set_value(f"plan:{i}", "p", 3600)
            store.set_value(f"plan:{i}", None, None)
        store.close()
        reopened: list[JsonFileStore] = []
        load = _measure(lambda: reopened.append(JsonFileStore(directory)), traced)
        reopened[0].close()
        return compaction, load
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def run(opts: Options, deadline: Deadline) -> dict[str, Any]:
    ids = opts.store_ids
    peak_compaction, peak_load = _one_pass(ids, traced=True)
    cpu_compaction, cpu_load = _one_pass(ids, traced=False) if deadline.remaining() > 0 else (None, None)
    return {
        "scenario": NAME,
        "done_ids": ids,
        "held_mb": rounded(ids * 8 / 1e6, 1),  # 8-byte digests once frozen
        "compaction_peak_mb": rounded(peak_compaction, 1),
        "compaction_cpu_s": rounded(cpu_compaction),
        "load_peak_mb": rounded(peak_load, 1),
        "load_cpu_s": rounded(cpu_load),
        "timed_out": deadline.remaining() <= 0,
    }
