"""The API from many threads at once (the C kernels release the GIL, so they really overlap):
every call gives what it gives alone, errors stay in their own thread, files stay whole."""

import io
from concurrent.futures import ThreadPoolExecutor

import numpy as np

import vaelac
from vaelac.decoder import StreamDecoder
from _signals import make_signal


def test_mixed_api_calls_from_eight_threads(tmp_path):
    signals = [make_signal(kind, 12000 + 331 * i, 1 + i % 3, 16 if i % 2 else 24, seed=i)
               for i, kind in enumerate(["walk", "sine", "noise", "chirp"] * 3)]
    bits = [16 if i % 2 else 24 for i in range(len(signals))]
    streams = [vaelac.encode(x, 44100, bits=b) for x, b in zip(signals, bits)]  # one thread

    def job(i):
        x, b, s = signals[i], bits[i], streams[i]
        path = tmp_path / f"{i}.vae"
        vaelac.write(path, x, 44100, bits=b)
        assert path.read_bytes() == s  # the same bytes as when encoded alone
        assert np.array_equal(vaelac.read(path, always_2d=True)[0], x)
        assert np.array_equal(np.concatenate(list(vaelac.blocks(path, 1000, always_2d=True))), x)
        assert vaelac.info(path).total_samples == len(x)
        assert vaelac.encode(x, 44100, bits=b) == s
        damaged = bytearray(s)
        damaged[len(s) // 2] ^= 0x08
        try:
            vaelac.decode(bytes(damaged))
            raise AssertionError("damage not detected")
        except vaelac.IntegrityError:
            pass
        dec = StreamDecoder(io.BytesIO(bytes(damaged)), keep_going=True)
        out = np.concatenate(list(dec))
        assert out.shape == x.shape and len(dec.damage) == 1
        return i

    with ThreadPoolExecutor(8) as pool:
        for _ in range(2):
            assert sorted(pool.map(job, range(len(signals)))) == list(range(len(signals)))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        f"{i}.vae" for i in range(len(signals)))  # no .part left by any thread
