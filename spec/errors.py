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
    "UsageError",
    "MissingDependencyError",
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
    """The file does not start with the vaelac signature (a file shorter than it included), or the
    signature was damaged in transfer."""


class UnsupportedError(FormatError):
    """An unknown major version, a reserved STREAMINFO flag bit or reserved byte, a reserved
    channel_mode or a reserved subframe type (§9) — nothing else: other values out of range
    are FormatError (a model's, ModelError)."""


class TruncatedError(FormatError, EOFError):
    """The file ends inside the version (after a whole signature: a shorter file is a
    NotVaeError), a metadata block or a frame, or before total_samples; or a subframe runs past
    its frame's payload (§9)."""


class IntegrityError(FormatError):
    """A CRC or the PCM checksum does not match, or decoded samples leave their declared range."""


class LimitError(FormatError):
    """A frame's payload_length is above the limit of §5.1 (checked before reading or
    allocating the payload)."""


class ModelError(VaeError):
    """No model has the SHA-256 a stream names, a model file is invalid, or a model is of the
    wrong kind for its subframes (§8.1); also an unusable model file given to the API."""


class EncodeError(VaeError, ValueError):
    """Input the format cannot carry (bit depth, channel count, dtype, sample out of range)."""


class WavError(VaeError, ValueError):
    """A WAV file is malformed or uses an encoding vaelac does not read (float, A-law, ...)."""


class UsageError(VaeError, ValueError):
    """An argument the API cannot use, such as a dtype that cannot hold the stream's samples."""


class MissingDependencyError(VaeError, ImportError):
    """An optional part of vaelac needs a package that is not installed (pydub for the pydub
    adapter, hypothesis for the conformance kit's property tests); the message names the extra
    that installs it."""


for _cls in (VaeError, FormatError, NotVaeError, UnsupportedError, TruncatedError, IntegrityError,
             LimitError, ModelError, EncodeError, WavError, UsageError, MissingDependencyError):
    _cls.__module__ = "vaelac"
