"""``--cluster``: batch conversion on a Dask ``distributed`` cluster, with a resumable manifest,
fsspec sources and destinations, and faults (issue 23).

The fault tests run the CLI as a process with a real 2-worker LocalCluster of worker
processes; the tests of plain behaviour run in this process with ``local-threads:2`` (a
LocalCluster of threads: no worker start-up, and ``memory://`` is this process's)."""

import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import time
import wave
from pathlib import Path

import numpy as np
import pytest

import vaelac
from vaelac import cli
from vaelac.wav import read_wav

distributed = pytest.importorskip(
    "distributed", reason='dask distributed absent: python -m pip install ".[dask]"')
fsspec = pytest.importorskip("fsspec", reason='fsspec absent: python -m pip install ".[dask]"')
psutil = pytest.importorskip("psutil", reason="psutil (a dependency of distributed) absent")

from _signals import make_signal, write_wav16  # noqa: E402

VAELAC = [sys.executable, "-m", "vaelac"]
DEMO = Path(vaelac.__file__).parent / "data" / "demo.wav"
MANIFEST = "vaelac-manifest.jsonl"


def _md5(pcm) -> str:
    return hashlib.md5(np.asarray(pcm).astype("<i2").tobytes()).hexdigest()


def _folder(path: Path, n: int, samples: int = 8000, bad: bool = False) -> dict:
    path.mkdir(parents=True, exist_ok=True)
    signals = {}
    for i in range(n):
        pcm = make_signal("walk", samples + 37 * i, 2, 16, seed=i)
        write_wav16(path / f"f{i:04d}.wav", pcm)
        signals[f"f{i:04d}"] = pcm
    if bad:  # a header that promises a fmt chunk and ends
        (path / "bad.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt \x10\x00\x00\x00" + bytes(8))
    return signals


def _records(path: Path) -> list[dict]:
    lines = path.read_text().splitlines()
    return [json.loads(line) for line in lines]


def _latest(path: Path) -> dict:
    return {r["source"]: r for r in _records(path)}


def _run(*argv, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(VAELAC + [str(a) for a in argv], capture_output=True, text=True,
                          timeout=kw.pop("timeout", 120), **kw)


def _main(capsys, *argv) -> tuple[int, str]:
    rc = cli.main([str(a) for a in argv])
    return rc, capsys.readouterr().err


# -- process workers: the whole job, a corrupt source, the rerun --------------------------------

def test_corrupt_source_is_recorded_failed_and_the_run_goes_on_then_a_rerun_skips(tmp_path):
    signals = _folder(tmp_path / "raw", 4, bad=True)
    out = tmp_path / "vae"
    r = _run("encode", tmp_path / "raw", "-o", out, "--cluster", "local:2", "-V")
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr
    bad = str(tmp_path / "raw" / "bad.wav")
    assert r.stderr.strip().splitlines()[-1] == f"vaelac: 1 of 5 files failed: {bad}"
    latest = _latest(out / MANIFEST)
    assert latest[bad]["status"] == "failed" and latest[bad]["error"]
    assert not (out / "bad.vae").exists()
    for name, pcm in signals.items():
        rec = latest[str(tmp_path / "raw" / f"{name}.wav")]
        assert rec["status"] == "ok" and rec["verified"] is True, rec
        assert rec["pcm_md5"] == _md5(pcm)
        assert rec["output"] == str(out / f"{name}.vae")
        assert rec["output_bytes"] == (out / f"{name}.vae").stat().st_size
        assert rec["samples"] == len(pcm) and rec["level"] == 5 and rec["model"] == "default"
        assert rec["source_size"] == (tmp_path / "raw" / f"{name}.wav").stat().st_size
        assert rec["encode_seconds"] > 0 and rec["worker"].startswith("tcp://")
        back, _ = vaelac.read(out / f"{name}.vae")
        assert np.array_equal(back, pcm), name
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [f"{n}.vae" for n in signals] + [MANIFEST])
    # the rerun encodes nothing that is done: skipped records, outputs untouched
    mtimes = {p.name: p.stat().st_mtime_ns for p in out.glob("*.vae")}
    r = _run("encode", tmp_path / "raw", "-o", out, "--cluster", "local:2", "-V")
    assert r.returncode == 1, r.stderr
    new = _records(out / MANIFEST)[5:]
    assert sorted(x["status"] for x in new) == ["failed"] + ["skipped"] * 4
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.vae")} == mtimes
    assert "4 skipped" in r.stderr


def test_an_existing_scheduler_by_its_address(tmp_path):
    """--cluster tcp://HOST:PORT: a scheduler and 2 worker processes started here, the CLI in
    another process joins them; the cluster is still up after the run."""
    import logging

    signals = _folder(tmp_path / "raw", 3)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None, silence_logs=logging.ERROR) as cluster:
        r = _run("encode", tmp_path / "raw", "-o", tmp_path / "vae", "--cluster",
                 cluster.scheduler_address, "-V")
        assert r.returncode == 0, r.stderr
        assert "x real time per worker (2 workers)" in r.stderr.strip().splitlines()[-1]
        with distributed.Client(cluster) as client:
            assert len(client.nthreads()) == 2
    latest = _latest(tmp_path / "vae" / MANIFEST)
    workers = {cluster.scheduler_address.rsplit(":", 1)[0]}
    for name, pcm in signals.items():
        rec = latest[str(tmp_path / "raw" / f"{name}.wav")]
        assert rec["status"] == "ok" and rec["verified"] and rec["pcm_md5"] == _md5(pcm)
        assert rec["worker"].rsplit(":", 1)[0] in workers


# -- in-process (local-threads): what a rerun redoes, URLs, decode and test ------------------

def test_a_rerun_redoes_changed_sources_and_missing_or_wrong_outputs(tmp_path, capsys):
    _folder(tmp_path / "raw", 5)
    out = tmp_path / "vae"
    rc, err = _main(capsys, "encode", tmp_path / "raw", "-o", out, "--cluster", "local-threads:2",
                    "--progress")
    assert rc == 0, err
    assert "\rvaelac: 1/5 files, " in err and " of audio, 0 failed, ETA " in err, err
    summary = err.strip().splitlines()[-1]
    assert summary.startswith("vaelac: 5 files: 5 done, 0 skipped (done before), 0 failed; "), err
    assert "(ratio 0." in summary and "x real time per worker (2 workers)" in summary, err
    first = _latest(out / MANIFEST)
    src = [str(tmp_path / "raw" / f"f{i:04d}.wav") for i in range(5)]
    os.utime(src[0], (time.time() + 10, time.time() + 10))  # the source changed
    (out / "f0001.vae").unlink()  # the output went
    (out / "f0002.vae").write_bytes((out / "f0002.vae").read_bytes()[:-10])  # a torn output
    rc, err = _main(capsys, "encode", tmp_path / "raw", "-o", out, "--cluster", "local-threads:2")
    assert rc == 0, err
    redo = _records(out / MANIFEST)[5:]
    status = {r["source"]: r["status"] for r in redo}
    assert status == {src[0]: "ok", src[1]: "ok", src[2]: "ok", src[3]: "skipped",
                      src[4]: "skipped"}
    latest = _latest(out / MANIFEST)
    assert latest[src[0]]["source_mtime"] != first[src[0]]["source_mtime"]
    assert latest[src[2]]["output_bytes"] == (out / "f0002.vae").stat().st_size
    # a rerun at another level redoes every file
    rc, err = _main(capsys, "encode", "-1", tmp_path / "raw", "-o", out,
                    "--cluster", "local-threads:2")
    assert rc == 0, err
    assert [r["status"] for r in _records(out / MANIFEST)[10:]] == ["ok"] * 5


def test_file_urls_go_through_fsspec_on_process_workers(tmp_path):
    signals = _folder(tmp_path / "raw", 3)
    r = _run("encode", f"file://{tmp_path}/raw/", "-o", f"file://{tmp_path}/vae",
             "--cluster", "local:2")
    assert r.returncode == 0, r.stderr
    latest = _latest(tmp_path / "vae" / MANIFEST)
    for name, pcm in signals.items():
        rec = latest[f"file://{tmp_path}/raw/{name}.wav"]
        assert rec["status"] == "ok" and rec["output"] == f"file://{tmp_path}/vae/{name}.vae"
        assert rec["pcm_md5"] == _md5(pcm)
        back, _ = vaelac.read(tmp_path / "vae" / f"{name}.vae")
        assert np.array_equal(back, pcm)
    assert not [p for p in (tmp_path / "vae").iterdir() if p.name.startswith(".vaelac-")]


def test_memory_urls_on_local_threads_with_a_manifest_copy(tmp_path, capsys):
    mem = fsspec.filesystem("memory")
    root = f"/vaelac-test-{os.getpid()}-{time.monotonic_ns()}"
    signals = {}
    for i in range(3):
        pcm = make_signal("walk", 5000 + i, 1, 16, seed=i)
        write_wav16(tmp_path / "x.wav", pcm)
        mem.pipe(f"{root}/raw/m{i}.wav", (tmp_path / "x.wav").read_bytes())
        signals[f"m{i}"] = pcm
    manifest = tmp_path / "m.jsonl"
    rc, err = _main(capsys, "encode", f"memory://{root}/raw/", "-o", f"memory://{root}/vae/",
                    "--cluster", "local-threads:2")
    assert rc == 2 and "--manifest" in err and len(err.strip().splitlines()) == 1, err
    rc, err = _main(capsys, "encode", f"memory://{root}/raw/", "-o", f"memory://{root}/vae/",
                    "--cluster", "local-threads:2", "--manifest", manifest)
    assert rc == 0, err
    for name, pcm in signals.items():
        back, _ = vaelac.read(io.BytesIO(mem.cat(f"{root}/vae/{name}.vae")))
        assert np.array_equal(back, pcm[:, 0]), name
    assert sorted(p.rsplit("/", 1)[-1] for p in mem.ls(f"{root}/vae", detail=False)) == \
        ["m0.vae", "m1.vae", "m2.vae", MANIFEST]  # no temporary key left
    assert mem.cat(f"{root}/vae/{MANIFEST}") == manifest.read_bytes()
    latest = _latest(manifest)
    assert {r["status"] for r in latest.values()} == {"ok"}
    assert latest[f"memory://{root}/raw/m1.wav"]["pcm_md5"] == _md5(signals["m1"])
    rc, err = _main(capsys, "encode", f"memory://{root}/raw/", "-o", f"memory://{root}/vae/",
                    "--cluster", "local-threads:2", "--manifest", manifest)
    assert rc == 0 and [r["status"] for r in _records(manifest)[3:]] == ["skipped"] * 3, err
    # a corrupt source among them: a failed record, its error naming no scratch copy
    mem.pipe(f"{root}/raw/bad.wav", b"RIFF\x24\x00\x00\x00WAVEfmt \x10\x00\x00\x00" + bytes(8))
    rc, err = _main(capsys, "encode", f"memory://{root}/raw/", "-o", f"memory://{root}/vae/",
                    "--cluster", "local-threads:2", "--manifest", manifest)
    assert rc == 1 and err.strip().splitlines()[-1] == \
        f"vaelac: 1 of 4 files failed: memory://{root}/raw/bad.wav", err
    bad = _latest(manifest)[f"memory://{root}/raw/bad.wav"]
    assert bad["status"] == "failed" and bad["error"] and "vaelac-" not in bad["error"], bad
    assert not mem.exists(f"{root}/vae/bad.vae")
    mem.rm(root, recursive=True)


def test_decode_and_test_on_a_cluster(tmp_path, capsys):
    signals = _folder(tmp_path / "raw", 3)
    rc, err = _main(capsys, "encode", tmp_path / "raw", "-o", tmp_path / "vae",
                    "--cluster", "local-threads:2")
    assert rc == 0, err
    damaged = bytearray((tmp_path / "vae" / "f0001.vae").read_bytes())
    damaged[len(damaged) // 2] ^= 0x40
    (tmp_path / "vae" / "f0001.vae").write_bytes(bytes(damaged))
    rc, err = _main(capsys, "decode", tmp_path / "vae", "-o", tmp_path / "wav",
                    "--cluster", "local-threads:2")
    assert rc == 1 and "f0001.vae" in err.strip().splitlines()[-1], err
    for name in ("f0000", "f0002"):
        with wave.open(str(tmp_path / "wav" / f"{name}.wav")) as w:
            back = np.frombuffer(w.readframes(w.getnframes()), "<i2").reshape(-1, 2)
        assert np.array_equal(back, signals[name])
    assert not (tmp_path / "wav" / "f0001.wav").exists()
    rc, err = _main(capsys, "test", tmp_path / "vae", "--cluster", "local-threads:2",
                    "--manifest", tmp_path / "t.jsonl")
    assert rc == 1, err
    status = {Path(r["source"]).name: r["status"] for r in _records(tmp_path / "t.jsonl")}
    assert status == {"f0000.vae": "ok", "f0001.vae": "failed", "f0002.vae": "ok"}


def test_a_torn_last_manifest_line_is_ignored_and_the_next_record_starts_a_line(tmp_path,
                                                                                capsys):
    _folder(tmp_path / "raw", 3)
    out = tmp_path / "vae"
    rc, err = _main(capsys, "encode", tmp_path / "raw", "-o", out, "--cluster", "local-threads:2")
    assert rc == 0, err
    lines = (out / MANIFEST).read_text().splitlines()
    torn = lines[-1][: len(lines[-1]) // 2]  # the last record, cut as a kill would leave it
    (out / MANIFEST).write_text("\n".join(lines[:-1]) + "\n" + torn)
    rc, err = _main(capsys, "encode", tmp_path / "raw", "-o", out, "--cluster", "local-threads:2")
    assert rc == 0, err
    after = (out / MANIFEST).read_text().splitlines()
    assert after[2] == torn
    new = [json.loads(line) for line in after[3:]]
    assert sorted(r["status"] for r in new) == ["ok", "skipped", "skipped"]
    assert json.loads(lines[-1])["source"] in [r["source"] for r in new if r["status"] == "ok"]


def test_usage_and_cluster_errors_are_one_line(tmp_path, capsys, monkeypatch):
    import vaelac.cluster

    monkeypatch.setattr(vaelac.cluster, "_CONNECT_TIMEOUT", "1s")  # nothing listens on port 9
    _folder(tmp_path / "raw", 1)
    cases = [
        (["encode", tmp_path / "raw", "--cluster", "local:2"], 2, "-o DEST"),
        (["encode", tmp_path / "raw", "-o", tmp_path / "o", "--cluster", "nowhere"], 2,
         "scheduler address"),
        (["encode", tmp_path / "raw", "-o", tmp_path / "o", "--cluster", "tcp://127.0.0.1:9"], 1,
         "cannot reach the Dask scheduler at tcp://127.0.0.1:9"),
    ]
    for argv, status, words in cases:
        rc, err = _main(capsys, *argv)
        assert rc == status, (argv, err)
        assert len(err.strip().splitlines()) == 1 and words in err, (argv, err)
        assert "Traceback" not in err


# -- faults: a worker killed while it encodes, Ctrl-C on the client ------------------------------

def _partial_writer(client: psutil.Process, folder: Path):
    """A worker process of ``client`` that holds a temporary output file in ``folder`` open."""
    for proc in client.children(recursive=True):
        try:
            for f in proc.open_files():
                name = os.path.basename(f.path)
                if os.path.dirname(f.path) == str(folder) and name.startswith(".vaelac-"):
                    return proc
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return None


def test_a_worker_killed_while_it_encodes_loses_nothing(tmp_path):
    raw, out = tmp_path / "raw", tmp_path / "vae"
    raw.mkdir()
    for i in range(4):
        (raw / f"d{i}.wav").write_bytes(DEMO.read_bytes())
    demo, _ = read_wav(DEMO)
    proc = subprocess.Popen(VAELAC + ["encode", str(raw), "-o", str(out),
                                      "--cluster", "local:2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    client = psutil.Process(proc.pid)
    victim, deadline = None, time.monotonic() + 60
    while victim is None and proc.poll() is None and time.monotonic() < deadline:
        victim = _partial_writer(client, out)
        time.sleep(0.005)
    assert victim is not None, "no worker was seen writing an output"
    victim.send_signal(signal.SIGKILL)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    latest = _latest(out / MANIFEST)
    assert len(latest) == 4 and {r["status"] for r in latest.values()} == {"ok"}, latest
    for i in range(4):
        back, _ = vaelac.read(out / f"d{i}.vae")
        assert np.array_equal(back, demo)
        assert latest[str(raw / f"d{i}.wav")]["output_bytes"] == (out / f"d{i}.vae").stat().st_size
    # what the killed worker was writing stays a temporary file, never a finished-looking one
    assert {p.name for p in out.iterdir() if not p.name.startswith(".vaelac-")} == \
        {f"d{i}.vae" for i in range(4)} | {MANIFEST}


def test_ctrl_c_leaves_the_manifest_consistent_and_a_rerun_finishes(tmp_path):
    raw, out = tmp_path / "raw", tmp_path / "vae"
    raw.mkdir()
    for i in range(6):
        (raw / f"d{i}.wav").write_bytes(DEMO.read_bytes())
    demo, _ = read_wav(DEMO)
    argv = VAELAC + ["encode", str(raw), "-o", str(out), "--cluster", "local:2"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # a process group of its own, as a shell's job
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if (out / MANIFEST).exists() and (out / MANIFEST).read_text().count("\n") >= 1:
            break
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C at a terminal: the client and its workers
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err  # workers quiet
    assert "interrupted" in err.strip().splitlines()[-1], err
    first = _records(out / MANIFEST)  # every line parses
    assert 1 <= len(first) < 6
    for rec in first:
        assert rec["status"] == "ok"
        assert Path(rec["output"]).stat().st_size == rec["output_bytes"]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    latest = _latest(out / MANIFEST)
    assert len(latest) == 6 and {r["status"] for r in latest.values()} <= {"ok", "skipped"}
    assert sum(r["status"] == "skipped" for r in _records(out / MANIFEST)[len(first):]) == \
        len(first)
    for i in range(6):
        back, _ = vaelac.read(out / f"d{i}.vae")
        assert np.array_equal(back, demo)


# -- many small files -------------------------------------------------------------------------

SMALL_FILES = int(os.environ.get("VAELAC_CLUSTER_FILES", "1000"))  # about 20 s in all


def test_many_small_files_then_a_rerun_that_encodes_nothing(tmp_path):
    raw, out = tmp_path / "raw", tmp_path / "vae"
    raw.mkdir()
    pcm = make_signal("walk", 2205, 1, 16, seed=1)  # 0.05 s at 44.1 kHz
    write_wav16(raw / "x0000.wav", pcm)
    data = (raw / "x0000.wav").read_bytes()
    for i in range(1, SMALL_FILES):
        (raw / f"x{i:04d}.wav").write_bytes(data)
    r = _run("encode", raw, "-o", out, "--cluster", "local:2", "-q", timeout=600)
    assert r.returncode == 0, r.stderr
    records = _records(out / MANIFEST)
    assert len(records) == SMALL_FILES
    assert {r["status"] for r in records} == {"ok"}
    assert {r["pcm_md5"] for r in records} == {_md5(pcm)}
    assert sorted(r["source"] for r in records) == sorted(str(p) for p in raw.iterdir())
    mtimes = {p.name: p.stat().st_mtime_ns for p in out.glob("*.vae")}
    assert len(mtimes) == SMALL_FILES
    r = _run("encode", raw, "-o", out, "--cluster", "local:2", "-q", timeout=600)
    assert r.returncode == 0, r.stderr
    again = _records(out / MANIFEST)[SMALL_FILES:]
    assert len(again) == SMALL_FILES and {r["status"] for r in again} == {"skipped"}
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.vae")} == mtimes
