"""Training the RESIDUAL VAE (§8.3) and fine-tuning it on one recording (``--adapt``)."""

from __future__ import annotations

import hashlib
import math
import platform
import time
from pathlib import Path

import numpy as np

from .params import HyperParameters

__all__ = ["train_residual", "adapt"]


def _batches(ex, rows: np.ndarray, size: int, torch):
    for i in range(0, len(rows), size):
        r = rows[i:i + size]
        yield {"analysis": torch.from_numpy(ex.analysis[r].astype(np.float32)),
               "features": torch.from_numpy(ex.features[r].astype(np.float32)),
               "target": torch.from_numpy(ex.target[r]),
               "weight": torch.from_numpy(ex.weight[r]),
               "samples": torch.from_numpy(ex.samples[r].astype(np.float32))}


def _evaluate(net, ex, rows, torch, loss_bits, sample=False) -> float:
    total, count = 0.0, 0
    with torch.no_grad():
        for batch in _batches(ex, rows, 256, torch):
            loss, _ = loss_bits(net, batch, sample=sample)
            total += float(loss) * len(batch["samples"])
            count += len(batch["samples"])
    return total / max(count, 1)


def train_residual(data: list[str], output: str | None, hp: HyperParameters, *,
                   name: str = "vaelac-model", init=None, threads: int = 1, command: str = "",
                   log=print, examples=None):
    """Train on the .wav files under ``data``; returns (Model, report dict).

    ``init`` (a Model) starts from its weights instead of a seeded random initialisation, as
    ``encode --adapt`` does. ``examples`` (prebuilt Examples) skips the data preparation.
    """
    import torch

    from .. import __version__
    from .data import build_examples, collect_files
    from .export import export_residual, load_into
    from .net import ResidualVAE, loss_bits

    torch.manual_seed(hp.seed)
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    started = time.monotonic()
    files = collect_files(data) if examples is None else []
    if examples is None:
        if not files:
            raise ValueError("no .wav files found under " + ", ".join(map(str, data)))
        log(f"vaelac train: preparing examples from {len(files)} files")
        examples = build_examples(files, history=hp.history, positions=hp.positions,
                                  copies=hp.augment_copies, seed=hp.seed, level=hp.level, log=log)
    n = len(examples)
    if n == 0:
        raise ValueError("the training data has no predicted subframes")
    rng = np.random.default_rng(hp.seed)
    order = rng.permutation(n)
    held = max(1, n // 10) if n >= 10 else 0
    valid, train = order[:held], order[held:]
    net = ResidualVAE(hp)
    if init is not None:
        load_into(net, init)
    optimiser = torch.optim.Adam(net.parameters(), lr=hp.learning_rate)
    rows = valid if held else train
    baseline = float(np.mean((examples.weight[rows] * np.abs(examples.target[rows])).mean(axis=1))
                     / math.log(2))
    log(f"vaelac train: {len(train)} training and {len(valid)} validation subframes; "
        f"validation cost without correction {baseline:.4f} bits/sample (the Laplace code "
        "length less its scale term)")
    history = []
    for epoch in range(hp.epochs):
        net.train()
        shuffled = train[rng.permutation(len(train))]
        parts = []
        for batch in _batches(examples, shuffled, hp.batch_subframes, torch):
            loss, _ = loss_bits(net, batch)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            parts.append(loss.item())
        net.eval()
        valid_bits = _evaluate(net, examples, valid, torch, loss_bits) if held else float("nan")
        history.append((float(np.mean(parts)), valid_bits))
        log(f"  epoch {epoch + 1}/{hp.epochs}: train {history[-1][0]:.4f}, validation "
            f"{valid_bits:.4f} bits/sample")
    description = {
        "trained_by": f"vaelac {__version__}", "command": command,
        "hyperparameters": hp.as_dict(), "torch": torch.__version__,
        "python": platform.python_version(), "threads": threads,
        "data_files": len(files), "data_sha256": _files_digest(files),
        "subframes": {"train": int(len(train)), "validation": int(held)},
        "bits_per_sample": {"no_correction": round(baseline, 5),
                            "validation": round(history[-1][1], 5) if history else None},
        "init": init.name if init is not None else None,
    }
    model = export_residual(net, name, description, examples.analysis[train])
    report = dict(description, seconds=round(time.monotonic() - started, 1), history=history)
    if output:
        from .._atomic import atomic_output

        with atomic_output(output) as f:
            f.write(model.data)
        log(f"vaelac train: wrote {output} ({len(model.data)} bytes, sha256 "
            f"{model.sha256.hex()})")
    return model, report


def _files_digest(files: list[Path]) -> str | None:
    """SHA-256 over the names and SHA-256s of the training files (identifies the corpus)."""
    if not files:
        return None
    h = hashlib.sha256()
    for f in files:
        h.update(f.name.encode() + b"\0" + hashlib.sha256(f.read_bytes()).digest())
    return h.hexdigest()


ADAPT_EPOCHS = 10
ADAPT_LEARNING_RATE = 3e-4


def adapt(model, pcm: np.ndarray, bits: int, rate: int, *, level: int = 5, seed: int = 0,
          epochs: int = ADAPT_EPOCHS, threads: int = 1, log=lambda *_: None):
    """A copy of ``model`` fine-tuned on one recording (``vaelac encode --adapt``), or None when
    the recording has no predicted subframes to learn from."""
    import json

    from .data import examples_from_pcm

    hp_dict = json.loads(model.description or "{}").get("hyperparameters", {})
    hp = HyperParameters(**{k: v for k, v in hp_dict.items()
                            if k in HyperParameters.__dataclass_fields__})
    hp.history, hp.latent_dim = model.history, model.latent_dim
    hp.latent_levels_log2 = model.latent_levels_log2
    hp.encoder_hidden = model.encoder[0].weights.shape[0]
    hp.decoder_hidden = model.decoder[0].weights.shape[0]
    hp.epochs, hp.learning_rate, hp.seed, hp.level = epochs, ADAPT_LEARNING_RATE, seed, level
    examples = examples_from_pcm(pcm, bits, rate, history=hp.history, positions=hp.positions,
                                 seed=seed, level=level)
    if len(examples) == 0:
        return None
    adapted, _ = train_residual([], None, hp, name=f"{model.name}+adapted", init=model,
                                threads=threads, command="vaelac encode --adapt", log=log,
                                examples=examples)
    return adapted
