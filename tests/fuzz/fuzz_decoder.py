#!/usr/bin/env python
"""Mutation fuzzer for the `.vae` decoder and ``vaelac info`` (issue 6).

Every input must end in success or a :class:`vaelac.VaeError`: any other exception is a
*crash*, a case running longer than ``--time-limit`` seconds is a *hang*, and a worker whose
peak RSS passes ``--rss-limit-mb`` (or whose current RSS grows by more than
``--growth-limit-mb`` between the warm-up and the end) is a *memory failure*.

Inputs are small valid streams (``seeds/*.vae``, rebuilt with ``--make-seeds``) changed by
1–4 stacked mutations: bit flips, byte sets, "interesting" integers written over 1/2/4/8-byte
fields (lengths, counts, sizes), STREAMINFO field edits, truncation, inserted/deleted/duplicated
byte runs, frames spliced in from other seeds, random tails, whole random inputs, zeroed MD5 —
and, for half of the cases, the metadata CRC and the frame CRCs recomputed afterwards so that
mutations reach the block parsers and the subframe decoder instead of stopping at
METADATA_CRC, CRC-8 or CRC-32.

Each input goes through three paths: ``vaelac.decode`` (strict), ``StreamDecoder(...,
keep_going=True)`` read to the end, and the ``vaelac info --frames --frames`` code
(``cli._info_one``, which uses ``keep_frame_infos``). Case *i* of a run with seed *S* uses
``random.Random(f"{S}:{i}")``, so ``--replay S:i`` rebuilds one case exactly.

    python tests/fuzz/fuzz_decoder.py --runs 1000000 --seed 1 --workers 2
    python tests/fuzz/fuzz_decoder.py --replay 1:123456 --save case.vae

Crash inputs are written to ``--crash-dir`` (one file per distinct cause, named by it); the
process exits 1 if anything failed.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import hashlib
import io
import json
import multiprocessing
import os
import random
import resource
import signal
import sys
import tempfile
import time
import traceback
import zlib
from pathlib import Path

from vaelac.stream_head import reseal

HERE = Path(__file__).resolve().parent
SEED_DIR = HERE / "seeds"

SIGNATURE = b"\x89VAE\r\n\x1a\n"
INTERESTING = [0, 1, 2, 3, 7, 8, 15, 16, 31, 32, 33, 55, 56, 57, 63, 64, 127, 128, 255, 256,
               4095, 4096, 65535, 65536, 2**24 - 1, 2**31 - 1, 2**31, 2**32 - 1, 2**32,
               2**63 - 1, 2**63, 2**64 - 2, 2**64 - 1]


# -- seeds ---------------------------------------------------------------------------------------

def _crc8(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


_CRC8 = [_crc8(bytes([b])) for b in range(256)]


def crc8(data) -> int:
    crc = 0
    for byte in data:
        crc = _CRC8[crc ^ byte]
    return crc


@contextlib.contextmanager
def _level5_as(level):
    """Encode with ``level`` in place of level 5 (a seed's own stage sets), then restore it."""
    from vaelac.encoder import LEVELS
    saved = LEVELS[5]
    LEVELS[5] = level
    try:
        yield
    finally:
        LEVELS[5] = saved


def make_seeds(out_dir: Path = SEED_DIR) -> list[Path]:
    """Write the seed corpus: small valid streams covering the format's structures."""
    import numpy as np

    import vaelac
    from vaelac.spec import container as g

    rng = np.random.default_rng(20240606)
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob("*.vae"):
        old.unlink()

    def enc(name, pcm, bits, rate=8000, frame_length=16, tags=None, seekable=True,
            total=True, level=5, mask=0, **model):
        class Pipe(io.RawIOBase):  # a write-only, non-seekable output: unknown length
            def __init__(self):
                self.buf = bytearray()

            def writable(self):
                return True

            def write(self, b):
                self.buf += b
                return len(b)

        out = io.BytesIO() if seekable else Pipe()
        model = model or {"model": None}  # the plain path unless a seed asks for a model
        e = vaelac.StreamEncoder(out, rate, pcm.shape[1], bits, level=level,
                                 total_samples=len(pcm) if total else None, tags=tags,
                                 frame_length=frame_length, channel_mask=mask, **model)
        e.write(pcm)
        e.close()
        data = out.getvalue() if seekable else bytes(out.buf)
        vaelac.decode(data)  # every seed is valid
        (out_dir / f"{name}.vae").write_bytes(data)
        return data

    def sine(n, ch, bits, period=9.0):
        t = np.arange(n)[:, None] + np.arange(ch)[None, :] * 3
        amp = (1 << (bits - 1)) - 1
        return np.round(np.sin(t * 2 * np.pi / period) * amp * 0.8).astype(np.int64)

    def noise(n, ch, bits):
        lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
        return rng.integers(lo, hi + 1, (n, ch), dtype=np.int64)

    enc("mono16_predicted", sine(100, 1, 16, period=40.0), 16, frame_length=48)
    enc("stereo16_tags", np.cumsum(rng.integers(-300, 301, (40, 2)), axis=0), 16,
        frame_length=16, tags={"TITLE": "fuzz", "ARTIST": "x"})
    left = sine(48, 1, 16)
    enc("stereo16_midside", np.concatenate([left, left + rng.integers(-2, 3, (48, 1))], axis=1),
        16, frame_length=24)
    enc("ch3_24bit_noise", noise(12, 3, 24), 24, frame_length=5, mask=0x7)
    enc("mono1bit", noise(30, 1, 1), 1, frame_length=8)
    enc("mono8bit_constant", np.full((20, 1), -5), 8, frame_length=7)
    enc("stereo32bit", noise(6, 2, 32), 32, frame_length=4)
    enc("ch6_12bit_wasted", noise(9, 6, 9) << 3, 12, frame_length=9)
    enc("unknown_length", sine(45, 2, 16), 16, frame_length=20, seekable=False, total=False)
    enc("empty", np.zeros((0, 2), np.int64), 16)
    enc("single_sample", np.array([[123]]), 16, frame_length=1)
    enc("mono20bit_level0", sine(60, 1, 20, period=13.0), 20, frame_length=60, level=0)
    # the learned model (§8): MODEL_PREDICTED subframes naming the shipped model, the same
    # with the model file embedded (MODEL_DATA), and a LOSSY stream (MODEL_LOSSY subframes)
    mrng = np.random.default_rng(3)  # a signal on which the shipped model wins a subframe
    t = np.arange(384)
    x = sum(np.sin(t * f) * a for f, a in zip(mrng.uniform(0.01, 0.5, 4),
                                              mrng.uniform(500, 5000, 4)))
    x = x + mrng.standard_t(2, len(t)) * 50
    x = np.clip(np.round(x), -32768, 32767).astype(np.int64)[:, None]
    from vaelac.model import default_model
    from vaelac.spec.constants import ModelKind
    if default_model() is not None:
        enc("model_predicted", x, 16, rate=44100, frame_length=192, model="default")
        enc("model_embedded", x[:192], 16, rate=44100, frame_length=192, model="default",
            embed_model=True)
    if default_model(ModelKind.LOSSY) is not None:
        enc("lossy", x[:64], 16, rate=44100, frame_length=32, lossy="default")
    # CASCADE and MIXED_CASCADE subframes (§6.4, §6.5) of both channels, the second with the
    # cross stage: a period beyond the LPC's reach (the encoder writes MIXED_CASCADE; CASCADE
    # is its stage sets without the mixer)
    from dataclasses import replace

    from vaelac.encoder import LEVELS
    crng = np.random.default_rng(3)
    x = np.tile(crng.integers(-100, 100, 40), 13)[:500] + crng.integers(-1, 2, 500)
    pair = np.stack([x, np.roll(x, 3) + crng.integers(-1, 2, 500)], axis=1)
    enc("stereo16_mixed_cascade", pair, 16, frame_length=500)
    level5 = LEVELS[5]
    with _level5_as(replace(level5, cascades=tuple(replace(c, mix=None)
                                                   for c in level5.cascades))):
        enc("stereo16_cascade", pair, 16, frame_length=500)
    # OLS_CASCADE subframes (§6.6) of both channels, the second with the first as input: a
    # white channel and a filtered copy of it, with a small predictor and no stages (level 8's
    # needs long frames to win, which would make a large seed)
    from vaelac.encoder import CascadeConfig, OlsConfig
    white = crng.integers(-3000, 3001, 300)
    pair = np.stack([white, (3 * white + np.roll(white, 1)) // 4 + crng.integers(-2, 3, 300)],
                    axis=1)
    small = OlsConfig(taps=2, cross_taps=2, forget=9, ridge=27, interval_log2=3,
                      stages=CascadeConfig(cross=(0, 0, 0), stages=(), mix=(12, 0, 0)))
    with _level5_as(replace(level5, ols=(small,))):
        enc("stereo16_ols_cascade", pair, 16, frame_length=300)
    # blocks the encoder does not write: PADDING, MODEL_REF, MODEL_DATA, a reserved type
    base = enc("mono16_small", sine(10, 1, 16), 16, frame_length=10)
    first = vaelac.decode(base)[1].first_frame_offset
    streaminfo_end = 10 + 4 + 40
    head = bytearray(base[:streaminfo_end])
    head[10] &= 0x7F  # STREAMINFO is not the last block any more
    extra = [(1, bytes(6)), (4, g.ModelRef.build(dict(sha256=bytes(range(32)), name="m"))),
             (5, b"model bytes"), (42, b"reserved"), (6, bytes(4))]  # 6: METADATA_CRC, last
    body = b""
    for i, (kind, payload) in enumerate(extra):
        body += g.BlockHeader.build(dict(is_last=int(i == len(extra) - 1), block_type=kind,
                                         length=len(payload))) + payload
    data = reseal(bytes(head) + body + base[first:])
    vaelac.decode(data)
    (out_dir / "blocks_model_padding.vae").write_bytes(data)
    return sorted(out_dir.glob("*.vae"))


def load_seeds(seed_dir: Path = SEED_DIR) -> list[bytes]:
    files = sorted(glob.glob(str(seed_dir / "*.vae")))
    if not files:
        raise SystemExit(f"no seeds in {seed_dir}: run with --make-seeds")
    return [Path(f).read_bytes() for f in files]


# -- structure helpers ------------------------------------------------------------------------

def first_frame_offset(data) -> int:
    """Where frames start, following the block headers leniently (len(data) if unclear)."""
    pos = 10
    while pos + 4 <= len(data):
        is_last = data[pos] & 0x80
        length = int.from_bytes(data[pos + 1:pos + 4], "big")
        pos += 4 + length
        if is_last:
            return min(pos, len(data))
    return len(data)


def frame_spans(data) -> list[tuple[int, int]]:
    """(start, end) of the frames that parse as frames from the first frame offset."""
    spans = []
    pos = first_frame_offset(data)
    while pos + 14 <= len(data):
        payload = int.from_bytes(data[pos + 9:pos + 13], "big")
        end = pos + 14 + payload + 4
        spans.append((pos, min(end, len(data))))
        if end > len(data):
            break
        pos = end
    return spans


def fix_crcs(data: bytearray) -> None:
    """Recompute the metadata's CRC-32 (§4.7) and the CRC-8 and CRC-32 of every frame found
    where frames are expected."""
    data[:] = reseal(bytes(data))
    for start, end in frame_spans(data):
        data[start + 13] = crc8(data[start:start + 13])
        if end - start >= 18 and end == start + 18 + int.from_bytes(data[start + 9:start + 13],
                                                                   "big"):
            data[end - 4:end] = zlib.crc32(data[start:end - 4]).to_bytes(4, "big")


# -- mutations --------------------------------------------------------------------------------

def _pos(rng, data, lo=0):
    return rng.randrange(lo, len(data)) if len(data) > lo else 0


def m_bitflip(rng, data, seeds):
    for _ in range(rng.choice((1, 1, 1, 2, 4, 8))):
        if data:
            data[_pos(rng, data)] ^= 1 << rng.randrange(8)


def m_byte_set(rng, data, seeds):
    if data:
        data[_pos(rng, data)] = rng.choice((0, 0xFF, 0x7F, 0x80, 1, rng.randrange(256)))


def m_interesting_int(rng, data, seeds):
    width = rng.choice((1, 2, 3, 4, 8))
    if len(data) < width:
        return
    at = rng.randrange(len(data) - width + 1)
    value = rng.choice(INTERESTING) % (1 << (8 * width))
    if rng.random() < 0.2:
        value = (value + rng.choice((-1, 1))) % (1 << (8 * width))
    data[at:at + width] = value.to_bytes(width, "big")


_STREAMINFO_FIELDS = [(14, 4), (18, 1), (19, 1), (20, 1), (21, 1), (22, 4), (26, 8), (34, 4),
                      (38, 16)]


def m_streaminfo(rng, data, seeds):
    at, width = rng.choice(_STREAMINFO_FIELDS)
    if len(data) < at + width:
        return
    if rng.random() < 0.5:
        value = rng.choice(INTERESTING) % (1 << (8 * width))
    else:
        old = int.from_bytes(data[at:at + width], "big")
        value = (old + rng.choice((-2, -1, 1, 2, 3, 100))) % (1 << (8 * width))
    data[at:at + width] = value.to_bytes(width, "big")


def m_block_length(rng, data, seeds):
    """Change a metadata block's declared length (or its type / last flag)."""
    heads = []
    pos = 10
    while pos + 4 <= len(data):
        heads.append(pos)
        last = data[pos] & 0x80
        pos += 4 + int.from_bytes(data[pos + 1:pos + 4], "big")
        if last:
            break
    if not heads:
        return
    at = rng.choice(heads)
    r = rng.random()
    if r < 0.6:
        old = int.from_bytes(data[at + 1:at + 4], "big")
        value = rng.choice((0, 1, old - 1, old + 1, old + 16, 2**24 - 1, rng.randrange(2**24)))
        data[at + 1:at + 4] = (value % 2**24).to_bytes(3, "big")
    elif r < 0.8:
        data[at] = (data[at] & 0x80) | rng.choice((0, 1, 2, 3, 4, 5, 6, 100, 127))
    else:
        data[at] ^= 0x80


def m_truncate(rng, data, seeds):
    del data[rng.randrange(len(data) + 1):]


def m_delete(rng, data, seeds):
    if data:
        at = _pos(rng, data)
        del data[at:at + rng.choice((1, 1, 2, 4, 8, 14, 32, rng.randrange(1, 200)))]


def m_insert(rng, data, seeds):
    at = rng.randrange(len(data) + 1)
    n = rng.choice((1, 2, 4, 8, 32, rng.randrange(1, 300)))
    if rng.random() < 0.5 or not data:
        chunk = bytes(rng.getrandbits(8) for _ in range(n))
    else:
        src = _pos(rng, data)
        chunk = bytes(data[src:src + n])
    data[at:at] = chunk


def m_duplicate(rng, data, seeds):
    if data:
        a = _pos(rng, data)
        b = min(len(data), a + rng.randrange(1, 100))
        data[b:b] = data[a:b] * rng.choice((1, 2, 3))


def m_splice_frame(rng, data, seeds):
    """Replace, insert or append a frame taken from another seed."""
    other = rng.choice(seeds)
    theirs = frame_spans(other)
    if not theirs:
        return
    s, e = rng.choice(theirs)
    frame = other[s:e]
    mine = frame_spans(data)
    r = rng.random()
    if mine and r < 0.4:
        a, b = rng.choice(mine)
        data[a:b] = frame
    elif mine and r < 0.7:
        a, _ = rng.choice(mine)
        data[a:a] = frame
    else:
        data += frame


def m_swap_frames(rng, data, seeds):
    mine = frame_spans(data)
    if len(mine) >= 2:
        i, j = sorted(rng.sample(range(len(mine)), 2))
        (a, b), (c, d) = mine[i], mine[j]
        data[:] = data[:a] + data[c:d] + data[b:c] + data[a:b] + data[d:]


def m_splice_head(rng, data, seeds):
    """One seed's metadata with another seed's frames."""
    other = rng.choice(seeds)
    data[:] = other[:first_frame_offset(other)] + data[first_frame_offset(data):]


def m_random_tail(rng, data, seeds):
    at = rng.randrange(len(data) + 1)
    data[at:] = bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 120)))


def m_random_input(rng, data, seeds):
    n = rng.randrange(0, 200)
    body = bytes(rng.getrandbits(8) for _ in range(n))
    data[:] = (SIGNATURE + b"\x01\x00" + body) if rng.random() < 0.7 else body


def m_zero_md5(rng, data, seeds):
    if len(data) >= 54:
        data[38:54] = bytes(16)


def m_frame_field(rng, data, seeds):
    """Edit one field of a frame header or of the first subframe header."""
    mine = frame_spans(data)
    if not mine:
        return
    start, end = rng.choice(mine)
    at, width = rng.choice([(2, 4), (6, 2), (8, 1), (9, 4), (14, 1), (15, 1), (16, 1), (17, 1),
                            (18, 1), (19, 1), (16, 4), (16, 8)])
    if start + at + width > len(data):
        return
    value = rng.choice(INTERESTING) % (1 << (8 * width))
    data[start + at:start + at + width] = value.to_bytes(width, "big")


def _blocks(data) -> list[tuple[int, int, int]]:
    """(type, body start, body length) of the metadata blocks, leniently."""
    found, pos = [], 10
    while pos + 4 <= len(data):
        kind, length = data[pos] & 0x7F, int.from_bytes(data[pos + 1:pos + 4], "big")
        found.append((kind, pos + 4, length))
        pos += 4 + length
        if data[pos - 4 - length] & 0x80:
            break
    return found


def _model_fields(body) -> list[tuple[int, int]]:
    """(offset, width) of the numeric fields of a model file (§8.1): its header, prior size
    fields and every layer's inputs/outputs/shift/activation, as far as the bytes go."""
    fields, pos = [(8, 1), (9, 1)], 10
    try:
        fields.append((pos, 1))
        pos += 1 + body[pos]  # name
        fields.append((pos, 4))
        pos += 4 + int.from_bytes(body[pos:pos + 4], "big")  # description
        latent, levels = body[pos], body[pos + 1]
        fields += [(pos, 1), (pos + 1, 1), (pos + 2, 1), (pos + 3, 2)]
        pos += 5 + latent * ((1 << levels) - 1) * 2
        for _ in range(2):  # encoder, decoder
            fields.append((pos, 1))
            count, pos = body[pos], pos + 1
            for _ in range(count):
                inputs = int.from_bytes(body[pos:pos + 2], "big")
                outputs = int.from_bytes(body[pos + 2:pos + 4], "big")
                fields += [(pos, 2), (pos + 2, 2), (pos + 4, 1), (pos + 5, 1)]
                pos += 6 + inputs * outputs * 2 + outputs * 4
    except IndexError:
        pass
    return [(o, w) for o, w in fields if o + w <= len(body)]


def m_model_file(rng, data, seeds):
    """Edit a field of an embedded model file (MODEL_DATA); the hash is fixed up afterwards."""
    for kind, start, length in _blocks(data):
        if kind == 5 and length:
            body = data[start:start + length]
            fields = _model_fields(body)
            if not fields:
                return
            at, width = rng.choice(fields)
            value = rng.choice(INTERESTING + [rng.randrange(256)]) % (1 << (8 * width))
            data[start + at:start + at + width] = value.to_bytes(width, "big")
            return


def fix_model_hash(data: bytearray) -> None:
    """Make MODEL_REF name the SHA-256 of the MODEL_DATA that follows, so that a mutated model
    file reaches the model loader instead of stopping at the hash check (§8.1)."""
    blocks = _blocks(data)
    model = [(s, n) for k, s, n in blocks if k == 5 and s + n <= len(data)]
    for kind, start, length in blocks:
        if kind == 4 and model and start + 32 <= len(data):
            s, n = model[0]
            data[start:start + 32] = hashlib.sha256(bytes(data[s:s + n])).digest()


MUTATIONS = [
    (m_bitflip, 8), (m_byte_set, 4), (m_interesting_int, 6), (m_streaminfo, 4),
    (m_block_length, 3), (m_truncate, 4), (m_delete, 3), (m_insert, 3), (m_duplicate, 2),
    (m_splice_frame, 3), (m_swap_frames, 1), (m_splice_head, 1), (m_random_tail, 1),
    (m_random_input, 1), (m_zero_md5, 2), (m_frame_field, 5), (m_model_file, 2),
]
_FUNCS = [f for f, _ in MUTATIONS]
_WEIGHTS = [w for _, w in MUTATIONS]


# The WAV reader (``vaelac encode``'s input) gets the format-independent mutations.
_WAV_MUTATIONS = [(m_bitflip, 6), (m_byte_set, 4), (m_interesting_int, 8), (m_truncate, 3),
                  (m_delete, 3), (m_insert, 3), (m_duplicate, 2), (m_random_tail, 1)]


def wav_seeds() -> list[bytes]:
    """Small WAV files: PCM 8/16/24/32-bit, EXTENSIBLE (20 valid bits, 3 channels), RF64,
    an unknown data size, extra chunks before the data."""
    import struct

    def wav(channels, container, valid=None, frames=6, extensible=False, rf64=False,
            extra=b"", unknown=False):
        align = channels * container // 8
        data = bytes((i * 37 + 11) % 256 for i in range(frames * align))
        if valid and valid < container:  # left-justified: low bits zero
            step = container // 8
            data = bytearray(data)
            for i in range(0, len(data), step):
                data[i] = 0
            data = bytes(data)
        if extensible:
            fmt = struct.pack("<HHIIHHHHI", 0xFFFE, channels, 8000, 8000 * align, align,
                              container, 22, valid or container, 0x7) + b"\x01\x00" + \
                bytes.fromhex("000000001000800000aa00389b71")
        else:
            fmt = struct.pack("<HHIIHH", 1, channels, 8000, 8000 * align, align, container)
        size = 0xFFFFFFFF if (rf64 or unknown) else len(data)
        body = b"WAVE"
        if rf64:
            body += b"ds64" + struct.pack("<I", 28) + struct.pack("<QQQI", 0, len(data), frames, 0)
        body += b"fmt " + struct.pack("<I", len(fmt)) + fmt + extra
        body += b"data" + struct.pack("<I", size) + data + (b"\0" if len(data) & 1 else b"")
        return (b"RF64" if rf64 else b"RIFF") + struct.pack("<I", len(body)) + body

    return [wav(1, 16), wav(2, 8, frames=5), wav(2, 24), wav(1, 32), wav(3, 24, 20,
            extensible=True), wav(2, 16, rf64=True), wav(1, 16, unknown=True),
            wav(2, 16, extra=b"LIST" + (4).to_bytes(4, "little") + b"INFO")]


def make_case(seeds: list[bytes], run_seed: int, index: int, target: str = "vae"
              ) -> tuple[bytes, list[str]]:
    rng = random.Random(f"{run_seed}:{index}")
    data = bytearray(rng.choice(seeds))
    applied = []
    funcs, weights = (_FUNCS, _WEIGHTS) if target == "vae" else zip(*_WAV_MUTATIONS)
    for _ in range(rng.choice((1, 1, 2, 2, 3, 4))):
        f = rng.choices(funcs, weights)[0]
        f(rng, data, seeds)
        applied.append(f.__name__[2:])
    if target == "vae" and rng.random() < 0.5:
        fix_crcs(data)
        applied.append("fix_crcs")
    if target == "vae" and rng.random() < 0.5:
        fix_model_hash(data)
    return bytes(data), applied


# -- targets ----------------------------------------------------------------------------------

class Hang(Exception):
    pass


def _alarm(signum, frame):
    raise Hang()


class _InfoArgs:
    frames = 2


def run_targets(data: bytes, info_path: str) -> None:
    """Feed one input to every path; VaeError is the only allowed failure."""
    import vaelac
    from vaelac import cli
    from vaelac.decoder import StreamDecoder

    try:
        vaelac.decode(data)
    except vaelac.VaeError:
        pass
    try:
        dec = StreamDecoder(io.BytesIO(data), keep_going=True)
        for _ in dec:
            pass
        for span in dec.damage:
            str(span)
    except vaelac.VaeError:
        pass
    with open(info_path, "wb") as f:
        f.write(data)
    try:
        cli._info_one(info_path, _InfoArgs())
    except vaelac.VaeError:
        pass


def run_wav_target(data: bytes, _path: str) -> None:
    """The WAV reader, and the encoder on what it read; VaeError is the only allowed failure."""
    import vaelac
    from vaelac.wav import WavReader

    try:
        reader = WavReader(io.BytesIO(data))
        fmt = reader.format
        blocks = list(reader.blocks(4))
        enc = vaelac.StreamEncoder(io.BytesIO(), fmt.sample_rate, fmt.channels,
                                   fmt.bits_per_sample, level=0)
        for block in blocks:
            enc.write(block)
        enc.close()
    except vaelac.VaeError:
        pass


TARGETS = {"vae": run_targets, "wav": run_wav_target}


def cause_of(exc: BaseException) -> str:
    """A short, stable name for a failure: exception type and the innermost vaelac line."""
    if isinstance(exc, Hang):
        return "hang"
    tb = traceback.extract_tb(exc.__traceback__)
    where = [f for f in tb if "vaelac" in f.filename or "/reference/" in f.filename
             or "/spec/" in f.filename]
    frame = (where or tb or [None])[-1]
    loc = f"{Path(frame.filename).name}:{frame.name}" if frame else "?"
    kind = type(exc)
    name = kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"
    return f"{name}@{loc}"


def _rss_now_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _rss_peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker(args) -> dict:
    (run_seed, first, count, time_limit, crash_dir, seed_dir, progress, log_every, target,
     as_limit_mb) = args
    if as_limit_mb:
        # An address-space limit turns an oversized allocation into a MemoryError (a finding)
        # even when its pages are never touched and so never show in the RSS.
        limit = int(as_limit_mb * 2**20)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    seeds = load_seeds(Path(seed_dir)) if target == "vae" else wav_seeds()
    run = TARGETS[target]
    signal.signal(signal.SIGALRM, _alarm)
    info_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None
    fd, info_path = tempfile.mkstemp(prefix="vaelac-fuzz-", suffix=".vae", dir=info_dir)
    os.close(fd)
    causes: dict[str, dict] = {}
    ok = errors = 0
    slowest = (0.0, None)
    warm_rss = None
    t0 = time.monotonic()
    try:
        for k in range(count):
            index = first + k
            data, applied = make_case(seeds, run_seed, index, target)
            start = time.perf_counter()
            signal.setitimer(signal.ITIMER_REAL, time_limit)
            try:
                run(data, info_path)
                ok += 1
            except BaseException as exc:  # noqa: BLE001 - everything reaching here is a finding
                signal.setitimer(signal.ITIMER_REAL, 0)
                if isinstance(exc, KeyboardInterrupt):
                    raise
                errors += 1
                cause = cause_of(exc)
                entry = causes.setdefault(cause, {"count": 0, "first": f"{run_seed}:{index}",
                                                  "mutations": applied,
                                                  "message": str(exc)[:300]})
                entry["count"] += 1
                if entry["count"] == 1 and crash_dir:
                    name = "".join(c if c.isalnum() else "_" for c in cause)
                    Path(crash_dir).mkdir(parents=True, exist_ok=True)
                    Path(crash_dir, f"{name}-{run_seed}_{index}.vae").write_bytes(data)
                    Path(crash_dir, f"{name}-{run_seed}_{index}.txt").write_text(
                        "".join(traceback.format_exception(exc)))
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            took = time.perf_counter() - start
            if took > slowest[0]:
                slowest = (took, f"{run_seed}:{index}")
            if k == min(2000, count // 10):
                warm_rss = _rss_now_mb()
            if progress and log_every and (k + 1) % log_every == 0:
                print(f"[worker {first}] {k + 1}/{count} cases, {errors} failures, "
                      f"{time.monotonic() - t0:.0f} s, rss {_rss_now_mb():.0f} MB, "
                      f"peak {_rss_peak_mb():.0f} MB", flush=True)
    finally:
        os.unlink(info_path)
    return {"cases": count, "clean": ok, "failures": errors, "causes": causes,
            "seconds": time.monotonic() - t0, "peak_rss_mb": _rss_peak_mb(),
            "warm_rss_mb": warm_rss, "end_rss_mb": _rss_now_mb(),
            "slowest_s": slowest[0], "slowest_case": slowest[1]}


def fuzz(runs: int, seed: int, *, workers: int = 1, time_limit: float = 2.0,
         crash_dir: str | None = None, seed_dir: Path = SEED_DIR, progress: bool = False,
         log_every: int = 0, target: str = "vae", as_limit_mb: float = 0) -> dict:
    """Run ``runs`` cases split over ``workers`` processes; return merged statistics."""
    workers = max(1, min(workers, runs))
    share = [runs // workers + (1 if i < runs % workers else 0) for i in range(workers)]
    jobs, first = [], 0
    for n in share:
        jobs.append((seed, first, n, time_limit, crash_dir, str(seed_dir), progress, log_every,
                     target, as_limit_mb))
        first += n
    if workers == 1:
        results = [worker(jobs[0])]
    else:
        ctx = multiprocessing.get_context("fork")
        with ctx.Pool(workers, maxtasksperchild=1) as pool:
            results = pool.map(worker, jobs)
    causes: dict[str, dict] = {}
    for r in results:
        for name, entry in r["causes"].items():
            merged = causes.setdefault(name, dict(entry, count=0))
            merged["count"] += entry["count"]
    return {"runs": runs, "seed": seed, "workers": workers, "target": target,
            "clean": sum(r["clean"] for r in results),
            "failures": sum(r["failures"] for r in results), "causes": causes,
            "seconds": max(r["seconds"] for r in results),
            "peak_rss_mb": max(r["peak_rss_mb"] for r in results),
            "rss_growth_mb": max((r["end_rss_mb"] - r["warm_rss_mb"]) if r["warm_rss_mb"]
                                 else 0.0 for r in results),
            "slowest_s": max(r["slowest_s"] for r in results),
            "slowest_case": max(results, key=lambda r: r["slowest_s"])["slowest_case"]}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=10000, help="inputs to try (each through 3 paths)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--target", choices=sorted(TARGETS), default="vae",
                   help="vae: decoder, keep-going decoder and info; wav: the WAV reader")
    p.add_argument("--workers", type=int, default=2, help="processes (at most 2 here)")
    p.add_argument("--time-limit", type=float, default=2.0, help="seconds per input")
    p.add_argument("--rss-limit-mb", type=float, default=512.0, help="peak RSS per worker")
    p.add_argument("--growth-limit-mb", type=float, default=64.0,
                   help="RSS growth per worker between warm-up and end")
    p.add_argument("--as-limit-mb", type=float, default=1024.0,
                   help="address-space limit per worker (RLIMIT_AS; 0 = none)")
    p.add_argument("--crash-dir", default=str(HERE / "crashes"))
    p.add_argument("--seed-dir", default=str(SEED_DIR))
    p.add_argument("--log-every", type=int, default=50000)
    p.add_argument("--json", help="write the statistics here")
    p.add_argument("--make-seeds", action="store_true", help="rebuild the seed corpus and exit")
    p.add_argument("--replay", metavar="SEED:INDEX", help="rebuild one case and run it")
    p.add_argument("--save", help="with --replay: write the case's bytes here")
    args = p.parse_args(argv)
    if args.make_seeds:
        for path in make_seeds(Path(args.seed_dir)):
            print(f"{path.name}: {path.stat().st_size} bytes")
        return 0
    if args.replay:
        run_seed, index = (int(x) for x in args.replay.split(":"))
        seeds = load_seeds(Path(args.seed_dir)) if args.target == "vae" else wav_seeds()
        data, applied = make_case(seeds, run_seed, index, args.target)
        print(f"case {args.replay}: {len(data)} bytes, mutations {applied}, "
              f"sha1 {hashlib.sha1(data).hexdigest()}")
        if args.save:
            Path(args.save).write_bytes(data)
        fd, path = tempfile.mkstemp(suffix=".vae")
        os.close(fd)
        try:
            TARGETS[args.target](data, path)
        finally:
            os.unlink(path)
        print("ok: success or VaeError on every path")
        return 0
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    stats = fuzz(args.runs, args.seed, workers=args.workers, time_limit=args.time_limit,
                 crash_dir=args.crash_dir, seed_dir=Path(args.seed_dir), progress=True,
                 log_every=args.log_every, target=args.target, as_limit_mb=args.as_limit_mb)
    stats["started"] = started
    stats["rss_limit_mb"] = args.rss_limit_mb
    stats["as_limit_mb"] = args.as_limit_mb
    stats["growth_limit_mb"] = args.growth_limit_mb
    memory_ok = (stats["peak_rss_mb"] <= args.rss_limit_mb
                 and stats["rss_growth_mb"] <= args.growth_limit_mb)
    stats["memory_ok"] = memory_ok
    text = json.dumps(stats, indent=1, default=str)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    return 0 if not stats["failures"] and memory_ok else 1


if __name__ == "__main__":
    sys.exit(main())
