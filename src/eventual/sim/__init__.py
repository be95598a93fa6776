"""The deterministic simulator: many ``core.Node`` instances on a seeded, faulty network with
virtual time, and checkers that judge each run from outside (``eventual sim``)."""

from eventual.sim.network import FAULTS, Faults
from eventual.sim.simulator import SimConfig, SimResult, Simulation

__all__ = ["FAULTS", "Faults", "SimConfig", "SimResult", "Simulation"]
