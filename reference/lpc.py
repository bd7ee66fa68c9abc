"""Integer linear prediction (spec §6.3): encoder-side analysis and coefficient quantization.

The decoder calls the synthesis kernel (``kernels.lpc_restore``) itself; everything here is the
encoder's search.
"""

from __future__ import annotations

import numpy as np

from ._backend import kernels

__all__ = ["autocorrelation", "levinson", "quantize_coefficients", "compute_residual", "window",
           "window_energy"]

_WINDOWS: dict[tuple[str, int], np.ndarray] = {}
_ENERGIES: dict[tuple[str, int], float] = {}


def window(kind: str, n: int) -> np.ndarray:
    """Apodization windows for autocorrelation (encoder only)."""
    key = (kind, n)
    if key not in _WINDOWS:
        if kind == "tukey50":
            w = np.ones(n)
            taper = n // 4
            if taper > 0:
                ramp = 0.5 * (1 - np.cos(np.pi * np.arange(taper) / taper))
                w[:taper] = ramp
                w[n - taper:] = ramp[::-1]
        elif kind == "welch":
            x = (np.arange(n) - (n - 1) / 2) / ((n + 1) / 2)
            w = 1 - x * x
        else:
            w = np.ones(n)
        _WINDOWS[key] = w
    return _WINDOWS[key]


def window_energy(kind: str, n: int) -> float:
    """The sum of the window's squares, summed in order by the kernels (not numpy.dot, which
    goes to BLAS: the codec calls no BLAS, whose thread pool would spin beside the encoder)."""
    key = (kind, n)
    if key not in _ENERGIES:
        _ENERGIES[key] = float(autocorrelation(window(kind, n), 0)[0])
    return _ENERGIES[key]


def autocorrelation(x: np.ndarray, max_lag: int) -> np.ndarray:
    """Autocorrelation of a float signal for lags 0..max_lag, each lag summed in order (so the
    encoder's choices do not depend on the CPU or a BLAS library)."""
    r = np.empty(max_lag + 1)
    kernels.autocorrelation(np.ascontiguousarray(x, dtype=np.float64), max_lag, r)
    return r


def levinson(r: np.ndarray, max_order: int) -> tuple[np.ndarray, np.ndarray]:
    """Levinson–Durbin: predictor coefficients for every order 1..max_order (row m−1 holds the
    m coefficients of order m, then zeros) and the prediction error of every order 0..max_order.
    """
    coefs = np.empty((max_order, max_order))
    errors = np.empty(max_order + 1)
    kernels.levinson(np.ascontiguousarray(r, dtype=np.float64), max_order, coefs, errors)
    return coefs, errors


def quantize_coefficients(lpc, precision: int) -> tuple[np.ndarray, int, int]:
    """Quantize float coefficients to ``precision``-bit signed integers with error feedback.

    Returns (int32 coefficients, shift, coef_bits) where coef_bits is the width actually needed.
    """
    lpc = np.ascontiguousarray(lpc, dtype=np.float64)
    coefs = np.empty(len(lpc), np.int32)
    shift, coef_bits = kernels.quantize(lpc, precision, coefs)
    return coefs, shift, coef_bits


def compute_residual(samples: np.ndarray, coefs: np.ndarray, shift: int) -> np.ndarray:
    """Residual of int64 samples under the quantized predictor (§6.3)."""
    out = np.empty_like(samples)
    kernels.lpc_residual(samples, coefs, len(coefs), shift, out)
    return out
