"""The API from many threads at once (the C kernels release the GIL, so they really overlap):
every call gives what it gives alone, errors stay in their own thread, files stay whole."""

import io
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import vaelac
from vaelac import cli
from vaelac.checksum import crc32
from vaelac import decoder as decoder_module
from vaelac.decoder import StreamDecoder
from vaelac.spec.constants import FRAME_CRC_BYTES, FRAME_HEADER_BYTES
from vaelac.wav import read_wav
from _signals import make_signal


def test_mixed_api_calls_from_eight_threads(tmp_path):
    signals = [make_signal(kind, 12000 + 331 * i, 1 + i % 3, 16 if i % 2 else 24, seed=i)
               for i, kind in enumerate(["walk", "sine", "noise", "chirp"] * 3)]
    bits = [16 if i % 2 else 24 for i in range(len(signals))]
    streams = [vaelac.encode(x, 44100, bits=b) for x, b in zip(signals, bits)]  # one thread

    def job(i):
        x, b, s = signals[i], bits[i], streams[i]
        path = tmp_path / f"{i}.vae"
        vaelac.write(path, x, 44100, bits=b)
        assert path.read_bytes() == s  # the same bytes as when encoded alone
        assert np.array_equal(vaelac.read(path, always_2d=True)[0], x)
        assert np.array_equal(np.concatenate(list(vaelac.blocks(path, 1000, always_2d=True))), x)
        assert vaelac.info(path).total_samples == len(x)
        assert vaelac.encode(x, 44100, bits=b) == s
        damaged = bytearray(s)
        damaged[len(s) // 2] ^= 0x08
        try:
            vaelac.decode(bytes(damaged))
            raise AssertionError("damage not detected")
        except vaelac.IntegrityError:
            pass
        dec = StreamDecoder(io.BytesIO(bytes(damaged)), keep_going=True)
        out = np.concatenate(list(dec))
        assert out.shape == x.shape and len(dec.damage) == 1
        return i

    with ThreadPoolExecutor(8) as pool:
        for _ in range(2):
            assert sorted(pool.map(job, range(len(signals)))) == list(range(len(signals)))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        f"{i}.vae" for i in range(len(signals)))  # no .part left by any thread


# -- one stream decoded on several threads (StreamDecoder(threads=N), vaelac decode -t N) ------

def _frames(stream: bytes, threads: int, *, image: bool = False):
    """What a decoder hands out before it stops: (frames, the exception or None, decoder)."""
    dec = StreamDecoder(io.BytesIO(stream), threads=threads)
    dec.keep_frame_infos = True
    out = []
    try:
        while (frame := dec.read_frame_image() if image else dec.read_frame()) is not None:
            out.append(bytes(frame) if image else frame.copy())
    except vaelac.VaeError as exc:
        return out, exc, dec
    return out, None, dec


def _streams():
    """Multi-frame streams of every path: CASCADE stereo (cross input), plain LPC at 24 bits,
    the learned model, three channels."""
    stereo = make_signal("chirp", 70000, 2, 16, seed=3)
    mono24 = make_signal("walk", 50000, 1, 24, seed=4)
    three = make_signal("sine", 30000, 3, 16, seed=5)
    return [(stereo, vaelac.encode(stereo, 44100, bits=16, level=5, model=None)),
            (mono24, vaelac.encode(mono24, 48000, bits=24, level=2, model=None)),
            (stereo, vaelac.encode(stereo, 44100, bits=16, level=4)),
            (three, vaelac.encode(three, 44100, bits=16, level=0, model=None))]


def test_frames_decoded_ahead_on_threads_are_the_input_in_order():
    for pcm, stream in _streams():
        one, error, dec1 = _frames(stream, 1)
        assert error is None and np.array_equal(np.concatenate(one), pcm)
        for threads in (2, 3, 8):
            many, error, dec = _frames(stream, threads)
            assert error is None and dec.md5_checked and len(many) == len(one) > 2
            assert all(np.array_equal(a, b) for a, b in zip(one, many))
            assert dec.frames == dec1.frames and dec.samples_decoded == len(pcm)
            assert _frames(stream, threads, image=True)[0] == _frames(stream, 1, image=True)[0]


def _with_frame_changed(stream: bytes, frame: int, change, fix_crc: bool) -> bytes:
    """``stream`` with ``change(bytearray)`` applied to frame ``frame``'s payload, its CRC-32
    recomputed if ``fix_crc`` (so that only the subframes' decoding can find the damage)."""
    _, _, dec = _frames(stream, 1)
    info = dec.frames[frame]
    start = info.offset + FRAME_HEADER_BYTES
    end = info.offset + info.size - FRAME_CRC_BYTES
    out = bytearray(stream)
    payload = bytearray(out[start:end])
    change(payload)
    out[start:end] = payload
    if fix_crc:
        out[end:end + FRAME_CRC_BYTES] = crc32(bytes(out[info.offset:end])).to_bytes(4, "big")
    return bytes(out)


def test_a_failure_ahead_is_raised_at_its_frame_after_the_frames_before_it():
    _, stream = _streams()[0]
    frames = len(_frames(stream, 1)[0])

    def flip(payload):
        payload[len(payload) // 2] ^= 0x40

    def break_subframe_type(payload):
        payload[0] = 200  # reserved (§5.3)

    cases = [_with_frame_changed(stream, 2, flip, fix_crc=False),          # CRC-32 (reading)
             _with_frame_changed(stream, 2, break_subframe_type, True),    # subframe (decoding)
             _with_frame_changed(stream, 3, flip, fix_crc=True),           # coder or range
             stream[:len(stream) - 1000],                                  # truncated
             stream + b"\0"]                                               # data after the end
    for damaged in cases:
        one, error, _ = _frames(damaged, 1)
        assert error is not None and len(one) < frames + 1
        for threads in (2, 4):
            many, error_many, _ = _frames(damaged, threads)
            assert type(error_many) is type(error) and str(error_many) == str(error)
            assert len(many) == len(one) and all(np.array_equal(a, b) for a, b in zip(one, many))


def test_seek_and_keep_going_decode_one_frame_at_a_time():
    _, stream = _streams()[0]
    dec = StreamDecoder(io.BytesIO(stream), threads=2)
    with pytest.raises(ValueError, match="threads"):
        dec.seek(100)
    assert StreamDecoder(io.BytesIO(stream), threads=4, keep_going=True).threads == 1
    with pytest.raises(ValueError):
        StreamDecoder(io.BytesIO(stream), threads=0)


def test_cli_decode_on_threads_writes_the_same_file(tmp_path):
    pcm, stream = _streams()[0]
    src = tmp_path / "in.vae"
    src.write_bytes(stream)
    outputs = []
    for threads in ("1", "3", "0"):
        dst = tmp_path / f"out{threads}.wav"
        assert cli.main(["decode", "-q", "-t", threads, str(src), "-o", str(dst)]) == 0
        outputs.append(dst.read_bytes())
    assert outputs[0] == outputs[1] == outputs[2]
    assert np.array_equal(read_wav(tmp_path / "out3.wav")[0], pcm)


def test_read_ahead_holds_a_bounded_number_of_samples(monkeypatch):
    pcm, stream = _streams()[0]
    frame_samples = 2 * StreamDecoder(io.BytesIO(stream)).info.frame_length
    for bound, most_held in ((1, 0), (3 * frame_samples, 2), (1 << 30, 4)):
        monkeypatch.setattr(decoder_module, "_MAX_AHEAD_SAMPLES", bound)
        dec = StreamDecoder(io.BytesIO(stream), threads=4)
        out, held = [], []
        while (frame := dec.read_frame()) is not None:
            out.append(frame.copy())
            held.append(len(dec._pending))  # frames read ahead beyond the one handed out
        assert np.array_equal(np.concatenate(out), pcm)
        assert max(held) == most_held


def test_an_encoder_on_one_thread_writes_the_same_stream():
    """threads=1 (what -j N and cluster workers use when they fill the CPUs) encodes level 5's
    candidate streams one after another: the same bytes as on threads."""
    from _signals import adversarial_signal

    pcm, bits = adversarial_signal("tracker_loop", seconds=1.5)
    streams = []
    for threads in (0, 1):
        out = io.BytesIO()
        with vaelac.StreamEncoder(out, 44100, 2, bits, level=5, threads=threads) as enc:
            for start in range(0, len(pcm), 10000):
                enc.write(pcm[start:start + 10000])
        streams.append(out.getvalue())
    assert streams[0] == streams[1]
    assert np.array_equal(vaelac.decode(streams[1], always_2d=True)[0], pcm)
