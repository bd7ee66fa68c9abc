"""The ``vaelac`` command: round trips, one-line errors, no partial output, -f."""

import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest

from _signals import make_signal

VAELAC = [sys.executable, "-m", "vaelac"]


def run(*args, **kw):
    return subprocess.run(VAELAC + [str(a) for a in args], capture_output=True, **kw)


def _wav(path, pcm, rate=44100, width=2):
    with wave.open(str(path), "wb") as w:
        w.setnchannels(pcm.shape[1])
        w.setsampwidth(width)
        w.setframerate(rate)
        raw = (pcm.astype("<i4").view(np.uint8).reshape(-1, 4)[:, :3].tobytes() if width == 3
               else (pcm + 128).astype(np.uint8).tobytes() if width == 1
               else pcm.astype(f"<i{width}").tobytes())
        w.writeframes(raw)
    return path


@pytest.mark.parametrize("width", [1, 2, 3, 4])
def test_encode_then_decode_gives_identical_wav_samples(tmp_path, width):
    pcm = make_signal("walk", 9000, 2, 8 * width, seed=width)
    src = _wav(tmp_path / "in.wav", pcm, width=width)
    assert run("encode", src, "-o", tmp_path / "x.vae", "-V").returncode == 0
    assert run("decode", tmp_path / "x.vae", "-o", tmp_path / "out.wav").returncode == 0
    with wave.open(str(src)) as a, wave.open(str(tmp_path / "out.wav")) as b:
        assert a.getparams() == b.getparams()
        assert a.readframes(10**6) == b.readframes(10**6)
    test = run("test", tmp_path / "x.vae")
    assert test.returncode == 0 and b"MD5 checked" in test.stdout


@pytest.mark.parametrize("bits", [12, 20])
def test_depths_between_whole_bytes_decode_to_identical_samples(tmp_path, bits):
    from vaelac.wav import read_wav, write_wav

    pcm = make_signal("extremes", 5000, 3, bits, seed=bits)
    write_wav(tmp_path / "in.wav", pcm, 48000, bits)
    assert run("encode", tmp_path / "in.wav", "-o", tmp_path / "x.vae").returncode == 0
    assert run("decode", tmp_path / "x.vae", "-o", tmp_path / "out.wav").returncode == 0
    out, fmt = read_wav(tmp_path / "out.wav")
    assert fmt.bits_per_sample == bits and np.array_equal(out, pcm)


def test_stdin_to_stdout_pipeline(tmp_path):
    pcm = make_signal("sine", 3000, 1, 16, seed=1)
    src = _wav(tmp_path / "in.wav", pcm).read_bytes()
    enc = run("encode", "-", input=src)
    assert enc.returncode == 0 and enc.stdout[:4] == b"\x89VAE"
    dec = run("decode", "-", input=enc.stdout)
    assert dec.returncode == 0
    assert dec.stdout[44:] == src[44:]


def test_existing_output_is_kept_without_force(tmp_path):
    src = _wav(tmp_path / "in.wav", make_signal("noise", 100, 1, 16, seed=2))
    out = tmp_path / "x.vae"
    out.write_bytes(b"precious")
    r = run("encode", src, "-o", out)
    assert r.returncode == 1 and out.read_bytes() == b"precious"
    assert len(r.stderr.decode().strip().splitlines()) == 1
    assert run("encode", src, "-o", out, "-f").returncode == 0
    assert out.read_bytes()[:4] == b"\x89VAE"


def test_a_bad_file_gives_one_line_and_no_output(tmp_path):
    bad = tmp_path / "bad.vae"
    bad.write_bytes(b"\x89VAE\r\n\x1a\n\x01\x00" + bytes(30))
    r = run("decode", bad, "-o", tmp_path / "out.wav")
    assert r.returncode == 1
    lines = r.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vaelac: ") and "Traceback" not in lines[0]
    assert not (tmp_path / "out.wav").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["bad.vae"]


def test_a_truncated_stream_leaves_no_partial_wav(tmp_path):
    src = _wav(tmp_path / "in.wav", make_signal("walk", 40000, 2, 16, seed=3))
    assert run("encode", src, "-o", tmp_path / "x.vae").returncode == 0
    data = (tmp_path / "x.vae").read_bytes()
    (tmp_path / "cut.vae").write_bytes(data[: len(data) * 2 // 3])
    r = run("decode", tmp_path / "cut.vae", "-o", tmp_path / "out.wav")
    assert r.returncode == 1 and b"frame" in r.stderr
    assert not (tmp_path / "out.wav").exists()
    assert not any(p.name.startswith(".vaelac-") for p in tmp_path.iterdir())


def test_several_inputs_keep_going_past_a_bad_one(tmp_path):
    good = _wav(tmp_path / "a.wav", make_signal("sine", 500, 1, 16, seed=4))
    bad = tmp_path / "b.wav"
    bad.write_bytes(b"not a wav at all")
    r = run("encode", good, bad)
    assert r.returncode == 1
    assert (tmp_path / "a.vae").exists() and not (tmp_path / "b.vae").exists()
    assert b"1 of 2 files failed" in r.stderr


def test_info_shows_the_structure(tmp_path):
    src = _wav(tmp_path / "in.wav", make_signal("walk", 20000, 2, 16, seed=5))
    assert run("encode", src, "-4", "-T", "ARTIST=Ünïcode").returncode == 0
    r = run("info", tmp_path / "in.vae", "--frames")
    text = r.stdout.decode()
    assert r.returncode == 0
    for needle in ("sample_rate      44100 Hz", "bits_per_sample  16", "total_samples    20000",
                   "tag ARTIST=Ünïcode", "frames           5", "subframe types"):
        assert needle in text


def test_levels_are_flags(tmp_path):
    src = _wav(tmp_path / "in.wav", make_signal("walk", 5000, 1, 16, seed=6))
    for flag in ("-0", "-8"):
        assert run("encode", src, flag, "-f").returncode == 0


def test_lossy_is_a_flag_that_keeps_the_input_and_takes_a_model_by_name(tmp_path):
    # Issue 21 item 4: `--lossy [MODEL]` swallowed the input of `encode --lossy dir/t4.wav`.
    # --lossy is a flag; the model is --lossy-model MODEL, and the older --lossy=MODEL and
    # --lossy MODEL.vaem still work.
    import shutil

    import vaelac
    from vaelac.model import default_model
    from vaelac.spec.constants import ModelKind

    shipped = default_model(ModelKind.LOSSY)
    if shipped is None:
        pytest.skip("no shipped lossy model")
    (tmp_path / "dir").mkdir()
    src = _wav(tmp_path / "dir" / "t4.wav", make_signal("sine", 4000, 2, 16, seed=4))
    model = tmp_path / "mine.vaem"
    shutil.copy(Path(vaelac.__file__).parent / "data" / "models" / f"{shipped.name}.vaem", model)
    spellings = {"flag": ["--lossy", src, "-o", tmp_path / "a.vae"],
                 "after": [src, "--lossy", "-o", tmp_path / "b.vae"],
                 "model": ["--lossy-model", model, src, "-o", tmp_path / "c.vae"],
                 "equals": [f"--lossy={model}", src, "-o", tmp_path / "d.vae"],
                 "old": ["--lossy", model, src, "-o", tmp_path / "e.vae"]}
    for name, args in spellings.items():
        proc = run("encode", *args)
        assert proc.returncode == 0, (name, proc.stderr)
        info = vaelac.info(args[args.index("-o") + 1])
        assert info.lossy and info.model_sha256 == shipped.sha256, name
    proc = run("encode", "--lossy", src)  # no -o: next to the input
    assert proc.returncode == 0 and vaelac.info(tmp_path / "dir" / "t4.vae").lossy
