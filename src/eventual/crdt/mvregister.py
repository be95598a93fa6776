"""Multi-value register (Shapiro et al., INRIA RR-7506, 2011, §3.2.2, in the dot-based
delta form of Almeida, Shoker, Baquero 2018).

A write tags its value with a fresh dot and replaces every value this replica has seen.
Concurrent writes each keep their dot, so ``value()`` lists exactly the concurrent values,
ordered by dot; the next write that saw them all collapses them back to one.
"""

from __future__ import annotations

from eventual.codec import Scalar, TypeTag, check_scalar
from eventual.crdt._dotfun import DotFunction

__all__ = ["MVRegister"]


class MVRegister(DotFunction):
    TAG = TypeTag.MV_REGISTER
    __slots__ = ()

    def value(self) -> list[Scalar]:
        return self._sorted_values()

    def set(self, actor: str, value: Scalar) -> MVRegister:
        return self._write(actor, check_scalar(value))
