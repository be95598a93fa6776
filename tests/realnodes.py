"""Real node processes for tests: a local ``eventual dev`` cluster on loopback, and waits on
conditions with deadlines."""

from __future__ import annotations

import contextlib
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from eventual.server.main import node_command

DEADLINE_S = 20.0


def wait_until(condition: Callable[[], object], deadline_s: float = DEADLINE_S) -> None:
    end = time.monotonic() + deadline_s
    last_error: Exception | None = None
    while time.monotonic() < end:
        try:
            if condition():
                return
        except (redis.RedisError, OSError) as error:
            last_error = error
        time.sleep(0.05)
    raise AssertionError(f"condition not met within {deadline_s} s (last error: {last_error})")


# Below Linux's ephemeral range (32768-60999): a port there can be taken at any moment as
# the source port of some outgoing connection, and a node that cannot bind it dies.
PORTS = (20_000, 32_700)
WORKERS_MAX = 8  # xdist workers get disjoint shares of PORTS (CI runs two)
_given: set[int] = set()  # ports this process has handed out: never twice


def _share() -> tuple[int, int]:
    """This test process's share of PORTS: two workers never pick the same port, and one
    worker never hands out a port twice (a test asking for three ranges gets three)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    index = int(worker) % WORKERS_MAX if worker.isdigit() else 0
    width = (PORTS[1] - PORTS[0]) // WORKERS_MAX
    return PORTS[0] + index * width, PORTS[0] + (index + 1) * width


def free_base_port(count: int) -> int:
    low, high = _share()
    for _ in range(200):
        base = random.randrange(low, high - count)
        if _given.intersection(range(base, base + count)):
            continue
        sockets = []
        try:
            for port in range(base, base + count):
                s = socket.socket()
                s.bind(("127.0.0.1", port))
                sockets.append(s)
            _given.update(range(base, base + count))
            return base
        except OSError:
            continue
        finally:
            for s in sockets:
                s.close()
    raise RuntimeError("no free ports")


@dataclass
class Cluster:
    process: subprocess.Popen[str]
    resp_ports: list[int]
    http_ports: list[int]
    pids: dict[str, int]
    data_dir: Path
    members: list[str]

    def client(self, index: int, **options: object) -> redis.Redis:
        return redis.Redis(port=self.resp_ports[index], socket_timeout=10, **options)  # type: ignore[arg-type]

    def restart(self, index: int, *options: str) -> subprocess.Popen[str]:
        """Start node ``index`` again by hand, as its dev cluster would have."""
        name = f"n{index + 1}"
        port = self.resp_ports[index]
        secret = ("--cluster-secret-file", str(self.data_dir / "cluster.secret"))
        command = node_command(
            name, self.data_dir / name, f"127.0.0.1:{port}", self.members, *secret, *options
        )
        return subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True
        )


def start_cluster(data_dir: Path, nodes: int = 3, *options: str) -> Cluster:
    resp_base = free_base_port(nodes)
    peer_base = free_base_port(nodes)
    http_base = free_base_port(nodes)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "eventual",
            "dev",
            "--nodes",
            str(nodes),
            "--data-dir",
            str(data_dir),
            "--resp-port",
            str(resp_base),
            "--http-port",
            str(http_base),
            "--peer-port",
            str(peer_base),
            *options,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    pids: dict[str, int] = {}
    members = []
    while len(pids) < nodes:
        line = process.stdout.readline()
        assert line, "eventual dev exited early"
        match = re.search(r"(n\d) \(([^)]+)\): redis .*internode (\S+)\s+pid (\d+)", line)
        if match:
            pids[match.group(1)] = int(match.group(4))
            members.append(f"{match.group(1)}={match.group(2)}@{match.group(3)}")
    found = Cluster(
        process,
        [resp_base + i for i in range(nodes)],
        [http_base + i for i in range(nodes)],
        pids,
        data_dir,
        members,
    )
    password = options[options.index("--password") + 1] if "--password" in options else None
    try:
        for i in range(nodes):
            wait_until(lambda i=i: found.client(i, password=password).ping())
    except BaseException:
        stop_cluster(found)  # a cluster that did not come up must not outlive the test
        raise
    return found


def stop_cluster(found: Cluster) -> None:
    found.process.send_signal(signal.SIGTERM)
    try:
        found.process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        found.process.kill()
    for pid in found.pids.values():  # a node restarted by hand is not the dev process's child
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@dataclass
class Node:
    """One node process of its own (a one-member cluster, N = 1), for tests of one port."""

    process: subprocess.Popen[str]
    resp_port: int
    http_port: int
    peer_port: int
    data_dir: Path

    def client(self, **options: object) -> redis.Redis:
        return redis.Redis(port=self.resp_port, socket_timeout=10, **options)  # type: ignore[arg-type]

    def rss_bytes(self) -> int:
        """The node's resident memory, from /proc."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS")

    def stop(self) -> None:
        stop_processes([self.process])


def stop_processes(processes: Sequence[subprocess.Popen[Any]]) -> None:
    """SIGTERM to each, then up to 20 s each to exit cleanly before SIGKILL."""
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


def start_node(
    data_dir: Path, *options: str, ready: Callable[[Node], object] | None = None
) -> Node:
    base = free_base_port(3)
    resp, http, peer = base, base + 1, base + 2
    command = node_command(
        "n1",
        data_dir,
        f"127.0.0.1:{resp}",
        [f"n1=r1@127.0.0.1:{peer}"],
        "--http", f"127.0.0.1:{http}", "--n", "1", "--durability", "os", *options,
    )  # fmt: skip
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True
    )
    node = Node(process, resp, http, peer, data_dir)
    try:
        wait_until(lambda: ready(node) if ready is not None else node.client().ping(), DEADLINE_S)
    except BaseException:
        node.stop()
        raise
    return node


def start_joiner(cluster: Cluster, name: str, seed_index: int) -> tuple[subprocess.Popen[str], int]:
    """``eventual node --join`` a new node through member ``seed_index``; (process, index)."""
    resp, http_port, peer = free_base_port(1), free_base_port(1), free_base_port(1)
    seed = cluster.members[seed_index].split("@")[1]
    command = node_command(
        name,
        cluster.data_dir / name,
        f"127.0.0.1:{resp}",
        [f"{name}=region-1@127.0.0.1:{peer}"],
        "--join", seed, "--http", f"127.0.0.1:{http_port}", "--durability", "os",
        "--cluster-secret-file", str(cluster.data_dir / "cluster.secret"),
    )  # fmt: skip
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True
    )
    cluster.resp_ports.append(resp)
    cluster.http_ports.append(http_port)
    cluster.pids[name] = process.pid
    return process, len(cluster.resp_ports) - 1
