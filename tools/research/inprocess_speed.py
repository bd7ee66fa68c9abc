"""Encode and decode speed without process start-up: the same files as codec_bench's "≥ 20 s"
columns, through the Python API in one process (the first file is coded once beforehand so
that loading the kernels and the model is not counted). Checks every round trip.

    python tools/research/inprocess_speed.py ../corpus/dev --model default none
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

import vaelac
from vaelac.encoder import DEFAULT_LEVEL
from vaelac.wav import read_wav


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("corpus", type=Path)
    p.add_argument("--min-seconds", type=float, default=20.0)
    p.add_argument("--level", type=int, default=DEFAULT_LEVEL)
    p.add_argument("--model", nargs="+", default=["default", "none"])
    args = p.parse_args(argv)
    files = []
    for path in sorted(args.corpus.rglob("*.wav")):
        pcm, fmt = read_wav(path)
        if len(pcm) >= args.min_seconds * fmt.sample_rate:
            files.append((path, pcm, fmt))
    audio = sum(len(pcm) / fmt.sample_rate for _, pcm, fmt in files)
    for model in args.model:
        chosen = None if model == "none" else model
        _, pcm, fmt = files[0]
        warm = vaelac.encode(pcm[:4096], fmt.sample_rate, bits=fmt.bits_per_sample, model=chosen)
        vaelac.decode(warm)
        enc = dec = 0.0
        for path, pcm, fmt in files:
            t0 = time.perf_counter()
            stream = vaelac.encode(pcm, fmt.sample_rate, bits=fmt.bits_per_sample, level=args.level,
                                   model=chosen)
            t1 = time.perf_counter()
            out, _ = vaelac.decode(stream)
            dec += time.perf_counter() - t1
            enc += t1 - t0
            if not np.array_equal(out, pcm.reshape(len(pcm), -1)):
                raise SystemExit(f"{path}: round trip differs")
        print(f"model {model}: {len(files)} files, {audio:.0f} s of audio: "
              f"encode {audio / enc:.1f}x, decode {audio / dec:.1f}x real time (in-process, "
              "every round trip exact)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
