"""Benchmarks: speed of the simulator, of the firmware's control step and of
telemetry, the heating KPIs of the standard scenarios and the power figures
of the standard power scenarios -- each compared
with benchmarks/baseline.json within benchmarks/tolerances.toml.

`--update-baseline` records the measured values as the new baseline instead
(`make bench-baseline`); a benchmark that cannot run here (no valgrind)
leaves its part of the baseline as it was.
"""

from __future__ import annotations

import datetime as dt
import platform
from typing import Any

import pytest

from benchmarks import baseline
from hil.paths import firmware_version


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-baseline",
        action="store_true",
        help="write the measured values to benchmarks/baseline.json instead of comparing",
    )


class Judge:
    """Compares a benchmark's metrics with the baseline, or collects them."""

    def __init__(self, update: bool):
        self.update = update
        self.base = baseline.load_baseline()
        self.tolerances = baseline.load_tolerances()
        self.collected: list[tuple[str, str, dict[str, Any]]] = []
        self.notes: list[str] = []  # printed after the run, whatever pytest captured

    def note(self, text: str) -> None:
        self.notes.append(text.strip("\n"))

    def check(self, section: str, group: str, measured: dict[str, Any]) -> None:
        self.collected.append((section, group, measured))
        if self.update:
            return
        cmp = baseline.compare(section, group, measured, self.base, self.tolerances)
        if not cmp.ok:
            pytest.fail(cmp.message(), pytrace=False)
        if cmp.improvements:
            self.note(cmp.message())

    def save(self) -> None:
        data = self.base
        for section, group, measured in self.collected:
            data = baseline.updated(data, section, group, measured)
        data["recorded"] = {
            "firmware_version": firmware_version(),
            "date": dt.date.today().isoformat(),
            "machine": f"{platform.machine()}, {platform.python_implementation()} "
            f"{platform.python_version()}",
        }
        baseline.save(data)


_JUDGE = pytest.StashKey[Judge]()


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_JUDGE] = Judge(bool(config.getoption("--update-baseline")))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    judge = session.config.stash.get(_JUDGE, None)
    if judge is not None and judge.update and judge.collected:
        judge.save()
        print(f"\nbaseline written: {baseline.BASELINE_PATH}")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    judge = terminalreporter.config.stash.get(_JUDGE, None)
    if judge is None or not judge.collected:
        return
    tr = terminalreporter
    tr.section("heatrig benchmarks: measured (baseline)")
    for text in judge.notes:
        tr.write_line(text)
    for section, group, measured in judge.collected:
        base = judge.base.get(section, {}).get(group, {})
        cells = [
            f"{k} {v}" + (f" ({base[k]})" if k in base and base[k] != v else "")
            for k, v in measured.items()
        ]
        tr.write_line(f"{section} {group}: " + ", ".join(cells))


@pytest.fixture(scope="session")
def judge(request: pytest.FixtureRequest) -> Judge:
    return request.config.stash[_JUDGE]
