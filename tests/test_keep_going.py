"""--keep-going: damaged frames become silence, every undamaged frame is recovered exactly."""

import io
import subprocess
import sys

import numpy as np
import pytest

import vaelac
from vaelac.decoder import StreamDecoder
from vaelac.spec import container as g
from _signals import make_signal

FRAME = 256


def _stream(n=FRAME * 10 + 17, channels=2):
    pcm = make_signal("walk", n, channels, 16, seed=4)
    buf = io.BytesIO()
    enc = vaelac.StreamEncoder(buf, 8000, channels, 16, total_samples=n, frame_length=FRAME)
    enc.write(pcm)
    enc.close()
    return buf.getvalue(), pcm


def _frames(stream):
    pos = vaelac.decode(stream)[1].first_frame_offset
    spans = []
    while pos < len(stream):
        head = g.FrameHeader.parse(stream[pos:pos + 14])
        end = pos + 14 + head.payload_length + 4
        spans.append((pos, end))
        pos = end
    return spans


def _decode(stream):
    dec = StreamDecoder(io.BytesIO(stream), keep_going=True)
    pcm = np.concatenate(list(dec))
    return pcm, dec.damage


def _check(out, pcm, lost_frames):
    assert out.shape == pcm.shape
    for k in range(-(-len(pcm) // FRAME)):
        part = slice(k * FRAME, (k + 1) * FRAME)
        if k in lost_frames:
            assert not out[part].any()
        else:
            assert np.array_equal(out[part], pcm[part]), k


def test_a_damaged_frame_becomes_silence_and_the_rest_is_exact():
    stream, pcm = _stream()
    start, end = _frames(stream)[4]
    bad = bytearray(stream)
    bad[(start + end) // 2] ^= 0x10
    with pytest.raises(vaelac.IntegrityError):
        vaelac.decode(bytes(bad))
    out, damage = _decode(bytes(bad))
    _check(out, pcm, {4})
    assert [(d.first_frame, d.first_sample, d.samples) for d in damage] == [(4, 4 * FRAME, FRAME)]
    assert "CRC-32" in damage[0].reason


def test_a_removed_frame_and_inserted_garbage_are_resynchronised():
    stream, pcm = _stream()
    spans = _frames(stream)
    cut = stream[:spans[2][0]] + stream[spans[3][0]:]  # frame 2 missing
    out, damage = _decode(cut)
    _check(out, pcm, {2})
    spans = _frames(stream)
    garbage = stream[:spans[6][0]] + bytes(range(256)) * 3 + b"\xff\xf9junk" + stream[spans[6][0]:]
    out, damage = _decode(garbage)
    _check(out, pcm, set())
    assert [(d.first_frame, d.samples) for d in damage] == [(6, 0)]
    assert "resumed at byte" in damage[0].reason


def test_a_truncated_tail_is_filled_to_the_declared_length():
    stream, pcm = _stream()
    spans = _frames(stream)
    out, damage = _decode(stream[:spans[7][0] + 20])
    _check(out, pcm, {7, 8, 9, 10})
    assert damage[-1].first_sample == 7 * FRAME
    assert damage[-1].samples == len(pcm) - 7 * FRAME


@pytest.mark.parametrize("seed", range(20))
def test_random_damage_never_escapes_keep_going(seed):
    stream, pcm = _stream()
    rng = np.random.default_rng(seed)
    bad = bytearray(stream)
    start = _frames(stream)[0][0]
    for pos in rng.integers(start, len(bad), 3):
        bad[pos] ^= 1 << int(rng.integers(0, 8))
    out, damage = _decode(bytes(bad))
    assert out.shape == pcm.shape
    lost = {d.first_frame + i for d in damage for i in range(-(-d.samples // FRAME))}
    for k in set(range(11)) - lost:
        assert np.array_equal(out[k * FRAME:(k + 1) * FRAME], pcm[k * FRAME:(k + 1) * FRAME])


def test_cli_keep_going_writes_what_it_recovered_and_exits_3(tmp_path):
    stream, pcm = _stream()
    start, end = _frames(stream)[3]
    bad = bytearray(stream)
    bad[end - 6] ^= 0xFF
    (tmp_path / "bad.vae").write_bytes(bytes(bad))
    plain = subprocess.run([sys.executable, "-m", "vaelac", "decode", str(tmp_path / "bad.vae"),
                            "-o", str(tmp_path / "a.wav")], capture_output=True, text=True)
    assert plain.returncode == 1 and not (tmp_path / "a.wav").exists()
    r = subprocess.run([sys.executable, "-m", "vaelac", "decode", "-F", str(tmp_path / "bad.vae"),
                        "-o", str(tmp_path / "b.wav")], capture_output=True, text=True)
    assert r.returncode == 3
    assert "samples 768..1023 (from frame 3) filled with silence" in r.stderr
    from vaelac.wav import read_wav
    _check(read_wav(tmp_path / "b.wav")[0], pcm, {3})
