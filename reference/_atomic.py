"""Writers never leave a half-written file: write to a temporary sibling, then rename.

Only a regular file (or a new one) is written that way. A character device or a FIFO
(``/dev/null``, a named pipe) is written as it goes, as flac and ``cat >`` do: renaming over it
would replace the device with a file. A symbolic link is followed: the temporary file goes beside
its target and is renamed over the target, so the link stays a link. A dangling link is refused
(GNU cp also refuses to write through one).
"""

from __future__ import annotations

import contextlib
import os
import signal
import stat
import sys
import tempfile
import threading
from typing import BinaryIO, Iterator

from .spec.errors import VaeError

__all__ = ["atomic_output", "check_output", "writes_through", "OutputExistsError",
           "OutputPathError"]

#: What the refusal to overwrite tells an API caller; the CLI passes its own ("use -f ...").
OVERWRITE_HINT = "pass overwrite=True to replace it"


def _default_mode() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


_FILE_MODE = _default_mode()


class OutputExistsError(VaeError, FileExistsError):
    """The output file exists and overwriting was not asked for."""


OutputExistsError.__module__ = "vaelac"


class OutputPathError(VaeError, OSError):
    """The output path cannot be written: its folder does not exist, it is a directory, or it
    is a symbolic link to nothing."""


def _kind(path: str, overwrite: bool, hint: str) -> tuple[str, str]:
    """("stdout" | "through" | "replace", the path to write or rename over); raises when the
    output may not or cannot be written."""
    if path == "-":
        return "stdout", path
    try:
        st = os.stat(path)  # follows a symbolic link
    except FileNotFoundError:
        if os.path.islink(path):
            raise OutputPathError(f"{path} is a symbolic link to {os.readlink(path)}, which "
                                  "does not exist (vaelac does not write through a dangling "
                                  "link)") from None
        folder = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(folder):
            raise OutputPathError(f"cannot write {path}: no folder {folder}") from None
        return "replace", path
    except NotADirectoryError:
        raise OutputPathError(f"cannot write {path}: "
                              f"{os.path.dirname(path) or '.'} is not a folder") from None
    if stat.S_ISDIR(st.st_mode):
        raise OutputPathError(f"{path} is a directory")
    if stat.S_ISCHR(st.st_mode) or stat.S_ISFIFO(st.st_mode):
        return "through", path  # writing to a device or a pipe overwrites nothing
    if not overwrite:
        raise OutputExistsError(f"{path} exists ({hint})")
    if stat.S_ISREG(st.st_mode):
        return "replace", os.path.realpath(path) if os.path.islink(path) else path
    return "through", path  # a block device or a socket, with -f/overwrite=True


def check_output(path: str | os.PathLike, *, overwrite: bool, hint: str = OVERWRITE_HINT
                 ) -> None:
    """Raise the error :func:`atomic_output` would raise before writing ``path`` (for a command
    that works a long time before it writes, such as training)."""
    _kind(os.fspath(path), overwrite, hint)


def writes_through(path: str | os.PathLike) -> bool:
    """Whether :func:`atomic_output` writes ``path`` as it goes rather than through a temporary
    file: standard output (``"-"``), a character device, a FIFO (or a link to one). What it
    wrote there cannot be read back (``-V``) or taken back."""
    path = os.fspath(path)
    if path == "-":
        return True
    try:
        return not stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


def _named(exc: OSError, path: str) -> OSError:
    """``exc`` about the output path the caller gave, not the temporary file."""
    return type(exc)(exc.errno, exc.strerror, path)


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
def atomic_output(path: str | os.PathLike, *, overwrite: bool = True,
                  hint: str = OVERWRITE_HINT) -> Iterator[BinaryIO]:
    """Yield a file to write; it replaces ``path`` only if the block finishes without error.

    ``"-"`` means standard output, and an existing character device or FIFO is opened and
    written as it goes (neither can be taken back); :func:`writes_through` says which. A
    symbolic link's target is replaced, not the link. ``overwrite=False`` refuses an existing
    regular file (or a link to one) with :class:`OutputExistsError`, whose message ends with
    ``hint``; a folder that does not exist, a directory or a dangling link raise
    :class:`OutputPathError`.
    """
    given = os.fspath(path)
    kind, path = _kind(given, overwrite, hint)
    if kind == "stdout":
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    if kind == "through":
        with open(path, "wb") as f:
            yield f
        return
    directory = os.path.dirname(os.path.abspath(path))
    held = _HeldSignals()
    held.hold()
    try:
        fd, tmp = tempfile.mkstemp(prefix=".vaelac-", suffix=".part", dir=directory)
    except OSError as exc:
        held.release()
        raise _named(exc, given) from None
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
            raise OutputExistsError(f"{path} appeared while writing ({hint})")
        try:
            os.replace(tmp, path)
        except OSError as exc:
            raise _named(exc, given) from None
    except BaseException:
        held.hold()
        try:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        finally:
            held.release()
        raise
