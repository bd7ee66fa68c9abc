"""The library against the command line on the same bytes (issue 21, item 3).

`vaelac encode` used to set OPENBLAS_NUM_THREADS=1 while `vaelac.encode` (and the pydub adapter)
did not, and the encoder's analysis called numpy.dot: BLAS woke its thread pool, whose threads
spin on the other cores, and the library encoded 1.7-12x slower than the command line. Now the
codec calls no BLAS (tests/test_api.py::test_the_codec_calls_no_blas) and the variable changes
nothing.

Each run is a fresh process with OPENBLAS_NUM_THREADS (and OMP_NUM_THREADS) removed from its
environment unless said otherwise; the variants are interleaved, as the machine's speed drifts.

    python benchmarks/api_vs_cli.py [--runs 5] [--level 5] [--seconds 4]

Prints, per variant, the encode time of each run and the median:
  api        vaelac.encode in-process, without the variable (the encode call alone)
  api+var    the same with OPENBLAS_NUM_THREADS=1
  pydub      AudioSegment.export(format="vae") in-process, without the variable (if pydub)
  cli        `python -m vaelac encode` of the same clip as a WAV file (process start included)
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

DEMO = Path(__file__).resolve().parents[1] / "reference" / "data" / "demo.wav"

_API = """
import sys, time, vaelac
from vaelac.wav import read_wav
pcm, fmt = read_wav(sys.argv[1])
t = time.perf_counter()
vaelac.encode(pcm, fmt.sample_rate, bits=fmt.bits_per_sample, level=int(sys.argv[2]))
print(time.perf_counter() - t)
"""

_PYDUB = """
import io, sys, time, warnings
warnings.simplefilter("ignore")
from pydub import AudioSegment
import vaelac.plugin
vaelac.plugin.register()
seg = AudioSegment.from_wav(sys.argv[1])
t = time.perf_counter()
seg.export(io.BytesIO(), format="vae", parameters=["-" + sys.argv[2]])
print(time.perf_counter() - t)
"""


def _env(var: bool) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    if var:
        env["OPENBLAS_NUM_THREADS"] = "1"
    return env


def _timed(args: list[str], env: dict, wall: bool) -> float:
    import time
    t = time.perf_counter()
    out = subprocess.run(args, env=env, check=True, capture_output=True, text=True).stdout
    return time.perf_counter() - t if wall else float(out.split()[-1])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--level", type=int, default=5)
    p.add_argument("--seconds", type=float, default=4.0)
    args = p.parse_args()
    from vaelac.wav import read_wav, write_wav

    try:
        import pydub  # noqa: F401
        has_pydub = True
    except ImportError:
        has_pydub = False
    pcm, fmt = read_wav(DEMO)
    clip = pcm[: int(args.seconds * fmt.sample_rate)]
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "clip.wav"
        write_wav(wav, clip, fmt.sample_rate, fmt.bits_per_sample)
        py, level = sys.executable, str(args.level)
        variants = {
            "api": ([py, "-c", _API, str(wav), level], _env(False), False),
            "api+var": ([py, "-c", _API, str(wav), level], _env(True), False),
            "cli": ([py, "-m", "vaelac", "encode", f"-{level}", "-q", "-f", str(wav), "-o",
                     str(Path(tmp) / "clip.vae")], _env(False), True),
        }
        if has_pydub:
            variants["pydub"] = ([py, "-c", _PYDUB, str(wav), level], _env(False), False)
        times: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(args.runs):
            for name, (cmd, env, wall) in variants.items():
                times[name].append(_timed(cmd, env, wall))
    print(f"{args.seconds:g} s of {DEMO.name} at level {args.level}, {args.runs} interleaved runs")
    for name, values in times.items():
        runs = " ".join(f"{v:.2f}" for v in values)
        print(f"  {name:8s} median {statistics.median(values):6.2f} s   ({runs})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
