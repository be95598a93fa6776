"""The ``eventual`` command line."""

from __future__ import annotations

import click

from eventual import __version__
from eventual.demo import run_demo


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
