"""Checkers: they judge a simulated run from outside the code under test, from what clients
were told and what the stores hold (DESIGN.md §1 promises).

- convergence: after the heal phase every primary replica of every key holds identical
  bytes (or, for a deleted key, nothing or a tombstone everywhere: reaping is per replica);
- no acknowledged write lost:
  - counters and map counters: the final value is the sum of acknowledged updates plus a
    subset of the unacknowledged ones;
  - sets: every acknowledged add is present, unless a remove of that element was issued
    after the add was;
  - objects: every acknowledged write is a sibling, or a later write's causal context covers
    its dot;
  - bounded counters: the final value is what acknowledged (and some unacknowledged)
    increments and decrements make it; and, checked on every store write during the run,
    never below zero at any replica;
- LWW strings: acknowledged writes overwritten by a concurrent write are counted, not hidden.
- strings and hash fields that count: the value is the winning SET's number plus increments;
  once every SET was acknowledged, each acknowledged increment issued after the last of them
  (which no SET can have seen: a write applies before it is acknowledged) is among them, and
  the rest are a subset of the others.
- sorted sets: each counting member's score is checked as a string that counts; every
  acknowledged ZADD of a member that is also removed is there unless a ZREM of it was issued
  after (or got no answer); every member an acknowledged ZADD put in a popped set is there
  or was taken by a pop (one that answered with it, or one that did not answer); and every
  ranked read that answered gave members in rank order, and a rank inside the set.
- lists: every value an acknowledged push added is there, unless a pop took it (one that
  answered with it, or one that did not answer) or an LSET replaced it (one issued after
  the push, or one that did not answer); every read by rank that answered gave positions in
  order.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from eventual.clocks import VersionVector
from eventual.core import Record
from eventual.core.records import load_record
from eventual.crdt import BoundedCounter, LWWRegister
from eventual.crdt.ranked import By

if TYPE_CHECKING:
    from eventual.sim.simulator import OpLog, Simulation

__all__ = ["check_run"]

SUBSET_SUMS_MAX = 100_000  # distinct partial sums tracked; far above what a run produces


def violation(sim: Simulation, checker: str, key: bytes, detail: str) -> None:
    sim.violations.append(
        {
            "seed": sim.config.seed,
            "checker": checker,
            "key": key.decode(errors="replace"),
            "detail": detail,
            "trace": list(sim.trace.get(key, [])) + sim.fault_trace[-12:],
        }
    )


def _subset_sums(amounts: list[int]) -> set[int]:
    sums = {0}
    for amount in amounts:
        sums |= {s + amount for s in sums}
        if len(sums) > SUBSET_SUMS_MAX:
            break
    return sums


def merged(datas: Iterable[bytes | None]) -> Record | None:
    """The merge of encoded records (None where a store had nothing)."""
    result: Record | None = None
    for data in datas:
        if data is None:
            continue
        record = Record.from_bytes(data)
        if result is None:
            result = record
        else:
            result.merge(record)
    return result


def _final(sim: Simulation, key: bytes) -> tuple[Record | None, bool]:
    """The merged record of the key's primaries, and whether they hold the same state (by
    digest: equal states have equal digests, and it spares encoding big collections)."""
    partition = sim.ring.partition_of(key)
    primaries = sim.ring.preference_list(partition, sim.config.n)
    records = [load_record(sim.stores[node], key) for node in primaries]
    digests = [None if r is None else r.digest() for r in records]
    same = all(d == digests[0] for d in digests)
    result: Record | None = None
    for record in records:
        if record is None:
            continue
        if result is None:
            result = record.copy()
        else:
            result.merge(record)
    if not same:
        # A deleted key reaped at some replicas and not yet at others is converged too.
        same = all(r is None or not r.has_data() for r in records)
    return result, same


def check_run(sim: Simulation) -> int:
    """Append violations to ``sim.violations``; return the number of LWW losses."""
    by_key: dict[bytes, list[OpLog]] = {}
    for op in sim.ops.values():
        if op.key:
            by_key.setdefault(op.key, []).append(op)
    lww_losses = 0
    for key in sorted(by_key):
        ops = by_key[key]
        record, same = _final(sim, key)
        if not same:
            partition = sim.ring.partition_of(key)
            holders = {
                node: (repr(load_record(sim.stores[node], key)))
                for node in sim.ring.preference_list(partition, sim.config.n)
            }
            violation(sim, "convergence", key, f"replicas differ after healing: {holders}")
        prefix = key.split(b":")[0]
        now = sim.now
        value: Any = record.value() if record is not None and record.present(now) else None
        if prefix == b"ctr":
            _check_sum(sim, key, ops, value or 0, "counter")
        elif prefix == b"set":
            _check_set(sim, key, ops, value or set())
        elif prefix in (b"bigset", b"bighash"):
            _check_members(sim, key, ops, value or {})
        elif prefix == b"obj":
            _check_objects(sim, key, ops, record)
        elif prefix == b"map":
            fields = value or {}
            for field_name in sorted({op.detail["field"] for op in ops if "field" in op.detail}):
                field_ops = [op for op in ops if op.detail.get("field") == field_name]
                _check_sum(
                    sim, key, field_ops, fields.get(field_name, 0), f"map field {field_name!r}"
                )
        elif prefix == b"cstr":
            register = None if record is None else record.data
            _check_counting(sim, key, ops, register, value, what="string")
        elif prefix == b"hcnt":
            hash_data = record.data if record is not None and record.present(now) else None
            for field_name in sorted({op.detail["field"] for op in ops if "field" in op.detail}):
                field_ops = [op for op in ops if op.detail.get("field") == field_name]
                nested = None if hash_data is None else hash_data.get(field_name)  # type: ignore[attr-defined]
                field_value = (value or {}).get(field_name)
                _check_counting(
                    sim, key, field_ops, nested, field_value, what=f"field {field_name!r}"
                )
        elif prefix == b"list":
            _check_list(sim, key, ops, record if value is not None else None)
        elif prefix in (b"zset", b"zpop"):
            _check_sorted_set(sim, key, ops, record if value is not None else None)
        elif prefix == b"bc":
            _check_bounded(sim, key, ops, record)
        elif prefix == b"str":
            lww_losses += _count_lww_losses(ops, value)
    return lww_losses


def _check_sum(sim: Simulation, key: bytes, ops: list[OpLog], final: int, what: str) -> None:
    acked = sum(op.detail["amount"] for op in ops if op.acked and "amount" in op.detail)
    unacked = [op.detail["amount"] for op in ops if not op.acked and "amount" in op.detail]
    if final - acked not in _subset_sums(unacked):
        violation(
            sim,
            "lost-write",
            key,
            (
                f"{what} is {final}; acknowledged updates sum to {acked} and no subset of the "
                f"unacknowledged {unacked} makes up the difference"
            ),
        )


def _check_set(sim: Simulation, key: bytes, ops: list[OpLog], final: set[Any]) -> None:
    removes = [op for op in ops if op.kind == "set_remove"]
    for op in ops:
        if op.kind != "set_add" or not op.acked:
            continue
        element = op.detail["element"]
        if element in final:
            continue
        if any(r.detail["element"] == element and r.issued_ms >= op.issued_ms for r in removes):
            continue
        violation(sim, "lost-write", key, f"acknowledged add of {element!r} (op{op.id}) is missing")


def _check_members(sim: Simulation, key: bytes, ops: list[OpLog], final: Any) -> None:
    """A big set or hash: every member an acknowledged write added is there (with the value
    it wrote, for a hash) unless a removal of it was issued after that write."""
    removed: dict[bytes, list[int]] = {}
    for op in ops:
        if op.kind in ("bigset_remove", "bighash_del"):
            for element in op.detail["elements"]:
                removed.setdefault(element, []).append(op.issued_ms)
    for op in ops:
        if op.kind not in ("bigset_add", "bighash_set") or not op.acked:
            continue
        for element in op.detail["elements"]:
            if any(at >= op.issued_ms for at in removed.get(element, ())):
                continue
            if element not in final:
                detail = f"acknowledged add of {element!r} (op{op.id}) is missing"
                violation(sim, "lost-write", key, detail)
                return
            if isinstance(final, dict) and final[element] != f"v{op.id}".encode():
                detail = f"field {element!r} holds {final[element]!r}, op{op.id} wrote it"
                violation(sim, "lost-write", key, detail)
                return


def _check_objects(sim: Simulation, key: bytes, ops: list[OpLog], record: Record | None) -> None:
    siblings = set(record.value()) if record is not None else set()
    contexts = [op.detail["context"] for op in ops if op.detail.get("context") is not None]
    # A delete without a context covers what its coordinator had seen: its reply says what.
    contexts += [
        VersionVector.from_bytes(op.result.context)
        for op in ops
        if op.kind == "obj_delete"
        and op.acked
        and op.result is not None
        and op.result.context
        and op.detail.get("context") is None
    ]
    for op in ops:
        if op.kind not in ("obj_rmw", "obj_blind") or not op.acked or op.result is None:
            continue
        value = f"v{op.id}".encode()
        if value in siblings:
            continue
        dot = op.result.dot
        if dot is not None and any(context[dot[0]] >= dot[1] for context in contexts):
            continue  # overwritten by a write that had read it
        violation(
            sim,
            "lost-write",
            key,
            (
                f"acknowledged write {value!r} (op{op.id}, dot {dot}) is neither a sibling nor "
                f"covered by a later write's context; siblings now {sorted(siblings)}"
            ),
        )


def _check_bounded(sim: Simulation, key: bytes, ops: list[OpLog], record: Record | None) -> None:
    final = (
        record.data.value() if record is not None and isinstance(record.data, BoundedCounter) else 0
    )
    if final < 0:
        violation(sim, "bounded-counter", key, f"final value {final} is below zero")
    signed = []
    for op in ops:
        if op.kind == "bc_incr":
            signed.append((op, op.detail["amount"]))
        elif op.kind == "bc_decr":
            signed.append((op, -op.detail["amount"]))
    acked = sum(amount for op, amount in signed if op.acked)
    unacked = [amount for op, amount in signed if not op.acked]
    if final - acked not in _subset_sums(unacked):
        violation(
            sim,
            "lost-write",
            key,
            (
                f"bounded counter is {final}; acknowledged updates make {acked} and no subset of "
                f"the unacknowledged {unacked} explains the difference"
            ),
        )


def _check_counting(
    sim: Simulation, key: bytes, ops: list[OpLog], register: Any, final: Any, *, what: str
) -> None:
    sets = [op for op in ops if "set" in op.detail]
    increments = [op for op in ops if "amount" in op.detail]
    write = None if not isinstance(register, LWWRegister) else register._write
    base = 0
    if write is not None and write[2] is not None and final is not None:
        base = int(write[2])
        if base not in {op.detail["set"] for op in sets}:
            violation(sim, "counting", key, f"{what}: the winning write {base} was never made")
            return
    # A SET applies at its coordinator before it is acknowledged, and one forwarded to a
    # replica may apply well after it was issued; one not acknowledged (no answer, a
    # timeout) may still apply at any time.
    unanswered = any(not op.acked for op in sets)
    last_set = max((op.acked_ms or 0 for op in sets), default=-1)
    must = [op for op in increments if op.acked and not unanswered and op.issued_ms > last_set]
    rest = [op.detail["amount"] for op in increments if op not in must]
    counted = (0 if final is None else int(final)) - base - sum(op.detail["amount"] for op in must)
    if counted not in _subset_sums(rest):
        violation(
            sim,
            "lost-write",
            key,
            (
                f"{what} is {final} over a SET of {base}; the increments made after the last "
                f"SET sum to {sum(op.detail['amount'] for op in must)} and no subset of the "
                f"others {rest} makes up the difference"
            ),
        )


def _check_sorted_set(sim: Simulation, key: bytes, ops: list[OpLog], record: Any) -> None:
    zset = None if record is None else record.data
    scores: dict[bytes, float] = {} if zset is None else zset.value()
    for member in sorted({op.detail["member"] for op in ops if "member" in op.detail}):
        member_ops = [op for op in ops if op.detail.get("member") == member]
        if member.startswith(b"c"):
            register = None if zset is None else zset.get(member)
            _check_counting(
                sim, key, member_ops, register, scores.get(member), what=f"member {member!r}"
            )
            continue
        removes = [op for op in ops if op.kind == "zset_rem" and op.detail["removed"] == member]
        pops = [op for op in ops if op.kind == "zpop_pop"]
        for op in member_ops:
            if not op.acked or member in scores:
                continue
            # A ZREM issued after the ZADD, or one that got no answer (forwarded, it may
            # apply at any time, so after the ZADD too), may have removed it.
            if any(not rem.acked or rem.issued_ms >= op.issued_ms for rem in removes):
                continue
            # A pop that got no answer may apply at any time (one forwarded to a replica,
            # after the ZADD): it may have taken the member.
            taken = any(
                not pop.acked
                or (pop.result is not None and [member, None] in _unscored(pop.result.value))
                for pop in pops
            )
            if not taken:
                detail = f"acknowledged ZADD of {member!r} (op{op.id}) is missing, popped by none"
                violation(sim, "lost-write", key, detail)
    for op in ops:
        if op.kind == "zset_read" and op.acked and op.result is not None:
            _check_ranked_answer(sim, key, op)


def _check_list(sim: Simulation, key: bytes, ops: list[OpLog], record: Any) -> None:
    final = set() if record is None else set(record.data.value().values())
    pops = [op for op in ops if op.kind == "list_pop"]
    popped = {
        value
        for op in pops
        if op.acked and op.result is not None
        for _, value in op.result.value or ()
    }
    # A write applies at its coordinator before it is acknowledged, and one forwarded to a
    # replica may apply well after it was issued; one that got no answer may apply at any
    # time: such an LSET or pop may have come after any push.
    sets = [op for op in ops if op.kind == "list_set"]
    for op in ops:
        if op.kind != "list_push" or not op.acked:
            continue
        for value in op.detail["values"]:
            if value in final or value in popped:
                continue
            if any(not put.acked or put.issued_ms >= op.issued_ms for put in sets):
                continue  # an LSET may have replaced it
            if any(not pop.acked for pop in pops):
                continue  # a pop whose answer was lost may have taken it
            detail = f"acknowledged push of {value!r} (op{op.id}) is missing, popped by none"
            violation(sim, "lost-write", key, detail)
    for op in ops:
        if op.kind == "list_read" and op.acked and op.result is not None:
            positions = [position for position, _ in op.result.value or ()]
            if positions != sorted(positions) or len(set(positions)) != len(positions):
                violation(sim, "ranked-read", key, f"op{op.id} answered out of order")


def _unscored(pairs: Any) -> list[list[Any]]:
    return [[member, None] for member, _ in pairs or ()]


def _check_ranked_answer(sim: Simulation, key: bytes, op: OpLog) -> None:
    """A ranked read's answer is in its order, and a rank lies inside the set."""
    assert op.result is not None
    query = op.detail["query"]
    pairs = op.result.value or []
    order = [(score, member) for member, score in pairs]
    expected = sorted(order, reverse=query.rev)
    if order != expected:
        violation(sim, "ranked-read", key, f"op{op.id} answered out of order: {order}")
    if query.by is By.MEMBER and pairs:
        size = op.result.size
        position = op.result.position
        if size is None or position is None or not 0 <= position < size:
            detail = f"op{op.id}: rank {position} of {pairs[0][0]!r} in a set of {size}"
            violation(sim, "ranked-read", key, detail)


def _count_lww_losses(ops: list[OpLog], final: Any) -> int:
    """Acknowledged SETs that are not the final value and that no later SET replaced at its
    coordinator: they lost a merge to a concurrent write, by HLC order. (A SET's reply names
    the write it replaced; a SET overwritten by an unanswered SET counts as lost, an
    overcount of at most the unanswered writes.)"""
    sets = [op for op in ops if op.kind == "str_set"]
    replaced = {op.result.supersedes for op in sets if op.result is not None and op.result.ok}
    lost = 0
    for op in sets:
        if not op.acked or op.result is None or final == f"s{op.id}".encode():
            continue
        if op.result.dot not in replaced:
            lost += 1
    return lost
