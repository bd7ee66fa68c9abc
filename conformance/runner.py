"""``vaelac-conformance``: check a third-party `.vae` decoder and/or encoder against the spec.

    vaelac-conformance --decoder 'mydec {in} {out}' [--encoder 'myenc {in} {out}'] [--quick]

WAV is the interchange format: a decoder turns ``{in}`` (.vae) into ``{out}`` (.wav); an
encoder turns ``{in}`` (.wav) into ``{out}`` (.vae). The same runs from Python with
:func:`run`. Results: one line per case on stdout, and optional JSON and JUnit XML reports.
"""

from __future__ import annotations

import argparse
import functools
import io
import json
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from vaelac.spec.errors import MissingDependencyError
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


def _command(template, src: Path, dst: Path) -> str:
    """The command line that reproduces one call (shell-quoted as :func:`_run` runs it)."""
    if callable(template):
        return f"{getattr(template, '__name__', template)!s}({str(src)!r}, {str(dst)!r})"
    return template.replace("{in}", shlex.quote(str(src))).replace("{out}",
                                                                    shlex.quote(str(dst)))


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


def _model_hint(needed: dict) -> str:
    """Where the model a vector names is: its file as vaelac installs it, else in the repo."""
    name = Path(needed["file"]).name
    try:
        from importlib import resources

        installed = resources.files("vaelac").joinpath("data", "models", name)
        where = str(installed) if installed.is_file() else needed["file"]
    except (ImportError, OSError, TypeError):
        where = needed["file"]
    return f"{needed['name']}, SHA-256 {needed['sha256'][:16]}…, file {where}"


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
        cmd = _command(decoder, src, out)
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
            if reason and entry.get("needs_model"):
                reason += f" [needs the learned model: {_model_hint(entry['needs_model'])}]"
        cases.append(Case(f"{path} ({entry['exercises']}, {entry['section']})",
                          f"vectors/{entry['category']}", not reason, reason, elapsed,
                          cmd if reason else ""))
        out.unlink(missing_ok=True)
    return cases


def _transform(pcm: np.ndarray, rate: int, bits: int, seed: int) -> tuple[str, np.ndarray]:
    """A real recording, changed the way training data is (vaelac.augment)."""
    from vaelac.augment import augment

    return augment(pcm, rate, bits, seed)


@functools.lru_cache(maxsize=4)
def _read_corpus(path: Path) -> tuple[np.ndarray, int, int]:
    return read_wav(path)


def _roundtrip_cases(encoder: str, decoder: str, label: str, work: Path, examples: int, seed: int,
                     timeout: float, corpus: list[Path]) -> list[Case]:
    """Hypothesis-driven round trips; a failure is shrunk and written to disk with its command."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import seed as hypothesis_seed
    from hypothesis import strategies as st

    failure: dict = {}
    counter = [0]
    sources: dict[str, int] = {}

    @st.composite
    def params(draw):
        if corpus and draw(st.booleans()):
            # what to take is drawn here; reading and changing it happen in the test (the
            # change draws from `random`, which hypothesis forbids inside strategies)
            return ("corpus", draw(st.sampled_from(corpus)), draw(st.floats(0, 1)),
                    draw(st.integers(1, 20000)), draw(st.integers(0, 2**31)))
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
        if p[0] == "corpus":
            _, path, at, length, change_seed = p
            pcm, rate, bits = _read_corpus(path)
            start = int(at * max(len(pcm) - 1, 0))
            name, pcm = _transform(pcm[start:start + length], rate, bits, change_seed)
            p = (f"corpus:{path.name}@{start}+{name}", pcm, rate, bits)
        kind, pcm, rate, bits = p
        counter[0] += 1
        source = kind.rsplit("+", 1)[1] if kind.startswith("corpus:") else "synthetic"
        sources[source] = sources.get(source, 0) + 1
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
                           reproduce=_command(encoder, keep / "case.wav", keep / "case.vae")
                           + " && " + _command(decoder, keep / "case.vae",
                                               keep / "case.out.wav"))
            raise AssertionError(problem)

    def passed_name() -> str:
        real = ", ".join(f"{count} real recordings changed by {how}"
                         for how, count in sorted(sources.items()) if how != "synthetic")
        return f"round trip {label} ({counter[0]} cases{': ' + real if real else ''}, seed {seed})"

    return _property_case(check, failure, "roundtrip", passed_name,
                          f"round trip {label} (seed {seed})")


def _property_case(check, failure: dict, group: str, passed_name, failed_name: str
                   ) -> list["Case"]:
    """Run a hypothesis property and report it as one Case: passed (named by
    ``passed_name()``, which may count the cases run), or the shrunk minimal failure that
    ``check`` recorded in ``failure`` (reason, reproducing command)."""
    start = time.monotonic()
    try:
        check()
        return [Case(passed_name(), group, True, seconds=time.monotonic() - start)]
    except Exception:  # noqa: BLE001 - any failure of the implementation under test is a finding
        if not failure:
            import traceback

            failure["reason"] = "the kit itself failed: " + traceback.format_exc(limit=2)[-300:]
        return [Case(failed_name, group, False,
                     "minimal failing case: " + failure.get("reason", "?"),
                     time.monotonic() - start, failure.get("reproduce", ""))]


DAMAGES = ("truncated", "bit flip in a frame", "bit flip in the signature",
           "bit flip in the metadata", "bytes appended")


def _damage(stream: bytes, first_frame: int, damage: str, where: int) -> tuple[str, bytes]:
    """One defect that §3.1, §5.2, METADATA_CRC (§4.7) or the CRCs of §5.5 make fatal,
    described for the report.
    ``stream`` is a complete stream that declares its length (``total_samples``)."""
    if damage == "bit flip in a frame" and first_frame >= len(stream):
        damage = "truncated"  # a stream without frames: nothing to flip there
    if damage == "truncated":
        cut = where % len(stream)
        return f"truncated to {cut} of {len(stream)} bytes", stream[:cut]
    if damage == "bytes appended":
        extra = np.random.default_rng(where).integers(0, 256, 1 + where % 16).astype(np.uint8)
        return f"{len(extra)} bytes after the last frame", stream + extra.tobytes()
    if damage == "bit flip in the signature":
        pos = where % 8
    elif damage == "bit flip in the metadata":  # version, blocks and METADATA_CRC (§4.7)
        pos = 8 + where % (first_frame - 8)
    else:
        pos = first_frame + where % (len(stream) - first_frame)
    bit = (where >> 20) % 8
    out = bytearray(stream)
    out[pos] ^= 1 << bit
    return f"bit {bit} of byte {pos} flipped ({damage}, {len(stream)}-byte stream)", bytes(out)


def _faulty_cases(decoder, work: Path, examples: int, seed: int, timeout: float) -> list[Case]:
    """Hypothesis-generated damaged streams: the decoder must exit non-zero and write nothing.

    Valid streams come from the reference encoder in-process (with and without the learned
    model); each gets one defect of :data:`DAMAGES`. A failure is shrunk and kept on disk."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import seed as hypothesis_seed
    from hypothesis import strategies as st

    import vaelac

    failure: dict = {}
    counter = [0]

    @hypothesis_seed(seed)
    @settings(max_examples=examples, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(kind=st.sampled_from(KINDS), bits=st.integers(1, 32), channels=st.integers(1, 6),
           n=st.integers(0, 3000), rate=st.sampled_from([8000, 44100, 48000, 96000]),
           model=st.sampled_from(["default", None]), damage=st.sampled_from(DAMAGES),
           where=st.integers(0, 2**31 - 1), signal_seed=st.integers(0, 2**31))
    def check(kind, bits, channels, n, rate, model, damage, where, signal_seed):
        counter[0] += 1
        pcm = signal(kind, n, channels, bits, signal_seed)
        stream = vaelac.encode(pcm, rate, bits=bits, model=model)
        first = vaelac.info(io.BytesIO(stream)).first_frame_offset
        what, bad = _damage(stream, first, damage, where)
        src, dst = work / "faulty.vae", work / "faulty.out.wav"
        dst.unlink(missing_ok=True)
        src.write_bytes(bad)
        proc = _run(decoder, src, dst, timeout)
        problem = ("accepted a damaged stream (exit 0)" if proc.returncode == 0 else
                   "exited non-zero but left an output file" if dst.exists() else "")
        dst.unlink(missing_ok=True)
        if problem:
            keep = work / "failure-faulty"
            keep.mkdir(exist_ok=True)
            (keep / "faulty.vae").write_bytes(bad)
            (keep / "intact.vae").write_bytes(stream)
            failure.update(reason=f"{problem}: {what} [{kind}, {channels} ch, {bits} bit, "
                           f"{n} samples, {rate} Hz, model {model}]",
                           reproduce=_command(decoder, keep / "faulty.vae",
                                              keep / "faulty.out.wav"))
            raise AssertionError(problem)

    return _property_case(check, failure, "faulty",
                          lambda: f"damaged streams rejected ({counter[0]} cases: "
                                  f"{', '.join(DAMAGES)}; seed {seed})",
                          f"damaged streams rejected (seed {seed})")


def _require_hypothesis() -> None:
    """The property tests (round trips, damaged streams) need hypothesis, an extra: say so
    before any case runs, rather than after the vectors with a traceback."""
    import importlib.util

    if importlib.util.find_spec("hypothesis") is None:
        raise MissingDependencyError(
            "the conformance kit needs hypothesis for its round-trip and damaged-stream tests; "
            'install vaelac\'s [test] extra: python -m pip install ".[test]" in a clone of the '
            "vaelac repository (or python -m pip install hypothesis)")


def run(decoder=None, encoder=None, *, quick: bool = False,
        seed: int | None = None, out_dir: str | Path | None = None, corpus: str | Path | None = None,
        timeout: float = 120.0, log=None) -> Report:
    """Run the suite. ``decoder``/``encoder`` are command templates with {in} and {out}, or
    Python callables ``f(src_path, dst_path)`` that raise on failure."""
    if decoder or encoder:
        _require_hypothesis()
    seed = int(seed if seed is not None else time.time()) % 2**31
    report = Report(seed=seed)
    corpus_files = sorted(Path(corpus).glob("*.wav")) if corpus else []
    # without --out-dir, work in a fresh folder that is removed when everything passed and kept
    # (named in the log) when something failed: the minimal failing cases live there
    work = Path(out_dir) if out_dir else Path(tempfile.mkdtemp(prefix="vaelac-conformance-"))
    work.mkdir(parents=True, exist_ok=True)
    try:

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
            add(_faulty_cases(decoder, work, examples, seed + 3, timeout))
            add(_roundtrip_cases(REFERENCE_ENCODER, decoder, "reference-encoder→decoder", work,
                                 examples, seed, timeout, corpus_files))
        if encoder:
            add(_roundtrip_cases(encoder, REFERENCE_DECODER, "encoder→reference-decoder", work,
                                 examples, seed + 1, timeout, corpus_files))
        if encoder and decoder:
            add(_roundtrip_cases(encoder, decoder, "encoder→decoder", work, examples, seed + 2,
                                 timeout, corpus_files))
    finally:
        if not out_dir and report.ok:
            shutil.rmtree(work, ignore_errors=True)
    if not out_dir and not report.ok and log:
        log(f"work files and minimal failing cases kept in {work}")
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
    try:
        _require_hypothesis()
    except MissingDependencyError as exc:
        print(f"vaelac-conformance: {exc}", file=sys.stderr)
        return 2
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
