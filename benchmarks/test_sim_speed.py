"""How fast the simulator runs a full session (HCI: 6 min of heating plus
start and cool-down), in wall-clock seconds and as a multiple of real time.

Two figures: the simulation loop inside the MicroPython process (what "the
unix port simulates at N x real time" means), and the whole `runner.run`
call as a user waits for it (process start, decoding, joining).
"""

from __future__ import annotations

from typing import Any

from hil.paths import SCENARIOS_DIR
from hil.scenarios import scenario
from hil.simulator import runner

# A six-minute session must simulate at >= 500x real time (wall clock, the
# simulation loop; best of the rounds). On a loaded two-core machine the
# figure drops by up to a third: benchmark on a quiet one.
REALTIME_FLOOR = 500.0


def test_full_session_realtime_factor(benchmark: Any, judge: Any) -> None:
    sc = scenario.load(SCENARIOS_DIR / "hci.toml")
    runs: list[runner.RunResult] = []

    def once() -> None:
        runs.append(runner.run(sc))

    benchmark.pedantic(once, rounds=5, iterations=1, warmup_rounds=1)
    sim_s = runs[-1].sim_s
    best_loop = max(r.realtime_factor for r in runs)
    best_total = sim_s / benchmark.stats.stats.min
    benchmark.extra_info.update(
        simulated_s=sim_s,
        realtime_factor_loop=round(best_loop, 1),
        realtime_factor_end_to_end=round(best_total, 1),
    )
    judge.note(
        f"\n{sim_s:.0f} s simulated: loop {best_loop:.0f}x real time, end to end {best_total:.0f}x"
    )
    assert best_loop >= REALTIME_FLOOR, f"simulation loop at {best_loop:.0f}x real time"
    judge.check("speed", "sim", {"sim_realtime_factor": round(best_loop, 1)})
