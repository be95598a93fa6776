"""Anti-entropy traffic: bytes exchanged to repair a divergence, against the divergent data.

    python benchmarks/anti_entropy_bench.py [--keys 100000] [--divergent 0.01]
    python benchmarks/anti_entropy_bench.py --big-set 1000000 [--divergent 0.01]

Two replicas hold the same ``--keys`` objects (100-byte values, 64 partitions); one of them
has a newer version of a ``--divergent`` share of the keys. The two ``core.Node`` instances
run Merkle-tree anti-entropy on every partition, messages passed directly between them, until
no message is left; then every key must be identical on both. Every message is sized as a
msgpack frame of its fields (what the internode transport will send). Printed side by side:
no divergence, the chosen divergence, and a naive full exchange, each against the bytes of
the divergent objects themselves (issue 3's target: within 5x). There is no redis-server
figure: Redis replicas resynchronise by full or partial dump, not by Merkle trees.

``--big-set N``: instead, one set of N members, of which replica b lacks the last
``--divergent`` share (it missed those adds); printed against the bytes of the missing
members as stored (their member cells and ids). The target: within 5x (member-by-member
repair, ``AeKeySync``), where shipping the record whole would cost the whole set.
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
from eventual.core.records import stored_bytes
from eventual.core.store import RecordWrite
from eventual.crdt import ORSet
from eventual.crdt._keyed import member_id

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
        batch_a.write(key, RecordWrite(partition, encoded))
        if every and i % every == 0:
            data.update("b", (b"%08d" % -i) * (VALUE_BYTES // 8), data.context())
            newer = record.to_bytes()
            batch_b.write(key, RecordWrite(partition, newer))
            divergent_bytes += len(newer)
            changed.append(key)
        else:
            batch_b.write(key, RecordWrite(partition, encoded))
    stores["a"].apply(batch_a)
    stores["b"].apply(batch_b)
    nodes = [Node(dataclasses.replace(config, node=name), stores[name], 0) for name in ("a", "b")]
    return nodes[0], nodes[1], divergent_bytes, changed


def build_big_set(members: int, divergent: float, partitions: int) -> tuple[Node, Node, int]:
    """One set of ``members``; b lacks the last ``divergent`` share of the adds."""
    config = NodeConfig(node="a", members=(Member("a"), Member("b")), partitions=partitions, n=2)
    key = b"followers:big"
    partition = Node(config, MemoryStore(), 0).ring.partition_of(key)
    record = Record(Kind.SET)
    data = record.data
    assert isinstance(data, ORSet)
    kept = members - round(members * divergent)
    stores = {"a": MemoryStore(), "b": MemoryStore()}
    missing_bytes = 0
    for i in range(members):
        if i == kept:
            record.touch_all()
            stores["b"].apply(_whole(key, partition, record))
        element = b"user:%010d" % i
        data.add("a", element)
        if i >= kept:
            cell = data.member_cell(element)
            assert cell is not None
            missing_bytes += len(member_id(element)) + len(cell)
    record.touch_all()
    stores["a"].apply(_whole(key, partition, record))
    nodes = [Node(dataclasses.replace(config, node=name), stores[name], 0) for name in ("a", "b")]
    return nodes[0], nodes[1], missing_bytes


def _whole(key: bytes, partition: int, record: Record) -> Batch:
    batch = Batch()
    batch.write(
        key, RecordWrite(partition, record.head_bytes(), record.take_changed_members(), True)
    )
    return batch


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
    parser.add_argument("--big-set", type=int, default=0, help="one set of this many members")
    args = parser.parse_args()
    if args.big_set:
        big_set(args)
        return

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
            same = stored_bytes(a.store, key) == stored_bytes(b.store, key)
            assert same, "anti-entropy left a key divergent"
        assert all(a.trees[p].root() == b.trees[p].root() for p in a.trees)
        ratio = f"{total / divergent_bytes:.2f}x" if divergent_bytes else "-"
        name = f"{share:.0%} divergent ({len(changed):,})"
        print(
            f"{name:<22}{total:>12,}{messages:>10,}{divergent_bytes:>13,}{ratio:>8}{seconds:>9.2f}"
        )
        if share:
            detail = ", ".join(f"{kind} {size:,}" for kind, size in by_type.most_common())
            print(f"{'':<22}by message: {detail}")
            full_bytes = sum(
                len(stored_bytes(b.store, key) or b"")
                for p in sorted(b.trees)
                for key in b.store.keys(p)
            )
            print(
                f"{'naive full exchange':<22}{full_bytes:>12,}{'':>10}{divergent_bytes:>13,}"
                f"{full_bytes / divergent_bytes:>7.0f}x"
            )


def big_set(args: argparse.Namespace) -> None:
    started = time.perf_counter()
    a, b, missing_bytes = build_big_set(args.big_set, args.divergent, args.partitions)
    built = time.perf_counter() - started
    missing = round(args.big_set * args.divergent)
    print(f"one set of {args.big_set:,} members; b lacks {missing:,} ({built:.0f} s to build)\n")
    started = time.perf_counter()
    total, by_type, messages = exchange(a, b)
    seconds = time.perf_counter() - started
    assert a.records.digest(b"followers:big") == b.records.digest(b"followers:big")
    assert all(a.trees[p].root() == b.trees[p].root() for p in a.trees), "not converged"
    whole = len(stored_bytes(a.store, b"followers:big") or b"")
    print(f"{'AE bytes':>12}{'messages':>10}{'missing B':>12}{'ratio':>8}{'seconds':>9}")
    print(
        f"{total:>12,}{messages:>10,}{missing_bytes:>12,}"
        f"{total / missing_bytes:>7.2f}x{seconds:>9.2f}"
    )
    detail = ", ".join(f"{kind} {size:,}" for kind, size in by_type.most_common())
    print(f"by message: {detail}")
    print(f"the record whole: {whole:,} bytes ({whole / missing_bytes:.0f}x the missing members)")


if __name__ == "__main__":
    main()
