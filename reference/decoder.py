"""The reference decoder (spec §4–§7, §9): follows the stream, checks everything, searches nothing.

Three parts: :mod:`vaelac.stream_head` reads and checks the signature, version and metadata
blocks (§3, §4); :mod:`vaelac.frame_decoder` decodes one frame, a function of its bytes, the
stream's :class:`StreamInfo` and its model (§5-§8); :class:`StreamDecoder`, here, reads the frames
in order on top of them: it seeks, resynchronises for ``keep_going``, decodes ahead on threads and
checks what only the whole stream can show (its length, data after it, the PCM MD5).

Every size is checked against the format's limits before anything is read or allocated, and
every failure is a :class:`VaeError`.

Decoding to bytes (:meth:`StreamDecoder.read_frame_image`, what ``vaelac decode`` and ``vaelac
test`` use) imports neither numpy nor torch: the buffers the kernels fill are stdlib arrays,
and numpy (a tenth of a second of start-up, as long as decoding a 10 s 8 kHz file) loads only
where frames are handed out as numpy arrays (:meth:`StreamDecoder.read_frame`) or a rare
subframe type needs it (VERBATIM, MODEL_LOSSY).
"""

from __future__ import annotations

import io
from array import array
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO, Iterator

from .checksum import PcmDigest, crc8
from .frame_decoder import (CheckedFrame, FrameDecoder, FrameInfo, check_crc, check_header,
                            header_fields, image_size)
from .spec.constants import (FRAME_CRC_BYTES, FRAME_HEADER_BYTES, FRAME_SYNC,
                             PROTECTED_VERSION_MINOR, max_frame_payload_bytes)
from .spec.errors import FormatError, IntegrityError, TruncatedError
from .stream_head import Reader as _Reader, StreamInfo, _RawAdapter, read_head

if TYPE_CHECKING:
    import numpy as np

__all__ = ["StreamInfo", "StreamDecoder", "FrameInfo", "Damage"]

# Samples (all channels) of the frames a threaded decoder holds at once: ~30 bytes each while
# they decode, so ~128 MB; a 255-channel stream of 65535-sample frames decodes one at a time.
_MAX_AHEAD_SAMPLES = 1 << 22


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

    frame_decoder_class = FrameDecoder  # what decodes each frame's subframes (§5.3-§8)

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
        self.damage: list[Damage] = []
        self._silence_frames = 0
        if not hasattr(fileobj, "peek"):
            fileobj = io.BufferedReader(_RawAdapter(fileobj))
        self._reader = _Reader(fileobj)
        self.info = self._read_head()
        self._frame_decoder = self.frame_decoder_class(self.info, self._head.find_model)
        self._min_frame = _min_frame_bytes(self.info.channels)
        self._expected_frame = 0
        self._after_last = False  # a LAST frame (§5.2) was taken: the stream ends here
        self._samples_done = 0
        self._digest = PcmDigest(self.info.bits_per_sample)
        self.frames: list[FrameInfo] = []
        self.keep_frame_infos = False
        self._seeked = False  # after seek() the PCM MD5 cannot be checked
        self._drop = 0  # samples of the next frame that precede the seek target

    # -- head (§3, §4) ------------------------------------------------------------------------
    def _read_head(self) -> StreamInfo:
        head = self._head = read_head(self._reader)
        self.file_head = head.file_head
        return head.info

    # -- handing out frames (§5) --------------------------------------------------------------
    def __iter__(self) -> Iterator[np.ndarray]:
        while True:
            block = self.read_frame()
            if block is None:
                return
            if self._drop:
                block, self._drop = block[self._drop:], 0
            yield block

    # -- seeking (§4.4, §5.2) -----------------------------------------------------------------
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
        self._after_last = False
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
        head = header_fields(head_bytes)
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

    # -- frames in order; keep_going (§9) -----------------------------------------------------
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
        image = bytes(image_size(info, count))
        self._digest.update_image(image)
        return pcm, image

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
                head = header_fields(candidate)
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

    # -- reading frames: one at a time, or decoding ahead on threads --------------------------
    def _read_frame(self) -> tuple[array, bytearray] | None:
        if self.threads > 1:
            return self._read_frame_ahead()
        job = self._take_frame(self._expected_frame, self._samples_done)
        if job is None:
            self._finish()
            return None
        return self._deliver(job, self._frame_decoder.decode(job))

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
            pending.append((job, self._pool.submit(self._frame_decoder.decode, job)))
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

    def _take_frame(self, index: int, done: int) -> CheckedFrame | None:
        """Read frame ``index`` (``done`` samples precede it) and check everything but its
        subframes: header (§5.1), sizes (§5.2), CRC-32 (§5.5). None at a valid end of stream
        (the caller checks the totals and the MD5)."""
        info = self.info
        r = self._reader
        if (info.total_samples is not None and done >= info.total_samples) or self._after_last:
            if not r.at_eof():
                raise FormatError("data after the last frame", structure="frame",
                                  offset=r.offset, section="§5.2")
            return None
        offset = r.offset
        first = r.read_upto(1)
        if not first:
            if info.total_samples is not None:
                raise TruncatedError(f"stream ends after {done} of "
                                     f"{info.total_samples} samples", structure="frame",
                                     offset=offset, frame=index)
            if info.version[1] >= PROTECTED_VERSION_MINOR:
                raise TruncatedError(f"a {info.version[0]}.{info.version[1]} stream of unknown "
                                     f"length ends after {done} samples without a LAST frame",
                                     structure="frame", offset=offset, frame=index,
                                     section="§5.2")
            return None
        head_bytes = first + r.read(FRAME_HEADER_BYTES - 1, "frame header", index)
        head = check_header(head_bytes, info, index, done, offset)
        payload = r.read(head["payload_length"], "frame payload", index)
        crc_bytes = r.read(FRAME_CRC_BYTES, "frame CRC", index)
        check_crc(head_bytes, payload, crc_bytes, offset, index, done)
        self._after_last = head["last"]
        return CheckedFrame(index, offset, done, head["sample_count"], head["channel_mode"],
                            payload, head["last"])

    def _deliver(self, job: CheckedFrame, decoded) -> tuple[array, bytearray]:
        """Hand out a decoded frame: the MD5 and the position advance, in frame order."""
        pcm, image, types = decoded
        if self.keep_frame_infos:
            self.frames.append(job.frame_info(types))
        self._digest.update_image(image)
        self._samples_done += job.count
        self._expected_frame += 1
        return pcm, image

    # -- the end of the stream: its length (§5.2) and PCM MD5 (§4.2) --------------------------
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


