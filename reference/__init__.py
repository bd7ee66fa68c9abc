"""vaelac — the VAE Lossless Audio Codec: reference encoder and decoder of the `.vae` format.

The public API is flat and soundfile-shaped::

    data, rate = vaelac.read("song.vae")
    vaelac.write("copy.vae", data, rate, bits=16)

Attributes load lazily (PEP 562) so that ``import vaelac.spec`` stays light.
"""

from __future__ import annotations

import importlib

__version__ = "0.9.0"

_API = {name: "api" for name in ("read", "write", "info", "blocks", "encode", "decode")}
_API.update({name: "spec.errors" for name in (
    "VaeError", "FormatError", "NotVaeError", "UnsupportedError", "TruncatedError",
    "IntegrityError", "LimitError", "ModelError", "EncodeError", "WavError", "UsageError",
    "MissingDependencyError")})
_API.update(StreamEncoder="encoder", StreamDecoder="decoder", StreamInfo="decoder",
            OutputExistsError="_atomic", LEVELS="encoder", DEFAULT_LEVEL="encoder")

__all__ = sorted(_API) + ["__version__"]


def __getattr__(name: str):
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module 'vaelac' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
