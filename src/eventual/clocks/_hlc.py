"""Hybrid logical clock (Kulkarni, Demirbas et al., "Logical Physical Clocks and Consistent
Snapshots in Globally Distributed Databases", OPODIS 2014).

A timestamp is one plain integer: ``wall_ms << LOGICAL_BITS | logical``. Timestamps therefore
order with ``<``, compare across nodes, and fit in 64 bits for the next few million years.

The HLC rules in this packed form are short. With ``last`` the largest timestamp issued or
seen so far and ``pt = wall_ms << LOGICAL_BITS`` the physical time:

- a local or send event takes ``max(last + 1, pt)``;
- a receive event of remote ``r`` takes ``max(last + 1, r + 1, pt)``.

``+ 1`` on the packed integer increments the logical counter and, should it ever fill its 16
bits, carries into the millisecond field: order and uniqueness are kept, at the cost of
running ahead of wall time by a millisecond (which needs 65,536 events in one millisecond).

A remote timestamp whose wall part is more than ``max_drift_ms`` ahead of our wall clock is
refused with ``ClockDriftError``: otherwise one node with a clock set in the future would drag
every clock forward with it and win every last-writer-wins race.

Wall time is passed in by the caller: nothing here reads a clock.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "DEFAULT_MAX_DRIFT_MS",
    "LOGICAL_BITS",
    "ClockDriftError",
    "HybridLogicalClock",
    "hlc_logical",
    "hlc_pack",
    "hlc_wall_ms",
]

LOGICAL_BITS = 16
LOGICAL_MASK = (1 << LOGICAL_BITS) - 1
# A wall clock field of 48 bits holds milliseconds until the year 10889.
WALL_MS_MAX = (1 << (64 - LOGICAL_BITS)) - 1

# Cassandra warns at clock skew of a few hundred ms; NTP keeps healthy nodes within tens of ms.
# A minute tolerates a badly synced node yet still refuses one whose clock is years off.
DEFAULT_MAX_DRIFT_MS = 60_000


def hlc_pack(wall_ms: int, logical: int = 0) -> int:
    if not 0 <= wall_ms <= WALL_MS_MAX:
        raise ValueError(f"wall_ms {wall_ms} outside [0, {WALL_MS_MAX}]")
    if not 0 <= logical <= LOGICAL_MASK:
        raise ValueError(f"logical {logical} outside [0, {LOGICAL_MASK}]")
    return (wall_ms << LOGICAL_BITS) | logical


def hlc_wall_ms(timestamp: int) -> int:
    return timestamp >> LOGICAL_BITS


def hlc_logical(timestamp: int) -> int:
    return timestamp & LOGICAL_MASK


class ClockDriftError(ValueError):
    """A remote timestamp is further ahead of our wall clock than the configured maximum."""

    def __init__(self, remote: int, wall_ms: int, max_drift_ms: int) -> None:
        self.remote = remote
        self.wall_ms = wall_ms
        self.max_drift_ms = max_drift_ms
        self.drift_ms = hlc_wall_ms(remote) - wall_ms
        super().__init__(
            f"remote clock is {self.drift_ms} ms ahead of ours, more than the allowed "
            f"{max_drift_ms} ms; check NTP on the sending node"
        )


@dataclass(slots=True)
class HybridLogicalClock:
    """One node's hybrid logical clock. ``last`` is the largest timestamp issued or seen."""

    max_drift_ms: int = DEFAULT_MAX_DRIFT_MS
    last: int = 0

    def __post_init__(self) -> None:
        if self.max_drift_ms < 0:
            raise ValueError("max_drift_ms must be >= 0")

    def now(self, wall_ms: int) -> int:
        """A new timestamp for a local or send event, greater than any issued or seen."""
        self.last = max(self.last + 1, hlc_pack(wall_ms))
        return self.last

    def update(self, remote: int, wall_ms: int) -> int:
        """Take in a timestamp from a message; return the timestamp of the receive event.

        Raises ``ClockDriftError`` (and leaves the clock unchanged) if ``remote`` is more than
        ``max_drift_ms`` ahead of ``wall_ms``.
        """
        if remote < 0:
            raise ValueError(f"timestamp {remote} is negative")
        if hlc_wall_ms(remote) - wall_ms > self.max_drift_ms:
            raise ClockDriftError(remote, wall_ms, self.max_drift_ms)
        self.last = max(self.last + 1, remote + 1, hlc_pack(wall_ms))
        return self.last
