"""How much of a 115200-baud serial link the firmware's output needs at the
full control rate: telemetry at 100 Hz, events and replies, counted in bytes
as they arrive, over a heating session with puffs. The simulator's own truth
frames are switched off, as on a board on a real link."""

from __future__ import annotations

from typing import Any

from hil.rig.dut import Dut
from hil.rig.targets import SimTarget
from hil.wire import frames

BAUD = 115200
BITS_PER_BYTE = 10  # 8N1: start bit, 8 data bits, stop bit
BUDGET_PCT = 50.0
FIRMWARE_TYPES = (frames.T_TELEMETRY, frames.T_REPLY, frames.T_EVENT)


def _session(seconds: float) -> tuple[int, float]:
    """Firmware bytes on the link over `seconds` of device time: start, heat, puff."""
    target = SimTarget()
    dut = Dut(target)
    try:
        dut.start(sample_us=0)
        dut.command("start")
        t0 = dut.now_s
        link = dut.live.link if dut.live else None
        assert link is not None
        before = sum(link.frame_bytes.get(t, 0) for t in FIRMWARE_TYPES)
        while dut.now_s - t0 < seconds:
            dut.advance(10.0)
            dut.puff()
            dut.command("status")
        after = sum(link.frame_bytes.get(t, 0) for t in FIRMWARE_TYPES)
        return after - before, dut.now_s - t0
    finally:
        dut.close()
        target.close()


def test_telemetry_at_full_rate_fits_half_a_115200_baud_link(benchmark: Any) -> None:
    got: list[tuple[int, float]] = []
    benchmark.pedantic(lambda: got.append(_session(120.0)), rounds=1, iterations=1)
    n, secs = got[-1]
    bytes_per_s = n / secs
    share = 100.0 * bytes_per_s * BITS_PER_BYTE / BAUD
    benchmark.extra_info.update(
        device_s=secs, firmware_bytes_per_s=round(bytes_per_s, 1), link_share_pct=round(share, 1)
    )
    print(f"\nfirmware output {bytes_per_s:.0f} B/s = {share:.1f} % of {BAUD} baud (8N1)")
    assert share <= BUDGET_PCT
