"""One module per scenario; each has ``NAME`` and ``run(opts, deadline) -> dict`` (one JSON line)."""

from __future__ import annotations

from . import ack, burst, compaction, cowhost, crypto, firstpart, memory, restart, soak, throughput

SCENARIOS = {
    module.NAME: module
    for module in (ack, burst, throughput, crypto, memory, restart, cowhost, soak, firstpart, compaction)
}

__all__ = ["SCENARIOS"]
