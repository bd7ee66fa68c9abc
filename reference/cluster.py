"""Batch conversion on a Dask ``distributed`` cluster (``vaelac encode SRC... -o DST --cluster``).

One task per file. The client (the ``vaelac`` process) lists the sources, reads the manifest of
earlier runs, submits the files still to do to the cluster a window at a time, and appends one
JSON line per file to the manifest as each result comes back; the workers run :func:`convert`,
which is the CLI's own per-file path (:func:`vaelac.cli._one`: the same encoder, ``-V`` verify
and atomic output) on a local file, staging a file of an fsspec URL through a scratch folder.

    vaelac encode /archive/raw/ -o /archive/vae/ --cluster local:8 -V
    vaelac encode s3://bucket/raw/ -o s3://bucket/vae/ --cluster tcp://scheduler:8786 \\
        --manifest vae-manifest.jsonl

Nothing here imports dask or distributed at import time: the CLI imports this module only for
``--cluster``, and :func:`run` imports ``distributed`` (the ``[dask]`` extra) when it starts.

Outputs are written under a temporary name in their folder and renamed (a local folder), or
uploaded to a temporary key and moved (``fs.mv``, an fsspec backend), so a worker killed while
it writes never leaves a file that looks finished; only the client writes the manifest, each
record one ``write`` then flush and fsync, so an interrupted run leaves every line but perhaps a
torn last one whole (a torn line is ignored when the manifest is read, and the next append
starts a new line).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
import time
from typing import Iterable

from ._atomic import _HeldSignals
from .spec.errors import MissingDependencyError, UsageError, VaeError

__all__ = ["convert", "run", "read_manifest", "ClusterError", "MANIFEST_NAME"]

MANIFEST_NAME = "vaelac-manifest.jsonl"
_EXTRA = 'python -m pip install ".[dask]" in a clone of the vaelac repository'
_IN_SUFFIX = {"encode": ".wav", "decode": ".vae", "test": ".vae"}
_OUT_SUFFIX = {"encode": ".vae", "decode": ".wav"}
_CONNECT_TIMEOUT = "10s"


class ClusterError(VaeError):
    """The cluster cannot be started or reached, or the batch cannot be planned."""


# -- places: a local path, or an fsspec URL --------------------------------------------------

def _is_url(text: str) -> bool:
    return "://" in text


def _fsspec():
    try:
        import fsspec
    except ImportError:
        raise MissingDependencyError(f"URLs need fsspec: {_EXTRA}") from None
    return fsspec


def _fs(url: str):
    """(filesystem, path inside it) of an fsspec URL."""
    return _fsspec().core.url_to_fs(url)


def _mtime(info: dict) -> float | None:
    """A listing entry's modification time as seconds since the epoch, whatever the backend
    calls it (local: mtime; memory: created; s3: LastModified; gcs: updated ...)."""
    for key in ("mtime", "LastModified", "last_modified", "updated", "modified", "created"):
        value = info.get(key)
        if value is None:
            continue
        if hasattr(value, "timestamp"):
            return float(value.timestamp())
        try:
            return float(value)
        except (TypeError, ValueError):
            continue
    return None


def _join(folder: str, name: str) -> str:
    return folder.rstrip("/") + "/" + name if _is_url(folder) else os.path.join(folder, name)


def _list_sources(inputs: Iterable[str], suffix: str) -> list[dict]:
    """Each source file as {"source", "size", "mtime"}: a folder (local or URL) stands for its
    files ending in ``suffix``, sorted; a URL with a glob for what it matches."""
    found = []
    for given in inputs:
        if not _is_url(given):
            path = os.path.abspath(given)
            if os.path.isdir(path):
                names = sorted(n for n in os.listdir(path) if n.lower().endswith(suffix)
                               and os.path.isfile(os.path.join(path, n)))
                if not names:
                    raise ClusterError(f"{given}: no *{suffix} files in this directory")
                paths = [os.path.join(path, n) for n in names]
            else:
                paths = [path]
            for p in paths:
                try:
                    st = os.stat(p)
                    found.append({"source": p, "size": st.st_size, "mtime": st.st_mtime})
                except OSError:  # the worker reports why it cannot be read
                    found.append({"source": p, "size": None, "mtime": None})
            continue
        fs, path = _fs(given)
        if any(c in path for c in "*?["):
            entries = [e for e in fs.glob(path, detail=True).values() if e["type"] == "file"]
        else:
            try:
                info = fs.info(path)
            except FileNotFoundError:
                raise ClusterError(f"{given}: no such file or folder") from None
            if info["type"] == "directory":
                entries = [e for e in fs.ls(path, detail=True)
                           if e["type"] == "file" and e["name"].lower().endswith(suffix)]
                if not entries:
                    raise ClusterError(f"{given}: no *{suffix} files in this folder")
            else:
                entries = [info]
        for e in sorted(entries, key=lambda e: e["name"]):
            found.append({"source": fs.unstrip_protocol(e["name"]), "size": e.get("size"),
                          "mtime": _mtime(e)})
    return found


# -- the manifest -------------------------------------------------------------------------------

def read_manifest(path: str) -> dict[str, dict]:
    """The last record of each source in a manifest (JSON lines); a line that does not parse
    (the torn last line of a run that was killed while it wrote) is skipped."""
    latest: dict[str, dict] = {}
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if isinstance(record, dict) and isinstance(record.get("source"), str):
                    latest[record["source"]] = record
    except FileNotFoundError:
        pass
    return latest


class _Manifest:
    """Appends records, each written whole, flushed and fsynced before the next (one writer:
    the client). SIGINT is held while a record is written, so Ctrl-C lands between records."""

    def __init__(self, path: str):
        self.path = path
        folder = os.path.dirname(os.path.abspath(path))
        os.makedirs(folder, exist_ok=True)
        self.f = open(path, "a+b")
        self.f.seek(0, os.SEEK_END)
        if self.f.tell():
            self.f.seek(-1, os.SEEK_END)
            if self.f.read(1) != b"\n":  # a torn last line: start the next record on its own
                self.f.seek(0, os.SEEK_END)
                self.f.write(b"\n")

    def append(self, records: list[dict]) -> None:
        if not records:
            return
        data = "".join(json.dumps(r, sort_keys=True) + "\n" for r in records).encode()
        held = _HeldSignals()
        held.hold()
        try:
            self.f.seek(0, os.SEEK_END)
            self.f.write(data)
            self.f.flush()
            os.fsync(self.f.fileno())
        finally:
            held.release()

    def close(self) -> None:
        self.f.close()


# -- the work of one file, on a worker -----------------------------------------------------------

def _header(path: str) -> dict:
    """What the manifest records of a stream: its PCM MD5 and length."""
    from .decoder import StreamDecoder

    with open(path, "rb") as f:
        info = StreamDecoder(f).info
    seconds = None
    if info.total_samples is not None and info.sample_rate:
        seconds = info.total_samples / info.sample_rate
    return {"pcm_md5": info.pcm_md5.hex() if info.pcm_md5 else None,
            "samples": info.total_samples, "sample_rate": info.sample_rate,
            "channels": info.channels, "bits": info.bits_per_sample, "audio_seconds": seconds}


def _worker_name() -> str | None:
    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):
        return None


def convert(task: dict) -> dict:
    """Encode, decode or test one file (``task`` as :func:`run` makes it); its manifest record.

    The CLI's per-file code does the work on a local file: a source of an fsspec URL is copied
    into a scratch folder first, and an output for one is written there and then uploaded to a
    temporary key beside its destination and moved into place. A file that fails (unreadable,
    not a WAV, verify failed) gives a record with status "failed" and one line of error."""
    from . import cli

    command = task["command"]
    record = {"source": task["source"], "source_size": task["size"],
              "source_mtime": task["mtime"], "output": task.get("output"),
              "command": command, "level": task.get("level"), "model": task.get("model"),
              "verified": False, "status": "failed", "error": None}
    start = time.perf_counter()
    scratch = None
    src = task["source"]
    try:
        if _is_url(src):
            scratch = tempfile.mkdtemp(prefix="vaelac-")
            fs, path = _fs(src)
            local_src = os.path.join(scratch, "in" + os.path.splitext(path)[1])
            fs.get_file(path, local_src)
        else:
            local_src = src
        out = task.get("output")
        if out is None:
            local_out = None
        elif _is_url(out):
            scratch = scratch or tempfile.mkdtemp(prefix="vaelac-")
            local_out = os.path.join(scratch, "out" + _OUT_SUFFIX[command])
        else:
            local_out = out
        args = argparse.Namespace(
            command=command, output=local_out, force=bool(task.get("overwrite")), quiet=True,
            no_progress=True, level=task.get("level"), verify=bool(task.get("verify")),
            tag=task.get("tags"), model=task.get("model") or "default", adapt=False,
            lossy=task.get("lossy"), keep_going=False, threads=1, jobs=1)
        ok, text, _ = cli._one(local_src, args)
        if not ok:  # the error as the user would see it: the URLs, not the scratch copies
            for local, given in ((local_src, src), (local_out, out)):
                if local and given and local != given:
                    text = text.replace(local, given)
            raise ClusterError(text)
        if out is not None and _is_url(out):
            _upload(local_out, out, bool(task.get("overwrite")))
        record.update(_header(local_out if command == "encode" else local_src))
        if local_out is not None:
            record["output_bytes"] = os.path.getsize(local_out)  # the bytes uploaded, if a URL
        record["status"] = "ok"
        # decode and test check the PCM MD5 as they decode; encode did with --verify (-V)
        record["verified"] = command != "encode" or bool(task.get("verify"))
    except (VaeError, OSError) as exc:
        text = str(exc) if isinstance(exc, VaeError) else (exc.strerror or str(exc))
        record["error"] = " ".join(text.split())  # one line
    finally:
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)
    record["encode_seconds"] = round(time.perf_counter() - start, 4)
    record["worker"] = _worker_name()
    return record


def _upload(local: str, url: str, overwrite: bool) -> None:
    """Put ``local`` at ``url`` through a temporary key in the same folder and ``fs.mv``: what a
    reader can see at ``url`` is the whole file or what was there before."""
    import uuid

    fs, path = _fs(url)
    if not overwrite and fs.exists(path):
        from ._atomic import OutputExistsError

        raise OutputExistsError(f"{url} exists (use -f to overwrite)")
    folder = path.rsplit("/", 1)[0] if "/" in path else ""
    tmp = (folder + "/" if folder else "") + f".vaelac-{uuid.uuid4().hex}.part"
    fs.put_file(local, tmp)
    try:
        fs.mv(tmp, path)
    except BaseException:
        try:
            fs.rm(tmp)
        except Exception:  # noqa: BLE001 - the move's error is the one to report
            pass
        raise


# -- the client ---------------------------------------------------------------------------------

def _cluster_spec(spec: str) -> tuple[str, int | None, str | None]:
    """("local" | "threads" | "address", workers, address)."""
    m = re.fullmatch(r"local(-threads)?(?::(\d+))?", spec)
    if m:
        n = int(m.group(2)) if m.group(2) else None
        if n is not None and n < 1:
            raise UsageError(f"--cluster {spec}: at least one worker")
        return ("threads" if m.group(1) else "local"), n, None
    if _is_url(spec) or re.fullmatch(r"[\w.\-]+:\d+", spec):
        return "address", None, spec if _is_url(spec) else "tcp://" + spec
    raise UsageError(f"--cluster {spec!r}: give local, local:N, local-threads[:N] or a "
                     "scheduler address (tcp://HOST:PORT)")


def _distributed():
    try:
        import distributed
    except ImportError as exc:
        raise MissingDependencyError(f"--cluster needs dask's distributed ({exc}): "
                                     f"{_EXTRA}") from None
    return distributed


def dask_setup(worker) -> None:
    """Dask's preload hook, run by each worker process that ``--cluster local`` starts: the
    worker ignores SIGINT. Ctrl-C at a terminal reaches the whole process group; the client
    alone stops the run and closes the workers (each would print a KeyboardInterrupt
    traceback, and one killed mid-file would have its task run elsewhere)."""
    import signal
    import threading

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def _start(spec: str):
    """(client, cluster or None) for a --cluster value."""
    import logging

    kind, n, address = _cluster_spec(spec)
    Client, LocalCluster = _distributed().Client, _distributed().LocalCluster
    if kind == "address":
        try:
            return Client(address, timeout=_CONNECT_TIMEOUT), None
        except (OSError, TimeoutError, ValueError) as exc:
            raise ClusterError(f"cannot reach the Dask scheduler at {address}: "
                               f"{' '.join(str(exc).split()) or type(exc).__name__}") from None
    workers = n or os.cpu_count() or 1
    processes = kind == "local"
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=processes,
                           dashboard_address=None, silence_logs=logging.CRITICAL,
                           **({"preload": [__name__]} if processes else {}))
    return Client(cluster), cluster


def _plan(args, sources: list[dict], dst: str | None, previous: dict[str, dict],
          manifest_existed: bool, out_sizes: dict[str, int | None]):
    """(tasks to run, skipped records, failed records)."""
    todo, skipped = [], []
    for s in sources:
        out = None
        if dst is not None:
            base = os.path.basename(s["source"].rstrip("/"))
            out = _join(dst, os.path.splitext(base)[0] + _OUT_SUFFIX[args.command])
        rec = previous.get(s["source"])
        size = out_sizes.get(out) if out else None
        if (rec and rec.get("status") in ("ok", "skipped") and not getattr(args, "force", False)
                and rec.get("command") == args.command
                and rec.get("source_size") == s["size"] and rec.get("source_mtime") == s["mtime"]
                and rec.get("output") == out and (out is None or size == rec.get("output_bytes"))
                and (rec.get("verified") or not getattr(args, "verify", False))
                and (args.command != "encode" or (rec.get("level"), rec.get("model"))
                     == (args.level, args.model))):
            skipped.append(dict(rec, status="skipped", error=None, encode_seconds=0.0,
                                worker=None))
            continue
        # A file this job may replace: -f, none there when the run began (a retry of a task
        # whose worker died after its rename finds its own output), or a rerun of a job whose
        # manifest exists (an output Ctrl-C left without its record). Otherwise an output that
        # was there first is refused, as without --cluster.
        overwrite = bool(getattr(args, "force", False) or size is None or manifest_existed)
        todo.append({"command": args.command, "source": s["source"], "size": s["size"],
                     "mtime": s["mtime"], "output": out, "overwrite": overwrite,
                     "level": getattr(args, "level", None),
                     "model": getattr(args, "model", None),
                     "verify": getattr(args, "verify", False), "tags": getattr(args, "tag", None),
                     "lossy": getattr(args, "lossy", None)})
    return todo, skipped


def _output_sizes(dst: str | None) -> dict[str, int | None]:
    """The files already in the destination folder and their sizes (one listing)."""
    if dst is None:
        return {}
    if not _is_url(dst):
        sizes = {}
        if os.path.isdir(dst):
            for entry in os.scandir(dst):
                if entry.is_file():
                    sizes[os.path.join(dst, entry.name)] = entry.stat().st_size
        return sizes
    fs, path = _fs(dst)
    try:
        entries = fs.ls(path, detail=True)
    except FileNotFoundError:
        return {}
    return {_join(dst, e["name"].rsplit("/", 1)[-1]): e.get("size") for e in entries
            if e.get("type") == "file"}


def _human_bytes(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def _audio(seconds: float) -> str:
    if seconds >= 360:
        return f"{seconds / 3600:.2f} h"
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.1f} s"


def _human_time(s: float) -> str:
    s = int(s)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


class _BatchProgress:
    """One line on stderr, rewritten in place (as the CLI's per-file progress): files, bytes,
    audio hours, failures and the time left. Only when stderr is a terminal, unless forced."""

    def __init__(self, files: int, total_bytes: int, enabled: bool, forced: bool):
        self.files, self.total_bytes = files, total_bytes
        self.enabled = forced or (enabled and sys.stderr.isatty())
        self.done = self.failed = self.bytes = 0
        self.audio = 0.0
        self.start = time.monotonic()
        self.last = 0.0
        self.width = 0

    def add(self, record: dict) -> None:
        self.done += 1
        self.failed += record["status"] == "failed"
        self.bytes += record.get("source_size") or 0
        self.audio += record.get("audio_seconds") or 0.0
        self.show()

    def line(self) -> str:
        elapsed = time.monotonic() - self.start
        eta = ""
        if self.bytes and self.total_bytes > self.bytes:
            eta = f", ETA {_human_time(elapsed * (self.total_bytes - self.bytes) / self.bytes)}"
        return (f"vaelac: {self.done}/{self.files} files, {_human_bytes(self.bytes)}/"
                f"{_human_bytes(self.total_bytes)}, {_audio(self.audio)} of audio, "
                f"{self.failed} failed{eta}")

    def show(self, force: bool = False) -> None:
        now = time.monotonic()
        if self.enabled and (force or now - self.last > 0.2):
            self.last = now
            text = self.line()
            sys.stderr.write("\r" + text.ljust(self.width))
            sys.stderr.flush()
            self.width = len(text)

    def clear(self) -> None:
        if self.enabled and self.width:
            sys.stderr.write("\r" + " " * self.width + "\r")
            sys.stderr.flush()
            self.width = 0


def _summary(records: list[dict], skipped: int, wall: float, workers: int) -> str:
    ok = [r for r in records if r["status"] == "ok"]
    failed = sum(r["status"] == "failed" for r in records)
    audio = sum(r.get("audio_seconds") or 0.0 for r in ok)
    into = sum(r.get("source_size") or 0 for r in ok)
    out = sum(r.get("output_bytes") or 0 for r in ok)
    text = (f"vaelac: {len(records) + skipped} files: {len(ok)} done, {skipped} skipped "
            f"(done before), {failed} failed")
    if not ok:
        return text
    text += f"; {_audio(audio)} of audio"
    if out and into:
        text += f", {_human_bytes(into)} -> {_human_bytes(out)} (ratio {out / into:.3f})"
    text += f"; {wall:.1f} s"
    if audio and wall > 0:
        text += f", {audio / wall / workers:.1f}x real time per worker ({workers} workers)"
    return text


def run(args) -> int:
    """``vaelac encode|decode|test ... --cluster SPEC``: the exit status (0; 1 when a file
    failed; 130 after Ctrl-C)."""
    try:
        return _run(args)
    except KeyboardInterrupt:  # before the run's loop (starting the cluster): nothing done
        print("vaelac: interrupted", file=sys.stderr)
        return 130
    except VaeError as exc:
        print(f"vaelac: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2 if isinstance(exc, UsageError) else 1
    except OSError as exc:  # the destination or the manifest cannot be made or written
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"vaelac: {where}{exc.strerror or exc}", file=sys.stderr)
        return 1


def _run(args) -> int:
    command = args.command
    _cluster_spec(args.cluster)  # a bad spelling is refused before anything starts
    _distributed()
    dst = getattr(args, "output", None)
    if command in _OUT_SUFFIX and not dst:
        raise UsageError(f"{command} --cluster needs -o DEST: the folder (or fsspec URL) of "
                         "the outputs")
    if "-" in args.inputs or dst == "-":
        raise UsageError("--cluster works on files, not standard input or output")
    manifest = getattr(args, "manifest", None)
    if dst is not None:
        if _is_url(dst):
            fs, path = _fs(dst)
            fs.makedirs(path, exist_ok=True)
            if manifest is None and "file" in _protocols(fs):
                manifest = os.path.join(path, MANIFEST_NAME)
            elif manifest is None:
                raise UsageError(f"a manifest is a local file: give --manifest PATH for {dst} "
                                 f"(a copy is put at {_join(dst, MANIFEST_NAME)} at the end)")
        else:
            dst = os.path.abspath(dst)
            os.makedirs(dst, exist_ok=True)
            manifest = manifest or os.path.join(dst, MANIFEST_NAME)

    sources = _list_sources(args.inputs, _IN_SUFFIX[command])
    outs = [os.path.basename(s["source"]) for s in sources]
    seen: dict[str, str] = {}
    for s, name in zip(sources, outs):
        if name in seen and dst is not None:
            raise UsageError(f"{seen[name]} and {s['source']} would both be written as "
                             f"{os.path.splitext(name)[0]}{_OUT_SUFFIX[command]}")
        seen[name] = s["source"]
    manifest_existed = bool(manifest) and os.path.exists(manifest)
    previous = read_manifest(manifest) if manifest else {}
    todo, skipped = _plan(args, sources, dst, previous, manifest_existed, _output_sizes(dst))
    book = _Manifest(manifest) if manifest else None
    quiet = getattr(args, "quiet", False)
    try:
        if book:
            book.append(skipped)
        records, interrupted, workers, wall = _submit(args, todo, quiet, sum(
            s["size"] or 0 for s in sources) - sum(r.get("source_size") or 0 for r in skipped),
            book)
    finally:
        if book:
            book.close()
    if manifest and dst and _is_url(dst) and os.path.exists(manifest):
        fs, path = _fs(dst)
        if "file" not in _protocols(fs):
            fs.put_file(manifest, path.rstrip("/") + "/" + MANIFEST_NAME)
    failed = [r["source"] for r in records if r["status"] == "failed"]
    if interrupted:
        print(f"vaelac: interrupted: {len(records)} of {len(todo)} files done this run "
              f"({len(failed)} failed); the manifest {manifest or '(none)'} holds them: run the "
              "same command again to do the rest", file=sys.stderr)
        return 130
    if not quiet:
        print(_summary(records, len(skipped), wall, workers), file=sys.stderr)
    if failed and len(sources) > 1:
        print(f"vaelac: {len(failed)} of {len(sources)} files failed: {', '.join(failed)}",
              file=sys.stderr)
    return 1 if failed else 0


def _protocols(fs) -> tuple:
    p = fs.protocol
    return p if isinstance(p, tuple) else (p,)


def _submit(args, todo: list[dict], quiet: bool, total_bytes: int, book):
    """Run the tasks; (records, interrupted, workers, wall seconds)."""
    records: list[dict] = []
    if not todo:
        return records, False, 1, 0.0
    progress = _BatchProgress(len(todo), total_bytes, not quiet,
                              getattr(args, "progress", False))
    client, cluster = _start(args.cluster)
    start = time.monotonic()
    interrupted = False
    try:
        from distributed import as_completed

        workers = max(1, sum(client.nthreads().values()))
        window = 4 * workers + 8  # submitted at a time: a Ctrl-C has little to cancel
        pending = iter(todo)
        running = as_completed()
        by_future = {}

        def submit(n: int) -> None:
            for task in pending:
                future = client.submit(convert, task, pure=False, retries=1)
                by_future[future] = task
                running.add(future)
                n -= 1
                if n <= 0:
                    break

        submit(window)
        try:
            for future in running:
                task = by_future.pop(future)
                try:
                    record = future.result()
                except Exception as exc:  # noqa: BLE001 - KilledWorker, a bug: recorded
                    record = _lost(task, exc)
                records.append(record)
                if book:
                    book.append([record])
                progress.clear()
                if record["status"] == "failed":
                    print(f"vaelac: {task['source']}: {record['error']}", file=sys.stderr)
                elif not quiet:
                    shown = f" -> {record['output']}" if record.get("output") else ": ok"
                    print(f"{task['source']}{shown}", file=sys.stderr)
                progress.add(record)
                submit(1)
        except KeyboardInterrupt:
            interrupted = True
            client.cancel(list(by_future))
        progress.clear()
    finally:
        wall = time.monotonic() - start
        try:
            client.close()
            if cluster is not None:
                cluster.close()
        except Exception:  # noqa: BLE001 - closing after an interrupt: nothing to report
            pass
    return records, interrupted, workers, wall


def _lost(task: dict, exc: BaseException) -> dict:
    """The record of a task that ended in an exception outside :func:`convert`'s catch (its
    workers died ``allowed-failures`` times: KilledWorker)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return {"source": task["source"], "source_size": task["size"],
            "source_mtime": task["mtime"], "output": task["output"],
            "command": task["command"], "level": task["level"], "model": task["model"],
            "verified": False, "status": "failed",
            "error": f"its worker failed: {type(exc).__name__}: {text}"[:500],
            "encode_seconds": None, "worker": None}
