"""The node's log (``server/logs.py``): one structured line per event, with the node's id,
in key=value or JSON; and the events themselves, from a real cluster losing a node."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from eventual.server.logs import EventFormatter
from realnodes import free_base_port


def record(message: str, **extra: object) -> logging.LogRecord:
    made = logging.LogRecord("eventual.node", logging.WARNING, __file__, 1, message, (), None)
    for name, value in extra.items():
        setattr(made, name, value)
    return made


def test_text_lines_are_key_value_pairs_with_the_node_and_the_event() -> None:
    line = EventFormatter("n2").format(
        record("a peer is dead", event="peer_dead", fields={"peer": "n3", "incarnation": 0})
    )
    assert "\n" not in line
    assert " level=warning node=n2 logger=eventual.node event=peer_dead " in line
    assert 'msg="a peer is dead" peer=n3 incarnation=0' in line


def test_a_traceback_stays_on_its_line_and_json_lines_parse() -> None:
    try:
        raise ValueError("boom\non two lines")
    except ValueError:
        failed = record("the node failed to handle an event")
        failed.exc_info = sys.exc_info()
    text = EventFormatter("n1").format(failed)
    assert "\n" not in text and "ValueError" in text
    parsed = json.loads(EventFormatter("n1", "json").format(failed))
    assert parsed["node"] == "n1" and "boom" in parsed["error"]
    with pytest.raises(ValueError, match="log format"):
        EventFormatter("n1", "yaml")


def test_a_dev_cluster_logs_a_dead_peer_in_json_lines(tmp_path: Path) -> None:
    """Kill -9 one node: the others each log it suspect, then dead, one JSON object a line."""
    resp, http, peer = free_base_port(3), free_base_port(3), free_base_port(3)
    dev = subprocess.Popen(
        [
            sys.executable, "-m", "eventual", "dev", "--data-dir", str(tmp_path),
            "--resp-port", str(resp), "--http-port", str(http), "--peer-port", str(peer),
            "--durability", "os", "--log-format", "json",
        ],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(dev.stderr.readline, "")))  # type: ignore[union-attr]
    reader.start()
    try:
        pids: dict[str, int] = {}
        assert dev.stdout is not None
        while len(pids) < 3:
            words = dev.stdout.readline().split()
            assert words, "eventual dev exited early"
            if "pid" in words and words[0].startswith("n"):
                pids[words[0]] = int(words[words.index("pid") + 1])

        def logged(event: str, node: str) -> list[dict[str, object]]:
            found = [json.loads(line) for line in list(lines)]
            return [e for e in found if e.get("event") == event and e.get("node") == node]

        deadline = time.monotonic() + 30
        while not all(logged("start", n) for n in pids):
            assert time.monotonic() < deadline, lines
            time.sleep(0.05)
        os.kill(pids["n3"], signal.SIGKILL)
        while not all(
            any(e.get("peer") == "n3" for e in logged("peer_dead", n)) for n in ("n1", "n2")
        ):
            assert time.monotonic() < deadline, lines
            time.sleep(0.05)
    finally:
        dev.send_signal(signal.SIGINT)
        dev.wait(timeout=20)
        reader.join(timeout=10)
    stopped = [json.loads(line) for line in lines if '"stop"' in line]
    assert {e["node"] for e in stopped if e.get("event") == "stop"} == {"n1", "n2"}
    assert all(line.startswith("{") for line in lines), "every line of the log is one event"
