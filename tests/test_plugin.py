"""The pydub adapter: `.vae` as a native pydub format (plugin/pydub.py)."""

import io
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import vaelac
import vaelac.plugin as plugin

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from pydub import AudioSegment


@pytest.fixture(autouse=True)
def registered():
    plugin.register()
    yield
    plugin.unregister()


def key(seg):
    return seg.channels, seg.frame_rate, seg.sample_width, seg.raw_data


def make_segment(width, channels, rate, n, seed):
    rng = np.random.default_rng(seed)
    if width == 3:
        values = rng.integers(-2**23, 2**23, n * channels)
        data = values.astype("<i4").view(np.uint8).reshape(-1, 4)[:, :3].tobytes()
    else:
        lo, hi = -(1 << (8 * width - 1)), 1 << (8 * width - 1)
        data = rng.integers(lo, hi, n * channels).astype(f"<i{width}").tobytes()
    return AudioSegment(data=data, sample_width=width, frame_rate=rate, channels=channels)


@given(width=st.sampled_from([1, 2, 3, 4]), channels=st.integers(1, 6),
       rate=st.sampled_from([1, 8000, 22050, 44100, 96000, 192000]), n=st.integers(0, 2000),
       seed=st.integers(0, 2**32 - 1))
def test_every_sample_width_round_trips_bit_for_bit(width, channels, rate, n, seed):
    assume(not (width == 3 and n == 0))  # pydub itself cannot build an empty 24-bit segment
    seg = make_segment(width, channels, rate, n, seed)
    back = AudioSegment.from_file(seg.export(format="vae"), format="vae")
    assert key(back) == key(seg)


def test_an_empty_24_bit_stream_decodes_to_an_empty_segment():
    stream = vaelac.encode(np.zeros((0, 2), np.int32), 48000, bits=24)
    seg = AudioSegment.from_file(io.BytesIO(stream), format="vae")
    assert (len(seg.raw_data), seg.channels, seg.frame_rate) == (0, 2, 48000)


def test_24_bit_is_stored_as_24_bit_and_decodes_to_pydubs_own_widening(tmp_path):
    seg = make_segment(3, 2, 48000, 500, 1)
    assert seg.sample_width == 4  # pydub widened it
    seg.export(tmp_path / "x.vae", format="vae")
    assert vaelac.info(tmp_path / "x.vae").bits_per_sample == 24
    assert key(AudioSegment.from_file(tmp_path / "x.vae")) == key(seg)
    other = AudioSegment(data=(np.arange(8, dtype="<i4") * 3).tobytes(), sample_width=4,
                         frame_rate=8000, channels=1)
    assert vaelac.info(other.export(format="vae")).bits_per_sample == 32


def test_paths_file_objects_and_sniffing(tmp_path):
    seg = make_segment(2, 2, 44100, 3000, 2)
    handle = seg.export(str(tmp_path / "a.vae"), format="vae")
    assert handle.tell() == 0 and handle.read(4) == b"\x89VAE"
    handle.close()
    assert key(AudioSegment.from_file(str(tmp_path / "a.vae"))) == key(seg)
    os.rename(tmp_path / "a.vae", tmp_path / "noext")
    assert key(AudioSegment.from_file(tmp_path / "noext")) == key(seg)
    buf = io.BytesIO()
    assert seg.export(buf, format="vae") is buf
    buf.seek(0)
    assert key(AudioSegment.from_file(buf)) == key(seg)


def test_tags_round_trip(tmp_path):
    seg = make_segment(2, 1, 8000, 100, 3)
    seg.export(tmp_path / "t.vae", format="vae", tags={"artist": "Ünïcode", "title": "x=y"})
    assert plugin.tags_of(tmp_path / "t.vae") == {"artist": "Ünïcode", "title": "x=y"}
    assert vaelac.info(tmp_path / "t.vae").tags == [("artist", "Ünïcode"), ("title", "x=y")]
    info = plugin.mediainfo(tmp_path / "t.vae")
    assert info["codec_name"] == "vae" and info["sample_rate"] == "8000"
    assert info["TAG:artist"] == "Ünïcode" and float(info["duration"]) == 100 / 8000


def test_parameters_select_the_level_and_lossy_options_warn_or_fail():
    seg = make_segment(2, 2, 44100, 20000, 4)
    fast = seg.export(format="vae", parameters=["-0"]).read()
    best = seg.export(format="vae", parameters=["--level", "8"]).read()
    assert len(best) <= len(fast)
    with pytest.warns(UserWarning, match="lossless"):
        seg.export(format="vae", bitrate="192k")
    with pytest.raises(vaelac.EncodeError, match="cover"):
        seg.export(format="vae", cover="x.jpg")
    with pytest.raises(vaelac.EncodeError, match="parameter"):
        seg.export(format="vae", parameters=["-q:a", "2"])


def test_other_formats_are_delegated_untouched(tmp_path):
    seg = make_segment(2, 2, 44100, 1000, 5)
    seg.export(tmp_path / "x.wav", format="wav")
    assert key(AudioSegment.from_file(tmp_path / "x.wav")) == key(seg)
    assert (tmp_path / "x.wav").read_bytes()[:4] == b"RIFF"


def test_register_is_idempotent_and_unregister_restores_the_originals():
    plugin.unregister()
    original_export = AudioSegment.__dict__["export"]
    original_from_file = AudioSegment.__dict__["from_file"]
    plugin.register()
    plugin.register()
    assert AudioSegment.__dict__["export"] is not original_export
    plugin.unregister()
    assert AudioSegment.__dict__["export"] is original_export
    assert AudioSegment.__dict__["from_file"] is original_from_file
    plugin.register()


def test_subclasses_stay_subclasses():
    class MySegment(AudioSegment):
        pass
    stream = make_segment(2, 1, 8000, 10, 6).export(format="vae")
    assert type(MySegment.from_file(stream, format="vae")) is MySegment


def test_pydub_idioms_on_decoded_segments():
    seg = AudioSegment.from_file(make_segment(2, 2, 44100, 44100, 7).export(format="vae"))
    edited = (seg[:300] + seg[300:]).fade_in(100) + 3
    assert key(AudioSegment.from_file(edited.export(format="vae"))) == key(edited)


def test_a_corrupt_stream_raises_the_projects_error():
    data = bytearray(make_segment(2, 1, 8000, 5000, 8).export(format="vae").read())
    data[-10] ^= 0xFF
    with pytest.raises(vaelac.IntegrityError):
        AudioSegment.from_file(io.BytesIO(bytes(data)), format="vae")


def test_a_failed_export_leaves_no_file(tmp_path):
    seg = make_segment(2, 1, 8000, 10, 9)
    with pytest.raises(vaelac.EncodeError):
        seg.export(tmp_path / "x.vae", format="vae", parameters=["-9"])
    assert list(tmp_path.iterdir()) == []


def test_works_without_ffmpeg_on_path(tmp_path):
    script = (
        "import warnings, io\n"
        "import vaelac.plugin as p; p.register()\n"
        "from pydub import AudioSegment\n"
        "seg = AudioSegment(data=bytes(range(200)), sample_width=2, frame_rate=8000, channels=1)\n"
        f"seg.export({str(tmp_path / 'x.vae')!r}, format='vae')\n"
        f"back = AudioSegment.from_file({str(tmp_path / 'x.vae')!r})\n"
        "assert back.raw_data == seg.raw_data\n"
        "print('ok')\n")
    env = dict(os.environ, PATH=str(tmp_path))
    r = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


def test_readme_example(tmp_path):
    os.chdir(tmp_path)
    # --- README "Use from pydub" ---
    import vaelac.plugin; vaelac.plugin.register()  # noqa: E702
    song = AudioSegment(data=bytes(4000), sample_width=2, frame_rate=44100, channels=2)
    song.export("song.vae", format="vae", tags={"title": "demo"})
    assert AudioSegment.from_file("song.vae") == song
