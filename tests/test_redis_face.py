"""The Redis face against a real 3-node cluster, through redis-py: transactions (MULTI/EXEC,
and redis-py's default ``pipeline()``) and the commands composed of the core's reads and
writes (SETEX, GETDEL, EXPIRE NX/XX/GT/LT, HMGET, SINTER, SMOVE, SPOP, ...). Each reads its
answer back on another node; every wait is on a condition with a deadline."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from eventual.client import Client
from realnodes import Cluster, start_cluster, stop_cluster, wait_until


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    found = start_cluster(tmp_path_factory.mktemp("face"))
    yield found
    stop_cluster(found)


def clients(cluster: Cluster) -> list[redis.Redis]:
    found = [cluster.client(i) for i in range(3)]
    for client in found:
        client.execute_command("CONSISTENCY", "ALL")  # a read anywhere sees the write
    return found


def send(port: int, commands: list[list[bytes]], until: bytes) -> bytes:
    """Send ``commands`` in one write; read until the replies end with ``until``."""
    payload = b"".join(
        b"*%d\r\n" % len(cmd) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in cmd)
        for cmd in commands
    )
    received = b""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        sock.sendall(payload)
        deadline = time.monotonic() + 20
        while not received.endswith(until) and time.monotonic() < deadline:
            try:
                chunk = sock.recv(1 << 20)
            except TimeoutError:
                break  # the caller's assertion shows what came
            if not chunk:
                break
            received += chunk
    return received


def test_redis_py_pipeline_applies_exactly_what_exec_reports(cluster: Cluster) -> None:
    a, b, c = clients(cluster)
    pipe = a.pipeline()  # transaction=True: MULTI ... EXEC
    pipe.set("tx:s", "1").incr("tx:n").incr("tx:n").sadd("tx:set", "x", "y").get("tx:s")
    pipe.sadd("tx:s", "boom")  # WRONGTYPE at run time: reported, the others stand
    pipe.hset("tx:h", "f", "v")
    results = pipe.execute(raise_on_error=False)
    assert results[:5] == [True, 1, 2, 2, b"1"]
    assert isinstance(results[5], redis.ResponseError) and "WRONGTYPE" in str(results[5])
    assert results[6] == 1
    # What EXEC reported is what every node holds.
    assert b.get("tx:s") == b"1" and c.get("tx:n") == b"2"
    assert b.smembers("tx:set") == {b"x", b"y"} and c.hget("tx:h", "f") == b"v"

    # A transaction's commands run in order: each sees the one before.
    pipe = a.pipeline()
    pipe.set("tx:seq", "a").append("tx:seq", "b").append("tx:seq", "c").get("tx:seq")
    assert pipe.execute() == [True, 2, 3, b"abc"]
    assert c.get("tx:seq") == b"abc"


def test_a_refused_command_discards_the_transaction_and_nothing_is_applied(
    cluster: Cluster,
) -> None:
    a, b, _ = clients(cluster)
    commands = [
        [b"MULTI"],
        [b"SET", b"tx:never", b"1"],
        [b"NOSUCH", b"x"],
        [b"GET"],
        [b"EXEC"],
        [b"SET", b"tx:after", b"1"],  # out of the transaction: runs at once again
    ]
    assert send(cluster.resp_ports[0], commands, b"errors.\r\n+OK\r\n") == (
        b"+OK\r\n+QUEUED\r\n"
        b"-ERR unknown command 'NOSUCH', with args beginning with: 'x' "
        b"(Eventual's commands: docs/redis.md)\r\n"
        b"-ERR wrong number of arguments for 'get' command\r\n"
        b"-EXECABORT Transaction discarded because of previous errors.\r\n+OK\r\n"
    )
    assert b.exists("tx:never") == 0 and a.exists("tx:never") == 0
    assert b.get("tx:after") == b"1"


def test_discard_nesting_exec_without_multi_and_watch(cluster: Cluster) -> None:
    _, b, _ = clients(cluster)
    commands = [
        [b"MULTI"],
        [b"MULTI"],
        [b"SET", b"tx:discarded", b"1"],
        [b"WATCH", b"k"],
        [b"DISCARD"],
        [b"EXEC"],
        [b"DISCARD"],
        [b"WATCH", b"k"],
        [b"UNWATCH"],
        [b"MULTI"],
        [b"EXEC"],
    ]
    received = send(cluster.resp_ports[0], commands, b"+OK\r\n*0\r\n")
    assert received.split(b"\r\n")[:-1] == [
        b"+OK",
        b"-ERR MULTI calls can not be nested",
        b"+QUEUED",
        b"-ERR WATCH inside MULTI is not allowed",
        b"+OK",
        b"-ERR EXEC without MULTI",
        b"-ERR DISCARD without MULTI",
        b"-ERR WATCH is not supported: no node of a leaderless store sees every write to a "
        b"key, so none can promise EXEC that the key did not change (docs/redis.md)",
        b"+OK",
        b"+OK",
        b"*0",  # an empty transaction
    ]
    assert b.exists("tx:discarded") == 0


def test_commands_after_exec_in_one_write_wait_for_it(cluster: Cluster) -> None:
    """MULTI, INCRs, EXEC and a GET sent in one write: the GET starts once EXEC is done."""
    commands = [[b"MULTI"], *[[b"INCR", b"tx:ordered"]] * 50, [b"EXEC"], [b"GET", b"tx:ordered"]]
    received = send(cluster.resp_ports[0], commands, b"$2\r\n50\r\n")
    assert received.startswith(b"+OK\r\n" + b"+QUEUED\r\n" * 50 + b"*50\r\n:1\r\n:2\r\n")
    assert received.endswith(b":50\r\n$2\r\n50\r\n")


def test_a_transaction_is_bounded(cluster: Cluster) -> None:
    """Past ``MULTI_COMMANDS_MAX`` queued commands the next is refused, the queue freed, and
    EXEC discards the transaction; the connection goes on."""
    limit = 100_000  # resp.MULTI_COMMANDS_MAX
    commands = [[b"MULTI"], *[[b"SET", b"tx:bounded", b"x"]] * (limit + 1), [b"EXEC"]]
    commands.append([b"EXISTS", b"tx:bounded"])
    received = send(cluster.resp_ports[1], commands, b":0\r\n")
    assert received.startswith(b"+OK\r\n" + b"+QUEUED\r\n" * limit + b"-ERR a transaction holds")
    assert received.endswith(
        b"-EXECABORT Transaction discarded because of previous errors.\r\n:0\r\n"
    )


def test_string_commands(cluster: Cluster) -> None:
    a, b, c = clients(cluster)
    assert a.execute_command("SETEX", "s:ex", 100, "v") is True and 95 <= b.ttl("s:ex") <= 100
    assert a.psetex("s:px", 100_000, "v") is True and 95_000 <= c.pttl("s:px") <= 100_000
    with pytest.raises(redis.ResponseError, match="invalid expire time in 'setex'"):
        a.execute_command("SETEX", "s:ex", 0, "v")
    assert a.setnx("s:nx", "1") is True and b.setnx("s:nx", "2") is False
    assert c.get("s:nx") == b"1"
    assert b.getset("s:nx", "3") == b"1" and a.get("s:nx") == b"3"
    assert a.getdel("s:nx") == b"3" and b.exists("s:nx") == 0 and c.getdel("s:nx") is None
    a.set("s:gx", "v")
    assert b.getex("s:gx", ex=50) == b"v" and 45 <= c.ttl("s:gx") <= 50
    assert b.getex("s:gx", persist=True) == b"v" and c.ttl("s:gx") == -1
    assert a.getex("s:gx") == b"v" and a.getex("s:absent", ex=5) is None
    assert b.msetnx({"s:m1": "a", "s:m2": "b"}) is True
    assert a.msetnx({"s:m2": "x", "s:m3": "y"}) is False  # s:m2 exists: nothing written
    assert c.mget("s:m1", "s:m2", "s:m3") == [b"a", b"b", None]
    at = int(time.time()) + 1000
    assert a.expireat("s:m1", at) and b.expiretime("s:m1") == at
    assert c.pexpiretime("s:m1") == at * 1000
    assert b.expiretime("s:m2") == -1 and b.expiretime("s:none") == -2
    assert a.touch("s:m1", "s:m2", "s:none") == 2
    a.set("s:r", "Hello World")
    assert b.getrange("s:r", 0, 4) == b"Hello" and b.getrange("s:r", -5, -1) == b"World"
    assert b.getrange("s:r", 5, 2) == b"" and b.getrange("s:none", 0, -1) == b""
    assert b.execute_command("SUBSTR", "s:r", 6, 100) == b"World"
    assert c.setrange("s:r", 6, "Redis") == 11 and a.get("s:r") == b"Hello Redis"
    assert c.setrange("s:pad", 3, "x") == 4 and a.get("s:pad") == b"\0\0\0x"
    assert c.setrange("s:none", 0, "") == 0 and a.exists("s:none") == 0
    with pytest.raises(redis.ResponseError, match="offset is out of range"):
        a.setrange("s:r", -1, "x")
    a.sadd("s:set", "m")
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        a.getdel("s:set")


def test_expire_conditions(cluster: Cluster) -> None:
    a, b, _ = clients(cluster)
    a.set("e:k", "v")
    assert a.expire("e:k", 100, xx=True) is False and b.ttl("e:k") == -1
    assert a.expire("e:k", 100, gt=True) is False  # no expiry is an infinite one
    assert a.expire("e:k", 100, nx=True) is True and 95 <= b.ttl("e:k") <= 100
    assert a.expire("e:k", 200, nx=True) is False
    assert a.expire("e:k", 50, gt=True) is False and a.expire("e:k", 200, gt=True) is True
    assert 195 <= b.ttl("e:k") <= 200
    assert a.expire("e:k", 300, lt=True) is False and a.expire("e:k", 20, lt=True) is True
    assert 15 <= b.ttl("e:k") <= 20
    assert a.expire("e:k", 30, xx=True) is True and 25 <= b.ttl("e:k") <= 30
    assert a.expire("e:absent", 30, nx=True) is False
    with pytest.raises(redis.ResponseError, match="NX and XX, GT or LT"):
        a.execute_command("EXPIRE", "e:k", 10, "NX", "GT")
    with pytest.raises(redis.ResponseError, match="GT and LT"):
        a.execute_command("EXPIRE", "e:k", 10, "GT", "LT")
    with pytest.raises(redis.ResponseError, match="Unsupported option FOO"):
        a.execute_command("EXPIRE", "e:k", 10, "FOO")


def test_hash_commands(cluster: Cluster) -> None:
    a, b, c = clients(cluster)
    a.hset("h:k", mapping={"f1": "one", "f2": "two", "f3": "three"})
    assert b.hkeys("h:k") == [b"f1", b"f2", b"f3"]
    assert c.hvals("h:k") == [b"one", b"two", b"three"]
    assert b.hmget("h:k", ["f1", "nope", "f3"]) == [b"one", None, b"three"]
    assert c.hsetnx("h:k", "f1", "x") == 0 and c.hsetnx("h:k", "f4", "four") == 1
    assert a.hget("h:k", "f1") == b"one" and a.hget("h:k", "f4") == b"four"
    assert b.hstrlen("h:k", "f3") == 5 and b.hstrlen("h:k", "none") == 0
    assert a.hkeys("h:none") == [] and a.hmget("h:none", ["x"]) == [None]
    a.set("h:str", "v")
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        a.hkeys("h:str")


def test_set_commands(cluster: Cluster) -> None:
    a, b, c = clients(cluster)
    a.sadd("z:a", "1", "2", "3", "4")
    b.sadd("z:b", "3", "4", "5")
    assert c.smismember("z:a", ["1", "5", "4"]) == [1, 0, 1]
    assert c.sinter("z:a", "z:b") == {b"3", b"4"}
    assert c.sunion("z:a", "z:b") == {b"1", b"2", b"3", b"4", b"5"}
    assert c.sdiff("z:a", "z:b") == {b"1", b"2"}
    assert c.sinter("z:a", "z:none") == set() and c.sdiff("z:none", "z:a") == set()
    assert c.execute_command("SINTERCARD", 2, "z:a", "z:b") == 2
    assert c.execute_command("SINTERCARD", 2, "z:a", "z:b", "LIMIT", 1) == 1
    a.sadd("z:dest", "old")
    assert b.sinterstore("z:dest", ["z:a", "z:b"]) == 2 and a.smembers("z:dest") == {b"3", b"4"}
    assert b.sunionstore("z:dest", ["z:a", "z:b"]) == 5 and c.scard("z:dest") == 5
    assert b.sdiffstore("z:dest", ["z:b", "z:a"]) == 1 and a.smembers("z:dest") == {b"5"}
    assert b.sdiffstore("z:dest", ["z:a", "z:a"]) == 0 and a.exists("z:dest") == 0
    assert a.smove("z:a", "z:b", "1") is True
    assert c.sismember("z:b", "1") and not c.sismember("z:a", "1")
    assert a.smove("z:a", "z:b", "nope") is False and a.smove("z:a", "z:a", "2") is True
    a.set("z:str", "v")
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        a.smove("z:a", "z:str", "2")
    assert c.smembers("z:a") == {b"2", b"3", b"4"}  # nothing moved on the refusal
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        a.sinter("z:a", "z:str")


def test_random_members_and_pops(cluster: Cluster) -> None:
    a, b, c = clients(cluster)
    members = {b"m%d" % i for i in range(300)}
    a.sadd("r:set", *members)
    assert b.srandmember("r:set") in members
    picked = b.srandmember("r:set", 20)
    assert len(picked) == 20 and len(set(picked)) == 20 and set(picked) <= members
    assert set(b.srandmember("r:set", 1000)) == members  # more than there are: all, once
    repeats = c.srandmember("r:set", -500)
    assert len(repeats) == 500 and set(repeats) <= members
    assert len({b.srandmember("r:set") for _ in range(30)}) > 1  # not always the same one
    assert b.srandmember("r:none") is None and b.srandmember("r:none", 5) == []
    popped = set(a.spop("r:set", 100))
    assert len(popped) == 100 and popped <= members
    one = b.spop("r:set")
    assert one in members and one not in popped
    left = members - popped - {one}
    wait_until(lambda: c.smembers("r:set") == left, 10)
    assert c.scard("r:set") == 199
    assert set(a.spop("r:set", 1000)) == left and b.exists("r:set") == 0
    assert a.spop("r:set") is None and a.spop("r:set", 3) == []


def test_strings_count(cluster: Cluster) -> None:
    """SET then INCR works (on another node too), a SET overrides the increments it saw,
    and increments made at once on three nodes at ONE all count, on every node."""
    a, b, c = clients(cluster)
    assert a.set("c:hits", "10") is True and b.incr("c:hits") == 11
    assert c.incrby("c:hits", 5) == 16 and a.decr("c:hits") == 15 and b.decrby("c:hits", 5) == 10
    assert c.get("c:hits") == b"10" and a.type("c:hits") == b"string"
    assert a.append("c:hits", "0") == 3 and b.incr("c:hits") == 101  # "100", counted on
    assert c.set("c:hits", "7") is True and a.get("c:hits") == b"7"  # the SET saw them all
    assert b.incr("c:new") == 1 and c.set("c:new", "x") and a.get("c:new") == b"x"
    with pytest.raises(redis.ResponseError, match="value is not an integer"):
        b.incr("c:new")
    assert b.set("c:big", str(2**63 - 2)) and a.incr("c:big") == 2**63 - 1
    with pytest.raises(redis.ResponseError, match="increment or decrement would overflow"):
        c.incr("c:big")
    assert a.hset("c:h", "f", "5") == 1 and b.hincrby("c:h", "f", 3) == 8
    assert (
        c.hget("c:h", "f") == b"8"
        and a.hset("c:h", "f", "1") == 0
        and b.hincrby("c:h", "f", 1) == 2
    )
    a.hset("c:h", "word", "abc")
    with pytest.raises(redis.ResponseError, match="not an integer"):
        b.hincrby("c:h", "word", 1)

    for client in (a, b, c):
        client.execute_command("CONSISTENCY", "ONE")
    a.set("c:race", "100")
    wait_until(lambda: all(client.get("c:race") == b"100" for client in (a, b, c)), 10)
    errors: list[BaseException] = []

    def bump(client: redis.Redis, amount: int) -> None:
        try:
            for _ in range(50):
                client.incrby("c:race", amount)
        except BaseException as problem:  # reported below, not lost in the thread
            errors.append(problem)

    threads = [
        threading.Thread(target=bump, args=(client, amount))
        for client, amount in ((a, 1), (b, 2), (c, -1))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    expected = str(100 + 50 * (1 + 2 - 1)).encode()
    wait_until(lambda: all(client.get("c:race") == expected for client in (a, b, c)), 10)


def test_info_has_the_sections_tools_read(cluster: Cluster) -> None:
    a, _, _ = clients(cluster)
    a.set("i:k", "v")
    info = a.info()  # redis-py parses every section into one dict
    for field in (
        "redis_version",
        "process_id",
        "tcp_port",
        "uptime_in_seconds",
        "connected_clients",
        "used_memory",
        "used_memory_human",
        "total_commands_processed",
        "total_connections_received",
        "role",
        "used_cpu_user",
        "cluster_enabled",
    ):
        assert field in info, field
    assert info["tcp_port"] == cluster.resp_ports[0] and info["role"] == "master"
    assert info["used_memory"] > 1_000_000 and info["cluster_enabled"] == 0
    assert info["peers"] == 2 and info["peers_up"] == 2
    assert {info["peer0"]["id"], info["peer1"]["id"]} == {"n2", "n3"}
    assert info["db0"]["keys"] >= 1
    before = a.info("stats")["total_commands_processed"]
    a.ping()
    assert a.info("stats")["total_commands_processed"] >= before + 2  # PING and INFO
    only = a.info("clients")
    assert "connected_clients" in only and "redis_version" not in only
    assert a.info("nosuchsection") == {}


def test_the_keyspace_commands_answer_for_the_whole_cluster(tmp_path: Path) -> None:
    """SCAN over 5 nodes with N = 3 lists every key exactly once, from any node, whatever
    COUNT; KEYS, DBSIZE, SCAN TYPE, RANDOMKEY and FLUSHALL answer for the cluster."""
    five = start_cluster(tmp_path, 5)
    try:
        nodes = [five.client(i) for i in range(5)]
        writer = nodes[0]
        writer.execute_command("CONSISTENCY", "ALL")
        pipe = writer.pipeline(transaction=False)
        written = {b"k:%d" % i for i in range(2_000)}
        for key in sorted(written):
            pipe.set(key, "v")
        pipe.sadd("s:one", "m")
        pipe.sadd("s:two", "m")
        assert all(pipe.execute())
        everything = written | {b"s:one", b"s:two"}
        for client, count in ((nodes[1], 10), (nodes[3], 500), (nodes[4], 10_000)):
            listed = list(client.scan_iter(count=count))
            assert len(listed) == len(set(listed)) and set(listed) == everything, count
        assert set(nodes[2].keys("s:*")) == {b"s:one", b"s:two"}
        assert len(nodes[2].keys()) == len(everything)
        assert set(nodes[3].scan_iter(_type="set")) == {b"s:one", b"s:two"}
        assert set(nodes[3].scan_iter(match="k:1?", count=100)) == {
            b"k:%d" % i for i in range(10, 20)
        }
        assert nodes[1].dbsize() == len(everything)
        assert nodes[4].randomkey() in everything
        cursor, page = nodes[1].scan(0, count=5)
        assert cursor != 0 and len(page) >= 1
        writer.delete(*[b"k:%d" % i for i in range(100)])
        assert set(nodes[2].scan_iter(count=300)) == everything - {b"k:%d" % i for i in range(100)}
        assert nodes[0].flushall() is True
        assert list(nodes[3].scan_iter(count=1_000)) == [] and nodes[2].keys() == []
        assert nodes[4].randomkey() is None
    finally:
        stop_cluster(five)


def test_one_key_reads_the_same_through_both_faces(cluster: Cluster) -> None:
    """An object written over HTTP reads through GET as a string; a Redis string and a
    counter read through ``/kv`` (and ``Client.get``) as their text."""
    a, b, c = clients(cluster)
    http = [Client(f"http://127.0.0.1:{port}") for port in cluster.http_ports]
    http[0].put("two:obj", b"hello", content_type="text/plain")
    assert b.get("two:obj") == b"hello" and c.mget("two:obj", "two:none") == [b"hello", None]
    assert a.strlen("two:obj") == 5 and a.getrange("two:obj", 0, 1) == b"he"
    a.set("two:str", "abc")
    assert http[1].get("two:str", consistency="ALL").value == b"abc"
    b.incrby("two:count", 41)
    c.incr("two:count")
    assert http[2].get("two:count", consistency="ALL").value == b"42"
    assert http[0].incr("two:http-counter", 5) == 5  # a counter made over HTTP
    wait_until(lambda: a.get("two:http-counter") == b"5", 10)
    assert http[1].get("two:http-counter", consistency="ALL").value == b"5"
    assert a.incr("two:http-counter") == 6  # Redis's INCR on it counts on the same counter
    # Concurrent writes over HTTP are siblings: GET reads the same one from every node.
    http[0].put("two:siblings", b"from-a")
    http[1].put("two:siblings", b"from-b")
    wait_until(lambda: len(http[2].get("two:siblings", consistency="ALL").siblings) == 2, 10)
    seen = {client.get("two:siblings") for client in (a, b, c)}
    assert len(seen) == 1 and seen <= {b"from-a", b"from-b"}
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        a.set("two:obj", "over")  # an object merges by siblings, a string by last writer


def test_pubsub_reaches_subscribers_on_every_node_once(cluster: Cluster) -> None:
    a, b, c = clients(cluster)
    on_c = c.pubsub()
    on_c.subscribe("news")
    on_c.psubscribe("alerts.*")
    on_b = b.pubsub()
    on_b.subscribe("news")
    for listener in (on_c, on_b):  # the confirmations
        wait_until(lambda listener=listener: listener.get_message(timeout=1) is not None, 10)
    wait_until(lambda: on_c.get_message(timeout=1) is not None, 10)
    assert c.pubsub_channels() == [b"news"] and c.pubsub_numsub("news", "none") == [
        (b"news", 1),
        (b"none", 0),
    ]
    assert c.pubsub_numpat() == 1
    assert a.publish("news", "first") == 0  # no subscriber on the node that published
    assert a.publish("alerts.fire", "hot") == 0
    assert b.publish("news", "second") == 1  # one subscriber on b itself
    got: list[tuple[str, bytes, bytes]] = []

    def received(listener: redis.client.PubSub, want: int) -> bool:
        message = listener.get_message(timeout=1)
        if message is not None:
            got.append((message["type"], message["channel"], message["data"]))
        return len(got) >= want

    wait_until(lambda: received(on_c, 3), 10)
    assert got == [
        ("message", b"news", b"first"),
        ("pmessage", b"alerts.fire", b"hot"),
        ("message", b"news", b"second"),
    ]
    got.clear()
    wait_until(lambda: received(on_b, 2), 10)
    assert got == [("message", b"news", b"first"), ("message", b"news", b"second")]
    # Nothing more comes within half a second: each was delivered once.
    assert on_c.get_message(timeout=0.5) is None and on_b.get_message(timeout=0.5) is None
    # While subscribed, a RESP2 connection runs pub/sub commands and PING only, as in Redis.
    commands = [[b"SUBSCRIBE", b"x"], [b"GET", b"x"], [b"PING"]]
    assert send(cluster.resp_ports[0], commands, b"$0\r\n\r\n") == (
        b"*3\r\n$9\r\nsubscribe\r\n$1\r\nx\r\n:1\r\n"
        b"-ERR Can't execute 'get': only (P)SUBSCRIBE / (P)UNSUBSCRIBE / PING / QUIT / RESET "
        b"are allowed in this context\r\n"
        b"*2\r\n$4\r\npong\r\n$0\r\n\r\n"
    )
    on_c.unsubscribe("news")
    on_c.punsubscribe()
    wait_until(lambda: c.pubsub_numsub("news") == [(b"news", 0)], 10)
    assert c.pubsub_numpat() == 0
    on_c.close()
    on_b.close()


def test_pubsub_over_resp3_pushes_and_runs_other_commands(cluster: Cluster) -> None:
    listener_client = cluster.client(2, protocol=3)
    listener = listener_client.pubsub()
    listener.subscribe("resp3")
    wait_until(lambda: listener.get_message(timeout=1) is not None, 10)  # the confirmation
    assert listener_client.set("r3:k", "v") and listener_client.get("r3:k") == b"v"
    assert cluster.client(0).publish("resp3", "pushed") == 0
    message = None

    def pushed() -> bool:
        nonlocal message
        message = listener.get_message(timeout=1)
        return message is not None

    wait_until(pushed, 10)
    assert message is not None and message["type"] == "message"
    assert (message["channel"], message["data"]) == (b"resp3", b"pushed")
    listener.close()


def test_incrbyfloat_counts_on_strings_and_hash_fields(cluster: Cluster) -> None:
    a, b, c = clients(cluster)
    assert a.set("f:k", "10.50") and b.incrbyfloat("f:k", 0.1) == 10.6
    assert c.get("f:k") == b"10.6" and a.incrbyfloat("f:k", -5.6) == 5.0
    assert b.get("f:k") == b"5" and c.incr("f:k") == 6  # whole again: INCR takes it
    assert a.incrbyfloat("f:new", 1.5e3) == 1500.0 and b.get("f:new") == b"1500"
    with pytest.raises(redis.ResponseError, match="not a valid float"):
        a.incrbyfloat("f:k", "abc")  # type: ignore[arg-type]
    a.set("f:word", "abc")
    with pytest.raises(redis.ResponseError, match="not a valid float"):
        b.incrbyfloat("f:word", 1)
    assert a.hset("f:h", "price", "3") == 1 and b.hincrbyfloat("f:h", "price", 0.25) == 3.25
    assert c.hget("f:h", "price") == b"3.25" and a.hincrbyfloat("f:h", "new", -1) == -1.0


def test_command_describes_every_command_as_clients_read_it(cluster: Cluster) -> None:
    a = cluster.client(0)
    table = a.command()  # redis-py parses Redis 7's entries: flags and key positions
    assert a.command_count() == len(table) > 100
    assert table["get"]["arity"] == 2 and "readonly" in table["get"]["flags"]
    assert table["set"]["first_key_pos"] == 1 and "write" in table["set"]["flags"]
    assert (table["mset"]["last_key_pos"], table["mset"]["step_count"]) == (-1, 2)
    assert table["ping"]["first_key_pos"] == 0
    assert b"incrbyfloat" in uncooked(a, "COMMAND", "LIST")
    docs = uncooked(a, "COMMAND", "DOCS", "SMOVE", "NOSUCH")
    if isinstance(docs, list):  # RESP2: flat arrays of names and values
        docs = {docs[0]: dict(zip(docs[1][0::2], docs[1][1::2], strict=True))}
    assert list(docs) == [b"smove"]  # an unknown name is left out, as Redis does
    doc = docs[b"smove"]
    assert doc[b"group"] == b"set" and doc[b"since"] == b"7.0.0"
    # The handler's first paragraph; the compiled build keeps no docstrings, and names the
    # command and where its docs are instead.
    assert b"destination" in doc[b"summary"] or doc[b"summary"].startswith(b"SMOVE")
    info = uncooked(a, "COMMAND", "INFO", "GET", "NOSUCH")
    assert info[0][0] == b"get" and info[1] is None


def uncooked(client: redis.Redis, *args: str) -> Any:
    """A reply as it came, without the parsing redis-py applies by command name."""
    connection = client.connection_pool.get_connection()
    try:
        connection.send_command(*args)
        return connection.read_response()
    finally:
        client.connection_pool.release(connection)


def test_copy_and_rename_move_values_of_each_type_with_their_expiry(cluster: Cluster) -> None:
    a, b, c = clients(cluster)
    a.set("cp:s", "v", ex=100)
    b.incrby("cp:n", 7)
    a.sadd("cp:set", *[f"m{i}" for i in range(600)])  # more than one page of writes
    a.hset("cp:h", mapping={"f": "1", "g": "2"})
    a.pfadd("cp:hll", "x", "y", "z")
    assert b.copy("cp:s", "cp:s2") and c.get("cp:s2") == b"v" and 95 <= c.ttl("cp:s2") <= 100
    assert b.copy("cp:n", "cp:n2") and c.incr("cp:n2") == 8 and a.get("cp:n") == b"7"
    assert c.copy("cp:set", "cp:set2") and a.scard("cp:set2") == 600
    assert c.copy("cp:h", "cp:h2") and b.hgetall("cp:h2") == {b"f": b"1", b"g": b"2"}
    assert a.copy("cp:hll", "cp:hll2") and b.pfcount("cp:hll2") == 3
    assert a.copy("cp:s", "cp:h2") is False  # the destination exists: nothing copied
    assert a.copy("cp:s", "cp:h2", replace=True) and b.get("cp:h2") == b"v"
    assert a.copy("cp:none", "cp:x") is False and b.exists("cp:x") == 0
    assert a.rename("cp:set2", "cp:set3") and b.exists("cp:set2") == 0 and c.scard("cp:set3") == 600
    with pytest.raises(redis.ResponseError, match="no such key"):
        a.rename("cp:none", "cp:y")
    assert b.renamenx("cp:s", "cp:n2") is False and a.get("cp:s") == b"v"  # cp:n2 exists
    assert b.renamenx("cp:s", "cp:s3") is True and c.get("cp:s3") == b"v"
    assert c.exists("cp:s") == 0
    # A source that cannot be copied is refused before the destination is touched.
    a.execute_command("BC.INCRBY", "cp:bc", 5)
    with pytest.raises(redis.ResponseError, match="bcounter cannot be copied"):
        b.copy("cp:bc", "cp:s3", replace=True)
    assert c.get("cp:s3") == b"v"


def test_config_set_accepts_what_holds_and_refuses_the_rest_with_the_reason(
    cluster: Cluster,
) -> None:
    a, _, _ = clients(cluster)
    assert a.config_get("maxmemory*") == {"maxmemory": "0", "maxmemory-policy": "noeviction"}
    assert a.config_set("appendonly", "no") is True  # what it is already: nothing changes
    assert a.execute_command("CONFIG", "SET", "save", "", "databases", "1") == b"OK"
    with pytest.raises(redis.ResponseError, match="possibly related to argument 'maxmemory'"):
        a.config_set("maxmemory", "100mb")
    with pytest.raises(redis.ResponseError, match="--durability"):
        a.execute_command("CONFIG", "SET", "save", "", "appendonly", "yes")
    with pytest.raises(redis.ResponseError, match="Unknown option"):
        a.config_set("no-such-thing", "1")
    assert a.config_get("appendonly") == {"appendonly": "no"}
