"""Issue 7 probe: what does §6.5's mixer save over §6.4's plain sum of the stage predictions?

Not part of the codec and not a test. It collects the best LPC residual (and the cross input) of
every subframe the encoder analyses at level 5 (every ``--every``-th corpus file, through
stage_probe.collect), runs each of level 5's stage sets over them with the compiled kernel,
without the mixer and with each (mix_shift, mix_step, mix_bias) asked for, and sums each subframe's coded
size (the kernel's rc_cost, min with the plain LPC residual as the encoder does).

    python tools/research/mixer_probe.py ../corpus/dev --every 3

Figures of stop 14 are in docs/predictor-research.md.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np

from vaelac import encoder as E
from vaelac._backend import kernels as K

from stage_probe import collect, cost


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("corpus", type=Path)
    p.add_argument("--every", type=int, default=3)
    p.add_argument("--mix", type=int, nargs=3, action="append", metavar=("SHIFT", "STEP", "BIAS"),
                   help="a mixer to try (repeatable; default 12 16 0, 12 32 0, 12 16 2)")
    args = p.parse_args(argv)
    mixes = [tuple(m) for m in args.mix] if args.mix else [(12, 16, 0), (12, 32, 0), (12, 16, 2)]
    subframes = collect(args.corpus, 5, args.every, False)
    print(f"{len(subframes)} subframes of every {args.every}th file (level 5)")
    for config in E.LEVELS[5].cascades:
        sizes = dict.fromkeys([None, *mixes], 0.0)
        for r, cross, order in subframes:
            plain = cost(r, order)
            for mix in sizes:
                e = np.array(r, np.int64)
                K.cascade(e, cross, dataclasses.replace(config, mix=None).params, False, mix)
                sizes[mix] += min(plain, cost(e, order))
        taps = " + ".join(str(stage[0]) for stage in config.stages)
        for mix, total in sizes.items():
            label = "plain sum (CASCADE)" if mix is None else "mixer {}/{}/{}".format(*mix)
            print(f"  {taps:16s} {label:22s} {total / 8:12.0f} bytes "
                  f"{100 * (total / sizes[None] - 1):+.3f} %")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
