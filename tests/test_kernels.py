"""The compiled kernels against their pure-Python twin, and hand-computed cases (spec §6.3, §7)."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from vaelac import _kernels as c_impl
from vaelac import _pykernels as py_impl

LIMIT = 2**55 - 1
residuals = st.lists(st.one_of(st.integers(-300, 300), st.integers(-LIMIT, LIMIT)),
                     max_size=300).map(lambda v: np.array(v, np.int64))


@given(residual=residuals, mean_log2=st.integers(0, 55))
def test_compiled_and_python_range_coders_agree_byte_for_byte(residual, mean_log2):
    data = c_impl.rc_encode(residual, mean_log2)
    assert py_impl.rc_encode(residual, mean_log2) == data
    for impl in (c_impl, py_impl):
        out = np.empty_like(residual)
        assert impl.rc_decode(data, mean_log2, out) == 0
        assert np.array_equal(out, residual)


@given(residual=residuals, mean_log2=st.integers(0, 55))
def test_the_coding_cost_is_the_coded_size_to_within_the_flush(residual, mean_log2):
    """rc_cost, which the encoder ranks candidates by, is the same in both backends and is the
    size rc_encode gives to within the coder's 5 flush bytes and the cost table's resolution
    (probabilities in 1/4096 steps: well under 1 % of the information)."""
    cost = c_impl.rc_cost(residual, mean_log2)
    assert py_impl.rc_cost(residual, mean_log2) == cost
    coded_bits = 8 * len(c_impl.rc_encode(residual, mean_log2))
    information = cost / 2**16
    assert information <= coded_bits and coded_bits - information <= 40 + 8 + 0.01 * information
    if len(residual):
        too_big = np.append(residual, np.int64(2**55))
        assert c_impl.rc_cost(too_big, mean_log2) == py_impl.rc_cost(too_big, mean_log2) == -1


@pytest.mark.parametrize("impl", [c_impl, py_impl])
def test_residuals_beyond_55_bits_are_refused(impl):
    with pytest.raises(OverflowError):
        impl.rc_encode(np.array([0, 2**55], np.int64), 0)


@given(residual=residuals, cut=st.integers(1, 8), extra=st.binary(min_size=1, max_size=3))
def test_damaged_payloads_give_a_status_not_a_crash(residual, cut, extra):
    data = c_impl.rc_encode(residual, 4)
    out = np.empty_like(residual)
    short = data[:-cut] if cut < len(data) else b""
    assert c_impl.rc_decode(short, 4, out) != 0 or len(residual) == 0 and short == data
    assert c_impl.rc_decode(data + extra, 4, out) == 2
    assert py_impl.rc_decode(data + extra, 4, out) == 2
    assert c_impl.rc_decode(b"\x01" + data[1:], 4, out) == 3


def test_empty_residual_codes_to_five_zero_bytes():
    # Nothing coded: the flush emits the cache byte and the four bytes of low, all zero (§7.6).
    assert c_impl.rc_encode(np.zeros(0, np.int64), 0) == bytes(5)


def test_single_zero_residual_matches_a_hand_computation():
    # §7.3 prior for context bitlen(1 << 4) = 5: centre 1. The tree codes bit length 0 as
    # six zero bits; node probabilities P(0) from weights 2**(40 - |len - 1|):
    #   node 1 (len 0..31 vs 32..63): w0 = 2**40 + 2**40 + ... ≈ 3 * 2**40, w1 ≈ 2**10 → clamp
    #   every node on the path towards len 0 has P(0) >= 1/2; lens 0 and 1 share the last node:
    #   node 32 splits len 0 (w = 2**39) from len 1 (w = 2**40): P(0) = floor(2**39 * 2**16 /
    #   (3 * 2**39)) = 21845.
    # Encoding bits 0 shrinks the range: range = (range >> 16) * p each time, with renormalising
    # shifts; low stays 0, so every emitted byte is 0 and the stream is the 5-byte flush plus
    # one byte per renormalisation. Nodes 1,2,4,8,16 have p = 65024 (clamped), node 32 has 21845:
    #   r0 = 0xFFFFFFFF; five times r = (r >> 16) * 65024 keeps r >= 2**24 only while ...
    r, shifts = 0xFFFFFFFF, 0
    for p in (65024, 65024, 65024, 65024, 65024, 21845):
        r = (r >> 16) * p
        while r < 2**24:
            r <<= 8
            shifts += 1
    assert c_impl.rc_encode(np.zeros(1, np.int64), 0) == bytes(5 + shifts)
    assert py_impl._PRIOR_TREES[5][32] == 21845
    assert py_impl._PRIOR_TREES[5][1] == 65536 - 512


def test_lpc_prediction_matches_a_hand_computation():
    # order 2, coefs [2, -1] (a line predictor), shift 0; warm-up: pred(0) = 0, pred(1) = s0.
    samples = np.array([5, 7, 9, 12, 14], np.int64)
    coefs = np.array([2, -1], np.int32)
    expected = [5 - 0, 7 - 5, 9 - (2 * 7 - 5), 12 - (2 * 9 - 7), 14 - (2 * 12 - 9)]
    for impl in (c_impl, py_impl):
        out = np.empty_like(samples)
        impl.lpc_residual(samples, coefs, 2, 0, out)
        assert out.tolist() == expected == [5, 2, 0, 1, -1]
        assert impl.lpc_restore(out, coefs, 2, 0, -100, 100) == -1
        assert out.tolist() == samples.tolist()


def test_lpc_shift_is_an_arithmetic_floor():
    # order 3 warm-up then (3 * s[i-1]) >> 2: floor(-7.5) = -8, not -7 (§6.3).
    samples = np.array([0, 0, 0, -10, 0], np.int64)
    out = np.empty_like(samples)
    c_impl.lpc_residual(samples, np.array([3, 0, 0], np.int32), 3, 2, out)
    assert out[4] == 0 - ((3 * -10) >> 2) == 8


@given(samples=st.lists(st.integers(-2**32, 2**32 - 1), max_size=200),
       coefs=st.lists(st.integers(-2**15, 2**15 - 1), min_size=1, max_size=32),
       shift=st.integers(0, 31))
def test_compiled_and_python_lpc_agree(samples, coefs, shift):
    s = np.array(samples, np.int64)
    c = np.array(coefs, np.int32)
    a, b = np.empty_like(s), np.empty_like(s)
    c_impl.lpc_residual(s, c, len(c), shift, a)
    py_impl.lpc_residual(s, c, len(c), shift, b)
    assert np.array_equal(a, b)
    lo, hi = -2**32, 2**32 - 1
    assert c_impl.lpc_restore(a, c, len(c), shift, lo, hi) == -1
    assert py_impl.lpc_restore(b, c, len(c), shift, lo, hi) == -1
    assert np.array_equal(a, s) and np.array_equal(b, s)


@given(width=st.integers(1, 33), values=st.data())
def test_bit_unpacking_gives_the_packed_values_back(width, values):
    from vaelac._bitpack import pack_signed, unpack_small

    x = values.draw(st.lists(st.integers(-(1 << (width - 1)), (1 << (width - 1)) - 1),
                             max_size=40))
    data = pack_signed(np.array(x, np.int64), width)
    assert unpack_small(data, len(x), width) == x
    for impl in (c_impl, py_impl):  # as the decoder unpacks VERBATIM samples (§5.4)
        out = np.full(len(x) + 1, 7, np.int64)
        impl.unpack_signed(data, len(x), width, out)
        assert out[:len(x)].tolist() == x and out[len(x)] == 7
        if width <= 32:  # and LPC coefficients
            out = np.full(len(x) + 1, 7, np.int32)
            impl.unpack_signed(data, len(x), width, out)
            assert out[:len(x)].tolist() == x and out[len(x)] == 7


@given(signal=st.lists(st.integers(-2**23, 2**23 - 1), min_size=2, max_size=400),
       max_order=st.integers(1, 32), walk=st.booleans())
def test_compiled_and_python_levinson_agree_exactly(signal, max_order, walk):
    """The encoder's LPC search (autocorrelation and Levinson): both backends must choose the
    same predictors, so the encoder's output does not depend on whether the extension was
    built."""
    from vaelac.lpc import autocorrelation, window

    x = np.array(signal, np.float64)
    if walk:
        x = np.cumsum(x)
    windowed = x * window("tukey50", len(x))
    r = autocorrelation(windowed, max_order)
    r_python = np.empty(max_order + 1)
    py_impl.autocorrelation(windowed, max_order, r_python)
    assert np.array_equal(r, r_python)  # each lag summed in the same order
    lags = [float(np.dot(windowed[:len(x) - k], windowed[k:])) if k < len(x) else 0.0
            for k in range(max_order + 1)]
    assert np.allclose(r, lags, rtol=1e-9, atol=1e-9 * abs(r[0]))
    results = []
    for impl in (c_impl, py_impl):
        coefs, errors = np.empty((max_order, max_order)), np.empty(max_order + 1)
        impl.levinson(r, max_order, coefs, errors)
        results.append((coefs, errors))
    (c1, e1), (c2, e2) = results
    assert np.array_equal(c1, c2, equal_nan=True) and np.array_equal(e1, e2, equal_nan=True)
    if r[0] > 0 and max_order < len(x) // 2 and np.isfinite(e1).all():
        # Row m-1 solves the order-m normal equations (the Levinson recursion's meaning).
        m = max_order
        toeplitz = np.array([[r[abs(i - j)] for j in range(m)] for i in range(m)])
        toeplitz[np.diag_indices(m)] = r[0] * (1 + 1e-9) + 1e-12
        assert np.allclose(toeplitz @ c1[m - 1], r[1:m + 1], rtol=1e-6,
                           atol=1e-6 * abs(r[0]) + 1e-9)


@given(lpc=st.lists(st.one_of(st.floats(-64, 64), st.floats(allow_nan=True, allow_infinity=True),
                              st.sampled_from([0.5, -0.5, 1.5, 2.5, 0.0])), max_size=32),
       precision=st.integers(2, 16))
def test_compiled_and_python_quantizers_agree_exactly(lpc, precision):
    """The encoder's coefficient quantisation: same integers, shift and width from both
    backends (half-way cases and non-finite input included), and the integers are the
    coefficients scaled by 2**shift to within the error-feedback bound."""
    x = np.array(lpc, np.float64)
    results = []
    for impl in (c_impl, py_impl):
        out = np.full(len(x), 12345, np.int32)
        results.append((impl.quantize(x, precision, out), out))
    (head_c, q_c), (head_py, q_py) = results
    assert head_c == head_py and np.array_equal(q_c, q_py)
    shift, coef_bits = head_c
    lo, hi = -(1 << (coef_bits - 1)), (1 << (coef_bits - 1)) - 1
    assert ((q_c >= lo) & (q_c <= hi)).all() and coef_bits <= precision
    if len(x) and np.isfinite(x).all() and np.abs(x).max() > 0:
        qmax = (1 << (precision - 1)) - 1
        if (np.abs(q_c) < qmax).all():  # no clamping: error feedback keeps the sums within 1/2
            assert np.all(np.abs(np.cumsum(x * 2.0**shift) - np.cumsum(q_c)) <= 0.5 + 1e-9)
    else:
        assert not q_c.any() and head_c == (0, 1)


def _wasted_bits(x, limit):
    """Trailing zero bits common to every value of x (the encoder's wasted bits, §5.3)."""
    ored = int(np.bitwise_or.reduce(x)) if len(x) else 0
    return min((ored & -ored).bit_length() - 1, limit) if ored else 0


@given(bits=st.integers(1, 32), channels=st.integers(1, 5), mode=st.integers(0, 3),
       count=st.integers(1, 40), seed=st.integers(0, 2**32 - 1), common=st.integers(0, 8),
       spoil=st.booleans())
def test_frame_assembly_restores_the_input_and_its_md5_image(bits, channels, mode, count, seed,
                                                             common, spoil):
    """frame_pcm (both backends) takes the coded channels of a frame, with their wasted bits,
    back to the samples the encoder's decorrelation started from, interleaved, with the byte
    image numpy's pcm_bytes makes of them; a value outside the bit depth is reported at its
    sample."""
    from vaelac import channels as chan
    from vaelac.checksum import pcm_bytes

    mode = mode if channels >= 2 else 0
    common = min(common, bits - 1)
    rng = np.random.default_rng(seed)
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    pcm_in = rng.integers(lo, hi, size=(count, channels), endpoint=True)
    pcm_in[0] = rng.choice([lo, hi], size=channels)  # full-scale extremes
    pcm_in = np.clip(pcm_in >> common << common, lo, hi)  # low bits zero, as in padded audio
    coded = [np.ascontiguousarray(pcm_in[:, c]) for c in range(channels)]
    if channels >= 2:
        coded[0], coded[1] = chan.decorrelate(coded[0], coded[1], mode)
    shifts = bytes(_wasted_bits(x, bits - 1) for x in coded)
    coded = [np.ascontiguousarray(x >> shift) for x, shift in zip(coded, shifts)]
    bad_at = -1
    if spoil:
        bad_at = int(rng.integers(count))
        if channels == 2 and mode:  # a side channel so far off that left or right leaves
            coded[-1][bad_at] += 1 << 34
        else:
            coded[-1][bad_at] = (hi >> shifts[-1]) + 1
    width = (bits + 7) // 8
    for impl in (c_impl, py_impl):
        pcm = np.zeros((count, channels), np.int32)
        image = bytearray(count * channels * width)
        assert impl.frame_pcm(coded, shifts, mode, bits, pcm, image) == bad_at
        if bad_at < 0:
            assert np.array_equal(pcm, pcm_in)
            assert bytes(image) == pcm_bytes(pcm_in, bits)


cascade_stage = st.tuples(st.integers(1, 40), st.integers(0, 47), st.integers(0, 255),
                          st.integers(0, 1))


@given(r=st.lists(st.one_of(st.integers(-300, 300), st.integers(-2**40, 2**40)), max_size=120),
       cross=st.booleans(), cross_params=st.tuples(st.integers(0, 32), st.integers(0, 47),
                                                   st.integers(0, 255)),
       stages=st.lists(cascade_stage, max_size=4), seed=st.integers(0, 2**32 - 1),
       mix=st.one_of(st.none(), st.tuples(st.integers(0, 14), st.integers(0, 63),
                                         st.integers(0, 16))))
def test_cascade_stages_agree_and_invert(r, cross, cross_params, stages, seed, mix):
    """The adaptive stages of §6.4, with or without §6.5's mixer: every compiled build
    (portable C, and AVX2 where the CPU has it, chosen with the model loops) and the Python
    kernel give the same coded residuals, and the inverse (the decoder's direction) gives the
    LPC residuals back."""
    r = np.array(r, np.int64)
    params = np.array(cross_params + sum(stages, ()), np.int32)
    other = (np.random.default_rng(seed).integers(-2**20, 2**20, len(r)) if cross else None)
    e = r.copy()
    py_impl.cascade(e, other, params, False, mix)
    expected = e.copy()
    py_impl.cascade(e, other, params, True, mix)
    assert np.array_equal(e, r)
    used = c_impl.model_loops()[0]
    try:
        for build in c_impl.model_loops()[1]:
            c_impl.model_loops(build)
            e = r.copy()
            c_impl.cascade(e, other, params, False, mix)
            assert np.array_equal(e, expected), build
            c_impl.cascade(e, other, params, True, mix)
            assert np.array_equal(e, r), build
    finally:
        c_impl.model_loops(used)


@given(r=st.lists(st.one_of(st.integers(-300, 300), st.integers(-2**40, 2**40)), max_size=120),
       cross=st.booleans(), cross_params=st.tuples(st.integers(0, 32), st.integers(0, 47),
                                                   st.integers(0, 255)),
       shared=st.lists(cascade_stage, max_size=3),
       tails=st.lists(st.lists(cascade_stage, max_size=2), min_size=1, max_size=4),
       seed=st.integers(0, 2**32 - 1),
       mixes=st.lists(st.one_of(st.none(), st.tuples(st.integers(0, 14), st.integers(0, 63),
                                                      st.integers(0, 16))), min_size=4,
                      max_size=4))
def test_cascade_many_is_cascade_of_each_set(r, cross, cross_params, shared, tails, seed,
                                             mixes):
    """The encoder's cascade_many (stage sets with the same cross stage, their common first
    stages run once) gives, for every set, what cascade() gives for that set alone — in every
    compiled build and in the Python kernel."""
    r = np.array(r, np.int64)
    sets = [(shared + tail)[:4] for tail in tails]
    params = [np.array(cross_params + sum(stages, ()), np.int32) for stages in sets]
    mixes = mixes[:len(sets)]
    other = (np.random.default_rng(seed).integers(-2**20, 2**20, len(r)) if cross else None)
    expected = []
    for p, mix in zip(params, mixes):
        e = r.copy()
        c_impl.cascade(e, other, p, False, mix)
        expected.append(e)
    used = c_impl.model_loops()[0]
    try:
        for impl, build in [(py_impl, None)] + [(c_impl, b) for b in c_impl.model_loops()[1]]:
            if build:
                c_impl.model_loops(build)
            outs = [np.full(len(r), 7, np.int64) for _ in sets]
            impl.cascade_many(r.copy(), other, params, mixes, outs)
            assert all(np.array_equal(a, b) for a, b in zip(outs, expected)), build
    finally:
        c_impl.model_loops(used)


def test_cascade_many_on_level_8s_long_sets():
    """Level 8's two long sets (1024 + 256 + 16 and 1024 + 256 + 32 + 16 taps, mixed) share
    their first two stages: on the demo clip's first channel's differences, with the second's
    as cross input, cascade_many gives each set's cascade() exactly."""
    import vaelac
    from vaelac.encoder import _CASCADE_LONG, _CASCADE_LONG4, _CASCADE_MAIN
    from vaelac.wav import read_wav
    demo = __import__("pathlib").Path(vaelac.__file__).parent / "data" / "demo.wav"
    pcm = read_wav(demo)[0].astype(np.int64)
    r = np.ascontiguousarray(np.diff(pcm[:20001, 0]))
    other = np.ascontiguousarray(np.diff(pcm[:20001, -1]))
    sets = (_CASCADE_LONG, _CASCADE_LONG4, _CASCADE_MAIN)
    outs = [np.empty_like(r) for _ in sets]
    c_impl.cascade_many(r, other, [c.params for c in sets], [c.mix for c in sets], outs)
    for config, out in zip(sets, outs):
        e = r.copy()
        c_impl.cascade(e, other, config.params, False, config.mix)
        assert np.array_equal(out, e)
        assert not np.array_equal(out, r)


@pytest.mark.parametrize("case", ["cross differs", "no sets", "outs missing", "short out",
                                  "bad stage", "bad mix"])
def test_cascade_many_refuses_what_it_cannot_run(case):
    """Sets it cannot run together are refused; out-of-range stages and mixers by the C kernel
    (the Python kernels, like cascade(), leave range checks to their callers)."""
    r = np.zeros(10, np.int64)
    a = np.array([16, 13, 2, 8, 11, 8, 1], np.int32)
    params, mixes, outs = [a, a], [None, None], [np.empty(10, np.int64), np.empty(10, np.int64)]
    if case == "cross differs":
        params = [a, np.array([16, 12, 2, 8, 11, 8, 1], np.int32)]
    elif case == "no sets":
        params, mixes, outs = [], [], []
    elif case == "outs missing":
        outs = outs[:1]
    elif case == "short out":
        outs = [np.empty(10, np.int64), np.empty(9, np.int64)]
    elif case == "bad stage":
        params = [a, np.array([16, 13, 2, 8, 11, 8, 2], np.int32)]
    else:
        mixes = [None, (15, 0, 0)]
    for impl in (c_impl,) if case.startswith("bad") else (c_impl, py_impl):
        with pytest.raises(ValueError):
            impl.cascade_many(r, None, params, mixes, outs)


def test_a_mixer_that_does_not_learn_sums_the_predictions():
    """§6.5 with mix_step 0 keeps every weight at 1 and the bias at 0: the coded residual is
    CASCADE's (§6.4), whatever mix_shift and mix_bias; with a step it differs and still
    inverts."""
    rng = np.random.default_rng(11)
    r = np.cumsum(rng.integers(-300, 301, 5000)) % 4001 - 2000
    other = rng.integers(-3000, 3000, len(r))
    params = np.array([16, 12, 2, 64, 12, 8, 1, 16, 11, 8, 1], np.int32)
    plain = r.copy()
    c_impl.cascade(plain, other, params, False)
    for shift, bias in ((0, 0), (7, 16), (14, 3)):
        e = r.copy()
        c_impl.cascade(e, other, params, False, (shift, 0, bias))
        assert np.array_equal(e, plain)
    e = r.copy()
    c_impl.cascade(e, other, params, False, (12, 16, 2))
    assert not np.array_equal(e, plain)
    c_impl.cascade(e, other, params, True, (12, 16, 2))
    assert np.array_equal(e, r)


def test_cascade_stages_learn_a_periodic_residual():
    """A residual with a period beyond the LPC's reach (60 samples) loses most of its energy
    to a 64-tap stage (mean |e| below 35 % of the input's after 6000 samples: 27 % measured);
    with no stages the residual is unchanged."""
    rng = np.random.default_rng(5)
    period = rng.integers(-2000, 2000, 60)
    r = np.tile(period, 200) + rng.integers(-20, 21, 12000)
    e = r.copy()
    c_impl.cascade(e, None, np.array([0, 0, 0, 64, 12, 2, 0], np.int32), False)
    assert np.abs(e[6000:]).mean() < 0.35 * np.abs(r[6000:]).mean()
    plain = r.copy()
    c_impl.cascade(plain, None, np.array([0, 0, 0], np.int32), False)
    assert np.array_equal(plain, r)


@pytest.mark.parametrize("params", [[33, 0, 0], [0, 48, 0], [0, 0, 0, 0, 1, 1, 0],
                                    [0, 0, 0, 1025, 1, 1, 0], [0, 0, 0, 1, 1, 1, 2],
                                    [0, 0, 0] + [1, 0, 1, 0] * 5, [0, 0], [0, 0, 0, 1, 1, 1]])
def test_cascade_parameters_out_of_range_are_refused(params):
    with pytest.raises(ValueError):
        c_impl.cascade(np.zeros(10, np.int64), None, np.array(params, np.int32), False)


@pytest.mark.parametrize("mix", [(15, 0, 0), (0, 64, 0), (0, 0, 17), (-1, 0, 0), (0, -1, 0),
                                 (0, 0, -1), (12, 16)])
def test_mixer_parameters_out_of_range_are_refused(mix):
    with pytest.raises((ValueError, TypeError)):
        c_impl.cascade(np.zeros(10, np.int64), None, np.array([0, 0, 0], np.int32), False, mix)


def test_cascade_refuses_more_samples_than_a_subframe_holds():
    """§6.4's weight bound (|w| < 2**26, which the C kernel's int16 split of the weights relies
    on) holds for a subframe's 65535 samples at most; the kernel refuses longer input."""
    params = np.array([0, 0, 0, 4, 0, 255, 1], np.int32)
    c_impl.cascade(np.ones(65535, np.int64), None, params, False)
    with pytest.raises(ValueError):
        c_impl.cascade(np.ones(65536, np.int64), None, params, False)


@st.composite
def ols_cases(draw, max_taps=12):
    """A subframe's values and the previous subframe's (or None) within a width of 2..33 bits,
    and §6.6 parameters."""
    width = draw(st.integers(2, 33))
    top = 2 ** (width - 1)
    n = draw(st.integers(0, 80))
    values = st.one_of(st.integers(-top, top - 1), st.integers(-40, 39).map(
        lambda v: max(-top, min(top - 1, v))))
    x = np.array(draw(st.lists(values, min_size=n, max_size=n)), np.int64)
    cross = draw(st.one_of(st.none(), st.lists(values, min_size=n, max_size=n)))
    taps = draw(st.integers(1, max_taps))
    params = np.array([taps, draw(st.integers(0, max_taps - taps)), draw(st.integers(0, 24)),
                       draw(st.integers(1, 13)), draw(st.integers(1, 62)),
                       draw(st.integers(3, 5))], np.int32)
    return x, None if cross is None else np.array(cross, np.int64), params, width


@given(case=ols_cases())
def test_ols_predictors_agree_and_invert(case):
    """§6.6's least-squares predictor: the C kernel and the Python one give the same residuals,
    and the inverse (the decoder's direction) gives the values back; a range that excludes a
    value is caught at that value by both."""
    x, cross, params, width = case
    lo, hi = -2 ** (width - 1), 2 ** (width - 1) - 1
    r = x.copy()
    assert c_impl.ols(r, cross, params, False) == -1
    r_py = [int(v) for v in x]
    assert py_impl.ols(r_py, cross, params, False) == -1
    assert r.tolist() == r_py
    for impl in (c_impl, py_impl):
        back = r.copy()
        assert impl.ols(back, cross, params, True, lo, hi) == -1
        assert np.array_equal(back, x)
    if len(x):
        cut = int(x.max()) - 1  # the largest value is now out of range
        first = int(np.argmax(x > cut))
        for impl in (c_impl, py_impl):
            assert impl.ols(r.copy(), cross, params, True, lo, cut) == first


def test_ols_predictors_agree_at_32_taps_on_music():
    """The largest predictor (16 + 16 taps, a solve every 8 samples) on 600 samples of the
    demo clip's two channels: C and Python agree, and the inverse restores the values."""
    import vaelac
    from vaelac.wav import read_wav

    demo = __import__("pathlib").Path(vaelac.__file__).parent / "data" / "demo.wav"
    pcm = read_wav(demo)[0][4000:4600].astype(np.int64)
    params = np.array([16, 16, 8, 9, 27, 3], np.int32)
    left, right = np.ascontiguousarray(pcm[:, 0]), np.ascontiguousarray(pcm[:, 1])
    r = right.copy()
    c_impl.ols(r, left, params, False)
    r_py = right.tolist()
    py_impl.ols(r_py, left, params, False)
    assert r.tolist() == r_py
    assert c_impl.ols(r, left, params, True, -32768, 32767) == -1
    assert np.array_equal(r, right)


def test_ols_learns_a_recurrence_and_the_previous_channel():
    """An AR(2) signal loses all but its innovation to a 2-tap predictor; a channel that is half
    of a white previous channel plus noise all but the noise to one tap of that channel (mean
    |residual| within 10 % of the noise's after the first 2000 samples), and nearly nothing to
    a tap of its own past."""
    rng = np.random.default_rng(3)
    noise = rng.integers(-50, 51, 20000)
    x = np.zeros(20000, np.int64)
    for t in range(2, len(x)):
        x[t] = round(1.6 * x[t - 1] - 0.8 * x[t - 2]) + noise[t]
    r = x.copy()
    c_impl.ols(r, None, np.array([2, 0, 8, 9, 27, 3], np.int32), False)
    assert np.abs(r[2000:]).mean() < 1.1 * np.abs(noise[2000:]).mean()
    white = rng.integers(-2000, 2001, 20000)
    other = (white >> 1) + noise
    for cross_taps, cross, ratio in ((1, white, 1.1), (0, None, 10)):
        r = other.copy()
        c_impl.ols(r, cross, np.array([1, cross_taps, 8, 9, 27, 3], np.int32), False)
        mean = np.abs(r[2000:]).mean()
        assert (mean < ratio * np.abs(noise[2000:]).mean()) == (cross is not None)


@pytest.mark.parametrize("params", [[0, 0, 0, 9, 27, 4], [17, 16, 0, 9, 27, 4],
                                    [1, 0, 25, 9, 27, 4], [1, 0, 0, 0, 27, 4],
                                    [1, 0, 0, 14, 27, 4], [1, 0, 0, 9, 0, 4],
                                    [1, 0, 0, 9, 63, 4], [1, 0, 0, 9, 27, 2],
                                    [1, 0, 0, 9, 27, 11], [1, 0, 0, 9, 27]])
def test_ols_parameters_out_of_range_are_refused(params):
    with pytest.raises(ValueError):
        c_impl.ols(np.zeros(10, np.int64), None, np.array(params, np.int32), False)


def test_the_c_kernels_use_the_spec_constants():
    """Every normative number the C kernels define is the one spec/constants.py defines (the
    C file cannot import it): same-named defines, and the two the C names differently."""
    import re
    from pathlib import Path

    from vaelac.spec import constants

    source = Path(__file__).resolve().parents[1] / "reference" / "_kernels.c"
    if not source.is_file():
        pytest.skip("reference/_kernels.c is not beside the tests (installed package only)")
    aliases = {"MAX_BITLEN": "MAX_RESIDUAL_BITLEN", "MAX_HIDDEN": "MAX_FAN_IN",
               "MAX_CASCADE_SAMPLES": "MAX_FRAME_LENGTH"}
    checked = 0
    for name, expression in re.findall(r"^#define (\w+) ([^/\n]+)", source.read_text(), re.M):
        spec_name = aliases.get(name, name)
        if not hasattr(constants, spec_name):
            continue
        c_form = re.sub(r"(\d+)u\b", r"\1", expression.replace("(int64_t)", ""))
        value = eval(c_form, {}, {k: getattr(constants, k) for k in dir(constants)
                                  if k.isupper()})  # shifts and sums of literals only
        assert value == getattr(constants, spec_name), name
        checked += 1
    assert checked >= 20


def test_the_mixer_stays_within_64_bits_at_the_extremes():
    """§6.5's bounds: coded residuals at ±2**55 (§7.4's most), a 1024-tap SIGN stage learning
    at step 255 with no shift (predictions towards 2**51) and the mixer at its largest step,
    decoded by the C kernel (64-bit) and by the Python one (exact integers): the same values,
    so nothing in the C kernel wrapped."""
    rng = np.random.default_rng(3)
    n = 1500
    coded = np.where(rng.random(n) < 0.5, -(2**55), 2**55 - 1).astype(np.int64)
    other = rng.integers(-2**40, 2**40, n)
    params = np.array([32, 0, 255, 1024, 0, 255, 0], np.int32)
    for mix in ((0, 63, 16), (14, 63, 16)):
        exact = coded.copy()
        py_impl.cascade(exact, other, params, True, mix)
        fast = coded.copy()
        c_impl.cascade(fast, other, params, True, mix)
        assert np.array_equal(fast, exact)


def test_ols_stays_within_64_bits_at_the_extremes():
    """§6.6's bounds: residuals from §6.5 at ±2**62 (near its most) rebuilt with no range check
    (values far beyond the 33 bits a checked value has: the C kernel clamps them before its
    shift), so every input saturates at ±2**24 and R nears its ceiling (ols_forget 13), with
    32 taps and the smallest ridge shift; and a constant signal with the largest ridge shift,
    whose nearly singular systems abandon solves. The C kernel (64-bit) and the Python one
    (exact integers) give the same values, so nothing in the C kernel wrapped."""
    rng = np.random.default_rng(5)
    n = 160
    residual = np.where(rng.random(n) < 0.5, -(2**62), 2**62).astype(np.int64)
    previous = rng.integers(-2**32, 2**32, n)
    constant = np.full(n, 12345, np.int64)
    for r, cross, params in ((residual, previous, [16, 16, 24, 13, 1, 3]),
                             (constant, constant, [16, 16, 0, 9, 62, 3])):
        params = np.array(params, np.int32)
        exact = [int(v) for v in r]
        assert py_impl.ols(exact, cross, params, True, -2**63, 2**63 - 1) == -1
        fast = r.copy()
        assert c_impl.ols(fast, cross, params, True, -2**63, 2**63 - 1) == -1
        assert fast.tolist() == exact
