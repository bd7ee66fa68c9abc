"""Integer-native test signals, an independent PCM MD5 (not vaelac.checksum) and a pipe."""

import hashlib
import io

import numpy as np
from hypothesis import strategies as st

KINDS = ("silence", "dc", "extremes", "noise", "sine", "chirp", "clipped", "walk", "wasted")


def make_signal(kind: str, n: int, channels: int, bits: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    t = np.arange(n)[:, None] + np.arange(channels)[None, :] * 7
    if kind == "silence":
        x = np.zeros((n, channels), np.int64)
    elif kind == "dc":
        x = np.full((n, channels), int(rng.integers(lo, hi + 1)), np.int64)
    elif kind == "extremes":
        x = np.where(rng.integers(0, 2, (n, channels)) == 1, hi, lo).astype(np.int64)
    elif kind == "noise":
        x = rng.integers(lo, hi + 1, (n, channels), dtype=np.int64)
    elif kind in ("sine", "clipped", "chirp"):
        freq = 0.01 + 0.2 * rng.random()
        phase = t * freq * (1 + t / max(n, 1) if kind == "chirp" else 1)
        amp = (hi - lo) / 2 * (1.6 if kind == "clipped" else 0.9)
        x = np.round(np.sin(phase) * amp).astype(np.int64)
    elif kind == "walk":
        step = max(1, (hi - lo) >> 6)
        x = np.cumsum(rng.integers(-step, step + 1, (n, channels)), axis=0)
    elif kind == "wasted":
        shift = int(rng.integers(0, bits))
        x = rng.integers(lo >> shift, (hi >> shift) + 1, (n, channels), dtype=np.int64) << shift
    else:
        raise ValueError(kind)
    return np.clip(x, lo, hi)


def md5_pcm(pcm: np.ndarray, bits: int) -> bytes:
    """MD5 over interleaved little-endian samples of ceil(bits/8) bytes, sign-extended."""
    width = (bits + 7) // 8
    out = bytearray()
    for value in np.asarray(pcm, np.int64).reshape(-1).tolist():
        out += int(value).to_bytes(width, "little", signed=True)
    return hashlib.md5(bytes(out)).digest()


@st.composite
def pcm_cases(draw, max_frames: int = 600, max_channels: int = 6):
    bits = draw(st.integers(1, 32))
    channels = draw(st.integers(1, max_channels))
    frame_length = draw(st.sampled_from([1, 7, 64, 256]))
    n = draw(st.one_of(st.sampled_from([0, 1, frame_length - 1, frame_length, frame_length + 1,
                                        3 * frame_length + 5]),
                       st.integers(0, max_frames)))
    n = max(n, 0)
    kind = draw(st.sampled_from(KINDS))
    rate = draw(st.one_of(st.sampled_from([8000, 44100, 48000, 96000]),
                          st.integers(1, 2**32 - 1)))
    seed = draw(st.integers(0, 2**32 - 1))
    return make_signal(kind, n, channels, bits, seed), rate, bits, frame_length


class Pipe(io.RawIOBase):
    """A stream that cannot seek, as standard input and output: reads ``data``, collects what
    is written in ``out``."""

    def __init__(self, data=b""):
        self.data, self.pos, self.out = data, 0, bytearray()

    def readable(self):
        return True

    def writable(self):
        return True

    def seekable(self):
        return False

    def readinto(self, b):
        chunk = self.data[self.pos:self.pos + len(b)]
        b[:len(chunk)] = chunk
        self.pos += len(chunk)
        return len(chunk)

    def write(self, b):
        self.out += b
        return len(b)
