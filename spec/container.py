"""The `.vae` byte layout as `construct` grammar (spec §3–§5). The only parser of these bytes.

Bulk payloads (frame payloads, coded residuals, verbatim samples) stay ``Bytes`` and are handed
to the numeric kernels; everything else is built and parsed here.
"""

from __future__ import annotations

from construct import (Array, BitsInteger, Bitwise, Bytes, Const, Error, Int8ub, Int16ub, Int32ub,
                       Int64sb, Int64ub, PascalString, PrefixedArray, Struct, Switch, this)

from .constants import SIGNATURE, BlockType, SubframeType

__all__ = [
    "FileHead", "BlockHeader", "StreamInfo", "SeekPoint", "SeekTable", "Tags", "ModelRef",
    "MetadataCrc", "FrameHeader", "FrameHeaderNoCrc", "Subframe", "SubframeHead", "ConstantBody", "VerbatimBody",
    "PredictedBody", "LossyBody", "BLOCK_BODIES",
]

# §3.1 signature and version
FileHead = Struct(
    "signature" / Const(SIGNATURE),
    "version_major" / Int8ub,
    "version_minor" / Int8ub,
)

# §4.1 every metadata block starts with this 4-byte header
BlockHeader = Bitwise(Struct(
    "is_last" / BitsInteger(1),
    "block_type" / BitsInteger(7),
    "length" / BitsInteger(24),
))

# §4.2
StreamInfo = Struct(
    "sample_rate" / Int32ub,
    "channels" / Int8ub,
    "bits_per_sample" / Int8ub,
    "flags" / Int8ub,
    "reserved" / Int8ub,
    "frame_length" / Int32ub,
    "total_samples" / Int64ub,
    "channel_mask" / Int32ub,
    "pcm_md5" / Bytes(16),
)

# §4.4
SeekPoint = Struct(
    "sample_number" / Int64ub,
    "byte_offset" / Int64ub,
)
SeekTable = PrefixedArray(Int32ub, SeekPoint)

# §4.5: Vorbis-comment-like tags, UTF-8, "KEY=value"
Tags = Struct(
    "vendor" / PascalString(Int32ub, "utf8"),
    "comments" / PrefixedArray(Int32ub, PascalString(Int32ub, "utf8")),
)

# §4.6
ModelRef = Struct(
    "sha256" / Bytes(32),
    "name" / PascalString(Int8ub, "utf8"),
)

# §4.7 (version 1.5): CRC-32 of every byte before this field
MetadataCrc = Struct(
    "metadata_crc32" / Int32ub,
)

BLOCK_BODIES = {
    BlockType.STREAMINFO: StreamInfo,
    BlockType.SEEKTABLE: SeekTable,
    BlockType.TAGS: Tags,
    BlockType.MODEL_REF: ModelRef,
    BlockType.METADATA_CRC: MetadataCrc,
}

# §5.1 frame header; header_crc8 covers the 13 bytes before it
FrameHeaderNoCrc = Struct(
    "sync" / Int16ub,
    "frame_index" / Int32ub,
    "sample_count" / Int16ub,
    "channel_mode" / Int8ub,
    "payload_length" / Int32ub,
)
FrameHeader = Struct(
    "sync" / Int16ub,
    "frame_index" / Int32ub,
    "sample_count" / Int16ub,
    "channel_mode" / Int8ub,
    "payload_length" / Int32ub,
    "header_crc8" / Int8ub,
)

# §5.3 subframes
SubframeHead = Struct(
    "subframe_type" / Int8ub,
    "wasted_bits" / Int8ub,
)
ConstantBody = Struct(
    "value" / Int64sb,
)
VerbatimBody = Struct(
    "data_length" / Int32ub,
    "data" / Bytes(this.data_length),
)
# The fields PREDICTED, CASCADE, MIXED_CASCADE and OLS_CASCADE bodies share (§5.4): each body is a run of
# these, defined once and placed in order.
_PREDICTOR = (
    "order" / Int8ub,
    "coef_bits" / Int8ub,
    "shift" / Int8ub,
    "initial_mean_log2" / Int8ub,
    # order signed integers of coef_bits bits each, MSB first, zero-padded to a byte (§5.4)
    "coefs" / Bytes((this.order * this.coef_bits + 7) // 8),
)
_CODED_DATA = (
    "data_length" / Int32ub,
    "data" / Bytes(this.data_length),
)
PredictedBody = Struct(*_PREDICTOR, *_CODED_DATA)
CascadeStage = Struct(  # §6.4
    "taps" / Int16ub,
    "shift" / Int8ub,
    "step" / Int8ub,
    "rule" / Int8ub,
)
_STAGES = (  # §6.4: the adaptive stages
    "cross_taps" / Int8ub,
    "cross_shift" / Int8ub,
    "cross_step" / Int8ub,
    "stage_count" / Int8ub,
    "stages" / Array(this.stage_count, CascadeStage),
)
_MIXER = (  # §6.5
    "mix_shift" / Int8ub,
    "mix_step" / Int8ub,
    "mix_bias" / Int8ub,
)
_OLS = (  # §6.6: the least-squares predictor, in place of _PREDICTOR
    "initial_mean_log2" / Int8ub,
    "ols_taps" / Int8ub,
    "ols_cross_taps" / Int8ub,
    "ols_scale" / Int8ub,
    "ols_forget" / Int8ub,
    "ols_ridge" / Int8ub,
    "ols_interval_log2" / Int8ub,
)
# §6.4: PREDICTED's fields, then the adaptive stages, then the data
CascadeBody = Struct(*_PREDICTOR, *_STAGES, *_CODED_DATA)
# §6.5: CASCADE's fields up to the stages, the mixer, the data
MixedCascadeBody = Struct(*_PREDICTOR, *_STAGES, *_MIXER, *_CODED_DATA)
# §6.6: the least-squares predictor's fields, then MIXED_CASCADE's after its coefs
OlsCascadeBody = Struct(*_OLS, *_STAGES, *_MIXER, *_CODED_DATA)
LossyBody = Struct(  # §8.6: the range-coded gains and latents of every block
    "data_length" / Int32ub,
    "data" / Bytes(this.data_length),
)
Subframe = Struct(
    "subframe_type" / Int8ub,
    "wasted_bits" / Int8ub,
    "body" / Switch(this.subframe_type, {
        int(SubframeType.CONSTANT): ConstantBody,
        int(SubframeType.VERBATIM): VerbatimBody,
        int(SubframeType.PREDICTED): PredictedBody,
        int(SubframeType.CASCADE): CascadeBody,
        int(SubframeType.MIXED_CASCADE): MixedCascadeBody,
        int(SubframeType.OLS_CASCADE): OlsCascadeBody,
        int(SubframeType.MODEL_PREDICTED): PredictedBody,  # §8.4: same body, model-coded data
        int(SubframeType.MODEL_LOSSY): LossyBody,
    }, default=Error),  # a reserved type has no body to parse (§5.3: UnsupportedError)
)
