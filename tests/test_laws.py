"""Every replicated type obeys the lattice, delta and encoding laws (see laws.py)."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from laws import (
    REPLICAS,
    TypeSpec,
    any_bytes,
    law_associative,
    law_bad_bytes,
    law_commutative,
    law_copy_independent,
    law_delta,
    law_idempotent,
    law_merge_leaves_argument,
    law_round_trip,
    systems,
)
from specs import SPECS

every_type = pytest.mark.parametrize("spec", SPECS, ids=[spec.name for spec in SPECS])
replica = st.integers(0, REPLICAS - 1)


@every_type
@given(data=st.data())
def test_merge_is_idempotent(spec: TypeSpec, data: st.DataObject) -> None:
    for state in data.draw(systems(spec)):
        law_idempotent(state)


@every_type
@given(data=st.data())
def test_merge_is_commutative(spec: TypeSpec, data: st.DataObject) -> None:
    x, y, _ = data.draw(systems(spec))
    law_commutative(x, y)


@every_type
@given(data=st.data())
def test_merge_is_associative(spec: TypeSpec, data: st.DataObject) -> None:
    x, y, z = data.draw(systems(spec))
    law_associative(x, y, z)


@every_type
@given(data=st.data())
def test_merge_leaves_its_argument_alone(spec: TypeSpec, data: st.DataObject) -> None:
    x, y, _ = data.draw(systems(spec))
    law_merge_leaves_argument(spec, x, y, data.draw(spec.operations))


@every_type
@given(data=st.data())
def test_delta_equals_merging_the_mutated_state(spec: TypeSpec, data: st.DataObject) -> None:
    states = data.draw(systems(spec))
    law_delta(spec, states, data.draw(replica), data.draw(spec.operations))


@every_type
@given(data=st.data())
def test_encoding_round_trips(spec: TypeSpec, data: st.DataObject) -> None:
    for state in data.draw(systems(spec)):
        law_round_trip(state)


@every_type
@given(data=st.data())
def test_copy_is_independent(spec: TypeSpec, data: st.DataObject) -> None:
    x = data.draw(systems(spec))[0]
    law_copy_independent(spec, x, data.draw(spec.operations))


@every_type
@given(data=st.data())
def test_bad_bytes_raise_only_decode_error(spec: TypeSpec, data: st.DataObject) -> None:
    law_bad_bytes(type(spec.new()), data.draw(any_bytes(spec)))


@every_type
def test_empty_state_round_trips(spec: TypeSpec) -> None:
    law_round_trip(spec.new())
    law_idempotent(spec.new())
