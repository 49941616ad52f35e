"""Golden-byte tests of the Confluent header, vectors written out by hand."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from registry_codecs import FramingError, frame, schema_id_of, unframe
from registry_codecs.framing import header


@pytest.mark.parametrize(
    ("schema_id", "expected"),
    [
        (0, "00 00 00 00 00"),
        (1, "00 00 00 00 01"),
        (255, "00 00 00 00 ff"),
        (256, "00 00 00 01 00"),
        (100_000, "00 00 01 86 a0"),
        (2**31 - 1, "00 7f ff ff ff"),
        (2**32 - 1, "00 ff ff ff ff"),
    ],
)
def test_header_golden_bytes(schema_id: int, expected: str) -> None:
    assert header(schema_id).hex(" ") == expected
    assert frame(schema_id, b"\x02a").hex(" ") == expected + " 02 61"


def test_unframe_reads_id_and_body() -> None:
    schema_id, body = unframe(bytes.fromhex("00 00 00 00 2a 06 66 6f 6f"))
    assert schema_id == 42
    assert bytes(body) == b"\x06foo"


def test_header_only_frame_has_empty_body() -> None:
    schema_id, body = unframe(b"\x00\x00\x00\x00\x07")
    assert (schema_id, bytes(body)) == (7, b"")


def test_empty_buffer_is_a_framing_error_naming_the_length() -> None:
    with pytest.raises(FramingError, match="0 bytes"):
        unframe(b"")


@pytest.mark.parametrize("data", [b"\x00", b"\x00\x00\x00\x01"])
def test_short_buffer_names_its_length(data: bytes) -> None:
    with pytest.raises(FramingError, match=f"{len(data)} bytes"):
        schema_id_of(data)


@pytest.mark.parametrize(("first", "shown"), [(1, "0x01"), (0x7B, "0x7b"), (0xFF, "0xff")])
def test_wrong_magic_byte_names_the_byte(first: int, shown: str) -> None:
    with pytest.raises(FramingError, match=shown):
        unframe(bytes([first, 0, 0, 0, 1, 2]))


def test_framing_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        unframe(b"{}")


@pytest.mark.parametrize("schema_id", [-1, 2**32])
def test_out_of_range_id_is_refused(schema_id: int) -> None:
    with pytest.raises(FramingError, match=str(schema_id)):
        header(schema_id)


@given(st.integers(min_value=0, max_value=2**32 - 1), st.binary(max_size=64))
def test_round_trip(schema_id: int, body: bytes) -> None:
    got_id, got_body = unframe(frame(schema_id, body))
    assert got_id == schema_id
    assert bytes(got_body) == body
