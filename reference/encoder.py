"""The reference encoder (spec §4–§7): framing, level presets and all of the search.

Everything that decides how to code a frame lives here; the decoder only follows what the
stream says. Output is built through the ``construct`` grammar in :mod:`vaelac.spec`.
"""

from __future__ import annotations

import functools
import io
import math
import os
import shutil
import tempfile
import threading
from dataclasses import dataclass, field
from typing import BinaryIO, Callable

import numpy as np

from . import __version__, lossy
from .checksum import PcmDigest, crc8, crc32
from .lpc import (autocorrelation, compute_residual, levinson, quantize_coefficients, window,
                  window_energy)
from .model import (Model, analysis_features, builtin_models, default_model, model_from_file,
                    shipped_model)
from ._backend import kernels
from ._bitpack import pack_signed, packed_size
from .spec import container as grammar
from .spec.constants import (CHANNEL_MODE_LAST, FRAME_CRC_BYTES, FRAME_HEADER_BYTES, FRAME_SYNC,
                             MAX_CHANNELS, MAX_FRAME_LENGTH, MAX_LPC_ORDER,
                             MAX_SAMPLE_RATE, MIN_FRAME_LENGTH, PCM_MD5_UNKNOWN,
                             METADATA_CRC_LENGTH, STREAMINFO_FLAG_LOSSY, UNKNOWN_TOTAL_SAMPLES,
                             VERSION_MAJOR,
                             VERSION_MINOR, BlockType, CascadeRule,
                             ChannelMode, ModelKind, SubframeType)
from .spec.errors import EncodeError

__all__ = ["Level", "CascadeConfig", "OlsConfig", "LEVELS", "DEFAULT_LEVEL", "StreamEncoder",
           "default_frame_length"]


@dataclass(frozen=True)
class LpcSearch:
    """Which LPC predictors a level codes for real: the ``tried_orders`` orders up to
    ``max_order`` that the estimate ranks best, each quantised at every precision."""

    max_order: int
    tried_orders: int
    precisions: tuple[int, ...]


@dataclass(frozen=True)
class Level:
    """Encoder effort preset (like flac -0…-8). Only the encoder reads it.

    Levels nest by construction (issue 19; README "Levels"): within a family (0-4 and 5-8),
    each level's ``searches``, stage sets and ``ols`` extend the level below's, the estimates
    that rank orders and choose the channel mode do not depend on the level, and a frame is
    the smallest, in bytes, of the frames every level of the family up to this one would code
    (_encode_subframes); levels 5-8 also encode level 4's whole stream and keep it if smaller
    (StreamEncoder)."""

    searches: tuple[LpcSearch, ...]
    windows: tuple[str, ...]
    stereo_modes: tuple[ChannelMode, ...]
    # A MODEL_PREDICTED subframe must save at least this many bits per 1000 samples over the
    # same predictor coded plainly: the network costs the decoder ~50 ns per sample, which a
    # saving of a few bits per 1000 samples does not repay. Measured on the dev corpus at 50:
    # 0.05 % larger in total, 43 % instead of 73 % of the samples of files >= 20 s decoded
    # through the network. The slower levels take every saving.
    model_min_saving: int = 50
    # CASCADE subframes (§6.4) tried with each of these stage sets, and frames this many times
    # the default length, at most 65535 (adaptive stages reset at every subframe: they need long
    # ones to learn). The two-set level on the dev corpus: 45,709,852 bytes at 2x, 45,482,347
    # at 4x, 45,398,734 at 8x, 45,368,673 at 16x; but at 16x the three-set level made 4 of the
    # 73 files up to 1.9 % larger than the one-set level at 2x, and a clipped random walk 30 %
    # larger: one LPC per 1.5 s cannot follow such changes. 4x it is.
    # Later, for issue 7: each of these frame lengths (as multiples of the default) is encoded
    # whole and the smallest stream kept. On the dev corpus (without the learned model) level
    # 5's sets make 45,374,631 bytes at 4x, 45,278,950 at 8x (21 files larger than at 4x, by up
    # to 3.1 %: short drum and bass samples) and 45,241,723 with the choice, 50 files taking
    # 8x; level 7's 45,102,046 / 44,969,699 / 44,930,935.
    cascades: tuple["CascadeConfig", ...] = ()
    frame_scales: tuple[int, ...] = (1,)
    # With several frame_scales: after this many seconds of input, only the frame length whose
    # frames have taken the fewest bytes so far goes on (None: every one to the end). Issue 19:
    # level 5 with 4x and 8x then costs about one frame length's time, and level 6, which
    # encodes both whole, is still never larger (see StreamEncoder._decide).
    decide_after_seconds: float | None = None
    # OLS_CASCADE subframes (§6.6) tried with each of these (see _OLS_LONG).
    ols: tuple["OlsConfig", ...] = ()


@dataclass(frozen=True)
class CascadeConfig:
    """The adaptive stages of a CASCADE subframe (§6.4): cross-channel taps on the preceding
    subframe's LPC residual, then LMS stages of (taps, shift, step, rule); with ``mix`` a
    MIXED_CASCADE subframe (§6.5), whose mixer of (mix_shift, mix_step, mix_bias) weights the
    predictions and a constant."""

    cross: tuple[int, int, int]  # taps, shift, step
    stages: tuple[tuple[int, int, int, CascadeRule], ...]
    mix: tuple[int, int, int] | None = None  # mix_shift, mix_step, mix_bias

    @property
    def subframe_type(self) -> SubframeType:
        return SubframeType.CASCADE if self.mix is None else SubframeType.MIXED_CASCADE

    @property
    def params(self) -> np.ndarray:
        """As kernels.cascade takes them."""
        return np.array(self.cross + sum(self.stages, ()), np.int32)

    @property
    def body_fields(self) -> dict:
        taps, shift, step = self.cross
        mixer = {} if self.mix is None else dict(mix_shift=self.mix[0], mix_step=self.mix[1],
                                                 mix_bias=self.mix[2])
        return dict(cross_taps=taps, cross_shift=shift, cross_step=step,
                    stage_count=len(self.stages),
                    stages=[dict(taps=t, shift=h, step=p, rule=int(r))
                            for t, h, p, r in self.stages], **mixer)

    @functools.cached_property
    def extra_bytes(self) -> int:
        """What a (MIXED_)CASCADE body holds beyond a PREDICTED one (§5.4's grammar)."""
        predictor = dict(order=0, coef_bits=0, shift=0, initial_mean_log2=0, coefs=b"",
                         data_length=0, data=b"")
        body = grammar.CascadeBody if self.mix is None else grammar.MixedCascadeBody
        return (len(body.build({**predictor, **self.body_fields}))
                - len(grammar.PredictedBody.build(predictor)))


@dataclass(frozen=True)
class OlsConfig:
    """An OLS_CASCADE subframe (§6.6): a least-squares predictor of ``taps`` taps of the
    channel's past and ``cross_taps`` of the previous subframe's values (its current one
    included; none for a frame's first subframe), forgetting by 2**-forget, ridge 2**-ridge,
    solved every 2**interval_log2 samples; then ``stages``' adaptive stages and mixer."""

    taps: int
    cross_taps: int
    forget: int
    ridge: int
    interval_log2: int
    stages: CascadeConfig

    def params(self, scale: int, cross: bool) -> np.ndarray:
        """As kernels.ols takes them, for inputs shifted up by ``scale``."""
        return np.array((self.taps, self.cross_taps if cross else 0, scale, self.forget,
                         self.ridge, self.interval_log2), np.int32)

    @staticmethod
    def body_fields(params: np.ndarray) -> dict:
        names = ("ols_taps", "ols_cross_taps", "ols_scale", "ols_forget", "ols_ridge",
                 "ols_interval_log2")
        return {name: int(value) for name, value in zip(names, params)}

    @property
    def header_bytes(self) -> int:
        """The subframe's bytes before its coded data."""
        return len(grammar.Subframe.build(dict(
            subframe_type=SubframeType.OLS_CASCADE, wasted_bits=0,
            body=dict(initial_mean_log2=0, **self.body_fields(self.params(0, True)),
                      **self.stages.body_fields, data_length=0, data=b""))))


# Chosen on 515 subframes of 12 dev-corpus files (20 s each at most: music, 24-bit renders,
# guitar, drums, piano, 8 and 48 kHz speech) by the coded size they leave of the best LPC
# residual at 16384-sample frames. SIGN stages: a 256-tap one learning at 2**-12 then a fast
# 16-tap one, 4.09 % fewer bits; with a fast 32-tap set as the alternative, 4.40 %; adding a
# 512-tap set, 4.61 %. SCALED stages (update size from the input's magnitude, as Monkey's
# Audio's filters) do better: 4.45 % with one set, 4.72 % with two, 4.95 % with three.
# Level 6 took one set at twice the default frame length: on the whole corpus 45,626,063
# bytes, against 46,644,364 without CASCADE, 46,258,938 with the fast set alone and 45,918,959
# with the fast set at twice the frame length; at four times, 45,379,960 (now level 5, the
# default). Without the cross stage it is 45,439,779. Level 7's long set was 512 + 16 taps
# (45,219,411 bytes); 1024 + 256 + 16 makes 45,104,806 (without the learned model, where
# level 5 makes 45,377,391): on the two 44.1 kHz MIDI renders
# (a fifth of the corpus) a 1024-tap stage alone saves 0.9 %. Then a 32-tap third stage to
# the long set and two step sizes for the main set: 45,084,054. Those three sets, and then each
# level's choice of frame lengths (Level.frame_scales), made the default of issue 7: see
# LEVELS.
_SCALED = CascadeRule.SCALED
# Every set mixes its predictions (§6.5) with weights of 12 fraction bits learning by 16: on
# every third dev-corpus file at level 5, 0.207 % smaller than the plain sum (0.199 % at step
# 32); a float sign-sign mixer saved 0.21 % after the main set and 0.40 % after the long one.
# The mixer's constant input (a bias, mix_bias 2: the constant 2) takes 0.117 % more (mix_bias
# 1 and 3: 0.115 %).
_MIX = (12, 16, 2)
_CASCADE_MAIN = CascadeConfig(cross=(16, 13, 2), stages=((256, 13, 8, _SCALED),
                                                         (16, 11, 8, _SCALED)), mix=_MIX)
_CASCADE_FAST = CascadeConfig(cross=(16, 12, 2), stages=((32, 11, 8, _SCALED),
                                                         (16, 11, 8, _SCALED)), mix=_MIX)
_CASCADE_LONG = CascadeConfig(cross=(16, 13, 2), stages=((1024, 15, 8, _SCALED),
                                                         (256, 13, 8, _SCALED),
                                                         (16, 11, 8, _SCALED)), mix=_MIX)
_CASCADE_LONG4 = CascadeConfig(cross=(16, 13, 2), stages=((1024, 15, 8, _SCALED),
                                                          (256, 13, 8, _SCALED),
                                                          (32, 11, 8, _SCALED),
                                                          (16, 11, 8, _SCALED)), mix=_MIX)
_CASCADE_STEPS = tuple(CascadeConfig(cross=(16, 13, 2), stages=((256, 13, step, _SCALED),
                                                                (16, 11, 8, _SCALED)), mix=_MIX)
                       for step in (4, 16))


_ALL_MODES = (ChannelMode.INDEPENDENT, ChannelMode.LEFT_SIDE, ChannelMode.SIDE_RIGHT,
              ChannelMode.MID_SIDE)

# Levels 0-4 add LPC searches; 5-8 share one search and add a frame length (6) or stage sets
# (7, 8). The default, 5, takes the stage sets that fit issue 7's decoding budget (>= 100x real
# time on two cores, with the decoder's threads). With levels 6 and 7 as 8 without its frame
# length, their stage sets saved 0.01 % each on the dev corpus, 65535-sample frames 0.2 %.
_SEARCHES = (LpcSearch(12, 1, (14,)), LpcSearch(16, 1, (14,)), LpcSearch(24, 1, (14,)),
             LpcSearch(32, 1, (14,)), LpcSearch(32, 3, (14,)))
_WINDOWS = ("tukey50",)
_CASCADE_SEARCHES = (LpcSearch(32, 3, (14,)),)
_CASCADE_WINDOWS = ("tukey50", "welch")


def _cascade_level(*cascades: CascadeConfig, frame_scales=(4, 8), ols=(),
                   decide_after_seconds=None) -> Level:
    return Level(_CASCADE_SEARCHES, _CASCADE_WINDOWS, _ALL_MODES, model_min_saving=0,
                 cascades=cascades, frame_scales=frame_scales, ols=ols,
                 decide_after_seconds=decide_after_seconds)


_DEFAULT_SETS = (_CASCADE_MAIN, _CASCADE_FAST, _CASCADE_LONG)
# Level 8's OLS_CASCADE (§6.6): 12 taps of the channel's past and 12 of the previous channel's
# values, forgetting 2**-9, ridge 2**-27, a solve every 32 samples, then the long set. On the
# dev corpus at level 8: 16 + 16 taps solved every 16 samples 44,407,118 bytes, 12 + 12
# 44,400,844 (in 32768-sample frames only); every 16 samples 44,328,334 in all frame lengths,
# every 32 44,337,990 with an encoder 1.3x and a decoder 1.6x faster
# (docs/predictor-research.md, stop 15).
# Replayed from every frame's size at both frame lengths on the dev and wide corpora (172
# files): deciding after 20 s makes no file larger than encoding both whole; after 10 s, +0.048 %
# in all (midi_dink_7_88k24 +0.45 %), 5 s +0.048 %. On two cores the wall time is about one
# frame length's either way (the other core has level 4's stream and the shorter frames).
_DECIDE_AFTER_SECONDS = 20.0
_OLS_LONG = OlsConfig(taps=12, cross_taps=12, forget=9, ridge=27, interval_log2=5,
                      stages=_CASCADE_LONG)


LEVELS: dict[int, Level] = {
    **{k: Level(_SEARCHES[:k + 1], _WINDOWS, _ALL_MODES) for k in range(5)},
    5: _cascade_level(*_DEFAULT_SETS, decide_after_seconds=_DECIDE_AFTER_SECONDS),
    6: _cascade_level(*_DEFAULT_SETS, frame_scales=(4, 8, 16)),
    7: _cascade_level(*_DEFAULT_SETS, *_CASCADE_STEPS, frame_scales=(4, 8, 16)),
    8: _cascade_level(*_DEFAULT_SETS, *_CASCADE_STEPS, _CASCADE_LONG4, frame_scales=(4, 8, 16),
                      ols=(_OLS_LONG,)),
}
DEFAULT_LEVEL = 5
# The plain levels (LPC only: no network by default, no adaptive filters) and the cascade
# levels, each a family whose levels nest frame by frame (_nested_levels); the cascade levels
# also encode the top plain level's whole stream (StreamEncoder).
_PLAIN_LEVELS = range(0, 5)
_CASCADE_LEVELS = range(5, 9)
_PLAIN_TOP = _PLAIN_LEVELS[-1]
# The levels as shipped (a tool such as the vector generator may add its own to LEVELS: they
# nest with none of these).
_SHIPPED_LEVELS = tuple(LEVELS.values())


def default_frame_length(sample_rate: int) -> int:
    """4096 samples up to 48 kHz, proportionally longer above (the encoder's choice, §5.2).

    Measured at the plain level then the default (now level 4) on the whole dev corpus
    (in-process): 4096 → 45.27 % of PCM, decode 189x real time; 8192 → 45.45 %, 206x. Before
    the coder's prior (§7.3) 8192 won (44.67 % against 44.97 % on a third of the corpus): the
    prior removed most of the learning cost that long frames amortised.
    """
    return int(min(MAX_FRAME_LENGTH, 4096 * max(1, math.ceil(sample_rate / 48000))))


def _trailing_zeros(x: np.ndarray) -> int:
    combined = int(np.bitwise_or.reduce(x)) if len(x) else 0
    if combined == 0:
        return 0
    return (combined & -combined).bit_length() - 1


def _mean_log2(residual: np.ndarray) -> int:
    """initial_mean_log2 (§7.3): floor(log2) of the mean zig-zag value of the first samples."""
    head = residual[:32]
    v = np.where(head >= 0, 2 * head, -2 * head - 1)
    mean = int(v.sum()) // max(len(v), 1)
    return min(max(mean.bit_length() - 1, 0), 55)


_SUBFRAME_HEAD_BYTES = 2  # subframe_type, wasted_bits
_OLS_INPUT_BITS = 24  # OLS_CASCADE's inputs are shifted up to at most this many bits (§6.6)
# The coefficient precision the order estimate charges, the same at every level so that the
# levels' searches rank orders alike (they are nested, see Level).
_ESTIMATE_COEF_BITS = 14


def _constant_subframe(value: int) -> bytes:
    return grammar.Subframe.build(dict(subframe_type=SubframeType.CONSTANT, wasted_bits=0,
                                       body=dict(value=value)))


def _verbatim_subframe(x: np.ndarray, width: int, wasted: int) -> bytes:
    data = pack_signed(x, width)
    return grammar.Subframe.build(dict(subframe_type=SubframeType.VERBATIM, wasted_bits=wasted,
                                       body=dict(data_length=len(data), data=data)))


class _ChannelAnalysis:
    """LPC candidates for one coded channel of one frame, with estimated costs."""

    def __init__(self, x: np.ndarray, bits: int, level: Level):
        self.x = x
        self.bits = bits
        self.level = level
        n = len(x)
        self.constant = n > 0 and bool(np.all(x == x[0]))
        self.wasted = 0 if self.constant else _trailing_zeros(x)
        self.xs = x >> self.wasted if self.wasted else x
        self.width = bits - self.wasted
        self.candidates: list[tuple[float, int, str]] = []  # (estimate, order, window)
        self._bests: list[_Predicted] | None = None  # predicted_bests(), once
        self.best_tiers: list[int] = []  # set with _bests (_predicted_bests)
        self._memo: dict[int, tuple[np.ndarray | None, dict]] = {}  # _options' per cross input
        self.est_bits = 0.0
        if self.constant or n < 2:
            self.est_bits = 64.0 if self.constant else n * self.width
            return
        xf = self.xs.astype(np.float64)
        # every level ranks every order, so that its channel mode and searches nest
        max_order = min(MAX_LPC_ORDER, n - 1)
        best = math.inf
        self._lpc: dict[tuple[str, int], np.ndarray] = {}
        for win in level.windows:
            w = window(win, n)
            r = autocorrelation(xf * w, max_order)
            if r[0] <= 0:
                continue
            coefs, errors = levinson(r, max_order)
            errors = errors.tolist()
            wsum = window_energy(win, n)
            for order in range(1, max_order + 1):
                err = max(errors[order] / wsum, 1e-3)
                est = 0.5 * (n - order) * math.log2(err) + order * (_ESTIMATE_COEF_BITS + 1)
                est += 2.0 * (n - order)  # a Laplace coder's constant, for comparing with VERBATIM
                self.candidates.append((est, order, win))
                self._lpc[(win, order)] = coefs[order - 1, :order]
                best = min(best, est)
        self.candidates.sort()
        self.est_bits = min(best, n * self.width)

    def predicted_bests(self) -> "list[_Predicted]":
        """The smallest PREDICTED coding after each of the level's searches, without repeats
        (the last is the level's best; empty if none codes): the level below ends at an
        earlier one, so trying the model on each keeps the levels nested (see Level). The
        candidates are compared by the information the range coder would code (rc_cost, the
        coded size to within its 5 flush bytes, 2.2x faster than coding); the one kept is
        coded."""
        x = self.xs
        best, bests, seen = None, [], set()
        self.best_tiers: list[int] = []  # the index of the search after which each of bests won
        for tier, search in enumerate(self.level.searches):
            eligible = [c for c in self.candidates if c[1] <= search.max_order]
            for _, order, win in eligible[: search.tried_orders]:
                for precision in search.precisions:
                    coefs, shift, coef_bits = quantize_coefficients(self._lpc[(win, order)],
                                                                    precision)
                    key = (order, shift, coefs.tobytes())
                    if key in seen:
                        continue
                    seen.add(key)
                    residual = compute_residual(x, coefs, shift)
                    mean_log2 = _mean_log2(residual[order:])
                    cost = kernels.rc_cost(residual, mean_log2)
                    if cost < 0:  # a residual beyond the coder's 56 bits
                        continue
                    candidate = _Predicted(order, coef_bits, shift, mean_log2, coefs, residual,
                                           cost)
                    if best is None or candidate.estimated_size < best.estimated_size:
                        best = candidate
            if best is not None and (not bests or bests[-1] is not best):
                bests.append(best)
                self.best_tiers.append(tier)
        return bests

    def encode(self, model: Model | None = None, cross: np.ndarray | None = None,
               previous: "_ChannelAnalysis | None" = None, ols: tuple["OlsConfig", ...] = (),
               plain: tuple[bytes, np.ndarray | None] | None = None,
               level: Level | None = None) -> tuple[bytes, np.ndarray | None]:
        """The smallest subframe: CONSTANT, VERBATIM, PREDICTED, (with a model)
        MODEL_PREDICTED with the same predictor (§5.4, §8.4), (MIXED_)CASCADE with the level's
        stage sets, or OLS_CASCADE with ``ols`` (§6.6; ``previous`` is the frame's previous
        coded channel); and the next subframe's ``cross`` input (§6.4, §8.3): its LPC or
        least-squares residual, None if it is not predicted. With ``plain`` (that subframe and
        its residual, coded without ``ols``), only the OLS_CASCADE options are tried against it.
        With ``level`` (one nested below this analysis's, see _nested_levels), the options
        that level would have: the searches it has, its stage sets."""
        x = self.xs
        if len(self.x) == 0:
            return _verbatim_subframe(self.x, self.bits, 0), None
        if self.constant:
            return _constant_subframe(int(self.x[0])), None
        level = level or self.level
        bests = self._bests_for(level)
        if not bests:
            return _verbatim_subframe(x, self.width, self.wasted), None
        options = [] if plain is not None else self._options(bests, model, cross, level)
        options += [option for config in ols
                    if (option := self._ols_option(config, cross, previous)) is not None]
        chosen = _smallest(options, self._build)
        if plain is not None:
            if chosen is None or len(chosen[0]) >= len(plain[0]):
                return plain
            return chosen
        if len(chosen[0]) >= _SUBFRAME_HEAD_BYTES + 4 + packed_size(len(x), self.width):
            return _verbatim_subframe(x, self.width, self.wasted), None
        return chosen

    def _predicted_bests(self) -> "list[_Predicted]":
        if self._bests is None:
            self.best_tiers = []
            self._bests = self.predicted_bests() if len(self.xs) >= 2 else []
            if len(self.best_tiers) != len(self._bests):  # predicted_bests replaced (tests)
                self.best_tiers = list(range(len(self._bests)))
        return self._bests

    def _bests_for(self, level: Level) -> "list[_Predicted]":
        """predicted_bests as ``level`` finds them: those won by its searches, a prefix of this
        analysis's level's (see Level)."""
        bests = self._predicted_bests()
        searches = len(level.searches)
        return [best for best, tier in zip(bests, self.best_tiers) if tier < searches]

    def _options(self, bests: "list[_Predicted]", model: Model | None,
                 cross: np.ndarray | None, level: Level) -> "list[_Option]":
        """PREDICTED with the level's best predictor, MODEL_PREDICTED with each search's,
        and (MIXED_)CASCADE with each of the level's stage sets. Each option is made once per
        cross input (the levels of _nested_levels share them) and coded at most once."""
        x = self.xs
        best = bests[-1]
        # options depend on the cross input only through the model and the stage sets; the
        # memo holds the cross input, so that ids stay unique
        uses_cross = model is not None or bool(self.level.cascades)
        memo = self._memo.setdefault(id(cross) if uses_cross else None, (cross, {}))[1]

        def option(key, make):
            if key not in memo:
                memo[key] = make()
            return memo[key]
        options = [option(("P", id(best)), lambda: _Option(
            (best.header_size << 19) + best.cost, SubframeType.PREDICTED,
            best.fields(best.mean_log2), lambda: kernels.rc_encode(best.residual, best.mean_log2),
            best.residual))]
        for base in bests if model is not None else ():
            modelled = option(("M", id(base)),
                              lambda: model_coding(model, base, x, self.width, cross))
            if modelled is not None and modelled[0] < base.cost and (
                    (base.cost - modelled[0]) * 1000 >= (level.model_min_saving << 16) * len(x)):
                options.append(option(("MP", id(base)), lambda: _Option(
                    (base.header_size << 19) + modelled[0], SubframeType.MODEL_PREDICTED,
                    base.fields(base.mean_log2), modelled[1], base.residual)))
        # every stage set of this analysis's level at once (cascade_codings shares their work);
        # a nested level takes the first len(level.cascades), the same sets (see Level)
        cascaded_all = option(("C", id(best)),
                              lambda: cascade_codings(self.level.cascades, best, cross))
        for j, (config, cascaded) in enumerate(zip(level.cascades, cascaded_all)):
            if cascaded is not None:
                cost, mean_log2, code = cascaded
                header = best.header_size + config.extra_bytes
                options.append(option(("CO", id(best), j), lambda: _Option(
                    (header << 19) + cost, config.subframe_type,
                    {**best.fields(mean_log2), **config.body_fields}, code, best.residual)))
        return options

    def _ols_option(self, config: "OlsConfig", cross: np.ndarray | None,
                    previous: "_ChannelAnalysis | None") -> "_Option | None":
        """OLS_CASCADE (§6.6) with ``config``, or None if not codable."""
        use_cross = previous is not None and config.cross_taps > 0
        width = max(self.width, previous.width) if use_cross else self.width
        # inputs below 2**23: the probe's scale (tools/research/ols_probe.py)
        params = config.params(max(0, _OLS_INPUT_BITS - width), use_cross)
        residual = np.array(self.xs, np.int64)
        kernels.ols(residual, previous.xs if use_cross else None, params, False)
        e = residual.copy()
        kernels.cascade(e, cross, config.stages.params, False, config.stages.mix)
        mean_log2 = _mean_log2(e)
        cost = kernels.rc_cost(e, mean_log2)
        if cost < 0:
            return None
        return _Option((config.header_bytes << 19) + cost, SubframeType.OLS_CASCADE,
                       dict(initial_mean_log2=mean_log2, **config.body_fields(params),
                            **config.stages.body_fields),
                       lambda: kernels.rc_encode(e, mean_log2), residual)

    def _build(self, option: "_Option", data: bytes) -> bytes:
        return grammar.Subframe.build(dict(subframe_type=option.kind, wasted_bits=self.wasted,
                                           body=dict(**option.fields, data_length=len(data),
                                                     data=data)))


@dataclass(frozen=True)
class _Option:
    """One way to code a subframe (_ChannelAnalysis.encode)."""

    key: int  # rc_cost of its residuals plus its header's bits, in 2**-16 bits
    kind: SubframeType
    fields: dict  # the body's fields before data_length
    code: Callable[[], bytes]  # the coded data
    residual: np.ndarray  # the next subframe's cross input (§6.4, §8.3)
    built: dict = field(default_factory=dict, compare=False)  # its subframe, once made


_SPOOL_BYTES = 2 << 20  # a candidate stream (StreamEncoder) held in memory up to this size
_COPY_BYTES = 1 << 20
_RC_FLUSH_BYTES = 5  # what rc_encode adds to the information it codes (§7.1)
_VENDOR = "vaelac reference " + ".".join(__version__.split(".")[:2])  # TAGS vendor (§4.5)


def _smallest(options: list[_Option], build) -> tuple[bytes, np.ndarray] | None:
    """The smallest subframe ``build(option, coded data)`` makes of ``options``, and its
    residual; None without options. rc_cost counts information; the coded bytes add up to
    _RC_FLUSH_BYTES and round up. Options within that of the cheapest are coded and compared
    by their bytes, so that a level whose options include the level below's never codes a
    larger subframe."""
    chosen = None  # (subframe bytes, option)
    ranked = sorted(options, key=lambda option: option.key)
    for option in ranked:
        if option.key - ranked[0].key >= (_RC_FLUSH_BYTES + 1) << 19:
            break
        if "subframe" not in option.built:
            option.built["subframe"] = build(option, option.code())
        subframe = option.built["subframe"]
        if chosen is None or len(subframe) < len(chosen[0]):
            chosen = (subframe, option)
    return None if chosen is None else (chosen[0], chosen[1].residual)


@dataclass(frozen=True)
class _Predicted:
    order: int
    coef_bits: int
    shift: int
    mean_log2: int
    coefs: np.ndarray
    residual: np.ndarray
    cost: int  # rc_cost of the residual, 2**-16 bits

    @property
    def header_size(self) -> int:
        """The subframe's bytes before its coded data."""
        return _SUBFRAME_HEAD_BYTES + 8 + packed_size(self.order, self.coef_bits)

    def fields(self, mean_log2: int) -> dict:
        """A PREDICTED body's fields before data_length (§5.4)."""
        return dict(order=self.order, coef_bits=self.coef_bits, shift=self.shift,
                    initial_mean_log2=mean_log2, coefs=pack_signed(self.coefs, self.coef_bits))

    @property
    def estimated_size(self) -> int:
        return self.header_size + (self.cost >> 19) + _RC_FLUSH_BYTES


def model_coding(model: Model, best: _Predicted, x: np.ndarray, width: int,
                 cross: np.ndarray | None):
    """(rc_cost, a function coding it) of the latents and residuals of a MODEL_PREDICTED
    subframe with ``best``'s predictor (§8.4), or None if they are not codable."""
    symbols = model.analyse(analysis_features(best.residual, x, width))
    net = model.decoder_net(symbols)
    corrected = np.empty_like(best.residual)
    kernels.model_residual(best.residual, x, cross, width, best.mean_log2, net, corrected)
    latents = (symbols, model.prior, model.latent_levels_log2)
    cost = kernels.rc_cost(corrected, best.mean_log2, *latents)
    if cost < 0:
        return None
    return cost, lambda: kernels.rc_encode(corrected, best.mean_log2, *latents)


def cascade_codings(configs: "tuple[CascadeConfig, ...]", best: _Predicted,
                    cross: np.ndarray | None) -> list:
    """cascade_coding of each of ``configs``. Sets with the same cross stage and first stage
    run together (kernels.cascade_many: their common first stages once), with the same result:
    level 8's long sets share 1024 + 256 of their 1296 and 1328 taps."""
    groups: dict[tuple, list[int]] = {}
    for i, config in enumerate(configs):
        groups.setdefault((config.cross, config.stages[:1]), []).append(i)
    codings: list = [None] * len(configs)
    for members in groups.values():
        if len(members) == 1:
            codings[members[0]] = cascade_coding(configs[members[0]], best, cross)
            continue
        outs = [np.empty(len(best.residual), np.int64) for _ in members]
        kernels.cascade_many(np.ascontiguousarray(best.residual, np.int64), cross,
                             [configs[i].params for i in members],
                             [configs[i].mix for i in members], outs)
        for i, e in zip(members, outs):
            codings[i] = _cascade_coded(e, best.order)
    return codings


def cascade_coding(config: CascadeConfig, best: _Predicted, cross: np.ndarray | None):
    """(rc_cost, initial_mean_log2, a function coding it) of a (MIXED_)CASCADE subframe with
    ``best``'s predictor and ``config``'s stages (§6.4, §6.5), or None if not codable."""
    e = np.array(best.residual, np.int64)
    kernels.cascade(e, cross, config.params, False, config.mix)
    return _cascade_coded(e, best.order)


def _cascade_coded(e: np.ndarray, order: int):
    mean_log2 = _mean_log2(e[order:])
    cost = kernels.rc_cost(e, mean_log2)
    if cost < 0:
        return None
    return cost, mean_log2, lambda: kernels.rc_encode(e, mean_log2)


def analyse_frame(pcm: np.ndarray, bits: int, level: Level) -> tuple[ChannelMode,
                                                                      list[_ChannelAnalysis]]:
    """The channel mode and the analysis of every coded channel of one frame (§6.1)."""
    n, nch = pcm.shape
    columns = [np.ascontiguousarray(pcm[:, c]) for c in range(nch)]
    mode = ChannelMode.INDEPENDENT
    analyses: list[_ChannelAnalysis]
    if nch >= 2 and n > 1 and len(level.stereo_modes) > 1:
        left, right = columns[0], columns[1]
        side = left - right
        mid = (left + right) >> 1
        a = {"L": _ChannelAnalysis(left, bits, level), "R": _ChannelAnalysis(right, bits, level),
             "S": _ChannelAnalysis(side, bits + 1, level), "M": _ChannelAnalysis(mid, bits, level)}
        pairs = {ChannelMode.INDEPENDENT: ("L", "R"), ChannelMode.LEFT_SIDE: ("L", "S"),
                 ChannelMode.SIDE_RIGHT: ("S", "R"), ChannelMode.MID_SIDE: ("M", "S")}
        mode = min(level.stereo_modes,
                   key=lambda m: a[pairs[m][0]].est_bits + a[pairs[m][1]].est_bits)
        analyses = [a[pairs[mode][0]], a[pairs[mode][1]]]
    else:
        analyses = [_ChannelAnalysis(columns[c], bits, level) for c in range(min(nch, 2))]
    analyses += [_ChannelAnalysis(columns[c], bits, level) for c in range(2, nch)]
    return mode, analyses


def encode_frame(pcm: np.ndarray, frame_index: int, bits: int, level: Level,
                 model: Model | None = None, model_uses: list | None = None) -> bytes:
    """One frame (§5) from int64 PCM of shape (n, channels). With ``model_uses``, a list, the
    number of MODEL_PREDICTED subframes in the frame is appended to it."""
    mode, analyses = analyse_frame(pcm, bits, level)
    subframes = _encode_subframes(analyses, level, model)
    if model_uses is not None:
        model_uses.append(sum(sub[0] == SubframeType.MODEL_PREDICTED for sub in subframes))
    return _frame(frame_index, len(pcm), mode, b"".join(subframes))


def _frame(frame_index: int, sample_count: int, channel_mode: int, payload: bytes) -> bytes:
    """A frame (§5): its header with the CRC-8, the payload, the CRC-32."""
    head = grammar.FrameHeaderNoCrc.build(dict(sync=FRAME_SYNC, frame_index=frame_index,
                                               sample_count=sample_count,
                                               channel_mode=channel_mode,
                                               payload_length=len(payload)))
    head += bytes([crc8(head)])
    body = head + payload
    return body + crc32(body).to_bytes(4, "big")


def mark_last(frame: bytes) -> bytes:
    """The same frame with the LAST flag of §5.2 set, its CRCs made anew."""
    head = grammar.FrameHeaderNoCrc.parse(frame)
    return _frame(head.frame_index, head.sample_count, head.channel_mode | CHANNEL_MODE_LAST,
                  frame[FRAME_HEADER_BYTES:-FRAME_CRC_BYTES])


@functools.lru_cache(maxsize=None)
def _nested_levels(level: Level) -> tuple[Level, ...]:
    """The levels whose frames ``level`` must never exceed, itself last: those of its family
    (levels 0-4, levels 5-8) up to it, one of each set of options. Each has this level's
    windows, channel modes and model rule, and searches, stage sets and OLS configurations
    that are prefixes of this level's, so this level's analysis (_ChannelAnalysis) serves
    them all."""
    def options(other: Level) -> tuple[int, int, int]:
        return len(other.searches), len(other.cascades), len(other.ols)
    below = {}
    for other in _SHIPPED_LEVELS:
        if (other.windows == level.windows and other.stereo_modes == level.stereo_modes
                and other.model_min_saving == level.model_min_saving
                and level.searches[:len(other.searches)] == other.searches
                and level.cascades[:len(other.cascades)] == other.cascades
                and level.ols[:len(other.ols)] == other.ols):
            below.setdefault(options(other), other)
    below[options(level)] = level
    return tuple(below[key] for key in sorted(below))


def _encode_subframes(analyses: list[_ChannelAnalysis], level: Level,
                      model: Model | None) -> list[bytes]:
    """The frame's subframes: of the frames each level of _nested_levels(level) would code
    (_level_subframes), the one of fewest bytes, so that a level's frame is never larger than
    a frame of the level below it (issue 19; the header is the same: one channel mode, one
    frame length). The level's own frame is tried first and kept on a tie. The levels below
    usually choose as this one does: their options are then made and coded once."""
    chosen = None
    for nested in reversed(_nested_levels(level)):
        parts = _level_subframes(analyses, nested, model)
        size = sum(map(len, parts))
        if chosen is None or size < chosen[0]:
            chosen = (size, parts)
    return chosen[1]


def _level_subframes(analyses: list[_ChannelAnalysis], level: Level,
                     model: Model | None) -> list[bytes]:
    """The subframes ``level`` codes, each the smallest coding of its channel. A subframe's
    choice changes the next one's cross input (§6.4), so OLS_CASCADE options (whose residual
    differs from the LPC one) are tried in a second pass over the frame, and the smaller
    payload is kept: a level with them never codes a larger frame than the level without them."""
    plain, cross = [], None
    for analysis in analyses:
        subframe, cross = analysis.encode(model, cross, level=level)
        plain.append((subframe, cross))
    payload = [subframe for subframe, _ in plain]
    if not level.ols:
        return payload
    parts, cross, previous, changed = [], None, None, False
    for analysis, (subframe, residual) in zip(analyses, plain):
        # with the plain pass's cross input, only the OLS_CASCADE options are new
        coded = analysis.encode(model, cross, previous, level.ols,
                                None if changed else (subframe, residual), level)
        changed = not _same(coded[1], residual)
        parts.append(coded[0])
        cross, previous = coded[1], analysis
    return parts if sum(map(len, parts)) < sum(map(len, payload)) else payload


def _same(a: np.ndarray | None, b: np.ndarray | None) -> bool:
    return a is b or (a is not None and b is not None and np.array_equal(a, b))


def encode_lossy_frame(pcm: np.ndarray, frame_index: int, bits: int, model: Model
                       ) -> tuple[bytes, np.ndarray]:
    """One frame of MODEL_LOSSY subframes (§8.6) and the samples a decoder rebuilds from it."""
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    parts, decoded = [], []
    for c in range(pcm.shape[1]):
        symbols = lossy.encode_block_symbols(model, pcm[:, c])
        data = lossy.code_symbols(model, symbols)
        subframe = grammar.Subframe.build(dict(
            subframe_type=SubframeType.MODEL_LOSSY, wasted_bits=0,
            body=dict(data_length=len(data), data=data)))
        verbatim = _verbatim_subframe(pcm[:, c], bits, 0)
        if len(subframe) > len(verbatim):  # keeps the payload within the §5.1 limit
            parts.append(verbatim)
            decoded.append(pcm[:, c])
            continue
        parts.append(subframe)
        decoded.append(lossy.decode_samples(model, symbols, len(pcm), lo, hi))
    frame = _frame(frame_index, len(pcm), ChannelMode.INDEPENDENT, b"".join(parts))
    return frame, np.stack(decoded, axis=1)


class StreamEncoder:
    """Encode PCM blocks into a `.vae` stream written to a binary file object.

    ``total_samples`` (per channel) is written up front when known; when it is not and the file
    is seekable, the header is patched on :meth:`close` (with the PCM MD5). A non-seekable
    output with unknown length gets the unknown-length value and an all-zero MD5 (§4.2).

    A SEEKTABLE (§4.4) gets a point every ``seek_interval_seconds`` when the output is seekable
    and the length known; ``seek_interval_seconds=None`` writes none.

    A model a decoder cannot know (not shipped with vaelac) is embedded (MODEL_DATA, §8.1)
    only if a subframe uses it; its MODEL_REF is always written. Until a frame uses the model,
    the frames wait in a temporary file (in memory up to 2 MiB), so a pipe receives nothing
    before then, or before :meth:`close`. ``embed_model=True`` embeds the model even unused,
    ``False`` never. Levels 5-8 encode candidate streams (frame lengths, level 4's stream) on
    threads; ``threads=1`` encodes them one after another on the calling thread.
    """

    def __init__(self, fileobj: BinaryIO, sample_rate: int, channels: int, bits_per_sample: int,
                 *, level: int = DEFAULT_LEVEL, total_samples: int | None = None,
                 channel_mask: int = 0, tags: dict[str, str] | list[tuple[str, str]] | None = None,
                 frame_length: int | None = None, vendor: str = _VENDOR,
                 seek_interval_seconds: float | None = 10.0, model: Model | str | None = "default",
                 embed_model: bool | None = None, lossy: Model | str | None = None,
                 threads: int = 0, _candidate: bool = False):
        _check_format(sample_rate, channels, bits_per_sample)
        if _is_default(model) and level in _PLAIN_LEVELS:
            model = None  # the plain levels' default: no network (README "Levels")
        self.lossy = resolve_model(lossy, ModelKind.LOSSY) if lossy is not None else None
        self.model = self.lossy or resolve_model(model)
        asked, embed_later = embed_model, False
        if embed_model is None:  # ship the bytes when a decoder cannot know the model...
            embed_model = self.model is not None and self.model.sha256 not in builtin_models()
            # ... and when a subframe uses it (issue 21): the frames wait in a temporary
            # file until one does, or until close() writes the head without MODEL_DATA
            embed_later = embed_model and self.lossy is None
        self.embed_model = embed_model
        if level not in LEVELS:
            raise EncodeError(f"level must be one of 0..8, got {level}")
        self.file = fileobj
        self.sample_rate = sample_rate
        self.channels = channels
        self.bits_per_sample = bits_per_sample
        self.level = LEVELS[level]
        lengths = [frame_length] if frame_length else sorted(
            {min(MAX_FRAME_LENGTH, default_frame_length(sample_rate) * scale)
             for scale in self.level.frame_scales})
        # (level, frame length) of each candidate stream: the level's frame lengths, and for
        # levels 5-8 level 4's stream too, so that they are never larger than it (issue 19)
        plans = [(level, length) for length in lengths]
        if level in _CASCADE_LEVELS and not _candidate:
            plans.insert(0, (_PLAIN_TOP, frame_length or default_frame_length(sample_rate)))
        if self.lossy:
            lengths, plans = lengths[:1], plans[-1:]
        self.frame_length = lengths[0]
        if not MIN_FRAME_LENGTH <= self.frame_length <= MAX_FRAME_LENGTH:
            raise EncodeError(f"frame length must be 1..{MAX_FRAME_LENGTH}")
        self._samples = 0
        self._closed = False
        self._threads = threads  # 1: the candidate streams one after another on this thread
        self._cancelled = False  # set by a parent encoder that gave up (_on_candidates)
        # The candidate streams, each encoded whole into a temporary file (on threads: the
        # kernels run without the GIL); close() copies the smallest stream to fileobj. Being
        # seekable, they carry a SEEKTABLE and their length and MD5 even when fileobj is a
        # pipe, where a single stream (levels 0-4) can carry none of them: that block is the
        # one difference between a level and the one below that the nesting allows (README).
        self._candidates: list[StreamEncoder] | None = None
        if len(plans) > 1:
            # level 4's stream as `-4` with the same arguments makes it ("default": none)
            self._candidates = [StreamEncoder(
                tempfile.SpooledTemporaryFile(_SPOOL_BYTES), sample_rate, channels,
                bits_per_sample, level=plan_level, total_samples=total_samples,
                channel_mask=channel_mask, tags=tags, frame_length=length, vendor=vendor,
                seek_interval_seconds=seek_interval_seconds,
                model=model if _is_default(model) else self.model,
                embed_model=asked, _candidate=True) for plan_level, length in plans]
            self._decide_at = None  # input samples after which _decide drops frame lengths
            own = [c for c in self._candidates if c.level is self.level]
            if self.level.decide_after_seconds is not None and len(own) > 1:
                longest = max(c.frame_length for c in own)  # every length has whole frames there
                self._decide_at = longest * max(1, math.ceil(
                    self.level.decide_after_seconds * sample_rate / longest))
            return
        self.total_declared = total_samples
        self.channel_mask = channel_mask
        self._digest = PcmDigest(bits_per_sample)
        self._pending: list[np.ndarray] = []
        self._pending_len = 0
        self._frame_index = 0
        self._samples = 0
        self._lo = -(1 << (bits_per_sample - 1))
        self._hi = (1 << (bits_per_sample - 1)) - 1
        try:
            self._seekable = bool(fileobj.seekable())
        except (AttributeError, OSError):
            self._seekable = False
        self._start = fileobj.tell() if self._seekable else 0
        self._seek_points: list[tuple[int, int]] = []
        self._frame_sizes: list[int] = []  # the bytes of each frame coded (for _decide)
        self._frames_per_seek_point = 0
        self._frames_bytes = 0
        seek_entries = 0
        if (seek_interval_seconds and total_samples is not None and self._seekable
                and total_samples > 0):
            self._frames_per_seek_point = max(
                1, int(seek_interval_seconds * sample_rate) // self.frame_length)
            frames = -(-total_samples // self.frame_length)
            seek_entries = -(-frames // self._frames_per_seek_point)
        tag_items = list(tags.items()) if isinstance(tags, dict) else list(tags or [])
        self._blocks = self._metadata_blocks(tag_items, vendor, seek_entries)
        self.model_subframes = 0  # MODEL_PREDICTED subframes written
        self._spool = tempfile.SpooledTemporaryFile(_SPOOL_BYTES) if embed_later else None
        # The head waits for the first frame or close(), which then knows whether the input
        # was empty (§5.2: an empty stream has a known length, 0); the last frame coded waits
        # for the next, so that close() can mark it LAST in a stream of unknown length.
        self._head_written = False
        self._held: bytes | None = None

    def _end_spool(self) -> None:
        """Write the head (with MODEL_DATA only if a subframe used the model) and the frames
        held back so far; from here frames go to the output itself."""
        spool, self._spool = self._spool, None
        if not self.model_subframes:
            self.embed_model = False
            self._blocks = [b for b in self._blocks if b[0] != BlockType.MODEL_DATA]
        self._write_head(self.total_declared, PCM_MD5_UNKNOWN, [])
        spool.seek(0)
        shutil.copyfileobj(spool, self.file, _COPY_BYTES)
        spool.close()

    def _metadata_blocks(self, tags, vendor, seek_entries):
        blocks = []
        if tags:
            for key, _ in tags:
                if not key or "=" in key or not all(0x20 <= ord(ch) <= 0x7D for ch in key):
                    raise EncodeError(f"tag name {key!r} must be printable ASCII without '='")
            comments = [f"{k}={v}" for k, v in tags]
            blocks.append((BlockType.TAGS, grammar.Tags.build(dict(vendor=vendor,
                                                                  comments=comments))))
        if seek_entries:
            blocks.append((BlockType.SEEKTABLE, None, seek_entries))
        if self.model is not None:
            blocks.append((BlockType.MODEL_REF, grammar.ModelRef.build(
                dict(sha256=self.model.sha256, name=self.model.name))))
            if self.embed_model:
                blocks.append((BlockType.MODEL_DATA, self.model.data))
        return blocks

    def _write_head(self, total_samples, md5, seek_points):
        info = grammar.StreamInfo.build(dict(
            sample_rate=self.sample_rate, channels=self.channels,
            bits_per_sample=self.bits_per_sample,
            flags=STREAMINFO_FLAG_LOSSY if self.lossy else 0, reserved=0,
            frame_length=self.frame_length,
            total_samples=UNKNOWN_TOTAL_SAMPLES if total_samples is None else total_samples,
            channel_mask=self.channel_mask, pcm_md5=md5))
        parts = [grammar.FileHead.build(dict(version_major=VERSION_MAJOR,
                                             version_minor=VERSION_MINOR))]
        bodies = [(BlockType.STREAMINFO, info)]
        for block in self._blocks:
            if block[0] == BlockType.SEEKTABLE:
                points = list(seek_points) + [(UNKNOWN_TOTAL_SAMPLES, 0)] * (
                    block[2] - len(seek_points))
                bodies.append((BlockType.SEEKTABLE, grammar.SeekTable.build(
                    [dict(sample_number=s, byte_offset=o) for s, o in points])))
            else:
                bodies.append(block)
        for kind, body in bodies:
            parts.append(grammar.BlockHeader.build(dict(is_last=0, block_type=kind,
                                                        length=len(body))))
            parts.append(body)
        # §4.7: the last block, the CRC-32 of every byte before its field
        parts.append(grammar.BlockHeader.build(dict(is_last=1, block_type=BlockType.METADATA_CRC,
                                                    length=METADATA_CRC_LENGTH)))
        head = b"".join(parts)
        self.file.write(head + crc32(head).to_bytes(METADATA_CRC_LENGTH, "big"))
        self._head_written = True

    def _decide(self) -> None:
        """Keep, of the level's frame lengths, the one whose frames so far took the fewest
        bytes a sample (the first on a tie), and drop the others. Level 4's stream always goes
        on. The choice need not be right for the levels to nest: the next level (6) encodes
        every one of these frame lengths whole."""
        self._decide_at = None
        own = [(sum(c._frame_sizes), len(c._frame_sizes) * c.frame_length, c)
               for c in self._candidates if c.level is self.level]
        if any(samples == 0 for _, samples, _ in own):
            return
        spent, samples, _ = min(own, key=lambda o: o[0] / o[1])
        dropped = [c for b, n, c in own if b * samples > spent * n]
        for candidate in dropped:
            candidate.file.close()
        self._candidates = [c for c in self._candidates if c not in dropped]

    def _on_candidates(self, call) -> None:
        """``call(candidate)`` for every frame length, the first on this thread and the others
        on daemon threads. If this thread is interrupted (Ctrl-C) or its call raises, the others
        are told to stop at their next frame and are not waited for: each touches only its own
        temporary stream, and a daemon thread does not hold up the interpreter's exit (a Ctrl-C
        used to wait for the other frame length's whole block, minutes with the pure-Python
        kernels)."""
        if self._threads == 1:  # e.g. one of several processes or cluster workers per CPU
            for candidate in self._candidates:
                call(candidate)
            return
        first, *others = self._candidates
        failures: list[BaseException] = []

        def run(candidate: StreamEncoder) -> None:
            try:
                call(candidate)
            except BaseException as exc:  # noqa: BLE001 - re-raised on the calling thread
                failures.append(exc)
        threads = [threading.Thread(target=run, args=(other,), name="vaelac-encode", daemon=True)
                   for other in others]
        for thread in threads:
            thread.start()
        try:
            call(first)
            for thread in threads:
                thread.join()
        except BaseException:
            for other in others:
                other._cancelled = True
            raise
        if failures:
            raise failures[0]

    def write(self, pcm: np.ndarray) -> None:
        """Append samples of shape (n, channels) (or (n,) for mono), integer dtype."""
        if self._candidates is not None:
            if self._decide_at is not None and len(pcm) > self._decide_at - self._samples:
                cut = self._decide_at - self._samples  # up to the decision, then the rest
                self.write(pcm[:cut])
                self._decide()
                pcm = pcm[cut:]
                if not len(pcm):
                    return
            self._on_candidates(lambda candidate: candidate.write(pcm))
            self._samples = self._candidates[0].samples_written
            if self._decide_at is not None and self._samples >= self._decide_at:
                self._decide()
            return
        pcm = np.asarray(pcm)
        if pcm.ndim == 1 and self.channels == 1:
            pcm = pcm[:, None]
        if pcm.ndim != 2 or pcm.shape[1] != self.channels:
            raise EncodeError(f"expected PCM of shape (n, {self.channels}), got {pcm.shape}")
        if pcm.dtype.kind not in "iu":
            raise EncodeError(f"PCM must be integers, got dtype {pcm.dtype}")
        if len(pcm) == 0:
            return
        pcm = pcm.astype(np.int64)
        if int(pcm.min()) < self._lo or int(pcm.max()) > self._hi:
            raise EncodeError(f"a sample lies outside the {self.bits_per_sample}-bit range "
                              f"[{self._lo}, {self._hi}]")
        if not self.lossy:
            self._digest.update(pcm)  # a lossy stream's MD5 is of what the decoder rebuilds
        self._samples += len(pcm)
        self._pending.append(pcm)
        self._pending_len += len(pcm)
        while self._pending_len >= self.frame_length:
            self._emit(self.frame_length)

    def _emit(self, count: int) -> None:
        if self._cancelled:  # the calling thread gave up on this frame length (_on_candidates)
            raise EncodeError("encoding abandoned")
        data = np.concatenate(self._pending) if len(self._pending) > 1 else self._pending[0]
        frame_pcm, rest = data[:count], data[count:]
        self._pending = [rest] if len(rest) else []
        self._pending_len = len(rest)
        if (self._frames_per_seek_point
                and self._frame_index % self._frames_per_seek_point == 0):
            self._seek_points.append((self._frame_index * self.frame_length, self._frames_bytes))
        if self.lossy:
            frame, decoded = encode_lossy_frame(frame_pcm, self._frame_index,
                                                self.bits_per_sample, self.lossy)
            self._digest.update(decoded)
        else:
            uses: list[int] = []
            frame = encode_frame(frame_pcm, self._frame_index, self.bits_per_sample, self.level,
                                 self.model, uses)
            self.model_subframes += sum(uses)
        held, self._held = self._held, frame
        if held is not None:
            self._put(held)
        self._frames_bytes += len(frame)
        self._frame_sizes.append(len(frame))
        self._frame_index += 1

    def _put(self, frame: bytes) -> None:
        """Write a frame: to the spool while the model's embedding is undecided, else to the
        output after the head."""
        if self._spool is not None:
            self._spool.write(frame)
            if self.model_subframes:
                self._end_spool()
            return
        if not self._head_written:
            self._write_head(self.total_declared, PCM_MD5_UNKNOWN, [])
        self.file.write(frame)

    def close(self) -> None:
        """Flush the last (short) frame and finish the header where the output allows."""
        if self._closed:
            return
        self._closed = True
        if self._candidates is not None:
            try:
                self._on_candidates(lambda candidate: candidate.close())
                sizes = [candidate.file.seek(0, io.SEEK_END) for candidate in self._candidates]
                best = self._candidates[sizes.index(min(sizes))]
                self.frame_length = best.frame_length
                best.file.seek(0)
                shutil.copyfileobj(best.file, self.file, _COPY_BYTES)
            finally:
                for candidate in self._candidates:
                    candidate.file.close()
            return
        if self._pending_len:
            self._emit(self._pending_len)
        if self.total_declared is not None and self.total_declared != self._samples:
            raise EncodeError(f"{self._samples} samples written, {self.total_declared} declared")
        if self._held is not None:
            last, self._held = self._held, None
            if not self._seekable and self.total_declared is None:  # §5.2: the stream's end
                last = mark_last(last)
            self._put(last)
        if self._spool is not None:
            self._end_spool()
        if not self._head_written:  # no frame: the input was empty, its length is known
            self._write_head(self._samples, self._digest.digest(), [])
        if self._seekable:
            end = self.file.tell()
            self.file.seek(self._start)
            self._write_head(self._samples, self._digest.digest(), self._seek_points)
            self.file.seek(end)
        elif self.total_declared is not None:
            pass  # header already final except for the MD5, which stays "unknown"

    @property
    def samples_written(self) -> int:
        return self._samples

    def __enter__(self) -> "StreamEncoder":
        return self

    def __exit__(self, *exc) -> None:
        if exc[0] is None:
            self.close()


def _is_default(model) -> bool:
    return isinstance(model, str) and model == "default"


def resolve_model(model: Model | str | os.PathLike | None,
                  kind: ModelKind = ModelKind.RESIDUAL) -> Model | None:
    """``"default"`` (the shipped model of that kind, if any), ``None`` or ``"none"`` (the
    plain path), a model file's path, a shipped model's name (``"vaelac-default-1"``: what
    levels 0-4 use only when named, see StreamEncoder), or a Model."""
    if model is None or (isinstance(model, str) and model == "none"):
        return None
    if isinstance(model, Model):
        found = model
    elif _is_default(model):
        found = default_model(kind)
        if found is None:
            return None
    elif isinstance(model, str) and not os.path.exists(model) and (
            shipped := shipped_model(model)) is not None:
        found = shipped
    else:
        found = model_from_file(model)
    if found.kind != kind:
        raise EncodeError(f"model {found.name!r} is a {found.kind.name} model, "
                          f"{kind.name} is needed here")
    return found


def _check_format(sample_rate: int, channels: int, bits: int) -> None:
    if not isinstance(sample_rate, (int, np.integer)) or not 1 <= sample_rate <= MAX_SAMPLE_RATE:
        raise EncodeError(f"sample rate must be an integer 1..{MAX_SAMPLE_RATE}, got {sample_rate}")
    if not 1 <= channels <= MAX_CHANNELS:
        raise EncodeError(f"channels must be 1..{MAX_CHANNELS}, got {channels}")
    if not 1 <= bits <= 32:
        raise EncodeError(f"bits per sample must be 1..32, got {bits}")
