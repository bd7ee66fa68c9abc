"""Measurements behind the README's model tables: ``python -m vaelac.train.report CORPUS``.

- ``--lossy``: the paper's metrics for ``encode --lossy`` per category of a corpus with a
  MANIFEST.tsv (SNR, MSE in dB of full scale, compression ratio, seconds of processing per
  second of audio), to set beside Obaid & Kadhim's Table 1.
- ``--levels``: size and in-process encode/decode speed of every level, with the default
  model and without (the plain path).
- ``--ablation``: lossless bits with no model, with the model as probability model (MODEL_
  PREDICTED), and with the lossy VAE as a subtractive core (its latents plus the exactly coded
  difference), the design the paper's system suggests and this codec does not use.

Everything is in-process and uses only the codec (no torch).
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from ..encoder import StreamEncoder, resolve_model
from ..decoder import StreamDecoder
from ..spec.constants import ModelKind
from ..wav import read_wav

__all__ = ["main"]


def _categories(corpus: Path) -> dict[str, str]:
    manifest = corpus / "MANIFEST.tsv"
    if not manifest.is_file():
        return {}
    with open(manifest, newline="") as f:
        return {row["name"]: row["category"] for row in csv.DictReader(f, delimiter="\t")}


def _encode(pcm, fmt, **options) -> bytes:
    buf = io.BytesIO()
    enc = StreamEncoder(buf, fmt.sample_rate, fmt.channels, fmt.bits_per_sample,
                        total_samples=len(pcm), **options)
    enc.write(pcm)
    enc.close()
    return buf.getvalue()


def _decode(stream: bytes) -> np.ndarray:
    return np.concatenate(list(StreamDecoder(io.BytesIO(stream))))


def lossy_metrics(files, categories, model) -> dict:
    rows = defaultdict(lambda: defaultdict(float))
    for path in files:
        pcm, fmt = read_wav(path)
        started = time.perf_counter()
        stream = _encode(pcm, fmt, lossy=model, embed_model=False)
        out = _decode(stream)
        seconds = time.perf_counter() - started
        full = float(1 << (fmt.bits_per_sample - 1))
        x, y = pcm / full, out / full
        err = float(np.mean((x - y) ** 2))
        for key in (categories.get(path.name, "other"), "all"):
            r = rows[key]
            r["files"] += 1
            r["snr"] += 10 * np.log10(float(np.mean(x ** 2)) / max(err, 1e-20))
            r["mse_db"] += 10 * np.log10(max(err, 1e-20))
            r["pcm"] += pcm.size * ((fmt.bits_per_sample + 7) // 8)
            r["coded"] += len(stream)
            r["seconds"] += seconds
            r["audio"] += len(pcm) / fmt.sample_rate
    return {k: dict(files=int(v["files"]), snr_db=v["snr"] / v["files"],
                    mse_db=v["mse_db"] / v["files"], ratio=v["pcm"] / v["coded"],
                    seconds_per_second=v["seconds"] / v["audio"]) for k, v in rows.items()}


def ablation(files, residual, lossy) -> dict:
    totals = defaultdict(int)
    for path in files:
        pcm, fmt = read_wav(path)
        totals["pcm"] += pcm.size * ((fmt.bits_per_sample + 7) // 8)
        totals["no model"] += len(_encode(pcm, fmt, model=None))
        totals["model as probability model"] += len(_encode(pcm, fmt, model=residual,
                                                            embed_model=False))
        if lossy is not None:
            latents = _encode(pcm, fmt, lossy=lossy, embed_model=False)
            difference = pcm.astype(np.int64) - _decode(latents)
            bits = fmt.bits_per_sample + 1  # the difference needs one more bit
            buf = io.BytesIO()
            enc = StreamEncoder(buf, fmt.sample_rate, fmt.channels, bits, model=None,
                                total_samples=len(pcm))
            enc.write(difference)
            enc.close()
            totals["subtractive core (lossy VAE + coded difference)"] += (
                len(latents) + len(buf.getvalue()))
    return {k: 100.0 * v / totals["pcm"] for k, v in totals.items() if k != "pcm"}


def levels(files) -> list[tuple]:
    rows = []
    loaded = [read_wav(path) for path in files]
    audio = sum(len(pcm) / fmt.sample_rate for pcm, fmt in loaded)
    pcm_bytes = sum(pcm.size * ((fmt.bits_per_sample + 7) // 8) for pcm, fmt in loaded)
    for level in range(9):
        for model in ("default", None):
            size = encode_s = decode_s = 0.0
            for pcm, fmt in loaded:
                started = time.perf_counter()
                stream = _encode(pcm, fmt, level=level, model=model)
                encode_s += time.perf_counter() - started
                started = time.perf_counter()
                _decode(stream)
                decode_s += time.perf_counter() - started
                size += len(stream)
            rows.append((level, model or "none", 100 * size / pcm_bytes, audio / encode_s,
                         audio / decode_s))
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m vaelac.train.report")
    p.add_argument("corpus", type=Path)
    p.add_argument("--lossy", action="store_true")
    p.add_argument("--ablation", action="store_true")
    p.add_argument("--levels", action="store_true")
    p.add_argument("--every", type=int, default=1, help="use every N-th file")
    args = p.parse_args(argv)
    files = sorted(args.corpus.glob("*.wav"))[:: args.every]
    categories = _categories(args.corpus)
    lossy = resolve_model("default", ModelKind.LOSSY)
    if args.lossy:
        print("| category | files | SNR dB | MSE dB | CR | s per s of audio |")
        print("|---|---|---|---|---|---|")
        for key, r in sorted(lossy_metrics(files, categories, lossy).items(),
                             key=lambda kv: (kv[0] == "all", kv[0])):
            print(f"| {key} | {r['files']} | {r['snr_db']:.2f} | {r['mse_db']:.2f} | "
                  f"{r['ratio']:.2f} | {r['seconds_per_second']:.4f} |")
    if args.levels:
        print("| level | model | size % of PCM | encode x-RT | decode x-RT |")
        print("|---|---|---|---|---|")
        for level, model, size, enc, dec in levels(files):
            print(f"| -{level} | {model} | {size:.2f} | {enc:.0f} | {dec:.0f} |")
    if args.ablation:
        print("| coding | size % of PCM |")
        print("|---|---|")
        for key, value in ablation(files, resolve_model("default"), lossy).items():
            print(f"| {key} | {value:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
