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

from hil.record import Record

PERIOD_US = 10000  # firmware/heater_ctl.py CONTROL_PERIOD_MS


@dataclass
class Timing:
    steps: int  # telemetry frames seen
    dropped_frames: int  # sequence gaps: frames lost in the ring or on the link
    jitter_p50_us: float  # |interval - period| between consecutive steps
    jitter_p99_us: float
    jitter_max_us: float
    deadline_misses: int  # steps that started later than their next step was due
    worst_lateness_us: float  # against the period grid, the earliest step taken as on time
    host_cpu_us: dict[str, float] | None = None  # sim: CPU time per control step

    def summary(self) -> str:
        s = (
            f"{self.steps} control steps: period jitter p50 {self.jitter_p50_us:.0f} us, "
            f"p99 {self.jitter_p99_us:.0f} us, max {self.jitter_max_us:.0f} us; "
            f"{self.deadline_misses} deadline misses (worst lateness "
            f"{self.worst_lateness_us:.0f} us); {self.dropped_frames} frames dropped"
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


def from_record(rec: Record, info: dict[str, str], period_us: int = PERIOD_US) -> Timing:
    t_us = np.round(rec.cols["t_s"] * 1e6).astype(np.int64)
    seq = rec.cols["seq"].astype(np.int64)
    host = host_cpu(info)
    if len(t_us) < 2:
        return Timing(len(t_us), 0, 0.0, 0.0, 0.0, 0, 0.0, host)
    dseq = np.diff(seq) % 65536
    k = np.concatenate(([0], np.cumsum(dseq)))  # step index of each frame
    consecutive = dseq == 1
    dev = np.abs(np.diff(t_us)[consecutive] - period_us)
    late = t_us - t_us[0] - k * period_us
    late = late - late.min()
    if not len(dev):
        dev = np.zeros(1)
    return Timing(
        steps=len(t_us),
        dropped_frames=int((dseq - 1).sum()),
        jitter_p50_us=float(np.percentile(dev, 50)),
        jitter_p99_us=float(np.percentile(dev, 99)),
        jitter_max_us=float(dev.max()),
        deadline_misses=int((late > period_us).sum()),
        worst_lateness_us=float(late.max()),
        host_cpu_us=host,
    )


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
