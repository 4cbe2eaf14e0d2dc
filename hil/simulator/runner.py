"""Run a scenario on the simulator: the firmware, unchanged, on the MicroPython
unix port, against the plant models, in virtual time.

The working directory of the MicroPython process is the device's flash: it
gets the unit's calibration record and settings, as end-of-line test and the
user would leave them (hil/wire/store_format.py), plus the run configuration for the
simulator.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hil.paths import firmware_version
from hil.qa import power
from hil.scenarios.scenario import Scenario
from hil.simulator import toolchain
from hil.wire import contract, events, frames, series, store_format

# The budget the firmware is held to: the ESP32 port's (112,061 bytes of 32-bit
# objects, docs/esp32.md) in the 64-bit unix port's sizes, which are 1.43 times
# as large for this firmware (live after boot: 101,280 B here, 70,928 B on the
# 32-bit MicroPython of `make heap32`). tests/simulator/test_heap32.py holds
# it no larger than the ESP32's at the ratio it measures.
ESP32_HEAP = "156K"
# The process's heap: the simulator's own modules and models take what they
# need of it, then set aside all but the firmware's budget (sim/run.py).
PROCESS_HEAP = "428K"


def simulator_command() -> tuple[list[str], dict[str, str]]:
    """The simulator's process: sim/run.py on the unix port, reading run.json
    from its working directory (the device's flash)."""
    return toolchain.micropython_command(
        ["-m", "sim.run", "run.json"], heap=PROCESS_HEAP, modules=toolchain.sim_modules()
    )


def heap_config(heap: str = ESP32_HEAP) -> dict[str, object]:
    """Run-configuration keys that hold the firmware to a heap budget."""
    return {"heap_budget": toolchain.free_heap(heap)}


# the device rebooted: the next process resumes from its snapshot
REBOOT_EXIT = contract.sim("reboot").integer("REBOOT_EXIT")


class SimError(RuntimeError):
    """The simulation did not complete; the message carries the device's output."""


@dataclass
class RunResult:
    scenario: Scenario
    series: series.TelemetrySeries
    truth: np.ndarray  # every truth sample (the series holds those at control steps)
    info: dict[str, str]  # the simulator's end-of-run line
    console: list[str] = field(default_factory=list)  # event frames, then reply frames
    stray: str = ""  # output outside frames (a traceback, say)
    wall_s: float = 0.0  # host-measured, process start to exit
    power: power.PowerSeries | None = None  # power frames joined with the cells' truth
    reboots: list[str] = field(default_factory=list)  # the simulator's reboot lines
    trace: Path | None = None  # the link's trace, where the target kept one (hil/rig/trace.py)

    @property
    def sim_s(self) -> float:
        return int(self.info.get("t_us", "0")) / 1e6

    @property
    def realtime_factor(self) -> float:
        """Simulated time per wall-clock time of the simulation loop itself."""
        wall_us = int(self.info.get("wall_us", "0"))
        return self.sim_s / (wall_us / 1e6) if wall_us else 0.0


def meta_for(sc: Scenario) -> dict[str, str]:
    return {
        "firmware_version": firmware_version(),
        "target": "sim",
        "scenario": sc.name,
        "seed": str(sc.seed),
        "profile": sc.profile,
        "regime": sc.regime,
        "ambient_c": f"{sc.ambient_c:g}",
        "holder_soc_pct": f"{sc.soc_pct:g}",
        "unit_r0_ohm": f"{sc.r0_ohm:g}",
        "unit_tcr_per_k": f"{sc.tcr_per_k:g}",
        "calibrated": str(sc.calibrated).lower(),
        "calibration_record": sc.record,
        "sessions": str(sc.series.count) if sc.series else str(int(sc.starts_session)),
    }


# Every record of the firmware's store (firmware/store.py keeps two slots of
# each): a run starts from a fresh store, whatever a board's flash held.
STORE_RECORDS = (
    "calib", "adccal", "settings", "counters", "faults", "bonds", "registration", "usage", "ids",
)  # fmt: skip


def device_files(sc: Scenario, cfg: dict[str, object]) -> dict[str, bytes | None]:
    """What a run needs on the device's flash (None: the file must not be there):
    the unit's calibration record and the settings as end-of-line test and the
    user would leave them (in the firmware's store format), and the run
    configuration for the simulator."""
    settings = {"profile": sc.profile, "telemetry": sc.telemetry, "power_telemetry": True}
    files: dict[str, bytes | None] = {f"{r}.{slot}": None for r in STORE_RECORDS for slot in "ab"}
    files.update(sc.calibration_files())
    adc = sc.adc_calibration_record()
    files["adccal.a"] = store_format.slot_file(dict(adc)) if adc is not None else None
    files["settings.a"] = store_format.slot_file(settings)
    files["run.json"] = json.dumps(cfg).encode()
    return files


def run(
    sc: Scenario,
    *,
    heap: str = ESP32_HEAP,
    lock_heap: bool = False,
    extra_config: dict[str, object] | None = None,
    flash_files: dict[str, bytes] | None = None,
    on_output: Callable[[bytes], None] | None = None,
    flash: Path | None = None,
) -> RunResult:
    """Simulate the scenario to its end and decode everything the device sent.
    `flash_files`: more files on the device's flash (over the usual ones);
    `on_output`: gets each boot's output as it is read (a trace);
    `flash`: the flash's folder, as it is and kept (default: a new one, removed)."""
    argv, env = simulator_command()
    cfg = sc.run_config()
    cfg["lock_heap"] = lock_heap
    cfg.update(heap_config(heap))
    cfg.update(extra_config or {})
    with tempfile.TemporaryDirectory(prefix="heatrig-flash-") as tmp:
        fdir = flash if flash is not None else Path(tmp) / "flash"
        fdir.mkdir(exist_ok=True)
        for name, data in device_files(sc, cfg).items():
            if flash is not None and name != "run.json":
                continue  # a flash given as it is
            if data is not None:
                (fdir / name).write_bytes(data)
        for name, data in (flash_files or {}).items():
            (fdir / name).write_bytes(data)
        cfg["snapshot"] = str(Path(tmp) / "snapshot.json")  # a reboot's plant state
        t0 = time.perf_counter()
        outputs = []
        while True:  # one process per boot: a power cut or a reset wipes the device's RAM
            (fdir / "run.json").write_text(json.dumps(cfg))
            # The device's output goes to a file, read once the process ends:
            # nothing reads it earlier, and every write to a pipe would wake
            # this process (the firmware writes 20 times per simulated second).
            with open(Path(tmp) / "stdout", "w+b") as stdout:
                try:
                    proc = subprocess.run(
                        argv,
                        cwd=fdir,
                        env=env,
                        stdin=subprocess.DEVNULL,
                        stdout=stdout,
                        stderr=subprocess.PIPE,
                        timeout=120 + sc.duration_s / min(20.0, float(cfg.get("pace") or 20.0)),
                        check=False,
                    )
                except subprocess.TimeoutExpired as e:
                    raise SimError(
                        f"{sc.name}: the simulation did not finish within {e.timeout:.0f} s"
                    ) from None
                stdout.seek(0)
                outputs.append(stdout.read())
                if on_output is not None:
                    on_output(outputs[-1])
            if proc.returncode != REBOOT_EXIT:
                break
            cfg["resume"] = cfg["snapshot"]
        wall = time.perf_counter() - t0
    out = b"".join(outputs)
    return decode(sc, out, proc.returncode, proc.stderr.decode(errors="replace"), wall)


def decode(sc: Scenario, out: bytes, rc: int, stderr: str, wall_s: float) -> RunResult:
    dec = frames.Decoder()
    by_type, stray = dec.feed_grouped(out)
    console = [
        frames.text(bytes(p)) for t in (frames.T_EVENT, frames.T_REPLY) for p in by_type.get(t, [])
    ]
    info: dict[str, str] = {}
    start: dict[str, str] = {}
    steps: dict[str, str] = {}
    for p in by_type.get(frames.T_PLANT_INFO, []):
        text = frames.text(bytes(p))
        words = dict(w.split("=", 1) for w in text.split()[2:] if "=" in w)
        if text.startswith(events.SIM_START):
            start = words
        elif text.startswith(events.SIM_STEPS):
            steps = words  # host CPU time per control step, if profiled
        elif text.startswith(events.SIM_END):
            info = words
            info["reason"] = text.split("reason=", 1)[1].split(" t_us=")[0]
    tel = by_type.get(frames.T_TELEMETRY, [])
    truth = by_type.get(frames.T_PLANT, [])
    stray_text = (stray + dec.pending()).decode(errors="replace").strip()
    if rc != 0 or not info:
        detail = stray_text or stderr.strip() or "(no output)"
        raise SimError(f"{sc.name}: the simulator exited with code {rc}:\n{detail}")
    if info["reason"] not in ("end_of_scenario",):
        raise SimError(f"{sc.name}: the run ended early: {info['reason']}\n{stray_text}")
    info.update(steps)
    offset = int(start["ticks_offset_us"]) if "ticks_offset_us" in start else None
    meta = meta_for(sc)
    refused = next((c.split()[1] for c in console if c.startswith(events.REFUSED + " ")), None)
    if refused:  # the first start refused up front, and why (limits bands may allow it)
        meta["refused"] = refused
    rec = series.build(tel, truth, meta, offset)
    rec.info = info
    pw = power.build(
        by_type.get(frames.T_POWER, []), by_type.get(frames.T_PLANT_POWER, []), offset, rec.meta
    )
    reboots = [
        frames.text(bytes(p))
        for p in by_type.get(frames.T_PLANT_INFO, [])
        if frames.text(bytes(p)).startswith(events.SIM_REBOOT)
    ]
    # the simulation loop's wall time, over every boot's process
    loop_us = sum(int(r.split("wall_us=")[1].split()[0]) for r in reboots if "wall_us=" in r)
    info["wall_us"] = str(int(info.get("wall_us", "0")) + loop_us)
    truth_arr = series.truth_array(truth)
    return RunResult(sc, rec, truth_arr, info, console, stray_text, wall_s, pw, reboots)
