"""Float VAE -> integer model file (§8.1): weights to 14-bit integers with a power-of-two scale
per layer, biases in the layer's accumulator unit, and the latent prior from the symbols the
integer encoder chooses on the training data."""

from __future__ import annotations

import json

import numpy as np
import torch

from ..model import Layer, Model, load_model
from ..spec import model as model_grammar
from ..spec.constants import (MAX_BIAS, MAX_LAYER_SHIFT, MAX_WEIGHT, MODEL_FORMAT_VERSION,
                              Activation, ModelKind)
from .net import UNIT, ResidualVAE

__all__ = ["export_residual", "integer_layer", "float_layer", "prior_from_symbols"]

PRIOR_FLOOR = 64  # node probabilities stay in [64, 65472]: no symbol is ever near-impossible


def integer_layer(weight: np.ndarray, bias: np.ndarray, activation: Activation,
                  bias_unit: float = UNIT) -> dict:
    """Integer weights W * 2**shift and biases b * bias_unit * 2**shift, with the largest
    shift that keeps them within the §8.1 bounds; as a grammar ``Layer`` dict."""
    wmax = float(np.abs(weight).max()) or 1e-12
    bmax = float(np.abs(bias).max()) * bias_unit or 1e-12
    shift = MAX_LAYER_SHIFT
    while shift > 0 and (wmax * 2**shift > MAX_WEIGHT or bmax * 2**shift > MAX_BIAS):
        shift -= 1
    w = np.clip(np.round(weight * 2**shift), -MAX_WEIGHT, MAX_WEIGHT).astype(">i2")
    b = np.clip(np.round(bias * bias_unit * 2**shift), -MAX_BIAS, MAX_BIAS).astype(">i4")
    return dict(inputs=weight.shape[1], outputs=weight.shape[0], shift=shift,
                activation=int(activation), weights=w.tobytes(), biases=b.tobytes())


def float_layer(layer: Layer, bias_unit: float = UNIT) -> tuple[np.ndarray, np.ndarray]:
    """The float weights and biases an integer layer stands for (to fine-tune a model)."""
    scale = 2.0**layer.shift
    return layer.weights / scale, layer.biases / (bias_unit * scale)


def prior_from_symbols(symbols: np.ndarray, levels_log2: int) -> np.ndarray:
    """Node probabilities of P(bit = 0) per latent dimension from symbol counts (+1 each)."""
    levels = 1 << levels_log2
    dims = symbols.shape[1]
    prior = np.empty((dims, levels - 1), np.uint16)
    for d in range(dims):
        counts = np.bincount(symbols[:, d], minlength=levels).astype(np.float64) + 1.0
        weight = np.zeros(2 * levels)
        weight[levels:] = counts
        for node in range(levels - 1, 0, -1):
            weight[node] = weight[2 * node] + weight[2 * node + 1]
        p0 = np.floor(weight[2:2 * levels:2] / weight[1:levels] * 65536)
        prior[d] = np.clip(p0, PRIOR_FLOOR, 65536 - PRIOR_FLOOR)
    return prior


def _build(net: ResidualVAE, name: str, description: dict, prior: np.ndarray) -> bytes:
    hp = net.hp
    t = {k: v.detach().double().numpy() for k, v in net.state_dict().items()}
    # The heads' float output is (mean, log-variance) / MEAN_SCALE; in integers (x 2048) one
    # latent step is 256 units (§8.5).
    encoder = [integer_layer(t["encoder_hidden.weight"], t["encoder_hidden.bias"], Activation.RELU),
               integer_layer(t["encoder_heads.weight"], t["encoder_heads.bias"],
                             Activation.IDENTITY)]
    features = 2 * hp.history + 5
    w1 = t["decoder_hidden.weight"]
    # latent inputs reach the integer network as z << (12 - levels) = (z / 2**(levels-1)) * 2048
    decoder = [integer_layer(w1, t["decoder_hidden.bias"], Activation.RELU),
               integer_layer(t["decoder_out.weight"], t["decoder_out.bias"], Activation.IDENTITY)]
    assert w1.shape[1] == features + hp.latent_dim
    return model_grammar.ModelFile.build(dict(
        format_version=MODEL_FORMAT_VERSION, kind=int(ModelKind.RESIDUAL), name=name,
        description=json.dumps(description, sort_keys=True), latent_dim=hp.latent_dim,
        latent_levels_log2=hp.latent_levels_log2, history=hp.history, block=0,
        prior=prior.astype(">u2").tobytes(), encoder=encoder, decoder=decoder))


def export_residual(net: ResidualVAE, name: str, description: dict,
                    analysis: np.ndarray) -> Model:
    """The integer model of a trained net; the prior counts the integer encoder's symbols on
    ``analysis`` (the training subframes' analysis features)."""
    hp = net.hp
    flat = np.full((hp.latent_dim, (1 << hp.latent_levels_log2) - 1), 32768, np.uint16)
    draft = load_model(_build(net, name, description, flat))
    symbols = draft.analyse(analysis.astype(np.int64))
    prior = prior_from_symbols(symbols, hp.latent_levels_log2)
    return load_model(_build(net, name, description, prior))


def load_into(net: ResidualVAE, model: Model) -> None:
    """Initialise a float net from an integer model (``--adapt`` fine-tunes from here)."""
    pairs = [("encoder_hidden", model.encoder[0]), ("encoder_heads", model.encoder[1]),
             ("decoder_hidden", model.decoder[0]), ("decoder_out", model.decoder[1])]
    with torch.no_grad():
        for attr, layer in pairs:
            w, b = float_layer(layer)
            module = getattr(net, attr)
            module.weight.copy_(torch.from_numpy(w))
            module.bias.copy_(torch.from_numpy(b))
