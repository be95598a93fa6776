"""The Redis face's lists: LPUSH, LPOP, LRANGE and the rest (``docs/redis.md``).

A list is ``crdt.rlist.ReplicatedList``: each element has a position no other element
has, and the list is an add-wins map from position to value, kept in order. Commands map
to the core as follows:

- pushes and pops are operations at the coordinating replica (``ops.ListPush``,
  ``ops.ListPop``): a push places its values after (before) the last (first) element that
  replica holds; a pop takes what it holds at that end, so two clients popping at once
  through different replicas can both get the same element (``docs/redis.md``);
- LRANGE and LINDEX are ranked reads by position (``ops.Get.ranked``), O(log n) plus the
  elements returned, page by page past ``RANKED_PAGE``; LLEN reads the size;
- LSET, LINSERT, LREM and LTRIM act on the coordinating replica's list; LINSERT, LREM and
  LPOS look for a value, O(n) as in Redis;
- LMOVE (and RPOPLPUSH) reads the element at the source's end, pushes it to the
  destination, then removes that element (by position) from the source: a node lost in
  between leaves it in both, never in neither, as SMOVE does;
- blocking pops are refused (``BLOCKING_REFUSED``).

Registered into ``server/resp.py``'s table on import (``server/main.py`` imports it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from eventual.core import Request, Result
from eventual.core import ops as O  # noqa: N812  (as in server/resp.py)
from eventual.crdt.ranked import By, Ranked
from eventual.server.resp import (
    COMMANDS,
    COPIERS,
    WRITE,
    WRITE_ANSWERS,
    CommandError,
    Done,
    RespServerProtocol,
    bulk,
    command,
    error,
    expect_kind,
    integer,
    parse_int,
)
from eventual.server.sorted_sets import (
    RANKED_PAGE,
    absolute,
    pop_count,
    ranked_read,
    read_size,
    refused,
    removals,
)

__all__ = ["BLOCKING_REFUSED"]

# Why BLPOP and its kin are refused. A blocking pop promises the one waiting client the next
# element, exactly once; with every replica taking pushes and pops on its own, the element
# a waiting client would be woken for can be popped at the same moment through another
# node, and no node can know it first without asking a majority on every push: the
# coordination this store is built to do without.
BLOCKING_REFUSED = (
    "ERR blocking list commands are not supported: no replica of a leaderless store can "
    "hand a waiting client an element exactly once (docs/redis.md); poll with LPOP or RPOP"
)


def _values(pairs: list[list[Any]]) -> list[bytes]:
    return [value for _, value in pairs]


def _array(c: RespServerProtocol, values: list[bytes]) -> bytes:
    return b"*%d\r\n" % len(values) + b"".join(bulk(v, c.resp3) for v in values)


def _nil_array(c: RespServerProtocol) -> bytes:
    return b"_\r\n" if c.resp3 else b"*-1\r\n"


# --- pushes ---


def _push(c: RespServerProtocol, args: list[bytes], done: Done, *, left: bool) -> None:
    key = args[0]

    def length(results: list[Result]) -> bytes:
        return integer(int(results[-1].value))

    c.call_sliced(lambda vs: O.ListPush(key, vs, left), tuple(args[1:]), length, done)


@command("LPUSH", -3, WRITE)
def _lpush(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
    _push(c, args, done, left=True)


@command("RPUSH", -3, WRITE)
def _rpush(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
    _push(c, args, done, left=False)


def _push_existing(c: RespServerProtocol, args: list[bytes], done: Done, *, left: bool) -> None:
    """LPUSHX/RPUSHX: push only to a list that exists (read, then push: not atomic)."""

    def sized(size: int) -> None:
        if not size:
            done(integer(0))
            return
        _push(c, args, done, left=left)

    read_size(c, args[0], "list", sized, done)


@command("LPUSHX", -3, WRITE)
def _lpushx(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
    _push_existing(c, args, done, left=True)


@command("RPUSHX", -3, WRITE)
def _rpushx(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
    _push_existing(c, args, done, left=False)


# --- pops ---


def _pop(c: RespServerProtocol, args: list[bytes], done: Done, *, right: bool) -> None:
    key = args[0]
    counted, count = pop_count(args)

    def reply(taken: list[Any], _: int) -> bytes:
        if not counted:
            return bulk(taken[0][1] if taken else None, c.resp3)
        if not taken:
            return _nil_array(c)
        return _array(c, _values(taken))

    if counted and count == 0:  # Redis's answer: an empty array, or nil without the key
        read_size(c, key, "list", lambda size: done(b"*0\r\n" if size else _nil_array(c)), done)
        return
    removals(c, lambda n: O.ListPop(key, n, right), count, reply, done)


@command("LPOP", -2, WRITE)
def _lpop(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
    _pop(c, args, done, right=False)


@command("RPOP", -2, WRITE)
def _rpop(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
    _pop(c, args, done, right=True)


# --- reads ---


@command("LLEN", 2)
def _llen(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
    def size(r: Result) -> bytes:
        expect_kind(r, "list")
        return integer(r.size if r.size is not None else len(r.value or ()))

    c.call(O.Get(args[0], ()), size, done)


@command("LRANGE", 4)
def _lrange(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
    query = Ranked(By.RANK, parse_int(args[1]), parse_int(args[2]))
    ranked_read(
        c, args[0], query, lambda pairs, _: _array(c, _values(pairs)), done=done, kind="list"
    )


@command("LINDEX", 3)
def _lindex(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
    index = parse_int(args[1])
    query = Ranked(By.RANK, index, index)

    def reply(pairs: list[list[Any]], _: int) -> bytes:
        return bulk(pairs[0][1] if pairs else None, c.resp3)

    ranked_read(c, args[0], query, reply, done=done, kind="list")


def _scan(
    c: RespServerProtocol,
    key: bytes,
    rev: bool,
    visit: Callable[[int, bytes], bool],
    then: Callable[[], bytes],
    *,
    done: Done,
) -> None:
    """Read the list from one end a page at a time, calling ``visit(index, value)`` (the
    index from the head) until it returns False or the list ends; reply with ``then()``."""
    state = {"offset": 0}

    def page(r: Result) -> None:
        if refused(r, "list", done):
            return
        pairs: list[list[Any]] = list(r.value or ())
        size = r.size or 0
        for i, (_, value) in enumerate(pairs):
            at = state["offset"] + i
            if not visit(size - 1 - at if rev else at, value):
                done(then())
                return
        if len(pairs) < RANKED_PAGE or c.closing:
            done(then())
            return
        state["offset"] += len(pairs)
        ask()

    def ask() -> None:
        query = Ranked(By.RANK, 0, -1, rev=rev, offset=state["offset"], limit=RANKED_PAGE)
        c.runtime.request(Request(0, O.Get(key, (), ranked=query.to_bytes()), c.level), page)

    ask()


@command("LPOS", -3)
def _lpos(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
    """LPOS key element [RANK rank] [COUNT num] [MAXLEN len]: O(n), as in Redis."""
    key, element = args[0], args[1]
    rank, count, maxlen = 1, None, 0
    options = args[2:]
    if len(options) % 2:
        raise CommandError("ERR syntax error")
    for i in range(0, len(options), 2):
        name, value = options[i].upper(), parse_int(options[i + 1])
        if name == b"RANK":
            if value == 0:
                raise CommandError(
                    "ERR RANK can't be zero: use 1 to start from the first match, 2 from the "
                    "second ... or use negative to start from the end of the list"
                )
            rank = value
        elif name == b"COUNT":
            if value < 0:
                raise CommandError("ERR COUNT can't be negative")
            count = value
        elif name == b"MAXLEN":
            if value < 0:
                raise CommandError("ERR MAXLEN can't be negative")
            maxlen = value
        else:
            raise CommandError("ERR syntax error")
    found: list[int] = []
    state = {"skip": abs(rank) - 1, "seen": 0}
    wanted = count if count else None

    def visit(index: int, value: bytes) -> bool:
        state["seen"] += 1
        if value == element:
            if state["skip"]:
                state["skip"] -= 1
            else:
                found.append(index)
                if count is None or (wanted is not None and len(found) >= wanted):
                    return False
        return not maxlen or state["seen"] < maxlen

    def reply() -> bytes:
        if count is None:
            return integer(found[0]) if found else bulk(None, c.resp3)
        return b"*%d\r\n" % len(found) + b"".join(integer(i) for i in found)

    _scan(c, key, rank < 0, visit, reply, done=done)


# --- changes in place ---


@command("LSET", 4, WRITE)
def _lset(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
    op = O.ListSet(args[0], parse_int(args[1]), args[2])
    c.call(op, lambda r: b"+OK\r\n", done)


@command("LINSERT", 5, WRITE)
def _linsert(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
    where = args[1].upper()
    if where not in (b"BEFORE", b"AFTER"):
        raise CommandError("ERR syntax error")
    op = O.ListInsert(args[0], args[2], args[3], where == b"BEFORE")
    c.call(op, lambda r: integer(int(r.value)), done)


@command("LREM", 4, WRITE)
def _lrem(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
    key, count, value = args[0], parse_int(args[1]), args[2]
    wanted = abs(count) if count else 2**62
    sign = -1 if count < 0 else 1
    removals(c, lambda n: O.ListRemove(key, sign * n, value), wanted, lambda _, n: integer(n), done)


@command("LTRIM", 4, WRITE)
def _ltrim(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
    """Keep ``start..stop``: the ranks are made absolute from LLEN, then what lies after
    the range and what lies before it are removed, a slice at a time."""
    key = args[0]
    start, stop = parse_int(args[1]), parse_int(args[2])

    def sized(size: int) -> None:
        first, last = absolute(start, stop, size)
        if last < first:
            first, last = size, size - 1  # nothing kept
        tail, head = size - 1 - last, first

        def trim_head() -> None:
            def make(n: int) -> O.ListRemoveRange:
                return O.ListRemoveRange(key, Ranked(By.RANK, 0, n - 1, limit=n).to_bytes())

            if head <= 0:
                done(b"+OK\r\n")
                return
            removals(c, make, head, lambda _, __: b"+OK\r\n", done)

        def make_tail(n: int) -> O.ListRemoveRange:
            query = Ranked(By.RANK, 0, n - 1, rev=True, limit=n)
            return O.ListRemoveRange(key, query.to_bytes())

        if tail <= 0:
            trim_head()
            return

        def after_tail(reply: bytes) -> None:
            if reply.startswith(b"-"):
                done(reply)
                return
            trim_head()

        removals(c, make_tail, tail, lambda _, __: b"+OK\r\n", after_tail)

    read_size(c, key, "list", sized, done)


# --- moves ---


def _move(
    c: RespServerProtocol, source: bytes, destination: bytes, wherefrom: bytes, whereto: bytes
) -> Callable[[Done], None]:
    sides = (b"LEFT", b"RIGHT")
    if wherefrom.upper() not in sides or whereto.upper() not in sides:
        raise CommandError("ERR syntax error")
    from_right = wherefrom.upper() == b"RIGHT"
    to_left = whereto.upper() == b"LEFT"

    def run(done: Done) -> None:
        def read(pairs: list[list[Any]], _: int) -> bytes:
            if not pairs:
                done(bulk(None, c.resp3))
                return b""
            position, value = pairs[0]

            def pushed(r: Result) -> None:
                if not r.ok:
                    done(error(r.error or "ERR unknown failure"))
                    return
                op = O.ListRemoveAt(source, (position,))
                c.call(op, lambda _: bulk(value, c.resp3), done)

            push = O.ListPush(destination, (value,), to_left)
            c.runtime.request(Request(0, push, c.level), pushed)
            return b""

        def relay(reply: bytes) -> None:
            if reply:  # an error (or a WRONGTYPE) from the read; the rest replies itself
                done(reply)

        ranked_read(c, source, Ranked(By.RANK, 0, 0, rev=from_right), read, done=relay, kind="list")

    return run


@command("LMOVE", 5, WRITE)
def _lmove(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
    _move(c, args[0], args[1], args[2], args[3])(done)


@command("RPOPLPUSH", 3, WRITE)
def _rpoplpush(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
    _move(c, args[0], args[1], b"RIGHT", b"LEFT")(done)


def _blocking(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
    raise CommandError(BLOCKING_REFUSED)


for _name, _arity in (
    ("BLPOP", -3),
    ("BRPOP", -3),
    ("BLMOVE", 6),
    ("BRPOPLPUSH", 4),
    ("BLMPOP", -5),
):
    COMMANDS[_name] = (_arity, _blocking, WRITE)


def _copy_list(
    c: RespServerProtocol,
    source: bytes,
    destination: bytes,
    written: Callable[[object], bytes],
    done: Done,
) -> None:
    """COPY and RENAME of a list: its values in order, a page at a time, then RPUSHes."""
    values: list[bytes] = []

    def visit(index: int, value: bytes) -> bool:
        values.append(value)
        return True

    def fill() -> bytes:
        c.call_sliced(lambda vs: O.ListPush(destination, vs), tuple(values), written, done)
        return WRITE_ANSWERS

    def relay(reply: bytes) -> None:
        if reply:  # an error from a read; the pushes reply themselves
            done(reply)

    _scan(c, source, False, visit, fill, done=relay)


COPIERS["list"] = _copy_list
