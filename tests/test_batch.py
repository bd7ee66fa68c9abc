"""Batch work: directories as inputs, ``-j N`` processes, a bad file reported at the end."""

import multiprocessing
import os
import subprocess
import sys

import numpy as np
import pytest

import vaelac
from vaelac import cli
from vaelac.wav import read_wav
from _signals import make_signal, write_wav16

VAELAC = [sys.executable, "-m", "vaelac"]
fork_only = pytest.mark.skipif(multiprocessing.get_start_method() != "fork",
                               reason="patches reach the workers only when they are forked")


def _batch(tmp_path, n=4):
    signals = {}
    for i in range(n):
        pcm = make_signal("walk", 6000 + 1000 * i, 2, 16, seed=i)
        write_wav16(tmp_path / f"good{i}.wav", pcm)
        signals[f"good{i}"] = pcm
    (tmp_path / "bad.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt \x10\x00\x00\x00" + bytes(8))
    (tmp_path / "notes.txt").write_text("not audio")
    return signals


def test_encode_a_directory_in_parallel_past_a_bad_file(tmp_path):
    signals = _batch(tmp_path)
    r = subprocess.run(VAELAC + ["encode", str(tmp_path), "-j", "2"], capture_output=True,
                       text=True)
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert lines[-1] == f"vaelac: 1 of 5 files failed: {tmp_path / 'bad.wav'}"
    assert sum("bad.wav" in line for line in lines) == 2  # its error, then the summary
    for name, pcm in signals.items():
        back, _ = vaelac.read(tmp_path / f"{name}.vae")
        assert np.array_equal(back, pcm), name
    assert not (tmp_path / "bad.vae").exists() and not (tmp_path / "notes.vae").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".vaelac-")]
    # ... and decode the directory back the same way, past a damaged stream
    damaged = bytearray((tmp_path / "good1.vae").read_bytes())
    damaged[len(damaged) // 2] ^= 0x40
    (tmp_path / "good1.vae").write_bytes(bytes(damaged))
    for p in tmp_path.glob("*.wav"):
        p.unlink()
    r = subprocess.run(VAELAC + ["decode", str(tmp_path), "-j", "2"], capture_output=True,
                       text=True)
    assert r.returncode == 1 and "1 of 4 files failed" in r.stderr and "good1.vae" in r.stderr
    assert not (tmp_path / "good1.wav").exists()
    for name in ("good0", "good2", "good3"):
        assert np.array_equal(read_wav(tmp_path / f"{name}.wav")[0], signals[name])


def test_an_empty_directory_is_a_failure_and_o_needs_one_input(tmp_path):
    (tmp_path / "empty").mkdir()
    r = subprocess.run(VAELAC + ["test", str(tmp_path / "empty")], capture_output=True,
                       text=True)
    assert r.returncode == 1 and "no *.vae files" in r.stderr
    _batch(tmp_path, n=2)
    r = subprocess.run(VAELAC + ["encode", str(tmp_path), "-o", str(tmp_path / "x.vae")],
                       capture_output=True, text=True)
    assert r.returncode == 2 and not (tmp_path / "x.vae").exists()


@fork_only
def test_jobs_run_in_other_processes(tmp_path, monkeypatch, capsys):
    _batch(tmp_path, n=3)
    monkeypatch.setattr(cli, "_encode_one", lambda src, dst, args: f"{src} pid {os.getpid()}")
    assert cli.main(["encode", str(tmp_path / "good0.wav"), str(tmp_path / "good1.wav"),
                     str(tmp_path / "good2.wav"), "-j", "2"]) == 0
    pids = {line.split(" pid ")[1] for line in capsys.readouterr().err.splitlines()}
    assert str(os.getpid()) not in pids and 1 <= len(pids) <= 2


@fork_only
def test_a_worker_that_dies_fails_its_file_only(tmp_path, monkeypatch, capsys):
    _batch(tmp_path, n=3)
    real = cli._encode_one

    def encode_or_die(src, dst, args):
        if "good1" in src:
            os._exit(9)  # as a segfault or the OOM killer would end it
        return real(src, dst, args)

    monkeypatch.setattr(cli, "_encode_one", encode_or_die)
    files = [str(tmp_path / f"good{i}.wav") for i in range(3)]
    assert cli.main(["encode", *files, "-j", "2", "-q"]) == 1
    err = capsys.readouterr().err
    assert "good1.wav: its worker process died" in err and "1 of 3 files failed" in err
    assert (tmp_path / "good0.vae").exists() and (tmp_path / "good2.vae").exists()
    assert not (tmp_path / "good1.vae").exists()
