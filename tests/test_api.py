"""The soundfile-shaped API: read, write, info, blocks, encode, decode."""

import io
import subprocess
import sys

import numpy as np
import pytest

import vaelac
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
    with pytest.raises(vaelac.EncodeError, match="int16 cannot hold 24-bit"):
        vaelac.read(tmp_path / "x.vae", dtype="int16")
    with pytest.raises(vaelac.EncodeError, match="uint32"):
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
