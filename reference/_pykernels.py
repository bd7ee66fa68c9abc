"""Pure-Python twin of ``_kernels.c`` (spec §6.3, §7): the fallback without a C compiler, and
the second implementation that the tests hold the compiled one against. Slow; exact."""

from __future__ import annotations

import math

from ._bitpack import unpack_small
from .spec.constants import (ACTIVATION_MAX, ADAPT_SHIFT, CASCADE_HISTORY_MAX,
                             DIFFERENCE_FEATURE_SHIFT, FEATURE_CLAMP, FEATURE_MAX, MAX_COEF_BITS,
                             MAX_LPC_SHIFT, MAX_RESIDUAL_BITLEN, MIX_INPUT_MAX, NUM_CONTEXTS,
                             OLS_INPUT_MAX, OLS_L_MAX_LOG2, OLS_MANTISSA_BITS,
                             OLS_WEIGHT_FRACTION, OLS_WEIGHT_MAX, OUTPUT_MAX,
                             OUTPUT_UNIT_SHIFT, PRIOR_MIN, PRIOR_TOP, PROB_BITS, PROB_INIT,
                             RANGE_TOP, RESIDUAL_FEATURE_SHIFT, SCALE_STAT_SHIFT, STAT_SHIFT)

__all__ = ["lpc_residual", "lpc_restore", "unpack_signed", "rc_encode", "rc_decode", "rc_cost",
           "model_features", "model_residual", "model_restore", "quantize", "frame_pcm", "affine",
           "cascade", "ols"]

_PROB_ONE = 1 << PROB_BITS
_MASK32 = 0xFFFFFFFF
_TREE_DEPTH = 6


def _predict(s, i, coefs, order, shift):
    if i < order:
        if i == 0:
            return 0
        if i == 1:
            return s[0]
        return 2 * s[i - 1] - s[i - 2]
    return sum(coefs[j] * s[i - 1 - j] for j in range(order)) >> shift


def lpc_residual(samples, coefs, order, shift, out):
    """out[i] = samples[i] - prediction(i)."""
    s = [int(x) for x in samples]
    c = [int(x) for x in coefs[:order]]
    for i in range(len(s)):
        out[i] = s[i] - _predict(s, i, c, order, shift)


def unpack_signed(data, count, width, out):
    """``count`` two's-complement values of ``width`` bits, MSB first (§5.4), into ``out``
    (LPC coefficients, VERBATIM samples)."""
    for i, value in enumerate(unpack_small(bytes(data), count, width)):
        out[i] = value


def lpc_restore(buf, coefs, order, shift, lo, hi):
    """Samples from residuals in place; index of the first sample outside [lo, hi], or -1."""
    c = [int(x) for x in coefs[:order]]
    s = []
    for i in range(len(buf)):
        value = int(buf[i]) + _predict(s, i, c, order, shift)
        if value < lo or value > hi:
            return i
        s.append(value)
        buf[i] = value
    return -1


def _clamp_history(v):
    return max(-CASCADE_HISTORY_MAX, min(CASCADE_HISTORY_MAX, v))


def _sign(v):
    return (v > 0) - (v < 0)


def _clamp_mix(v):
    return max(-MIX_INPUT_MAX, min(MIX_INPUT_MAX, v))


def cascade_many(buf, cross, params_seq, mix_seq, out_seq):
    """The encoder's forward cascade() of each stage set over buf, into out_seq's arrays (the C
    kernel runs the sets' common first stages once, with the same results)."""
    if not 1 <= len(params_seq) <= 16 or len(mix_seq) != len(params_seq) \
            or len(out_seq) != len(params_seq):
        raise ValueError("cascade_many: 1..16 sets, as many mixes and outs")
    if any(list(p[:3]) != list(params_seq[0][:3]) for p in params_seq):
        raise ValueError("cascade_many: the cross stages differ")
    for params, mix, out in zip(params_seq, mix_seq, out_seq):
        out[:] = buf
        cascade(out, cross, params, False, mix)


def cascade(buf, cross, params, inverse, mix=None):
    """The adaptive stages of §6.4 over one subframe, in place: forward turns the LPC residual
    into the coded residual, inverse turns it back. params = (cross_taps, cross_shift,
    cross_step, then taps, shift, step, rule of each stage; rule 0 SIGN, 1 SCALED); mix None,
    or (mix_shift, mix_step, mix_bias) for §6.5's mixer of the predictions."""
    params = [int(x) for x in params]
    cross_taps, cross_shift, cross_step = params[0], params[1], params[2]
    stages = [tuple(params[i:i + 4]) for i in range(3, len(params), 4)]
    if cross is None:
        cross_taps = 0
    cw = [0] * cross_taps
    weights = [[0] * taps for taps, _, _, _ in stages]
    history = [[0] * taps for taps, _, _, _ in stages]  # newest first
    updates = [[0] * taps for taps, _, _, _ in stages]  # SCALED: each tap's update, newest first
    mean = [0] * len(stages)  # SCALED: running mean of |clamped input|
    mix_weights = [1 << mix[0]] * (len(stages) + 1) if mix else None
    bias_weight = 0
    for t in range(len(buf)):
        reach = min(cross_taps, t + 1)
        pc = sum(cw[j] * _clamp_history(int(cross[t - j])) for j in range(reach)) >> cross_shift
        p = [sum(w * h for w, h in zip(weights[k], history[k])) >> stages[k][1]
             for k in range(len(stages))]
        u = [0] * (len(stages) + 1)
        if mix:
            q = [_clamp_mix(x) for x in [pc] + p]
            total = sum(a * x for a, x in zip(mix_weights, q))
            if mix[2]:
                total += bias_weight << (mix[2] - 1)
            mixed = total >> mix[0]
            r = int(buf[t]) + mixed if inverse else int(buf[t])
            e = r - mixed
            buf[t] = r if inverse else e
            v = u[0] = r - pc
            for k in range(len(stages)):
                u[k + 1] = u[k] - p[k]
            mix_weights = [a + mix[1] * _sign(e) * _sign(x) for a, x in zip(mix_weights, q)]
            bias_weight += mix[1] * _sign(e)
        elif not inverse:
            v = u[0] = int(buf[t]) - pc
            for k in range(len(stages)):
                u[k + 1] = u[k] - p[k]
            buf[t] = u[-1]
        else:
            u[-1] = int(buf[t])
            for k in range(len(stages) - 1, -1, -1):
                u[k] = u[k + 1] + p[k]
            v = u[0]
            buf[t] = v + pc
        if reach and _sign(v):
            for j in range(reach):
                cw[j] += cross_step * _sign(v) * _sign(int(cross[t - j]))
        for k, (taps, _, step, rule) in enumerate(stages):
            e = _sign(u[k + 1])
            if e:
                for j in range(taps):
                    weights[k][j] += (step * e * _sign(history[k][j]) if rule == 0
                                      else e * updates[k][j])
            x = _clamp_history(u[k])
            history[k] = [x] + history[k][:-1]
            if rule == 1:
                a = abs(x)
                m = (4 * step if a > 3 * mean[k] else 2 * step if 3 * a > 4 * mean[k]
                     else step if a > 0 else 0)
                updates[k] = [m * _sign(x)] + updates[k][:-1]
                for older in (1, 2, 8):
                    if older < taps:
                        updates[k][older] >>= 1
                mean[k] += (a - mean[k]) >> 4


# §6.6's soft float: a pair (m, e) worth m * 2**e, with m = 0 or 2**30 <= |m| < 2**31.
_M = OLS_MANTISSA_BITS


def _sf(m, e):
    """F(m, e): the magnitude of m truncated (or shifted up) to _M bits."""
    if m == 0:
        return 0, 0
    a = abs(m)
    s = a.bit_length() - _M
    a = a >> s if s > 0 else a << -s
    return (-a if m < 0 else a), e + s


def _sf_mul(a, b):
    return _sf(a[0] * b[0], a[1] + b[1])


def _sf_aligned(m, d):
    """m * 2**(_M - d), its magnitude truncated."""
    if d <= _M:
        return m << (_M - d)
    a = abs(m) >> (d - _M) if d <= 2 * _M else 0
    return -a if m < 0 else a


def _sf_sub(a, b):
    if b[0] == 0:
        return a
    if a[0] == 0:
        return -b[0], b[1]
    if a[1] >= b[1]:
        return _sf((a[0] << _M) - _sf_aligned(b[0], a[1] - b[1]), a[1] - _M)
    return _sf(_sf_aligned(a[0], b[1] - a[1]) - (b[0] << _M), b[1] - _M)


def _sf_div(a, b):  # b > 0
    m, e = _sf((abs(a[0]) << _M) // b[0], a[1] - b[1] - _M)
    return (-m if a[0] < 0 else m), e


def _sf_weight(a):
    """The weight of §6.6: a * 2**24 truncated, clamped to +-2**30."""
    m, e = a
    s = e + OLS_WEIGHT_FRACTION
    if m == 0:
        return 0
    if s > 62 - _M:
        magnitude = OLS_WEIGHT_MAX
    else:
        magnitude = min(OLS_WEIGHT_MAX, abs(m) << s if s >= 0 else abs(m) >> -s)
    return -magnitude if m < 0 else magnitude


def _ols_solve(R, b, ridge):
    """§6.6's solve: L·D·Lᵀ of R plus the ridge, then the two substitutions; the weights, or
    None when the solve is abandoned."""
    n = len(b)
    L = [[(0, 0)] * n for _ in range(n)]
    d = [(0, 0)] * n
    for j in range(n):
        ld = [_sf_mul(L[j][m], d[m]) for m in range(j)]
        dj = _sf(R[j][j] + (R[j][j] >> ridge) + 1, 0)
        for m in range(j):
            dj = _sf_sub(dj, _sf_mul(L[j][m], ld[m]))
        if dj[0] <= 0 or dj[0].bit_length() + dj[1] <= 0:
            return None
        d[j] = dj
        for i in range(j + 1, n):
            acc = _sf(R[j][i], 0)
            for m in range(j):
                acc = _sf_sub(acc, _sf_mul(L[i][m], ld[m]))
            L[i][j] = _sf_div(acc, dj)
            if L[i][j][0] and abs(L[i][j][0]).bit_length() + L[i][j][1] > OLS_L_MAX_LOG2:
                return None
    z = []
    for i in range(n):
        acc = _sf(b[i], 0)
        for m in range(i):
            acc = _sf_sub(acc, _sf_mul(L[i][m], z[m]))
        z.append(acc)
    x = [(0, 0)] * n
    for i in range(n - 1, -1, -1):
        acc = _sf_div(z[i], d[i])
        for m in range(i + 1, n):
            acc = _sf_sub(acc, _sf_mul(L[m][i], x[m]))
        x[i] = acc
    return [_sf_weight(v) for v in x]


def ols(buf, cross, params, inverse, lo=0, hi=0):
    """The least-squares predictor of §6.6 over one subframe, in place: forward turns values
    into residuals, inverse residuals into values, checked against [lo, hi]. params =
    (ols_taps, ols_cross_taps, ols_scale, ols_forget, ols_ridge, ols_interval_log2); cross is
    the previous subframe's values, or None (inputs 0). Returns the index of the first value
    outside [lo, hi] (inverse only), or -1."""
    taps, cross_taps, scale, forget, ridge, interval_log2 = (int(x) for x in params)
    n = taps + cross_taps
    interval = 1 << interval_log2

    def clamp_in(x):
        return max(-OLS_INPUT_MAX, min(OLS_INPUT_MAX, x << scale))

    R = [[0] * n for _ in range(n)]  # only R[i][j], i <= j, is used
    b = [0] * n
    w = [0] * n
    s = []  # the values so far
    for t in range(len(buf)):
        v = [clamp_in(s[t - 1 - j]) if t - 1 - j >= 0 else 0 for j in range(taps)]
        v += [clamp_in(int(cross[t - j])) if cross is not None and t - j >= 0 else 0
              for j in range(cross_taps)]
        acc = sum(wj * vj for wj, vj in zip(w, v))
        pred = (acc + (1 << (OLS_WEIGHT_FRACTION - 1 + scale))) >> (OLS_WEIGHT_FRACTION + scale)
        if inverse:
            value = int(buf[t]) + pred
            if value < lo or value > hi:
                return t
            buf[t] = value
        else:
            value = int(buf[t])
            buf[t] = value - pred
        s.append(value)
        y = clamp_in(value)
        for i in range(n):
            b[i] += v[i] * y - (b[i] >> forget)
            for j in range(i, n):
                R[i][j] += v[i] * v[j] - (R[i][j] >> forget)
        if (t + 1) % interval == 0:
            solved = _ols_solve(R, b, ridge)
            if solved is not None:
                w = solved
    return -1


def affine(weights, x, biases, out):
    """out[j] = biases[j] + sum_i weights[j][i] * x[i] (int16 weights, row-major)."""
    cols = len(x)
    for j in range(len(biases)):
        out[j] = int(biases[j]) + sum(int(weights[j * cols + i]) * int(x[i]) for i in range(cols))


def frame_pcm(coded, shifts, mode, bits, pcm, image):
    """Each channel shifted left by its wasted bits (``shifts``, §5.3), channels 0 and 1
    restored from ``mode`` (§6.1), every value checked against the
    ``bits``-bit range, written interleaved to int32 ``pcm`` and as the little-endian PCM image
    of §4.2 (ceil(bits/8) bytes a value) to ``image``. The first bad sample index, or -1."""
    channels, count = len(coded), len(coded[0])
    width = (bits + 7) // 8
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    flat = memoryview(pcm).cast("B").cast("i")
    pos = 0
    for i in range(count):
        v = [int(channel[i]) << shift for channel, shift in zip(coded, shifts)]
        if channels >= 2:
            a, b = v[0], v[1]
            if mode == 1:  # LEFT_SIDE
                v[1] = a - b
            elif mode == 2:  # SIDE_RIGHT
                v[0] = a + b
            elif mode == 3:  # MID_SIDE
                mid = (a << 1) | (b & 1)
                v[0], v[1] = (mid + b) >> 1, (mid - b) >> 1
        for c, x in enumerate(v):
            if not lo <= x <= hi:
                return i
            flat[i * channels + c] = x
            image[pos:pos + width] = (x % (1 << (8 * width))).to_bytes(width, "little")
            pos += width
    return -1


def _prior_tree(context):
    """Initial tree probabilities of one context (§7.3)."""
    centre = max(context - STAT_SHIFT, 0)
    weight = [0] * 128
    for length in range(64):
        weight[64 + length] = 1 << max(PRIOR_TOP - abs(length - centre), 0)
    for node in range(63, 0, -1):
        weight[node] = weight[2 * node] + weight[2 * node + 1]
    tree = [PROB_INIT] * 64
    for node in range(1, 64):
        prob = (weight[2 * node] << PROB_BITS) // weight[node]
        tree[node] = min(max(prob, PRIOR_MIN), _PROB_ONE - PRIOR_MIN)
    return tree


_PRIOR_TREES = [_prior_tree(c) for c in range(NUM_CONTEXTS)]


def _new_model():
    return ([list(t) for t in _PRIOR_TREES], [PROB_INIT] * 64,
            [[PROB_INIT, PROB_INIT] for _ in range(64)])


def _context(stat):
    return min(stat.bit_length(), NUM_CONTEXTS - 1)


class _Encoder:
    def __init__(self):
        self.low, self.range, self.cache, self.cache_size = 0, _MASK32, 0, 1
        self.out = bytearray()

    def shift_low(self):
        if self.low < 0xFF000000 or self.low >= 1 << 32:
            carry = self.low >> 32
            temp = self.cache
            while True:
                self.out.append((temp + carry) & 0xFF)
                temp = 0xFF
                self.cache_size -= 1
                if self.cache_size == 0:
                    break
            self.cache = (self.low >> 24) & 0xFF
        self.cache_size += 1
        self.low = (self.low & 0x00FFFFFF) << 8

    def normalize(self):
        while self.range < RANGE_TOP:
            self.range = (self.range << 8) & _MASK32
            self.shift_low()

    def bit(self, probs, index, bit):
        p = probs[index]
        bound = (self.range >> PROB_BITS) * p
        if bit:
            self.low += bound
            self.range -= bound
            probs[index] = p - (p >> ADAPT_SHIFT)
        else:
            self.range = bound
            probs[index] = p + ((_PROB_ONE - p) >> ADAPT_SHIFT)
        self.normalize()

    def fixed(self, p, bit):
        bound = (self.range >> PROB_BITS) * p
        if bit:
            self.low += bound
            self.range -= bound
        else:
            self.range = bound
        self.normalize()

    def direct(self, value, nbits):
        for i in range(nbits - 1, -1, -1):
            self.range >>= 1
            if (value >> i) & 1:
                self.low += self.range
            self.normalize()


def _sink_residuals(sink, residual, mean_log2, latents, prior, levels_log2):
    """The coding decisions of the latent symbols (§8.2), if any, then of the residuals
    (§7.4), in order, into ``sink`` (the range encoder, or rc_cost's counter): its
    ``bit(probs, index, bit)`` adapts, ``fixed(p, bit)`` does not, ``direct(value, nbits)``
    takes raw bits. OverflowError for a residual beyond MAX_RESIDUAL_BITLEN."""
    tree, mant1, mant2 = _new_model()
    nodes = (1 << levels_log2) - 1
    for i, q in enumerate([] if latents is None else latents):
        node = 1
        for b in range(levels_log2 - 1, -1, -1):
            bit = (int(q) >> b) & 1
            sink.fixed(int(prior[i * nodes + node - 1]), bit)
            node = 2 * node + bit
    stat = 1 << (mean_log2 + STAT_SHIFT)
    for x in residual:
        x = int(x)
        v = 2 * x if x >= 0 else -2 * x - 1
        length = v.bit_length()
        if length > MAX_RESIDUAL_BITLEN:
            raise OverflowError(f"residual {x} is too large to code")
        probs = tree[_context(stat)]
        node = 1
        for b in range(_TREE_DEPTH - 1, -1, -1):
            bit = (length >> b) & 1
            sink.bit(probs, node, bit)
            node = 2 * node + bit
        if length >= 2:
            m1 = (v >> (length - 2)) & 1
            sink.bit(mant1, length, m1)
            if length >= 3:
                sink.bit(mant2[length], m1, (v >> (length - 3)) & 1)
                if length >= 4:
                    sink.direct(v, length - 3)
        stat += v - (stat >> STAT_SHIFT)


def rc_encode(residual, mean_log2, latents=None, prior=None, levels_log2=0):
    """Code the latent symbols (§8.2), if any, then the residuals (§7.4); returns the bytes."""
    enc = _Encoder()
    _sink_residuals(enc, residual, mean_log2, latents, prior, levels_log2)
    for _ in range(5):
        enc.shift_low()
    return bytes(enc.out)


def _log2_q16(x):
    """floor-ish 65536 * log2(x) by repeated squaring (as _kernels.c: integers only)."""
    whole = x.bit_length() - 1
    y = (x << 30) >> whole
    fraction = 0
    for b in range(15, -1, -1):
        y = (y * y) >> 30
        if y >= 2 << 30:
            y >>= 1
            fraction |= 1 << b
    return (whole << 16) | fraction


_COST_INDEX_BITS = 12
_BIT_COST = [_COST_INDEX_BITS << 16] + [(_COST_INDEX_BITS << 16) - _log2_q16(i)
                                        for i in range(1, 1 << _COST_INDEX_BITS)]


class _Cost:
    """rc_cost's sink: the information of each decision, in 2**-16 bits, with the encoder's
    adaptation."""

    _DOWN = PROB_BITS - _COST_INDEX_BITS

    def __init__(self):
        self.total = 0

    def bit(self, probs, index, bit):
        p = probs[index]
        probs[index] = p - (p >> ADAPT_SHIFT) if bit else p + ((_PROB_ONE - p) >> ADAPT_SHIFT)
        self.fixed(p, bit)

    def fixed(self, p, bit):
        self.total += _BIT_COST[(_PROB_ONE - p if bit else p) >> self._DOWN]

    def direct(self, value, nbits):
        self.total += nbits << 16


def rc_cost(residual, mean_log2, latents=None, prior=None, levels_log2=0):
    """The information rc_encode would code, in 2**-16 bits (encoder only); -1 if a residual
    is too large."""
    cost = _Cost()
    try:
        _sink_residuals(cost, residual, mean_log2, latents, prior, levels_log2)
    except OverflowError:
        return -1
    return cost.total


def rc_decode(data, mean_log2, out, latents=None, prior=None, levels_log2=0):
    """Decode the latent symbols into ``latents`` (§8.2), if given, then len(out) residuals into
    out; status as the C kernel (0 = ok)."""
    tree, mant1, mant2 = _new_model()
    data = bytes(data)
    state = {"pos": 0, "overrun": False}

    def next_byte():
        if state["pos"] < len(data):
            state["pos"] += 1
            return data[state["pos"] - 1]
        state["overrun"] = True
        return 0

    rng = _MASK32
    status = 0 if next_byte() == 0 else 3
    code = 0
    for _ in range(4):
        code = ((code << 8) | next_byte()) & _MASK32
    if status == 0 and code == _MASK32:
        status = 5

    def bit(probs, index):
        nonlocal rng, code
        p = probs[index]
        bound = (rng >> PROB_BITS) * p
        if code < bound:
            rng = bound
            probs[index] = p + ((_PROB_ONE - p) >> ADAPT_SHIFT)
            result = 0
        else:
            code -= bound
            rng -= bound
            probs[index] = p - (p >> ADAPT_SHIFT)
            result = 1
        while rng < RANGE_TOP:
            rng = (rng << 8) & _MASK32
            code = ((code << 8) | next_byte()) & _MASK32
        return result

    def direct(nbits):
        nonlocal rng, code
        value = 0
        for _ in range(nbits):
            rng >>= 1
            b = 1 if code >= rng else 0
            if b:
                code -= rng
            value = (value << 1) | b
            while rng < RANGE_TOP:
                rng = (rng << 8) & _MASK32
                code = ((code << 8) | next_byte()) & _MASK32
        return value

    def fixed(p):
        nonlocal rng, code
        bound = (rng >> PROB_BITS) * p
        if code < bound:
            rng = bound
            result = 0
        else:
            code -= bound
            rng -= bound
            result = 1
        while rng < RANGE_TOP:
            rng = (rng << 8) & _MASK32
            code = ((code << 8) | next_byte()) & _MASK32
        return result

    if status == 0 and latents is not None:
        nodes = (1 << levels_log2) - 1
        for i in range(len(latents)):
            node = 1
            for _ in range(levels_log2):
                node = 2 * node + fixed(int(prior[i * nodes + node - 1]))
            latents[i] = node - (1 << levels_log2)
        if state["overrun"]:
            status = 1

    stat = 1 << (mean_log2 + STAT_SHIFT)
    for i in range(len(out)):
        if status:
            break
        probs = tree[_context(stat)]
        node = 1
        for _ in range(_TREE_DEPTH):
            node = 2 * node + bit(probs, node)
        length = node - 64
        if length > MAX_RESIDUAL_BITLEN:
            status = 4
            break
        if length < 2:
            v = length
        else:
            m1 = bit(mant1, length)
            v = 2 | m1
            if length >= 3:
                v = (v << 1) | bit(mant2[length], m1)
                if length >= 4:
                    v = (v << (length - 3)) | direct(length - 3)
        out[i] = (v >> 1) ^ -(v & 1)
        stat += v - (stat >> STAT_SHIFT)
        if state["overrun"]:
            status = 1
    if status == 0 and state["overrun"]:
        status = 1
    if status == 0 and state["pos"] != len(data):
        status = 2
    return status


# -- the RESIDUAL model's network (§8.3) ---------------------------------------------------

def _scaled(v, up, k):
    v = max(-FEATURE_CLAMP, min(FEATURE_CLAMP, v))
    return max(-FEATURE_MAX, min(FEATURE_MAX, (v << up) >> k))


def _features(e, s, cross, n, t, pred, history, k, width):
    x = []
    for j in range(1, history + 1):
        x.append(_scaled(e[t - j], RESIDUAL_FEATURE_SHIFT, k) if t >= j else 0)
    for j in range(1, history + 1):
        x.append(_scaled(s[t - j] - s[t - j - 1], DIFFERENCE_FEATURE_SHIFT, k)
                 if t >= j + 1 else 0)
    last = s[t - 1] if t >= 1 else 0
    level = last >> (width - 12) if width >= 12 else last << (12 - width)
    x.append(max(-FEATURE_MAX, min(FEATURE_MAX, level)))
    x.append(_scaled(pred - last, DIFFERENCE_FEATURE_SHIFT, k))
    for u in (t - 1, t, t + 1):
        x.append(_scaled(int(cross[u]), RESIDUAL_FEATURE_SHIFT, k)
                 if cross is not None and 0 <= u < n else 0)
    return x


def _correction(net, x, k):
    history, shift1, shift2, w1, c1, w2, b2 = net
    features = 2 * history + 5
    h = []
    for i in range(len(c1)):
        acc = sum(int(w1[i * features + j]) * x[j] for j in range(features)) + int(c1[i])
        h.append(max(0, min(ACTIVATION_MAX, acc >> shift1)))
    o = (sum(int(w2[i]) * h[i] for i in range(len(h))) + b2) >> shift2
    o = max(-OUTPUT_MAX, min(OUTPUT_MAX, o))
    return (o << min(k, 40)) >> OUTPUT_UNIT_SHIFT


def _stat_next(a, e):
    return a + min(abs(e), FEATURE_CLAMP) - (a >> SCALE_STAT_SHIFT)


def model_features(e, s, cross, width, mean_log2, history, out):
    """out[t] = the network's inputs at sample t (§8.3); the prediction is s - e."""
    e = [int(v) for v in e]
    s = [int(v) for v in s]
    a = 1 << (mean_log2 + 3)
    for t in range(len(e)):
        out[t] = _features(e, s, cross, len(e), t, s[t] - e[t], history, a.bit_length(), width)
        a = _stat_next(a, e[t])


def model_residual(e, s, cross, width, mean_log2, net, out):
    """out = e - correction (§8.4, encoder)."""
    e = [int(v) for v in e]
    s = [int(v) for v in s]
    a = 1 << (mean_log2 + 3)
    for t in range(len(e)):
        k = a.bit_length()
        x = _features(e, s, cross, len(e), t, s[t] - e[t], net[0], k, width)
        out[t] = e[t] - _correction(net, x, k)
        a = _stat_next(a, e[t])


def model_restore(buf, coefs, order, shift, lo, hi, width, mean_log2, net, cross, e_out):
    """Samples from coded residuals in place, LPC residuals into e_out (§8.4, decoder); first
    bad index or -1."""
    c = [int(x) for x in coefs[:order]]
    e, s = [], []
    a = 1 << (mean_log2 + 3)
    for t in range(len(buf)):
        k = a.bit_length()
        pred = _predict(s, t, c, order, shift)
        x = _features(e, s, cross, len(buf), t, pred, net[0], k, width)
        et = int(buf[t]) + _correction(net, x, k)
        value = et + pred
        if value < lo or value > hi:
            return t
        e.append(et)
        s.append(value)
        buf[t] = value
        e_out[t] = et
        a = _stat_next(a, et)
    return -1


def quantize(lpc, precision, out):
    """The encoder's coefficient quantisation (not normative): ``precision``-bit signed integers
    with error feedback into ``out``; returns (shift, coef_bits), coef_bits the width needed."""
    lpc = [float(c) for c in lpc]
    cmax = max((abs(c) for c in lpc), default=0.0)
    if cmax <= 0 or not all(math.isfinite(c) for c in lpc):
        out[:len(lpc)] = 0
        return 0, 1
    shift = min(max(precision - 1 - math.frexp(cmax)[1], 0), MAX_LPC_SHIFT)
    qmax = (1 << (precision - 1)) - 1
    error, scale, magnitude = 0.0, float(1 << shift), 0
    for i, c in enumerate(lpc):
        error += c * scale
        # clamped before rounding, as the C kernel's clamp after rounding: the same for every
        # finite error, and an error that overflowed to ±inf clamps instead of failing round()
        v = round(max(-qmax - 1, min(qmax, error)))
        out[i] = v
        error -= v
        magnitude = max(magnitude, v, -v - 1)
    return shift, min(magnitude.bit_length() + 1, MAX_COEF_BITS)


def levinson(r, max_order, coefs, errors):
    """Levinson–Durbin for the encoder's LPC search; the compiled twin does the same steps."""
    r = [float(v) for v in r[:max_order + 1]]
    err = r[0] * (1 + 1e-9) + 1e-12
    errors[0] = err
    a: list[float] = []
    for m in range(1, max_order + 1):
        acc = r[m]
        for j, aj in enumerate(a):
            acc -= aj * r[m - 1 - j]
        k = acc / err
        a = [aj - k * a[m - 2 - j] for j, aj in enumerate(a)] + [k]
        err *= max(1 - k * k, 1e-12)
        errors[m] = err
        coefs[m - 1, :m] = a
        coefs[m - 1, m:] = 0.0


def autocorrelation(x, max_lag, r):
    """r[k] = sum of x[i] * x[i+k] in increasing i, as the compiled twin sums it."""
    values = [float(v) for v in x]
    n = len(values)
    for k in range(max_lag + 1):
        acc = 0.0
        for i in range(n - k):
            acc += values[i] * values[i + k]
        r[k] = acc
