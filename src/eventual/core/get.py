"""The read path (Riak's get state machine): ask the primaries (fallbacks for down ones),
answer once R replies agree to be merged, repair the replicas that answered with less.

A read of a few members of a collection (``ops.Get`` with ``members``) asks for and merges
*projections* (``Record.project``), and repairs those members only
(``Record.member_delta``); a read of a collection's size compares the replicas' digests and
reads again, whole, if they differ.
"""

from __future__ import annotations

from mypy_extensions import trait

from eventual.codec import DecodeError
from eventual.core.base import (
    NodeBase,
    Origin,
    _PendingRead,
)
from eventual.core.consistency import quorum
from eventual.core.messages import (
    Effects,
    ReadReply,
    ReplicaRead,
    ReplicaWrite,
    Request,
    Result,
    Timer,
)
from eventual.core.ops import Get, scan_count
from eventual.core.record import COLLECTIONS, RANKED, Kind, Record
from eventual.core.store import Batch
from eventual.crdt._causal import scan_hash
from eventual.crdt.ranked import Ranked, RankedMap

KIND_NAMES = {kind: kind.name.lower() for kind in Kind}  # what a read says the key holds
# A read that this node's own replica satisfies (R = 1 from here: ONE, LOCAL_ONE) and that
# finds the key here asks no other replica, as Cassandra does: no messages, no replies to
# merge. It would have answered with the local record anyway (that reply is in first); the
# others' replies served only to repair them. About one such read in READ_REPAIR_EVERY still
# asks every replica and repairs the stale ones (Cassandra's read_repair_chance), picked by a
# xorshift generator: deterministic for the simulator, and unlike a plain count it cannot
# fall into step with a client that reads the same keys in a cycle. A key not found here
# asks everyone as before (not found counts only from a majority: ``_read_met``).
# Anti-entropy repairs what reads do not.
READ_REPAIR_EVERY = 10
# A ranked read (ZRANGE, ZRANK, ZCOUNT, LRANGE, LINDEX) asks each replica for its answer, in
# O(log n + m). When the replicas' digests agree, that answer is the merge's. When they
# disagree, the rank of a member in their merge cannot be had from their answers: a
# concurrent increment on each side can lift a member past others on neither. Up to this
# many members the read is asked again whole and answered from the merge, as a size read
# is; above it, that would ship the whole collection on every read made while a write is in
# flight, so the answer is one replica's (this node's, if it answered; the merges of the
# others follow by replication and anti-entropy), counted in ``stats["ranked_unmerged"]``
# and said in docs/redis.md.
RANKED_WHOLE_MAX = 10_000


@trait
class GetCoordinator(NodeBase):
    def _read(
        self,
        effects: Effects,
        origin: Origin,
        request: Request,
        partition: int,
        primaries: list[str],
    ) -> None:
        need = self._requirement(effects, origin, request, primaries, request.r)
        if need is None:
            return
        spare = [n for n in self.ring.walk(partition) if n not in primaries and self.up(n)]
        targets = []
        for primary in primaries:
            if self.up(primary):
                targets.append(primary)
            elif spare:
                targets.append(spare.pop(0))
        op = request.op
        assert isinstance(op, Get)
        ranked: Ranked | None = None
        if op.ranked is not None:
            try:
                ranked = Ranked.from_bytes(op.ranked)
            except DecodeError as bad:  # a forwarded request from a peer: refused, not raised
                self._finish(effects, origin, Result(False, error=f"ERR bad ranked read: {bad}"))
                return
        local: Record | None = None  # this node's record, once read
        if (
            len(targets) > 1
            and self.id in targets
            and need.met((self.id,), self.region_of, self.region)
        ):
            local = self._local_for_read(op.key, partition)
            if local is not None and self._read_alone():
                targets = [self.id]
        if targets == [self.id] and op.members is None and op.cursor is None and ranked is None:
            # This node is the one replica asked (N = 1, or R = 1 found here): its record is
            # the answer, with nothing to wait for and nothing to repair.
            if local is None:
                local = self._local_for_read(op.key, partition)
            self._finish(effects, origin, self._whole_result(local, 1))
            return
        read_id = self._id()
        pending = _PendingRead(
            origin,
            op.key,
            partition,
            need,
            primaries,
            targets,
            members=() if ranked is not None else op.members,
            cursor=op.cursor,
            count=scan_count(op.count),
            ranked=ranked,
        )
        self.pending[read_id] = pending
        self._ask_replicas(effects, read_id, pending)
        self._check_read(effects, read_id, pending)
        if read_id in self.pending:
            effects.after(self.config.request_timeout_ms, Timer("timeout", read_id))

    def _read_alone(self) -> bool:
        """False for about one read in ``READ_REPAIR_EVERY``: that one asks every replica."""
        x = self.read_repair_state  # xorshift32
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        self.read_repair_state = x
        return x % READ_REPAIR_EVERY != 0

    def _ask_replicas(self, effects: Effects, read_id: int, pending: _PendingRead) -> None:
        for target in pending.targets:
            if target == self.id:
                local = self._local_for_read(pending.key, pending.partition)
                if local is not None and pending.cursor is not None:
                    local, pending.cursors[self.id] = local.scan_page(pending.cursor, pending.count)
                elif local is not None and pending.members is not None:
                    pending.sizes[self.id] = (local.size(), self._local_digest(pending, local))
                    if pending.ranked is not None and local.kind in RANKED:
                        local, _, pending.positions[self.id] = local.select(pending.ranked)
                    else:
                        local = local.project(pending.members)
                pending.replies[self.id] = local
            else:
                ranked = pending.ranked
                effects.send(
                    target,
                    ReplicaRead(
                        read_id,
                        pending.key,
                        pending.members,
                        pending.cursor,
                        pending.count,
                        # Asked projected: the query; asked whole (replicas that disagreed),
                        # the coordinator answers it from their merge.
                        None if ranked is None or pending.members is None else ranked.to_bytes(),
                    ),
                    early=True,  # asks, carries nothing of ours (``Send.early``)
                )

    def _local_digest(self, pending: _PendingRead, record: Record) -> int:
        if pending.partition in self.trees:
            return self.records.digest(pending.key) or 0
        return record.digest()

    def _merged(self, records: list[Record | None]) -> Record | None:
        """The merge of the records read (one alone is returned as it is: not to be
        changed, it may be this node's own)."""
        present = [record for record in records if record is not None]
        if len(present) <= 1:
            return present[0] if present else None
        merged = present[0].copy()
        for record in present[1:]:
            merged.merge(record)
        return merged

    def _read_result(self, merged: Record | None, answered: int, pending: _PendingRead) -> Result:
        if merged is None:
            return Result(True, None, answered=answered)
        if pending.ranked is not None and merged.kind in RANKED:
            return self._ranked_result(merged, answered, pending)
        if pending.cursor is not None and merged.kind in COLLECTIONS:
            return self._page_result(merged, answered, pending)
        if pending.members is not None and merged.kind in COLLECTIONS:
            return self._projected_result(merged, answered, pending)
        return self._whole_result(merged, answered)

    def _whole_result(self, merged: Record | None, answered: int) -> Result:
        """A read of a whole record (``merged``: the merge of what the replicas hold)."""
        if merged is None:
            return Result(True, None, answered=answered)
        context = merged.context().to_bytes() if merged.kind is Kind.OBJECT else None
        if not merged.present(self.now):
            return Result(True, None, context=context, answered=answered)
        return Result(
            True,
            merged.value(),
            context=context,
            answered=answered,
            kind=KIND_NAMES[merged.kind],
            expire_at=merged.expire_at(),
            # Sketches (PFMERGE) and bounded counters (rights per node) travel whole.
            state=merged.data.to_bytes() if merged.kind in (Kind.HLL, Kind.BCOUNTER) else None,
        )

    def _projected_result(self, merged: Record, answered: int, pending: _PendingRead) -> Result:
        """A read of a few members (or of the size) of a collection."""
        if merged.expired(self.now):
            return Result(True, None, answered=answered, size=0)
        sizes = {size for size, _ in pending.sizes.values()}
        return Result(
            True,
            merged.value(),
            answered=answered,
            kind=KIND_NAMES[merged.kind],
            expire_at=merged.expire_at(),
            size=sizes.pop() if len(sizes) == 1 else None,
        )

    def _unmerged_basis(self, pending: _PendingRead) -> str | None:
        """The replica whose answer a ranked read takes alone (``RANKED_WHOLE_MAX``), or
        None: the replicas agree, or the sorted set is small enough to read whole."""
        if pending.ranked is None or pending.members is None or not self._sizes_disagree(pending):
            return None
        if max((size for size, _ in pending.sizes.values()), default=0) <= RANKED_WHOLE_MAX:
            return None
        found = [node for node, record in pending.replies.items() if record is not None]
        if not found or any(
            record is not None and record.kind not in RANKED for record in pending.replies.values()
        ):
            return None
        return self.id if self.id in found else found[0]

    def _ranked_result(
        self, merged: Record, answered: int, pending: _PendingRead, basis: str | None = None
    ) -> Result:
        """A ranked read of a sorted set or a list. Asked projected, the replicas agreed
        (their digests are equal, ``_sizes_disagree``), so the merge of their selections is
        each one's: ordered again here, at the position they gave (``basis``: the one
        replica whose answer is taken, ``_unmerged_basis``). Asked whole, the query is
        answered from the merge of what they hold."""
        # A projection may hold none of the members (a count, a range with nothing in it):
        # whether the key is there is the replicas' size, not the projection's.
        if basis is not None:
            size: int | None = pending.sizes[basis][0]
        elif pending.members is None:
            size = merged.size()
        else:
            size = _agreed_size(pending)
        if merged.expired(self.now) or not size:
            return Result(True, None, answered=answered, size=0, position=-1)
        query = pending.ranked
        assert query is not None
        data = merged.data
        assert isinstance(data, RankedMap)
        if pending.members is None:
            members, position = data.select(query)
        else:
            members = data.in_order(query.rev)
            positions = (
                {pending.positions.get(basis, -1)}
                if basis is not None
                else set(pending.positions.values())
            )
            position = positions.pop() if len(positions) == 1 else -1
        return Result(
            True,
            [[member, data.shown(member)] for member in members],
            answered=answered,
            kind=KIND_NAMES[merged.kind],
            expire_at=merged.expire_at(),
            size=size,
            position=position,
        )

    def _page(self, pending: _PendingRead) -> tuple[tuple[bytes, ...], int]:
        """The members a page read covers, and where the next page starts (0: the end).

        Each replica's page is exact up to the cursor it returned, so their merge is exact
        up to the smallest of those: members at or past it are left to the next page."""
        ends = [
            pending.cursors.get(node, 0)
            for node, record in pending.replies.items()
            if record is not None
        ]
        following = min((end for end in ends if end), default=0)
        members = {
            member
            for record in pending.replies.values()
            if record is not None and record.kind in COLLECTIONS
            for member in record.members()
        }
        if following:
            members = {m for m in members if scan_hash(m) < following}
        return tuple(members), following

    def _page_result(self, merged: Record, answered: int, pending: _PendingRead) -> Result:
        """A page of a collection: the merged members below the page's end."""
        if merged.expired(self.now):
            return Result(True, None, answered=answered, cursor=0)
        members, following = self._page(pending)
        return Result(
            True,
            merged.project(members).value(),
            answered=answered,
            kind=KIND_NAMES[merged.kind],
            expire_at=merged.expire_at(),
            cursor=following,
        )

    def _sizes_disagree(self, pending: _PendingRead) -> bool:
        """A size read whose replicas hold different records: the size of their merge is
        not known from the parts, so the read is asked again, whole."""
        digests = {digest for _, digest in pending.sizes.values()}
        found = sum(record is not None for record in pending.replies.values())
        return pending.members == () and (len(digests) > 1 or len(pending.sizes) != found)

    def _read_met(self, pending: _PendingRead) -> bool:
        """Found answers count toward R at once; "not found" counts only once a majority of
        those asked said so (Riak's notfound_ok=false with basic_quorum): a replica that has
        not got the key yet (a fallback, a replica being repaired) cannot hide it at ONE."""
        replies = pending.replies
        found = [node for node, record in replies.items() if record is not None]
        if pending.need.met(found, self.region_of, self.region):
            return True
        settled = len(replies) >= quorum(len(pending.targets)) or len(replies) == len(
            pending.targets
        )
        return settled and pending.need.met(replies, self.region_of, self.region)

    def _check_read(self, effects: Effects, read_id: int, pending: _PendingRead) -> None:
        if not pending.replied and self._read_met(pending):
            basis = self._unmerged_basis(pending)
            if basis is not None:
                self.stats["ranked_unmerged"] += 1
                pending.replied = True
                record = pending.replies[basis]
                assert record is not None
                result = self._ranked_result(record, len(pending.replies), pending, basis)
                self._finish(effects, pending.origin, result)
            elif self._sizes_disagree(pending):
                # Again under a new id, so a late projected reply is not taken as whole.
                del self.pending[read_id]
                whole = _PendingRead(
                    pending.origin,
                    pending.key,
                    pending.partition,
                    pending.need,
                    pending.primaries,
                    pending.targets,
                    cursor=pending.cursor,
                    count=pending.count,
                    ranked=pending.ranked,
                )
                whole.cursors = pending.cursors
                whole_id = self._id()
                self.pending[whole_id] = whole
                self._ask_replicas(effects, whole_id, whole)
                self._check_read(effects, whole_id, whole)
                if whole_id in self.pending:
                    effects.after(self.config.request_timeout_ms, Timer("timeout", whole_id))
                return
            else:
                pending.replied = True
                merged = self._merged(list(pending.replies.values()))
                result = self._read_result(merged, len(pending.replies), pending)
                self._finish(effects, pending.origin, result)
        if len(pending.replies) == len(pending.targets):
            if not pending.replied:
                self._fail_read(effects, pending)
            self._read_repair(effects, pending)
            del self.pending[read_id]

    def _read_repair(self, effects: Effects, pending: _PendingRead) -> None:
        replies = pending.replies
        if len(replies) <= 1:
            return  # one answer: nothing to compare it with
        members = pending.members
        if pending.cursor is not None:
            # Pages are compared, and repaired, below the page's end only (when every
            # replica's page ended at the same place, that is all of each page).
            members = page = self._page(pending)[0]
            if len(set(pending.cursors.values())) > 1:
                replies = {
                    node: None if record is None else record.project(page)
                    for node, record in replies.items()
                }
        records = list(replies.values())
        merged = self._merged(records)
        if merged is None:
            return
        data = merged.to_bytes()
        stale = [
            node
            for node, record in replies.items()
            if node in pending.primaries and (record is None or record.to_bytes() != data)
        ]
        if not stale:
            return
        repair = merged
        if members is not None and merged.kind in COLLECTIONS:
            # A projection must never be merged into a replica (its context would drop
            # every member it left out): repair the members read, and nothing else.
            found = [record for record in records if record is not None]
            delta = merged.member_delta(members, found)
            if delta is None:
                return
            repair, data = delta, delta.to_bytes()
        hlc = self.hlc.now(self.now)
        self.stats["read_repairs"] += len(stale)
        for node in stale:
            if node == self.id:
                batch = Batch()
                self._merge_local(batch, pending.key, repair)
                self.store.apply(batch)
            else:
                effects.send(node, ReplicaWrite(0, pending.key, data, hlc))

    def _fail_read(self, effects: Effects, pending: _PendingRead) -> None:
        self._fail(effects, pending, len(pending.replies), "read", "")

    def _on_read_reply(self, effects: Effects, sender: str, message: ReadReply) -> None:
        pending = self.pending.get(message.id)
        if not isinstance(pending, _PendingRead) or sender not in pending.targets:
            return
        try:
            record = None if message.record is None else Record.from_bytes(message.record)
        except DecodeError:
            return  # a replica that sends garbage has not answered
        pending.replies[sender] = record
        if pending.cursor is not None:
            pending.cursors[sender] = message.cursor
        elif record is not None and pending.members is not None:
            pending.sizes[sender] = (message.size, message.digest)
            pending.positions[sender] = message.position
        self._check_read(effects, message.id, pending)


def _agreed_size(pending: _PendingRead) -> int | None:
    sizes = {size for size, _ in pending.sizes.values()}
    return sizes.pop() if len(sizes) == 1 else None
