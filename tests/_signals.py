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


# Signals built to break "levels nest" and "no larger than flac -8" (issue 19): each a kind of
# audio where one coding choice (channel mode, frame length, wasted bits, ...) wins by far.
ADVERSARIAL = ("mid_side", "side_right", "left_side", "dc_offset", "bursts", "silence_runs",
               "wasted_regions", "clipped", "identical", "low_byte_noise_24", "tracker_loop",
               "switching")


def adversarial_signal(kind: str, rate: int = 44100, seconds: float = 1.0,
                       seed: int = 0) -> tuple[np.ndarray, int]:
    """(int64 PCM of shape (n, channels), bits per sample) of one of ADVERSARIAL."""
    rng = np.random.default_rng(seed)
    n = int(rate * seconds)
    t = np.arange(n)

    def tone(freq, amp):  # three partials, random phases
        return sum(amp / k * np.sin(2 * np.pi * freq * k * t / rate + 6 * rng.random())
                   for k in (1, 2, 3))

    def laplace(scale, size):
        return rng.laplace(0, scale, size)
    bits = 16
    if kind == "mid_side":  # one loud signal in both channels, each with its own quiet noise
        common = tone(220, 9000) + np.cumsum(laplace(300, n)) * 0.02
        x = np.stack([common + laplace(20, n), common + laplace(20, n)], 1)
    elif kind in ("side_right", "left_side"):  # one channel = the other + a loud part of its own
        shared, own = tone(330, 6000), tone(97, 8000)
        pair = [shared + own + laplace(4, n), shared + laplace(4, n)]
        x = np.stack(pair if kind == "side_right" else pair[::-1], 1)
    elif kind == "dc_offset":  # a tracker render with a large DC offset in each channel
        x = np.stack([tone(110, 6000) + 20000, tone(165, 5000) - 18000], 1) + laplace(3, (n, 2))
    elif kind == "bursts":  # short noise bursts in digital silence
        x = np.zeros((n, 1))
        for start in range(0, n, 3000):
            size = min(600, n - start)
            x[start:start + size, 0] = laplace(rng.choice([50, 3000]), size)
    elif kind == "silence_runs":  # music broken by runs of digital silence
        x = np.stack([tone(440, 8000), tone(550, 8000)], 1) + laplace(10, (n, 2))
        for start in range(0, n, rate // 4):
            x[start:start + 5000] = 0
    elif kind == "wasted_regions":  # the low 8 bits zero in every other 8192 samples
        x = (tone(300, 12000) + laplace(30, n))[:, None]
        for start in range(0, n, 16384):
            x[start:start + 8192] = np.round(x[start:start + 8192] / 256) * 256
    elif kind == "clipped":
        x = np.stack([tone(200, 50000), tone(250, 50000)], 1)
    elif kind == "identical":
        common = tone(180, 10000) + laplace(40, n)
        x = np.stack([common, common], 1)
    elif kind == "low_byte_noise_24":  # 24-bit: music above, white noise in the low byte
        bits = 24
        x = np.stack([tone(260, 3e6), tone(390, 3e6)], 1) + rng.integers(-128, 128, (n, 2))
    elif kind == "tracker_loop":  # a short decaying sample looped at changing pitches
        sample = laplace(2000, 700) * np.exp(-np.arange(700) / 200)
        out, pos = np.zeros(n), 0
        while pos < n:
            segment = sample[np.arange(0, 700, rng.choice([0.5, 0.75, 1.0, 1.5])).astype(int)]
            segment = segment[: n - pos]
            out[pos:pos + len(segment)] += segment
            pos += len(segment) + int(rng.integers(0, 400))
        x = np.stack([out, 0.7 * out + laplace(1, n)], 1)
    elif kind == "switching":  # noise changing colour and level every 4096 samples, as in game
        parts = []              # effects: frames longer than 4096 cannot follow it
        for i, start in enumerate(range(0, n, 4096)):
            e = laplace((30, 3000)[i % 2], 4096)
            e = np.cumsum(e) * 0.3 if i % 3 == 0 else (
                np.convolve(e, [1, -1.8, 0.9])[:4096] if i % 3 == 1 else e)
            parts.append(e)
        x = np.concatenate(parts)[:n, None]
    else:
        raise ValueError(kind)
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return np.clip(np.round(x), lo, hi).astype(np.int64), bits


def write_wav16(path, pcm: np.ndarray, rate: int = 44100):
    """A 16-bit PCM WAV of ``pcm`` (n, channels) by the standard library's wave module (not
    vaelac's writer); returns ``path``."""
    import wave

    with wave.open(str(path), "wb") as w:
        w.setnchannels(pcm.shape[1])
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.astype("<i2").tobytes())
    return path
