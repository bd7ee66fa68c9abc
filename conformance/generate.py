"""Rebuild the conformance vectors reproducibly: ``python -m vaelac.conformance.generate``.

Streams come from the reference encoder (subset, uncommon) or are a valid stream with one named
defect (faulty). Expected MD5s and formats are computed here from the *source* PCM, independently
of any decoder. ``--check`` regenerates into a temporary folder and compares byte for byte, so a
bitstream change cannot go unnoticed.
"""

from __future__ import annotations

import argparse
import filecmp
import io
import json
import shutil
import sys
import tempfile
import zlib
from pathlib import Path

import numpy as np

from ._kit import crc8, pcm_md5, signal

VECTORS = Path(__file__).resolve().parent / "vectors"
LEGACY = "legacy_1_4"


class _Pipe(io.RawIOBase):
    """A write-only sink that cannot seek: the encoder must write an unknown-length stream."""

    def __init__(self):
        self.buf = bytearray()

    def writable(self):
        return True

    def seekable(self):
        return False

    def write(self, b):
        self.buf += b
        return len(b)


def _encode(pcm, rate, bits, *, frame_length=None, level=4, tags=None, mode=None,
            streaming=False, model=None, embed_model=None, lossy=None, cascade=True,
            mix=True, ols=False, require=None, channel_mask=0):
    from dataclasses import replace

    from vaelac.encoder import LEVELS, StreamEncoder

    base = chosen = LEVELS[level]
    if mode is not None:
        chosen = replace(chosen, stereo_modes=(mode,) * 2)
    if model is not None:  # the vectors take every subframe the model wins, however small
        chosen = replace(chosen, model_min_saving=0)
    if not cascade:
        chosen = replace(chosen, cascades=(), frame_scales=(1,))
    if not mix:  # the stage sets without §6.5's mixer: CASCADE subframes (§6.4)
        chosen = replace(chosen, cascades=tuple(replace(c, mix=None) for c in chosen.cascades))
    if not ols:  # level 8 without OLS_CASCADE (§6.6), unless the vector is there for it
        chosen = replace(chosen, ols=())
    key = level if chosen == base else 1000
    LEVELS[key] = chosen
    try:
        sink = _Pipe() if streaming else io.BytesIO()
        enc = StreamEncoder(sink, rate, pcm.shape[1], bits, level=key, tags=tags,
                            total_samples=None if streaming else len(pcm),
                            frame_length=frame_length, model=model, embed_model=embed_model,
                            lossy=lossy, channel_mask=channel_mask)
        enc.write(pcm)
        enc.close()
        stream = bytes(sink.buf) if streaming else sink.getvalue()
        if require is not None:  # the subframe type the vector is there to exercise
            _require_subframe(stream, require)
        return stream
    finally:
        if key != level:
            del LEVELS[key]


def _kernels_rc_encode_zeros(n: int) -> bytes:
    from vaelac._backend import kernels

    return kernels.rc_encode(np.zeros(n, np.int64), 0)


def random_subframe(rng, n: int, width: int, kinds=(2, 3, 4, 5), model=None) -> bytes:
    """A valid subframe of one of ``kinds`` (2-5, and 64 with ``model``) with random legal
    parameters (§5.4) over range-coded random residuals, for ``n`` values of ``width`` bits:
    corners of §6.3-§6.6 and §8.3 that no encoder reaches (a ridge of 2^-1, 1024-tap SIGN stages
    with step 255, shifts of 47, residuals of 2^49, any latent symbols). Its values may leave
    the width; the caller decides what to keep."""
    from vaelac._backend import kernels
    from vaelac.spec import container as g

    kind = rng.choice(kinds)
    scale = 2 ** rng.uniform(0, rng.choice([4, 12, 20]))
    e = np.round(np.random.default_rng(rng.getrandbits(32)).laplace(0, scale, n)).astype(np.int64)
    if rng.random() < 0.5:  # a tone in the residuals gives the adaptive predictors something to fit
        tone = 2 ** rng.uniform(4, 20) * np.sin(rng.uniform(0.01, 1.5) * np.arange(n))
        e += np.round(tone).astype(np.int64)
    if rng.random() < 0.2:
        e[rng.randrange(n)] = rng.choice([-1, 1]) * 2 ** rng.randrange(20, 50)
    mean_log2 = rng.randrange(0, 56)
    latents = ()
    if kind == 64:  # MODEL_PREDICTED: any latent symbols, coded under the model's prior (§8.4)
        levels = 1 << model.latent_levels_log2
        symbols = np.array([rng.randrange(levels) for _ in range(model.latent_dim)], np.int64)
        latents = (symbols, model.prior, model.latent_levels_log2)
    data = kernels.rc_encode(e, mean_log2, *latents)
    body = dict(data_length=len(data), data=data, initial_mean_log2=mean_log2)
    if kind != 5:
        order, coef_bits = rng.randrange(1, 33), rng.randrange(1, 17)
        coefs = "".join(format(rng.getrandbits(coef_bits), f"0{coef_bits}b") for _ in range(order))
        coefs += "0" * (-len(coefs) % 8)
        body.update(order=order, coef_bits=coef_bits, shift=rng.randrange(0, 32),
                    coefs=int(coefs, 2).to_bytes(len(coefs) // 8, "big"))
        if kind == 64 and rng.random() < 0.5:  # a stable predictor (2, -1), so values stay in range
            body.update(order=2, coef_bits=4, shift=0, coefs=bytes([0x2F]))
    else:
        taps = rng.randrange(1, 33)
        body.update(ols_taps=taps, ols_cross_taps=rng.randrange(0, 33 - taps),
                    ols_scale=rng.randrange(0, 25), ols_forget=rng.randrange(1, 14),
                    ols_ridge=rng.randrange(1, 63), ols_interval_log2=rng.randrange(3, 11))
    if kind in (3, 4, 5):
        stages = [dict(taps=rng.choice([1, 2, 16, 32, 256, rng.randrange(1, 1025)]),
                       shift=rng.randrange(0, 48), step=rng.randrange(0, 256),
                       rule=rng.randrange(0, 2)) for _ in range(rng.randrange(0, 5))]
        body.update(cross_taps=rng.randrange(0, 33), cross_shift=rng.randrange(0, 48),
                    cross_step=rng.randrange(0, 256), stage_count=len(stages), stages=stages)
    if kind in (4, 5):
        body.update(mix_shift=rng.randrange(0, 15), mix_step=rng.randrange(0, 64),
                    mix_bias=rng.randrange(0, 17))
    wasted = rng.choice([0, 0, 0, rng.randrange(0, min(width, 32))])
    return g.Subframe.build(dict(subframe_type=kind, wasted_bits=wasted, body=body))


_RANDOM_NOTE = ("no source audio: the expected MD5 is the reference decoder's, confirmed by the "
                "independent C decoder (conformance/c-decoder) and the pure-Python kernels")


def _frame(index: int, count: int, mode: int, payload: bytes) -> bytes:
    """A frame (§5.1, §5.5) around ``payload``, its CRCs computed."""
    head = (b"\xff\xf9" + index.to_bytes(4, "big") + count.to_bytes(2, "big") + bytes([mode])
            + len(payload).to_bytes(4, "big"))
    body = head + bytes([crc8(head)]) + payload
    return body + zlib.crc32(body).to_bytes(4, "big")


def _random_parameters(seed: int, channels: int, bits: int, frames: int, count: int,
                       kinds, model=None) -> tuple[bytes, np.ndarray]:
    """A stream of ``frames`` frames whose subframes are :func:`random_subframe`s of ``kinds``
    in random channel modes, each frame redrawn until its values stay in range (the reference
    decoder says; tests/test_c_decoder.py checks every vector with a second decoder), and its
    PCM MD5. Returns the stream and its samples."""
    import random

    from vaelac import IntegrityError, decode
    from vaelac.stream_head import reseal

    rng = random.Random(seed)
    before, _, _ = _first_frame(_encode(np.zeros((frames * count, channels), np.int64), 44100,
                                        bits, frame_length=count, level=0, model=model))
    single = bytearray(before)
    single[26:34] = count.to_bytes(8, "big")  # total_samples: one frame
    single[38:54] = bytes(16)  # pcm_md5 not computed
    single = reseal(bytes(single))  # METADATA_CRC over the edited STREAMINFO (§4.7)
    chosen, blocks = [], []
    while len(chosen) < frames:
        mode = rng.randrange(0, 4) if channels >= 2 else 0
        side = {1: 1, 2: 0, 3: 1}.get(mode)
        payload = b"".join(random_subframe(rng, count, bits + (c == side), kinds, model)
                           for c in range(channels))
        try:
            pcm, _ = decode(single + _frame(0, count, mode, payload),
                            always_2d=True)
        except IntegrityError:
            continue
        chosen.append(_frame(len(chosen), count, mode, payload))
        blocks.append(np.asarray(pcm, np.int64))
    pcm = np.concatenate(blocks)
    head = bytearray(before)
    head[38:54] = bytes.fromhex(pcm_md5(pcm, bits))
    return reseal(bytes(head)) + b"".join(chosen), pcm


def _require_subframe(stream: bytes, kind: int) -> None:
    from vaelac.decoder import StreamDecoder

    dec = StreamDecoder(io.BytesIO(stream))
    dec.keep_frame_infos = True
    while dec.read_frame_image() is not None:
        pass
    if not any(kind in frame.subframe_types for frame in dec.frames):
        raise AssertionError(f"the encoder wrote no subframe of type {kind} for this vector")


def _blocks(stream: bytes):
    """(header bytes, [(type, body)], frames bytes) of a stream (through the spec grammar)."""
    from vaelac.spec import container as g

    pos, blocks = 10, []
    while True:
        head = g.BlockHeader.parse(stream[pos:pos + 4])
        blocks.append((head.block_type, stream[pos + 4:pos + 4 + head.length]))
        pos += 4 + head.length
        if head.is_last:
            return stream[:10], blocks, stream[pos:]


def _join(head, blocks, frames):
    """A stream of these blocks (the last one's is_last set) and frames, its METADATA_CRC (if
    one is among the blocks) made anew (§4.7)."""
    from vaelac.spec import container as g
    from vaelac.stream_head import reseal

    out = [head]
    for i, (kind, body) in enumerate(blocks):
        out.append(g.BlockHeader.build(dict(is_last=int(i == len(blocks) - 1), block_type=kind,
                                            length=len(body))))
        out.append(body)
    return reseal(b"".join(out)) + frames


def _first_frame(stream):
    head, blocks, frames = _blocks(stream)
    size = 14 + int.from_bytes(frames[9:13], "big") + 4
    return _join(head, blocks, b""), frames[:size], frames[size:]


def _reseal(frame: bytes) -> bytes:
    """Recompute CRC-8 and CRC-32 after an edit, so only the intended defect remains."""
    head = frame[:13] + bytes([crc8(frame[:13])])
    body = head + frame[14:-4]
    return body + zlib.crc32(body).to_bytes(4, "big")


def _edit_frame(stream, edit, reseal=True):
    before, frame, after = _first_frame(stream)
    frame = edit(bytearray(frame))
    return before + (_reseal(bytes(frame)) if reseal else bytes(frame)) + after


def _with_payload(frame: bytearray, payload: bytes) -> bytearray:
    frame[9:13] = len(payload).to_bytes(4, "big")
    return frame[:14] + payload + b"\0\0\0\0"


def build_vectors():
    """Yield (category, name, stream, manifest entry) for every vector."""
    from vaelac.spec import container as g

    def ok(category, name, what, section, pcm, rate, bits, **kw):
        stream = _encode(pcm, rate, bits, **kw)
        entry = dict(category=category, exercises=what, section=section, sample_rate=rate,
                     channels=pcm.shape[1], bits_per_sample=bits, frames=len(pcm),
                     pcm_md5=pcm_md5(pcm, bits), expect="decode")
        model = kw.get("model")
        if model is not None and not kw.get("embed_model"):
            entry["needs_model"] = _model_entry(model)
        return category, name, stream, entry

    def bad(name, what, section, stream, error, reseal=True):
        """A faulty vector: with ``reseal`` its METADATA_CRC made good again after the edit
        (§4.7), so that the defect named is the only one a decoder can find."""
        from vaelac.stream_head import reseal as resealed

        stream = resealed(stream) if reseal else stream
        return "faulty", name, stream, dict(category="faulty", exercises=what, section=section,
                                             expect="reject", error=error)

    seed = iter(range(1000, 100000))
    # -- subset: every decoder MUST decode these -------------------------------------------------
    for rate in (8000, 16000, 22050, 44100, 48000, 96000, 192000):
        yield ok("subset", f"rate_{rate}", f"sample rate {rate} Hz", "§4.2",
                 signal("chirp", 3000, 2, 16, next(seed)), rate, 16)
    for bits in range(1, 33):
        yield ok("subset", f"bits_{bits:02d}", f"bit depth {bits}", "§4.2 §5.4",
                 signal("walk" if bits > 2 else "noise", 700, 1, bits, next(seed)), 44100, bits,
                 frame_length=256)
    for channels in (1, 2, 6, 8, 24):
        yield ok("subset", f"channels_{channels:02d}", f"{channels} channels in WAV order", "§4.2",
                 signal("sine", 600, channels, 16, next(seed)), 48000, 16, frame_length=256)
    for n in (0, 1, 255, 256, 257, 5000):
        yield ok("subset", f"length_{n:05d}", f"{n} samples with frame_length 256", "§5.2",
                 signal("walk", n, 2, 16, next(seed)), 44100, 16, frame_length=256)
    yield ok("subset", "subframe_constant", "CONSTANT subframes (DC)", "§5.4",
             signal("dc", 1000, 2, 16, next(seed)), 44100, 16)
    yield ok("subset", "subframe_verbatim", "VERBATIM subframes (white noise)", "§5.4",
             signal("noise", 1000, 2, 24, next(seed)), 44100, 24)
    yield ok("subset", "subframe_predicted", "PREDICTED subframes, LPC up to order 32", "§5.4 §6.3 §7",
             signal("sine", 6000, 1, 16, next(seed)), 44100, 16, level=8, cascade=False,
             require=2)
    demo, demo_rate = _demo(0.5)
    # two frames each (22050 samples): the stages start afresh in the second
    yield ok("subset", "subframe_cascade", "CASCADE subframes, no cross input", "§5.4 §6.4",
             demo[:, :1], demo_rate, 16, level=8, frame_length=16384, mix=False, require=3)
    yield ok("subset", "subframe_cascade_stereo", "CASCADE subframes with the cross stage, "
             "24-bit", "§5.4 §6.4", demo << 8, demo_rate, 24, level=8, mode=0,
             frame_length=16384, mix=False, require=3)
    yield ok("subset", "subframe_mixed_cascade", "MIXED_CASCADE subframes, no cross input",
             "§5.4 §6.4 §6.5", demo[:, :1], demo_rate, 16, level=8, frame_length=16384,
             require=4)
    yield ok("subset", "subframe_mixed_cascade_stereo", "MIXED_CASCADE subframes with the cross "
             "stage, 24-bit", "§5.4 §6.4 §6.5", demo << 8, demo_rate, 24, level=8, mode=0,
             frame_length=16384, require=4)
    # 24 bits without wasted bits: LPC residuals and stage inputs beyond ±32767, so the stages'
    # history clamp (§6.4's clampH) decides values; the vectors above stay inside it
    dithered = (demo << 8) + np.random.default_rng(24).integers(0, 256, demo.shape)
    yield ok("subset", "subframe_mixed_cascade_24bit", "MIXED_CASCADE subframes on 24-bit audio "
             "without wasted bits: stage inputs beyond the history clamp", "§5.4 §6.4 §6.5",
             dithered, demo_rate, 24, level=8, mode=0, frame_length=16384, require=4)
    # the first half second of the demo: the least-squares predictor wins its first frame
    opening, _ = _demo(0.5, 0.0)
    yield ok("subset", "subframe_ols_cascade", "OLS_CASCADE subframes, no cross input",
             "§5.4 §6.5 §6.6", opening[:, :1], demo_rate, 16, level=8, frame_length=16384,
             ols=True, require=5)
    yield ok("subset", "subframe_ols_cascade_stereo", "OLS_CASCADE subframes with the previous "
             "channel's values as inputs, 24-bit with 8 wasted bits", "§5.4 §6.2 §6.5 §6.6",
             opening << 8, demo_rate, 24, level=8, mode=0, frame_length=16384,
             ols=True, require=5)
    # random legal parameters over random residuals (32 bits, 4 frames of 1500 samples, every
    # channel mode): the corners of §6.3-§6.6 no encoder reaches; expected MD5 from the reference
    # decoder, which tests/test_c_decoder.py checks against the independent C decoder
    for name, kinds, channels, what in (
            ("random_parameters_cascade", (3, 4), 2, "CASCADE and MIXED_CASCADE"),
            ("random_parameters_ols", (5,), 2, "OLS_CASCADE"),
            ("random_parameters_all", (2, 3, 4, 5), 3,
             "PREDICTED, CASCADE, MIXED_CASCADE and OLS_CASCADE")):
        stream, pcm = _random_parameters(len(name), channels, 32, 4, 1500, kinds)
        yield "subset", name, stream, dict(
            category="subset", exercises=f"{what} subframes with random legal parameters (taps, "
            "shifts, steps, rules, mixers, least-squares fields) over random residuals",
            section="§5.4 §6.1 §6.3-§6.6", sample_rate=44100, channels=channels,
            bits_per_sample=32, frames=len(pcm), pcm_md5=pcm_md5(pcm, 32), expect="decode",
            note=_RANDOM_NOTE)
    from vaelac.model import default_model

    residual_model = default_model()
    stream, pcm = _random_parameters(64, 2, 24, 4, 1500, (64, 64, 64, 2), residual_model)
    yield "subset", "random_parameters_model", stream, dict(
        category="subset", exercises="MODEL_PREDICTED subframes (and PREDICTED "
        "ones) with random predictors and random latent symbols over random residuals, the "
        "shipped model named, not embedded", section="§5.4 §8.2-§8.4", sample_rate=44100,
        channels=2, bits_per_sample=24, frames=len(pcm), pcm_md5=pcm_md5(pcm, 24),
        expect="decode", needs_model=_model_entry(residual_model), note=_RANDOM_NOTE)
    for mode, mname in enumerate(("independent", "left_side", "side_right", "mid_side")):
        yield ok("subset", f"mode_{mname}", f"channel_mode {mode}", "§6.1",
                 signal("walk", 3000, 2, 16, next(seed)), 44100, 16, mode=mode)
    yield ok("subset", "mode_mid_side_24bit", "MID_SIDE at 24 bits (25-bit side)", "§6.1",
             signal("clipped", 3000, 2, 24, next(seed)), 96000, 24, mode=3)
    yield ok("subset", "tags", "TAGS block with UTF-8 values", "§4.5",
             signal("sine", 500, 1, 16, next(seed)), 8000, 16,
             tags=[("TITLE", "Ünïcödé ♪"), ("ARTIST", "vaelac"), ("TITLE", "second")])
    yield ok("subset", "seektable", "SEEKTABLE with several points", "§4.4",
             signal("walk", 120000, 1, 8, next(seed)), 4000, 8)
    # -- uncommon: legal but unusual ---------------------------------------------------------------
    yield ok("uncommon", "rate_1hz", "sample rate 1 Hz", "§4.2",
             signal("walk", 50, 1, 16, next(seed)), 1, 16)
    yield ok("uncommon", "rate_max", "sample rate 2^32-1 Hz", "§4.2",
             signal("walk", 500, 1, 16, next(seed)), 2**32 - 1, 16)
    yield ok("uncommon", "channels_255", "255 channels", "§4.2",
             signal("walk", 20, 255, 8, next(seed)), 8000, 8)
    yield ok("uncommon", "unknown_length", "total_samples unknown, MD5 zero, ends at EOF",
             "§4.2 §5.2", signal("walk", 3000, 2, 16, next(seed)), 44100, 16,
             frame_length=1024, streaming=True)
    for fl in (1, 7, 65535):
        yield ok("uncommon", f"frame_length_{fl}", f"frame_length {fl}", "§5.2",
                 signal("walk", 300 if fl < 10 else 70000, 1, 16, next(seed)), 44100, 16,
                 frame_length=fl)
    yield ok("uncommon", "extremes_32bit", "full-scale 32-bit extremes", "§6.3",
             signal("extremes", 3000, 2, 32, next(seed)), 48000, 32)
    yield ok("uncommon", "wasted_bits", "wasted bits (low bits always zero)", "§6.2",
             signal("wasted", 3000, 2, 24, next(seed)), 48000, 24)
    cat, name, stream, entry = ok("uncommon", "padding_and_reserved_blocks",
                                  "a PADDING block and a reserved block type 9 to skip", "§4.1",
                                  signal("sine", 500, 1, 16, next(seed)), 8000, 16)
    head, blocks, frames = _blocks(stream)
    stream = _join(head, blocks[:1] + [(1, bytes(64)), (9, b"future")] + blocks[1:], frames)
    yield cat, name, stream, entry
    # -- faulty: MUST be rejected ---------------------------------------------------------------------
    base = _encode(signal("walk", 2048, 2, 16, 7), 44100, 16, frame_length=512)
    yield bad("bad_signature", "signature replaced", "§3.1", b"RIFF" + base[4:], "NotVaeError",
              reseal=False)
    yield bad("crlf_damage", "CR LF converted to LF", "§3.1", base.replace(b"\r\n", b"\n", 1),
              "NotVaeError", reseal=False)
    yield bad("version_2", "major version 2", "§3.2", base[:8] + b"\x02" + base[9:],
              "UnsupportedError")
    yield bad("truncated_header", "ends inside STREAMINFO", "§4.2", base[:30], "TruncatedError",
              reseal=False)
    yield bad("truncated_frame", "ends inside the last frame", "§5.2", base[:-7],
              "TruncatedError", reseal=False)
    yield bad("missing_frame", "ends after a frame, before total_samples", "§5.2",
              _first_frame(base)[0] + _first_frame(base)[1], "TruncatedError")
    flipped = bytearray(base)
    flipped[len(_first_frame(base)[0]) + 5] ^= 0x01
    yield bad("header_crc8", "frame header CRC-8 mismatch", "§5.1", bytes(flipped),
              "IntegrityError")
    yield bad("frame_crc32", "frame CRC-32 mismatch (a payload bit flipped)", "§5.5",
              _edit_frame(base, lambda f: f[:30] + bytes([f[30] ^ 0x20]) + f[31:], reseal=False),
              "IntegrityError")
    md5_bad = bytearray(base)
    md5_bad[38] ^= 0xFF
    yield bad("pcm_md5", "STREAMINFO MD5 does not match the audio", "§4.2", bytes(md5_bad),
              "IntegrityError")
    yield bad("subframe_reserved", "reserved subframe type 6", "§5.3",
              _edit_frame(base, lambda f: f[:14] + b"\x06" + f[15:]), "UnsupportedError")
    yield bad("subframe_model_reserved", "reserved model-conditioned subframe type 66", "§5.3",
              _edit_frame(base, lambda f: f[:14] + b"\x42" + f[15:]), "UnsupportedError")
    yield bad("model_subframe_without_ref", "a MODEL_PREDICTED subframe, no MODEL_REF", "§8.1",
              _edit_frame(base, lambda f: f[:14] + b"\x40" + f[15:]), "FormatError")
    yield from _model_vectors(ok, bad, seed)
    yield bad("channel_mode_4", "reserved channel_mode 4", "§5.1",
              _edit_frame(base, lambda f: f[:8] + b"\x04" + f[9:]), "UnsupportedError")
    hostile = bytearray(base)
    hostile[26:34] = (2**63).to_bytes(8, "big")
    yield bad("total_samples_2_63", "total_samples 2^63 with four frames", "§5.2 §10",
              bytes(hostile), "TruncatedError")
    yield bad("payload_over_limit", "payload_length 2^31, above the §5.1 limit", "§5.1 §10",
              _edit_frame(base, lambda f: f[:9] + (2**31).to_bytes(4, "big") + f[13:])[:2000],
              "LimitError")
    before, frame, _ = _first_frame(base)
    longer = _reseal(bytes(frame[:9] + (4000).to_bytes(4, "big") + frame[13:]))
    yield bad("payload_past_end", "payload_length within the limit but past the end of file",
              "§5.1", before + longer, "TruncatedError")
    noise = _encode(signal("noise", 600, 1, 16, 8), 8000, 16)
    noise = noise[:38] + bytes(16) + noise[54:]  # MD5 "not computed": only the CRC can tell
    yield bad("frame_crc32_no_md5", "frame CRC-32 mismatch in a VERBATIM frame of a stream "
              "without MD5", "§5.5", _edit_frame(noise, lambda f: f[:40] + bytes([f[40] ^ 4])
                                                   + f[41:], reseal=False), "IntegrityError")
    yield bad("sample_count", "sample_count 100 in a frame that must hold 512", "§5.2",
              _edit_frame(base, lambda f: f[:6] + (100).to_bytes(2, "big") + f[8:]),
              "FormatError")
    yield bad("trailing_garbage", "bytes after the last frame", "§5.2", base + b"\0\0",
              "FormatError")
    out_of_range = g.Subframe.build(dict(subframe_type=0, wasted_bits=0, body=dict(value=2**15)))
    yield bad("sample_out_of_range", "CONSTANT 32768 in a 16-bit stream, valid CRCs", "§5.4",
              _edit_frame(base, lambda f: _with_payload(f, out_of_range + out_of_range)),
              "IntegrityError")
    silent = _kernels_rc_encode_zeros(512)

    def twice_in_payload(subframe_type, data=silent, **body):
        """A subframe with these body fields and coded ``data`` (512 zero residuals unless
        given), twice in a frame's payload."""
        sub = g.Subframe.build(dict(subframe_type=subframe_type, wasted_bits=0, body=dict(
            **body, data_length=len(data), data=data)))
        return _edit_frame(base, lambda f: _with_payload(f, sub + sub))

    def stage_subframe(subframe_type, stages, **mixer):
        """A (MIXED_)CASCADE subframe with these stages (and mixer), twice in a payload."""
        return twice_in_payload(subframe_type, order=1, coef_bits=1, shift=0,
                                initial_mean_log2=0, coefs=b"\0", cross_taps=0, cross_shift=0,
                                cross_step=0, stage_count=len(stages), stages=stages, **mixer)

    for name, stages, what in (
            ("cascade_taps_0", [dict(taps=0, shift=0, step=1, rule=0)],
             "a CASCADE stage of 0 taps"),
            ("cascade_stages_5", [dict(taps=1, shift=0, step=1, rule=0)] * 5,
             "5 CASCADE stages"),
            ("cascade_rule_2", [dict(taps=1, shift=0, step=1, rule=2)],
             "a CASCADE stage with reserved rule 2")):
        yield bad(name, what + ", valid CRCs", "§5.4 §6.4", stage_subframe(3, stages),
                  "FormatError")
    for name, (mix_shift, mix_step, mix_bias) in (("mix_shift_15", (15, 0, 0)),
                                                  ("mix_step_64", (0, 64, 0)),
                                                  ("mix_bias_17", (0, 0, 17))):
        yield bad(name, f"a MIXED_CASCADE mixer with mix_shift {mix_shift}, mix_step "
                  f"{mix_step}, mix_bias {mix_bias}, valid CRCs", "§5.4 §6.5",
                  stage_subframe(4, [dict(taps=1, shift=0, step=1, rule=1)],
                                 mix_shift=mix_shift, mix_step=mix_step, mix_bias=mix_bias),
                  "FormatError")

    def ols_subframe(**fields):
        """An OLS_CASCADE subframe, no stages, these predictor fields changed, twice in a
        payload."""
        body = dict(initial_mean_log2=0, ols_taps=1, ols_cross_taps=0, ols_scale=0,
                    ols_forget=9, ols_ridge=27, ols_interval_log2=4, cross_taps=0,
                    cross_shift=0, cross_step=0, stage_count=0, stages=[], mix_shift=0,
                    mix_step=0, mix_bias=0)
        return twice_in_payload(5, **{**body, **fields})

    for name, fields in (("ols_taps_0", dict(ols_taps=0)),
                         ("ols_taps_33", dict(ols_taps=17, ols_cross_taps=16)),
                         ("ols_scale_25", dict(ols_scale=25)),
                         ("ols_forget_14", dict(ols_forget=14)),
                         ("ols_ridge_0", dict(ols_ridge=0)),
                         ("ols_interval_log2_2", dict(ols_interval_log2=2))):
        what = ", ".join(f"{k} {v}" for k, v in fields.items())
        yield bad(name, f"an OLS_CASCADE predictor with {what}, valid CRCs", "§5.4 §6.6",
                  ols_subframe(**fields), "FormatError")
    head, blocks, frames = _blocks(base)
    yield bad("block_type_127", "forbidden metadata block type 127", "§4.1",
              _join(head, blocks[:1] + [(127, b"")] + blocks[1:], frames), "FormatError")
    past_end = (head + g.BlockHeader.build(dict(is_last=0, block_type=0, length=40)) + blocks[0][1]
                + g.BlockHeader.build(dict(is_last=1, block_type=1, length=2**24 - 1)) + bytes(100))
    yield bad("block_length_past_end", "a PADDING block of length 2^24-1 in a 154-byte file",
              "§4.1 §10", past_end, "TruncatedError")
    yield from _protection_vectors(ok, bad, base, seed)
    yield from _metadata_content_vectors(ok, bad, base, seed)
    yield from _coded_data_vectors(bad, base, twice_in_payload, silent)


def _protection_vectors(ok, bad, base, seed):
    """Version 1.5's checks: METADATA_CRC (§4.7) and the LAST frame (§5.2)."""
    from vaelac.stream_head import reseal

    flipped = bytearray(base)
    flipped[14] ^= 0x01  # STREAMINFO's sample_rate: what 1.4 decoded at the wrong speed
    yield bad("metadata_crc", "one bit of STREAMINFO's sample_rate flipped (METADATA_CRC "
              "mismatch)", "§4.7", bytes(flipped), "IntegrityError", reseal=False)
    minor = bytearray(base)
    minor[9] ^= 0x01  # 1.5 -> 1.4: the check must not switch itself off
    yield bad("metadata_crc_version_minor", "version_minor 5 flipped to 4, METADATA_CRC kept",
              "§3.2 §4.7", bytes(minor), "IntegrityError", reseal=False)
    head, blocks, frames = _blocks(base)
    assert blocks[-1][0] == 6
    yield bad("metadata_crc_missing", "a 1.5 stream whose metadata ends without METADATA_CRC",
              "§4.1 §4.7", _join(head, blocks[:-1], frames), "IntegrityError")
    yield bad("metadata_crc_not_last", "METADATA_CRC followed by a PADDING block", "§4.1 §4.7",
              _join(head, blocks + [(1, bytes(8))], frames), "FormatError")
    yield bad("metadata_crc_length", "an 8-byte METADATA_CRC", "§4.1 §4.7",
              _join(head, blocks[:-1] + [(6, bytes(8))], frames), "FormatError", reseal=False)
    yield bad("last_in_known_length", "the LAST flag on a frame of a stream of known length",
              "§5.2", _edit_frame(base, lambda f: f[:8] + bytes([f[8] | 0x80]) + f[9:]),
              "FormatError")
    streamed = _encode(signal("walk", 1500, 2, 16, next(seed)), 44100, 16, frame_length=512,
                       streaming=True)
    before, first, rest = _first_frame(streamed)
    assert rest and not first[8] & 0x80  # more frames follow a first frame without LAST
    yield bad("data_after_last", "frames after a LAST frame (unknown length)", "§5.2",
              _edit_frame(streamed, lambda f: f[:8] + bytes([f[8] | 0x80]) + f[9:]),
              "FormatError")
    yield bad("unknown_length_without_last", "a 1.5 stream of unknown length that ends after a "
              "frame without LAST", "§5.2", before + first, "TruncatedError", reseal=False)
    yield bad("unknown_length_no_frames", "a 1.5 stream of unknown length with no frame",
              "§5.2", before, "TruncatedError", reseal=False)
    category, name, stream, entry = ok(
        "uncommon", "version_minor_9", "version_minor 9: a later minor version's stream that "
        "uses nothing new", "§3.2", signal("walk", 800, 1, 16, next(seed)), 44100, 16)
    stream = stream[:9] + b"\x09" + stream[10:]
    yield category, name, reseal(stream), entry


def _metadata_content_vectors(ok, bad, base, seed):
    """STREAMINFO, TAGS, SEEKTABLE and MODEL_REF contents out of range, behind a good
    METADATA_CRC (§4.2-§4.6), and a channel mask (§4.2)."""
    from vaelac.spec import container as g

    yield ok("subset", "channel_mask_5_1", "6 channels with channel_mask 0x3F (FL FR FC LFE BL "
             "BR), carried into the WAV", "§4.2", signal("sine", 600, 6, 16, next(seed)), 48000,
             16, frame_length=256, channel_mask=0x3F)
    for name, at, value, what in (("streaminfo_rate_0", 14, b"\0\0\0\0", "sample_rate 0"),
                                  ("streaminfo_channels_0", 18, b"\0", "channels 0"),
                                  ("streaminfo_bits_33", 19, b"\x21", "bits_per_sample 33"),
                                  ("streaminfo_frame_length_0", 22, b"\0\0\0\0",
                                   "frame_length 0")):
        yield bad(name, f"STREAMINFO {what}, METADATA_CRC good", "§4.2",
                  base[:at] + value + base[at + len(value):], "FormatError")
    head, blocks, frames = _blocks(base)
    vendor = b"vaelac"
    comment = b"TITLE=x"
    tags = len(vendor).to_bytes(4, "big") + vendor + (5).to_bytes(4, "big") \
        + len(comment).to_bytes(4, "big") + comment
    yield bad("tags_count", "TAGS count 5 with one comment in the block", "§4.5",
              _join(head, blocks[:1] + [(3, tags)] + blocks[1:], frames), "FormatError")
    tags = len(vendor).to_bytes(4, "big") + vendor + (1).to_bytes(4, "big") \
        + (200).to_bytes(4, "big") + comment
    yield bad("tags_comment_length", "a TAGS comment of length 200 in a 27-byte block", "§4.5",
              _join(head, blocks[:1] + [(3, tags)] + blocks[1:], frames), "FormatError")
    table = (2).to_bytes(4, "big") + bytes(16)
    yield bad("seektable_count", "SEEKTABLE count 2 with one seek point", "§4.4",
              _join(head, blocks[:1] + [(2, table)] + [b for b in blocks[1:] if b[0] != 2],
                    frames), "FormatError")
    ref = g.ModelRef.build(dict(sha256=bytes(32), name="x" * 255)) + bytes(12)
    yield bad("model_ref_length", "a MODEL_REF of 300 bytes (at most 288)", "§4.1 §4.6",
              _join(head, blocks[:1] + [(4, ref)] + blocks[1:], frames), "FormatError")


def _coded_data_vectors(bad, base, twice_in_payload, silent):
    """Faults inside a subframe's coded data (§7.2, §7.5) and a VERBATIM length (§5.4)."""
    from vaelac import _pykernels
    from vaelac.spec import container as g

    def with_data(data):  # PREDICTED subframes of order 1
        return twice_in_payload(2, data, order=1, coef_bits=1, shift=0, initial_mean_log2=0,
                                coefs=b"\0")

    yield bad("rc_leftover_bytes", "a PREDICTED subframe's coded data with a byte left over",
              "§7.5", with_data(silent + b"\0"), "FormatError")
    yield bad("rc_first_byte", "coded data whose first byte is not 0", "§7.2",
              with_data(b"\x01" + silent[1:]), "FormatError")
    limit = _pykernels.MAX_RESIDUAL_BITLEN
    _pykernels.MAX_RESIDUAL_BITLEN = 63  # an encoder that codes what a decoder must refuse
    try:
        beyond = _pykernels.rc_encode(np.array([2**57] + [0] * 511, np.int64), 0)
    finally:
        _pykernels.MAX_RESIDUAL_BITLEN = limit
    yield bad("rc_bitlen_58", "a residual whose coded bit length is 58 (at most 56)", "§7.4",
              with_data(beyond), "FormatError")
    data = bytes(512 * 16 // 8 + 1)
    verbatim = g.Subframe.build(dict(subframe_type=1, wasted_bits=0, body=dict(
        data_length=len(data), data=data)))
    yield bad("verbatim_data_length", "VERBATIM data_length one more than 512 16-bit values take",
              "§5.4", _edit_frame(base, lambda f: _with_payload(f, verbatim + verbatim)),
              "FormatError")


def _model_entry(model) -> dict:
    """What a decoder needs to have installed: the model's name, SHA-256 and where it ships."""
    return dict(name=model.name, sha256=model.sha256.hex(),
                file=f"reference/data/models/{model.name}.vaem")


def _demo(seconds: float, start: float = 1.0):
    """An excerpt of the shipped CC0 demo recording (real audio for the learned model)."""
    from vaelac.wav import read_wav

    pcm, fmt = read_wav(Path(__file__).resolve().parents[1] / "reference" / "data" / "demo.wav")
    first = int(start * fmt.sample_rate)
    return pcm[first:first + int(seconds * fmt.sample_rate)].astype(np.int64), fmt.sample_rate


def _model_vectors(ok, bad, seed):
    """Streams of the learned model (§8): the shipped models, an embedded one, and its faults."""
    from vaelac.model import ModelKind, default_model, load_model
    from vaelac.spec import model as model_grammar

    residual = default_model()
    if residual is None:
        raise SystemExit("no default model: train it first (README, 'The learned model')")
    music, rate = _demo(1.0, start=0.5)  # an excerpt where the model wins some subframes
    yield ok("subset", "model_default", "MODEL_PREDICTED subframes with the shipped default "
             "model named by MODEL_REF (not embedded), stereo with cross inputs", "§8.1–§8.4",
             music, rate, 16, model=residual)
    yield ok("subset", "model_default_mono_24bit", "MODEL_PREDICTED, mono, 24 bits, wasted "
             "bits", "§8.3 §8.4 §6.2", music[:, :1] << 8, rate, 24, model=residual)
    renamed = model_grammar.ModelFile.parse(residual.data)
    renamed.name = residual.name + "-embedded"
    embedded = load_model(model_grammar.ModelFile.build(renamed))
    stream = _encode(music, rate, 16, model=embedded, embed_model=True)
    yield ok("subset", "model_embedded", "a model only MODEL_DATA carries (SHA-256 match)",
             "§4.6 §8.1", music, rate, 16, model=embedded, embed_model=True)
    ref_at = stream.find(embedded.sha256)
    yield bad("model_missing", "MODEL_REF names a model no decoder has", "§8.1",
              _encode(music, rate, 16, model=embedded, embed_model=False), "ModelError")
    wrong = bytearray(stream)
    wrong[ref_at] ^= 0xFF  # MODEL_REF now names another hash; MODEL_DATA no longer matches
    yield bad("model_hash_mismatch", "MODEL_DATA whose SHA-256 is not MODEL_REF's", "§8.1",
              bytes(wrong), "ModelError")
    import hashlib

    from vaelac.spec import container as g

    junk = b"VAEMODEL" + bytes(120)  # format_version 0: not a valid model file
    head, blocks, frames = _blocks(stream)
    ref = g.ModelRef.build(dict(sha256=hashlib.sha256(junk).digest(), name="junk"))
    swapped = [(kind, ref if kind == 4 else junk if kind == 5 else body) for kind, body in blocks]
    yield bad("model_invalid_hash_matches", "MODEL_DATA that is not a valid model file, its "
              "SHA-256 named by MODEL_REF", "§8.1", _join(head, swapped, frames), "ModelError")
    lossy = default_model(ModelKind.LOSSY)
    if lossy is not None:
        short, _ = _demo(0.5, start=1.0)
        category, name, stream, entry = ok("uncommon", "lossy", "a LOSSY stream: MODEL_LOSSY "
                                           "subframes, shipped lossy model", "§8.6", short,
                                           rate, 16, lossy=lossy)
        info = stream[38:54]
        entry.update(pcm_md5=info.hex(), lossy=True, needs_model=_model_entry(lossy),
                     note="lossy: the expected MD5 is the encoder's own reconstruction")
        yield category, name, stream, entry
        flags = bytearray(stream)
        flags[20] = 0  # STREAMINFO flags: LOSSY cleared
        yield bad("lossy_subframe_in_lossless_stream", "MODEL_LOSSY without the LOSSY flag",
                  "§8.6", bytes(flags), "FormatError")


def write_vectors(out: Path) -> dict:
    from vaelac.spec.constants import VERSION_MAJOR, VERSION_MINOR

    manifest = {"format_version": f"{VERSION_MAJOR}.{VERSION_MINOR}", "vectors": {}}
    for category in ("subset", "uncommon", "faulty", LEGACY):
        (out / category).mkdir(parents=True, exist_ok=True)
    for category, name, stream, entry in build_vectors():
        path = f"{category}/{name}.vae"
        (out / path).write_bytes(stream)
        manifest["vectors"][path] = entry
    # streams of format 1.4, which today's encoder cannot write: kept as they were made, with
    # their own manifest, so that every 1.5 decoder is held to decoding them (§3.2)
    legacy = json.loads((VECTORS / LEGACY / "manifest.json").read_text())
    for path, entry in legacy.items():
        if out != VECTORS:
            shutil.copyfile(VECTORS / path, out / path)
        manifest["vectors"][path] = entry
    if out != VECTORS:
        shutil.copyfile(VECTORS / LEGACY / "manifest.json", out / LEGACY / "manifest.json")
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n")
    return manifest


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m vaelac.conformance.generate")
    p.add_argument("--out", type=Path, default=VECTORS)
    p.add_argument("--check", action="store_true",
                   help="regenerate into a temporary folder and compare with --out")
    args = p.parse_args(argv)
    if not args.check:
        manifest = write_vectors(args.out)
        print(f"{len(manifest['vectors'])} vectors written to {args.out}")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        manifest = write_vectors(Path(tmp))
        files = list(manifest["vectors"]) + ["manifest.json"]
        _, mismatch, errors = filecmp.cmpfiles(tmp, args.out, files, shallow=False)
    if mismatch or errors:
        print(f"vectors differ from a fresh build: {sorted(mismatch + errors)}", file=sys.stderr)
        return 1
    print(f"{len(files) - 1} vectors match a fresh build")
    return 0


if __name__ == "__main__":
    sys.exit(main())
