"""Every number the format fixes (spec §3–§8). Field widths carry their unit in the name."""

from __future__ import annotations

import enum

SIGNATURE = b"\x89VAE\r\n\x1a\n"  # §3.1: high bit, CR LF, ^Z, LF catch text-mode and 7-bit damage
VERSION_MAJOR = 1
VERSION_MINOR = 5  # 1.1 added the learned model (§8), 1.2 CASCADE subframes (§6.4), 1.3 the mixer (§6.5), 1.4 OLS_CASCADE (§6.6), 1.5 METADATA_CRC and LAST (§4.7, §5.2)
PROTECTED_VERSION_MINOR = 5  # §3.2: from this minor version on, METADATA_CRC and LAST are required

MIN_SAMPLE_RATE = 1
MAX_SAMPLE_RATE = 2**32 - 1
MIN_CHANNELS = 1
MAX_CHANNELS = 255
MIN_BITS_PER_SAMPLE = 1
MAX_BITS_PER_SAMPLE = 32
MIN_FRAME_LENGTH = 1
MAX_FRAME_LENGTH = 65535
UNKNOWN_TOTAL_SAMPLES = 2**64 - 1
STREAMINFO_FLAG_LOSSY = 0x01
STREAMINFO_FLAGS_DEFINED = STREAMINFO_FLAG_LOSSY

METADATA_LENGTH_BITS = 24
MAX_METADATA_LENGTH = 2**METADATA_LENGTH_BITS - 1


class BlockType(enum.IntEnum):
    """Metadata block types (§4.1); 6–126 are reserved, 127 is forbidden."""

    STREAMINFO = 0
    PADDING = 1
    SEEKTABLE = 2
    TAGS = 3
    MODEL_REF = 4
    MODEL_DATA = 5
    METADATA_CRC = 6  # §4.7, version 1.5


METADATA_CRC_LENGTH = 4  # §4.7: a u32

FORBIDDEN_BLOCK_TYPE = 127

FRAME_SYNC = 0xFFF9  # §5.1
FRAME_HEADER_BYTES = 14
FRAME_CRC_BYTES = 4
CHANNEL_MODE_MASK = 0x7F  # §5.1: channel_mode's bits 0-6 are the mode of §6.1
CHANNEL_MODE_LAST = 0x80  # §5.1, §5.2: bit 7 marks the last frame of an unknown-length stream


class ChannelMode(enum.IntEnum):
    """Decorrelation of channels 0 and 1 (§6); other values are reserved."""

    INDEPENDENT = 0
    LEFT_SIDE = 1
    SIDE_RIGHT = 2
    MID_SIDE = 3


class SubframeType(enum.IntEnum):
    """Subframe types (§5.3). 6–63 reserved; 64–127 model-conditioned, of which 66–127 reserved."""

    CONSTANT = 0
    VERBATIM = 1
    PREDICTED = 2
    CASCADE = 3  # §6.4: PREDICTED followed by LMS stages adapted sample by sample
    MIXED_CASCADE = 4  # §6.5: CASCADE whose stage predictions are summed with learned weights
    OLS_CASCADE = 5  # §6.6: MIXED_CASCADE after a least-squares predictor learned sample by sample
    MODEL_PREDICTED = 64  # §8.4: PREDICTED whose residual is conditioned on the learned model
    MODEL_LOSSY = 65  # §8.6: the paper's lossy VAE frame coder (LOSSY streams only)


# the defined model-conditioned types; 66-127 are reserved for more of them and, like every
# reserved type, an UnsupportedError before any model check (§5.3, §8.1)
MODEL_SUBFRAME_TYPES = frozenset({SubframeType.MODEL_PREDICTED, SubframeType.MODEL_LOSSY})

MAX_LPC_ORDER = 32
MAX_COEF_BITS = 16  # signed width of a quantized coefficient, sign included
MAX_LPC_SHIFT = 31
MAX_WASTED_BITS = 31

# §6.4 CASCADE: the adaptive stages after the LPC stage
MAX_CASCADE_STAGES = 4
MAX_CASCADE_TAPS = 1024  # taps of one stage
MAX_CROSS_TAPS = 32  # taps on the preceding subframe's LPC residual
MAX_CASCADE_SHIFT = 47
CASCADE_HISTORY_MAX = 32767  # stage inputs are clamped to +-this in the filters' histories
# §6.5 MIXED_CASCADE: the mixer of the cross stage's and the stages' predictions
MAX_MIX_SHIFT = 14  # the weights' fraction bits: each starts at 2**mix_shift (= 1)
MAX_MIX_STEP = 63
MIX_INPUT_MAX = 1 << 36  # the mixer's inputs are clamped to +-this
MAX_MIX_BIAS = 16  # 0: no constant input; k > 0: the constant 2**(k-1)
# §6.6 OLS_CASCADE: the least-squares predictor in place of the LPC
MAX_OLS_TAPS = 32  # ols_taps + ols_cross_taps
MAX_OLS_SCALE = 24  # inputs are x << ols_scale, clamped to +-OLS_INPUT_MAX
OLS_INPUT_MAX = 1 << 24  # products below 2**48: R and b stay below 2**62
MAX_OLS_FORGET = 13  # R -= R >> ols_forget, 1..13
MAX_OLS_RIDGE = 62  # the solve adds R[j][j] >> ols_ridge (and 1) to the diagonal, 1..62
MIN_OLS_INTERVAL_LOG2 = 3  # a solve every 2**ols_interval_log2 samples, 8..1024
MAX_OLS_INTERVAL_LOG2 = 10
OLS_MANTISSA_BITS = 31  # a soft float's mantissa: exactly this many bits of magnitude, or 0
OLS_WEIGHT_FRACTION = 24  # the weights' fraction bits
OLS_WEIGHT_MAX = 1 << 30  # weights are clamped to +-this (64.0)
OLS_L_MAX_LOG2 = 32  # a solve whose |L[i][j]| reaches 2**this is abandoned


class CascadeRule(enum.IntEnum):
    """How a CASCADE stage's weights learn (§6.4); other values are reserved."""

    SIGN = 0  # w += step * sign(error) * sign(input)
    SCALED = 1  # w += sign(error) * the input's update, sized by its magnitude

# §7: residual coder.
PROB_BITS = 16
PROB_INIT = 1 << (PROB_BITS - 1)
ADAPT_SHIFT = 5
RANGE_TOP = 1 << 24
STAT_SHIFT = 4  # running mean A is 16 x mean(v): A += v - (A >> STAT_SHIFT)
NUM_CONTEXTS = 64
PRIOR_TOP = 40  # §7.3 initial tree weights 2**max(PRIOR_TOP - distance, 0)
PRIOR_MIN = 512  # §7.3 initial probabilities are clamped to [PRIOR_MIN, 2**16 - PRIOR_MIN]
MAX_RESIDUAL_BITLEN = 56  # of the zig-zag value: |residual| <= 2**55 (2**56 - 1 is -2**55)
MAX_INITIAL_MEAN_LOG2 = 55

PCM_MD5_UNKNOWN = bytes(16)


def max_subframe_payload_bytes(frame_length: int) -> int:
    """Upper bound on one subframe's bytes (§5.4): a VERBATIM 33-bit subframe plus its header."""
    return 16 + (frame_length * 33 + 7) // 8


def max_frame_payload_bytes(frame_length: int, channels: int) -> int:
    """Largest payload_length a decoder accepts (§5.1)."""
    return channels * max_subframe_payload_bytes(frame_length)


# §8: the learned model. Bounds chosen so that every network sum fits a signed 32-bit integer.
MODEL_MAGIC = b"VAEMODEL"
MODEL_FORMAT_VERSION = 1


class ModelKind(enum.IntEnum):
    """What a model file codes (§8.1)."""

    RESIDUAL = 1  # lossless: conditions MODEL_PREDICTED subframes
    LOSSY = 2  # the paper's lossy frame VAE: MODEL_LOSSY subframes


class Activation(enum.IntEnum):
    IDENTITY = 0
    RELU = 1  # clamp(x, 0, ACTIVATION_MAX)


MAX_LATENT_DIM = 32
MAX_LATENT_LEVELS_LOG2 = 12  # latent inputs are (symbol - offset) << (12 - levels_log2)
MAX_HISTORY = 32  # past residuals and sample differences fed to the RESIDUAL decoder (§8.3)
MAX_FAN_IN = 112  # inputs of one neuron, latent inputs included
MAX_LAYER_WIDTH = 1024
MAX_LAYERS = 8
MAX_WEIGHT = 8191  # |weight| (14-bit signed)
MAX_BIAS = 2**27  # |bias|
FEATURE_MAX = 2047  # features are clamped to [-FEATURE_MAX, FEATURE_MAX]
ACTIVATION_MAX = 2047  # hidden activations are clamped to [0, ACTIVATION_MAX]
MAX_LAYER_SHIFT = 31
FEATURE_CLAMP = 2**40  # |e| and sample differences are clamped to this before scaling (§8.3)
RESIDUAL_FEATURE_SHIFT = 12  # e scaled by 2**(12 - k)
DIFFERENCE_FEATURE_SHIFT = 9  # sample differences scaled by 2**(9 - k)
OUTPUT_MAX = 2**15  # the network's output is clamped to [-OUTPUT_MAX, OUTPUT_MAX]
OUTPUT_UNIT_SHIFT = 12  # the correction is (output << min(k, 40)) >> 12
SCALE_STAT_SHIFT = 4  # a += min(|e|, FEATURE_CLAMP) - (a >> 4)
MAX_LOSSY_BLOCK = 1024  # samples reconstructed by one lossy latent vector
MAX_LOSSY_GAIN = 40  # a lossy block's gain exponent (§8.6)
MIN_LOSSY_LATENT_LEVELS_LOG2 = 6  # a LOSSY model's symbols must hold gains up to 40 (§8.1)
ANALYSIS_FEATURES = 26  # inputs of a RESIDUAL model's encoder (§8.1, §8.5)
RESIDUAL_DECODER_LAYERS = 2  # (2H + 5 + D) -> hidden (RELU) -> 1 (IDENTITY); both fan-ins <= 112
