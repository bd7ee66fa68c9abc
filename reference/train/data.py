"""Training data for the RESIDUAL model: the reference encoder's own subframes (§8.3, §8.5).

Every recording (and its augmented copies) is framed and analysed exactly as ``vaelac encode``
does; each PREDICTED subframe becomes one example: its analysis features (the encoder
network's input), and the decoder network's integer inputs at a sample of positions with the
LPC residual there and the scale the coder would use.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.signal import lfilter

from .._backend import kernels
from ..augment import augment
from ..encoder import LEVELS, analyse_frame, default_frame_length
from ..model import analysis_features
from ..spec.constants import SCALE_STAT_SHIFT
from ..wav import read_wav

__all__ = ["Examples", "collect_files", "build_examples"]


@dataclass
class Examples:
    """Stacked training examples, one row per subframe."""

    analysis: np.ndarray  # (n, 26) int16: encoder network inputs
    features: np.ndarray  # (n, P, 2H+1) int16: decoder network inputs at P positions
    target: np.ndarray  # (n, P) float32: LPC residual / 2**(k-1) (the network's output unit)
    weight: np.ndarray  # (n, P) float32: 2**(k-1) / scale, so weight * |target - out| = |e - d| / b
    samples: np.ndarray  # (n,) int32: subframe length (the rate of the latents is spread on it)
    source: list[str]

    def __len__(self) -> int:
        return len(self.samples)

    def subset(self, rows: np.ndarray) -> "Examples":
        return Examples(self.analysis[rows], self.features[rows], self.target[rows],
                        self.weight[rows], self.samples[rows], [self.source[i] for i in rows])


def collect_files(paths: list[str | os.PathLike]) -> list[Path]:
    """Every .wav file under the given files and folders, sorted (reproducible order)."""
    found: list[Path] = []
    for p in map(Path, paths):
        found += sorted(p.rglob("*.wav")) if p.is_dir() else [p]
    return sorted(set(found))


def _subframes(pcm: np.ndarray, bits: int, rate: int, level: int):
    """(residual, values, cross, width, initial_mean_log2) of every PREDICTED subframe; cross
    is the residual of the subframe before it in the frame, if predicted (§8.3)."""
    frame = default_frame_length(rate)
    for start in range(0, len(pcm), frame):
        _, analyses = analyse_frame(pcm[start:start + frame], bits, LEVELS[level])
        cross = None
        for a in analyses:
            best = None if a.constant or len(a.xs) < 64 else (a.predicted_bests() or [None])[-1]
            if best is not None:
                yield best.residual, a.xs, cross, a.width, best.mean_log2
            cross = None if best is None else best.residual


def _example(e, s, cross, width, mean_log2, history, positions, rng):
    n = len(e)
    feats = np.empty((n, 2 * history + 5), np.int16)
    kernels.model_features(e, s, cross, width, mean_log2, history, feats)
    magnitude = np.minimum(np.abs(e.astype(np.float64)), 2.0**40)
    decay = 1 - 2.0**-SCALE_STAT_SHIFT
    a0 = 2.0 ** (mean_log2 + 3)
    stat = lfilter([1.0], [1.0, -decay], magnitude, zi=[a0 * decay])[0]
    stat = np.concatenate([[a0], stat[:-1]])  # the statistic before each sample
    k = np.floor(np.log2(np.maximum(stat, 1.0))) + 1
    rows = np.sort(rng.choice(n, positions, replace=n < positions))
    unit = np.exp2(k[rows] - 1)
    scale = np.maximum(stat[rows] / 2**SCALE_STAT_SHIFT, 0.5)
    return (analysis_features(e, s, width).astype(np.int16), feats[rows],
            (e[rows] / unit).astype(np.float32), (unit / scale).astype(np.float32), n)


class _Collector:
    def __init__(self, history: int, positions: int, seed: int, level: int):
        self.history, self.positions, self.level = history, positions, level
        self.rng = np.random.default_rng(seed)
        self.cols: list[list] = [[], [], [], [], []]
        self.source: list[str] = []

    def add(self, pcm: np.ndarray, bits: int, rate: int, label: str) -> None:
        for e, s, cross, width, m in _subframes(pcm, bits, rate, self.level):
            example = _example(e, s, cross, width, m, self.history, self.positions, self.rng)
            for col, value in zip(self.cols, example):
                col.append(value)
            self.source.append(label)

    def examples(self) -> Examples:
        F = 2 * self.history + 5
        c = self.cols
        if not self.source:
            return Examples(np.zeros((0, 26), np.int16), np.zeros((0, self.positions, F), np.int16),
                            np.zeros((0, self.positions), np.float32),
                            np.zeros((0, self.positions), np.float32), np.zeros(0, np.int32), [])
        return Examples(np.stack(c[0]), np.stack(c[1]), np.stack(c[2]), np.stack(c[3]),
                        np.array(c[4], np.int32), self.source)


def build_examples(files: list[Path], *, history: int, positions: int, copies: int, seed: int,
                   level: int = 5, log=print) -> Examples:
    """Examples from every file and ``copies`` augmented versions of it, reproducibly."""
    collector = _Collector(history, positions, seed, level)
    for index, path in enumerate(files):
        pcm, fmt = read_wav(path)
        collector.add(pcm.astype(np.int64), fmt.bits_per_sample, fmt.sample_rate,
                      f"{path.name}:original")
        for c in range(copies):
            label, version = augment(pcm, fmt.sample_rate, fmt.bits_per_sample,
                                     seed * 1_000_003 + index * 101 + c)
            collector.add(version, fmt.bits_per_sample, fmt.sample_rate, f"{path.name}:{label}")
        log(f"  {index + 1}/{len(files)} {path.name}: {len(collector.source)} subframes so far")
    return collector.examples()


def examples_from_pcm(pcm: np.ndarray, bits: int, rate: int, *, history: int, positions: int,
                      seed: int, level: int = 5) -> Examples:
    """Examples from one recording, unchanged (``encode --adapt``)."""
    collector = _Collector(history, positions, seed, level)
    collector.add(np.asarray(pcm, np.int64), bits, rate, "input")
    return collector.examples()
