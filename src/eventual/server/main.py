"""``eventual node``: one node process; ``eventual dev``: a local cluster of them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
import shlex
import signal
import socket
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from eventual import BUILD
from eventual.core import Level, NodeConfig
from eventual.core.membership import MemberStatus
from eventual.core.ring import Member
from eventual.process import tune_gc
from eventual.server import lists, sorted_sets  # noqa: F401  (register their commands)
from eventual.server.limits import ClientLimits, Clients
from eventual.server.logs import setup_logging
from eventual.server.peer_auth import SECRET_ENV, new_secret
from eventual.server.resp import RespServerProtocol
from eventual.server.runtime import SEED_PREFIX, Address, NodeRuntime, set_clock_skew
from eventual.server.sqlite_store import SQLiteStore
from eventual.server.users import Users

__all__ = ["MemberSpec", "ServerConfig", "TlsConfig", "node_command", "run_dev", "run_node"]

log = logging.getLogger("eventual")


@dataclass(frozen=True, slots=True)
class MemberSpec:
    """``node=region@host:port`` or ``node=region/zone@host:port`` (the internode address)."""

    node: str
    region: str
    address: Address
    zone: str = ""

    @classmethod
    def parse(cls, text: str) -> MemberSpec:
        node, sep, rest = text.partition("=")
        location, at, address = rest.partition("@")
        region, slash, zone = location.partition("/")
        if not (node and sep and region and at) or (slash and not zone):
            raise ValueError(f"expected NODE=REGION[/ZONE]@HOST:PORT, got {text!r}")
        return cls(node, region, Address.parse(address), zone)

    def __str__(self) -> str:
        zone = f"/{self.zone}" if self.zone else ""
        return f"{self.node}={self.region}{zone}@{self.address}"


@dataclass(frozen=True, slots=True)
class ServerConfig:
    node: str
    data_dir: Path
    resp: Address
    members: tuple[MemberSpec, ...]
    http: Address | None = None
    consistency: Level = Level.QUORUM  # for Redis connections until they say CONSISTENCY
    n: int = 3
    durability: str = "fsync"
    cluster_secret: bytes | None = None  # internode connections prove they hold it
    join: Address | None = None  # a member's internode address: join the cluster through it
    # Hold frames to members of a region this long (ms): a stand-in for distance, on one machine.
    region_delay_ms: tuple[tuple[str, int], ...] = ()
    fault_injection: bool = False  # POST /debug/partition: for tests, never in production
    metrics_open: bool = False  # /metrics without the password (for a scraper that has none)
    users: Users = field(default_factory=Users)  # --password and --users-file (users.py)
    limits: ClientLimits = field(default_factory=ClientLimits)
    tls: TlsConfig | None = None
    clock_skew_ms: int = 0  # for fault tests: this node's clock is this far off
    log_format: str = "text"  # server/logs.py: key=value lines, or JSON lines
    # Where the internode port listens (None: at this member's own address, the one the
    # others dial). A container or a NAT listens on 0.0.0.0 and is dialled at another.
    listen: Address | None = None

    def __post_init__(self) -> None:
        names = [m.node for m in self.members]
        if self.join is not None and names != [self.node]:
            raise ValueError("with --join, --member names this node only (its region, address)")
        if self.node not in names:
            raise ValueError(
                f"this node ({self.node}) must be one of the members ({', '.join(names)})"
            )
        if len(set(names)) != len(names):
            raise ValueError("member names must be unique")

    @property
    def me(self) -> MemberSpec:
        return next(m for m in self.members if m.node == self.node)


@dataclass(frozen=True, slots=True)
class TlsConfig:
    """TLS with Python's ssl: on the client ports (Redis and HTTP) with ``clients``, on the
    internode port with ``cluster`` (each node checks its peers' certificates against
    ``ca_file``; the cluster secret still authenticates them)."""

    cert_file: Path
    key_file: Path
    ca_file: Path | None = None
    clients: bool = True
    cluster: bool = False

    def __post_init__(self) -> None:
        if self.cluster and self.ca_file is None:
            raise ValueError("--tls-cluster needs --tls-ca-cert-file to check peers' certificates")

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.cert_file, self.key_file)
        return context

    def client_context(self) -> ssl.SSLContext:
        """For dialling peers: their certificate must chain to the CA. Host names are not
        checked (members are addressed by IP); the cluster secret proves who they are."""
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=self.ca_file)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.check_hostname = False
        return context


# File descriptors a node keeps for itself beyond its clients: peers, the store, logs.
RESERVED_FDS = 1_200


def _fit_maxclients(limits: ClientLimits) -> ClientLimits:
    """Raise the open-files limit as far as allowed and lower maxclients to fit it, as
    Redis does at start."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = limits.maxclients + RESERVED_FDS
    if soft != resource.RLIM_INFINITY and soft < wanted:
        target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft != resource.RLIM_INFINITY and soft - RESERVED_FDS < limits.maxclients:
        fitted = max(1, soft - RESERVED_FDS)
        log.warning(
            "maxclients lowered from %d to %d: the open-files limit is %d",
            limits.maxclients, fitted, soft,
        )  # fmt: skip
        return replace(limits, maxclients=fitted)
    return limits


async def serve(config: ServerConfig, ready: asyncio.Event | None = None) -> None:
    if config.clock_skew_ms:
        set_clock_skew(config.clock_skew_ms)
        log.warning("this node's clock is skewed by %d ms (--clock-skew-ms)", config.clock_skew_ms)
    users = config.users
    clients = Clients(_fit_maxclients(config.limits))
    client_tls = config.tls.server_context() if config.tls and config.tls.clients else None
    store = SQLiteStore(config.data_dir / "eventual.db", config.durability)
    seeds = {} if config.join is None else {f"{SEED_PREFIX}{config.join}": config.join}
    node_config = NodeConfig(
        node=config.node,
        members=tuple(Member(m.node, m.region, m.zone) for m in config.members),
        n=config.n if config.join else min(config.n, len(config.members)),
        address=str(config.me.address),
        join=config.join is not None,
        seeds=tuple(seeds),
    )
    peers = {m.node: m.address for m in config.members if m.node != config.node} | seeds
    runtime = NodeRuntime(
        node_config,
        store,
        peers,
        config.listen or config.me.address,
        region_delay_ms=dict(config.region_delay_ms),
        secret=config.cluster_secret,
        tls=(config.tls.server_context(), config.tls.client_context())
        if config.tls and config.tls.cluster
        else None,
    )
    if config.cluster_secret is None:
        log.warning(
            "no cluster secret: the internode port admits loopback peers only; give "
            "--cluster-secret-file or $%s to run across machines",
            SECRET_ENV,
        )
    await runtime.start()
    loop = asyncio.get_running_loop()
    # A stop asked for while the node starts stops it cleanly too.
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    app_runner = None
    if config.http is not None:
        from aiohttp import web  # noqa: PLC0415

        from eventual.server.http import build_app  # noqa: PLC0415

        app = build_app(
            runtime,
            fault_injection=config.fault_injection,
            users=users,
            metrics_open=config.metrics_open,
        )
        app_runner = web.AppRunner(app, access_log=None)
        await app_runner.setup()
        await web.TCPSite(
            app_runner, config.http.host, config.http.port, ssl_context=client_tls
        ).start()
    # The Redis port opens last: a client that can PING finds the HTTP port open too.
    server = await loop.create_server(
        lambda: RespServerProtocol(runtime, users, config.consistency, clients),
        config.resp.host,
        config.resp.port,
        ssl=client_tls,
    )
    http = f" http {config.http}" if config.http else ""
    ready_line = (
        f"node {config.node} ready: redis {config.resp}{http} internode {config.me.address}"
    )
    # One line, on the log (stderr), like every other event.
    log.info(ready_line, extra={"event": "start", "fields": {"build": BUILD}})
    if ready is not None:
        ready.set()
    watcher = asyncio.create_task(_stop_once_left(runtime, stop))
    await stop.wait()
    watcher.cancel()
    if app_runner is not None:
        await app_runner.cleanup()
    server.close()
    await server.wait_closed()
    await runtime.stop()
    log.info("node %s stopped", config.node, extra={"event": "stop"})


LEFT_LINGER_S = 30  # a node that left answers stragglers this long, then exits
# `eventual dev --restart`: a node that keeps dying (a port taken, a bad data directory) is
# restarted this many times in this window, then left down with its command printed.
DEV_RESTARTS_MAX = 3
DEV_RESTART_WINDOW_S = 60


async def _stop_once_left(runtime: NodeRuntime, stop: asyncio.Event) -> None:
    """A node that has left the cluster (``eventual cluster leave``) and handed its
    partitions off exits, as Riak's does."""
    left_at = None
    while True:
        await asyncio.sleep(0.5)
        node = runtime.node
        if node.cluster.entries[node.id].status is not MemberStatus.LEFT:
            continue
        left_at = left_at or time.monotonic()
        if not node.handing_off or time.monotonic() - left_at > LEFT_LINGER_S:
            log.info("node %s has left the cluster; stopping", node.id)
            stop.set()
            return


def run_node(config: ServerConfig) -> None:
    tune_gc()  # eventual/process.py
    setup_logging(config.node, config.log_format)
    try:
        import uvloop  # noqa: PLC0415  (optional: faster when installed)

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(serve(config))


def node_command(
    node: str, data_dir: Path, resp: str, members: list[str], *options: str
) -> list[str]:
    """The command line of one ``eventual node`` process (dev clusters, tests, benchmarks)."""
    command = [sys.executable, "-m", "eventual", "node", "--id", node]
    command += ["--data-dir", str(data_dir), "--resp", resp, *options]
    for member in members:
        command += ["--member", member]
    return command


def _port_taken(host: str, port: int) -> str:
    """Why ``host:port`` cannot be listened on ("" if it can)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers bind
        try:
            probe.bind((host, port))
        except OSError as error:
            return error.strerror or str(error)
    return ""


def run_dev(  # noqa: PLR0917  (the options of `eventual dev`, one to one)
    nodes: int,
    resp_port: int,
    http_port: int,
    peer_port: int,
    data_dir: Path,
    durability: str,
    regions: int,
    consistency: str = "QUORUM",
    host: str = "127.0.0.1",
    extra_options: list[str] | None = None,
    region_latency_ms: int = 0,
    restart: bool = False,
) -> int:
    """Start ``nodes`` node processes, print their addresses, stop them on Ctrl-C. Refuses
    to start (exit 1, one line) if a port it needs is taken; says so, with the command that
    restarts it, when a node exits while the cluster runs, and with ``restart`` restarts it
    (at most ``DEV_RESTARTS_MAX`` times in ``DEV_RESTART_WINDOW_S`` a node)."""
    region_names = [f"region-{i + 1}" for i in range(max(1, regions))]
    members = [
        MemberSpec(f"n{i + 1}", region_names[i % len(region_names)], Address(host, peer_port + i))
        for i in range(nodes)
    ]
    for i, member in enumerate(members):
        for what, port in (
            ("Redis", resp_port + i),
            ("HTTP", http_port + i),
            ("internode", peer_port + i),
        ):
            problem = _port_taken(host, port)
            if problem:
                print(
                    f"eventual dev: {member.node}'s {what} port {host}:{port} is not free "
                    f"({problem}): stop what holds it (another dev cluster?) or choose other "
                    "ports (--resp-port, --http-port, --peer-port)",
                    file=sys.stderr,
                    flush=True,
                )
                return 1
    # One secret for the dev cluster, kept with its data: a node started by hand to join it
    # (`eventual node --join ... --cluster-secret-file`) reads the same file.
    secret_file = data_dir / "cluster.secret"
    if not secret_file.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        secret_file.touch(mode=0o600)
        secret_file.write_bytes(new_secret())
    processes = []
    commands = []
    for i, member in enumerate(members):
        command = node_command(
            member.node,
            data_dir / member.node,
            f"{host}:{resp_port + i}",
            [str(m) for m in members],
            "--durability", durability,
            "--http", f"{host}:{http_port + i}",
            "--consistency", consistency,
            "--cluster-secret-file", str(secret_file),
            *(extra_options or []),
            *[
                option
                for region in region_names
                if region_latency_ms and region != member.region
                for option in ("--region-delay", f"{region}={region_latency_ms}")
            ],
        )  # fmt: skip
        commands.append(command)
        processes.append(subprocess.Popen(command))
    distance = f"; {region_latency_ms} ms between regions (each way)" if region_latency_ms else ""
    print(f"Eventual dev cluster: {nodes} nodes, data in {data_dir}{distance}", flush=True)
    print(f"  cluster secret: {secret_file}", flush=True)
    for i, (member, process) in enumerate(zip(members, processes, strict=True)):
        print(
            f"  {member.node} ({member.region}): redis {host}:{resp_port + i}  "
            f"http http://{host}:{http_port + i}  "
            f"internode {member.address}  pid {process.pid}",
            flush=True,
        )
    print("Ctrl-C stops the cluster.", flush=True)
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    reported: set[int] = set()
    restarts: dict[int, list[float]] = {}  # node index -> when it was restarted, recently
    while True:
        time.sleep(0.2)
        if stopping:
            break  # Ctrl-C signals the nodes too (one process group): their exits are expected
        # A node that died (killed by a test, say) is left down unless --restart: watching
        # hints and repair is the point of a dev cluster; the others keep serving. It is
        # reported once, with what restarts it.
        for i, process in enumerate(processes):
            code = process.poll()
            if code is None or i in reported:
                continue
            how = f"signal {-code}" if code < 0 else f"code {code}"
            now = time.monotonic()
            recent = [t for t in restarts.get(i, []) if now - t < DEV_RESTART_WINDOW_S]
            if restart and len(recent) < DEV_RESTARTS_MAX:
                restarts[i] = [*recent, now]
                processes[i] = subprocess.Popen(commands[i])
                print(
                    f"{members[i].node} exited ({how}); restarted it, pid {processes[i].pid} "
                    f"({len(restarts[i])} of {DEV_RESTARTS_MAX} in {DEV_RESTART_WINDOW_S} s)",
                    flush=True,
                )
                continue
            reported.add(i)
            again = " again: --restart gives up" if restart else ""
            print(
                f"{members[i].node} exited ({how}){again}; the others keep serving. "
                f"Restart it with:\n  {shlex.join(commands[i])}",
                flush=True,
            )
    for process in processes:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
    print("Eventual dev cluster stopped.", flush=True)
    return 0
