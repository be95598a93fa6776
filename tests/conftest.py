"""Hypothesis profiles, and the tests only the pure build can run.

Profiles: ``ci`` (the default) runs 200 examples per property, as issue 2 asks; ``quick`` runs
25 for a fast local loop: ``HYPOTHESIS_PROFILE=quick pytest``."""

import os

import pytest
from hypothesis import HealthCheck, settings

import eventual

settings.register_profile(
    "ci",
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)
settings.register_profile("quick", parent=settings.get_profile("ci"), max_examples=25)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``pure_only`` plant a bug by patching or subclassing a class of the data
    path, which the compiled build does not allow (its classes are native): they run on the
    pure build, which ``scripts/check`` runs after the suite (``EVENTUAL_PURE=1``). The two
    builds run the same simulations to the same digest (tests/test_sim.py), so what the
    planted bug shows of the checkers holds for both."""
    if not eventual.COMPILED:
        return
    skip = pytest.mark.skip(
        reason=f"plants a bug in a class; the pure build runs it ({eventual.BUILD})"
    )
    for item in items:
        if "pure_only" in item.keywords:
            item.add_marker(skip)
