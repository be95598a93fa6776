"""What ``docs/deploy.md`` hands a user, checked as far as this machine allows: the example
``node.toml`` starts a node; the systemd unit parses and starts the same command; the
Dockerfile's entrypoint and environment start a node here as a plain process (no container
runtime here); the Kubernetes manifests pass schema validation (kubernetes-validate) and the
pod's start script, run by ``sh`` with the pod's environment, starts a node too."""

from __future__ import annotations

import configparser
import contextlib
import json
import os
import re
import shlex
import socket
import sqlite3
import subprocess
import sys
import tomllib
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
import redis
import yaml

from realnodes import free_base_port, wait_until

ROOT = Path(__file__).parents[1]
DEPLOY = ROOT / "deploy"
EVENTUAL = [sys.executable, "-m", "eventual"]


def _secret(tmp_path: Path) -> Path:
    secret = tmp_path / "cluster.secret"
    secret.write_bytes(os.urandom(32))
    return secret


def _started(
    command: Sequence[str], env: dict[str, str], resp_port: int, **client: str
) -> Iterator[str]:
    """Run ``command``; once its Redis port answers (to ``client``'s credentials), yield
    its first log line; stop it."""
    process = subprocess.Popen(
        list(command), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        wait_until(lambda: redis.Redis(port=resp_port, socket_timeout=2, **client).ping(), 30)
        process.terminate()
        process.wait(timeout=20)
        assert process.stderr is not None
        yield process.stderr.readline()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_the_example_node_toml_starts_a_node(tmp_path: Path) -> None:
    settings = tomllib.loads((DEPLOY / "node.toml").read_text())
    assert settings["id"] == "n1" and len(settings["members"]) == 3
    resp, http, peer = free_base_port(1), free_base_port(1), free_base_port(1)
    users = tmp_path / "users.toml"
    users.write_text('[users.ops]\nrole = "admin"\npassword = "a long password"\n')
    # The machine's addresses and paths change; every other setting is the file's own.
    command = [
        *EVENTUAL, "node", "--config", str(DEPLOY / "node.toml"),
        "--data-dir", str(tmp_path / "data"), "--resp", f"127.0.0.1:{resp}",
        "--http", f"127.0.0.1:{http}", "--member", f"n1=us-east/a@127.0.0.1:{peer}",
        "--n", "1", "--cluster-secret-file", str(_secret(tmp_path)),
        "--users-file", str(users),
    ]  # fmt: skip
    env = dict(os.environ)
    first = next(_started(command, env, resp, username="ops", password="a long password"))
    line = json.loads(first)  # log-format = "json" in the file
    assert line["node"] == "n1" and line["level"] in ("info", "warning")


def test_the_systemd_unit_parses_and_runs_the_node_with_its_config(tmp_path: Path) -> None:
    unit = configparser.ConfigParser(strict=True, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(DEPLOY / "eventual.service")
    assert set(unit.sections()) == {"Unit", "Service", "Install"}
    service = unit["Service"]
    exec_start = shlex.split(service["ExecStart"])
    assert exec_start[0] == "/opt/eventual/bin/eventual" and exec_start[1:3] == ["node", "--config"]
    assert service["KillSignal"] == "SIGTERM" and service["Restart"] == "on-failure"
    assert unit["Install"]["WantedBy"] == "multi-user.target"
    if Path("/usr/bin/systemd-analyze").exists():
        # systemd's own parser: the unit with this machine's executable and config in place.
        local = tmp_path / "eventual.service"
        text = (DEPLOY / "eventual.service").read_text()
        here = str(Path(sys.executable).parent / "eventual")
        text = text.replace("/opt/eventual/bin/eventual", here)
        local.write_text(re.sub(r"^(User|Group)=.*\n", "", text, flags=re.MULTILINE))
        checked = subprocess.run(
            ["systemd-analyze", "verify", "--man=no", str(local)],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        problems = [line for line in checked.stderr.splitlines() if "eventual.service" in line]
        assert not problems, checked.stderr


def _dockerfile() -> tuple[list[str], dict[str, str]]:
    """The image's ENTRYPOINT and ENV, as the Dockerfile says them."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    final = text.split("\nFROM ")[-1]  # the image's stage
    entrypoint = json.loads(re.search(r"^ENTRYPOINT (\[.*\])$", final, re.MULTILINE).group(1))  # type: ignore[union-attr]
    env: dict[str, str] = {}
    for line in re.findall(r"^ENV (.*)$", final, re.MULTILINE):
        env.update(pair.split("=", 1) for pair in shlex.split(line))
    return entrypoint, env


def test_the_containers_command_runs_here_as_a_process(tmp_path: Path) -> None:
    entrypoint, image_env = _dockerfile()
    assert entrypoint == ["eventual", "node"]
    assert image_env["EVENTUAL_NODE_DATA_DIR"] == "/data"
    assert image_env["EVENTUAL_NODE_LISTEN"] == "0.0.0.0:9001", "peers reach it through -p"
    resp, http, peer = free_base_port(1), free_base_port(1), free_base_port(1)
    env = dict(os.environ) | image_env
    # What `docker run -e ... -v ...:/data -p ...` would give it, on this machine's ports.
    env |= {
        "EVENTUAL_NODE_DATA_DIR": str(tmp_path / "data"),
        "EVENTUAL_NODE_RESP": f"127.0.0.1:{resp}",
        "EVENTUAL_NODE_HTTP": f"127.0.0.1:{http}",
        "EVENTUAL_NODE_LISTEN": f"127.0.0.1:{peer}",
        "EVENTUAL_NODE_ID": "n1",
        "EVENTUAL_NODE_MEMBERS": f"n1=r1@127.0.0.1:{peer}",
        "EVENTUAL_NODE_N": "1",
        "EVENTUAL_CLUSTER_SECRET": "a cluster secret of at least 16 bytes",
    }
    command = [str(Path(sys.executable).parent / entrypoint[0]), *entrypoint[1:]]
    first = next(_started(command, env, resp))
    assert json.loads(first)["node"] == "n1", "EVENTUAL_NODE_LOG_FORMAT=json was honoured"


def test_the_kubernetes_manifests_validate_and_the_pod_script_starts_a_node(
    tmp_path: Path,
) -> None:
    checked = subprocess.run(
        [sys.executable, "-m", "kubernetes_validate", "--strict", str(DEPLOY / "kubernetes.yaml")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.count("passed") == 2, checked.stdout
    documents = list(yaml.safe_load_all((DEPLOY / "kubernetes.yaml").read_text()))
    service, stateful = documents
    assert service["spec"]["clusterIP"] == "None" and stateful["spec"]["serviceName"] == "eventual"
    container = stateful["spec"]["template"]["spec"]["containers"][0]
    script = container["args"][0]
    # The pod's script, run by sh here, pod 0's name standing in for its DNS names.
    resp, http, peer = free_base_port(1), free_base_port(1), free_base_port(1)
    secret_dir = tmp_path / "etc"
    secret_dir.mkdir()
    (secret_dir / "cluster.secret").write_bytes(os.urandom(32))
    here = shlex.quote(str(Path(sys.executable).parent / "eventual"))
    script = (
        script.replace("$POD_NAME.eventual.$NAMESPACE.svc.cluster.local:9001", f"127.0.0.1:{peer}")
        .replace("/etc/eventual", str(secret_dir))
        .replace("exec eventual", f"exec {here}")
    )
    env = dict(os.environ)
    for variable in container["env"]:
        if "value" in variable:
            env[variable["name"]] = variable["value"]
    env |= {
        "POD_NAME": "eventual-0",
        "NAMESPACE": "default",
        "EVENTUAL_NODE_DATA_DIR": str(tmp_path / "data"),
        "EVENTUAL_NODE_RESP": f"127.0.0.1:{resp}",
        "EVENTUAL_NODE_HTTP": f"127.0.0.1:{http}",
        "EVENTUAL_NODE_LISTEN": f"127.0.0.1:{peer}",
        "EVENTUAL_NODE_N": "1",
    }
    first = next(_started(["/bin/sh", "-c", script], env, resp))
    assert json.loads(first)["node"] == "eventual-0"


@pytest.fixture(autouse=True)
def _no_stray_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("EVENTUAL_NODE_") or name == "EVENTUAL_CLUSTER_SECRET":
            monkeypatch.delenv(name)


def _toml(settings: dict[str, object]) -> str:
    """A TOML file of flat settings (strings, numbers, booleans, lists of strings)."""
    return "".join(
        f"{name} = {str(value).lower() if isinstance(value, bool) else json.dumps(value)}\n"
        for name, value in settings.items()
    )


def test_the_guides_commands_run_on_one_machine(tmp_path: Path) -> None:
    """docs/deploy.md on loopback: the secret, three nodes from node.toml files, status, a
    fourth joining (status --wait), an online backup, a leave, a replacement."""
    eventual = str(Path(sys.executable).parent / "eventual")
    secret = tmp_path / "cluster.secret"
    subprocess.run(["sh", "-c", f"head -c 32 /dev/urandom > {secret}"], check=True)
    users = tmp_path / "users.toml"
    users.write_text('[users.ops]\nrole = "admin"\npassword = "ops password"\n')
    example = tomllib.loads((DEPLOY / "node.toml").read_text())
    ports = {name: free_base_port(3) for name in ("resp", "http", "peer")}
    regions = ["us-east/a", "eu-west/a", "ap-south/a", "us-east/b", "eu-west/b", "ap-south/b"]

    def address(kind: str, i: int) -> str:
        return f"127.0.0.1:{ports[kind] + i}" if i < 3 else f"127.0.0.1:{free_base_port(1)}"

    members = [f"n{i + 1}={regions[i]}@{address('peer', i)}" for i in range(3)]
    processes: dict[str, subprocess.Popen[str]] = {}
    http: dict[str, str] = {}
    resp: dict[str, int] = {}

    def start(i: int, join: str | None = None) -> None:
        name = f"n{i + 1}"
        settings = dict(example) | {
            "id": name,
            "data-dir": str(tmp_path / name),
            "resp": address("resp", i),
            "http": address("http", i),
            "members": members if join is None else [f"{name}={regions[i]}@{address('peer', i)}"],
            "cluster-secret-file": str(secret),
            "users-file": str(users),
        }
        if join is not None:
            settings["join"] = join
        config = tmp_path / f"{name}.toml"
        config.write_text(_toml(settings))
        processes[name] = subprocess.Popen(
            [eventual, "node", "--config", str(config)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        http[name] = f"http://{settings['http']}"
        resp[name] = int(str(settings["resp"]).rsplit(":", 1)[1])

    env = dict(os.environ) | {"EVENTUAL_PASSWORD": "ops:ops password"}

    def run(*arguments: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [eventual, *arguments], check=False, env=env, capture_output=True, text=True,
            timeout=120,
        )  # fmt: skip

    def cli(*arguments: str) -> str:
        done = run(*arguments)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    def shows(text: str) -> bool:
        return text in run("status", "--url", http["n1"]).stdout

    try:
        for i in range(3):
            start(i)
        wait_until(lambda: shows("healthy: True"), 30)
        seed = members[0].rsplit("@", 1)[1]
        start(3, join=seed)  # n4, from its own node.toml with `join`
        wait_until(lambda: shows("n4 "), 30)
        shown = cli("status", "--wait", "--timeout", "90", "--url", http["n1"])
        assert re.search(r"n4 +us-east +active", shown), shown
        writer = redis.Redis(port=resp["n1"], username="ops", password="ops password")
        for i in range(50):
            writer.set(f"deploy:{i}", i)
        copy = tmp_path / "backup.db"
        backup = "sqlite3.connect(sys.argv[1]).backup(sqlite3.connect(sys.argv[2]))"
        subprocess.run(
            [sys.executable, "-c", f"import sqlite3, sys; {backup}",
             str(tmp_path / "n1" / "eventual.db"), str(copy)],
            check=True,
        )  # fmt: skip

        def held(path: Path) -> set[bytes]:
            with contextlib.closing(sqlite3.connect(path)) as db:
                keys = {bytes(row[0]) for row in db.execute("SELECT key FROM record_log")}
            return {key for key in keys if key.startswith(b"deploy:")}

        # The copy holds what n1 holds (the keys it replicates: three of four nodes each).
        assert held(copy) == held(tmp_path / "n1" / "eventual.db") != set()
        cli("cluster", "leave", "n4", "--url", http["n1"])
        processes["n4"].wait(timeout=90)  # it hands its partitions off, then stops by itself
        processes["n3"].kill()  # dead for good
        processes["n3"].wait()
        start(5, join=seed)  # n6
        wait_until(lambda: shows("n6 "), 30)
        cli("cluster", "replace", "n3", "n6", "--url", http["n1"])
        shown = cli("status", "--wait", "--timeout", "90", "--url", http["n1"])
        assert re.search(r"n6 +ap-south +active", shown), shown
        assert not re.search(r"n3 .* active", shown), shown
        reader = redis.Redis(port=resp["n6"], username="ops", password="ops password")
        assert all(reader.get(f"deploy:{i}") == str(i).encode() for i in range(50))
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.terminate()
        for process in processes.values():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


def test_listen_binds_elsewhere_than_the_address_the_others_dial(tmp_path: Path) -> None:
    """--listen 0.0.0.0:P with the member address 127.0.0.1:P (a container's case): the port
    answers on another interface too, and a node joining through the member address joins."""
    env = dict(os.environ) | {"EVENTUAL_CLUSTER_SECRET": "a cluster secret of 16 bytes or more"}
    peer = [free_base_port(1) for _ in range(2)]
    resp = [free_base_port(1) for _ in range(2)]
    http = free_base_port(1)
    eventual = str(Path(sys.executable).parent / "eventual")
    first = subprocess.Popen(
        [eventual, "node", "--id", "n1", "--data-dir", str(tmp_path / "n1"),
         "--resp", f"127.0.0.1:{resp[0]}", "--http", f"127.0.0.1:{http}",
         "--member", f"n1=r1@127.0.0.1:{peer[0]}", "--listen", f"0.0.0.0:{peer[0]}", "--n", "2"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    second = subprocess.Popen(
        [eventual, "node", "--id", "n2", "--data-dir", str(tmp_path / "n2"),
         "--resp", f"127.0.0.1:{resp[1]}", "--member", f"n2=r1@127.0.0.1:{peer[1]}",
         "--join", f"127.0.0.1:{peer[0]}", "--n", "2"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_until(lambda: redis.Redis(port=resp[0], socket_timeout=2).ping())

        def challenged() -> bool:  # the handshake's first frame, on an interface not named
            with socket.create_connection(("127.0.0.2", peer[0]), timeout=2) as sock:
                return len(sock.recv(4)) == 4

        wait_until(challenged)

        def joined() -> bool:
            status = subprocess.run(
                [eventual, "status", "--url", f"http://127.0.0.1:{http}"],
                capture_output=True, text=True, check=False, env=env,
            )  # fmt: skip
            return re.search(r"n2 +r1 +active", status.stdout) is not None

        wait_until(joined, 60)
    finally:
        for process in (first, second):
            process.terminate()
        for process in (first, second):
            process.wait(timeout=20)
