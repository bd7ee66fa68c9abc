"""A second encoder: ``conformance/c-encoder/``, written in C from ``spec/`` alone (stop 17).
The reference decoder must decode its streams — which no part of the reference wrote — to the
WAV the kit wrote (samples compared, and the stream's own MD5 checked by the decoder)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

import vaelac
from vaelac.conformance._kit import write_wav

from _signals import make_signal

SOURCE = Path(__file__).resolve().parents[1] / "conformance" / "c-encoder" / "vaeenc.c"


@pytest.fixture(scope="module")
def vaeenc(c_compiler, tmp_path_factory) -> Path:
    exe = tmp_path_factory.mktemp("c-encoder") / "vaeenc"
    subprocess.run(c_compiler + ["-std=c11", "-O2", "-Wall", "-o", str(exe), str(SOURCE)],
                   check=True, capture_output=True, text=True)
    return exe


@pytest.mark.parametrize("kind,n,channels,bits,rate", [
    ("walk", 0, 1, 16, 44100), ("walk", 1, 2, 16, 44100), ("sine", 4095, 1, 1, 8000),
    ("walk", 4097, 2, 7, 22050), ("noise", 5000, 3, 12, 48000), ("chirp", 9000, 2, 24, 96000),
    ("extremes", 3000, 2, 32, 44100), ("wasted", 4096, 2, 20, 44100), ("dc", 8193, 6, 16, 1),
    ("silence", 100, 255, 8, 2**32 - 1), ("clipped", 6000, 1, 32, 192000)])
def test_the_reference_decodes_what_the_c_encoder_writes(vaeenc, tmp_path, kind, n, channels,
                                                          bits, rate):
    pcm = make_signal(kind, n, channels, bits, seed=n + bits)
    wav, stream = tmp_path / "in.wav", tmp_path / "out.vae"
    write_wav(wav, pcm, rate, bits)
    proc = subprocess.run([str(vaeenc), str(wav), str(stream)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    back, info = vaelac.decode(stream.read_bytes())  # checks the stream's MD5 too
    assert (info.sample_rate, info.channels, info.bits_per_sample) == (rate, channels, bits)
    assert np.array_equal(np.asarray(back, np.int64).reshape(n, channels), pcm)


@pytest.mark.parametrize("order", [1, 2, 3])
def test_each_fixed_predictor(vaeenc, tmp_path, order, monkeypatch):
    """Every PREDICTED order the encoder has, forced, on a 16-bit random walk."""
    pcm = make_signal("walk", 10000, 2, 16, seed=order)
    wav, stream = tmp_path / "in.wav", tmp_path / "out.vae"
    write_wav(wav, pcm, 44100, 16)
    monkeypatch.setenv("VAEENC_FORCE_ORDER", str(order))
    subprocess.run([str(vaeenc), str(wav), str(stream)], check=True)
    back, _ = vaelac.decode(stream.read_bytes())
    assert np.array_equal(np.asarray(back, np.int64), pcm)
    import io

    from vaelac.decoder import StreamDecoder
    dec = StreamDecoder(io.BytesIO(stream.read_bytes()))
    dec.keep_frame_infos = True
    while dec.read_frame_image() is not None:
        pass
    assert 2 in {t for frame in dec.frames for t in frame.subframe_types}  # PREDICTED subframes


def test_it_writes_format_1_5_with_metadata_crc(vaeenc, tmp_path):
    """§3.2, §4.7: version 1.5, STREAMINFO then METADATA_CRC (the last block, length 4, the
    CRC-32 of the 58 bytes before its field); a flipped bit in STREAMINFO is then an
    IntegrityError in the reference decoder instead of a stream that plays at the wrong rate."""
    import zlib
    pcm = make_signal("walk", 5000, 2, 16, seed=15)
    wav, stream = tmp_path / "in.wav", tmp_path / "out.vae"
    write_wav(wav, pcm, 44100, 16)
    subprocess.run([str(vaeenc), str(wav), str(stream)], check=True)
    data = stream.read_bytes()
    assert data[8:10] == b"\x01\x05"
    assert data[10:14] == (40).to_bytes(4, "big")  # STREAMINFO, no longer is_last
    assert data[54:58] == bytes([0x86, 0, 0, 4])  # is_last, METADATA_CRC, 4
    assert data[58:62] == zlib.crc32(data[:58]).to_bytes(4, "big")
    damaged = data[:14] + (22050).to_bytes(4, "big") + data[18:]
    with pytest.raises(vaelac.IntegrityError):
        vaelac.decode(damaged)
