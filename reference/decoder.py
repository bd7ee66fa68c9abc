"""The reference decoder (spec §4–§7, §9): follows the stream, checks everything, searches nothing.

Reads through the ``construct`` grammar in :mod:`vaelac.spec`; every size is checked against the
format's limits before anything is read or allocated, and every failure is a :class:`VaeError`.

Decoding to bytes (:meth:`StreamDecoder.read_frame_image`, what ``vaelac decode`` and ``vaelac
test`` use) imports neither numpy nor torch: the buffers the kernels fill are stdlib arrays,
and numpy (a tenth of a second of start-up, as long as decoding a 10 s 8 kHz file) loads only
where frames are handed out as numpy arrays (:meth:`StreamDecoder.read_frame`) or a rare
subframe type needs it (VERBATIM, MODEL_LOSSY).
"""

from __future__ import annotations

import io
import struct
import threading
from collections import deque
from array import array
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO, Iterator

import construct

from . import channels as chan
from ._backend import kernels
from ._bitpack import packed_size
from .checksum import PcmDigest, crc8, crc32
from .model import Model
from .spec import container as grammar
from .spec.constants import (FRAME_CRC_BYTES, FRAME_HEADER_BYTES,
                             MAX_CASCADE_SHIFT, MAX_CASCADE_STAGES, MAX_CASCADE_TAPS,
                             MAX_CROSS_TAPS, FRAME_SYNC, MAX_COEF_BITS,
                             MAX_INITIAL_MEAN_LOG2, MAX_LPC_ORDER, MAX_LPC_SHIFT,
                             MAX_MIX_BIAS, MAX_MIX_SHIFT, MAX_MIX_STEP, MAX_OLS_FORGET,
                             MAX_OLS_INTERVAL_LOG2, MAX_OLS_RIDGE, MAX_OLS_SCALE, MAX_OLS_TAPS,
                             MAX_WASTED_BITS, MIN_OLS_INTERVAL_LOG2, MODEL_SUBFRAME_TYPES,
                             CascadeRule, ChannelMode, ModelKind, SubframeType,
                             max_frame_payload_bytes)
from .spec.errors import (FormatError, IntegrityError, LimitError, ModelError, TruncatedError,
                          UnsupportedError, VaeError)
from .stream_head import (Reader as _Reader, StreamInfo, _one_line, _RawAdapter,
                          read_head)

if TYPE_CHECKING:
    import numpy as np

__all__ = ["StreamInfo", "StreamDecoder", "FrameInfo", "Damage"]

# construct's compiled parsers are 4-5x faster than interpreted ones. They do not check that a
# Bytes field got all its bytes, so _parse_subframe checks those lengths itself; frame headers
# are always parsed from exactly FRAME_HEADER_BYTES bytes.
_FRAME_HEADER = grammar.FrameHeader.compile()
_SUBFRAME = grammar.Subframe.compile()

# Samples (all channels) of the frames a threaded decoder holds at once: ~30 bytes each while
# they decode, so ~128 MB; a 255-channel stream of 65535-sample frames decodes one at a time.
_MAX_AHEAD_SAMPLES = 1 << 22

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


@dataclass(frozen=True)
class _FrameJob:
    """A frame whose header, sizes and CRC-32 are checked, before its subframes are decoded."""

    index: int
    offset: int
    first_sample: int
    count: int
    mode: int
    payload: bytes


@dataclass
class Damage:
    """A span that ``keep_going`` decoding replaced with silence."""

    first_frame: int
    first_sample: int
    samples: int
    reason: str

    def __str__(self) -> str:
        if not self.samples:
            return f"at sample {self.first_sample} (frame {self.first_frame}): {self.reason}"
        return (f"samples {self.first_sample}..{self.first_sample + self.samples - 1} "
                f"(from frame {self.first_frame}) filled with silence: {self.reason}")


_MAX_RESYNC_GAP_FRAMES = 1 << 16


def _min_frame_bytes(channels: int) -> int:
    """The smallest possible frame (§5): header, CRC-32 and, per channel, the smallest subframe
    (VERBATIM of one 1-bit value: 2 + 4 + 1 bytes). ``keep_going`` believes no frame count that
    needs more bytes than the stream has, so the silence it fills is bounded by the input's size.
    """
    return FRAME_HEADER_BYTES + FRAME_CRC_BYTES + 7 * channels



class StreamDecoder:
    """Decode a `.vae` stream from a binary file object, frame by frame.

    Iterating yields int32 arrays of shape (n, channels) (int64 for 32-bit streams is never
    needed: decoded samples always fit their declared depth). ``verify`` checks the PCM MD5 at
    the end of the stream when the header carries one.
    """

    def __init__(self, fileobj: BinaryIO, *, keep_going: bool = False, threads: int = 1):
        if threads < 1:
            raise ValueError(f"threads must be at least 1, not {threads}")
        self.keep_going = keep_going
        # Frames are independent (§5): with threads > 1 the frames after the one being handed
        # out are read, checked and decoded ahead on a thread pool (the kernels run without
        # the GIL), and handed out in order; a failure is raised at the frame it belongs to.
        # keep_going resynchronises on the reader's position, so it decodes one frame at a time.
        self.threads = 1 if keep_going else threads
        self._pool = None
        self._pending: deque = deque()
        self._ahead = (0, 0)  # (frame index, samples before it) the read-ahead has reached
        self._ahead_done = False  # the read-ahead met the end of the stream or a failure
        self._model_lock = threading.Lock()
        self.damage: list[Damage] = []
        self._silence_frames = 0
        if not hasattr(fileobj, "peek"):
            fileobj = io.BufferedReader(_RawAdapter(fileobj))
        self._reader = _Reader(fileobj)
        self._model: Model | None = None
        self.info = self._read_head()
        self._min_frame = _min_frame_bytes(self.info.channels)
        self._expected_frame = 0
        self._samples_done = 0
        self._digest = PcmDigest(self.info.bits_per_sample)
        self.frames: list[FrameInfo] = []
        self.keep_frame_infos = False
        self._seeked = False  # after seek() the PCM MD5 cannot be checked
        self._drop = 0  # samples of the next frame that precede the seek target

    # -- head (§3, §4) ----------------------------------------------------------------------
    def _read_head(self) -> StreamInfo:
        head = self._head = read_head(self._reader)
        self.file_head = head.file_head
        return head.info

    # -- frames (§5) --------------------------------------------------------------------------
    def __iter__(self) -> Iterator[np.ndarray]:
        while True:
            block = self.read_frame()
            if block is None:
                return
            if self._drop:
                block, self._drop = block[self._drop:], 0
            yield block

    def seek(self, sample: int) -> None:
        """Make iteration continue at ``sample`` (0 … total_samples, per channel).

        On a seekable file the decoder jumps to the SEEKTABLE point at or before the target's
        frame (§4.4), or to the first frame, and then steps over whole frames by their headers
        (sync, CRC-8 and frame_index checked, payloads skipped unread) — frames are fixed-length
        (§5.2), so the target's frame is known. A file that cannot seek is read forward to the
        target. After a seek the stream's PCM MD5 is not checked (the frames' CRCs still are).
        """
        info = self.info
        fl = info.frame_length
        if self.keep_going:
            raise ValueError("seek() is not available with keep_going")
        if self.threads > 1:
            raise ValueError("seek() is not available with threads > 1")
        if sample < 0 or (info.total_samples is not None and sample > info.total_samples):
            raise ValueError(f"sample {sample} is outside 0..{info.total_samples}")
        self._seeked = True
        target = sample // fl
        seekable = self._reader.seekable
        if seekable and (self._expected_frame > target or self._drop):
            self._jump(0, 0)
        if seekable:
            points = [p for p in info.seek_points if p[0] % fl == 0
                      and self._expected_frame * fl < p[0] <= target * fl]
            if points:
                sample_number, byte_offset = max(points)
                self._jump(sample_number // fl, byte_offset)
                if self._next_header() is None:
                    self._jump(0, 0)  # a wrong seek point: step from the first frame
        elif self._expected_frame > target:
            raise ValueError("this file cannot seek backwards")
        self._hop_to(target)
        self._drop = sample - self._samples_done if self._expected_frame == target else 0

    def _jump(self, frame: int, byte_offset: int) -> None:
        self._reader.seek(self.info.first_frame_offset + byte_offset)
        self._expected_frame = frame
        self._samples_done = frame * self.info.frame_length
        self._drop = 0

    def _next_header(self):
        """The next frame header if it is the expected one (sync, CRC-8, index and sizes
        hold), else None; the reader stays where it was."""
        info = self.info
        r = self._reader
        head_bytes = r.read_upto(FRAME_HEADER_BYTES)
        r.unread(head_bytes)
        if len(head_bytes) < FRAME_HEADER_BYTES:
            return None
        head = _FRAME_HEADER.parse(head_bytes)
        valid = (head["sync"] == FRAME_SYNC and crc8(head_bytes[:-1]) == head["header_crc8"]
                 and head["frame_index"] == self._expected_frame
                 and 1 <= head["sample_count"] <= info.frame_length
                 and head["payload_length"]
                 <= max_frame_payload_bytes(info.frame_length, info.channels))
        return head if valid else None

    def _hop_to(self, target: int) -> None:
        """Step over whole frames until frame ``target`` is next or the stream ends; a frame
        whose header is wrong is left for decoding to report."""
        info = self.info
        r = self._reader
        while self._expected_frame < target:
            if info.total_samples is not None and self._samples_done >= info.total_samples:
                return
            head = self._next_header()
            if head is None:
                return  # the end of the stream, or a damaged frame that decoding reports
            size = FRAME_HEADER_BYTES + head["payload_length"] + FRAME_CRC_BYTES
            if r.seekable:
                r.seek(r.offset + size)
            else:
                r.skip(size, "frame")
            self._expected_frame += 1
            self._samples_done += head["sample_count"]

    def read_frame(self) -> np.ndarray | None:
        """The next frame's samples, or None at the end of the stream (after all checks).

        With ``keep_going``, a damaged frame does not stop decoding: the decoder resynchronises
        on the next valid frame header and yields silence for what it lost (``self.damage``).
        """
        frame = self._next_frame()
        if frame is None:
            return None
        import numpy as np
        return np.frombuffer(frame[0], np.int32).reshape(-1, self.info.channels)

    def read_frame_image(self) -> bytearray | bytes | None:
        """:meth:`read_frame` as the PCM byte image of §4.2 (interleaved, little-endian,
        ceil(bits/8) bytes a sample): the data of a WAV file whose container is that width
        (16, 24 or 32 bits). Same checks; None at the end of the stream."""
        frame = self._next_frame()
        return None if frame is None else frame[1]

    def _next_frame(self) -> tuple[array, bytearray | bytes] | None:
        """The next frame as (int32 samples, interleaved; the PCM image of §4.2)."""
        if not self.keep_going:
            return self._read_frame()
        if self._silence_frames:
            return self._silence()
        r = self._reader
        while True:
            start = r.offset
            r.recording = bytearray()
            try:
                return self._read_frame()
            except FormatError as exc:
                recorded = bytes(r.recording)
                r.recording = None
                r.unread(recorded)
                found = self._resync(start)
                if found is None:
                    total = self.info.total_samples
                    missing = 0 if total is None else total - self._samples_done
                    self._silence_frames = -(-missing // self.info.frame_length)
                    need = (self._expected_frame + self._silence_frames) * self._min_frame
                    have = r.offset - self.info.first_frame_offset
                    if self._silence_frames and need > have:
                        # total_samples is not credible (a damaged or hostile STREAMINFO):
                        # a 100-byte file must not be "repaired" into terabytes of silence.
                        self._silence_frames = 0
                        self.damage.append(Damage(
                            self._expected_frame, self._samples_done, 0,
                            f"{exc}; the {missing} samples still declared were not filled: "
                            f"{total} samples need at least {need} bytes of frames, the stream "
                            f"has {have} (§5.2)"))
                        return None
                else:
                    self._silence_frames = found - self._expected_frame
                self.damage.append(Damage(self._expected_frame, self._samples_done,
                                          self._silence_samples_total(),
                                          f"{exc}; resumed at byte {r.offset}"
                                          if found is not None else str(exc)))
                if self._silence_frames:
                    return self._silence()
                if found is None:
                    return None
                # garbage before a good frame: nothing lost, decode from the header found
            finally:
                r.recording = None

    def _silence_samples_total(self) -> int:
        info = self.info
        count = self._silence_frames * info.frame_length
        if info.total_samples is not None:
            count = min(count, info.total_samples - self._samples_done)
        return count

    def _silence(self) -> tuple[array, bytes]:
        info = self.info
        count = info.frame_length
        if info.total_samples is not None:
            count = min(count, info.total_samples - self._samples_done)
        self._silence_frames -= 1
        self._expected_frame += 1
        self._samples_done += count
        pcm = array("i", bytes(4 * count * info.channels))
        image = bytes(self._image_bytes(count))
        self._digest.update_image(image)
        return pcm, image

    def _image_bytes(self, count: int) -> int:
        """Size of the PCM image (§4.2) of ``count`` samples of every channel."""
        info = self.info
        return count * info.channels * ((info.bits_per_sample + 7) // 8)

    def _resync(self, failed_start: int) -> int | None:
        """Scan for the next frame header with a valid CRC-8 and a plausible index; leave the
        reader at it and return its index, or None at the end of the stream."""
        r = self._reader
        info = self.info
        while True:
            at = r.offset
            byte = r.read_upto(1)
            if not byte:
                return None
            if byte[0] != FRAME_SYNC >> 8:
                continue
            rest = r.read_upto(FRAME_HEADER_BYTES - 1)
            candidate = byte + rest
            if len(candidate) == FRAME_HEADER_BYTES and crc8(candidate[:-1]) == candidate[-1]:
                head = _FRAME_HEADER.parse(candidate)
                index = head["frame_index"]
                plausible = (head["sync"] == FRAME_SYNC
                             and self._expected_frame <= index
                             < self._expected_frame + _MAX_RESYNC_GAP_FRAMES
                             # frame k starts at least k smallest frames into the frames
                             and index * self._min_frame <= at - info.first_frame_offset
                             and not (index == self._expected_frame and at == failed_start)
                             and (info.total_samples is None
                                  or index * info.frame_length < info.total_samples))
                if plausible:
                    r.unread(candidate)
                    return index
            r.unread(rest)

    def _read_frame(self) -> tuple[array, bytearray] | None:
        if self.threads > 1:
            return self._read_frame_ahead()
        job = self._take_frame(self._expected_frame, self._samples_done)
        if job is None:
            self._finish()
            return None
        return self._deliver(job, self._compute(job))

    def _read_frame_ahead(self) -> tuple[array, bytearray] | None:
        """:meth:`_read_frame` with up to ``threads + 1`` frames read and decoding ahead."""
        pending = self._pending
        if self._pool is None and not self._ahead_done:
            from concurrent.futures import ThreadPoolExecutor
            self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="vaelac-decode")
            self._ahead = (self._expected_frame, self._samples_done)
        info = self.info
        # at least the frame handed out next; more while their samples stay within the bound
        depth = max(1, min(self.threads + 1,
                           _MAX_AHEAD_SAMPLES // (info.channels * info.frame_length)))
        while not self._ahead_done and len(pending) < depth:
            index, done = self._ahead
            try:
                job = self._take_frame(index, done)
            except Exception as exc:  # raised in order, after the frames before it
                pending.append((None, exc))
                job = None
            if job is None:
                self._ahead_done = True
                break
            self._ahead = (index + 1, done + job.count)
            pending.append((job, self._pool.submit(self._compute, job)))
        if not pending:
            self._stop_pool()
            self._finish()
            return None
        job, outcome = pending.popleft()
        try:
            if job is None:
                raise outcome
            return self._deliver(job, outcome.result())
        except BaseException:
            self._ahead_done = True
            pending.clear()
            self._stop_pool()  # cancels what has not started
            raise

    def _stop_pool(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def _take_frame(self, index: int, done: int) -> _FrameJob | None:
        """Read frame ``index`` (``done`` samples precede it) and check everything but its
        subframes: header (§5.1), sizes (§5.2), CRC-32 (§5.5). None at a valid end of stream
        (the caller checks the totals and the MD5)."""
        info = self.info
        r = self._reader
        if info.total_samples is not None and done >= info.total_samples:
            if not r.at_eof():
                raise FormatError("data after the last frame", structure="frame",
                                  offset=r.offset, section="§5")
            return None
        offset = r.offset
        first = r.read_upto(1)
        if not first:
            if info.total_samples is not None:
                raise TruncatedError(f"stream ends after {done} of "
                                     f"{info.total_samples} samples", structure="frame",
                                     offset=offset, frame=index)
            return None
        head_bytes = first + r.read(FRAME_HEADER_BYTES - 1, "frame header", index)
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
        mode = head["channel_mode"]
        if mode > ChannelMode.MID_SIDE:
            raise bad(UnsupportedError, f"channel_mode {mode} is reserved", "§5.1")
        if mode and info.channels < 2:
            raise bad(FormatError, f"channel_mode {mode} needs two channels", "§5.1")
        limit = max_frame_payload_bytes(info.frame_length, info.channels)
        if head["payload_length"] > limit:
            raise bad(LimitError, f"payload_length {head['payload_length']} exceeds the limit "
                      f"{limit}", "§5.1")
        payload = r.read(head["payload_length"], "frame payload", index)
        crc_bytes = r.read(FRAME_CRC_BYTES, "frame CRC", index)
        if crc32(payload, crc32(head_bytes)) != int.from_bytes(crc_bytes, "big"):
            raise bad(IntegrityError, "frame CRC-32 mismatch", "§5.5")
        return _FrameJob(index, offset, done, count, mode, payload)

    def _compute(self, job: _FrameJob) -> tuple[array, bytearray, list[int]]:
        """A checked frame's samples: its subframes (§5.3-§6.4), then the channels restored
        (§6.1). Touches no decoder state but the model, so frames may decode concurrently."""
        info = self.info
        coded, shifts, types = self._decode_subframes(job)
        bits = info.bits_per_sample
        # Channels restored (§6.1), range-checked, interleaved and packed into the MD5's byte
        # image (§4.2) in one kernel pass; the image also serves writers of whole-byte WAV.
        pcm = array("i", bytes(4 * job.count * info.channels))
        image = bytearray(self._image_bytes(job.count))
        outside = kernels.frame_pcm(coded, bytes(shifts), job.mode, bits, pcm, image)
        if outside >= 0:
            raise IntegrityError(f"decoded sample {outside} of the frame leaves the {bits}-bit "
                                 "range", structure="frame header", offset=job.offset,
                                 frame=job.index, sample=job.first_sample, section="§6.1")
        return pcm, image, types

    def _deliver(self, job: _FrameJob, decoded) -> tuple[array, bytearray]:
        """Hand out a decoded frame: the MD5 and the position advance, in frame order."""
        pcm, image, types = decoded
        if self.keep_frame_infos:
            self.frames.append(FrameInfo(job.index, job.offset, job.first_sample, job.count,
                                         job.mode, FRAME_HEADER_BYTES + len(job.payload)
                                         + FRAME_CRC_BYTES, types))
        self._digest.update_image(image)
        self._samples_done += job.count
        self._expected_frame += 1
        return pcm, image

    def _decode_subframes(self, job: _FrameJob):
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
            x = array("q", bytes(8 * count))
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
            coefs = array("i", bytes(4 * order))
            kernels.unpack_signed(body["coefs"], order, body["coef_bits"], coefs)
            if kind == SubframeType.MODEL_PREDICTED:
                x = array("q", bytes(8 * count))
                model = self._model
                symbols = array("q", bytes(8 * model.latent_dim))
                status = kernels.rc_decode(body["data"], body["initial_mean_log2"], x, symbols,
                                           model.prior, model.latent_levels_log2)
                if status:
                    raise FormatError(_RC_STATUS[status], **where, section="§8.4")
                residual = array("q", bytes(8 * count))
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
        with self._model_lock:  # frames may decode on several threads
            if self._model is None:
                if info.model_sha256 is None:
                    raise FormatError("a model-conditioned subframe in a stream without "
                                      "MODEL_REF", **where, section="§4.6")
                self._model = self._head.find_model()
        wanted = ModelKind.LOSSY if lossy else ModelKind.RESIDUAL
        if self._model.kind != wanted:
            raise ModelError(f"model {self._model.name!r} is a {self._model.kind.name} model; "
                             f"subframe type {subframe_type} needs a {wanted.name} model (§8.1)")

    def _finish(self) -> None:
        info = self.info
        if info.total_samples is not None and self._samples_done != info.total_samples:
            raise TruncatedError(f"{self._samples_done} of {info.total_samples} samples "
                                 "decoded", structure="stream", offset=self._reader.offset)
        if any(d.samples for d in self.damage) or self._seeked:
            return  # the MD5 covers all the audio: not after silence was filled in or a seek
        if info.pcm_md5 is not None and self._digest.digest() != info.pcm_md5:
            raise IntegrityError("decoded PCM does not match the stream's MD5",
                                 structure="STREAMINFO", offset=None, section="§4.2")

    @property
    def samples_decoded(self) -> int:
        return self._samples_done

    @property
    def md5_checked(self) -> bool:
        return self.info.pcm_md5 is not None


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
    x = array("q", bytes(8 * count))
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
