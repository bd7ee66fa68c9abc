"""Writers never leave a half-written file: write to a temporary sibling, then rename."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
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
    fd, tmp = tempfile.mkstemp(prefix=".vaelac-", suffix=".part", dir=directory)
    try:
        os.chmod(tmp, _FILE_MODE)
        with os.fdopen(fd, "w+b") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        if not overwrite and os.path.lexists(path):
            raise OutputExistsError(f"{path} appeared while writing (use -f to overwrite)")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
