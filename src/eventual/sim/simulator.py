"""The deterministic cluster simulator (DESIGN.md §5; after TigerBeetle's VOPR).

One seed decides everything: the latency matrix, the workload, every fault, every message
drop and delay. Time is virtual; the same ``core.Node`` code that the server runs is driven
here through ``request``/``receive``/``timer``. A run has two phases: a *fault phase* in which
clients issue a random workload while the enabled faults fire, then a *heal phase* with no
faults and no new requests, in which hints, read repair and anti-entropy must bring every
replica of every key to the same bytes. The checkers (``checkers.py``) then judge the run
from outside the code under test: from the clients' view of what was acknowledged, and from
the stores.

Every event feeds a running hash: the *digest*. The same seed gives the same digest, in any
process (nothing here iterates a set of strings, whose order varies between processes).
"""

from __future__ import annotations

import hashlib
import heapq
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from eventual.clocks import VersionVector
from eventual.core import (
    Batch,
    Effects,
    Level,
    Member,
    MemoryStore,
    Node,
    NodeConfig,
    Record,
    Request,
    Result,
    Ring,
    ops,
)
from eventual.core.membership import ClusterState, MemberStatus
from eventual.core.records import load_record, stored_bytes
from eventual.crdt import BoundedCounter
from eventual.crdt.ranked import By, Ranked
from eventual.sim.checkers import check_run, merged, violation
from eventual.sim.network import Faults, Network

__all__ = ["OpLog", "SimConfig", "SimResult", "Simulation"]

REGION_NAMES = ("us-east", "eu-west", "ap-south", "sa-east", "af-south", "me-central")
TRACE_LINES_PER_KEY_MAX = 60  # the excerpt printed with a violation
MEMBERSHIP_EVENTS_MAX = 2  # per seed: each moves partitions, which the heal phase must finish
LEVELS = (Level.ONE, Level.QUORUM, Level.QUORUM, Level.ALL, Level.LOCAL_QUORUM, Level.TWO)
# A region sells on its own: local levels, so a partition from the others does not stop it.
INVENTORY_LEVELS = (Level.LOCAL_ONE, Level.LOCAL_QUORUM, Level.LOCAL_QUORUM, Level.ONE)


@dataclass(frozen=True)
class SimConfig:
    seed: int
    nodes: int = 5
    regions: int = 3
    ops: int = 300
    faults: Faults = field(default_factory=Faults)
    n: int = 3
    partitions: int = 16
    fault_phase_ms: int = 20_000
    heal_phase_ms: int = 40_000
    anti_entropy: bool = True
    keys_per_kind: int = 5
    # "mixed": every data type; "small": the same without its few big collections (thousands
    # of members each); "inventory": the flagship story alone, products as bounded counters
    # restocked, sold in every region at local levels, rights moved between nodes.
    workload: str = "mixed"
    max_drift_ms: int = 5_000


BIG_COLLECTION_KEYS = 2  # keys of each big collection kind
BIG_COLLECTION_BATCH = 100  # members a write adds: ~20 writes a key take it past a thousand


@dataclass
class OpLog:
    """What a client saw of one operation."""

    id: int
    kind: str
    key: bytes
    issued_ms: int
    detail: dict[str, Any] = field(default_factory=dict)
    acked: bool | None = None  # None: no answer (lost, or the node crashed)
    result: Result | None = None
    acked_ms: int | None = None


@dataclass
class SimResult:
    seed: int
    ops_issued: int
    ops_acked: int
    faults_injected: dict[str, int]
    violations: list[dict[str, Any]]
    sim_ms: int
    wall_seconds: float
    digest: str
    lww_losses: int
    messages: int
    events: int
    excused: int = 0  # acknowledged writes that may have died with nodes killed for good


class CheckedStore(MemoryStore):
    """The disk of a simulated node, watched by the bounded-counter checker on every write:
    no replica may ever hold a bounded counter below zero."""

    def __init__(self, node: str, on_negative: Callable[[str, bytes, int], None]) -> None:
        super().__init__()
        self.node = node
        self.on_negative = on_negative

    def apply(self, batch: Batch) -> None:
        for key, write in batch.records.items():
            if write.head is not None and key.startswith(b"bc:"):
                record = Record.from_bytes(write.head)  # a scalar kind: the head is all of it
                if isinstance(record.data, BoundedCounter) and record.data.value() < 0:
                    self.on_negative(self.node, key, record.data.value())
        for key, hint in batch.hints.items():
            if hint is not None and key.startswith(b"bc:"):
                record = Record.from_bytes(hint.record)
                if isinstance(record.data, BoundedCounter) and record.data.value() < 0:
                    self.on_negative(self.node, key, record.data.value())
        super().apply(batch)


def _canon(value: Any) -> str:
    """A process-independent rendering (sets sorted) for the digest."""
    if isinstance(value, set | frozenset):
        return "{" + ",".join(sorted(_canon(v) for v in value)) + "}"
    if isinstance(value, dict):
        return (
            "{"
            + ",".join(f"{_canon(k)}:{_canon(v)}" for k, v in sorted(value.items(), key=repr))
            + "}"
        )
    if isinstance(value, list | tuple):
        return "[" + ",".join(_canon(v) for v in value) + "]"
    if isinstance(value, VersionVector):
        return _canon(value.value())
    return repr(value)


class Simulation:
    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        regions = REGION_NAMES[: max(1, min(config.regions, len(REGION_NAMES)))]
        self.members = tuple(
            Member(f"n{i}", regions[i % len(regions)]) for i in range(config.nodes)
        )
        self.ring = Ring(self.members, config.partitions)
        self.node_ids = [m.node for m in self.members]
        self.network = Network(self.rng, {m.node: m.region for m in self.members}, config.faults)
        self.now = 0
        self.queue: list[tuple[int, int, tuple[Any, ...]]] = []
        self.seq = 0
        self.violations: list[dict[str, Any]] = []
        self.stores = {node: CheckedStore(node, self._negative_bcounter) for node in self.node_ids}
        self.nodes: dict[str, Node | None] = {}
        self.incarnation = dict.fromkeys(self.node_ids, 0)
        self.skew = dict.fromkeys(self.node_ids, 0)
        self.faults_injected: dict[str, int] = {}
        self.ops: dict[int, OpLog] = {}
        self.pending_reads: dict[int, OpLog] = {}  # read id -> the read-modify-write it serves
        self.request_owner: dict[int, int] = {}  # request id -> operation id
        self.scripted: dict[int, Result | None] = {}  # requests made through ``call``
        self.trace: dict[bytes, list[str]] = {}
        self.fault_trace: list[str] = []
        self.hasher = hashlib.blake2b(digest_size=16)
        self.messages = 0
        self.events = 0
        self.next_request = 1
        self.joining: dict[str, tuple[str, str]] = {}  # joined node -> (region, its seed)
        self.gone: set[str] = set()  # killed for good (replaced)
        self.at_risk: dict[bytes, int] = {}  # key -> when a node holding unique data died
        self.leaving: set[str] = set()  # nodes the operator has asked to leave
        self.membership_events = 0
        self.excused = 0  # acknowledged writes whose every copy may have died with a killed node
        for node in self.node_ids:
            self._boot(node)

    # --- scheduling ---

    def _at(self, when: int, event: tuple[Any, ...]) -> None:
        self.seq += 1
        heapq.heappush(self.queue, (when, self.seq, event))

    def _config_for(self, node: str) -> NodeConfig:
        joining = self.joining.get(node)
        return NodeConfig(
            node=node,
            members=(Member(node, joining[0]),) if joining else self.members,
            join=joining is not None,
            seeds=(joining[1],) if joining else (),
            gossip_ms=500,
            partitions=self.config.partitions,
            n=self.config.n,
            anti_entropy_ms=250,
            anti_entropy=self.config.anti_entropy,
            handoff_ms=1_000,
            reap_ms=2_000,
            reap_grace_ms=10_000,
            max_drift_ms=self.config.max_drift_ms,
        )

    def _local(self, node: str) -> int:
        return max(0, self.now + self.skew[node])

    def _boot(self, node: str) -> None:
        self.incarnation[node] += 1
        instance = Node(self._config_for(node), self.stores[node], self._local(node))
        self.nodes[node] = instance
        self._effects(node, instance.start(self._local(node)))

    def _effects(self, node: str, effects: Effects) -> None:
        incarnation = self.incarnation[node]
        for send in effects.sends:
            self.messages += 1
            target_incarnation = self.incarnation[send.to]
            for delay in self.network.deliveries(node, send.to):
                self._at(self.now + delay, ("msg", node, send.to, send.message, target_incarnation))
        for reply in effects.replies:
            self._on_reply(reply.request_id, reply.result)
        for delay, timer in effects.timers:
            self._at(self.now + delay, ("timer", node, timer, incarnation))

    def _digest(self, text: str) -> None:
        self.hasher.update(f"{self.now}|{text}\n".encode())

    # --- the run ---

    def run(self) -> SimResult:
        started = time.perf_counter()
        self._plan_workload()
        self._plan_faults()
        end_of_faults = self.config.fault_phase_ms
        self._at(end_of_faults, ("heal",))
        end = end_of_faults + self.config.heal_phase_ms
        while self.queue and self.queue[0][0] <= end:
            when, _, event = heapq.heappop(self.queue)
            self.now = when
            self.events += 1
            self._dispatch(event)
        self.now = end
        self._check_membership()
        lww_losses = check_run(self)
        acked = sum(1 for op in self.ops.values() if op.acked)
        return SimResult(
            seed=self.config.seed,
            ops_issued=len(self.ops),
            ops_acked=acked,
            faults_injected=dict(sorted(self.faults_injected.items())),
            violations=self.violations,
            sim_ms=end,
            wall_seconds=time.perf_counter() - started,
            digest=self.hasher.hexdigest(),
            lww_losses=lww_losses,
            excused=self.excused,
            messages=self.messages,
            events=self.events,
        )

    # --- scripted use, for scenario tests: one request at a time, faults by hand ---

    def step(self) -> bool:
        """Process the next event; False when nothing is left."""
        if not self.queue:
            return False
        when, _, event = heapq.heappop(self.queue)
        self.now = max(self.now, when)
        self.events += 1
        self._dispatch(event)
        return True

    def run_for(self, ms: int) -> None:
        end = self.now + ms
        while self.queue and self.queue[0][0] <= end:
            self.step()
        self.now = end

    def call(
        self,
        node: str,
        op: ops.Operation,
        level: Level = Level.QUORUM,
        *,
        n: int | None = None,
        r: int | None = None,
        w: int | None = None,
        timeout_ms: int = 10_000,
    ) -> Result:
        """Send one request to ``node`` and run the cluster until it is answered."""
        instance = self.nodes[node]
        assert instance is not None, f"{node} is down"
        request_id = self.next_request
        self.next_request += 1
        self.scripted[request_id] = None
        request = Request(request_id, op, level, n=n, r=r, w=w)
        self._effects(node, instance.request(request, self._local(node)))
        deadline = self.now + timeout_ms
        return self._await(request_id, f"{node} did not answer {op!r}", deadline)

    def keys_page(self, node: str, cursor: int, count: int, timeout_ms: int = 10_000) -> Result:
        """Read a page of the cluster's keys through ``node`` (``core/keyspace.py``) and run
        the cluster until it is answered."""
        instance = self.nodes[node]
        assert instance is not None, f"{node} is down"
        request_id = self.next_request
        self.next_request += 1
        self.scripted[request_id] = None
        self._effects(node, instance.keys_page(request_id, cursor, count, self._local(node)))
        deadline = self.now + timeout_ms
        return self._await(request_id, f"{node} did not answer a keys page", deadline)

    def _await(self, request_id: int, what: str, deadline: int) -> Result:
        while self.scripted[request_id] is None and self.queue and self.queue[0][0] <= deadline:
            self.step()
        result = self.scripted.pop(request_id)
        if result is None:
            raise TimeoutError(f"{what} by {deadline} ms")
        return result

    def partition(self, *groups: list[str]) -> None:
        """Cut every link between different groups (both directions)."""
        self.network.blocked = {
            (a, b)
            for i, group in enumerate(groups)
            for j, other in enumerate(groups)
            if i != j
            for a in group
            for b in other
        }

    def cut(self, source: str, target: str) -> None:
        self.network.blocked.add((source, target))

    def heal_network(self) -> None:
        self.network.blocked = set()
        self.network.clogged = set()

    def crash(self, node: str) -> None:
        self.nodes[node] = None
        self.incarnation[node] += 1

    def restart(self, node: str) -> None:
        self._boot(node)

    def record(self, node: str, key: bytes) -> Record | None:
        return load_record(self.stores[node], key)

    def primaries(self, key: bytes) -> list[str]:
        ring = self.current_ring()
        return ring.preference_list(ring.partition_of(key), self.config.n)

    # --- membership ---

    def cluster_state(self) -> ClusterState:
        """What the live nodes know of the cluster, merged."""
        state = ClusterState()
        for node in self.node_ids:
            instance = self.nodes.get(node)
            if instance is not None:
                state.merge(instance.cluster.entries.values())
        return state

    def current_ring(self) -> Ring:
        return Ring(self.cluster_state().current() or self.members, self.config.partitions)

    def add_node(self, node: str, region: str, seed: str) -> None:
        """Start ``node`` empty, joining through ``seed`` (``eventual node --join``)."""
        self.node_ids.append(node)
        self.network.regions[node] = region
        self.stores[node] = CheckedStore(node, self._negative_bcounter)
        self.incarnation[node] = 0
        self.skew[node] = 0
        self.joining[node] = (region, seed)
        self._boot(node)

    def leave(self, by: str, node: str) -> Result:
        """``eventual cluster leave node``, run at ``by``."""
        instance = self.nodes[by]
        assert instance is not None, f"{by} is down"
        return instance.leave(node)

    def kill(self, node: str) -> None:
        """Crash ``node`` for good: it is never restarted (a machine lost).

        Keys for which it held something no surviving store or hint holds are noted: writes
        to them acknowledged before now may be lost with it. A write acknowledged by k
        replicas is lost if all k copies die for good before it spreads (hinted copies
        count until handed off), and that is all W = k promises."""
        self.crash(node)
        self.gone.add(node)
        self.node_ids.remove(node)
        victim = self.stores[node]
        survivors = [self.stores[n] for n in self.node_ids]
        held: dict[bytes, list[bytes]] = {}
        for key in victim.all_keys():
            data = stored_bytes(victim, key)
            if data is not None:
                held.setdefault(key, []).append(data)
        for hint in victim.hints():
            held.setdefault(hint.key, []).append(hint.record)
        for key, datas in held.items():
            hints = [store.hint(key) for store in survivors]
            known = merged(
                [stored_bytes(store, key) for store in survivors]
                + [hint.record for hint in hints if hint is not None]
            )
            for data in datas:
                combined = merged([None if known is None else known.to_bytes(), data])
                assert combined is not None
                if known is None or combined.to_bytes() != known.to_bytes():
                    self.at_risk[key] = self.now

    def _membership_fault(self) -> None:
        state = self.cluster_state()
        live = [n for n in self.node_ids if self.nodes.get(n) is not None]
        active = [e.node for e in state.entries.values() if e.status is MemberStatus.ACTIVE]
        if not live or self.membership_events >= MEMBERSHIP_EVENTS_MAX:
            return
        self.membership_events += 1
        future = state.future()
        action = self.rng.choice(["join", "leave", "replace"])
        if action != "join" and len(future) <= self.config.n + 1:
            action = "join"  # keep enough members to hold N replicas and lose one
        if action in ("leave", "replace") and not active:
            return
        region = self.rng.choice(sorted({m.region for m in self.members}))
        if action in ("join", "replace"):
            new = f"n{len(self.stores)}"
            if action == "replace":
                old = self.rng.choice(sorted(active))
                region = state.entries[old].region
                self.kill(old)
                live = [n for n in live if n != old]
                by = self.rng.choice(live)
                self._note_fault(f"replace {old} by {new} (leave run at {by})")
                self.leave(by, old)
                self.leaving.add(old)
            else:
                self._note_fault(f"join {new} in {region}")
            self.add_node(new, region, self.rng.choice(live))
        else:
            node = self.rng.choice(sorted(active))
            by = self.rng.choice(live)
            self._note_fault(f"leave {node} (run at {by})")
            self.leave(by, node)
            self.leaving.add(node)
        self._count(action)

    def _check_membership(self) -> None:
        """After healing, every live node holds the same settled ring.

        Writes to a key that a killed node held unique data for (see ``kill``), issued
        before that kill, count as unacknowledged: the checkers allow them to be there or
        not, and they are counted as excused."""
        for op in self.ops.values():
            at = self.at_risk.get(op.key)
            # Issued before the kill, not acknowledged: a reply the victim sent just before
            # it died can still arrive after.
            if op.acked and at is not None and op.issued_ms <= at:
                op.acked = None
                self.excused += 1
        state = self.cluster_state()
        if state.in_transition():
            pending = sorted(
                f"{e.node}:{e.status.name}"
                for e in state.entries.values()
                if e.status in (MemberStatus.JOINING, MemberStatus.LEAVING)
            )
            violation(self, "membership", b"", f"transition not complete after healing: {pending}")
        rings = {
            node: tuple(m.node for m in instance.cluster.current())
            for node in self.node_ids
            if (instance := self.nodes.get(node)) is not None
            and instance.cluster.entries[node].status is not MemberStatus.LEFT
        }
        if len(set(rings.values())) > 1:
            violation(self, "membership", b"", f"nodes disagree on the ring: {rings}")
        self.ring = self.current_ring()

    def _dispatch(self, event: tuple[Any, ...]) -> None:
        kind = event[0]
        if kind == "msg":
            _, source, target, message, incarnation = event
            node = self.nodes.get(target)
            if node is None or incarnation != self.incarnation[target]:
                return  # the target crashed after the message was sent: lost with its socket
            self._digest(f"msg {source}>{target} {type(message).__name__}")
            self._effects(target, node.receive(source, message, self._local(target)))
        elif kind == "timer":
            _, name, timer, incarnation = event
            node = self.nodes.get(name)
            if node is None or incarnation != self.incarnation[name]:
                return
            self._effects(name, node.timer(timer, self._local(name)))
        elif kind == "client":
            self._issue(event[1])
        elif kind == "fault":
            self._fault(event[1:])
        elif kind == "restart":
            node = event[1]
            if self.nodes.get(node) is None:
                self._note_fault(f"restart {node}")
                self._boot(node)
        elif kind == "heal":
            self._heal()

    # --- clients ---

    def _plan_workload(self) -> None:
        if self.config.workload == "inventory":
            kinds = ["bc_incr"] * 2 + ["bc_decr"] * 15 + ["bc_transfer"] * 3
        elif self.config.workload == "small":  # the mix without its few big collections
            kinds = [kind for kind in self._mixed_kinds() if not kind.startswith("big")]
        elif self.config.workload != "mixed":
            raise ValueError(
                f"unknown workload {self.config.workload!r}: mixed, small or inventory"
            )
        else:
            kinds = self._mixed_kinds()
        for op_id in range(1, self.config.ops + 1):
            when = self.rng.randint(0, self.config.fault_phase_ms - 1)
            kind = self.rng.choice(kinds)
            self._at(when, ("client", op_id, kind))
            self.ops[op_id] = OpLog(op_id, kind, b"", when)

    @staticmethod
    def _mixed_kinds() -> list[str]:
        return (
            ["obj_rmw"] * 4
            + ["obj_blind"] * 2
            + ["obj_delete"]
            + ["str_set"] * 3
            + ["counter"] * 3
            # Strings and hash fields that count: SETs of numbers and increments, mixed.
            + ["cstr_set"]
            + ["cstr_incr"] * 2
            + ["hcnt_set"]
            + ["hcnt_incr"] * 2
            # Sorted sets: scores written and counted, members added and removed, pops,
            # and ranked reads (crdt/zset.py).
            + ["zset_add"] * 2
            + ["zset_incr"] * 2
            + ["zset_rem"]
            + ["zset_read"]
            + ["zpop_add"]
            + ["zpop_pop"]
            # Lists: pushes at both ends, pops, LSETs and reads by rank (crdt/rlist.py).
            + ["list_push"] * 3
            + ["list_pop"]
            + ["list_set"]
            + ["list_read"]
            + ["set_add"] * 3
            + ["set_remove"]
            + ["map_incr"] * 2
            + ["bc_incr"]
            + ["bc_decr"] * 3
            + ["bc_transfer"]
            + ["ttl_set"]
            + ["expire"]
            + ["persist"]
            + ["flag"]
            + ["hll"]
            # Big collections: a few keys that grow to thousands of members, written and
            # read member by member (member cells, projections, member-level anti-entropy).
            + ["bigset_add"] * 4
            + ["bigset_remove"]
            + ["bigset_read"]
            + ["bighash_set"] * 4
            + ["bighash_del"]
            + ["bighash_read"]
        )

    def _key(self, prefix: str) -> bytes:
        return f"{prefix}:{self.rng.randrange(self.config.keys_per_kind)}".encode()

    def _issue(self, op_id: int) -> None:
        log = self.ops[op_id]
        kind = log.kind
        live = [n for n in self.node_ids if self.nodes.get(n) is not None]
        if not live:
            return
        node = self.rng.choice(live)
        inventory = self.config.workload == "inventory"
        level = self.rng.choice(INVENTORY_LEVELS if inventory else LEVELS)
        log.issued_ms = self.now
        log.detail["node"] = node
        log.detail["level"] = level.value
        op: ops.Operation
        if kind in ("obj_rmw", "obj_delete"):
            log.key = self._key("obj")
            op = ops.Get(log.key)  # read first; the write follows the reply
        elif kind == "obj_blind":
            log.key = self._key("obj")
            op = ops.ObjectPut(log.key, f"v{op_id}".encode(), None)
        elif kind in ("str_set", "ttl_set"):
            # Strings with and without TTL commands live apart, so that LWW losses are
            # counted on keys no expiry can empty.
            log.key = self._key("str" if kind == "str_set" else "ttl")
            op = ops.StringSet(log.key, f"s{op_id}".encode())
        elif kind == "counter":
            log.key = self._key("ctr")
            amount = self.rng.choice([1, 2, 3, 5, -1, -2])
            log.detail["amount"] = amount
            op = ops.CounterAdd(log.key, amount)
        elif kind in ("cstr_set", "cstr_incr", "hcnt_set", "hcnt_incr"):
            op = self._counting_op(log, kind)
        elif kind.startswith(("zset", "zpop")):
            op = self._sorted_set_op(log, kind)
        elif kind.startswith("list"):
            op = self._list_op(log, kind)
        elif kind == "set_add":
            log.key = self._key("set")
            element = f"e{op_id}".encode()
            log.detail["element"] = element
            op = ops.SetAdd(log.key, (element,))
        elif kind == "set_remove":
            log.key = self._key("set")
            added = [
                o.detail["element"]
                for o in self.ops.values()
                if o.kind == "set_add" and o.key == log.key and "element" in o.detail
            ]
            element = self.rng.choice(added) if added else b"e0"
            log.detail["element"] = element
            op = ops.SetRemove(log.key, (element,))
        elif kind == "map_incr":
            log.key = self._key("map")
            field_name = f"f{self.rng.randrange(3)}".encode()
            amount = self.rng.choice([1, 2, 4])
            log.detail.update(field=field_name, amount=amount)
            op = ops.MapIncr(log.key, field_name, amount)
        elif kind == "bc_incr":
            log.key = self._key("bc")
            amount = self.rng.choice([5, 10])
            log.detail["amount"] = amount
            op = ops.BcounterIncr(log.key, amount)
        elif kind == "bc_decr":
            log.key = self._key("bc")
            amount = self.rng.choice([1, 2, 3])
            log.detail["amount"] = amount
            op = ops.BcounterDecr(log.key, amount)
        elif kind == "bc_transfer":
            log.key = self._key("bc")
            amount = self.rng.choice([1, 3])
            to = self.rng.choice(self.node_ids)
            log.detail.update(amount=amount, to=to)
            op = ops.BcounterTransfer(log.key, to, amount)
        elif kind == "expire":
            log.key = self._key("ttl")
            at = self._local(node) + self.rng.choice([-1000, 500, 3000, 60_000])
            log.detail["at"] = at
            op = ops.Expire(log.key, at)
        elif kind == "persist":
            log.key = self._key("ttl")
            op = ops.Persist(log.key)
        elif kind == "flag":
            log.key = self._key("flag")
            op = ops.FlagSet(log.key, self.rng.random() < 0.6)
        elif kind.startswith("big"):
            op = self._big_collection_op(log, kind)
        else:
            log.key = self._key("hll")
            op = ops.HllAdd(log.key, (f"u{self.rng.randrange(50)}".encode(),))
        self._send_request(node, log, op, level)

    def _counting_op(self, log: OpLog, kind: str) -> ops.Operation:
        """A SET of a number no other op writes (so the checker knows which write won) or
        an increment, to a string or to one of three hash fields."""
        log.key = self._key("cstr" if kind.startswith("cstr") else "hcnt")
        field_name = f"f{self.rng.randrange(3)}".encode()
        if kind.endswith("_set"):
            value = log.id * 1000
            log.detail["set"] = value
            if kind == "cstr_set":
                return ops.StringSet(log.key, b"%d" % value)
            log.detail["field"] = field_name
            return ops.HashSet(log.key, ((field_name, b"%d" % value),))
        amount = self.rng.choice([1, 2, 3, -1])
        log.detail["amount"] = amount
        if kind == "cstr_incr":
            return ops.StringIncr(log.key, amount)
        log.detail["field"] = field_name
        return ops.HashIncr(log.key, field_name, amount)

    def _sorted_set_op(self, log: OpLog, kind: str) -> ops.Operation:
        """On ``zset`` keys, members ``c*`` count (ZADDs of scores no other op writes, and
        ZINCRBYs) and are never removed; members ``r*`` are added and removed. On ``zpop``
        keys, members no other op adds, and pops. Ranked reads of either."""
        log.key = self._key("zpop" if kind.startswith("zpop") else "zset")
        if kind == "zset_add":
            counting = self.rng.random() < 0.6
            member = f"{'c' if counting else 'r'}{self.rng.randrange(3)}".encode()
            score = float(log.id * 1000)
            log.detail.update(member=member, set=int(score))
            return ops.ZsetAdd(log.key, ((score, member),))
        if kind == "zset_incr":
            member = f"c{self.rng.randrange(3)}".encode()
            amount = self.rng.choice([1, 2, 3, -1])
            log.detail.update(member=member, amount=amount)
            return ops.ZsetIncr(log.key, member, float(amount))
        if kind == "zset_rem":
            member = f"r{self.rng.randrange(3)}".encode()
            log.detail["removed"] = member
            return ops.ZsetRemove(log.key, (member,))
        if kind == "zpop_add":
            member = f"p{log.id}".encode()
            log.detail["member"] = member
            return ops.ZsetAdd(log.key, ((float(self.rng.randrange(100)), member),))
        if kind == "zpop_pop":
            return ops.ZsetPop(log.key, self.rng.choice([1, 2]), self.rng.random() < 0.5)
        query = self.rng.choice(
            [
                Ranked(By.RANK, 0, -1, rev=self.rng.random() < 0.5),
                Ranked(By.MEMBER, member=f"c{self.rng.randrange(3)}".encode()),
                Ranked(By.SCORE, -math.inf, 5000.0, offset=1, limit=3),
                Ranked(By.SCORE, 0.0, math.inf, count_only=True),
            ]
        )
        log.detail["query"] = query
        return ops.Get(log.key, (), ranked=query.to_bytes())

    def _list_op(self, log: OpLog, kind: str) -> ops.Operation:
        """Pushes of values no other op writes, at either end; pops; LSETs of the head or
        the tail; reads of a range by rank."""
        log.key = self._key("list")
        if kind == "list_push":
            values = tuple(f"p{log.id}.{i}".encode() for i in range(self.rng.choice([1, 2])))
            log.detail["values"] = values
            return ops.ListPush(log.key, values, self.rng.random() < 0.5)
        if kind == "list_pop":
            return ops.ListPop(log.key, self.rng.choice([1, 2]), self.rng.random() < 0.5)
        if kind == "list_set":
            return ops.ListSet(log.key, self.rng.choice([0, -1]), f"s{log.id}".encode())
        query = Ranked(By.RANK, self.rng.randint(-3, 1), self.rng.randint(-1, 4))
        log.detail["query"] = query
        return ops.Get(log.key, (), ranked=query.to_bytes())

    def _big_collection_op(self, log: OpLog, kind: str) -> ops.Operation:
        """Batches of members into a few sets and hashes, so they reach thousands."""
        prefix = "bigset" if kind.startswith("bigset") else "bighash"
        log.key = f"{prefix}:{self.rng.randrange(BIG_COLLECTION_KEYS)}".encode()
        if kind in ("bigset_add", "bighash_set"):
            elements = tuple(f"m{log.id}.{i}".encode() for i in range(BIG_COLLECTION_BATCH))
            log.detail["elements"] = elements
            if kind == "bigset_add":
                return ops.SetAdd(log.key, elements)
            return ops.HashSet(log.key, tuple((e, f"v{log.id}".encode()) for e in elements))
        added = [
            element
            for o in self.ops.values()
            if o.key == log.key and o.kind in ("bigset_add", "bighash_set")
            for element in o.detail.get("elements", ())
        ]
        picked = tuple(sorted(set(self.rng.sample(added, min(len(added), 12))))) or (b"m0.0",)
        if kind == "bigset_remove":
            log.detail["elements"] = picked
            return ops.SetRemove(log.key, picked)
        if kind == "bighash_del":
            log.detail["elements"] = picked
            return ops.HashDel(log.key, picked)
        # A read of a few members, or of the size alone.
        return ops.Get(log.key, picked[:3] if self.rng.random() < 0.7 else ())

    def _send_request(self, node: str, log: OpLog, op: ops.Operation, level: Level) -> None:
        request_id = self.next_request
        self.next_request += 1
        if isinstance(op, ops.Get) and log.kind in ("obj_rmw", "obj_delete"):
            self.pending_reads[request_id] = log
        else:
            log.detail["request"] = request_id
            if isinstance(op, ops.ObjectPut | ops.Delete):
                log.detail["context"] = op.context
        self.request_owner[request_id] = log.id
        self._trace(log.key, f"t={self.now} op{log.id} {type(op).__name__} at {node} {level.value}")
        self._digest(f"request {log.id} {node} {type(op).__name__} {level.value}")
        instance = self.nodes[node]
        assert instance is not None
        self._effects(node, instance.request(Request(request_id, op, level), self._local(node)))

    def _on_reply(self, request_id: int, result: Result) -> None:
        self._digest(f"reply {request_id} {result.ok} {result.error} {_canon(result.value)}")
        if request_id in self.scripted:
            self.scripted[request_id] = result
            return
        read_for = self.pending_reads.pop(request_id, None)
        if read_for is not None:
            self._after_read(read_for, result)
            return
        op_id = self.request_owner.get(request_id)
        if op_id is None:
            return
        log = self.ops[op_id]
        if log.acked is not None:
            return
        log.acked = result.ok
        log.result = result
        log.acked_ms = self.now
        self._trace(
            log.key,
            f"t={self.now} op{log.id} -> ok={result.ok} {result.error or ''} "
            f"value={_canon(result.value)[:60]} dot={result.dot}",
        )

    def _after_read(self, log: OpLog, result: Result) -> None:
        """The second half of a read-modify-write or a delete with context."""
        if not result.ok:
            log.acked = False
            log.result = result
            self._trace(log.key, f"t={self.now} op{log.id} read failed: {result.error}")
            return
        # What the client read is what it may delete or overwrite: nothing read, nothing
        # covered (an empty context, not None, which would mean "whatever the coordinator saw").
        context = VersionVector.from_bytes(result.context) if result.context else VersionVector()
        node = log.detail["node"]
        if self.nodes.get(node) is None:
            return
        log.detail["read"] = _canon(result.value)
        op: ops.Operation
        if log.kind == "obj_delete":
            op = ops.Delete(log.key, context)
        else:
            op = ops.ObjectPut(log.key, f"v{log.id}".encode(), context)
        self._send_request(node, log, op, Level(log.detail["level"]))

    def _negative_bcounter(self, node: str, key: bytes, value: int) -> None:
        self._trace(key, f"t={self.now} {node} stores bounded counter value {value}")
        violation(self, "bounded-counter", key, f"{node} stored a bounded counter at {value} < 0")

    def _trace(self, key: bytes, line: str) -> None:
        lines = self.trace.setdefault(key, [])
        lines.append(line)
        if len(lines) > TRACE_LINES_PER_KEY_MAX:
            del lines[0]

    # --- faults ---

    def _note_fault(self, text: str) -> None:
        self.fault_trace.append(f"t={self.now} {text}")
        self._digest("fault " + text)

    def _count(self, name: str) -> None:
        self.faults_injected[name] = self.faults_injected.get(name, 0) + 1

    def _plan_faults(self) -> None:
        faults = self.config.faults
        if "skew" in faults:
            for node in self.node_ids:
                self.skew[node] = self.rng.randint(-400, 400)
            self._count("skew")
        step = 1_500
        for when in range(step, self.config.fault_phase_ms - step, step):
            options = [
                name
                for name in ("partition", "one-way", "clog", "crash", "skew", "membership")
                if name in faults
            ]
            if options:
                self._at(when + self.rng.randint(0, step // 2), ("fault", self.rng.choice(options)))

    def _fault(self, args: tuple[Any, ...]) -> None:
        name = args[0]
        nodes = self.node_ids
        if name == "membership":
            self._membership_fault()
            return
        if name == "partition":
            self.network.blocked = set()
            side = set(self.rng.sample(nodes, self.rng.randint(1, len(nodes) - 1)))
            for a in nodes:
                for b in nodes:
                    if (a in side) != (b in side):
                        self.network.blocked.add((a, b))
            self._note_fault(f"partition {sorted(side)} | {sorted(set(nodes) - side)}")
            self._at(self.now + self.rng.randint(1_000, 6_000), ("fault", "unpartition"))
        elif name == "unpartition":
            self.network.blocked = set()
            self._note_fault("partition healed")
            return
        elif name == "one-way":
            a, b = self.rng.sample(nodes, 2)
            self.network.blocked.add((a, b))
            self._note_fault(f"one-way cut {a}->{b}")
            self._at(self.now + self.rng.randint(1_000, 5_000), ("fault", "uncut", a, b))
        elif name == "uncut":
            self.network.blocked.discard((args[1], args[2]))
            return
        elif name == "clog":
            a, b = self.rng.sample(nodes, 2)
            self.network.clogged.add((a, b))
            self._note_fault(f"clog {a}->{b}")
            self._at(self.now + self.rng.randint(1_000, 4_000), ("fault", "unclog", a, b))
        elif name == "unclog":
            self.network.clogged.discard((args[1], args[2]))
            return
        elif name == "crash":
            live = [n for n in nodes if self.nodes.get(n) is not None]
            if len(live) <= 1:
                return
            victim = self.rng.choice(live)
            self.nodes[victim] = None  # volatile state gone; the store survives
            self.incarnation[victim] += 1
            self._note_fault(f"crash {victim}")
            self._at(self.now + self.rng.randint(500, 5_000), ("restart", victim))
        elif name == "skew":
            victim = self.rng.choice(nodes)
            jump = self.rng.choice([-3_000, -800, 800, 3_000, 7_000])  # 7 s: past max drift
            self.skew[victim] += jump
            self._note_fault(f"clock jump {victim} {jump:+d} ms")
        self._count(name)

    def _heal(self) -> None:
        self.network.blocked = set()
        self.network.clogged = set()
        self.network.healed = True
        for node in self.node_ids:
            self.skew[node] = 0
            if self.nodes.get(node) is None:
                self._boot(node)
        # The operator checks `eventual status`: a leave that died with the node it was run
        # on (one cut off, then killed) is run again, as anyone would.
        state = self.cluster_state()
        for node in sorted(self.leaving):
            entry = state.entries.get(node)
            if entry is not None and entry.status < MemberStatus.LEAVING:
                by = self.rng.choice([n for n in self.node_ids if n != node])
                self._note_fault(f"leave {node} again (run at {by})")
                self.leave(by, node)
        self._note_fault("heal: network whole, clocks right, every node up")
