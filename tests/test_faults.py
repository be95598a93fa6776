"""Faults on real processes, Jepsen style: three nodes, each in a network namespace this test
creates (joined by a bridge; nothing leaves the machine), under a mixed workload from three
clients, while the test cuts the network between them (blackhole routes inside the
namespaces), SIGKILLs one and restarts it, SIGSTOPs one, and runs two with skewed clocks
(``--clock-skew-ms``). Then the network heals and a checker reads the history:

- every acknowledged SET is read back (each key is written once, so exactly);
- every counter is at least its acknowledged increments and at most its attempted ones;
- every set holds every acknowledged member and nothing never attempted;
- all three nodes converge: reads at ONE from each give the same answers.

It prints how many operations and faults it ran. ``docs/faults.md`` says how to run the
long version (``EVENTUAL_FAULT_SECONDS``)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from eventual.server.main import node_command
from eventual.server.peer_auth import new_secret
from realnodes import wait_until

SECONDS = float(os.environ.get("EVENTUAL_FAULT_SECONDS", "24"))
SUBNET = "10.231.{}.{}"
CONVERGE_S = 90.0


def sh(*command: str) -> None:
    subprocess.run(command, check=True, capture_output=True, timeout=20)


def can_make_namespaces() -> bool:
    if os.geteuid() != 0:
        return False
    name = f"evprobe{os.getpid() % 100000}"
    try:
        sh("ip", "netns", "add", name)
        sh("ip", "netns", "del", name)
    except (subprocess.CalledProcessError, FileNotFoundError, subprocess.TimeoutExpired):
        return False
    return True


@dataclass
class Net:
    """Three namespaces on one bridge; node i at 10.231.<net>.i, the test at .254."""

    tag: str
    net: int
    names: list[str] = field(default_factory=list)
    cut: set[tuple[int, int]] = field(default_factory=set)

    def ip(self, index: int) -> str:
        return SUBNET.format(self.net, index + 1)

    def up(self) -> None:
        bridge = f"evb{self.tag}"
        sh("ip", "link", "add", bridge, "type", "bridge")
        sh("ip", "addr", "add", f"{SUBNET.format(self.net, 254)}/24", "dev", bridge)
        sh("ip", "link", "set", bridge, "up")
        for i in range(3):
            ns, veth = f"ev{self.tag}n{i}", f"ev{self.tag}v{i}"
            sh("ip", "netns", "add", ns)
            self.names.append(ns)
            sh("ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
            sh("ip", "link", "set", veth, "master", bridge, "up")
            sh("ip", "-n", ns, "addr", "add", f"{self.ip(i)}/24", "dev", "eth0")
            sh("ip", "-n", ns, "link", "set", "eth0", "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")

    def down(self) -> None:
        for ns in self.names:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=20, check=False)
        subprocess.run(
            ["ip", "link", "del", f"evb{self.tag}"], capture_output=True, timeout=20, check=False
        )

    def partition(self, a: int, b: int) -> None:
        """Cut a from b both ways: packets between them are dropped by a blackhole route."""
        sh("ip", "-n", self.names[a], "route", "add", "blackhole", f"{self.ip(b)}/32")
        sh("ip", "-n", self.names[b], "route", "add", "blackhole", f"{self.ip(a)}/32")
        self.cut.add((a, b))

    def heal(self) -> None:
        for a, b in self.cut:
            sh("ip", "-n", self.names[a], "route", "del", "blackhole", f"{self.ip(b)}/32")
            sh("ip", "-n", self.names[b], "route", "del", "blackhole", f"{self.ip(a)}/32")
        self.cut.clear()


@dataclass
class History:
    attempted_sets: dict[bytes, bytes] = field(default_factory=dict)
    acked_sets: dict[bytes, bytes] = field(default_factory=dict)
    attempted_incrs: dict[bytes, int] = field(default_factory=dict)
    acked_incrs: dict[bytes, int] = field(default_factory=dict)
    attempted_members: dict[bytes, set[bytes]] = field(default_factory=dict)
    acked_members: dict[bytes, set[bytes]] = field(default_factory=dict)
    operations: int = 0
    failed: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


COUNTERS = [b"faults:c%d" % i for i in range(3)]
SETS = [b"faults:s%d" % i for i in range(3)]


def workload(client: redis.Redis, who: int, history: History, stop: threading.Event) -> None:
    rng = random.Random(who)
    n = 0
    while not stop.is_set():
        n += 1
        choice = rng.random()
        try:
            with history.lock:
                history.operations += 1
                if choice < 0.4:
                    key, value = b"faults:k:%d:%d" % (who, n), b"v%d" % n
                    history.attempted_sets[key] = value
                elif choice < 0.7:
                    key = rng.choice(COUNTERS)
                    history.attempted_incrs[key] = history.attempted_incrs.get(key, 0) + 1
                else:
                    key, value = rng.choice(SETS), b"m:%d:%d" % (who, n)
                    history.attempted_members.setdefault(key, set()).add(value)
            if choice < 0.4:
                client.set(key, value)
                with history.lock:
                    history.acked_sets[key] = value
            elif choice < 0.7:
                client.incr(key)
                with history.lock:
                    history.acked_incrs[key] = history.acked_incrs.get(key, 0) + 1
            else:
                client.sadd(key, value)
                with history.lock:
                    history.acked_members.setdefault(key, set()).add(value)
        except redis.RedisError:
            with history.lock:
                history.failed += 1  # not acknowledged: it may or may not have happened
            time.sleep(0.05)


@dataclass
class Cluster:
    net: Net
    data: Path
    secret: Path
    commands: list[list[str]] = field(default_factory=list)
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(self, index: int) -> None:
        with (self.data / f"n{index + 1}.log").open("ab") as log:  # the child keeps its copy
            process = subprocess.Popen(
                ["ip", "netns", "exec", self.net.names[index], *self.commands[index]],
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        if index < len(self.processes):
            self.processes[index] = process
        else:
            self.processes.append(process)

    def client(self, index: int, level: str = "QUORUM") -> redis.Redis:
        # No retries: redis-py would send an INCR again after a timeout, and the history
        # would count one attempt where the node saw two.
        client = redis.Redis(
            host=self.net.ip(index), port=6379, socket_timeout=3, retry=Retry(NoBackoff(), 0)
        )
        client.execute_command("CONSISTENCY", level)
        return client


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    tag = str(os.getpid() % 10000)
    net = Net(tag, 100 + os.getpid() % 100)
    net.up()
    secret = tmp_path / "cluster.secret"
    secret.write_bytes(new_secret())
    found = Cluster(net, tmp_path, secret)
    members = [f"n{i + 1}=r1@{net.ip(i)}:7000" for i in range(3)]
    skews = ["0", "-2500", "4000"]  # milliseconds: n2 behind, n3 ahead
    for i in range(3):
        options = ["--durability", "fsync", "--cluster-secret-file", str(secret)]
        options += ["--clock-skew-ms", skews[i]]
        command = node_command(f"n{i + 1}", tmp_path / f"n{i + 1}", f"{net.ip(i)}:6379", members)
        found.commands.append([*command, *options])
        found.start(i)
    try:
        for i in range(3):
            wait_until(lambda i=i: found.client(i).ping())
        yield found
    finally:
        for process in found.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGCONT)
                process.kill()
                process.wait(timeout=20)
        net.down()


@pytest.mark.skipif(not can_make_namespaces(), reason="needs root to make network namespaces")
def test_partitions_kills_pauses_and_skew_lose_no_acknowledged_write(cluster: Cluster) -> None:
    history = History()
    stop = threading.Event()
    workers = [
        threading.Thread(target=workload, args=(cluster.client(i), i, history, stop), daemon=True)
        for i in range(3)
    ]
    for worker in workers:
        worker.start()
    faults: list[str] = []
    step = SECONDS / 6

    def fault(what: str, seconds: float) -> None:
        faults.append(what)
        time.sleep(seconds)

    try:
        time.sleep(step / 2)
        for _ in range(max(1, round(SECONDS / 24))):
            cluster.net.partition(0, 1)
            cluster.net.partition(0, 2)
            fault("partition n1 | n2 n3", step)
            cluster.net.heal()
            cluster.processes[1].kill()
            cluster.processes[1].wait(timeout=20)
            fault("SIGKILL n2", step / 2)
            cluster.start(1)
            time.sleep(step / 2)
            cluster.processes[2].send_signal(signal.SIGSTOP)
            fault("SIGSTOP n3", step)
            cluster.processes[2].send_signal(signal.SIGCONT)
            cluster.net.partition(1, 2)
            fault("partition n2 | n3", step)
            cluster.net.heal()
            time.sleep(step / 2)
    finally:
        stop.set()
        for worker in workers:
            worker.join(timeout=30)
        cluster.net.heal()
    print(
        f"{history.operations} operations ({history.failed} not acknowledged), "
        f"{len(faults)} faults: {', '.join(faults)}; clocks skewed -2.5 s and +4 s"
    )
    assert history.operations > 200 and len(history.acked_sets) > 50
    assert history.failed > 0, "no operation failed: the partition and the pause did not bite"

    readers = [cluster.client(i, "ONE") for i in range(3)]
    wait_until(lambda: all(r.ping() for r in readers))
    counters = sorted(history.attempted_incrs)
    sets = sorted(history.attempted_members)
    keys = sorted(history.attempted_sets)

    def snapshot(reader: redis.Redis) -> tuple[list[bytes | None], list[int], list[set[bytes]]]:
        pipe = reader.pipeline(transaction=False)
        for key in keys:
            pipe.get(key)
        values = pipe.execute()
        return (
            values,
            [int(reader.get(c) or 0) for c in counters],
            [reader.smembers(s) for s in sets],
        )

    # Convergence: the three nodes, each read at ONE, give the same answers.
    views: list[tuple[list[bytes | None], list[int], list[set[bytes]]]] = []

    def converged() -> bool:
        views[:] = [snapshot(r) for r in readers]
        return views[0] == views[1] == views[2]

    wait_until(converged, CONVERGE_S)
    values, counts, members = views[0]
    lost = [
        key
        for key, value in zip(keys, values, strict=True)
        if key in history.acked_sets and value != history.acked_sets[key]
    ]
    assert not lost, f"{len(lost)} acknowledged SETs lost, e.g. {lost[:5]}"
    invented = [
        key
        for key, value in zip(keys, values, strict=True)
        if value is not None and value != history.attempted_sets[key]
    ]
    assert not invented
    for counter, count in zip(counters, counts, strict=True):
        assert history.acked_incrs.get(counter, 0) <= count <= history.attempted_incrs[counter]
    for key, found in zip(sets, members, strict=True):
        assert history.acked_members.get(key, set()) <= found <= history.attempted_members[key]
    print(
        f"converged: {len(history.acked_sets)} acknowledged SETs all read back; counters "
        f"{counts} within acknowledged {[history.acked_incrs.get(c, 0) for c in counters]} "
        f"and attempted {[history.attempted_incrs[c] for c in counters]}"
    )
