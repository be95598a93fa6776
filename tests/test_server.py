"""Real processes: a 3-node ``eventual dev`` cluster on loopback, driven with redis-py and raw
sockets. Every wait is on a condition with a deadline."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import random
import shlex
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import typing
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from eventual.client import Client, ClientError
from eventual.core.ring import Member, Ring
from realnodes import (
    Cluster,
    free_base_port,
    start_cluster,
    start_joiner,
    stop_cluster,
    wait_until,
)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """One cluster for the tests that leave it whole (each uses keys of its own)."""
    found = start_cluster(tmp_path_factory.mktemp("shared"))
    yield found
    stop_cluster(found)


@pytest.fixture
def own_cluster(tmp_path: Path) -> Iterator[Cluster]:
    """A cluster for a test that kills nodes."""
    found = start_cluster(tmp_path)
    yield found
    stop_cluster(found)


def test_dev_applies_node_options_to_every_node(tmp_path: Path) -> None:
    found = start_cluster(tmp_path, 2, "--n", "1", "--password", "s3cret", "--durability", "os")
    try:
        for i in range(2):
            with pytest.raises(redis.AuthenticationError):
                found.client(i).get("k")
            info = found.client(i, password="s3cret").info()
            assert info["n"] == 1 and info["durability"] == "os" and info["nodes"] == 2
        # HTTP takes the same password: every data and admin route answers 401 without it.
        base = f"http://127.0.0.1:{found.http_ports[0]}"
        routes = [
            ("GET", "/kv/k", None), ("PUT", "/kv/k", b"v"), ("DELETE", "/kv/k", None),
            ("GET", "/crdt/set/s", None), ("POST", "/crdt/set/s", b'{"add": ["a"]}'),
            ("GET", "/ttl/k", None), ("PUT", "/ttl/k", b'{"seconds": 5}'),
            ("DELETE", "/ttl/k", None), ("GET", "/cluster", None),
            ("POST", "/cluster/leave", b'{"node": "n2"}'), ("GET", "/metrics", None),
        ]  # fmt: skip
        wrong = {"Authorization": "Bearer not-it"}
        basic = {"Authorization": "Basic " + base64.b64encode(b"default:s3cret").decode()}
        for method, path, body in routes:
            assert http(method, base + path, body)[0] == 401, (method, path)
            assert http(method, base + path, body, wrong)[0] == 401, (method, path)
        assert http("PUT", base + "/kv/k", b"v", {"Authorization": "Bearer s3cret"})[0] == 204
        assert http("GET", base + "/kv/k", None, basic)[:3:2] == (200, b"v")
        assert http("GET", base + "/openapi.json")[0] == 200  # the API's description stays open
        assert Client(base, password="s3cret").get("k").value == b"v"
        assert found.client(1, password="s3cret").ping()  # nobody made n2 leave
    finally:
        stop_cluster(found)


def test_a_write_on_one_node_is_read_on_the_others(cluster: Cluster) -> None:
    a, b, c = (cluster.client(i) for i in range(3))
    assert a.set("greeting", "hello")
    for other in (b, c):
        other.execute_command("CONSISTENCY", "ONE")
        wait_until(lambda other=other: other.get("greeting") == b"hello")


def test_concurrent_incrs_on_different_nodes_sum_and_sadds_union(cluster: Cluster) -> None:
    clients = [cluster.client(i) for i in range(3)]
    for round_ in range(10):
        for i, client in enumerate(clients):
            client.incrby("hits", i + 1)
            client.sadd("members", f"m{i}-{round_}")
    for client in clients:
        wait_until(lambda client=client: client.get("hits") == b"60")
        wait_until(lambda client=client: len(client.smembers("members")) == 30)


def test_expire_ttl_persist_and_wrongtype(cluster: Cluster) -> None:
    a, b, _ = (cluster.client(i) for i in range(3))
    a.set("session", "token")
    assert b.expire("session", 100) is True
    assert 90 <= a.ttl("session") <= 100
    assert a.persist("session") is True
    assert b.ttl("session") == -1
    assert a.ttl("missing") == -2
    a.set("short", "x", px=300)
    wait_until(lambda: b.get("short") is None, 5)
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        b.sadd("session", "member")
    with pytest.raises(redis.ResponseError, match="value is not an integer"):
        a.incr("session")  # a string counts only when it holds an integer


def test_string_options_and_multi_key_commands(cluster: Cluster) -> None:
    a, b, _ = (cluster.client(i) for i in range(3))
    a.execute_command("CONSISTENCY", "ALL")
    b.execute_command("CONSISTENCY", "ALL")
    assert a.set("opt", "1", nx=True) is True
    assert b.set("opt", "2", nx=True) is None  # exists: not written
    assert a.set("absent-opt", "x", xx=True) is None
    assert b.set("opt", "3", get=True) == b"1"
    assert a.append("opt", "45") == 3 and b.get("opt") == b"345" and b.strlen("opt") == 3
    assert a.mset({"m1": "a", "m2": "b"}) is True
    assert b.mget("m1", "m2", "m3") == [b"a", b"b", None]
    assert a.exists("m1", "m2", "m3") == 2
    assert b.delete("m1", "m2", "m3") == 2 and a.exists("m1") == 0
    assert a.hset("prof", mapping={"n": "ana"}) == 1 and b.hincrby("prof", "visits", 2) == 2
    assert a.hgetall("prof") == {b"n": b"ana", b"visits": b"2"}
    assert b.hdel("prof", "n") == 1 and a.hlen("prof") == 1 and a.hexists("prof", "visits")
    assert a.srem("no-set", "x") == 0 and a.scard("no-set") == 0
    assert a.echo("hi") == b"hi" and a.client_setname("me") and a.client_getname() == "me"
    assert b.execute_command("BC.INCRBY", "stock", 5) == 5
    assert b.execute_command("BC.GET", "stock") == 5
    rights = b.execute_command("BC.RIGHTS", "stock")  # a map in RESP3, pairs in RESP2
    assert rights in ({b"n2": 5}, [b"n2", 5])  # b is node n2: the rights are its own


def test_big_collections_scan_page_by_page_and_read_whole_in_pages(cluster: Cluster) -> None:
    """SSCAN/HSCAN through redis-py's iterators, and SMEMBERS/HGETALL of collections larger
    than one page (ops.SCAN_COUNT_MAX members), with members coming and going mid-scan."""
    a, b, _ = (cluster.client(i) for i in range(3))
    members = [f"f{i}" for i in range(12_000)]
    for start in range(0, len(members), 1_000):  # one at a time: a busy CI box stays in time
        a.sadd("scan:followers", *members[start : start + 1_000])
    for start in range(0, 11_000, 1_000):
        a.hset("scan:session", mapping={f"k{i}": f"v{i}" for i in range(start, start + 1_000)})
    assert b.smembers("scan:followers") == {m.encode() for m in members}
    assert b.hgetall("scan:session") == {b"k%d" % i: b"v%d" % i for i in range(11_000)}
    assert (
        b.type("scan:followers") == b"set"
        and b.exists("scan:followers", "scan:session", "scan:nope") == 2
    )
    assert b.ttl("scan:followers") == -1 and b.ttl("scan:nope") == -2

    seen = []
    removed = set()
    for i, member in enumerate(b.sscan_iter("scan:followers", count=700)):
        seen.append(member)
        if i % 1_000 == 0:  # churn mid-scan: members present throughout come back once
            a.sadd("scan:followers", f"new{i}")
            removed.add(f"f{11_999 - i}")
            a.srem("scan:followers", f"f{11_999 - i}")
    assert len(seen) == len(set(seen))
    assert {m.encode() for m in members if m not in removed} <= set(seen)

    assert sorted(b.sscan_iter("scan:followers", match="f1234*")) == sorted(
        m.encode() for m in members if m.startswith("f1234")
    )
    fields = dict(b.hscan_iter("scan:session", count=1_000))
    assert fields == b.hgetall("scan:session") and len(fields) == 11_000
    names = b.hscan_iter("scan:session", match="k1?", count=50_000, no_values=True)
    assert sorted(names) == [f"k1{i}".encode() for i in range(10)]
    cursor, page = b.hscan("scan:session", 0, count=50_000)  # COUNT past the page limit
    assert cursor != 0 and 10_000 <= len(page) < 10_100
    with pytest.raises(redis.ResponseError, match="invalid cursor"):
        b.execute_command("SSCAN", "scan:followers", "-1")
    with pytest.raises(redis.ResponseError, match="syntax error"):
        b.execute_command("SSCAN", "scan:followers", "0", "COUNT", "0")
    a.set("scan:plain", "x")
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        b.sscan("scan:plain", 0)
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        b.smembers("scan:plain")
    assert b.sscan("scan:nope", 0) == (0, [])


def _peer_socket(cluster: Cluster, index: int) -> socket.socket:
    host, port = cluster.members[index].split("@")[1].rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=10)


def _read_frame(sock: socket.socket) -> bytes | None:
    """One length-prefixed frame, or None when the node closed the connection."""
    data = b""
    while len(data) < 4 or len(data) < 4 + int.from_bytes(data[:4], "big"):
        chunk = sock.recv(65536)
        if not chunk:
            return None
        data += chunk
    return data[4:]


def _closed_by_node(sock: socket.socket) -> bool:
    with contextlib.suppress(ConnectionError):
        return _read_frame(sock) is None
    return True


def test_an_outsider_without_the_cluster_secret_can_neither_write_nor_change_membership(
    cluster: Cluster,
) -> None:
    """The attacks of the trust-boundaries issue, on the internode port: a hello naming a
    member with a wrong proof, a Forward sent with no handshake at all, a forged gossip
    entry making a member leave. Each connection is closed and nothing changes; the same
    handshake with the dev cluster's secret is accepted (the test can tell the two apart)."""
    from eventual.core import Level, Request, ops
    from eventual.core.membership import MemberEntry, MemberStatus
    from eventual.core.messages import ClusterGossip, Forward
    from eventual.server import peer_auth
    from eventual.server.wire import encode_message

    forward = encode_message(
        Forward(1, Request(1, ops.StringSet(b"owned", b"by an outsider"), Level.ONE))
    )
    leave = encode_message(
        ClusterGossip((MemberEntry("n2", "region-1", "", 10**9, MemberStatus.LEFT, 10**9),))
    )
    # 1. A hello that names n2, with a proof made from a guessed secret, then the attacks.
    with _peer_socket(cluster, 0) as sock:
        challenge = peer_auth.read_challenge(_read_frame(sock) or b"")
        nonce = os.urandom(peer_auth.CHALLENGE_BYTES)
        sock.sendall(peer_auth.hello_frame(b"not the secret at all", "n2", challenge, nonce))
        with contextlib.suppress(ConnectionError):
            sock.sendall(forward + leave)
        assert _closed_by_node(sock)
    # 2. No handshake: the frames of the old attack, as they were.
    with _peer_socket(cluster, 1) as sock:
        assert _read_frame(sock) is not None  # the challenge
        with contextlib.suppress(ConnectionError):
            sock.sendall(b"\x00\x00\x00\x03\xa2n2" + forward + leave)
        assert _closed_by_node(sock)
    # 3. The real secret is accepted: the node answers "ok" and keeps the connection.
    secret = (cluster.data_dir / "cluster.secret").read_bytes().strip()
    with _peer_socket(cluster, 2) as sock:
        challenge = peer_auth.read_challenge(_read_frame(sock) or b"")
        nonce = os.urandom(peer_auth.CHALLENGE_BYTES)
        sock.sendall(peer_auth.hello_frame(secret, "n1", challenge, nonce))
        peer_auth.check_accept(secret, "n1", challenge, nonce, _read_frame(sock) or b"")
    reader = cluster.client(1)
    reader.execute_command("CONSISTENCY", "ALL")
    assert reader.get("owned") is None
    view = cluster_view(cluster, 0)
    assert {m["node"]: m["membership"] for m in view["members"]} == {
        "n1": "active",
        "n2": "active",
        "n3": "active",
    }
    assert cluster.client(1).ping()  # n2 did not leave


def test_hyperloglogs_count_and_merge_across_nodes(cluster: Cluster) -> None:
    a, b, c = (cluster.client(i) for i in range(3))
    for client in (a, b, c):
        client.execute_command("CONSISTENCY", "ALL")
    assert a.pfadd("visitors:mon", *[f"u{i}" for i in range(0, 600)]) == 1
    assert b.pfadd("visitors:tue", *[f"u{i}" for i in range(400, 1000)]) == 1
    assert 570 <= c.pfcount("visitors:mon") <= 630  # the sketch's error is about 1%
    assert 950 <= c.pfcount("visitors:mon", "visitors:tue", "absent") <= 1050  # the union
    assert c.pfmerge("visitors:week", "visitors:mon", "visitors:tue")
    assert a.pfcount("visitors:week") == c.pfcount("visitors:mon", "visitors:tue")
    b.pfadd("visitors:week", "newcomer")  # 0 or 1: a sketch need not change for one more
    assert a.pfcount("visitors:week") >= c.pfcount("visitors:mon", "visitors:tue")
    a.set("not-a-sketch", "x")
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        b.pfmerge("visitors:week", "not-a-sketch")
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        c.pfcount("visitors:mon", "not-a-sketch")


def test_a_pipeline_of_1000_commands(cluster: Cluster) -> None:
    a = cluster.client(0)
    pipe = a.pipeline(transaction=False)
    expected: list[object] = []
    for i in range(1000):
        pipe.set(f"key:{i}", i)
        expected.append(True)
        if i % 10 == 0:
            pipe.get(f"key:{i}")
            expected.append(str(i).encode())
    assert pipe.execute() == expected  # 1,100 replies, in order
    wait_until(lambda: cluster.client(2).get("key:999") == b"999")


def raw(port: int, payload: bytes, expect_close: bool) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(payload)
        data = b""
        end = time.monotonic() + 5
        while time.monotonic() < end:
            try:
                chunk = s.recv(4096)
            except TimeoutError:
                break
            if not chunk:
                assert expect_close, f"connection closed unexpectedly after {data!r}"
                return data
            data += chunk
            if not expect_close and data.endswith(b"\r\n"):
                return data
        assert not expect_close, f"connection stayed open after {data!r}"
        return data


@pytest.mark.parametrize(
    ("payload", "reply", "closes"),
    [
        (b"*-1\r\n*1\r\n$4\r\nPING\r\n", b"+PONG\r\n", False),  # a null array: ignored
        (b"*-5\r\n", b"-ERR Protocol error: invalid multibulk length\r\n", True),
        (b"\r\n*1\r\n$4\r\nPING\r\n", b"+PONG\r\n", False),  # an empty line: ignored
        (b"*99999999999\r\n", b"-ERR Protocol error: invalid multibulk length\r\n", True),
        (b"*1\r\n$abc\r\n", b"-ERR Protocol error: invalid bulk length\r\n", True),
        (b"*2\r\n$4\r\nPING\r\n:12\r\n", b"-ERR Protocol error: expected '$', got ':'\r\n", True),
        (b"*x\x00\xff\xfe garbage\r\n", b"-ERR Protocol error: invalid multibulk length\r\n", True),
        (b'SET "unbalanced\r\n', b"-ERR Protocol error: unbalanced quotes in request\r\n", True),
        (
            b"NOSUCH a b\r\n",
            b"-ERR unknown command 'NOSUCH', with args beginning with: 'a' 'b' "
            b"(Eventual's commands: docs/redis.md)\r\n",
            False,
        ),
    ],
)
def test_malformed_resp_gets_an_error_and_others_keep_being_served(
    cluster: Cluster, payload: bytes, reply: bytes, closes: bool
) -> None:
    assert raw(cluster.resp_ports[0], payload, closes) == reply
    assert cluster.client(0).ping()


def test_oversized_keys_and_values_get_a_clear_error(cluster: Cluster) -> None:
    a = cluster.client(0)
    with pytest.raises(redis.ResponseError, match="key is 9000 bytes, more than the limit of 8192"):
        a.set(b"k" * 9000, "v")
    with pytest.raises(redis.ResponseError, match="more than the limit of 67108864"):
        a.set("big", b"x" * (64 * 1024 * 1024 + 1))
    with pytest.raises(
        redis.ResponseError, match=r"hash value is .* more than the limit of 1048576"
    ):
        a.hset("h", "field", b"x" * (1024 * 1024 + 1))
    assert a.set("small", "fine")
    # The largest string works, and replicates. Written at ONE: a 64 MiB write costs each
    # replica about a second of CPU, more than a busy test machine leaves a QUORUM write.
    largest = bytes(range(256)) * (64 * 1024 * 1024 // 256)
    one = cluster.client(0)
    one.execute_command("CONSISTENCY", "ONE")
    assert one.set("largest", largest) and one.get("largest") == largest
    other = cluster.client(1)
    other.execute_command("CONSISTENCY", "ONE")
    wait_until(lambda: other.get("largest") == largest)


def test_sigkill_under_write_load_to_big_collections_loses_no_acknowledged_member(
    tmp_path: Path,
) -> None:
    """One replica per key (N = 1), so what the killed node had on disk is all there is:
    after a restart from its data directory, a big set and a big hash hold every member
    whose write was acknowledged, and nothing that was never sent."""
    options = ("--n", "1", "--durability", "os")
    cluster = start_cluster(tmp_path, 2, *options)
    try:
        ring = Ring(
            [Member(m.split("=")[0], m.split("=")[1].split("@")[0]) for m in cluster.members]
        )
        victim = 0
        owned = (
            key
            for key in (f"followers:{i}".encode() for i in range(1000))
            if ring.preference_list(ring.partition_of(key), 1) == ["n1"]
        )
        set_key, hash_key = next(owned), next(owned)
        client = cluster.client(victim)
        client.execute_command("CONSISTENCY", "ONE")
        initial = [b"user:%d" % i for i in range(20_000)]
        pipe = client.pipeline(transaction=False)
        for start in range(0, len(initial), 1000):
            pipe.sadd(set_key, *initial[start : start + 1000])
            pipe.hset(hash_key, mapping={m: b"0" for m in initial[start : start + 1000]})
        pipe.execute()
        acked_members: set[bytes] = set(initial)
        acked_fields: dict[bytes, bytes] = dict.fromkeys(initial, b"0")
        sent_members = set(initial)
        killer = threading.Timer(1.0, os.kill, (cluster.pids["n1"], signal.SIGKILL))
        killer.start()
        batch = 0
        try:
            while batch < 100_000:
                batch += 1
                members = [b"new:%d:%d" % (batch, i) for i in range(5)]
                sent_members.update(members)
                pipe = client.pipeline(transaction=False)
                for member in members:
                    pipe.sadd(set_key, member)
                    pipe.hset(hash_key, member, b"%d" % batch)
                pipe.execute()
                acked_members.update(members)
                acked_fields.update(dict.fromkeys(members, b"%d" % batch))
        except redis.ConnectionError:
            pass
        killer.join()
        assert len(acked_members) > len(initial) + 100, "the kill came before any load"
        replacement = cluster.restart(victim, *options)
        cluster.pids["n1"] = replacement.pid
        restarted = cluster.client(victim)
        wait_until(restarted.ping)
        members = restarted.smembers(set_key)
        assert acked_members <= members, sorted(acked_members - members)[:5]
        assert members <= sent_members, sorted(members - sent_members)[:5]
        fields = restarted.hgetall(hash_key)
        assert all(fields.get(f) == value for f, value in acked_fields.items())
        assert set(fields) <= sent_members
        assert restarted.scard(set_key) == len(members) and restarted.hlen(hash_key) == len(fields)
    finally:
        stop_cluster(cluster)


def test_sigkill_under_write_load_loses_no_acknowledged_write(own_cluster: Cluster) -> None:
    cluster = own_cluster
    victim = 2
    target = cluster.client(victim)
    target.execute_command("CONSISTENCY", "ONE")  # acknowledged once on the victim's own disk
    acknowledged: list[str] = []
    for i in range(400):
        if i == 200:
            os.kill(cluster.pids[f"n{victim + 1}"], signal.SIGKILL)
        try:
            if i < 200:
                target.set(f"load:{i}", i)
            else:
                cluster.client(i % 2).set(f"load:{i}", i)
            acknowledged.append(f"load:{i}")
        except redis.ConnectionError:
            pass
    assert len(acknowledged) >= 300
    replacement = cluster.restart(victim)
    cluster.pids[f"n{victim + 1}"] = replacement.pid
    restarted = cluster.client(victim)
    wait_until(restarted.ping)
    restarted.execute_command("CONSISTENCY", "ALL")
    wait_until(lambda: restarted.get(acknowledged[0]) is not None)  # links to peers are back
    for key in acknowledged:
        assert restarted.get(key) == key.split(":")[1].encode(), key
    # And it catches up on what it missed while down, without a read: hints and anti-entropy.
    store = cluster.data_dir / f"n{victim + 1}" / "eventual.db"

    def caught_up() -> bool:
        with sqlite3.connect(store) as db:
            keys = {row[0] for row in db.execute("SELECT key FROM record_log")}
        return all(key.encode() in keys for key in acknowledged)

    wait_until(caught_up, 60)


def url(cluster: Cluster, index: int) -> str:
    return f"http://127.0.0.1:{cluster.http_ports[index]}"


def cluster_view(cluster: Cluster, index: int) -> dict[str, typing.Any]:
    status, _, body = http("GET", url(cluster, index) + "/cluster")
    assert status == 200
    view: dict[str, typing.Any] = json.loads(body)
    return view


def member(view: dict[str, typing.Any], name: str) -> dict[str, typing.Any]:
    found: dict[str, typing.Any] = next(m for m in view["members"] if m["node"] == name)
    return found


def test_a_paused_node_is_marked_dead_then_refutes_and_receives_its_hints(
    tmp_path: Path,
) -> None:
    """SIGSTOP past the suspicion timeout: SWIM declares it dead, writes for it go to a
    fallback with hints; after SIGCONT it refutes (a higher incarnation) and gets them."""
    cluster = start_cluster(tmp_path, 4, "--n", "3", "--durability", "os")
    try:
        victim, pid = "n4", cluster.pids["n4"]
        live = [0, 1, 2]
        os.kill(pid, signal.SIGSTOP)
        try:
            wait_until(
                lambda: all(
                    member(cluster_view(cluster, i), victim)["status"] == "dead" for i in live
                ),
                30,
            )
            writer = cluster.client(0)
            writer.execute_command("CONSISTENCY", "QUORUM")
            keys = [f"paused:{i}" for i in range(60)]
            for key in keys:
                assert writer.set(key, key)  # served throughout, at QUORUM
            ring = Ring(tuple(Member(f"n{i + 1}", "region-1") for i in range(4)), 64)
            owed = [
                k for k in keys if victim in ring.preference_list(ring.partition_of(k.encode()), 3)
            ]
            assert owed, "some keys have the paused node among their primaries"
            assert sum(cluster_view(cluster, i)["hints_held"] for i in live) >= len(owed)
        finally:
            os.kill(pid, signal.SIGCONT)
        wait_until(
            lambda: all(
                member(cluster_view(cluster, i), victim)["status"] == "alive" for i in live
            ),
            30,
        )
        assert member(cluster_view(cluster, 3), victim)["incarnation"] >= 1  # it refuted
        store = cluster.data_dir / victim / "eventual.db"

        def handed_off() -> bool:
            if sum(cluster_view(cluster, i)["hints_held"] for i in live):
                return False
            with sqlite3.connect(store) as db:
                held = {bytes(row[0]) for row in db.execute("SELECT key FROM record_log")}
            return all(k.encode() in held for k in owed)

        wait_until(handed_off, 60)
    finally:
        stop_cluster(cluster)


def http(
    method: str, address: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(address, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def test_the_http_sibling_round_trip(cluster: Cluster) -> None:
    first, second = url(cluster, 0), url(cluster, 1)
    assert http("PUT", f"{first}/kv/doc", b"one", {"Content-Type": "text/plain"})[0] == 204
    assert http("PUT", f"{second}/kv/doc", b"two", {"Content-Type": "text/plain"})[0] == 204
    status, headers, body = http("GET", f"{first}/kv/doc?consistency=ALL")
    assert status == 300
    siblings = json.loads(body)
    assert sorted(base64.b64decode(s["value_base64"]) for s in siblings["siblings"]) == [
        b"one",
        b"two",
    ]
    assert all(s["content_type"] == "text/plain" for s in siblings["siblings"])
    context = headers["X-Causal-Context"]
    assert siblings["context"] == context
    assert (
        http("PUT", f"{second}/kv/doc?consistency=ALL", b"both", {"X-Causal-Context": context})[0]
        == 204
    )
    status, headers, body = http("GET", f"{url(cluster, 2)}/kv/doc?consistency=ALL")
    assert (status, body) == (200, b"both")
    assert http("GET", f"{first}/kv/never-written")[0] == 404


def test_out_of_range_arguments_get_redis_errors_and_bad_bodies_a_400(cluster: Cluster) -> None:
    """The range checks of the trust-boundaries issue: counters stay in 64 bits, expiry
    times must fit 64 bits of milliseconds, rights move only to members, and HTTP bodies
    that are not JSON (bad UTF-8, nesting past the parser) are the client's error."""
    a = cluster.client(0)
    a.execute_command("CONSISTENCY", "ALL")
    assert a.incrby("range:counter", 2**63 - 2) == 2**63 - 2
    with pytest.raises(redis.ResponseError, match="increment or decrement would overflow"):
        a.incrby("range:counter", 2)
    assert a.incrby("range:counter", 1) == 2**63 - 1 and a.get("range:counter") == b"%d" % (
        2**63 - 1
    )
    assert a.decrby("range:low", 2**63 - 1) == -(2**63) + 1
    with pytest.raises(redis.ResponseError, match="would overflow"):
        a.decrby("range:low", 2)
    assert a.hincrby("range:hash", "f", 2**63 - 1) == 2**63 - 1
    with pytest.raises(redis.ResponseError, match="would overflow"):
        a.hincrby("range:hash", "f", 1)
    for command in (
        ("SET", "range:s", "v", "PX", "9223372036854775807"),
        ("EXPIRE", "range:counter", "99999999999999999"),
        ("EXPIRE", "range:counter", "-99999999999999999"),
        ("PEXPIRE", "range:counter", "9223372036854775807"),
    ):
        with pytest.raises(redis.ResponseError, match="invalid expire time"):
            a.execute_command(*command)
    assert a.ttl("range:counter") == -1  # nothing was applied
    # A time in the past that fits 64 bits deletes the key, as in Redis 7.
    a.set("range:gone", "x")
    assert a.execute_command("PEXPIRE", "range:gone", "-9223372036854775808") == 1
    assert a.get("range:gone") is None
    assert a.execute_command("BC.INCRBY", "range:stock", 5) == 5
    with pytest.raises(redis.ResponseError, match="not a member"):
        a.execute_command("BC.TRANSFER", "range:stock", "nosuchnode", 3)
    assert a.execute_command("BC.GET", "range:stock") == 5
    for body in (b'{"add": ["\xff"]}', b"[" * 100_000):
        status, _, _ = http("POST", f"{url(cluster, 0)}/crdt/set/range:bodies", body)
        assert status == 400, body[:20]


def test_the_python_client_resolves_siblings_and_the_api_describes_itself(cluster: Cluster) -> None:
    a, b = Client(url(cluster, 0)), Client(url(cluster, 1))
    a.put("cart", b"book")
    b.put("cart", b"pen")
    merged = a.get(
        "cart",
        consistency="ALL",
        resolver=lambda s: b"+".join(sorted(x.value for x in s)),
        write_back=True,
    )
    assert merged.value == b"book+pen"
    assert b.get("cart", consistency="ALL").value == b"book+pen"
    assert a.incr("likes", 2) == 2 and b.incr("likes", 3) >= 3
    wait_until(lambda: a.value("counter", "likes", consistency="ALL") == 5)
    assert a.crdt("set", "tags", {"add": ["x", "y"]}) == 2
    assert sorted(b.value("set", "tags", consistency="ALL")) == ["x", "y"]
    with pytest.raises(ClientError) as wrong:
        a.crdt("set", "likes", {"add": ["z"]})
    assert wrong.value.status == 409
    with pytest.raises(ClientError) as bad:
        a.crdt("counter", "likes", {"multiply": 2})
    assert bad.value.status == 400
    spec = json.loads(http("GET", f"{url(cluster, 0)}/openapi.json")[2])
    assert spec["openapi"].startswith("3.") and "/kv/{key}" in spec["paths"]
    assert b"eventual_http_requests_total" in http("GET", f"{url(cluster, 0)}/metrics")[2]
    state = a.cluster()
    assert state["healthy"] and len(state["members"]) == 3
    unreachable = Client("http://127.0.0.1:1", retries=1, backoff=0.01)
    with pytest.raises(ClientError, match="cannot reach"):
        unreachable.get("x")


def test_grow_shrink_and_replace_under_load(tmp_path: Path) -> None:
    """3 -> 5 -> 3 nodes, then a node killed for good is replaced; writes go on throughout,
    every acknowledged key stays readable at ONE, and the partitions end evenly spread."""
    cluster = start_cluster(tmp_path, 3, "--durability", "os")
    live = [0, 1, 2]
    acknowledged: list[str] = []
    rng = random.Random(5)

    def serve_until(condition: Callable[[], bool], deadline_s: float = 90) -> None:
        end = time.monotonic() + deadline_s
        while True:
            with contextlib.suppress(redis.RedisError):  # a write may fail; only acks count
                key = f"grow:{len(acknowledged)}"
                if cluster.client(rng.choice(live)).set(key, key):
                    acknowledged.append(key)
            if acknowledged:
                key = rng.choice(acknowledged)
                reader = cluster.client(rng.choice(live))
                reader.execute_command("CONSISTENCY", "ONE")
                assert reader.get(key) == key.encode(), f"{key} unreadable at ONE"
            if condition():
                return
            assert time.monotonic() < end, "the cluster did not settle in time"

    def settled(index: int, actives: set[str]) -> bool:
        view = cluster_view(cluster, index)
        now_active = {m["node"] for m in view["members"] if m["membership"] == "active"}
        return now_active == actives and not view["in_transition"]

    joiners = []
    try:
        serve_until(lambda: len(acknowledged) >= 50)
        for name in ("n4", "n5"):
            process, index = start_joiner(cluster, name, 0)
            joiners.append(process)
            wait_until(lambda i=index: cluster.client(i).ping())
            live.append(index)
        grown = {"n1", "n2", "n3", "n4", "n5"}
        serve_until(lambda: all(settled(i, grown) for i in live))
        shares = [m["partitions"] for m in cluster_view(cluster, 0)["members"]]
        assert sum(shares) == 64 * 3 and max(shares) - min(shares) <= 1, shares

        client = Client(url(cluster, 0))
        for name in ("n4", "n5"):
            assert client.leave(name) == "leaving"
        live = [0, 1, 2]
        serve_until(lambda: settled(0, {"n1", "n2", "n3"}) and settled(1, {"n1", "n2", "n3"}))
        for process in joiners:  # a node that has left and handed off stops by itself
            process.wait(timeout=60)

        os.kill(cluster.pids["n3"], signal.SIGKILL)  # lost for good
        live = [0, 1]
        wait_until(lambda: member(cluster_view(cluster, 0), "n3")["status"] == "dead", 30)
        process, index = start_joiner(cluster, "n6", 1)
        joiners.append(process)
        wait_until(lambda: any(m["node"] == "n6" for m in cluster_view(cluster, 0)["members"]), 30)
        assert client.replace("n3", "n6") == "leaving"
        live = [0, 1, index]
        serve_until(lambda: all(settled(i, {"n1", "n2", "n6"}) for i in live))
        assert member(cluster_view(cluster, 0), "n3")["membership"] == "left"
        shares = [m["partitions"] for m in cluster_view(cluster, 0)["members"]]
        assert sorted(shares) == [0, 0, 0, 64, 64, 64], shares  # n3, n4, n5 hold nothing
        for i in live:
            reader = cluster.client(i)
            reader.execute_command("CONSISTENCY", "ONE")
            for key in acknowledged:
                assert reader.get(key) == key.encode(), (i, key)
    finally:
        for process in joiners:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
        stop_cluster(cluster)


def test_region_latency_makes_replication_lag_visible(tmp_path: Path) -> None:
    """Three regions 300 ms apart: a write is seen at once where it was made; a read at ONE
    elsewhere returns the stale value until it arrives; QUORUM writes and reads do not."""
    cluster = start_cluster(tmp_path, 3, "--regions", "3", "--region-latency", "300")
    try:
        writer, reader = cluster.client(0), cluster.client(1)
        writer.execute_command("CONSISTENCY", "ALL")
        assert writer.set("stock:lamp", "10")
        writer.execute_command("CONSISTENCY", "ONE")
        reader.execute_command("CONSISTENCY", "ONE")
        started = time.monotonic()
        assert writer.set("stock:lamp", "9")
        assert writer.get("stock:lamp") == b"9"  # its own region: at once
        assert reader.get("stock:lamp") == b"10"  # the other region: not yet
        wait_until(lambda: reader.get("stock:lamp") == b"9", 10)
        assert time.monotonic() - started >= 0.25  # the distance, not instant
        writer.execute_command("CONSISTENCY", "QUORUM")
        reader.execute_command("CONSISTENCY", "QUORUM")
        assert writer.set("stock:lamp", "8")
        assert reader.get("stock:lamp") == b"8"  # W + R > N: the two majorities meet
    finally:
        stop_cluster(cluster)


def test_dev_refuses_a_taken_port_in_one_line(tmp_path: Path) -> None:
    base = free_base_port(3)
    with socket.socket() as holder:  # another program holds n1's internode port
        holder.bind(("127.0.0.1", base + 2))
        holder.listen()
        ports = ["--resp-port", str(base), "--http-port", str(base + 1)]
        ports += ["--peer-port", str(base + 2)]
        done = subprocess.run(
            [sys.executable, "-m", "eventual", "dev", "--nodes", "1", *ports],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and f"internode port 127.0.0.1:{base + 2} is not free" in lines[0]
    assert "Eventual dev cluster" not in done.stdout, "nothing may start"


def test_dev_reports_a_dead_node_with_the_command_that_restarts_it(tmp_path: Path) -> None:
    found = start_cluster(tmp_path, 1)
    assert found.process.stdout is not None
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(found.process.stdout), daemon=True)
    reader.start()
    restarted: subprocess.Popen[bytes] | None = None
    try:
        os.kill(found.pids["n1"], signal.SIGKILL)
        # Said within 5 s (issue 14), with the command.
        wait_until(lambda: any("Restart it with:" in line for line in lines), 5)
        said = next(i for i, line in enumerate(lines) if "exited" in line)
        assert lines[said].startswith("n1 exited (signal 9)")
        wait_until(lambda: len(lines) > said + 1)
        command = shlex.split(lines[said + 1])
        assert command[:4] == [sys.executable, "-m", "eventual", "node"]
        restarted = subprocess.Popen(command, stderr=subprocess.DEVNULL)
        wait_until(lambda: found.client(0).ping())  # the printed command brings it back
        assert found.client(0).set("back", "1")
    finally:
        if restarted is not None:
            restarted.terminate()
            restarted.wait(timeout=20)
        stop_cluster(found)


def test_dev_with_restart_brings_a_dead_node_back(tmp_path: Path) -> None:
    found = start_cluster(tmp_path, 1, "--restart")
    assert found.process.stdout is not None
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(found.process.stdout), daemon=True)
    reader.start()
    try:
        killed = found.pids["n1"]
        os.kill(killed, signal.SIGKILL)
        wait_until(lambda: any("restarted it, pid" in line for line in lines), 5)
        said = next(line for line in lines if "restarted it" in line)
        assert said.startswith("n1 exited (signal 9); restarted it, pid "), said
        pid = int(said.split("pid ")[1].split()[0])
        assert pid != killed
        found.pids["n1"] = pid  # stop_cluster makes sure it is gone
        wait_until(lambda: found.client(0).ping())  # serving again, with its data
        assert found.client(0).set("back", "1")
    finally:
        stop_cluster(found)


def test_dev_stopped_by_ctrl_c_reports_no_dead_node(tmp_path: Path) -> None:
    # Ctrl-C reaches every process of the terminal's group, the nodes too: their exits are
    # the stop, not deaths to report.
    base = free_base_port(3)
    ports = ["--resp-port", str(base), "--http-port", str(base + 1)]
    ports += ["--peer-port", str(base + 2)]
    dev = subprocess.Popen(
        [sys.executable, "-m", "eventual", "dev", "--nodes", "1", *ports],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,  # its own group, as a terminal's foreground job
    )
    try:
        wait_until(lambda: redis.Redis(port=base, socket_timeout=2).ping())
        os.killpg(dev.pid, signal.SIGINT)
        output, _ = dev.communicate(timeout=30)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(dev.pid, signal.SIGKILL)
    assert "Eventual dev cluster stopped." in output
    assert "exited" not in output, output
