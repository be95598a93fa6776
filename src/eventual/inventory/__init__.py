"""The global inventory: the flagship example (``docs/inventory.md``).

``service.Inventory`` sells stock region by region on bounded counters; ``policy`` decides
where rights should move.
"""

from eventual.inventory.policy import Transfer, plan_transfers
from eventual.inventory.service import Inventory, StockView

__all__ = ["Inventory", "StockView", "Transfer", "plan_transfers"]
