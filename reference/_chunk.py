"""The chunk container of :mod:`vaelac.numcodecs`: one array chunk as one or more `.vae` streams.

A chunk of shape ``(samples,)``, ``(samples, channels)`` or ``(samples, d1, d2, ...)`` (the
trailing dimensions taken together as channels) of int8/uint8/int16/uint16/int32/uint32 is
stored as::

    offset  size         field
    0       4            magic b"VAEZ"
    4       1            container version, 1
    5       3            dtype, numpy's ``dtype.str`` in ASCII ("<i2", "|u1", ">u4", ...)
    8       1            memory order of the chunk: 0 C, 1 Fortran
    9       1            ndim (1..32)
    10      2            G, the number of streams (u16 little-endian)
    12      8 * ndim     the shape, u64 little-endian each
    ..      4 * G        each stream's length in bytes, u32 little-endian
    ..      4            CRC-32 (zlib's) of every byte above
    ..                   the G `.vae` streams, back to back, and nothing after them

The channels are split into G = ceil(channels / 255) groups of consecutive channels, the first
``channels % G`` groups one channel longer than the others (a `.vae` stream holds at most 255);
an empty chunk (no samples or no channels) has G = 0. Each stream holds ``samples`` samples of
its group's channels at 8, 16 or 32 bits; unsigned samples are stored as ``x - 2**(bits-1)``,
so the bytes lose nothing. The decoder checks the header's CRC, every stream's frame CRCs and
its PCM MD5, its format against the header (channels, depth, length) and the lengths against
the chunk's size: a damaged chunk raises a :class:`vaelac.VaeError`, never wrong samples.

The streams' sample rate is the codec's ``sample_rate`` (48000 when not given); it is stored
only as information, the frame lengths tried are those of a 48 kHz file at the chosen level
(``vaelac.encoder.default_frame_length(48000)`` times the level's scales, at least twice it,
each cut to the chunk's length), so the rate never changes the coded size.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import math
import struct
import zlib
from array import array

import numpy as np

from .checksum import crc32
from .frame_decoder import FrameDecoder, check_frame
from .encoder import LEVELS, StreamEncoder, default_frame_length
from .spec.constants import (FRAME_CRC_BYTES, FRAME_HEADER_BYTES, MAX_CHANNELS,
                             MAX_FRAME_LENGTH)
from .spec import container as grammar
from .spec.constants import PCM_MD5_UNKNOWN, SIGNATURE, BlockType
from .spec.errors import EncodeError, FormatError, IntegrityError, TruncatedError
from .stream_head import Reader, StreamHead, read_head

MAGIC = b"VAEZ"
VERSION = 1
NOMINAL_RATE = 48000
DTYPES = ("int8", "uint8", "int16", "uint16", "int32", "uint32")
_FIXED = struct.Struct("<4sB3sBBH")
_MAX_NDIM = 32


def group_sizes(channels: int) -> list[int]:
    """Channels per stream: ceil(channels / 255) groups as equal as can be, the longer first."""
    if channels <= 0:
        return []
    groups = -(-channels // MAX_CHANNELS)
    base, extra = divmod(channels, groups)
    return [base + (i < extra) for i in range(groups)]


# Chunks are coded in frames of at least 8192 samples (twice a 48 kHz file's 4096, the frame
# of levels 0..4; levels 5..8 already take 16384 and more): a chunk is decoded whole, and each
# frame costs ~35 us of Python besides its kernels, 8 % of a 1 s stereo chunk's decode in
# 4096-sample frames. Measured on every 40th 1 s chunk of the dev and wide corpora at level 0,
# plain (65 chunks, decodes interleaved): 4096 -> 40.41 % of the bytes, 0.335x WavPack(2)'s
# decode MB/s; 8192 -> 40.38 %, 0.357x; 16384 -> 40.51 %, 0.362x.
_MIN_FRAME_SCALE = 2


def _frame_lengths(level: int, samples: int) -> list[int]:
    """The frame lengths tried for a chunk: the 48 kHz ones of the level (at least 8192
    samples), cut to the chunk."""
    base = default_frame_length(NOMINAL_RATE)
    return sorted({min(MAX_FRAME_LENGTH, base * max(scale, _MIN_FRAME_SCALE), max(samples, 1))
                   for scale in LEVELS[level].frame_scales})


def _encode_stream(pcm: np.ndarray, bits: int, level: int, model, rate: int) -> bytes:
    """The smallest `.vae` stream of ``pcm`` (samples, channels) over the level's frame lengths."""
    best = None
    for length in _frame_lengths(level, len(pcm)):
        buf = io.BytesIO()
        # no SEEKTABLE (§4.4, optional): a chunk is decoded whole, and the block costs 24 bytes
        # and a third of the decoder's set-up time (80 against 158 us a stream)
        enc = StreamEncoder(buf, rate, pcm.shape[1], bits, level=level, total_samples=len(pcm),
                            frame_length=length, vendor="", model=model,
                            seek_interval_seconds=None)
        enc.write(pcm)
        enc.close()
        data = buf.getvalue()
        if best is None or len(data) < len(best):
            best = data
    return best


def check_dtype(dtype) -> np.dtype:
    dtype = np.dtype(dtype)
    if dtype.kind not in "iu" or dtype.itemsize not in (1, 2, 4):
        raise EncodeError(f"vaelac chunks must be one of {', '.join(DTYPES)} "
                          f"(either byte order), not {dtype}")
    return dtype


def encode_chunk(chunk: np.ndarray, *, level: int, model, rate: int | None) -> bytes:
    """The container bytes of one chunk (see the module's docstring)."""
    if not isinstance(chunk, np.ndarray):
        raise EncodeError(f"vaelac encodes numpy arrays (it needs their dtype and shape), "
                          f"not {type(chunk).__name__}")
    dtype = check_dtype(chunk.dtype)
    if not 1 <= chunk.ndim <= _MAX_NDIM:
        raise EncodeError(f"vaelac chunks need 1..{_MAX_NDIM} dimensions, not {chunk.ndim}")
    fortran = chunk.ndim > 1 and chunk.flags.f_contiguous and not chunk.flags.c_contiguous
    samples = chunk.shape[0]
    channels = math.prod(chunk.shape[1:])
    sizes = group_sizes(channels) if samples else []
    bits = 8 * dtype.itemsize
    pcm = chunk.reshape(samples, channels)  # logical order, whatever the memory order
    streams = []
    first = 0
    for size in sizes:
        part = pcm[:, first:first + size].astype(np.int64)
        if dtype.kind == "u":
            part -= 1 << (bits - 1)
        streams.append(_encode_stream(part, bits, level, model, rate or NOMINAL_RATE))
        first += size
    head = _FIXED.pack(MAGIC, VERSION, dtype.str.encode("ascii"), int(fortran), chunk.ndim,
                       len(streams))
    head += struct.pack(f"<{chunk.ndim}Q", *chunk.shape)
    head += struct.pack(f"<{len(streams)}I", *(len(s) for s in streams))
    head += struct.pack("<I", zlib.crc32(head))
    return b"".join([head, *streams])


def _bad(message: str, offset: int | None = None) -> FormatError:
    return FormatError(message, structure="vaelac chunk", offset=offset)


def parse_header(data) -> tuple[np.dtype, bool, tuple[int, ...], list[int], int]:
    """(dtype, fortran, shape, stream lengths, offset of the first stream) of a chunk."""
    view = memoryview(data).cast("B")
    if len(view) < _FIXED.size:
        if bytes(view[:4]) != MAGIC[:len(view[:4])]:
            raise _bad("not a vaelac chunk (no VAEZ signature)", 0)
        raise TruncatedError("chunk ends inside its header", structure="vaelac chunk",
                             offset=len(view))
    magic, version, dtype_str, order, ndim, groups = _FIXED.unpack_from(view, 0)
    if magic != MAGIC:
        raise _bad("not a vaelac chunk (no VAEZ signature)", 0)
    end = _FIXED.size + 8 * ndim + 4 * groups + 4
    if len(view) < end:
        raise TruncatedError("chunk ends inside its header", structure="vaelac chunk",
                             offset=len(view))
    crc, = struct.unpack_from("<I", view, end - 4)
    if zlib.crc32(view[:end - 4]) != crc:
        raise IntegrityError("the chunk header's CRC-32 does not match", structure="vaelac chunk",
                             offset=end - 4)
    if version != VERSION:
        raise _bad(f"chunk container version {version} is not supported (this reads {VERSION})",
                   4)
    try:
        dtype = check_dtype(np.dtype(dtype_str.decode("ascii")))
    except (TypeError, ValueError, UnicodeDecodeError):
        raise _bad(f"unknown dtype {dtype_str!r}", 5) from None
    if order > 1 or not 1 <= ndim <= _MAX_NDIM:
        raise _bad("bad order or ndim byte", 8)
    shape = struct.unpack_from(f"<{ndim}Q", view, _FIXED.size)
    lengths = list(struct.unpack_from(f"<{groups}I", view, _FIXED.size + 8 * ndim))
    channels = math.prod(shape[1:])
    if groups != (-(-channels // MAX_CHANNELS) if shape[0] else 0):
        raise _bad(f"{groups} streams for {channels} channels", 10)
    if end + sum(lengths) != len(view):
        raise (TruncatedError if end + sum(lengths) > len(view) else FormatError)(
            f"the streams take {sum(lengths)} bytes, the chunk has {len(view) - end} after "
            "its header", structure="vaelac chunk", offset=end)
    return dtype, bool(order), tuple(shape), lengths, end


def decode_chunk(data) -> np.ndarray:
    """The array of a chunk's bytes, in the shape, dtype and memory order it was encoded from.

    Each stream is decoded here frame by frame (:func:`vaelac.frame_decoder.check_frame` and
    :meth:`~vaelac.frame_decoder.FrameDecoder.decode_into`, the checks and kernels of
    :class:`vaelac.decoder.StreamDecoder` without its reader): a chunk is in memory and decoded
    whole, so the frames' PCM images (§4.2: little-endian two's complement of the stream's
    width, which is the dtype's) are written straight into one buffer per stream, over which
    the PCM MD5 is taken once; a chunk of one stream in C order is that buffer, unsigned
    samples having their top bit flipped in place (``x - 2**(bits-1)`` back to ``x``)."""
    dtype, fortran, shape, lengths, offset = parse_header(data)
    view = memoryview(data).cast("B")
    samples = shape[0]
    channels = math.prod(shape[1:])
    bits = 8 * dtype.itemsize
    order = "F" if fortran else "C"
    heads = []
    for size, length in zip(group_sizes(channels) if samples else [], lengths):
        stream = view[offset:offset + length]
        head, start = _stream_head(stream)
        info = head.info
        if (info.channels, info.bits_per_sample, info.total_samples) != (size, bits, samples):
            raise _bad(f"a stream holds {info.channels} channels of {info.bits_per_sample} bits "
                       f"x {info.total_samples} samples, the header says {size} of {bits} x "
                       f"{samples}", offset)
        if info.pcm_md5 is None:
            raise IntegrityError("a stream of the chunk has no PCM MD5",
                                 structure="vaelac chunk", offset=offset)
        # every frame takes at least a header, a CRC and 7 bytes a channel (§5): a stream
        # too short for its frames is refused before the samples are allocated
        frames = -(-samples // info.frame_length)
        if frames * (FRAME_HEADER_BYTES + FRAME_CRC_BYTES + 7 * size) > length:
            raise TruncatedError(f"a stream of {length} bytes cannot hold {frames} frames",
                                 structure="vaelac chunk", offset=offset)
        heads.append((stream, head, start))
        offset += length
    if len(heads) == 1 and not fortran:
        result = np.frombuffer(_decode_stream(*heads[0]), dtype.newbyteorder("<"))
        if dtype.kind == "u":
            result ^= np.array(1 << (bits - 1), result.dtype)
        if not dtype.isnative and dtype.itemsize > 1:
            result = result.astype(dtype)
        return result.reshape(shape)
    result = np.empty((samples, channels), dtype, order=order)
    first = 0
    for stream, head, start in heads:
        size = head.info.channels
        part = np.frombuffer(_decode_stream(stream, head, start), dtype.newbyteorder("<"))
        if dtype.kind == "u":
            part ^= np.array(1 << (bits - 1), part.dtype)
        result[:, first:first + size] = part.reshape(samples, size)
        first += size
    return result.reshape(shape, order=order)


# Where STREAMINFO's PCM MD5 lies in a stream: the signature, the version, the block's 4-byte
# header, then its fields before pcm_md5 (§3, §4.1, §4.2); STREAMINFO is always first.
_MD5_AT = len(SIGNATURE) + 2 + 4 + grammar.StreamInfo.sizeof() - len(PCM_MD5_UNKNOWN)
_MD5_END = _MD5_AT + len(PCM_MD5_UNKNOWN)
_MAX_KNOWN_HEADS = 32
_MAX_KNOWN_HEAD_BYTES = 4096
_known_heads: dict[bytes, StreamHead] = {}
_known_head_lengths: dict[int, None] = {}


def _stream_head(stream: memoryview) -> tuple[StreamHead, int]:
    """:func:`vaelac.stream_head.read_head` of a chunk's stream, and where its frames start.

    The streams of an array's chunks have the same head but for the PCM MD5 and the
    METADATA_CRC over it (§4.2, §4.7): a head read once is remembered (a few, by their bytes
    less those two fields), and a later stream whose head has the same bytes around them takes
    that reading with its own MD5, once its METADATA_CRC is checked as read_head checks it —
    read_head looks at the MD5's bytes only to tell PCM_MD5_UNKNOWN, which goes to it. A 1 s
    stereo chunk decodes in ~4 ms; read_head takes ~0.1 ms of it."""
    for end in tuple(_known_head_lengths):  # a copy: other threads may add to it
        if len(stream) < end:
            continue
        known = _known_heads.get(bytes(stream[:_MD5_AT]) + bytes(stream[_MD5_END:end - 4]))
        if known is None:
            continue
        md5 = bytes(stream[_MD5_AT:_MD5_END])
        if (md5 != PCM_MD5_UNKNOWN
                and crc32(stream[:end - 4]) == int.from_bytes(stream[end - 4:end], "big")):
            info = dataclasses.replace(known.info, pcm_md5=md5)
            return StreamHead(info, known.embedded_models, known.file_head), end
        break
    reader = Reader(io.BytesIO(stream))
    head = read_head(reader)
    end = reader.offset
    if (head.info.blocks[-1][0] == "METADATA_CRC" and end <= _MAX_KNOWN_HEAD_BYTES
            and head.info.pcm_md5 is not None and len(_known_heads) < _MAX_KNOWN_HEADS):
        _known_head_lengths[end] = None
        _known_heads[bytes(stream[:_MD5_AT]) + bytes(stream[_MD5_END:end - 4])] = head
    return head, end


def _decode_stream(stream: memoryview, head, start: int) -> bytearray:
    """The PCM image (§4.2) of one checked stream head's frames, its MD5 checked."""
    info = head.info
    channels, length, total = info.channels, info.frame_length, info.total_samples
    width = (info.bits_per_sample + 7) // 8
    decoder = FrameDecoder(info, head.find_model)
    image = bytearray(total * channels * width)
    out = memoryview(image)
    pcm = memoryview(array("i", bytes(4 * min(length, total) * channels)))
    done = index = 0
    at = start
    while done < total:
        frame = check_frame(stream, info, index=index, first_sample=done, offset=at, start=at)
        n = frame.count * channels
        decoder.decode_into(frame, pcm[:n], out[done * channels * width:(done + frame.count)
                                                * channels * width])
        at += FRAME_HEADER_BYTES + len(frame.payload) + FRAME_CRC_BYTES
        done += frame.count
        index += 1
    if at != len(stream):
        raise FormatError("data after the last frame", structure="frame", offset=at,
                          section="§5.2")
    if hashlib.md5(image).digest() != info.pcm_md5:
        raise IntegrityError("decoded PCM does not match the stream's MD5",
                             structure="STREAMINFO", offset=None, section="§4.2")
    return image
