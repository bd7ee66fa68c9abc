"""The Python API: soundfile-shaped ``read``/``write``/``info``/``blocks`` and one-shot
``encode``/``decode`` on numpy arrays, bytes, paths and file objects."""

from __future__ import annotations

import io
import os
from typing import BinaryIO, Iterator, Union

import numpy as np

from ._atomic import atomic_output
from .decoder import StreamDecoder, StreamInfo
from .encoder import DEFAULT_LEVEL, StreamEncoder
from .spec.errors import EncodeError, UsageError

__all__ = ["read", "write", "info", "blocks", "encode", "decode"]

FileLike = Union[str, os.PathLike, BinaryIO]


class _opened:
    """Open a path for reading, or pass a file object through without closing it."""

    def __init__(self, file: FileLike):
        self.file = file
        self.owned = isinstance(file, (str, os.PathLike))

    def __enter__(self) -> BinaryIO:
        if self.owned:
            self.f = open(self.file, "rb")
            return self.f
        return self.file

    def __exit__(self, *exc) -> None:
        if self.owned:
            self.f.close()


def _output_dtype(dtype, bits: int) -> np.dtype:
    """The numpy dtype ``read``/``decode`` may give ``bits``-bit samples in, or UsageError
    listing those it may (as soundfile raises ValueError for a dtype it does not read into)."""
    ints = [name for name in ("int8", "int16", "int32", "int64")
            if 8 * np.dtype(name).itemsize >= bits]
    try:
        kind = np.dtype(dtype)
    except TypeError:
        kind = None
    if kind is not None and (kind.name in ("float32", "float64") or kind.name in ints):
        return kind
    shown = dtype if isinstance(dtype, str) else getattr(kind, "name", dtype)
    why = ("is not a numpy dtype" if kind is None
           else f"cannot hold this stream's {bits}-bit samples")
    raise UsageError(f"dtype {shown!r} {why}: use "
                     f"{', '.join(map(repr, ints))} (the stored values) or 'float32', "
                     "'float64' (scaled to [-1, 1))")


def _convert(pcm: np.ndarray, bits: int, dtype: str, always_2d: bool) -> np.ndarray:
    kind = _output_dtype(dtype, bits)  # never wrap a sample silently
    if kind.kind == "f":
        pcm = pcm.astype(kind) / dtype_scale(bits)
    elif kind != np.int32:
        pcm = pcm.astype(kind)
    if not always_2d and pcm.shape[1] == 1:
        pcm = pcm[:, 0]
    return pcm


def dtype_scale(bits: int) -> float:
    """Full scale of a ``bits``-bit signed sample: float output is pcm / 2**(bits-1)."""
    return float(1 << (bits - 1))


def info(file: FileLike) -> StreamInfo:
    """Stream parameters and metadata, without decoding audio."""
    with _opened(file) as f:
        return StreamDecoder(f).info


def _span(info: StreamInfo, frames: int, start: int, stop: int | None) -> tuple[int, int | None]:
    """soundfile's (frames, start, stop) as [first, last) sample indexes; last None = to the end.
    Negative start/stop count from the end (a known length is needed)."""
    if frames >= 0 and stop is not None:
        raise ValueError("give frames or stop, not both")
    total = info.total_samples
    if (start < 0 or (stop is not None and stop < 0)) and total is None:
        raise ValueError("negative start/stop need a stream of known length")
    if start < 0:
        start = max(total + start, 0)
    if total is not None:
        start = min(start, total)
    if stop is not None:
        stop = max(stop + total, 0) if stop < 0 else stop
        if total is not None:
            stop = min(stop, total)
        stop = max(stop, start)
    elif frames >= 0:
        stop = start + frames if total is None else min(start + frames, total)
    return start, stop


def _decoded(dec: StreamDecoder, start: int, stop: int | None) -> Iterator[np.ndarray]:
    """The samples [start, stop) of an open stream, frame by frame (trimmed at the ends)."""
    if start:
        dec.seek(start)
    left = None if stop is None else stop - start
    for pcm in dec:
        if left is not None:
            if left <= 0:
                return
            pcm = pcm[:left]
            left -= len(pcm)
        if len(pcm):
            yield pcm


def blocks(file: FileLike, blocksize: int | None = None, *, frames: int = -1, start: int = 0,
           stop: int | None = None, dtype: str = "int32", always_2d: bool = False
           ) -> Iterator[np.ndarray]:
    """Decode in bounded memory, yielding arrays of ``blocksize`` frames (default: per frame).

    ``start``/``stop``/``frames`` select samples as in soundfile (``StreamDecoder.seek`` jumps
    there through the seek table). The stream's CRCs are checked as it goes, and its MD5 after
    the last block when the whole stream was read.
    """
    with _opened(file) as f:
        dec = StreamDecoder(f)
        bits = dec.info.bits_per_sample
        first, last = _span(dec.info, frames, start, stop)
        pending: list[np.ndarray] = []
        held = 0
        for pcm in _decoded(dec, first, last):
            if blocksize is None:
                yield _convert(pcm, bits, dtype, always_2d)
                continue
            pending.append(pcm)
            held += len(pcm)
            while held >= blocksize:
                data = np.concatenate(pending)
                yield _convert(data[:blocksize], bits, dtype, always_2d)
                rest = data[blocksize:]
                pending, held = ([rest] if len(rest) else []), len(rest)
        if blocksize is not None and held:
            yield _convert(np.concatenate(pending), bits, dtype, always_2d)


def read(file: FileLike, frames: int = -1, start: int = 0, stop: int | None = None, *,
         dtype: str = "int32", always_2d: bool = False) -> tuple[np.ndarray, int]:
    """Decode a stream, or the samples ``start``…``stop`` of it (or ``frames`` of them from
    ``start``), as soundfile.read does: (data, samplerate), data of shape (frames,) or
    (frames, channels). Seeking uses the stream's seek table (``StreamDecoder.seek``).

    Integer output keeps the stored values (a signed dtype at least as wide as the stream's
    depth; ``int32`` always fits); ``dtype="float32"`` scales by 2**(bits-1).
    """
    with _opened(file) as f:
        dec = StreamDecoder(f)
        first, last = _span(dec.info, frames, start, stop)
        parts = list(_decoded(dec, first, last))
        nch = dec.info.channels
        pcm = np.concatenate(parts) if parts else np.zeros((0, nch), np.int32)
        return _convert(pcm, dec.info.bits_per_sample, dtype, always_2d), dec.info.sample_rate


def _as_pcm(data: np.ndarray, bits: int | None) -> tuple[np.ndarray, int]:
    data = np.asarray(data)
    if data.ndim == 1:
        data = data[:, None]
    if data.ndim != 2:
        raise EncodeError(f"data must have shape (frames,) or (frames, channels), got {data.shape}")
    if data.dtype.kind == "f":
        if bits is None:
            raise EncodeError(f"give bits= for float data ({data.dtype}): it is scaled by "
                              "2**(bits-1), rounded and clipped to that depth")
        full = dtype_scale(bits)
        data = np.clip(np.round(data.astype(np.float64) * full), -full, full - 1).astype(np.int64)
        return data, bits
    if data.dtype.kind not in "iu":
        raise EncodeError(f"data must be integer or float PCM, got dtype {data.dtype}")
    return data, integer_bits(data.dtype) if bits is None else bits


def integer_bits(dtype: np.dtype) -> int:
    """The bit depth an integer dtype stands for when no ``bits=`` is given: its width, for
    signed dtypes of at most 32 bits (an unsigned one must say its depth)."""
    bits = 8 * dtype.itemsize
    if dtype.kind == "u" or bits > 32:
        raise EncodeError(f"give bits= for dtype {dtype}")
    return bits


def write(file: FileLike, data: np.ndarray, samplerate: int, *, bits: int | None = None,
          level: int = DEFAULT_LEVEL, tags: dict[str, str] | None = None,
          channel_mask: int = 0, overwrite: bool = True, model="default") -> None:
    """Encode PCM of shape (frames,) or (frames, channels) to a path or file object.

    Integer data are stored as they are; ``bits`` defaults to the dtype's width (int16 → 16).
    Float data (as soundfile writes it) need ``bits``: they are scaled by 2**(bits-1), rounded
    and clipped, so ``read(..., dtype="float64")`` gives them back to within half a step. A path
    is written atomically.
    ``model`` is ``"default"`` (the shipped model), ``None`` (the plain path), a model file's
    path or a :class:`vaelac.model.Model`.
    """
    data, bits = _as_pcm(data, bits)

    def run(f: BinaryIO) -> None:
        enc = StreamEncoder(f, samplerate, data.shape[1], bits, level=level,
                            total_samples=len(data), channel_mask=channel_mask, tags=tags,
                            model=model)
        enc.write(data)
        enc.close()

    if isinstance(file, (str, os.PathLike)):
        with atomic_output(file, overwrite=overwrite) as f:
            run(f)
    else:
        run(file)


def encode(data: np.ndarray, samplerate: int, *, bits: int | None = None,
           level: int = DEFAULT_LEVEL, tags: dict[str, str] | None = None,
           channel_mask: int = 0, model="default") -> bytes:
    """Encode integer PCM to the bytes of a `.vae` stream (``model`` as for :func:`write`)."""
    buf = io.BytesIO()
    write(buf, data, samplerate, bits=bits, level=level, tags=tags, channel_mask=channel_mask,
          model=model)
    return buf.getvalue()


def decode(stream: bytes | FileLike, *, dtype: str = "int32", always_2d: bool = False
           ) -> tuple[np.ndarray, StreamInfo]:
    """Decode bytes (or a path/file) to (PCM, StreamInfo). The PCM's shape is that of
    :func:`read` (soundfile's rule): (frames, channels), or (frames,) for a mono stream
    unless ``always_2d``."""
    if isinstance(stream, (bytes, bytearray, memoryview)):
        stream = io.BytesIO(bytes(stream))
    with _opened(stream) as f:
        dec = StreamDecoder(f)
        parts = list(dec)
        pcm = np.concatenate(parts) if parts else np.zeros((0, dec.info.channels), np.int32)
        return _convert(pcm, dec.info.bits_per_sample, dtype, always_2d), dec.info
