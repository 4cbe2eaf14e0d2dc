"""docs/console_protocol.md's table of frames -- every type, its exact length
and how often it comes -- against the device: the types and lengths as the
firmware and the simulator define them, the rates as a run sends them."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from conftest import parse

from hil.paths import ROOT
from hil.rig import trace
from hil.rig.dut import Dut
from hil.simulator import runner
from hil.wire import frames

DOC = ROOT / "docs" / "console_protocol.md"
HEADING = "## From the device: frames"
DASH = "\N{EN DASH}"  # the doc's ranges


def doc_rows() -> dict[int, dict[str, str]]:
    lines = DOC.read_text(encoding="utf-8").splitlines()
    start = lines.index(HEADING)
    rows: dict[int, dict[str, str]] = {}
    cols: list[str] = []
    for line in lines[start + 1 :]:
        if line.startswith("#"):
            break
        if not line.startswith("|"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[0] == "type":
            cols = cells
        elif cells[0].startswith("0x"):
            rows[int(cells[0], 16)] = dict(zip(cols, cells, strict=False))
    return rows


def test_every_frame_type_is_in_the_table_with_its_name() -> None:
    rows = doc_rows()
    assert sorted(rows) == sorted(frames.FRAME_TYPES.values())
    for name, t in frames.FRAME_TYPES.items():
        assert rows[t]["name"] == name.lower().replace("_", " ")


def test_every_length_is_the_devices() -> None:
    for t, row in doc_rows().items():
        if t in frames.TEXT_TYPES:
            top = frames.MAX_PAYLOAD
            assert row["payload bytes"] == f"text, 0{DASH}{top}"
            assert row["frame bytes"] == f"{frames.OVERHEAD}{DASH}{top + frames.OVERHEAD}"
        else:
            n = frames.KNOWN_LENGTHS[t]
            assert (row["payload bytes"], row["frame bytes"]) == (str(n), str(n + frames.OVERHEAD))


RUN = """
[scenario]
name = "rates"
duration_s = 30.0
[start]
button_at_s = 8.0
[puffing]
regime = "hci"
[record]
sample_s = {sample_s}
"""


def _frames(sample_s: float) -> dict[int, list[bytes]]:
    """Every frame of a 30 s HCI run (asleep until the button at 8 s), by type."""
    out: list[bytes] = []
    runner.run(parse(RUN.format(sample_s=sample_s)), on_output=out.append)
    got, _ = frames.Decoder().feed(b"".join(out))
    by: dict[int, list[bytes]] = {}
    for f in got:
        by.setdefault(f.ftype, []).append(f.payload)
    return by


@pytest.fixture(scope="module")
def run_10ms() -> dict[int, list[bytes]]:
    return _frames(0.01)


def _rate(row: str) -> list[str]:
    return re.findall(r"\b\d+ Hz\b", row)


def test_telemetry_comes_at_100_hz_and_at_1_hz_asleep(run_10ms: dict[int, list[bytes]]) -> None:
    assert _rate(doc_rows()[frames.T_TELEMETRY]["when"]) == ["100 Hz", "1 Hz"]
    tel = [frames.telemetry(p) for p in run_10ms[frames.T_TELEMETRY]]
    t_us = np.array([f.t_us for f in tel], dtype=np.int64)
    idle = np.array([bool(f.flags & 0x20) for f in tel])
    for flag, hz in ((True, 1.0), (False, 100.0)):
        t = t_us[idle == flag]
        period = np.median(np.diff(t)) / 1e6
        assert period == pytest.approx(1 / hz, rel=0.01), f"idle={flag}"


def test_power_and_truth_frames_come_as_the_table_says(run_10ms: dict[int, list[bytes]]) -> None:
    rows = doc_rows()
    assert _rate(rows[frames.T_POWER]["when"]) == ["1 Hz"]
    power = frames.POWER.as_struct()
    t_ms = np.array([power.unpack_from(p)[0] for p in run_10ms[frames.T_POWER]])
    assert (np.diff(t_ms) == 1000).all()  # 1 Hz, from the first second on: 29 or 30
    assert 29 <= len(t_ms) <= 30  # over 30 s, as the main loop's last pass falls
    assert "100 Hz at the runs' 10 ms" in rows[frames.T_PLANT]["when"]
    assert len(run_10ms[frames.T_PLANT]) == 3001  # every 10 ms, both ends
    assert "1 Hz at the runs' 10 ms and 1 s" in rows[frames.T_PLANT_POWER]["when"]
    assert len(run_10ms[frames.T_PLANT_POWER]) == 31


@pytest.mark.parametrize(("sample_s", "every"), [(0.1, 10), (2.0, 1)])
def test_plant_power_comes_with_every_nth_truth_sample(sample_s: float, every: int) -> None:
    """N = power_sample_us / sample_us, at least 1 (power_sample_us is at
    least a second): with a truth sample every 2 s, each has one."""
    assert (
        "every Nth truth sample, N = `power_sample_us` / `sample_us` (at least 1)"
        in (doc_rows()[frames.T_PLANT_POWER]["when"])
    )
    by = _frames(sample_s)
    n_truth, n_power = len(by[frames.T_PLANT]), len(by[frames.T_PLANT_POWER])
    assert n_power == pytest.approx(n_truth / every, abs=1)


def test_text_frames_stay_within_their_length(run_10ms: dict[int, list[bytes]]) -> None:
    for t in frames.TEXT_TYPES & set(run_10ms):
        assert max(len(p) for p in run_10ms[t]) <= frames.MAX_PAYLOAD


@pytest.mark.plant
def test_one_reply_per_command_line_and_per_plant_line(dut: Dut, tmp_path: Path) -> None:
    assert "exactly one per command line" in doc_rows()[frames.T_REPLY]["when"]
    assert "exactly one per `@plant` line" in doc_rows()[frames.T_PLANT_REPLY]["when"]
    dut.trace_dir = tmp_path
    dut.start()
    for line in ("ver", "status", "frobnicate", "stop x", "tm sideways"):
        dut.command(line, check=False)
    for line in ("at", "warp 9", "ambient 21"):
        dut.plant(line, check=False)
    dut.send_raw(b"\n\r\n")  # empty lines: no reply
    dut.sync()
    dut.stop()
    got, _ = frames.Decoder().feed(trace.read(dut.traces[0]).received())
    replies = [f for f in got if f.ftype == frames.T_REPLY]
    assert len(replies) == 5 + 1  # and the sync's `ver`
    plant_replies = [f for f in got if f.ftype == frames.T_PLANT_REPLY]
    sent = trace.read(dut.traces[0]).sent().split(b"\n")
    plant_lines = [w for w in sent if w.startswith(b"@plant ")]
    assert len(plant_lines) >= 4  # ours, the clock's grants, the end
    assert len(plant_replies) == len(plant_lines)
