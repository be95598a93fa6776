"""TLS on real node processes: a 3-node cluster whose internode links and client ports are
encrypted, checked by capturing the loopback traffic while a value crosses it."""

from __future__ import annotations

import socket
import ssl
import struct
import subprocess
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import trustme

from eventual.server.main import node_command
from eventual.server.peer_auth import new_secret
from realnodes import DEADLINE_S, free_base_port, stop_processes, wait_until

ETH_P_ALL = 0x0003


class Capture:
    """Every TCP payload on the loopback interface, with its ports (needs CAP_NET_RAW)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        self.sock.bind(("lo", 0))
        self.sock.settimeout(0.2)
        self.segments: list[tuple[int, int, bytes]] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stopping.is_set():
            try:
                frame = self.sock.recv(262144)
            except TimeoutError:
                continue
            if len(frame) < 34 or frame[12:14] != b"\x08\x00" or frame[23] != 6:
                continue  # not IPv4 TCP
            ip = 14
            tcp = ip + (frame[ip] & 0x0F) * 4
            sport, dport = struct.unpack("!HH", frame[tcp : tcp + 4])
            payload = frame[tcp + (frame[tcp + 12] >> 4) * 4 :]
            if payload:
                self.segments.append((sport, dport, payload))

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=5)
        self.sock.close()

    def on_ports(self, ports: set[int]) -> bytes:
        return b"".join(p for s, d, p in self.segments if s in ports or d in ports)


def can_capture() -> bool:
    try:
        socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL)).close()
    except (PermissionError, OSError):
        return False
    return True


@pytest.fixture
def tls_cluster(tmp_path: Path) -> Iterator[tuple[list[int], list[int], list[int], Path]]:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert_file, key_file, ca_file = tmp_path / "node.pem", tmp_path / "node.key", tmp_path / "ca.pem"
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    ca.cert_pem.write_to_path(str(ca_file))
    secret = tmp_path / "cluster.secret"
    secret.write_bytes(new_secret())
    resp, http, peer = free_base_port(3), free_base_port(3), free_base_port(3)
    members = [f"n{i + 1}=r{i + 1}@127.0.0.1:{peer + i}" for i in range(3)]
    processes = []
    for i in range(3):
        clients = ["--no-tls-clients"] if i == 0 else []  # n1's client port stays plain
        command = node_command(
            f"n{i + 1}", tmp_path / f"n{i + 1}", f"127.0.0.1:{resp + i}", members,
            "--http", f"127.0.0.1:{http + i}", "--durability", "os",
            "--cluster-secret-file", str(secret),
            "--tls-cert-file", str(cert_file), "--tls-key-file", str(key_file),
            "--tls-ca-cert-file", str(ca_file), "--tls-cluster", *clients,
        )  # fmt: skip
        processes.append(
            subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        )
    try:
        yield (
            [resp + i for i in range(3)],
            [http + i for i in range(3)],
            [peer + i for i in range(3)],
            ca_file,
        )
    finally:
        stop_processes(processes)


@pytest.mark.skipif(not can_capture(), reason="capturing loopback traffic needs CAP_NET_RAW")
def test_with_tls_on_the_internode_and_client_traffic_is_encrypted(
    tls_cluster: tuple[list[int], list[int], list[int], Path],
) -> None:
    resp, http, peer, ca_file = tls_cluster
    plain = redis.Redis(port=resp[0], socket_timeout=10)
    secure = [
        redis.Redis(port=port, ssl=True, ssl_ca_certs=str(ca_file), socket_timeout=10)
        for port in resp[1:]
    ]
    wait_until(lambda: plain.ping() and all(c.ping() for c in secure))
    # The links between nodes are up when a write at ALL is acknowledged.
    plain.execute_command("CONSISTENCY", "ALL")
    wait_until(lambda: plain.set("tls:warmup", "x"))
    marker = b"plaintext-marker-" + new_secret()[:8].hex().encode()
    capture = Capture()
    try:
        assert plain.set("tls:k", marker)
        wait_until(lambda: secure[0].get("tls:k") == marker and secure[1].get("tls:k") == marker)
        context = ssl.create_default_context(cafile=str(ca_file))
        with urllib.request.urlopen(
            f"https://127.0.0.1:{http[1]}/cluster", context=context, timeout=DEADLINE_S
        ) as response:
            assert response.status == 200
    finally:
        capture.stop()
    # The control: the plain client port shows the value, so the capture sees what passes.
    assert marker in capture.on_ports({resp[0]})
    internode = capture.on_ports(set(peer))
    assert len(internode) > 1000, "no internode traffic captured"
    assert marker not in internode
    assert marker not in capture.on_ports(set(resp[1:]) | set(http[1:]))
    # A client without TLS gets nothing from a TLS port.
    with pytest.raises(redis.RedisError):
        redis.Redis(port=resp[1], socket_timeout=2).ping()
