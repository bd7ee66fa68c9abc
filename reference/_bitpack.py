"""VERBATIM sample packing (spec §5.4): two's complement, ``width`` bits each, MSB first."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # numpy is imported where arrays are made: vaelac decode needs none
    import numpy as np

__all__ = ["pack_signed", "unpack_small", "packed_size"]


def packed_size(count: int, width: int) -> int:
    """Bytes that ``count`` samples of ``width`` bits occupy, the last byte zero-padded."""
    return (count * width + 7) // 8


def pack_signed(x: np.ndarray, width: int) -> bytes:
    """Pack int64 samples that fit in ``width`` signed bits (1..33)."""
    import numpy as np
    if len(x) == 0:
        return b""
    u = x.astype(np.int64).view(np.uint64) & np.uint64((1 << width) - 1)
    shifts = np.arange(width - 1, -1, -1, dtype=np.uint64)
    bits = ((u[:, None] >> shifts) & np.uint64(1)).astype(np.uint8)
    return np.packbits(bits.reshape(-1)).tobytes()


def unpack_small(data: bytes, count: int, width: int) -> list[int]:
    """Inverse of :func:`pack_signed` as plain ints (the pure-Python kernels' unpack_signed);
    ``data`` must hold exactly ``packed_size`` bytes."""
    value = int.from_bytes(data, "big") >> (8 * len(data) - count * width)
    mask, sign = (1 << width) - 1, 1 << (width - 1)
    out = []
    for i in range(count - 1, -1, -1):
        x = (value >> (i * width)) & mask
        out.append(x - 2 * sign if x & sign else x)
    return out
