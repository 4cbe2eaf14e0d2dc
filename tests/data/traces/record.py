"""Record the shipped traces again: each scenario here (*.toml), run on a
virtual board as the `dut` fixture runs it, its link traced; beside each
trace the KPIs of that live run (NAME.kpi.json), which a replay must give.

    python -m tests.data.traces.record      (make traces)

Recorded again only when the firmware changes what it sends; the tests in
tests/qa/test_replay.py replay them as they are.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

from hil.qa import kpi
from hil.rig.targets import SerialTarget
from hil.scenarios import scenario

HERE = Path(__file__).resolve().parent
RUN_CONFIG = {"profile_steps": True}  # as Dut.run runs a scenario


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="heatrig-record-") as tmp:
        target = SerialTarget("virtual", 115200, workdir=Path(tmp))
        target.traces = Path(tmp) / "traces"
        try:
            for toml in sorted(HERE.glob("*.toml")):
                sc = scenario.load(toml)
                res = target.run(sc, **RUN_CONFIG)
                assert res.trace is not None
                shutil.copyfile(res.trace, HERE / f"{toml.stem}.trace")
                k = kpi.compute(res.series, kpi.true_puffs(res.truth), res.realtime_factor)
                (HERE / f"{toml.stem}.kpi.json").write_text(json.dumps(k, indent=1) + "\n")
                size = (HERE / f"{toml.stem}.trace").stat().st_size
                print(f"{toml.stem}: {size} bytes, {len(res.series)} telemetry frames")
        finally:
            target.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
