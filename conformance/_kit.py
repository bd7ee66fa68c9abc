"""What the conformance kit needs of its own, independent of the reference codec: WAV I/O,
the PCM MD5 of spec §4.2, CRC-8 and signals. Standard library and numpy only."""

from __future__ import annotations

import hashlib
import struct

import numpy as np

__all__ = ["pcm_md5", "crc8", "read_wav", "write_wav", "signal"]

_GUID_PCM_TAIL = bytes.fromhex("000000001000800000aa00389b71")


def pcm_md5(pcm: np.ndarray, bits: int) -> str:
    """Hex MD5 over interleaved little-endian samples of ceil(bits/8) bytes (spec §4.2)."""
    width = (bits + 7) // 8
    wide = np.ascontiguousarray(pcm, dtype="<i8").view(np.uint8).reshape(-1, 8)
    return hashlib.md5(wide[:, :width].tobytes()).hexdigest()


def crc8(data: bytes) -> int:
    """CRC-8, polynomial 0x07, initial 0 (spec §5.1)."""
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def read_wav(path) -> tuple[np.ndarray, int, int]:
    """(int64 PCM of shape (frames, channels), sample_rate, valid bits) of a PCM WAV file."""
    data = open(path, "rb").read()
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise ValueError("not a RIFF/WAVE file")
    pos, fmt = 12, None
    while pos + 8 <= len(data):
        cid, size = data[pos:pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        body = data[pos + 8:pos + 8 + size] if size != 0xFFFFFFFF else data[pos + 8:]
        if cid == b"fmt ":
            tag, channels, rate, _, align, container = struct.unpack_from("<HHIIHH", body)
            valid = container
            if tag == 0xFFFE:
                valid = struct.unpack_from("<H", body, 18)[0] or container
                if body[26:40] != _GUID_PCM_TAIL:
                    raise ValueError("EXTENSIBLE subformat is not PCM")
            elif tag != 1:
                raise ValueError(f"format tag {tag} is not integer PCM")
            fmt = (channels, rate, container, valid, align)
        elif cid == b"data":
            if fmt is None:
                raise ValueError("data before fmt")
            channels, rate, container, valid, align = fmt
            body = body[: len(body) - len(body) % align]
            raw = np.frombuffer(body, np.uint8).reshape(-1, container // 8).astype(np.int64)
            value = np.zeros(len(raw), np.int64)
            for i in range(container // 8):
                value |= raw[:, i] << (8 * i)
            if container == 8:
                value -= 128
            else:
                value = np.where(value >= 1 << (container - 1), value - (1 << container), value)
            return (value >> (container - valid)).reshape(-1, channels), rate, valid
        pos += 8 + size + (size & 1)
    raise ValueError("no data chunk")


def write_wav(path, pcm: np.ndarray, rate: int, bits: int) -> None:
    """PCM (EXTENSIBLE when bits is not 8/16/24/32 or channels > 2), samples left-justified."""
    channels = pcm.shape[1]
    container = 8 * ((bits + 7) // 8)
    align = channels * container // 8
    values = np.ascontiguousarray(pcm, dtype=np.int64) << (container - bits)  # any layout
    if container == 8:
        values = values + 128
    raw = values.astype("<i8").view(np.uint8).reshape(-1, 8)[:, : container // 8].tobytes()
    byte_rate = min(rate * align, 0xFFFFFFFF)  # informative field; huge rates overflow it
    if bits != container or channels > 2:
        fmt = struct.pack("<HHIIHHHHI", 0xFFFE, channels, rate, byte_rate, align, container,
                          22, bits, 0) + b"\x01\x00" + _GUID_PCM_TAIL
    else:
        fmt = struct.pack("<HHIIHH", 1, channels, rate, byte_rate, align, container)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack(
        "<I", len(raw)) + raw + (b"\0" if len(raw) & 1 else b"")
    with open(path, "wb") as f:
        f.write(b"RIFF" + struct.pack("<I", len(body)) + body)


def signal(kind: str, n: int, channels: int, bits: int, seed: int) -> np.ndarray:
    """Integer-native test signals (no float rounding at 32-bit extremes)."""
    rng = np.random.default_rng(seed)
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    t = np.arange(n)[:, None] + 13 * np.arange(channels)[None, :]
    if kind == "silence":
        x = np.zeros((n, channels), np.int64)
    elif kind == "dc":
        x = np.full((n, channels), int(rng.integers(lo, hi + 1)), np.int64)
    elif kind == "extremes":
        x = np.where(rng.integers(0, 2, (n, channels)) == 1, hi, lo).astype(np.int64)
    elif kind == "noise":
        x = rng.integers(lo, hi + 1, (n, channels), dtype=np.int64)
    elif kind == "walk":
        step = max(1, (hi - lo) >> 7)
        x = np.cumsum(rng.integers(-step, step + 1, (n, channels)), axis=0)
    elif kind == "wasted":
        k = int(rng.integers(1, bits)) if bits > 1 else 0
        x = rng.integers(lo >> k, (hi >> k) + 1, (n, channels), dtype=np.int64) << k
    else:  # sine, chirp, clipped
        freq = 0.003 + 0.1 * rng.random()
        phase = t * freq * ((1 + t / max(n, 1)) if kind == "chirp" else 1)
        amp = (hi - lo) / 2 * (1.5 if kind == "clipped" else 0.8)
        x = np.round(np.sin(phase) * amp).astype(np.int64)
    return np.clip(x, lo, hi)
