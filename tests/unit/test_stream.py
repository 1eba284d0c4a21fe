"""SLIP framing of frames on a byte stream: round trips through any chunking, after any line
noise, byte by byte; garbage never raises and never grows the buffer past its bound."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vigil.wire.frame import MAX_FRAME
from vigil.wire.stream import END, ESC, ESC_END, ESC_ESC, Decoder, airtime, encode

BOUND = 2 * MAX_FRAME
# Frames rich in the two special bytes, so escaping is exercised more than uniform bytes would.
special = st.sampled_from([END, ESC, ESC_END, ESC_ESC, 0x00])
frame_bytes = st.lists(st.one_of(special, st.integers(0, 255)), min_size=1, max_size=MAX_FRAME)
frames_st = st.lists(frame_bytes.map(bytes), min_size=1, max_size=8)


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)])]


def feed_all(decoder: Decoder, chunks: list[bytes]) -> list[bytes]:
    out: list[bytes] = []
    for chunk in chunks:
        out += decoder.feed(chunk)
        assert decoder.buffered <= BOUND
    return out


@settings(max_examples=200)
@given(frames_st, st.lists(st.integers(0, 20000), max_size=20))
def test_round_trip_through_any_chunking(frames: list[bytes], cuts: list[int]) -> None:
    data = b"".join(encode(f) for f in frames)
    decoder = Decoder()
    assert feed_all(decoder, split(data, cuts)) == frames
    assert decoder.discarded == 0 and decoder.buffered == 0


@settings(max_examples=200)
@given(st.binary(max_size=4 * MAX_FRAME), frames_st, st.lists(st.integers(0, 20000), max_size=20))
def test_frames_after_line_noise_arrive_whole(noise: bytes, frames: list[bytes],
                                              cuts: list[int]) -> None:
    # Noise may itself decode as junk frames (authentication rejects those), but the first END
    # of the first real frame resynchronises: the real frames come out last, whole, in order.
    decoder = Decoder()
    out = feed_all(decoder, split(noise + b"".join(encode(f) for f in frames), cuts))
    assert out[len(out) - len(frames):] == frames
    assert all(0 < len(f) <= MAX_FRAME for f in out)


def test_byte_by_byte() -> None:
    frame = bytes([END, ESC, ESC_END, ESC_ESC, 1, END])
    decoder = Decoder()
    data = encode(frame)
    for b in data[:-1]:
        assert decoder.feed(bytes([b])) == []
    assert decoder.feed(data[-1:]) == [frame]


def test_encoding_escapes_exactly_the_special_bytes() -> None:
    assert encode(b"a\xc0b\xdbc") == b"\xc0a\xdb\xdcb\xdb\xddc\xc0"
    assert encode(b"\xdb\xdc") == b"\xc0\xdb\xdd\xdc\xc0"


@pytest.mark.parametrize("frame", [b"", bytes(MAX_FRAME + 1)])
def test_encode_refuses_empty_and_oversized(frame: bytes) -> None:
    with pytest.raises(ValueError):
        encode(frame)


@settings(max_examples=300)
@given(st.lists(st.binary(max_size=3000), max_size=10))
def test_garbage_never_raises_and_stays_bounded(chunks: list[bytes]) -> None:
    decoder = Decoder()
    for f in feed_all(decoder, chunks):
        assert 0 < len(f) <= MAX_FRAME


@given(st.lists(st.sampled_from([b"\xc0", b"\xdb", b"\xdc", b"\xdd", b"x"]), max_size=200))
def test_garbage_of_special_bytes_never_raises(chunks: list[bytes]) -> None:
    feed_all(Decoder(), chunks)


def test_oversized_frame_dropped_and_next_frame_decoded() -> None:
    decoder = Decoder()
    # 10 times the bound without an END: memory stays bounded while it streams in.
    huge = bytes([0x41]) * (10 * BOUND)
    assert feed_all(decoder, [b"\xc0"] + [huge[i:i + 1000] for i in range(0, len(huge), 1000)]) \
        == []
    assert decoder.feed(encode(b"next")) == [b"next"]
    assert decoder.discarded == 1


def test_frame_just_over_max_dropped_even_when_escaped_length_fits() -> None:
    decoder = Decoder()
    # MAX_FRAME + 1 plain bytes: within the escaped bound, so caught only after unescaping.
    assert decoder.feed(b"\xc0" + b"A" * (MAX_FRAME + 1) + b"\xc0" + encode(b"ok")) == [b"ok"]
    assert decoder.discarded == 1
    # MAX_FRAME bytes all escaped is exactly at the bound and still a frame.
    full = bytes([END]) * MAX_FRAME
    assert decoder.feed(encode(full)) == [full]


@pytest.mark.parametrize("bad", [b"\xdb\x41", b"a\xdb", b"\xdb\xdb\xdc", b"\xdb"])
def test_invalid_escape_dropped(bad: bytes) -> None:
    decoder = Decoder()
    assert decoder.feed(b"\xc0" + bad + b"\xc0" + encode(b"after")) == [b"after"]
    assert decoder.discarded == 1


def test_empty_frames_are_not_counted() -> None:
    decoder = Decoder()
    assert decoder.feed(b"\xc0\xc0\xc0" + encode(b"x") + encode(b"y")) == [b"x", b"y"]
    assert decoder.discarded == 0


def test_airtime() -> None:
    # 1400 bytes all escaped + 2 ENDs = 2802 bytes = 28020 bits at 10 bits a byte.
    assert airtime(1400, 19200) == pytest.approx(1.459375)
    assert airtime(100, 115200) == pytest.approx(2020 / 115200)
    # The worst case is what encode really produces for a frame of special bytes.
    assert len(encode(bytes([END]) * 1400)) * 10 / 19200 == airtime(1400, 19200)
