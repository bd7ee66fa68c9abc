"""WAV in and out, checked against the stdlib ``wave`` module where it can read the file."""

import io
import wave

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from vaelac.wav import WavError, WavFormat, WavReader, WavWriter, read_wav, write_wav
from _signals import Pipe, make_signal


@given(bits=st.integers(1, 32), channels=st.integers(1, 8), n=st.integers(0, 200),
       mask=st.sampled_from([0, 0x3, 0x3F]))
def test_write_then_read_is_exact(bits, channels, n, mask):
    pcm = make_signal("extremes" if n % 2 else "noise", n, channels, bits, seed=n)
    buf = io.BytesIO()
    w = WavWriter(buf, WavFormat(44100, channels, bits, 0, mask, n))
    w.write(pcm)
    w.close()
    buf.seek(0)
    data, fmt = read_wav(buf)
    assert np.array_equal(data, pcm)
    assert (fmt.bits_per_sample, fmt.channels, fmt.channel_mask, fmt.total_frames) == (
        bits, channels, mask, n)


@given(bits=st.integers(1, 32), channels=st.integers(1, 4), n=st.integers(0, 50))
def test_the_pcm_image_writes_the_same_file_where_it_fits(bits, channels, n):
    """write_image (the decoder's §4.2 byte image) and write (arrays) give the same file for
    whole-byte depths of 16-32 bits; elsewhere write_image refuses instead of writing."""
    from vaelac.checksum import pcm_bytes

    pcm = make_signal("extremes", n, channels, bits, seed=n)
    files = []
    for use_image in (False, True):
        buf = io.BytesIO()
        w = WavWriter(buf, WavFormat(8000, channels, bits, 0, 0, n))
        if not use_image:
            w.write(pcm)
        elif w.takes_pcm_image:
            w.write_image(pcm_bytes(pcm, bits))
        else:
            with pytest.raises(WavError):
                w.write_image(pcm_bytes(pcm, bits))
            assert bits % 8 or bits == 8
            return
        w.close()
        files.append(buf.getvalue())
    assert bits in (16, 24, 32) and files[0] == files[1]


@pytest.mark.parametrize("width", [1, 2, 3, 4])
def test_plain_pcm_agrees_with_the_stdlib_wave_module(tmp_path, width):
    pcm = make_signal("noise", 300, 2, 8 * width, seed=width)
    write_wav(tmp_path / "x.wav", pcm, 8000, 8 * width)
    with wave.open(str(tmp_path / "x.wav")) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (2, width, 8000)
        raw = w.readframes(1000)
    if width == 1:
        expected = (pcm + 128).astype(np.uint8).tobytes()
    elif width == 3:
        expected = pcm.astype("<i4").view(np.uint8).reshape(-1, 4)[:, :3].tobytes()
    else:
        expected = pcm.astype(f"<i{width}").tobytes()
    assert raw == expected


def test_unknown_length_through_pipes():
    pcm = make_signal("walk", 1000, 2, 16, seed=1)
    sink = Pipe()
    w = WavWriter(sink, WavFormat(48000, 2, 16))
    w.write(pcm)
    w.close()
    reader = WavReader(Pipe(bytes(sink.out)))
    assert reader.format.total_frames is None
    assert np.array_equal(np.concatenate(list(reader.blocks(333))), pcm)


@pytest.mark.parametrize("damage, match", [
    (lambda b: b[:30], "ends|no data"),
    (lambda b: b[:20] + b"\x03\x00" + b[22:], "IEEE float"),
    (lambda b: b"RIFX" + b[4:], "not a RIFF"),
    (lambda b: b[:-1], "early|inside"),
])
def test_malformed_wav_raises_wav_error(damage, match):
    buf = io.BytesIO()
    write_wav_buf = WavWriter(buf, WavFormat(8000, 1, 16, 0, 0, 10))
    write_wav_buf.write(np.arange(10)[:, None])
    write_wav_buf.close()
    with pytest.raises(WavError, match=match):
        read_wav(io.BytesIO(damage(buf.getvalue())))


def test_data_before_fmt_is_rejected():
    with pytest.raises(WavError, match="before the fmt"):
        read_wav(io.BytesIO(b"RIFF\x10\x00\x00\x00WAVEdata\x00\x00\x00\x00"))


def test_the_largest_sample_rate_is_writable_and_readable():
    buf = io.BytesIO()
    w = WavWriter(buf, WavFormat(2**32 - 1, 2, 24, 0, 0, 3))
    w.write(np.array([[1, -1], [2, -2], [3, -3]]))
    w.close()
    data, fmt = read_wav(io.BytesIO(buf.getvalue()))
    assert fmt.sample_rate == 2**32 - 1 and data.tolist() == [[1, -1], [2, -2], [3, -3]]
