"""Readers for dlib's serialization primitives (``dlib/serialize.h``, ``dlib/cuda/tensor.h``).

dlib writes integers as a control byte followed by little-endian magnitude bytes: the
low 4 bits of the control byte give the number of bytes (1..8), bit 0x80 the sign of a
signed integer. Zero is one byte of magnitude 0 (a size of 0 is an error). Floating
point values are ``float_details``: the signed 64-bit mantissa, then the signed 16-bit
exponent, both as integers, the value being ``mantissa * 2**exponent`` except for three
reserved exponents (inf, -inf, NaN). Strings are an unsigned length then the bytes;
bools are the ASCII characters ``'1'`` and ``'0'``. A tensor is ``int`` version 2, four
``long long`` dimensions, then its values as raw little-endian float32 (not
``float_details``: dlib writes tensors as IEEE floats for compactness).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

# float_details' reserved exponents (dlib/float_details.h).
_EXP_INF = 32000
_EXP_NINF = 32001
_EXP_NAN = 32002


class DlibFormatError(ValueError):
    """The bytes are not what dlib would have written here. ``offset`` is where reading
    stopped, so a truncated or foreign file says where it went wrong."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(f"{message} (at byte {offset})")
        self.offset = offset


@dataclass(frozen=True)
class AliasShape:
    """A dlib ``alias_tensor``: only a shape, a view into a layer's ``params``."""

    num_samples: int
    k: int
    nr: int
    nc: int

    @property
    def size(self) -> int:
        return self.num_samples * self.k * self.nr * self.nc


class DlibStream:
    """A cursor over the bytes of a dlib-serialized object."""

    def __init__(self, data: bytes) -> None:
        self._data = memoryview(data)
        self.offset = 0

    @property
    def remaining(self) -> int:
        return len(self._data) - self.offset

    def _take(self, n: int, what: str) -> memoryview:
        if n > self.remaining:
            raise DlibFormatError(f"truncated: {what} needs {n} bytes", self.offset)
        chunk = self._data[self.offset : self.offset + n]
        self.offset += n
        return chunk

    def _control(self, what: str) -> tuple[int, bool]:
        start = self.offset
        (control,) = self._take(1, what)
        size = control & 0x0F
        if size == 0 or size > 8 or control & 0x70:
            raise DlibFormatError(f"bad integer control byte 0x{control:02x} for {what}", start)
        return size, bool(control & 0x80)

    def read_int(self, what: str = "int") -> int:
        """A signed integer (dlib's ``int``, ``long``, ``long long``, ``int16``, ``int64``)."""
        size, negative = self._control(what)
        value = int.from_bytes(self._take(size, what), "little")
        return -value if negative else value

    def read_uint(self, what: str = "unsigned") -> int:
        """An unsigned integer (``unsigned long``, ``size_t``, ``unsigned int``)."""
        start = self.offset
        size, negative = self._control(what)
        if negative:
            # dlib's unsigned reader keeps 0x80 in the size, which then exceeds 8.
            raise DlibFormatError(f"negative value where {what} must be unsigned", start)
        return int.from_bytes(self._take(size, what), "little")

    def read_float(self, what: str = "float") -> float:
        mantissa = self.read_int(what + " mantissa")
        exponent = self.read_int(what + " exponent")
        if exponent == _EXP_INF:
            return math.inf
        if exponent == _EXP_NINF:
            return -math.inf
        if exponent == _EXP_NAN:
            return math.nan
        return math.ldexp(float(mantissa), exponent)

    def read_bool(self, what: str = "bool") -> bool:
        start = self.offset
        (ch,) = self._take(1, what)
        if ch == ord("1"):
            return True
        if ch == ord("0"):
            return False
        raise DlibFormatError(f"bad bool byte 0x{ch:02x} for {what}", start)

    def read_string(self, what: str = "string") -> str:
        n = self.read_uint(what + " length")
        start = self.offset
        raw = bytes(self._take(n, what))
        try:
            return raw.decode("ascii")
        except UnicodeDecodeError:
            raise DlibFormatError(f"{what} is not ASCII", start) from None

    def expect_string(self, allowed: tuple[str, ...], what: str) -> str:
        start = self.offset
        value = self.read_string(what)
        if value not in allowed:
            raise DlibFormatError(f"expected {what} version {allowed}, found {value!r}", start)
        return value

    def expect_version(self, allowed: tuple[int, ...], what: str) -> int:
        start = self.offset
        version = self.read_int(what + " version")
        if version not in allowed:
            raise DlibFormatError(f"{what} version {version}, expected one of {allowed}", start)
        return version

    def read_tensor(self, what: str = "tensor") -> NDArray[np.float32]:
        """A ``resizable_tensor`` as a (num_samples, k, nr, nc) float32 array."""
        self.expect_version((2,), what)
        dims = tuple(self.read_int(what + " dimension") for _ in range(4))
        if any(d < 0 for d in dims):
            raise DlibFormatError(f"negative {what} dimension {dims}", self.offset)
        count = math.prod(dims)
        raw = self._take(4 * count, what + " values")
        return np.frombuffer(raw, dtype="<f4").astype(np.float32).reshape(dims)

    def read_alias(self, what: str = "alias_tensor") -> AliasShape:
        self.expect_version((1,), what)
        dims = [self.read_int(what + " dimension") for _ in range(4)]
        return AliasShape(*dims)
