"""`.vae` as a native pydub format: ``AudioSegment.export(format="vae")`` and
``AudioSegment.from_file("x.vae")`` without ffmpeg.

pydub has no plugin registry, so :func:`register` wraps ``AudioSegment.export`` and
``AudioSegment.from_file`` (keeping ``from_file`` a classmethod) and delegates every other format
to the originals untouched. :func:`unregister` puts the originals back.
"""

from __future__ import annotations

import os
import tempfile
import threading
import warnings
from typing import Any, BinaryIO

import numpy as np

from .._atomic import atomic_output, writes_through
from ..api import _decoded, _opened, _span
from ..decoder import StreamDecoder
from ..encoder import DEFAULT_LEVEL, LEVELS, StreamEncoder
from ..spec.constants import SIGNATURE
from ..spec.errors import EncodeError, MissingDependencyError

__all__ = ["register", "unregister", "is_registered", "export", "from_vae", "tags_of",
           "mediainfo", "segment_to_pcm", "pcm_to_segment"]

FORMAT = "vae"
_lock = threading.Lock()
_originals: dict[str, Any] = {}


def _pydub():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # audioop's DeprecationWarning, missing-ffmpeg warning
        try:
            import pydub
        except ImportError as exc:  # pydub absent, or (Python 3.13+) its audioop absent
            raise MissingDependencyError(
                f"the pydub adapter needs pydub ({exc}); install vaelac's [pydub] extra: "
                'python -m pip install ".[pydub]" in a clone of the vaelac repository') from exc

    return pydub


# -- samples --------------------------------------------------------------------------------

def segment_to_pcm(seg) -> tuple[np.ndarray, int]:
    """(int PCM of shape (frames, channels), bits) for a segment, lossless both ways.

    A 4-byte segment whose every sample has the shape pydub gives widened 24-bit audio
    (``x << 8`` with low byte 0x00, or 0xFF when negative) is stored as 24-bit ``x``.
    """
    width = seg.sample_width
    dtype = {1: np.int8, 2: "<i2", 4: "<i4"}.get(width)
    if dtype is None:
        raise EncodeError(f"pydub sample width {width} is not supported")
    pcm = np.frombuffer(seg.raw_data, dtype=dtype).astype(np.int64).reshape(-1, seg.channels)
    bits = 8 * width
    if width == 4 and len(pcm):
        low = pcm & 0xFF
        if np.all(np.where(pcm < 0, low == 0xFF, low == 0)):
            return pcm >> 8, 24
    return pcm, bits


def pcm_to_segment(cls, pcm: np.ndarray, bits: int, frame_rate: int):
    """The segment pydub itself would make from this audio (24-bit widened pydub's way)."""
    channels = pcm.shape[1]
    width = (bits + 7) // 8
    values = pcm.astype(np.int64) << (8 * width - bits)
    if width == 3 and len(values) == 0:
        width, data = 4, b""  # pydub 0.25.1 cannot widen empty 24-bit data (IndexError)
    elif width == 3:
        data = values.astype("<i4").view(np.uint8).reshape(-1, 4)[:, :3].tobytes()
    else:
        data = values.astype({1: np.int8, 2: "<i2", 4: "<i4"}[width]).tobytes()
    return cls(data=data, sample_width=width, frame_rate=frame_rate, channels=channels)


# -- export -----------------------------------------------------------------------------------

_LEVEL_FLAGS = ("-l", "--level", "-compression_level")
_MODEL_FLAGS = ("-m", "--model")
_NOT_HERE = {
    "--lossy": "--lossy is not offered by the pydub adapter, which writes lossless streams "
               "only (a lossy stream would not decode to the segment exported); use "
               "'vaelac encode --lossy' for the paper's lossy codec",
    "--lossy-model": "--lossy-model is not offered by the pydub adapter, which writes lossless "
                     "streams only; use 'vaelac encode --lossy-model MODEL' for the lossy codec",
    "--adapt": "--adapt is not offered by the pydub adapter; use 'vaelac encode --adapt', or "
               "train a model and give it with ['--model', PATH]",
}


def _options_from(parameters, level: int = DEFAULT_LEVEL, model: Any = "default"
                  ) -> tuple[int, Any]:
    """(level, model) from pydub-style ``parameters``: ``-0``…``-8``, ``-l``/``--level N``,
    ``-m``/``--model default|none|PATH`` (also ``--level=N``, ``--model=PATH``), as the CLI."""
    if isinstance(parameters, (str, bytes)):
        raise EncodeError("parameters must be a list such as ['-8', '--model', 'none']")
    items = [str(item) for item in (parameters or [])]
    i = 0
    while i < len(items):
        item, value = items[i], None
        flag = item.split("=", 1)[0] if item.startswith("--") else item
        if flag in _NOT_HERE:
            raise EncodeError(_NOT_HERE[flag])
        if item.startswith("-") and item[1:].isdigit() and len(item) == 2:
            level = int(item[1:])
        elif flag in _LEVEL_FLAGS + _MODEL_FLAGS:
            if "=" in item and item.startswith("--"):
                value = item.split("=", 1)[1]
            elif i + 1 < len(items):
                i += 1
                value = items[i]
            else:
                raise EncodeError(f"vae export parameter {item!r} needs a value")
            if flag in _MODEL_FLAGS:
                model = value
            else:
                try:
                    level = int(value)
                except ValueError:
                    raise EncodeError(f"level must be 0..8, got {value!r}") from None
        else:
            raise EncodeError(f"unknown vae export parameter {item!r}: use '-0'…'-8', "
                              "['--level', N] or ['--model', 'default'|'none'|PATH]")
        i += 1
    if level not in LEVELS:
        raise EncodeError(f"level must be 0..8, got {level}")
    return level, model


def _write_stream(seg, f: BinaryIO, level: int, tags, model) -> None:
    pcm, bits = segment_to_pcm(seg)
    items = [(str(k), str(v)) for k, v in (tags or {}).items()]
    enc = StreamEncoder(f, seg.frame_rate, seg.channels, bits, level=level,
                        total_samples=len(pcm), tags=items, model=model)
    enc.write(pcm)
    enc.close()


def export(seg, out_f=None, *, level: int = DEFAULT_LEVEL, model: Any = "default",
           tags: dict | None = None, parameters=None):
    """Write ``seg`` as `.vae` to a path, a binary file object or (None) a temporary file.

    ``model``: ``"default"`` (the shipped model), ``"none"``/``None`` (the plain path), a
    model file's path (embedded in the stream unless vaelac ships it) or a
    :class:`vaelac.model.Model`. ``parameters`` (as pydub passes them) override ``level`` and
    ``model``: ``["-8"]``, ``["--level", "8"]``, ``["-m", "none"]``, ``["--model", PATH]``.
    The stream is always lossless; ``--lossy`` and ``--adapt`` are refused with an error.

    Returns the file handle rewound to 0, as pydub's ``export`` does. A path is written
    atomically: a failure leaves no partial file. A path naming a character device or a FIFO
    (``/dev/null``, a named pipe) is written as it goes, and the handle it was written through
    is returned; a symbolic link's target is replaced, not the link.
    """
    level, model = _options_from(parameters, level, model)
    if out_f is None:
        out_f = tempfile.TemporaryFile(mode="w+b")
    if isinstance(out_f, (str, os.PathLike)) and os.fspath(out_f) != "-" \
            and writes_through(out_f):
        handle = open(out_f, "wb")  # nothing to read back or rewind: not a regular file
        _write_stream(seg, handle, level, tags, model)
        handle.flush()
        return handle
    if isinstance(out_f, (str, os.PathLike)):
        with atomic_output(out_f) as f:
            _write_stream(seg, f, level, tags, model)
        handle = open(out_f, "rb+")
    else:
        handle = out_f
        _write_stream(seg, handle, level, tags, model)
    handle.seek(0)
    return handle


def _export_wrapper(self, out_f=None, format="mp3", codec=None, bitrate=None, parameters=None,
                    tags=None, id3v2_version="4", cover=None, **options):
    if str(format).lower() != FORMAT:
        return _originals["export"](self, out_f, format, codec, bitrate, parameters, tags,
                                    id3v2_version, cover, **options)
    unknown = set(options) - {"level", "model"}
    if unknown:
        raise TypeError(f"export() got unexpected keyword argument(s) {sorted(unknown)} "
                        "(format 'vae' takes level= and model=)")
    if cover is not None:
        raise EncodeError("cover art is not supported by .vae (store it beside the file)")
    if bitrate is not None:
        warnings.warn("bitrate is ignored: .vae is lossless", UserWarning, stacklevel=2)
    if codec not in (None, FORMAT):
        warnings.warn(f"codec {codec!r} is ignored: .vae has one codec", UserWarning,
                      stacklevel=2)
    if tags is not None and not isinstance(tags, dict):
        raise EncodeError("tags must be a dict")
    return export(self, out_f, tags=tags, parameters=parameters, **options)


# -- import -----------------------------------------------------------------------------------

def _starts_with_signature(file) -> bool:
    if isinstance(file, (str, os.PathLike)):
        try:
            with open(file, "rb") as f:
                return f.read(len(SIGNATURE)) == SIGNATURE
        except OSError:
            return False
    peek = getattr(file, "peek", None)
    if peek is not None:
        try:
            return peek(len(SIGNATURE))[: len(SIGNATURE)] == SIGNATURE
        except (OSError, ValueError):
            pass
    try:
        if file.seekable():
            pos = file.tell()
            head = file.read(len(SIGNATURE))
            file.seek(pos)
            return head == SIGNATURE
    except (AttributeError, OSError, ValueError):
        pass
    return False


def _is_vae(file, format) -> bool:
    if format is not None:
        return str(format).lower() == FORMAT
    if isinstance(file, (str, os.PathLike)) and os.fspath(file).lower().endswith(".vae"):
        return True
    return _starts_with_signature(file)


def from_vae(cls, file, start_second=None, duration=None):
    """Decode a `.vae` path or file object into an instance of ``cls`` (an AudioSegment)."""
    with _opened(file) as f:
        dec = StreamDecoder(f)
        info = dec.info
        first = int(round((start_second or 0) * info.sample_rate))
        last = None if duration is None else first + int(round(duration * info.sample_rate))
        first, last = _span(info, -1, first, last)  # past the end: what there is, as pydub
        blocks = list(_decoded(dec, first, last))  # seeks to start_second (seek table)
    pcm = np.concatenate(blocks) if blocks else np.zeros((0, info.channels), np.int32)
    return pcm_to_segment(cls, pcm, info.bits_per_sample, info.sample_rate)


def _from_file_wrapper(cls, file, format=None, codec=None, parameters=None, start_second=None,
                       duration=None, **kwargs):
    if _is_vae(file, format):
        return from_vae(cls, file, start_second, duration)
    return _originals["from_file"].__func__(cls, file, format, codec, parameters, start_second,
                                            duration, **kwargs)


def tags_of(file) -> dict[str, str]:
    """The tags of a `.vae` stream as a dict (the last value wins for a repeated key)."""
    with _opened(file) as f:
        return dict(StreamDecoder(f).info.tags)


def mediainfo(file) -> dict[str, Any]:
    """``pydub.utils.mediainfo``-shaped facts about a `.vae` stream, without ffprobe."""
    with _opened(file) as f:
        info = StreamDecoder(f).info
    result: dict[str, Any] = {
        "format_name": FORMAT, "codec_name": FORMAT, "codec_type": "audio",
        "sample_rate": str(info.sample_rate), "channels": str(info.channels),
        "bits_per_sample": str(info.bits_per_sample), "bits_per_raw_sample":
        str(info.bits_per_sample), "channel_layout": f"0x{info.channel_mask:x}",
        "duration": "" if info.duration is None else f"{info.duration:.6f}",
        "lossless": str(not info.lossy).lower(),
        "model": info.model_name or "",
        "TAG": dict(info.tags),
    }
    if isinstance(file, (str, os.PathLike)):
        result["filename"] = os.fspath(file)
        result["size"] = str(os.path.getsize(file))
    for key, value in info.tags:
        result[f"TAG:{key}"] = value
    return result


# -- switching on and off -------------------------------------------------------------------------

def register() -> None:
    """Make pydub's AudioSegment export and import `.vae` natively (idempotent)."""
    AudioSegment = _pydub().AudioSegment
    with _lock:
        if _originals:
            return
        _originals["export"] = AudioSegment.__dict__["export"]
        _originals["from_file"] = AudioSegment.__dict__["from_file"]
        _export_wrapper.__doc__ = _originals["export"].__doc__
        AudioSegment.export = _export_wrapper
        AudioSegment.from_file = classmethod(_from_file_wrapper)


def unregister() -> None:
    """Put pydub's original ``export`` and ``from_file`` back (idempotent)."""
    AudioSegment = _pydub().AudioSegment
    with _lock:
        if not _originals:
            return
        AudioSegment.export = _originals.pop("export")
        AudioSegment.from_file = _originals.pop("from_file")


def is_registered() -> bool:
    return bool(_originals)
