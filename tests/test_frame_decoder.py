"""The frame decoder on its own (vaelac.frame_decoder.decode_frame): frames found by their offsets
decode to what the stream decoder hands out, with the same errors, without a stream object."""

import hashlib
import io
from pathlib import Path

import pytest

from vaelac.decoder import StreamDecoder
from vaelac.frame_decoder import decode_frame
from vaelac.spec.errors import VaeError
from vaelac.stream_head import Reader, read_head

VECTORS = Path(__file__).resolve().parents[1] / "conformance" / "vectors"
# every subframe type between them: level 8's cascades and least squares, a learned model
# (found among the well-known ones, and embedded), LOSSY, VERBATIM, unknown length, seek table
STREAMS = ["subset/model_default.vae", "subset/model_embedded.vae", "uncommon/lossy.vae",
           "subset/subframe_ols_cascade_stereo.vae", "subset/subframe_mixed_cascade_stereo.vae",
           "subset/subframe_cascade.vae", "subset/subframe_predicted.vae",
           "subset/subframe_verbatim.vae", "subset/subframe_constant.vae",
           "uncommon/unknown_length.vae", "subset/seektable.vae", "subset/mode_mid_side_24bit.vae",
           "uncommon/wasted_bits.vae"]


def _frames(data: bytes):
    dec = StreamDecoder(io.BytesIO(data))
    dec.keep_frame_infos = True
    images = []
    while (image := dec.read_frame_image()) is not None:
        images.append(bytes(image))
    return dec, images


@pytest.mark.parametrize("name", STREAMS)
def test_frames_decoded_one_by_one_are_what_the_stream_decoder_hands_out(name):
    data = (VECTORS / name).read_bytes()
    dec, images = _frames(data)
    head = read_head(Reader(io.BytesIO(data)))
    md5 = hashlib.md5()
    for frame, image in zip(dec.frames, images, strict=True):
        out = decode_frame(data[frame.offset:], head.info, head.find_model, index=frame.index,
                           offset=frame.offset)
        assert bytes(out.image) == image
        assert out.info == frame
        assert len(out.samples) == frame.sample_count * head.info.channels
        md5.update(out.image)
    if head.info.pcm_md5 is not None:
        assert md5.digest() == head.info.pcm_md5


def _stream_error(data: bytes) -> VaeError:
    with pytest.raises(VaeError) as caught:
        _frames(data)
    return caught.value


@pytest.mark.parametrize("where", ["header", "payload", "crc"])
def test_a_damaged_or_cut_frame_is_the_stream_decoders_error(where):
    """One byte changed in frame 1 (its header's CRC-8, a payload byte, its CRC-32), or the
    stream cut inside it: the same class and message, whether the frame is decoded alone or in
    the stream."""
    data = (VECTORS / "subset/subframe_mixed_cascade_stereo.vae").read_bytes()
    dec, _ = _frames(data)
    frame = dec.frames[1]
    at = {"header": frame.offset + 3, "payload": frame.offset + 20,
          "crc": frame.offset + frame.size - 1}[where]
    info = dec.info
    for damaged in (data[:at] + bytes([data[at] ^ 0x10]) + data[at + 1:], data[:at]):
        expected = _stream_error(damaged)
        with pytest.raises(VaeError) as caught:
            decode_frame(damaged[frame.offset:], info, index=1, offset=frame.offset)
        assert type(caught.value) is type(expected)
        assert str(caught.value) == str(expected)


@pytest.mark.parametrize("name", STREAMS)
def test_frames_checked_in_place_decode_into_one_buffer(name):
    """check_frame takes each frame where it lies in the whole stream (a memoryview, no copy
    of what follows) and FrameDecoder.decode_into writes its samples into slices of buffers
    the caller holds: one image of the whole stream, the stream decoder's bytes, its MD5."""
    from array import array

    from vaelac.frame_decoder import FrameDecoder, check_frame

    data = (VECTORS / name).read_bytes()
    dec, images = _frames(data)
    head = read_head(Reader(io.BytesIO(data)))
    info = head.info
    width = (info.bits_per_sample + 7) // 8
    decoder = FrameDecoder(info, head.find_model)
    view = memoryview(data)
    image = bytearray(b"\xaa" * sum(map(len, images)))
    pcm = memoryview(array("i", bytes(4 * info.frame_length * info.channels)))
    done = 0
    for frame in dec.frames:
        checked = check_frame(view, info, index=frame.index, first_sample=frame.first_sample,
                              offset=frame.offset, start=frame.offset)
        assert (checked.count, checked.first_sample) == (frame.sample_count,
                                                          frame.first_sample)
        n = checked.count * info.channels
        types = decoder.decode_into(checked, pcm[:n],
                                    memoryview(image)[done * width:(done + n) * width])
        assert types == frame.subframe_types
        done += n
    assert bytes(image) == b"".join(images)
    if info.pcm_md5 is not None:
        assert hashlib.md5(image).digest() == info.pcm_md5


@pytest.mark.parametrize("where", ["header", "payload", "crc"])
def test_a_damaged_or_cut_frame_checked_in_place_is_the_stream_decoders_error(where):
    """check_frame on a frame inside the whole stream (``start``) reports a damaged or cut
    frame 1 as the stream decoder does: same class, same message, same offsets."""
    from vaelac.frame_decoder import check_frame

    data = (VECTORS / "subset/subframe_mixed_cascade_stereo.vae").read_bytes()
    dec, _ = _frames(data)
    frame = dec.frames[1]
    at = {"header": frame.offset + 3, "payload": frame.offset + 20,
          "crc": frame.offset + frame.size - 1}[where]
    for damaged in (data[:at] + bytes([data[at] ^ 0x10]) + data[at + 1:], data[:at]):
        expected = _stream_error(damaged)
        with pytest.raises(VaeError) as caught:
            check_frame(memoryview(damaged), dec.info, index=1,
                        first_sample=frame.first_sample, offset=frame.offset,
                        start=frame.offset)
        assert type(caught.value) is type(expected)
        assert str(caught.value) == str(expected)
