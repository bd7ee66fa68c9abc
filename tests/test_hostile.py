"""Hostile headers (issue 6): every declared size is checked against the format and against the
bytes present before anything is allocated from it, so a tiny file fails fast and small."""

import io
import struct
import subprocess
import sys
import time
import tracemalloc

import pytest

import vaelac
from vaelac.checksum import crc8, crc32
from vaelac.decoder import StreamDecoder
from vaelac.spec import container as g
from vaelac.spec.constants import SIGNATURE, max_frame_payload_bytes
from vaelac.wav import WavReader

UNKNOWN = 2**64 - 1


def streaminfo(channels=1, bits=16, frame_length=16, total=10):
    return g.StreamInfo.build(dict(sample_rate=8000, channels=channels, bits_per_sample=bits,
                                   flags=0, reserved=0, frame_length=frame_length,
                                   total_samples=total, channel_mask=0, pcm_md5=bytes(16)))


def head(*blocks, **info):
    """Signature, version, STREAMINFO and then ``blocks`` of (type, declared length, body)."""
    items = [(0, 40, streaminfo(**info))] + list(blocks)
    out = SIGNATURE + b"\x01\x00"
    for i, (kind, length, body) in enumerate(items):
        out += g.BlockHeader.build(dict(is_last=int(i == len(items) - 1), block_type=kind,
                                        length=length)) + body
    return out


def frame(index, count, payload, *, payload_length=None, mode=0):
    h = g.FrameHeaderNoCrc.build(dict(sync=0xFFF9, frame_index=index, sample_count=count,
                                      channel_mode=mode,
                                      payload_length=len(payload) if payload_length is None
                                      else payload_length))
    body = h + bytes([crc8(h)]) + payload
    return body + crc32(body).to_bytes(4, "big")


def constant(value, channels=1):
    return g.Subframe.build(dict(subframe_type=0, wasted_bits=0, body=dict(value=value))) * channels


def measured(fn):
    """(result or exception, seconds, peak traced MiB) of fn()."""
    tracemalloc.start()
    t = time.perf_counter()
    try:
        result = fn()
    except Exception as exc:  # noqa: BLE001 - returned for the test to check
        result = exc
    took = time.perf_counter() - t
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return result, took, peak


def decode_fails(data, error, match=None, *, max_mb=4.0, max_s=1.0):
    result, took, peak = measured(lambda: vaelac.decode(data))
    assert isinstance(result, error), result
    if match:
        assert match in str(result), str(result)
    assert took < max_s and peak < max_mb, (took, peak)
    return result


@pytest.mark.parametrize("kind", [1, 3, 5, 42])
def test_a_block_declaring_16_mib_in_a_tiny_file_is_truncation_not_allocation(kind):
    data = head((kind, 2**24 - 1, b"\0" * 8))
    assert len(data) < 80
    decode_fails(data, vaelac.TruncatedError, f"metadata block type {kind}")


@pytest.mark.parametrize("kind, length, match", [
    (0, 2**24 - 1, "STREAMINFO must be 40 bytes"),
    (4, 2**24 - 1, "MODEL_REF is 33..288 bytes"),
    (4, 10, "MODEL_REF is 33..288 bytes"),
    (2, 2**24 - 1, "cannot hold a count and 16-byte seek points"),
    (3, 5, "cannot hold a vendor length and a count"),
])
def test_known_blocks_with_impossible_lengths_are_refused_before_reading(kind, length, match):
    if kind == 0:
        data = SIGNATURE + b"\x01\x00" + g.BlockHeader.build(
            dict(is_last=1, block_type=0, length=length)) + streaminfo()
    else:
        data = head((kind, length, b""))
    decode_fails(data, vaelac.FormatError, match)  # not TruncatedError: refused before reading


def test_seek_table_count_of_2_32_in_a_20_byte_block():
    body = (2**32 - 1).to_bytes(4, "big") + bytes(16)
    decode_fails(head((2, len(body), body)), vaelac.FormatError, "count 4294967295 needs")


@pytest.mark.parametrize("body, match", [
    ((2**32 - 1).to_bytes(4, "big") + bytes(8), "vendor length 4294967295 runs past"),
    (bytes(4) + (2**32 - 1).to_bytes(4, "big") + bytes(8), "4294967295 comments need"),
    (bytes(4) + (1).to_bytes(4, "big") + (2**31).to_bytes(4, "big") + b"A=b",
     "comment 0 of 2147483648 bytes runs past"),
    (bytes(4) + (1).to_bytes(4, "big") + (3).to_bytes(4, "big") + b"A=b" + b"x",
     "1 bytes left after the last comment"),
], ids=["vendor", "count", "comment", "leftover"])
def test_tag_lengths_and_counts_are_checked_against_the_block(body, match):
    decode_fails(head((3, len(body), body)), vaelac.FormatError, match)


def test_a_second_tags_or_seektable_block_is_refused():
    tags = g.Tags.build(dict(vendor="v", comments=["A=b"]))
    with pytest.raises(vaelac.FormatError, match="a second TAGS block"):
        vaelac.decode(head((3, len(tags), tags), (3, len(tags), tags), total=0))
    table = g.SeekTable.build([])
    with pytest.raises(vaelac.FormatError, match="a second SEEKTABLE block"):
        vaelac.decode(head((2, len(table), table), (2, len(table), table), total=0))


def test_skipped_blocks_are_not_held_in_memory():
    padding = bytes(2**24 - 1)  # present for real: skipped in chunks, never held whole
    data = head((1, len(padding), padding), (5, 100, bytes(100)), total=0)
    result, took, peak = measured(lambda: vaelac.decode(data))
    assert isinstance(result, tuple) and result[0].shape == (0,)  # mono: (frames,)
    assert [b[0] for b in result[1].blocks] == ["STREAMINFO", "PADDING", "MODEL_DATA"]
    assert peak < 8, peak  # the padding alone is 16 MiB


def test_the_largest_legal_payload_in_a_tiny_file_is_truncation_not_a_69_mb_read():
    limit = max_frame_payload_bytes(65535, 255)
    assert limit > 60 * 2**20
    data = head(channels=255, frame_length=65535, total=UNKNOWN) + frame(
        0, 65535, b"\0" * 10, payload_length=limit)[:-4]
    decode_fails(data, vaelac.TruncatedError, "frame payload")
    over = head(channels=255, frame_length=65535, total=UNKNOWN) + frame(
        0, 65535, b"", payload_length=limit + 1)
    decode_fails(over, vaelac.LimitError, "exceeds the limit")


def test_a_huge_total_samples_never_allocates():
    data = head(total=2**63) + frame(0, 16, constant(5))
    decode_fails(data, vaelac.TruncatedError, "16 of 9223372036854775808 samples")


def test_keep_going_fills_no_silence_for_a_total_samples_the_file_cannot_hold():
    data = head(total=2**63) + frame(0, 16, constant(5))
    dec = StreamDecoder(io.BytesIO(data), keep_going=True)
    result, took, peak = measured(lambda: sum(len(b) for b in dec))
    assert result == 16 and took < 1 and peak < 4
    assert len(dec.damage) == 1 and dec.damage[0].samples == 0
    assert "were not filled" in dec.damage[0].reason
    # a plausible declaration is still filled (frames of this stream need >= 25 bytes each)
    cut = head(total=16 * 4) + frame(0, 16, constant(5)) + bytes(200)
    dec = StreamDecoder(io.BytesIO(cut), keep_going=True)
    assert sum(len(b) for b in dec) == 64 and dec.damage[-1].samples == 48


def test_keep_going_does_not_believe_a_frame_index_the_bytes_before_it_cannot_hold():
    # frame 0 damaged, then a valid header claiming frame 60000, then the real frame 1
    f0 = bytearray(frame(0, 16, constant(1)))
    f0[-1] ^= 0xFF
    data = (head(total=UNKNOWN) + bytes(f0) + frame(60000, 16, constant(2))
            + frame(1, 16, constant(3)))
    dec = StreamDecoder(io.BytesIO(data), keep_going=True)
    pcm, took, peak = measured(lambda: [b for b in dec])
    assert took < 1 and peak < 4
    assert [len(b) for b in pcm] == [16, 16]  # silence for frame 0, then frame 1
    assert pcm[0].max() == 0 and pcm[1].min() == 3
    assert dec.damage[0].samples == 16


def test_cli_keep_going_on_a_hostile_length_is_quick_and_small(tmp_path):
    src = tmp_path / "h.vae"
    src.write_bytes(head(total=2**30) + frame(0, 16, constant(5)))  # a 2 GiB WAV if filled
    t = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "vaelac", "decode", "-F", src, "-o",
                        tmp_path / "h.wav"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 3 and time.monotonic() - t < 30
    assert "were not filled" in r.stderr
    from vaelac.wav import read_wav
    assert len(read_wav(tmp_path / "h.wav")[0]) == 16


def _riff(*chunks, riff=b"RIFF"):
    body = b"WAVE" + b"".join(chunks)
    return riff + struct.pack("<I", len(body)) + body


@pytest.mark.parametrize("data, match", [
    (_riff(b"fmt " + struct.pack("<I", 0x7FFFFFF0) + bytes(16)), "ends inside the fmt chunk"),
    (_riff(b"ds64" + struct.pack("<I", 4) + bytes(4), riff=b"RF64"), "ds64 chunk of 4 bytes"),
    (_riff(b"JUNK" + struct.pack("<I", 0xFFFFFFF0) + bytes(16)), "ends inside the JUNK chunk"),
], ids=["fmt-2GiB", "ds64-short", "junk-4GiB"])
def test_hostile_wav_chunk_sizes_fail_small(tmp_path, data, match):
    path = tmp_path / "h.wav"  # a real (buffered) file: read(n) there preallocates n bytes
    path.write_bytes(data)
    result, took, peak = measured(lambda: WavReader(path))
    assert isinstance(result, vaelac.WavError) and match in str(result), result
    assert took < 1 and peak < 4, (took, peak)


@pytest.mark.parametrize("mode, error", [(1, vaelac.FormatError), (3, vaelac.FormatError),
                                         (4, vaelac.UnsupportedError)])
def test_a_side_channel_mode_needs_two_channels_and_reserved_modes_are_unsupported(mode, error):
    """§5.1: modes 1-3 in a mono stream are malformed (FormatError, not UnsupportedError,
    which is kept for values a later version may define)."""
    data = head(channels=1, total=4) + frame(0, 4, constant(0), mode=mode)
    result = decode_fails(data, error)
    assert type(result) is error
