"""vaelac.numcodecs: the numcodecs codec and the zarr 3 serializer (issue 22, item 1)."""

import json
import os
import struct
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import vaelac

numcodecs = pytest.importorskip("numcodecs", reason="numcodecs absent: pip install vaelac[zarr]")
zarr = pytest.importorskip("zarr", reason="zarr absent: pip install vaelac[zarr]")

from vaelac import _chunk  # noqa: E402
from vaelac.numcodecs import Vae, VaeSerializer  # noqa: E402

DTYPES = ["int8", "uint8", "int16", "uint16", "int32", "uint32"]
FAST = dict(level=0, model=None)  # the quickest encoder: hypothesis runs many chunks


@st.composite
def chunks(draw, max_samples=300, max_channels=4, ndim=None):
    """Integer arrays of every supported dtype: random walks, noise at full range, the
    dtype's extremes and constant runs, 1-D or 2-D."""
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    info = np.iinfo(dtype)
    samples = draw(st.integers(1, max_samples))
    ndim = draw(st.sampled_from([1, 2])) if ndim is None else ndim
    channels = draw(st.integers(1, max_channels)) if ndim == 2 else 1
    shape = (samples,) if ndim == 1 else (samples, channels)
    kind = draw(st.sampled_from(["noise", "walk", "extremes", "constant", "mixed"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    lo, hi = int(info.min), int(info.max)
    if kind == "noise":
        x = rng.integers(lo, hi, shape, endpoint=True, dtype=np.int64)
    elif kind == "walk":
        step = draw(st.sampled_from([1, 7, 300, 1 << 20]))
        x = np.clip(np.cumsum(rng.integers(-step, step, shape, endpoint=True), axis=0)
                    + (lo + hi) // 2, lo, hi)
    elif kind == "extremes":
        x = rng.choice(np.array([lo, hi, lo + 1, hi - 1, 0], np.int64), shape)
    elif kind == "constant":
        x = np.full(shape, draw(st.sampled_from([lo, hi, 0, (lo + hi) // 2])), np.int64)
    else:
        x = rng.integers(lo, hi, shape, endpoint=True, dtype=np.int64)
        x[: samples // 2] = hi
    return x.astype(dtype)


@given(chunks())
def test_codec_round_trip_is_lossless(x):
    codec = Vae(**FAST)
    encoded = codec.encode(x)
    assert encoded[:4] == b"VAEZ"
    y = codec.decode(encoded)
    assert y.dtype == x.dtype and y.shape == x.shape
    np.testing.assert_array_equal(y, x)
    out = np.empty_like(x)
    assert codec.decode(encoded, out=out) is out
    np.testing.assert_array_equal(out, x)


@settings(max_examples=6)
@given(chunks(max_samples=5000, max_channels=3), st.sampled_from([5, 8]))
def test_codec_round_trip_at_cascade_levels(x, level):
    codec = Vae(level=level)  # the shipped model, the cascade levels
    np.testing.assert_array_equal(codec.decode(codec.encode(x)), x)


@pytest.mark.parametrize("dtype", DTYPES)
def test_more_than_255_channels_split_into_streams(dtype):
    info = np.iinfo(dtype)
    rng = np.random.default_rng(1)
    x = rng.integers(info.min, info.max, (64, 600), endpoint=True, dtype=np.int64).astype(dtype)
    x[:, 17] = info.max
    x[:, 300] = info.min
    encoded = Vae(**FAST).encode(x)
    groups = struct.unpack_from("<H", encoded, 10)[0]
    assert groups == 3 and _chunk.group_sizes(600) == [200, 200, 200]
    np.testing.assert_array_equal(Vae().decode(encoded), x)
    assert _chunk.group_sizes(256) == [128, 128] and _chunk.group_sizes(255) == [255]


def test_other_layouts_round_trip():
    rng = np.random.default_rng(2)
    x = rng.integers(-1000, 1000, (500, 3, 4)).astype(np.int16)  # trailing dims are channels
    codec = Vae(**FAST)
    np.testing.assert_array_equal(codec.decode(codec.encode(x)), x)
    f = np.asfortranarray(rng.integers(-5, 5, (400, 6)).astype(np.int32))
    y = codec.decode(codec.encode(f))
    assert y.flags.f_contiguous and not y.flags.c_contiguous
    np.testing.assert_array_equal(y, f)
    big = rng.integers(-30000, 30000, (300, 2)).astype(">i2")
    y = codec.decode(codec.encode(big))
    assert y.dtype == np.dtype(">i2")
    np.testing.assert_array_equal(y, big)
    empty = np.zeros((0, 5), np.uint16)
    assert codec.decode(codec.encode(empty)).shape == (0, 5)
    # unsigned in either byte order and memory order: the image's top bit flipped in place
    for dtype in (">u2", "<u4", ">u4", "|u1", ">i4"):
        info = np.iinfo(dtype)
        u = rng.integers(info.min, info.max, (300, 3), endpoint=True).astype(dtype)
        u[0] = info.min
        u[1] = info.max
        for layout in (u, np.asfortranarray(u)):
            y = codec.decode(codec.encode(layout))
            assert y.dtype == np.dtype(dtype) and y.flags.writeable
            assert y.flags.f_contiguous == (layout is not u)
            np.testing.assert_array_equal(y, u)


@pytest.mark.parametrize("dtype", ["float32", "int64", "uint64", "bool"])
def test_unsupported_dtypes_raise_the_projects_error(dtype):
    with pytest.raises(vaelac.EncodeError, match="int8, uint8"):
        Vae().encode(np.zeros((10, 2), dtype))
    with pytest.raises(vaelac.EncodeError, match="numpy arrays"):
        Vae().encode(b"\x00" * 16)
    with pytest.raises(vaelac.EncodeError, match="level"):
        Vae(level=9)
    with pytest.raises(vaelac.EncodeError, match="sample_rate"):
        Vae(sample_rate=0)


def test_config_round_trips_through_numcodecs_registry():
    codec = Vae(level=3, model=None, sample_rate=30000)
    config = codec.get_config()
    assert config == {"id": "vaelac", "level": 3, "model": None, "sample_rate": 30000}
    assert json.loads(json.dumps(config)) == config
    again = numcodecs.get_codec(config)
    assert isinstance(again, Vae) and again.get_config() == config and again == codec
    assert Vae.from_config({k: v for k, v in config.items() if k != "id"}) == codec
    ser = VaeSerializer(level=3, model=None, sample_rate=30000)
    assert VaeSerializer.from_dict(ser.to_dict()) == ser
    assert ser.to_dict() == {"name": "vaelac", "configuration": {
        "level": 3, "model": None, "sample_rate": 30000}}


def test_sample_rate_does_not_change_the_coding():
    rng = np.random.default_rng(3)
    x = np.cumsum(rng.integers(-20, 20, (40_000, 2)), axis=0).astype(np.int16)
    plain = Vae(level=5).encode(x)
    fast = Vae(level=5, sample_rate=192000).encode(x)
    assert len(plain) == len(fast)
    np.testing.assert_array_equal(Vae().decode(fast), x)
    assert vaelac.info(__import__("io").BytesIO(
        fast[_chunk.parse_header(fast)[4]:])).sample_rate == 192000


def _damaged_versions(encoded: bytes):
    """Every byte flipped (one bit, then all bits), and every truncation."""
    for i in range(len(encoded)):
        for mask in (0x01, 0xFF):
            damaged = bytearray(encoded)
            damaged[i] ^= mask
            yield bytes(damaged)
    for n in range(len(encoded)):
        yield encoded[:n]
    yield encoded + b"\x00"


@pytest.mark.parametrize("dtype, shape", [("int16", (700, 2)), ("uint8", (300,)),
                                          ("int32", (40, 260))])
def test_damaged_chunk_raises_never_returns_wrong_data(dtype, shape):
    info = np.iinfo(dtype)
    rng = np.random.default_rng(4)
    x = np.clip(np.cumsum(rng.integers(-9, 9, shape), axis=0), info.min, info.max).astype(dtype)
    codec = Vae(**FAST)
    encoded = codec.encode(x)
    # decoded intact first, its streams' heads are remembered (_chunk._stream_head): damaged
    # heads meet a remembered one, whose MD5 and METADATA_CRC must still be checked
    np.testing.assert_array_equal(codec.decode(encoded), x)
    versions = list(_damaged_versions(encoded))
    if len(versions) > 3000:  # the many-channel chunk: its header, stream starts and a sample
        idx = sorted(set(range(0, len(versions), 7)) | set(range(200)))
        versions = [versions[i] for i in idx]
    for damaged in versions:
        try:
            y = codec.decode(damaged)
        except vaelac.VaeError:
            continue
        # a flip the formats cannot see (e.g. the stream's vendor string) must decode right
        np.testing.assert_array_equal(y, x)
        assert y.dtype == x.dtype


def _zarr_array(store, x, chunks, fmt, level=0, order="C"):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if fmt == 2:
            z = zarr.create_array(store, shape=x.shape, chunks=chunks, dtype=x.dtype,
                                  zarr_format=2, compressors=Vae(level=level, model=None),
                                  filters=None, order=order)
        else:
            z = zarr.create_array(store, shape=x.shape, chunks=chunks, dtype=x.dtype,
                                  serializer=VaeSerializer(level=level, model=None),
                                  compressors=None)
    z[:] = x
    return z


@settings(max_examples=15)
@given(chunks(max_samples=400, max_channels=6, ndim=2), st.data(), st.sampled_from([2, 3]))
def test_zarr_round_trip_over_chunkings(x, data, fmt):
    rows = data.draw(st.integers(1, len(x)))
    cols = data.draw(st.integers(1, x.shape[1]))
    store = zarr.storage.MemoryStore()
    _zarr_array(store, x, (rows, cols), fmt)
    z = zarr.open_array(store, mode="r")
    np.testing.assert_array_equal(z[:], x)
    a = data.draw(st.integers(0, len(x) - 1))
    np.testing.assert_array_equal(z[a:a + rows + 1, :cols], x[a:a + rows + 1, :cols])


def test_zarr2_fortran_order_round_trips():
    rng = np.random.default_rng(5)
    x = rng.integers(-100, 100, (1000, 7)).astype(np.int16)
    store = zarr.storage.MemoryStore()
    _zarr_array(store, x, (300, 4), 2, order="F")
    np.testing.assert_array_equal(zarr.open_array(store, mode="r")[:], x)


@pytest.mark.parametrize("fmt", [2, 3])
def test_zarr_array_reopens_in_a_process_that_never_imports_vaelac(tmp_path, fmt):
    rng = np.random.default_rng(6)
    x = np.cumsum(rng.integers(-30, 30, (3000, 300)), axis=0).astype(np.int16)
    path = tmp_path / "rec.zarr"
    _zarr_array(str(path), x, (1000, 300), fmt)
    np.save(tmp_path / "x.npy", x)
    meta = (path / (".zarray" if fmt == 2 else "zarr.json")).read_text()
    assert '"vaelac"' in meta
    code = textwrap.dedent(f"""
        import sys, numpy as np, zarr
        z = zarr.open_array({str(path)!r}, mode="r")
        assert (z[:] == np.load({str(tmp_path / 'x.npy')!r})).all()
        assert "vaelac.numcodecs" in sys.modules  # found through the entry point
        print("ok")
    """)
    done = subprocess.run([sys.executable, "-W", "ignore", "-c", code], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


@pytest.mark.parametrize("fmt", [2, 3])
def test_damaged_zarr_chunk_raises_the_projects_error(tmp_path, fmt):
    x = np.arange(4000, dtype=np.int32).reshape(2000, 2) % 977
    path = tmp_path / "rec.zarr"
    _zarr_array(str(path), x, (1000, 2), fmt)
    files = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")
                   and p.name != "zarr.json")
    assert len(files) == 2
    data = bytearray(files[1].read_bytes())
    data[len(data) // 2] ^= 0x10
    files[1].write_bytes(bytes(data))
    z = zarr.open_array(str(path), mode="r")
    np.testing.assert_array_equal(z[:1000], x[:1000])
    with pytest.raises(vaelac.VaeError):
        z[1000:]


def test_import_vaelac_imports_no_optional_package():
    code = textwrap.dedent("""
        import sys
        import vaelac
        vaelac.encode, vaelac.read, vaelac.StreamDecoder
        heavy = ("zarr", "numcodecs", "dask", "fsspec")
        assert not [m for m in sys.modules if m.split(".")[0] in heavy], sys.modules.keys()
        import vaelac.numcodecs
        assert "numcodecs" in sys.modules and "zarr" not in sys.modules
        assert vaelac.numcodecs.Vae.codec_id == "vaelac"
        print("ok")
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_codecs_pickle_for_dask_workers():
    import pickle
    x = np.arange(-500, 500, dtype=np.int16).reshape(500, 2)
    codec = pickle.loads(pickle.dumps(Vae(level=1, model=None)))
    assert codec == Vae(level=1, model=None)
    np.testing.assert_array_equal(codec.decode(codec.encode(x)), x)
    ser = VaeSerializer(level=1, model=None)
    ser._codec  # the cached numcodecs codec travels too
    assert pickle.loads(pickle.dumps(ser)) == ser


def _rewrite_header(encoded: bytes, shape, total_samples=None) -> bytes:
    """The chunk with another shape in its head (CRC recomputed) and, optionally, another
    total_samples in its single stream's STREAMINFO: what a hostile writer can make."""
    import io
    import zlib

    from vaelac.spec import container
    from vaelac.stream_head import reseal

    dtype, fortran, _, lengths, start = _chunk.parse_header(encoded)
    stream = encoded[start:]
    if total_samples is not None:
        name, offset, length = next(b for b in vaelac.StreamDecoder(io.BytesIO(stream)).info.blocks
                                    if b[0] == "STREAMINFO")
        body = container.StreamInfo.parse(stream[offset + 4:offset + 4 + length])
        body.total_samples = total_samples
        new = container.StreamInfo.build(body)
        stream = reseal(stream[:offset + 4] + new + stream[offset + 4 + length:])  # §4.7
    head = _chunk._FIXED.pack(b"VAEZ", 1, dtype.str.encode(), int(fortran), len(shape),
                              len(lengths))
    head += struct.pack(f"<{len(shape)}Q", *shape)
    head += struct.pack(f"<{len(lengths)}I", *lengths)
    head += struct.pack("<I", zlib.crc32(head))
    return head + stream


def test_hostile_shapes_are_refused_before_allocating():
    x = np.zeros((5000, 2), np.int16)  # two constant frames: a few dozen bytes
    encoded = Vae(**FAST).encode(x)
    assert np.array_equal(Vae().decode(_rewrite_header(encoded, (5000, 2))), x)
    with pytest.raises(vaelac.FormatError, match="streams for"):
        Vae().decode(_rewrite_header(encoded, (5000, 2**40)))
    with pytest.raises(vaelac.FormatError, match="header says"):
        Vae().decode(_rewrite_header(encoded, (2**40, 2)))
    # a stream whose STREAMINFO agrees with the hostile head: too short for its frames
    with pytest.raises(vaelac.TruncatedError, match="cannot hold"):
        Vae().decode(_rewrite_header(encoded, (2**40, 2), total_samples=2**40))


def test_chunk_streams_carry_no_seektable():
    import io
    x = np.cumsum(np.random.default_rng(7).integers(-9, 9, (70_000, 2)), axis=0).astype(np.int16)
    for codec in (Vae(**FAST), Vae(level=5)):
        encoded = codec.encode(x)
        start = _chunk.parse_header(encoded)[4]
        info = vaelac.StreamDecoder(io.BytesIO(encoded[start:])).info
        assert [b[0] for b in info.blocks][0] == "STREAMINFO"
        assert "SEEKTABLE" not in [b[0] for b in info.blocks]
        assert info.pcm_md5 is not None
        np.testing.assert_array_equal(codec.decode(encoded), x)


def test_chunks_are_coded_in_frames_of_at_least_8192_samples():
    """A chunk is decoded whole, each frame costing Python time besides its kernels: chunks
    at levels 0..4 take frames of 8192 samples (a 48 kHz file's 4096 doubled), the cascade
    levels their own longer ones, a shorter chunk one frame."""
    import io
    x = np.cumsum(np.random.default_rng(3).integers(-99, 99, (44_100, 2)), axis=0)
    x = x.astype(np.int16)
    for level, lengths in [(0, {8192}), (4, {8192}), (5, {16384, 32768})]:
        codec = Vae(level=level, model=None)
        encoded = codec.encode(x)
        start = _chunk.parse_header(encoded)[4]
        info = vaelac.StreamDecoder(io.BytesIO(encoded[start:])).info
        assert info.frame_length in lengths
        np.testing.assert_array_equal(codec.decode(encoded), x)
    short = Vae(**FAST).encode(x[:5000])
    start = _chunk.parse_header(short)[4]
    assert vaelac.StreamDecoder(io.BytesIO(short[start:])).info.frame_length == 5000
