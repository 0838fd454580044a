"""aos_sdk._msgpack, the blocking client's codec, against msgspec (the codec of
the kernel and every async peer): each reads what the other writes, malformed
input is a ValueError, never a wrong value."""

from __future__ import annotations

import datetime
import struct
from typing import Any

import msgspec
import pytest
from aos_sdk import _msgpack
from hypothesis import given
from hypothesis import strategies as st

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text()
    | st.binary()
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=20)
        | st.dictionaries(st.text() | st.integers(min_value=-(2**63), max_value=2**63), inner)
    ),
    max_leaves=60,
)
LONG = st.sampled_from([0, 15, 16, 31, 32, 255, 256, 65535, 65536])
"""Lengths at the edges of the fix, 8-, 16- and 32-bit forms."""


@given(VALUES)
def test_each_reads_what_the_other_writes(value: Any) -> None:
    assert _msgpack.unpackb(msgspec.msgpack.encode(value)) == value
    assert msgspec.msgpack.decode(_msgpack.packb(value)) == value


@given(LONG)
def test_every_length_form(n: int) -> None:
    value = {"s": "é" * n, "b": b"x" * n, "a": list(range(n % 300)) * (n // 300 + 1)}
    value["m"] = {str(i): i for i in range(n)}
    assert _msgpack.unpackb(msgspec.msgpack.encode(value)) == value
    assert msgspec.msgpack.decode(_msgpack.packb(value)) == value


@given(
    st.datetimes(
        min_value=datetime.datetime(1900, 1, 1),
        max_value=datetime.datetime(2600, 1, 1),
        timezones=st.just(datetime.UTC),
    )
)
def test_timestamps_in_every_form_read_as_aware_datetimes(when: datetime.datetime) -> None:
    """msgspec writes the 32-, 64- or 96-bit timestamp depending on the instant."""
    assert _msgpack.unpackb(msgspec.msgpack.encode({"at": when})) == {"at": when}


def test_float32_and_tuples() -> None:
    assert _msgpack.unpackb(b"\xca" + struct.pack(">f", 1.5)) == 1.5
    assert msgspec.msgpack.decode(_msgpack.packb((1, "a"))) == [1, "a"]


@given(VALUES)
def test_every_truncation_is_a_value_error(value: Any) -> None:
    data = msgspec.msgpack.encode(value)
    for end in range(len(data)):
        with pytest.raises(ValueError, match="malformed MessagePack"):
            _msgpack.unpackb(data[:end])


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (b"\xc1", "byte 0xc1 at 0 begins no value"),
        (b"\x01\x02", "1 bytes after the value"),
        (b"\xd4\x05\x00", "extension type 5"),
        (b"\x81\x91\x01\x02", "unhashable"),  # a map whose key is an array
        (b"\xa2\xff\xfe", "utf-8"),
    ],
)
def test_malformed_input_is_named(data: bytes, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        _msgpack.unpackb(data)


def test_what_the_format_cannot_hold_is_refused() -> None:
    with pytest.raises(TypeError, match="no encoding for set"):
        _msgpack.packb({"x": {1}})
    with pytest.raises(OverflowError, match="64-bit"):
        _msgpack.packb(2**64)
    with pytest.raises(OverflowError, match="64-bit"):
        _msgpack.packb(-(2**63) - 1)
