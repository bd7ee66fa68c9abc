"""Training (vaelac train), per-file adaptation (encode --adapt) and the paper's lossy codec
(encode --lossy): reproducible, lossless where promised, and never called lossless when not."""

import dataclasses
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import vaelac
from vaelac.model import default_model, load_model
from vaelac.spec.constants import ModelKind
from vaelac.wav import WavFormat, WavWriter, read_wav

torch = pytest.importorskip("torch", reason="training needs the train extra (torch)")
pytest.importorskip("audiomentations", reason="training needs the train extra (audiomentations)")

DEMO = Path(vaelac.__file__).parent / "data" / "demo.wav"


def _clip(tmp_path, seconds=1.5, name="clip.wav"):
    pcm, fmt = read_wav(DEMO)
    part = pcm[44100:44100 + int(seconds * fmt.sample_rate)]
    path = tmp_path / name
    with open(path, "wb") as f:
        writer = WavWriter(f, WavFormat(fmt.sample_rate, fmt.channels, 16, 16, 0, len(part)))
        writer.write(part)
        writer.close()
    return path, part


def _vaelac(*args, check=True):
    return subprocess.run([sys.executable, "-m", "vaelac", *map(str, args)], capture_output=True,
                          text=True, check=check)


def test_training_is_reproducible_and_records_its_command(tmp_path):
    clip, _ = _clip(tmp_path)
    outputs = []
    for run in ("a", "b"):
        out = tmp_path / f"{run}.vaem"
        _vaelac("train", clip, "-o", out, "--epochs", 2, "--augment-copies", 1, "--name", "tiny",
                "-q")
        outputs.append(out.read_bytes())
    # Same data, seed and thread count: the same model; only the recorded command (which
    # names the output file) differs.
    first, second = (load_model(data) for data in outputs)
    assert first.prior.tobytes() == second.prior.tobytes()
    for a, b in zip(first.encoder + first.decoder, second.encoder + second.decoder):
        assert np.array_equal(a.weights, b.weights) and np.array_equal(a.biases, b.biases)
        assert a.shift == b.shift
    model = first
    record = json.loads(model.description)
    assert model.name == "tiny" and model.kind == ModelKind.RESIDUAL
    assert record["hyperparameters"]["epochs"] == 2 and "vaelac train" in record["command"]
    other = tmp_path / "c.vaem"
    _vaelac("train", clip, "-o", other, "--epochs", 2, "--seed", 1, "--name", "tiny", "-q")
    assert not np.array_equal(load_model(other.read_bytes()).decoder[0].weights,
                              first.decoder[0].weights)


def _model_subframes(stream: bytes) -> int:
    dec = vaelac.StreamDecoder(io.BytesIO(stream))
    dec.keep_frame_infos = True
    for _ in dec:
        pass
    return sum(f.subframe_types.count(64) for f in dec.frames)


def test_a_trained_model_codes_exactly_from_its_own_file(tmp_path, monkeypatch):
    from vaelac import encoder as encoder_module

    clip, pcm = _clip(tmp_path)
    model_path = tmp_path / "m.vaem"
    _vaelac("train", clip, "-o", model_path, "--epochs", 1, "-q")
    out = tmp_path / "x.vae"
    _vaelac("encode", clip, "-o", out, "--model", model_path, "-q")
    info = vaelac.info(out)
    # embedded when a subframe uses it (issue 21 item 5); a one-epoch model may not pay
    used = _model_subframes(out.read_bytes()) > 0
    assert info.model_name == "m" and ("MODEL_DATA" in [b[0] for b in info.blocks]) == used
    assert np.array_equal(vaelac.read(out, always_2d=True)[0], pcm)
    # every predicted subframe through the model (whatever it costs), decoded from the
    # stream alone: the model file codes exactly
    original = encoder_module._ChannelAnalysis.predicted_bests
    monkeypatch.setattr(encoder_module._ChannelAnalysis, "predicted_bests", lambda self: [
        dataclasses.replace(best, cost=best.cost + (10**5 << 19)) for best in original(self)])
    buf = io.BytesIO()
    enc = vaelac.StreamEncoder(buf, 44100, pcm.shape[1], 16, level=4, model=str(model_path))
    enc.write(pcm)
    enc.close()
    monkeypatch.undo()
    forced = buf.getvalue()
    assert _model_subframes(forced) > 0
    assert "MODEL_DATA" in [b[0] for b in vaelac.info(io.BytesIO(forced)).blocks]
    assert np.array_equal(vaelac.decode(forced, always_2d=True)[0], pcm)


def test_train_refuses_an_empty_folder_in_one_line(tmp_path):
    r = _vaelac("train", tmp_path, "-o", tmp_path / "m.vaem", check=False)
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "no .wav files" in r.stderr
    assert not (tmp_path / "m.vaem").exists()


@pytest.mark.skipif(default_model() is None, reason="no default model shipped")
def test_adapt_is_lossless_and_keeps_the_adapted_model_only_when_smaller(tmp_path):
    clip, pcm = _clip(tmp_path, seconds=3)
    plain, adapted = tmp_path / "plain.vae", tmp_path / "adapted.vae"
    _vaelac("encode", clip, "-o", plain, "-q")
    r = _vaelac("encode", clip, "-o", adapted, "--adapt")
    assert "adapted model" in r.stderr
    kept = "adapted model kept" in r.stderr
    info = vaelac.info(adapted)
    blocks = [b[0] for b in info.blocks]
    assert ("MODEL_DATA" in blocks) == kept
    assert adapted.stat().st_size <= plain.stat().st_size
    assert np.array_equal(vaelac.read(adapted, always_2d=True)[0], pcm)


def test_lossy_streams_decode_to_what_the_encoder_rebuilt_and_say_lossy(tmp_path):
    clip, pcm = _clip(tmp_path)
    lossy_model = tmp_path / "lossy.vaem"
    _vaelac("train", clip, "--lossy", "-o", lossy_model, "--epochs", 2, "--block", 64,
            "--blocks-per-file", 200, "-q")
    out = tmp_path / "x.vae"
    _vaelac("encode", clip, "-o", out, "--lossy", lossy_model, "-V", "-q")
    info = vaelac.info(out)
    assert info.lossy and info.model_name == "lossy"
    decoded = vaelac.read(out, always_2d=True)[0]  # the MD5 (of the rebuilt audio) is checked
    assert decoded.shape == pcm.shape and not np.array_equal(decoded, pcm)
    test = _vaelac("test", out)
    assert "lossy" in test.stdout and "lossless" not in test.stdout
    embedded = sum(length + 4 for name, _, length in info.blocks if name == "MODEL_DATA")
    assert out.stat().st_size - embedded < clip.stat().st_size / 4
