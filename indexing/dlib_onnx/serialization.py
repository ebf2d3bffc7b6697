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


# An integer is 2 to 9 bytes, so the one that crosses into a block of the file starts
# at most 8 bytes before it and ends at one of the block's first 9 bytes.
_MAX_INT_BYTES = 9
# Chains followed from the 9 possible entries of a block merge within ~256 bytes in
# dlib's files (the 5-point predictor: all of them, 99% within 128).
_MERGE_BYTES = 256


def _walk(
    width: NDArray[np.uint8], p: NDArray[np.int32], limit: NDArray[np.int32]
) -> tuple[list[NDArray[np.int32]], NDArray[np.int32]]:
    """Follow every chain in ``p`` while it is before its ``limit``: the offsets
    visited, one array like ``p`` per step (-1 once a chain is done), and where each
    stopped."""
    steps = []
    while (live := p < limit).any():
        steps.append(np.where(live, p, -1))
        p = np.where(live, p + width[p], p)
    return steps, p


def _stack(steps: list[NDArray[np.int32]], shape: tuple[int, ...]) -> NDArray[np.int32]:
    return np.stack(steps) if steps else np.zeros((0, *shape), np.int32)


def integer_offsets(data: bytes, start: int = 0, block: int = 4096) -> NDArray[np.int32]:
    """Where each integer begins in ``data[start:]``, a file section made only of
    integers and ``float_details`` (a shape predictor's trees: millions of them,
    which :class:`DlibStream` reads one Python call at a time).

    Each integer's control byte gives the next one's offset, a chain that cannot be
    split as such. So the bytes are cut into blocks and the chain is followed in all
    blocks at once (each NumPy step advances every block), from each of the 9 offsets
    where it could enter a block. Those 9 chains soon meet, so past ``_MERGE_BYTES``
    only the distinct ones go on. The true entries are then linked block to block."""
    buf = np.frombuffer(data, np.uint8)
    n = len(buf)
    if n >= 2**31 - 16:
        raise DlibFormatError("file too large for 32-bit offsets", 0)
    block = max(block, _MERGE_BYTES)
    bounds = np.arange(start, n, block, dtype=np.int32)
    if not len(bounds):
        return np.zeros(0, np.int32)
    limits = np.append(bounds[1:], np.int32(n))
    # width[p]: the bytes of an integer beginning at p; 0 past the end, where a chain
    # (at most 15 bytes beyond it) then stays.
    width = np.zeros(n + 16, np.uint8)
    np.bitwise_and(buf, 0x0F, out=width[:n])
    width[:n] += 1

    entries = np.minimum(bounds[:, None] + np.arange(_MAX_INT_BYTES, dtype=np.int32), n)
    merge_limit = np.minimum(bounds + _MERGE_BYTES, limits)[:, None]
    head, merged = _walk(width, entries, merge_limit)  # steps of (blocks, 9)
    # Go on from each block's distinct merge points only.
    keys = np.arange(len(bounds), dtype=np.int64)[:, None] * (n + 16) + merged
    distinct, which = np.unique(keys, return_inverse=True)
    which = which.reshape(merged.shape)
    tail, exits = _walk(width, (distinct % (n + 16)).astype(np.int32), limits[distinct // (n + 16)])
    del width

    entry_of, path_of = [], []
    entry = start
    exits_list, which_list, bounds_list = exits.tolist(), which.tolist(), bounds.tolist()
    for k, bound in enumerate(bounds_list):
        j = entry - bound
        if j >= _MAX_INT_BYTES:  # only a control byte claiming 9..15 bytes jumps this far
            raise DlibFormatError("bad integer control byte", bound - 1)
        entry_of.append(j)
        path_of.append(which_list[k][j])
        entry = exits_list[path_of[-1]]
    # Each block's offsets in order (a column per block), -1 where its chain was done.
    head_steps = _stack(head, merged.shape)[:, np.arange(len(bounds)), entry_of]
    del head
    tail_steps = _stack(tail, exits.shape)[:, path_of]
    del tail
    chain = np.concatenate([head_steps, tail_steps]).T.ravel()
    return chain[chain >= 0]


def decode_integers(data: bytes, offsets: NDArray[np.integer], what: str) -> NDArray[np.int64]:
    """The signed integers beginning at ``offsets`` (from :func:`integer_offsets`),
    which must run to the end of ``data``."""
    buf = np.frombuffer(data, np.uint8)
    if len(offsets) == 0:
        return np.zeros(0, np.int64)
    control = buf[offsets]
    size = control & 0x0F
    bad = (size == 0) | (size > 8) | (control & 0x70 != 0)
    if bad.any():
        at = int(offsets[bad.argmax()])
        raise DlibFormatError(f"bad integer control byte 0x{buf[at]:02x} in {what}", at)
    end = int(offsets[-1]) + 1 + int(size[-1])
    if end != len(buf):
        raise DlibFormatError(f"truncated: {what} needs {end - len(buf)} more bytes", len(buf))
    # The 8 bytes after each control byte as one little-endian word (a view with a
    # 1-byte stride, indexed without copying it), shifted up and down to its size.
    padded = np.concatenate([buf, np.zeros(8, np.uint8)])
    at = offsets.astype(np.intp)
    at += 1
    words = np.ndarray((len(buf),), "<u8", padded, strides=(1,))[at]
    del at
    unused_bits = 64 - 8 * size
    np.left_shift(words, unused_bits, out=words)
    np.right_shift(words, unused_bits, out=words)
    value = words.view(np.int64)
    np.negative(value, out=value, where=control >= 0x80)
    return value


def floats_from_details(mantissa: NDArray[np.int64], exponent: NDArray[np.int64]) -> NDArray:
    """``float_details`` pairs as float64, the reserved exponents included."""
    value = np.ldexp(mantissa.astype(np.float64), np.clip(exponent, -1100, 1100))
    value[exponent == _EXP_INF] = math.inf
    value[exponent == _EXP_NINF] = -math.inf
    value[exponent == _EXP_NAN] = math.nan
    return value
