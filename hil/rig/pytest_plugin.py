"""pytest plugin (registered as a pytest11 entry point): the same tests on the
simulator and on a board.

    pytest                                          the simulator (default)
    pytest --target serial --port /dev/ttyUSB0      an ESP32 (deployed first)
    pytest --target serial --port virtual           a virtual board (CI)

Tests take the `dut` fixture (hil/rig/dut.py). Markers `power_hw` and `radio` skip
tests that need real power hardware or a real BLE radio where there is none,
`plant` those that need simulated plant inputs on a board that has real
hardware instead, `heap_budget` those that need the firmware held to the
ESP32's heap budget; each is judged against the target's declared
capabilities (hil/rig/targets.py Capabilities). Each test's telemetry CSV,
timing and log -- and on failure its heating curves -- land in
RESULTS/tests/<target>/<test>/.

The plugin only wires options to fixtures; the work is in hil.rig.targets,
hil.rig.dut and hil.rig.artifacts.
"""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path

import pytest

from hil.paths import RESULTS_DIR
from hil.rig import artifacts
from hil.rig.dut import Dut
from hil.rig.targets import Target, TargetError, make

MARKERS = {
    "power_hw": (
        "needs real power hardware (heater, cells, sense resistors): run with "
        "--target serial --port PORT on a board deployed with `heatrig deploy --hardware`"
    ),
    "radio": "needs a real BLE radio: run with --target serial --port PORT on an ESP32",
    "plant": (
        "needs the simulated plant (scenarios, puffs, faults): run on the simulator, the "
        "virtual board, or a board deployed with the plant"
    ),
    "heap_budget": (
        "needs the firmware held to the ESP32's heap budget: run on the simulator or the "
        "virtual board"
    ),
}


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("heatrig", "heatrig device under test")
    g.addoption(
        "--target", choices=("sim", "serial"), default="sim", help="where the firmware runs"
    )
    g.addoption("--port", help="serial port of the board, or `virtual` for a virtual board")
    g.addoption("--baud", type=int, default=115200, help="serial baud rate (default 115200)")
    g.addoption(
        "--no-deploy", action="store_true", help="use the firmware already on the board as it is"
    )
    g.addoption("--results", type=Path, help="artifact directory (default results/tests)")


def pytest_configure(config: pytest.Config) -> None:
    for name, reason in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {reason}")
    config.addinivalue_line("markers", "dut: runs on the device under test (set automatically)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "dut" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.dut)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    rep = yield
    if rep.when == "call":
        item.stash[_FAILED] = rep.failed
    return rep


_FAILED = pytest.StashKey[bool]()


@pytest.fixture(scope="session")
def target(request: pytest.FixtureRequest) -> Generator[Target, None, None]:
    opt = request.config.getoption
    root = _results_root(request.config)
    try:
        t = make(
            opt("--target"), opt("--port"), opt("--baud"), root, deploy_first=not opt("--no-deploy")
        )
    except TargetError as e:
        raise pytest.UsageError(f"heatrig: {e}") from None
    yield t
    t.close()


@pytest.fixture
def dut(request: pytest.FixtureRequest, target: Target) -> Generator[Dut, None, None]:
    try:
        artifacts.check_capabilities(target, [m.name for m in request.node.iter_markers()])
    except artifacts.NotCapable as e:
        pytest.skip(str(e))
    out = artifacts.test_dir(_results_root(request.config), target, request.node.nodeid)
    d = Dut(target, log_path=out / "dut.log")
    yield d
    try:
        d.close()
    finally:
        failed = request.node.stash.get(_FAILED, False)
        for name, value in artifacts.save(d, out, failed=failed):
            request.node.user_properties.append((name, value))


def _results_root(config: pytest.Config) -> Path:
    given = config.getoption("--results")
    return Path(given) if given else RESULTS_DIR / "tests"
