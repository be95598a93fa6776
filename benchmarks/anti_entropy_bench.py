"""Anti-entropy traffic: bytes exchanged to repair a divergence, against the divergent data.

    python benchmarks/anti_entropy_bench.py [--keys 100000] [--divergent 0.01]

Two replicas hold the same ``--keys`` objects (100-byte values, 64 partitions); one of them
has a newer version of a ``--divergent`` share of the keys. The two ``core.Node`` instances
run Merkle-tree anti-entropy on every partition, messages passed directly between them, until
no message is left; then every key must be identical on both. Every message is sized as a
msgpack frame of its fields (what the internode transport will send). Printed side by side:
no divergence, the chosen divergence, and a naive full exchange, each against the bytes of
the divergent objects themselves (issue 3's target: within 5x). There is no redis-server
figure: Redis replicas resynchronise by full or partial dump, not by Merkle trees.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from collections import Counter

import msgpack

from eventual.clocks import DVVSet
from eventual.core import Batch, Kind, Member, MemoryStore, Node, NodeConfig, Record
from eventual.core.messages import AeRoot, Message

VALUE_BYTES = 100


def wire_bytes(message: Message) -> int:
    fields = [getattr(message, f.name) for f in dataclasses.fields(message)]
    return len(msgpack.packb([type(message).__name__, *fields], use_bin_type=True)) + 4


def build(keys: int, divergent: float, partitions: int) -> tuple[Node, Node, int, list[bytes]]:
    members = (Member("a"), Member("b"))
    stores = {name: MemoryStore() for name in ("a", "b")}
    config = NodeConfig(node="a", members=members, partitions=partitions, n=2)
    ring = Node(config, MemoryStore(), 0).ring
    every = round(1 / divergent) if divergent else 0
    batch_a, batch_b = Batch(), Batch()
    changed: list[bytes] = []
    divergent_bytes = 0
    for i in range(keys):
        key = f"object:{i:08d}".encode()
        record = Record(Kind.OBJECT)
        data = record.data
        assert isinstance(data, DVVSet)
        data.update("a", (b"%08d" % i) * (VALUE_BYTES // 8))
        encoded = record.to_bytes()
        partition = ring.partition_of(key)
        batch_a.records[key] = (partition, encoded)
        if every and i % every == 0:
            data.update("b", (b"%08d" % -i) * (VALUE_BYTES // 8), data.context())
            newer = record.to_bytes()
            batch_b.records[key] = (partition, newer)
            divergent_bytes += len(newer)
            changed.append(key)
        else:
            batch_b.records[key] = (partition, encoded)
    stores["a"].apply(batch_a)
    stores["b"].apply(batch_b)
    nodes = [Node(dataclasses.replace(config, node=name), stores[name], 0) for name in ("a", "b")]
    return nodes[0], nodes[1], divergent_bytes, changed


def exchange(a: Node, b: Node) -> tuple[int, Counter[str], int]:
    """Run one anti-entropy exchange per partition, a initiating; return bytes, per type."""
    nodes = {"a": a, "b": b}
    by_type: Counter[str] = Counter()
    total = messages = 0
    queue: list[tuple[str, str, Message]] = [
        ("a", "b", AeRoot(p, tuple(a.trees[p].groups()))) for p in sorted(a.trees)
    ]
    while queue:
        source, target, message = queue.pop(0)
        size = wire_bytes(message)
        total += size
        messages += 1
        by_type[type(message).__name__] += size
        effects = nodes[target].receive(source, message, 0)
        queue += [(target, send.to, send.message) for send in effects.sends]
    return total, by_type, messages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keys", type=int, default=100_000)
    parser.add_argument("--divergent", type=float, default=0.01)
    parser.add_argument("--partitions", type=int, default=64)
    args = parser.parse_args()

    print(f"{args.keys:,} objects of {VALUE_BYTES} bytes, {args.partitions} partitions\n")
    header = (
        f"{'case':<22}{'AE bytes':>12}{'messages':>10}{'divergent B':>13}{'ratio':>8}{'seconds':>9}"
    )
    print(header)
    print("-" * len(header))
    full_bytes = 0
    for share in (0.0, args.divergent):
        a, b, divergent_bytes, changed = build(args.keys, share, args.partitions)
        started = time.perf_counter()
        total, by_type, messages = exchange(a, b)
        seconds = time.perf_counter() - started
        for key in changed:
            assert a.store.get(key) == b.store.get(key), "anti-entropy left a key divergent"
        assert all(a.trees[p].root() == b.trees[p].root() for p in a.trees)
        ratio = f"{total / divergent_bytes:.2f}x" if divergent_bytes else "-"
        name = f"{share:.0%} divergent ({len(changed):,})"
        print(
            f"{name:<22}{total:>12,}{messages:>10,}{divergent_bytes:>13,}{ratio:>8}{seconds:>9.2f}"
        )
        if share:
            detail = ", ".join(f"{kind} {size:,}" for kind, size in by_type.most_common())
            print(f"{'':<22}by message: {detail}")
            full_bytes = sum(len(data) for p in sorted(b.trees) for _, data in b.store.scan(p))
            print(
                f"{'naive full exchange':<22}{full_bytes:>12,}{'':>10}{divergent_bytes:>13,}"
                f"{full_bytes / divergent_bytes:>7.0f}x"
            )


if __name__ == "__main__":
    main()
