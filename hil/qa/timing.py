"""Control-step timing from a run's telemetry.

Every control step stamps its telemetry frame with time.ticks_us(). On a
board that shows the real period, its jitter and the steps that started too
late; in the simulator the clock is virtual (jitter is zero unless latency is
injected) and what counts is how much host CPU a step takes, which the
simulator measures when asked (run configuration "profile_steps").
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from hil.wire import contract
from hil.wire.series import TelemetrySeries

PERIOD_US = contract.firmware("heater_ctl").integer("CONTROL_PERIOD_MS") * 1000


@dataclass
class Timing:
    steps: int  # telemetry frames seen at the control rate (asleep, the step runs at 1 Hz)
    dropped_frames: int  # sequence gaps: frames lost in the ring or on the link
    jitter_p50_us: float  # |interval - period| between consecutive steps
    jitter_p99_us: float
    jitter_max_us: float
    deadline_misses: int  # steps that started later than their next step was due, and periods lost
    worst_lateness_us: float  # against the period grid, the earliest step taken as on time
    host_cpu_us: dict[str, float] | None = None  # sim: CPU time per control step
    longest_gap_us: float = 0.0  # the longest time between two control steps (and safety checks)
    lost_periods: int = 0  # periods with no step at all (a flash write held the timer back)

    def summary(self) -> str:
        s = (
            f"{self.steps} control steps: period jitter p50 {self.jitter_p50_us:.0f} us, "
            f"p99 {self.jitter_p99_us:.0f} us, max {self.jitter_max_us:.0f} us; "
            f"{self.deadline_misses} deadline misses (worst lateness "
            f"{self.worst_lateness_us:.0f} us, {self.lost_periods} periods lost); longest "
            f"gap between steps {self.longest_gap_us:.0f} us; {self.dropped_frames} frames dropped"
        )
        if self.host_cpu_us:
            c = self.host_cpu_us
            s += (
                f"; host CPU per step mean {c['mean']:.1f} us, p50 {c['p50']:.0f} us, "
                f"p99 {c['p99']:.0f} us, max {c['max']:.0f} us"
            )
        return s

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


# A gap this many periods long between two steps is periods lost, not one
# late step: on the ESP32 a flash write holds the timer's interrupt back, and
# only one callback follows it (sim/kernel.py: stall). Shorter delays (a late
# callback, a garbage collection) are caught up.
LOST_GAP_PERIODS = 3.5


def from_record(rec: TelemetrySeries, info: dict[str, str], period_us: int = PERIOD_US) -> Timing:
    """Timing of the steps at the control rate. Each stretch of them (between
    the idle rate's steps) has its own period grid: the timer restarts when
    the rate changes; and so does each part after periods were lost."""
    t_all = np.round(rec.cols["t_s"] * 1e6).astype(np.int64)
    seq_all = rec.cols["seq"].astype(np.int64)
    idle = rec.cols.get("idle_rate")
    fast = np.ones(len(t_all), bool) if idle is None else idle == 0
    host = host_cpu(info)
    devs: list[np.ndarray] = []
    lates: list[np.ndarray] = []
    dropped = lost = 0
    gap = 0.0
    for lo, hi in _stretches(fast):
        t_us, seq = t_all[lo:hi], seq_all[lo:hi]
        dseq = np.diff(seq) % 65536
        dropped += int((dseq - 1).sum())
        dt = np.diff(t_us)
        devs.append(np.abs(dt[dseq == 1] - period_us))
        if len(dt):
            gap = max(gap, float((dt / np.maximum(dseq, 1)).max()))
        cuts = np.flatnonzero((dseq == 1) & (dt > LOST_GAP_PERIODS * period_us)) + 1
        starts, ends = np.concatenate(([0], cuts)), np.concatenate((cuts, [len(t_us)]))
        for a, b in zip(starts, ends, strict=True):
            k = np.concatenate(([0], np.cumsum(dseq[a : b - 1])))  # step index of each frame
            late = t_us[a:b] - t_us[a] - k * period_us
            lates.append(late - late.min())
        for c in cuts:  # the step after the gap ran for its last alarm; the ones before are lost
            lost += int(dt[c - 1] // period_us) - 1
            lates.append(np.array([dt[c - 1] - period_us]))  # the checks' delay past a period
    dev = np.concatenate(devs) if devs else np.zeros(0)
    late = np.concatenate(lates) if lates else np.zeros(0)
    if not len(dev):
        dev = np.zeros(1)
    return Timing(
        steps=int(fast.sum()),
        dropped_frames=dropped,
        jitter_p50_us=float(np.percentile(dev, 50)),
        jitter_p99_us=float(np.percentile(dev, 99)),
        jitter_max_us=float(dev.max()),
        deadline_misses=int((late > period_us).sum()) + lost,
        worst_lateness_us=float(late.max()) if len(late) else 0.0,
        host_cpu_us=host,
        longest_gap_us=gap,
        lost_periods=lost,
    )


def _stretches(fast: np.ndarray) -> list[tuple[int, int]]:
    """[lo, hi) index ranges of consecutive control-rate frames."""
    edges = np.flatnonzero(np.diff(np.concatenate(([0], fast.astype(np.int8), [0]))))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def host_cpu(info: dict[str, str]) -> dict[str, float] | None:
    if "cpu_p50_us" not in info:
        return None
    return {
        "mean": int(info["cpu_mean_ns"]) / 1000,
        "p50": float(info["cpu_p50_us"]),
        "p99": float(info["cpu_p99_us"]),
        "max": float(info["cpu_max_us"]),
        "steps": float(info["steps"]),
    }
