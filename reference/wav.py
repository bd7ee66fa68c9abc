"""RIFF/WAVE integer PCM in and out (WAVE_FORMAT_PCM and WAVE_FORMAT_EXTENSIBLE, RF64 reading).

Samples are handled as *valid-bit* integers: 8-bit unsigned WAV data becomes signed, and
left-justified EXTENSIBLE samples (e.g. 20 valid bits in 24) are shifted down.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO, Iterator

from .checksum import pcm_bytes
from .spec.errors import WavError

if TYPE_CHECKING:  # numpy is imported where arrays are made: vaelac decode needs none
    import numpy as np

__all__ = ["WavFormat", "WavReader", "WavWriter", "WavError", "read_wav", "write_wav"]

WAVE_FORMAT_PCM = 0x0001
WAVE_FORMAT_EXTENSIBLE = 0xFFFE
_PCM_GUID_TAIL = bytes.fromhex("000000001000800000aa00389b71")
_UNKNOWN_SIZE = 0xFFFFFFFF
_READ_CHUNK = 1 << 20


@dataclass(frozen=True)
class WavFormat:
    """What a WAV file holds: rate, channels, valid bits, container bits, mask, length."""

    sample_rate: int
    channels: int
    bits_per_sample: int
    container_bits: int = 0
    channel_mask: int = 0
    total_frames: int | None = None

    @property
    def container(self) -> int:
        return self.container_bits or 8 * ((self.bits_per_sample + 7) // 8)


class _Source:
    def __init__(self, f: BinaryIO):
        self.f = f
        self.offset = 0

    def read(self, n: int) -> bytes:
        # At most 1 MiB per call: a buffered file preallocates what read(n) asks for, and n can
        # be a hostile chunk size (a 36-byte file declaring a 4 GiB fmt chunk).
        data = self.f.read(min(n, _READ_CHUNK))
        if data is not None and len(data) < n:
            buf = bytearray(data)
            while len(buf) < n:
                more = self.f.read(min(n - len(buf), _READ_CHUNK))
                if not more:
                    break
                buf += more
            data = bytes(buf)
        data = data or b""
        self.offset += len(data)
        return data

    def exact(self, n: int, what: str) -> bytes:
        data = self.read(n)
        if len(data) != n:
            raise WavError(f"file ends inside the {what} (byte {self.offset})")
        return data

    def skip(self, n: int, what: str) -> None:
        while n > 0:
            chunk = self.read(min(n, 1 << 20))
            if not chunk:
                raise WavError(f"file ends inside the {what} chunk")
            n -= len(chunk)


class WavReader:
    """Read integer PCM frames from a WAV path or binary file object (never seeks)."""

    def __init__(self, file: str | os.PathLike | BinaryIO):
        self._owned = isinstance(file, (str, os.PathLike))
        self._file = open(file, "rb") if self._owned else file
        try:
            self._src = _Source(self._file)
            self.format = self._read_header()
        except BaseException:
            self.close()
            raise

    def _read_header(self) -> WavFormat:
        src = self._src
        head = src.read(12)
        if len(head) < 12 or head[:4] not in (b"RIFF", b"RF64") or head[8:12] != b"WAVE":
            raise WavError("not a RIFF/WAVE file")
        ds64_data = None
        fmt = None
        while True:
            chunk = src.read(8)
            if len(chunk) < 8:
                raise WavError("no data chunk found")
            cid, size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
            if cid == b"ds64":
                if size < 16:
                    raise WavError(f"ds64 chunk of {size} bytes is too short")
                body = src.exact(size + (size & 1), "ds64 chunk")
                ds64_data = struct.unpack_from("<Q", body, 8)[0]
            elif cid == b"fmt ":
                if size < 16:
                    raise WavError(f"fmt chunk of {size} bytes is too short")
                fmt = self._parse_fmt(src.exact(size + (size & 1), "fmt chunk")[:size])
            elif cid == b"data":
                if fmt is None:
                    raise WavError("data chunk before the fmt chunk")
                if size == _UNKNOWN_SIZE and ds64_data is not None:
                    size = ds64_data
                block_align = fmt["block_align"]
                if size == _UNKNOWN_SIZE:
                    total = None
                else:
                    if size % block_align:
                        raise WavError(f"data size {size} is not a multiple of the "
                                       f"{block_align}-byte frame")
                    total = size // block_align
                self._remaining = None if total is None else total * block_align
                self._block_align = block_align
                return WavFormat(fmt["rate"], fmt["channels"], fmt["valid"], fmt["container"],
                                 fmt["mask"], total)
            else:
                src.skip(size + (size & 1), cid.decode("latin-1"))

    @staticmethod
    def _parse_fmt(body: bytes) -> dict:
        tag, channels, rate, _, block_align, container = struct.unpack_from("<HHIIHH", body)
        valid, mask = container, 0
        if tag == WAVE_FORMAT_EXTENSIBLE:
            if len(body) < 40:
                raise WavError("WAVE_FORMAT_EXTENSIBLE fmt chunk is too short")
            valid, mask = struct.unpack_from("<HI", body, 18)
            guid = body[24:40]
            if guid[:2] != b"\x01\x00" or guid[4:] != _PCM_GUID_TAIL[2:]:
                raise WavError("only integer PCM WAV is supported (EXTENSIBLE subformat is not PCM)")
            valid = valid or container
        elif tag != WAVE_FORMAT_PCM:
            kind = {3: "IEEE float", 6: "A-law", 7: "mu-law"}.get(tag, f"format tag 0x{tag:04x}")
            raise WavError(f"only integer PCM WAV is supported, not {kind}")
        if channels == 0:
            raise WavError("fmt chunk declares 0 channels")
        if container not in (8, 16, 24, 32):
            raise WavError(f"{container}-bit containers are not supported")
        if not 1 <= valid <= container:
            raise WavError(f"valid bits {valid} do not fit the {container}-bit container")
        if block_align != channels * container // 8:
            raise WavError(f"block align {block_align} does not match {channels} channels "
                           f"of {container} bits")
        if rate == 0:
            raise WavError("sample rate 0")
        return dict(channels=channels, rate=rate, block_align=block_align,
                    container=container, valid=valid, mask=mask)

    def read(self, frames: int) -> np.ndarray:
        """Up to ``frames`` frames as int32 of shape (n, channels); 0 rows at the end."""
        fmt = self.format
        want = frames * self._block_align
        if self._remaining is not None:
            want = min(want, self._remaining)
        data = self._src.read(want)
        if self._remaining is not None:
            if len(data) < want:
                raise WavError(f"data chunk ends {self._remaining - len(data)} bytes early")
            self._remaining -= len(data)
        if len(data) % self._block_align:
            raise WavError("data ends inside a sample frame")
        return _unpack(data, fmt)

    def blocks(self, frames: int) -> Iterator[np.ndarray]:
        """Successive blocks of up to ``frames`` frames until the data ends."""
        while True:
            block = self.read(frames)
            if len(block) == 0:
                return
            yield block

    def __iter__(self) -> Iterator[np.ndarray]:
        return self.blocks(1 << 16)

    def close(self) -> None:
        if self._owned:
            self._file.close()

    def __enter__(self) -> "WavReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _unpack(data: bytes, fmt: WavFormat) -> np.ndarray:
    import numpy as np
    container = fmt.container
    if container == 8:
        a = np.frombuffer(data, np.uint8).astype(np.int32) - 128
    elif container == 16:
        a = np.frombuffer(data, "<i2").astype(np.int32)
    elif container == 24:
        b = np.frombuffer(data, np.uint8).reshape(-1, 3).astype(np.int32)
        a = (b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)) << 8 >> 8
    else:
        a = np.frombuffer(data, "<i4").astype(np.int32)
    shift = container - fmt.bits_per_sample
    if shift:
        if np.any(a & ((1 << shift) - 1)):
            raise WavError(f"samples have bits set below the {fmt.bits_per_sample} valid bits")
        a = a >> shift
    return a.reshape(-1, fmt.channels)


class WavWriter:
    """Write integer PCM frames as WAV to a binary file object (seekable or not)."""

    def __init__(self, fileobj: BinaryIO, fmt: WavFormat):
        if not 1 <= fmt.bits_per_sample <= 32:
            raise WavError(f"cannot write {fmt.bits_per_sample}-bit WAV")
        if not 1 <= fmt.channels <= 0xFFFF:
            raise WavError(f"cannot write {fmt.channels} channels")
        self.file = fileobj
        self.fmt = fmt
        self.container = fmt.container
        self.block_align = fmt.channels * self.container // 8
        self.extensible = (fmt.channels > 2 or fmt.bits_per_sample != self.container
                           or fmt.channel_mask != 0)
        self.frames = 0
        try:
            self._start = fileobj.tell() if fileobj.seekable() else None
        except (AttributeError, OSError):
            self._start = None
        size = None if fmt.total_frames is None else fmt.total_frames * self.block_align
        if size is not None and size + 80 > _UNKNOWN_SIZE:
            raise WavError("audio too long for a WAV file (over 4 GiB)")
        self._write_header(size)

    def _write_header(self, data_size: int | None) -> None:
        fmt = self.fmt
        byte_rate = min(fmt.sample_rate * self.block_align, _UNKNOWN_SIZE)  # informative field
        if self.extensible:
            guid = b"\x01\x00" + _PCM_GUID_TAIL
            fmt_body = struct.pack("<HHIIHHHHI", WAVE_FORMAT_EXTENSIBLE, fmt.channels,
                                   fmt.sample_rate, byte_rate,
                                   self.block_align, self.container, 22, fmt.bits_per_sample,
                                   fmt.channel_mask) + guid
        else:
            fmt_body = struct.pack("<HHIIHH", WAVE_FORMAT_PCM, fmt.channels, fmt.sample_rate,
                                   byte_rate, self.block_align,
                                   self.container)
        if data_size is None:
            riff_size = data = _UNKNOWN_SIZE
        else:
            data = data_size
            riff_size = 4 + 8 + len(fmt_body) + 8 + data_size + (data_size & 1)
        self._header_len = 12 + 8 + len(fmt_body) + 8
        self.file.write(b"RIFF" + struct.pack("<I", riff_size) + b"WAVE" + b"fmt "
                        + struct.pack("<I", len(fmt_body)) + fmt_body + b"data"
                        + struct.pack("<I", data))

    def write(self, block: np.ndarray) -> None:
        """Append frames of shape (n, channels) of valid-bit integers."""
        import numpy as np
        block = np.asarray(block)
        if block.ndim == 1:
            block = block[:, None]
        if block.shape[1] != self.fmt.channels:
            raise WavError(f"block has {block.shape[1]} channels, expected {self.fmt.channels}")
        shift = self.container - self.fmt.bits_per_sample
        a = block.astype(np.int64) << shift if shift else block
        if self.container == 8:  # 8-bit WAV is unsigned
            out = (a.astype(np.int16) + 128).astype(np.uint8).tobytes()
        else:  # little-endian two's complement: the image the PCM MD5 covers (§4.2)
            out = pcm_bytes(a, self.container)
        self.file.write(out)
        self.frames += len(block)

    @property
    def takes_pcm_image(self) -> bool:
        """Whether the data is the PCM byte image of §4.2 as it stands (whole-byte samples of
        16, 24 or 32 bits), so that :meth:`write_image` can take it."""
        return self.container == self.fmt.bits_per_sample and self.container > 8

    def write_image(self, image: bytes | bytearray) -> None:
        """Append frames given as the PCM byte image of §4.2 (see :attr:`takes_pcm_image`)."""
        if not self.takes_pcm_image or len(image) % self.block_align:
            raise WavError(f"a PCM image of {len(image)} bytes does not fit "
                           f"{self.fmt.bits_per_sample}-bit samples in a "
                           f"{self.container}-bit, {self.fmt.channels}-channel WAV")
        self.file.write(image)
        self.frames += len(image) // self.block_align

    def close(self) -> None:
        """Pad to an even size and make the header's sizes true where the file allows."""
        data_size = self.frames * self.block_align
        if data_size & 1:
            self.file.write(b"\0")
        declared = self.fmt.total_frames
        if declared is not None and declared != self.frames:
            if self._start is None:
                raise WavError(f"{self.frames} frames written, {declared} declared")
        if self._start is not None and declared != self.frames:
            if data_size + self._header_len > _UNKNOWN_SIZE:
                raise WavError("audio too long for a WAV file (over 4 GiB)")
            end = self.file.tell()
            self.file.seek(self._start)
            self._write_header(data_size)
            self.file.seek(end)


def read_wav(path: str | os.PathLike | BinaryIO) -> tuple[np.ndarray, WavFormat]:
    """The whole file: (int32 samples of shape (frames, channels), format)."""
    import numpy as np
    with WavReader(path) as reader:
        blocks = list(reader.blocks(1 << 18))
        fmt = reader.format
    data = np.concatenate(blocks) if blocks else np.zeros((0, fmt.channels), np.int32)
    return data, fmt


def write_wav(path: str | os.PathLike, data: np.ndarray, sample_rate: int, bits_per_sample: int,
              channel_mask: int = 0) -> None:
    """Write a whole array to a WAV path."""
    import numpy as np
    data = np.asarray(data)
    if data.ndim == 1:
        data = data[:, None]
    fmt = WavFormat(sample_rate, data.shape[1], bits_per_sample, 0, channel_mask, len(data))
    with open(path, "wb") as f:
        writer = WavWriter(f, fmt)
        writer.write(data)
        writer.close()
