"""The learned model (spec §8): model files, the integer network, MODEL_PREDICTED streams."""

import contextlib
import dataclasses
import hashlib
import io
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import vaelac
from vaelac.stream_head import reseal
from vaelac import _kernels as c_impl
from vaelac import _pykernels as py_impl
from vaelac import encoder as encoder_module
from vaelac.model import ANALYSIS_FEATURES, default_model, load_model
from vaelac.spec import container as grammar
from vaelac.spec import model as model_grammar
from vaelac.spec.constants import BlockType, ModelKind

from _signals import make_signal

# Every build of the compiled model loops this CPU can run (portable C, and SSE2 and AVX2 on
# x86-64); each must give the Python twin's integers.
LOOP_BUILDS = c_impl.model_loops()[1]


@contextlib.contextmanager
def loops_of(build: str):
    """Run the compiled model loops of ``build``, then the ones in use before."""
    used = c_impl.model_loops(build)[0]
    try:
        yield build
    finally:
        c_impl.model_loops(used)


@pytest.fixture(params=LOOP_BUILDS)
def loop_build(request):
    with loops_of(request.param) as build:
        yield build


def random_model(seed=0, history=4, hidden=6, latent_dim=3, levels=4, wmax=8191, name=None,
                 kind=ModelKind.RESIDUAL, block=0, bmax=2**20):
    """A valid model file with random integer weights (every bound of §8.1 reachable)."""
    rng = np.random.default_rng(seed)

    def layer(i, o, act):
        return dict(inputs=i, outputs=o, shift=int(rng.integers(6, 14)), activation=act,
                    weights=rng.integers(-wmax, wmax + 1, i * o).astype(">i2").tobytes(),
                    biases=rng.integers(-bmax, bmax + 1, o).astype(">i4").tobytes())

    trees = latent_dim + (kind == ModelKind.LOSSY)
    if kind == ModelKind.RESIDUAL:
        encoder = [layer(ANALYSIS_FEATURES, 8, 1), layer(8, 2 * latent_dim, 0)]
        decoder = [layer(2 * history + 5 + latent_dim, hidden, 1), layer(hidden, 1, 0)]
    else:
        encoder = [layer(block, 8, 1), layer(8, 2 * latent_dim, 0)]
        decoder = [layer(latent_dim, 8, 1), layer(8, block, 0)]
    return model_grammar.ModelFile.build(dict(
        format_version=1, kind=int(kind), name=name or f"random-{seed}", description="{}",
        latent_dim=latent_dim, latent_levels_log2=levels, history=history, block=block,
        prior=rng.integers(1, 65536, trees * ((1 << levels) - 1)).astype(">u2").tobytes(),
        encoder=encoder, decoder=decoder))


def _net(seed, history, hidden):
    rng = np.random.default_rng(seed)
    features = 2 * history + 5
    return (history, int(rng.integers(0, 14)), int(rng.integers(0, 14)),
            rng.integers(-8191, 8192, hidden * features).astype(np.int16),
            rng.integers(-2**27, 2**27, hidden).astype(np.int32),
            rng.integers(-8191, 8192, hidden).astype(np.int16), int(rng.integers(-2**27, 2**27)))


@pytest.mark.parametrize("build", LOOP_BUILDS)
@settings(max_examples=30)
@given(seed=st.integers(0, 2**31), history=st.integers(1, 32), hidden=st.integers(1, 112),
       n=st.integers(0, 200), width=st.integers(1, 33), mean_log2=st.integers(0, 55),
       with_cross=st.booleans())
def test_compiled_and_python_networks_agree_exactly(build, seed, history, hidden, n, width,
                                                    mean_log2, with_cross):
    # Random weights at the bounds of §8.1 and signals spanning the width: clamps and the
    # 2**40 feature clamp are exercised; both implementations must give identical integers.
    rng = np.random.default_rng(seed)
    lo, hi = -(1 << (width - 1)), (1 << (width - 1)) - 1
    s = rng.integers(lo, hi + 1, n, dtype=np.int64)
    e = rng.integers(-(1 << 45), 1 << 45, n, dtype=np.int64) if seed % 3 == 0 else s.copy()
    cross = rng.integers(-(1 << 30), 1 << 30, n, dtype=np.int64) if with_cross else None
    net = _net(seed, history, hidden)
    out_c, out_py = np.empty_like(e), np.empty_like(e)
    with loops_of(build):
        c_impl.model_residual(e, s, cross, width, mean_log2, net, out_c)
    py_impl.model_residual(e, s, cross, width, mean_log2, net, out_py)
    assert np.array_equal(out_c, out_py)
    f_c = np.empty((n, 2 * history + 5), np.int16)
    f_py = np.empty((n, 2 * history + 5), np.int16)
    c_impl.model_features(e, s, cross, width, mean_log2, history, f_c)
    py_impl.model_features(e, s, cross, width, mean_log2, history, f_py)
    assert np.array_equal(f_c, f_py)


@pytest.mark.parametrize("build", LOOP_BUILDS)
@settings(max_examples=30)
@given(seed=st.integers(0, 2**31), order=st.integers(1, 8), n=st.integers(0, 300),
       hidden=st.integers(1, 112), with_cross=st.booleans())
def test_model_restore_inverts_model_residual_in_both_implementations(build, seed, order, n,
                                                                      hidden, with_cross):
    rng = np.random.default_rng(seed)
    s = np.cumsum(rng.integers(-3000, 3000, n)).astype(np.int64)
    coefs = rng.integers(-2000, 2000, order).astype(np.int32)
    e = np.empty_like(s)
    c_impl.lpc_residual(s, coefs, order, 11, e)
    cross = rng.integers(-5000, 5000, n).astype(np.int64) if with_cross else None
    net = _net(seed, 3, hidden)
    coded = np.empty_like(e)
    py_impl.model_residual(e, s, cross, 20, 8, net, coded)
    with loops_of(build):
        for impl in (c_impl, py_impl):
            buf, e_out = coded.copy(), np.zeros_like(coded)
            assert impl.model_restore(buf, coefs, order, 11, -2**40, 2**40, 20, 8, net, cross,
                                      e_out) == -1
            assert np.array_equal(buf, s) and np.array_equal(e_out, e)


def test_one_correction_matches_a_hand_computation(loop_build):
    # H = 1, one hidden unit reading x[0] = scaled(e[t-1], 12, k) only. At t = 1 with
    # initial_mean_log2 m = 5: a[0] = 2**8 = 256, e[0] = 100, a[1] = 256 + 100 - 16 = 340,
    # k = bitlen(340) = 9; x[0] = (100 * 4096) >> 9 = 800. Hidden: (3 * 800 + 0) >> 1 = 1200
    # (below the clamp 2047). Output: (5 * 1200 + 8) >> 3 = 751. Correction:
    # (751 * 2**9) >> 12 = 93 (93.875 floored).
    features = 2 * 1 + 5
    w1 = np.zeros(features, np.int16)
    w1[0] = 3
    net = (1, 1, 3, w1, np.zeros(1, np.int32), np.array([5], np.int16), 8)
    e = np.array([100, 0], np.int64)
    s = np.array([0, 0], np.int64)
    for impl in (c_impl, py_impl):
        out = np.empty_like(e)
        impl.model_residual(e, s, None, 16, 5, net, out)
        assert out[1] == 0 - 93


def test_model_files_round_trip_through_the_grammar():
    data = random_model(3)
    parsed = model_grammar.ModelFile.parse(data)
    assert model_grammar.ModelFile.build(parsed) == data
    model = load_model(data)
    assert model.sha256 == hashlib.sha256(data).digest()
    assert model.features == 2 * 4 + 5 and model.latent_offset == 8


def _edit(data: bytes, **changes) -> bytes:
    parsed = model_grammar.ModelFile.parse(data)
    for key, value in changes.items():
        parsed[key] = value
    return model_grammar.ModelFile.build(parsed)


@pytest.mark.parametrize("make, message", [
    (lambda d: b"VAEMODEX" + d[8:], "not a valid model file"),
    (lambda d: _edit(d, format_version=2), "format_version 2"),
    (lambda d: _edit(d, kind=7), "kind 7 is reserved"),
    (lambda d: d + b"\0", "not a valid model file"),
    (lambda d: d[:-1], "not a valid model file"),
    (lambda d: _edit(d, prior=bytes(len(model_grammar.ModelFile.parse(d).prior))),
     "prior probability is 0"),
    (lambda d: random_model(1, wmax=8192 * 3), "a weight exceeds 8191"),
    (lambda d: random_model(1, hidden=113), "fan-in 113"),
])
def test_invalid_model_files_are_model_errors(make, message):
    with pytest.raises(vaelac.ModelError, match=message):
        load_model(make(random_model(1)))


def _forced_model_stream(pcm, model, monkeypatch, **options):
    """Encode with every predicted subframe coded MODEL_PREDICTED (whatever it costs), at the
    strongest level without CASCADE subframes (which the inflated cost would make win)."""
    options.setdefault("level", 4)
    original = encoder_module._ChannelAnalysis.predicted_bests

    def inflated(self):
        return [dataclasses.replace(best, cost=best.cost + (10**5 << 19))
                for best in original(self)]

    monkeypatch.setattr(encoder_module._ChannelAnalysis, "predicted_bests", inflated)
    buf = io.BytesIO()
    enc = vaelac.StreamEncoder(buf, 44100, pcm.shape[1], options.pop("bits", 16), model=model,
                               **options)
    enc.write(pcm)
    enc.close()
    monkeypatch.undo()
    return buf.getvalue()


def _subframe_types(stream):
    dec = vaelac.StreamDecoder(io.BytesIO(stream))
    dec.keep_frame_infos = True
    for _ in dec:
        pass
    return {t for f in dec.frames for t in f.subframe_types}


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 1000), kind=st.sampled_from(["walk", "sine", "chirp", "clipped"]),
       channels=st.integers(1, 3), n=st.integers(300, 3000), bits=st.sampled_from([12, 16, 24]))
def test_streams_with_model_subframes_decode_exactly(seed, kind, channels, n, bits):
    model = load_model(random_model(seed % 7, wmax=64, bmax=64))  # mild: beats VERBATIM
    pcm = make_signal(kind, n, channels, bits, seed=seed)
    with pytest.MonkeyPatch.context() as mp:
        stream = _forced_model_stream(pcm, model, mp, bits=bits, frame_length=1024)
    assert 64 in _subframe_types(stream)
    out, info = vaelac.decode(stream, always_2d=True)
    assert np.array_equal(out, pcm)
    assert info.model_sha256 == model.sha256


def test_a_stream_naming_a_missing_model_fails_naming_it(monkeypatch):
    model = load_model(random_model(5, name="elsewhere"))
    pcm = make_signal("walk", 3000, 2, 16, seed=1)
    stream = _forced_model_stream(pcm, model, monkeypatch, embed_model=False)
    with pytest.raises(vaelac.ModelError, match=f"'elsewhere'.*{model.sha256.hex()}"):
        vaelac.decode(stream)
    embedded = _forced_model_stream(pcm, model, monkeypatch, embed_model=True)
    assert np.array_equal(vaelac.decode(embedded)[0], pcm)


def test_model_data_whose_hash_differs_from_model_ref_is_not_used(monkeypatch):
    model = load_model(random_model(5, name="named"))
    other = random_model(6, name="other")
    pcm = make_signal("walk", 3000, 1, 16, seed=1)
    stream = _forced_model_stream(pcm, model, monkeypatch, embed_model=True)
    swapped = reseal(stream.replace(model.data, other))  # same length: another model's bytes
    with pytest.raises(vaelac.ModelError, match="'named'"):
        vaelac.decode(swapped)


def test_model_subframes_without_model_ref_are_a_format_error(monkeypatch):
    model = load_model(random_model(5))
    pcm = make_signal("walk", 3000, 1, 16, seed=1)
    stream = _forced_model_stream(pcm, model, monkeypatch, embed_model=False)
    ref = grammar.ModelRef.build(dict(sha256=model.sha256, name=model.name))
    padding = grammar.BlockHeader.build(dict(is_last=0, block_type=BlockType.PADDING,
                                             length=len(ref)))
    header = grammar.BlockHeader.build(dict(is_last=0, block_type=BlockType.MODEL_REF,
                                            length=len(ref)))
    assert header + ref in stream
    no_ref = reseal(stream.replace(header + ref, padding + bytes(len(ref))))
    with pytest.raises(vaelac.FormatError, match="without MODEL_REF"):
        vaelac.decode(no_ref)


def test_a_lossy_model_cannot_decode_model_predicted_subframes(monkeypatch):
    lossy = load_model(random_model(2, kind=ModelKind.LOSSY, levels=6, block=32, history=0))
    residual = load_model(random_model(2))
    pcm = make_signal("walk", 3000, 1, 16, seed=1)
    stream = _forced_model_stream(pcm, residual, monkeypatch, embed_model=True)
    wrong = reseal(stream.replace(residual.sha256, lossy.sha256)
                   .replace(residual.data[:64], b"x" * 64))
    embedded = {lossy.sha256: lossy.data}
    with pytest.raises(vaelac.ModelError):
        from vaelac.model import find_model
        assert find_model(lossy.sha256, "x", embedded).kind == ModelKind.LOSSY
        vaelac.decode(wrong)


def test_the_encoder_never_pays_for_a_model_that_does_not_help():
    # A random model corrects badly: every subframe stays PREDICTED and the file is larger
    # than the plain path only by the MODEL_REF block (and MODEL_DATA when embedded).
    model = load_model(random_model(9))
    pcm = make_signal("sine", 20000, 2, 16, seed=3)
    plain = vaelac.encode(pcm, 44100, bits=16, model=None)
    buf = io.BytesIO()
    enc = vaelac.StreamEncoder(buf, 44100, 2, 16, model=model, embed_model=False,
                               total_samples=len(pcm))
    enc.write(pcm)
    enc.close()
    ref = 4 + 32 + 1 + len(model.name)
    assert len(buf.getvalue()) <= len(plain) + ref
    assert 64 not in _subframe_types(buf.getvalue())


def test_the_decoder_imports_no_torch_for_model_streams(tmp_path, monkeypatch):
    import subprocess
    import sys

    model = load_model(random_model(4))
    pcm = make_signal("walk", 5000, 2, 16, seed=2)
    path = tmp_path / "m.vae"
    path.write_bytes(_forced_model_stream(pcm, model, monkeypatch, embed_model=True))
    code = ("import sys, vaelac; vaelac.read(sys.argv[1]); "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code, str(path)], check=True)


@pytest.mark.parametrize("kind, bits, wasted", [("walk", 16, 0), ("walk", 24, 8),
                                                 ("noise", 24, 0)])
def test_the_command_line_decoder_imports_no_numpy(tmp_path, monkeypatch, kind, bits, wasted):
    """vaelac decode and vaelac test run on the kernels and stdlib arrays alone (numpy's import
    would be a tenth of a second of every call): model subframes where the model pays, plain
    ones with wasted bits, VERBATIM ones for noise, and every stereo mode the encoder picks."""
    import subprocess
    import sys

    from vaelac.spec.constants import SubframeType
    from vaelac.wav import read_wav

    pcm = make_signal(kind, 9000, 2, bits - wasted, seed=bits) << wasted
    path, out = tmp_path / "m.vae", tmp_path / "m.wav"
    if wasted or kind == "noise":
        path.write_bytes(vaelac.encode(pcm, 44100, bits=bits, model=None))
    else:
        model = load_model(random_model(4))
        path.write_bytes(_forced_model_stream(pcm, model, monkeypatch, embed_model=True))
    expected = {"noise": SubframeType.VERBATIM}.get(
        kind, SubframeType.PREDICTED if wasted else SubframeType.MODEL_PREDICTED)
    assert expected in _subframe_types(path.read_bytes())
    code = ("import sys; from vaelac.cli import main; "
            "assert main(['decode', sys.argv[1], '-o', sys.argv[2]]) == 0; "
            "assert main(['test', sys.argv[1]]) == 0; "
            "assert 'numpy' not in sys.modules, 'numpy imported'")
    subprocess.run([sys.executable, "-c", code, str(path), str(out)], check=True)
    decoded, fmt = read_wav(out)
    assert fmt.bits_per_sample == bits and np.array_equal(decoded, pcm)


@pytest.mark.skipif(default_model() is None, reason="no default model shipped")
def test_the_shipped_model_is_valid_and_records_how_it_was_trained():
    model = default_model()
    record = json.loads(model.description)
    assert record["command"].startswith("vaelac train")
    assert record["hyperparameters"]["epochs"] >= 1
    assert model.kind == ModelKind.RESIDUAL
    assert len(model.data) < 1 << 20


@pytest.mark.skipif(default_model() is None, reason="no default model shipped")
@settings(max_examples=20, deadline=None)
@given(start=st.integers(0, 200000), n=st.integers(0, 12000), gain=st.integers(-3, 3),
       channels=st.sampled_from([1, 2]), bits=st.sampled_from([16, 24]))
def test_real_audio_with_the_shipped_model_round_trips_exactly(start, n, gain, channels, bits):
    from vaelac.wav import read_wav

    demo, _ = read_wav(_DEMO)
    pcm = demo[start:start + n, :channels].astype(np.int64) << (bits - 16)
    pcm = pcm << gain if gain > 0 else pcm >> -gain
    pcm = np.clip(pcm, -(1 << (bits - 1)), (1 << (bits - 1)) - 1)
    stream = vaelac.encode(pcm, 44100, bits=bits)
    out, info = vaelac.decode(stream, always_2d=True)
    assert np.array_equal(out, pcm)
    # the default keeps level 4's stream (no network) where it is smaller (issue 19)
    assert info.model_name == default_model().name or stream == vaelac.encode(
        pcm, 44100, bits=bits, level=4)


@pytest.mark.skipif(default_model() is None, reason="no default model shipped")
def test_the_shipped_model_never_costs_more_than_its_reference():
    from vaelac.wav import read_wav

    demo, _ = read_wav(_DEMO)
    with_model = vaelac.encode(demo, 44100)
    plain = vaelac.encode(demo, 44100, model=None)
    reference = 4 + 32 + 1 + len(default_model().name)
    assert len(with_model) <= len(plain) + reference
    assert np.array_equal(vaelac.decode(with_model)[0], demo)


@pytest.mark.skipif(default_model() is None, reason="no default model shipped")
def test_the_shipped_model_makes_real_speech_smaller(corpus_dir):
    from vaelac.wav import read_wav

    files = sorted(corpus_dir.glob("ast_en_*.wav"))[:4]
    if not files:
        pytest.skip("no telephone speech in the corpus")
    plain = modelled = 0
    for path in files:
        pcm, fmt = read_wav(path)
        # the plain levels use no network unless given one (README "Levels")
        stream = vaelac.encode(pcm, fmt.sample_rate, bits=fmt.bits_per_sample, level=4,
                               model=default_model())
        assert np.array_equal(vaelac.decode(stream, always_2d=True)[0], pcm)
        assert 64 in _subframe_types(stream)
        modelled += len(stream)
        plain += len(vaelac.encode(pcm, fmt.sample_rate, bits=fmt.bits_per_sample, model=None,
                                   level=4))
    assert modelled < 0.99 * plain  # measured: 3 to 4 % smaller on these files


_DEMO = __import__("pathlib").Path(vaelac.__file__).parent / "data" / "demo.wav"


def test_a_lossy_frame_that_would_outgrow_verbatim_is_coded_verbatim():
    """§5.1: an encoder never writes a payload over the limit. At 2 bits per sample the
    shipped lossy model's latents cost more than the samples, so each channel goes VERBATIM
    (exact), and the stream still decodes to what its MD5 says."""
    lossy = default_model(ModelKind.LOSSY)
    if lossy is None:
        pytest.skip("no shipped lossy model")
    rng = np.random.default_rng(5)
    pcm = rng.integers(-2, 2, size=(3000, 2)).astype(np.int32)
    buf = io.BytesIO()
    with vaelac.StreamEncoder(buf, 8000, 2, 2, lossy=lossy, total_samples=len(pcm)) as enc:
        enc.write(pcm)
    decoder = vaelac.StreamDecoder(io.BytesIO(buf.getvalue()))
    decoder.keep_frame_infos = True
    out = np.concatenate(list(decoder))
    assert decoder.info.lossy
    assert np.array_equal(out, pcm)  # every subframe VERBATIM: nothing was lost
    assert all(set(f.subframe_types) == {1} for f in decoder.frames)


def _block_names(stream):
    return [b[0] for b in vaelac.info(io.BytesIO(stream)).blocks]


def _encoded(pcm, model, level, pipe=False, **options):
    from _signals import Pipe
    out = Pipe() if pipe else io.BytesIO()
    enc = vaelac.StreamEncoder(out, 44100, pcm.shape[1], 16, level=level, model=model,
                               total_samples=None if pipe else len(pcm), **options)
    for at in range(0, len(pcm), 7000):
        enc.write(pcm[at:at + 7000])
    enc.close()
    return bytes(out.out) if pipe else out.getvalue()


@pytest.mark.parametrize("level", [0, 5])
@pytest.mark.parametrize("pipe", [False, True])
def test_a_user_model_no_subframe_uses_is_not_embedded(tmp_path, level, pipe):
    # Issue 21 item 5: `vaelac encode -0 -m my.vaem` embedded the 11.5 KB model although no
    # subframe used it. A model that does not pay costs its MODEL_REF only (4 + 33 + name).
    path = tmp_path / "poor.vaem"
    path.write_bytes(random_model(9, name="poor"))  # corrects badly: never chosen
    pcm = make_signal("sine", 20000, 2, 16, seed=3)
    plain = _encoded(pcm, None, level, pipe)
    stream = _encoded(pcm, str(path), level, pipe)
    assert 64 not in _subframe_types(stream)
    assert _block_names(stream).count("MODEL_REF") == 1
    assert "MODEL_DATA" not in _block_names(stream)
    assert len(stream) == len(plain) + 4 + 32 + 1 + len("poor")
    assert np.array_equal(vaelac.decode(stream, always_2d=True)[0], pcm)
    # asked for, it is embedded all the same
    forced = _encoded(pcm, str(path), level, pipe, embed_model=True)
    assert "MODEL_DATA" in _block_names(forced)


@pytest.mark.skipif(default_model() is None, reason="no default model shipped")
@pytest.mark.parametrize("pipe", [False, True])
def test_a_user_model_a_subframe_uses_is_embedded(tmp_path, pipe):
    from vaelac.model import find_model
    from vaelac.wav import read_wav

    parsed = model_grammar.ModelFile.parse(default_model().data)
    parsed.name = "own"  # the shipped weights under another name: a model vaelac lacks
    path = tmp_path / "own.vaem"
    path.write_bytes(model_grammar.ModelFile.build(parsed))
    demo, _ = read_wav(_DEMO)
    pcm = demo[: 4 * 44100].astype(np.int64)
    stream = _encoded(pcm, str(path), 0, pipe)
    assert 64 in _subframe_types(stream)  # measured: the model pays at level 0 here
    assert _block_names(stream).count("MODEL_DATA") == 1
    info = vaelac.info(io.BytesIO(stream))
    with pytest.raises(vaelac.ModelError):  # not installed: the stream carries it
        find_model(info.model_sha256, info.model_name)
    assert np.array_equal(vaelac.decode(stream, always_2d=True)[0], pcm)
    if not pipe:
        assert info.pcm_md5 == vaelac.decode(vaelac.encode(pcm, 44100, bits=16))[1].pcm_md5
