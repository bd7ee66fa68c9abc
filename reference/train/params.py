"""Every architectural and training choice of vaelac's models, with its default; recorded in the
model file. No torch here, so the command line can list them cheaply."""

from __future__ import annotations

from dataclasses import asdict, dataclass

__all__ = ["HyperParameters", "LossyHyperParameters"]


@dataclass
class HyperParameters:
    """The lossless RESIDUAL VAE (§8.3): architecture and training."""

    history: int = 8
    latent_dim: int = 16
    latent_levels_log2: int = 4
    encoder_hidden: int = 64
    decoder_hidden: int = 32
    epochs: int = 30
    batch_subframes: int = 32
    learning_rate: float = 1e-3
    kl_weight: float = 1.0
    positions: int = 256
    augment_copies: int = 1
    level: int = 4  # the plain path, where the model pays (0.3.0 trained at its level 5)
    seed: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class LossyHyperParameters:
    """The paper's lossy VAE (§8.6): architecture and training."""

    block: int = 160
    latent_dim: int = 20
    latent_levels_log2: int = 10
    hidden: tuple[int, int] = (128, 64)
    epochs: int = 30
    batch: int = 256
    learning_rate: float = 1e-3
    kl_weight: float = 1e-4
    blocks_per_file: int = 4000
    seed: int = 0

    def as_dict(self) -> dict:
        return asdict(self)
