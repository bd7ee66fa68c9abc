"""The learned model (spec §8): model files, the built-in registry and the integer networks.

A model file is parsed through :mod:`vaelac.spec.model` and validated against the bounds of
§8.1 before use, so every sum of its networks fits a signed 32-bit integer. The decoder needs
only :meth:`Model.decoder_net`; :meth:`Model.analyse` is the encoder's choice of latents.
Nothing here imports torch: training lives in :mod:`vaelac.train`.
"""

from __future__ import annotations

import functools
import hashlib
import os
import sys
from array import array
from dataclasses import dataclass
from typing import TYPE_CHECKING

import construct

from ._backend import kernels
from .spec import model as model_grammar
from .spec.constants import (ACTIVATION_MAX, ANALYSIS_FEATURES, FEATURE_MAX, MAX_BIAS,
                             MAX_FAN_IN, MAX_HISTORY, MAX_LATENT_DIM, MAX_LATENT_LEVELS_LOG2,
                             MAX_LAYER_SHIFT, MAX_LAYER_WIDTH, MAX_LAYERS, MAX_LOSSY_BLOCK,
                             MAX_WEIGHT, MIN_LOSSY_LATENT_LEVELS_LOG2, MODEL_FORMAT_VERSION,
                             RESIDUAL_DECODER_LAYERS, Activation, ModelKind)
from .spec.errors import ModelError

if TYPE_CHECKING:  # numpy is imported where arrays are made: vaelac decode needs none
    import numpy as np

__all__ = ["Layer", "Model", "load_model", "default_model", "builtin_models", "find_model",
           "analysis_features", "ANALYSIS_FEATURES", "DEFAULT_MODEL_NAME"]

DEFAULT_MODEL_NAME = "vaelac-default-1"
_ANALYSIS_LAGS = 16
_ANALYSIS_BLOCKS = 8


@dataclass(frozen=True)
class Layer:
    """One fully connected integer layer (§8.1): y = act((W @ x + b) >> shift).

    The values are kept as stdlib arrays, so that loading a model (which every decode of a
    model stream does) does not import numpy; :attr:`weights` and :attr:`biases` are their
    numpy views for the encoder and training.
    """

    outputs: int
    inputs: int
    weight_values: array  # int16 ('h'), row-major (outputs, inputs)
    bias_values: array  # int32 ('i'), (outputs,)
    shift: int
    activation: Activation

    @functools.cached_property
    def weights(self) -> np.ndarray:
        """int16, (outputs, inputs)."""
        import numpy as np
        return np.frombuffer(self.weight_values, np.int16).reshape(self.outputs, self.inputs)

    @functools.cached_property
    def biases(self) -> np.ndarray:
        """int32, (outputs,)."""
        import numpy as np
        return np.frombuffer(self.bias_values, np.int32)

    def row(self, j: int) -> array:
        """The weights of output ``j``."""
        return self.weight_values[j * self.inputs:(j + 1) * self.inputs]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Apply to int64 inputs of shape (..., inputs); exact integer arithmetic."""
        import numpy as np
        y = (x.astype(np.int64) @ self.weights.T.astype(np.int64) + self.biases) >> self.shift
        if self.activation == Activation.RELU:
            y = np.clip(y, 0, ACTIVATION_MAX)
        return y


@dataclass(frozen=True)
class Model:
    """A parsed, validated model file."""

    kind: ModelKind
    name: str
    description: str
    latent_dim: int
    latent_levels_log2: int
    history: int
    block: int
    prior: array  # uint16 ('H'), latent_dim * (2**levels - 1), node order per dimension
    encoder: tuple[Layer, ...]
    decoder: tuple[Layer, ...]
    sha256: bytes
    data: bytes

    @property
    def latent_offset(self) -> int:
        """Symbols are latent + offset, in 0 .. 2**latent_levels_log2 - 1 (§8.2)."""
        return 1 << (self.latent_levels_log2 - 1)

    def latent_inputs(self, symbols):
        """The decoder's latent inputs: (symbol - offset) << (12 - levels), in [-2048, 2047];
        an int64 array of the same shape for a numpy array, else a list."""
        offset, up = self.latent_offset, 12 - self.latent_levels_log2
        if hasattr(symbols, "ndim"):  # numpy: the lossy decoder's blocks of symbols
            return (symbols.astype("int64") - offset) << up
        return [(int(s) - offset) << up for s in symbols]

    @property
    def features(self) -> int:
        """Per-sample inputs of a RESIDUAL decoder network (§8.3)."""
        return 2 * self.history + 5

    # -- RESIDUAL models (§8.3–§8.5) ------------------------------------------------------
    def decoder_net(self, symbols) -> tuple:
        """The per-sample network for one subframe's latent symbols, as the kernels take it.
        The latents are constant over a subframe: they fold into the first layer's biases."""
        history, shift1, shift2, w1, latent_weights, biases, w2, b2 = self._net_parts
        frame_bias = array("i", bytes(len(biases) * 4))
        kernels.affine(latent_weights, array("q", self.latent_inputs(symbols)), biases,
                       frame_bias)
        return (history, shift1, shift2, w1, frame_bias, w2, b2)

    @functools.cached_property
    def _net_parts(self) -> tuple:
        """What decoder_net needs that does not depend on the symbols (built once per model)."""
        first, second = self.decoder
        features = self.features
        w1, latent_weights = array("h"), array("h")
        for j in range(first.outputs):
            row = first.row(j)
            w1.extend(row[:features])
            latent_weights.extend(row[features:])
        return (self.history, first.shift, second.shift, w1, latent_weights, first.bias_values,
                second.row(0), int(second.bias_values[0]))

    def analyse(self, features: np.ndarray) -> np.ndarray:
        """Latent symbols for analysis features (the encoder network's mean, rounded)."""
        import numpy as np
        x = np.asarray(features, np.int64)
        for layer in self.encoder:
            x = layer(x)
        mean = x[..., : self.latent_dim]  # in units of 1/256 (§8.5)
        z = (mean + 128) >> 8
        return np.clip(z + self.latent_offset, 0, (1 << self.latent_levels_log2) - 1)

    @property
    def zero_symbols(self) -> np.ndarray:
        import numpy as np
        return np.full(self.latent_dim, self.latent_offset, np.int64)


def _bad(name: str, what: str) -> ModelError:
    return ModelError(f"model {name!r}: {what} (§8.1)")


def _big_endian(kind: str, data: bytes) -> array:
    values = array(kind, data)
    if sys.byteorder == "little":
        values.byteswap()
    return values


def _layers(raw, name: str, where: str) -> tuple[Layer, ...]:
    layers = []
    for i, L in enumerate(raw):
        label = f"{where} layer {i}"
        if not (1 <= L.inputs <= MAX_LAYER_WIDTH and 1 <= L.outputs <= MAX_LAYER_WIDTH):
            raise _bad(name, f"{label} has {L.inputs} inputs and {L.outputs} outputs")
        if L.shift > MAX_LAYER_SHIFT or L.activation not in tuple(Activation):
            raise _bad(name, f"{label}: shift {L.shift} or activation {L.activation} invalid")
        w = _big_endian("h", L.weights)
        b = _big_endian("i", L.biases)
        if max(map(abs, w)) > MAX_WEIGHT or max(map(abs, b)) > MAX_BIAS:
            raise _bad(name, f"{label}: a weight exceeds {MAX_WEIGHT} or a bias {MAX_BIAS}")
        layers.append(Layer(L.outputs, L.inputs, w, b, L.shift, Activation(L.activation)))
    return tuple(layers)


def load_model(data: bytes, *, expected_sha256: bytes | None = None) -> Model:
    """Parse and validate a model file (§8.1). Raises ModelError for anything wrong with it."""
    data = bytes(data)
    digest = hashlib.sha256(data).digest()
    if expected_sha256 is not None and digest != expected_sha256:
        raise ModelError(f"model data has SHA-256 {digest.hex()}, the stream names "
                         f"{expected_sha256.hex()} (§8.1)")
    try:
        raw = model_grammar.ModelFile.parse(data)
    except construct.ConstructError as exc:
        raise ModelError(f"not a valid model file: {str(exc).splitlines()[0]} (§8.1)") from None
    name = raw.name
    if raw.format_version != MODEL_FORMAT_VERSION:
        raise _bad(name, f"format_version {raw.format_version} is not {MODEL_FORMAT_VERSION}")
    if raw.kind not in tuple(ModelKind):
        raise _bad(name, f"kind {raw.kind} is reserved")
    if not (1 <= raw.latent_dim <= MAX_LATENT_DIM
            and 1 <= raw.latent_levels_log2 <= MAX_LATENT_LEVELS_LOG2):
        raise _bad(name, f"latent_dim {raw.latent_dim} or levels {raw.latent_levels_log2}")
    prior = _big_endian("H", raw.prior)
    if 0 in prior:
        raise _bad(name, "a prior probability is 0")
    encoder = _layers(raw.encoder, name, "encoder")
    decoder = _layers(raw.decoder, name, "decoder")
    if len(encoder) > MAX_LAYERS or len(decoder) > MAX_LAYERS or not encoder or not decoder:
        raise _bad(name, "each network has 1..8 layers")
    kind = ModelKind(raw.kind)
    _check_chain(encoder, name, "encoder", None)
    _check_chain(decoder, name, "decoder", MAX_FAN_IN if kind == ModelKind.RESIDUAL else None)
    if encoder[-1].outputs != 2 * raw.latent_dim:
        raise _bad(name, "the encoder must output a mean and a log-variance per latent")
    if kind == ModelKind.RESIDUAL:
        if not 1 <= raw.history <= MAX_HISTORY or raw.block != 0:
            raise _bad(name, f"history {raw.history} must be 1..{MAX_HISTORY}, block 0")
        if encoder[0].inputs != ANALYSIS_FEATURES:
            raise _bad(name, f"the encoder takes {ANALYSIS_FEATURES} analysis features")
        if (len(decoder) != RESIDUAL_DECODER_LAYERS or decoder[0].activation != Activation.RELU
                or decoder[1].activation != Activation.IDENTITY
                or decoder[0].inputs != 2 * raw.history + 5 + raw.latent_dim
                or decoder[1].outputs != 1):
            raise _bad(name, "a RESIDUAL decoder is (2H+5+latents) -> ReLU hidden -> 1")
    else:
        if raw.history != 0 or not 1 <= raw.block <= MAX_LOSSY_BLOCK:
            raise _bad(name, f"a LOSSY model has history 0 and block 1..{MAX_LOSSY_BLOCK}")
        if raw.latent_levels_log2 < MIN_LOSSY_LATENT_LEVELS_LOG2:
            raise _bad(name, "a LOSSY model's symbols need 6 or more bits (gains up to 40)")
        if (encoder[0].inputs != raw.block
                or decoder[0].inputs != raw.latent_dim
                or decoder[-1].outputs != raw.block
                or decoder[-1].activation != Activation.IDENTITY):
            raise _bad(name, "a LOSSY model maps block samples -> latents -> block samples")
    trees = raw.latent_dim + (kind == ModelKind.LOSSY)
    if len(prior) != trees * ((1 << raw.latent_levels_log2) - 1):
        raise _bad(name, "prior size")
    return Model(kind, name, raw.description, raw.latent_dim, raw.latent_levels_log2,
                 raw.history, raw.block, prior, encoder, decoder, digest, data)


def _check_chain(layers: tuple[Layer, ...], name: str, where: str, max_fan_in: int | None
                 ) -> None:
    for i, layer in enumerate(layers):
        inputs = layer.inputs
        if max_fan_in is not None and inputs > max_fan_in:
            raise _bad(name, f"{where} layer {i} has fan-in {inputs} > {max_fan_in}")
        if i and layers[i - 1].outputs != inputs:
            raise _bad(name, f"{where} layer {i} takes {inputs} inputs, the layer before gives "
                       f"{layers[i - 1].outputs}")
        if i < len(layers) - 1 and layer.activation != Activation.RELU:
            raise _bad(name, f"{where} hidden layer {i} must be ReLU")


# -- the registry of models shipped with vaelac ----------------------------------------------

# The package is installed as files (it carries a compiled extension), so a path next to this
# module is enough; importlib.resources would add ~10 ms (pathlib) to every command's start-up.
_MODEL_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "models")


def _read_shipped(name: str) -> bytes:
    with open(os.path.join(_MODEL_DIR, name), "rb") as f:
        return f.read()


@functools.lru_cache(maxsize=None)
def builtin_models() -> dict[bytes, str]:
    """SHA-256 -> file name of every model shipped in the package."""
    found = {}
    if os.path.isdir(_MODEL_DIR):
        for name in sorted(os.listdir(_MODEL_DIR)):
            if name.endswith(".vaem"):
                found[hashlib.sha256(_read_shipped(name)).digest()] = name
    return found


@functools.lru_cache(maxsize=8)
def _builtin(sha256: bytes) -> Model:
    name = builtin_models()[sha256]
    return load_model(_read_shipped(name), expected_sha256=sha256)


def find_model(sha256: bytes, name: str, embedded: dict[bytes, bytes] | None = None) -> Model:
    """The model a stream names: embedded in it (MODEL_DATA) or shipped with vaelac (§8.1)."""
    if embedded and sha256 in embedded:
        return load_model(embedded[sha256], expected_sha256=sha256)
    if sha256 in builtin_models():
        return _builtin(sha256)
    extra = os.environ.get("VAELAC_MODEL_PATH")
    for folder in (extra.split(os.pathsep) if extra else []):
        for entry in os.scandir(folder) if os.path.isdir(folder) else []:
            if entry.name.endswith(".vaem"):
                with open(entry.path, "rb") as f:
                    data = f.read()
                if hashlib.sha256(data).digest() == sha256:
                    return load_model(data, expected_sha256=sha256)
    raise ModelError(f"model {name!r} (SHA-256 {sha256.hex()}) is neither embedded in the "
                     "stream nor installed (§8.1)")


def default_model(kind: ModelKind = ModelKind.RESIDUAL) -> Model | None:
    """The shipped model of that kind, or None when the package carries none."""
    return shipped_model(DEFAULT_MODEL_NAME if kind == ModelKind.RESIDUAL else "vaelac-lossy-1")


def shipped_model(name: str) -> Model | None:
    """The model shipped in the package under that name (its file name without .vaem), or
    None."""
    for sha, file_name in builtin_models().items():
        if file_name == name + ".vaem":
            return _builtin(sha)
    return None


def model_from_file(path: str | os.PathLike) -> Model:
    with open(path, "rb") as f:
        return load_model(f.read())


# -- the encoder's analysis features (§8.5, informative) ---------------------------------------

def analysis_features(e: np.ndarray, s: np.ndarray, width: int) -> np.ndarray:
    """The encoder network's input for one subframe: integers in [-2047, 2047].

    Normalised autocorrelation of the residual at lags 1..16 (x 2047), the log2 energy of 8
    equal sub-blocks relative to the whole (x 256), the log2 mean |e| relative to full scale
    (x 128) and the log2 prediction gain (x 256).
    """
    import numpy as np
    e = np.ascontiguousarray(e, np.float64)
    s = np.asarray(s, np.float64)
    n = len(e)
    out = np.zeros(ANALYSIS_FEATURES)
    r = _sums_of_products(e, _ANALYSIS_LAGS)  # r[k] = e[k:] . e[:n-k], 0 beyond the end
    energy = float(r[0])
    if n > 1 and energy > 0:
        out[:_ANALYSIS_LAGS] = 2047 * r[1:] / energy
    mean_energy = energy / max(n, 1) + 1.0
    for b, part in enumerate(np.array_split(e, _ANALYSIS_BLOCKS)):
        if len(part):
            out[_ANALYSIS_LAGS + b] = 256 * np.log2((_sums_of_products(part, 0)[0] / len(part)
                                                     + 1.0) / mean_energy)
    mean_abs = float(np.abs(e).mean()) if n else 0.0
    out[24] = 128 * (np.log2(mean_abs + 1.0) - width)
    ds = np.diff(s) if n > 1 else np.zeros(1)
    out[25] = 256 * np.log2((float(_sums_of_products(ds, 0)[0]) / max(len(ds), 1) + 1.0)
                            / mean_energy)
    return np.clip(np.round(out), -FEATURE_MAX, FEATURE_MAX).astype(np.int64)


def _sums_of_products(x: np.ndarray, max_lag: int) -> np.ndarray:
    """x[k:] . x[:len(x)-k] for k = 0..max_lag, each summed in order by the kernels, not by
    numpy.dot: a float dot product goes to BLAS, whose thread pool then spins on the other
    cores (the API encoded 1.7-12x slower than the command line, which turned it off), and
    whose summation order depends on the CPU and the library. The residuals are integers, so
    the sums are exact below 2**53 whichever the order."""
    import numpy as np
    r = np.empty(max_lag + 1)
    kernels.autocorrelation(np.ascontiguousarray(x, np.float64), max_lag, r)
    return r
