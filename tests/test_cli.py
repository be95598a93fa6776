"""The command line and the README's examples."""

import os
import re
import socket
import subprocess
import sys
import threading
from pathlib import Path

from click.testing import CliRunner

import eventual
from eventual import __version__
from eventual.cli import main

README = Path(__file__).parent.parent / "README.md"


def test_version_and_help() -> None:
    runner = CliRunner()
    version = runner.invoke(main, ["--version"]).output.strip()
    assert version == f"eventual, version {__version__}; build: {eventual.BUILD}"
    # Which build runs is decided at import: the pure one when asked for.
    pure = subprocess.run(
        [sys.executable, "-m", "eventual", "--version"],
        env=dict(os.environ, EVENTUAL_PURE="1"),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert pure.strip().endswith(
        "build: pure" if not eventual.COMPILED else "(EVENTUAL_PURE is set)"
    )
    help_text = runner.invoke(main, ["--help"]).output
    assert "demo" in help_text


def test_demo_converges_and_loses_nothing() -> None:
    result = CliRunner().invoke(main, ["demo", "--bytes"])
    assert result.exit_code == 0, result.output
    assert "Converged: every replica of every key holds identical bytes." in result.output
    assert "9 widgets sold of 10" in result.output
    assert "identical: False" not in result.output


def test_readme_python_examples_run() -> None:
    """Blocks fenced as ``python`` run standalone; ``py`` blocks need a running cluster."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.DOTALL)
    assert blocks
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})


def test_readme_quick_start_is_what_ci_runs() -> None:
    readme = README.read_text()
    ci = (README.parent / ".ci" / "run").read_text()
    test_command = next(line for line in ci.splitlines() if line.startswith("python3 -m venv"))
    assert test_command in readme


def test_a_node_reads_its_settings_from_a_toml_file(tmp_path: Path) -> None:
    config = tmp_path / "node.toml"
    config.write_text('id = "n9"\ndata_dir = "data"\nmembers = ["n1=r1@127.0.0.1:9001"]\nn = 1\n')
    result = CliRunner().invoke(main, ["node", "--config", str(config)])
    # The file was read: the id and members came from it, and they do not fit together.
    assert result.exit_code == 2 and "this node (n9) must be one of the members" in result.output
    config.write_text('id = "n1"\nspeed = "fast"\n')
    result = CliRunner().invoke(main, ["node", "--config", str(config)])
    assert result.exit_code == 2 and "unknown setting 'speed'" in result.output


def test_the_inventory_demo_shows_a_stale_read_and_balances_its_books() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "eventual", "demo", "inventory"],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "(stale: the sale is on its way)" in done.stdout  # shown, from real reads
    assert "while cut off, then refused" in done.stdout
    assert "books balanced" in done.stdout

    def count(pattern: str) -> int:
        found = re.search(pattern, done.stdout)
        assert found is not None, (pattern, done.stdout)
        return int(found.group(1))

    # The narration tells every sale the books count: one lamp, then the chairs.
    told = 1 + sum(
        count(pattern)
        for pattern in (
            r"AP-SOUTH sold (\d+) chairs while cut off",
            r"AP-SOUTH sells (\d+) chairs, ",
            r"AP-SOUTH sells (\d+) more chairs",
        )
    )
    assert told == count(r"put in \d+, sold (\d+),")
    # The staleness the cluster measured: a far region sees no write of the story at once.
    assert re.search(r"US-EAST -> EU-WEST: \d+ copies, 0% visible", done.stdout), done.stdout


def test_a_violations_replay_hint_carries_the_options_that_shaped_the_run() -> None:
    # Without anti-entropy, crashes and partitions leave replicas apart: violations whose
    # replay must run the same seed the same way, not the default run.
    runner = CliRunner()
    options = ["--faults", "crash,partition", "--no-anti-entropy", "--workload", "small"]
    found = runner.invoke(main, ["sim", "--seeds", "1", "--jobs", "1", *options])
    assert found.exit_code == 1, found.output
    replay = re.search(r"replay: eventual (sim .*)", found.output)
    assert replay is not None, found.output
    assert set(options) <= set(replay.group(1).split())
    again = runner.invoke(main, replay.group(1).split())
    assert again.exit_code == 1
    first = found.output.split("\nVIOLATION", 1)[1].split("\n", 1)[0]
    assert first in again.output, "the replay found another violation (or none)"


def test_status_pointed_at_a_wrong_port_says_so_in_one_line(tmp_path: Path) -> None:
    # A Redis port answers an HTTP request with a Redis error line: not a traceback.
    with socket.socket() as fake:
        fake.bind(("127.0.0.1", 0))
        fake.listen()
        port = fake.getsockname()[1]

        def answer() -> None:
            connection, _ = fake.accept()
            with connection:
                connection.recv(4096)
                connection.sendall(b"-ERR wrong number of arguments for 'get' command\r\n")

        server = threading.Thread(target=answer, daemon=True)
        server.start()
        said = CliRunner().invoke(main, ["status", "--url", f"http://127.0.0.1:{port}"])
        server.join(timeout=10)
    assert said.exit_code == 1
    assert said.output.startswith(f"Error: http://127.0.0.1:{port} does not answer HTTP")
    assert "Redis or internode port" in said.output and "Traceback" not in said.output
    # Nobody there: the reason, without a status number no server gave.
    refused = CliRunner().invoke(main, ["status", "--url", f"http://127.0.0.1:{port}"])
    assert refused.exit_code == 1
    assert refused.output.startswith(f"Error: cannot reach http://127.0.0.1:{port}:")
