"""Name the common audio formats a file given to the decoder by mistake is in (by its first
bytes), so that the error says "this is a WAV file" rather than showing raw bytes."""

from __future__ import annotations

__all__ = ["other_format"]

# (leading bytes, what they mean); modest on purpose: only signatures that are unambiguous.
_SIGNATURES = (
    (b"RIFF", "a WAV file"),  # RIFF/WAVE (the form type is at byte 8, past the 10 bytes read)
    (b"RF64", "a WAV file (RF64)"),
    (b"fLaC", "a FLAC file"),
    (b"OggS", "an Ogg file"),
    (b"ID3", "an MP3 file"),
)


def other_format(head: bytes) -> str | None:
    """``"a WAV file"``, ``"a FLAC file"``, ... for the first bytes of a file, or None."""
    for signature, name in _SIGNATURES:
        if head.startswith(signature):
            if signature == b"RIFF" and len(head) >= 10 and head[8:10] != b"WA":
                return "a RIFF file"  # AVI, WebP, ...: not WAVE
            return name
    return None
