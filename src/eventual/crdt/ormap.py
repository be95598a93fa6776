"""Observed-remove map of nested CRDTs, add-wins (in the line of riak_dt_map and Akka's
ORMap; keys handled as the add-wins set of Almeida, Shoker, Baquero 2018, §7.2).

Each key holds one nested CRDT of any type in this package (maps included, up to
``ORMAP_DEPTH_MAX`` levels). Presence of a key is an add-wins set: every update tags the key
with a fresh dot, replacing the dots this replica had for it, and a remove forgets the dots
it observed. So an update concurrent with a remove keeps the key: **add wins**.

What value does such a key have? Each live dot carries the nested state as its writer saw it
right after the update, and the key's value is the merge of the states of its live dots.
A remove therefore drops the nested state the remover saw *unless* a concurrent update kept
the key alive, in which case the updater's whole view survives, including what the remover
had seen (no "reset" of the nested value; the same choice as Akka's ORMap). Keeping nested
state per dot, rather than one merged state per key, is what makes merge associative: a
dead dot's state must be able to leave without taking live states with it.

Cost: an update's delta carries the key's whole nested state, not the nested delta, because
the new dot must hold the full state everywhere. Maps of small values (counters, flags,
registers) pay nothing for this; a large nested set pays its size on each update.

A nested CRDT of another type than the one stored under the key is refused with
``WrongType``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Self, TypeVar

from mypy_extensions import mypyc_attr

from eventual.codec import (
    DecodeError,
    Element,
    TypeTag,
    check_actor,
    check_element,
    decode_frame,
    element_key,
    expect_bytes,
    expect_element,
    expect_list,
)
from eventual.crdt._causal import ActorTable, CausalContext, Dot, check_dots_seen
from eventual.crdt._keyed import KeyedCausal
from eventual.crdt.bcounter import BoundedCounter
from eventual.crdt.ewflag import EWFlag
from eventual.crdt.gcounter import GCounter
from eventual.crdt.hyperloglog import HyperLogLog
from eventual.crdt.lwwregister import LWWRegister
from eventual.crdt.mvregister import MVRegister
from eventual.crdt.orset import ORSet
from eventual.crdt.pncounter import PNCounter
from eventual.lattice import Lattice

__all__ = ["ORMAP_DEPTH_MAX", "ORMap", "WrongType"]

# Maps inside maps: deep enough for any document a user models (a feed of posts of comments
# of reactions is four), shallow enough that decoding hostile bytes cannot exhaust the stack.
ORMAP_DEPTH_MAX = 8

N = TypeVar("N", bound=Lattice)


@mypyc_attr(native_class=False)
class WrongType(TypeError):
    """The key holds a CRDT of another type than the operation asked for."""


def _merged(states: Iterator[Lattice]) -> Lattice:
    first = next(states).copy()
    for state in states:
        first.merge(state)
    return first


class ORMap(KeyedCausal[Lattice]):
    TAG = TypeTag.ORMAP
    __slots__ = ()
    _CELL_VALUE_ITEMS = 1  # each dot carries the nested state it wrote

    # --- reading ---

    def get(self, key: Element) -> Lattice | None:
        """A copy of the nested CRDT under ``key``, or None."""
        states = self._dots.entries.get(key)
        return None if states is None else _merged(iter(states.values()))

    def value(self) -> dict[Element, Any]:
        entries = self._dots.entries
        return {
            key: _merged(iter(entries[key].values())).value()
            for key in sorted(entries, key=element_key)
        }

    def check_type(self, key: Element, crdt_type: type[Lattice]) -> None:
        """Raise ``WrongType`` if ``key`` holds a CRDT of another type."""
        states = self._dots.entries.get(key)
        if states:
            held = type(next(iter(states.values())))
            if held is not crdt_type:
                raise WrongType(f"key {key!r} holds a {held.__name__}, not a {crdt_type.__name__}")

    def keys(self) -> list[Element]:
        return sorted(self._dots.entries, key=element_key)

    def depth(self) -> int:
        """1 for a map of plain CRDTs, 2 if it holds maps of plain CRDTs, and so on."""
        nested = [
            state.depth()
            for states in self._dots.entries.values()
            for state in states.values()
            if isinstance(state, ORMap)
        ]
        return 1 + max(nested, default=0)

    # --- changing ---

    def update(
        self, actor: str, key: Element, crdt_type: type[N], fn: Callable[[N], object]
    ) -> Self:
        """Apply ``fn`` to the nested ``crdt_type`` under ``key`` (created empty if absent).

        ``fn`` mutates the nested CRDT it is given (its return value is ignored). If it
        raises, the map is unchanged and the error propagates.
        """
        check_actor(actor)
        check_element(key)
        if crdt_type not in _NESTED_TYPES.values():
            raise TypeError(f"{crdt_type.__name__} cannot be nested in an ORMap")
        self.check_type(key, crdt_type)
        current = self.get(key)
        nested: N = crdt_type() if current is None else current  # type: ignore[assignment]
        fn(nested)
        if isinstance(nested, ORMap) and nested.depth() + 1 > ORMAP_DEPTH_MAX:
            raise ValueError(f"maps nest at most {ORMAP_DEPTH_MAX} deep")
        dot = self._context.next_dot(actor)
        old = self._dots.replace(key, dot, nested)
        self._context.add(dot)
        delta = type(self)()
        delta._dots.replace(key, dot, nested.copy())
        delta._context = CausalContext.of((*old, dot))
        return delta

    @staticmethod
    def _adopt(value: Lattice) -> Lattice:
        return value.copy()

    def copy(self) -> Self:
        clone = type(self)()
        clone._dots = self._dots.copy(self._adopt)
        clone._context = self._context.copy()
        return clone

    def _cell_bytes(self, element: Element, value: Lattice) -> int:
        return super()._cell_bytes(element, value) + len(value.to_bytes())

    def _cell_values(self, value: Lattice) -> list[Any]:
        return [value.to_bytes()]

    def _cell_value(self, items: list[Any]) -> Lattice:
        return _decode_nested(expect_bytes(items[0], "ormap nested state"), 1)

    # --- encoding ---

    def _payload(self) -> Any:
        entries = self._dots.entries
        table = ActorTable(actor for actor, _ in self._dots.owner)
        rows = []
        for key in sorted(entries, key=element_key):
            row: list[Any] = [key]
            for actor, n in sorted(entries[key]):
                row += (table.index[actor], n, entries[key][(actor, n)].to_bytes())
            rows.append(row)
        return [self._context.payload(), table.actors, rows]

    @classmethod
    def _from_payload(cls, payload: Any) -> Self:
        return cls._decode(payload, depth=1)

    @classmethod
    def _decode(cls, payload: Any, depth: int) -> Self:
        if depth > ORMAP_DEPTH_MAX:
            raise DecodeError(f"ormap: nested deeper than {ORMAP_DEPTH_MAX}")
        context, actors, rows = expect_list(payload, "ormap", 3)
        result = cls()
        result._context = CausalContext.from_payload(context)
        result._dots._digest = None  # computed if it is ever needed
        table = ActorTable.decode(actors)
        for row in expect_list(rows, "ormap entries"):
            if len(expect_list(row, "ormap entry")) < 4 or (len(row) - 1) % 3:
                raise DecodeError("ormap entry: expected a key and at least one dotted state")
            key = expect_element(row[0], "ormap key")
            states: dict[Dot, Lattice] = {}
            for offset in range(1, len(row), 3):
                dot = table.dot(row[offset], row[offset + 1])
                data = expect_bytes(row[offset + 2], "ormap nested state")
                states[dot] = _decode_nested(data, depth)
            if len({type(state) for state in states.values()}) > 1:
                raise DecodeError(f"ormap: key {key!r} holds states of two types")
            check_dots_seen(states, result._context, "ormap")
            result._dots.add_decoded(key, states, "ormap")
        return result


def _decode_nested(data: bytes, depth: int) -> Lattice:
    if not data:
        raise DecodeError("ormap: empty nested state")
    nested_type = _NESTED_BY_TAG.get(data[0])  # by number: calling an Enum is Python code
    if nested_type is None:
        raise DecodeError(f"ormap: tag {data[0]} is not a nestable type")
    if nested_type is ORMap:
        return ORMap._decode(decode_frame(data, TypeTag.ORMAP, ORMap.VERSION), depth + 1)
    # No canonical re-encode of each nested state: the outer ``from_bytes`` re-encodes the
    # whole map, nested states included, and refuses any difference (checking each one again
    # doubled the cost of decoding a big hash). Member cells come from this node's own store,
    # trusted like ``Record.from_stored``.
    return nested_type._from_payload(decode_frame(data, nested_type.TAG, nested_type.VERSION))


_NESTED_TYPES: dict[TypeTag, type[Lattice]] = {
    cls.TAG: cls
    for cls in (
        GCounter,
        PNCounter,
        BoundedCounter,
        LWWRegister,
        MVRegister,
        ORSet,
        EWFlag,
        HyperLogLog,
        ORMap,
    )
}
_NESTED_BY_TAG: dict[int, type[Lattice]] = {int(tag): cls for tag, cls in _NESTED_TYPES.items()}
