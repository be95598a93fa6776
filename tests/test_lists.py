"""Lists through redis-py against a real 3-node cluster: every command, read back on another
node; pushes and pops racing on different nodes, checked after convergence; blocking pops
refused with the reason; and the same random command sequence against redis-server, reply
for reply."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from realnodes import Cluster, start_cluster, stop_cluster, wait_until
from test_sorted_sets import clients, redis_server, reply  # noqa: F401  (a fixture)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    found = start_cluster(tmp_path_factory.mktemp("lists"))
    yield found
    stop_cluster(found)


def test_pushes_pops_and_reads(cluster: Cluster) -> None:
    a, b, c = clients(cluster)
    assert a.rpush("l:1", "a", "b", "c") == 3 and b.lpush("l:1", "x", "y") == 5
    assert c.lrange("l:1", 0, -1) == [b"y", b"x", b"a", b"b", b"c"]
    assert a.llen("l:1") == 5 and b.lindex("l:1", -1) == b"c" and c.lindex("l:1", 9) is None
    assert a.lrange("l:1", 1, 2) == [b"x", b"a"] and b.lrange("l:1", -2, 100) == [b"b", b"c"]
    assert c.lpop("l:1") == b"y" and a.rpop("l:1", 2) == [b"c", b"b"]
    assert b.lrange("l:1", 0, -1) == [b"x", b"a"] and c.type("l:1") == b"list"
    assert a.lpop("l:none") is None and b.rpop("l:none", 2) is None
    assert c.lpushx("l:none", "v") == 0 and a.rpushx("l:1", "z") == 3
    assert b.exists("l:none") == 0
    a.set("l:string", "v")
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        b.rpush("l:string", "x")
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        c.lrange("l:string", 0, -1)


def test_changes_in_place(cluster: Cluster) -> None:
    a, b, c = clients(cluster)
    a.rpush("l:2", "a", "b", "c", "b", "a", "b")
    assert b.lset("l:2", 0, "A") is True and c.lset("l:2", -1, "B") is True
    with pytest.raises(redis.ResponseError, match="index out of range"):
        a.lset("l:2", 10, "x")
    with pytest.raises(redis.ResponseError, match="no such key"):
        a.lset("l:none", 0, "x")
    assert b.linsert("l:2", "after", "c", "c2") == 7
    assert c.linsert("l:2", "before", "A", "first") == 8
    assert (
        a.linsert("l:2", "before", "nope", "x") == -1
        and b.linsert("l:none", "before", "a", "x") == 0
    )
    assert c.lrange("l:2", 0, -1) == [b"first", b"A", b"b", b"c", b"c2", b"b", b"a", b"B"]
    assert a.lpos("l:2", "b") == 2 and b.lpos("l:2", "b", rank=-1) == 5
    assert c.lpos("l:2", "b", count=0) == [2, 5] and a.lpos("l:2", "b", rank=2) == 5
    assert b.lpos("l:2", "b", maxlen=2) is None and c.lpos("l:2", "zz") is None
    assert a.lrem("l:2", 1, "b") == 1 and b.lrem("l:2", -1, "B") == 1 and c.lrem("l:2", 0, "x") == 0
    assert a.lrange("l:2", 0, -1) == [b"first", b"A", b"c", b"c2", b"b", b"a"]
    assert b.ltrim("l:2", 1, -2) is True
    assert c.lrange("l:2", 0, -1) == [b"A", b"c", b"c2", b"b"]
    assert a.ltrim("l:2", 5, 10) is True and b.exists("l:2") == 0


def test_moves(cluster: Cluster) -> None:
    a, b, c = clients(cluster)
    a.rpush("l:src", "1", "2", "3")
    assert b.lmove("l:src", "l:dst", "LEFT", "RIGHT") == b"1"
    assert c.rpoplpush("l:src", "l:dst") == b"3"
    assert a.lrange("l:dst", 0, -1) == [b"3", b"1"] and b.lrange("l:src", 0, -1) == [b"2"]
    assert c.lmove("l:src", "l:src", "LEFT", "RIGHT") == b"2"  # a rotation
    assert a.lmove("l:none", "l:dst", "LEFT", "LEFT") is None
    # COPY and RENAME keep the order (the values are read in order, then pushed).
    assert b.copy("l:dst", "l:copy") is True and c.lrange("l:copy", 0, -1) == [b"3", b"1"]
    assert a.rename("l:copy", "l:moved") is True and b.exists("l:copy") == 0
    assert c.lrange("l:moved", 0, -1) == [b"3", b"1"]


def test_big_lists_page_and_trim_in_slices(cluster: Cluster) -> None:
    a, b, c = clients(cluster)
    values = [b"v%05d" % i for i in range(25_000)]
    for start in range(0, len(values), 5_000):
        a.rpush("l:big", *values[start : start + 5_000])
    assert b.llen("l:big") == 25_000
    assert c.lrange("l:big", 0, -1) == values  # three pages
    assert a.lindex("l:big", 12_345) == values[12_345]
    assert b.lpop("l:big", 1_500) == values[:1_500]
    assert c.ltrim("l:big", 1_000, -1_001) is True
    assert a.lrange("l:big", 0, -1) == values[2_500:-1_000]
    assert b.lrem("l:big", 0, values[3_000]) == 1 and c.llen("l:big") == 21_499


def test_blocking_pops_are_refused_with_the_reason(cluster: Cluster) -> None:
    a, _, _ = clients(cluster)
    for command in (
        ["BLPOP", "l:1", "0"],
        ["BRPOP", "l:1", "l:2", "1"],
        ["BLMOVE", "l:1", "l:2", "LEFT", "LEFT", "0"],
        ["BRPOPLPUSH", "l:1", "l:2", "0"],
    ):
        with pytest.raises(redis.ResponseError, match="exactly once"):
            a.execute_command(*command)


def test_pushes_on_three_nodes_at_once_all_land_in_one_order(cluster: Cluster) -> None:
    a, b, c = clients(cluster, "ONE")
    errors: list[BaseException] = []

    def push(client: redis.Redis, name: str, left: bool) -> None:
        try:
            for i in range(30):
                (client.lpush if left else client.rpush)("l:race", f"{name}{i}")
        except BaseException as problem:  # reported below, not lost in the thread
            errors.append(problem)

    threads = [
        threading.Thread(target=push, args=item)
        for item in ((a, "a", False), (b, "b", False), (c, "c", True))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors

    def agreed() -> bool:
        seen = [client.lrange("l:race", 0, -1) for client in (a, b, c)]
        return len(seen[0]) == 90 and seen[0] == seen[1] == seen[2]

    wait_until(agreed, 10)
    final = [value.decode() for value in a.lrange("l:race", 0, -1)]
    for name in "abc":  # one client's pushes keep their order: its node placed each after
        mine = [v for v in final if v.startswith(name)]
        expected = [f"{name}{i}" for i in range(30)]
        assert mine == (expected[::-1] if name == "c" else expected), name


def test_pops_racing_on_two_nodes_lose_nothing(cluster: Cluster) -> None:
    """Each node pops what its replica holds at the head: an element can go to both
    poppers (docs/redis.md), never to one popper twice, and after convergence what is left
    is exactly what nobody popped, in order."""
    a, b, c = clients(cluster, "ONE")
    values = [f"e{i:03d}".encode() for i in range(120)]
    a.rpush("l:pops", *values)
    wait_until(lambda: all(x.llen("l:pops") == 120 for x in (a, b, c)), 10)
    taken: dict[str, list[bytes]] = {"a": [], "b": []}

    def pop(name: str, client: redis.Redis) -> None:
        for _ in range(40):
            value = client.lpop("l:pops")
            if value is not None:
                taken[name].append(value)

    threads = [threading.Thread(target=pop, args=item) for item in (("a", a), ("b", b))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for name, got in taken.items():
        assert len(got) == len(set(got)) == 40, name
        assert got == sorted(got), name  # each from its own head, in order
    popped = set(taken["a"]) | set(taken["b"])
    left = [v for v in values if v not in popped]
    wait_until(lambda: all(x.lrange("l:pops", 0, -1) == left for x in (a, b, c)), 10)


# --- reply for reply against redis-server ---


def random_command(rng: random.Random, key: str, other: str) -> list[Any]:
    value = rng.choice(["a", "b", "c", "d"])
    index = rng.randint(-6, 6)
    side = rng.choice(["LEFT", "RIGHT"])
    lpos_options = rng.choice([[], ["RANK", "-1"], ["COUNT", "0"], ["MAXLEN", "2"]])
    return rng.choice(
        [
            ["RPUSH", key, value, rng.choice(["x", "y"])],
            ["LPUSH", key, value],
            ["LPUSHX", key, value],
            ["RPUSHX", other, value],
            ["LPOP", key],
            ["RPOP", key, rng.randint(0, 3)],
            ["LLEN", key],
            ["LRANGE", key, index, rng.randint(-6, 6)],
            ["LINDEX", key, index],
            ["LSET", key, index, value],
            ["LINSERT", key, rng.choice(["BEFORE", "AFTER"]), value, "ins"],
            ["LREM", key, rng.randint(-2, 2), value],
            ["LTRIM", key, rng.randint(-3, 2), rng.randint(-3, 8)],
            ["LPOS", key, value, *lpos_options],
            ["LMOVE", key, other, side, rng.choice(["LEFT", "RIGHT"])],
            ["RPOPLPUSH", other, key],
            ["LRANGE", other, 0, -1],
        ]
    )


def test_the_same_commands_answer_as_redis_server_does(
    cluster: Cluster,
    redis_server: redis.Redis,  # noqa: F811  (the fixture)
) -> None:
    ours = clients(cluster)
    rng = random.Random(20261128)
    redis_server.flushall()
    for step in range(700):
        command = random_command(rng, "l:diff", "l:other")
        expected = reply(redis_server, command)
        got = reply(ours[step % 3], command)
        assert got == expected, f"step {step}: {command}"
    for key in ("l:diff", "l:other"):
        assert ours[1].lrange(key, 0, -1) == redis_server.lrange(key, 0, -1)
