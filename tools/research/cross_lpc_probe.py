"""Issue 7 probe: would a per-frame inter-channel LPC (transmitted coefficients, no adaptive
state) capture the stereo gain that cascade_probe.py finds with sample-adaptive filters?

Not part of the codec and not a test. For every 4096-sample frame of each stereo file: the
estimated residual bits (log2 of the mean |residual| + 1.94 a sample, a Laplace coder's cost)
of least-squares LPC of order 32 on the best pair of L/R/M/S channels as today, against the
same with the second channel also predicted from the first one's current and 7 past samples.
Float least squares: an upper bound on what quantised coefficients would get.

    python tools/research/cross_lpc_probe.py ../corpus/dev/midi_*.wav
"""

from __future__ import annotations

import sys

import numpy as np
import soundfile as sf

FRAME, ORDER, CROSS = 4096, 32, 8


def lsq_bits(target: np.ndarray, columns: list[np.ndarray]) -> float:
    a = np.stack(columns, 1)
    w, *_ = np.linalg.lstsq(a, target, rcond=None)
    e = target - a @ w
    return len(target) * (np.log2(np.mean(np.abs(e)) + 0.5) + 1.94)


def lagged(x: np.ndarray, lags, start: int, n: int) -> list[np.ndarray]:
    return [x[start - j:start - j + n] for j in lags]


def main(paths: list[str]) -> int:
    total_plain = total_cross = 0.0
    for path in paths:
        x, _ = sf.read(path, dtype="int32")
        if x.ndim == 1:
            continue
        x = x.astype(np.float64)
        ch = {"L": x[:, 0], "R": x[:, 1], "S": x[:, 0] - x[:, 1],
              "M": np.floor((x[:, 0] + x[:, 1]) / 2)}
        plain = cross = 0.0
        for start in range(ORDER, len(x) - FRAME, FRAME):
            own = {k: lsq_bits(v[start:start + FRAME], lagged(v, range(1, ORDER + 1), start, FRAME))
                   for k, v in ch.items()}
            best = min(own["L"] + own["R"], own["L"] + own["S"], own["S"] + own["R"],
                       own["M"] + own["S"])
            with_cross = [own[a] + lsq_bits(ch[b][start:start + FRAME],
                                            lagged(ch[b], range(1, ORDER + 1), start, FRAME)
                                            + lagged(ch[a], range(CROSS), start, FRAME))
                          for a, b in (("L", "R"), ("R", "L"), ("M", "S"), ("S", "M"))]
            plain += best
            cross += min(min(with_cross), best)
        print(f"{path}: {100 * (1 - cross / plain):.2f} % fewer residual bits with cross taps")
        total_plain, total_cross = total_plain + plain, total_cross + cross
    if total_plain:
        print(f"all: {100 * (1 - total_cross / total_plain):.2f} %")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
