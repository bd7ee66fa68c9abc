#!/usr/bin/env python3
"""vaelac.numcodecs.Vae against the numcodecs codecs zarr users store recordings with (issue 22).

On each corpus (a directory of WAV files with a MANIFEST.tsv, as benchmarks/corpus builds), the
audio is cut into chunks the way zarr users chunk, and every codec encodes and decodes every
chunk, one chunk at a time, side by side in this one process (one core: no codec is given
threads), each decoded chunk checked equal to the input:

* ``1s``: every file in chunks of 1 s x all its channels (int8, int16 or int32 by its depth);
* ``30000x64``: a 64-channel int16 array built by laying the channels of the corpus's 16-bit
  files of its most common rate end to end and cutting that into 64 columns of
  ``--stack-samples`` samples, in chunks of 30,000 samples x 64 channels.

Codecs: ``Vae(level)`` for each of ``--levels`` and ``Vae(level, model=None)`` (the plain path,
fastest to decode) for each of ``--plain-levels``; ``WavPack(level=1..4)`` of wavpack-numcodecs;
``Flac(level=5, 8)`` of flac-numcodecs (int16 only: its other chunks are counted apart); and
numcodecs' ``Blosc(zstd, clevel 5, byte shuffle)`` after a ``Delta`` filter. A codec whose
package is missing is left out with a note (``python -m pip install ".[zarr]" wavpack-numcodecs
flac-numcodecs``; wavpack-numcodecs builds against libwavpack: ``apt-get install
libwavpack-dev``).

Sizes are % of the chunks' bytes (the dtype's width: 24-bit audio counts 4 bytes a sample);
MB/s are chunk bytes (10**6) per second of this process's CPU time (time.process_time, so other
work on a shared machine does not count), encode and decode apart. ``% int16`` is the size on
the int16 chunks only, the set on which Flac is compared. A chunk a codec fails to encode
(WavPack's encoder fails on some: its output would exceed the input) is named in the JSON and
counted in the table at its raw size.

Each chunk is encoded by every codec, then decoded by each in turn, ``--decode-repeats`` rounds
(3 by default; the machine may be shared), the fastest decode of each codec counted; each plain
level's decode MB/s is given as a multiple of WavPack(level=2)'s, measured side by side. BLAS
threads are limited to one.

Usage:
  zarr_bench.py [--corpus DIR ...] [--limit-seconds N] [--stack-samples N] [--levels 0,5,8]
                [--plain-levels 0,2] [--chunkings 1s,30000x64] [--decode-repeats 3]
                [--only 'NAME;NAME'] [--shard K/N] [--json OUT.json] [--md OUT.md]
  zarr_bench.py --merge SHARD.json ... [--json OUT.json] [--md OUT.md]

--limit-seconds N: per corpus, files in sorted-name order until N seconds of audio are taken
  (the 1s chunking), and the 64-column array at most N seconds long per column's rate share
  (see --stack-samples); default: all files.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

# one core: BLAS threads (numpy's, in the encoder's analysis) would spin on the others, and
# process time counts every thread
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

from vaelac.numcodecs import Vae  # noqa: E402
from vaelac.wav import read_wav  # noqa: E402

STACK_CHANNELS = 64
STACK_CHUNK = 30_000


def _manifest(corpus: Path) -> list[dict]:
    lines = (corpus / "MANIFEST.tsv").read_text().splitlines()
    head = lines[0].split("\t")
    rows = [dict(zip(head, line.split("\t"))) for line in lines[1:] if line.strip()]
    return sorted(rows, key=lambda r: r["name"])


def _dtype(bits: int) -> np.dtype:
    return np.dtype("int8" if bits <= 8 else "int16" if bits <= 16 else "int32")


def chunks_1s(corpus: Path, limit: float | None, shard: tuple[int, int] = (0, 1)):
    taken = 0.0
    for i, row in enumerate(_manifest(corpus)):
        if limit is not None and taken >= limit:
            return
        if i % shard[1] != shard[0]:
            continue
        pcm, fmt = read_wav(corpus / row["name"])
        taken += len(pcm) / fmt.sample_rate
        pcm = pcm.astype(_dtype(fmt.bits_per_sample))
        for start in range(0, len(pcm), fmt.sample_rate):
            yield row["name"], fmt.sample_rate, np.ascontiguousarray(
                pcm[start:start + fmt.sample_rate])


def chunks_stacked(corpus: Path, samples: int, shard: tuple[int, int] = (0, 1)):
    rows = [r for r in _manifest(corpus) if r["bits"] == "16"]
    if not rows:
        return
    seconds: dict[int, float] = {}
    for r in rows:
        seconds[int(r["sample_rate"])] = seconds.get(int(r["sample_rate"]), 0.0) + float(
            r["seconds"]) * int(r["channels"])
    rate = max(seconds, key=seconds.get)
    need = samples * STACK_CHANNELS
    parts, have = [], 0
    for r in rows:
        if int(r["sample_rate"]) != rate or have >= need:
            continue
        pcm, _ = read_wav(corpus / r["name"])
        for ch in range(pcm.shape[1]):
            parts.append(pcm[:, ch].astype(np.int16))
            have += len(pcm)
    flat = np.concatenate(parts)[:need]
    samples = len(flat) // STACK_CHANNELS
    array = flat[:samples * STACK_CHANNELS].reshape(STACK_CHANNELS, samples).T
    for i, start in enumerate(range(0, samples, STACK_CHUNK)):
        if i % shard[1] == shard[0]:
            yield f"stack{rate}", rate, np.ascontiguousarray(array[start:start + STACK_CHUNK])


class _Pipeline:
    """A numcodecs filter chain and compressor as one codec."""

    def __init__(self, name, filters, compressor):
        self.name, self.filters, self.compressor, self.only = name, filters, compressor, None

    def encode(self, x):
        for f in self.filters:
            x = f.encode(x)
        return self.compressor.encode(x)

    def decode(self, data, like):
        out = self.compressor.decode(data)
        for f in reversed(self.filters):
            out = f.decode(out)
        return np.frombuffer(out, like.dtype).reshape(like.shape)


class _Plain:
    def __init__(self, name, codec, only=None):
        self.name, self.codec, self.only = name, codec, only

    def encode(self, x):
        return self.codec.encode(x)

    def decode(self, data, like):
        out = self.codec.decode(data)
        return np.frombuffer(out, like.dtype).reshape(like.shape) if not isinstance(
            out, np.ndarray) else out.reshape(like.shape)


def codecs(levels: list[int], plain_levels: list[int]) -> tuple[list, list[str]]:
    found, notes = [], []
    for level in plain_levels:
        found.append(_Plain(f"Vae(level={level}, model=None)", Vae(level=level, model=None)))
    for level in levels:
        found.append(_Plain(f"Vae(level={level})", Vae(level=level)))
    try:
        from wavpack_numcodecs.wavpack import WavPack
        for level in (1, 2, 3, 4):
            found.append(_Plain(f"WavPack(level={level})", WavPack(
                level=level, num_encoding_threads=1, num_decoding_threads=1)))
    except ImportError as exc:
        notes.append(f"wavpack-numcodecs not importable ({exc}): WavPack rows left out")
    try:
        from flac_numcodecs import Flac
        for level in (5, 8):
            found.append(_Plain(f"Flac(level={level})", Flac(level=level), only="int16"))
    except ImportError as exc:
        notes.append(f"flac-numcodecs not importable ({exc}): Flac rows left out")
    import numcodecs
    from numcodecs import Blosc, Delta
    numcodecs.blosc.use_threads = False
    found.append(_Pipeline("Delta+Blosc(zstd,5)", [], Blosc(cname="zstd", clevel=5,
                                                            shuffle=Blosc.SHUFFLE)))
    return found, notes


def run(corpus: Path, chunking: str, chunk_iter, codec_list, repeats: int = 1) -> dict:
    """Every codec encodes the chunk, then the codecs decode it in turn, ``repeats`` rounds
    (each decode follows another codec's, not its own encode), the fastest of each counted."""
    totals = {c.name: dict(raw=0, ok=0, size=0, enc=0.0, dec=0.0, raw16=0, size16=0, skipped=0,
                           failed=[])
              for c in codec_list}
    n = 0
    for _name, _rate, x in chunk_iter:
        n += 1
        coded = []
        for c in codec_list:
            if isinstance(c, _Pipeline):
                from numcodecs import Delta
                c.filters = [Delta(dtype=x.dtype)]
            t = totals[c.name]
            if c.only and str(x.dtype) != c.only:
                t["skipped"] += 1
                continue
            start = time.process_time()
            try:
                data = c.encode(x)
            except Exception as exc:  # noqa: BLE001 - a codec's failure is a result
                # what a zarr write would raise; counted, and the chunk's size taken as raw
                t["failed"].append(f"{_name}: {type(exc).__name__}: {exc}")
                data = None
            t["enc"] += time.process_time() - start
            t["raw"] += x.nbytes
            t["raw16"] += x.nbytes if x.dtype == np.int16 else 0
            size = x.nbytes if data is None else len(data)
            t["size"] += size
            t["size16"] += size if x.dtype == np.int16 else 0
            if data is not None:
                coded.append((c, data))
        best = [None] * len(coded)
        for _ in range(repeats):
            for i, (c, data) in enumerate(coded):
                start = time.process_time()
                y = c.decode(data, x)
                took = time.process_time() - start
                best[i] = took if best[i] is None else min(best[i], took)
                if not np.array_equal(y, x):
                    raise SystemExit(f"{c.name} did not round-trip a chunk of {_name}")
        for (c, _data), took in zip(coded, best):
            totals[c.name]["dec"] += took
            totals[c.name]["ok"] += x.nbytes
    return dict(corpus=str(corpus), chunking=chunking, chunks=n, codecs=totals)


def markdown(results: list[dict], notes: list[str]) -> str:
    out = []
    for r in results:
        out.append(f"\n**{Path(r['corpus']).name}, {r['chunking']} chunks** ({r['chunks']} "
                   "chunks)\n")
        out.append("| codec | size % | % int16 | encode MB/s | decode MB/s |")
        out.append("|---|---:|---:|---:|---:|")
        for name, t in r["codecs"].items():
            if not t["raw"]:
                continue
            pct = "—" if t["skipped"] else f"{100 * t['size'] / t['raw']:.2f}"
            p16 = f"{100 * t['size16'] / t['raw16']:.2f}" if t["raw16"] else "—"
            enc = t["ok"] / 1e6 / t["enc"] if t["enc"] else float("inf")
            dec = t["ok"] / 1e6 / t["dec"] if t["dec"] else float("inf")
            failed = f" ({len(t['failed'])} chunks failed: counted raw)" if t["failed"] else ""
            out.append(f"| {name}{failed} | {pct} | {p16} | {enc:.2f} | {dec:.1f} |")
        anchor = r["codecs"].get("WavPack(level=2)")
        for name, t in r["codecs"].items():
            if "model=None" in name and t["dec"] and anchor and anchor["dec"]:
                ratio = (t["ok"] / t["dec"]) / (anchor["ok"] / anchor["dec"])
                out.append(f"\n{name}: {ratio:.3f}x WavPack(level=2)'s decode MB/s")
    for note in notes:
        out.append(f"\n{note}")
    return "\n".join(out)


def merge(runs: list[dict]) -> tuple[list[dict], list[str]]:
    """The results of several runs (shards of the same corpora) added up, in first-seen order."""
    merged: dict[tuple[str, str], dict] = {}
    notes: list[str] = []
    for data in runs:
        notes += [n for n in data["notes"] if n not in notes]
        for r in data["results"]:
            key = (r["corpus"], r["chunking"])
            into = merged.setdefault(key, dict(corpus=r["corpus"], chunking=r["chunking"],
                                               chunks=0, codecs={}))
            into["chunks"] += r["chunks"]
            for name, t in r["codecs"].items():
                have = into["codecs"].setdefault(name, {k: ([] if k == "failed" else 0)
                                                        for k in t})
                for k, v in t.items():
                    have[k] += v
    return list(merged.values()), notes


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    here = Path(__file__).resolve().parents[1]
    ap.add_argument("--corpus", action="append", type=Path)
    ap.add_argument("--limit-seconds", type=float)
    ap.add_argument("--stack-samples", type=int, default=None,
                    help="samples per column of the 64-channel array (default: 300,000, or "
                    "what --limit-seconds allows at 44.1 kHz)")
    ap.add_argument("--levels", default="0,5,8", help="Vae levels with the shipped model")
    ap.add_argument("--plain-levels", default="0,2",
                    help="Vae levels on the plain path (model=None), the fastest to decode")
    ap.add_argument("--chunkings", default="1s,30000x64")
    ap.add_argument("--decode-repeats", type=int, default=3,
                    help="decode each chunk this many times, the fastest counted (default 3)")
    ap.add_argument("--only", help="only these codecs, by their row names, ';' between "
                    "(e.g. 'Vae(level=0, model=None);WavPack(level=2)')")
    ap.add_argument("--shard", default="0/1",
                    help="K/N: only the files (1s) or chunks (30000x64) whose index is K mod N, "
                    "to run one corpus as N processes; --merge adds their JSON up")
    ap.add_argument("--merge", type=Path, nargs="+",
                    help="add up the results of these --json files (shards) and print them")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--md", type=Path)
    args = ap.parse_args(argv)
    if args.merge:
        results, notes = merge([json.loads(p.read_text()) for p in args.merge])
        text = markdown(results, notes)
        if args.json:
            args.json.write_text(json.dumps(dict(results=results, notes=notes), indent=1))
        if args.md:
            args.md.write_text(text + "\n")
        print(text)
        return 0
    shard = tuple(int(v) for v in args.shard.split("/"))
    corpora = args.corpus or [p for p in (here / "corpus" / "dev", here / "corpus" / "wide",
                                          here.parent / "corpus" / "dev",
                                          here.parent / "corpus" / "wide")
                              if (p / "MANIFEST.tsv").is_file()]
    if not corpora:
        ap.error("no corpus: build one (benchmarks/README.md) or give --corpus")
    stack = args.stack_samples or (300_000 if args.limit_seconds is None else
                                   max(STACK_CHUNK, int(args.limit_seconds * 44100
                                                        / STACK_CHANNELS)))
    codec_list, notes = codecs([int(v) for v in args.levels.split(",") if v],
                               [int(v) for v in args.plain_levels.split(",") if v])
    if args.only:
        wanted = [w.strip() for w in args.only.split(";")]
        codec_list = [c for c in codec_list if c.name in wanted]
    results = []
    for corpus in corpora:
        for chunking in args.chunkings.split(","):
            it = (chunks_1s(corpus, args.limit_seconds, shard) if chunking == "1s"
                  else chunks_stacked(corpus, stack, shard))
            result = run(corpus, chunking, it, codec_list, args.decode_repeats)
            results.append(result)
            print(markdown([result], []), flush=True)
            if args.json:
                args.json.write_text(json.dumps(dict(results=results, notes=notes), indent=1))
    text = markdown(results, notes)
    if args.md:
        args.md.write_text(text + "\n")
    print("\n".join(notes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
