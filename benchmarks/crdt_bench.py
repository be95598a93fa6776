"""CRDT merge and encoding throughput, and encoded sizes.

    python benchmarks/crdt_bench.py [--seconds 1.0] [--repeats 5]

Three shapes named by issue 2: a PN-counter with 100 actors, an add-wins set of 10,000
elements, and a map of 1,000 nested counters. For each: full-state merges per second (two
replicas that diverged by 1% merged into a copy), delta merges per second (one mutation's
delta into a full replica: what a replica does per replicated write), encodes and decodes per
second, and the encoded size. Each figure is the median of ``--repeats`` timed runs.
There is no redis-server counterpart: Redis has no mergeable types to compare with.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from eventual.crdt import ORMap, ORSet, PNCounter
from eventual.lattice import Lattice
from eventual.progress import progress_bar


def rate(action: Callable[[], object], seconds: float, repeats: int) -> float:
    """Median operations per second over ``repeats`` runs of about ``seconds`` each."""
    rates = []
    for _ in range(repeats):
        count = 0
        start = time.perf_counter()
        deadline = start + seconds
        while True:
            action()
            count += 1
            now = time.perf_counter()
            if now >= deadline:
                break
        rates.append(count / (now - start))
    return statistics.median(rates)


def merge_rate(left: Lattice, right: Lattice, seconds: float, repeats: int) -> float:
    """Full-state merges per second. Merging into the same state twice is a no-op (merge is
    idempotent), so each merge gets a fresh copy, made outside the timed part."""
    rates = []
    for _ in range(repeats):
        timed = 0.0
        count = 0
        while timed < seconds:
            copies = [left.copy() for _ in range(8)]
            start = time.perf_counter()
            for copy in copies:
                copy.merge(right)
            timed += time.perf_counter() - start
            count += len(copies)
        rates.append(count / timed)
    return statistics.median(rates)


def counter_pair() -> tuple[Lattice, Lattice, Lattice]:
    left = PNCounter()
    for i in range(100):
        left.increment(f"node-{i:03d}", i + 1)
        left.decrement(f"node-{i:03d}", i // 2 + 1)
    right = left.copy()
    right.increment("node-000", 5)
    delta = right.increment("node-001", 1)
    return left, right, delta


def set_pair() -> tuple[Lattice, Lattice, Lattice]:
    left = ORSet()
    for i in range(10_000):
        left.add(f"node-{i % 5}", f"user:{i}")
    right = left.copy()
    for i in range(0, 10_000, 100):  # 1% divergence: 50 removes, 50 adds
        if i % 200:
            right.remove(f"user:{i}")
        else:
            right.add("node-9", f"new:{i}")
    delta = right.add("node-9", "one-more")
    return left, right, delta


def map_pair() -> tuple[Lattice, Lattice, Lattice]:
    left = ORMap()
    for i in range(1_000):
        left.update(f"node-{i % 5}", f"counter:{i}", PNCounter, lambda c: c.increment("n", 1))
    right = left.copy()
    for i in range(0, 1_000, 100):  # 1% divergence
        right.update("node-9", f"counter:{i}", PNCounter, lambda c: c.increment("node-9", 2))
    delta = right.update("node-9", "counter:7", PNCounter, lambda c: c.increment("node-9", 1))
    return left, right, delta


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="length of one timed run")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per figure (median)")
    args = parser.parse_args()

    header = (
        f"{'shape':<28}{'state merge/s':>14}{'delta merge/s':>14}"
        f"{'encode/s':>11}{'decode/s':>11}{'bytes':>9}{'delta B':>9}"
    )
    print(header)
    print("-" * len(header))
    shapes = [
        ("PNCounter, 100 actors", counter_pair),
        ("ORSet, 10,000 elements", set_pair),
        ("ORMap, 1,000 PNCounters", map_pair),
    ]
    for name, build in shapes:
        left, right, delta = build()
        data = left.to_bytes()
        kind = type(left)

        # Four figures, each a few seconds: a bar on a terminal says where it is.
        with progress_bar(4, name) as bar:
            state_merges = merge_rate(left, right, args.seconds, args.repeats)
            bar.update(1)
            delta_merges = rate(
                lambda left=left, delta=delta: left.merge(delta), args.seconds, args.repeats
            )
            bar.update(1)
            encodes = rate(left.to_bytes, args.seconds, args.repeats)
            bar.update(1)
            decodes = rate(
                lambda data=data, kind=kind: kind.from_bytes(data), args.seconds, args.repeats
            )
            bar.update(1)
        print(
            f"{name:<28}{state_merges:>14,.0f}{delta_merges:>14,.0f}"
            f"{encodes:>11,.0f}{decodes:>11,.0f}{len(data):>9,}{len(delta.to_bytes()):>9,}"
        )


if __name__ == "__main__":
    main()
