"""The asyncio runtime: drives one ``core.Node`` with real time, sockets and disk.

Each event (a client request, a peer frame, a timer) is handed to the node; the effects it
returns are buffered, and once per event-loop turn the runtime commits the store (one SQLite
transaction: group commit) and only *then* releases the buffered replies and messages, so
nothing is acknowledged before it is on disk. Timers and the wall clock come from here.

Requests to other nodes (``Send.early``: a coordinator's writes to the other replicas, reads,
forwards) leave *before* the commit, so the replicas write, sync and acknowledge while this
node syncs its own copy: a quorum write costs one fsync's time, not two in a row. Such a
request may carry dots of a write this node then loses (killed before its commit, or power
lost with ``--durability os``), so a node must never issue those dots again: the store holds
a ``running`` mark from start to clean stop, and a node that finds it set at start (it did
not stop cleanly) takes a new actor epoch (``NodeBase.new_epoch``) before it serves, as Riak
vnodes do after a crash. Bounded-counter writes, named after the node whatever its epoch,
wait for the commit.

Internode links: each node dials every peer and sends its own messages on that connection,
after a handshake that names it and proves both ends hold the cluster secret
(``server/peer_auth.py``); it reads the messages of a peer on the connection that peer
dialled. A connection that has not finished its handshake in ``PEER_HANDSHAKE_S`` is closed,
and at most ``PEER_CONNECTIONS_MAX`` incoming ones are open at once. Frames are coalesced
per turn into one write per peer. A link that fails is redialled with exponential backoff;
while it is down, up to ``SEND_QUEUE_FRAMES_MAX`` frames wait, and older ones are dropped
beyond that (the core tolerates loss: hints and anti-entropy repair it).

What an operator asks of a node (``status``, ``local_copy``) is answered here, from the
node's counters, its store and the latencies this runtime measures; a peer asks with a
``Probe`` message (the console's cluster view, ``server/console.py``), answered outside the
core, which has no part in it. At most ``PROBES_MAX`` are awaited at once, each for
``PROBE_TIMEOUT_S``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import ssl
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

import msgpack

from eventual import BUILD, __version__
from eventual.codec import pack
from eventual.core import Effects, Node, NodeConfig, Request, Result
from eventual.core.messages import (
    ClusterGossip,
    Message,
    Probe,
    ProbeReply,
    Publish,
    Send,
    Timer,
)
from eventual.core.ops import Get
from eventual.core.record import COLLECTIONS
from eventual.core.store import Batch
from eventual.server.peer_auth import (
    CHALLENGE_BYTES,
    PeerAuthError,
    accept_frame,
    challenge_frame,
    check_accept,
    check_hello,
    hello_frame,
    is_loopback,
    read_challenge,
)
from eventual.server.pubsub import PubSub
from eventual.server.sqlite_store import SQLiteStore
from eventual.server.wire import FRAME_BYTES_MAX, WireError, decode_message, encode_message

__all__ = ["Address", "NodeRuntime"]

log = logging.getLogger("eventual.runtime")
event_log = logging.getLogger("eventual.node")
# What each event the core reports says, for a person (its fields say the rest).
_EVENT_WORDS = {
    "peer_alive": "a peer is alive",
    "peer_suspect": "a peer is suspected: it has not answered the failure detector",
    "peer_dead": "a peer is declared dead: writes for it go to fallbacks, with hints",
    "refuted": "told it was suspect or dead, this node said it is alive",
    "member_joining": "a member is joining",
    "member_active": "a member is active",
    "member_leaving": "a member is leaving: its partitions are moving",
    "member_left": "a member has left",
    "ring_changed": "a ring change finished",
    "handoff_done": "a partition was handed off",
}
_WARNING_EVENTS = frozenset({"peer_suspect", "peer_dead", "refuted"})

SEND_QUEUE_FRAMES_MAX = 100_000  # frames held for a peer that is down (~seconds of load)
BACKOFF_MS_MIN = 50
BACKOFF_MS_MAX = 5_000
HELLO_BYTES_MAX = 256  # a handshake frame: a name of at most 128 characters and 64 bytes
PEER_HANDSHAKE_S = 5.0  # a connection that has not proved itself by then is closed
# Incoming internode connections open at once: a cluster needs one per peer (and a few being
# redialled); an outsider opening thousands gets the rest refused.
PEER_CONNECTIONS_MAX = 1024
SEED_PREFIX = "seed:"  # the core's name for a seed address, until the seed tells its own
COMPACT_EVERY_MS = 50  # the store deletes a bounded number of dead rows this often
PROBES_MAX = 256  # probes of peers awaited at once (a console asks each member once a poll)
PROBE_TIMEOUT_S = 1.0  # a peer that has not answered a probe by then is reported silent
# A probe's answer: a status, or one key's copy (an object may hold 64 MiB of siblings).
PROBE_REPLY_BYTES_MAX = 80 * 1024 * 1024
STOPPING_ERROR = "ERR this node is shutting down: send the command to another node"
INSPECT_MEMBERS_MAX = 100  # members of a big collection a copy shows (the inspector's page)
# Request latency, from submission to the durable reply, in buckets by bit length of the
# microseconds: bucket b holds latencies in [2**(b-1), 2**b) µs; the last, 2**23 µs (8 s) on.
LATENCY_BUCKETS = 25


@dataclass(frozen=True, slots=True)
class Address:
    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> Address:
        host, _, port = text.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"expected HOST:PORT, got {text!r}")
        return cls(host.strip("[]"), int(port))

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


_CLOCK_SKEW_MS = 0  # --clock-skew-ms: fault tests run nodes whose clocks are wrong


def set_clock_skew(ms: int) -> None:
    """Offset this process's wall clock by ``ms`` (a fault test's stand-in for a machine
    whose clock is wrong: the node's HLC, TTLs and timestamps all follow it)."""
    global _CLOCK_SKEW_MS  # noqa: PLW0603  (one clock per process, as on a machine)
    _CLOCK_SKEW_MS = ms


def wall_ms() -> int:
    return time.time_ns() // 1_000_000 + _CLOCK_SKEW_MS


class _PeerLink:
    """The outgoing connection to one peer."""

    def __init__(self, runtime: NodeRuntime, peer: str, address: Address) -> None:
        self.runtime = runtime
        self.peer = peer
        self.address = address
        self.queue: deque[bytes] = deque()
        # The connection's transport while it is up, written to directly (StreamWriter.write
        # is Python code).
        self.transport: asyncio.WriteTransport | None = None
        self.task: asyncio.Task[None] | None = None
        self.dropped = 0
        self.wake = asyncio.Event()  # set when the peer shows signs of life: stop backing off

    def send(self, frame: bytes) -> None:
        if len(self.queue) >= SEND_QUEUE_FRAMES_MAX:
            self.queue.popleft()
            self.dropped += 1
        self.queue.append(frame)

    def flush(self) -> None:
        if self.transport is not None and self.queue:
            self.transport.write(b"".join(self.queue))
            self.queue.clear()

    async def _wait(self, backoff: int) -> int:
        self.wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.wake.wait(), backoff / 1000)
        return min(backoff * 2, BACKOFF_MS_MAX)

    async def _handshake(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Answer the peer's challenge and check its answer (``peer_auth``)."""
        secret, name = self.runtime.secret, self.runtime.node.id
        challenge = read_challenge(await _read_frame(reader))
        nonce = os.urandom(CHALLENGE_BYTES)
        writer.write(hello_frame(secret, name, challenge, nonce))
        check_accept(secret, name, challenge, nonce, await _read_frame(reader))

    async def run(self) -> None:
        backoff = BACKOFF_MS_MIN
        refused = False  # said once in the log until the handshake succeeds again
        while True:
            try:
                reader, writer = await asyncio.open_connection(
                    self.address.host,
                    self.address.port,
                    ssl=None if self.runtime.tls is None else self.runtime.tls[1],
                    ssl_handshake_timeout=None if self.runtime.tls is None else PEER_HANDSHAKE_S,
                )
            except OSError:
                backoff = await self._wait(backoff)
                continue
            try:
                await asyncio.wait_for(self._handshake(reader, writer), PEER_HANDSHAKE_S)
            except (PeerAuthError, asyncio.IncompleteReadError, TimeoutError, OSError) as error:
                if not refused:
                    log.warning(
                        "cannot authenticate with %s at %s: %s (is the cluster secret the same?)",
                        self.peer,
                        self.address,
                        error or type(error).__name__,
                    )
                    refused = True
                with contextlib.suppress(Exception):
                    writer.close()
                backoff = await self._wait(backoff)
                continue
            refused = False
            backoff = BACKOFF_MS_MIN
            self.transport = writer.transport
            self.flush()
            try:
                # The peer never sends on this connection: a read ends only when it closes.
                while await reader.read(4096):
                    pass
            except (ConnectionError, OSError):
                pass
            finally:
                self.transport = None
                with contextlib.suppress(Exception):
                    writer.close()


def unpack_limited(body: bytes, size_max: int) -> dict[str, object]:
    """A peer's msgpack answer: a map of at most ``size_max`` bytes, or ValueError."""
    if len(body) > size_max:
        raise ValueError(f"{len(body)} bytes, over {size_max}")
    try:
        value = msgpack.unpackb(body, raw=False, strict_map_key=False)
    except Exception as error:  # msgpack reports malformed bytes with several types
        raise ValueError(str(error)) from None
    if not isinstance(value, dict):
        raise ValueError("not a map")
    return value


async def _read_frame(reader: asyncio.StreamReader) -> bytes:
    size = int.from_bytes(await reader.readexactly(4), "big")
    if size > HELLO_BYTES_MAX:
        raise PeerAuthError(f"a handshake frame of {size} bytes")
    return await reader.readexactly(size)


class _PeerProtocol(asyncio.Protocol):
    """An incoming connection from a peer: the handshake (``peer_auth``), then core
    messages. Nothing but the handshake is read until the peer has proved itself."""

    def __init__(self, runtime: NodeRuntime) -> None:
        self.runtime = runtime
        self.buffer = bytearray()
        self.peer: str | None = None
        self.transport: asyncio.Transport | None = None
        self.challenge = os.urandom(CHALLENGE_BYTES)
        self.deadline: asyncio.TimerHandle | None = None
        self.counted = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        runtime = self.runtime
        if runtime.peer_connections >= PEER_CONNECTIONS_MAX:
            self._drop(f"{PEER_CONNECTIONS_MAX} internode connections are open already")
            return
        runtime.peer_connections += 1
        self.counted = True
        peername = transport.get_extra_info("peername")
        host = peername[0] if isinstance(peername, tuple) and peername else ""
        if runtime.secret is None and not is_loopback(str(host)):
            self._drop("this node has no cluster secret: it admits loopback peers only")
            return
        self.transport.write(challenge_frame(self.challenge))
        loop = asyncio.get_running_loop()
        self.deadline = loop.call_later(PEER_HANDSHAKE_S, self._drop, "no handshake in time")

    def connection_lost(self, exc: Exception | None) -> None:
        if self.counted:
            self.runtime.peer_connections -= 1
            self.counted = False
        if self.deadline is not None:
            self.deadline.cancel()

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while len(self.buffer) >= 4:
            size = int.from_bytes(self.buffer[:4], "big")
            if size > FRAME_BYTES_MAX or (self.peer is None and size > HELLO_BYTES_MAX):
                self._drop(f"frame of {size} bytes is over the limit")
                return
            if len(self.buffer) < 4 + size:
                return
            body = bytes(self.buffer[4 : 4 + size])
            del self.buffer[: 4 + size]
            if self.peer is None:
                # Any node that holds the secret may dial in: one joining through us is not a
                # member yet. What it may do before it is one, the core decides.
                try:
                    name, nonce = check_hello(self.runtime.secret, self.challenge, body)
                except PeerAuthError as refused:  # (one name per except clause, compiled)
                    self._drop(str(refused))
                    return
                assert self.transport is not None
                self.transport.write(accept_frame(self.runtime.secret, name, self.challenge, nonce))
                if self.deadline is not None:
                    self.deadline.cancel()
                self.peer = name
                link = self.runtime.links.get(name)
                if link is not None:  # it dialled us, so it is up: stop backing off
                    link.wake.set()
                continue
            try:
                message = decode_message(body)
            except WireError as error:
                self._drop(str(error))
                return
            self.runtime.receive(self.peer, message)

    def _drop(self, why: str) -> None:
        log.warning("closing internode connection from %s: %s", self.peer or "?", why)
        if self.transport is not None:
            self.transport.close()


class NodeRuntime:
    def __init__(
        self,
        config: NodeConfig,
        store: SQLiteStore,
        peer_addresses: dict[str, Address],
        listen: Address,
        *,
        region_delay_ms: dict[str, int] | None = None,
        secret: bytes | None = None,
        tls: tuple[ssl.SSLContext, ssl.SSLContext] | None = None,
    ) -> None:
        """``secret``: the cluster secret (None: protected mode, loopback peers only).
        ``peer_addresses``: the members given on the command line, and any seeds under
        ``seed:HOST:PORT`` names; members learnt later are dialled at the address the
        cluster state gives them. ``region_delay_ms`` holds frames to members of a region
        for that long: the dev cluster's stand-in for the distance between regions.
        ``tls``: contexts to serve and to dial the internode port with (None: plain TCP)."""
        self.store = store
        self.secret = secret
        self.tls = tls
        self.peer_connections = 0  # incoming internode connections open now
        self.node = Node(config, store, wall_ms())
        if store.meta("running") == b"1":  # it did not stop cleanly: see the module docstring
            log.warning("%s did not stop cleanly: writing under a new actor epoch", config.node)
            self.node.new_epoch()
        store.apply(Batch(meta={"running": b"1"}))
        store.commit()  # the new epoch is durable before any dot of it can leave
        self.listen = listen
        self.links = {
            peer: _PeerLink(self, peer, address) for peer, address in peer_addresses.items()
        }
        self._membership_seen = -1
        self.region_delay_ms = dict(region_delay_ms or {})
        # Peers cut off by a test (POST /debug/partition, with --fault-injection): frames to
        # and from them are dropped, as a network partition would.
        self.blocked: set[str] = set()
        self.pending_replies: dict[int, tuple[Callable[[Result], None], int, list[int]]] = {}
        self.latency = {"read": [0] * LATENCY_BUCKETS, "write": [0] * LATENCY_BUCKETS}
        self.started_ns = time.monotonic_ns()
        self.probes: dict[int, asyncio.Future[dict[str, object]]] = {}
        self.pubsub = PubSub()  # this node's Redis subscribers (``server/pubsub.py``)
        self.next_probe = 1
        self.next_request = 1
        self._buffer = Effects()
        self._flush_scheduled = False
        self._after_turn: list[Callable[[], None]] = []  # (``after_turn``)
        self._replying = False
        self._server: asyncio.Server | None = None
        self.stopped = False
        self.loop: asyncio.AbstractEventLoop | None = None

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._server = await self.loop.create_server(
            lambda: _PeerProtocol(self),
            self.listen.host,
            self.listen.port,
            ssl=None if self.tls is None else self.tls[0],
            ssl_handshake_timeout=None if self.tls is None else PEER_HANDSHAKE_S,
        )
        self._sync_links()
        self._absorb(self.node.start(wall_ms()))
        self._compact()

    def _sync_links(self) -> None:
        """Dial members the cluster state names (new ones, or ones at a new address)."""
        if self.node.membership_version == self._membership_seen:
            return  # every turn comes here: nothing changed, nothing to do
        self._membership_seen = self.node.membership_version
        for entry in self.node.cluster.entries.values():
            if entry.node == self.node.id or not entry.address:
                continue
            try:
                address = Address.parse(entry.address)
            except ValueError:
                continue  # a bad address from a peer: it is not dialled, nothing else
            link = self.links.get(entry.node)
            if link is not None and link.address == address:
                continue
            if link is not None and link.task is not None:
                link.task.cancel()
            self.links[entry.node] = _PeerLink(self, entry.node, address)
        for link in self.links.values():
            if link.task is None:
                link.task = asyncio.create_task(link.run())

    def _send_late(self, frames: list[tuple[_PeerLink, bytes]]) -> None:
        for link, frame in frames:
            link.send(frame)
        for link in {id(link): link for link, _ in frames}.values():
            link.flush()

    def membership_changed(self) -> None:
        """An admin command changed the cluster state: persist it and dial new members at
        the end of this turn."""
        self._absorb(Effects())

    def _compact(self) -> None:
        if self.stopped or self.loop is None:
            return
        if self.store.compact():
            self._absorb(Effects())  # commit the deletions at the end of this turn
        self.loop.call_later(COMPACT_EVERY_MS / 1000, self._compact)

    async def stop(self) -> None:
        self.stopped = True
        for link in self.links.values():
            if link.task is not None:
                link.task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await link.task
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        self._flush()
        self.store.apply(Batch(meta={"running": b"0"}))
        self.store.close()

    # --- into the node ---

    def request(self, request_op: Request, callback: Callable[[Result], None]) -> None:
        """Submit a client request; ``callback`` gets the result after it is durable."""
        if self.stopped:
            # A client connected before the ports closed may still send: its store is gone.
            callback(Result(False, error=STOPPING_ERROR))
            return
        request_id = self.next_request
        self.next_request += 1
        # Every operation but Get changes something (by type: an isinstance of the Mutation
        # union would try twenty types).
        latency = self.latency["read" if type(request_op.op) is Get else "write"]
        self.pending_replies[request_id] = (callback, time.perf_counter_ns(), latency)
        # The caller's request is its own to give: numbered in place, not copied. And
        # ``_guarded`` written out, as in ``receive``: one request is one call, no closure.
        request_op.id = request_id
        try:
            effects = self.node.request(request_op, wall_ms())
        except Exception:  # a bug must not take the node down: log it and keep serving
            log.exception("the node failed to handle an event")
            return
        self._absorb(effects)

    def publish(self, channel: bytes, message: bytes) -> int:
        """PUBLISH: this node's subscribers now, and one ``Publish`` to each peer that is up
        for theirs (``server/pubsub.py``); how many subscribers here received it."""
        delivered = self.pubsub.deliver(channel, message)
        if self.stopped:
            return delivered
        node = self.node
        publish = Publish(channel, message)  # one object: ``_send`` encodes it once
        effects = Effects()
        for peer in node.peers:
            if node.up(peer):
                effects.send(peer, publish)
        if effects.sends:
            self._absorb(effects)  # sent with the turn's other messages, one write a peer
        return delivered

    def keys_page(self, cursor: int, count: int, callback: Callable[[Result], None]) -> None:
        """A page of the cluster's keys from ``cursor`` (``core/keyspace.py``)."""
        if self.stopped:
            callback(Result(False, error=STOPPING_ERROR))
            return
        request_id = self.next_request
        self.next_request += 1
        self.pending_replies[request_id] = (callback, time.perf_counter_ns(), self.latency["read"])
        try:
            effects = self.node.keys_page(request_id, cursor, count, wall_ms())
        except Exception:  # a bug must not take the node down: log it and keep serving
            log.exception("the node failed to handle an event")
            return
        self._absorb(effects)

    def receive(self, peer: str, message: Message) -> None:
        if peer in self.blocked:
            return
        kind = type(message)
        if kind is Probe or kind is ProbeReply:
            self._on_probe(peer, message)
            return
        if kind is Publish:
            publish = cast(Publish, message)
            self.pubsub.deliver(publish.channel, publish.message)
            return
        # Only gossip can refuse cluster-state entries: the count is read around it alone.
        gossip = kind is ClusterGossip
        refused = self.node.stats["refused_generation"] if gossip else 0
        try:  # (``_guarded``, written out: no closure per message)
            effects = self.node.receive(peer, message, wall_ms())
        except Exception:  # a bug must not take the node down: log it and keep serving
            log.exception("the node failed to handle an event")
        else:
            self._absorb(effects)
        if gossip and self.node.stats["refused_generation"] > refused:
            log.warning(
                "refused cluster-state entries from %s: a generation further ahead than a "
                "member can go (a forgery or a corruption)",
                peer,
            )

    def _timers(self, timers: list[Timer]) -> None:
        if self.stopped:
            return
        now = wall_ms()
        for timer in timers:
            self._guarded(functools.partial(self.node.timer, timer, now))

    def _guarded(self, step: Callable[[], Effects]) -> None:
        try:
            effects = step()
        except Exception:  # a bug must not take the node down: log it and keep serving
            log.exception("the node failed to handle an event")
            return
        self._absorb(effects)

    def _absorb(self, effects: Effects) -> None:
        buffered = self._buffer
        if effects.sends:
            buffered.sends += effects.sends
        if effects.replies:
            buffered.replies += effects.replies
        if effects.timers:
            buffered.timers += effects.timers
        self._schedule()

    def _schedule(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            assert self.loop is not None
            self.loop.call_soon(self._flush)

    def after_turn(self, flush: Callable[[], None]) -> None:
        """Run ``flush`` at the end of this turn, after its replies are released: the
        client connections' reply writes, one call each, without an event-loop callback
        of their own per connection per turn (``call_soon`` makes a handle each time)."""
        if self.stopped or self.loop is None:  # no turns any more: a callback of its own
            asyncio.get_running_loop().call_soon(flush)
            return
        self._after_turn.append(flush)
        if not self._replying:  # (while replies are released, this turn runs it: no other)
            self._schedule()

    def _flush(self) -> None:
        """End of turn: requests to other nodes, the commit, then replies, the other
        messages and timers."""
        self._flush_scheduled = False
        effects, self._buffer = self._buffer, Effects()
        self._sync_links()  # dial members learnt this turn (connecting sends nothing yet)
        sends = effects.sends
        if any(send.early for send in sends):
            self._send([send for send in sends if send.early])
            sends = [send for send in sends if not send.early]
        self.store.commit()
        self._send(sends)
        if self.node.events:
            self._log_events()
        if effects.replies:
            now = time.perf_counter_ns()
            last = LATENCY_BUCKETS - 1
            self._replying = True  # what the callbacks hand ``after_turn`` runs below
            try:
                for reply in effects.replies:
                    entry = self.pending_replies.pop(reply.request_id, None)
                    if entry is not None:
                        callback, started, latency = entry
                        latency[min(((now - started) // 1000).bit_length(), last)] += 1
                        callback(reply.result)
            finally:
                self._replying = False
        if self._after_turn:
            # What these add (a protocol's later replies) waits for the next turn.
            flushes, self._after_turn = self._after_turn, []
            for flush in flushes:
                try:
                    flush()
                except Exception:  # one connection's failure must not hold the others'
                    log.exception("a connection failed to send its replies")
        loop = self.loop
        if loop is not None and not self.stopped and effects.timers:
            # One event-loop timer per delay a turn asks for, not one per timer: every write
            # asks for its timeout, and the timers of one turn with one delay fire together
            # anyway.
            by_delay: dict[int, list[Timer]] = {}
            for delay, timer in effects.timers:
                timers = by_delay.get(delay)
                if timers is None:
                    by_delay[delay] = [timer]
                else:
                    timers.append(timer)
            for delay, timers in by_delay.items():
                loop.call_later(delay / 1000, self._timers, timers)

    def _log_events(self) -> None:
        """One line each for what the core reported this turn (``server/logs.py``)."""
        events = self.node.events
        while events:
            name, fields = events.popleft()
            level = logging.WARNING if name in _WARNING_EVENTS else logging.INFO
            event_log.log(
                level, _EVENT_WORDS.get(name, name), extra={"event": name, "fields": fields}
            )

    # --- what an operator asks (the console) ---

    def status(self) -> dict[str, object]:
        """This node's counters and measurements (cumulative: a reader takes differences)."""
        node = self.node
        entry = node.cluster.entries.get(node.id)
        return {
            "node": node.id,
            "region": node.region,
            "zone": "" if entry is None else entry.zone,
            "version": __version__,
            "build": BUILD,
            "uptime_ms": (time.monotonic_ns() - self.started_ns) // 1_000_000,
            "requests": {kind: sum(buckets) for kind, buckets in self.latency.items()},
            "latency_us_buckets": {kind: list(b) for kind, b in self.latency.items()},
            "events": dict(node.stats),
            "visibility": {peer: list(b) for peer, b in node.visibility.items()},
            "visibility_ms": dict(node.visibility_ms),
            "in_flight": len(node.pending),
            "keys": self.store.count(),
            "hints": self.store.hint_count(),
            "handoff": node.handoff_status(),
            "commits": self.store.commits,
            "links": {
                peer: {
                    "connected": link.transport is not None,
                    "queued": len(link.queue),
                    "dropped": link.dropped,
                }
                for peer, link in sorted(self.links.items())
                if not peer.startswith(SEED_PREFIX)
            },
        }

    def local_copy(self, key: bytes) -> dict[str, object]:
        """This node's own copy of ``key`` (its record, or the hint it holds), encoded."""
        node = self.node
        partition = node.ring.partition_of(key)
        record = node.records.get(key)  # the cached object: read, never changed, here
        if record is not None:
            size = record.size()
            answer: dict[str, object] = {
                "held": "replica",
                "partition": partition,
                "version": record.digest(),
                "members": size,
            }
            if record.kind in COLLECTIONS and size > INSPECT_MEMBERS_MAX:
                # A big collection: its first members only (the cost of a page, not of it).
                page, _ = record.scan_page(0, INSPECT_MEMBERS_MAX)
                answer.update(record=page.to_bytes(), page=True)
            else:
                answer["record"] = record.to_bytes()
            return answer
        hint = self.store.hint(key)
        if hint is None:
            return {"held": None, "partition": partition}
        return {
            "held": "hint",
            "record": hint.record,
            "owed_to": sorted(hint.targets),
            "partition": partition,
        }

    def _answer(self, what: str, key: bytes) -> dict[str, object]:
        if what == "status":
            return self.status()
        if what == "key":
            return self.local_copy(key)
        return {"error": f"unknown probe {what!r}"}

    def _on_probe(self, peer: str, message: Message) -> None:
        if isinstance(message, Probe):
            body = pack(self._answer(message.what, message.key))
            link = self.links.get(peer)
            if link is not None:
                link.send(encode_message(ProbeReply(message.id, body)))
                link.flush()
        elif isinstance(message, ProbeReply):
            waiting = self.probes.pop(message.id, None)
            if waiting is None or waiting.done():
                return
            try:
                answer = unpack_limited(message.body, PROBE_REPLY_BYTES_MAX)
            except ValueError as bad:
                answer = {"error": f"a bad answer: {bad}"}
            waiting.set_result(answer)

    async def ask(self, peer: str, what: str, key: bytes = b"") -> dict[str, object]:
        """Ask ``peer`` (this node too) what ``status`` or ``local_copy`` say there; an
        ``{"error": ...}`` if it does not answer within ``PROBE_TIMEOUT_S``."""
        if peer == self.node.id:
            return self._answer(what, key)
        link = self.links.get(peer)
        if link is None or link.transport is None or peer in self.blocked:
            return {"error": "not connected"}
        if len(self.probes) >= PROBES_MAX:
            return {"error": "too many probes in flight"}
        probe_id = self.next_probe
        self.next_probe += 1
        future: asyncio.Future[dict[str, object]] = asyncio.get_running_loop().create_future()
        self.probes[probe_id] = future
        link.send(encode_message(Probe(probe_id, what, key)))
        link.flush()
        try:
            return await asyncio.wait_for(future, PROBE_TIMEOUT_S)
        except TimeoutError:
            return {"error": f"no answer within {PROBE_TIMEOUT_S} s"}
        finally:
            self.probes.pop(probe_id, None)

    def _send(self, sends: list[Send]) -> None:
        delayed: dict[int, list[tuple[_PeerLink, bytes]]] = {}
        # One message sent to several nodes (a write to its replicas) is encoded once: the
        # core sends the same object to each.
        last: Message | None = None
        frame = b""
        for send in sends:
            link = self.links.get(send.to)
            if link is None or send.to in self.blocked:
                continue
            if send.message is not last:
                last = send.message
                frame = encode_message(last)
            delay = self.region_delay_ms.get(self.node.region_of.get(send.to, ""), 0)
            if delay:
                delayed.setdefault(delay, []).append((link, frame))
            else:
                link.send(frame)
        for link in self.links.values():
            link.flush()
        if delayed and self.loop is not None:
            # A fixed delay per destination region keeps each link's frames in order.
            for delay, frames in delayed.items():
                self.loop.call_later(delay / 1000, self._send_late, frames)
