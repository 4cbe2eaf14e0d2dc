"""The host's frame decoder: resynchronises after garbage and cut frames."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from hil.wire import frames


def _tel(seq: int) -> bytes:
    payload = frames.TELEMETRY_FMT.pack(
        seq, 1000 * seq, 2, 0, 0, 0, 0, 3000, 2995, 100, 10, 3900, 2000, 3200
    )
    return frames.encode(frames.T_TELEMETRY, payload)


def test_clean_stream() -> None:
    d = frames.Decoder()
    got, text = d.feed(b"".join(_tel(i) for i in range(10)))
    assert [frames.telemetry(f.payload).seq for f in got] == list(range(10))
    assert text == b""


def test_text_between_frames_is_kept_apart() -> None:
    d = frames.Decoder()
    got, text = d.feed(_tel(1) + b"Traceback (most recent call last):\n" + _tel(2))
    assert len(got) == 2
    assert b"Traceback" in text


def test_a_corrupt_frame_is_dropped_and_the_next_one_read() -> None:
    bad = bytearray(_tel(1))
    bad[10] ^= 0xFF
    d = frames.Decoder()
    got, _ = d.feed(bytes(bad) + _tel(2))
    assert [frames.telemetry(f.payload).seq for f in got] == [2]
    assert d.stats.bad_crc == 1


def test_a_frame_split_across_reads() -> None:
    data = _tel(1) + _tel(2)
    d = frames.Decoder()
    first, _ = d.feed(data[:17])
    second, _ = d.feed(data[17:])
    assert len(first) == 0 and len(second) == 2


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.binary(max_size=300), st.integers(min_value=0, max_value=40))
def test_resyncs_after_any_garbage(garbage: bytes, cut: int) -> None:
    """Whatever precedes them, whole frames after the garbage are all decoded."""
    head = _tel(99)[:cut]  # a frame cut short
    d = frames.Decoder()
    got, _ = d.feed(garbage + head + b"".join(_tel(i) for i in range(5)))
    seqs = [frames.telemetry(f.payload).seq for f in got if f.ftype == frames.T_TELEMETRY]
    assert seqs[-5:] == [0, 1, 2, 3, 4]


def test_random_bytes_never_raise() -> None:
    rng = random.Random(1)
    d = frames.Decoder()
    for _ in range(200):
        d.feed(bytes(rng.randrange(256) for _ in range(rng.randrange(64))))
