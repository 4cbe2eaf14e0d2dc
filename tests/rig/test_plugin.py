"""The pytest plugin as a user meets it: markers skip with their reason, and
every test leaves its log, telemetry and timing -- and on failure its heating
curve -- under the results directory, listed in the JUnit XML."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

INNER = """
import pytest
from hil.scenarios import scenario

SHORT = scenario.parse(
    '[scenario]\\nname = "short"\\nduration_s = 20.0\\n[puffing]\\nregime = "none"\\n'
)


@pytest.mark.power_hw
def test_needs_power_hardware(dut):
    pass


@pytest.mark.radio
def test_needs_a_radio(dut):
    pass


def test_passes(dut):
    assert dut.run(SHORT).info["reason"] == "end_of_scenario"


def test_fails(dut):
    dut.run(SHORT)
    assert False, "on purpose"


def test_live(dut):
    dut.start()
    dut.advance(0.5)
"""


@pytest.fixture
def outcome(pytester: pytest.Pytester) -> tuple[pytest.RunResult, Path]:
    pytester.makepyfile(test_inner=INNER)
    results = pytester.path / "res"
    junit = pytester.path / "junit.xml"
    run = pytester.runpytest_subprocess("-rs", f"--results={results}", f"--junitxml={junit}")
    return run, results


def test_markers_skip_with_their_reason(outcome: tuple[pytest.RunResult, Path]) -> None:
    run, _ = outcome
    run.assert_outcomes(passed=2, failed=1, skipped=2)
    run.stdout.fnmatch_lines(
        [
            "*needs real power hardware (heater, cells, sense resistors)*(target: sim)*",
            "*needs a real BLE radio*(target: sim)*",
        ]
    )


def test_every_test_leaves_its_artifacts(
    outcome: tuple[pytest.RunResult, Path], pytester: pytest.Pytester
) -> None:
    _, results = outcome
    passed = results / "sim" / "test_inner" / "test_passes"
    failed = results / "sim" / "test_inner" / "test_fails"
    live = results / "sim" / "test_inner" / "test_live"
    for d in (passed, failed):
        assert (d / "dut.log").read_text().count("run    short on sim") == 1
        assert (d / "short.csv").read_text().startswith("# heatrig telemetry")
        assert '"deadline_misses": 0' in (d / "short.timing.json").read_text()
    assert not (passed / "short.png").exists()
    assert (failed / "short.png").read_bytes()[:4] == b"\x89PNG"
    assert len((live / "live.csv").read_text().splitlines()) > 40
    junit = ET.parse(pytester.path / "junit.xml")
    props = {
        (case.get("name"), p.get("name"), p.get("value"))
        for case in junit.iter("testcase")
        for p in case.iter("property")
    }
    assert ("test_fails", "plot", str(failed / "short.png")) in props
    assert ("test_passes", "telemetry", str(passed / "short.csv")) in props
