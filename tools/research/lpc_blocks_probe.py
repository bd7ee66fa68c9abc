"""Issue 7 probe: would a long CASCADE subframe gain from changing its LPC every few thousand
samples (the stages keep learning over the whole subframe, the LPC follows the signal)?

Not part of the codec and not a test. For every ``--every``-th corpus file, channels 0 and 1
coded independently in frames of ``--frame`` samples: (a) the level-5 LPC analysis of the whole
frame, (b) the same analysis of every ``--block`` samples, each block's residual computed over
the continuous signal (no warm-up at block starts), its coefficients counted with 3 bytes of
header. Then level 5's long stage set (with the mixer, §6.5; the second channel's cross input
the first's residual) over the frame, and the coded size by the kernels' rc_cost (min with the
LPC residual alone).

    python tools/research/lpc_blocks_probe.py ../corpus/dev --every 6
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from vaelac import encoder as E
from vaelac._backend import kernels as K
from vaelac._bitpack import packed_size
from vaelac.lpc import compute_residual
from vaelac.wav import read_wav


def bytes_of(r: np.ndarray) -> float:
    r = np.ascontiguousarray(r, np.int64)
    return K.rc_cost(r, E._mean_log2(r)) / 65536 / 8


def best_predictor(x: np.ndarray, bits: int):
    bests = E._ChannelAnalysis(np.ascontiguousarray(x), bits, E.LEVELS[5]).predicted_bests()
    return bests[-1] if bests else None


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("corpus", type=Path)
    p.add_argument("--every", type=int, default=6)
    p.add_argument("--frame", type=int, default=32768)
    p.add_argument("--block", type=int, default=4096)
    args = p.parse_args(argv)
    stages = E.LEVELS[5].cascades[-1]  # the long set
    totals = [0.0, 0.0]
    for path in sorted(args.corpus.glob("*.wav"))[::args.every]:
        pcm, fmt = read_wav(path)
        sizes = [0.0, 0.0]
        for start in range(0, len(pcm), args.frame):
            frame = pcm[start:start + args.frame].astype(np.int64)
            cross = [None, None]
            for c in range(min(2, frame.shape[1])):
                x = np.ascontiguousarray(frame[:, c])
                whole = best_predictor(x, fmt.bits_per_sample) if len(x) >= 64 else None
                if whole is None:
                    continue
                blocked, side = np.empty_like(x), 0
                for k in range(0, len(x), args.block):
                    block = x[k:k + args.block]
                    own = best_predictor(block, fmt.bits_per_sample) if len(block) >= 64 else None
                    pred = own or whole
                    lo = max(0, k - pred.order)
                    blocked[k:k + args.block] = compute_residual(
                        np.ascontiguousarray(x[lo:k + args.block]), pred.coefs, pred.shift)[k - lo:]
                    side += 3 + packed_size(pred.order, pred.coef_bits)
                for i, (r, extra) in enumerate(((np.array(whole.residual), 0), (blocked, side))):
                    e = r.copy()
                    other = cross[i] if cross[i] is not None and len(cross[i]) == len(e) else None
                    K.cascade(e, other, stages.params, False, stages.mix)
                    sizes[i] += min(bytes_of(r), bytes_of(e)) + whole.header_size + extra
                    cross[i] = r
        totals = [t + s for t, s in zip(totals, sizes)]
        print(f"{path.name:40s} frame LPC {sizes[0]:10.0f}  block LPC {sizes[1]:10.0f} "
              f"{100 * (sizes[1] / sizes[0] - 1):+6.2f} %", flush=True)
    print(f"{'all':40s} frame LPC {totals[0]:10.0f}  block LPC {totals[1]:10.0f} "
          f"{100 * (totals[1] / totals[0] - 1):+6.2f} %")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
