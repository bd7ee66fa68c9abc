"""Exhaustive damage: flip every bit of a stream, one at a time, and cut it at every byte.

Every damaged stream is decoded whole (``vaelac.decode``: every CRC and the PCM MD5) and what
happened is counted per region of the intact stream (signature, version, each metadata block's
header and body, frame headers, payloads, frame CRCs). A flip that decodes without an error is
*undetected*, whether or not the samples changed (a flipped sample rate changes none).

    python tests/fuzz/bitflip.py [STREAM.vae ...]        # default: tests/fuzz/seeds/*.vae

prints one table per stream and a total, and exits 1 when any damage went undetected.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

import vaelac
from vaelac.decoder import StreamDecoder

SEEDS = Path(__file__).resolve().parent / "seeds"


def regions(stream: bytes) -> list[tuple[str, int, int]]:
    """(name, start, end) of every region of an intact stream, in order, covering it whole."""
    import io

    dec = StreamDecoder(io.BytesIO(stream))
    dec.keep_frame_infos = True
    while dec.read_frame_image() is not None:
        pass
    out = [("signature", 0, 8), ("version", 8, 10)]
    for name, offset, length in dec.info.blocks:
        out.append((f"{name} header", offset, offset + 4))
        out.append((f"{name} body", offset + 4, offset + 4 + length))
    for fr in dec.frames:
        end = fr.offset + fr.size
        out += [("frame header", fr.offset, fr.offset + 14),
                ("frame payload", fr.offset + 14, end - 4),
                ("frame CRC-32", end - 4, end)]
    covered = sum(e - s for _, s, e in out)
    if covered != len(stream):
        raise AssertionError(f"regions cover {covered} of {len(stream)} bytes")
    return out


def _undetected(damaged: bytes) -> bool:
    try:
        vaelac.decode(damaged)
    except vaelac.VaeError:
        return False
    return True


def flip_counts(stream: bytes) -> tuple[Counter, Counter]:
    """(flips, undetected flips) per region name, over every bit of the stream."""
    flips, undetected = Counter(), Counter()
    for name, start, end in regions(stream):
        for byte in range(start, end):
            for bit in range(8):
                damaged = bytearray(stream)
                damaged[byte] ^= 1 << bit
                flips[name] += 1
                if _undetected(bytes(damaged)):
                    undetected[name] += 1
    return flips, undetected


def truncations_undetected(stream: bytes) -> list[int]:
    """The lengths 0 … len-1 at which a cut stream decodes without an error."""
    return [n for n in range(len(stream)) if _undetected(stream[:n])]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("streams", nargs="*", type=Path)
    args = p.parse_args(argv)
    paths = args.streams or sorted(SEEDS.glob("*.vae"))
    total_flips, total_missed, total_cuts, cuts_missed = Counter(), Counter(), 0, 0
    for path in paths:
        stream = path.read_bytes()
        flips, missed = flip_counts(stream)
        cuts = truncations_undetected(stream)
        total_flips += flips
        total_missed += missed
        total_cuts += len(stream)
        cuts_missed += len(cuts)
        detail = ", ".join(f"{k} {missed[k]}/{flips[k]}" for k in flips if missed[k])
        print(f"{path.name}: {len(stream)} bytes, {sum(flips.values())} flips, "
              f"{sum(missed.values())} undetected{': ' + detail if detail else ''}; "
              f"{len(cuts)} of {len(stream)} truncations undetected")
    print("\nregion                flips  undetected")
    for name in sorted(total_flips):
        print(f"{name:<20} {total_flips[name]:>7}  {total_missed[name]:>10}")
    print(f"{'all':<20} {sum(total_flips.values()):>7}  {sum(total_missed.values()):>10}")
    print(f"truncations: {total_cuts}, undetected {cuts_missed}")
    return 1 if cuts_missed or sum(total_missed.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
