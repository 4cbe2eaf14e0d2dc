"""Traces of a device's link: every byte both ways, with the host's time, in a
file -- a board's run attached to a bug, decoded again on any machine
(`heatrig replay`, `pytest --replay`).

A trace is a gzip stream: one line of JSON (the header: what ran, on what,
the scenario whole), then records, each

    kind u8 ('r' from the device, 't' to it, 'n' a note) | t f64 (s) | len u32 | bytes

little-endian, t in seconds of the host's monotonic clock from the trace's
start. The simulator's output reaches the host when its process ends, so a
run on it is traced as one record per boot, stamped then.

replay() decodes a run's trace into the RunResult the live run gave --
telemetry, truth, the end-of-run info -- the same bytes through the same
decoder; live() a live session's telemetry, truth and events.
"""

from __future__ import annotations

import dataclasses
import datetime
import gzip
import hashlib
import json
import struct
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hil.paths import firmware_version
from hil.qa import power
from hil.rig.transport import Transport
from hil.scenarios.scenario import Event, Puff, Scenario, SessionSeries
from hil.simulator import runner
from hil.wire import events, frames, series

FORMAT = "heatrig link trace"
VERSION = 1
RECORD = struct.Struct("<BdI")
RX, TX, NOTE = ord("r"), ord("t"), ord("n")
RAW_TAIL = b"\x04>"  # a board's raw REPL after a program: stdout EOF, stderr, EOF, prompt


class TraceError(RuntimeError):
    """The file is no trace, or not one this heatrig reads; the message says which."""


def scenario_record(sc: Scenario) -> dict[str, Any]:
    """The scenario whole, as JSON (read back by scenario_from())."""
    d = dataclasses.asdict(sc)
    d["path"] = str(sc.path) if sc.path is not None else None
    return d


def scenario_from(d: dict[str, Any]) -> Scenario:
    d = dict(d)
    d["path"] = Path(d["path"]) if d.get("path") else None
    d["puffs"] = [Puff(**p) for p in d.get("puffs", [])]
    d["events"] = [Event(**e) for e in d.get("events", [])]
    if d.get("series") is not None:
        sr = d["series"]
        d["series"] = SessionSeries(
            sr["count"], sr["every_s"], sr["first_s"], tuple(tuple(e) for e in sr["events"])
        )
    try:
        return Scenario(**d)
    except TypeError as e:
        raise TraceError(f"the trace's scenario does not fit this heatrig's: {e}") from None


def run_key(sc: Scenario, config: dict[str, Any]) -> str:
    """What makes a run what it is: the same key, the same run (runs are
    deterministic), on any target; a trace keeps it, a replay matches it."""
    cfg = sc.run_config()
    cfg.update(config)
    what = [cfg, sc.profile, sc.calibration_record()]
    return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()


def header(kind: str, target: str, sc: Scenario, **more: Any) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "version": VERSION,
        "kind": kind,  # "run": a whole scenario; "live": a live session
        "target": target,
        "firmware_version": firmware_version(),
        "recorded": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "scenario": scenario_record(sc),
        **more,
    }


class TraceWriter:
    """Records appended as they happen; close() ends the file."""

    def __init__(self, path: Path, head: dict[str, Any]):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        f = gzip.GzipFile(path, "wb", compresslevel=6)
        f.write(json.dumps(head, sort_keys=True).encode() + b"\n")
        self._f: gzip.GzipFile | None = f
        self._t0 = time.monotonic()
        self.bytes = {RX: 0, TX: 0}

    def _put(self, kind: int, data: bytes, t: float | None = None) -> None:
        if self._f is None or not data:
            return
        when = (time.monotonic() if t is None else t) - self._t0
        self._f.write(RECORD.pack(kind, when, len(data)) + data)
        if kind in self.bytes:
            self.bytes[kind] += len(data)

    def rx(self, data: bytes) -> None:
        self._put(RX, data)

    def tx(self, data: bytes) -> None:
        self._put(TX, data)

    def note(self, text: str) -> None:
        self._put(NOTE, text.encode())

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None


class TracedTransport(Transport):
    """A transport whose traffic goes into a trace as well."""

    def __init__(self, inner: Transport, writer: TraceWriter):
        self.inner = inner
        self.writer = writer
        self.name = inner.name

    def write(self, data: bytes) -> None:
        self.writer.tx(data)
        self.inner.write(data)

    def read(self, timeout_s: float) -> bytes:
        data = self.inner.read(timeout_s)
        self.writer.rx(data)
        return data

    def close(self) -> None:
        self.inner.close()  # the trace goes on (a board's next boot): its owner closes it


@dataclass
class Trace:
    path: Path
    header: dict[str, Any]
    records: list[tuple[int, float, bytes]]

    @property
    def kind(self) -> str:
        return str(self.header.get("kind", ""))

    @property
    def scenario(self) -> Scenario:
        return scenario_from(self.header["scenario"])

    def received(self) -> bytes:
        return b"".join(d for k, _, d in self.records if k == RX)

    def sent(self) -> bytes:
        return b"".join(d for k, _, d in self.records if k == TX)

    def seconds(self) -> float:
        return self.records[-1][1] if self.records else 0.0


def read(path: Path) -> Trace:
    """A trace file, whole; a TraceError saying what is wrong with it."""
    try:
        with gzip.open(path, "rb") as f:
            first = f.readline()
            rest = f.read()
    except FileNotFoundError:
        raise TraceError(f"{path}: no such file") from None
    except (OSError, EOFError, zlib.error) as e:
        raise TraceError(f"{path}: not a heatrig trace (not gzip: {e})") from None
    try:
        head = json.loads(first)
    except ValueError:
        head = None
    if not isinstance(head, dict) or head.get("format") != FORMAT:
        raise TraceError(f"{path}: not a heatrig trace (no trace header)")
    if head.get("version") != VERSION:
        raise TraceError(
            f"{path}: trace format version {head.get('version')}; this heatrig reads {VERSION}"
        )
    records: list[tuple[int, float, bytes]] = []
    i = 0
    while i < len(rest):
        if i + RECORD.size > len(rest):
            raise TraceError(f"{path}: cut short in a record header at byte {i}")
        kind, t, n = RECORD.unpack_from(rest, i)
        i += RECORD.size
        if kind not in (RX, TX, NOTE) or i + n > len(rest):
            raise TraceError(f"{path}: damaged record at byte {i - RECORD.size}")
        records.append((kind, t, rest[i : i + n]))
        i += n
    return Trace(path, head, records)


def _split_raw_tail(data: bytes) -> tuple[bytes, str]:
    """A board's program output and error text, from the raw REPL's tail
    (stdout, EOF, stderr, EOF, prompt); the simulator's output has none."""
    if not data.endswith(RAW_TAIL):
        return data, ""
    first = data.rfind(b"\x04", 0, len(data) - len(RAW_TAIL))
    if first < 0:
        return data[: -len(RAW_TAIL)], ""
    return data[:first], data[first + 1 : -len(RAW_TAIL)].decode(errors="replace")


def replay(tr: Trace) -> runner.RunResult:
    """A run's trace decoded into the RunResult the live run gave."""
    if tr.kind != "run":
        raise TraceError(
            f"{tr.path}: a {tr.kind or 'unknown'} trace; replay takes a run's (a whole scenario)"
        )
    body, err = _split_raw_tail(tr.received())
    sc = tr.scenario
    try:
        res = runner.decode(sc, body, 3 if err else 0, err, tr.seconds())
    except runner.SimError as e:
        raise TraceError(f"{tr.path}: the traced run did not complete: {e}") from None
    res.series.meta["target"] = str(tr.header.get("target", "trace"))
    return res


def live(tr: Trace) -> runner.RunResult:
    """A live session's trace decoded: its telemetry joined with the plant's
    truth (as the session's telemetry() gave them), and its events."""
    dec = frames.Decoder()
    by_type, stray = dec.feed_grouped(tr.received())
    sc = tr.scenario
    meta = runner.meta_for(sc)
    meta["target"] = str(tr.header.get("target", "trace"))
    offset = None
    for p in by_type.get(frames.T_PLANT_INFO, []):
        text = frames.text(bytes(p))
        if text.startswith(events.SIM_START):
            words = dict(w.split("=", 1) for w in text.split() if "=" in w)
            offset = int(words["ticks_offset_us"])
            break
    truth = by_type.get(frames.T_PLANT, [])
    rec = series.build(by_type.get(frames.T_TELEMETRY, []), truth, meta, offset)
    console = [
        frames.text(bytes(p)) for t in (frames.T_EVENT, frames.T_REPLY) for p in by_type.get(t, [])
    ]
    fw_power, truth_power = by_type.get(frames.T_POWER, []), by_type.get(frames.T_PLANT_POWER, [])
    pw = power.build(fw_power, truth_power, offset, meta)
    return runner.RunResult(
        sc, rec, series.truth_array(truth), {}, console, stray.decode(errors="replace"),
        tr.seconds(), pw,
    )  # fmt: skip


def decode(tr: Trace) -> runner.RunResult:
    """A trace of either kind, decoded."""
    return replay(tr) if tr.kind == "run" else live(tr)
