"""Stored text that any Python string survives, on every backend.

Two kinds of character cannot be stored as they are: NUL (PostgreSQL's ``text``
and ``jsonb`` refuse it) and lone surrogates (what bytes that are not UTF-8
become under Python's ``surrogateescape``; UTF-8 cannot encode them). The store
writes each as U+E000 followed by the four hex digits of its code point, and
U+E000 itself the same way, so that the text read back is the text written.
Strings without any of the three are stored as they are: the rule costs a
substring test on the common path.
"""

from __future__ import annotations

import re
from typing import Any, TypeVar

import msgspec

ESCAPE = "\ue000"
_UNSAFE = re.compile("[\x00\ue000\ud800-\udfff]")
_ESCAPED = re.compile("\ue000([0-9a-f]{4})")
_encoder = msgspec.json.Encoder()
_any = msgspec.json.Decoder()
T = TypeVar("T")


def escape(text: str) -> str:
    """``text`` with NUL, lone surrogates and U+E000 written as U+E000 + 4 hex digits."""
    return _UNSAFE.sub(lambda m: f"{ESCAPE}{ord(m.group()):04x}", text)


def unescape(text: str) -> str:
    """The inverse of :func:`escape`."""
    return _ESCAPED.sub(lambda m: chr(int(m.group(1), 16)), text) if ESCAPE in text else text


def encode(value: Any) -> str:
    """JSON text of ``value`` (a struct or plain data), its strings escaped where needed."""
    try:
        text = _encoder.encode(value).decode()
    except UnicodeEncodeError:  # a lone surrogate somewhere
        text = ""
    if text and "\\u0000" not in text and ESCAPE not in text:
        return text
    return _encoder.encode(_map_strings(msgspec.to_builtins(value), escape)).decode()


def decode(raw: str | bytes, decoder: msgspec.json.Decoder[T]) -> T:
    """What :func:`encode` wrote, as the decoder's type."""
    text = raw.decode() if isinstance(raw, bytes) else raw
    if ESCAPE not in text:
        return decoder.decode(text)
    return msgspec.convert(_map_strings(_any.decode(text), unescape), decoder.type)


def _map_strings(value: Any, change: Any) -> Any:
    if isinstance(value, str):
        return change(value)
    if isinstance(value, dict):
        return {change(k): _map_strings(v, change) for k, v in value.items()}  # type: ignore[misc]
    if isinstance(value, list):
        return [_map_strings(v, change) for v in value]  # type: ignore[misc]
    return value
