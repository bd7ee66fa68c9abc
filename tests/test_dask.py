"""vaelac.dask: lazy dask arrays of .vae streams and the inverse (issue 22, item 2)."""

import io
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import vaelac
from vaelac.encoder import StreamEncoder

da = pytest.importorskip("dask.array", reason="dask absent: pip install vaelac[dask]")
fsspec = pytest.importorskip("fsspec", reason="fsspec absent: pip install vaelac[dask]")
dask = pytest.importorskip("dask")

import vaelac.dask as vd  # noqa: E402
import vaelac.decoder as decoder  # noqa: E402

FRAME = 1000


def _signal(samples=100_000, channels=2, seed=0):
    rng = np.random.default_rng(seed)
    return np.cumsum(rng.integers(-20, 20, (samples, channels)), axis=0).astype(np.int16)


def _stream(x, rate=8000, **kw):
    buf = io.BytesIO()
    enc = StreamEncoder(buf, rate, x.shape[1], 16, level=0, model=None, frame_length=FRAME,
                        total_samples=len(x), seek_interval_seconds=1.0, **kw)
    enc.write(x)
    enc.close()
    return buf.getvalue()


@pytest.fixture
def long_file(tmp_path):
    x = _signal()
    path = tmp_path / "long.vae"
    path.write_bytes(_stream(x))
    return path, x


@pytest.fixture
def frame_decodes(monkeypatch):
    """The indexes of the frames whose subframes were decoded."""
    from vaelac.frame_decoder import FrameDecoder

    seen = []
    original = FrameDecoder.decode

    def counting(self, job):
        seen.append(job.index)
        return original(self, job)

    monkeypatch.setattr(FrameDecoder, "decode", counting)
    return seen


def test_from_vae_is_lazy_and_chunked_by_frames(long_file, frame_decodes):
    path, x = long_file
    a = vd.from_vae(str(path), chunk_frames=20)
    assert frame_decodes == []  # building the array reads headers only
    assert a.shape == x.shape and a.dtype == np.int16
    assert a.chunks == ((20 * FRAME,) * 5, (2,))
    with dask.config.set(scheduler="threads"):
        np.testing.assert_array_equal(a.compute(), x)
    assert sorted(frame_decodes) == list(range(100))


@pytest.mark.parametrize("lo, hi", [(45_500, 47_200), (39_500, 40_200), (0, 1), (99_999, 100_000),
                                    (12_000, 88_000)])
def test_slice_decodes_only_the_frames_it_needs(long_file, frame_decodes, lo, hi):
    path, x = long_file
    a = vd.from_vae(str(path), chunk_frames=20)
    with dask.config.set(scheduler="synchronous"):
        got = a[lo:hi].compute()
    np.testing.assert_array_equal(got, x[lo:hi])
    assert sorted(frame_decodes) == list(range(lo // FRAME, (hi - 1) // FRAME + 1))


def test_fancy_and_channel_selections(long_file, frame_decodes):
    path, x = long_file
    a = vd.from_vae(str(path), chunk_frames=7)
    with dask.config.set(scheduler="synchronous"):
        np.testing.assert_array_equal(a[5_000:9_000:3, 1].compute(), x[5_000:9_000:3, 1])
        assert sorted(frame_decodes) == [5, 6, 7, 8]
        frame_decodes.clear()
        np.testing.assert_array_equal(a[::-1][:10].compute(), x[::-1][:10])
        assert set(frame_decodes) <= {98, 99}
        frame_decodes.clear()
        # a list of indexes is not handed to the reader by dask: its chunks decode whole
        np.testing.assert_array_equal(a[[10, 20_000, 3]].compute(), x[[10, 20_000, 3]])
        assert sorted(frame_decodes) == list(range(7)) + list(range(14, 21))


def test_fsspec_urls_and_several_files(tmp_path, long_file):
    path, x = long_file
    y = _signal(31_234, seed=1)
    with fsspec.open("memory://vaelac-test/b.vae", "wb") as f:
        f.write(_stream(y))
    a = vd.from_vae([f"file://{path}", "memory://vaelac-test/b.vae"], chunk_frames=9)
    assert a.chunks[0][-1] == 31_234 % (9 * FRAME)
    with dask.config.set(scheduler="threads"):  # chunks of one memory file read concurrently
        np.testing.assert_array_equal(a.compute(), np.concatenate([x, y]))
        np.testing.assert_array_equal(a[99_000:101_000].compute(),
                                      np.concatenate([x, y])[99_000:101_000])


def test_mono_float_and_dtype_options(tmp_path):
    x = _signal(5_000, channels=1)
    path = tmp_path / "mono.vae"
    path.write_bytes(_stream(x))
    a = vd.from_vae(str(path))
    assert a.shape == (5_000,)
    np.testing.assert_array_equal(a.compute(), x[:, 0])
    assert vd.from_vae(str(path), always_2d=True).shape == (5_000, 1)
    b = vd.from_vae(str(path), dtype="float32")
    np.testing.assert_allclose(b.compute(), x[:, 0] / 32768.0)
    assert vd.from_vae(str(path), dtype="int32").compute().dtype == np.int32
    with pytest.raises(vaelac.EncodeError):
        vd.from_vae(str(path), dtype="int8")
    with pytest.raises(ValueError, match="chunk_frames"):
        vd.from_vae(str(path), chunk_frames=0)


def test_damaged_frame_raises_on_compute(tmp_path, long_file):
    path, x = long_file
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x40
    bad = tmp_path / "bad.vae"
    bad.write_bytes(bytes(data))
    a = vd.from_vae(str(bad), chunk_frames=10)
    with dask.config.set(scheduler="synchronous"):
        np.testing.assert_array_equal(a[:10_000].compute(), x[:10_000])
        with pytest.raises(vaelac.VaeError):
            a.compute()


def test_unknown_length_and_mismatched_files_are_refused(tmp_path, long_file):
    path, _ = long_file

    class Pipe(io.BytesIO):
        def seekable(self):
            return False

    pipe = Pipe()
    enc = StreamEncoder(pipe, 8000, 2, 16, level=0, model=None)
    enc.write(_signal(3000))
    enc.close()
    unknown = tmp_path / "unknown.vae"
    unknown.write_bytes(pipe.getvalue())
    with pytest.raises(vaelac.VaeError, match="length"):
        vd.from_vae(str(unknown))
    mono = tmp_path / "mono.vae"
    mono.write_bytes(_stream(_signal(3000, channels=1)))
    with pytest.raises(vaelac.VaeError, match="channels"):
        vd.from_vae([str(path), str(mono)])


def test_to_vae_writes_blocks_once_in_order(tmp_path, monkeypatch):
    monkeypatch.setattr(vd, "_BATCH_BYTES", 1)  # one block at a time: the order is visible
    x = _signal(50_000, channels=3)
    order = []

    def logged(block, block_info=None):
        order.append(block_info[0]["chunk-location"][0])
        return block

    arr = da.from_array(x, chunks=(7_777, 2)).map_blocks(logged, dtype=x.dtype)
    out = tmp_path / "out.vae"
    vd.to_vae(arr, str(out), 8000, level=1)
    y, rate = vaelac.read(str(out))
    np.testing.assert_array_equal(y, x)
    assert rate == 8000
    blocks = -(-50_000 // 7_777)
    assert sorted(order) == sorted(list(range(blocks)) * 2)  # each channel chunk once
    firsts = [order.index(i) for i in range(blocks)]
    assert firsts == sorted(firsts)  # in time order
    assert vaelac.info(str(out)).pcm_md5 is not None
    monkeypatch.setattr(vd, "_BATCH_BYTES", 3 * 7_777 * 3 * 2)  # three blocks a batch
    order.clear()
    vd.to_vae(arr, str(out), 8000, level=0)
    np.testing.assert_array_equal(vaelac.read(str(out))[0], x)
    assert sorted(order) == sorted(list(range(blocks)) * 2)
    assert max(order[:6]) <= 2  # the first batch holds blocks 0-2 only


def test_to_vae_round_trips_through_fsspec(tmp_path, long_file):
    path, x = long_file
    a = vd.from_vae(str(path), chunk_frames=13)
    vd.to_vae(a[:, ::-1], "memory://vaelac-test/out.vae", 44100, level=0)
    with fsspec.open("memory://vaelac-test/out.vae", "rb") as f:
        y, rate = vaelac.read(f)
    np.testing.assert_array_equal(y, x[:, ::-1])
    assert rate == 44100
    vd.to_vae(x[:, 0], f"file://{tmp_path}/mono.vae", 8000, level=0)
    np.testing.assert_array_equal(vaelac.read(str(tmp_path / "mono.vae"))[0], x[:, 0])
    with pytest.raises(vaelac.EncodeError):
        vd.to_vae(x.astype(np.float32), str(tmp_path / "f.vae"), 8000)
    with pytest.raises(vaelac.EncodeError, match="bits"):
        vd.to_vae(x.astype(np.uint16), str(tmp_path / "u.vae"), 8000)


def test_import_vaelac_does_not_import_dask():
    code = textwrap.dedent("""
        import sys
        import vaelac
        vaelac.read, vaelac.StreamEncoder
        assert not [m for m in sys.modules if m.split(".")[0] in ("dask", "fsspec")]
        import vaelac.dask
        assert "dask.array" in sys.modules and vaelac.dask.from_vae
        print("ok")
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_pickled_array_computes_elsewhere(long_file, frame_decodes):
    import pickle
    path, x = long_file
    a = pickle.loads(pickle.dumps(vd.from_vae(f"file://{path}", chunk_frames=20)))
    with dask.config.set(scheduler="synchronous"):
        np.testing.assert_array_equal(a[2_500:3_500].compute(), x[2_500:3_500])
    assert sorted(frame_decodes) == [2, 3]
