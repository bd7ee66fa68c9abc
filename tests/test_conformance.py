"""The conformance kit: vectors are reproducible, the reference passes, and broken decoders fail."""

import io
import json
import zlib
from pathlib import Path

import numpy as np
import pytest

import vaelac
from vaelac.conformance import generate, runner
from vaelac.conformance._kit import crc8, pcm_md5, read_wav, write_wav
from vaelac.spec import container as g

MANIFEST = json.loads((generate.VECTORS / "manifest.json").read_text())


def test_vectors_match_a_fresh_build():
    assert generate.main(["--check"]) == 0


def test_vectors_are_small_and_cover_the_three_categories():
    total = sum(p.stat().st_size for p in generate.VECTORS.rglob("*.vae"))
    assert total < 3 * 2**20
    categories = {e["category"] for e in MANIFEST["vectors"].values()}
    assert categories == {"subset", "uncommon", "faulty"}


@pytest.mark.parametrize("path", [p for p, e in MANIFEST["vectors"].items()
                                  if e["expect"] == "reject"])
def test_every_faulty_vector_raises_its_named_error_in_the_reference(path):
    entry = MANIFEST["vectors"][path]
    with pytest.raises(getattr(vaelac, entry["error"])):
        vaelac.decode((generate.VECTORS / path).read_bytes())


def _reference(src, dst):
    pcm, info = vaelac.decode(Path(src).read_bytes())
    write_wav(dst, pcm, info.sample_rate, info.bits_per_sample)


def flips_a_sample(src, dst):
    pcm, info = vaelac.decode(Path(src).read_bytes())
    if pcm.size:
        pcm = pcm.copy()
        pcm.flat[pcm.size // 2] ^= 1
    write_wav(dst, pcm, info.sample_rate, info.bits_per_sample)


def drops_the_last_sample(src, dst):
    pcm, info = vaelac.decode(Path(src).read_bytes())
    write_wav(dst, pcm[:-1], info.sample_rate, info.bits_per_sample)


def ignores_crcs(src, dst):
    """Recomputes every frame's CRCs before decoding, so damaged frames pass."""
    data = Path(src).read_bytes()
    try:
        start = vaelac.info(io.BytesIO(data)).first_frame_offset
    except vaelac.VaeError:
        return _reference(src, dst)
    out, pos = bytearray(data[:start]), start
    while pos + 14 <= len(data):
        head = g.FrameHeader.parse(data[pos:pos + 14])
        end = pos + 14 + head.payload_length + 4
        frame = bytearray(data[pos:end])
        if len(frame) >= 18:
            frame[13] = crc8(bytes(frame[:13]))
            frame[-4:] = zlib.crc32(bytes(frame[:-4])).to_bytes(4, "big")
        out += frame
        pos = end
    out += data[pos:]
    pcm, info = vaelac.decode(bytes(out))
    write_wav(dst, pcm, info.sample_rate, info.bits_per_sample)


def mishandles_24_bit(src, dst):
    pcm, info = vaelac.decode(Path(src).read_bytes())
    bits = info.bits_per_sample
    if bits == 24:
        pcm, bits = pcm >> 8, 16
    write_wav(dst, pcm, info.sample_rate, bits)


def swaps_channels(src, dst):
    pcm, info = vaelac.decode(Path(src).read_bytes())
    if pcm.shape[1] >= 2:
        pcm = pcm[:, [1, 0] + list(range(2, pcm.shape[1]))]
    write_wav(dst, pcm, info.sample_rate, info.bits_per_sample)


def test_the_reference_decoder_passes_every_vector(tmp_path):
    cases = runner.check_vectors(_reference, tmp_path, timeout=60)
    assert [c for c in cases if not c.passed] == []


@pytest.mark.parametrize("broken, caught_by", [
    (flips_a_sample, "decoded samples differ"),
    (drops_the_last_sample, "format (rate, channels, bits, frames)"),
    (ignores_crcs, "accepted a faulty stream (frame CRC-32 mismatch in a VERBATIM"),
    (mishandles_24_bit, "expected (96000, 2, 24"),
    (swaps_channels, "decoded samples differ"),
])
def test_broken_decoders_are_caught_and_named(tmp_path, broken, caught_by):
    failed = [c for c in runner.check_vectors(broken, tmp_path, timeout=60) if not c.passed]
    assert failed, f"{broken.__name__} passed every vector"
    assert any(caught_by in c.reason for c in failed), [c.reason for c in failed][:5]
    assert all(c.name for c in failed)


def test_swapped_channels_are_caught_on_the_stereo_vectors(tmp_path):
    failed = {c.name.split(" ")[0] for c in runner.check_vectors(swaps_channels, tmp_path, 60)
              if not c.passed}
    assert "subset/mode_left_side.vae" in failed


def test_the_reference_cli_passes_a_quick_run_with_round_trips(tmp_path):
    report = runner.run(runner.REFERENCE_DECODER, runner.REFERENCE_ENCODER, quick=True, seed=7,
                        out_dir=tmp_path)
    assert report.ok, [(c.name, c.reason) for c in report.failed]
    assert sum(c.group == "roundtrip" for c in report.cases) == 3


def test_a_round_trip_failure_is_shrunk_and_written_to_disk(tmp_path):
    report = runner.run(drops_the_last_sample, None, quick=True, seed=3, out_dir=tmp_path)
    trip = [c for c in report.cases if c.group == "roundtrip"][0]
    assert not trip.passed and "minimal failing case" in trip.reason
    assert (tmp_path / "failure-reference-encoder→decoder" / "case.wav").exists()


def test_kit_wav_and_md5_are_independent_of_the_codec(tmp_path):
    pcm = np.array([[0, -1], [2**23 - 1, -(2**23)]], np.int64)
    write_wav(tmp_path / "x.wav", pcm, 48000, 24)
    back, rate, bits = read_wav(tmp_path / "x.wav")
    assert back.tolist() == pcm.tolist() and (rate, bits) == (48000, 24)
    assert pcm_md5(pcm, 24) == vaelac.decode(vaelac.encode(pcm, 48000, bits=24))[1].pcm_md5.hex()


def test_round_trips_on_real_recordings_changed_by_audiomentations(tmp_path, corpus_dir):
    pytest.importorskip("audiomentations", reason="audiomentations not installed (train extra)")
    from vaelac.conformance.runner import _transform

    pcm, rate, bits = read_wav(sorted(corpus_dir.glob("*.wav"))[0])
    name, changed = _transform(pcm[:4000], rate, bits, seed=1)
    assert name == "audiomentations" and changed.shape == pcm[:4000].shape
    assert not np.array_equal(changed, pcm[:4000])
    report = runner.run(_reference, None, quick=True, seed=11, out_dir=tmp_path, corpus=corpus_dir)
    assert report.ok, [(c.name, c.reason) for c in report.failed]


def test_a_seed_replays_the_same_cases(tmp_path):
    seen = []

    def recording(src, dst):
        seen.append(Path(src).read_bytes())
        _reference(src, dst)

    runner._roundtrip_cases(runner.REFERENCE_ENCODER, recording, "a", tmp_path, 3, 42, 60, [])
    first, seen[:] = list(seen), []
    runner._roundtrip_cases(runner.REFERENCE_ENCODER, recording, "b", tmp_path, 3, 42, 60, [])
    assert seen == first and len(first) == 3
