"""The ``eventual`` command line."""

from __future__ import annotations

import math
import time
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click
from click.core import ParameterSource

from eventual import BUILD, __version__
from eventual.client import Client, ClientError
from eventual.core import Level
from eventual.demo import run_demo
from eventual.progress import progress_bar
from eventual.server.limits import MAXCLIENTS, OUTPUT_BUFFER_BYTES, QUERY_BUFFER_BYTES
from eventual.sim import FAULTS, Faults, SimConfig
from eventual.sim.runner import run_seeds

if TYPE_CHECKING:
    from eventual.server.main import TlsConfig

LOG_FORMAT_OPTION = click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="The log on stderr, one line per event with the node's id: key=value pairs, or JSON "
    "objects for a collector.",
)
CONSISTENCY_OPTION = click.option(
    "--consistency",
    type=click.Choice([level.value for level in Level], case_sensitive=False),
    default="QUORUM",
    show_default=True,
    help="Level of Redis connections until they send CONSISTENCY.",
)
F = TypeVar("F", bound=Callable[..., Any])

DURABILITY_HELP = (
    "fsync: an acknowledged write is fsynced (default); os: written to the OS, survives a "
    "process crash; none: no sync."
)


@click.group(
    context_settings={"help_option_names": ["-h", "--help"], "auto_envvar_prefix": "EVENTUAL"}
)
@click.version_option(
    __version__,
    "--version",
    "-V",
    prog_name="eventual",
    message=f"%(prog)s, version %(version)s; build: {BUILD}",
)
def main() -> None:
    """Eventual: a leaderless, eventually consistent, replicated key-value store.

    Every node accepts reads and writes, even while the network is split; replicas
    converge when it heals, and concurrent writes are never silently lost.
    """


@main.command()
@click.argument("story", type=click.Choice(["types", "inventory", "social"]), default="types")
@click.option("--bytes", "show_bytes", is_flag=True, help="types: print each key's size.")
@click.option(
    "--latency-ms",
    type=click.IntRange(0, 2_000),
    default=300,
    show_default=True,
    help="inventory, social: the distance between regions.",
)
def demo(story: str, show_bytes: bool, latency_ms: int) -> None:
    """Show Eventual at work. Exits non-zero if the story's checks fail.

    types (default): the data types in three regions split apart, written to, healed:
    siblings, summed counters, add-wins sets, strings by hybrid logical clock, a bounded
    counter refusing sales beyond a region's rights.

    inventory: the global inventory on a real 3-region cluster: a sale seen at once where
    it was made and later elsewhere (the stale read at ONE is shown), a region cut off that
    keeps selling on its own rights, the heal, rebalancing, and the books balanced.

    social: a social network on the Redis face (redis-py) in three regions: posts fanned out
    to timelines, a follow racing an unfollow, likes counted in two regions at once, a region
    cut off that keeps posting, the heal; every timeline ends with every post.
    """
    if story == "social":
        from eventual.social.demo import run_social_demo  # noqa: PLC0415

        if not run_social_demo(latency_ms):
            raise SystemExit(1)
        return
    if story == "inventory":
        from eventual.inventory.demo import run_inventory_demo  # noqa: PLC0415

        if not run_inventory_demo(latency_ms):
            raise SystemExit(1)
        return
    if not run_demo(echo_bytes=show_bytes):
        raise SystemExit(1)


@main.command()
@click.option(
    "--seeds",
    "seed_count",
    type=click.IntRange(1),
    default=100,
    show_default=True,
    help="How many seeds to run (seeds 1..N, or from --first-seed).",
)
@click.option(
    "--seed",
    type=int,
    default=None,
    help="Run this one seed only; the output then includes its trace digest.",
)
@click.option("--first-seed", type=int, default=1, show_default=True, help="First of the --seeds.")
@click.option("--nodes", type=click.IntRange(1, 64), default=5, show_default=True)
@click.option("--regions", type=click.IntRange(1, 6), default=3, show_default=True)
@click.option(
    "--faults",
    default="all",
    show_default=True,
    help=f"'all', 'none' or a comma-separated list of: {', '.join(FAULTS)}.",
)
@click.option(
    "--ops",
    type=click.IntRange(1),
    default=300,
    show_default=True,
    help="Client operations per seed.",
)
@click.option(
    "--anti-entropy/--no-anti-entropy",
    default=True,
    show_default=True,
    help="Run Merkle-tree anti-entropy (switch off to see what it repairs).",
)
@click.option(
    "--jobs",
    type=click.IntRange(1),
    default=None,
    help="Parallel processes (default: one per CPU).",
)
@click.option(
    "--workload",
    type=click.Choice(["mixed", "small", "inventory"]),
    default="mixed",
    show_default=True,
    help=(
        "mixed: every data type, with sets and hashes grown to thousands of members;"
        " small: the same without those big collections (several times faster);"
        " inventory: bounded-counter stock sold in every region."
    ),
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
def sim(
    seed_count: int,
    seed: int | None,
    first_seed: int,
    nodes: int,
    regions: int,
    faults: str,
    ops: int,
    anti_entropy: bool,
    jobs: int | None,
    workload: str,
    as_json: bool,
) -> None:
    """Run the deterministic cluster simulator and its checkers.

    Each seed drives a cluster of real core nodes on a faulty virtual network through a
    fault phase under load (nodes joining, leaving and being replaced among the faults),
    heals everything, and checks that the ring settled, convergence, that no acknowledged
    write was lost, and that no bounded counter ever went below zero. A violation prints its
    seed and the trace of the key it concerns, and the command exits 1.
    """
    try:
        fault_set = Faults.parse(faults)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--faults") from None
    n = min(3, nodes)
    template = SimConfig(
        seed=0,
        nodes=nodes,
        regions=regions,
        ops=ops,
        faults=fault_set,
        n=n,
        anti_entropy=anti_entropy,
        workload=workload,
    )
    seeds = [seed] if seed is not None else list(range(first_seed, first_seed + seed_count))
    # What a replay needs besides the seed: every option given that shapes a run (--seeds,
    # --jobs and --json do not change what one seed does).
    given = click.get_current_context()
    replay_options = "".join(
        f" --{name} {given.params[name]}"
        for name in ("nodes", "regions", "faults", "ops", "workload")
        if given.get_parameter_source(name) is not ParameterSource.DEFAULT
    )
    if not anti_entropy:
        replay_options += " --no-anti-entropy"
    with progress_bar(len(seeds), "seeds") as bar:
        summary = run_seeds(template, seeds, jobs, bar.update)
    if as_json:
        click.echo(summary.to_json())
    else:
        rate = summary.sim_seconds / max(summary.wall_seconds, 1e-9)
        faults_text = ", ".join(f"{k} {v}" for k, v in sorted(summary.faults_injected.items()))
        click.echo(f"seeds run:        {summary.seeds}")
        click.echo(f"operations:       {summary.ops_acked} acknowledged of {summary.ops_issued}")
        click.echo(f"faults injected:  {faults_text or 'none'}")
        click.echo(f"LWW losses:       {summary.lww_losses} (concurrent string writes, by design)")
        click.echo(
            f"excused:          {summary.excused} (writes to keys a node killed for good held "
            "the only copy of something of)"
        )
        click.echo(f"violations:       {len(summary.violations)}")
        click.echo(
            f"speed:            {summary.sim_seconds:.0f} simulated s in {summary.wall_seconds:.1f}"
            f" wall s = {rate:.0f} simulated s per wall s"
        )
        if summary.digest:
            click.echo(f"digest:           {summary.digest}")
        for found in summary.violations[:10]:
            click.echo(
                f"\nVIOLATION seed {found['seed']} [{found['checker']}] key {found['key']}: "
                f"{found['detail']}"
            )
            click.echo(f"  replay: eventual sim --seed {found['seed']}{replay_options}")
            for line in found["trace"]:
                click.echo(f"  | {line}")
    if summary.violations:
        raise SystemExit(1)


@main.command("sim-swim")
@click.option(
    "--nodes",
    default="10,50,200,1000",
    show_default=True,
    help="Cluster sizes, comma-separated.",
)
@click.option("--seeds", type=click.IntRange(1), default=3, show_default=True)
@click.option(
    "--loss", type=click.FloatRange(0, 0.5), default=0.0, show_default=True, help="Message loss."
)
def sim_swim(nodes: str, seeds: int, loss: float) -> None:
    """SWIM failure detection at scale: kill one member, count the protocol periods until
    every other member knows it is dead, and the messages each member sent per period.

    Medians over the seeds. Detection = suspected (about 1.6 periods expected) + suspicion
    timeout (4 log10 n periods) + dissemination (grows like log n)."""
    from statistics import median  # noqa: PLC0415

    from eventual.sim.swim_scale import detect_failure  # noqa: PLC0415

    try:
        sizes = [int(size) for size in nodes.split(",")]
    except ValueError:
        raise click.BadParameter("a comma-separated list of sizes", param_hint="--nodes") from None
    if any(not 3 <= size <= 5_000 for size in sizes):
        raise click.BadParameter("sizes must be in [3, 5000]", param_hint="--nodes")
    click.echo(
        f"{'nodes':>6} {'log2 n':>7} {'suspected':>10} {'dead@1':>8} {'dead@all':>9} "
        f"{'spread':>7} {'msgs/node/period':>17} {'false+':>7}"
    )
    failed = False
    for size in sizes:
        runs = [detect_failure(size, seed, loss=loss) for seed in range(1, seeds + 1)]
        spread = median(r.all_dead - r.first_dead for r in runs)
        false_positives = sum(r.false_positives for r in runs)
        failed |= false_positives > 0 or any(r.all_dead == float("inf") for r in runs)
        click.echo(
            f"{size:>6} {math.log2(size):>7.1f} {median(r.first_suspect for r in runs):>10.1f} "
            f"{median(r.first_dead for r in runs):>8.1f} "
            f"{median(r.all_dead for r in runs):>9.1f} {spread:>7.1f} "
            f"{median(r.messages_per_node_per_period for r in runs):>17.2f} "
            f"{false_positives:>7}"
        )
    click.echo("(periods after the kill; spread = dead@all - dead@1, the dissemination)")
    if failed:
        raise SystemExit(1)


# The keys a node's TOML file may hold: the long option names, with - or _.
CONFIG_KEYS = {
    "id": "node_id", "data-dir": "data_dir", "resp": "resp", "http": "http",
    "member": "members", "members": "members", "n": "n", "durability": "durability",
    "password": "password", "consistency": "consistency", "join": "join",
    "region-delay": "region_delays", "cluster-secret-file": "cluster_secret_file",
    "metrics-open": "metrics_open", "users-file": "users_file", "maxclients": "maxclients",
    "client-query-buffer-limit": "query_buffer_limit",
    "client-output-buffer-limit": "output_buffer_limit",
    "tls-cert-file": "tls_cert_file", "tls-key-file": "tls_key_file",
    "tls-ca-cert-file": "tls_ca_cert_file", "tls-clients": "tls_clients",
    "tls-cluster": "tls_cluster", "log-format": "log_format", "listen": "listen",
}  # fmt: skip


def load_config(ctx: click.Context, param: click.Parameter, path: Path | None) -> None:
    """Read a TOML file into the command's defaults: flags and EVENTUAL_NODE_* win over it."""
    if path is None:
        return
    try:
        with path.open("rb") as file:
            data = tomllib.load(file)
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise click.BadParameter(f"cannot read {path}: {error}", ctx, param) from None
    defaults = {}
    for key, value in data.items():
        name = CONFIG_KEYS.get(key.replace("_", "-"))
        if name is None:
            known = ", ".join(sorted(k for k in CONFIG_KEYS if k != "member"))
            raise click.BadParameter(
                f"unknown setting {key!r} in {path}; known: {known}", ctx, param
            )
        if name == "members" and not (
            isinstance(value, list) and all(isinstance(v, str) for v in value)
        ):
            raise click.BadParameter(
                f"{key} in {path} must be a list of NODE=REGION[/ZONE]@HOST:PORT", ctx, param
            )
        defaults[name] = value
    ctx.default_map = {**(ctx.default_map or {}), **defaults}


@main.command()
@click.option(
    "--config",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    callback=load_config,
    is_eager=True,
    expose_value=False,
    help="A TOML file of these settings (keys: id, data-dir, resp, http, members, n, ...).",
)
@click.option(
    "--id",
    "node_id",
    envvar="EVENTUAL_NODE_ID",
    required=True,
    help="This node's name; one of the --member names.",
)
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path),
    required=True,
    help="Where the node keeps its data.",
)
@click.option(
    "--resp", "resp", default="127.0.0.1:6379", show_default=True, help="Redis protocol address."
)
@click.option("--http", "http", default=None, help="HTTP API address, HOST:PORT (off if absent).")
@click.option(
    "--member",
    "members",
    multiple=True,
    required=True,
    help="A member, NODE=REGION[/ZONE]@HOST:PORT (internode address); one per node, this "
    "one too. Replicas go to distinct regions first, then distinct zones.",
)
@click.option(
    "--n", "n", type=click.IntRange(1), default=3, show_default=True, help="Replicas per key."
)
@click.option(
    "--durability",
    type=click.Choice(["fsync", "os", "none"]),
    default="fsync",
    show_default=True,
    help=DURABILITY_HELP,
)
@click.option(
    "--password",
    default=None,
    help="Require it of clients: AUTH on the Redis port, a bearer token or basic auth on HTTP.",
)
@click.option(
    "--metrics-open",
    is_flag=True,
    help="Serve /metrics without the password (for a scraper that has none).",
)
@click.option(
    "--users-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="A TOML file of users with a role each (read-only, read-write, admin) and a "
    "password or its SHA-256: [users.NAME] role = ..., password-sha256 = ... "
    "(docs/security.md). --password is the admin user 'default'.",
)
@click.option(
    "--maxclients",
    type=click.IntRange(1),
    default=MAXCLIENTS,
    show_default=True,
    help="Redis clients at once; more are refused. Lowered to fit the open-files limit.",
)
@click.option(
    "--client-query-buffer-limit",
    "query_buffer_limit",
    type=click.IntRange(1024),
    default=QUERY_BUFFER_BYTES,
    show_default=True,
    help="Bytes of one incomplete Redis command; a client sending more is closed.",
)
@click.option(
    "--client-output-buffer-limit",
    "output_buffer_limit",
    type=click.IntRange(1024),
    default=OUTPUT_BUFFER_BYTES,
    show_default=True,
    help="Bytes of replies a Redis client has not read; past it the client is closed "
    "(reading its commands pauses long before, at 1 MiB).",
)
@click.option(
    "--tls-cert-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="This node's TLS certificate (PEM); with --tls-key-file, TLS is on for the Redis "
    "and HTTP ports (unless --no-tls-clients).",
)
@click.option(
    "--tls-key-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="The private key of --tls-cert-file (PEM).",
)
@click.option(
    "--tls-ca-cert-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="The CA that signs the members' certificates (for --tls-cluster).",
)
@click.option(
    "--tls-clients/--no-tls-clients",
    default=True,
    show_default=True,
    help="TLS on the Redis and HTTP ports, when a certificate is given.",
)
@click.option(
    "--tls-cluster",
    is_flag=True,
    help="TLS on the internode port too (every member must have it on).",
)
@click.option(
    "--cluster-secret-file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="A file holding the cluster secret (16 to 4096 bytes), which every internode "
    "connection must prove it holds; else $EVENTUAL_CLUSTER_SECRET. Without either, "
    "the internode port admits loopback peers only.",
)
@click.option(
    "--join",
    default=None,
    metavar="HOST:PORT",
    help="Join a running cluster through this member's internode address; --member then "
    "names this node only. It takes its share of partitions once it has pulled them.",
)
@click.option(
    "--listen",
    default=None,
    metavar="HOST:PORT",
    help="Where the internode port listens, when not at this node's --member address (which "
    "the others dial): 0.0.0.0:9001 in a container or behind NAT.",
)
@click.option(
    "--region-delay",
    "region_delays",
    multiple=True,
    metavar="REGION=MS",
    help="Hold messages to the members of REGION for MS milliseconds (repeatable): "
    "distance between regions, simulated in the transport.",
)
@click.option(
    "--fault-injection",
    is_flag=True,
    help="Serve POST /debug/partition, which cuts this node off from named peers: for "
    "tests of partitions on real processes. Never in production.",
)
@click.option(
    "--clock-skew-ms",
    type=click.IntRange(-3_600_000, 3_600_000),
    default=0,
    help="Offset this node's clock by MS milliseconds, as if its machine's were wrong: for "
    "fault tests (docs/faults.md). Never in production.",
)
@CONSISTENCY_OPTION
@LOG_FORMAT_OPTION
def node(
    node_id: str,
    data_dir: Path,
    resp: str,
    members: tuple[str, ...],
    n: int,
    durability: str,
    password: str | None,
    metrics_open: bool,
    users_file: Path | None,
    maxclients: int,
    query_buffer_limit: int,
    output_buffer_limit: int,
    tls_cert_file: Path | None,
    tls_key_file: Path | None,
    tls_ca_cert_file: Path | None,
    tls_clients: bool,
    tls_cluster: bool,
    cluster_secret_file: Path | None,
    join: str | None,
    listen: str | None,
    region_delays: tuple[str, ...],
    fault_injection: bool,
    clock_skew_ms: int,
    http: str | None,
    consistency: str,
    log_format: str,
) -> None:
    """Run one node.

    Settings come from flags, then EVENTUAL_NODE_<OPTION> variables (EVENTUAL_NODE_ID,
    EVENTUAL_NODE_DATA_DIR, EVENTUAL_NODE_MEMBERS space-separated, ...), then --config.
    A node restarted later remembers the cluster it last knew (its data directory).
    """
    from eventual.server.limits import ClientLimits  # noqa: PLC0415
    from eventual.server.main import MemberSpec, ServerConfig, run_node  # noqa: PLC0415
    from eventual.server.peer_auth import load_secret  # noqa: PLC0415
    from eventual.server.runtime import Address  # noqa: PLC0415
    from eventual.server.users import Users  # noqa: PLC0415

    try:
        secret = load_secret(cluster_secret_file)
    except OSError as error:
        raise click.UsageError(f"cannot read the cluster secret: {error}") from None
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    try:
        config = ServerConfig(
            node=node_id,
            data_dir=data_dir,
            resp=Address.parse(resp),
            members=tuple(MemberSpec.parse(m) for m in members),
            n=n,
            durability=durability,
            users=Users.build(password, users_file),
            cluster_secret=secret,
            http=Address.parse(http) if http else None,
            consistency=Level.parse(consistency),
            join=Address.parse(join) if join else None,
            listen=Address.parse(listen) if listen else None,
            region_delay_ms=tuple(_region_delay(text) for text in region_delays),
            fault_injection=fault_injection,
            metrics_open=metrics_open,
            limits=ClientLimits(
                maxclients=maxclients,
                query_buffer_bytes=query_buffer_limit,
                output_buffer_bytes=output_buffer_limit,
            ),
            tls=_tls(tls_cert_file, tls_key_file, tls_ca_cert_file, tls_clients, tls_cluster),
            clock_skew_ms=clock_skew_ms,
            log_format=log_format,
        )
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    run_node(config)


def _tls(
    cert: Path | None, key: Path | None, ca: Path | None, clients: bool, cluster: bool
) -> TlsConfig | None:
    from eventual.server.main import TlsConfig  # noqa: PLC0415

    if cert is None and key is None:
        if cluster or ca is not None:
            raise ValueError("TLS needs --tls-cert-file and --tls-key-file")
        return None
    if cert is None or key is None:
        raise ValueError("give both --tls-cert-file and --tls-key-file")
    if not (clients or cluster):
        raise ValueError("a TLS certificate is given but --no-tls-clients and no --tls-cluster")
    return TlsConfig(cert, key, ca, clients=clients, cluster=cluster)


def _region_delay(text: str) -> tuple[str, int]:
    region, _, ms = text.partition("=")
    if not region or not ms.isdigit() or int(ms) > REGION_DELAY_MS_MAX:
        raise ValueError(
            f"--region-delay wants REGION=MS with MS in [0, {REGION_DELAY_MS_MAX}], got {text!r}"
        )
    return region, int(ms)


REGION_DELAY_MS_MAX = 10_000  # past this a peer looks dead to the failure detector anyway


def port_option(name: str, default: int, text: str) -> Callable[[F], F]:
    return click.option(
        name, type=click.IntRange(1, 65535), default=default, show_default=True, help=text
    )


@main.command()
@click.option("--nodes", type=click.IntRange(1, 64), default=3, show_default=True)
@click.option(
    "--regions",
    type=click.IntRange(1),
    default=1,
    show_default=True,
    help="Spread the nodes over this many regions.",
)
@port_option("--resp-port", 7001, "Node i listens for Redis clients on this port + i.")
@port_option("--http-port", 8001, "Node i serves the HTTP API on this port + i.")
@port_option("--peer-port", 9001, "Node i listens for other nodes on this port + i.")
@click.option(
    "--data-dir", type=click.Path(path_type=Path), default=Path("eventual-dev"), show_default=True
)
@click.option(
    "--durability",
    type=click.Choice(["fsync", "os", "none"]),
    default="fsync",
    show_default=True,
    help=DURABILITY_HELP,
)
@CONSISTENCY_OPTION
@click.option(
    "--n",
    "replicas",
    type=click.IntRange(1),
    default=3,
    show_default=True,
    help="Replicas per key (at most --nodes).",
)
@click.option(
    "--password",
    default=None,
    help="Every node requires it of clients (AUTH on Redis, bearer or basic auth on HTTP).",
)
@click.option(
    "--region-latency",
    type=click.IntRange(0, REGION_DELAY_MS_MAX),
    default=0,
    show_default=True,
    help="Milliseconds each message between nodes of different regions is held (with "
    "--regions > 1): replication lag you can watch.",
)
@click.option(
    "--fault-injection", is_flag=True, help="Each node serves POST /debug/partition (tests)."
)
@click.option(
    "--restart",
    is_flag=True,
    help="Restart a node that dies (at most 3 times a minute each). Without it a dead node "
    "stays down, for watching hints and repair, and dev prints the command that restarts it.",
)
@LOG_FORMAT_OPTION
def dev(
    nodes: int,
    regions: int,
    resp_port: int,
    http_port: int,
    peer_port: int,
    data_dir: Path,
    durability: str,
    consistency: str,
    replicas: int,
    password: str | None,
    region_latency: int,
    fault_injection: bool,
    restart: bool,
    log_format: str,
) -> None:
    """Run a local cluster on this machine until Ctrl-C; print each node's addresses.

    Starts nothing, and exits 1 with one line, if a port it needs is taken. A node that
    dies is reported with the command that restarts it, and restarted with --restart; the
    others keep serving. Ctrl-C or SIGTERM stops every node cleanly.

    Node options (--durability, --consistency, --n, --password, --log-format) apply to
    every node.
    The nodes share a cluster secret, made once in DATA_DIR/cluster.secret: a node you
    start by hand to join them needs --cluster-secret-file pointing there."""
    from eventual.server.main import run_dev  # noqa: PLC0415

    options = ["--n", str(min(replicas, nodes)), "--log-format", log_format]
    if password is not None:
        options += ["--password", password]
    if fault_injection:
        options.append("--fault-injection")
    code = run_dev(
        nodes,
        resp_port,
        http_port,
        peer_port,
        data_dir,
        durability,
        regions,
        consistency.upper(),
        extra_options=options,
        region_latency_ms=region_latency,
        restart=restart,
    )
    raise SystemExit(code)


URL_OPTION = click.option(
    "--url", default="http://127.0.0.1:8001", show_default=True, help="Any node's HTTP address."
)
LEVEL_OPTION = click.option("--consistency", default=None, help="ONE, QUORUM (default), ALL, ...")


def _client(url: str) -> Client:
    return Client(url, retries=2)


@main.command()
@click.argument("key")
@URL_OPTION
@LEVEL_OPTION
def get(key: str, url: str, consistency: str | None) -> None:
    """Print an object; with siblings, print each and the context to resolve them with."""
    try:
        read = _client(url).get(key, consistency=consistency)
    except ClientError as error:
        raise click.ClickException(str(error)) from None
    if not read.found:
        click.echo("(absent)", err=True)
        raise SystemExit(1)
    if read.siblings:
        click.echo(f"{len(read.siblings)} siblings; context {read.context}")
        for sibling in read.siblings:
            click.echo(f"- ({sibling.content_type}) {sibling.value.decode(errors='replace')}")
    else:
        assert read.value is not None
        click.echo(read.value.decode(errors="replace"))


@main.command()
@click.argument("key")
@click.argument("value")
@click.option("--context", default=None, help="The context of the read this write replaces.")
@URL_OPTION
@LEVEL_OPTION
def put(key: str, value: str, context: str | None, url: str, consistency: str | None) -> None:
    """Write an object (without --context: a blind write, a sibling of what is there)."""
    try:
        new_context = _client(url).put(
            key, value.encode(), context=context, content_type="text/plain", consistency=consistency
        )
    except ClientError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"ok; context {new_context}")


@main.command()
@click.argument("key")
@click.option("--context", default=None, help="Delete what that read saw (default: all seen).")
@URL_OPTION
@LEVEL_OPTION
def delete(key: str, context: str | None, url: str, consistency: str | None) -> None:
    """Delete an object."""
    try:
        _client(url).delete(key, context=context, consistency=consistency)
    except ClientError as error:
        raise click.ClickException(str(error)) from None
    click.echo("ok")


@main.command()
@click.argument("key")
@click.argument("amount", type=int, default=1)
@URL_OPTION
def incr(key: str, amount: int, url: str) -> None:
    """Add AMOUNT (default 1) to a counter; print the value the coordinator sees."""
    try:
        click.echo(_client(url).incr(key, amount))
    except ClientError as error:
        raise click.ClickException(str(error)) from None


@main.command()
@URL_OPTION
@click.option(
    "--wait", is_flag=True, help="Wait until no partition is left to move, with a progress bar."
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0),
    default=600.0,
    show_default=True,
    help="Seconds --wait waits at most.",
)
def status(url: str, wait: bool, timeout: float) -> None:
    """Show the cluster as one node sees it: members, their state, handoffs, hints held.

    With --wait, first wait until no member has partitions left to pull or hand off (a
    progress bar on a terminal), then show it; exit 1 if that takes longer than --timeout."""
    client = _client(url)
    try:
        if wait:
            _wait_for_handoffs(client, timeout)
        state = client.cluster()
    except ClientError as error:
        raise click.ClickException(str(error)) from None
    click.echo(
        f"node {state['node']} (version {state['version']}); n={state['n']}, "
        f"{state['partitions']} partitions; healthy: {state['healthy']}"
        + ("; ring changing (handoff in progress)" if state["in_transition"] else "")
    )
    click.echo(f"  {'member':<10} {'region':<12} {'membership':<10} {'detector':<9} partitions")
    for member in state["members"]:
        me = " (this node)" if member["self"] else ""
        click.echo(
            f"  {member['node']:<10} {member['region']:<12} {member['membership']:<10} "
            f"{member['status']:<9} {member['partitions']:>10}{me}"
        )
    handoff = state["handoff"]
    click.echo(
        f"this node: {handoff['partitions_to_pull']} partition pulls and "
        f"{handoff['partitions_to_hand_off']} handoffs to go; hints held: "
        f"{state['hints_held']}; keys stored here: {state['keys_stored']}"
    )


def _moving(client: Client) -> int:
    """Partitions every member still has to pull or hand off (the console's view)."""
    view = client.console_view()
    left = 0
    for answer in view["statuses"].values():
        handoff = answer.get("handoff") or {}
        left += handoff.get("partitions_to_pull", 0) + handoff.get("partitions_to_hand_off", 0)
    return left + (1 if view["in_transition"] and not left else 0)


def _wait_for_handoffs(client: Client, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    first = _moving(client)
    with progress_bar(first, "handoff") as bar:
        shown = 0  # the bar only moves forward, whatever new moves a join adds
        while (left := _moving(client)) > 0:
            if time.monotonic() > deadline:
                raise click.ClickException(f"{left} partitions still moving after {timeout} s")
            moved = min(first, max(shown, first - left))
            bar.update(moved - shown)
            shown = moved
            time.sleep(0.5)
        bar.update(first - shown)


@main.group()
def inventory() -> None:
    """The global inventory service (docs/inventory.md)."""


@inventory.command("serve")
@click.option(
    "--region",
    "regions",
    multiple=True,
    required=True,
    metavar="NAME=URL",
    help="A region and the HTTP address of an Eventual node in it (repeat per region).",
)
@click.option("--listen", default="127.0.0.1:8100", show_default=True, help="HOST:PORT.")
def inventory_serve(regions: tuple[str, ...], listen: str) -> None:
    """Serve the inventory API: restock, sell, reserve and confirm, stock per region; it
    rebalances rights and returns expired reservations in the background."""
    from aiohttp import web  # noqa: PLC0415

    from eventual.inventory import Inventory  # noqa: PLC0415
    from eventual.inventory.api import build_inventory_app  # noqa: PLC0415
    from eventual.server.runtime import Address  # noqa: PLC0415

    urls = {}
    for text in regions:
        name, _, url = text.partition("=")
        if not name or not url.startswith("http"):
            raise click.BadParameter(f"expected NAME=URL, got {text!r}", param_hint="--region")
        urls[name] = url
    try:
        address = Address.parse(listen)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--listen") from None
    web.run_app(
        build_inventory_app(Inventory(urls)),
        host=address.host,
        port=address.port,
        print=lambda _: click.echo(f"inventory service on http://{address}"),
    )


SERVICE_OPTION = click.option(
    "--service",
    default="http://127.0.0.1:8100",
    show_default=True,
    help="The inventory service (eventual inventory serve).",
)
REGION_ARGUMENT = click.option("--region", required=True, help="Where it happens.")


def _service(method: str, url: str, body: dict[str, Any] | None = None) -> Any:
    import http.client  # noqa: PLC0415
    import json  # noqa: PLC0415
    import urllib.error  # noqa: PLC0415
    import urllib.request  # noqa: PLC0415

    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as error:
        if error.code == 409:  # refused: a normal answer, not a failure of the command
            return json.loads(error.read())
        text = error.read().decode(errors="replace")
        raise click.ClickException(f"{error.code}: {text}") from None
    except urllib.error.URLError as error:
        raise click.ClickException(f"cannot reach {url}: {error.reason}") from None
    except (OSError, http.client.HTTPException, ValueError) as error:  # not HTTP, not JSON
        raise click.ClickException(
            f"no JSON answer from {url} ({type(error).__name__}: {error}): is it the "
            "service's address?"
        ) from None


@inventory.command("add")
@click.argument("sku")
@click.argument("name")
@REGION_ARGUMENT
@SERVICE_OPTION
def inventory_add(sku: str, name: str, region: str, service: str) -> None:
    """Add product SKU, called NAME, to the catalog."""
    _service("PUT", f"{service}/products/{sku}", {"region": region, "name": name})
    click.echo(f"{sku}: {name}")


@inventory.command("restock")
@click.argument("sku")
@click.argument("quantity", type=click.IntRange(1))
@REGION_ARGUMENT
@SERVICE_OPTION
def inventory_restock(sku: str, quantity: int, region: str, service: str) -> None:
    """Put QUANTITY units of SKU in stock in a region (the rights are the region's)."""
    found = _service(
        "POST", f"{service}/products/{sku}/restock", {"region": region, "quantity": quantity}
    )
    click.echo(f"{sku}: {found['value']} in stock")


@inventory.command("sell")
@click.argument("sku")
@click.argument("quantity", type=click.IntRange(1), default=1)
@REGION_ARGUMENT
@SERVICE_OPTION
def inventory_sell(sku: str, quantity: int, region: str, service: str) -> None:
    """Sell QUANTITY units of SKU in a region; exit status 1 if refused."""
    found = _service(
        "POST", f"{service}/products/{sku}/sell", {"region": region, "quantity": quantity}
    )
    click.echo("sold" if found["sold"] else "refused: no stock this region can sell")
    if not found["sold"]:
        raise SystemExit(1)


@inventory.command("stock")
@click.argument("sku")
@REGION_ARGUMENT
@click.option("--consistency", default="ONE", show_default=True)
@SERVICE_OPTION
def inventory_stock(sku: str, region: str, consistency: str, service: str) -> None:
    """Show SKU's stock as a region reads it, and the rights each region holds."""
    found = _service("GET", f"{service}/products/{sku}?region={region}&consistency={consistency}")
    rights = ", ".join(f"{r} {n}" for r, n in sorted(found["rights"].items()))
    click.echo(f"{sku}: {found['value']} (rights: {rights})")


@main.group()
def cluster() -> None:
    """Change the cluster's membership (start new nodes with `eventual node --join`)."""


@cluster.command("leave")
@click.argument("node", required=False)
@URL_OPTION
def cluster_leave(node: str | None, url: str) -> None:
    """Make NODE (default: the node at --url) leave; its partitions move to the others and
    it stops once they have them."""
    client = _client(url)
    try:
        name = node or str(client.cluster()["node"])
        click.echo(f"{name}: {client.leave(name)}")
    except ClientError as error:
        raise click.ClickException(str(error)) from None


@cluster.command("replace")
@click.argument("old")
@click.argument("new")
@URL_OPTION
def cluster_replace(old: str, new: str, url: str) -> None:
    """Give OLD's place (usually a dead node) to NEW, already started with --join."""
    try:
        click.echo(f"{old}: {_client(url).replace(old, new)}")
    except ClientError as error:
        raise click.ClickException(str(error)) from None
