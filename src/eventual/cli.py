"""The ``eventual`` command line."""

from __future__ import annotations

import click

from eventual import __version__
from eventual.demo import run_demo
from eventual.sim import FAULTS, Faults, SimConfig
from eventual.sim.runner import run_seeds


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", "-V", prog_name="eventual")
def main() -> None:
    """Eventual: a leaderless, eventually consistent, replicated key-value store.

    Every node accepts reads and writes, even while the network is split; replicas
    converge when it heals, and concurrent writes are never silently lost.
    """


@main.command()
@click.option("--bytes", "show_bytes", is_flag=True, help="Also print each key's encoded size.")
def demo(show_bytes: bool) -> None:
    """Show the data types at work: three regions split apart, written to, healed.

    Objects keep concurrent writes as siblings, counters sum, sets keep concurrent adds,
    strings resolve by hybrid logical clock, and a bounded counter refuses sales beyond the
    rights a region holds. Exits non-zero if the replicas fail to converge.
    """
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
    as_json: bool,
) -> None:
    """Run the deterministic cluster simulator and its checkers.

    Each seed drives a cluster of real core nodes on a faulty virtual network through a
    fault phase under load, heals everything, and checks convergence, that no acknowledged
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
    )
    seeds = [seed] if seed is not None else list(range(first_seed, first_seed + seed_count))
    summary = run_seeds(template, seeds, jobs)
    if as_json:
        click.echo(summary.to_json())
    else:
        rate = summary.sim_seconds / max(summary.wall_seconds, 1e-9)
        faults_text = ", ".join(f"{k} {v}" for k, v in sorted(summary.faults_injected.items()))
        click.echo(f"seeds run:        {summary.seeds}")
        click.echo(f"operations:       {summary.ops_acked} acknowledged of {summary.ops_issued}")
        click.echo(f"faults injected:  {faults_text or 'none'}")
        click.echo(f"LWW losses:       {summary.lww_losses} (concurrent string writes, by design)")
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
            click.echo(f"  replay: eventual sim --seed {found['seed']}")
            for line in found["trace"]:
                click.echo(f"  | {line}")
    if summary.violations:
        raise SystemExit(1)
