"""pytest plugin (registered as a pytest11 entry point): the same tests on the
simulator and on a board.

    pytest                                          the simulator (default)
    pytest --target serial --port /dev/ttyUSB0      an ESP32 (deployed first)
    pytest --target serial --port virtual           a virtual board (CI)
    pytest --target serial --port rfc2217://HOST:PORT  a board shared on the network
    pytest -m dut --replay RUN.trace                the tests that only analyse a run,
                                                    against a recorded one

Tests take the `dut` fixture (hil/rig/dut.py). Markers `power_hw` and `radio` skip
tests that need real power hardware or a real BLE radio where there is none,
`plant` those that need simulated plant inputs on a board that has real
hardware instead, `heap_budget` those that need the firmware held to the
ESP32's heap budget; each is judged against the target's declared
capabilities (hil/rig/targets.py Capabilities). Each test's telemetry CSV,
timing and log -- and on failure its heating curves -- land in
RESULTS/tests/<target>/<test>/.

A board's stored state is put back as found at the end of the session, a
Ctrl-C or a SIGTERM included, and before each real-time boot of its firmware
(hil/rig/targets.py restore_found()).

An option's value given as a separate word that names an existing path
(`--port /dev/ttyUSB0`) is taken by pytest for a test path while it looks for
its rootdir and configuration -- before this plugin is loaded -- so pytest
would root the run at /dev. The plugin then runs pytest again, at once and
with nothing yet done, with that option written `--port=/dev/ttyUSB0`, which
pytest does not take for a path (reroot()).

The plugin only wires options to fixtures; the work is in hil.rig.targets,
hil.rig.dut and hil.rig.artifacts.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import sys
from collections.abc import Generator, Iterator, Sequence
from pathlib import Path

import pytest

from hil.paths import RESULTS_DIR
from hil.rig import artifacts
from hil.rig.dut import Dut
from hil.rig.targets import NotReplayable, Target, TargetError, make

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


# this plugin's options that take a value (reroot() joins them to it)
VALUE_OPTIONS = ("--target", "--port", "--baud", "--results", "--replay")
_REROOTED = "HEATRIG_PYTEST_REROOTED"  # set for the one run again by reroot()


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("heatrig", "heatrig device under test")
    g.addoption(
        "--target", choices=("sim", "serial"), default="sim", help="where the firmware runs"
    )
    g.addoption(
        "--port",
        help="serial port of the board (a path, or a pyserial URL: rfc2217://HOST:PORT, "
        "socket://HOST:PORT), or `virtual` for a virtual board",
    )
    g.addoption("--baud", type=int, default=115200, help="serial baud rate (default 115200)")
    g.addoption(
        "--no-deploy", action="store_true", help="use the firmware already on the board as it is"
    )
    g.addoption("--results", type=Path, help="artifact directory (default results/tests)")
    g.addoption(
        "--keep-traces",
        action="store_true",
        help="keep a trace of the link (bytes both ways, host times) of every run and live "
        "session among each test's artifacts (<run>.trace)",
    )
    g.addoption(
        "--replay",
        type=Path,
        metavar="TRACE",
        help="serve a recorded run (a .trace) to the tests that run its scenario; tests that "
        "need another run or a live device are skipped",
    )


def joined(args: Sequence[str]) -> list[str] | None:
    """`--port /dev/ttyUSB0` as `--port=/dev/ttyUSB0`, for each option of this
    plugin whose value is a separate word naming an existing path (pytest's
    rootdir search takes such a word for a test path); None if there is none."""
    out: list[str] = []
    changed = False
    i = 0
    while i < len(args):
        word = args[i]
        if word == "--":
            out += args[i:]
            break
        if word in VALUE_OPTIONS and i + 1 < len(args):
            value = args[i + 1]
            if not value.startswith("-") and os.path.exists(value):
                out.append(f"{word}={value}")
                changed = True
                i += 2
                continue
        out.append(word)
        i += 1
    return out if changed else None


def reroot(config: pytest.Config, args: list[str]) -> None:
    """Run pytest again with joined() options if pytest took one's value for
    a test path (see the module's docstring); a UsageError saying what to
    write where this process is not pytest's own command line."""
    again = os.environ.pop(_REROOTED, None)
    if joined(args) is None:
        return
    argv = list(config.invocation_params.args)
    env_opts = os.environ.get("PYTEST_ADDOPTS", "")
    if again or argv != sys.argv[1:]:  # pytest.main() in a process, or a loop
        example = " ".join(joined(args) or args)
        raise pytest.UsageError(
            f"heatrig: pytest takes an option's value that names an existing path for a "
            f"test path when it looks for its rootdir; join the option and its value with "
            f"`=`: {example}"
        )
    fixed_env = joined(shlex.split(env_opts))
    if fixed_env is not None:
        os.environ["PYTEST_ADDOPTS"] = shlex.join(fixed_env)
    os.environ[_REROOTED] = "1"
    prefix = sys.orig_argv[: len(sys.orig_argv) - len(sys.argv) + 1]  # the interpreter's own
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [*prefix, *(joined(argv) or argv)])


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_load_initial_conftests(
    early_config: pytest.Config, parser: pytest.Parser, args: list[str]
) -> Generator[None, None, None]:
    # before any other plugin's wrapper (output capture starts in one)
    reroot(early_config, args)
    yield


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


@pytest.hookimpl(wrapper=True)
def pytest_fixture_setup(fixturedef: pytest.FixtureDef[object]) -> Generator[None, object, object]:
    try:
        return (yield)
    except NotReplayable as e:
        pytest.skip(f"replay: this test {e}")


@pytest.hookimpl(wrapper=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> Generator[None, object, object]:
    try:
        return (yield)
    except NotReplayable as e:
        pytest.skip(f"replay: this test {e}")


@pytest.fixture(scope="session")
def target(request: pytest.FixtureRequest) -> Generator[Target, None, None]:
    opt = request.config.getoption
    root = _results_root(request.config)
    try:
        t = make(
            opt("--target"),
            opt("--port"),
            opt("--baud"),
            root,
            deploy_first=not opt("--no-deploy"),
            replay=opt("--replay"),
        )
    except TargetError as e:
        raise pytest.UsageError(f"heatrig: {e}") from None
    if opt("--keep-traces"):
        t.traces = root / "traces" / t.name
    with _sigterm_interrupts():
        try:
            yield t
        finally:
            t.close()


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """SIGTERM ends the session as Ctrl-C does: the board is put back as found."""

    def interrupt(_sig: int, _frame: object) -> None:
        raise KeyboardInterrupt

    try:
        old = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread: leave it as it is
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


@pytest.fixture
def dut(request: pytest.FixtureRequest, target: Target) -> Generator[Dut, None, None]:
    try:
        artifacts.check_capabilities(target, [m.name for m in request.node.iter_markers()])
    except artifacts.NotCapable as e:
        pytest.skip(str(e))
    out = artifacts.test_dir(_results_root(request.config), target, request.node.nodeid)
    keep = request.config.getoption("--keep-traces")
    d = Dut(target, log_path=out / "dut.log", trace_dir=out if keep else None)
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
