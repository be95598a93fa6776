"""Internode frames: every message type round-trips; bad bytes only ever give WireError."""

import contextlib
import dataclasses
import typing

import pytest
from hypothesis import given
from hypothesis import strategies as st

import eventual
from eventual.clocks import VersionVector
from eventual.core import Level, Request, Result
from eventual.core import messages as M  # noqa: N812
from eventual.core import ops as O  # noqa: N812
from eventual.core.membership import MemberEntry, MemberStatus
from eventual.core.swim import Status, SwimAck, SwimPing, SwimPingReq, Update
from eventual.server import wire
from eventual.server.wire import WireError, decode_message, encode_message

EXAMPLES: list[M.Message] = [
    SwimPing(1, (Update("n1", 3, Status.SUSPECT),)),
    SwimAck(2, ()),
    SwimPingReq(3, "n2", (Update("n3", 0, Status.DEAD), Update("n4", 1, Status.ALIVE))),
    M.Forward(4, Request(9, O.SetAdd(b"k", (b"a", b"b")), Level.LOCAL_QUORUM, n=3, w=2)),
    M.Forward(5, Request(10, O.ObjectPut(b"k", b"v", VersionVector({"n1": 2})), Level.ALL)),
    M.Forward(6, Request(11, O.HllMerge(b"k", b"\x01\x02"))),
    M.ForwardReply(4, Result(True, 3, context=b"c", dot=("n1", 5), answered=2, kind="set")),
    M.ForwardReply(5, Result(False, error="ERR no")),
    M.ReplicaWrite(7, b"k", b"record", 123, "n3"),
    M.WriteAck(7),
    M.ReplicaRead(8, b"k"),
    M.ReplicaRead(8, b"k", (b"member", b"other")),
    M.ReplicaRead(8, b"k", ()),
    M.ReadReply(8, None),
    M.ReadReply(8, b"projection", 1_000_000, 2**64 - 1),
    M.Forward(12, Request(13, O.Get(b"k", (b"f",)), Level.ONE)),
    M.ForwardReply(12, Result(True, {b"f": b"v"}, kind="hash", size=3)),
    M.HintHandoff(b"k", b"r"),
    M.HintAck(b"k", 99),
    M.AeRoot(1, (1, 2, 3)),
    M.AeGroups(1, ((0, (1, 2)),)),
    M.AeLeaves(1, ((3, ((b"k", 5),)),)),
    M.AePush(1, ((b"k", b"r"),), (b"w",)),
    M.AeRecords(1, ((b"k", b"r"),)),
    M.AeKeySync(1, b"k", b"head", 2**63, answer=True),
    M.Probe(7, "key", b"inventory:lamp"),
    M.ProbeReply(7, b"\x81\xa4held\xc0"),
    M.KeysRead(8, 3, 2**63, 1_000),
    M.KeysReply(8, ((b"k1", "string"), (b"k2", "set")), 2**63 + 5, 2),
    M.Forward(9, Request(11, O.StringIncr(b"k", -3), Level.QUORUM)),
    M.Publish(b"news", b"hello"),
    M.ReapCheck(b"k", 1),
    M.ReapAck(b"k", 1, True),
    M.ReapCommit(b"k", 1),
    M.ClusterGossip(
        (
            MemberEntry("n1", "eu", "10.0.0.1:9001", 0, MemberStatus.ACTIVE, 3, 77),
            MemberEntry("n4", "us", "", 1, MemberStatus.JOINING, 0),
        )
    ),
]


@pytest.mark.skipif(bool(eventual.COMPILED), reason="the compiled build keeps no type hints")
def test_the_wire_schema_matches_the_dataclasses() -> None:
    # The wire's table of fields is written out (the compiled build cannot read hints): it
    # must say what the dataclasses say, field by field and in order.
    for cls, fields in wire._FIELDS.items():
        hints = typing.get_type_hints(cls)
        assert [name for name, _ in fields] == [f.name for f in dataclasses.fields(cls)], cls
        assert dict(fields) == hints, cls
    assert set(typing.get_args(M.Message)) <= set(wire._FIELDS)
    assert set(typing.get_args(O.Operation)) <= set(wire._FIELDS)


def test_every_message_type_has_an_example() -> None:
    assert {type(m) for m in EXAMPLES} == set(typing.get_args(M.Message))


@pytest.mark.parametrize("message", EXAMPLES, ids=lambda m: type(m).__name__)
def test_messages_round_trip(message: M.Message) -> None:
    frame = encode_message(message)
    assert int.from_bytes(frame[:4], "big") == len(frame) - 4
    assert decode_message(frame[4:]) == message


@given(st.binary(max_size=200))
def test_garbage_gives_a_wire_error_and_nothing_else(garbage: bytes) -> None:
    with contextlib.suppress(WireError):  # anything else escaping fails the test
        decode_message(garbage)


@given(st.sampled_from(EXAMPLES), st.data())
def test_corrupted_frames_give_a_wire_error_or_a_valid_message(
    message: M.Message, data: st.DataObject
) -> None:
    body = bytearray(encode_message(message)[4:])
    position = data.draw(st.integers(0, len(body) - 1))
    body[position] = data.draw(st.integers(0, 255))
    try:
        decoded = decode_message(bytes(body))
    except WireError:
        return
    assert type(decoded) in typing.get_args(M.Message)
