"""The model file (spec §8.1) as `construct` grammar: the learned VAE, integers only.

A model file is what MODEL_DATA carries and what MODEL_REF names by SHA-256 (of every byte of
the file). Weight and bias arrays stay ``Bytes`` (big-endian int16 / int32) for numpy.
"""

from __future__ import annotations

from construct import (Bytes, Const, Int8ub, Int16ub, Int32ub, PascalString, PrefixedArray, Struct,
                       Terminated, this)

from .constants import MODEL_MAGIC, ModelKind

__all__ = ["Layer", "ModelFile"]

# §8.1 one fully connected layer: outputs x inputs weights, row-major (one row per output)
Layer = Struct(
    "inputs" / Int16ub,
    "outputs" / Int16ub,
    "shift" / Int8ub,
    "activation" / Int8ub,
    "weights" / Bytes(this.inputs * this.outputs * 2),  # int16, big-endian
    "biases" / Bytes(this.outputs * 4),  # int32, big-endian
)

ModelFile = Struct(
    "magic" / Const(MODEL_MAGIC),
    "format_version" / Int8ub,
    "kind" / Int8ub,
    "name" / PascalString(Int8ub, "utf8"),
    "description" / PascalString(Int32ub, "utf8"),  # informative: JSON with the training record
    "latent_dim" / Int8ub,
    "latent_levels_log2" / Int8ub,
    "history" / Int8ub,  # RESIDUAL: past values per feature group (§8.3); LOSSY: 0
    "block" / Int16ub,  # LOSSY: samples per latent vector (§8.6); RESIDUAL: 0
    # trees of 2**latent_levels_log2 - 1 node probabilities, u16 big-endian (§8.2): one per
    # latent, and for LOSSY models one more, first, for the block gain (§8.6)
    "prior" / Bytes(lambda ctx: (ctx.latent_dim + (ctx.kind == ModelKind.LOSSY))
                    * ((1 << ctx.latent_levels_log2) - 1) * 2),
    "encoder" / PrefixedArray(Int8ub, Layer),  # informative: the encoder's analysis network
    "decoder" / PrefixedArray(Int8ub, Layer),  # normative
    Terminated,  # nothing follows the decoder
)
