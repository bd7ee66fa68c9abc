"""Real recordings changed the way training data is changed: seeded audiomentations chains.

Used by ``vaelac train`` (training data) and by the conformance runner (round trips on changed
recordings). audiomentations is optional (the ``train`` extra); without it the change is an
integer gain, and the returned label says so.
"""

from __future__ import annotations

import numpy as np

__all__ = ["augment", "available"]


def available() -> bool:
    try:
        import audiomentations  # noqa: F401
    except ImportError:
        return False
    return True


def augment(pcm: np.ndarray, rate: int, bits: int, seed: int) -> tuple[str, np.ndarray]:
    """``pcm`` (frames, channels) changed by gain, a filter, pitch and tempo changes and noise
    at realistic levels, seeded; returns (label, int64 PCM of the same shape and depth)."""
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    if not available():
        shift = int(np.random.default_rng(seed).integers(-2, 3))
        scaled = pcm << shift if shift > 0 else pcm >> -shift
        return f"gain 2^{shift} (audiomentations not installed)", np.clip(scaled, lo, hi)
    import random

    import audiomentations as A

    # audiomentations draws from the global random generators: seed both, every call.
    random.seed(seed)
    np.random.seed(seed % 2**32)
    chain = A.Compose([
        A.Gain(min_gain_db=-18, max_gain_db=6, p=1.0),
        A.OneOf([A.LowPassFilter(p=1.0), A.HighPassFilter(p=1.0), A.BandPassFilter(p=1.0)],
                p=0.7),
        A.PitchShift(min_semitones=-2, max_semitones=2, p=0.3),
        A.TimeStretch(min_rate=0.9, max_rate=1.1, leave_length_unchanged=True, p=0.3),
        A.AddGaussianSNR(min_snr_db=25, max_snr_db=70, p=0.5),
    ])
    scale = float(1 << (bits - 1))
    x = (pcm.T / scale).astype(np.float32)
    y = chain(samples=x, sample_rate=rate) if pcm.size else x
    out = np.clip(np.round(np.asarray(y, np.float64).T * scale), lo, hi).astype(np.int64)
    return "audiomentations", out.reshape(-1, pcm.shape[1])
