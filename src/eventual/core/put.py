"""The write path: a mutation coordinated by a primary (Riak's put state machine).

The coordinator applies the operation to its own record in place (``ops.apply``), stores
what changed, sends the delta to the other primaries (or, for one it believes down, to the
next live node with ``hint_for``: sloppy quorum) and answers once the consistency level is
met, or with how many replicas answered when the request times out. Replicas that never
acknowledged get a hint kept here.
"""

from __future__ import annotations

import contextlib
from typing import cast

from mypy_extensions import trait

from eventual.core.base import (
    _WRITE_NOTE,
    OBJECT_BYTES_MAX,
    SIBLINGS_MAX,
    NodeBase,
    Origin,
    _PendingWrite,
)
from eventual.core.consistency import Requirement, requirement
from eventual.core.messages import (
    Effects,
    ReplicaWrite,
    Request,
    Result,
    Timer,
    WriteAck,
)
from eventual.core.ops import BcounterTransfer, Delete, Expire, Mutation, Persist, apply
from eventual.core.record import Kind, Record, WrongTypeError
from eventual.core.store import Batch, Hint
from eventual.crdt import InsufficientRights, LWWRegister
from eventual.crdt.ormap import WrongType


@trait
class PutCoordinator(NodeBase):
    def _coordinate(
        self,
        effects: Effects,
        origin: Origin,
        request: Request,
        partition: int,
        primaries: list[str],
        *,
        fallback: bool,
    ) -> None:
        op = cast(Mutation, request.op)  # _route sends reads elsewhere
        hint = self.store.hint(op.key) if fallback else None
        if fallback:
            record = None if hint is None else Record.from_stored(hint.record)
        else:
            record = self._load(op.key)
            if record is not None and record.kind is Kind.OBJECT:
                # Objects are applied to a copy: the siblings limit is known only after.
                record = record.copy()
        if isinstance(op, BcounterTransfer) and op.to_actor not in self.cluster.entries:
            # Rights moved to a name no node holds could never be spent again.
            refusal = f"ERR {op.to_actor!r} is not a member of the cluster"
            self._finish(effects, origin, Result(False, error=refusal))
            return
        if record is None and isinstance(op, (Delete, Expire, Persist)):
            self._finish(effects, origin, Result(True, 0, answered=1))
            return
        need = self._requirement(effects, origin, request, primaries, request.w)
        if need is None:
            return
        timestamp = self.hlc.now(self.now)
        if record is not None and record.kind is Kind.STRING:
            previous = cast(LWWRegister, record.data).timestamp
            if previous is not None and previous >= timestamp:
                # A causally later write must win: move past what this record has seen.
                timestamp = self.hlc.last = previous + 1
        try:
            applied = apply(record, op, self._actor(op, fallback), self.now, timestamp)
        except (WrongTypeError, WrongType) as wrong:
            self._finish(effects, origin, Result(False, error=str(wrong)))
            return
        except InsufficientRights as refused:
            # Its own word, like Redis's WRONGTYPE: a refusal to retry elsewhere, not a fault.
            self._finish(effects, origin, Result(False, error=f"REFUSED {refused}"))
            return
        except (ValueError, TypeError, OverflowError) as bad:
            # (Each exception is named apart: the compiled build types a name by its first use.)
            self._finish(effects, origin, Result(False, error=f"ERR {bad}"))
            return
        new = applied.record
        problem = _object_limits(new) if new.kind is Kind.OBJECT else None
        if problem is not None:
            self._finish(effects, origin, Result(False, error=problem))
            return
        batch = Batch()
        if fallback:
            # The hint holds our fallback history of the key: we owe it to every primary.
            owed = set(primaries) | (hint.targets if hint is not None else frozenset())
            batch.hints[op.key] = Hint(op.key, partition, new.to_bytes(), frozenset(owed))
        else:
            whole = new is not record  # created, or reset: nothing stored before counts
            self._store_record(batch, partition, op.key, new, whole=whole)
        targets: dict[str, str | None] = {}
        spare: list[str] | None = None  # fallbacks, worked out only if a primary is down
        for primary in primaries:
            if primary == self.id:
                continue
            if self.up(primary) and not fallback:
                targets[primary] = None
                continue
            if spare is None:
                spare = [
                    node
                    for node in self.ring.walk(partition)
                    if node not in primaries and node != self.id and self.up(node)
                ]
            if spare:
                targets[spare.pop(0)] = primary
            elif not fallback:
                self._merge_hint(batch, op.key, applied.delta, primary)
        others: list[tuple[Requirement, frozenset[str]]] = []
        extra: list[str] = []
        rings = []
        if self.future is not self.ring:
            rings.append(self.future)
        if self.previous is not None and self.now < self.previous_until:
            rings.append(self.previous)
        n = self._n(request) if rings else 0
        for ring in rings:
            # A ring transition (the future ring) or a recent flip (the previous ring): the
            # write must meet its level over that ring's replicas too, so that it is where a
            # reader with either view looks. A copy that was not counted could be lost: a
            # newcomer that had finished its pull and missed one became a primary without an
            # acknowledged write, and a member that had not heard of a flip read the old
            # replicas, which no longer received writes. Replicas believed down get a hint
            # and do not count.
            replicas = [
                node
                for node in ring.preference_list(partition, n)
                if node in primaries or node == self.id or node in targets or self.up(node)
            ]
            if set(replicas) == set(primaries):
                continue
            with contextlib.suppress(ValueError):  # meaningless there: the current ring only
                need_there = requirement(
                    request.level, replicas, self.region_of, self.region, request.w
                )
                others.append((need_there, frozenset(replicas)))
            for node in ring.preference_list(partition, n):
                if node in primaries or node in targets or node == self.id:
                    continue
                if self.up(node):
                    targets[node] = None
                    extra.append(node)
                else:
                    self._merge_hint(batch, op.key, applied.delta, node)
        self.store.apply(batch)
        context = new.context().to_bytes() if new.kind is Kind.OBJECT else None
        result = Result(
            True,
            applied.result,
            context=context,
            dot=applied.dot,
            supersedes=applied.supersedes,
            answered=1,
        )
        alone = (self.id,)
        if (
            not targets
            and need.met(alone, self.region_of, self.region)
            and all(
                need_there.met(set(alone) & replicas, self.region_of, self.region)
                for need_there, replicas in others
            )
        ):
            # Nobody else to send it to (N = 1, ...), and this replica is enough: answer now.
            self._finish(effects, origin, result)
            return
        write_id = self._id()
        pending = _PendingWrite(
            origin,
            op.key,
            partition,
            applied.delta,
            need,
            targets,
            {self.id},
            result,
            others=tuple(others),
            extra=frozenset(extra),
            sent_ms=self.now,
        )
        self.pending[write_id] = pending
        delta = applied.delta.to_bytes()
        hlc = self.hlc.now(self.now)
        # Sent before this node's commit (``Send.early``) unless a new epoch could not keep
        # its dots from being issued again.
        early = not self._named_after_node(op, fallback)
        # One message for every replica that holds the key (the runtime encodes it once);
        # a fallback's names the replica it stands in for.
        to_replica = ReplicaWrite(write_id, op.key, delta, hlc)
        for target, hint_for in targets.items():
            message = (
                to_replica
                if hint_for is None
                else ReplicaWrite(write_id, op.key, delta, hlc, hint_for)
            )
            effects.send(target, message, early=early)
        self._check_write(effects, write_id, pending)
        if write_id in self.pending:
            effects.after(self._timeout_ms(len(delta)), Timer("timeout", write_id))

    def _check_write(self, effects: Effects, write_id: int, pending: _PendingWrite) -> None:
        if not pending.replied and pending.met(self.region_of, self.region):
            pending.replied = True
            pending.acknowledged_ms = self.now
            self._finish(effects, pending.origin, self._answered(pending.result, pending.counted()))
            # t-visibility (base.VISIBILITY_BOUNDS_MS): what has acknowledged by now is
            # visible when the client hears of the write; the rest count as they come.
            for replica in pending.acks:
                if replica not in pending.extra:
                    self._visible(pending.targets.get(replica) or replica, 0)
        if len(pending.acks) == len(pending.targets) + 1:
            if not pending.replied:  # everyone it could ask has answered: say so now
                self._fail_write(effects, pending)
            del self.pending[write_id]

    def _fail_write(self, effects: Effects, pending: _PendingWrite) -> None:
        note = _WRITE_NOTE
        if pending.others and pending.need.met(pending.counted(), self.region_of, self.region):
            wanted = "; ".join(
                f"{need.describe()} among {', '.join(sorted(replicas))}"
                for need, replicas in pending.others
            )
            note = f", and as the ring is changing, {wanted}{_WRITE_NOTE}"
        self._fail(effects, pending, len(pending.counted()), "request", note)

    def _on_write_ack(self, effects: Effects, sender: str, message: WriteAck) -> None:
        pending = self.pending.get(message.id)
        if (
            isinstance(pending, _PendingWrite)
            and message.error is None
            and sender in pending.targets
            and sender not in pending.acks
        ):
            pending.acks.add(sender)
            if pending.acknowledged_ms >= 0 and sender not in pending.extra:
                hint_for = pending.targets[sender]
                # A fallback holds a hint: the replica it stands in for has not got the write.
                arrived = pending.sent_ms + (self.now - pending.sent_ms) // 2  # see base.py
                self._visible(
                    hint_for or sender,
                    None if hint_for is not None else arrived - pending.acknowledged_ms,
                )
            self._check_write(effects, message.id, pending)


def _object_limits(record: Record) -> str | None:
    """What an object write would break (siblings, their size), or None."""
    values = record.data.value()
    if len(values) > SIBLINGS_MAX:
        return (
            f"ERR {len(values)} siblings, more than {SIBLINGS_MAX}: "
            "read the key and write back with its context to resolve them"
        )
    size = sum(len(v) for v in values if isinstance(v, bytes))
    if size > OBJECT_BYTES_MAX:
        return (
            f"ERR the object's siblings would hold {size} bytes, more than "
            f"{OBJECT_BYTES_MAX}: resolve them (write back with the context)"
        )
    return None
