"""clocks/, crdt/ and core/ do no I/O: they import none of asyncio, socket, time, random or
threading (nor the other modules that read clocks or talk to the outside), directly or
through what they import, so the simulator can drive them deterministically."""

import ast
import subprocess
import sys
from pathlib import Path

import eventual

FORBIDDEN = {
    "asyncio",
    "socket",
    "time",
    "random",
    "threading",
    # the same hazards under other names
    "select",
    "selectors",
    "subprocess",
    "multiprocessing",
    "secrets",
    "datetime",
    "uuid",
    "concurrent",
    "ssl",
    "http",
    "urllib",
}
PACKAGE = Path(eventual.__file__).parent
PURE = [
    PACKAGE / "clocks",
    PACKAGE / "crdt",
    PACKAGE / "core",
    PACKAGE / "lattice.py",
    PACKAGE / "codec.py",
]


def forbidden_imports(path: Path) -> list[str]:
    """Every import (or dynamic import) of a forbidden module in one source file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name | ast.Attribute):
            called = node.func.id if isinstance(node.func, ast.Name) else node.func.attr
            if called in {"__import__", "import_module"} and node.args:
                arg = node.args[0]
                names = [arg.value if isinstance(arg, ast.Constant) else "<dynamic>"]
        found += [
            f"{path.name}:{node.lineno} imports {name}"
            for name in names
            if name.split(".")[0] in FORBIDDEN or name == "<dynamic>"
        ]
    return found


def pure_sources() -> list[Path]:
    files: list[Path] = []
    for place in PURE:
        files += sorted(place.rglob("*.py")) if place.is_dir() else [place]
    return files


def test_pure_packages_import_nothing_forbidden() -> None:
    sources = pure_sources()
    assert len(sources) >= 10
    problems = [problem for path in sources for problem in forbidden_imports(path)]
    assert problems == []


# The interpreter imports time during start-up, and msgpack imports datetime for its
# Timestamp extension (never used here); the transitive check covers everything else, and the
# direct check above covers those two in our own code.
LOADED_BY_OTHERS = {"time", "datetime"}


def test_pure_packages_pull_in_nothing_forbidden_transitively() -> None:
    watched = sorted(FORBIDDEN - LOADED_BY_OTHERS)
    probe = (
        "import sys; import eventual.clocks, eventual.crdt, eventual.core; "
        f"print(sorted(m for m in {watched!r} if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_the_guard_catches_a_planted_import(tmp_path: Path) -> None:
    planted = tmp_path / "planted.py"
    planted.write_text(
        "import os\nfrom time import monotonic\nimport asyncio.events\n"
        "def f():\n    import random\n    return __import__('socket')\n"
    )
    problems = forbidden_imports(planted)
    assert [p.split(" imports ")[1] for p in problems] == [
        "time",
        "asyncio.events",
        "random",
        "socket",
    ]
