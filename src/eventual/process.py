"""Process-wide settings for a process that holds nodes' state: a node, the simulator."""

from __future__ import annotations

import gc

__all__ = ["GC_THRESHOLDS", "tune_gc"]

# The cyclic garbage collector's thresholds. A node holds millions of long-lived objects
# (decoded records, a member's dots), and at Python's default (700, 10, 10) a big scan spent a
# fifth of its time in collections that walked them: SMEMBERS of 300,000 members went from 4
# to 7 µs per member, worse as the set grew (more so compiled, which allocates its temporaries
# differently). Collecting the young generation every 50,000 allocations instead of 700 keeps
# each collection short (a few ms at most) and rare; almost all garbage here is freed by
# reference counting anyway, not by the collector. The simulator, five nodes' state in one
# process, ran 7% faster with them.
GC_THRESHOLDS = (50_000, 20, 20)


def tune_gc() -> None:
    gc.set_threshold(*GC_THRESHOLDS)
