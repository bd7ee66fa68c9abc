#!/usr/bin/env python3
"""``vaelac encode --cluster local:N`` on corpus files with 1 worker, then 2 (or --workers):
wall seconds, x real time, and the speedup over the first worker count (issue 23's target: 2
workers >= 1.7x faster than 1 on >= 40 corpus files, on an otherwise idle 2-core machine).

Usage:
  python benchmarks/cluster_bench.py [--corpus DIR ...] [--files 40] [--workers 1,2]
                                     [--level 5] [--small 1000] [--json OUT.json]

--corpus: folders of WAVs with a MANIFEST.tsv (default: $VAELAC_CORPUS, else corpus/dev and
  corpus/wide in the clone or beside it); the first --files names in manifest order, taken
  corpus by corpus, are encoded (never copied: the sources stay where they are).
--small N: also N synthetic files of 0.05 s through local:2 (the issue's 1,000-file run),
  then the same command again, which must encode nothing (every record "skipped").
Each run is the CLI as a user runs it (python -m vaelac encode FILES -o OUT --cluster
local:N -q) into a fresh folder, so its wall time includes starting the LocalCluster (about
1.5 s here); the manifest gives the audio seconds and each file's worker seconds.
Run it on a quiet machine: the speedup is only meaningful when nothing else uses the cores.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MANIFEST = "vaelac-manifest.jsonl"


def _corpora(given: list[str] | None) -> list[Path]:
    if given:
        return [Path(g) for g in given]
    env = os.environ.get("VAELAC_CORPUS")
    if env:
        return [Path(env)]
    for root in (REPO / "corpus", REPO.parent / "corpus"):
        found = [root / name for name in ("dev", "wide")
                 if (root / name / "MANIFEST.tsv").is_file()]
        if found:
            return found
    return []


def _pick(corpora: list[Path], n: int) -> list[Path]:
    files = []
    for corpus in corpora:
        with open(corpus / "MANIFEST.tsv", newline="") as f:
            for row in csv.DictReader(f, delimiter="\t"):
                path = corpus / row["name"]
                if path.is_file():
                    files.append(path)
    if len(files) < n:
        sys.exit(f"cluster_bench: {len(files)} files in {', '.join(map(str, corpora))}, "
                 f"{n} asked for")
    return files[:n]


def _encode(sources: list[str], out: Path, workers: int, level: int) -> tuple[float, list]:
    argv = [sys.executable, "-m", "vaelac", "encode", f"-{level}", *sources, "-o", str(out),
            "--cluster", f"local:{workers}", "-q"]
    start = time.perf_counter()
    r = subprocess.run(argv, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if r.returncode not in (0, 1):
        sys.exit(f"cluster_bench: vaelac exited {r.returncode}: {r.stderr.strip()}")
    records = [json.loads(line) for line in (out / MANIFEST).read_text().splitlines()]
    return wall, records


def _row(label: str, wall: float, records: list, workers: int) -> dict:
    ok = [r for r in records if r["status"] == "ok"]
    audio = sum(r.get("audio_seconds") or 0 for r in ok)
    busy = sum(r.get("encode_seconds") or 0 for r in ok)
    src = sum(r.get("source_size") or 0 for r in ok)
    return {"run": label, "workers": workers, "files": len(records), "ok": len(ok),
            "wall_s": round(wall, 2), "audio_s": round(audio, 1),
            "x_realtime": round(audio / wall, 2) if wall else None,
            "x_realtime_per_worker": round(audio / wall / workers, 2) if wall else None,
            "x_realtime_busy": round(audio / busy, 2) if busy else None,
            "source_MB_per_s": round(src / wall / 1e6, 2) if wall else None}


def _small(n: int, root: Path) -> list[dict]:
    import numpy as np

    raw, out = root / "small", root / "small-out"
    raw.mkdir()
    rng = np.random.default_rng(1)
    pcm = np.cumsum(rng.integers(-500, 501, 2205)).clip(-32768, 32767).astype("<i2")
    with wave.open(str(raw / "x00000.wav"), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(44100)
        w.writeframes(pcm.tobytes())
    data = (raw / "x00000.wav").read_bytes()
    for i in range(1, n):
        (raw / f"x{i:05d}.wav").write_bytes(data)
    rows = []
    wall, records = _encode([str(raw)], out, 2, 5)
    rows.append(_row(f"{n} small files", wall, records, 2))
    before = {p.name: p.stat().st_mtime_ns for p in out.glob("*.vae")}
    wall, records = _encode([str(raw)], out, 2, 5)
    again = records[n:]
    skipped = sum(r["status"] == "skipped" for r in again)
    untouched = before == {p.name: p.stat().st_mtime_ns for p in out.glob("*.vae")}
    row = _row(f"{n} small files, rerun", wall, again, 2)
    row["skipped"], row["outputs_untouched"] = skipped, untouched
    rows.append(row)
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--corpus", action="append")
    p.add_argument("--files", type=int, default=40)
    p.add_argument("--workers", default="1,2")
    p.add_argument("--level", type=int, default=5)
    p.add_argument("--small", type=int, default=0)
    p.add_argument("--json")
    args = p.parse_args(argv)
    corpora = _corpora(args.corpus)
    if not corpora:
        sys.exit("cluster_bench: no corpus: give --corpus DIR (a folder with MANIFEST.tsv; "
                 "benchmarks/corpus/ builds them) or set VAELAC_CORPUS")
    files = [str(f) for f in _pick(corpora, args.files)]
    counts = [int(w) for w in args.workers.split(",")]
    rows = []
    with tempfile.TemporaryDirectory(prefix="cluster-bench-") as tmp:
        for workers in counts:
            out = Path(tmp) / f"out-{workers}"
            wall, records = _encode(files, out, workers, args.level)
            rows.append(_row(f"{len(files)} corpus files", wall, records, workers))
        if args.small:
            rows.extend(_small(args.small, Path(tmp)))
    base = rows[0]["wall_s"]
    print(f"{'run':<26} {'workers':>7} {'ok':>5} {'wall s':>8} {'audio s':>9} {'x RT':>7} "
          f"{'x RT/worker':>11} {'x RT busy':>9} {'speedup':>8}")
    for row in rows:
        speedup = f"{base / row['wall_s']:.2f}" if row["run"] == rows[0]["run"] else ""
        row["speedup"] = float(speedup) if speedup else None
        print(f"{row['run']:<26} {row['workers']:>7} {row['ok']:>5} {row['wall_s']:>8.2f} "
              f"{row['audio_s']:>9.1f} {row['x_realtime'] or 0:>7.1f} "
              f"{row['x_realtime_per_worker'] or 0:>11.1f} {row['x_realtime_busy'] or 0:>9.1f} "
              f"{speedup:>8}" + (f"  ({row['skipped']} skipped, outputs untouched: "
                                 f"{row['outputs_untouched']})" if "skipped" in row else ""))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
