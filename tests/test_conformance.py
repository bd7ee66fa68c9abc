"""The conformance kit: vectors are reproducible, the reference passes, and broken decoders fail."""

import io
import json
import tempfile
import zlib
from pathlib import Path

import numpy as np
import pytest

import vaelac
from vaelac.conformance import generate, runner
from vaelac.decoder import StreamDecoder
from vaelac.frame_decoder import FrameDecoder
from vaelac.spec.constants import SubframeType
from vaelac.conformance._kit import crc8, pcm_md5, read_wav, write_wav
from vaelac.spec import container as g

MANIFEST = json.loads((generate.VECTORS / "manifest.json").read_text())


def test_vectors_match_a_fresh_build():
    assert generate.main(["--check"]) == 0


def test_vectors_are_small_and_cover_the_categories():
    total = sum(p.stat().st_size for p in generate.VECTORS.rglob("*.vae"))
    assert total < 3 * 2**20
    categories = {e["category"] for e in MANIFEST["vectors"].values()}
    assert categories == {"subset", "uncommon", "faulty", generate.LEGACY}
    versions = {p: (generate.VECTORS / p).read_bytes()[9] for p in MANIFEST["vectors"]}
    assert {v for p, v in versions.items() if p.startswith(generate.LEGACY)} == {4}


@pytest.mark.parametrize("path", [p for p, e in MANIFEST["vectors"].items()
                                  if e["expect"] == "reject"])
def test_every_faulty_vector_raises_its_named_error_in_the_reference(path):
    entry = MANIFEST["vectors"][path]
    with pytest.raises(getattr(vaelac, entry["error"])):
        vaelac.decode((generate.VECTORS / path).read_bytes())


def _reference(src, dst):
    pcm, info = vaelac.decode(Path(src).read_bytes(), always_2d=True)
    write_wav(dst, pcm, info.sample_rate, info.bits_per_sample)


def flips_a_sample(src, dst):
    pcm, info = vaelac.decode(Path(src).read_bytes(), always_2d=True)
    if pcm.size:
        pcm = pcm.copy()
        pcm.flat[pcm.size // 2] ^= 1
    write_wav(dst, pcm, info.sample_rate, info.bits_per_sample)


def drops_the_last_sample(src, dst):
    pcm, info = vaelac.decode(Path(src).read_bytes(), always_2d=True)
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
    pcm, info = vaelac.decode(bytes(out), always_2d=True)
    write_wav(dst, pcm, info.sample_rate, info.bits_per_sample)


def mishandles_24_bit(src, dst):
    pcm, info = vaelac.decode(Path(src).read_bytes(), always_2d=True)
    bits = info.bits_per_sample
    if bits == 24:
        pcm, bits = pcm >> 8, 16
    write_wav(dst, pcm, info.sample_rate, bits)


def swaps_channels(src, dst):
    pcm, info = vaelac.decode(Path(src).read_bytes(), always_2d=True)
    if pcm.shape[1] >= 2:
        pcm = pcm[:, [1, 0] + list(range(2, pcm.shape[1]))]
    write_wav(dst, pcm, info.sample_rate, info.bits_per_sample)


def _decode_with(decoder_class, src, dst):
    with open(src, "rb") as f:
        dec = decoder_class(f)
        parts = list(dec)
    pcm = np.concatenate(parts) if parts else np.zeros((0, dec.info.channels), np.int64)
    write_wav(dst, pcm, dec.info.sample_rate, dec.info.bits_per_sample)


class _SkipsTheMD5(StreamDecoder):
    """As many third-party decoders: the PCM MD5 is not checked (the suite must compare)."""

    def _finish(self):
        md5, self.info.pcm_md5 = self.info.pcm_md5, None
        try:
            super()._finish()
        finally:
            self.info.pcm_md5 = md5


class _TreatsModelPredictedAsPredictedFrames(FrameDecoder):
    def _need_model(self, where, subframe_type):
        if subframe_type != SubframeType.MODEL_PREDICTED:
            super()._need_model(where, subframe_type)

    def _decode_subframe(self, sub, bits, count, where, cross, previous):
        if sub.subframe_type == SubframeType.MODEL_PREDICTED:
            sub.subframe_type = SubframeType.PREDICTED
        return super()._decode_subframe(sub, bits, count, where, cross, previous)


class _TreatsModelPredictedAsPredicted(_SkipsTheMD5):
    frame_decoder_class = _TreatsModelPredictedAsPredictedFrames


class _WithoutCorrection:
    """A model whose network's output layer is zero: the latents are read, the mean is not
    used (LPC prediction only)."""

    def __init__(self, model):
        self.model = model

    def __getattr__(self, name):
        return getattr(self.model, name)

    def decoder_net(self, symbols):
        history, shift1, shift2, w1, b1, w2, _ = self.model.decoder_net(symbols)
        return history, shift1, shift2, w1, b1, np.zeros_like(w2), 0


class _IgnoresTheModelsCorrectionFrames(FrameDecoder):
    def _need_model(self, where, subframe_type):
        super()._need_model(where, subframe_type)
        if subframe_type == SubframeType.MODEL_PREDICTED and not isinstance(
                self._model, _WithoutCorrection):
            self._model = _WithoutCorrection(self._model)


class _IgnoresTheModelsCorrection(_SkipsTheMD5):
    frame_decoder_class = _IgnoresTheModelsCorrectionFrames


def treats_model_predicted_as_predicted(src, dst):
    _decode_with(_TreatsModelPredictedAsPredicted, src, dst)


def ignores_the_learned_models_correction(src, dst):
    _decode_with(_IgnoresTheModelsCorrection, src, dst)


def _subframe_types(path):
    dec = StreamDecoder(io.BytesIO((generate.VECTORS / path).read_bytes()))
    dec.keep_frame_infos = True
    for _ in dec:
        pass
    return {t for f in dec.frames for t in f.subframe_types}


DECODED = [p for p, e in MANIFEST["vectors"].items() if e["expect"] == "decode"]
WITH_MODEL_SUBFRAMES = sorted(p for p in DECODED if SubframeType.MODEL_PREDICTED in
                              _subframe_types(p))
MODEL_VECTORS = {p for p, e in MANIFEST["vectors"].items()
                 if "model" in p or "MODEL" in e["exercises"]}


@pytest.mark.parametrize("path", [p for p in DECODED
                                  if "MODEL_PREDICTED" in MANIFEST["vectors"][p]["exercises"]])
def test_vectors_said_to_exercise_the_model_hold_model_predicted_subframes(path):
    assert SubframeType.MODEL_PREDICTED in _subframe_types(path)


@pytest.mark.parametrize("broken", [treats_model_predicted_as_predicted,
                                    ignores_the_learned_models_correction])
def test_decoders_that_ignore_the_learned_model_are_caught_and_named(tmp_path, broken):
    assert {"subset/model_default.vae", "subset/model_embedded.vae"} <= set(WITH_MODEL_SUBFRAMES)
    cases = {c.name.split(" ")[0]: c for c in runner.check_vectors(broken, tmp_path, timeout=60)}
    failed = {path for path, c in cases.items() if not c.passed}
    # every vector that holds MODEL_PREDICTED subframes catches it ...
    assert set(WITH_MODEL_SUBFRAMES) <= failed, sorted(failed)
    # ... and nothing else does, but the MD5 vectors (1.5 and 1.4) these decoders do not check
    assert failed - MODEL_VECTORS == {"faulty/pcm_md5.vae",
                                      f"{generate.LEGACY}/pcm_md5.vae"}, sorted(failed)
    for path in WITH_MODEL_SUBFRAMES:
        assert "MODEL_PREDICTED" in cases[path].name or "model" in cases[path].name
        if MANIFEST["vectors"][path].get("needs_model"):
            assert "needs the learned model: vaelac-default-1" in cases[path].reason
            assert "vaelac-default-1.vaem" in cases[path].reason


def test_the_reference_decoder_passes_every_vector(tmp_path):
    cases = runner.check_vectors(_reference, tmp_path, timeout=60)
    assert [c for c in cases if not c.passed] == []


@pytest.mark.parametrize("name", sorted(p for p in MANIFEST["vectors"] if "random_parameters" in p))
def test_the_pure_python_kernels_decode_the_random_parameter_vectors(name):
    """The random-parameter vectors' MD5 comes from the reference decoder (with its compiled
    kernels); the C decoder of conformance/c-decoder confirms it (test_c_decoder.py), and so
    does the pure-Python twin of the kernels, a third implementation of §6.3-§6.6."""
    import os
    import subprocess
    import sys

    env = dict(os.environ, VAELAC_PURE_PYTHON="1")
    proc = subprocess.run([sys.executable, "-m", "vaelac", "test", str(generate.VECTORS / name)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0 and "MD5 checked" in proc.stdout, proc.stdout + proc.stderr
    assert MANIFEST["vectors"][name]["pcm_md5"]  # and the stream's MD5 is the manifest's:
    stream = (generate.VECTORS / name).read_bytes()
    assert stream[38:54].hex() == MANIFEST["vectors"][name]["pcm_md5"]


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
    assert [c.name.split(" (")[0] for c in report.cases if c.group == "faulty"] == [
        "damaged streams rejected"]


def test_a_round_trip_failure_is_shrunk_and_written_to_disk(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # no --out-dir: a fresh folder
    logged = []
    report = runner.run(drops_the_last_sample, None, quick=True, seed=3, log=logged.append)
    trip = [c for c in report.cases if c.group == "roundtrip"][0]
    assert not trip.passed and "minimal failing case" in trip.reason
    [work] = tmp_path.glob("vaelac-conformance-*")  # kept, because something failed
    assert logged[-1] == f"work files and minimal failing cases kept in {work}"
    keep = work / "failure-reference-encoder→decoder"
    assert (keep / "case.wav").exists() and (keep / "case.vae").exists()
    assert str(keep / "case.wav") in trip.reproduce and str(keep / "case.vae") in trip.reproduce


def leaves_output_behind_on_failure(src, dst):
    Path(dst).write_bytes(b"RIFF")  # starts writing before it knows the stream is sound
    _reference(src, dst)


def salvages_damaged_streams(src, dst):
    """Decodes what it can (keep-going) and reports success."""
    try:
        _reference(src, dst)
    except vaelac.VaeError:
        with open(src, "rb") as f:
            dec = StreamDecoder(f, keep_going=True)
            parts = list(dec)
        pcm = np.concatenate(parts) if parts else np.zeros((0, dec.info.channels), np.int64)
        write_wav(dst, pcm, dec.info.sample_rate, dec.info.bits_per_sample)


def test_the_reference_rejects_generated_damaged_streams(tmp_path):
    cases = runner._faulty_cases(_reference, tmp_path, 30, 5, 60)
    assert [c.passed for c in cases] == [True], cases
    assert "30 cases" in cases[0].name


@pytest.mark.parametrize("broken, caught_by", [
    (leaves_output_behind_on_failure, "exited non-zero but left an output file"),
    (salvages_damaged_streams, "accepted a damaged stream (exit 0)"),
])
def test_decoders_that_accept_damage_or_leave_output_are_caught(tmp_path, broken, caught_by):
    cases = runner._faulty_cases(broken, tmp_path, 10, 5, 60)
    assert len(cases) == 1 and not cases[0].passed
    assert cases[0].reason.startswith("minimal failing case: " + caught_by), cases[0].reason
    assert (tmp_path / "failure-faulty" / "faulty.vae").exists()
    assert "faulty.vae" in cases[0].reproduce


def test_damage_is_fatal_by_the_spec():
    stream = vaelac.encode(np.arange(-3000, 3000, dtype=np.int16).reshape(-1, 2), 8000)
    first = vaelac.info(io.BytesIO(stream)).first_frame_offset
    for damage in runner.DAMAGES:
        for where in (0, 1, 7, 2**20 + 5, 2**31 - 1):
            what, bad = runner._damage(stream, first, damage, where)
            assert bad != stream and what
            if damage == "bit flip in a frame":
                assert sum(a != b for a, b in zip(bad, stream)) == 1
                assert [i for i, (a, b) in enumerate(zip(bad, stream)) if a != b][0] >= first
            with pytest.raises(vaelac.VaeError):
                vaelac.decode(bad)


def test_kit_wav_and_md5_are_independent_of_the_codec(tmp_path):
    pcm = np.array([[0, -1], [2**23 - 1, -(2**23)]], np.int64)
    write_wav(tmp_path / "x.wav", pcm, 48000, 24)
    back, rate, bits = read_wav(tmp_path / "x.wav")
    assert back.tolist() == pcm.tolist() and (rate, bits) == (48000, 24)
    assert pcm_md5(pcm, 24) == vaelac.decode(vaelac.encode(pcm, 48000, bits=24))[1].pcm_md5.hex()


def test_round_trips_on_real_recordings_changed_by_audiomentations(tmp_path, corpus_dir,
                                                                    monkeypatch):
    pytest.importorskip("audiomentations", reason="audiomentations not installed (train extra)")
    from vaelac.conformance.runner import _transform

    rows = [line.split("\t") for line in (corpus_dir / "MANIFEST.tsv").read_text().splitlines()]
    stereo = [corpus_dir / r[0] for r in rows[1:] if len(r) > 4 and r[4] == "2"][0]
    pcm, rate, bits = read_wav(stereo)
    name, changed = _transform(pcm[:4000], rate, bits, seed=1)
    assert name == "audiomentations" and changed.shape == pcm[:4000].shape == (4000, 2)
    assert not np.array_equal(changed, pcm[:4000])
    write_wav(tmp_path / "changed.wav", changed, rate, bits)  # any memory layout
    assert np.array_equal(read_wav(tmp_path / "changed.wav")[0], changed)
    one = tmp_path / "corpus"
    one.mkdir()
    (one / stereo.name).symlink_to(stereo)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    report = runner.run(_reference, None, quick=True, seed=11, corpus=one)
    assert report.ok, [(c.name, c.reason) for c in report.failed]
    assert list(tmp_path.glob("vaelac-conformance-*")) == []  # all passed: nothing left
    trip = [c for c in report.cases if c.group == "roundtrip"][0]
    assert "real recordings changed by audiomentations" in trip.name, trip.name


def test_a_seed_replays_the_same_cases(tmp_path):
    seen = []

    def recording(src, dst):
        seen.append(Path(src).read_bytes())
        _reference(src, dst)

    runner._roundtrip_cases(runner.REFERENCE_ENCODER, recording, "a", tmp_path, 3, 42, 60, [])
    first, seen[:] = list(seen), []
    runner._roundtrip_cases(runner.REFERENCE_ENCODER, recording, "b", tmp_path, 3, 42, 60, [])
    assert seen == first and len(first) == 3
