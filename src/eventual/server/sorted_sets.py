"""The Redis face's sorted sets: ZADD, ZINCRBY, ZRANGE and the rest (``docs/redis.md``).

A sorted set is ``crdt.zset.SortedSet``: add-wins members whose scores are registers that
count (concurrent ZINCRBYs all count; a ZADD overrides the increments it saw). Commands map
to the core as follows:

- writes of named members (ZADD, ZINCRBY, ZREM) are operations on those members, sliced
  as SADD is (``ITEMS_PER_OP`` members a write);
- ZSCORE, ZMSCORE and ZCARD read a projection or a size, as HGET and HLEN do;
- reads in order (ZRANGE in all its forms, ZRANK, ZCOUNT, ZLEXCOUNT) are *ranked reads*
  (``ops.Get.ranked``): each replica answers from its ranking, in O(log n + m), and the
  coordinator merges the answers as any read at the request's level. A range of more
  than ``RANKED_PAGE`` members is read a page at a time (``offset`` moving on), so no
  message holds more than a page; like SMEMBERS on a big set, a member added or removed
  between pages may or may not be in the reply;
- ZPOPMIN/ZPOPMAX and ZREMRANGEBY* remove what the *coordinating replica* ranks lowest
  (or in range) and replicate those removals: two clients popping at once through
  different replicas can both get the same member (``docs/redis.md``, "Pops").

Registered into ``server/resp.py``'s table on import (``server/main.py`` imports it).
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Callable
from typing import Any

from eventual.core import Request, Result
from eventual.core import ops as O  # noqa: N812  (as in server/resp.py)
from eventual.crdt.lwwregister import format_float
from eventual.crdt.ranked import By, Ranked
from eventual.server.resp import (
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
from eventual.server.resp import _cursor as parse_cursor
from eventual.server.resp import _pages as read_pages
from eventual.server.resp import _scan_options as scan_options
from eventual.server.resp import _scan_reply as scan_reply

__all__ = [
    "RANKED_PAGE",
    "absolute",
    "pop_count",
    "ranked_read",
    "read_size",
    "refused",
    "removals",
]

# Members one ranked read returns at most: a bigger range is read page by page.
RANKED_PAGE = 10_000


# --- arguments ---


def parse_score(raw: bytes, what: str = "ERR value is not a valid float") -> float:
    """A score as Redis reads one: a double, ``inf``, ``+inf`` or ``-inf``; never NaN."""
    text = raw.decode(errors="replace").strip()
    if text != raw.decode(errors="replace") or not text or len(text) > 64:
        raise CommandError(what)
    try:
        number = float(text)
    except ValueError:
        raise CommandError(what) from None
    if math.isnan(number):
        raise CommandError(what)
    return number


def score_bound(raw: bytes) -> tuple[float, bool]:
    """A ZRANGEBYSCORE bound: ``(5`` is exclusive, ``5`` inclusive, ``-inf``/``+inf``."""
    message = "ERR min or max is not a float"
    if raw.startswith(b"("):
        return parse_score(raw[1:], message), True
    return parse_score(raw, message), False


def lex_bound(raw: bytes, low: bool) -> tuple[bytes | None, bool]:
    """A ZRANGEBYLEX bound as ``Ranked`` takes it: ``[a`` inclusive, ``(a`` exclusive, ``-``
    and ``+`` the ends (the far end as an open None: nothing lies beyond it)."""
    if raw == b"-":
        return None, not low
    if raw == b"+":
        return None, low
    if raw[:1] == b"[":
        return raw[1:], False
    if raw[:1] == b"(":
        return raw[1:], True
    raise CommandError("ERR min or max not valid string range item")


def _score_text(score: float) -> bytes:
    return b"inf" if score == math.inf else b"-inf" if score == -math.inf else format_float(score)


def score_reply(c: RespServerProtocol, score: float | None) -> bytes:
    """A score: a bulk string in RESP2 (Redis's shortest text), a double in RESP3."""
    if score is None:
        return bulk(None, c.resp3)
    if c.resp3:
        return b",%s\r\n" % _score_text(score)
    return bulk(_score_text(score), False)


def pairs_reply(c: RespServerProtocol, pairs: list[list[Any]], scores: bool) -> bytes:
    """Members (``scores``: with their scores: flat in RESP2, ``[member, score]`` pairs in
    RESP3, as Redis answers WITHSCORES)."""
    if not scores:
        return b"*%d\r\n" % len(pairs) + b"".join(bulk(m, c.resp3) for m, _ in pairs)
    if c.resp3:
        items = [b"*2\r\n" + bulk(m, True) + score_reply(c, s) for m, s in pairs]
        return b"*%d\r\n" % len(items) + b"".join(items)
    items = [bulk(m, False) + score_reply(c, s) for m, s in pairs]
    return b"*%d\r\n" % (2 * len(items)) + b"".join(items)


def _zset(r: Result) -> dict[bytes, float]:
    """The members a read of a sorted set found (a projection: those asked for)."""
    expect_kind(r, "zset")
    return dict(r.value or {})


# --- writes ---

_ZADD_FLAGS = {
    b"NX": O.ZADD_NX,
    b"XX": O.ZADD_XX,
    b"GT": O.ZADD_GT,
    b"LT": O.ZADD_LT,
    b"CH": O.ZADD_CH,
}


@command("ZADD", -4, WRITE)
def _zadd(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
    key = args[0]
    flags = 0
    incr = False
    i = 1
    while i < len(args):
        option = args[i].upper()
        if option in _ZADD_FLAGS:
            flags |= _ZADD_FLAGS[option]
        elif option == b"INCR":
            incr = True
        else:
            break
        i += 1
    rest = args[i:]
    if not rest or len(rest) % 2:
        raise CommandError("ERR syntax error")
    if flags & O.ZADD_NX and flags & O.ZADD_XX:
        raise CommandError("ERR XX and NX options at the same time are not compatible")
    if (flags & O.ZADD_GT and flags & O.ZADD_LT) or (
        flags & O.ZADD_NX and flags & (O.ZADD_GT | O.ZADD_LT)
    ):
        raise CommandError("ERR GT, LT, and/or NX options at the same time are not compatible")
    pairs = tuple((parse_score(rest[j]), rest[j + 1]) for j in range(0, len(rest), 2))
    if incr:
        if len(pairs) != 1:
            raise CommandError("ERR INCR option supports a single increment-element pair")
        _increment(c, key, pairs[0][1], pairs[0][0], flags, done)
        return

    def total(results: list[Result]) -> bytes:
        return integer(sum(int(r.value) for r in results))

    c.call_sliced(lambda ps: O.ZsetAdd(key, ps, flags), pairs, total, done)


def _increment(  # noqa: PLR0917  (ZADD INCR's and ZINCRBY's one path)
    c: RespServerProtocol, key: bytes, member: bytes, amount: float, flags: int, done: Done
) -> None:
    if not math.isfinite(amount):
        # Increments from replicas are summed, and +inf plus -inf has no value: refused.
        raise CommandError("ERR an increment of a score must be finite (docs/redis.md)")
    c.call(O.ZsetIncr(key, member, amount, flags), lambda r: score_reply(c, r.value), done)


@command("ZINCRBY", 4, WRITE)
def _zincrby(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
    _increment(c, args[0], args[2], parse_score(args[1]), 0, done)


@command("ZREM", -3, WRITE)
def _zrem(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
    key = args[0]

    def total(results: list[Result]) -> bytes:
        return integer(sum(int(r.value) for r in results))

    c.call_sliced(lambda ms: O.ZsetRemove(key, ms), tuple(args[1:]), total, done)


def removals(
    c: RespServerProtocol,
    make: Callable[[int], O.Mutation],
    wanted: int,
    then: Callable[[list[Any], int], bytes],
    done: Done,
) -> None:
    """Run ``make(n)`` (a removal of at most n members) until ``wanted`` are removed or a
    run removes fewer than it could: ``ZSET_REMOVE_MAX`` members a write."""
    taken: list[Any] = []
    state = {"count": 0}

    def step(result: Result | None) -> None:
        if result is not None:
            if not result.ok:
                done(error(result.error or "ERR unknown failure"))
                return
            got = len(result.value) if isinstance(result.value, list) else int(result.value)
            if isinstance(result.value, list):
                taken.extend(result.value)
            state["count"] += got
            if got < asked[0] or state["count"] >= wanted or c.closing:
                done(then(taken, state["count"]))
                return
        asked[0] = min(O.ZSET_REMOVE_MAX, wanted - state["count"])
        c.runtime.request(Request(0, make(asked[0]), c.level), step)

    asked = [0]
    step(None)


def refused(r: Result, kind: str, done: Done) -> bool:
    """Reply with the read's error, or WRONGTYPE unless it found a ``kind`` (or nothing),
    and say so: a page or size callback stops there."""
    if not r.ok:
        done(error(r.error or "ERR unknown failure"))
        return True
    try:
        expect_kind(r, kind)
    except CommandError as problem:
        done(error(str(problem)))
        return True
    return False


def read_size(
    c: RespServerProtocol, key: bytes, kind: str, then: Callable[[int], None], done: Done
) -> None:
    """Read the size of the ``kind`` collection at ``key`` (0: there is none) and call
    ``then(size)``; or reply with the read's error, or WRONGTYPE."""

    def sized(r: Result) -> None:
        if not refused(r, kind, done):
            then(r.size or 0)

    c.runtime.request(Request(0, O.Get(key, ()), c.level), sized)


def absolute(start: int, stop: int, size: int) -> tuple[int, int]:
    """Redis's start and stop (negatives from the end) as ranks ``first..last`` inside
    ``size`` members (``last < first``: none)."""
    return max(start + size if start < 0 else start, 0), min(
        stop + size if stop < 0 else stop, size - 1
    )


def pop_count(args: list[bytes]) -> tuple[bool, int]:
    """ZPOPMIN's and LPOP's ``key [count]``: whether a count was given, and the count."""
    if len(args) > 2:
        raise CommandError("ERR syntax error")
    count = parse_int(args[1]) if len(args) == 2 else 1
    if count < 0:
        raise CommandError("ERR value is out of range, must be positive")
    return len(args) == 2, count


@command("ZPOPMIN", -2, WRITE)
def _zpopmin(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
    _pop(c, args, done, highest=False)


@command("ZPOPMAX", -2, WRITE)
def _zpopmax(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
    _pop(c, args, done, highest=True)


def _pop(c: RespServerProtocol, args: list[bytes], done: Done, *, highest: bool) -> None:
    key = args[0]
    counted, count = pop_count(args)

    def reply(taken: list[Any], _: int) -> bytes:
        if not counted and c.resp3:  # one member, no count: a flat pair, as Redis
            if not taken:
                return b"*0\r\n"
            return b"*2\r\n" + bulk(taken[0][0], True) + score_reply(c, taken[0][1])
        return pairs_reply(c, taken, scores=True)

    if count == 0:
        done(b"*0\r\n")
        return
    removals(c, lambda n: O.ZsetPop(key, n, highest), count, reply, done)


def _remove_range(c: RespServerProtocol, key: bytes, query: Ranked, done: Done) -> None:
    """ZREMRANGEBYSCORE/BYLEX: the same range again until it is empty (each write removes
    at most ``ZSET_REMOVE_MAX`` of it, from its start)."""

    def make(n: int) -> O.ZsetRemoveRange:
        query.limit = n
        return O.ZsetRemoveRange(key, query.to_bytes())

    removals(c, make, 2**62, lambda _, count: integer(count), done)


@command("ZREMRANGEBYSCORE", 4, WRITE)
def _zremrangebyscore(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
    (low, low_open), (high, high_open) = score_bound(args[1]), score_bound(args[2])
    query = Ranked(By.SCORE, low, high, low_open=low_open, high_open=high_open)
    _remove_range(c, args[0], query, done)


@command("ZREMRANGEBYLEX", 4, WRITE)
def _zremrangebylex(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
    (low, low_open), (high, high_open) = lex_bound(args[1], True), lex_bound(args[2], False)
    query = Ranked(By.LEX, low, high, low_open=low_open, high_open=high_open)
    _remove_range(c, args[0], query, done)


@command("ZREMRANGEBYRANK", 4, WRITE)
def _zremrangebyrank(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
    """Ranks move as members go, so the range is made absolute first (from ZCARD), then
    removed from its first rank a slice at a time."""
    key = args[0]
    start, stop = parse_int(args[1]), parse_int(args[2])

    def sized(size: int) -> None:
        first, last = absolute(start, stop, size)
        if last < first:
            done(integer(0))
            return

        def make(n: int) -> O.ZsetRemoveRange:
            query = Ranked(By.RANK, first, first + n - 1, limit=n)
            return O.ZsetRemoveRange(key, query.to_bytes())

        removals(c, make, last - first + 1, lambda _, count: integer(count), done)

    read_size(c, key, "zset", sized, done)


# --- reads ---


@command("ZSCORE", 3)
def _zscore(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
    c.call(O.Get(args[0], (args[1],)), lambda r: score_reply(c, _zset(r).get(args[1])), done)


@command("ZMSCORE", -3)
def _zmscore(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
    members = tuple(args[1:])

    def scores(r: Result) -> bytes:
        found = _zset(r)
        return b"*%d\r\n" % len(members) + b"".join(score_reply(c, found.get(m)) for m in members)

    c.call(O.Get(args[0], members), scores, done)


@command("ZCARD", 2)
def _zcard(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
    def size(r: Result) -> bytes:
        expect_kind(r, "zset")
        return integer(r.size if r.size is not None else len(r.value or ()))

    c.call(O.Get(args[0], ()), size, done)


def ranked_read(
    c: RespServerProtocol,
    key: bytes,
    query: Ranked,
    then: Callable[[list[list[Any]], int], bytes],
    *,
    done: Done,
    kind: str = "zset",
) -> None:
    """Run a ranked read of a sorted set (``kind``: or a list), page by page when its range
    is bigger than ``RANKED_PAGE``, and reply with ``then(pairs, position)`` (an absent
    key: no pairs, position -1)."""
    wanted = query.limit
    pairs: list[list[Any]] = []
    start = {"offset": query.offset, "position": -1}

    def page(r: Result) -> None:
        if refused(r, kind, done):
            return
        got: list[list[Any]] = list(r.value or ())
        if start["position"] == -1 and r.position is not None:
            start["position"] = r.position
        pairs.extend(got)
        more = (
            query.by in (By.RANK, By.SCORE, By.LEX)
            and not query.count_only
            and len(got) == query.limit
            and (wanted < 0 or len(pairs) < wanted)
            and not c.closing
        )
        if more:
            start["offset"] += len(got)
            ask()
            return
        try:
            done(then(pairs, start["position"]))
        except CommandError as problem:
            done(error(str(problem)))

    def ask() -> None:
        query.offset = start["offset"]
        left = RANKED_PAGE if wanted < 0 else min(RANKED_PAGE, wanted - len(pairs))
        query.limit = left
        op = O.Get(key, (), ranked=query.to_bytes())
        c.runtime.request(Request(0, op, c.level), page)

    ask()


def _limit(options: list[bytes], i: int) -> tuple[int, int]:
    if i + 2 >= len(options):
        raise CommandError("ERR syntax error")
    offset, count = parse_int(options[i + 1]), parse_int(options[i + 2])
    return offset, count


def _range(
    c: RespServerProtocol,
    key: bytes,
    low: bytes,
    high: bytes,
    options: list[bytes],
    *,
    done: Done,
    by: By,
    rev: bool,
    limit_allowed: bool,
    scores_allowed: bool,
) -> None:
    """Every ZRANGE form. ``low`` and ``high`` as the command takes them (REV forms of
    BYSCORE and BYLEX name the high bound first)."""
    scores = False
    offset, count = 0, -1
    limited = False
    i = 0
    while i < len(options):
        option = options[i].upper()
        if option == b"WITHSCORES" and scores_allowed:
            scores = True
        elif option == b"LIMIT" and limit_allowed:
            offset, count = _limit(options, i)
            limited = True
            i += 2
        else:
            raise CommandError("ERR syntax error")
        i += 1
    if by is By.RANK:
        query = Ranked(By.RANK, parse_int(low), parse_int(high), rev=rev)
    else:
        if rev:
            low, high = high, low
        lo: float | bytes | None
        hi: float | bytes | None
        if by is By.SCORE:
            (lo, lo_open), (hi, hi_open) = score_bound(low), score_bound(high)
        else:
            (lo, lo_open), (hi, hi_open) = lex_bound(low, True), lex_bound(high, False)
        if limited and (offset < 0 or count == 0):
            done(b"*0\r\n")  # Redis: a negative offset, or a count of 0, selects nothing
            return
        query = Ranked(by, lo, hi, low_open=lo_open, high_open=hi_open, rev=rev, offset=offset)
        query.limit = count if count >= 0 else -1
    ranked_read(c, key, query, lambda pairs, _: pairs_reply(c, pairs, scores), done=done)


@command("ZRANGE", -4)
def _zrange(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
    by = By.RANK
    rev = False
    rest: list[bytes] = []
    for option in args[3:]:
        upper = option.upper()
        if upper == b"BYSCORE":
            by = By.SCORE
        elif upper == b"BYLEX":
            by = By.LEX
        elif upper == b"REV":
            rev = True
        else:
            rest.append(option)
    if by is By.RANK and any(o.upper() == b"LIMIT" for o in rest):
        raise CommandError(
            "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX"
        )
    if by is By.LEX and any(o.upper() == b"WITHSCORES" for o in rest):
        raise CommandError("ERR syntax error, WITHSCORES not supported in combination with BYLEX")
    _range(
        c,
        args[0],
        args[1],
        args[2],
        rest,
        done=done,
        by=by,
        rev=rev,
        limit_allowed=by is not By.RANK,
        scores_allowed=by is not By.LEX,
    )


@command("ZREVRANGE", -4)
def _zrevrange(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
    _range(c, args[0], args[1], args[2], args[3:], done=done, by=By.RANK, rev=True,
           limit_allowed=False, scores_allowed=True)  # fmt: skip


def _by_score(rev: bool) -> Callable[[RespServerProtocol, list[bytes], Done], None]:
    def handler(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
        _range(c, args[0], args[1], args[2], args[3:], done=done, by=By.SCORE, rev=rev,
               limit_allowed=True, scores_allowed=True)  # fmt: skip

    return handler


def _by_lex(rev: bool) -> Callable[[RespServerProtocol, list[bytes], Done], None]:
    def handler(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
        _range(c, args[0], args[1], args[2], args[3:], done=done, by=By.LEX, rev=rev,
               limit_allowed=True, scores_allowed=False)  # fmt: skip

    return handler


command("ZRANGEBYSCORE", -4)(_by_score(False))
command("ZREVRANGEBYSCORE", -4)(_by_score(True))
command("ZRANGEBYLEX", -4)(_by_lex(False))
command("ZREVRANGEBYLEX", -4)(_by_lex(True))


def _rank(c: RespServerProtocol, args: list[bytes], done: Done, *, rev: bool) -> None:
    if len(args) > 3 or (len(args) == 3 and args[2].upper() != b"WITHSCORE"):
        raise CommandError("ERR syntax error")
    with_score = len(args) == 3

    def reply(pairs: list[list[Any]], position: int) -> bytes:
        if position < 0 or not pairs:
            return bulk(None, c.resp3) if not with_score else b"*-1\r\n"
        if with_score:
            return b"*2\r\n" + integer(position) + score_reply(c, pairs[0][1])
        return integer(position)

    ranked_read(c, args[0], Ranked(By.MEMBER, member=args[1], rev=rev), reply, done=done)


@command("ZRANK", -3)
def _zrank(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
    _rank(c, args, done, rev=False)


@command("ZREVRANK", -3)
def _zrevrank(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
    _rank(c, args, done, rev=True)


def _count(c: RespServerProtocol, key: bytes, query: Ranked, done: Done) -> None:
    query.count_only = True
    ranked_read(c, key, query, lambda _, position: integer(max(position, 0)), done=done)


@command("ZCOUNT", 4)
def _zcount(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
    (low, low_open), (high, high_open) = score_bound(args[1]), score_bound(args[2])
    _count(c, args[0], Ranked(By.SCORE, low, high, low_open=low_open, high_open=high_open), done)


@command("ZLEXCOUNT", 4)
def _zlexcount(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
    (low, low_open), (high, high_open) = lex_bound(args[1], True), lex_bound(args[2], False)
    _count(c, args[0], Ranked(By.LEX, low, high, low_open=low_open, high_open=high_open), done)


@command("ZSCAN", -3)
def _zscan(c: RespServerProtocol, args: list[bytes], done: Done) -> None:
    """A page of members and scores in the order every replica shares (as SSCAN)."""
    cursor = parse_cursor(args[1])
    pattern, count, _ = scan_options(args[2:], novalues=False)

    def page(r: Result) -> bytes:
        found = sorted(_zset(r).items())
        if pattern is not None:
            found = [(m, s) for m, s in found if fnmatch.fnmatchcase(m, pattern)]
        items = [item for m, s in found for item in (bulk(m, c.resp3), score_reply(c, s))]
        return scan_reply(c, r, items)

    c.call(O.Get(args[0], cursor=cursor, count=count), page, done)


def _copy_zset(
    c: RespServerProtocol,
    source: bytes,
    destination: bytes,
    written: Callable[[object], bytes],
    done: Done,
) -> None:
    """COPY and RENAME of a sorted set: its members and scores, page by page, then ZADDs."""

    def encode(r: Result) -> list[Any]:
        return [(score, member) for member, score in r.value.items()]

    def fill(pairs: list[Any]) -> bytes:
        c.call_sliced(lambda ps: O.ZsetAdd(destination, ps), tuple(pairs), written, done)
        return WRITE_ANSWERS

    read_pages(c, source, "zset", encode=encode, finish=fill, done=done)


COPIERS["zset"] = _copy_zset
