"""The fuzz harness (tests/fuzz/fuzz_decoder.py) in a bounded run, its seed corpus, and the
inputs it found as regression cases (tests/data/6-*)."""

import importlib.util
import io
import subprocess
import sys
import time
from pathlib import Path

import pytest

import vaelac
from vaelac.stream_head import reseal
from vaelac.decoder import StreamDecoder

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"

_spec = importlib.util.spec_from_file_location("fuzz_decoder", HERE / "fuzz" / "fuzz_decoder.py")
fz = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fz)


def test_the_seed_corpus_is_small_valid_and_varied():
    seeds = sorted((HERE / "fuzz" / "seeds").glob("*.vae"))
    # 4 KB of plain streams, 2 KB for the two CASCADE ones, 12 KB for the one that embeds the
    # shipped model file
    assert len(seeds) >= 10 and sum(p.stat().st_size for p in seeds) < 19456
    channels, bits, types, unknown = set(), set(), set(), 0
    for path in seeds:
        dec = StreamDecoder(io.BytesIO(path.read_bytes()))
        dec.keep_frame_infos = True
        for _ in dec:
            pass
        channels.add(dec.info.channels)
        bits.add(dec.info.bits_per_sample)
        types.update(t for f in dec.frames for t in f.subframe_types)
        unknown += dec.info.total_samples is None
    assert {1, 2}.issubset(channels) and max(channels) >= 6
    assert {1, 16, 32}.issubset(bits) and {0, 1, 2, 3, 4, 5, 64, 65}.issubset(types) and unknown


def test_a_bounded_fuzz_run_finds_nothing():
    """2,000 mutated inputs through decode, keep-going decode and info (a few seconds)."""
    stats = fz.fuzz(2000, seed=6, workers=1, time_limit=2.0)
    assert stats["failures"] == 0, stats["causes"]
    assert stats["clean"] == 2000 and stats["slowest_s"] < 2.0
    assert stats["rss_growth_mb"] < 64


def test_the_wav_reader_survives_a_bounded_fuzz_run():
    stats = fz.fuzz(1000, seed=6, workers=1, time_limit=2.0, target="wav")
    assert stats["failures"] == 0, stats["causes"]


def test_the_harness_reports_crashes_and_hangs(monkeypatch):
    """A planted bug must show up as a named cause (the bounded run above can fail)."""
    def planted(data, path):
        if data[:1] == b"\x89" and len(data) % 3 == 0:
            raise KeyError("planted")
        if len(data) % 7 == 0:
            time.sleep(0.2)
        fz.run_targets(data, path)

    monkeypatch.setitem(fz.TARGETS, "vae", planted)
    stats = fz.fuzz(200, seed=3, workers=1, time_limit=0.1)
    assert stats["failures"] > 0
    assert set(stats["causes"]) == {"KeyError@test_fuzz.py:planted", "hang"}


def test_a_mutated_model_file_reaches_the_model_loader():
    """A changed MODEL_DATA is damage METADATA_CRC catches (§4.7). Resealed, it no longer
    matches MODEL_REF, so the decoder takes the installed model of that hash (§8.1); with the
    hash fixed up too, the changed file is what MODEL_REF names, and the loader refuses it
    (ModelError naming §8.1): what the fuzzer's fix_model_hash then fix_crcs reach."""
    data = bytearray((HERE / "fuzz" / "seeds" / "model_embedded.vae").read_bytes())
    (kind, start, length), = [b for b in fz._blocks(data) if b[0] == 5]
    at, width = fz._model_fields(data[start:start + length])[0]  # format_version
    data[start + at] = 9
    with pytest.raises(vaelac.IntegrityError, match="METADATA_CRC"):
        vaelac.decode(bytes(data))
    vaelac.decode(reseal(bytes(data)))  # the shipped model of the original hash decodes it
    fz.fix_model_hash(data)
    fz.fix_crcs(data)
    with pytest.raises(vaelac.ModelError, match="format_version 9 is not 1"):
        vaelac.decode(bytes(data))


def test_cases_replay_exactly():
    seeds = fz.load_seeds()
    assert fz.make_case(seeds, 5, 123) == fz.make_case(seeds, 5, 123)
    assert fz.make_case(seeds, 5, 123) != fz.make_case(seeds, 5, 124)


# -- regression inputs found by the fuzzer ---------------------------------------------------

def test_regression_keep_going_silence_bomb(tmp_path):
    """98 bytes (fuzz case 99:166): a frame_index of 2**27 and total_samples 2**37. Strict
    decoding refuses the index; keep-going used to fill 2**37 samples of silence (a 550 GB
    WAV, a hang); now it fills nothing the file cannot hold and says so."""
    data = (DATA / "6-keep-going-silence-bomb.vae").read_bytes()
    with pytest.raises(vaelac.FormatError, match="frame_index 0 expected, found 134217728"):
        vaelac.decode(data)
    dec = StreamDecoder(io.BytesIO(data), keep_going=True)
    t = time.monotonic()
    assert sum(len(b) for b in dec) == 0 and time.monotonic() - t < 1
    assert "137438953472 samples still declared were not filled" in dec.damage[0].reason
    r = subprocess.run([sys.executable, "-m", "vaelac", "test", "-F",
                        DATA / "6-keep-going-silence-bomb.vae"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 3 and "DAMAGED (0 samples" in r.stdout and "not filled" in r.stderr


def test_regression_wav_short_ds64(tmp_path):
    """97 bytes (wav fuzz case 5:2589): a 12-byte ds64 chunk made the WAV reader raise
    struct.error (a traceback from ``vaelac encode``); now it is a WavError."""
    path = DATA / "6-wav-ds64-short.wav"
    from vaelac.wav import WavReader
    with pytest.raises(vaelac.WavError, match="ds64 chunk of 12 bytes is too short"):
        WavReader(path)
    r = subprocess.run([sys.executable, "-m", "vaelac", "encode", path, "-o",
                        tmp_path / "x.vae"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "ds64" in r.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("path", sorted(DATA.glob("6-*.vae")), ids=lambda p: p.name)
def test_every_regression_input_ends_in_a_vae_error_or_success_quickly(path, tmp_path):
    t = time.monotonic()
    fz.run_targets(path.read_bytes(), str(tmp_path / "info.vae"))  # raises all but VaeError
    assert time.monotonic() - t < 2
