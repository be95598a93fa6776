"""Fuzzing the decoders that read what a client, a peer or the disk hands a node, for a bounded
number of examples (the hypothesis profile: 200 in CI): the Redis request parser, stored and
replicated records, and the cluster state gossiped between members. The internode frame
decoder and the CRDT decoders are fuzzed in ``test_wire.py`` and the laws; the HTTP API, by
schemathesis against its own OpenAPI document, in ``test_api_fuzz.py``.

Each property says what must hold for any input: the decoder answers or raises its own error
(ProtocolError, DecodeError), never another exception, and a valid stream cut anywhere parses
to exactly what was sent."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from eventual.codec import DecodeError
from eventual.core import ops as O  # noqa: N812
from eventual.core.membership import ClusterState
from eventual.core.record import Record
from eventual.server.resp import ProtocolError, RequestReader

arguments = st.lists(st.binary(max_size=40), min_size=1, max_size=6)


def multibulk(args: list[bytes]) -> bytes:
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)


def feed_in_pieces(reader: RequestReader, stream: bytes, cuts: list[int]) -> list[list[bytes]]:
    commands = []
    start = 0
    for cut in [*sorted(set(cuts)), len(stream)]:
        if start < cut <= len(stream):
            commands += reader.feed(stream[start:cut])
            start = cut
    return commands


@given(st.lists(arguments, min_size=1, max_size=8), st.lists(st.integers(0, 2000), max_size=12))
def test_a_stream_of_commands_cut_anywhere_parses_to_exactly_those_commands(
    commands: list[list[bytes]], cuts: list[int]
) -> None:
    stream = b"".join(multibulk(c) for c in commands)
    assert feed_in_pieces(RequestReader(), stream, cuts) == commands


@given(
    st.lists(st.text(alphabet="abcXYZ09 _-", min_size=1, max_size=20), min_size=1, max_size=5),
    st.lists(st.integers(0, 200), max_size=6),
)
def test_inline_commands_then_multibulk_ones_parse(lines: list[str], cuts: list[int]) -> None:
    inline = [line for line in lines if line.strip()]
    stream = b"".join(line.encode() + b"\r\n" for line in inline) + multibulk([b"GET", b"k"])
    expected = [line.encode().split() for line in inline] + [[b"GET", b"k"]]
    assert feed_in_pieces(RequestReader(), stream, cuts) == expected


@given(st.lists(st.binary(max_size=300), max_size=6))
def test_any_bytes_give_commands_or_a_protocol_error_and_nothing_else(chunks: list[bytes]) -> None:
    reader = RequestReader()
    try:
        for chunk in chunks:
            for command in reader.feed(chunk):
                assert command and all(isinstance(a, bytes) for a in command)
    except ProtocolError:
        pass


@given(st.lists(arguments, min_size=1, max_size=4), st.data())
def test_a_corrupted_stream_gives_commands_or_a_protocol_error(
    commands: list[list[bytes]], data: st.DataObject
) -> None:
    stream = bytearray(b"".join(multibulk(c) for c in commands))
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, len(stream) - 1))
        stream[position] = data.draw(st.integers(0, 255))
    try:
        for command in RequestReader().feed(bytes(stream)):
            assert all(isinstance(a, bytes) for a in command)
    except ProtocolError:
        pass


def _records() -> list[bytes]:
    """Stored forms of records of every kind, to corrupt."""
    made = []
    mutations: list[O.Mutation] = [
        O.StringSet(b"k", b"value"),
        O.CounterAdd(b"k", 5),
        O.SetAdd(b"k", (b"a", b"b")),
        O.HashSet(b"k", ((b"f", b"v"), (b"g", b"w"))),
        O.HllAdd(b"k", (b"x", b"y")),
    ]
    for mutation in mutations:
        applied = O.apply(None, mutation, "n1", 1_000, 1_000)
        made.append(applied.record.to_bytes())
    return made


RECORDS = _records()


@pytest.mark.parametrize("index", range(len(RECORDS)))
def test_the_sample_records_decode(index: int) -> None:
    assert Record.from_bytes(RECORDS[index]).to_bytes() == RECORDS[index]


@given(st.sampled_from(RECORDS), st.data())
def test_a_corrupted_record_gives_a_decode_error_or_a_record(
    stored: bytes, data: st.DataObject
) -> None:
    corrupted = bytearray(stored)
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, len(corrupted) - 1))
        corrupted[position] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(corrupted)))
    with contextlib.suppress(DecodeError):
        Record.from_bytes(bytes(corrupted[:cut]))


@given(st.binary(max_size=200))
def test_random_bytes_are_no_record_and_no_cluster_state(garbage: bytes) -> None:
    with contextlib.suppress(DecodeError):
        Record.from_bytes(garbage)
    with contextlib.suppress(DecodeError):
        ClusterState.decode(garbage)
