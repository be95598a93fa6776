"""The one contract every replicated type follows: clocks and CRDTs alike.

A ``Lattice`` is a join-semilattice state held by one replica:

- ``x.merge(other)`` joins ``other`` into ``x`` in place (idempotent, commutative,
  associative: the law harness in tests/ checks all three for every type);
- ``x.value()`` is what users read; ``x.copy()`` an independent replica of the state;
- ``x.to_bytes()`` / ``Type.from_bytes(data)``: the deterministic, versioned encoding of
  ``eventual.codec``; ``==`` compares states through it, so equal states are exactly the
  states with equal bytes;
- mutators (``increment``, ``add``, ``set``, ...) change ``x`` and return a *delta*: a state
  of the same type which, merged into any replica that has seen ``x``'s previous state, has
  the same effect as the mutation (Almeida, Shoker, Baquero, "Delta state replicated data
  types", 2018).

Adding a type means subclassing ``Lattice``, taking a tag in ``codec.TypeTag`` and filling in
``merge``, ``value``, ``copy``, ``_payload`` and ``_from_payload``; nothing else.
"""

from __future__ import annotations

from typing import Any, ClassVar, Self

from eventual.codec import DecodeError, TypeTag, decode_frame, encode_frame

__all__ = ["Lattice", "merge_max"]


def merge_max(mine: dict[Any, int], theirs: dict[Any, int]) -> None:
    """Join two maps of grow-only counts in place: the entry-wise maximum."""
    for key, count in theirs.items():
        if count > mine.get(key, 0):
            mine[key] = count


class Lattice:
    # Not an ``abc.ABC``: mypyc-compiled subclasses of an ABCMeta class crashed the garbage
    # collector (mypy 2.4, CPython 3.11: docs/performance.md). Every type overrides the five
    # methods that raise NotImplementedError here; the law harness calls each of them.
    TAG: ClassVar[TypeTag]
    VERSION: ClassVar[int] = 1

    __slots__ = ()

    def merge(self, other: Self) -> None:
        """Join ``other`` into this state, in place."""
        raise NotImplementedError

    def value(self) -> Any:
        """The user-visible value of this state."""
        raise NotImplementedError

    def copy(self) -> Self:
        """An independent copy of this state."""
        raise NotImplementedError

    def _payload(self) -> Any:
        """The msgpack-ready, canonically ordered payload of this state."""
        raise NotImplementedError

    @classmethod
    def _from_payload(cls, payload: Any) -> Self:
        """Rebuild a state from a decoded payload; raise DecodeError on any bad shape."""
        raise NotImplementedError

    def to_bytes(self) -> bytes:
        return encode_frame(self.TAG, self.VERSION, self._payload())

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        payload = decode_frame(data, cls.TAG, cls.VERSION)
        state = cls._from_payload(payload)
        if state.to_bytes() != bytes(data):
            # Valid shape but not the canonical form (unsorted, duplicated or zero entries,
            # oversized integers): accepting it would let one state have two encodings.
            raise DecodeError(f"{cls.TAG.name} encoding is not canonical")
        return state

    def _check_same_type(self, other: object) -> None:
        if type(other) is not type(self):
            raise TypeError(f"cannot merge {type(other).__name__} into {type(self).__name__}")

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, Lattice)
        return self.to_bytes() == other.to_bytes()

    __hash__ = None  # type: ignore[assignment]  # mutable state: not hashable

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.value()!r})"
