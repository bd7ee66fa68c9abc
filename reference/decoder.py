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

import hashlib
import io
import struct
import threading
from collections import deque
from array import array
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, BinaryIO, Iterator

import construct

from . import channels as chan
from ._backend import kernels
from ._bitpack import packed_size
from .checksum import PcmDigest, crc8, crc32
from .model import Model, find_model
from .spec import container as grammar
from .spec.constants import (FORBIDDEN_BLOCK_TYPE, FRAME_CRC_BYTES, FRAME_HEADER_BYTES,
                             MAX_CASCADE_SHIFT, MAX_CASCADE_STAGES, MAX_CASCADE_TAPS,
                             MAX_CROSS_TAPS,
                             FRAME_SYNC, MAX_BITS_PER_SAMPLE, MAX_COEF_BITS, MAX_FRAME_LENGTH,
                             MAX_INITIAL_MEAN_LOG2, MAX_LPC_ORDER, MAX_LPC_SHIFT,
                             MAX_MIX_BIAS, MAX_MIX_SHIFT, MAX_MIX_STEP, MAX_OLS_FORGET,
                             MAX_OLS_INTERVAL_LOG2, MAX_OLS_RIDGE, MAX_OLS_SCALE, MAX_OLS_TAPS,
                             MAX_WASTED_BITS, MIN_FRAME_LENGTH, MIN_OLS_INTERVAL_LOG2,
                             MODEL_SUBFRAME_TYPES,
                             PCM_MD5_UNKNOWN, SIGNATURE, STREAMINFO_FLAGS_DEFINED,
                             STREAMINFO_FLAG_LOSSY, UNKNOWN_TOTAL_SAMPLES, VERSION_MAJOR,
                             BlockType, CascadeRule, ChannelMode, ModelKind, SubframeType,
                             max_frame_payload_bytes)
from .spec.errors import (FormatError, IntegrityError, LimitError, ModelError, NotVaeError,
                          TruncatedError, UnsupportedError, VaeError)

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
class StreamInfo:
    """What STREAMINFO (§4.2) and the other metadata blocks say about a stream."""

    sample_rate: int
    channels: int
    bits_per_sample: int
    frame_length: int
    total_samples: int | None
    channel_mask: int
    pcm_md5: bytes | None
    lossy: bool
    version: tuple[int, int]
    tags: list[tuple[str, str]] = field(default_factory=list)
    vendor: str = ""
    seek_points: list[tuple[int, int]] = field(default_factory=list)
    model_sha256: bytes | None = None
    model_name: str | None = None
    blocks: list[tuple[str, int, int]] = field(default_factory=list)  # (type, offset, length)
    first_frame_offset: int = 0

    @property
    def duration(self) -> float | None:
        if self.total_samples is None:
            return None
        return self.total_samples / self.sample_rate


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


_READ_CHUNK = 1 << 20


@dataclass(frozen=True)
class _FrameJob:
    """A frame whose header, sizes and CRC-32 are checked, before its subframes are decoded."""

    index: int
    offset: int
    first_sample: int
    count: int
    mode: int
    payload: bytes


class _Reader:
    """Strict reads: a short read is a TruncatedError naming the structure and offset.

    Bytes can be pushed back (``unread``) so that ``--keep-going`` can rescan a damaged frame.
    """

    def __init__(self, fileobj: BinaryIO):
        self.file = fileobj
        self.offset = 0
        self.pushback = bytearray()
        self.recording: bytearray | None = None
        try:  # where the stream starts in the file, for seek()
            self.seekable = bool(fileobj.seekable())
            self.origin = fileobj.tell() if self.seekable else 0
        except (OSError, ValueError, AttributeError):
            self.seekable, self.origin = False, 0

    def seek(self, offset: int) -> None:
        """Continue reading at ``offset`` bytes from the start of the stream (seekable only)."""
        self.file.seek(self.origin + offset)
        self.offset = offset
        self.pushback.clear()

    def read_upto(self, n: int) -> bytes:
        out = bytearray(self.pushback[:n])
        del self.pushback[: len(out)]
        while len(out) < n:
            # In chunks: a buffered file preallocates what read(n) asks for, so a declared size
            # (up to 16 MiB for a block, ~69 MB for a payload) must not be asked for at once.
            more = self.file.read(min(n - len(out), _READ_CHUNK))
            if not more:
                break
            out += more
        if self.recording is not None:
            self.recording += out
        self.offset += len(out)
        return bytes(out)

    def skip(self, n: int, structure: str) -> None:
        """Read and drop ``n`` bytes, holding at most one chunk (a strict read)."""
        start, total = self.offset, n
        while n > 0:
            part = self.read_upto(min(n, _READ_CHUNK))
            if not part:
                raise TruncatedError(f"{total} bytes expected, {self.offset - start} found before "
                                     "the end", structure=structure, offset=start)
            n -= len(part)

    def read(self, n: int, structure: str, frame: int | None = None) -> bytes:
        data = self.read_upto(n)
        if len(data) < n:
            raise TruncatedError(f"{n} bytes expected, {len(data)} found before the end",
                                 structure=structure, offset=self.offset - len(data),
                                 frame=frame)
        return data

    def unread(self, data: bytes) -> None:
        self.pushback[:0] = data
        self.offset -= len(data)

    def at_eof(self) -> bool:
        if self.pushback:
            return False
        peek = getattr(self.file, "peek", None)
        if peek is not None:
            try:
                return not peek(1)
            except (OSError, ValueError):
                pass
        return False


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


def _parse(struct, data: bytes, structure: str, offset: int, frame: int | None = None):
    """Parse with construct; every construct failure becomes a FormatError here, in one place."""
    try:
        return struct.parse(data)
    except construct.ConstructError as exc:
        raise FormatError(f"malformed: {_one_line(exc)}", structure=structure, offset=offset,
                          frame=frame) from None


def _one_line(exc: Exception) -> str:
    """construct's messages span lines ("Error in path ... \n reason"); keep them on one."""
    return " ".join(str(exc).split())


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
        self._embedded_models: list[bytes] = []
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
        r = self._reader
        head = self.file_head = r.read_upto(len(SIGNATURE) + 2)
        if len(head) < len(SIGNATURE) or head[: len(SIGNATURE)] != SIGNATURE:
            raise NotVaeError(_signature_problem(head), structure="signature", offset=0,
                              section="§3.1")
        if len(head) < len(SIGNATURE) + 2:
            raise TruncatedError("stream ends inside the version", structure="signature",
                                 offset=len(head))
        major, minor = head[-2], head[-1]
        if major != VERSION_MAJOR:
            raise UnsupportedError(f"version {major}.{minor} is not supported (this decoder "
                                   f"reads {VERSION_MAJOR}.x)", structure="version", offset=8,
                                   section="§3.2")
        info = None
        index = 0
        seen: set[str] = set()
        while True:
            offset = r.offset
            block_header = _parse(grammar.BlockHeader, r.read(4, "metadata block header"),
                                  "metadata block header", offset)
            kind, length = block_header.block_type, block_header.length
            if index == 0 and kind != BlockType.STREAMINFO:
                raise FormatError(f"first metadata block must be STREAMINFO, found type {kind}",
                                  structure="metadata block header", offset=offset,
                                  section="§4.1")
            if index > 0 and kind == BlockType.STREAMINFO:
                raise FormatError("a second STREAMINFO block", structure="metadata block header",
                                  offset=offset, section="§4.1")
            if kind == FORBIDDEN_BLOCK_TYPE:
                raise FormatError("metadata block type 127 is forbidden",
                                  structure="metadata block header", offset=offset,
                                  section="§4.1")
            body_offset = offset + 4
            name = BlockType(kind).name if kind in BlockType._value2member_map_ else "RESERVED"
            if kind in (BlockType.SEEKTABLE, BlockType.TAGS, BlockType.MODEL_REF,
                        BlockType.MODEL_DATA) and name in seen:
                raise FormatError(f"a second {name} block", structure="metadata block header",
                                  offset=offset, section="§4.1")
            seen.add(name)
            _check_block_length(kind, name, length, body_offset)
            if kind not in _PARSED_BLOCKS:  # PADDING, reserved: skipped, not held
                r.skip(length, f"metadata block type {kind}")
            else:
                body = r.read(length, f"metadata block type {kind}")
            if kind == BlockType.MODEL_DATA:
                self._embedded_models.append(body)
            if kind == BlockType.STREAMINFO:
                info = self._stream_info(body, body_offset, (major, minor))
            elif kind == BlockType.TAGS:
                _check_tags_sizes(body, body_offset)
                tags = _parse_exact(grammar.Tags, body, "TAGS", body_offset)
                info.vendor = tags.vendor
                info.tags = [_split_comment(c, body_offset) for c in tags.comments]
            elif kind == BlockType.SEEKTABLE:
                _check_seek_count(body, body_offset)
                table = _parse_exact(grammar.SeekTable, body, "SEEKTABLE", body_offset)
                info.seek_points = [(p.sample_number, p.byte_offset) for p in table
                                    if p.sample_number != UNKNOWN_TOTAL_SAMPLES]
            elif kind == BlockType.MODEL_REF:
                ref = _parse_exact(grammar.ModelRef, body, "MODEL_REF", body_offset)
                info.model_sha256, info.model_name = bytes(ref.sha256), ref.name
            info.blocks.append((name, offset, length))
            index += 1
            if block_header.is_last:
                break
        info.first_frame_offset = r.offset
        return info

    def _stream_info(self, body: bytes, offset: int, version) -> StreamInfo:
        s = _parse_exact(grammar.StreamInfo, body, "STREAMINFO", offset)

        def bad(what: str) -> FormatError:
            return FormatError(what, structure="STREAMINFO", offset=offset, section="§4.2")

        # reserved bits first: a later minor version that sets one may give other fields
        # values this decoder does not know, and must be UnsupportedError, not FormatError
        if s.flags & ~STREAMINFO_FLAGS_DEFINED or s.reserved:
            raise UnsupportedError(f"reserved STREAMINFO bits set (flags 0x{s.flags:02x})",
                                   structure="STREAMINFO", offset=offset, section="§4.2")
        if s.sample_rate == 0:
            raise bad("sample_rate 0 is invalid")
        if s.channels == 0:
            raise bad("channels 0 is invalid")
        if not 1 <= s.bits_per_sample <= MAX_BITS_PER_SAMPLE:
            raise bad(f"bits_per_sample {s.bits_per_sample} is outside 1..32")
        if not MIN_FRAME_LENGTH <= s.frame_length <= MAX_FRAME_LENGTH:
            raise bad(f"frame_length {s.frame_length} is outside 1..{MAX_FRAME_LENGTH}")
        return StreamInfo(
            sample_rate=s.sample_rate, channels=s.channels, bits_per_sample=s.bits_per_sample,
            frame_length=s.frame_length,
            total_samples=None if s.total_samples == UNKNOWN_TOTAL_SAMPLES else s.total_samples,
            channel_mask=s.channel_mask,
            pcm_md5=None if bytes(s.pcm_md5) == PCM_MD5_UNKNOWN else bytes(s.pcm_md5),
            lossy=bool(s.flags & STREAMINFO_FLAG_LOSSY), version=version)

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
                embedded = {hashlib.sha256(b).digest(): b for b in self._embedded_models}
                self._model = find_model(info.model_sha256, info.model_name, embedded)
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
_PARSED_BLOCKS = (BlockType.STREAMINFO, BlockType.SEEKTABLE, BlockType.TAGS, BlockType.MODEL_REF,
                  BlockType.MODEL_DATA)
_MODEL_REF_BYTES = (32 + 1, 32 + 1 + 255)  # sha256, u8 length, name (§4.6)
_SEEK_POINT_BYTES = 16


def _check_block_length(kind: int, name: str, length: int, offset: int) -> None:
    """A known block's declared length must fit its structure (§4.1), checked before reading."""
    def bad(what: str) -> FormatError:
        return FormatError(what, structure=name, offset=offset, section="§4")

    if kind == BlockType.STREAMINFO and length != grammar.StreamInfo.sizeof():
        raise FormatError(f"STREAMINFO must be {grammar.StreamInfo.sizeof()} bytes, found "
                          f"{length}", structure="STREAMINFO", offset=offset, section="§4.2")
    if kind == BlockType.SEEKTABLE and (length < 4 or (length - 4) % _SEEK_POINT_BYTES):
        raise bad(f"a {length}-byte block cannot hold a count and 16-byte seek points")
    if kind == BlockType.TAGS and length < 8:
        raise bad(f"a {length}-byte block cannot hold a vendor length and a count")
    if kind == BlockType.MODEL_REF and not _MODEL_REF_BYTES[0] <= length <= _MODEL_REF_BYTES[1]:
        raise bad(f"MODEL_REF is {_MODEL_REF_BYTES[0]}..{_MODEL_REF_BYTES[1]} bytes, found "
                  f"{length}")


def _check_seek_count(body: bytes, offset: int) -> None:
    count = int.from_bytes(body[:4], "big")
    if 4 + count * _SEEK_POINT_BYTES != len(body):
        raise FormatError(f"count {count} needs {4 + count * _SEEK_POINT_BYTES} bytes, the block "
                          f"has {len(body)}", structure="SEEKTABLE", offset=offset,
                          section="§4.4")


def _check_tags_sizes(body: bytes, offset: int) -> None:
    """Vendor length, comment count and every comment length against the block's size (§4.5),
    before construct builds anything from them."""
    def bad(what: str, at: int) -> FormatError:
        return FormatError(what, structure="TAGS", offset=offset + at, section="§4.5")

    vendor = int.from_bytes(body[:4], "big")
    at = 4 + vendor
    if at + 4 > len(body):
        raise bad(f"vendor length {vendor} runs past the {len(body)}-byte block", 0)
    count = int.from_bytes(body[at:at + 4], "big")
    at += 4
    if count * 4 > len(body) - at:
        raise bad(f"{count} comments need at least {count * 4} bytes, {len(body) - at} left",
                  at - 4)
    for i in range(count):
        size = int.from_bytes(body[at:at + 4], "big")
        if at + 4 + size > len(body):
            raise bad(f"comment {i} of {size} bytes runs past the block", at)
        at += 4 + size
    if at != len(body):
        raise bad(f"{len(body) - at} bytes left after the last comment", at)


def _signature_problem(head: bytes) -> str:
    if len(head) < len(SIGNATURE):
        if SIGNATURE.startswith(head):
            return "stream ends inside the signature"
    if head[1:4] == b"VAE":
        if head[0] != 0x89:
            return "signature damaged: its high-bit byte was altered (7-bit transfer?)"
        return "signature damaged: line endings were converted (text-mode transfer?)"
    from ._sniff import other_format

    other = other_format(head)
    if other:
        return f"this is {other}, not a .vae stream"
    return f"not a .vae stream (starts with {head[:8]!r})"


def _parse_exact(struct, body: bytes, name: str, offset: int):
    value = _parse(struct, body, name, offset)
    size = len(struct.build(value))
    if size != len(body):
        raise FormatError(f"block is {len(body)} bytes but its content is {size}",
                          structure=name, offset=offset, section="§4")
    return value


def _split_comment(comment: str, offset: int) -> tuple[str, str]:
    key, sep, value = comment.partition("=")
    if not sep or not key:
        raise FormatError(f"tag {comment[:40]!r} has no KEY=", structure="TAGS", offset=offset,
                          section="§4.5")
    return key, value


class _RawAdapter(io.RawIOBase):
    """Give any object with ``read`` the raw-IO interface BufferedReader needs (for peek)."""

    def __init__(self, fileobj):
        self._f = fileobj

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        seekable = getattr(self._f, "seekable", None)
        return bool(seekable and seekable())

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._f.seek(offset, whence)

    def tell(self) -> int:
        return self._f.tell()

    def readinto(self, b) -> int:
        data = self._f.read(len(b))
        if not data:
            return 0
        b[: len(data)] = data
        return len(data)
