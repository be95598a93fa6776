"""Build hook: compile the hot path with mypyc where a C compiler and Python's headers exist.

One source, two builds (docs/performance.md, "The compiled build"). Building a wheel, or
installing editable (``pip install -e .``), compiles the modules in ``COMPILED`` with mypyc
into one group of extension modules; where there is no C compiler or no ``Python.h``, or the
compile fails, the package stays pure Python and the build says so in one line. At run time
``eventual.BUILD`` says which build a process runs (``eventual --version``, ``INFO server``).

- A wheel carries the compiled modules (and is tagged for this interpreter and platform).
- An editable install puts them next to their sources in ``src/eventual``; the package
  loads its sources instead, all of them, when one of them is newer than its build
  (``eventual/__init__.py``), so an edit is never shadowed by an old build.
"""

from __future__ import annotations

import os
import shutil
import sysconfig
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface
from mypyc.build import mypycify
from setuptools import Distribution

# The modules compiled, relative to src/eventual: the data path, from the codec to the node,
# and the request path around it (the Redis protocol, the runtime, the internode codec). Not
# the HTTP API, the CLI or the simulator's driver: their time goes to I/O and to libraries
# that are compiled already (compiling sim/ was tried: it made the simulator no faster).
COMPILED = [
    "codec.py",
    "lattice.py",
    "clocks/*.py",
    "crdt/*.py",
    "core/*.py",
    "server/sqlite_store.py",
    "server/resp.py",
    "server/runtime.py",
    "server/wire.py",
]
GROUP = "eventual._native"  # the shared library every compiled module calls into


def cannot_compile() -> str | None:
    """Why this machine cannot build the compiled modules, or None if it can."""
    # The compiler setuptools will call: $CC if set, else the one Python was built with.
    compiler = (os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(compiler) is None:
        return f"no C compiler ({compiler})"
    include = sysconfig.get_paths()["include"]
    if not Path(include, "Python.h").exists():
        return f"no Python headers in {include} (Debian: python3-dev)"
    return None


def compiled_files(package: Path) -> list[Path]:
    """Extension modules a previous build left in the source tree."""
    suffixes = ("*.so", "*.pyd")
    return [p for s in suffixes for p in package.rglob(s)]


def compile_modules(root: Path, work: Path) -> dict[Path, str]:
    """Compile; each built extension -> its path inside the wheel."""
    package = root / "src" / "eventual"
    sources = sorted(
        str(path.relative_to(root))
        for pattern in COMPILED
        for path in package.glob(pattern)
        if path.name != "__init__.py"
    )
    shutil.rmtree(work, ignore_errors=True)
    cwd = os.getcwd()
    os.chdir(root)  # mypy names modules by their place under src/
    try:
        extensions = mypycify(
            ["--config-file", "pyproject.toml", *sources],
            opt_level="3",
            group_name=GROUP,
            target_dir=str(work / "c"),
        )
        distribution = Distribution({"name": "eventual", "ext_modules": extensions})
        build = distribution.get_command_obj("build_ext")
        build.build_lib = str(work / "lib")
        build.build_temp = str(work / "temp")
        build.parallel = os.cpu_count() or 1
        build.ensure_finalized()
        build.run()
        built = {}
        for extension in extensions:
            relative = build.get_ext_filename(extension.name)
            built[work / "lib" / relative] = relative
        return built
    finally:
        os.chdir(cwd)


class CompiledBuild(BuildHookInterface):
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel":
            return
        root = Path(self.root)
        package = root / "src" / "eventual"
        for old in compiled_files(package):  # never leave an old build beside new sources
            old.unlink()
        reason = cannot_compile()
        if os.environ.get("EVENTUAL_PURE", "") not in ("", "0"):
            reason = "EVENTUAL_PURE is set"
        built: dict[Path, str] = {}
        if reason is None:
            try:
                built = compile_modules(root, root / "build" / "mypyc")
            except (Exception, SystemExit) as error:  # mypyc exits on a type error: not ours to end
                reason = f"compiling failed: {type(error).__name__}: {error}"
        if reason is not None:
            self.app.display_warning(f"eventual: installing the pure-Python build: {reason}")
            return
        self.app.display_info(f"eventual: compiled {len(built) - 1} modules with mypyc")
        if version == "editable":
            for path, relative in built.items():
                shutil.copy2(path, root / "src" / relative)
        else:
            for path, relative in built.items():
                build_data["force_include"][str(path)] = relative
            build_data["pure_python"] = False
            build_data["infer_tag"] = True
