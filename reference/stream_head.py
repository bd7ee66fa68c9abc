"""The head of a `.vae` stream (spec §3, §4): signature, version and metadata blocks, read and
checked before any frame; and the strict reader the decoder reads the whole stream through.

:func:`read_head` parses every block through the ``construct`` grammar of
:mod:`vaelac.spec.container` (the only parser of the container), after the checks that must come
before it (§4.1: what a block header alone decides; §4.4, §4.5: counts and lengths against the
block's size), so that no declared size is believed before it is checked. Its result,
:class:`StreamHead`, is what a frame decoder needs besides the frame's bytes: the
:class:`StreamInfo` and the stream's model (:meth:`StreamHead.find_model`).
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field
from typing import BinaryIO

import construct

from .checksum import crc32
from .model import Model, find_model
from .spec import container as grammar
from .spec.constants import (FORBIDDEN_BLOCK_TYPE, MAX_BITS_PER_SAMPLE, MAX_FRAME_LENGTH,
                             MIN_FRAME_LENGTH, PCM_MD5_UNKNOWN, SIGNATURE,
                             STREAMINFO_FLAGS_DEFINED, STREAMINFO_FLAG_LOSSY,
                             UNKNOWN_TOTAL_SAMPLES, VERSION_MAJOR, BlockType,
                             METADATA_CRC_LENGTH, PROTECTED_VERSION_MINOR)
from .spec.errors import (FormatError, IntegrityError, NotVaeError, TruncatedError,
                          UnsupportedError)

__all__ = ["StreamInfo", "StreamHead", "read_head"]

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
    def metadata_protected(self) -> bool:
        """Whether the metadata carried a METADATA_CRC, checked (§4.7); streams before version
        1.5 have none, and a damaged field of theirs can go unnoticed."""
        return any(name == "METADATA_CRC" for name, _, _ in self.blocks)

    @property
    def duration(self) -> float | None:
        if self.total_samples is None:
            return None
        return self.total_samples / self.sample_rate





@dataclass
class StreamHead:
    """Everything before the first frame: what the blocks say (``info``), the bodies of the
    MODEL_DATA blocks (kept unhashed and unvalidated until a subframe needs a model, §4.6,
    §8.1) and the stream's first ten bytes (signature and version)."""

    info: StreamInfo
    embedded_models: list[bytes] = field(default_factory=list)
    file_head: bytes = b""

    def find_model(self) -> Model:
        """The model MODEL_REF names (§8.1): an embedded MODEL_DATA whose SHA-256 matches, else
        a well-known or installed one; ModelError if none is found or it is invalid. The
        caller has checked that MODEL_REF is present."""
        info = self.info
        embedded = {hashlib.sha256(b).digest(): b for b in self.embedded_models}
        return find_model(info.model_sha256, info.model_name, embedded)


def read_head(r: Reader) -> StreamHead:
    """Read the signature, version and metadata blocks (§3, §4), leaving ``r`` at the first
    frame; every error is a :class:`VaeError`, in the check order of §4.1. From version 1.5
    the blocks' content is checked and used only once METADATA_CRC holds (§4.7)."""
    r.crc = 0  # §4.7: every byte before METADATA_CRC's field
    head = r.read_upto(len(SIGNATURE) + 2)
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
    protected = minor >= PROTECTED_VERSION_MINOR
    parts = _HeadParts((major, minor))
    contents = []  # the blocks' content checks, run as read (<= 1.4) or after METADATA_CRC
    crc_checked = False
    index = 0
    seen: set[str] = set()
    while True:  # one metadata block (§4.1) a turn
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
        if kind == BlockType.METADATA_CRC and not block_header.is_last:
            raise FormatError("METADATA_CRC must be the last metadata block",
                              structure="metadata block header", offset=offset, section="§4.7")
        _check_block_length(kind, name, length, body_offset)
        # What the block header alone decides is checked above; nothing of the body is believed
        # before the lines below.
        if kind == BlockType.METADATA_CRC:
            expected = r.crc
            stored = int.from_bytes(r.read(length, "METADATA_CRC"), "big")
            if stored != expected:
                raise IntegrityError(f"metadata CRC-32 mismatch: 0x{stored:08x} stored, the "
                                     f"metadata has 0x{expected:08x}", structure="METADATA_CRC",
                                     offset=body_offset, section="§4.7")
            crc_checked = True
        elif kind not in _PARSED_BLOCKS:  # PADDING, reserved: skipped, not held
            r.skip(length, f"metadata block type {kind}")
        else:
            body = r.read(length, f"metadata block type {kind}")
            if protected:
                contents.append((kind, body, body_offset))
            else:
                parts.take(kind, body, body_offset)
        parts.blocks.append((name, offset, length))
        index += 1
        if block_header.is_last:
            break
    r.crc = None
    if protected and not crc_checked:
        raise IntegrityError(f"the metadata of a {major}.{minor} stream ends without "
                             "METADATA_CRC (a damaged block type or is_last)",
                             structure="metadata block header", offset=offset, section="§4.1")
    for content in contents:  # 1.5: only now, with every byte checked (§4.1)
        parts.take(*content)
    info = parts.info
    info.blocks = parts.blocks
    info.first_frame_offset = r.offset
    return StreamHead(info, parts.embedded_models, head)


class _HeadParts:
    """What the metadata blocks say, gathered block by block as their content is checked."""

    def __init__(self, version: tuple[int, int]):
        self.version = version
        self.info: StreamInfo | None = None
        self.embedded_models: list[bytes] = []
        self.blocks: list[tuple[str, int, int]] = []

    def take(self, kind: int, body: bytes, body_offset: int) -> None:
        """Check one block's content (§4.2-§4.6) and keep what it says."""
        info = self.info
        if kind == BlockType.MODEL_DATA:
            self.embedded_models.append(body)
        elif kind == BlockType.STREAMINFO:
            self.info = _stream_info(body, body_offset, self.version)
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


def _stream_info(body: bytes, offset: int, version) -> StreamInfo:
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
    if kind == BlockType.METADATA_CRC and length != METADATA_CRC_LENGTH:
        raise FormatError(f"METADATA_CRC must be {METADATA_CRC_LENGTH} bytes, found {length}",
                          structure="METADATA_CRC", offset=offset, section="§4.7")


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


_READ_CHUNK = 1 << 20


class Reader:
    """Strict reads: a short read is a TruncatedError naming the structure and offset.

    Bytes can be pushed back (``unread``) so that ``--keep-going`` can rescan a damaged frame.
    """

    def __init__(self, fileobj: BinaryIO):
        self.file = fileobj
        self.offset = 0
        self.pushback = bytearray()
        self.recording: bytearray | None = None
        self.crc: int | None = None  # while not None, the CRC-32 of every byte read (§4.7)
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
        if self.crc is not None:
            self.crc = crc32(out, self.crc)
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


def reseal(stream: bytes) -> bytes:
    """``stream`` with its METADATA_CRC (§4.7) made anew over the metadata as it now stands:
    for whoever rewrites metadata in place (a tag editor), and for tests that damage one field
    on purpose and want the check behind the CRC to see it. Block headers are followed by their
    lengths without any other check; a stream without METADATA_CRC comes back unchanged."""
    at = len(SIGNATURE) + 2
    while at + 4 <= len(stream):
        header = grammar.BlockHeader.parse(stream[at:at + 4])
        if header.block_type == BlockType.METADATA_CRC:
            crc = crc32(stream[:at + 4]).to_bytes(METADATA_CRC_LENGTH, "big")
            return stream[:at + 4] + crc + stream[at + 4 + METADATA_CRC_LENGTH:]
        if header.is_last:
            break
        at += 4 + header.length
    return stream
