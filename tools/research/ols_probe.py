"""Issue 7 probe: what does a per-sample least-squares (OLS) predictor on the signal save, in
place of the frame's LPC, with level 5's long stage set after it — in float, and in the exact
integer form of spec §6.6 (OLS_CASCADE, format 1.4) that a decoder reproduces bit for bit?

Not part of the codec and not a test. Per file: the OLS residual of every channel, then the
integer long set (1024 + 256 + 16 SCALED taps, §6.4, without the mixer) over frames of
``--frame`` samples, each frame's coded size by the kernels' rc_cost (min with the OLS residual
alone), against the sizes of ``--level`` in a level_table.py JSON; totals per bit depth, and
against flac -8 when a bench JSON is given.

    python tools/research/level_table.py ../corpus/dev flac.json --json levels.json
    python tools/research/ols_probe.py levels.json FILE.wav ... [--exact] [--flac flac.json]

Float (default): cascade_probe.py's recursive least squares (16 taps of the channel's past and
16 of the other channel's signal — for the first channel its past, for the second its current
sample too; λ 0.998, solved every 8 samples, never reset).

Exact (``--exact``): the codec's kernel (``kernels.ols``, §6.6) restarted every ``--frame``
samples as in a subframe: ``--own`` taps of the channel's past, for the second channel of a
stereo file also ``--cross`` taps of the first channel's values (its current one included);
inputs shifted up to 24 bits (``--scale``), the cross taps starting ``--ahead`` samples after the
current one (the first channel is decoded first; stop 16), forgetting 2^-``--forget``, ridge 2^-``--ridge``, a
solve every 2^``--interval-log2`` samples. What made the integer form work where stop 14's
did not (docs/predictor-research.md, stop 15): the covariance keeps the inputs' full
precision (stop 14 shifted 24-bit inputs down and kept no fraction below the forgetting's
floor, whose errors of a few hundred units per entry are as large as the smallest eigenvalues
of these nearly singular systems: +57 % and worse on ``sp_bd_boom``, where the same covariance
solved in float64 is -34 %), and the solve runs in §6.6's soft float (31-bit mantissas,
ridge 2^-27) instead of 64-bit fixed point. The Gauss-Seidel and fixed-point LDLᵀ forms of
stop 14 are in this file as of commit 08ea96e. Needs numba (cascade_probe, stage_probe) and
soundfile.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from cascade_probe import cascade as float_ols
from stage_probe import cost, lms
from vaelac._backend import kernels


def exact_ols(x: np.ndarray, params: tuple[int, ...], frame: int, ahead: int = 0) -> np.ndarray:
    """Every channel's residual under §6.6's predictor (the codec's kernel), restarted every
    ``frame`` samples as in a subframe; the second channel takes the first as its cross input."""
    out = np.empty_like(x)
    for c in range(x.shape[1]):
        taps, cross = params[0], params[1] if c == 1 else 0
        for s in range(0, len(x), frame):
            r = np.ascontiguousarray(x[s:s + frame, c])
            other = None
            if cross:  # the cross taps start ``ahead`` samples after the current one
                other = np.zeros_like(r)
                first = x[s + ahead:s + frame, 0]
                other[:len(first)] = first
            kernels.ols(r, other, np.array((taps, cross) + params[2:], np.int32), False)
            out[s:s + frame, c] = r
    return out


def long_set(r):
    return lms(lms(lms(r, 1024, 15, 8, True), 256, 13, 8, True), 16, 11, 8, True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("levels_json", type=Path, help="level_table.py --json output")
    p.add_argument("files", type=Path, nargs="+")
    p.add_argument("--level", type=int, default=8)
    p.add_argument("--frame", type=int, default=32768, help="the stage set's frame")
    p.add_argument("--flac", type=Path, help="codec_bench --json output with flac-8's sizes")
    p.add_argument("--exact", action="store_true", help="the exact integer form")
    p.add_argument("--interval-log2", type=int, default=4, help="exact: 2**N samples a solve")
    p.add_argument("--own", type=int, default=16, help="exact: taps of the channel's past")
    p.add_argument("--cross", type=int, default=16, help="exact: taps of the other channel")
    p.add_argument("--forget", type=int, default=9, help="exact: R -= R >> FORGET")
    p.add_argument("--ridge", type=int, default=27, help="exact: 2**-RIDGE of the diagonal")
    p.add_argument("--scale", type=int, help="exact: ols_scale (default 24 - bits)")
    p.add_argument("--ahead", type=int, default=0,
                   help="exact: the cross taps begin this many samples after the current one")
    args = p.parse_args(argv)
    rows = json.loads(args.levels_json.read_text())
    sizes = {(r["file"], r["level"]): r["bytes"] for r in rows}
    flac = {}
    if args.flac:
        flac = {r["file"]: r["bytes"] for r in json.loads(args.flac.read_text())["results"]
                if r["codec"] == "flac-8"}
    totals: dict[str, list[float]] = {}
    seconds = samples = 0.0
    for path in args.files:
        info = sf.info(path)
        bits = {"PCM_16": 16, "PCM_24": 24, "PCM_32": 32, "PCM_U8": 8}[info.subtype]
        x = np.ascontiguousarray(sf.read(path, dtype="int32", always_2d=True)[0]
                                 .astype(np.int64) >> (32 - bits))
        began = time.perf_counter()
        if args.exact:
            scale = max(0, 24 - bits) if args.scale is None else args.scale
            residual = exact_ols(x, (args.own, args.cross, scale, args.forget, args.ridge,
                                     args.interval_log2), args.frame, args.ahead)
        else:
            residual = float_ols(x, 16, 0.998, 0.001, 8, 0, 0.0, 0, 0.0, True, 0)
        seconds += time.perf_counter() - began
        samples += x.size
        coded = 0.0
        for c in range(x.shape[1]):
            for s in range(0, len(x), args.frame):
                r = np.ascontiguousarray(residual[s:s + args.frame, c])
                coded += min(cost(r, 0), cost(long_set(r), 0)) / 8
        ours = sizes[(path.name, args.level)]
        for key in ("all", f"{bits}-bit"):
            t = totals.setdefault(key, [0.0, 0.0, 0.0, 0.0])
            t[0] += coded
            t[1] += ours
            t[2] += min(ours, coded)
            t[3] += flac.get(path.name, 0)
        print(f"{path.name:40s} {coded:12.0f} bytes, {coded / ours:.4f}x level {args.level}",
              flush=True)
    for key, (coded, ours, best, flac_bytes) in sorted(totals.items()):
        line = (f"{key:7s} {coded:12.0f} bytes, {coded / ours:.4f}x level {args.level}; "
                f"the smaller of the two per file {best / ours:.4f}x")
        if flac_bytes:
            line += f" ({best / flac_bytes:.4f}x flac -8; level {args.level} {ours / flac_bytes:.4f}x)"
        print(line)
    print(f"the predictor alone: {seconds / samples * 1e9:.0f} ns a sample (one core, numba)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
