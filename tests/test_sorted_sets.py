"""Sorted sets through redis-py against a real 3-node cluster: every command, read back on
another node; increments and pops racing on different nodes, checked after convergence; and
the same random command sequence against redis-server, reply for reply."""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from realnodes import Cluster, start_cluster, stop_cluster, wait_until


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    found = start_cluster(tmp_path_factory.mktemp("zsets"))
    yield found
    stop_cluster(found)


def clients(cluster: Cluster, level: str = "ALL", **options: Any) -> list[redis.Redis]:
    found = [cluster.client(i, **options) for i in range(3)]
    for client in found:
        client.execute_command("CONSISTENCY", level)
    return found


def test_writes_and_options(cluster: Cluster) -> None:
    a, b, c = clients(cluster)
    assert a.zadd("z:w", {"alice": 10, "bob": 20, "carol": 5}) == 3
    assert b.zadd("z:w", {"alice": 11, "dave": 1}, nx=True) == 1  # alice kept, dave added
    assert c.zscore("z:w", "alice") == 10.0
    assert a.zadd("z:w", {"alice": 12, "erin": 3}, xx=True, ch=True) == 1  # erin not added
    assert b.zadd("z:w", {"alice": 11, "bob": 30}, gt=True, ch=True) == 1  # only bob rises
    assert c.zadd("z:w", {"bob": 40, "carol": 4}, lt=True, ch=True) == 1  # only carol falls
    assert a.zmscore("z:w", ["alice", "bob", "carol", "erin"]) == [12.0, 30.0, 4.0, None]
    assert b.zadd("z:w", {"dave": 2.5}, incr=True) == 3.5
    assert c.zadd("z:w", {"new": 1}, xx=True, incr=True) is None
    assert a.zincrby("z:w", -1.25, "dave") == 2.25
    assert b.zincrby("z:w", 2, "fresh") == 2.0  # absent: from zero
    assert c.zcard("z:w") == 5 and a.type("z:w") == b"zset"
    assert b.zrem("z:w", "fresh", "nobody") == 1 and c.zcard("z:w") == 4
    with pytest.raises(redis.ResponseError, match="not a valid float"):
        a.zadd("z:w", {"x": "nan"})
    with pytest.raises(redis.ResponseError, match="not compatible"):
        a.execute_command("ZADD", "z:w", "NX", "XX", "1", "x")  # redis-py refuses it itself
    with pytest.raises(redis.ResponseError, match="finite"):
        a.zincrby("z:w", float("inf"), "alice")
    a.set("z:string", "v")
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        b.zadd("z:string", {"x": 1})
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        c.zrange("z:string", 0, -1)
    assert a.zadd("z:inf", {"top": float("inf"), "bottom": float("-inf"), "mid": 0}) == 3
    assert b.zincrby("z:inf", 5, "top") == float("inf")
    assert c.zrange("z:inf", 0, -1, withscores=True) == [
        (b"bottom", float("-inf")),
        (b"mid", 0.0),
        (b"top", float("inf")),
    ]


def test_reads_in_order(cluster: Cluster) -> None:
    a, b, c = clients(cluster)
    scores = {f"p{i:02d}": float(i % 7) for i in range(20)}
    assert a.zadd("z:r", scores) == 20
    ranked = sorted(scores.items(), key=lambda item: (item[1], item[0]))
    names = [name.encode() for name, _ in ranked]
    assert b.zrange("z:r", 0, -1) == names
    assert c.zrange("z:r", 0, 2, withscores=True) == [(n.encode(), s) for n, s in ranked[:3]]
    assert a.zrevrange("z:r", 0, 1) == names[::-1][:2]
    assert b.zrange("z:r", -3, -1, desc=True) == names[::-1][-3:]
    assert c.zrank("z:r", "p07") == names.index(b"p07")
    assert a.zrevrank("z:r", "p07") == 19 - names.index(b"p07")
    assert b.zrank("z:r", "nobody") is None
    in_range = [n.encode() for n, s in ranked if 2 <= s < 5]
    assert c.zrangebyscore("z:r", 2, "(5") == in_range
    assert a.zcount("z:r", 2, "(5") == len(in_range)
    assert b.zrangebyscore("z:r", 2, "(5", start=1, num=3) == in_range[1:4]
    assert c.zrevrangebyscore("z:r", "(5", 2) == in_range[::-1]
    assert a.zrange("z:r", "(5", 2, byscore=True, desc=True, offset=0, num=2) == in_range[::-1][:2]
    assert b.zrangebyscore("z:r", "-inf", "+inf", withscores=True)[-1] == (
        ranked[-1][0].encode(),
        ranked[-1][1],
    )
    assert a.zadd("z:lex", {m: 0 for m in "abcdefg"}) == 7
    assert b.zrangebylex("z:lex", "[b", "(e") == [b"b", b"c", b"d"]
    assert c.zrevrangebylex("z:lex", "+", "[e") == [b"g", b"f", b"e"]
    assert a.zrange("z:lex", "-", "+", bylex=True, offset=2, num=2) == [b"c", b"d"]
    assert b.zlexcount("z:lex", "-", "(c") == 2
    found = dict(c.zscan_iter("z:r", count=3))
    assert found == {name.encode(): score for name, score in scores.items()}
    assert a.zrange("z:none", 0, -1) == [] and b.zcount("z:none", "-inf", "+inf") == 0


def test_removals(cluster: Cluster) -> None:
    a, b, c = clients(cluster)
    a.zadd("z:x", {f"m{i}": i for i in range(10)})
    assert b.zpopmin("z:x") == [(b"m0", 0.0)]
    assert c.zpopmax("z:x", 2) == [(b"m9", 9.0), (b"m8", 8.0)]
    assert a.zremrangebyscore("z:x", 1, "(3") == 2  # m1, m2
    assert b.zremrangebyrank("z:x", -2, -1) == 2  # m6, m7
    assert c.zrange("z:x", 0, -1) == [b"m3", b"m4", b"m5"]
    a.zadd("z:lexr", {m: 0 for m in "abcde"})
    assert b.zremrangebylex("z:lexr", "(a", "[c") == 2
    assert c.zrange("z:lexr", 0, -1) == [b"a", b"d", b"e"]
    big = {f"b{i:04d}": i for i in range(2_600)}  # pops and range removals in slices
    a.zadd("z:big", big)
    popped = b.zpopmin("z:big", 1_200)
    assert [m for m, _ in popped] == [f"b{i:04d}".encode() for i in range(1_200)]
    assert c.zremrangebyrank("z:big", 0, 1_099) == 1_100
    assert a.zcard("z:big") == 300 and b.zrange("z:big", 0, 0) == [b"b2300"]
    assert c.zremrangebyscore("z:big", "-inf", "+inf") == 300 and a.exists("z:big") == 0
    a.zadd("z:src", {"a": 1.5, "b": -2})
    a.expire("z:src", 100)
    assert b.copy("z:src", "z:copy") is True and 0 < c.ttl("z:copy") <= 100
    assert a.rename("z:copy", "z:moved") is True and b.exists("z:copy") == 0
    assert c.zrange("z:moved", 0, -1, withscores=True) == [(b"b", -2.0), (b"a", 1.5)]


def test_increments_on_three_nodes_at_once_all_count(cluster: Cluster) -> None:
    a, b, c = clients(cluster, "ONE")
    a.zadd("z:race", {"m": 100, "other": 1})
    wait_until(lambda: all(x.zscore("z:race", "m") == 100.0 for x in (a, b, c)), 10)
    errors: list[BaseException] = []

    def bump(client: redis.Redis, amount: float) -> None:
        try:
            for _ in range(40):
                client.zincrby("z:race", amount, "m")
        except BaseException as problem:  # reported below, not lost in the thread
            errors.append(problem)

    threads = [
        threading.Thread(target=bump, args=(client, amount))
        for client, amount in ((a, 1.0), (b, 2.5), (c, -1.0))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    expected = 100 + 40 * (1.0 + 2.5 - 1.0)
    wait_until(lambda: all(x.zscore("z:race", "m") == expected for x in (a, b, c)), 10)
    wait_until(lambda: all(x.zrank("z:race", "m") == 1 for x in (a, b, c)), 10)


def test_pops_racing_on_two_nodes_lose_nothing_and_may_share_a_member(cluster: Cluster) -> None:
    """Each node pops what its replica ranks lowest: a member can go to both poppers (the
    documented race), never to one popper twice, and after convergence the members left
    are exactly those nobody popped."""
    a, b, c = clients(cluster, "ONE")
    members = {f"q{i:03d}": i for i in range(120)}
    a.zadd("z:pops", members)
    wait_until(lambda: all(x.zcard("z:pops") == 120 for x in (a, b, c)), 10)
    taken: dict[str, list[bytes]] = {"a": [], "b": []}

    def pop(name: str, client: redis.Redis) -> None:
        for _ in range(40):
            taken[name].extend(m for m, _ in client.zpopmin("z:pops", 1))

    threads = [threading.Thread(target=pop, args=item) for item in (("a", a), ("b", b))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for name, got in taken.items():
        assert len(got) == len(set(got)) == 40, name
    popped = set(taken["a"]) | set(taken["b"])
    left = [m.encode() for m in sorted(members) if m.encode() not in popped]
    wait_until(lambda: all(x.zrange("z:pops", 0, -1) == left for x in (a, b, c)), 10)


def test_resp3_replies(cluster: Cluster) -> None:
    a = cluster.client(0, protocol=3)
    a.execute_command("CONSISTENCY", "ALL")
    a.zadd("z:3", {"x": 1.5, "y": 2})
    assert a.zscore("z:3", "x") == 1.5
    assert a.zrange("z:3", 0, -1, withscores=True) == [[b"x", 1.5], [b"y", 2.0]]
    assert a.zpopmax("z:3") == [b"y", 2.0]  # no count: one flat pair, as Redis 7
    assert a.execute_command("ZRANK", "z:3", "x", "WITHSCORE") == [0, 1.5]


# --- reply for reply against redis-server ---


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def redis_server() -> Iterator[redis.Redis]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed (.ci/run installs it)")
    port = free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    client = redis.Redis(port=port, socket_timeout=10)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)
    yield client
    process.terminate()
    process.wait(10)


def random_command(rng: random.Random, key: str) -> list[Any]:
    member = f"m{rng.randrange(8)}"
    score = rng.choice(["1", "2", "2.5", "-3", "0", "10", "+inf", "-inf"])
    low, high = sorted(rng.sample([-5, -3, 0, 1, 2, 3, 10], 2))
    bound = rng.choice(["", "("])
    start, stop = rng.randint(-6, 6), rng.randint(-6, 6)
    flags = rng.choice([[], ["NX"], ["XX"], ["GT"], ["LT"], ["CH"], ["XX", "CH"], ["GT", "CH"]])
    return rng.choice(
        [
            ["ZADD", key, *flags, score, member],
            ["ZADD", key, score, member, rng.choice(["1", "4"]), f"m{rng.randrange(8)}"],
            ["ZADD", key, *flags, "INCR", rng.choice(["1", "-2", "0.5"]), member],
            ["ZINCRBY", key, rng.choice(["1", "-1.5", "3"]), member],
            ["ZREM", key, member, f"m{rng.randrange(8)}"],
            ["ZSCORE", key, member],
            ["ZMSCORE", key, member, "nobody"],
            ["ZCARD", key],
            ["ZCOUNT", key, f"{bound}{low}", f"{bound}{high}"],
            ["ZRANK", key, member],
            ["ZREVRANK", key, member],
            ["ZRANGE", key, start, stop, *rng.choice([[], ["WITHSCORES"], ["REV"]])],
            ["ZRANGE", key, f"{bound}{low}", high, "BYSCORE", "LIMIT", rng.randint(0, 2), 2],
            ["ZRANGE", key, high, f"{bound}{low}", "BYSCORE", "REV", "WITHSCORES"],
            ["ZRANGEBYSCORE", key, "-inf", f"{bound}{high}", "WITHSCORES"],
            ["ZREVRANGEBYSCORE", key, "+inf", f"{bound}{low}", "LIMIT", 1, 3],
            ["ZREVRANGE", key, start, stop, "WITHSCORES"],
            ["ZPOPMIN", key, *rng.choice([[], ["2"]])],
            ["ZPOPMAX", key, *rng.choice([[], ["3"]])],
            ["ZREMRANGEBYSCORE", key, f"{bound}{low}", high],
            ["ZREMRANGEBYRANK", key, start, stop],
        ]
    )


def random_lex_command(rng: random.Random, key: str) -> list[Any]:
    def edge() -> str:
        return rng.choice(["-", "+", "[b", "(b", "[d", "(e", "[a", "(g"])

    return rng.choice(
        [
            ["ZADD", key, "0", rng.choice("abcdefg")],
            ["ZRANGEBYLEX", key, edge(), edge()],
            ["ZREVRANGEBYLEX", key, edge(), edge(), "LIMIT", 0, 2],
            ["ZLEXCOUNT", key, edge(), edge()],
            ["ZREMRANGEBYLEX", key, edge(), edge()],
            ["ZRANGE", key, edge(), edge(), "BYLEX"],
        ]
    )


def reply(client: redis.Redis, command: list[Any]) -> Any:
    try:
        return client.execute_command(*command)
    except redis.ResponseError:
        return "error"  # the wording may differ; that both refuse may not


def test_the_same_commands_answer_as_redis_server_does(
    cluster: Cluster, redis_server: redis.Redis
) -> None:
    ours = clients(cluster)
    rng = random.Random(20261128)
    redis_server.flushall()
    for step in range(600):
        make = random_lex_command if step % 4 == 3 else random_command
        key = "z:lexdiff" if make is random_lex_command else "z:diff"
        command = make(rng, key)
        expected = reply(redis_server, command)
        got = reply(ours[step % 3], command)
        assert got == expected, f"step {step}: {command}"
    assert ours[1].zrange("z:diff", 0, -1, withscores=True) == redis_server.zrange(
        "z:diff", 0, -1, withscores=True
    )
