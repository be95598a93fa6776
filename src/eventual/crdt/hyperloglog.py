"""HyperLogLog cardinality estimator (Flajolet, Fusy, Gandouet, Meunier, "HyperLogLog: the
analysis of a near-optimal cardinality estimation algorithm", AofA 2007; with the 64-bit hash
and small-range handling of Heule, Nunkesser, Hall, "HyperLogLog in Practice", EDBT 2013).

``m = 2**precision`` registers; an element's 64-bit hash picks a register with its first
``precision`` bits and offers the rank of the first 1-bit of the rest. The estimate has a
standard error of about ``1.04 / sqrt(m)``: 0.81% at the default precision 14 (Redis's).
Merge is the register-wise maximum, so the type is a CRDT: adding an element twice, or on two
replicas, counts it once.

Elements are hashed as bytes: ``str`` as UTF-8 and ``int`` as its decimal digits, so that
``"42"``, ``b"42"`` and ``42`` are one element, as they are for Redis's PFADD.
"""

from __future__ import annotations

import hashlib
import math
import re
from typing import Any, Self

from eventual.codec import (
    DecodeError,
    Element,
    TypeTag,
    check_element,
    expect_bytes,
    expect_int,
    expect_list,
)
from eventual.lattice import Lattice

__all__ = ["DEFAULT_PRECISION", "HyperLogLog"]

PRECISION_MIN = 4  # 16 registers: below this the estimator's constants are not defined
PRECISION_MAX = 16  # 65,536 registers (64 KiB dense): 0.41% error, enough for any key
DEFAULT_PRECISION = 14  # Redis's choice: 16,384 registers, 0.81% standard error

_DENSE, _SPARSE = 0, 1
_SPARSE_ENTRY_BYTES = 3  # 2 bytes of register index, 1 byte of rank


_NONZERO = re.compile(rb"[^\x00]")


# The bytes that are valid ranks at each precision (what ``translate`` deletes): 0 to the
# largest rank, 64 - precision + 1.
_VALID_RANKS = {p: bytes(range(64 - p + 2)) for p in range(PRECISION_MIN, PRECISION_MAX + 1)}


def _nonzero(registers: bytearray) -> list[int]:
    """Indices of the set registers, found at C speed (most are zero while sparse)."""
    return [match.start() for match in _NONZERO.finditer(registers)]


def _element_bytes(element: Element) -> bytes:
    if isinstance(element, bytes):
        return element
    if isinstance(element, str):
        return element.encode("utf-8")
    return str(element).encode("ascii")


def _alpha(m: int) -> float:
    if m == 16:
        return 0.673
    if m == 32:
        return 0.697
    if m == 64:
        return 0.709
    return 0.7213 / (1 + 1.079 / m)


class HyperLogLog(Lattice):
    TAG = TypeTag.HYPERLOGLOG
    __slots__ = ("_encoded", "_precision", "_registers")

    def __init__(self, precision: int = DEFAULT_PRECISION) -> None:
        if isinstance(precision, bool) or not isinstance(precision, int):
            raise TypeError("precision is an integer")
        if not PRECISION_MIN <= precision <= PRECISION_MAX:
            raise ValueError(f"precision must be in [{PRECISION_MIN}, {PRECISION_MAX}]")
        self._precision = precision
        self._encoded: Any = None  # the payload, kept until a register changes
        self._registers = bytearray(1 << precision)

    @property
    def precision(self) -> int:
        return self._precision

    @property
    def standard_error(self) -> float:
        return 1.04 / math.sqrt(len(self._registers))

    def _rank_max(self) -> int:
        return 64 - self._precision + 1

    def add(self, element: Element) -> HyperLogLog:
        """Count ``element``; the delta holds the one register it raised (or none)."""
        check_element(element)
        digest = hashlib.blake2b(_element_bytes(element), digest_size=8).digest()
        hashed = int.from_bytes(digest, "big")
        rest_bits = 64 - self._precision
        index = hashed >> rest_bits
        rest = hashed & ((1 << rest_bits) - 1)
        rank = rest_bits - rest.bit_length() + 1
        delta = HyperLogLog(self._precision)
        if rank > self._registers[index]:
            self._registers[index] = rank
            self._encoded = None
            delta._registers[index] = rank
        return delta

    def value(self) -> int:
        """The estimated number of distinct elements added."""
        registers = self._registers
        m = len(registers)
        zeros = registers.count(0)
        # The sum of 2^-rank over the registers, a count per rank (each at C speed) rather
        # than a Python step per register (16,384 of them by default).
        harmonic = sum(registers.count(r) * 2.0**-r for r in range(self._rank_max() + 1))
        estimate = _alpha(m) * m * m / harmonic
        if estimate <= 2.5 * m and zeros:
            estimate = m * math.log(m / zeros)  # linear counting is exact-ish while sparse
        return round(estimate)

    def is_empty(self) -> bool:
        return self._registers.count(0) == len(self._registers)

    def merge(self, other: Self) -> None:
        self._check_same_type(other)
        if other._precision != self._precision:
            raise ValueError(
                f"cannot merge a HyperLogLog of precision {other._precision} into one of "
                f"precision {self._precision}"
            )
        mine, theirs = self._registers, other._registers
        self._encoded = None
        set_registers = len(theirs) - theirs.count(0)
        if set_registers * 8 < len(theirs):  # sparse: touch only what is set
            for i in _nonzero(theirs):
                mine[i] = max(mine[i], theirs[i])
        else:
            self._registers = bytearray(map(max, mine, theirs))

    def copy(self) -> Self:
        clone = type(self)(self._precision)
        clone._registers = bytearray(self._registers)
        return clone

    def _payload(self) -> Any:
        if self._encoded is not None:
            return self._encoded
        self._encoded = self._layout()
        return self._encoded

    def _layout(self) -> Any:
        registers = self._registers
        set_registers = len(registers) - registers.count(0)
        # Sparse while it is smaller than the dense array; the choice depends on the state
        # alone, so the encoding stays canonical.
        if set_registers * _SPARSE_ENTRY_BYTES < len(registers):
            data = b"".join(
                i.to_bytes(2, "big") + bytes((registers[i],)) for i in _nonzero(registers)
            )
            return [self._precision, _SPARSE, data]
        return [self._precision, _DENSE, bytes(registers)]

    @classmethod
    def _from_payload(cls, payload: Any) -> Self:
        precision, layout, data = expect_list(payload, "hyperloglog", 3)
        hll = cls(expect_int(precision, "precision", PRECISION_MIN, PRECISION_MAX))
        layout = expect_int(layout, "layout", _DENSE, _SPARSE)
        data = expect_bytes(data, "registers")
        m = len(hll._registers)
        rank_max = hll._rank_max()
        if layout == _DENSE:
            if len(data) != m:
                raise DecodeError(f"hyperloglog: {len(data)} registers, expected {m}")
            # Every byte a valid rank, checked at C speed (``max`` over 16,384 registers
            # walked them one Python int at a time).
            if data.translate(None, _VALID_RANKS[hll._precision]):
                raise DecodeError(f"hyperloglog: a rank is above the maximum {rank_max}")
            hll._registers = bytearray(data)
        else:
            if len(data) % _SPARSE_ENTRY_BYTES:
                raise DecodeError("hyperloglog: sparse registers are not whole entries")
            registers = hll._registers
            for offset in range(0, len(data), _SPARSE_ENTRY_BYTES):
                index = int.from_bytes(data[offset : offset + 2], "big")
                expect_int(index, "register index", 0, m - 1)
                rank = expect_int(data[offset + 2], "rank", 1, 255)
                if rank > rank_max:
                    raise DecodeError(f"hyperloglog: a rank is above the maximum {rank_max}")
                registers[index] = rank
        return hll
