"""Integrity checks (spec §5.1, §5.5, §4.2): header CRC-8, frame CRC-32 and the PCM MD5."""

from __future__ import annotations

import hashlib
import zlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # numpy is imported where arrays are made: vaelac decode needs none
    import numpy as np

__all__ = ["crc8", "crc32", "PcmDigest", "pcm_bytes"]


def _crc8_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
        table.append(crc)
    return table


_CRC8_TABLE = _crc8_table()


def crc8(data: bytes) -> int:
    """CRC-8, polynomial x^8 + x^2 + x + 1 (0x07), initial value 0, no reflection, no final XOR."""
    crc = 0
    for byte in data:
        crc = _CRC8_TABLE[crc ^ byte]
    return crc


def crc32(data: bytes, value: int = 0) -> int:
    """CRC-32 as in zlib/PNG (polynomial 0x04C11DB7 reflected, initial and final XOR 0xFFFFFFFF)."""
    return zlib.crc32(data, value)


def pcm_bytes(pcm: np.ndarray, bits_per_sample: int) -> bytes:
    """The byte image the PCM MD5 covers (§4.2): interleaved, little-endian, ceil(bits/8) bytes."""
    width = (bits_per_sample + 7) // 8
    if width == 1:
        return pcm.astype("<i1").tobytes()
    if width == 2:
        return pcm.astype("<i2").tobytes()
    if width == 4:
        return pcm.astype("<i4").tobytes()
    return _pack_int24(pcm)


def _pack_int24(pcm: np.ndarray) -> bytes:
    """Little-endian 3-byte two's complement of each value, in order. Three byte-plane stores
    into a contiguous (n, 3) array are ~4x faster than copying 3 of every 4 bytes of an int32
    view (numpy copies such strided 3-byte rows element by element)."""
    import numpy as np
    v = np.asarray(pcm, dtype=np.int32).reshape(-1)
    out = np.empty((v.size, 3), np.uint8)
    out[:, 0] = v
    out[:, 1] = v >> 8
    out[:, 2] = v >> 16
    return out.tobytes()


class PcmDigest:
    """Incremental MD5 of decoded or input PCM, as FLAC computes its STREAMINFO MD5."""

    def __init__(self, bits_per_sample: int):
        self.bits_per_sample = bits_per_sample
        self._md5 = hashlib.md5()

    def update(self, pcm: np.ndarray) -> None:
        self._md5.update(pcm_bytes(pcm, self.bits_per_sample))

    def update_image(self, image: bytes | bytearray) -> None:
        """Add PCM already in the byte image of :func:`pcm_bytes`."""
        self._md5.update(image)

    def digest(self) -> bytes:
        return self._md5.digest()
