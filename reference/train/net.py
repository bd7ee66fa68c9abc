"""The RESIDUAL VAE in torch (float, training only), mirroring the integer networks of §8.

Encoder: analysis features -> fully connected ReLU hidden layer -> mean and log-variance heads
(latent_dim each), as in Obaid & Kadhim's VAE. Decoder: for every sample, the causal context
and the latent -> ReLU hidden layer -> the mean of the residual's distribution, which the
integer decoder adds to the LPC prediction. Hidden activations are clamped to [0, 1] and the
output to [-16, 16], exactly what the integer network's clamps mean in float units (inputs and
activations are integers / 2048).

The loss is what a file costs, in bits per sample: the Laplace code length of the residual
under the decoder's mean (the scale is the coder's running statistic), plus the latents' rate
(KL to the N(0, 1) prior, weighted by ``kl_weight``) spread over the subframe's samples.
"""

from __future__ import annotations

import math
import torch
from torch import nn

from ..model import ANALYSIS_FEATURES
from .params import HyperParameters

__all__ = ["HyperParameters", "ResidualVAE", "loss_bits"]

UNIT = 2048.0  # integer features, activations and outputs are float * UNIT (§8.3)
OUTPUT_LIMIT = 16.0  # OUTPUT_MAX / UNIT
MEAN_SCALE = 8.0  # the encoder's mean output is mean / 8 (integer: 256 units per latent step)


def clamp01(x: torch.Tensor) -> torch.Tensor:
    return torch.clamp(x, 0.0, 1.0)


class ResidualVAE(nn.Module):
    def __init__(self, hp: HyperParameters):
        super().__init__()
        self.hp = hp
        features = 2 * hp.history + 5
        self.encoder_hidden = nn.Linear(ANALYSIS_FEATURES, hp.encoder_hidden)
        self.encoder_heads = nn.Linear(hp.encoder_hidden, 2 * hp.latent_dim)  # mean, log-variance
        self.decoder_hidden = nn.Linear(features + hp.latent_dim, hp.decoder_hidden)
        self.decoder_out = nn.Linear(hp.decoder_hidden, 1)
        with torch.no_grad():  # start as "no correction", the plain path
            self.decoder_out.weight.mul_(0.01)
            self.decoder_out.bias.zero_()

    @property
    def latent_limit(self) -> float:
        return float(1 << (self.hp.latent_levels_log2 - 1))

    def encode(self, analysis: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = clamp01(self.encoder_hidden(analysis / UNIT))
        heads = self.encoder_heads(h) * MEAN_SCALE
        mean, log_var = heads.chunk(2, dim=-1)
        return mean, log_var.clamp(-12.0, 6.0)

    def decode(self, features: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """features (B, P, F) integers, z (B, D) in latent units -> output (B, P) in units
        of 2**(k-1)."""
        z_in = (z / self.latent_limit).unsqueeze(1).expand(-1, features.shape[1], -1)
        x = torch.cat([features / UNIT, z_in], dim=-1)
        h = clamp01(self.decoder_hidden(x))
        return torch.clamp(self.decoder_out(h)[..., 0], -OUTPUT_LIMIT, OUTPUT_LIMIT)

    def forward(self, analysis, features, sample: bool = True):
        mean, log_var = self.encode(analysis)
        if sample:
            z = mean + torch.exp(0.5 * log_var) * torch.randn_like(mean)
        else:
            z = torch.round(mean)
        z = torch.clamp(z, -self.latent_limit, self.latent_limit - 1)
        return self.decode(features, z), mean, log_var


def loss_bits(model: ResidualVAE, batch: dict, sample: bool = True) -> tuple[torch.Tensor, dict]:
    """Bits per sample of residuals plus latents (the ELBO in bits)."""
    out, mean, log_var = model(batch["analysis"], batch["features"], sample)
    residual_bits = (batch["weight"] * (batch["target"] - out).abs()).mean(dim=1) / math.log(2)
    kl_nats = 0.5 * (mean.pow(2) + log_var.exp() - 1.0 - log_var).sum(dim=1)
    latent_bits = kl_nats / math.log(2) / batch["samples"]
    total = residual_bits + model.hp.kl_weight * latent_bits
    return total.mean(), {"residual": float(residual_bits.detach().mean()),
                          "latent": float(latent_bits.detach().mean())}
