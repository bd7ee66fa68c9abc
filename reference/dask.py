"""Lazy dask arrays of `.vae` streams, and dask arrays written as streams (``pip install
vaelac[dask]``).

    import vaelac.dask
    x = vaelac.dask.from_vae("s3://bucket/session-*.vae")   # any fsspec URL, glob or list
    minute = x[60 * rate:120 * rate].compute()              # decodes only that minute's frames
    vaelac.dask.to_vae(x[:, :64] * 2, "out.vae", rate)      # block by block, in order

The array's chunks are runs of ``chunk_frames`` whole frames of a stream (frames are
independent and of fixed length, §5), so each chunk is decoded on its own, by whichever worker
computes it: the worker opens the file, jumps to the chunk's frame through the seek table and
the frame headers (payloads skipped unread), and decodes those frames only. A slice narrower
than a chunk decodes only the frames it overlaps (dask hands the slice to the reader); a list
of indexes decodes the chunks it touches whole.
"""

from __future__ import annotations

import io
import os

import numpy as np

import dask
import dask.array as da
from dask.base import tokenize

from vaelac._atomic import atomic_output
from vaelac.api import integer_bits
from vaelac.decoder import StreamDecoder
from vaelac.encoder import DEFAULT_LEVEL, StreamEncoder
from vaelac.spec.errors import MissingDependencyError
from vaelac.spec.errors import EncodeError, VaeError

__all__ = ["from_vae", "to_vae"]

_CHUNK_BYTES = 32 << 20  # decoded bytes per chunk when chunk_frames is not given
_BATCH_BYTES = 64 << 20  # to_vae computes this many bytes of blocks at once (at least one)


def _decode_span(fileobj, start: int, stop: int) -> np.ndarray:
    """Samples [start, stop) of the stream in ``fileobj`` as int32 (n, channels), decoding only
    the frames that hold them. The one place this module decodes: kept small so that it can move
    to the decoder's frame-level functions."""
    dec = StreamDecoder(fileobj)
    if start:
        dec.seek(start)
    parts = []
    left = stop - start
    if left > 0:
        for pcm in dec:
            pcm = pcm[:left]
            parts.append(pcm)
            left -= len(pcm)
            if left <= 0:
                break
    if left > 0:
        raise VaeError(f"the stream ended {left} samples before sample {stop}")
    if not parts:
        return np.zeros((0, dec.info.channels), np.int32)
    return np.concatenate(parts) if len(parts) > 1 else parts[0]


class _RangeReader(io.RawIOBase):
    """A file read through ``fs.cat_file`` ranges, with a position of its own: fsspec's memory
    filesystem hands every opener the same file object (and position), which concurrent chunks
    must not share."""

    def __init__(self, fs, path: str):
        self.fs, self.path = fs, path
        self.size = fs.size(path)
        self.pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.pos, io.SEEK_END: self.size}[whence]
        self.pos = max(0, base + offset)
        return self.pos

    def tell(self) -> int:
        return self.pos

    def readinto(self, b) -> int:
        end = min(self.size, self.pos + len(b))
        if end <= self.pos:
            return 0
        data = self.fs.cat_file(self.path, start=self.pos, end=end)
        b[:len(data)] = data
        self.pos += len(data)
        return len(data)


class _Source:
    """A file to open: an fsspec OpenFile, or a local path when fsspec is absent."""

    def __init__(self, target):
        self.target = target

    def open(self):
        if isinstance(self.target, str):
            return open(self.target, "rb")
        protocol = self.target.fs.protocol
        if "memory" in (protocol if isinstance(protocol, tuple) else (protocol,)):
            return io.BufferedReader(_RangeReader(self.target.fs, self.target.path), 1 << 20)
        return self.target.open()

    @property
    def name(self) -> str:
        if isinstance(self.target, str):
            return self.target
        return self.target.fs.unstrip_protocol(self.target.path)


def _sources(path_or_paths, storage_options: dict | None) -> list[_Source]:
    paths = [path_or_paths] if isinstance(path_or_paths, (str, os.PathLike)) else list(
        path_or_paths)
    paths = [os.fspath(p) for p in paths]
    try:
        import fsspec
    except ImportError:
        if any("://" in p or "*" in p for p in paths):
            raise MissingDependencyError("URLs and globs need fsspec: python -m pip install "
                                         "'.[dask]' in a clone of vaelac") from None
        return [_Source(p) for p in paths]
    files = []
    for path in paths:  # one at a time: the list may mix protocols
        found = fsspec.open_files(path, mode="rb", **(storage_options or {}))
        if not found:
            raise FileNotFoundError(f"no file matches {path!r}")
        files.extend(found)
    return [_Source(f) for f in files]


class _VaeFile:
    """One stream as a read-only array-like of shape (samples, channels), for da.from_array:
    indexing decodes only the frames that the first axis's selection touches."""

    def __init__(self, source: _Source, dtype):
        self.source = source
        with source.open() as f:
            self.info = StreamDecoder(f).info
        if self.info.total_samples is None:
            raise VaeError(f"{source.name}: the stream does not declare its length "
                           "(total_samples unknown): decode it whole with vaelac.read")
        self.dtype = _dtype_for(self.info.bits_per_sample, dtype)
        self.shape = (self.info.total_samples, self.info.channels)
        self.ndim = 2

    def __getitem__(self, key):
        key = key if isinstance(key, tuple) else (key,)
        first, rest = key[0], key[1:]
        n = self.shape[0]
        if isinstance(first, slice) and (first.step or 1) > 0:
            start, stop, step = first.indices(n)
            lo, hi = start, max(start, stop)
            local = slice(0, hi - lo, step)
        else:
            index = np.arange(n)[first]
            if index.size == 0:
                lo = hi = 0
            else:
                lo, hi = int(index.min()), int(index.max()) + 1
            local = index - lo
        if hi <= lo:
            data = np.zeros((0, self.shape[1]), self.dtype)
        else:
            with self.source.open() as f:
                data = _decode_span(f, lo, hi).astype(self.dtype, copy=False)
        return data[(local,) + rest]


def _dtype_for(bits: int, dtype) -> np.dtype:
    if dtype is None:
        return np.dtype("int8" if bits <= 8 else "int16" if bits <= 16 else "int32")
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return dtype
    if dtype.kind != "i" or 8 * dtype.itemsize < bits:
        raise EncodeError(f"dtype {dtype} cannot hold {bits}-bit signed samples")
    return dtype


def from_vae(path_or_paths, chunk_frames: int | None = None, *, dtype=None,
             always_2d: bool = False, storage_options: dict | None = None) -> da.Array:
    """A lazy dask array of one `.vae` stream, or of several laid end to end along time.

    ``path_or_paths``: a path or fsspec URL (``file://``, ``memory://``, ``s3://``, ... : any
    installed fsspec backend, with ``storage_options``), a glob, or a list of them; the streams
    must have the same channel count, and are taken in the order given (globs sorted).
    ``chunk_frames``: frames per dask chunk (default: about 32 MB of decoded samples).
    ``dtype``: the smallest of int8/int16/int32 holding the streams' depth by default; float
    dtypes are scaled by 2**(bits-1) as in :func:`vaelac.read`. The shape is (samples,
    channels), or (samples,) for mono unless ``always_2d``.
    """
    sources = _sources(path_or_paths, storage_options)
    files = [_VaeFile(source, dtype) for source in sources]
    first = files[0].info
    for f in files[1:]:
        if f.info.channels != first.channels:
            raise VaeError(f"{f.source.name} has {f.info.channels} channels, "
                           f"{files[0].source.name} {first.channels}: they cannot be stacked")
    out_dtype = np.result_type(*(f.dtype for f in files))
    arrays = []
    if chunk_frames is not None and chunk_frames < 1:
        raise ValueError(f"chunk_frames must be at least 1, not {chunk_frames}")
    for f in files:
        info = f.info
        frames = chunk_frames or max(1, _CHUNK_BYTES // max(1, info.frame_length * info.channels
                                                          * f.dtype.itemsize))
        step = frames * info.frame_length
        total = info.total_samples
        rows = tuple(min(step, total - s) for s in range(0, total, step)) or (0,)
        name = "from-vae-" + tokenize(f.source.name, info.total_samples, info.channels,
                                      info.bits_per_sample, info.pcm_md5, info.frame_length,
                                      str(f.dtype), step)
        arr = da.from_array(f, chunks=(rows, (info.channels,)), name=name, lock=False,
                            asarray=False, fancy=True, meta=np.empty((0, 0), f.dtype))
        if f.dtype.kind == "f":  # the reader gives stored values: scale them lazily
            arr = arr / float(1 << (info.bits_per_sample - 1))
        arrays.append(arr.astype(out_dtype) if arr.dtype != out_dtype else arr)
    result = arrays[0] if len(arrays) == 1 else da.concatenate(arrays, axis=0)
    if not always_2d and first.channels == 1:
        result = result[:, 0]
    return result


def to_vae(array, path, rate: int, *, level: int = DEFAULT_LEVEL, bits: int | None = None,
           model="default", tags: dict[str, str] | None = None, overwrite: bool = True,
           storage_options: dict | None = None) -> None:
    """Encode a dask (or numpy) array of integer PCM, shape (samples,) or (samples, channels),
    to one `.vae` stream at ``path`` (a path or fsspec URL).

    The blocks along time are computed in order, a few at a time (together at most 64 MB, or
    one block; a block holds all channels: the array is rechunked to one chunk across
    channels), and fed to the encoder, so memory holds those blocks and the encoder's current
    frames, whatever the array's length. ``bits``
    defaults to the dtype's width; unsigned dtypes need it. A local path is written atomically.
    """
    arr = array if isinstance(array, da.Array) else da.from_array(np.asarray(array))
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise EncodeError(f"data must have shape (samples,) or (samples, channels), "
                          f"got {arr.shape}")
    if arr.dtype.kind not in "iu":
        raise EncodeError(f"to_vae writes integer PCM, not {arr.dtype} (scale floats first)")
    if bits is None:
        bits = integer_bits(arr.dtype)
    if any(np.isnan(c) for c in arr.chunks[0]):
        arr = arr.compute_chunk_sizes()
    arr = arr.rechunk({1: -1})
    total = int(arr.shape[0])

    def run(f) -> None:
        enc = StreamEncoder(f, rate, int(arr.shape[1]), bits, level=level, total_samples=total,
                            tags=tags, model=model)
        blocks = arr.numblocks[0]
        block_bytes = max(arr.chunks[0], default=0) * arr.shape[1] * arr.dtype.itemsize
        batch = max(1, _BATCH_BYTES // max(1, block_bytes))
        for i in range(0, blocks, batch):
            for part in dask.compute(*(arr.blocks[j] for j in range(i, min(blocks, i + batch)))):
                enc.write(np.asarray(part))
        enc.close()

    target = os.fspath(path)
    protocol = "file"
    if "://" in target:
        import fsspec
        protocol = fsspec.utils.get_protocol(target)
    if protocol in ("file", "local"):
        if "://" in target:
            target = target.split("://", 1)[1]
        with atomic_output(target, overwrite=overwrite) as f:
            run(f)
        return
    import fsspec
    fs, fs_path = fsspec.core.url_to_fs(target, **(storage_options or {}))
    if not overwrite and fs.exists(fs_path):
        from vaelac._atomic import OutputExistsError
        raise OutputExistsError(f"{target} exists")
    with fs.open(fs_path, "wb") as f:
        run(f)
