"""Training of vaelac's learned models (needs the ``train`` extra: torch, audiomentations).

``vaelac train DATA... -o MODEL.vaem`` trains the RESIDUAL VAE (§8) on CPU, reproducibly for a
given seed and thread count, and writes the integer model file; ``--lossy`` trains the paper's
lossy VAE. This is the only part of vaelac that imports torch, and only when training runs:
importing the package (for its hyperparameters) costs nothing.
"""

from __future__ import annotations

import importlib

from .params import HyperParameters, LossyHyperParameters

__all__ = ["train_residual", "adapt", "train_lossy", "HyperParameters", "LossyHyperParameters"]

_LAZY = {"train_residual": "residual", "adapt": "residual", "train_lossy": "lossy"}


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'vaelac.train' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{module}", __name__), name)
