"""Issue 7 probe: what would a per-sample least-squares (OLS) predictor on the signal save, in
place of the frame's LPC, with level 5's long stage set after it — in float, and in an integer
form solved by Gauss-Seidel sweeps?

Not part of the codec and not a test. Per file: the OLS residual of every channel (16 taps of
its own past; the second channel also 16 taps of the first channel's signal, its current sample
included — the decoder has it), then the integer long set (1024 + 256 + 16 SCALED taps, §6.4)
over frames of ``--frame`` samples, each frame's coded size by the kernels' rc_cost (min with
the OLS residual alone), against the sizes of ``--level`` in a level_table.py JSON.

    python tests/explore/level_table.py ../corpus/dev flac.json --json levels.json
    python tests/explore/ols_probe.py levels.json FILE.wav ... [--integer SWEEPS | --ldl BITS]

Float: cascade_probe.py's recursive least squares (λ 0.998, solved every 8 samples, never
reset). Integer (``--integer``): covariance and cross-correlation in 64-bit integers with
power-of-two forgetting (R -= R >> 9; inputs shifted to 16 bits), reset every frame, the
system normalised to 30 bits and solved by that many Gauss-Seidel sweeps per sample from the
last weights (Q16, ridge 2**-10 of the diagonal); or (``--ldl``) by a fixed-point LDL^T
factorisation every 8 samples. Needs numba and soundfile. Figures in the
README ("What was tried in stop 14").
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numba as nb
import numpy as np
import soundfile as sf

from cascade_probe import cascade as float_ols
from stage_probe import _bitlen, cost, lms

FRACTION = 16  # the integer weights' fraction bits


@nb.njit(cache=True)
def _clamp(v, m):
    return m if v > m else (-m if v < -m else v)


@nb.njit(cache=True)
def _predict_and_learn(x, c, t, start, own, cross, forget, shift, v, w, R, b):
    """Channel c's residual at t under the weights w; then R and b take sample t (64-bit
    integers, inputs shifted right by ``shift``, forgetting by R -= R >> forget)."""
    for j in range(own):
        v[j] = x[t - 1 - j, c] if t - 1 - j >= start else 0
    if c == 1:
        for j in range(cross):
            v[own + j] = x[t - j, 0] if t - j >= start else 0
    acc = 0
    for j in range(len(v)):
        acc += w[j] * v[j]
    residual = x[t, c] - (acc >> FRACTION)
    y = x[t, c] >> shift
    for i in range(len(v)):
        vi = v[i] >> shift
        b[i] += vi * y - (b[i] >> forget)
        for j in range(i, len(v)):
            R[i, j] += vi * (v[j] >> shift) - (R[i, j] >> forget)
    return residual


@nb.njit(cache=True)
def _normalised(R, b, A, rhs):
    """A (whole, symmetric) and rhs: R and b shifted so that R's largest diagonal entry has
    30 bits. False if R is zero (nothing to solve)."""
    top = 0
    for i in range(len(b)):
        top = max(top, R[i, i])
    if top == 0:
        return False
    g = max(0, _bitlen(top) - 30)
    for i in range(len(b)):
        rhs[i] = b[i] >> g
        for j in range(i, len(b)):
            A[i, j] = A[j, i] = R[i, j] >> g
    return True


@nb.njit(cache=True)
def integer_ols(x, c, own, cross, forget, sweeps, ridge, shift, frame):
    """Channel c's residual under the integer OLS described above."""
    n = x.shape[0]
    taps = own + (cross if c == 1 else 0)
    out = np.empty(n, np.int64)
    R = np.zeros((taps, taps), np.int64)
    b = np.zeros(taps, np.int64)
    w = np.zeros(taps, np.int64)
    v = np.zeros(taps, np.int64)
    A = np.zeros((taps, taps), np.int64)
    rhs = np.zeros(taps, np.int64)
    limit = 1 << (FRACTION + 6)
    start = 0
    for t in range(n):
        if t % frame == 0:
            R[:, :] = 0
            b[:] = 0
            w[:] = 0
            start = t
        out[t] = _predict_and_learn(x, c, t, start, own, cross, forget, shift, v, w, R, b)
        if not _normalised(R, b, A, rhs):
            continue
        for _ in range(sweeps):
            for i in range(taps):
                acc = 0
                for j in range(taps):
                    acc += A[i, j] * w[j]
                w[i] += ((rhs[i] << FRACTION) - acc) // (A[i, i] + (A[i, i] >> ridge) + 1)
                w[i] = _clamp(w[i], limit)
    return out


@nb.njit(cache=True)
def integer_ols_ldl(x, c, own, cross, forget, every, ridge, shift, frame, fraction):
    """As integer_ols, but the normalised system is solved every ``every`` samples by a
    fixed-point LDL^T factorisation (L with ``fraction`` bits, |L| < 16) and two substitutions."""
    n = x.shape[0]
    taps = own + (cross if c == 1 else 0)
    out = np.empty(n, np.int64)
    R = np.zeros((taps, taps), np.int64)
    b = np.zeros(taps, np.int64)
    w = np.zeros(taps, np.int64)
    v = np.zeros(taps, np.int64)
    A = np.zeros((taps, taps), np.int64)
    Lm = np.zeros((taps, taps), np.int64)
    d = np.zeros(taps, np.int64)
    ld = np.zeros(taps, np.int64)
    z = np.zeros(taps, np.int64)
    rhs = np.zeros(taps, np.int64)
    start = 0
    for t in range(n):
        if t % frame == 0:
            R[:, :] = 0
            b[:] = 0
            w[:] = 0
            start = t
        out[t] = _predict_and_learn(x, c, t, start, own, cross, forget, shift, v, w, R, b)
        if t % every != every - 1 or not _normalised(R, b, A, rhs):
            continue
        for i in range(taps):
            A[i, i] += (A[i, i] >> ridge) + 1
        for j in range(taps):
            for k in range(j):
                ld[k] = (Lm[j, k] * d[k]) >> fraction
            dj = A[j, j]
            for k in range(j):
                dj -= (Lm[j, k] * ld[k]) >> fraction
            d[j] = max(dj, 1)
            for i in range(j + 1, taps):
                s = A[i, j]
                for k in range(j):
                    s -= (Lm[i, k] * ld[k]) >> fraction
                Lm[i, j] = _clamp((s << fraction) // d[j], 1 << (fraction + 4))
        for i in range(taps):
            zi = rhs[i]
            for k in range(i):
                zi -= (Lm[i, k] * z[k]) >> fraction
            z[i] = _clamp(zi, 1 << 40)
        for i in range(taps - 1, -1, -1):
            wi = (z[i] << FRACTION) // d[i]
            for k in range(i + 1, taps):
                wi -= (Lm[k, i] * w[k]) >> fraction
            w[i] = _clamp(wi, 1 << (FRACTION + 6))
    return out


def long_set(r):
    return lms(lms(lms(r, 1024, 15, 8, True), 256, 13, 8, True), 16, 11, 8, True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("levels_json", type=Path, help="level_table.py --json output")
    p.add_argument("files", type=Path, nargs="+")
    p.add_argument("--level", type=int, default=8)
    p.add_argument("--frame", type=int, default=32768)
    p.add_argument("--integer", type=int, metavar="SWEEPS", help="the integer form instead")
    p.add_argument("--ldl", type=int, metavar="FRACTION",
                   help="the integer form solved by LDL^T every 8 samples")
    p.add_argument("--ridge", type=int, default=10, help="the integer forms' ridge: 2**-RIDGE")
    args = p.parse_args(argv)
    sizes = {(r["file"], r["level"]): r["bytes"] for r in json.loads(args.levels_json.read_text())}
    total = codec = best = 0.0
    for path in args.files:
        info = sf.info(path)
        bits = {"PCM_16": 16, "PCM_24": 24, "PCM_32": 32, "PCM_U8": 8}[info.subtype]
        x = np.ascontiguousarray(sf.read(path, dtype="int32", always_2d=True)[0]
                                 .astype(np.int64) >> (32 - bits))
        if args.ldl is not None:
            residual = np.stack([integer_ols_ldl(x, c, 16, 16, 9, 8, args.ridge, max(0, bits - 15),
                                                 args.frame, args.ldl)
                                 for c in range(x.shape[1])], axis=1)
        elif args.integer is None:
            residual = float_ols(x, 16, 0.998, 0.001, 8, 0, 0.0, 0, 0.0, True, 0)
        else:
            residual = np.stack([integer_ols(x, c, 16, 16, 9, args.integer, args.ridge,
                                             max(0, bits - 15), args.frame)
                                 for c in range(x.shape[1])], axis=1)
        bits_total = 0.0
        for c in range(x.shape[1]):
            for s in range(0, len(x), args.frame):
                r = np.ascontiguousarray(residual[s:s + args.frame, c])
                bits_total += min(cost(r, 0), cost(long_set(r), 0))
        ours = sizes[(path.name, args.level)]
        total += bits_total / 8
        codec += ours
        best += min(ours, bits_total / 8)
        print(f"{path.name:40s} {bits_total / 8:12.0f} bytes, {bits_total / 8 / ours:.4f}x "
              f"level {args.level}", flush=True)
    print(f"{'all':40s} {total:12.0f} bytes, {total / codec:.4f}x level {args.level}; "
          f"the smaller of the two per file {best / codec:.4f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
