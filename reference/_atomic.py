"""Writers never leave a half-written file: write to a temporary sibling, then rename."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import tempfile
import threading
from typing import BinaryIO, Iterator

from .spec.errors import VaeError

__all__ = ["atomic_output", "OutputExistsError"]


def _default_mode() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


_FILE_MODE = _default_mode()


class OutputExistsError(VaeError, FileExistsError):
    """The output file exists and overwriting was not asked for."""


OutputExistsError.__module__ = "vaelac"


class _HeldSignals:
    """Hold SIGINT and SIGTERM (where Python handles them) while a few lines run, then run the
    handlers of what came meanwhile: Ctrl-C between creating the temporary file and the ``try``
    that removes it, or during the removal, must not leave it behind. Python runs signal
    handlers in the main thread only, so elsewhere there is nothing to hold."""

    _SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.saved: dict = {}
        self.caught: list[int] = []

    def hold(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in self._SIGNALS:
            handler = signal.getsignal(sig)
            if callable(handler):
                self.saved[sig] = handler
                signal.signal(sig, lambda signum, frame: self.caught.append(signum))

    def release(self) -> None:
        saved, self.saved = self.saved, {}
        for sig, handler in saved.items():
            signal.signal(sig, handler)
        caught, self.caught = self.caught, []
        for sig in caught[:1]:
            saved[sig](sig, None)  # e.g. raises KeyboardInterrupt here


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, *, overwrite: bool = True) -> Iterator[BinaryIO]:
    """Yield a file to write; it replaces ``path`` only if the block finishes without error.

    ``"-"`` means standard output (written as it goes: a pipe cannot be taken back).
    """
    if os.fspath(path) == "-":
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    path = os.fspath(path)
    if not overwrite and os.path.lexists(path):
        raise OutputExistsError(f"{path} exists (use -f to overwrite)")
    directory = os.path.dirname(os.path.abspath(path))
    held = _HeldSignals()
    held.hold()
    try:
        fd, tmp = tempfile.mkstemp(prefix=".vaelac-", suffix=".part", dir=directory)
    except BaseException:
        held.release()
        raise
    try:
        f = os.fdopen(fd, "w+b")
    except BaseException:
        os.close(fd)
        os.unlink(tmp)
        held.release()
        raise
    try:
        with f:
            held.release()  # a Ctrl-C that came meanwhile is raised here: the file is removed
            os.chmod(tmp, _FILE_MODE)
            yield f
            f.flush()
            os.fsync(f.fileno())
        if not overwrite and os.path.lexists(path):
            raise OutputExistsError(f"{path} appeared while writing (use -f to overwrite)")
        os.replace(tmp, path)
    except BaseException:
        held.hold()
        try:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        finally:
            held.release()
        raise
