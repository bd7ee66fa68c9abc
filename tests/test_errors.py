"""Bad input ends in the documented error, never another exception (spec §9)."""

import io
import zlib

import numpy as np
import pytest

import vaelac
from vaelac.stream_head import reseal
from vaelac.spec import container as grammar
from _signals import make_signal


def _stream(n=300, channels=2, bits=16, frame_length=128, kind="walk"):
    pcm = make_signal(kind, n, channels, bits, seed=11)
    buf = io.BytesIO()
    enc = vaelac.StreamEncoder(buf, 44100, channels, bits, total_samples=n,
                               frame_length=frame_length, tags={"TITLE": "x"})
    enc.write(pcm)
    enc.close()
    return buf.getvalue(), pcm


def _first_frame_offset(stream):
    return vaelac.decode(stream)[1].first_frame_offset


def _refresh_crcs(frame: bytes) -> bytes:
    """Recompute a frame's CRC-8 and CRC-32 after a deliberate edit (independent CRC-8)."""
    def crc8(data):
        crc = 0
        for byte in data:
            crc ^= byte
            for _ in range(8):
                crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
        return crc
    head = frame[:13] + bytes([crc8(frame[:13])])
    body = head + frame[14:-4]
    return body + zlib.crc32(body).to_bytes(4, "big")


def test_garbage_is_not_a_vae_stream():
    with pytest.raises(vaelac.NotVaeError):
        vaelac.decode(b"RIFF\x00\x00\x00\x00WAVEfmt ")


def test_text_mode_damage_to_the_signature_is_named():
    stream, _ = _stream()
    with pytest.raises(vaelac.NotVaeError, match="line endings"):
        vaelac.decode(stream.replace(b"\r\n", b"\n", 1))


def test_an_unknown_major_version_is_unsupported():
    stream, _ = _stream()
    bad = stream[:8] + bytes([2]) + stream[9:]
    with pytest.raises(vaelac.UnsupportedError):
        vaelac.decode(bad)


def test_truncation_at_every_offset_raises_a_format_error():
    stream, _ = _stream(n=200, frame_length=64)
    for cut in range(len(stream)):
        with pytest.raises(vaelac.FormatError):
            vaelac.decode(stream[:cut])


def test_truncation_inside_a_structure_is_an_eof_error():
    stream, _ = _stream()
    with pytest.raises(EOFError):
        vaelac.decode(stream[:-3])


def test_every_single_bit_flip_is_detected_or_harmless():
    stream, pcm = _stream(n=150, frame_length=64)
    undetected = 0
    for byte in range(len(stream)):
        for bit in range(8):
            damaged = bytearray(stream)
            damaged[byte] ^= 1 << bit
            try:
                out, _ = vaelac.decode(bytes(damaged))
            except vaelac.VaeError:
                continue
            undetected += 1
            # Only bytes that do not decide a sample may flip unnoticed: tag text, the seek
            # table, and the MODEL_REF of a model no subframe of this stream uses.
            assert np.array_equal(out, pcm)
    info = vaelac.decode(stream)[1]
    model_ref = sum(length for name, _, length in info.blocks if name == "MODEL_REF")
    assert undetected < 8 * (64 + model_ref)


def test_frame_crc_mismatch_is_an_integrity_error():
    stream, _ = _stream()
    start = _first_frame_offset(stream)
    bad = bytearray(stream)
    bad[start + 20] ^= 0x10
    with pytest.raises(vaelac.IntegrityError, match="CRC-32"):
        vaelac.decode(bytes(bad))


def test_header_crc_mismatch_is_an_integrity_error():
    stream, _ = _stream()
    start = _first_frame_offset(stream)
    bad = bytearray(stream)
    bad[start + 13] ^= 0xFF
    with pytest.raises(vaelac.IntegrityError, match="CRC-8"):
        vaelac.decode(bytes(bad))


def test_pcm_md5_mismatch_is_an_integrity_error():
    stream, _ = _stream()
    md5_at = 10 + 4 + 24  # signature+version, block header, STREAMINFO fields before pcm_md5
    bad = bytearray(stream)
    bad[md5_at] ^= 1
    with pytest.raises(vaelac.IntegrityError, match="METADATA_CRC"):
        vaelac.decode(bytes(bad))
    with pytest.raises(vaelac.IntegrityError, match="MD5"):  # behind a made-good CRC (§4.7)
        vaelac.decode(reseal(bytes(bad)))


def _edit_first_frame(stream, edit):
    start = _first_frame_offset(stream)
    head = grammar.FrameHeader.parse(stream[start:start + 14])
    end = start + 14 + head.payload_length + 4
    frame = _refresh_crcs(edit(bytearray(stream[start:end])))
    return stream[:start] + frame + stream[end:]


@pytest.mark.parametrize("code, error", [(6, vaelac.UnsupportedError),
                                         (66, vaelac.UnsupportedError),
                                         (127, vaelac.UnsupportedError),
                                         (200, vaelac.UnsupportedError)])
def test_reserved_and_model_subframe_types_are_rejected(code, error):
    stream, _ = _stream()

    def edit(frame):
        frame[14] = code
        return frame
    with pytest.raises(error):
        vaelac.decode(_edit_first_frame(stream, edit))


def test_a_hostile_payload_length_is_refused_before_reading():
    stream, _ = _stream()

    def edit(frame):
        frame[9:13] = (2**31).to_bytes(4, "big")
        return frame
    with pytest.raises(vaelac.LimitError):
        vaelac.decode(_edit_first_frame(stream, edit)[:200])


def test_a_wrong_sample_count_is_rejected():
    stream, _ = _stream()

    def edit(frame):
        frame[6:8] = (5).to_bytes(2, "big")
        return frame
    with pytest.raises(vaelac.FormatError, match="sample_count"):
        vaelac.decode(_edit_first_frame(stream, edit))


def test_a_declared_length_larger_than_the_stream_is_truncation():
    stream, _ = _stream(n=256)  # two whole frames of 128
    total_at = 10 + 4 + 12
    bad = reseal(stream[:total_at] + (2**63).to_bytes(8, "big") + stream[total_at + 8:])
    with pytest.raises(vaelac.TruncatedError):
        vaelac.decode(bad)


def test_trailing_garbage_after_the_last_frame_is_rejected():
    stream, _ = _stream()
    with pytest.raises(vaelac.FormatError, match="after the last frame"):
        vaelac.decode(stream + b"\0")


def test_decoded_samples_outside_the_bit_depth_are_rejected():
    # A VERBATIM subframe carrying 17-bit values in a 16-bit stream: CRCs valid, samples not.
    pcm = make_signal("noise", 50, 1, 16, seed=1)
    stream = vaelac.encode(pcm, 8000, bits=16)

    def edit(frame):
        assert frame[14] == 1  # VERBATIM
        frame[15] = 0
        return frame

    def widen(frame):
        # a constant subframe whose value is 2**15 (one past the maximum)
        head = frame[:14]
        sub = grammar.Subframe.build(dict(subframe_type=0, wasted_bits=0,
                                          body=dict(value=2**15)))
        head[9:13] = len(sub).to_bytes(4, "big")
        return head + sub + b"\0\0\0\0"
    with pytest.raises(vaelac.IntegrityError):
        vaelac.decode(_edit_first_frame(stream, widen))


@pytest.mark.parametrize("kwargs", [dict(bits=33), dict(bits=0)])
def test_formats_the_spec_cannot_carry_are_encode_errors(kwargs):
    with pytest.raises(vaelac.EncodeError):
        vaelac.encode(np.zeros((4, 1), np.int64), 8000, **kwargs)


def test_too_many_channels_and_float_input_are_encode_errors():
    with pytest.raises(vaelac.EncodeError):
        vaelac.encode(np.zeros((4, 256), np.int16), 8000)
    with pytest.raises(vaelac.EncodeError):
        vaelac.encode(np.zeros((4, 2), np.float32), 8000)
    with pytest.raises(vaelac.EncodeError, match="outside"):
        vaelac.encode(np.array([[300]], np.int16), 8000, bits=8)


def test_errors_inherit_the_builtin_they_mean():
    assert issubclass(vaelac.FormatError, ValueError)
    assert issubclass(vaelac.TruncatedError, EOFError)
    assert issubclass(vaelac.IntegrityError, vaelac.VaeError)
    assert vaelac.VaeError.__module__ == "vaelac"
