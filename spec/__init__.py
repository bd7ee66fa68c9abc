"""The `.vae` format: constants, the construct grammar and the error classes (spec §1–§10).

This package is the format itself; it imports nothing from the rest of vaelac. The normative
text is ``vae-format.md`` beside this file.
"""

from . import constants, container, errors, model
from .constants import VERSION_MAJOR, VERSION_MINOR

__all__ = ["constants", "container", "errors", "model", "VERSION_MAJOR", "VERSION_MINOR"]
