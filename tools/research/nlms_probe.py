"""Issue 7 probe: would normalised-LMS stages (sac's kind) beat §6.4's SCALED sign-LMS stages
after §6.6's least-squares predictor — in float, and in an integer form a decoder could repeat?

Not part of the codec and not a test. Per file: every channel's exact OLS residual (the codec's
kernel, 12 + 12 taps, a solve every 32 samples, restarted every ``--frame`` samples as a subframe
is), then on each frame's residual (a) §6.4's long SCALED set (1024, 256, 16 taps), (b) NLMS
stages of ``--taps`` in float, (c) the same NLMS stages in integers (``--int``); each coded size
by the kernels' rc_cost, min with the OLS residual alone, as the encoder would choose.

    python tools/research/nlms_probe.py FILE.wav ... [--taps 256 32 16] [--mu 0.002 ...] [--int]
        [--chain S1024:15:8,S256:13:8,S16:11:8,N16:0.008 ...]

``--chain`` adds chains of SCALED (S taps:shift:step, §6.4) and float NLMS (N taps:mu) stages,
each reported, and ``min`` is per frame the smallest of all. Figures: docs/predictor-research.md, stop 16.

The integer form (what a spec would say): history h clamped to ±2^15; P = sum of h[j]^2 kept
incrementally (exact); prediction (sum w[j] h[j]) >> W with W fraction bits in w; after the
sample, with e the stage's own error clamped to ±2^15, g = (e << G) // (P + 2^E) truncated
toward zero (one division a sample), and w[j] += (g * h[j] * mu_q) >> S (floor).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numba as nb
import numpy as np
import soundfile as sf

from ols_probe import exact_ols, long_set
from stage_probe import cost, lms


@nb.njit(cache=True)
def _push(h, pos, taps, power, x):
    """Shift the clamped input x into the history window h[pos .. pos + taps - 1] (newest
    first; h holds 2 * taps and the window moves up when it reaches the start) and keep power,
    the window's sum of squares; returns the new (pos, power)."""
    old = h[pos + taps - 1]
    power += x * x - old * old
    pos -= 1
    if pos < 0:
        h[taps:] = h[:taps]
        pos = taps - 1
    h[pos] = x
    return pos, power


@nb.njit(cache=True)
def nlms_float(u, taps, mu):
    n = len(u)
    out = np.empty(n, np.int64)
    w = np.zeros(taps)
    h = np.zeros(2 * taps)  # the window of _push
    pos = taps
    power = 0.0
    for t in range(n):
        acc = 0.0
        for j in range(taps):
            acc += w[j] * h[pos + j]
        p = int(np.floor(acc + 0.5))
        o = u[t] - p
        out[t] = o
        e = u[t] - acc
        g = mu * e / (power + 1.0)
        for j in range(taps):
            w[j] += g * h[pos + j]
        pos, power = _push(h, pos, taps, power, max(-32767, min(32767, u[t])))
    return out


@nb.njit(cache=True)
def nlms_int(u, taps, mu_q, wbits, gbits, sbits):
    """Integer NLMS: w has ``wbits`` fraction bits; g = (e << gbits) // (P + 1);
    w += (mu_q * g * h) >> sbits."""
    n = len(u)
    out = np.empty(n, np.int64)
    w = np.zeros(taps, np.int64)
    h = np.zeros(2 * taps, np.int64)
    pos = taps
    power = 0
    for t in range(n):
        acc = 0
        for j in range(taps):
            acc += w[j] * h[pos + j]
        p = (acc + (1 << (wbits - 1))) >> wbits
        o = u[t] - p
        out[t] = o
        e = max(-32767, min(32767, o))
        num = e << gbits
        den = power + 1
        g = abs(num) // den
        if num < 0:
            g = -g
        g *= mu_q
        for j in range(taps):
            w[j] += (g * h[pos + j]) >> sbits
        pos, power = _push(h, pos, taps, power, max(-32767, min(32767, u[t])))
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("files", type=Path, nargs="+")
    p.add_argument("--frame", type=int, default=32768)
    p.add_argument("--taps", type=int, nargs="+", default=[256, 32, 16])
    p.add_argument("--mu", type=float, nargs="+", default=[0.002, 0.004, 0.008])
    p.add_argument("--int", dest="integer", action="store_true")
    p.add_argument("--chain", nargs="*", default=[],
                   help="extra chains, e.g. S1024:15:8,S256:13:8,S16:11:8,N16:0.008 (S: SCALED "
                        "taps:shift:step, N: float NLMS taps:mu); each reported, and the "
                        "per-frame min of all")
    p.add_argument("--wbits", type=int, default=24)
    p.add_argument("--gbits", type=int, default=40)
    args = p.parse_args(argv)
    chains = [[(c[0], c[1:].split(":")) for c in chain.split(",")] for chain in args.chain]
    totals = np.zeros(5 + len(chains))
    began = time.perf_counter()
    for path in args.files:
        info = sf.info(path)
        bits = {"PCM_16": 16, "PCM_24": 24, "PCM_32": 32, "PCM_U8": 8}[info.subtype]
        x = np.ascontiguousarray(sf.read(path, dtype="int32", always_2d=True)[0]
                                 .astype(np.int64) >> (32 - bits))
        residual = exact_ols(x, (12, 12, max(0, 24 - bits), 9, 27, 5), args.frame)
        row = np.zeros(5 + len(chains))
        for c in range(x.shape[1]):
            for s in range(0, len(x), args.frame):
                r = np.ascontiguousarray(residual[s:s + args.frame, c])
                plain = cost(r, 0)
                row[0] += plain
                row[1] += min(plain, cost(long_set(r), 0))
                u = r
                for taps, mu in zip(args.taps, args.mu):
                    u = nlms_float(u, taps, mu)
                row[2] += min(plain, cost(u, 0))
                frame_min = min(plain, cost(long_set(r), 0), cost(u, 0))
                for i, chain in enumerate(chains):
                    u = r
                    for kind, a in chain:
                        u = (lms(u, int(a[0]), int(a[1]), int(a[2]), True) if kind == "S"
                             else nlms_float(u, int(a[0]), float(a[1])))
                    row[5 + i] += min(plain, cost(u, 0))
                    frame_min = min(frame_min, cost(u, 0))
                row[4] += frame_min
                if args.integer:
                    u = r
                    for taps, mu in zip(args.taps, args.mu):
                        # mu as a power-of-two fraction-free multiplier: mu = mu_q / 2^10
                        mu_q = max(1, round(mu * 1024))
                        u = nlms_int(u, taps, mu_q, args.wbits, args.gbits,
                                     args.gbits + 10 - args.wbits)
                    row[3] += min(plain, cost(u, 0))
        totals += row
        print(f"{path.name:40s} ols {row[0] / 8:10.0f}  scaled {row[1] / row[0]:.4f}"
              f"  nlms {row[2] / row[0]:.4f}  int {row[3] / row[0]:.4f}  min {row[4] / row[0]:.4f}"
              + "".join(f"  c{i} {v / row[0]:.4f}" for i, v in enumerate(row[5:])), flush=True)
    print(f"{'total':40s} ols {totals[0] / 8:10.0f}  scaled {totals[1] / totals[0]:.4f}"
          f"  nlms {totals[2] / totals[0]:.4f}  int {totals[3] / totals[0]:.4f}"
          f"  min {totals[4] / totals[0]:.4f}"
          + "".join(f"  c{i} {v / totals[0]:.4f}" for i, v in enumerate(totals[5:]))
          + f"  ({time.perf_counter() - began:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
