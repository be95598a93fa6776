"""Hypothesis profiles. ``ci`` (the default) runs 200 examples per property, as issue 2 asks;
``quick`` runs 25 for a fast local loop: ``HYPOTHESIS_PROFILE=quick pytest``."""

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)
settings.register_profile("quick", parent=settings.get_profile("ci"), max_examples=25)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
