"""The vaelac exception hierarchy (spec §9: what a decoder reports when a stream breaks a rule).

Every error the codec raises for bad input is a :class:`VaeError`; each subclass also inherits
the builtin it means, so ``except ValueError`` and ``except EOFError`` keep working.
"""

from __future__ import annotations

__all__ = [
    "VaeError",
    "FormatError",
    "NotVaeError",
    "UnsupportedError",
    "TruncatedError",
    "IntegrityError",
    "LimitError",
    "ModelError",
    "EncodeError",
    "WavError",
]


class VaeError(Exception):
    """Base of every error vaelac raises for bad input or unusable arguments."""

    def __init__(self, message: str, *, structure: str | None = None, offset: int | None = None,
                 frame: int | None = None, sample: int | None = None, section: str | None = None):
        self.structure = structure
        self.offset = offset
        self.frame = frame
        self.sample = sample
        self.section = section
        where = []
        if structure:
            where.append(structure)
        if offset is not None:
            where.append(f"at byte {offset}")
        if frame is not None:
            where.append(f"(frame {frame}" + (f", sample {sample})" if sample is not None else ")"))
        text = (" ".join(where) + ": " if where else "") + message
        if section:
            text += f" ({section})"
        super().__init__(text)


class FormatError(VaeError, ValueError):
    """The bytes break the format specification."""


class NotVaeError(FormatError):
    """The file does not start with the vaelac signature, or the signature was damaged in transfer."""


class UnsupportedError(FormatError):
    """An unknown major version or a reserved code point."""


class TruncatedError(FormatError, EOFError):
    """The stream ends inside a structure."""


class IntegrityError(FormatError):
    """A CRC or the PCM checksum does not match, or decoded samples leave their declared range."""


class LimitError(FormatError):
    """A declared size is larger than the format or the file allows (checked before allocating)."""


class ModelError(VaeError):
    """A model is missing, unknown, or does not match its SHA-256."""


class EncodeError(VaeError, ValueError):
    """Input the format cannot carry (bit depth, channel count, dtype, sample out of range)."""


class WavError(VaeError, ValueError):
    """A WAV file is malformed or uses an encoding vaelac does not read (float, A-law, ...)."""


for _cls in (VaeError, FormatError, NotVaeError, UnsupportedError, TruncatedError, IntegrityError,
             LimitError, ModelError, EncodeError, WavError):
    _cls.__module__ = "vaelac"
