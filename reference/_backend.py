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
    except ImportError as exc:  # pragma: no cover - depends on the build
        from . import _pykernels as kernels

        COMPILED = False
        warnings.warn(f"vaelac: the compiled kernels did not load ({exc}); the pure-Python ones "
                      "are hundreds of times slower (a 5 s clip takes minutes): install a wheel, "
                      "or reinstall with a C compiler and the Python headers (python3-dev)",
                      RuntimeWarning, stacklevel=2)
