"""Chooses the compiled kernels, or their pure-Python twin when the extension is unavailable."""

from __future__ import annotations

import os
import warnings

__all__ = ["kernels", "COMPILED"]

if os.environ.get("VAELAC_PURE_PYTHON"):
    from . import _pykernels as kernels

    COMPILED = False
else:
    try:
        from . import _kernels as kernels

        COMPILED = True
    except ImportError:  # pragma: no cover - depends on the build
        from . import _pykernels as kernels

        COMPILED = False
        warnings.warn("vaelac: compiled kernels missing, using the slow pure-Python ones",
                      RuntimeWarning, stacklevel=2)
