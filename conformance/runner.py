"""``vaelac-conformance``: check a third-party `.vae` decoder and/or encoder against the spec.

    vaelac-conformance --decoder 'mydec {in} {out}' [--encoder 'myenc {in} {out}'] [--quick]

WAV is the interchange format: a decoder turns ``{in}`` (.vae) into ``{out}`` (.wav); an
encoder turns ``{in}`` (.wav) into ``{out}`` (.vae). The same runs from Python with
:func:`run`. Results: one line per case on stdout, and optional JSON and JUnit XML reports.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ._kit import pcm_md5, read_wav, signal, write_wav
from .generate import VECTORS

__all__ = ["Case", "Report", "run", "main", "REFERENCE_DECODER", "REFERENCE_ENCODER"]

_PY = shlex.quote(sys.executable)
REFERENCE_DECODER = f"{_PY} -m vaelac decode -q -f {{in}} -o {{out}}"
REFERENCE_ENCODER = f"{_PY} -m vaelac encode -q -f {{in}} -o {{out}}"
KINDS = ("silence", "dc", "extremes", "noise", "walk", "wasted", "sine", "chirp", "clipped")


@dataclass
class Case:
    name: str
    group: str
    passed: bool
    reason: str = ""
    seconds: float = 0.0
    reproduce: str = ""


@dataclass
class Report:
    cases: list[Case] = field(default_factory=list)
    seed: int = 0

    @property
    def failed(self) -> list[Case]:
        return [c for c in self.cases if not c.passed]

    @property
    def ok(self) -> bool:
        return not self.failed

    def summary(self) -> str:
        return f"{len(self.cases) - len(self.failed)} passed, {len(self.failed)} failed"


def _run(template, src: Path, dst: Path, timeout: float) -> subprocess.CompletedProcess:
    """Run a command template, or call a Python implementation ``f(src, dst)``."""
    if callable(template):
        try:
            template(src, dst)
            return subprocess.CompletedProcess("python", 0, b"", b"")
        except Exception as exc:  # noqa: BLE001 - a failing implementation reports, not crashes
            return subprocess.CompletedProcess("python", 1, b"", repr(exc).encode())
    cmd = template.replace("{in}", shlex.quote(str(src))).replace("{out}", shlex.quote(str(dst)))
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(cmd, 124, b"", b"timed out")


def _check_decoded(out: Path, entry: dict) -> str:
    """Empty string when ``out`` holds exactly the expected audio, else the reason."""
    if not out.exists():
        return "no output file"
    try:
        pcm, rate, bits = read_wav(out)
    except (ValueError, OSError) as exc:
        return f"output is not a PCM WAV: {exc}"
    want = (entry["sample_rate"], entry["channels"], entry["bits_per_sample"], entry["frames"])
    got = (rate, pcm.shape[1], bits, len(pcm))
    if got != want:
        return f"format (rate, channels, bits, frames) {got}, expected {want}"
    if pcm_md5(pcm, bits) != entry["pcm_md5"]:
        return "decoded samples differ (PCM MD5 mismatch)"
    return ""


def check_vectors(decoder, work: Path, timeout: float, only=None) -> list[Case]:
    manifest = json.loads((VECTORS / "manifest.json").read_text())
    cases = []
    for path, entry in manifest["vectors"].items():
        if only and entry["category"] not in only:
            continue
        src = VECTORS / path
        out = work / (Path(path).stem + ".wav")
        out.unlink(missing_ok=True)
        start = time.monotonic()
        proc = _run(decoder, src, out, timeout)
        elapsed = time.monotonic() - start
        cmd = (decoder.replace("{in}", str(src)).replace("{out}", str(out))
               if isinstance(decoder, str) else f"{decoder!r}({src}, {out})")
        if entry["expect"] == "reject":
            if proc.returncode == 0:
                reason = f"accepted a faulty stream ({entry['exercises']}; expected {entry['error']})"
            elif out.exists():
                reason = "exited non-zero but left an output file"
            else:
                reason = ""
        else:
            reason = (f"exit status {proc.returncode}: "
                      f"{proc.stderr.decode(errors='replace').strip()[-200:]}"
                      if proc.returncode else _check_decoded(out, entry))
            if reason and entry["category"] == "uncommon" and proc.returncode and not out.exists():
                reason = ""  # uncommon: a clean rejection is allowed
        cases.append(Case(f"{path} ({entry['exercises']}, {entry['section']})",
                          f"vectors/{entry['category']}", not reason, reason, elapsed,
                          cmd if reason else ""))
        out.unlink(missing_ok=True)
    return cases


def _transform(pcm: np.ndarray, rate: int, bits: int, seed: int) -> tuple[str, np.ndarray]:
    """A real recording, changed the way training data is (vaelac.augment)."""
    from vaelac.augment import augment

    return augment(pcm, rate, bits, seed)


def _roundtrip_cases(encoder: str, decoder: str, label: str, work: Path, examples: int, seed: int,
                     timeout: float, corpus: list[Path]) -> list[Case]:
    """Hypothesis-driven round trips; a failure is shrunk and written to disk with its command."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import seed as hypothesis_seed
    from hypothesis import strategies as st

    failure: dict = {}
    counter = [0]

    @st.composite
    def params(draw):
        if corpus and draw(st.booleans()):
            path = draw(st.sampled_from(corpus))
            pcm, rate, bits = read_wav(path)
            start = draw(st.integers(0, max(len(pcm) - 1, 0)))
            pcm = pcm[start:start + draw(st.integers(1, 20000))]
            name, pcm = _transform(pcm, rate, bits, draw(st.integers(0, 2**31)))
            return (f"corpus:{path.name}+{name}", pcm, rate, bits)
        bits = draw(st.integers(1, 32))
        channels = draw(st.integers(1, 8))
        n = draw(st.one_of(st.integers(0, 5000), st.sampled_from([0, 1, 4095, 4096, 4097])))
        rate = draw(st.one_of(st.sampled_from([8000, 44100, 48000, 96000]),
                              st.integers(1, 2**32 - 1)))
        kind = draw(st.sampled_from(KINDS))
        return (kind, signal(kind, n, channels, bits, draw(st.integers(0, 2**31))), rate, bits)

    @hypothesis_seed(seed)
    @settings(max_examples=examples, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(params())
    def check(p):
        kind, pcm, rate, bits = p
        counter[0] += 1
        src, mid, dst = work / "case.wav", work / "case.vae", work / "case.out.wav"
        for f in (mid, dst):
            f.unlink(missing_ok=True)
        write_wav(src, pcm, rate, bits)
        enc = _run(encoder, src, mid, timeout)
        problem = ""
        if enc.returncode:
            problem = f"encoder exit {enc.returncode}: {enc.stderr.decode(errors='replace')[-200:]}"
        else:
            dec = _run(decoder, mid, dst, timeout)
            if dec.returncode:
                problem = (f"decoder exit {dec.returncode}: "
                           f"{dec.stderr.decode(errors='replace')[-200:]}")
            else:
                entry = dict(sample_rate=rate, channels=pcm.shape[1], bits_per_sample=bits,
                             frames=len(pcm), pcm_md5=pcm_md5(pcm, bits))
                problem = _check_decoded(dst, entry)
        if problem:
            keep = work / f"failure-{label}"
            keep.mkdir(exist_ok=True)
            for f in (src, mid):
                if f.exists():
                    (keep / f.name).write_bytes(f.read_bytes())
            failure.update(reason=f"{problem} [{kind}, {pcm.shape[1]} ch, {bits} bit, "
                           f"{len(pcm)} samples, {rate} Hz]",
                           reproduce=f"{encoder} | {decoder}  with {keep}/case.wav")
            raise AssertionError(problem)

    start = time.monotonic()
    try:
        check()
        return [Case(f"round trip {label} ({counter[0]} cases, seed {seed})", "roundtrip", True,
                     seconds=time.monotonic() - start)]
    except Exception:  # noqa: BLE001 - any failure of the implementation under test is a finding
        if not failure:
            import traceback

            failure["reason"] = "the kit itself failed: " + traceback.format_exc(limit=2)[-300:]
        return [Case(f"round trip {label} (seed {seed})", "roundtrip", False,
                     "minimal failing case: " + failure.get("reason", "?"),
                     time.monotonic() - start, failure.get("reproduce", ""))]


def run(decoder=None, encoder=None, *, quick: bool = False,
        seed: int | None = None, out_dir: str | Path | None = None, corpus: str | Path | None = None,
        timeout: float = 120.0, log=None) -> Report:
    """Run the suite. ``decoder``/``encoder`` are command templates with {in} and {out}, or
    Python callables ``f(src_path, dst_path)`` that raise on failure."""
    seed = int(seed if seed is not None else time.time()) % 2**31
    report = Report(seed=seed)
    corpus_files = sorted(Path(corpus).glob("*.wav")) if corpus else []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(out_dir) if out_dir else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)

        def add(cases):
            for case in cases:
                report.cases.append(case)
                if log:
                    log(f"{'PASS' if case.passed else 'FAIL'} {case.group}: {case.name}"
                        + (f"\n     {case.reason}\n     reproduce: {case.reproduce}"
                           if not case.passed else ""))

        examples = 8 if quick else 60
        if decoder:
            add(check_vectors(decoder, work, timeout))
            add(_roundtrip_cases(REFERENCE_ENCODER, decoder, "reference-encoder→decoder", work,
                                 examples, seed, timeout, corpus_files))
        if encoder:
            add(_roundtrip_cases(encoder, REFERENCE_DECODER, "encoder→reference-decoder", work,
                                 examples, seed + 1, timeout, corpus_files))
        if encoder and decoder:
            add(_roundtrip_cases(encoder, decoder, "encoder→decoder", work, examples, seed + 2,
                                 timeout, corpus_files))
    return report


def write_junit(report: Report, path: Path) -> None:
    suite = ET.Element("testsuite", name="vaelac-conformance", tests=str(len(report.cases)),
                       failures=str(len(report.failed)))
    for case in report.cases:
        el = ET.SubElement(suite, "testcase", classname=case.group, name=case.name,
                           time=f"{case.seconds:.3f}")
        if not case.passed:
            ET.SubElement(el, "failure", message=case.reason).text = case.reproduce
    ET.ElementTree(suite).write(path, encoding="utf-8", xml_declaration=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="vaelac-conformance", description=__doc__.split("\n")[0])
    p.add_argument("--decoder", help="decoder command template, e.g. 'mydec {in} {out}'")
    p.add_argument("--encoder", help="encoder command template")
    p.add_argument("--reference", action="store_true", help="test the reference CLI itself")
    p.add_argument("--quick", action="store_true", help="about a minute")
    p.add_argument("--seed", type=int, help="replay a run (printed at the start)")
    p.add_argument("--out-dir", help="keep work files and minimal failures here")
    p.add_argument("--corpus", help="a folder of WAV files to draw real excerpts from")
    p.add_argument("--json", help="write a JSON report")
    p.add_argument("--junit", help="write a JUnit XML report")
    args = p.parse_args(argv)
    if args.reference:
        args.decoder, args.encoder = REFERENCE_DECODER, REFERENCE_ENCODER
    if not (args.decoder or args.encoder):
        p.error("give --decoder and/or --encoder (or --reference)")
    seed = args.seed if args.seed is not None else int(time.time()) % 2**31
    print(f"vaelac-conformance: seed {seed} (replay with --seed {seed})")
    report = run(args.decoder, args.encoder, quick=args.quick, seed=seed, out_dir=args.out_dir,
                 corpus=args.corpus, log=print)
    if args.json:
        Path(args.json).write_text(json.dumps(dict(seed=seed, summary=report.summary(),
                                                   cases=[asdict(c) for c in report.cases]),
                                              indent=1))
    if args.junit:
        write_junit(report, Path(args.junit))
    print(report.summary())
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
