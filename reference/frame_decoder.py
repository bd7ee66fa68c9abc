"""One frame of a `.vae` stream decoded on its own (spec §5-§8): a pure function of the frame's
bytes, the stream's :class:`~vaelac.stream_head.StreamInfo` and its model.

Frames are independent (§5): nothing here reads a file or holds a stream's position, so the
stream decoder (:class:`vaelac.decoder.StreamDecoder`, which reads frames in order, seeks,
resynchronises and checks the MD5) and anything that finds frames by itself (through the
SEEKTABLE, on other threads or machines) decode them the same way, with the same checks in the
same order and the same errors::

    head = read_head(Reader(f))          # vaelac.stream_head
    frame = decode_frame(data, head.info, head.find_model, index=k)

(a stream's many frames: find the model once and pass it, or keep one :class:`FrameDecoder`).

:func:`check_header` and :func:`check_crc` are the checks of a frame before its subframes
(§5.1, §5.2, §5.5), for a reader that must check the header before it reads the payload;
:class:`FrameDecoder` decodes a checked frame's subframes (§5.3-§8) and restores its channels
(§6.1). No numpy is imported here but by the rare subframe types that need it (MODEL_LOSSY).
"""

from __future__ import annotations

import io
import struct
import threading
from array import array
from dataclasses import dataclass
from typing import Callable, Union

import construct

from . import channels as chan
from ._backend import kernels
from ._bitpack import packed_size
from .checksum import crc8, crc32
from .model import Model, find_model
from .spec import container as grammar
from .spec.constants import (CHANNEL_MODE_LAST, CHANNEL_MODE_MASK, FRAME_CRC_BYTES, FRAME_HEADER_BYTES, FRAME_SYNC,
                             MAX_CASCADE_SHIFT, MAX_CASCADE_STAGES, MAX_CASCADE_TAPS,
                             MAX_COEF_BITS, MAX_CROSS_TAPS, MAX_INITIAL_MEAN_LOG2,
                             MAX_LPC_ORDER, MAX_LPC_SHIFT, MAX_MIX_BIAS, MAX_MIX_SHIFT,
                             MAX_MIX_STEP, MAX_OLS_FORGET, MAX_OLS_INTERVAL_LOG2, MAX_OLS_RIDGE,
                             MAX_OLS_SCALE, MAX_OLS_TAPS, MAX_WASTED_BITS,
                             MIN_OLS_INTERVAL_LOG2, MODEL_SUBFRAME_TYPES, CascadeRule,
                             ChannelMode, ModelKind, SubframeType, max_frame_payload_bytes)
from .spec.errors import (FormatError, IntegrityError, LimitError, ModelError, TruncatedError,
                          UnsupportedError, VaeError)
from .stream_head import StreamInfo, _one_line

__all__ = ["FrameInfo", "CheckedFrame", "DecodedFrame", "FrameDecoder", "decode_frame",
           "check_frame", "check_header", "check_crc", "header_fields", "image_size"]

# construct's compiled parsers are 4-5x faster than interpreted ones. They do not check that a
# Bytes field got all its bytes, so _parse_subframe checks those lengths itself; frame headers
# are always parsed from exactly FRAME_HEADER_BYTES bytes.
_FRAME_HEADER = grammar.FrameHeader.compile()
_SUBFRAME = grammar.Subframe.compile()

_RC_STATUS = {
    1: "coded residuals end before the last sample",
    2: "bytes are left over after the last coded residual",
    3: "the coded residuals' first byte is not 0",
    4: "a residual's bit length exceeds 56",
    5: "the coder's initial code value is not below its range",
}


@dataclass
class FrameInfo:
    """Summary of one decoded frame, for ``vaelac info`` and error reports."""

    index: int
    offset: int
    first_sample: int
    sample_count: int
    channel_mode: int
    size: int
    subframe_types: list[int]


ModelSource = Union[Model, Callable[[], Model], None]
"""A stream's model (§8.1) for :class:`FrameDecoder`: the :class:`~vaelac.model.Model`, or a
callable that finds it (called once, at the first model-conditioned subframe, as
:meth:`vaelac.stream_head.StreamHead.find_model`), or None to look the MODEL_REF's model up
among the well-known and installed ones."""


@dataclass(frozen=True)
class CheckedFrame:
    """A frame whose header, sizes and CRC-32 are checked, before its subframes are decoded."""

    index: int
    offset: int
    first_sample: int
    count: int
    mode: int
    payload: bytes
    last: bool = False  # the LAST flag (§5.2)

    def frame_info(self, subframe_types: list[int]) -> FrameInfo:
        return FrameInfo(self.index, self.offset, self.first_sample, self.count, self.mode,
                         FRAME_HEADER_BYTES + len(self.payload) + FRAME_CRC_BYTES,
                         subframe_types)


@dataclass(frozen=True)
class DecodedFrame:
    """What :func:`decode_frame` returns: the samples (int32, interleaved: ``samples[i *
    channels + c]``), their PCM image (§4.2: what the stream's MD5 is taken over, and the data
    of a WAV file whose container is ceil(bits/8) bytes wide) and the frame's summary."""

    samples: array
    image: bytearray
    info: FrameInfo


def image_size(info: StreamInfo, count: int) -> int:
    """Size of the PCM image (§4.2) of ``count`` samples of every channel."""
    return count * info.channels * ((info.bits_per_sample + 7) // 8)


def decode_frame(data: bytes, info: StreamInfo, model: ModelSource = None, *, index: int,
                 first_sample: int | None = None, offset: int = 0) -> DecodedFrame:
    """Decode the frame at the start of ``data``: frame ``index`` of a stream that ``info``
    describes, ``first_sample`` samples (per channel) after the stream's start (by default
    ``index * frame_length``: every frame but the last is full, §5.2), ``offset`` bytes into the
    stream (for error reports). The bytes after the frame are not looked at:
    ``result.info.size`` is where the next frame starts.

    Every check the stream decoder makes on a frame (§5-§8) is made here, in the same order and
    with the same errors; those about the stream around it (data after the last frame, a stream
    that ends early) and the MD5 are the caller's (over ``result.image``, in frame order)."""
    if first_sample is None:
        first_sample = index * info.frame_length
    frame = check_frame(data, info, index=index, first_sample=first_sample, offset=offset)
    pcm, image, types = FrameDecoder(info, model).decode(frame)
    return DecodedFrame(pcm, image, frame.frame_info(types))


def check_frame(data, info: StreamInfo, *, index: int, first_sample: int,
                offset: int = 0, start: int = 0) -> CheckedFrame:
    """The frame at ``start`` in ``data`` (bytes or a memoryview) with its header, sizes and
    CRC-32 checked (§5.1, §5.2, §5.5) as :func:`decode_frame` checks them, ready for
    :meth:`FrameDecoder.decode`; ``offset``: where ``start`` is in the stream (for error
    reports). The frame ends ``FRAME_HEADER_BYTES + len(payload) + FRAME_CRC_BYTES`` bytes on."""
    where = offset - start
    # the header as the stream's reader takes it: its first byte (none: the stream's end),
    # then the rest, so that a cut header is reported alike
    head_bytes = (_take(data, start, 1, "frame header", where, index)
                  + _take(data, start + 1, FRAME_HEADER_BYTES - 1, "frame header", where,
                          index))
    head = check_header(head_bytes, info, index, first_sample, offset)
    at = start + FRAME_HEADER_BYTES
    payload = _take(data, at, head["payload_length"], "frame payload", where, index)
    crc_bytes = _take(data, at + len(payload), FRAME_CRC_BYTES, "frame CRC", where, index)
    check_crc(head_bytes, payload, crc_bytes, offset, index, first_sample)
    return CheckedFrame(index, offset, first_sample, head["sample_count"],
                        head["channel_mode"], payload, head["last"])


def _take(data: bytes, start: int, n: int, structure: str, offset: int, index: int) -> bytes:
    """``n`` bytes of ``data`` from ``start``; TruncatedError as the stream's reader says it."""
    part = bytes(data[start:start + n])
    if len(part) < n:
        raise TruncatedError(f"{n} bytes expected, {len(part)} found before the end",
                             structure=structure, offset=offset + start, frame=index)
    return part


def header_fields(head_bytes: bytes):
    """A frame header's fields (§5.1) from its FRAME_HEADER_BYTES bytes, unchecked: for a reader
    that looks for frames (seeking, resynchronising) and judges them itself."""
    return _FRAME_HEADER.parse(head_bytes)


def check_header(head_bytes: bytes, info: StreamInfo, index: int, done: int, offset: int):
    """Frame ``index``'s header (``done`` samples precede it, ``offset``: where it starts), parsed
    and checked before its payload is read (§5.1, §5.2), in the order of §5.1: sync, CRC-8,
    frame_index, sample_count, channel_mode, payload_length. Returns the parsed header, its
    ``channel_mode`` the mode of §6.1 and ``last`` its LAST flag (§5.2)."""
    # Parsed fields are read by key on the hot path: construct's attribute access first
    # fails a normal lookup and costs ~0.7 us a field, 20-30 ms per minute of stereo audio.
    head = _FRAME_HEADER.parse(head_bytes)

    def bad(cls, what: str, section: str) -> VaeError:
        return cls(what, structure="frame header", offset=offset, frame=index,
                   sample=done, section=section)

    if head["sync"] != FRAME_SYNC:
        raise bad(FormatError, f"sync 0x{FRAME_SYNC:04x} expected, found 0x{head['sync']:04x}",
                  "§5.1")
    if crc8(head_bytes[:-1]) != head["header_crc8"]:
        raise bad(IntegrityError, "header CRC-8 mismatch", "§5.1")
    if head["frame_index"] != index:
        raise bad(FormatError, f"frame_index {index} expected, found {head['frame_index']}",
                  "§5.1")
    count = head["sample_count"]
    remaining = None if info.total_samples is None else info.total_samples - done
    if not 1 <= count <= info.frame_length:
        raise bad(FormatError, f"sample_count {count} is outside 1..{info.frame_length}",
                  "§5.2")
    if remaining is not None and count != min(info.frame_length, remaining):
        raise bad(FormatError, f"sample_count {min(info.frame_length, remaining)} expected, "
                  f"found {count}", "§5.2")
    mode = head["channel_mode"] & CHANNEL_MODE_MASK
    if mode > ChannelMode.MID_SIDE:
        raise bad(UnsupportedError, f"channel_mode {mode} is reserved", "§5.1")
    if mode and info.channels < 2:
        raise bad(FormatError, f"channel_mode {mode} needs two channels", "§5.1")
    last = bool(head["channel_mode"] & CHANNEL_MODE_LAST)
    if last and info.total_samples is not None:
        raise bad(FormatError, "the LAST flag is for streams of unknown length", "§5.2")
    head["channel_mode"], head["last"] = mode, last
    limit = max_frame_payload_bytes(info.frame_length, info.channels)
    if head["payload_length"] > limit:
        raise bad(LimitError, f"payload_length {head['payload_length']} exceeds the limit "
                  f"{limit}", "§5.1")
    return head


def check_crc(head_bytes: bytes, payload: bytes, crc_bytes: bytes, offset: int, index: int,
              done: int) -> None:
    """The frame's CRC-32 over its header and payload (§5.5)."""
    if crc32(payload, crc32(head_bytes)) != int.from_bytes(crc_bytes, "big"):
        raise IntegrityError("frame CRC-32 mismatch", structure="frame header", offset=offset,
                             frame=index, sample=done, section="§5.5")


class FrameDecoder:
    """Decodes checked frames of one stream (§5.3-§8, §6.1): ``decode`` is a function of the
    frame, the stream's ``info`` and its model, and frames may decode concurrently. The model
    is resolved at the first model-conditioned subframe (§8.1), once."""

    def __init__(self, info: StreamInfo, model: ModelSource = None):
        self.info = info
        if isinstance(model, Model):
            self._model, self._find_model = model, None
        else:
            self._model = None
            self._find_model = model or (lambda: find_model(info.model_sha256, info.model_name))
        self._model_lock = threading.Lock()

    def decode(self, job: CheckedFrame) -> tuple[array, bytearray, list[int]]:
        """A checked frame's samples: its subframes (§5.3-§6.4), then the channels restored
        (§6.1); as (int32 samples, interleaved; their PCM image, §4.2; the subframe types).
        Touches no state but the model, so frames may decode concurrently."""
        pcm = array("i", bytes(4 * job.count * self.info.channels))
        image = bytearray(image_size(self.info, job.count))
        return pcm, image, self.decode_into(job, pcm, image)

    def decode_into(self, job: CheckedFrame, pcm, image) -> list[int]:
        """:meth:`decode` into buffers the caller gives (writable, C-contiguous): ``pcm`` of
        int32 items and ``image`` of bytes, exactly ``job.count * channels`` samples each (a
        memoryview of a larger buffer will do), so that a caller decoding many frames
        allocates once; the subframe types are returned."""
        info = self.info
        coded, shifts, types = self._decode_subframes(job)
        bits = info.bits_per_sample
        # Channels restored (§6.1), range-checked, interleaved and packed into the MD5's byte
        # image (§4.2) in one kernel pass; the image also serves writers of whole-byte WAV.
        outside = kernels.frame_pcm(coded, bytes(shifts), job.mode, bits, pcm, image)
        if outside >= 0:
            raise IntegrityError(f"decoded sample {outside} of the frame leaves the {bits}-bit "
                                 "range", structure="frame header", offset=job.offset,
                                 frame=job.index, sample=job.first_sample, section="§6.1")
        return types

    def _decode_subframes(self, job: CheckedFrame):
        info = self.info
        payload, count, index = job.payload, job.count, job.index
        offset = job.offset + FRAME_HEADER_BYTES
        side = chan.side_channel_index(job.mode) if info.channels >= 2 else None
        stream = io.BytesIO(payload)
        out: list[array] = []
        shifts: list[int] = []
        types: list[int] = []
        cross = None
        for c in range(info.channels):
            start = stream.tell()
            where = dict(structure=f"subframe {c}", offset=offset + start, frame=index,
                         sample=job.first_sample)
            if start >= len(payload):
                raise TruncatedError("payload ends before this subframe", **where,
                                     section="§5.3")
            kind = payload[start]
            if kind not in _KNOWN_SUBFRAMES:
                raise UnsupportedError(f"subframe type {kind} is reserved", **where,
                                       section="§5.3")
            if kind in MODEL_SUBFRAME_TYPES:
                self._need_model(where, kind)
            sub = _parse_subframe(stream, where)
            types.append(kind)
            bits = info.bits_per_sample + (1 if c == side else 0)
            x, cross = self._decode_subframe(sub, bits, count, where, cross,
                                             out[-1] if out else None)
            out.append(x)
            shifts.append(sub["wasted_bits"])
        if stream.tell() != len(payload):
            raise FormatError(f"{len(payload) - stream.tell()} bytes left over after the last "
                              "subframe", structure="frame payload", offset=offset, frame=index,
                              section="§5.3")
        return out, shifts, types

    def _decode_subframe(self, sub, bits: int, count: int, where: dict,
                         cross: array | None, previous: array | None
                         ) -> tuple[array, array | None]:
        """One channel's int64 values before the wasted-bits shift (frame_pcm applies it), and
        the next subframe's cross input (§6.4, §8.3): this one's LPC residual if it is
        predicted (for OLS_CASCADE its least-squares residual), else None. ``previous``: the
        values of the subframe before, the cross input of §6.6."""
        wasted = sub["wasted_bits"]
        if wasted > MAX_WASTED_BITS or wasted >= bits:
            raise FormatError(f"wasted_bits {wasted} must be below the channel's {bits} bits",
                              **where, section="§5.3")
        width = bits - wasted
        lo, hi = -(1 << (width - 1)), (1 << (width - 1)) - 1
        body, kind = sub["body"], sub["subframe_type"]
        if kind == SubframeType.CONSTANT:
            if wasted:
                raise FormatError("a CONSTANT subframe must have wasted_bits 0", **where,
                                  section="§5.4")
            if not lo <= body["value"] <= hi:
                raise IntegrityError(f"constant {body['value']} is outside the {bits}-bit range",
                                     **where, section="§5.4")
            return array("q", [body["value"]]) * count, None
        if kind == SubframeType.MODEL_LOSSY:
            if wasted:
                raise FormatError("a MODEL_LOSSY subframe must have wasted_bits 0", **where,
                                  section="§8.6")
            from . import lossy  # numpy-based, and only lossy streams need it

            status, symbols = lossy.decode_symbols(self._model, body["data"], count)
            if status:
                raise FormatError(_RC_STATUS[status], **where, section="§8.6")
            try:
                return array("q", lossy.decode_samples(self._model, symbols, count, lo, hi)
                             .astype("=i8").tobytes()), None
            except FormatError as exc:
                raise FormatError(str(exc), **where) from None
        if kind == SubframeType.OLS_CASCADE:
            return self._decode_ols_cascade(body, count, where, width, cross, previous)
        if kind == SubframeType.VERBATIM:
            expected = packed_size(count, width)
            if body["data_length"] != expected:
                raise FormatError(f"VERBATIM data_length {expected} expected, found "
                                  f"{body['data_length']}", **where, section="§5.4")
            x = _ZERO_Q * count
            kernels.unpack_signed(body["data"], count, width, x)
        else:
            order, shift = body["order"], body["shift"]
            if not 1 <= order <= MAX_LPC_ORDER:
                raise FormatError(f"order {order} is outside 1..{MAX_LPC_ORDER}", **where,
                                  section="§5.4")
            if not 1 <= body["coef_bits"] <= MAX_COEF_BITS or shift > MAX_LPC_SHIFT:
                raise FormatError(f"coef_bits {body['coef_bits']} or shift {shift} out of range",
                                  **where, section="§5.4")
            _check_initial_mean(body, where)
            coefs = _ZERO_I * order
            kernels.unpack_signed(body["coefs"], order, body["coef_bits"], coefs)
            if kind == SubframeType.MODEL_PREDICTED:
                x = _ZERO_Q * count
                model = self._model
                symbols = array("q", bytes(8 * model.latent_dim))
                status = kernels.rc_decode(body["data"], body["initial_mean_log2"], x, symbols,
                                           model.prior, model.latent_levels_log2)
                if status:
                    raise FormatError(_RC_STATUS[status], **where, section="§8.4")
                residual = _ZERO_Q * count
                bad = kernels.model_restore(x, coefs, order, shift, lo, hi, width,
                                            body["initial_mean_log2"], model.decoder_net(symbols),
                                            cross, residual)
            else:
                x = _range_decoded(body, count, where)
                if kind in _CASCADE_BODIES:
                    mix = (_mix_params(body, where) if kind == SubframeType.MIXED_CASCADE
                           else None)
                    kernels.cascade(x, cross, _cascade_params(body, where), True, mix)
                residual = x[:]  # a copy: the next subframe's cross input (§6.4, §8.3)
                bad = kernels.lpc_restore(x, coefs, order, shift, lo, hi)
            if bad >= 0:
                raise IntegrityError(f"predicted sample {bad} leaves the {width}-bit range",
                                     **where, section="§6.3")
            return x, residual
        return x, None

    @staticmethod
    def _decode_ols_cascade(body, count: int, where: dict, width: int,
                            cross: array | None, previous: array | None) -> tuple[array, array]:
        """An OLS_CASCADE subframe (§6.6): every field checked before the data is decoded."""
        ols = _ols_params(body, where)
        stages, mix = _cascade_params(body, where), _mix_params(body, where)
        _check_initial_mean(body, where)
        x = _range_decoded(body, count, where)
        kernels.cascade(x, cross, stages, True, mix)
        residual = x[:]  # a copy: the next subframe's cross input (§6.4, §8.3)
        bad = kernels.ols(x, previous, ols, True, -(1 << (width - 1)), (1 << (width - 1)) - 1)
        if bad >= 0:
            raise IntegrityError(f"predicted sample {bad} leaves the {width}-bit range", **where,
                                 section="§6.6")
        return x, residual

    def _need_model(self, where: dict, subframe_type: int) -> None:
        """Resolve the stream's model at its first model-conditioned subframe, and check that
        the model and the stream suit this subframe type (§8.1, §8.6)."""
        info = self.info
        lossy = subframe_type == SubframeType.MODEL_LOSSY
        if lossy != info.lossy:
            raise FormatError(f"subframe type {subframe_type} in a stream whose LOSSY flag is "
                              f"{int(info.lossy)}", **where, section="§8.6")
        if info.model_sha256 is None:
            raise FormatError("a model-conditioned subframe in a stream without MODEL_REF",
                              **where, section="§4.6")
        with self._model_lock:  # frames may decode on several threads
            if self._model is None:
                self._model = self._find_model()
        wanted = ModelKind.LOSSY if lossy else ModelKind.RESIDUAL
        if self._model.kind != wanted:
            raise ModelError(f"model {self._model.name!r} is a {self._model.kind.name} model; "
                             f"subframe type {subframe_type} needs a {wanted.name} model (§8.1)")


def _cascade_params(body, where: dict) -> array:
    """A CASCADE body's stages (§6.4), checked, as kernels.cascade takes them."""
    stages = body["stages"]
    fields = [body["cross_taps"], body["cross_shift"], body["cross_step"]]
    for stage in stages:
        fields += [stage["taps"], stage["shift"], stage["step"], stage["rule"]]
    if (body["cross_taps"] > MAX_CROSS_TAPS or body["cross_shift"] > MAX_CASCADE_SHIFT
            or len(stages) > MAX_CASCADE_STAGES
            or any(not 1 <= st["taps"] <= MAX_CASCADE_TAPS or st["shift"] > MAX_CASCADE_SHIFT
                   or st["rule"] not in _CASCADE_RULES for st in stages)):
        raise FormatError(f"cascade stages out of range: cross {fields[:3]}, stages "
                          f"{[tuple(fields[i:i + 4]) for i in range(3, len(fields), 4)]}",
                          **where, section="§6.4")
    return array("i", fields)


def _check_initial_mean(body, where: dict) -> None:
    """A predicted body's initial_mean_log2 (§5.4, §7.3)."""
    if body["initial_mean_log2"] > MAX_INITIAL_MEAN_LOG2:
        raise FormatError(f"initial_mean_log2 {body['initial_mean_log2']} exceeds "
                          f"{MAX_INITIAL_MEAN_LOG2}", **where, section="§5.4")


def _range_decoded(body, count: int, where: dict) -> array:
    """A body's ``count`` residuals, range-decoded without the model (§7)."""
    x = _ZERO_Q * count
    status = kernels.rc_decode(body["data"], body["initial_mean_log2"], x)
    if status:
        raise FormatError(_RC_STATUS[status], **where, section="§7.5")
    return x


def _mix_params(body, where: dict) -> tuple[int, int, int]:
    """A MIXED_CASCADE body's mixer (§6.5), checked."""
    mix = body["mix_shift"], body["mix_step"], body["mix_bias"]
    if mix[0] > MAX_MIX_SHIFT or mix[1] > MAX_MIX_STEP or mix[2] > MAX_MIX_BIAS:
        raise FormatError(f"mixer out of range: mix_shift {mix[0]}, mix_step {mix[1]}, "
                          f"mix_bias {mix[2]}", **where, section="§6.5")
    return mix


def _ols_params(body, where: dict) -> array:
    """An OLS_CASCADE body's least-squares predictor (§6.6), checked, as kernels.ols takes it."""
    fields = [body[name] for name in ("ols_taps", "ols_cross_taps", "ols_scale", "ols_forget",
                                      "ols_ridge", "ols_interval_log2")]
    taps, cross_taps, scale, forget, ridge, interval_log2 = fields
    if not (taps >= 1 and taps + cross_taps <= MAX_OLS_TAPS and scale <= MAX_OLS_SCALE
            and 1 <= forget <= MAX_OLS_FORGET and 1 <= ridge <= MAX_OLS_RIDGE
            and MIN_OLS_INTERVAL_LOG2 <= interval_log2 <= MAX_OLS_INTERVAL_LOG2):
        raise FormatError(f"least-squares predictor out of range: ols_taps {taps}, "
                          f"ols_cross_taps {cross_taps}, ols_scale {scale}, ols_forget "
                          f"{forget}, ols_ridge {ridge}, ols_interval_log2 {interval_log2}",
                          **where, section="§6.6")
    return array("i", fields)


_ZERO_Q = array("q", [0])  # repeated: a zeroed buffer of n int64 at half the cost of bytes()
_ZERO_I = array("i", [0])


def _parse_subframe(stream: io.BytesIO, where: dict):
    """One subframe (§5.3–§5.4) through the compiled grammar, with its lengths checked."""
    try:
        sub = _SUBFRAME.parse_stream(stream)
    except (construct.ConstructError, struct.error) as exc:
        raise TruncatedError(f"subframe runs past the payload ({_one_line(exc)})", **where,
                             section="§5.3") from None
    body, kind = sub["body"], sub["subframe_type"]
    short = (kind != SubframeType.CONSTANT and len(body["data"]) != body["data_length"]
             or kind in _PREDICTED_BODIES
             and len(body["coefs"]) != packed_size(body["order"], body["coef_bits"]))
    if short:
        raise TruncatedError("subframe runs past the payload", **where, section="§5.3")
    return sub


_KNOWN_SUBFRAMES = tuple(SubframeType)
_CASCADE_RULES = tuple(CascadeRule)
_CASCADE_BODIES = (SubframeType.CASCADE, SubframeType.MIXED_CASCADE)
_PREDICTED_BODIES = (SubframeType.PREDICTED, SubframeType.MODEL_PREDICTED, *_CASCADE_BODIES)
