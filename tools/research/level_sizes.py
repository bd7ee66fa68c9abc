"""Total coded size and in-process encode speed of whole-corpus encodes at given levels.

    python tools/research/level_sizes.py ../corpus/dev 5 6 7 8
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import vaelac
from vaelac.wav import read_wav


def main(argv: list[str]) -> int:
    corpus, levels = Path(argv[0]), [int(a) for a in argv[1:]] or [5]
    files = [read_wav(p) for p in sorted(corpus.glob("*.wav"))]
    raw = sum(len(pcm) * fmt.channels * fmt.container // 8 for pcm, fmt in files)
    for level in levels:
        size = seconds = audio = 0.0
        for pcm, fmt in files:
            t0 = time.perf_counter()
            size += len(vaelac.encode(pcm, fmt.sample_rate, bits=fmt.bits_per_sample,
                                      level=level))
            seconds += time.perf_counter() - t0
            audio += len(pcm) / fmt.sample_rate
        print(f"level {level}: {int(size)} bytes, {100 * size / raw:.2f} % of PCM, encode "
              f"{audio / seconds:.1f}x real time in-process")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
