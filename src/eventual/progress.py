"""Progress of long commands (``sim --seeds``, ``status --wait``, the benchmarks): a bar on
stderr when it is a terminal, nothing otherwise, so pipes and CI logs get only results."""

from __future__ import annotations

import sys
from typing import Any

import click

__all__ = ["progress_bar"]


def progress_bar(length: int, label: str) -> Any:
    """A ``click.progressbar`` over ``length`` steps (a context manager; ``update(n)``)."""
    return click.progressbar(
        length=length, label=label, file=sys.stderr, hidden=not sys.stderr.isatty()
    )
