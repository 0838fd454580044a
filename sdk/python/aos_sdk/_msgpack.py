"""MessagePack for :mod:`aos_sdk.blocking`, on ``struct`` alone.

Skill scripts start a process per command, and the ``msgpack`` package's
import (its ``datetime``, ``collections`` and extension types) costs 4-5 ms of
every start: a fifth of a warm ``mcp call``. The wire's frames need only the
format's plain types, so they are encoded and decoded here, the same bytes
msgspec reads and writes (``tests/test_msgpack.py`` checks both directions
against it): nil, booleans, integers up to 64 bits, floats, str, bin, arrays
and maps (any hashable key); and on decoding the timestamp extension (-1), as
an aware UTC ``datetime``.
"""

from __future__ import annotations

import struct

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: importing typing costs milliseconds
    from typing import Any

_B = struct.Struct(">B")
_H = struct.Struct(">H")
_I = struct.Struct(">I")
_Q = struct.Struct(">Q")
_b = struct.Struct(">b")
_h = struct.Struct(">h")
_i = struct.Struct(">i")
_q = struct.Struct(">q")
_f = struct.Struct(">f")
_d = struct.Struct(">d")

# -- encoding ------------------------------------------------------------------
_UNSIGNED = ((0xCC, _B), (0xCD, _H), (0xCE, _I), (0xCF, _Q))
_SIGNED = ((0xD0, _b), (0xD1, _h), (0xD2, _i), (0xD3, _q))


def packb(value: Any) -> bytes:
    """``value`` as MessagePack (TypeError for a type the format has no place for)."""
    out = bytearray()
    _pack(value, out)
    return bytes(out)


def _pack(value: Any, out: bytearray) -> None:
    if value is None:
        out.append(0xC0)
    elif value is True or value is False:
        out.append(0xC3 if value else 0xC2)
    elif isinstance(value, int):
        _pack_int(value, out)
    elif isinstance(value, float):
        out.append(0xCB)
        out += _d.pack(value)
    elif isinstance(value, str):
        _header(out, len(data := value.encode()), 0xA0, 32, (0xD9, 0xDA, 0xDB))
        out += data
    elif isinstance(value, bytes | bytearray | memoryview):
        _header(out, len(data := bytes(value)), None, 0, (0xC4, 0xC5, 0xC6))
        out += data
    elif isinstance(value, dict):
        _header(out, len(value), 0x80, 16, (None, 0xDE, 0xDF))
        for key, item in value.items():
            _pack(key, out)
            _pack(item, out)
    elif isinstance(value, list | tuple):
        _header(out, len(value), 0x90, 16, (None, 0xDC, 0xDD))
        for item in value:
            _pack(item, out)
    else:
        raise TypeError(f"MessagePack has no encoding for {type(value).__name__}")


def _pack_int(value: int, out: bytearray) -> None:
    if -32 <= value < 128:  # a positive or negative fixint: the byte itself
        out.append(value & 0xFF)
        return
    for marker, shape in _UNSIGNED if value > 0 else _SIGNED:  # the narrowest that holds it
        try:
            packed = shape.pack(value)
        except struct.error:
            continue
        out.append(marker)
        out += packed
        return
    raise OverflowError(f"{value} does not fit MessagePack's 64-bit integers")


def _header(
    out: bytearray, n: int, fix: int | None, fix_limit: int, markers: tuple[int | None, ...]
) -> None:
    """A str/bin/array/map header: the fix form below ``fix_limit``, else the
    8-, 16- or 32-bit length (``None``: the family has no such form)."""
    if fix is not None and n < fix_limit:
        out.append(fix | n)
        return
    for marker, shape in zip(markers, (_B, _H, _I), strict=True):
        if marker is not None and n < 1 << (8 * shape.size):
            out.append(marker)
            out += shape.pack(n)
            return
    raise ValueError(f"{n} items or bytes are more than MessagePack can frame")


# -- decoding ------------------------------------------------------------------
def unpackb(data: bytes) -> Any:
    """The one value ``data`` holds; ValueError when it is not exactly one
    well-formed MessagePack value of the kinds above."""
    try:
        value, end = _unpack(data, 0)
    except (ValueError, struct.error, IndexError, TypeError, RecursionError) as exc:
        raise ValueError(f"malformed MessagePack: {exc}") from None
    if end != len(data):
        raise ValueError(f"malformed MessagePack: {len(data) - end} bytes after the value")
    return value


def _unpack(data: bytes, at: int) -> tuple[Any, int]:
    marker = data[at]
    at += 1
    if marker < 0x80:  # positive fixint
        return marker, at
    if marker >= 0xE0:  # negative fixint
        return marker - 0x100, at
    if marker < 0xC0:  # fixmap, fixarray, fixstr: the length is in the marker
        if marker < 0xA0:
            return (_map if marker < 0x90 else _array)(data, at, marker & 0x0F)
        return _text(data, at, marker & 0x1F)
    if marker in _CONSTANTS:
        return _CONSTANTS[marker], at
    if shape := _NUMBERS.get(marker):
        return shape.unpack_from(data, at)[0], at + shape.size
    if sized := _SIZED.get(marker):
        shape, read = sized
        return read(data, at + shape.size, shape.unpack_from(data, at)[0])
    if n := _FIXEXT.get(marker):
        return _ext(data, at, n)
    raise ValueError(f"byte 0x{marker:02x} at {at - 1} begins no value")


def _take(data: bytes, at: int, n: int) -> bytes:
    if at + n > len(data):
        raise ValueError(f"{n} bytes announced at {at}, {len(data) - at} left")
    return bytes(data[at : at + n])


def _bin(data: bytes, at: int, n: int) -> tuple[bytes, int]:
    return _take(data, at, n), at + n


def _text(data: bytes, at: int, n: int) -> tuple[str, int]:
    return _take(data, at, n).decode(), at + n


def _array(data: bytes, at: int, n: int) -> tuple[list[Any], int]:
    items: list[Any] = []
    for _ in range(n):
        item, at = _unpack(data, at)
        items.append(item)
    return items, at


def _map(data: bytes, at: int, n: int) -> tuple[dict[Any, Any], int]:
    result: dict[Any, Any] = {}
    for _ in range(n):
        key, at = _unpack(data, at)
        result[key], at = _unpack(data, at)
    return result, at


def _ext(data: bytes, at: int, n: int) -> tuple[Any, int]:
    """The timestamp extension (-1) in its 32-, 64- or 96-bit form; no other."""
    code = _b.unpack_from(data, at)[0]
    body = _take(data, at + 1, n)
    if code != _TIMESTAMP or n not in (4, 8, 12):
        raise ValueError(f"extension type {code} ({n} bytes) is not one the protocol uses")
    if n == 4:
        seconds, nanoseconds = _I.unpack(body)[0], 0
    elif n == 8:
        both = _Q.unpack(body)[0]
        seconds, nanoseconds = both & 0x3_FFFF_FFFF, both >> 34
    else:
        nanoseconds, seconds = _I.unpack_from(body)[0], _q.unpack_from(body, 4)[0]
    import datetime  # only a timestamp pays for it

    epoch = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
    return epoch + datetime.timedelta(seconds=seconds, microseconds=nanoseconds // 1000), at + 1 + n


_CONSTANTS = {0xC0: None, 0xC2: False, 0xC3: True}
_NUMBERS = {
    0xCA: _f, 0xCB: _d, 0xCC: _B, 0xCD: _H, 0xCE: _I, 0xCF: _Q,
    0xD0: _b, 0xD1: _h, 0xD2: _i, 0xD3: _q,
}  # fmt: skip
"""Markers followed by one fixed-width number, which is the value."""
_SIZED = {
    0xC4: (_B, _bin), 0xC5: (_H, _bin), 0xC6: (_I, _bin),
    0xC7: (_B, _ext), 0xC8: (_H, _ext), 0xC9: (_I, _ext),
    0xD9: (_B, _text), 0xDA: (_H, _text), 0xDB: (_I, _text),
    0xDC: (_H, _array), 0xDD: (_I, _array), 0xDE: (_H, _map), 0xDF: (_I, _map),
}  # fmt: skip
"""Markers followed by a length, then what it counts: how each is read."""
_FIXEXT = {0xD4: 1, 0xD5: 2, 0xD6: 4, 0xD7: 8, 0xD8: 16}
_TIMESTAMP = -1
