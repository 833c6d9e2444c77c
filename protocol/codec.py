"""Big-endian, length-prefixed field encoding shared by the wire format, certificates and records.

Every variable-length field carries an explicit length, so a decoder never guesses, and the
encoding of a value is unique (decode followed by encode gives back the same bytes).
"""

from __future__ import annotations

import base64
import binascii
import re
import struct

from protocol.errors import WireError

ID_PATTERN = re.compile(r"[A-Za-z0-9._-]{1,64}")


def validate_id(value: str, what: str) -> str:
    """Return `value` if it is a valid Lightfence id (`[A-Za-z0-9._-]{1,64}`), else WireError."""
    if not isinstance(value, str) or ID_PATTERN.fullmatch(value) is None:
        raise WireError(f"invalid {what} {value!r}: ids are 1-64 characters of [A-Za-z0-9._-]")
    return value


class Writer:
    """Accumulates fields; `bytes()` returns the encoding."""

    __slots__ = ("_parts",)

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def raw(self, data: bytes) -> Writer:
        self._parts.append(data)
        return self

    def u8(self, value: int) -> Writer:
        self._parts.append(struct.pack(">B", value))
        return self

    def u16(self, value: int) -> Writer:
        self._parts.append(struct.pack(">H", value))
        return self

    def u64(self, value: int) -> Writer:
        self._parts.append(struct.pack(">Q", value))
        return self

    def i64(self, value: int) -> Writer:
        self._parts.append(struct.pack(">q", value))
        return self

    def f64(self, value: float) -> Writer:
        self._parts.append(struct.pack(">d", value))
        return self

    def short_str(self, value: str) -> Writer:
        """A string of at most 255 UTF-8 bytes, prefixed by a one-byte length."""
        data = value.encode("utf-8")
        if len(data) > 255:
            raise WireError(f"string of {len(data)} bytes does not fit a one-byte length")
        return self.u8(len(data)).raw(data)

    def blob(self, value: bytes) -> Writer:
        """Bytes of at most 65535, prefixed by a two-byte length."""
        if len(value) > 0xFFFF:
            raise WireError(f"field of {len(value)} bytes does not fit a two-byte length")
        return self.u16(len(value)).raw(value)

    def bytes(self) -> bytes:
        return b"".join(self._parts)


class Reader:
    """Reads fields from `data`; every short read raises WireError naming the field."""

    __slots__ = ("_data", "_offset")

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._offset = 0

    @property
    def offset(self) -> int:
        return self._offset

    def raw(self, size: int, what: str) -> bytes:
        end = self._offset + size
        if end > len(self._data):
            raise WireError(
                f"truncated: {what} needs {size} bytes at offset {self._offset}, "
                f"{len(self._data) - self._offset} left"
            )
        chunk = self._data[self._offset : end]
        self._offset = end
        return chunk

    def u8(self, what: str) -> int:
        return int(self.raw(1, what)[0])

    def u16(self, what: str) -> int:
        return int(struct.unpack(">H", self.raw(2, what))[0])

    def u64(self, what: str) -> int:
        return int(struct.unpack(">Q", self.raw(8, what))[0])

    def i64(self, what: str) -> int:
        return int(struct.unpack(">q", self.raw(8, what))[0])

    def f64(self, what: str) -> float:
        return float(struct.unpack(">d", self.raw(8, what))[0])

    def short_str(self, what: str) -> str:
        data = self.raw(self.u8(what), what)
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise WireError(f"{what} is not valid UTF-8") from exc

    def ident(self, what: str) -> str:
        return validate_id(self.short_str(what), what)

    def blob(self, what: str) -> bytes:
        return self.raw(self.u16(what), what)

    def end(self) -> None:
        """Trailing bytes make an encoding ambiguous, so they are an error."""
        if self._offset != len(self._data):
            raise WireError(f"{len(self._data) - self._offset} trailing bytes")


def to_b64(data: bytes) -> str:
    """Standard base64 with padding: the one text encoding of bytes in Lightfence JSON."""
    return base64.b64encode(data).decode("ascii")


def from_b64(value: object, what: str, size: int | None = None) -> bytes:
    """Decode base64 `value`, checking the length when `size` is given; WireError otherwise."""
    if not isinstance(value, str):
        raise WireError(f"{what} must be a base64 string")
    try:  # what `base64.b64decode(..., validate=True)` runs, without its conversions
        data = binascii.a2b_base64(value, strict_mode=True)
    except ValueError as exc:  # binascii.Error, or a str with non-ASCII characters
        raise WireError(f"{what} is not valid base64") from exc
    if size is not None and len(data) != size:
        raise WireError(f"{what} must be {size} bytes, got {len(data)}")
    return data
