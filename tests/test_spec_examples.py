"""The worked examples of spec/vae-format.md Appendix A, checked against independent computations
(hashlib, zlib, a CRC-8 written here, and the §6.3 formula written out) — not the decoder."""

import hashlib
import zlib
from pathlib import Path

import numpy as np

import vaelac

SPEC = (Path(__file__).resolve().parents[1] / "spec" / "vae-format.md").read_text()


def crc8(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def test_crc_check_values_of_appendix_a1():
    assert crc8(b"123456789") == 0xF4
    assert zlib.crc32(b"123456789") == 0xCBF43926
    assert "0xF4" in SPEC and "0xCBF43926" in SPEC


A2 = bytes.fromhex(
    "89564145 0D0A1A0A 0105 00000028 00001F40 02100000 00001000 0000000000000005 00000000"
    "6DDD9EBF6B6FDEFCF1B6EA3C7BD0B519 02000014 00000001 0000000000000000 0000000000000000"
    "86000004 2BF7EFB5 FFF9 00000000 0005 00 00000020 31 0100 0000000A 00000001000300 02FFFF"
    "010000 00000A 0000FFFFFFFE00020000 81A994E9".replace(" ", ""))


def test_appendix_a2_stereo_verbatim_stream_byte_by_byte():
    pcm = np.array([[0, 0], [1, -1], [3, -2], [2, 2], [-1, 0]], np.int16)
    stream = vaelac.encode(pcm, 8000, model=None, level=4)
    assert stream == A2
    image = b"".join(int(v).to_bytes(2, "little", signed=True) for v in pcm.reshape(-1))
    assert image.hex() == "00000000010 0ffff0300feff02000200ffff0000".replace(" ", "")
    assert stream[38:54] == hashlib.md5(image).digest()
    assert int.from_bytes(stream[82:86], "big") == zlib.crc32(stream[:82])  # §4.7
    assert stream[99] == crc8(stream[86:99])
    assert int.from_bytes(stream[132:136], "big") == zlib.crc32(stream[86:132])
    assert [int.from_bytes(stream[106 + 2 * i:108 + 2 * i], "big", signed=True)
            for i in range(5)] == [0, 1, 3, 2, -1]


A3_FRAME = bytes.fromhex(
    "FFF9 00000000 0014 00 00000027 93 0200 030E0B06 4D86EE0168C0 00000017"
    "000091D7569DBF36B1ED9D938BCA2059E1646D7F6D096C C711FAE5".replace(" ", ""))


def test_appendix_a3_predicted_frame_and_its_arithmetic():
    x = np.arange(0, 2000, 100, dtype=np.int16)
    x[16] = 1601
    stream = vaelac.encode(x, 8000, model=None, level=4)
    assert len(stream) == 143 and stream[86:] == A3_FRAME
    frame = A3_FRAME
    assert frame[13] == crc8(frame[:13])
    assert int.from_bytes(frame[-4:], "big") == zlib.crc32(frame[:-4])
    bits = bin(int.from_bytes(frame[20:26], "big"))[2:].zfill(48)
    coefs = [int(bits[14 * i:14 * i + 14], 2) for i in range(3)]
    coefs = [c - (1 << 14) if c >= 1 << 13 else c for c in coefs]
    assert coefs == [4961, -4384, 1443] and bits[42:] == "000000"
    residuals = [0, 100, 0, 30, 31, 33, 34, 36, 37, 38, 40, 41, 42, 44, 45, 46, 49, 47, 53, 51]
    s: list[int] = []
    for i, e in enumerate(residuals):  # §6.3 written out
        if i == 0:
            pred = 0
        elif i == 1:
            pred = s[0]
        elif i < 3:
            pred = 2 * s[i - 1] - s[i - 2]
        else:
            pred = sum(coefs[j] * s[i - 1 - j] for j in range(3)) >> 11
        s.append(e + pred)
    assert s == x.tolist()
    for text in ("4961, -4384, 1443", "0, 100, 0, 30, 31, 33", "C7 11 FA E5", "93 "):
        assert text in SPEC
    # the 86 header bytes the spec lists, the MD5 and the metadata CRC computed here
    md5 = hashlib.md5(x.astype("<i2").tobytes()).hexdigest().upper()
    assert stream[38:54].hex().upper() == md5
    assert int.from_bytes(stream[82:86], "big") == zlib.crc32(stream[:82])
    listed = SPEC[SPEC.index("### A.3"):SPEC.index("and its frame at offset 86 is:")]
    listed = listed[listed.index("```"):]
    lines = [line for line in listed.splitlines()[1:] if line and not line.startswith("`")]
    tokens = " ".join(line.split("  ")[0] for line in lines)
    tokens = tokens.replace("|", " ").split()
    hex_bytes: list[str] = []
    for k, token in enumerate(tokens):  # "00 × 16" is sixteen zero bytes
        if token == "×":
            hex_bytes += [hex_bytes[-1]] * (int(tokens[k + 1]) - 1)
        elif k == 0 or tokens[k - 1] != "×":
            hex_bytes.append(token)
    assert bytes.fromhex("".join(hex_bytes)) == stream[:86]


def test_the_well_known_models_table_names_the_shipped_files():
    """§8.7 lists each shipped model's size and SHA-256; the files must be exactly those."""
    import re

    root = Path(__file__).resolve().parents[1]
    section = SPEC[SPEC.index("### 8.7 Well-known models"):SPEC.index("## 9. Decoder errors")]
    rows = re.findall(r"\| `([\w-]+)` \| \w+ [^|]*\| ([\d ]+) \| `([0-9a-f]{64})` \|", section)
    shipped = sorted((root / "reference" / "data" / "models").glob("*.vaem"))
    assert sorted(name for name, _, _ in rows) == [p.stem for p in shipped]
    for name, size, digest in rows:
        data = (root / "reference" / "data" / "models" / f"{name}.vaem").read_bytes()
        assert len(data) == int(size.replace(" ", ""))
        assert hashlib.sha256(data).hexdigest() == digest


def test_appendix_a5_cascade_stages():
    """The two tables of Appendix A.5, computed by hand from §6.4's pseudo-code."""
    from vaelac import _kernels, _pykernels

    assert "coded residuals `100, -50, -7, -17, 22, -16`" in SPEC
    assert "coded residuals `100, -40, 15, 25, 12, -10`" in SPEC
    assert "coded residuals `40, -10, 20, 70, -12, -30`" in SPEC
    r = np.array([100, -50, 30, 20, 7, -1], np.int64)
    cross = np.array([10, -20, 5, 0, -3, 8], np.int64)
    r_scaled = np.array([40, -10, 30, 5, -20, 12], np.int64)
    cases = [(r, None, [0, 0, 0, 2, 2, 3, 0], [100, -50, -7, -17, 22, -16]),
             (r, cross, [2, 1, 1], [100, -40, 15, 25, 12, -10]),
             (r_scaled, None, [0, 0, 0, 3, 2, 1, 1], [40, -10, 20, 70, -12, -30])]
    for impl in (_kernels, _pykernels):
        for residual, other, params, coded in cases:
            e = residual.copy()
            impl.cascade(e, other, np.array(params, np.int32), False)
            assert e.tolist() == coded
            impl.cascade(e, other, np.array(params, np.int32), True)
            assert e.tolist() == residual.tolist()


def test_appendix_a6_mixer():
    """The table of Appendix A.6, computed by hand from §6.5's pseudo-code."""
    from vaelac import _kernels, _pykernels

    assert "coded residuals `100, -50, -7, -7, 15, -4`" in SPEC
    assert "coded residuals `100, -51, -7, -6, 17, -3`" in SPEC
    r = np.array([100, -50, 30, 20, 7, -1], np.int64)
    params = np.array([0, 0, 0, 2, 2, 3, 0], np.int32)
    for impl in (_kernels, _pykernels):
        for mix, coded in (((2, 1, 0), [100, -50, -7, -7, 15, -4]),
                           ((2, 1, 3), [100, -51, -7, -6, 17, -3])):
            e = r.copy()
            impl.cascade(e, None, params, False, mix)
            assert e.tolist() == coded
            impl.cascade(e, None, params, True, mix)
            assert e.tolist() == r.tolist()


def test_appendix_a7_ols():
    """Appendix A.7, computed by hand from §6.6: both kernels give its residuals and invert
    them; the one-tap solve is recomputed here from F and ÷ as §6.6 writes them."""
    from vaelac import _kernels, _pykernels

    assert "Residuals `5, 10, 20, 40, 80, 160, 320, 640, 0, 0`" in SPEC
    assert "`w[0] = 22369557`" in SPEC and "427 and 853" in SPEC

    def F(x, e):  # §6.6's normalisation, for x > 0
        k = x.bit_length() - 31
        return (x >> k if k > 0 else x << -k), e + k

    for ridge, weight in ((62, 33554145), (1, 22369557)):
        d = F(117029 + (117029 >> ridge) + 1, 0)
        z = F(234058, 0)
        m, e = F((z[0] << 31) // d[0], z[1] - d[1] - 31)
        assert (m >> -(e + 24)) == weight
    s = np.array([5 * 2**t for t in range(10)], np.int64)
    for ridge, residuals in ((62, [5, 10, 20, 40, 80, 160, 320, 640, 0, 0]),
                             (1, [5, 10, 20, 40, 80, 160, 320, 640, 427, 853])):
        params = np.array([1, 0, 0, 1, ridge, 3], np.int32)
        for impl in (_kernels, _pykernels):
            r = s.copy()
            assert impl.ols(r, None, params, False) == -1
            assert r.tolist() == residuals
            assert impl.ols(r, None, params, True, -2**15, 2**15 - 1) == -1
            assert r.tolist() == s.tolist()
