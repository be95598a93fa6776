"""Logical time: hybrid logical clocks, version vectors and dotted version vector sets.

No I/O here, and no reading of the wall clock: time is always passed in.
"""

from eventual.clocks._dvvset import DVVSet
from eventual.clocks._hlc import (
    DEFAULT_MAX_DRIFT_MS,
    LOGICAL_BITS,
    ClockDriftError,
    HybridLogicalClock,
    hlc_logical,
    hlc_pack,
    hlc_wall_ms,
)
from eventual.clocks._version_vector import Order, VersionVector

__all__ = [
    "DEFAULT_MAX_DRIFT_MS",
    "LOGICAL_BITS",
    "ClockDriftError",
    "DVVSet",
    "HybridLogicalClock",
    "Order",
    "VersionVector",
    "hlc_logical",
    "hlc_pack",
    "hlc_wall_ms",
]
