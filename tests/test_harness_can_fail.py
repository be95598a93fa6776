"""The law harness is only worth something if it can fail: run it against planted bugs and
expect each to be reported as the law it breaks."""

from collections.abc import Callable
from typing import Any, Self

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import eventual
from eventual.codec import DecodeError
from eventual.crdt import GCounter, ORSet
from laws import (
    TypeSpec,
    law_bad_bytes,
    law_commutative,
    law_delta,
    law_idempotent,
    law_round_trip,
    op,
    systems,
)
from specs import SPECS

if eventual.COMPILED:  # the planted bugs subclass native classes: see tests/conftest.py
    pytest.skip(
        f"plants bugs in subclasses; the pure build runs it ({eventual.BUILD})",
        allow_module_level=True,
    )


class SummingGCounter(GCounter):
    """Merge adds the per-actor counts instead of taking the maximum."""

    def merge(self, other: Self) -> None:
        for actor, count in other._counts.items():
            self._counts[actor] = self._counts.get(actor, 0) + count


class ForgetfulORSet(ORSet):
    """Merge unions the live dots and ignores what the other side has seen: removes never
    travel. Still a semilattice (a grow-only set of dots), so only the delta law sees it."""

    def merge(self, other: Self) -> None:
        for element, dots in other._dots.entries.items():
            for dot in dots:
                if dot not in self._dots.owner:
                    self._dots.entries.setdefault(element, {})[dot] = None
                    self._dots.owner[dot] = element
        self._context.merge(other._context)


class UnsortedGCounter(GCounter):
    """Encodes entries in insertion order: equal states, different bytes."""

    def _payload(self) -> Any:
        return [[actor, count] for actor, count in self._counts.items()]


class LooseDecodeGCounter(GCounter):
    """Lets a bad payload through to a crash instead of a DecodeError."""

    @classmethod
    def _from_payload(cls, payload: Any) -> Self:
        counter = cls()
        for actor, count in payload:  # no shape checks
            counter._counts[actor] = count + 0
        return counter


class LeakyDeltaGCounter(GCounter):
    """Returns the increment amount as the delta instead of the new total."""

    def increment(self, actor: str, n: int = 1) -> GCounter:
        super().increment(actor, n)
        delta = type(self)()
        delta._counts[actor] = n
        return delta


def spec_like(name: str, new: Callable[[], Any], base: str) -> TypeSpec:
    original = next(spec for spec in SPECS if spec.name == base)
    return TypeSpec(name, new, original.operations, original.refusals)


def broken(law_test: Callable[[], None]) -> None:
    with pytest.raises(AssertionError):
        settings(max_examples=500, database=None, report_multiple_bugs=False)(law_test)()


def test_a_summing_counter_breaks_idempotence() -> None:
    spec = spec_like("summing", SummingGCounter, "GCounter")

    @given(data=st.data())
    def law(data: st.DataObject) -> None:
        for state in data.draw(systems(spec)):
            law_idempotent(state)

    broken(law)


def test_a_merge_ignoring_the_causal_context_breaks_the_delta_law() -> None:
    spec = spec_like("forgetful", ForgetfulORSet, "ORSet")

    @given(data=st.data())
    def law(data: st.DataObject) -> None:
        states = data.draw(systems(spec))
        law_delta(spec, states, data.draw(st.integers(0, 2)), data.draw(spec.operations))

    broken(law)


def test_an_unsorted_encoding_breaks_equal_bytes() -> None:
    spec = spec_like("unsorted", UnsortedGCounter, "GCounter")

    @given(data=st.data())
    def law(data: st.DataObject) -> None:
        x, y, _ = data.draw(systems(spec))
        law_commutative(x, y)

    broken(law)


def test_a_wrong_delta_breaks_the_delta_law() -> None:
    spec = TypeSpec(
        "leaky", LeakyDeltaGCounter, op(lambda s, a, _, n: s.increment(a, n), st.integers(1, 3))
    )

    @given(data=st.data())
    def law(data: st.DataObject) -> None:
        law_delta(
            spec, data.draw(systems(spec)), data.draw(st.integers(0, 2)), data.draw(spec.operations)
        )

    broken(law)


def test_a_decoder_without_checks_is_caught_by_the_bad_bytes_law() -> None:
    @given(data=st.binary(max_size=32))
    def law(data: bytes) -> None:
        try:
            law_bad_bytes(LooseDecodeGCounter, bytes((1, 1)) + data)
        except Exception as error:
            if isinstance(error, AssertionError | DecodeError):
                raise
            raise AssertionError(f"raised {type(error).__name__}, not DecodeError") from error

    broken(law)


def test_the_round_trip_law_catches_a_lossy_encoding() -> None:
    class LossyGCounter(GCounter):
        def _payload(self) -> Any:
            return [[actor, 1] for actor, _ in sorted(self._counts.items())]

    with pytest.raises((AssertionError, DecodeError)):
        counter = LossyGCounter()
        counter.increment("a", 5)
        law_round_trip(counter)
