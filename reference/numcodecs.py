"""vaelac as a numcodecs codec, for chunked integer recordings in zarr (``python -m pip install ".[zarr]"`` in a clone).

Two classes, one chunk format (the container of ``vaelac._chunk``: each chunk one or more
`.vae` streams, 255 channels each at most, behind a 12-byte header, its shape and a CRC-32):

* :class:`Vae` — a numcodecs ``Codec`` (id ``"vaelac"``): the compressor of a zarr format 2
  array (zarr-python 2, or 3 with ``zarr_format=2``), or used on its own::

      import zarr
      from vaelac.numcodecs import Vae
      z = zarr.create_array("rec.zarr", shape=(n, 384), chunks=(30000, 64), dtype="int16",
                            zarr_format=2, compressors=Vae(level=5), filters=None)

* :class:`VaeSerializer` — the same coding as a zarr 3 array-to-bytes codec (name ``"vaelac"``),
  in place of zarr's ``bytes`` serializer: ``zarr.create_array(..., serializer=VaeSerializer(
  level=5), compressors=None)``.

Both are found through entry points (``numcodecs.codecs`` and ``zarr.codecs``), so an array
written with them opens wherever vaelac is installed, with no import. They code chunks of
int8/uint8/int16/uint16/int32/uint32, of shape ``(samples,)`` or ``(samples, channels)`` (more
dimensions count as channels), losslessly; zarr must chunk the first axis as time. A damaged
chunk raises a :class:`vaelac.VaeError` (FormatError, TruncatedError or IntegrityError), never
returns wrong samples.

``level`` is the encoder's 0..8 (as ``vaelac encode -0 … -8``; decoding runs fastest at 0..4),
``model`` ``"default"`` (the shipped model), ``None`` (the plain path) or a model file's path
(whose bytes every chunk then carries: prefer shipped models), ``sample_rate`` an integer
written into each stream's header, information only (it does not change the coding).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import numcodecs
from numcodecs.abc import Codec
from numcodecs.compat import ensure_contiguous_ndarray, ndarray_copy

import numpy as np

from vaelac._chunk import decode_chunk, encode_chunk
from vaelac.encoder import DEFAULT_LEVEL, LEVELS, resolve_model
from vaelac.spec.constants import MAX_SAMPLE_RATE
from vaelac.spec.errors import EncodeError, FormatError

__all__ = ["Vae", "VaeSerializer", "CODEC_ID"]

CODEC_ID = "vaelac"


def _check_params(level, model, sample_rate) -> tuple[int, str | None, int | None]:
    if isinstance(level, bool) or not isinstance(level, (int, np.integer)) or level not in LEVELS:
        raise EncodeError(f"level must be one of 0..8, got {level!r}")
    if model is not None and not isinstance(model, str):
        raise EncodeError("model must be 'default', None or a model file's path (a string: "
                          f"it is stored in the array's metadata), got {type(model).__name__}")
    if model == "none":
        model = None
    if sample_rate is not None and (
            isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer))
            or not 1 <= sample_rate <= MAX_SAMPLE_RATE):
        raise EncodeError(f"sample_rate must be None or an integer 1..{MAX_SAMPLE_RATE}, "
                          f"got {sample_rate!r}")
    return int(level), model, None if sample_rate is None else int(sample_rate)


class Vae(Codec):
    """Lossless audio coding of integer chunks (see the module's docstring)."""

    codec_id = CODEC_ID

    def __init__(self, level: int = DEFAULT_LEVEL, model: str | None = "default",
                 sample_rate: int | None = None):
        self.level, self.model, self.sample_rate = _check_params(level, model, sample_rate)
        self._model = None
        self._resolved = False

    def _resolved_model(self):
        if not self._resolved:  # once per codec object: a model file is read and checked once
            self._model = resolve_model(self.model)
            self._resolved = True
        return self._model

    def encode(self, buf) -> bytes:
        """A chunk (a numpy array: its dtype and shape are needed) to the container's bytes."""
        return encode_chunk(buf, level=self.level, model=self._resolved_model(),
                            rate=self.sample_rate)

    def decode(self, buf, out=None):
        """The chunk's array; copied into ``out`` (of the same size in bytes) when given."""
        data = ensure_contiguous_ndarray(buf)
        arr = decode_chunk(data)
        if out is None:
            return arr
        target = ensure_contiguous_ndarray(out)
        if target.nbytes != arr.nbytes:
            raise FormatError(f"the chunk holds {arr.nbytes} bytes of samples, out has "
                              f"{target.nbytes}", structure="vaelac chunk")
        return ndarray_copy(arr, out)

    def get_config(self) -> dict[str, Any]:
        return {"id": self.codec_id, "level": self.level, "model": self.model,
                "sample_rate": self.sample_rate}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "Vae":
        config = {k: v for k, v in config.items() if k != "id"}
        return cls(**config)

    def __repr__(self) -> str:
        return (f"Vae(level={self.level}, model={self.model!r}, "
                f"sample_rate={self.sample_rate!r})")


def _make_serializer():
    """The zarr 3 codec class, built on first use so that this module needs zarr only then."""
    from zarr.abc.codec import ArrayBytesCodec
    from zarr.core.common import parse_named_configuration

    @dataclass(frozen=True)
    class VaeSerializer(ArrayBytesCodec):
        """vaelac as a zarr 3 array-to-bytes codec (name ``"vaelac"``): see the module."""

        is_fixed_size = False
        level: int
        model: str | None
        sample_rate: int | None

        def __init__(self, *, level: int = DEFAULT_LEVEL, model: str | None = "default",
                     sample_rate: int | None = None) -> None:
            level, model, sample_rate = _check_params(level, model, sample_rate)
            object.__setattr__(self, "level", level)
            object.__setattr__(self, "model", model)
            object.__setattr__(self, "sample_rate", sample_rate)

        @classmethod
        def from_dict(cls, data):
            _, configuration = parse_named_configuration(data, CODEC_ID,
                                                         require_configuration=False)
            return cls(**(configuration or {}))

        def to_dict(self):
            return {"name": CODEC_ID, "configuration": {
                "level": self.level, "model": self.model, "sample_rate": self.sample_rate}}

        @property
        def _codec(self) -> Vae:
            codec = self.__dict__.get("_vae")
            if codec is None:
                codec = Vae(self.level, self.model, self.sample_rate)
                object.__setattr__(self, "_vae", codec)
            return codec

        def validate(self, *, shape, dtype, chunk_grid) -> None:
            from vaelac._chunk import check_dtype
            check_dtype(dtype.to_native_dtype())
            if len(shape) < 1:
                raise EncodeError("vaelac needs arrays of at least one dimension (time first)")

        def _decode_sync(self, chunk_bytes, chunk_spec):
            arr = decode_chunk(chunk_bytes.as_numpy_array())
            want = chunk_spec.dtype.to_native_dtype()
            if arr.shape != tuple(chunk_spec.shape) or arr.dtype != want:
                raise FormatError(f"the chunk holds {arr.dtype} {arr.shape}, the array wants "
                                  f"{want} {tuple(chunk_spec.shape)}", structure="vaelac chunk")
            return chunk_spec.prototype.nd_buffer.from_ndarray_like(arr)

        def _encode_sync(self, chunk_array, chunk_spec):
            arr = np.asarray(chunk_array.as_numpy_array())
            return chunk_spec.prototype.buffer.from_bytes(self._codec.encode(arr))

        async def _decode_single(self, chunk_bytes, chunk_spec):
            return await asyncio.to_thread(self._decode_sync, chunk_bytes, chunk_spec)

        async def _encode_single(self, chunk_array, chunk_spec):
            return await asyncio.to_thread(self._encode_sync, chunk_array, chunk_spec)

        def compute_encoded_size(self, input_byte_length, chunk_spec):
            raise NotImplementedError  # variable size

    VaeSerializer.__module__ = __name__
    VaeSerializer.__qualname__ = "VaeSerializer"
    return VaeSerializer


def __getattr__(name: str):
    if name == "VaeSerializer":
        cls = _make_serializer()
        globals()[name] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


numcodecs.register_codec(Vae)
