"""The soundfile-shaped API: read, write, info, blocks, encode, decode."""

import io
import subprocess
import sys

import numpy as np
import pytest

import vaelac
from vaelac.stream_head import reseal
from _signals import make_signal


def test_write_read_with_paths_and_dtypes(tmp_path):
    data = make_signal("sine", 10000, 2, 16, seed=1).astype(np.int16)
    vaelac.write(tmp_path / "a.vae", data, 44100)
    back, rate = vaelac.read(tmp_path / "a.vae")
    assert rate == 44100 and back.dtype == np.int32 and np.array_equal(back, data)
    floats, _ = vaelac.read(tmp_path / "a.vae", dtype="float32")
    assert floats.dtype == np.float32 and np.allclose(floats, data / 32768.0)
    mono = data[:, 0]
    vaelac.write(tmp_path / "m.vae", mono, 8000)
    assert vaelac.read(tmp_path / "m.vae")[0].shape == (10000,)
    assert vaelac.read(tmp_path / "m.vae", always_2d=True)[0].shape == (10000, 1)



def test_mono_is_one_dimensional_everywhere_unless_always_2d(tmp_path):
    # Issue 21 item 13: read gave (n,) and decode (n, 1) for the same mono stream. One rule,
    # soundfile's, for every function returning samples: (frames,) for mono unless always_2d.
    mono = make_signal("walk", 5000, 1, 16, seed=6)
    stream = vaelac.encode(mono, 8000, bits=16)
    (tmp_path / "m.vae").write_bytes(stream)
    for always_2d, shape in ((False, (5000,)), (True, (5000, 1))):
        for dtype in ("int32", "float32"):
            got = [vaelac.read(tmp_path / "m.vae", dtype=dtype, always_2d=always_2d)[0],
                   vaelac.decode(stream, dtype=dtype, always_2d=always_2d)[0],
                   vaelac.decode(tmp_path / "m.vae", dtype=dtype, always_2d=always_2d)[0],
                   np.concatenate(list(vaelac.blocks(tmp_path / "m.vae", 1000, dtype=dtype,
                                                     always_2d=always_2d)))]
            assert [a.shape for a in got] == [shape] * 4, (always_2d, dtype)
            assert all(np.array_equal(a, got[0]) for a in got)
        assert np.array_equal(got[0].reshape(-1), mono[:, 0] / 32768.0)
    # the default is soundfile's: 1-D for mono
    assert vaelac.read(tmp_path / "m.vae")[0].shape == (5000,)
    assert vaelac.decode(stream)[0].shape == (5000,)
    assert next(vaelac.blocks(tmp_path / "m.vae")).ndim == 1
    assert vaelac.decode(vaelac.encode(mono[:0], 8000, bits=16))[0].shape == (0,)
    stereo = make_signal("walk", 500, 2, 16, seed=7)
    stream = vaelac.encode(stereo, 8000, bits=16)
    assert vaelac.decode(stream)[0].shape == vaelac.read(io.BytesIO(stream))[0].shape == (500, 2)

def test_blocks_concatenate_to_read_in_bounded_pieces(tmp_path):
    data = make_signal("walk", 30001, 3, 24, seed=2)
    vaelac.write(tmp_path / "b.vae", data, 48000, bits=24)
    parts = list(vaelac.blocks(tmp_path / "b.vae", 1000))
    assert all(len(p) == 1000 for p in parts[:-1]) and len(parts[-1]) == 1
    assert np.array_equal(np.concatenate(parts), data)
    assert np.array_equal(np.concatenate(list(vaelac.blocks(tmp_path / "b.vae"))), data)


def test_info_and_file_objects():
    data = make_signal("noise", 500, 2, 12, seed=3)
    buf = io.BytesIO()
    vaelac.write(buf, data, 22050, bits=12, tags={"TITLE": "t"}, channel_mask=0x3)
    buf.seek(0)
    info = vaelac.info(buf)
    assert (info.sample_rate, info.channels, info.bits_per_sample, info.total_samples) == (
        22050, 2, 12, 500)
    assert info.channel_mask == 3 and info.tags == [("TITLE", "t")] and not info.lossy
    assert info.duration == pytest.approx(500 / 22050)


def test_a_failed_write_leaves_no_file_and_overwrite_false_refuses(tmp_path):
    with pytest.raises(vaelac.EncodeError):
        vaelac.write(tmp_path / "x.vae", np.array([[40000]]), 8000, bits=16)
    assert list(tmp_path.iterdir()) == []
    vaelac.write(tmp_path / "y.vae", np.zeros(10, np.int16), 8000)
    with pytest.raises(vaelac.OutputExistsError):
        vaelac.write(tmp_path / "y.vae", np.zeros(10, np.int16), 8000, overwrite=False)


def test_the_decoder_imports_neither_torch_nor_the_encoder():
    code = ("import sys, vaelac.spec; assert 'vaelac.encoder' not in sys.modules;"
            "import vaelac, numpy as np; vaelac.decode(vaelac.encode(np.zeros(9, np.int16), 8));"
            "assert 'torch' not in sys.modules; print('ok')")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.stdout.strip() == "ok", r.stderr


def test_the_api_is_thread_safe(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    signals = [make_signal("walk", 20000, 2, 16, seed=s) for s in range(8)]
    with ThreadPoolExecutor(4) as pool:
        streams = list(pool.map(lambda x: vaelac.encode(x, 44100, bits=16), signals))
        decoded = list(pool.map(lambda s: vaelac.decode(s)[0], streams))
    assert all(np.array_equal(a, b) for a, b in zip(signals, decoded))


def test_reading_into_a_narrower_integer_dtype_is_refused_not_wrapped(tmp_path):
    data = np.array([-4_000_000, 0, 4_000_000], np.int32)
    vaelac.write(tmp_path / "x.vae", data, 48000, bits=24, model=None)
    with pytest.raises(vaelac.UsageError, match="int16. cannot hold this stream.s 24-bit"):
        vaelac.read(tmp_path / "x.vae", dtype="int16")
    with pytest.raises(vaelac.UsageError, match="uint32"):
        vaelac.read(tmp_path / "x.vae", dtype="uint32")
    assert vaelac.read(tmp_path / "x.vae", dtype="int64")[0].tolist() == data.tolist()


def test_float_data_are_written_like_soundfile_writes_them(tmp_path):
    rng = np.random.default_rng(5)
    x = np.clip(rng.normal(0, 0.3, (5000, 2)), -1.2, 1.2)  # a little beyond full scale
    with pytest.raises(vaelac.EncodeError, match="give bits="):
        vaelac.write(tmp_path / "f.vae", x, 44100)
    vaelac.write(tmp_path / "f.vae", x, 44100, bits=16)
    back, rate = vaelac.read(tmp_path / "f.vae", dtype="float64")
    assert rate == 44100
    inside = np.abs(x) < 1 - 2**-15
    assert np.all(np.abs(back - x)[inside] <= 2**-16 + 1e-12)  # half a 16-bit step
    assert back.max() <= 1 - 2**-15 and back.min() >= -1  # clipped, not wrapped


class _ForwardOnly(io.RawIOBase):
    """A pipe-like file: read() only, no seek."""

    def __init__(self, data: bytes):
        self._buf = io.BytesIO(data)

    def readable(self):
        return True

    def readinto(self, b):
        chunk = self._buf.read(min(len(b), 777))
        b[:len(chunk)] = chunk
        return len(chunk)


@pytest.fixture(scope="module")
def seekable_stream():
    """35 s of 8 kHz stereo in 2048-sample frames: seek points at 0, 10, 20 and 30 s."""
    data = make_signal("walk", 35 * 8000 + 123, 2, 16, seed=9)
    buf = io.BytesIO()
    with vaelac.StreamEncoder(buf, 8000, 2, 16, total_samples=len(data),
                              frame_length=2048) as enc:
        enc.write(data)
    stream = buf.getvalue()
    assert len(vaelac.info(io.BytesIO(stream)).seek_points) >= 3
    return data, stream


@pytest.mark.parametrize("start, stop", [(0, None), (0, 1), (1, 2047), (2047, 2049),
                                         (2048, 4096), (80000, 80001), (81920, 200000),
                                         (123456, None), (-1, None), (-3000, -7),
                                         (280122, None), (280123, None), (5, 5)])
def test_read_start_stop_equal_slicing_the_whole_signal(seekable_stream, start, stop):
    data, stream = seekable_stream
    for f in (io.BytesIO(stream), io.BufferedReader(_ForwardOnly(stream))):
        out, rate = vaelac.read(f, start=start, stop=stop, always_2d=True)
        assert rate == 8000 and np.array_equal(out, data[start:stop]), (start, stop, out.shape)


def test_frames_and_blocks_take_the_same_span(seekable_stream):
    data, stream = seekable_stream
    out, _ = vaelac.read(io.BytesIO(stream), 5000, 100001, always_2d=True)
    assert np.array_equal(out, data[100001:105001])
    parts = list(vaelac.blocks(io.BytesIO(stream), 999, start=170003, stop=250000,
                               always_2d=True))
    assert {len(p) for p in parts[:-1]} == {999}
    assert np.array_equal(np.concatenate(parts), data[170003:250000])
    with pytest.raises(ValueError, match="frames or stop"):
        vaelac.read(io.BytesIO(stream), 10, 0, 20)


def test_seek_uses_the_table_and_survives_a_wrong_one(seekable_stream):
    data, stream = seekable_stream
    info = vaelac.info(io.BytesIO(stream))
    points = info.seek_points
    frames_at = info.first_frame_offset
    # Spoil the second frame's sync: stepping frame by frame from the start would stop there,
    # so reading past the last seek point works only if the seek table was used.
    spoiled = bytearray(stream)
    spoiled[frames_at + points[0][1] + 14 + int.from_bytes(stream[frames_at + 9:frames_at + 13],
                                                            "big") + 4] ^= 0xFF
    with pytest.raises(vaelac.FormatError):
        vaelac.read(io.BytesIO(bytes(spoiled)))
    at = points[-1][0] + 5
    out, _ = vaelac.read(io.BytesIO(bytes(spoiled)), start=at, stop=at + 3000, always_2d=True)
    assert np.array_equal(out, data[at:at + 3000])
    # A table whose offsets are wrong (the format forbids rejecting it, §4.4): the decoder
    # notices that no frame header is there and steps from the first frame instead.
    table_at = stream.index(points[1][1].to_bytes(8, "big"), 0, frames_at)
    broken = bytearray(stream)
    broken[table_at:table_at + 8] = (points[1][1] + 3).to_bytes(8, "big")
    broken = bytearray(reseal(bytes(broken)))  # a table written wrong, not damaged (§4.7)
    assert vaelac.info(io.BytesIO(bytes(broken))).seek_points[1][1] == points[1][1] + 3
    at = points[1][0] + 17
    out, _ = vaelac.read(io.BytesIO(bytes(broken)), start=at, stop=at + 5000, always_2d=True)
    assert np.array_equal(out, data[at:at + 5000])


def test_after_a_seek_damage_is_still_caught(seekable_stream):
    data, stream = seekable_stream
    damaged = bytearray(stream)
    damaged[-100] ^= 0x10  # inside the last frame's payload
    with pytest.raises(vaelac.IntegrityError):
        vaelac.read(io.BytesIO(bytes(damaged)), start=len(data) - 3000)
    out, _ = vaelac.read(io.BytesIO(bytes(damaged)), stop=1000, always_2d=True)
    assert np.array_equal(out, data[:1000])  # the damage is outside what was asked for


# numpy's entry points that hand float arrays to BLAS (np.correlate and np.convolve too:
# their inner products are the dtype's dot, cblas_ddot). ndarray.dot and the @ operator cannot
# be replaced from Python; the codec's modules use neither on floats (Dense: int64 only).
_BLAS_ENTRY_POINTS = ("dot", "vdot", "inner", "matmul", "tensordot", "einsum", "correlate",
                      "convolve", "linalg.norm", "linalg.solve", "linalg.lstsq", "linalg.inv",
                      "linalg.pinv", "linalg.cholesky", "linalg.qr", "linalg.svd", "linalg.eigh",
                      "linalg.det", "linalg.slogdet")


@pytest.fixture
def blas_calls(monkeypatch):
    """Every call of a BLAS-backed numpy function with a float or complex operand."""
    calls = []
    for dotted in _BLAS_ENTRY_POINTS:
        owner = np.linalg if dotted.startswith("linalg.") else np
        name = dotted.split(".")[-1]
        original = getattr(owner, name)

        def spy(*args, _original=original, _name=dotted, **kwargs):
            if any(np.asarray(a).dtype.kind in "fc" for a in args
                   if isinstance(a, (np.ndarray, list, tuple, float, complex))):
                import traceback
                calls.append((_name, traceback.extract_stack(limit=3)[0]))
            return _original(*args, **kwargs)

        monkeypatch.setattr(owner, name, spy)
    return calls


def test_the_codec_calls_no_blas(blas_calls):
    # Issue 21 item 3: the encoder's analysis called np.dot on float64 arrays; BLAS then woke
    # its thread pool, whose threads spin on the other cores, and vaelac.encode ran 1.7-12x
    # slower than the command line (which set OPENBLAS_NUM_THREADS=1). Every level, the shipped
    # model's analysis, the lossy path and decoding must not call BLAS.
    pcm = make_signal("chirp", 12000, 2, 16, seed=4)
    for level in range(9):
        stream = vaelac.encode(pcm, 44100, bits=16, level=level)
        assert np.array_equal(vaelac.decode(stream, always_2d=True)[0], pcm)
    buf = io.BytesIO()
    enc = vaelac.StreamEncoder(buf, 44100, 2, 16, lossy="default", total_samples=len(pcm))
    enc.write(pcm)
    enc.close()
    vaelac.decode(buf.getvalue())
    assert blas_calls == []
