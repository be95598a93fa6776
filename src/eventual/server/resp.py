"""The Redis protocol front end (RESP2, and RESP3 after ``HELLO 3``).

Requests are arrays of bulk strings or inline commands, parsed incrementally as they arrive
(hiredis's reader: ``RequestReader``); commands start in order, at most
``COMMANDS_PER_TURN`` of one client's per event-loop turn, and replies go out in order, in one
write per turn (pipelining). Malformed input gets Redis's own words (``-ERR Protocol error:
...``) and, where the stream is out of sync, a closed connection; other clients are untouched.
What a client may make the node hold is bounded by ``limits.ClientLimits``; users and roles
come from ``users`` (``docs/security.md``).

Semantics are those of DESIGN.md §2, mapped onto core operations:

- strings are LWW registers; ``SET`` with ``NX``/``XX``/``GET``, ``APPEND`` and ``STRLEN``
  read and then write (not atomic: a concurrent writer can interleave, as with any
  leaderless store);
- strings count: ``INCR`` and friends add to a string holding an integer, increments made
  at the same time on different nodes all count, and a ``SET`` overrides the increments it
  has seen (``crdt/lwwregister.py``); the same for hash fields (``HINCRBY``);
- sets, hashes and HyperLogLogs are the CRDTs of the same names; ``DEL`` is observed-remove;
- ``CONSISTENCY <level>`` sets the level of the connection's requests, as in cqlsh
  (default ``QUORUM``); ``BC.*`` commands work bounded counters (see ``docs/redis.md``).
- ``MULTI``/``EXEC`` queue commands and run them in order, each once the one before has
  replied (not isolated from other clients: ``docs/redis.md``); ``WATCH`` is refused;
- commands that read and then write (``SETNX``, ``GETDEL``, ``SMOVE``, ``SPOP``, ...) are
  composed of the core's reads and writes, and are no more atomic than ``SET NX``;
- pub/sub is cluster-wide: PUBLISH at any node reaches the subscribers of every node
  (``server/pubsub.py``);
- ``KEYS``, ``SCAN``, ``DBSIZE``, ``RANDOMKEY`` and ``FLUSHDB``/``FLUSHALL`` answer for the
  whole cluster, reading the keyspace page by page in hash order (``core/keyspace.py``);
- ``SSCAN``/``HSCAN`` page through a collection in an order every replica shares, and
  ``SMEMBERS``/``HGETALL`` read a big one page by page (``docs/redis.md``).
"""

from __future__ import annotations

import asyncio
import fnmatch
import itertools
import logging
import math
import os
import platform
import random as _random
import resource
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar, cast, overload

import hiredis

from eventual import BUILD, __version__
from eventual.core import Level, Request, Result
from eventual.core import ops as O  # noqa: N812  (short: the command table reads better)
from eventual.core.keyspace import KEYS_PAGE_MAX
from eventual.core.ops import INT64_MAX, INT64_MIN
from eventual.core.route import NOT_SERVING
from eventual.crdt import BoundedCounter, HyperLogLog
from eventual.crdt.lwwregister import as_float, as_integer
from eventual.server.limits import Clients
from eventual.server.objects import decode_object
from eventual.server.runtime import NodeRuntime, wall_ms
from eventual.server.users import NOBODY_ASKED, Role, User, Users

__all__ = ["RespServerProtocol"]

log = logging.getLogger("eventual.resp")

REDIS_VERSION = "7.0.0"  # the Redis whose commands and replies the face follows
INLINE_BYTES_MAX = 64 * 1024  # Redis's limit on an inline command line
PIPELINE_MAX = 10_000  # commands awaiting a reply per connection; beyond, reading pauses
# A command on many keys has at most this many of their operations in flight at once, and one
# on many members writes them this many at a time: each event-loop turn then does a bounded
# amount of one client's work, and other clients' commands run between (PING stays fast
# while someone runs SADD with a million members; see ``RespServerProtocol.call_sliced``).
GATHER_WINDOW = 128
COMMANDS_PER_TURN = 128  # of one client's pipeline, per event-loop turn
ITEMS_PER_OP = 250


Reply = bytes
Done = Callable[[Reply], None]


class ProtocolError(Exception):
    pass


class CommandError(Exception):
    """A command-level error: the client gets ``-<message>`` and the connection lives."""


# --- encoding ---


def simple(text: str) -> bytes:
    return b"+" + text.encode() + b"\r\n"


_OK = simple("OK")


def _ok(result: Result) -> bytes:
    return _OK


def error(text: str) -> bytes:
    return b"-" + text.replace("\r", " ").replace("\n", " ").encode() + b"\r\n"


def integer(value: int) -> bytes:
    return b":%d\r\n" % value


def bulk(value: bytes | None, resp3: bool) -> bytes:
    if value is None:
        return b"_\r\n" if resp3 else b"$-1\r\n"
    return b"$%d\r\n%s\r\n" % (len(value), value)


def array(items: list[bytes], marker: bytes = b"*") -> bytes:
    return marker + b"%d\r\n" % len(items) + b"".join(items)


def mapping(pairs: list[tuple[bytes, bytes]], resp3: bool) -> bytes:
    """A RESP3 map of encoded keys and values, or a flat RESP2 array of them."""
    if resp3:
        return b"%%%d\r\n" % len(pairs) + b"".join(k + v for k, v in pairs)
    return array([part for pair in pairs for part in pair])


def as_bytes(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, bool):
        return b"1" if value else b"0"
    return str(value).encode()


def parse_int(raw: bytes) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise CommandError("ERR value is not an integer or out of range") from None
    if not -(2**63) <= value < 2**63:
        raise CommandError("ERR value is not an integer or out of range")
    return value


# --- parsing ---


_MORE = object()  # hiredis's answer when a command is not complete yet


class RequestReader:
    """Requests off a byte stream, incrementally: what arrives is parsed once, never again.

    Multibulk requests (what every client library sends) go through hiredis's reader, in C;
    inline commands (a person at ``telnet``) are split here, line by line. Like Redis, a
    connection reads inline commands until its first multibulk one; from then on it speaks
    multibulk only (a stray inline line after that is a protocol error: no client mixes them).
    """

    def __init__(self) -> None:
        self.reader = hiredis.Reader(notEnoughData=_MORE)
        self.inline = bytearray()
        self.multibulk = False

    def feed(self, data: bytes) -> list[list[bytes]]:
        """The commands that ``data`` completes; ProtocolError when the stream is bad."""
        commands: list[list[bytes]] = []
        if not self.multibulk:
            self.inline += data
            data = self._inline(commands)
            if not data:
                return commands
            self.multibulk = True
        reader = self.reader
        try:
            reader.feed(data)
            while (item := reader.gets()) is not _MORE:
                if item:  # "*0" and "*-1" are ignored, as Redis does
                    commands.append(_arguments(item))
        except hiredis.ProtocolError as problem:
            raise ProtocolError(_redis_words(str(problem))) from None
        return commands

    def _inline(self, commands: list[list[bytes]]) -> bytes:
        """Take complete inline lines; return the rest if a multibulk command begins."""
        buffer = self.inline
        end = buffer.rfind(b"\n")
        if end < 0 or buffer[:1] == b"*":
            if buffer[:1] == b"*":
                rest = bytes(buffer)
                buffer.clear()
                return rest
            if len(buffer) > INLINE_BYTES_MAX:
                raise ProtocolError("Protocol error: too big inline request")
            return b""
        lines = bytes(buffer[:end]).split(b"\n")  # split in C: a read of lines costs little
        for index, line in enumerate(lines):
            if line[:1] == b"*":  # a multibulk command begins: the rest is hiredis's
                rest = b"\n".join(lines[index:]) + bytes(buffer[end:])
                buffer.clear()
                return rest
            text = line.rstrip(b"\r")
            if text.strip():
                commands.append(split_inline(text))
        del buffer[: end + 1]
        if len(buffer) > INLINE_BYTES_MAX:
            raise ProtocolError("Protocol error: too big inline request")
        return b""


def _arguments(item: Any) -> list[bytes]:
    if not isinstance(item, list):
        raise ProtocolError("Protocol error: expected '*'")
    if set(map(type, item)) != {bytes}:  # in C: a million arguments cost milliseconds
        for argument in item:
            if not isinstance(argument, bytes):
                kind = {int: ":", list: "*", type(None): "$-1"}.get(type(argument), "+")
                raise ProtocolError(f"Protocol error: expected '$', got '{kind}'")
    return item


def _redis_words(problem: str) -> str:
    """hiredis's words for a bad stream, as Redis says them."""
    if "multi-bulk" in problem.lower():
        return "Protocol error: invalid multibulk length"
    if "bulk" in problem.lower():
        return "Protocol error: invalid bulk length"
    return f"Protocol error: {problem.removeprefix('Protocol error, ')}"


def split_inline(line: bytes) -> list[bytes]:
    if b'"' not in line and b"'" not in line:
        return line.split()  # no quotes: whitespace splits, as Redis's sdssplitargs does
    args: list[bytes] = []
    current = bytearray()
    quote: int | None = None
    has_token = False
    for byte in line:
        if quote is not None:
            if byte == quote:
                quote = None
            else:
                current.append(byte)
        elif byte in b"\"'":
            quote = byte
            has_token = True
        elif byte in b" \t":
            if has_token:
                args.append(bytes(current))
                current.clear()
                has_token = False
        else:
            current.append(byte)
            has_token = True
    if quote is not None:
        raise ProtocolError("Protocol error: unbalanced quotes in request")
    if has_token:
        args.append(bytes(current))
    return args


# --- the connection ---


_CLIENT_IDS = itertools.count(1)  # CLIENT ID: one per connection, in this process


class RespServerProtocol(asyncio.Protocol):
    """One Redis client. What it can make the node hold is bounded by ``ClientLimits``:
    its incomplete command (parsed once, incrementally), its replies in flight (reading
    pauses while they wait on it) and, before AUTH, almost nothing."""

    def __init__(
        self,
        runtime: NodeRuntime,
        users: Users | None = None,
        level: Level = Level.QUORUM,
        clients: Clients | None = None,
    ) -> None:
        self.runtime = runtime
        self.users = users or Users()
        self.user: User | None = None if self.users.required else NOBODY_ASKED
        self.clients = clients or Clients()
        self.limits = self.clients.limits
        self.reader = RequestReader()
        # What this client's incomplete command holds, without measuring each command: the
        # size of the last read that completed one (what is left of it is at most that), and
        # ``pending``, the bytes of the reads since, which completed nothing. ``pending`` is
        # what counts against the node-wide limit; a client that keeps completing commands
        # counts nothing there, whatever its reads' size.
        self.last_read = 0
        self.pending = 0
        self.slots: deque[list[bytes | None]] = deque()
        self.unsent = 0  # bytes of replies made but not yet handed to the transport
        self.dropped = False  # closed for a limit: nothing more is sent or counted
        self.transport: asyncio.Transport | None = None
        self.resp3 = False
        self.level = level
        self.name: bytes | None = None
        self.client_id = next(_CLIENT_IDS)
        self.closing = False
        self.counted = False
        self.flush_scheduled = False
        self.queue: deque[list[bytes]] = deque()  # parsed, not yet run (``_drain``)
        self.queued = False  # reading paused while commands wait in the queue
        self.drain_scheduled = False
        self.backlogged = False  # too many commands awaiting replies
        self.write_paused = False  # too many reply bytes the client has not read
        self.stall: asyncio.TimerHandle | None = None
        # MULTI: the commands queued (None: no transaction open), their bytes, and whether
        # one was refused while queuing (EXEC then discards them all, as Redis does).
        self.multi: list[tuple[str, Handler, list[bytes]]] | None = None
        self.multi_bytes = 0
        self.multi_failed = False
        self.executing = False  # an EXEC runs: this client's next commands wait for it
        # Pub/sub (``server/pubsub.py``): the channels and patterns this client listens to.
        self.channels: dict[bytes, None] = {}
        self.patterns: dict[bytes, None] = {}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        if self.clients.open >= self.limits.maxclients:
            self.clients.refused += 1
            self.transport.write(error("ERR max number of clients reached"))
            self.transport.close()
            self.closing = True
            return
        self.clients.open += 1
        self.clients.connections += 1
        self.counted = True
        pause = self.limits.output_pause_bytes
        self.transport.set_write_buffer_limits(high=pause, low=pause // 4)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        self.unsubscribe_all()
        if self.counted:
            self.counted = False
            self.clients.open -= 1
        self._set_pending(0)
        if self.stall is not None:
            self.stall.cancel()

    def _closing(self) -> bool:
        return self.closing

    def _set_pending(self, size: int) -> None:
        self.clients.query_bytes += size - self.pending
        self.pending = size

    def data_received(self, data: bytes) -> None:
        if self._closing():
            return  # a protocol error or a limit ended it: what follows is not read
        try:
            commands = self.reader.feed(data)
        except ProtocolError as problem:
            self._set_pending(0)
            self._reply_now(error(f"ERR {problem}"))
            self._close_after_flush()
            return
        if commands:
            self.last_read = len(data)
            self._set_pending(0)
        else:
            self._set_pending(self.pending + len(data))
        if self.pending:
            self._check_query_limits()
        if commands:
            self.queue.extend(commands)
            self._drain()

    def _drain(self) -> None:
        """Run queued commands, at most ``COMMANDS_PER_TURN`` in one event-loop turn; while
        some wait, this client is not read, and the rest run on the next turn, after other
        clients have had theirs: a deep pipeline costs its sender time, not everyone."""
        self.drain_scheduled = False
        queue = self.queue
        for _ in range(min(len(queue), COMMANDS_PER_TURN)):
            if self.closing:
                queue.clear()
                break
            if self.executing:
                break  # what follows an EXEC starts once its commands are done
            self._run(queue.popleft())
        backlogged = len(self.slots) > PIPELINE_MAX or (
            self.backlogged and len(self.slots) >= PIPELINE_MAX // 2
        )
        if queue and not self.drain_scheduled and not self.executing:
            self.drain_scheduled = True
            asyncio.get_running_loop().call_soon(self._drain)  # rare: a deep pipeline
        if backlogged != self.backlogged or bool(queue) != self.queued:
            self.backlogged, self.queued = backlogged, bool(queue)
            self._update_reading()

    def _check_query_limits(self) -> None:
        limits = self.limits
        if self.closing:
            return
        if self.user is None and self.pending > limits.preauth_query_bytes:
            why = f"unauthenticated command over {limits.preauth_query_bytes} bytes"
        elif self.last_read + self.pending > limits.query_buffer_bytes:
            why = f"query buffer over {limits.query_buffer_bytes} bytes"
        elif self.clients.query_bytes > limits.query_total_bytes:
            why = f"all clients' query buffers over {limits.query_total_bytes} bytes"
        else:
            return
        self._drop(why, f"ERR Protocol error: {why}")

    def _drop(self, why: str, reply: str | None = None) -> None:
        """Close this client for a limit, telling it why if it still reads."""
        if self.dropped:
            return
        self.dropped = True
        self.clients.closed_for_limits += 1
        log.warning("closing client %d: %s", self.client_id, why)
        self._set_pending(0)
        self.closing = True
        self.slots.clear()  # its replies are not sent: free them now
        self.unsent = 0
        if self.transport is not None:
            if reply is None:
                self.transport.abort()  # it does not read: nothing to tell it
                return
            if not self.transport.is_closing():
                self.transport.write(error(reply))
            self.transport.close()

    # --- flow control: a client that does not read its replies stops being read ---

    def pause_writing(self) -> None:
        self.write_paused = True
        self._update_reading()
        if self.stall is None:
            self.stall = asyncio.get_running_loop().call_later(
                self.limits.output_stall_s, self._stalled
            )

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.stall is not None:
            self.stall.cancel()
            self.stall = None
        self._update_reading()

    def _stalled(self) -> None:
        self.stall = None
        if self.write_paused and not self.closing:
            self._drop(f"has not read its replies for {self.limits.output_stall_s} s")

    def _update_reading(self) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if self.backlogged or self.write_paused or self.queued:
            transport.pause_reading()
        else:
            transport.resume_reading()

    # --- replies, in order ---

    def _slot(self) -> Done:
        slot: list[bytes | None] = [None]
        self.slots.append(slot)

        def done(reply: bytes) -> None:
            if self.dropped:
                return
            slot[0] = reply
            self.unsent += len(reply)
            if self.unsent > self.limits.output_buffer_bytes:
                # Checked reply by reply, as Redis does: a pipeline of big GETs from a client
                # that never reads cannot pile up more than the limit before it is closed.
                self._drop(f"unread replies over {self.limits.output_buffer_bytes} bytes")
                return
            self._schedule_flush()

        return done

    def _reply_now(self, reply: bytes) -> None:
        self._slot()(reply)

    def _schedule_flush(self) -> None:
        if not self.flush_scheduled:
            self.flush_scheduled = True
            self.runtime.after_turn(self._flush)

    def _flush(self) -> None:
        self.flush_scheduled = False
        out = []
        while self.slots and self.slots[0][0] is not None:
            reply = self.slots.popleft()[0]
            assert reply is not None
            out.append(reply)
        transport = self.transport
        if transport is None:
            return
        if out and not transport.is_closing():
            data = b"".join(out)
            self.unsent -= len(data)
            transport.write(data)
            if transport.get_write_buffer_size() + self.unsent > self.limits.output_buffer_bytes:
                self._drop(f"unread replies over {self.limits.output_buffer_bytes} bytes")
                return
        if self.closing and not self.slots:
            transport.close()
        if self.backlogged and len(self.slots) < PIPELINE_MAX // 2:
            self.backlogged = False
            self._update_reading()

    def _close_after_flush(self) -> None:
        self.closing = True
        self._schedule_flush()

    # --- running commands ---

    def _run(self, args: list[bytes]) -> None:
        done = self._slot()
        self.clients.commands += 1
        name = args[0].decode(errors="replace").upper()
        handler = COMMANDS.get(name)
        if handler is None:
            # Redis's words (each argument followed by a space), then where the list is.
            shown = "".join(f"'{a.decode(errors='replace')[:40]}' " for a in args[1:4])
            self._refuse(
                done,
                f"ERR unknown command '{args[0].decode(errors='replace')[:40]}', "
                f"with args beginning with: {shown}(Eventual's commands: docs/redis.md)",
            )
            return
        arity, function, need = handler
        if (arity >= 0 and len(args) != arity) or (arity < 0 and len(args) < -arity):
            self._refuse(done, f"ERR wrong number of arguments for '{name.lower()}' command")
            return
        user = self.user
        if user is None:
            if name not in ("AUTH", "HELLO", "QUIT", "PING"):
                self._refuse(done, "NOAUTH Authentication required.")
                return
        elif need is not Role.READ_ONLY and user.role < need:  # (``User.allows``, inline)
            self._refuse(
                done,
                f"NOPERM User {user.name} has no permissions to run the '{name.lower()}' command",
            )
            return
        if name not in ("AUTH", "HELLO", "QUIT") and not self.runtime.node.serving():
            done(error(NOT_SERVING))  # PING too, as Redis's while it loads
            return
        if (self.channels or self.patterns) and not self.resp3 and name not in IN_SUBSCRIBED:
            # RESP2 shares the stream with pushed messages: Redis allows no other command.
            self._refuse(
                done,
                f"ERR Can't execute '{name.lower()}': only (P)SUBSCRIBE / (P)UNSUBSCRIBE / "
                "PING / QUIT / RESET are allowed in this context",
            )
            return
        if self.multi is not None and name not in RUN_IN_MULTI:
            self._queue_in_multi(name, function, args, done)
            return
        self.dispatch(name, function, args[1:], done)

    def dispatch(self, name: str, function: Handler, args: list[bytes], done: Done) -> None:
        """Run one command whose arity and permissions were checked."""
        try:
            function(self, args, done)
        except CommandError as problem:
            done(error(str(problem)))
        except Exception:
            log.exception("command %s failed", name)
            done(error("ERR internal error; see the node's log"))

    # --- transactions: MULTI queues, EXEC runs the queue in order ---

    def _refuse(self, done: Done, reply: str) -> None:
        """A command refused before it ran; inside MULTI, it dooms the transaction."""
        if self.multi is not None:
            self.multi_failed = True
        done(error(reply))

    def _queue_in_multi(self, name: str, function: Handler, args: list[bytes], done: Done) -> None:
        queued = self.multi
        assert queued is not None
        size = sum(len(arg) for arg in args)
        limit = self.limits.query_buffer_bytes
        if len(queued) >= MULTI_COMMANDS_MAX or self.multi_bytes + size > limit:
            queued.clear()  # what it held is freed now; EXEC will discard the transaction
            self.multi_bytes = 0
            self._refuse(
                done,
                f"ERR a transaction holds at most {MULTI_COMMANDS_MAX} commands and "
                f"{limit} bytes: this one will be discarded",
            )
            return
        if not self.multi_failed:  # a doomed transaction keeps nothing
            queued.append((name, function, args[1:]))
            self.multi_bytes += size
        done(_QUEUED)

    # --- pub/sub ---

    def deliver(self, pattern: bytes | None, channel: bytes, message: bytes) -> None:
        """A message published on ``channel`` (matched by ``pattern``), pushed to this
        client (a RESP3 push, or an array in RESP2), after the replies it awaits."""
        if self.closing:
            return
        marker = b">" if self.resp3 else b"*"
        if pattern is None:
            parts = [bulk(b"message", False), bulk(channel, False), bulk(message, False)]
        else:
            parts = [bulk(b"pmessage", False), bulk(pattern, False)]
            parts += [bulk(channel, False), bulk(message, False)]
        self._reply_now(array(parts, marker))

    def subscription_reply(self, kind: bytes, name: bytes | None) -> bytes:
        """A (un)subscribe confirmation: kind, name and how many subscriptions remain."""
        marker = b">" if self.resp3 else b"*"
        count = integer(len(self.channels) + len(self.patterns))
        return array([bulk(kind, False), bulk(name, self.resp3), count], marker)

    def unsubscribe_all(self) -> None:
        pubsub = self.runtime.pubsub
        for channel in self.channels:
            pubsub.unsubscribe(self, channel)
        for pattern in self.patterns:
            pubsub.punsubscribe(self, pattern)
        self.channels.clear()
        self.patterns.clear()

    def begin_multi(self) -> None:
        self.multi = []
        self.multi_bytes = 0
        self.multi_failed = False

    def end_multi(self) -> tuple[list[tuple[str, Handler, list[bytes]]], bool]:
        """The queued commands and whether the transaction was doomed; MULTI is over."""
        queued, failed = self.multi or [], self.multi_failed
        self.multi = None
        self.multi_bytes = 0
        self.multi_failed = False
        return queued, failed

    def execute(self, queued: list[tuple[str, Handler, list[bytes]]], done: Done) -> None:
        """Run ``queued`` one after another, each once the one before has replied, and reply
        with all their replies; this client's later commands wait until then."""
        self.executing = True
        _Execution(self, queued, done).next()

    def executed(self) -> None:
        self.executing = False
        if self.queue and not self.drain_scheduled and not self.closing:
            self.drain_scheduled = True
            asyncio.get_running_loop().call_soon(self._drain)

    def login(self, name: bytes, password: bytes) -> None:
        user = self.users.check(name, password)
        if user is None:
            log.warning("client %d: failed AUTH for user %r", self.client_id, name[:64])
            raise CommandError("WRONGPASS invalid username-password pair or user is disabled.")
        self.user = user

    def call(self, op: O.Operation, then: Callable[[Result], bytes], done: Done) -> None:
        """Run one core operation; reply with ``then(result)`` or its error."""

        def finish(result: Result) -> None:
            if self.dropped:
                return  # closed for a limit: no reply to build
            if not result.ok:
                done(error(result.error or "ERR unknown failure"))
                return
            try:
                done(then(result))
            except CommandError as problem:
                done(error(str(problem)))

        self.runtime.request(Request(0, op, self.level), finish)

    def call_many(
        self,
        op_list: Sequence[O.Operation],
        keep: Callable[[Result], R],
        then: Callable[[list[R]], bytes],
        done: Done,
    ) -> None:
        """Run operations; reply with ``then`` of what ``keep`` took of each result, or the
        first error."""

        def reply(kept: list[R]) -> None:
            try:
                done(then(kept))
            except CommandError as problem:
                done(error(str(problem)))

        self.gather(op_list, keep, reply, done)

    def gather(
        self,
        op_list: Sequence[O.Operation],
        keep: Callable[[Result], R],
        then: Callable[[list[R]], None],
        done: Done,
    ) -> None:
        """Run operations, at most ``GATHER_WINDOW`` in flight (so that a command on a
        million keys takes turns with other clients), keeping ``keep(result)`` of each as
        it comes (an int or the encoded reply, not the result: a million results alive at
        once would make the garbage collector walk them, and stall every client);
        ``then(kept)`` once all succeeded (it must reply through ``done``), or reply with
        the first error (a CommandError from ``keep`` too)."""
        kept: list[R | None] = [None] * len(op_list)
        state = {"remaining": len(op_list), "next": 0, "failed": False}

        def start() -> None:
            index = state["next"]
            state["next"] = index + 1
            self.runtime.request(Request(0, op_list[index], self.level), finish(index))

        def fail(reply: bytes) -> None:
            state["failed"] = True
            done(reply)

        def finish(index: int) -> Callable[[Result], None]:
            def finished(result: Result) -> None:
                if state["failed"]:
                    return
                if not result.ok:
                    fail(error(result.error or "ERR unknown failure"))
                    return
                try:
                    kept[index] = keep(result)
                except CommandError as problem:
                    fail(error(str(problem)))
                    return
                state["remaining"] -= 1
                if state["next"] < len(op_list) and not self.closing:
                    start()
                elif not state["remaining"]:
                    then(cast(list[R], kept))
                elif self.closing:
                    state["failed"] = True  # the client is gone: start nothing more

            return finished

        for _ in range(min(GATHER_WINDOW, len(op_list))):
            start()

    def call_sliced(
        self,
        make: Callable[[tuple[Any, ...]], O.Operation],
        items: tuple[Any, ...],
        then: Callable[[list[Result]], bytes],
        done: Done,
    ) -> None:
        """Run ``make`` over ``items`` in slices of ``ITEMS_PER_OP``, one after another,
        and reply with ``then`` of every result, or the first error. One command on a
        million members so takes its turns with other clients' commands instead of holding
        the node for seconds; the cost is that it is as many writes, not one (a reader can
        see the first slices before the last: ``docs/redis.md``)."""
        slices = [items[i : i + ITEMS_PER_OP] for i in range(0, len(items), ITEMS_PER_OP)]
        if len(slices) <= 1:
            self.call(make(items), lambda r: then([r]), done)
            return
        results: list[Result] = []

        def next_slice(result: Result | None) -> None:
            if result is not None:
                if not result.ok:
                    done(error(result.error or "ERR unknown failure"))
                    return
                results.append(result)
            if len(results) == len(slices):
                try:
                    done(then(results))
                except CommandError as problem:
                    done(error(str(problem)))
                return
            if self.closing:
                return  # the client is gone: the rest is not written
            op = make(slices[len(results)])
            self.runtime.request(Request(0, op, self.level), next_slice)

        next_slice(None)

    def bulk(self, value: bytes | None) -> bytes:
        return bulk(value, self.resp3)

    def collection(self, items: list[bytes], kind: bytes) -> bytes:
        return array(items, kind if self.resp3 else b"*")


_QUEUED = simple("QUEUED")
# What a RESP2 client may run while subscribed (Redis's list; RESET is not a command here).
IN_SUBSCRIBED = frozenset(
    {"SUBSCRIBE", "UNSUBSCRIBE", "PSUBSCRIBE", "PUNSUBSCRIBE", "PING", "QUIT", "RESET"}
)
# Commands that run at once inside MULTI rather than being queued (as Redis's).
RUN_IN_MULTI = frozenset({"MULTI", "EXEC", "DISCARD", "WATCH", "QUIT"})
# What one transaction may queue: commands, and bytes of their arguments (the client's query
# buffer limit, ``ClientLimits.query_buffer_bytes``: a transaction holds no more than one
# command could).
MULTI_COMMANDS_MAX = 100_000


class _Execution:
    """One EXEC: its commands run one after another, each started once the one before has
    replied (a command that replies at once does not recurse: ``next`` loops). Replies are
    collected until the last; their bytes count against the client's output limit as they
    come, so a transaction of big reads cannot make the node hold more than one client may."""

    def __init__(
        self, client: RespServerProtocol, queued: list[tuple[str, Handler, list[bytes]]], done: Done
    ) -> None:
        self.client = client
        self.queued = queued
        self.done = done
        self.replies: list[bytes] = []
        self.size = 0
        self.index = 0
        self.waiting = False
        self.inside = False  # in ``next``: a reply now is a synchronous one

    def next(self) -> None:
        client = self.client
        self.inside = True
        while self.index < len(self.queued):
            if client.dropped:
                self.inside = False
                client.executed()
                return  # closed for a limit: what was not started is not run
            name, function, args = self.queued[self.index]
            self.index += 1
            self.waiting = True
            client.dispatch(name, function, args, self.reply)
            if self.waiting:
                self.inside = False
                return  # ``reply`` carries on
        self.inside = False
        client.executed()
        self.done(array(self.replies))

    def reply(self, reply: bytes) -> None:
        if not self.waiting:
            return  # (a handler answers once; a second answer is ignored)
        self.waiting = False
        self.replies.append(reply)
        self.size += len(reply)
        client = self.client
        limit = client.limits.output_buffer_bytes
        if self.size > limit:
            client._drop(f"a transaction's replies over {limit} bytes")
        if not self.inside:
            self.next()


# --- helpers for commands ---

T = TypeVar("T")
R = TypeVar("R")


class Each(Sequence[O.Operation], Generic[T]):
    """One operation per argument, made when it is started: a command on a million keys
    does not build a million operations in one go."""

    def __init__(self, make: Callable[[T], O.Operation], args: Sequence[T]) -> None:
        self.make = make
        self.args = args

    def __len__(self) -> int:
        return len(self.args)

    @overload
    def __getitem__(self, index: int) -> O.Operation: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[O.Operation]: ...
    def __getitem__(self, index: int | slice) -> O.Operation | Sequence[O.Operation]:
        if isinstance(index, slice):
            return [self.make(arg) for arg in self.args[index]]
        return self.make(self.args[index])


STRING_KINDS = ("string", "counter")
READABLE_AS_STRING = ("string", "counter", "object")  # GET's kinds: one key, two faces


def expect_kind(result: Result, *kinds: str) -> None:
    if result.value is not None and result.kind not in kinds:
        raise CommandError("WRONGTYPE Operation against a key holding the wrong kind of value")


def string_value(result: Result) -> bytes | None:
    """A string's value, a counter's decimal text, or the body of an object written over
    HTTP (``/kv``): one key reads the same through both faces. An object with siblings
    reads as its first (by the writing node's name, as every replica orders them: the same
    answer from any node); ``/kv`` shows them all, with the context that resolves them."""
    if result.kind == "object" and result.value is not None:
        siblings = result.value
        return decode_object(siblings[0])[1] if siblings else None
    expect_kind(result, *STRING_KINDS)
    return None if result.value is None else as_bytes(result.value)


def present(result: Result) -> bool:
    """Whether a read found the key. Commands that need no members (EXISTS, TYPE, TTL) read
    a collection's size (``O.Get(key, ())``), which costs the same at any size: an empty
    projection with a size of 0 is an absent collection."""
    return result.value is not None and (result.size is None or result.size > 0)


def ttl_reply(result: Result, unit_ms: int, *, absolute: bool = False) -> bytes:
    """TTL and PTTL (time left), or EXPIRETIME and PEXPIRETIME (``absolute``: the time it
    expires at): -2 for no key, -1 for no expiry, as Redis answers."""
    if not present(result):
        return integer(-2)
    if result.expire_at is None:
        return integer(-1)
    if absolute:
        return integer(result.expire_at // unit_ms)
    remaining = max(0, result.expire_at - wall_ms())
    return integer(math.ceil(remaining / unit_ms) if unit_ms > 1 else remaining)


# --- the commands: name -> (arity as Redis counts it, handler) ---

Handler = Callable[[RespServerProtocol, list[bytes], Done], None]
# name -> (arity, handler, the role it needs: READ_ONLY for reads and connection commands)
COMMANDS: dict[str, tuple[int, Handler, Role]] = {}
WRITE = Role.READ_WRITE


def command(name: str, arity: int, need: Role = Role.READ_ONLY) -> Callable[[Handler], Handler]:
    def register(function: Handler) -> Handler:
        COMMANDS[name] = (arity, function, need)
        return function

    return register


@command("PING", -1)
def _ping(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
    if (c.channels or c.patterns) and not c.resp3:  # subscribed, RESP2: Redis's form
        done(array([bulk(b"pong", False), bulk(args[0] if args else b"", False)]))
        return
    done(c.bulk(args[0]) if args else simple("PONG"))


@command("ECHO", 2)
def _echo(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
    done(c.bulk(args[0]))


@command("QUIT", -1)
def _quit(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
    done(simple("OK"))
    c._close_after_flush()


@command("SELECT", 2)
def _select(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
    if args[0] != b"0":
        raise CommandError("ERR DB index is out of range (Eventual has one database: 0)")
    done(simple("OK"))


@command("AUTH", -2)
def _auth(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
    """``AUTH <password>`` (the user ``default``) or ``AUTH <user> <password>``."""
    if len(args) > 2:
        raise CommandError("ERR syntax error")
    if not c.users.required:
        raise CommandError(
            "ERR AUTH <password> called without any password configured for the default user."
        )
    c.login(args[0] if len(args) == 2 else b"default", args[-1])
    done(simple("OK"))


@command("HELLO", -1)
def _hello(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
    rest = list(args)
    if rest:
        version = rest.pop(0)
        if version not in (b"2", b"3"):
            raise CommandError("NOPROTO unsupported protocol version")
        while rest:
            option = rest.pop(0).upper()
            if option == b"AUTH" and len(rest) >= 2:
                name, password = rest.pop(0), rest.pop(0)
                if c.users.required:
                    c.login(name, password)
            elif option == b"SETNAME" and rest:
                c.name = rest.pop(0)
            else:
                raise CommandError("ERR Syntax error in HELLO option")
        if c.user is None:
            raise CommandError("NOAUTH HELLO must be called with the client already authenticated")
        c.resp3 = version == b"3"
    fields = [
        (b"server", c.bulk(b"eventual")),
        (b"version", c.bulk(__version__.encode())),
        (b"proto", integer(3 if c.resp3 else 2)),
        (b"id", integer(c.client_id)),
        (b"mode", c.bulk(b"cluster")),
        (b"role", c.bulk(b"master")),
        (b"modules", array([])),
    ]
    done(mapping([(c.bulk(key), value) for key, value in fields], c.resp3))


@command("CLIENT", -2)
def _client(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
    sub = args[0].upper()
    if sub == b"SETNAME" and len(args) == 2:
        c.name = args[1]
        done(simple("OK"))
    elif sub == b"GETNAME":
        done(c.bulk(c.name))
    elif sub == b"ID":
        done(integer(c.client_id))
    elif sub in (b"SETINFO", b"NO-EVICT", b"NO-TOUCH", b"REPLY"):
        done(simple("OK"))
    else:
        raise CommandError(f"ERR unknown subcommand '{sub.decode(errors='replace')}'.")


# Where a command's keys are (Redis's first key, last key, step: 0 0 0 for none, -1 for
# "to the last argument"); a command not named here has one key, its first argument.
NO_KEYS = frozenset(
    [
        "PING",
        "ECHO",
        "QUIT",
        "SELECT",
        "AUTH",
        "HELLO",
        "CLIENT",
        "COMMAND",
        "CONFIG",
        "INFO",
        "CONSISTENCY",
        "MULTI",
        "EXEC",
        "DISCARD",
        "UNWATCH",
        "KEYS",
        "SCAN",
        "DBSIZE",
        "RANDOMKEY",
        "FLUSHDB",
        "FLUSHALL",
        "PUBLISH",
        "SUBSCRIBE",
        "UNSUBSCRIBE",
        "PSUBSCRIBE",
        "PUNSUBSCRIBE",
        "PUBSUB",
        "SINTERCARD",
        "BLMPOP",  # its keys follow a count: movable, as Redis's COMMAND says
    ]
)
ALL_KEYS = frozenset(
    [
        "MGET",
        "DEL",
        "UNLINK",
        "EXISTS",
        "TOUCH",
        "WATCH",
        "SINTER",
        "SUNION",
        "SDIFF",
        "SINTERSTORE",
        "SUNIONSTORE",
        "SDIFFSTORE",
        "PFCOUNT",
        "PFMERGE",
    ]
)
KEY_PAIRS = frozenset({"MSET", "MSETNX"})  # key value key value ...
# COMMAND DOCS's groups, by the sections of docs/redis.md.
GROUPS = {
    "connection": "PING ECHO QUIT SELECT AUTH HELLO CLIENT",
    "server": "COMMAND CONFIG INFO DBSIZE FLUSHDB FLUSHALL",
    "generic": "DEL UNLINK EXISTS TOUCH TYPE EXPIRE PEXPIRE EXPIREAT PEXPIREAT TTL PTTL "
    "EXPIRETIME PEXPIRETIME PERSIST KEYS SCAN RANDOMKEY",
    "transactions": "MULTI EXEC DISCARD WATCH UNWATCH",
    "pubsub": "SUBSCRIBE UNSUBSCRIBE PSUBSCRIBE PUNSUBSCRIBE PUBLISH PUBSUB",
    "hyperloglog": "PFADD PFCOUNT PFMERGE",
    "list": "LPUSH RPUSH LPUSHX RPUSHX LPOP RPOP LLEN LRANGE LINDEX LPOS LSET LINSERT LREM "
    "LTRIM LMOVE RPOPLPUSH BLPOP BRPOP BLMOVE BRPOPLPUSH BLMPOP",
    "eventual": "CONSISTENCY BC.INCRBY BC.DECRBY BC.TRANSFER BC.GET BC.RIGHTS",
}
GROUP_OF = {name: group for group, names in GROUPS.items() for name in names.split()}


def _group(name: str) -> str:
    if name in GROUP_OF:
        return GROUP_OF[name]
    if name.startswith("H"):
        return "hash"
    if name.startswith("S") and name not in ("SET", "SETEX", "SETNX", "SETRANGE", "SUBSTR"):
        return "set"
    if name.startswith("Z"):
        return "sorted-set"
    return "string"


def _key_positions(name: str) -> tuple[int, int, int]:
    if name in NO_KEYS:
        return 0, 0, 0
    if name in ALL_KEYS:
        return 1, -1, 1
    if name in KEY_PAIRS:
        return 1, -1, 2
    if name in ("SMOVE", "LMOVE", "RPOPLPUSH", "BLMOVE", "BRPOPLPUSH"):
        return 1, 2, 1
    if name in ("BLPOP", "BRPOP"):
        return 1, -2, 1
    return 1, 1, 1


def _command_entry(c: RespServerProtocol, name: str) -> bytes:
    """COMMAND's entry for ``name``, in Redis 7's shape (clients read the key positions)."""
    arity, _, need = COMMANDS[name]
    first, last, step = _key_positions(name)
    flags = [simple("write" if need >= Role.READ_WRITE else "readonly")]
    return array(
        [
            c.bulk(name.lower().encode()),
            integer(arity),
            c.collection(flags, b"~"),
            integer(first),
            integer(last),
            integer(step),
            c.collection([], b"~"),  # ACL categories
            array([]),  # tips
            array([]),  # key specs
            array([]),  # subcommands
        ]
    )


def _command_docs(c: RespServerProtocol, name: str) -> bytes:
    _, function, _ = COMMANDS[name]
    doc = (function.__doc__ or "").strip().split("\n\n")[0]
    summary = " ".join(doc.split()) or f"{name}, as Redis's (docs/redis.md)"
    fields = [
        (c.bulk(b"summary"), c.bulk(summary.encode())),
        (c.bulk(b"since"), c.bulk(REDIS_VERSION.encode())),
        (c.bulk(b"group"), c.bulk(_group(name).encode())),
    ]
    return mapping(fields, c.resp3)


@command("COMMAND", -1)
def _command(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
    """COMMAND [COUNT | LIST | INFO name... | DOCS [name...]]: what this node runs."""
    sub = args[0].upper() if args else b""
    asked = [a.decode(errors="replace").upper() for a in args[1:]]
    if sub == b"COUNT" and not asked:
        done(integer(len(COMMANDS)))
    elif sub == b"LIST" and not asked:
        done(array([c.bulk(name.lower().encode()) for name in sorted(COMMANDS)]))
    elif sub == b"INFO":
        names = asked or sorted(COMMANDS)
        done(array([_command_entry(c, n) if n in COMMANDS else c.bulk(None) for n in names]))
    elif sub == b"DOCS":
        names = [n for n in asked if n in COMMANDS] if asked else sorted(COMMANDS)
        done(mapping([(c.bulk(n.lower().encode()), _command_docs(c, n)) for n in names], c.resp3))
    elif not args:
        done(array([_command_entry(c, name) for name in sorted(COMMANDS)]))
    else:
        raise CommandError(
            f"ERR unknown subcommand or wrong number of arguments for "
            f"'{sub.decode(errors='replace')}'. Try COMMAND HELP."
        )


# What CONFIG GET answers, and why CONFIG SET cannot change it: these are fixed by how the
# node runs (its flags, docs/deploy.md), not settable over a client connection.
CONFIG_SETTINGS = {
    b"save": (b"", "persistence is the node's --durability (docs/storage.md)"),
    b"appendonly": (b"no", "persistence is the node's --durability (docs/storage.md)"),
    b"databases": (b"1", "there is one database, SELECT 0"),
    b"maxmemory": (b"0", "memory is bounded by the node's own limits (docs/storage.md)"),
    b"maxmemory-policy": (b"noeviction", "no key is evicted: records leave memory, not disk"),
    b"notify-keyspace-events": (b"", "keyspace notifications are not published"),
    b"timeout": (b"0", "idle clients are closed by the node's client limits (docs/security.md)"),
}


@command("CONFIG", -2)
def _config(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
    """CONFIG GET pattern ...; CONFIG SET name value ...: a value a setting already has is
    accepted (OK, nothing changes), another is refused with the reason, as Redis refuses
    a setting it cannot apply, before any is changed."""
    sub = args[0].upper()
    if sub == b"SET":
        if len(args) < 3 or len(args) % 2 == 0:
            raise CommandError("ERR wrong number of arguments for 'config|set' command")
        for i in range(1, len(args), 2):
            name, value = args[i].lower(), args[i + 1]
            if name not in CONFIG_SETTINGS:
                raise CommandError(
                    "ERR Unknown option or number of arguments for CONFIG SET - "
                    f"'{name.decode(errors='replace')}'"
                )
            held, why = CONFIG_SETTINGS[name]
            if value != held:
                raise CommandError(
                    "ERR CONFIG SET failed (possibly related to argument "
                    f"'{name.decode(errors='replace')}') - {why}"
                )
        done(_OK)
        return
    if sub != b"GET" or len(args) < 2:
        raise CommandError("ERR CONFIG supports GET and SET only")
    pairs = [
        (c.bulk(name), c.bulk(value))
        for name, (value, _) in CONFIG_SETTINGS.items()
        if any(fnmatch.fnmatchcase(name.decode(), p.decode(errors="replace")) for p in args[1:])
    ]
    done(mapping(pairs, c.resp3))


# INFO's sections, in Redis's order; "default" and "all" are every one of them.
INFO_SECTIONS = (
    "server",
    "clients",
    "memory",
    "persistence",
    "stats",
    "replication",
    "cpu",
    "cluster",
    "keyspace",
)


def _human(size: int) -> str:
    """Bytes as Redis's ``*_human`` fields write them (``1.50M``)."""
    if size < 1024:
        return f"{size}B"
    scaled = float(size)
    for unit in ("K", "M", "G", "T"):
        scaled /= 1024
        if scaled < 1024 or unit == "T":
            break
    return f"{scaled:.2f}{unit}"


def _info_section(c: RespServerProtocol, section: str) -> list[tuple[str, object]]:
    """One section's fields, as Redis names them where Redis has the figure; the node's
    own figures after them (``docs/redis.md``)."""
    runtime = c.runtime
    node = runtime.node
    if section == "server":
        sockname = c.transport.get_extra_info("sockname") if c.transport else None
        uptime_s = (time.monotonic_ns() - runtime.started_ns) // 1_000_000_000
        return [
            ("redis_version", REDIS_VERSION),
            ("redis_mode", "standalone"),  # no Redis Cluster protocol: any node takes any key
            ("os", f"{platform.system()} {platform.release()} {platform.machine()}"),
            ("arch_bits", 64 if sys.maxsize > 2**32 else 32),
            ("process_id", os.getpid()),
            ("tcp_port", sockname[1] if isinstance(sockname, tuple) else 0),
            ("uptime_in_seconds", uptime_s),
            ("uptime_in_days", uptime_s // 86_400),
            ("executable", sys.executable),
            ("eventual_version", __version__),
            ("eventual_build", BUILD),
            ("node_id", node.id),
            ("region", node.region),
        ]
    if section == "clients":
        return [
            ("connected_clients", c.clients.open),
            ("maxclients", c.limits.maxclients),
            ("blocked_clients", 0),
            ("client_query_buffer_bytes", c.clients.query_bytes),
            ("client_closed_for_limits", c.clients.closed_for_limits),
        ]
    if section == "memory":
        rss = _rss_bytes()
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        return [
            ("used_memory", rss),  # the process's resident size: Python has no allocator total
            ("used_memory_human", _human(rss)),
            ("used_memory_rss", rss),
            ("used_memory_rss_human", _human(rss)),
            ("used_memory_peak", peak),
            ("used_memory_peak_human", _human(peak)),
            ("maxmemory", 0),
            ("maxmemory_human", "0B"),
            ("maxmemory_policy", "noeviction"),
            ("records_cached_weight", node.records.weight),
        ]
    if section == "persistence":
        store = runtime.store
        return [
            ("loading", 0 if node.serving() else 1),
            ("aof_enabled", 0),
            ("durability", store.durability),
            ("store_commits", store.commits),
            ("store_dead_rows", getattr(store, "dead_rows", 0)),
            ("hints", store.hint_count()),
        ]
    if section == "stats":
        # The counters of ``runtime.status()``, read here alone (status also counts hints
        # in the store and walks handoffs and links: nothing this section shows).
        requests = {kind: sum(buckets) for kind, buckets in runtime.latency.items()}
        return [
            ("total_connections_received", c.clients.connections),
            ("total_commands_processed", c.clients.commands),
            ("rejected_connections", c.clients.refused),
            *((f"requests_{kind}", count) for kind, count in sorted(requests.items())),
            *((kind, count) for kind, count in sorted(node.stats.items())),
        ]
    if section == "replication":
        peers = sorted(node.peers)
        addresses = {e.node: e.address for e in node.cluster.entries.values()}
        return [
            ("role", "master"),  # every node takes writes
            ("connected_slaves", 0),  # no Redis replicas: the peers below replicate instead
            ("replicas_per_key", node.config.n),
            ("peers", len(peers)),
            ("peers_up", sum(node.up(peer) for peer in peers)),
            *(
                (
                    f"peer{index}",
                    f"id={peer},address={addresses.get(peer, '')},"
                    f"region={node.region_of.get(peer, '')},"
                    f"state={'up' if node.up(peer) else 'down'}",
                )
                for index, peer in enumerate(peers)
            ),
        ]
    if section == "cpu":
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return [
            ("used_cpu_sys", f"{usage.ru_stime:.6f}"),
            ("used_cpu_user", f"{usage.ru_utime:.6f}"),
        ]
    if section == "cluster":
        return [
            ("cluster_enabled", 0),  # Redis Cluster's protocol is not spoken (docs/redis.md)
            ("nodes", len(node.peers) + 1),
            ("partitions", node.config.partitions),
            ("n", node.config.n),
        ]
    if section == "keyspace":
        held = runtime.store.count()
        return [("db0", f"keys={held},expires=0,avg_ttl=0")] if held else []
    return []


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):  # not Linux: the peak will do
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


@command("INFO", -1)
def _info(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
    """INFO [section ...]: Redis's sections and the fields tools read (redis-cli, redis-py's
    ``info()``, exporters); a section Eventual does not have is empty, as Redis's."""
    asked = [arg.decode(errors="replace").lower() for arg in args]
    if not asked or any(name in ("default", "all", "everything") for name in asked):
        wanted = list(INFO_SECTIONS)
    else:
        wanted = [name for name in INFO_SECTIONS if name in asked]
    lines: list[str] = []
    for section in wanted:
        if lines:
            lines.append("")
        lines.append(f"# {section.capitalize()}")
        lines.extend(f"{name}:{value}" for name, value in _info_section(c, section))
    done(c.bulk(("\r\n".join(lines) + "\r\n").encode()))


@command("MULTI", 1)
def _multi(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
    if c.multi is not None:
        raise CommandError("ERR MULTI calls can not be nested")
    c.begin_multi()
    done(_OK)


@command("EXEC", 1)
def _exec(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
    """Run the queued commands in order, on this connection, and reply with their replies.
    Each command is what it would be alone (its own quorum, its own writes): no other
    client's command is kept out meanwhile, and none is undone if a later one fails
    (``docs/redis.md``)."""
    if c.multi is None:
        raise CommandError("ERR EXEC without MULTI")
    queued, failed = c.end_multi()
    if failed:
        raise CommandError("EXECABORT Transaction discarded because of previous errors.")
    c.execute(queued, done)


@command("DISCARD", 1)
def _discard(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
    if c.multi is None:
        raise CommandError("ERR DISCARD without MULTI")
    c.end_multi()
    done(_OK)


@command("WATCH", -2)
def _watch(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
    if c.multi is not None:
        raise CommandError("ERR WATCH inside MULTI is not allowed")
    raise CommandError(
        "ERR WATCH is not supported: no node of a leaderless store sees every write to a "
        "key, so none can promise EXEC that the key did not change (docs/redis.md)"
    )


@command("UNWATCH", 1)
def _unwatch(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
    done(_OK)  # nothing is ever watched


@command("CONSISTENCY", -1)
def _consistency(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
    if args:
        try:
            c.level = Level.parse(args[0].decode(errors="replace"))
        except ValueError as problem:
            raise CommandError(f"ERR {problem}") from None
        done(simple("OK"))
    else:
        done(simple(c.level.value))


@command("GET", 2)
def _get(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
    c.call(O.Get(args[0]), lambda r: c.bulk(string_value(r)), done)


# A read-then-write command: the read's handler returns this when it has started the write,
# whose reply is the command's answer.
WRITE_ANSWERS = b""


def answered_by_write(done: Done) -> Done:
    return lambda reply: done(reply) if reply != WRITE_ANSWERS else None


def _set_options(args: list[bytes]) -> tuple[int | None, bool, bool, bool, bool]:
    expire_at: int | None = None
    nx = xx = get = keep = False
    i = 0
    while i < len(args):
        option = args[i].upper()
        if option in (b"EX", b"PX", b"EXAT", b"PXAT") and i + 1 < len(args) and expire_at is None:
            amount = parse_int(args[i + 1])
            if amount <= 0:
                raise CommandError("ERR invalid expire time in 'set' command")
            now = wall_ms()
            expire_at = {
                b"EX": now + amount * 1000,
                b"PX": now + amount,
                b"EXAT": amount * 1000,
                b"PXAT": amount,
            }[option]
            if expire_at > INT64_MAX:  # as Redis: the time in ms must fit 64 bits
                raise CommandError("ERR invalid expire time in 'set' command")
            i += 2
            continue
        if option == b"NX" and not xx:
            nx = True
        elif option == b"XX" and not nx:
            xx = True
        elif option == b"GET":
            get = True
        elif option == b"KEEPTTL" and expire_at is None:
            keep = True
        else:
            raise CommandError("ERR syntax error")
        i += 1
    return expire_at, nx, xx, get, keep


@command("SET", -3, WRITE)
def _set(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
    key, value = args[0], args[1]
    expire_at, nx, xx, get, keep = _set_options(args[2:])
    write = O.StringSet(key, value, expire_at_ms=expire_at, keep_ttl=keep)
    if not (nx or xx or get):
        c.call(write, _ok, done)
        return

    def after_read(read: Result) -> bytes:
        old = string_value(read) if get else None
        exists = read.value is not None
        if (nx and exists) or (xx and not exists):
            return c.bulk(old) if get else c.bulk(None)
        c.call(write, lambda r: c.bulk(old) if get else simple("OK"), done)
        return WRITE_ANSWERS

    c.call(O.Get(key), after_read, answered_by_write(done))


@command("MGET", -2)
def _mget(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
    def value(result: Result) -> bytes:
        if result.kind not in READABLE_AS_STRING or result.value is None:
            return c.bulk(None)
        return c.bulk(string_value(result))

    c.call_many(Each(O.Get, args), value, array, done)


@command("MSET", -3, WRITE)
def _mset(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
    if len(args) % 2:
        raise CommandError("ERR wrong number of arguments for 'mset' command")
    writes = Each(lambda i: O.StringSet(args[i], args[i + 1]), range(0, len(args), 2))
    c.call_many(writes, lambda result: None, lambda results: simple("OK"), done)


@command("APPEND", 3, WRITE)
def _append(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
    key, suffix = args

    def after_read(read: Result) -> bytes:
        value = (string_value(read) or b"") + suffix
        c.call(O.StringSet(key, value, keep_ttl=True), lambda r: integer(len(value)), done)
        return WRITE_ANSWERS

    c.call(O.Get(key), after_read, answered_by_write(done))


@command("STRLEN", 2)
def _strlen(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
    c.call(O.Get(args[0]), lambda r: integer(len(string_value(r) or b"")), done)


def _counter(c: RespServerProtocol, key: bytes, amount: int, done: Done) -> None:
    """INCRBY and friends on a string that holds an integer (or none): concurrent
    increments on different nodes all count, and a SET overrides those it has seen
    (``crdt/lwwregister.py``; a counter made over HTTP counts as before)."""
    if amount == 0:
        c.call(O.Get(key), lambda r: integer(_integer_value(r)), done)
        return
    c.call(O.StringIncr(key, amount), lambda r: integer(int(r.value)), done)


def _integer_value(r: Result) -> int:
    value = string_value(r)
    if value is None:
        return 0
    number = as_integer(value)
    if number is None:
        raise CommandError("ERR value is not an integer or out of range")
    return number


def parse_float(raw: bytes) -> float:
    number = as_float(raw)
    if number is None:
        raise CommandError("ERR value is not a valid float")
    return number


@command("INCRBYFLOAT", 3, WRITE)
def _incrbyfloat(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
    """As INCRBY, by a double: concurrent increments all count; the reply and the value
    are the number's text (``crdt/lwwregister.py``)."""
    amount = parse_float(args[1])
    c.call(O.StringIncrFloat(args[0], amount), lambda r: c.bulk(as_bytes(r.value)), done)


@command("HINCRBYFLOAT", 4, WRITE)
def _hincrbyfloat(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
    amount = parse_float(args[2])
    op = O.HashIncrFloat(args[0], args[1], amount)
    c.call(op, lambda r: c.bulk(as_bytes(r.value)), done)


@command("INCR", 2, WRITE)
def _incr(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
    _counter(c, args[0], 1, done)


@command("DECR", 2, WRITE)
def _decr(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
    _counter(c, args[0], -1, done)


@command("INCRBY", 3, WRITE)
def _incrby(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
    _counter(c, args[0], parse_int(args[1]), done)


@command("DECRBY", 3, WRITE)
def _decrby(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
    _counter(c, args[0], -parse_int(args[1]), done)


@command("DEL", -2, WRITE)
def _del(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
    c.call_many(
        Each(O.Delete, args), lambda r: int(r.value or 0), lambda ns: integer(sum(ns)), done
    )


COMMANDS["UNLINK"] = COMMANDS["DEL"]


@command("EXISTS", -2)
def _exists(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
    c.call_many(Each(lambda key: O.Get(key, ()), args), present, lambda ns: integer(sum(ns)), done)


REDIS_TYPES = {
    "string": b"string",
    "counter": b"string",
    "set": b"set",
    "hash": b"hash",
    "hll": b"string",
}


@command("TYPE", 2)
def _type(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
    def kind(r: Result) -> bytes:
        if not present(r) or r.kind is None:
            return simple("none")
        return simple(REDIS_TYPES.get(r.kind, r.kind.encode()).decode())

    c.call(O.Get(args[0], ()), kind, done)


def _expire(
    c: RespServerProtocol, args: list[bytes], done: Done, *, unit_ms: int, base_ms: int, name: str
) -> None:
    """EXPIRE and friends: ``args[1]`` in units of ``unit_ms`` from ``base_ms`` (0: an
    absolute time). As Redis 7, an argument whose milliseconds, or whose sum with the time
    now, do not fit 64 bits is refused; a time in the past deletes the key."""
    amount_ms = parse_int(args[1]) * unit_ms
    at_ms = base_ms + amount_ms
    if not (INT64_MIN <= amount_ms <= INT64_MAX and INT64_MIN <= at_ms <= INT64_MAX):
        raise CommandError(f"ERR invalid expire time in '{name}' command")
    conditions = _expire_conditions(args[2:])
    if not conditions:
        c.call(O.Expire(args[0], at_ms), lambda r: integer(int(r.value or 0)), done)
        return

    def after_read(read: Result) -> bytes:
        # As Redis: no expiry counts as an infinite one (GT never beats it, LT always does).
        current = read.expire_at
        if not present(read) or not all(
            (condition == b"NX" and current is None)
            or (condition == b"XX" and current is not None)
            or (condition == b"GT" and current is not None and at_ms > current)
            or (condition == b"LT" and (current is None or at_ms < current))
            for condition in conditions
        ):
            return integer(0)
        c.call(O.Expire(args[0], at_ms), lambda r: integer(int(r.value or 0)), done)
        return WRITE_ANSWERS

    c.call(O.Get(args[0], ()), after_read, answered_by_write(done))


def _expire_conditions(options: list[bytes]) -> set[bytes]:
    """EXPIRE's NX, XX, GT and LT given (all must hold), with Redis's refusals of mixtures."""
    given = {option.upper() for option in options}
    for option in options:
        if option.upper() not in (b"NX", b"XX", b"GT", b"LT"):
            raise CommandError(f"ERR Unsupported option {option.decode(errors='replace')}")
    if b"NX" in given and len(given) > 1:
        raise CommandError("ERR NX and XX, GT or LT options at the same time are not compatible")
    if {b"GT", b"LT"} <= given:
        raise CommandError("ERR GT and LT options at the same time are not compatible")
    return given


@command("EXPIRE", -3, WRITE)
def _expire_s(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
    _expire(c, args, done, unit_ms=1000, base_ms=wall_ms(), name="expire")


@command("PEXPIRE", -3, WRITE)
def _pexpire(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
    _expire(c, args, done, unit_ms=1, base_ms=wall_ms(), name="pexpire")


@command("EXPIREAT", -3, WRITE)
def _expireat(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
    _expire(c, args, done, unit_ms=1000, base_ms=0, name="expireat")


@command("PEXPIREAT", -3, WRITE)
def _pexpireat(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
    _expire(c, args, done, unit_ms=1, base_ms=0, name="pexpireat")


@command("TTL", 2)
def _ttl(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
    c.call(O.Get(args[0], ()), lambda r: ttl_reply(r, 1000), done)


@command("PTTL", 2)
def _pttl(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
    c.call(O.Get(args[0], ()), lambda r: ttl_reply(r, 1), done)


@command("PERSIST", 2, WRITE)
def _persist(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
    c.call(O.Persist(args[0]), lambda r: integer(int(r.value or 0)), done)


@command("SADD", -3, WRITE)
def _sadd(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
    key = args[0]
    c.call_sliced(lambda ms: O.SetAdd(key, ms), tuple(args[1:]), _count, done)


@command("SREM", -3, WRITE)
def _srem(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
    key = args[0]
    c.call_sliced(lambda ms: O.SetRemove(key, ms), tuple(args[1:]), _count, done)


def _count(results: list[Result]) -> bytes:
    """The reply of SADD, SREM, HSET, HDEL: how many members each slice changed, summed."""
    return integer(sum(int(r.value) for r in results))


def _members(r: Result) -> list[bytes]:
    expect_kind(r, "set")
    return sorted(r.value or ())


def _pages(
    c: RespServerProtocol,
    key: bytes,
    kind: str,
    *,
    encode: Callable[[Result], list[bytes]],
    finish: Callable[[list[bytes]], bytes],
    done: Done,
) -> None:
    """Read a whole collection page by page (``SCAN_COUNT_MAX`` members each), encoding
    each page as it comes, and reply with ``finish`` of every encoded item: no message and
    no value in the node holds more than one page of it. Like a full SSCAN, a member
    present throughout is in the reply once; one added or removed meanwhile may or may not
    be. A collection of one page is one read."""
    items: list[bytes] = []

    def page(result: Result) -> None:
        if not result.ok:
            done(error(result.error or "ERR unknown failure"))
            return
        try:
            expect_kind(result, kind)
        except CommandError as problem:
            done(error(str(problem)))
            return
        if result.value:
            items.extend(encode(result))
        if result.cursor:
            c.runtime.request(
                Request(0, O.Get(key, cursor=result.cursor, count=count), c.level), page
            )
        else:
            done(finish(items))

    count = O.SCAN_COUNT_MAX
    c.runtime.request(Request(0, O.Get(key, cursor=0, count=count), c.level), page)


@command("SMEMBERS", 2)
def _smembers(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
    def encode(r: Result) -> list[bytes]:
        return [c.bulk(m) for m in sorted(r.value)]

    _pages(
        c, args[0], "set", encode=encode, finish=lambda items: c.collection(items, b"~"), done=done
    )


def _scan_options(options: list[bytes], novalues: bool) -> tuple[bytes | None, int, bool]:
    """MATCH pattern, COUNT count (default 10, as Redis) and, for HSCAN, NOVALUES."""
    pattern: bytes | None = None
    count = 10
    bare = False
    i = 0
    while i < len(options):
        option = options[i].upper()
        if option == b"MATCH" and i + 1 < len(options):
            pattern = None if options[i + 1] == b"*" else options[i + 1]
            i += 2
        elif option == b"COUNT" and i + 1 < len(options):
            count = parse_int(options[i + 1])
            if count < 1:
                raise CommandError("ERR syntax error")
            i += 2
        elif option == b"NOVALUES" and novalues:
            bare = True
            i += 1
        else:
            raise CommandError("ERR syntax error")
    return pattern, count, bare


def _cursor(raw: bytes) -> int:
    try:
        cursor = int(raw)
    except ValueError:
        raise CommandError("ERR invalid cursor") from None
    if not 0 <= cursor < 2**64:
        raise CommandError("ERR invalid cursor")
    return cursor


def _scan_reply(c: RespServerProtocol, r: Result, items: list[bytes]) -> bytes:
    return array([c.bulk(b"%d" % (r.cursor or 0)), array(items)])


@command("SSCAN", -3)
def _sscan(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
    """A page of a set from a cursor (see ``ops.Get``): what Redis promises, a member
    present for the whole scan is returned, at least once; here exactly once, as the order
    is the same on every replica."""
    cursor = _cursor(args[1])
    pattern, count, _ = _scan_options(args[2:], novalues=False)

    def page(r: Result) -> bytes:
        members = sorted(_members(r))
        if pattern is not None:
            members = [m for m in members if fnmatch.fnmatchcase(m, pattern)]
        return _scan_reply(c, r, [c.bulk(m) for m in members])

    c.call(O.Get(args[0], cursor=cursor, count=count), page, done)


def _size(r: Result, kind: str) -> int:
    """A collection's size from a size read (``O.Get(key, ())``)."""
    expect_kind(r, kind)
    return r.size if r.size is not None else len(r.value or ())


@command("SISMEMBER", 3)
def _sismember(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
    c.call(O.Get(args[0], (args[1],)), lambda r: integer(int(args[1] in _members(r))), done)


@command("SCARD", 2)
def _scard(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
    c.call(O.Get(args[0], ()), lambda r: integer(_size(r, "set")), done)


def _fields(r: Result) -> dict[bytes, Any]:
    expect_kind(r, "hash")
    return dict(r.value or {})


@command("HSET", -4, WRITE)
def _hset(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
    if len(args) % 2 == 0:
        raise CommandError("ERR wrong number of arguments for 'hset' command")
    key = args[0]
    pairs = tuple((args[i], args[i + 1]) for i in range(1, len(args), 2))
    c.call_sliced(lambda ps: O.HashSet(key, ps), pairs, _count, done)


def _hmset(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
    def ok(reply: bytes) -> None:
        done(simple("OK") if reply.startswith(b":") else reply)

    _hset(c, args, ok)


COMMANDS["HMSET"] = (-4, _hmset, WRITE)


@command("HGET", 3)
def _hget(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
    def field(r: Result) -> bytes:
        value = _fields(r).get(args[1])
        return c.bulk(None if value is None else as_bytes(value))

    c.call(O.Get(args[0], (args[1],)), field, done)


@command("HDEL", -3, WRITE)
def _hdel(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
    key = args[0]
    c.call_sliced(lambda fs: O.HashDel(key, fs), tuple(args[1:]), _count, done)


@command("HGETALL", 2)
def _hgetall(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
    def encode(r: Result) -> list[bytes]:
        return [c.bulk(k) + c.bulk(as_bytes(v)) for k, v in sorted(r.value.items())]

    def finish(pairs: list[bytes]) -> bytes:
        marker = b"%%%d\r\n" % len(pairs) if c.resp3 else b"*%d\r\n" % (2 * len(pairs))
        return marker + b"".join(pairs)

    _pages(c, args[0], "hash", encode=encode, finish=finish, done=done)


@command("HSCAN", -3)
def _hscan(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
    """A page of a hash's fields and values (NOVALUES: fields only), as SSCAN."""
    cursor = _cursor(args[1])
    pattern, count, bare = _scan_options(args[2:], novalues=True)

    def page(r: Result) -> bytes:
        fields = sorted(_fields(r).items())
        if pattern is not None:
            fields = [(k, v) for k, v in fields if fnmatch.fnmatchcase(k, pattern)]
        if bare:
            return _scan_reply(c, r, [c.bulk(k) for k, _ in fields])
        return _scan_reply(c, r, [p for k, v in fields for p in (c.bulk(k), c.bulk(as_bytes(v)))])

    c.call(O.Get(args[0], cursor=cursor, count=count), page, done)


@command("HINCRBY", 4, WRITE)
def _hincrby(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
    amount = parse_int(args[2])
    if amount == 0:

        def current(r: Result) -> bytes:
            number = as_integer(_fields(r).get(args[1], 0))
            if number is None:
                raise CommandError("ERR hash value is not an integer")
            return integer(number)

        c.call(O.Get(args[0], (args[1],)), current, done)
        return
    c.call(O.HashIncr(args[0], args[1], amount), lambda r: integer(int(r.value)), done)


@command("HLEN", 2)
def _hlen(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
    c.call(O.Get(args[0], ()), lambda r: integer(_size(r, "hash")), done)


@command("HEXISTS", 3)
def _hexists(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
    c.call(O.Get(args[0], (args[1],)), lambda r: integer(int(args[1] in _fields(r))), done)


@command("PFADD", -2, WRITE)
def _pfadd(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
    key = args[0]
    c.call_sliced(
        lambda es: O.HllAdd(key, es),
        tuple(args[1:]),
        lambda rs: integer(int(any(r.value for r in rs))),  # 1 if any register changed
        done,
    )


def _hll_state(result: Result) -> bytes | None:
    expect_kind(result, "hll")
    return result.state


def _union(states: list[bytes | None]) -> HyperLogLog:
    """The union of the HyperLogLogs read (absent keys count as empty)."""
    union = HyperLogLog()
    for state in states:
        if state is not None:
            union.merge(HyperLogLog.from_bytes(state))
    return union


@command("PFCOUNT", -2)
def _pfcount(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
    if len(args) == 1:  # the common case: the replicas' merged count, no sketch to ship

        def count(r: Result) -> bytes:
            expect_kind(r, "hll")
            return integer(int(r.value or 0))

        c.call(O.Get(args[0]), count, done)
        return
    c.call_many(Each(O.Get, args), _hll_state, lambda states: integer(_union(states).value()), done)


@command("PFMERGE", -2, WRITE)
def _pfmerge(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
    """Read the destination and the sources, merge them here, and merge that union into
    the destination (a CRDT merge: replicas that saw other additions keep them). Like
    Redis, the destination must be a HyperLogLog or absent, and counts as a source."""

    def merge_into_destination(states: list[bytes | None]) -> None:
        try:
            union = _union(states)
        except CommandError as problem:
            done(error(str(problem)))
            return
        c.call(O.HllMerge(args[0], union.to_bytes()), lambda r: simple("OK"), done)

    c.gather(Each(O.Get, args), _hll_state, merge_into_destination, done)


# --- the cluster's keyspace (``core/keyspace.py``): pages in hash order, any node ---

SCAN_PAGES_PER_CALL = 16  # partition pages one SCAN reads at most before it answers


def _keys_page(
    c: RespServerProtocol, cursor: int, count: int, then: Callable[[Result], None], done: Done
) -> None:
    """One page of the cluster's keys; ``then`` gets it, or ``done`` the error."""

    def page(result: Result) -> None:
        if not result.ok:
            done(error(result.error or "ERR unknown failure"))
            return
        try:
            then(result)
        except CommandError as problem:
            done(error(str(problem)))

    c.runtime.keys_page(cursor, count, page)


def _wanted(pattern: bytes | None, kind: bytes | None) -> Callable[[list[Any]], bool]:
    def wanted(item: list[Any]) -> bool:
        key, held = item
        if pattern is not None and not fnmatch.fnmatchcase(key, pattern):
            return False
        return kind is None or REDIS_TYPES.get(held, held.encode()) == kind

    return wanted


@command("SCAN", -2)
def _scan(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
    """SCAN cursor [MATCH pattern] [COUNT count] [TYPE type], over the whole cluster: the
    cursor is a position in the keys' hash order, which every node shares; a key present
    for the whole scan comes back exactly once, whichever node is asked."""
    cursor = _cursor(args[0])
    pattern: bytes | None = None
    count = 10
    kind: bytes | None = None
    options = args[1:]
    i = 0
    while i < len(options):
        option = options[i].upper()
        if i + 1 >= len(options):
            raise CommandError("ERR syntax error")
        if option == b"MATCH":
            pattern = None if options[i + 1] == b"*" else options[i + 1]
        elif option == b"COUNT":
            count = parse_int(options[i + 1])
            if count < 1:
                raise CommandError("ERR syntax error")
        elif option == b"TYPE":
            kind = options[i + 1].lower()
        else:
            raise CommandError("ERR syntax error")
        i += 2
    wanted = _wanted(pattern, kind)
    found: list[bytes] = []
    state = {"pages": 0, "seen": 0}

    def page(result: Result) -> None:
        items = result.value or []
        state["pages"] += 1
        state["seen"] += len(items)
        found.extend(item[0] for item in items if wanted(item))
        following = result.cursor or 0
        if following and state["seen"] < count and state["pages"] < SCAN_PAGES_PER_CALL:
            _keys_page(c, following, count - state["seen"], page, done)
            return
        done(array([c.bulk(b"%d" % following), array([c.bulk(key) for key in found])]))

    _keys_page(c, cursor, count, page, done)


def _every_key(
    c: RespServerProtocol,
    wanted: Callable[[list[Any]], bool],
    then: Callable[[list[bytes]], None],
    done: Done,
) -> None:
    """Every key of the cluster that ``wanted`` takes, page after page (other clients'
    commands run between pages), at most a client's output limit of them in bytes."""
    found: list[bytes] = []
    state = {"bytes": 0}
    limit = c.limits.output_buffer_bytes

    def page(result: Result) -> None:
        for item in result.value or []:
            if wanted(item):
                found.append(item[0])
                state["bytes"] += len(item[0]) + 16
        if state["bytes"] > limit:
            raise CommandError(f"ERR the keys would make a reply over {limit} bytes: use SCAN")
        if result.cursor and not c.closing:
            _keys_page(c, result.cursor, KEYS_PAGE_MAX, page, done)
        else:
            then(found)

    _keys_page(c, 0, KEYS_PAGE_MAX, page, done)


@command("KEYS", 2)
def _keys(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
    """The keys of the whole cluster that match, read as a full SCAN is (not one snapshot:
    a key written or deleted meanwhile may or may not be in it)."""
    pattern = None if args[0] == b"*" else args[0]
    _every_key(c, _wanted(pattern, None), lambda keys: done(array([c.bulk(k) for k in keys])), done)


@command("DBSIZE", 1)
def _dbsize(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
    """The keys of the whole cluster: per partition, the most any of its replicas holds
    (one small message per replica and partition, not a read of every key). Like Redis's,
    it counts keys that expired or were deleted and are not dropped yet."""
    total = [0]

    def page(result: Result) -> None:
        total[0] += result.size or 0
        if result.cursor and not c.closing:
            _keys_page(c, result.cursor, 0, page, done)
        else:
            done(integer(total[0]))

    _keys_page(c, 0, 0, page, done)


@command("RANDOMKEY", 1)
def _randomkey(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
    """A key from a random place in the hash order onwards (the first live one there, or
    in the partitions after it, wrapping round once); nil when the cluster holds none."""
    start = _random.randrange(2**64)
    state = {"wrapped": False, "pages": 0}

    def page(result: Result) -> None:
        items = result.value or []
        state["pages"] += 1
        if items:
            done(c.bulk(items[0][0]))
            return
        following = result.cursor or 0
        if not following:
            if state["wrapped"]:
                done(c.bulk(None))
                return
            state["wrapped"] = True
        if state["pages"] > c.runtime.node.config.partitions + 1:
            done(c.bulk(None))  # round once: every partition was read
            return
        _keys_page(c, following, 1, page, done)

    _keys_page(c, start, 1, page, done)


def _flush(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
    """FLUSHDB / FLUSHALL [ASYNC | SYNC]: a DEL of every key of the cluster, page by page
    (observed-remove, as DEL: what is written meanwhile elsewhere survives)."""
    if len(args) > 1 or (args and args[0].upper() not in (b"ASYNC", b"SYNC")):
        raise CommandError("ERR syntax error")

    def page(result: Result) -> None:
        keys = [item[0] for item in result.value or []]
        following = result.cursor or 0

        def deleted(counts: list[int]) -> None:
            if following and not c.closing:
                _keys_page(c, following, KEYS_PAGE_MAX, page, done)
            else:
                done(_OK)

        if keys:
            c.gather(Each(O.Delete, keys), lambda r: 0, deleted, done)
        else:
            deleted([])

    _keys_page(c, 0, KEYS_PAGE_MAX, page, done)


COMMANDS["FLUSHDB"] = (-1, _flush, Role.ADMIN)
COMMANDS["FLUSHALL"] = (-1, _flush, Role.ADMIN)


@command("BC.INCRBY", 3, WRITE)
def _bc_incr(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
    c.call(O.BcounterIncr(args[0], parse_int(args[1])), lambda r: integer(int(r.value)), done)


@command("BC.DECRBY", 3, WRITE)
def _bc_decr(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
    c.call(O.BcounterDecr(args[0], parse_int(args[1])), lambda r: integer(int(r.value)), done)


@command("BC.TRANSFER", 4, WRITE)
def _bc_transfer(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
    op = O.BcounterTransfer(args[0], args[1].decode(errors="replace"), parse_int(args[2]))
    c.call(op, lambda r: integer(int(r.value)), done)


@command("BC.RIGHTS", 2)
def _bc_rights(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
    """The rights each node holds: a map (RESP3) or flat array (RESP2) of node, rights."""

    def rights(r: Result) -> bytes:
        expect_kind(r, "bcounter")
        if r.state is None:
            return mapping([], c.resp3)
        counter = BoundedCounter.from_bytes(r.state)
        return mapping(
            [(c.bulk(a.encode()), integer(counter.rights(a))) for a in counter.actors()],
            c.resp3,
        )

    c.call(O.Get(args[0]), rights, done)


@command("BC.GET", 2)
def _bc_get(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
    def value(r: Result) -> bytes:
        expect_kind(r, "bcounter")
        return integer(int(r.value or 0))

    c.call(O.Get(args[0]), value, done)


# --- more strings: each composed of the core's reads and writes (read, then write: not
# atomic across clients, as ``SET NX``; docs/redis.md) ---


def _expire_in(amount: int, unit_ms: int, name: str) -> int:
    """The expiry time of a relative ``amount`` (SETEX, PSETEX, GETEX EX/PX)."""
    at_ms = wall_ms() + amount * unit_ms
    if amount <= 0 or at_ms > INT64_MAX:
        raise CommandError(f"ERR invalid expire time in '{name}' command")
    return at_ms


@command("SETEX", 4, WRITE)
def _setex(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
    at_ms = _expire_in(parse_int(args[1]), 1000, "setex")
    c.call(O.StringSet(args[0], args[2], expire_at_ms=at_ms), _ok, done)


@command("PSETEX", 4, WRITE)
def _psetex(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
    at_ms = _expire_in(parse_int(args[1]), 1, "psetex")
    c.call(O.StringSet(args[0], args[2], expire_at_ms=at_ms), _ok, done)


@command("SETNX", 3, WRITE)
def _setnx(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
    key, value = args

    def after_read(read: Result) -> bytes:
        if present(read):
            return integer(0)  # a key of any type counts, as in Redis
        c.call(O.StringSet(key, value), lambda r: integer(1), done)
        return WRITE_ANSWERS

    c.call(O.Get(key, ()), after_read, answered_by_write(done))


@command("GETSET", 3, WRITE)
def _getset(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
    _set(c, [args[0], args[1], b"GET"], done)


@command("GETDEL", 2, WRITE)
def _getdel(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
    key = args[0]

    def after_read(read: Result) -> bytes:
        value = string_value(read)
        if value is None:
            return c.bulk(None)
        c.call(O.Delete(key), lambda r: c.bulk(value), done)
        return WRITE_ANSWERS

    c.call(O.Get(key), after_read, answered_by_write(done))


@command("GETEX", -2, WRITE)
def _getex(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
    """GETEX key [EX s | PX ms | EXAT s | PXAT ms | PERSIST]."""
    key, options = args[0], [option.upper() for option in args[1:]]
    change: O.Operation | None = None
    if options == [b"PERSIST"]:
        change = O.Persist(key)
    elif len(options) == 2 and options[0] in (b"EX", b"PX", b"EXAT", b"PXAT"):
        amount = parse_int(args[2])
        if options[0] in (b"EX", b"PX"):
            at_ms = _expire_in(amount, 1000 if options[0] == b"EX" else 1, "getex")
        else:
            at_ms = amount * (1000 if options[0] == b"EXAT" else 1)
            if amount <= 0 or at_ms > INT64_MAX:
                raise CommandError("ERR invalid expire time in 'getex' command")
        change = O.Expire(key, at_ms)
    elif options:
        raise CommandError("ERR syntax error")

    def after_read(read: Result) -> bytes:
        value = string_value(read)
        if value is None or change is None:
            return c.bulk(value)
        c.call(change, lambda r: c.bulk(value), done)
        return WRITE_ANSWERS

    c.call(O.Get(key), after_read, answered_by_write(done))


@command("MSETNX", -3, WRITE)
def _msetnx(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
    """Sets every key if none exists: a read of them all, then the writes (two clients can
    both find the keys absent and both write; the later writes win, as for SET NX)."""
    if len(args) % 2:
        raise CommandError("ERR wrong number of arguments for 'msetnx' command")
    keys = args[0::2]

    def after_read(found: list[bool]) -> None:
        if any(found):
            done(integer(0))
            return
        writes = Each(lambda i: O.StringSet(args[i], args[i + 1]), range(0, len(args), 2))
        c.call_many(writes, lambda result: None, lambda results: integer(1), done)

    c.gather(Each(lambda key: O.Get(key, ()), keys), present, after_read, done)


@command("EXPIRETIME", 2)
def _expiretime_s(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
    c.call(O.Get(args[0], ()), lambda r: ttl_reply(r, 1000, absolute=True), done)


@command("PEXPIRETIME", 2)
def _pexpiretime(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
    c.call(O.Get(args[0], ()), lambda r: ttl_reply(r, 1, absolute=True), done)


COMMANDS["TOUCH"] = COMMANDS["EXISTS"]  # no idle time is kept: TOUCH counts the keys found


def string_range(value: bytes, start: int, end: int) -> bytes:
    """GETRANGE's slice: negative offsets count from the end, both ends included."""
    length = len(value)
    if start < 0:
        start = max(length + start, 0)
    if end < 0:
        end = max(length + end, 0)
    end = min(end, length - 1)
    return b"" if start > end or not length else value[start : end + 1]


@command("GETRANGE", 4)
def _getrange(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
    start, end = parse_int(args[1]), parse_int(args[2])
    c.call(O.Get(args[0]), lambda r: c.bulk(string_range(string_value(r) or b"", start, end)), done)


COMMANDS["SUBSTR"] = COMMANDS["GETRANGE"]


@command("SETRANGE", 4, WRITE)
def _setrange(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
    key, patch = args[0], args[2]
    offset = parse_int(args[1])
    if offset < 0:
        raise CommandError("ERR offset is out of range")
    if offset + len(patch) > O.STRING_BYTES_MAX:
        raise CommandError(
            f"ERR string exceeds maximum allowed size ({O.STRING_BYTES_MAX} bytes in Eventual)"
        )

    def after_read(read: Result) -> bytes:
        value = string_value(read)
        if not patch:  # nothing to write: the length as it is (0 for no key), as Redis
            return integer(len(value or b""))
        old = value or b""
        new = old[:offset].ljust(offset, b"\0") + patch + old[offset + len(patch) :]
        c.call(O.StringSet(key, new, keep_ttl=True), lambda r: integer(len(new)), done)
        return WRITE_ANSWERS

    c.call(O.Get(key), after_read, answered_by_write(done))


# --- more hashes ---


@command("HKEYS", 2)
def _hkeys(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
    def encode(r: Result) -> list[bytes]:
        return [c.bulk(k) for k in sorted(r.value)]

    _pages(c, args[0], "hash", encode=encode, finish=array, done=done)


@command("HVALS", 2)
def _hvals(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
    def encode(r: Result) -> list[bytes]:
        return [c.bulk(as_bytes(v)) for _, v in sorted(r.value.items())]

    _pages(c, args[0], "hash", encode=encode, finish=array, done=done)


@command("HMGET", -3)
def _hmget(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
    fields = tuple(args[1:])

    def values(r: Result) -> bytes:
        found = _fields(r)
        return array([c.bulk(None if f not in found else as_bytes(found[f])) for f in fields])

    c.call(O.Get(args[0], fields), values, done)


@command("HSETNX", 4, WRITE)
def _hsetnx(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
    key, field, value = args

    def after_read(read: Result) -> bytes:
        if field in _fields(read):
            return integer(0)
        c.call(O.HashSet(key, ((field, value),)), lambda r: integer(1), done)
        return WRITE_ANSWERS

    c.call(O.Get(key, (field,)), after_read, answered_by_write(done))


@command("HSTRLEN", 3)
def _hstrlen(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
    def length(r: Result) -> bytes:
        value = _fields(r).get(args[1])
        return integer(0 if value is None else len(as_bytes(value)))

    c.call(O.Get(args[0], (args[1],)), length, done)


# --- more sets ---


@command("SMISMEMBER", -3)
def _smismember(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
    asked = tuple(args[1:])

    def each(r: Result) -> bytes:
        members = set(_members(r))
        return array([integer(int(m in members)) for m in asked])

    c.call(O.Get(args[0], asked), each, done)


def _whole_sets(
    c: RespServerProtocol, keys: list[bytes], then: Callable[[list[set[bytes]]], None], done: Done
) -> None:
    """Read the sets at ``keys`` whole, page by page and one after another (an absent key is
    an empty set; another type is WRONGTYPE), then ``then`` of them, which replies."""
    sets: list[set[bytes]] = []

    def read_next() -> None:
        if len(sets) == len(keys):
            then(sets)
            return
        found: set[bytes] = set()
        sets.append(found)

        def finish(items: list[bytes]) -> bytes:
            found.update(items)
            read_next()
            return WRITE_ANSWERS

        _pages(
            c,
            keys[len(sets) - 1],
            "set",
            encode=lambda r: list(r.value),
            finish=finish,
            done=answered_by_write(done),
        )

    read_next()


def _combine(kind: bytes, sets: list[set[bytes]]) -> set[bytes]:
    first, rest = sets[0], sets[1:]
    if kind == b"SINTER":
        return first.intersection(*rest)
    if kind == b"SUNION":
        return first.union(*rest)
    return first.difference(*rest)


def _set_algebra(kind: bytes) -> Handler:
    def read(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
        def reply(sets: list[set[bytes]]) -> None:
            members = sorted(_combine(kind, sets))
            done(c.collection([c.bulk(m) for m in members], b"~"))

        _whole_sets(c, args, reply, done)

    return read


def _set_algebra_store(kind: bytes) -> Handler:
    """``<kind>STORE destination key...``: the result replaces the destination, as a DEL
    (observed-remove) and then SADDs; the reply is the result's size."""

    def store(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
        destination = args[0]

        def write(sets: list[set[bytes]]) -> None:
            members = tuple(sorted(_combine(kind, sets)))

            def fill(result: Result) -> None:
                if not result.ok:
                    done(error(result.error or "ERR unknown failure"))
                elif not members:
                    done(integer(0))
                else:
                    c.call_sliced(
                        lambda ms: O.SetAdd(destination, ms),
                        members,
                        lambda results: integer(len(members)),
                        done,
                    )

            c.runtime.request(Request(0, O.Delete(destination), c.level), fill)

        _whole_sets(c, args[1:], write, done)

    return store


for _kind in (b"SINTER", b"SUNION", b"SDIFF"):
    COMMANDS[_kind.decode()] = (-2, _set_algebra(_kind), Role.READ_ONLY)
    COMMANDS[_kind.decode() + "STORE"] = (-3, _set_algebra_store(_kind), WRITE)


@command("SINTERCARD", -3)
def _sintercard(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
    """SINTERCARD numkeys key [key ...] [LIMIT limit]."""
    count = parse_int(args[0])
    if count <= 0:
        raise CommandError("ERR numkeys should be greater than 0")
    if count > len(args) - 1:
        raise CommandError("ERR Number of keys can't be greater than number of args")
    keys, rest = args[1 : 1 + count], args[1 + count :]
    limit = 0
    if rest:
        if len(rest) != 2 or rest[0].upper() != b"LIMIT":
            raise CommandError("ERR syntax error")
        limit = parse_int(rest[1])
        if limit < 0:
            raise CommandError("ERR LIMIT can't be negative")

    def reply(sets: list[set[bytes]]) -> None:
        size = len(_combine(b"SINTER", sets))
        done(integer(min(size, limit) if limit else size))

    _whole_sets(c, keys, reply, done)


@command("SMOVE", 4, WRITE)
def _smove(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
    """Moves a member: added to the destination, then removed from the source (in that
    order: a node lost between the two leaves the member in both, never in neither)."""
    source, destination, member = args

    def after_reads(reads: list[Result]) -> None:
        found, target = reads
        try:
            members = _members(found)
            expect_kind(target, "set")
        except CommandError as problem:
            done(error(str(problem)))
            return
        if member not in members or source == destination:
            done(integer(int(member in members)))
            return

        def remove(added: Result) -> bytes:
            c.call(O.SetRemove(source, (member,)), lambda r: integer(1), done)
            return WRITE_ANSWERS

        c.call(O.SetAdd(destination, (member,)), remove, answered_by_write(done))

    reads = [O.Get(source, (member,)), O.Get(destination, ())]
    c.gather(reads, lambda r: r, after_reads, done)


# Reads of random members (SRANDMEMBER, SPOP): the most one command returns.
RANDOM_MEMBERS_MAX = 1_000_000


def _random_members(
    c: RespServerProtocol, key: bytes, wanted: int, then: Callable[[list[bytes]], None], done: Done
) -> None:
    """Up to ``wanted`` distinct members of the set at ``key``, read from a random place in
    scan order onwards (wrapping round once): a page or a few, whatever the set's size. The
    scan order is a hash of the member, so the place is random and so are the members after
    it, though not exactly uniformly (a member after a wide gap is picked more often)."""
    start = _random.randrange(2, 2**62)  # scan places are 62-bit; 0 and 1 mean the start
    taken: dict[bytes, None] = {}
    state = {"wrapped": False}

    def page(result: Result) -> None:
        if not result.ok:
            done(error(result.error or "ERR unknown failure"))
            return
        try:
            members = _members(result)
        except CommandError as problem:
            done(error(str(problem)))
            return
        for member in members:
            if len(taken) >= wanted:
                break
            taken[member] = None
        if len(taken) >= wanted or (not result.cursor and state["wrapped"]):
            then(list(taken))
            return
        if not result.cursor:
            state["wrapped"] = True
        ask(result.cursor or 0)

    def ask(cursor: int) -> None:
        count = O.scan_count(wanted - len(taken))
        c.runtime.request(Request(0, O.Get(key, cursor=cursor, count=count), c.level), page)

    ask(start)


@command("SRANDMEMBER", -2)
def _srandmember(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
    """SRANDMEMBER key [count]: count > 0, distinct members; count < 0, that many picks,
    repeats allowed (drawn from up to 10,000 distinct members read)."""
    if len(args) > 2:
        raise CommandError("ERR syntax error")
    count = parse_int(args[1]) if len(args) == 2 else None
    if count is not None and abs(count) > RANDOM_MEMBERS_MAX:
        raise CommandError(f"ERR value is out of range (at most {RANDOM_MEMBERS_MAX} members)")
    if count == 0:
        done(array([]))
        return

    def reply(members: list[bytes]) -> None:
        if count is None:
            done(c.bulk(members[0] if members else None))
        elif count > 0:
            done(array([c.bulk(m) for m in members]))
        else:
            picks = [_random.choice(members) for _ in range(-count)] if members else []
            done(array([c.bulk(m) for m in picks]))

    wanted = 1 if count is None else min(abs(count), O.SCAN_COUNT_MAX) if count < 0 else count
    _random_members(c, args[0], wanted, reply, done)


@command("SPOP", -2, WRITE)
def _spop(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
    """SPOP key [count]: random members, removed (observed-remove: a replica that pops the
    same member at the same time gives it to its own client too; docs/redis.md)."""
    if len(args) > 2:
        raise CommandError("ERR syntax error")
    count = parse_int(args[1]) if len(args) == 2 else None
    if count is not None and not 0 <= count <= RANDOM_MEMBERS_MAX:
        raise CommandError(
            f"ERR value is out of range, must be positive (at most {RANDOM_MEMBERS_MAX})"
        )
    if count == 0:
        done(array([]))
        return

    def remove(members: list[bytes]) -> None:
        def reply(results: list[Result]) -> bytes:
            if count is None:
                return c.bulk(members[0] if members else None)
            return array([c.bulk(m) for m in members])

        if not members:
            done(c.bulk(None) if count is None else array([]))
            return
        c.call_sliced(lambda ms: O.SetRemove(args[0], ms), tuple(members), reply, done)

    _random_members(c, args[0], 1 if count is None else count, remove, done)


# --- pub/sub, cluster-wide (``server/pubsub.py``) ---


# Channels and patterns one client may listen to, and distinct patterns on one node (each
# PUBLISH matches the channel against every pattern: a bound on what one costs).
SUBSCRIPTIONS_MAX = 10_000
PATTERNS_MAX = 10_000


def _check_subscriptions(c: RespServerProtocol, adding: list[bytes], pattern: bool) -> None:
    if len(c.channels) + len(c.patterns) + len(adding) > SUBSCRIPTIONS_MAX:
        raise CommandError(f"ERR a client listens to at most {SUBSCRIPTIONS_MAX} channels")
    patterns = c.runtime.pubsub.patterns
    if pattern and len(patterns) + sum(p not in patterns for p in adding) > PATTERNS_MAX:
        raise CommandError(f"ERR a node holds at most {PATTERNS_MAX} distinct patterns")


def _listen(c: RespServerProtocol, names: list[bytes], *, pattern: bool) -> bytes:
    """(P)SUBSCRIBE: start listening to ``names``; a confirmation for each."""
    _check_subscriptions(c, names, pattern=pattern)
    mine = c.patterns if pattern else c.channels
    pubsub = c.runtime.pubsub
    replies = []
    for name in names:
        if name not in mine:
            mine[name] = None
            (pubsub.psubscribe if pattern else pubsub.subscribe)(c, name)
        replies.append(c.subscription_reply(b"psubscribe" if pattern else b"subscribe", name))
    return b"".join(replies)


def _stop_listening(c: RespServerProtocol, names: list[bytes], *, pattern: bool) -> bytes:
    """(P)UNSUBSCRIBE: stop listening to ``names`` (none: to all); a confirmation for each."""
    mine = c.patterns if pattern else c.channels
    pubsub = c.runtime.pubsub
    kind = b"punsubscribe" if pattern else b"unsubscribe"
    names = names or list(mine)
    if not names:
        return c.subscription_reply(kind, None)
    replies = []
    for name in names:
        if name in mine:
            del mine[name]
            (pubsub.punsubscribe if pattern else pubsub.unsubscribe)(c, name)
        replies.append(c.subscription_reply(kind, name))
    return b"".join(replies)


@command("SUBSCRIBE", -2)
def _subscribe(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
    done(_listen(c, args, pattern=False))


@command("PSUBSCRIBE", -2)
def _psubscribe(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
    done(_listen(c, args, pattern=True))


@command("UNSUBSCRIBE", -1)
def _unsubscribe(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
    done(_stop_listening(c, args, pattern=False))


@command("PUNSUBSCRIBE", -1)
def _punsubscribe(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
    done(_stop_listening(c, args, pattern=True))


@command("PUBLISH", 3, WRITE)
def _publish(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
    """Delivered here and sent to every peer that is up, for its subscribers; the reply
    counts the subscribers of this node that received it (as in Redis Cluster)."""
    done(integer(c.runtime.publish(args[0], args[1])))


@command("PUBSUB", -2)
def _pubsub(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
    """PUBSUB CHANNELS [pattern] | NUMSUB [channel ...] | NUMPAT: this node's subscribers
    (as Redis Cluster answers them)."""
    sub = args[0].upper()
    pubsub = c.runtime.pubsub
    if sub == b"CHANNELS" and len(args) <= 2:
        pattern = args[1] if len(args) == 2 else None
        done(array([c.bulk(ch) for ch in pubsub.active_channels(pattern)]))
    elif sub == b"NUMSUB":
        pairs = [(c.bulk(ch), integer(pubsub.subscribers(ch))) for ch in args[1:]]
        done(array([part for pair in pairs for part in pair]))
    elif sub == b"NUMPAT" and len(args) == 1:
        done(integer(len(pubsub.patterns)))
    else:
        raise CommandError(f"ERR unknown subcommand '{sub.decode(errors='replace')}'.")


# --- COPY, RENAME, RENAMENX: a read of the source and writes to the destination (not one
# atomic step: docs/redis.md) ---


COPYABLE = ("string", "counter", "object", "hll", "set", "hash")
# Kinds whose commands live in their own modules copy themselves: ``COPIERS[kind](c,
# source, destination, written, done)`` writes the source's members to the destination
# and then calls ``written`` (sorted sets: server/sorted_sets.py; lists: server/lists.py).
Copier = Callable[["RespServerProtocol", bytes, bytes, Callable[[object], bytes], Done], None]
COPIERS: dict[str, Copier] = {}


def _copy(
    c: RespServerProtocol,
    source: bytes,
    destination: bytes,
    *,
    replace: bool,
    then: Callable[[bool], None],
    done: Done,
) -> None:
    """Copy ``source``'s value and expiry to ``destination`` and call ``then(True)``, or
    ``then(False)`` when there is no source, or a destination and not ``replace``. A source
    that cannot be copied is refused before the destination is touched."""
    answered = answered_by_write(done)

    def copied(result: object = None) -> bytes:
        then(True)
        return WRITE_ANSWERS

    def write(found: Result) -> bytes:
        kind = found.kind
        expire_at = found.expire_at

        def written(result: object) -> bytes:
            if expire_at is None:
                return copied()
            c.call(O.Expire(destination, expire_at), copied, answered)
            return WRITE_ANSWERS

        if kind is not None and kind in COPIERS:
            COPIERS[kind](c, source, destination, written, answered)
            return WRITE_ANSWERS
        if kind in ("set", "hash"):

            def encode(r: Result) -> list[Any]:
                if kind == "set":
                    return list(r.value)
                return [(field, as_bytes(value)) for field, value in r.value.items()]

            def fill(items: list[Any]) -> bytes:
                make: Callable[[tuple[Any, ...]], O.Operation] = (
                    (lambda ms: O.SetAdd(destination, ms))
                    if kind == "set"
                    else (lambda ps: O.HashSet(destination, ps))
                )
                c.call_sliced(make, tuple(items), written, answered)
                return WRITE_ANSWERS

            _pages(c, source, kind, encode=encode, finish=fill, done=answered)
            return WRITE_ANSWERS
        op: O.Operation
        if kind == "object":
            op = O.ObjectPut(destination, found.value[0])
        elif kind == "hll":
            op = O.HllMerge(destination, cast(bytes, found.state))
        else:  # a string, or a counter: it becomes a string holding its value
            op = O.StringSet(destination, as_bytes(found.value))
        c.call(op, written, answered)
        return WRITE_ANSWERS

    def after_reads(reads: list[Result]) -> None:
        found, target = reads
        if not present(found) or (present(target) and not replace):
            then(False)
            return
        copyable = found.kind in COPYABLE or found.kind in COPIERS
        if not copyable or (found.kind == "hll" and found.state is None):
            done(error(f"ERR a {found.kind} cannot be copied (docs/redis.md)"))
        elif found.kind == "object" and len(found.value) != 1:
            done(error("ERR the object has siblings: resolve them first (GET /kv)"))
        elif present(target):  # REPLACE: what the destination held goes first (a DEL)
            c.call(O.Delete(destination), lambda r: write(found), answered)
        else:
            write(found)

    if source == destination:
        raise CommandError("ERR source and destination objects are the same")
    # The source whole (a collection's size only: its members are read page by page).
    c.gather([O.Get(source, ()), O.Get(destination, ())], lambda r: r, after_reads, done)


@command("COPY", -3, WRITE)
def _copy_command(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
    """COPY source destination [REPLACE]: 1 if copied, 0 if not."""
    options = [a.upper() for a in args[2:]]
    if any(o != b"REPLACE" for o in options):
        raise CommandError("ERR syntax error")
    _copy(
        c,
        args[0],
        args[1],
        replace=bool(options),
        then=lambda copied: done(integer(int(copied))),
        done=done,
    )


def _rename(c: RespServerProtocol, args: list[bytes], done: Done, *, replace: bool) -> None:
    source = args[0]

    def moved(copied: bool) -> None:
        if not copied:
            if replace:  # RENAME: the source is missing
                done(error("ERR no such key"))
            else:  # RENAMENX: the destination exists (or the source is missing)
                done(integer(0))
            return
        answer = _OK if replace else integer(1)
        c.call(O.Delete(source), lambda r: answer, done)

    if args[0] == args[1]:  # Redis: OK (RENAME) or 0 (RENAMENX) when the key exists
        c.call(
            O.Get(source, ()),
            lambda r: (_OK if replace else integer(0)) if present(r) else _no_such_key(),
            done,
        )
        return
    _copy(c, source, args[1], replace=replace, then=moved, done=done)


def _no_such_key() -> bytes:
    raise CommandError("ERR no such key")


@command("RENAME", 3, WRITE)
def _rename_command(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
    _rename(c, args, done, replace=True)


@command("RENAMENX", 3, WRITE)
def _renamenx(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
    _rename(c, args, done, replace=False)
