"""What goes in and out of a node: small frozen dataclasses.

Inputs: a ``Request`` from a client, a peer message, a timer. Outputs (``Effects``): messages
to send, replies to clients, timers to set (as delays, so the driver's clock is the only
clock). Records travel encoded (``bytes``), exactly as stored, so a peer's garbage is caught
by the one strict decoder.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from eventual.core.consistency import Level
from eventual.core.membership import MemberEntry
from eventual.core.ops import Operation
from eventual.core.swim import SwimAck, SwimPing, SwimPingReq

__all__ = [
    "AeGroups",
    "AeKeySync",
    "AeLeaves",
    "AePush",
    "AeRecords",
    "AeRoot",
    "ClusterGossip",
    "Effects",
    "Forward",
    "ForwardReply",
    "HintAck",
    "HintHandoff",
    "KeysRead",
    "KeysReply",
    "Message",
    "Probe",
    "ProbeReply",
    "Publish",
    "ReadReply",
    "ReapAck",
    "ReapCheck",
    "ReapCommit",
    "ReplicaRead",
    "ReplicaWrite",
    "Reply",
    "Request",
    "Result",
    "Send",
    "Timer",
    "WriteAck",
]


@dataclass(slots=True)  # not frozen: built on every request (see core/ops.py)
class Request:
    """A client request. ``n``/``r``/``w`` override the level's counts when given."""

    id: int
    op: Operation
    level: Level = Level.QUORUM
    n: int | None = None
    r: int | None = None
    w: int | None = None

    # Written out, here and on the other classes made per request: a dataclass's generated
    # ``__init__`` is Python code even in the compiled build, where this one is compiled
    # (about a third of a microsecond saved per object; a SET makes a dozen). Positional,
    # as a dataclass's: the wire builds messages from their fields in order.
    def __init__(  # noqa: PLR0917
        self,
        id: int,
        op: Operation,
        level: Level = Level.QUORUM,
        n: int | None = None,
        r: int | None = None,
        w: int | None = None,
    ) -> None:
        self.id = id
        self.op = op
        self.level = level
        self.n = n
        self.r = r
        self.w = w


@dataclass(slots=True)  # not frozen: built on every request, and frozen inits cost 3x
class Result:
    ok: bool
    value: Any = None
    error: str | None = None
    context: bytes | None = None  # objects: the encoded causal context to write back with
    dot: tuple[str, int] | None = None  # object writes: the new dot; strings: (actor, HLC)
    supersedes: tuple[str, int] | None = None  # strings: the write this one replaced
    answered: int = 0  # how many replicas answered
    kind: str | None = None  # reads of a present key: its type ("string", "set", ...)
    expire_at: int | None = None  # reads of a present key: its expiry time in ms, if any
    state: bytes | None = None  # reads of a HyperLogLog or bounded counter: its encoded state
    size: int | None = None  # reads of a collection's size (ops.Get with members=())
    cursor: int | None = None  # page reads: where the next page starts (0: the end)
    position: int | None = None  # ranked reads (ops.Get.ranked): a rank, or a count

    def __init__(  # noqa: PLR0917  (written out, positional: see Request)
        self,
        ok: bool,
        value: Any = None,
        error: str | None = None,
        context: bytes | None = None,
        dot: tuple[str, int] | None = None,
        supersedes: tuple[str, int] | None = None,
        answered: int = 0,
        kind: str | None = None,
        expire_at: int | None = None,
        state: bytes | None = None,
        size: int | None = None,
        cursor: int | None = None,
        position: int | None = None,
    ) -> None:
        self.ok = ok
        self.value = value
        self.error = error
        self.context = context
        self.dot = dot
        self.supersedes = supersedes
        self.answered = answered
        self.kind = kind
        self.expire_at = expire_at
        self.state = state
        self.size = size
        self.cursor = cursor
        self.position = position


@dataclass(slots=True)  # not frozen: see ReplicaWrite
class Forward:
    """A mutation sent to a primary replica to coordinate (its dots must come from a
    replica that holds all of its own earlier dots for the key)."""

    id: int
    request: Request


@dataclass(slots=True)  # not frozen: see ReplicaWrite
class ForwardReply:
    id: int
    result: Result


# Not frozen, like every message made per request: the compiled build makes a frozen
# dataclass through Python code (``object.__setattr__`` per field), at several times the cost.
@dataclass(slots=True)
class ReplicaWrite:
    """Merge ``record`` (a delta or a full state); ``hint_for`` names the primary a
    fallback holds it for. ``hlc`` is the coordinator's clock, checked for drift."""

    id: int
    key: bytes
    record: bytes
    hlc: int
    hint_for: str | None = None

    def __init__(  # written out: see Request
        self,
        id: int,
        key: bytes,
        record: bytes,
        hlc: int,
        hint_for: str | None = None,
    ) -> None:
        self.id = id
        self.key = key
        self.record = record
        self.hlc = hlc
        self.hint_for = hint_for


@dataclass(frozen=True, slots=True)
class KeysRead:
    """Send back the live keys this replica holds in ``partition`` from the key-hash
    position ``cursor`` on, in that order: up to ``count`` (``core/keyspace.py``)."""

    id: int
    partition: int
    cursor: int
    count: int


@dataclass(frozen=True, slots=True)
class KeysReply:
    """A page of a partition's keys, each with its kind's name; the page is exact below the
    position ``upto`` (0: to the partition's end). ``held``: keys of the partition this
    replica holds, live or not (DBSIZE)."""

    id: int
    keys: tuple[tuple[bytes, str], ...]
    upto: int
    held: int


@dataclass(slots=True)  # not frozen: see ReplicaWrite
class WriteAck:
    id: int
    error: str | None = None

    def __init__(self, id: int, error: str | None = None) -> None:
        self.id = id
        self.error = error


@dataclass(slots=True)  # not frozen: see ReplicaWrite
class ReplicaRead:
    """Send back the record of ``key`` (``members``: projected to them, ``ops.Get``)."""

    id: int
    key: bytes
    members: tuple[bytes, ...] | None = None
    cursor: int | None = None  # a page of a collection (``ops.Get``)
    count: int = 0
    ranked: bytes | None = None  # a ranked read of a sorted set (``ops.Get``)

    def __init__(  # noqa: PLR0917  (written out: see Request)
        self,
        id: int,
        key: bytes,
        members: tuple[bytes, ...] | None = None,
        cursor: int | None = None,
        count: int = 0,
        ranked: bytes | None = None,
    ) -> None:
        self.id = id
        self.key = key
        self.members = members
        self.cursor = cursor
        self.count = count
        self.ranked = ranked


@dataclass(slots=True)  # not frozen: see ReplicaWrite
class ReadReply:
    """``size`` and ``digest`` of the whole record come with a projection: replicas whose
    digests agree agree on the size too. ``cursor``: where this replica's page ended;
    ``position``: a ranked read's position (``crdt.zset.SortedSet.select``)."""

    id: int
    record: bytes | None
    size: int = 0
    digest: int = 0
    cursor: int = 0
    position: int = 0

    def __init__(  # noqa: PLR0917  (written out: see Request)
        self,
        id: int,
        record: bytes | None,
        size: int = 0,
        digest: int = 0,
        cursor: int = 0,
        position: int = 0,
    ) -> None:
        self.id = id
        self.record = record
        self.size = size
        self.digest = digest
        self.cursor = cursor
        self.position = position


@dataclass(frozen=True, slots=True)
class HintHandoff:
    key: bytes
    record: bytes


@dataclass(frozen=True, slots=True)
class HintAck:
    key: bytes
    record_hash: int


@dataclass(frozen=True, slots=True)
class AeRoot:
    partition: int
    groups: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class AeGroups:
    partition: int
    groups: tuple[tuple[int, tuple[int, ...]], ...]  # (group, its leaf hashes)


@dataclass(frozen=True, slots=True)
class AeLeaves:
    partition: int
    leaves: tuple[tuple[int, tuple[tuple[bytes, int], ...]], ...]  # (leaf, (key, hash)...)


@dataclass(frozen=True, slots=True)
class AePush:
    partition: int
    records: tuple[tuple[bytes, bytes], ...]
    want: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class AeRecords:
    partition: int
    records: tuple[tuple[bytes, bytes], ...]


@dataclass(frozen=True, slots=True)
class AeKeySync:
    """Anti-entropy of one big collection, member by member (``Node._on_ae_key_sync``):
    the sender's *head* of ``key`` (incarnation, causal context, TTL: what it has seen) and
    its digest. The receiver sends back the members whose dots the sender has not seen
    and, unless this is the ``answer``, its own AeKeySync, so the sender does the same."""

    partition: int
    key: bytes
    head: bytes
    digest: int
    answer: bool = False


@dataclass(frozen=True, slots=True)
class ReapCheck:
    """May this tombstone go? Yes if the receiver holds exactly the same bytes."""

    key: bytes
    record_hash: int


@dataclass(frozen=True, slots=True)
class ReapAck:
    key: bytes
    record_hash: int
    same: bool


@dataclass(frozen=True, slots=True)
class ReapCommit:
    key: bytes
    record_hash: int


@dataclass(frozen=True, slots=True)
class ClusterGossip:
    """The sender's whole cluster state (a few hundred bytes a member)."""

    entries: tuple[MemberEntry, ...]


@dataclass(frozen=True, slots=True)
class Probe:
    """An operator's question to a peer (the console's, ``server/console.py``), answered by
    the peer's runtime, not its core: ``what`` is ``status`` (its counters and latencies) or
    ``key`` (its own copy of ``key``)."""

    id: int
    what: str
    key: bytes


@dataclass(frozen=True, slots=True)
class Publish:
    """A Redis PUBLISH made at the sender, for the receiver's own subscribers: delivered by
    the runtime (``server/pubsub.py``), not the core; nothing is stored."""

    channel: bytes
    message: bytes


@dataclass(frozen=True, slots=True)
class ProbeReply:
    id: int
    body: bytes  # msgpack: the answer, or {"error": ...}


Message = (
    SwimPing
    | SwimAck
    | SwimPingReq
    | Forward
    | ForwardReply
    | ReplicaWrite
    | WriteAck
    | ReplicaRead
    | ReadReply
    | HintHandoff
    | HintAck
    | AeRoot
    | AeGroups
    | AeLeaves
    | AePush
    | AeRecords
    | ReapCheck
    | ReapAck
    | ReapCommit
    | ClusterGossip
    | AeKeySync
    | Probe
    | ProbeReply
    | KeysRead
    | KeysReply
    | Publish
)


@dataclass(frozen=True, slots=True)
class Timer:
    """``name`` is a periodic duty (swim, handoff, anti_entropy, reap) or ``timeout``
    for the pending operation ``id``."""

    name: str
    id: int = 0


@dataclass(slots=True)  # Send and Reply: one per message and per request, never hashed
class Send:
    """``early``: the message carries nothing this node must have made durable first, so a
    driver that commits its store once per turn may send it before that commit (a request to
    other replicas, whose writing and acknowledging then overlaps the commit). It holds no
    dot this node could issue again after losing the turn: the runtime moves a node that
    stopped uncleanly to a new actor epoch before it serves (``server/runtime.py``), and
    bounded-counter writes, whose actor is the node itself, are never early."""

    to: str
    message: Message
    early: bool = False

    def __init__(self, to: str, message: Message, early: bool = False) -> None:  # see Request
        self.to = to
        self.message = message
        self.early = early


@dataclass(slots=True)
class Reply:
    request_id: int
    result: Result

    def __init__(self, request_id: int, result: Result) -> None:  # written out: see Request
        self.request_id = request_id
        self.result = result


@dataclass(slots=True)
class Effects:
    sends: list[Send] = field(default_factory=list)
    replies: list[Reply] = field(default_factory=list)
    timers: list[tuple[int, Timer]] = field(default_factory=list)  # (delay ms, timer)

    def __init__(self) -> None:  # written out: see Request
        self.sends = []
        self.replies = []
        self.timers = []

    def send(self, to: str, message: Message, *, early: bool = False) -> None:
        self.sends.append(Send(to, message, early))

    def reply(self, request_id: int, result: Result) -> None:
        self.replies.append(Reply(request_id, result))

    def after(self, delay_ms: int, timer: Timer) -> None:
        self.timers.append((delay_ms, timer))
