"""Issue 7 probe: how much would a residual coder gain from knowing the *coming* residuals'
magnitudes (as a bit-plane coder that codes the high planes of a whole block first does)?

Not part of the codec and not a test. On the residuals level 8 codes (every ``--every``-th
corpus file, through stage_probe.collect), the static conditional entropy of each residual's
bit length given (a) the bit length of a running mean of the past |e| (§7's context, at 2
steps per octave), (b) that and the same of a running mean of the *following* residuals' bit
lengths; the bits below the leading one and the sign are counted raw in both. (a) lands
within 0.1 % of the real coder's size, so the difference is what the future context is worth
at most to a coder of this kind.

    python tools/research/twosided_probe.py ../corpus/dev --every 6
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numba as nb
import numpy as np

from stage_probe import collect


@nb.njit(cache=True)
def features(e, rate):
    n = len(e)
    length = np.empty(n, np.int64)
    past = np.empty(n, np.int64)
    coming = np.empty(n, np.int64)
    for i in range(n):
        v, b = abs(e[i]), 0
        while v > 0:
            b += 1
            v >>= 1
        length[i] = b
    m = 4.0
    for i in range(n):
        past[i] = min(63, int(2 * math.log2(m + 1)))
        m += (abs(e[i]) - m) / rate
    m = 4.0
    for i in range(n - 1, -1, -1):
        coming[i] = min(63, int(2 * math.log2(m + 1)))
        m += ((0.0 if length[i] == 0 else 0.75 * (1 << length[i])) - m) / rate
    return length, past, coming


def conditional_bits(context: np.ndarray, symbol: np.ndarray) -> float:
    _, joint = np.unique(context * 64 + symbol, return_counts=True)
    _, alone = np.unique(context, return_counts=True)
    return float(-(joint * np.log2(joint)).sum() + (alone * np.log2(alone)).sum())


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("corpus", type=Path)
    p.add_argument("--every", type=int, default=6)
    args = p.parse_args(argv)
    seen, parts = set(), []
    for residual, _ in collect(args.corpus, 8, args.every, True):
        key = residual.tobytes()
        if key not in seen:  # the encoder codes some candidates more than once
            seen.add(key)
            parts.append(features(np.asarray(residual, np.int64), 16.0))
    length, past, coming = (np.concatenate(x) for x in zip(*parts))
    raw = float(np.maximum(length - 1, 0).sum() + (length > 0).sum())
    causal = conditional_bits(past, length) + raw
    both = conditional_bits(past * 64 + coming, length) + raw
    print(f"{len(length)} residuals: past context {causal / 8:.0f} bytes, with the coming "
          f"residuals {both / 8:.0f} bytes ({100 * (both / causal - 1):+.2f} %)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
