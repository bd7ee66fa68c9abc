#!/usr/bin/env python
"""A long stream in bounded memory (issue 6): generate hours of stereo 48 kHz 16-bit audio on
the fly, encode it with ``vaelac.StreamEncoder`` to a file, decode it back with
``vaelac.blocks`` and compare block by block against the regenerated source; report the peak
RSS (``ru_maxrss``) and wall time of the encode and of the decode, each in its own process.

    python tests/fuzz/long_stream.py --hours 3            # the issue's figure (minutes)
    python tests/fuzz/long_stream.py --seconds 120 --json  # what tests/test_long_stream.py runs

The source is never held whole: block *k* (of ``--block`` frames) is a deterministic function
of (seed, k) — four sines with slowly drifting amplitudes plus seeded noise — so the decoding
process regenerates exactly the audio the encoding process saw.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

RATE = 48000
CHANNELS = 2
BITS = 16
BLOCK = 1 << 16


def source_block(seed: int, k: int, frames: int, block: int = BLOCK) -> np.ndarray:
    """Frames [k*block, k*block + frames) of the test signal, int16 of shape (frames, 2)."""
    t = (np.arange(frames, dtype=np.float64) + k * block) / RATE
    freqs = np.array([[110.0, 165.0], [440.0, 660.5], [1234.5, 987.0], [5000.0, 7000.0]])
    amps = np.array([6000.0, 3000.0, 1500.0, 400.0])
    drift = 0.6 + 0.4 * np.sin(2 * np.pi * t / 37.0)[:, None]  # a 37 s swell
    x = np.zeros((frames, CHANNELS))
    for f, a in zip(freqs, amps):
        x += a * np.sin(2 * np.pi * t[:, None] * f[None, :])
    x *= drift
    x += np.random.default_rng([seed, k]).normal(0, 60, (frames, CHANNELS))
    return np.clip(np.round(x), -32768, 32767).astype(np.int16)


def blocks_of(total: int, block: int = BLOCK):
    for k in range(-(-total // block)):
        yield k, min(block, total - k * block)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def encode_phase(path: str, total: int, seed: int, level: int) -> dict:
    import vaelac

    t0 = time.monotonic()
    with open(path, "wb") as f:
        enc = vaelac.StreamEncoder(f, RATE, CHANNELS, BITS, level=level, total_samples=total)
        for k, n in blocks_of(total):
            enc.write(source_block(seed, k, n))
        enc.close()
    return {"phase": "encode", "seconds": time.monotonic() - t0, "peak_rss_mb": peak_rss_mb(),
            "bytes": os.path.getsize(path)}


def decode_phase(path: str, total: int, seed: int) -> dict:
    import vaelac

    t0 = time.monotonic()
    info = vaelac.info(path)
    assert info.total_samples == total and info.pcm_md5 is not None, info
    done = 0
    for (k, n), got in zip(blocks_of(total), vaelac.blocks(path, BLOCK, always_2d=True)):
        if got.shape != (n, CHANNELS) or not np.array_equal(got, source_block(seed, k, n)):
            raise SystemExit(f"block {k} (samples {k * BLOCK}..) differs from the source")
        done += n
    if done != total:  # blocks() also checked every CRC and, at the end, the PCM MD5
        raise SystemExit(f"decoded {done} of {total} samples")
    return {"phase": "decode", "seconds": time.monotonic() - t0, "peak_rss_mb": peak_rss_mb(),
            "samples": done}


def run(total: int, seed: int, level: int, path: str, keep: bool) -> dict:
    """Each phase in a fresh process, so that each peak RSS is its own."""
    out = {"samples_per_channel": total, "audio_seconds": total / RATE, "rate": RATE,
           "channels": CHANNELS, "bits": BITS, "level": level, "seed": seed,
           "pcm_bytes": total * CHANNELS * BITS // 8}
    try:
        for phase in ("encode", "decode"):
            r = subprocess.run([sys.executable, __file__, "--phase", phase, "--samples",
                                str(total), "--seed", str(seed), "--level", str(level),
                                "--path", path], capture_output=True, text=True)
            if r.returncode:
                raise SystemExit(f"{phase} failed:\n{r.stderr}{r.stdout}")
            out[phase] = json.loads(r.stdout.strip().splitlines()[-1])
    finally:
        if not keep and os.path.exists(path):
            os.unlink(path)
    out["ratio_percent"] = 100 * out["encode"]["bytes"] / out["pcm_bytes"]
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    length = p.add_mutually_exclusive_group()
    length.add_argument("--hours", type=float)
    length.add_argument("--seconds", type=float)
    length.add_argument("--samples", type=int, help=argparse.SUPPRESS)
    p.add_argument("--seed", type=int, default=6)
    p.add_argument("--level", type=int, default=5)
    p.add_argument("--path", help="where the .vae goes (default: a temporary file)")
    p.add_argument("--keep", action="store_true", help="keep the .vae")
    p.add_argument("--json", action="store_true", help="print only the JSON summary")
    p.add_argument("--phase", choices=("encode", "decode"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.phase:
        result = (encode_phase(args.path, args.samples, args.seed, args.level)
                  if args.phase == "encode" else decode_phase(args.path, args.samples, args.seed))
        print(json.dumps(result))
        return 0
    total = (args.samples if args.samples is not None
             else int(round((args.seconds if args.seconds is not None
                             else 3600 * (args.hours if args.hours is not None else 3)) * RATE)))
    path = args.path
    if path is None:
        fd, path = tempfile.mkstemp(suffix=".vae")
        os.close(fd)
    result = run(total, args.seed, args.level, path, args.keep)
    if args.json:
        print(json.dumps(result))
    else:
        e, d = result["encode"], result["decode"]
        hours = result["audio_seconds"] / 3600
        print(f"{hours:.3f} h stereo {RATE} Hz {BITS}-bit ({result['pcm_bytes'] / 1e9:.2f} GB "
              f"of PCM), level {args.level}, seed {args.seed}")
        print(f"encode: {e['seconds']:.1f} s ({result['audio_seconds'] / e['seconds']:.1f}x "
              f"real time), peak RSS {e['peak_rss_mb']:.1f} MB, {e['bytes'] / 1e9:.3f} GB "
              f"({result['ratio_percent']:.2f} % of PCM)")
        print(f"decode: {d['seconds']:.1f} s ({result['audio_seconds'] / d['seconds']:.1f}x "
              f"real time), peak RSS {d['peak_rss_mb']:.1f} MB, every block equal, MD5 checked")
    return 0


if __name__ == "__main__":
    sys.exit(main())
