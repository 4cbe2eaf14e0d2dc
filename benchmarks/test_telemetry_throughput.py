"""Telemetry throughput on the host: decoding a whole session's output
stream (telemetry and truth frames) into a record. The firmware side (packing
a frame) is timed with the control step (test_control_step.py)."""

from __future__ import annotations

from typing import Any

import pytest

from hil.paths import SCENARIOS_DIR
from hil.scenarios import scenario
from hil.simulator import runner

DEVICE_FRAMES_PER_S = 200  # 100 telemetry + 100 truth frames per simulated second
LINK_BYTES_PER_S = 115200 // 10  # 8N1 serial at 115200 baud
FRAME_BYTES = 30  # telemetry frame: 25-byte payload + 5 bytes of framing


def test_host_decodes_a_session(
    benchmark: Any, judge: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    sc = scenario.load(SCENARIOS_DIR / "hci.toml")
    raw: list[bytes] = []
    decode = runner.decode

    def keep(sc_: scenario.Scenario, out: bytes, *rest: Any) -> runner.RunResult:
        raw.append(out)
        return decode(sc_, out, *rest)

    monkeypatch.setattr(runner, "decode", keep)
    runner.run(sc)
    monkeypatch.undo()
    stream = raw[0]
    res = benchmark.pedantic(decode, args=(sc, stream, 0, "", 0.0), rounds=5, iterations=1)
    frames = len(res.series) + len(res.truth)
    fps = frames / benchmark.stats.stats.min
    mb_s = len(stream) / benchmark.stats.stats.min / 1e6
    sim_fps = frames / res.sim_s
    benchmark.extra_info.update(frames=frames, bytes=len(stream), decode_frames_per_s=round(fps))
    judge.note(
        f"\nhost decoding: {frames} frames ({len(stream) / 1e6:.1f} MB) of a {res.sim_s:.0f} s "
        f"session in {benchmark.stats.stats.min * 1e3:.0f} ms: {fps:,.0f} frames/s, "
        f"{mb_s:.1f} MB/s -- {fps / sim_fps:,.0f}x what the device sends in real time"
        f"\nserial link: {FRAME_BYTES * 100} B/s of telemetry at 100 Hz, "
        f"{FRAME_BYTES * 100 / LINK_BYTES_PER_S * 100:.0f} % of 115200 baud"
    )
    assert sim_fps == pytest.approx(DEVICE_FRAMES_PER_S, rel=0.02)
    assert fps > 100 * DEVICE_FRAMES_PER_S, "decoding must keep up with a simulator at 100x"
    judge.check("speed", "telemetry", {"decode_frames_per_s": round(fps)})
