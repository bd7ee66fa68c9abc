"""Issue 7 probe: what would more CASCADE stages, other cross stages, per-subframe step choice,
state carried across frames or richer coder contexts save on top of level 5's stages?

Not part of the codec and not a test. It collects the best LPC residual (and the cross input)
of every subframe the encoder analyses at ``--level`` (every ``--every``-th corpus file), runs
stage variants over them with numba copies of §6.4's integer stages (SCALED, SIGN, cross) or
float ones, and sums each subframe's coded size (the kernels' rc_cost, min with the plain LPC
residual as the encoder does). ``--coder`` instead costs the coded residuals of ``--level`` under
variants of §7.3's context model (finer contexts, two adaptation rates, a fast/slow context).

    python tools/research/stage_probe.py ../corpus/dev --level 5 --every 3
    python tools/research/stage_probe.py ../corpus/dev --level 8 --every 3 --coder

Needs numba. Figures of stop 12 are in docs/predictor-research.md.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numba as nb
import numpy as np

import vaelac
from vaelac import encoder as E
from vaelac._backend import kernels as K
from vaelac.wav import read_wav


def collect(corpus: Path, level: int, every: int, coded: bool):
    """(residual, cross, order) of every subframe's best LPC, or with ``coded`` the residuals
    the range coder was given (with their initial_mean_log2)."""
    subframes: list = []
    original_cascade, original_kernels = E.cascade_coding, E.kernels
    seen: set[int] = set()

    def cascade_coding(config, best, cross):
        if id(best) not in seen:
            seen.add(id(best))
            subframes.append((np.array(best.residual), None if cross is None else
                              np.array(cross), best.order))
        return original_cascade(config, best, cross)

    class Kernels:
        def __getattr__(self, name):
            return getattr(original_kernels, name)

        def rc_encode(self, residual, mean_log2, *latents):
            if not latents:
                subframes.append((np.array(residual, np.int64), mean_log2))
            return original_kernels.rc_encode(residual, mean_log2, *latents)

    if coded:
        E.kernels = Kernels()
    else:
        E.cascade_coding = cascade_coding
    try:
        for path in sorted(corpus.glob("*.wav"))[::every]:
            pcm, fmt = read_wav(path)
            seen.clear()
            vaelac.encode(pcm, fmt.sample_rate, bits=fmt.bits_per_sample, level=level,
                          model=None)
    finally:
        E.cascade_coding, E.kernels = original_cascade, original_kernels
    return subframes


def _mean_log2(r):
    m = np.abs(r).mean() if len(r) else 0
    return max(0, min(40, int(math.log2(max(m, 1)))))


def cost(e, order):
    return K.rc_cost(np.ascontiguousarray(e, np.int64), _mean_log2(e[order:])) / 65536.0


@nb.njit(cache=True)
def _clamp(x):
    return max(-32767, min(32767, x))


@nb.njit(cache=True)
def _sign(x):
    return 1 if x > 0 else (-1 if x < 0 else 0)


@nb.njit(cache=True)
def lms(u, taps, shift, step, scaled):
    """One §6.4 LMS stage (rule SCALED if ``scaled`` else SIGN): its output sequence."""
    n = len(u)
    out = np.empty(n, np.int64)
    w = np.zeros(taps, np.int64)
    h = np.zeros(taps, np.int64)
    d = np.zeros(taps, np.int64)
    m = 0
    for t in range(n):
        acc = 0
        for j in range(taps):
            acc += w[j] * h[j]
        o = u[t] - (acc >> shift)
        out[t] = o
        s = _sign(o)
        if s != 0:
            for j in range(taps):
                w[j] += s * d[j] if scaled else step * s * _sign(h[j])
        x = _clamp(u[t])
        for j in range(taps - 1, 0, -1):
            h[j] = h[j - 1]
            d[j] = d[j - 1]
        h[0] = x
        a = abs(x)
        g = 4 * step if a > 3 * m else (2 * step if 3 * a > 4 * m else (step if a > 0 else 0))
        d[0] = g * _sign(x)
        for i in (1, 2, 8):
            if i < taps:
                d[i] >>= 1
        m = m + ((a - m) >> 4)
    return out


@nb.njit(cache=True)
def cross_stage(r, cross, taps, shift, step):
    n = len(r)
    out = np.empty(n, np.int64)
    cw = np.zeros(taps, np.int64)
    for t in range(n):
        J = min(taps, t + 1)
        acc = 0
        for j in range(J):
            acc += cw[j] * _clamp(cross[t - j])
        o = r[t] - (acc >> shift)
        out[t] = o
        s = _sign(o)
        if s != 0:
            for j in range(J):
                cw[j] += step * s * _sign(cross[t - j])
    return out


@nb.njit(cache=True)
def bias(u, k, rate):
    n = len(u)
    out = np.empty(n, np.int64)
    b = 0
    for t in range(n):
        out[t] = u[t] - ((b + (1 << (k - 1))) >> k)
        b += ((u[t] << k) - b) >> rate
    return out


@nb.njit(cache=True)
def ols(u, order, lam, delta, every):
    """A float recursive least-squares stage on the stage input (an upper bound for an
    integer one)."""
    n = len(u)
    out = np.empty(n, np.int64)
    R = np.eye(order) * delta
    b = np.zeros(order)
    w = np.zeros(order)
    v = np.zeros(order)
    for t in range(n):
        for j in range(order):
            v[j] = u[t - 1 - j] if t - 1 - j >= 0 else 0.0
        p = 0.0
        for j in range(order):
            p += w[j] * v[j]
        out[t] = u[t] - int(np.floor(p + 0.5))
        for i in range(order):
            b[i] = lam * b[i] + v[i] * u[t]
            for j in range(order):
                R[i, j] = lam * R[i, j] + v[i] * v[j]
        if t % every == every - 1:
            A = R.copy()
            for i in range(order):
                A[i, i] += delta
            w = np.linalg.solve(A, b)
    return out


def _main_set(r, cross, step=8, shift=13, with_cross=True):
    u = cross_stage(r, cross, 16, 13, 2) if with_cross and cross is not None else r
    return lms(lms(u, 256, shift, step, True), 16, 11, 8, True)


STAGE_VARIANTS = {
    "level 5 set (cross 16, 256 + 16 SCALED)": lambda r, x: _main_set(r, x),
    "without the cross stage": lambda r, x: _main_set(r, x, with_cross=False),
    "+ bias stage": lambda r, x: bias(_main_set(r, x), 8, 6),
    "+ SCALED 2 taps": lambda r, x: lms(_main_set(r, x), 2, 10, 8, True),
    "+ SIGN 8 taps": lambda r, x: lms(_main_set(r, x), 8, 12, 2, False),
    "float OLS 16 before": lambda r, x: _main_set(ols(r, 16, 0.998, 1.0, 4), x),
    "256 + 32 + 16": lambda r, x: lms(lms(lms(r if x is None else cross_stage(r, x, 16, 13, 2),
                                                256, 13, 8, True), 32, 11, 8, True),
                                        16, 11, 8, True),
    "1024 + 256 + 16": lambda r, x: lms(lms(lms(r if x is None else cross_stage(r, x, 16, 13, 2),
                                                  1024, 15, 8, True), 256, 13, 8, True),
                                          16, 11, 8, True),
}


def stage_report(subframes):
    plain = sum(cost(r, o) for r, _, o in subframes)
    print(f"{len(subframes)} subframes; LPC residual alone {plain / 8:.0f} bytes")
    base = None
    for name, variant in STAGE_VARIANTS.items():
        total = sum(min(cost(r, o), cost(variant(r, x), o)) for r, x, o in subframes)
        base = base or total
        print(f"  {name:42s} {total / 8:12.0f} bytes  {100 * (total / base - 1):+.3f} %")
    total = 0.0
    for r, x, o in subframes:
        options = [cost(r, o)] + [cost(_main_set(r, x, step=s), o) for s in (4, 8, 16)]
        total += min(options)
    print(f"  {'per-subframe step 4 / 8 / 16':42s} {total / 8:12.0f} bytes  "
          f"{100 * (total / base - 1):+.3f} %")
    # state carried across frames: each channel position's residuals run as one sequence
    total = 0.0
    for position in (0, 1):
        chain = [(r, x, o) for r, x, o in subframes if (x is None) == (position == 0)]
        if not chain:
            continue
        whole = _main_set(np.concatenate([r for r, _, _ in chain]),
                          None if position == 0 else np.concatenate([x for _, x, _ in chain]))
        start = 0
        for r, _, o in chain:
            total += min(cost(r, o), cost(whole[start:start + len(r)], o))
            start += len(r)
    print(f"  {'state carried across frames':42s} {total / 8:12.0f} bytes  "
          f"{100 * (total / base - 1):+.3f} %")


@nb.njit(cache=True)
def _bitlen(x):
    n = 0
    while x > 0:
        n += 1
        x >>= 1
    return n


@nb.njit(cache=True)
def coder_bits(res, mean_log2, frac, fast, slow, stat_shift, ctx2_bits):
    """Ideal bits of §7.3/§7.4's model with variants: ``frac`` fractional bits of log2(stat) in
    the context, two adaptation rates averaged (``slow`` > 0), the stat's rate, and a second
    context from a 4x faster stat's ratio to it (``ctx2_bits``)."""
    base = 64 << frac
    nctx = base << ctx2_bits
    tree = np.zeros((nctx, 64, 2), np.int64)
    weights = np.zeros(128)
    for c in range(base):
        centre = max((c >> frac) - 4, 0)
        for length in range(64):
            weights[64 + length] = 2.0 ** max(40 - abs(length - centre), 0)
        for node in range(63, 0, -1):
            weights[node] = weights[2 * node] + weights[2 * node + 1]
        for node in range(1, 64):
            p = min(max(int(weights[2 * node] * 65536 / weights[node]), 512), 65024)
            for k in range(1 << ctx2_bits):
                tree[c + base * k, node, 0] = p
                tree[c + base * k, node, 1] = p
    mant1 = np.full(64, 32768, np.int64)
    mant2 = np.full((64, 2), 32768, np.int64)
    stat = np.int64(1) << (mean_log2 + stat_shift)
    quick = np.int64(1) << (mean_log2 + 2)
    bits = 0.0
    for e in res:
        u = 2 * e if e >= 0 else -2 * e - 1
        bl = _bitlen(stat)
        if frac == 0 or bl == 0:
            c = min(bl << frac, base - 1)
        else:
            top = stat << (frac + 1 - bl) if bl <= frac + 1 else stat >> (bl - frac - 1)
            c = min((bl << frac) + top - (1 << frac), base - 1)
        if ctx2_bits > 0:
            r = _bitlen(quick) + (stat_shift - 2) - bl + (1 << (ctx2_bits - 1))
            c += base * min(max(r, 0), (1 << ctx2_bits) - 1)
        length = _bitlen(u)
        node = 1
        for i in range(6):
            b = (length >> (5 - i)) & 1
            p = (tree[c, node, 0] + tree[c, node, 1]) >> 1 if slow > 0 else tree[c, node, 0]
            bits += -math.log2(p / 65536.0) if b == 0 else -math.log2(1 - p / 65536.0)
            for k, rate in ((0, fast), (1, slow)):
                if rate > 0:
                    q = tree[c, node, k]
                    tree[c, node, k] = q + ((65536 - q) >> rate) if b == 0 else q - (q >> rate)
            node = 2 * node + b
        if length >= 2:
            m1 = (u >> (length - 2)) & 1
            p = mant1[length]
            bits += -math.log2(p / 65536.0) if m1 == 0 else -math.log2(1 - p / 65536.0)
            mant1[length] = p + ((65536 - p) >> 5) if m1 == 0 else p - (p >> 5)
            if length >= 3:
                m2 = (u >> (length - 3)) & 1
                p = mant2[length, m1]
                bits += -math.log2(p / 65536.0) if m2 == 0 else -math.log2(1 - p / 65536.0)
                mant2[length, m1] = p + ((65536 - p) >> 5) if m2 == 0 else p - (p >> 5)
                bits += length - 3
        stat = stat + u - (stat >> stat_shift)
        quick = quick + u - (quick >> 2)
    return bits


CODER_VARIANTS = {  # frac, fast, slow, stat_shift, ctx2_bits
    "§7.3 as specified": (0, 5, 0, 4, 0),
    "1 fractional context bit": (1, 5, 0, 4, 0),
    "adaptation 1/16": (0, 4, 0, 4, 0),
    "rates 1/32 and 1/256 averaged": (0, 5, 8, 4, 0),
    "stat rate 1/8": (0, 5, 0, 3, 0),
    "fast/slow stat context, 2 bits": (0, 5, 0, 4, 2),
    "both rates + fast/slow context, 3 bits": (0, 5, 8, 4, 3),
}


def coder_report(coded):
    base = None
    for name, args in CODER_VARIANTS.items():
        total = sum(coder_bits(r, m, *args) for r, m in coded)
        base = base or total
        print(f"  {name:42s} {total / 8:12.0f} bytes  {100 * (total / base - 1):+.3f} %")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("corpus", type=Path)
    p.add_argument("--level", type=int, default=5)
    p.add_argument("--every", type=int, default=3)
    p.add_argument("--coder", action="store_true")
    args = p.parse_args(argv)
    data = collect(args.corpus, args.level, args.every, args.coder)
    (coder_report if args.coder else stage_report)(data)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
