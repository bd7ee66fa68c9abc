"""The construct grammar parses what it builds and builds what it parses (spec §3–§5)."""

from hypothesis import given
from hypothesis import strategies as st

from vaelac.spec import container as g

FRAME_HEADER, SUBFRAME = g.FrameHeader.compile(), g.Subframe.compile()
u8, u16, u32 = st.integers(0, 255), st.integers(0, 2**16 - 1), st.integers(0, 2**32 - 1)
u64 = st.integers(0, 2**64 - 1)
text = st.text(max_size=20)


def common(struct, value):
    data = struct.build(value)
    parsed = struct.parse(data)
    assert struct.build(parsed) == data
    for key, item in value.items():
        assert parsed[key] == item if not isinstance(item, dict) else True
    return data


@given(st.fixed_dictionaries(dict(version_major=u8, version_minor=u8)))
def test_file_head(value):
    assert common(g.FileHead, value)[:8] == b"\x89VAE\r\n\x1a\n"


@given(st.fixed_dictionaries(dict(is_last=st.integers(0, 1), block_type=st.integers(0, 127),
                                  length=st.integers(0, 2**24 - 1))))
def test_block_header_packs_into_four_bytes(value):
    data = common(g.BlockHeader, value)
    assert len(data) == 4 and data[0] >> 7 == value["is_last"]
    assert int.from_bytes(data[1:], "big") == value["length"]


@given(st.fixed_dictionaries(dict(sample_rate=u32, channels=u8, bits_per_sample=u8, flags=u8,
                                  reserved=u8, frame_length=u32, total_samples=u64,
                                  channel_mask=u32, pcm_md5=st.binary(min_size=16, max_size=16))))
def test_stream_info_is_forty_bytes(value):
    assert len(common(g.StreamInfo, value)) == 40 == g.StreamInfo.sizeof()


@given(st.lists(st.fixed_dictionaries(dict(sample_number=u64, byte_offset=u64)), max_size=5))
def test_seek_table(points):
    data = g.SeekTable.build(points)
    assert len(data) == 4 + 16 * len(points)
    assert [(p.sample_number, p.byte_offset) for p in g.SeekTable.parse(data)] == [
        (p["sample_number"], p["byte_offset"]) for p in points]


@given(vendor=text, comments=st.lists(text, max_size=4))
def test_tags(vendor, comments):
    parsed = g.Tags.parse(g.Tags.build(dict(vendor=vendor, comments=comments)))
    assert parsed.vendor == vendor and list(parsed.comments) == comments


@given(st.fixed_dictionaries(dict(sha256=st.binary(min_size=32, max_size=32),
                                  name=st.text(max_size=40).filter(
                                      lambda s: len(s.encode()) < 256))))
def test_model_ref(value):
    common(g.ModelRef, value)


@given(st.fixed_dictionaries(dict(sync=u16, frame_index=u32, sample_count=u16, channel_mode=u8,
                                  payload_length=u32, header_crc8=u8)))
def test_frame_header_is_fourteen_bytes_and_compiles_identically(value):
    data = common(g.FrameHeader, value)
    assert len(data) == 14
    assert FRAME_HEADER.parse(data) == g.FrameHeader.parse(data)


subframes = st.one_of(
    st.builds(lambda v: dict(subframe_type=0, wasted_bits=0, body=dict(value=v)),
              st.integers(-2**63, 2**63 - 1)),
    st.builds(lambda w, d: dict(subframe_type=1, wasted_bits=w,
                                body=dict(data_length=len(d), data=d)), u8, st.binary()),
    st.builds(lambda o, cb, sh, m, d, seed: dict(
        subframe_type=2, wasted_bits=0,
        body=dict(order=o, coef_bits=cb, shift=sh, initial_mean_log2=m,
                  coefs=bytes((seed + i) % 256 for i in range((o * cb + 7) // 8)),
                  data_length=len(d), data=d)),
        st.integers(1, 32), st.integers(1, 16), st.integers(0, 31), st.integers(0, 55),
        st.binary(max_size=50), u8),
)


@given(subframes)
def test_subframes_round_trip_and_compile_identically(value):
    data = g.Subframe.build(value)
    parsed = g.Subframe.parse(data)
    assert g.Subframe.build(parsed) == data
    assert SUBFRAME.parse(data) == parsed
    if value["subframe_type"] == 2:
        assert len(parsed.body.coefs) == (value["body"]["order"] * value["body"]["coef_bits"]
                                          + 7) // 8
