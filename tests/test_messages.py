"""What vaelac says: -V reports the check it ran (or that it could not run it), a closed pipe
ends quietly, a WAV given to the decoder is named, a dtype that cannot be read into lists those
that can."""

import io
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import vaelac
from _signals import make_signal

VAELAC = [sys.executable, "-m", "vaelac"]


def run(*args, **kw):
    return subprocess.run(VAELAC + [str(a) for a in args], capture_output=True, **kw)


@pytest.fixture
def wav(tmp_path):
    from vaelac.wav import write_wav

    path = tmp_path / "in.wav"
    write_wav(path, make_signal("walk", 20000, 2, 16, seed=4), 44100, 16)
    return path


def test_verify_says_it_ran_with_the_size_and_ratio(tmp_path, wav):
    out = tmp_path / "x.vae"
    r = run("encode", wav, "-o", out, "-V")
    assert r.returncode == 0
    size = out.stat().st_size
    ratio = size / wav.stat().st_size  # as flac: output bytes over the input file's size
    assert r.stderr.decode().splitlines() == [
        f"{wav} -> {out}: Verify OK, wrote {size} bytes, ratio={ratio:.3f}"]
    r = run("encode", wav, "-o", out, "-V", "-f", "-q")
    assert r.returncode == 0 and r.stderr == b""


def test_verify_of_standard_input_checks_the_md5_taken_as_it_was_read(tmp_path, wav):
    out = tmp_path / "x.vae"
    r = run("encode", "-", "-o", out, "-V", input=wav.read_bytes())
    assert r.returncode == 0, r.stderr
    assert re.fullmatch(rf"- -> {re.escape(str(out))}: Verify OK, wrote "
                        rf"{out.stat().st_size} bytes, ratio=0\.\d+\n", r.stderr.decode())


def test_verify_to_standard_output_says_it_was_skipped(wav):
    r = run("encode", wav, "-o", "-", "-V")
    assert r.returncode == 0 and r.stdout[:4] == b"\x89VAE"
    assert r.stderr.decode().splitlines() == [
        f"vaelac: {wav}: verify skipped: standard output cannot be read back"]
    assert run("encode", wav, "-o", "-", "-V", "-q").stderr == b""


@pytest.mark.skipif(not shutil.which("head") or os.name != "posix", reason="needs head(1)")
def test_decode_into_a_closed_pipe_ends_quietly(tmp_path):
    from vaelac.wav import write_wav

    write_wav(tmp_path / "long.wav", make_signal("walk", 300000, 2, 16, seed=5), 44100, 16)
    vae = tmp_path / "x.vae"  # decodes to 1.2 MB: far more than a pipe holds
    assert run("encode", tmp_path / "long.wav", "-0", "-o", vae).returncode == 0
    proc = subprocess.Popen(VAELAC + ["decode", str(vae), "-o", "-"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    head = subprocess.Popen(["head", "-c", "100"], stdin=proc.stdout, stdout=subprocess.PIPE)
    proc.stdout.close()  # head holds the only reading end: when it exits, the pipe is closed
    got = head.communicate(timeout=60)[0]
    err = proc.stderr.read()
    assert proc.wait(timeout=60) == 141  # 128 + SIGPIPE: what a shell shows for cat
    assert err == b"" and len(got) == 100


def test_decoding_a_wav_says_so(wav):
    r = run("decode", wav, "-o", "-")
    assert r.returncode == 1
    assert r.stderr.decode().strip() == (f"vaelac: {wav}: signature at byte 0: this is a WAV "
                                         "file, not a .vae stream (§3.1)")
    with pytest.raises(vaelac.NotVaeError, match="this is a FLAC file, not a .vae stream"):
        vaelac.decode(b"fLaC\x00\x00\x00\x22" + bytes(40))
    with pytest.raises(vaelac.NotVaeError, match=re.escape(r"not a .vae stream (starts with b'")):
        vaelac.decode(b"nothing we know of")


def test_a_dtype_that_cannot_hold_the_samples_is_a_usage_error_listing_the_dtypes():
    stream = vaelac.encode(np.array([[-30000], [0], [30000]], np.int16), 8000)
    with pytest.raises(vaelac.UsageError) as caught:
        vaelac.read(io.BytesIO(stream), dtype="int8")
    assert isinstance(caught.value, ValueError) and not isinstance(caught.value, vaelac.EncodeError)
    assert str(caught.value) == ("dtype 'int8' cannot hold this stream's 16-bit samples: use "
                                 "'int16', 'int32', 'int64' (the stored values) or 'float32', "
                                 "'float64' (scaled to [-1, 1))")
    with pytest.raises(vaelac.UsageError, match="'nonsense' is not a numpy dtype"):
        vaelac.read(io.BytesIO(stream), dtype="nonsense")
    data, _ = vaelac.read(io.BytesIO(stream), dtype=np.float32)  # a numpy type works too
    assert data.dtype == np.float32


def test_decoding_a_lossy_stream_says_so_and_succeeds(tmp_path):
    """§8.6: a valid LOSSY stream decodes with status 0 and is never shown as lossless."""
    vector = Path(__file__).resolve().parents[1] / "conformance/vectors/uncommon/lossy.vae"
    r = run("decode", str(vector), "-o", str(tmp_path / "l.wav"))
    assert r.returncode == 0, r.stderr
    assert b"LOSSY stream" in r.stderr and (tmp_path / "l.wav").is_file()
    r = run("test", str(vector))
    said = r.stdout + r.stderr
    assert r.returncode == 0 and b"lossy" in said and b"lossless" not in said
    r = run("decode", "-q", str(vector), "-o", str(tmp_path / "q.wav"))
    assert r.returncode == 0 and r.stderr == b""
