"""``vaelac`` command line: encode, decode, test, info, train.

Every failure prints one line ``vaelac: FILE: message`` on stderr and the exit status is 1
(2 for bad usage); no partial output file is left behind. ``decode --keep-going`` writes what it
could recover, one line per damaged span, and exits with 3 when it had to fill any.
"""

from __future__ import annotations

import argparse
import os
import stat
import sys
import time
from typing import BinaryIO

from ._atomic import atomic_output, check_output, writes_through
from .spec.errors import VaeError

__all__ = ["main"]

_READ_BLOCK = 1 << 16
_FORCE_HINT = "use -f to overwrite"


class _Progress:
    """A one-line progress indicator on stderr, only when stderr is a terminal."""

    def __init__(self, label: str, total: int | None, enabled: bool):
        self.label, self.total = label, total
        self.enabled = enabled and total is not None and total > 0 and sys.stderr.isatty()
        self.last = 0.0

    def update(self, done: int) -> None:
        now = time.monotonic()
        if self.enabled and now - self.last > 0.2:
            self.last = now
            sys.stderr.write(f"\r{self.label}: {100 * done // self.total:3d}%")
            sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\r" + " " * (len(self.label) + 6) + "\r")


def _progress_on(args) -> bool:
    return not args.quiet and not getattr(args, "no_progress", False)


def _open_in(path: str) -> BinaryIO:
    return sys.stdin.buffer if path == "-" else open(path, "rb")


def _output_name(src: str, given: str | None, suffix: str) -> str:
    if given:
        return given
    if src == "-":
        return "-"
    return os.path.splitext(src)[0] + suffix


def _encode_one(src: str, dst: str, args) -> str:
    from .encoder import StreamEncoder
    from .wav import WavReader

    note = ""
    with _open_in(src) as raw:
        reader = WavReader(raw)
        fmt = reader.format
        progress = _Progress(os.path.basename(src), fmt.total_frames, _progress_on(args))
        options = dict(level=args.level, total_samples=fmt.total_frames,
                       channel_mask=fmt.channel_mask, tags=_parse_tags(args.tag),
                       model=getattr(args, "model", "default"), lossy=getattr(args, "lossy", None),
                       threads=_encode_threads(args))
        with atomic_output(dst, overwrite=args.force, hint=_FORCE_HINT) as out:
            if getattr(args, "adapt", False):
                note = _encode_adapted(reader, out, options)
            else:
                enc = StreamEncoder(out, fmt.sample_rate, fmt.channels, fmt.bits_per_sample,
                                    **options)
                for block in reader.blocks(_READ_BLOCK):
                    enc.write(block)
                    progress.update(enc.samples_written)
                enc.close()
            progress.close()
            if args.verify and writes_through(dst):
                if not args.quiet:
                    where = "standard output" if dst == "-" else f"{dst} (not a regular file)"
                    print(f"vaelac: {src}: verify skipped: {where} cannot be read back",
                          file=sys.stderr)
            elif args.verify:
                written = out.tell()
                out.flush()
                out.seek(0)
                if options["lossy"] or src == "-":  # standard input cannot be read again:
                    _verify_lossy(out, src)  # the decoded PCM must match the MD5 taken of it
                else:
                    _verify(out, src)
                note += f": Verify OK, wrote {written} bytes{_ratio(written, raw, fmt)}"
    return f"{src} -> {dst}{note}"


def _ratio(written: int, raw: BinaryIO, fmt) -> str:
    """``, ratio=0.327``: output bytes over the input's size, as flac reports it (the WAV file
    when it is a file; read from a pipe, its PCM bytes)."""
    try:
        st = os.fstat(raw.fileno())
        size = st.st_size if stat.S_ISREG(st.st_mode) else None
    except (OSError, ValueError):
        size = None
    if size is None and fmt.total_frames is not None:
        size = fmt.total_frames * fmt.channels * fmt.container // 8
    return f", ratio={written / size:.3f}" if size else ""


def _encode_adapted(reader, out: BinaryIO, options: dict) -> str:
    """``--adapt``: fine-tune the model on this input and keep the adapted model, embedded,
    only if the file with it is smaller than with the model it started from (§8.1)."""
    import io

    import numpy as np

    from .encoder import StreamEncoder, resolve_model
    from .spec.errors import EncodeError

    missing = _training_missing()
    if missing:
        raise EncodeError(f"--adapt {missing}")
    from .train import adapt

    fmt = reader.format
    parts = list(reader.blocks(_READ_BLOCK))
    pcm = np.concatenate(parts) if parts else np.zeros((0, fmt.channels), np.int64)
    base = resolve_model(options.pop("model"))
    if base is None:
        raise EncodeError("--adapt needs a model to start from (none is installed)")

    def encoded(model, **extra) -> bytes:
        buf = io.BytesIO()
        enc = StreamEncoder(buf, fmt.sample_rate, fmt.channels, fmt.bits_per_sample,
                            model=model, **options, **extra)
        enc.write(pcm)
        enc.close()
        return buf.getvalue()

    plain = encoded(base)
    tuned = adapt(base, pcm, fmt.bits_per_sample, fmt.sample_rate, level=options["level"])
    best, note = plain, " (adapted model not kept: no predicted subframes)"
    if tuned is not None:
        candidate = encoded(tuned, embed_model=True)
        keep = len(candidate) < len(plain)
        note = (f" (adapted model {'kept' if keep else 'not kept'}: {len(candidate)} bytes with "
                f"its {len(tuned.data)}-byte model embedded, {len(plain)} with {base.name})")
        best = candidate if keep else plain
    out.write(best)
    return note


def _verify_lossy(stream: BinaryIO, src: str) -> None:
    """-V on a lossy stream, or on one encoded from standard input: it must decode, with every
    CRC and its MD5 (taken of the input as it was read) right."""
    from .decoder import StreamDecoder
    from .spec.errors import IntegrityError

    dec = StreamDecoder(stream)
    while dec.read_frame_image() is not None:
        pass
    if not dec.md5_checked:
        raise IntegrityError("verify failed: the stream's PCM MD5 could not be checked")


def _verify(stream: BinaryIO, src: str) -> None:
    """Decode what was just written and compare with the source, sample for sample (-V)."""
    import numpy as np

    from .decoder import StreamDecoder
    from .spec.errors import IntegrityError
    from .wav import WavReader

    dec = StreamDecoder(stream)
    with open(src, "rb") as raw:
        reader = WavReader(raw)
        for block in dec:
            expected = reader.read(len(block))
            if expected.shape != block.shape or not np.array_equal(expected, block):
                raise IntegrityError(f"verify failed: decoded audio differs from {src}",
                                     frame=dec.samples_decoded)
        if len(reader.read(1)):
            raise IntegrityError(f"verify failed: decoded stream is shorter than {src}")


def _decode_one(src: str, dst: str | None, args) -> str:
    from .decoder import StreamDecoder

    with _open_in(src) as raw:
        dec = StreamDecoder(raw, keep_going=getattr(args, "keep_going", False),
                            threads=_decode_threads(args))
        info = dec.info
        progress = _Progress(os.path.basename(src), info.total_samples, _progress_on(args))
        if dst is None:
            while dec.read_frame_image() is not None:
                progress.update(dec.samples_decoded)
            progress.close()
            _report_damage(src, dec)
            md5 = "MD5 checked" if dec.md5_checked and not dec.damage else "MD5 not checked"
            kind = "lossy" if info.lossy else "lossless"
            state = "DAMAGED" if dec.damage else "ok"
            return f"{src}: {state} ({dec.samples_decoded} samples, {kind}, {md5}{_unprotected(info)})"
        from .wav import WavFormat, WavWriter

        fmt = WavFormat(sample_rate=info.sample_rate, channels=info.channels,
                        bits_per_sample=info.bits_per_sample,
                        container_bits=8 * ((info.bits_per_sample + 7) // 8),
                        channel_mask=info.channel_mask, total_frames=info.total_samples)
        with atomic_output(dst, overwrite=args.force, hint=_FORCE_HINT) as out:
            writer = WavWriter(out, fmt)
            if writer.takes_pcm_image:  # whole-byte samples: the decoder's image is the data
                while (image := dec.read_frame_image()) is not None:
                    writer.write_image(image)
                    progress.update(dec.samples_decoded)
            else:
                for block in dec:
                    writer.write(block)
                    progress.update(dec.samples_decoded)
            writer.close()
            progress.close()
    _report_damage(src, dec)
    if info.lossy:  # §8.6: never shown as lossless
        return f"{src} -> {dst} (LOSSY stream: the lossy codec's reconstruction, not the original)"
    return f"{src} -> {dst}"


_damaged: list[str] = []  # files decoded with --keep-going that had silence put in (exit 3)


def _report_damage(src: str, dec) -> None:
    for span in dec.damage:
        print(f"vaelac: {src}: {span}", file=sys.stderr)
    if dec.damage:
        _damaged.append(src)


def _info_one(src: str, args) -> str:
    from .decoder import StreamDecoder

    with _open_in(src) as raw:
        dec = StreamDecoder(raw)
        info = dec.info
        lines = [f"{src}:",
                 f"  version          {info.version[0]}.{info.version[1]}",
                 f"  sample_rate      {info.sample_rate} Hz",
                 f"  channels         {info.channels} (mask 0x{info.channel_mask:x})",
                 f"  bits_per_sample  {info.bits_per_sample}",
                 f"  frame_length     {info.frame_length}",
                 f"  total_samples    "
                 f"{'unknown' if info.total_samples is None else info.total_samples}",
                 f"  pcm_md5          {info.pcm_md5.hex() if info.pcm_md5 else 'unknown'}",
                 f"  lossy            {'yes' if info.lossy else 'no'}",
                 f"  metadata check   "
                 f"{'CRC-32 (METADATA_CRC)' if info.metadata_protected else 'none: ' + _UNPROTECTED}"]
        for name, offset, length in info.blocks:
            lines.append(f"  block {name:<11} at byte {offset}, {length} bytes")
        for key, value in info.tags:
            lines.append(f"  tag {key}={value}")
        if info.model_sha256:
            lines.append(f"  model {info.model_name} sha256 {info.model_sha256.hex()}")
        if args.frames:
            dec.keep_frame_infos = True
            while dec.read_frame_image() is not None:
                pass
            modes = {}
            types = {}
            for fr in dec.frames:
                modes[fr.channel_mode] = modes.get(fr.channel_mode, 0) + 1
                for t in fr.subframe_types:
                    types[t] = types.get(t, 0) + 1
            total = sum(fr.size for fr in dec.frames)
            lines.append(f"  frames           {len(dec.frames)}, {total} bytes")
            lines.append(f"  channel modes    {_names(modes, 'ChannelMode')}")
            lines.append(f"  subframe types   {_names(types, 'SubframeType')}")
            if args.frames > 1:
                for fr in dec.frames:
                    lines.append(f"    frame {fr.index} at byte {fr.offset}: {fr.sample_count} "
                                 f"samples from {fr.first_sample}, mode {fr.channel_mode}, "
                                 f"{fr.size} bytes, subframes {fr.subframe_types}")
        return "\n".join(lines)


_UNPROTECTED = "metadata unprotected (a format before 1.5)"


def _unprotected(info) -> str:
    """What a summary line says of a stream whose metadata no CRC covers (§3.2)."""
    return "" if info.metadata_protected else ", " + _UNPROTECTED


def _names(counts: dict, enum_name: str) -> str:
    from .spec import constants

    enum = getattr(constants, enum_name)
    return ", ".join(f"{enum(k).name} {v}" for k, v in sorted(counts.items()))


def _parse_tags(items: list[str] | None) -> list[tuple[str, str]]:
    tags = []
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"vaelac: --tag {item!r} must be KEY=VALUE")
        tags.append((key, value))
    return tags


_LEVEL_HELP = ("effort 0..8, also written -0 ... -8 as flac's (default 5): 0-4 the fast LPC path "
               "(no network), 5-8 the learned model, adaptive filters and longer frames, 8 the "
               "smallest and slowest; each level is no larger than the one below")
_FORCE_HELP = "replace an existing output file (a device or FIFO is written to without it)"
_PROGRESS_HELP = ("no output but errors; without it a one-line progress display runs on stderr "
                  "when stderr is a terminal, and a summary line follows each file")
_JOBS_HELP = "files to work on at once, in separate processes (0 = one per CPU)"
_CLUSTER_HELP = ("run one task per file on a Dask cluster (the [dask] extra): local[:N] starts N "
                 "worker processes here, local-threads[:N] threads (for memory:// URLs), "
                 "tcp://HOST:PORT joins a running scheduler; -o is then the outputs' folder or "
                 "URL, inputs may be fsspec URLs, and a manifest makes the run resumable "
                 "(docs/cluster.md)")
_THREADS_HELP = ("threads decoding one file, frames ahead of the one written (default 0: one per "
                 "CPU, at most 4, shared among --jobs; 1 = one frame at a time)")


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative")
    return value


def _encode_threads(args) -> int:
    """Threads for one file's candidate streams (levels 5-8): 1 (one after another) where the
    --jobs processes or a cluster's workers (which set threads=1) already fill the CPUs."""
    threads = getattr(args, "threads", 0)
    if threads:
        return threads
    jobs = getattr(args, "jobs", 1) or os.cpu_count() or 1
    return 0 if jobs < (os.cpu_count() or 1) else 1


def _decode_threads(args) -> int:
    """-t/--threads for one file's StreamDecoder: 0 shares the CPUs among the --jobs processes."""
    threads = getattr(args, "threads", 1)
    if threads:
        return threads
    jobs = getattr(args, "jobs", 1) or os.cpu_count() or 1
    return max(1, min(4, (os.cpu_count() or 1) // jobs))


class _Lossy(argparse.Action):
    """``--lossy``: the shipped lossy model, unless --lossy-model named one."""

    def __call__(self, parser, namespace, values, option_string=None):
        if getattr(namespace, self.dest) is None:
            setattr(namespace, self.dest, "default")


class _Parser(argparse.ArgumentParser):
    """``encode --lossy`` takes no value, so that ``--lossy IN.wav`` keeps its input; the
    spellings that gave it one, ``--lossy=MODEL`` and ``--lossy MODEL.vaem``, still work
    (read as ``--lossy-model MODEL``)."""

    def parse_known_args(self, args=None, namespace=None):
        args = list(sys.argv[1:] if args is None else args)
        if args[:1] == ["encode"]:
            args = _lossy_model_spelled(args)
        return super().parse_known_args(args, namespace)


def _lossy_model_spelled(args: list[str]) -> list[str]:
    out, i = [], 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            return out + args[i:]
        if arg.startswith("--lossy="):
            arg = "--lossy-model=" + arg[len("--lossy="):]
        elif arg == "--lossy" and i + 1 < len(args) and args[i + 1].endswith(".vaem"):
            arg, i = "--lossy-model=" + args[i + 1], i + 1
        out.append(arg)
        i += 1
    return out


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="vaelac", description="VAE Lossless Audio Codec")
    from . import __version__

    p.add_argument("--version", action="version", version=f"vaelac {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    enc = sub.add_parser("encode", help="WAV -> .vae",
                         usage="vaelac encode [-0 ... -8] [options] IN.wav [IN.wav ...]")
    enc.add_argument("inputs", nargs="+", metavar="IN.wav",
                     help="'-' reads standard input; a directory means its *.wav files")
    enc.add_argument("-o", "--output", help="output file (one input only); '-' = stdout; with "
                     "--cluster, the folder or URL of the outputs")
    for level in range(9):
        enc.add_argument(f"-{level}", dest="level", action="store_const", const=level,
                         help=argparse.SUPPRESS)  # listed once, under -l
    enc.add_argument("-l", "--level", type=int, choices=range(9), metavar="N", help=_LEVEL_HELP)
    enc.add_argument("-f", "--force", action="store_true", help=_FORCE_HELP)
    enc.add_argument("-V", "--verify", action="store_true", help="decode and compare after")
    enc.add_argument("-T", "--tag", action="append", metavar="KEY=VALUE", help="add a tag")
    enc.add_argument("-q", "--quiet", action="store_true", help=_PROGRESS_HELP)
    enc.add_argument("-j", "--jobs", type=int, default=1, metavar="N", help=_JOBS_HELP)
    enc.add_argument("-m", "--model", default="default", metavar="MODEL",
                     help="learned model: 'default' (shipped), 'none' (plain path) or a .vaem")
    enc.add_argument("--adapt", action="store_true",
                     help="fine-tune the model on the input; embed it only if the file shrinks")
    enc.add_argument("--lossy", action=_Lossy, nargs=0, default=None,
                     help="the paper's lossy VAE codec (never lossless), with the shipped lossy "
                     "model unless --lossy-model (or --lossy=MODEL) names one")
    enc.add_argument("--lossy-model", dest="lossy", metavar="MODEL.vaem",
                     help="the lossy model (implies --lossy)")
    enc.set_defaults(level=None)

    dec = sub.add_parser("decode", help=".vae -> WAV")
    dec.add_argument("inputs", nargs="+", metavar="IN.vae", help="a directory means its *.vae")
    dec.add_argument("-o", "--output", help="output file (one input only); '-' = stdout; with "
                     "--cluster, the folder or URL of the outputs")
    dec.add_argument("-f", "--force", action="store_true", help=_FORCE_HELP)
    dec.add_argument("-q", "--quiet", action="store_true", help=_PROGRESS_HELP)
    dec.add_argument("-F", "--keep-going", action="store_true",
                     help="decode past damaged frames, filling them with silence (exit 3)")
    dec.add_argument("-j", "--jobs", type=int, default=1, metavar="N", help=_JOBS_HELP)
    dec.add_argument("-t", "--threads", type=_non_negative, default=0, metavar="N",
                     help=_THREADS_HELP)

    test = sub.add_parser("test", help="decode and check CRCs and the PCM MD5, write nothing")
    test.add_argument("inputs", nargs="+", metavar="FILE.vae")
    test.add_argument("-q", "--quiet", action="store_true", help=_PROGRESS_HELP)
    test.add_argument("-F", "--keep-going", action="store_true",
                      help="report every damaged span instead of stopping at the first")
    test.add_argument("-j", "--jobs", type=int, default=1, metavar="N", help=_JOBS_HELP)
    test.add_argument("-t", "--threads", type=_non_negative, default=0, metavar="N",
                      help=_THREADS_HELP)

    for command in (enc, dec, test):
        command.add_argument("--cluster", metavar="SPEC", help=_CLUSTER_HELP)
        command.add_argument("--manifest", metavar="PATH",
                             help="--cluster's record of the run, one JSON line per file "
                             "(default: DEST/vaelac-manifest.jsonl)")
        command.add_argument("--progress", action="store_true",
                             help="--cluster: show the progress line even when stderr is not "
                             "a terminal")

    train = sub.add_parser("train", help="train a model on WAV files (needs vaelac[train])")
    train.add_argument("data", nargs="+", metavar="DATA", help="WAV files or folders of them")
    train.add_argument("-o", "--output", required=True, metavar="MODEL.vaem")
    train.add_argument("-f", "--force", action="store_true", help="overwrite an existing model")
    train.add_argument("--name", default=None, help="the model's name (in MODEL_REF)")
    train.add_argument("--lossy", action="store_true", help="train the paper's lossy VAE")
    train.add_argument("--threads", type=int, default=1,
                       help="torch threads (results depend on it; 1 is reproducible anywhere)")
    for field, (kind, defaults) in _train_fields().items():
        train.add_argument(f"--{field.replace('_', '-')}", type=kind, default=None,
                           help="default " + ", ".join(defaults))
    train.add_argument("-q", "--quiet", action="store_true")

    info = sub.add_parser("info", help="show the stream's structure")
    info.add_argument("inputs", nargs="+", metavar="FILE.vae")
    info.add_argument("--frames", action="count", default=0,
                      help="also summarise frames (twice: list every frame)")
    return p


_DIR_SUFFIX = {"encode": ".wav", "decode": ".vae", "test": ".vae", "info": ".vae"}


def _expand(args) -> tuple[list[str], list[str]]:
    """Inputs with each directory replaced by its *.wav (encode) or *.vae files, sorted;
    and the directories that held none."""
    inputs, empty = [], []
    suffix = _DIR_SUFFIX[args.command]
    for src in args.inputs:
        if src != "-" and os.path.isdir(src):
            found = sorted(os.path.join(src, name) for name in os.listdir(src)
                           if name.lower().endswith(suffix)
                           and os.path.isfile(os.path.join(src, name)))
            if not found:
                empty.append(src)
            inputs.extend(found)
        else:
            inputs.append(src)
    return inputs, empty


def _one(src: str, args) -> tuple[bool, str, bool]:
    """Run the command on one input: (succeeded, message or error text, damage filled)."""
    _damaged.clear()
    try:
        if args.command == "encode":
            message = _encode_one(src, _output_name(src, args.output, ".vae"), args)
        elif args.command == "decode":
            message = _decode_one(src, _output_name(src, args.output, ".wav"), args)
        elif args.command == "test":
            message = _decode_one(src, None, args)
        else:
            message = _info_one(src, args)
        return True, message, bool(_damaged)
    except BrokenPipeError:
        raise  # the reader of our output went away: main() ends quietly
    except (VaeError, OSError) as exc:
        text = str(exc) if isinstance(exc, VaeError) else (exc.strerror or str(exc))
        if isinstance(exc, OSError) and not isinstance(exc, VaeError) and exc.filename \
                and os.fspath(exc.filename) != src:
            text = f"{os.fspath(exc.filename)}: {text}"  # the output, a model, ...: not src
        return False, text, bool(_damaged)


_worker_interrupted = False  # in a batch worker: a SIGINT came; start no more files


def _note_sigint(signum=None, frame=None) -> None:
    global _worker_interrupted
    _worker_interrupted = True


def _ignore_sigint() -> None:
    import signal

    signal.signal(signal.SIGINT, _note_sigint)


def _one_in_worker(src: str, args) -> tuple[bool, str, bool]:
    """:func:`_one` in a batch worker. SIGINT (Ctrl-C reaches the whole process group, and the
    parent passes it on) or SIGTERM interrupts it once, while it works: the output's temporary
    file is removed and a second signal cannot cut that short. Between files a SIGINT is only
    noted — an idle worker does not die and break the pool — and no further file is started."""
    import signal

    def stop(signum, frame):
        _note_sigint()
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise KeyboardInterrupt

    if _worker_interrupted:
        raise KeyboardInterrupt
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        return _one(src, args)
    finally:
        signal.signal(signal.SIGINT, _note_sigint)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _in_parallel(inputs: list[str], args, jobs: int):
    """Yield (src, result of _one) in input order, ``jobs`` processes at a time. A file that
    fails (even by crashing its worker) is reported and the others go on."""
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    suffix = {"encode": ".vae", "decode": ".wav"}.get(args.command)
    existed = {src: suffix is not None and os.path.lexists(_output_name(src, args.output, suffix))
               for src in inputs}
    pool = ProcessPoolExecutor(max_workers=jobs, initializer=_ignore_sigint)
    try:
        futures = [(src, pool.submit(_one_in_worker, src, args)) for src in inputs]
        for src, future in futures:
            try:
                result = future.result()
            except BrokenProcessPool:
                # A worker died (a crash, or killed for memory) and took the pool with it: each
                # file whose result did not come back is done again in a process of its own
                # (over an output that this run may have finished meanwhile, not an older one).
                result = _alone(src, args, redo=not existed[src])
            except KeyboardInterrupt:
                raise
            except Exception as exc:  # noqa: BLE001 - a bug: report it and go on
                result = (False, f"failed in a worker process: {type(exc).__name__}: {exc}",
                          False)
            yield src, result
    except BaseException:
        # A SIGINT sent to this process alone is passed on (a worker takes only the first), so
        # each worker's atomic output removes its temporary file; then wait for them. The pool's
        # workers are this process's only children here (multiprocessing's public list of them).
        import multiprocessing
        import signal

        for proc in multiprocessing.active_children():
            try:
                os.kill(proc.pid, signal.SIGINT)
            except OSError:
                pass
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


def _alone(src: str, args, redo: bool) -> tuple[bool, str, bool]:
    import copy
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    if redo:
        args = copy.copy(args)
        args.force = True

    with ProcessPoolExecutor(max_workers=1, initializer=_ignore_sigint) as pool:
        try:
            return pool.submit(_one_in_worker, src, args).result()
        except BrokenProcessPool:
            return False, "its worker process died (crashed or was killed)", False


def _training_missing() -> str:
    """Why training cannot run here, or "" when torch and audiomentations import."""
    try:
        import audiomentations  # noqa: F401
        import torch  # noqa: F401
    except ImportError as exc:
        return ("needs the training extra (python -m pip install \".[train]\" in a clone of the "
                f"vaelac repository): {exc}")
    return ""


def _train_fields() -> dict:
    """Every hyperparameter of either trainer -> (type, defaults text); no torch import."""
    from dataclasses import fields

    from .train.params import HyperParameters, LossyHyperParameters

    found: dict = {}
    for label, cls in (("lossless", HyperParameters), ("--lossy", LossyHyperParameters)):
        for f in fields(cls):
            default = getattr(cls(), f.name)
            if isinstance(default, tuple):
                continue
            kind, text = found.get(f.name, (type(default), []))
            found[f.name] = (kind, text + [f"{default} ({label})"])
    return found


def _train(args) -> int:
    try:  # before the training, which takes minutes: not after it
        check_output(args.output, overwrite=args.force, hint=_FORCE_HINT)
    except VaeError as exc:
        print(f"vaelac train: {exc}", file=sys.stderr)
        return 1
    missing = _training_missing()
    if missing:
        print(f"vaelac train: {missing}", file=sys.stderr)
        return 1
    from .train import HyperParameters, LossyHyperParameters, train_lossy, train_residual

    hp = LossyHyperParameters() if args.lossy else HyperParameters()
    for field in _train_fields():
        value = getattr(args, field)
        if value is not None:
            if not hasattr(hp, field):
                print(f"vaelac train: --{field.replace('_', '-')} does not apply here",
                      file=sys.stderr)
                return 2
            setattr(hp, field, value)
    command = "vaelac " + " ".join(sys.argv[1:]) if sys.argv else "vaelac train"
    log = (lambda *_: None) if args.quiet else (lambda line: print(line, file=sys.stderr))
    name = args.name or os.path.splitext(os.path.basename(args.output))[0]
    try:
        if args.lossy:
            train_lossy(args.data, args.output, hp, name=name, threads=args.threads,
                        command=command, log=log)
        else:
            train_residual(args.data, args.output, hp, name=name, threads=args.threads,
                           command=command, log=log)
    except (VaeError, OSError, ValueError) as exc:
        print(f"vaelac train: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("vaelac train: interrupted; no model written", file=sys.stderr)
        return 130
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the command; its exit status. When the reader of standard output goes away (``vaelac
    decode x.vae -o - | head``) it ends quietly with status 141, as a shell reports ``cat``
    killed by SIGPIPE, instead of printing "Broken pipe"."""
    try:
        return _main(argv)
    except BrokenPipeError:
        # Later writes (the interpreter's last flush of stdout) would fail again: send them to
        # os.devnull, as the Python documentation's note on SIGPIPE does.
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return 141


def _main(argv: list[str] | None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "train":
        return _train(args)
    if args.command == "encode" and args.level is None:
        from .encoder import DEFAULT_LEVEL

        args.level = DEFAULT_LEVEL
    if getattr(args, "cluster", None):
        from .cluster import run  # imports dask's distributed: only here

        return run(args)
    inputs, empty = _expand(args)
    if getattr(args, "output", None) and len(inputs) + len(empty) > 1:
        print("vaelac: -o needs exactly one input", file=sys.stderr)
        return 2
    if args.command in ("encode", "decode") and args.output is None and "-" in inputs:
        args.output = "-"
    jobs = getattr(args, "jobs", 1) or os.cpu_count() or 1
    failed = []
    for src in empty:
        failed.append(src)
        print(f"vaelac: {src}: no *{_DIR_SUFFIX[args.command]} files in this directory",
              file=sys.stderr)
    damaged = 0
    if jobs > 1 and len(inputs) > 1 and "-" not in inputs:
        args.no_progress = True  # progress lines from several processes would collide
        results = _in_parallel(inputs, args, min(jobs, len(inputs)))
    else:
        results = ((src, _one(src, args)) for src in inputs)
    src = inputs[0] if inputs else ""
    try:
        for src, (ok, text, was_damaged) in results:
            damaged += was_damaged
            if not ok:
                failed.append(src)
                print(f"vaelac: {src}: {text}", file=sys.stderr)
            elif args.command == "info" or (not getattr(args, "quiet", False)
                                             and getattr(args, "output", None) != "-"):
                print(text, file=sys.stdout if args.command in ("info", "test")
                      else sys.stderr)
    except KeyboardInterrupt:
        print(f"vaelac: {src}: interrupted; no output written", file=sys.stderr)
        return 130
    total = len(inputs) + len(empty)
    if failed and total > 1:
        print(f"vaelac: {len(failed)} of {total} files failed: {', '.join(failed)}",
              file=sys.stderr)
    if failed:
        return 1
    return 3 if damaged else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
