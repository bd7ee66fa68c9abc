"""The paper's lossy codec (spec §8.6): MODEL_LOSSY subframes of a LOSSY stream.

Each block of ``model.block`` samples is scaled by a power of two (its gain), the VAE encoder
maps it to latents, and the latents and gain are coded under the model's prior; the decoder's
integer network rebuilds the block. This is Obaid & Kadhim's system, kept for comparison: it
is never lossless, and streams that use it carry the LOSSY flag.
"""

from __future__ import annotations

import numpy as np

from ._backend import kernels
from .model import Model
from .spec.constants import ACTIVATION_MAX, MAX_LOSSY_GAIN, OUTPUT_MAX
from .spec.errors import FormatError

__all__ = ["encode_block_symbols", "decode_samples", "code_symbols", "decode_symbols"]

_UNIT_SHIFT = 11  # network values are float * 2048


def _gains(x: np.ndarray, block: int) -> tuple[np.ndarray, np.ndarray]:
    """Blocks (zero-padded) and the gain exponent of each: the peak is below 2**gain."""
    nb = -(-len(x) // block)
    blocks = np.zeros((nb, block), np.int64)
    blocks.reshape(-1)[: len(x)] = x
    peak = np.abs(blocks).max(axis=1)
    gains = np.array([int(p).bit_length() for p in peak], np.int64)
    return blocks, gains


def encode_block_symbols(model: Model, x: np.ndarray) -> np.ndarray:
    """Symbols of a subframe's values, block by block: gain, then latent_dim latents."""
    blocks, gains = _gains(np.asarray(x, np.int64), model.block)
    # inputs: x / 2**gain in units of 2048, rounded, clamped to the feature range
    scaled = np.round(blocks * 2048.0 / np.exp2(gains)[:, None])
    h = np.clip(scaled, -ACTIVATION_MAX, ACTIVATION_MAX).astype(np.int64)
    for layer in model.encoder:
        h = layer(h)
    mean = h[:, : model.latent_dim] / 2048.0  # normalised latent in [-1, 1)
    half = model.latent_offset
    latents = np.clip(np.round(mean * half) + half, 0, 2 * half - 1).astype(np.int64)
    return np.concatenate([gains[:, None], latents], axis=1)


def decode_samples(model: Model, symbols: np.ndarray, count: int, lo: int, hi: int) -> np.ndarray:
    """Rebuild ``count`` samples from per-block symbols (§8.6): exact integer arithmetic."""
    gains = symbols[:, 0]
    if (gains > MAX_LOSSY_GAIN).any():
        raise FormatError(f"a lossy block's gain exceeds {MAX_LOSSY_GAIN}", section="§8.6")
    y = model.latent_inputs(symbols[:, 1:])
    for layer in model.decoder:
        y = layer(y)
    y = np.clip(y, -OUTPUT_MAX, OUTPUT_MAX)
    samples = (y << gains[:, None]) >> _UNIT_SHIFT
    return np.clip(samples.reshape(-1)[:count], lo, hi)


def _prior(model: Model, blocks: int) -> np.ndarray:
    return np.tile(model.prior, blocks)


def code_symbols(model: Model, symbols: np.ndarray) -> bytes:
    """Range-code every block's symbols under the model's fixed prior (§8.2, §8.6)."""
    flat = np.ascontiguousarray(symbols.reshape(-1), np.int64)
    return kernels.rc_encode(np.zeros(0, np.int64), 0, flat, _prior(model, len(symbols)),
                             model.latent_levels_log2)


def decode_symbols(model: Model, data: bytes, count: int) -> tuple[int, np.ndarray]:
    """(status, symbols of shape (blocks, latent_dim + 1)) for a subframe of ``count`` samples."""
    blocks = -(-count // model.block)
    flat = np.empty(blocks * (model.latent_dim + 1), np.int64)
    status = kernels.rc_decode(data, 0, np.zeros(0, np.int64), flat, _prior(model, blocks),
                               model.latent_levels_log2)
    return status, flat.reshape(blocks, model.latent_dim + 1)
