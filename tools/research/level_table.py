"""Every level on every corpus file, in-process: sizes, encode and decode speed, per category
and per bit depth, against flac -8 from a codec_bench JSON (issue 7's report).

    python benchmarks/codec_bench.py --corpus ../corpus/dev --only flac-8 --json flac.json
    python tools/research/level_table.py ../corpus/dev flac.json --json levels.json [--plot levels.svg]

Decode speed is the whole `vaelac.decode` (numpy out) of the stream in memory, so it omits a
CLI's start-up and file output; the README quotes the bench's CLI figures beside it.
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

import vaelac
from vaelac.wav import read_wav


def measure(corpus: Path, levels: list[int]) -> list[dict]:
    manifest = {row["name"]: row for row in csv.DictReader(
        (corpus / "MANIFEST.tsv").open(), delimiter="\t")}
    rows = []
    for path in sorted(corpus.glob("*.wav")):
        pcm, fmt = read_wav(path)
        for level in levels:
            t0 = time.perf_counter()
            data = vaelac.encode(pcm, fmt.sample_rate, bits=fmt.bits_per_sample, level=level)
            t1 = time.perf_counter()
            decoded, _ = vaelac.decode(data, always_2d=True)
            t2 = time.perf_counter()
            assert (decoded == pcm).all(), (path.name, level)
            rows.append(dict(file=path.name, category=manifest[path.name]["category"],
                             bits=fmt.bits_per_sample, level=level, bytes=len(data),
                             raw_bytes=len(pcm) * fmt.channels * fmt.container // 8,
                             seconds=len(pcm) / fmt.sample_rate, enc_s=t1 - t0, dec_s=t2 - t1))
    return rows


def table(rows: list[dict], flac: dict[str, int]) -> str:
    levels = sorted({r["level"] for r in rows})
    groups = {"all": lambda r: True, "16-bit": lambda r: r["bits"] <= 16,
              "24-bit": lambda r: r["bits"] > 16}
    for cat in sorted({r["category"] for r in rows}):
        groups[cat] = lambda r, cat=cat: r["category"] == cat
    head = "| level | " + " | ".join(groups) + " | enc x-RT | dec x-RT |"
    lines = [head, "|" + "---|" * (len(groups) + 3)]

    def ratio(sel):
        return sum(r["bytes"] for r in sel) / sum(r["raw_bytes"] for r in sel)

    first = [r for r in rows if r["level"] == levels[0]]
    flac_row = ["flac -8"]
    for test in groups.values():
        sel = [r for r in first if test(r)]
        flac_row.append(f"{100 * sum(flac[r['file']] for r in sel) / sum(r['raw_bytes'] for r in sel):.2f}")
    for level in levels:
        sel_level = [r for r in rows if r["level"] == level]
        cells = [f"-{level}"]
        for test in groups.values():
            sel = [r for r in sel_level if test(r)]
            f = sum(flac[r["file"]] for r in sel) / sum(r["raw_bytes"] for r in sel)
            cells.append(f"{100 * ratio(sel):.2f} ({ratio(sel) / f:.3f})")
        audio = sum(r["seconds"] for r in sel_level)
        cells.append(f"{audio / sum(r['enc_s'] for r in sel_level):.0f}")
        cells.append(f"{audio / sum(r['dec_s'] for r in sel_level):.0f}")
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("| " + " | ".join(flac_row) + " | | |")
    return "\n".join(lines)


def plot(rows: list[dict], flac: dict[str, int], path: Path) -> None:
    """size against decode speed, one point per level, as a dependency-free SVG."""
    levels = sorted({r["level"] for r in rows})
    points = []
    for level in levels:
        sel = [r for r in rows if r["level"] == level]
        size = 100 * sum(r["bytes"] for r in sel) / sum(r["raw_bytes"] for r in sel)
        audio = sum(r["seconds"] for r in sel)
        points.append((level, size, audio / sum(r["dec_s"] for r in sel),
                       audio / sum(r["enc_s"] for r in sel)))
    flac_size = 100 * sum(flac[r["file"]] for r in rows if r["level"] == levels[0]) / sum(
        r["raw_bytes"] for r in rows if r["level"] == levels[0])
    import math
    w, h, m = 640, 400, 60
    xs = [math.log10(v) for p in points for v in p[2:]]
    x0, x1 = math.floor(min(xs)), math.ceil(max(xs))
    ys = [p[1] for p in points] + [flac_size]
    y0, y1 = math.floor(min(ys) - 0.2), math.ceil(max(ys) + 0.2)

    def px(v):
        return m + (math.log10(v) - x0) / (x1 - x0) * (w - 2 * m)

    def py(v):
        return h - m - (v - y0) / (y1 - y0) * (h - 2 * m)

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
           'font-family="sans-serif" font-size="12">',
           f'<rect width="{w}" height="{h}" fill="white"/>',
           f'<line x1="{m}" y1="{h - m}" x2="{w - m}" y2="{h - m}" stroke="black"/>',
           f'<line x1="{m}" y1="{m}" x2="{m}" y2="{h - m}" stroke="black"/>']
    for e in range(x0, x1 + 1):
        out.append(f'<text x="{px(10 ** e)}" y="{h - m + 16}" text-anchor="middle">{10 ** e}x</text>')
    for v in range(y0, y1 + 1):
        out.append(f'<text x="{m - 6}" y="{py(v) + 4}" text-anchor="end">{v} %</text>')
    out.append(f'<text x="{w / 2}" y="{h - 15}" text-anchor="middle">x real time '
               '(in-process, dev corpus): filled = decode, open = encode</text>')
    out.append(f'<text x="15" y="{h / 2}" transform="rotate(-90 15 {h / 2})" '
               'text-anchor="middle">size, % of PCM</text>')
    out.append(f'<line x1="{m}" y1="{py(flac_size)}" x2="{w - m}" y2="{py(flac_size)}" '
               'stroke="gray" stroke-dasharray="4"/>')
    out.append(f'<text x="{w - m}" y="{py(flac_size) - 4}" text-anchor="end" fill="gray">'
               f'flac -8 {flac_size:.2f} %</text>')
    for level, size, dec, enc in points:
        out.append(f'<circle cx="{px(dec):.1f}" cy="{py(size):.1f}" r="4" fill="black"/>')
        out.append(f'<circle cx="{px(enc):.1f}" cy="{py(size):.1f}" r="4" fill="none" stroke="black"/>')
        out.append(f'<text x="{px(dec) + 6:.1f}" y="{py(size) - 6:.1f}">-{level}</text>')
    out.append("</svg>")
    path.write_text("\n".join(out) + "\n")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("corpus", type=Path)
    p.add_argument("flac_json", type=Path, help="codec_bench --json output with flac-8")
    p.add_argument("--levels", type=int, nargs="*", default=list(range(9)))
    p.add_argument("--json", type=Path, help="write the per-file rows here")
    p.add_argument("--rows", type=Path, help="read rows from an earlier --json instead")
    p.add_argument("--plot", type=Path, help="write an SVG of size against speed")
    args = p.parse_args(argv)
    flac = {r["file"]: r["bytes"] for r in json.loads(args.flac_json.read_text())["results"]
            if r["codec"] == "flac-8"}
    rows = json.loads(args.rows.read_text()) if args.rows else measure(args.corpus, args.levels)
    if args.json:
        args.json.write_text(json.dumps(rows))
    print(table(rows, flac))
    if args.plot:
        plot(rows, flac, args.plot)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
