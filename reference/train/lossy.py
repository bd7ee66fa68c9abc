"""The paper's lossy VAE (Obaid & Kadhim, 2025), trained with torch and exported as a LOSSY
model (spec §8.6): fully connected ReLU encoder and decoder, mean and log-variance heads,
loss = MSE + lambda * KL, Adam.

Blocks of ``block`` samples are scaled by their gain (a power of two above the peak), so the
network sees values in (-1, 1); latents are N(0, 1) in training and reach the integer decoder
normalised by LATENT_RANGE, quantised to 2**latent_levels_log2 steps.
"""

from __future__ import annotations

import json
import time

import numpy as np

from .._atomic import atomic_output
from ..model import Model, load_model
from ..spec import model as model_grammar
from ..spec.constants import MODEL_FORMAT_VERSION, Activation, ModelKind
from ..wav import read_wav
from .data import collect_files
from .export import integer_layer, prior_from_symbols
from .params import LossyHyperParameters

__all__ = ["LossyHyperParameters", "train_lossy"]

LATENT_RANGE = 4.0  # latents in [-4, 4) map onto the integer range [-1, 1) * 2048


def _blocks(files, hp: LossyHyperParameters, rng) -> np.ndarray:
    """Gain-normalised blocks from every channel of every file (a random subset per file)."""
    out = []
    for path in files:
        pcm, _ = read_wav(path)
        for c in range(pcm.shape[1]):
            x = pcm[:, c].astype(np.float64)
            nb = len(x) // hp.block
            if nb == 0:
                continue
            blocks = x[: nb * hp.block].reshape(nb, hp.block)
            peak = np.abs(blocks).max(axis=1)
            keep = peak > 0
            blocks, peak = blocks[keep], peak[keep]
            gains = np.exp2(np.floor(np.log2(np.maximum(peak, 1))) + 1)
            normal = blocks / gains[:, None]
            take = rng.permutation(len(normal))[: hp.blocks_per_file]
            out.append(normal[take])
    return np.concatenate(out).astype(np.float32)


def train_lossy(data: list[str], output: str | None, hp: LossyHyperParameters, *,
                name: str = "vaelac-lossy", threads: int = 1, command: str = "", log=print
                ) -> tuple[Model, dict]:
    import torch
    from torch import nn

    from .. import __version__

    torch.manual_seed(hp.seed)
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    rng = np.random.default_rng(hp.seed)
    started = time.monotonic()
    files = collect_files(data)
    x = torch.from_numpy(_blocks(files, hp, rng))
    log(f"vaelac train --lossy: {len(x)} blocks of {hp.block} samples from {len(files)} files")
    h1, h2 = hp.hidden
    clamp01 = lambda t: torch.clamp(t, 0.0, 1.0)  # noqa: E731  (integer ReLU clamps at 2047)
    enc = nn.ModuleList([nn.Linear(hp.block, h1), nn.Linear(h1, h2),
                         nn.Linear(h2, 2 * hp.latent_dim)])
    dec = nn.ModuleList([nn.Linear(hp.latent_dim, h2), nn.Linear(h2, h1), nn.Linear(h1, hp.block)])
    params = list(enc.parameters()) + list(dec.parameters())
    opt = torch.optim.Adam(params, lr=hp.learning_rate)

    def forward(batch, sample=True):
        h = clamp01(enc[1](clamp01(enc[0](batch))))
        mean_n, log_var = enc[2](h).chunk(2, dim=-1)  # mean in normalised units
        log_var = log_var.clamp(-16.0, 4.0)
        mean = mean_n * LATENT_RANGE
        z = mean + torch.exp(0.5 * log_var) * torch.randn_like(mean) if sample else mean
        z_n = torch.clamp(z / LATENT_RANGE, -1.0, 1.0)
        y = dec[2](clamp01(dec[1](clamp01(dec[0](z_n)))))
        kl = 0.5 * (mean.pow(2) + log_var.exp() - 1.0 - log_var).sum(dim=1)
        return y, kl

    held = max(1, len(x) // 20)
    order = torch.from_numpy(rng.permutation(len(x)))
    valid, train = x[order[:held]], x[order[held:]]
    history = []
    for epoch in range(hp.epochs):
        perm = torch.from_numpy(rng.permutation(len(train)))
        for i in range(0, len(perm), hp.batch):
            batch = train[perm[i:i + hp.batch]]
            y, kl = forward(batch)
            loss = (y - batch).pow(2).mean() + hp.kl_weight * kl.mean() / hp.block
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            y, _ = forward(valid, sample=False)
            mse = float((y - valid).pow(2).mean())
            snr = 10 * np.log10(float(valid.pow(2).mean()) / max(mse, 1e-12))
        history.append((mse, snr))
        log(f"  epoch {epoch + 1}/{hp.epochs}: validation MSE {mse:.6f}, SNR {snr:.2f} dB "
            "(gain-normalised blocks)")

    t = {f"enc{i}": (m.weight.detach().double().numpy(), m.bias.detach().double().numpy())
         for i, m in enumerate(enc)}
    t.update({f"dec{i}": (m.weight.detach().double().numpy(), m.bias.detach().double().numpy())
              for i, m in enumerate(dec)})
    acts = (Activation.RELU, Activation.RELU, Activation.IDENTITY)
    encoder = [integer_layer(*t[f"enc{i}"], act) for i, act in enumerate(acts)]
    decoder = [integer_layer(*t[f"dec{i}"], act) for i, act in enumerate(acts)]
    description = {"trained_by": f"vaelac {__version__}", "command": command,
                   "hyperparameters": hp.as_dict(), "torch": torch.__version__,
                   "threads": threads, "data_files": len(files),
                   "validation": {"mse": history[-1][0], "snr_db": history[-1][1]}}

    def build(prior: np.ndarray) -> Model:
        return load_model(model_grammar.ModelFile.build(dict(
            format_version=MODEL_FORMAT_VERSION, kind=int(ModelKind.LOSSY), name=name,
            description=json.dumps(description, sort_keys=True), latent_dim=hp.latent_dim,
            latent_levels_log2=hp.latent_levels_log2, history=0, block=hp.block,
            prior=prior.astype(">u2").tobytes(), encoder=encoder, decoder=decoder)))

    from ..lossy import encode_block_symbols

    levels = (1 << hp.latent_levels_log2) - 1
    draft = build(np.full((hp.latent_dim + 1, levels), 32768, np.uint16))
    symbols = []
    for path in files:  # the prior counts the symbols the integer encoder really chooses
        pcm, _ = read_wav(path)
        for c in range(pcm.shape[1]):
            symbols.append(encode_block_symbols(draft, pcm[:, c].astype(np.int64)))
    model = build(prior_from_symbols(np.concatenate(symbols), hp.latent_levels_log2))
    report = dict(description, seconds=round(time.monotonic() - started, 1), history=history)
    if output:
        with atomic_output(output) as f:
            f.write(model.data)
        log(f"vaelac train --lossy: wrote {output} ({len(model.data)} bytes)")
    return model, report
