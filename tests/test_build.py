"""The two builds (docs/performance.md, "The compiled build"): which one a process runs, and
that an edited source is never shadowed by an older compiled module."""

import importlib.machinery
import os
import subprocess
import sys
from pathlib import Path

import pytest

import eventual


def module_file(env: dict[str, str]) -> str:
    probe = "import eventual, eventual.core.node as n; print(eventual.BUILD); print(n.__file__)"
    out = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True
    ).stdout
    return out.splitlines()[1]


def test_eventual_pure_loads_the_sources() -> None:
    assert module_file(dict(os.environ, EVENTUAL_PURE="1")).endswith(".py")


@pytest.mark.skipif(not eventual.COMPILED, reason=f"needs the compiled build ({eventual.BUILD})")
def test_the_compiled_build_loads_its_extension_modules() -> None:
    env = {k: v for k, v in os.environ.items() if k != "EVENTUAL_PURE"}
    assert module_file(env).endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))
    assert "eventual.core.node" in eventual.COMPILED


def test_a_source_newer_than_its_build_is_stale(tmp_path: Path) -> None:
    suffix = importlib.machinery.EXTENSION_SUFFIXES[0]
    fresh, edited = tmp_path / "fresh.py", tmp_path / "edited.py"
    for source in (fresh, edited):
        source.write_text("x = 1\n")
        built = source.with_suffix(suffix)
        built.write_bytes(b"")
        os.utime(built, ns=(2_000_000_000_000_000_000, 2_000_000_000_000_000_000))
    os.utime(edited, ns=(3_000_000_000_000_000_000, 3_000_000_000_000_000_000))
    modules = {"pkg.fresh": str(fresh), "pkg.edited": str(edited)}
    assert eventual._stale(modules) == ["pkg.edited"]
