"""Issue 7 probe: how much would a sac-style predictor cascade save over the shipped levels?

Not part of the codec and not a test: a float model of a continuous (never reset, or reset every
``--reset`` samples) cascade — a recursive least-squares (OLS) stage of ``--order`` taps per
channel (plus as many taps of the other channel, its current sample included for the second
channel; with ``--irls P`` each sample weighted as in sac, stop 17), two NLMS stages on the
residual, and a bias stage — whose residuals are costed at their
ideal size under an adaptive geometric model like the range coder's (§7.3; measured within 0.1 %
of the real coder on the plain path). Compared per file with the sizes a codec_bench JSON holds.

Needs numba and soundfile (``pip install numba soundfile``). Example (figures in docs/predictor-research.md):

    python benchmarks/codec_bench.py --corpus ../corpus/dev --json run.json ...
    python tools/research/cascade_probe.py ../corpus/dev run.json --min-seconds 20
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numba as nb
import numpy as np
import soundfile as sf


@nb.njit(cache=True)
def ideal_bits(residual):
    """Bits under an adaptive geometric law whose mean tracks the coder's stat (§7.3)."""
    stat, bits = 16.0 * 8, 0.0
    for e in residual:
        u = 2 * e if e >= 0 else -2 * e - 1
        p = 1.0 / (1.0 + stat / 16 + 0.3)
        bits += -np.log2(p) - u * np.log2(1 - p)
        stat += u - stat / 16
    return bits


@nb.njit(cache=True)
def cascade(x, order, lam, delta, solve_every, n1, mu1, n2, mu2, stereo, reset, irls=0.0):
    n, channels = x.shape
    out = np.zeros((n, channels), np.int64)
    cross = stereo and channels == 2
    k = order * (2 if cross else 1)
    for c in range(channels):
        R = np.eye(k) * delta
        b, w, v = np.zeros(k), np.zeros(k), np.zeros(k)
        W1, h1, W2, h2 = np.zeros(n1), np.zeros(n1), np.zeros(n2), np.zeros(n2)
        bias, esum = 0.0, 0.0
        for t in range(n):
            if reset > 0 and t % reset == 0:
                R[:, :] = np.eye(k) * delta
                b[:] = 0.0
                w[:] = 0.0
                W1[:] = 0.0
                h1[:] = 0.0
                W2[:] = 0.0
                h2[:] = 0.0
                bias, esum = 0.0, 0.0
            for j in range(order):
                v[j] = x[t - 1 - j, c] if t - 1 - j >= 0 else 0.0
            if cross:
                for j in range(order):
                    tt = t - j if c == 1 else t - 1 - j
                    v[order + j] = x[tt, 1 - c] if tt >= 0 else 0.0
            p0 = 0.0
            for j in range(k):
                p0 += w[j] * v[j]
            e0 = x[t, c] - p0
            p1, norm1 = 0.0, 1e-3
            for j in range(n1):
                p1 += W1[j] * h1[j]
                norm1 += h1[j] * h1[j]
            e1 = e0 - p1
            p2, norm2 = 0.0, 1e-3
            for j in range(n2):
                p2 += W2[j] * h2[j]
                norm2 += h2[j] * h2[j]
            e2 = e1 - p2
            out[t, c] = int(x[t, c] - np.round(p0 + p1 + p2 + bias))
            bias += 0.002 * (e2 - bias)
            for j in range(n1):
                W1[j] += mu1 * e1 / norm1 * h1[j]
            for j in range(n2):
                W2[j] += mu2 * e2 / norm2 * h2[j]
            for j in range(n1 - 1, 0, -1):
                h1[j] = h1[j - 1]
            if n1 > 0:
                h1[0] = e0
            for j in range(n2 - 1, 0, -1):
                h2[j] = h2[j - 1]
            if n2 > 0:
                h2[0] = e1
            # sac's robust weighting (IRLS): a sample counts (esum + 2)^-irls, esum a fast running
            # sum of |e0|, so loud transients do not dominate the fit
            esum = 0.5 * esum + abs(e0)
            cw = (esum + 2.0) ** -irls if irls > 0 else 1.0
            s = x[t, c]
            for i in range(k):
                b[i] = lam * b[i] + cw * v[i] * s
                for j in range(k):
                    R[i, j] = lam * R[i, j] + cw * v[i] * v[j]
            if t % solve_every == solve_every - 1:
                A = R.copy()
                for i in range(k):
                    A[i, i] += delta * cw
                try:  # a singular system (digital silence) keeps the last weights
                    w = np.linalg.solve(A, b)
                except Exception:  # noqa: BLE001 - numba raises LinAlgError as Exception
                    pass
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("corpus", type=Path)
    p.add_argument("bench_json", type=Path, help="codec_bench --json output (sizes to compare)")
    p.add_argument("--min-seconds", type=float, default=0.0)
    p.add_argument("--max-seconds", type=float, default=float("inf"))
    p.add_argument("--every", type=int, default=1, help="take every N-th file")
    p.add_argument("--order", type=int, default=16)
    p.add_argument("--lam", type=float, default=0.998)
    p.add_argument("--nlms", type=int, nargs=2, default=(32, 16))
    p.add_argument("--mono", action="store_true", help="no cross-channel taps")
    p.add_argument("--reset", type=int, default=0, help="reset all state every N samples")
    p.add_argument("--json", type=Path, help="write each file's ideal size (bytes) here")
    p.add_argument("--irls", type=float, default=0.0,
                   help="weight each sample (esum + 2)^-IRLS in the OLS fit (sac: 0.8)")
    args = p.parse_args(argv)
    sizes: dict[str, dict[str, int]] = {}
    for r in json.loads(args.bench_json.read_text())["results"]:
        sizes.setdefault(r["file"], {})[r["codec"]] = r["bytes"]
    codecs = sorted({c for s in sizes.values() for c in s})
    files = [f for f in sorted(args.corpus.rglob("*.wav"))
             if args.min_seconds <= sf.info(f).duration < args.max_seconds][::args.every]
    total = dict.fromkeys(codecs + ["cascade", "raw"], 0.0)
    seconds, start, per_file = 0.0, time.perf_counter(), {}
    for f in files:
        info = sf.info(f)
        bits = {"PCM_16": 16, "PCM_24": 24, "PCM_32": 32, "PCM_U8": 8}[info.subtype]
        x = sf.read(f, dtype="int32", always_2d=True)[0].astype(np.int64) >> (32 - bits)
        res = cascade(x, args.order, args.lam, 0.001, 8, args.nlms[0], 0.002, args.nlms[1],
                      0.004, not args.mono, args.reset, args.irls)
        per_file[f.name] = sum(ideal_bits(res[:, c]) for c in range(x.shape[1])) / 8
        total["cascade"] += per_file[f.name]
        total["raw"] += x.size * bits / 8
        seconds += info.duration
        for c in codecs:
            total[c] += sizes[f.name][c]
    wall = time.perf_counter() - start
    print(f"{len(files)} files, {seconds:.0f} s of audio, cascade {seconds / wall:.1f}x real time "
          "(float, one direction)")
    for name in codecs + ["cascade"]:
        print(f"  {name:14s} {100 * total[name] / total['raw']:6.2f} % of PCM"
              + "".join(f"  {total[name] / total[c]:.4f}x {c}" for c in codecs if c != name))
    if args.json:
        args.json.write_text(json.dumps(per_file, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
