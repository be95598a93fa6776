"""Where stock rights should be: the rebalancing policy, pure and separate from I/O.

Each region can only sell against the rights its own replica holds (a bounded counter,
Balegas et al. 2015). Stock that sits in a region nobody buys from is stock the selling
region refuses to sell. The policy moves rights toward demand. It keeps what each region
needs for the next ``horizon_s`` seconds of its recent sales rate, plus a floor, and
offers the rest to the regions that are short:

- a donor gives only what it holds above its own need (never below its floor);
- the neediest region is served first, from the richest donor first;
- transfers smaller than ``min_transfer`` are skipped: each is a replicated write.

The total is conserved by construction: a transfer moves rights, it creates none.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["Transfer", "plan_transfers"]


@dataclass(frozen=True, slots=True)
class Transfer:
    source: str  # the region giving rights
    target: str  # the region receiving them
    amount: int


def plan_transfers(
    rights: dict[str, int],
    demand_per_s: dict[str, float],
    *,
    horizon_s: float = 5.0,
    floor: int = 1,
    min_transfer: int = 1,
) -> list[Transfer]:
    """The transfers that bring each region's rights toward its expected sales."""
    total = sum(max(0, r) for r in rights.values())
    if total == 0:
        return []
    regions = sorted(rights)
    rates = {r: max(0.0, demand_per_s.get(r, 0.0)) for r in regions}
    rate_total = sum(rates.values())
    # Each region's target: its share of the stock in proportion to its demand, but no less
    # than the floor (a quiet region can still sell its first item without waiting).
    if rate_total > 0:
        wanted = {r: math.ceil(min(total, rates[r] * horizon_s) + floor) for r in regions}
        share = {r: total * rates[r] / rate_total for r in regions}
        target = {r: max(min(floor, total), min(wanted[r], math.ceil(share[r]))) for r in regions}
    else:
        target = dict.fromkeys(regions, min(floor, total))
    surplus = {r: max(0, rights[r] - max(target[r], floor)) for r in regions}
    shortfall = {r: max(0, target[r] - rights[r]) for r in regions}
    transfers: list[Transfer] = []
    for needy in sorted(regions, key=lambda r: (-shortfall[r], r)):
        while shortfall[needy] > 0:
            donor = max(regions, key=lambda r: (surplus[r], r))
            amount = min(surplus[donor], shortfall[needy])
            if donor == needy or amount < min_transfer:
                break
            transfers.append(Transfer(donor, needy, amount))
            surplus[donor] -= amount
            shortfall[needy] -= amount
    return transfers
