"""The HTTP API fuzzed by schemathesis from its own OpenAPI document (``/openapi.json``), on a
real node, for a bounded number of examples per operation: no request, however odd, gets a
5xx or takes the node down. ``/cluster/*`` is left out: those admin routes change the
cluster (a node asked to leave, leaves), and ``test_limits.py`` checks who may call them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from realnodes import Node, start_node


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    found = start_node(Path(tmp_path_factory.mktemp("api-fuzz")) / "n1")
    yield found
    found.stop()


def test_no_request_gets_a_server_error(node: Node) -> None:
    schema = schemathesis.openapi.from_url(f"http://127.0.0.1:{node.http_port}/openapi.json")
    operations = [
        result.ok() for result in schema.exclude(path_regex="^/cluster/").get_all_operations()
    ]
    assert len(operations) >= 8, [op.label for op in operations]
    statuses: dict[int, int] = {}
    for operation in operations:

        @given(operation.as_strategy())
        @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
        def fuzz(case: schemathesis.Case) -> None:
            response = case.call_and_validate(checks=[not_a_server_error], timeout=20)
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

        fuzz()
        assert node.process.poll() is None, f"the node exited during {operation.label}"
    print(f"{len(operations)} operations, {sum(statuses.values())} requests: {statuses}")
    assert sum(statuses.values()) >= 10 * len(operations)
