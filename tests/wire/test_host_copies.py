"""Every value of the wire contract the host uses is the device's: frame
types and lengths, payload fields, state, fault, kit and charge names and
codes, flag bits, the scenario's choices and the BLE side's constants. Where
the host keeps its own copy (a typed view, a name the source writes only as
a literal, the documentation, the QA limits), it is compared here, field by
field."""

from __future__ import annotations

import ast
import struct
import sys
from pathlib import Path

import numpy as np
import pytest

from hil.paths import FIRMWARE_DIR, ROOT, SIM_DIR
from hil.qa import power, timing
from hil.rig import dut
from hil.scenarios import scenario
from hil.simulator import runner
from hil.wire import ble_flags, contract, events, frames, series

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

BLE_DIR = ROOT / "hil" / "ble"

# --- frames ------------------------------------------------------------------------------


def test_frame_constants_are_the_firmwares() -> None:
    framing = contract.firmware("framing")
    for name in ("SYNC", "OVERHEAD", "MAX_PAYLOAD"):
        assert getattr(frames, name) == framing.integer(name), name
    assert framing.prefixed("T_") == frames.FRAME_TYPES
    for name, code in framing.prefixed("T_").items():
        assert getattr(frames, "T_" + name) == code, name


def test_every_frame_type_is_decoded() -> None:
    """A frame type the firmware adds is either binary of a known length or text."""
    types = set(frames.FRAME_TYPES.values())
    assert types == set(frames.KNOWN_LENGTHS) | frames.TEXT_TYPES
    assert not set(frames.KNOWN_LENGTHS) & frames.TEXT_TYPES


# (frame type, the device's source, its format constant, its length constant)
PAYLOADS = [
    ("TELEMETRY", "firmware/telemetry.py", "FMT", "PAYLOAD_LEN"),
    ("PLANT", "sim/truth.py", "FMT", "PAYLOAD_LEN"),
    ("POWER", "firmware/charger.py", "FMT", "PAYLOAD_LEN"),
    ("PLANT_POWER", "sim/truth.py", "POWER_FMT", "POWER_LEN"),
]
# each payload's numpy view on the host
DTYPES = {
    "TELEMETRY": series._TEL_DTYPE,
    "PLANT": series._PLANT_DTYPE,
    "POWER": power._FW_DTYPE,
    "PLANT_POWER": power._TRUTH_DTYPE,
}


@pytest.mark.parametrize(("name", "path", "fmt", "length"), PAYLOADS)
def test_payload_lengths_are_the_devices(name: str, path: str, fmt: str, length: str) -> None:
    src = contract.read(ROOT / path)
    code = frames.FRAME_TYPES[name]
    assert frames.KNOWN_LENGTHS[code] == src.integer(length) == struct.calcsize(src.text(fmt))
    assert DTYPES[name].itemsize == src.integer(length)


def _distinct_values(layout: contract.Layout) -> list[int]:
    """A value per field that no other field has, negative where signed."""
    return [(i + 1) * (-1 if kind[0] == "i" else 1) for i, (_, kind) in enumerate(layout.fields)]


@pytest.mark.parametrize(("name", "path", "fmt", "length"), PAYLOADS)
def test_payloads_decode_field_by_field(name: str, path: str, fmt: str, length: str) -> None:
    """Packed with the device's format, each field reads back under its name."""
    src = contract.read(ROOT / path)
    layout = src.layout(fmt, length)
    values = _distinct_values(layout)
    payload = struct.pack(src.text(fmt), *values)
    row = np.frombuffer(payload, dtype=DTYPES[name])[0]
    assert {n: int(row[n]) for n in layout.names} == dict(zip(layout.names, values, strict=True))
    assert DTYPES[name].names == layout.names


def test_the_typed_views_name_every_field() -> None:
    payload = struct.pack(frames.TELEMETRY.fmt, *_distinct_values(frames.TELEMETRY))
    got = frames.telemetry(payload)._asdict()
    assert got == dict(zip(frames.TELEMETRY.names, _distinct_values(frames.TELEMETRY), strict=True))
    payload = struct.pack(frames.PLANT.fmt, *_distinct_values(frames.PLANT))
    got = frames.plant_sample(payload)._asdict()
    assert got == dict(zip(frames.PLANT.names, _distinct_values(frames.PLANT), strict=True))


def test_the_telemetry_fields_are_the_arguments_packed() -> None:
    """Telemetry.record packs its arguments, named as the docstring names the fields."""
    tree = ast.parse((FIRMWARE_DIR / "telemetry.py").read_text(encoding="utf-8"))
    calls = [
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "pack_into"
    ]
    assert len(calls) == 1
    packed = tuple(a.id if isinstance(a, ast.Name) else ast.unparse(a) for a in calls[0].args[3:])
    assert packed == frames.TELEMETRY.names


# --- names and codes ---------------------------------------------------------------------


def test_state_fault_and_end_names_are_the_firmwares() -> None:
    states = contract.firmware("states")
    assert states.names("NAMES") == series.STATE_NAMES
    assert states.names("END_NAMES") == series.END_NAMES
    assert contract.firmware("faults").names("NAMES") == series.FAULT_NAMES
    assert series.STATE_NAMES[series.COOLING] == "cooling"
    assert series.STATE_NAMES[series.FAULT] == "fault"
    heating = tuple(series.STATE_NAMES[s] for s in series.HEATING_STATES)
    assert heating == ("preheat", "heating", "end_warning")
    assert dut.STATE_NAMES is series.STATE_NAMES


def test_end_names_match_their_codes() -> None:
    """END_NAMES are not the upper-cased code names: each pair by hand."""
    codes = contract.firmware("states").prefixed("END_")
    meaning = {
        "NONE": "none",
        "TIME": "time_limit",
        "PUFFS": "puff_limit",
        "USER": "user_stop",
        "FAULT": "fault",
    }
    assert {series.END_NAMES[code]: name for name, code in codes.items()} == {
        v: k for k, v in meaning.items()
    }
    assert codes["TIME"] == power.END_TIME and codes["PUFFS"] == power.END_PUFFS


def test_power_names_and_codes_are_the_firmwares() -> None:
    loop = contract.firmware("charge_loop")
    assert loop.names("NAMES") == power.CHARGE_NAMES
    for name in ("PRE", "CC", "CV", "DONE", "WAIT"):
        assert getattr(power, name) == loop.integer(name), name
    assert loop.integer("FAULT") == power.CHARGE_FAULT
    assert contract.firmware("device").names("KIT_NAMES") == power.KIT_NAMES
    assert power.HEATING_STATES is series.HEATING_STATES  # type: ignore[attr-defined]  # imported


# --- flag bits ---------------------------------------------------------------------------


def _host_ints(module: object, prefix: str) -> dict[str, int]:
    return {k: v for k, v in vars(module).items() if k.startswith(prefix) and isinstance(v, int)}


@pytest.mark.parametrize(
    ("module", "prefix", "source", "source_prefix"),
    [
        (series, "FLAG_", "firmware/telemetry.py", "FLAG_"),
        (series, "IO_", "sim/plant.py", "IO_"),
        (power, "FLAG_", "firmware/charger.py", "_FLAG_"),
        (power, "IO2_", "sim/plant.py", "IO2_"),
    ],
)
def test_flag_bits_are_the_devices(
    module: object, prefix: str, source: str, source_prefix: str
) -> None:
    host = _host_ints(module, prefix)
    device = contract.read(ROOT / source).prefixed(source_prefix)
    assert host
    for name, bits in host.items():
        assert device[name[len(prefix) :]] == bits, name


# --- the scenario's choices, the host's timing -------------------------------------------


def test_scenario_choices_are_the_devices() -> None:
    assert contract.firmware("profiles").keys("PROFILES") == scenario.PROFILES
    assert contract.sim("inject").keys("ADC_NAMES") == scenario.ADC_CHANNELS
    hold_ms = contract.firmware("device").integer("HOLD_START_MS")
    assert hold_ms == scenario.HOLD_TO_START_S * 1000


def _compared_strings(path: Path, function: str, variable: str) -> list[str]:
    """The strings `variable == "..."` is compared with in `function`."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    fn = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == function)
    out: list[str] = []
    for n in ast.walk(fn):
        if isinstance(n, ast.Compare) and isinstance(n.left, ast.Name) and n.left.id == variable:
            out += [
                c.value
                for c in n.comparators
                if isinstance(c, ast.Constant) and isinstance(c.value, str)
            ]
    return out


def test_fault_kinds_are_what_the_simulator_injects() -> None:
    assert list(scenario.FAULT_KINDS) == _compared_strings(SIM_DIR / "inject.py", "fault", "kind")


def test_a_fault_kind_added_to_the_simulator_is_seen(tmp_path: Path) -> None:
    text = (SIM_DIR / "inject.py").read_text(encoding="utf-8")
    old = '    elif kind == "clear":'
    new = '    elif kind == "gate_stuck_off":\n        pass\n' + old
    (tmp_path / "inject.py").write_text(text.replace(old, new), encoding="utf-8")
    kinds = _compared_strings(tmp_path / "inject.py", "fault", "kind")
    assert "gate_stuck_off" in kinds and kinds != list(scenario.FAULT_KINDS)


def test_host_timing_is_the_firmwares() -> None:
    period_ms = contract.firmware("heater_ctl").integer("CONTROL_PERIOD_MS")
    assert period_ms * 1000 == timing.PERIOD_US
    assert contract.sim("reboot").integer("REBOOT_EXIT") == runner.REBOOT_EXIT
    assert dut.NO_PLANT == events.no_channel("plant") == "ERR 1 no channel @plant"


# --- BLE ---------------------------------------------------------------------------------


def _ble_copies(name: str) -> list[tuple[Path, object]]:
    """Every module-level constant `name` in hil/ble/ (a copy, not an import)."""
    out: list[tuple[Path, object]] = []
    for path in sorted(BLE_DIR.glob("*.py")):
        src = contract.read(path)
        for table in (src.ints, src.tuples):
            if name in table:
                out.append((path, table[name]))
    return out


def test_ble_flags_are_micropythons() -> None:
    vbt = contract.sim("mpapi/vbluetooth").prefixed("FLAG_")
    assert ble_flags.BLE_FLAGS.__dict__ == {k.lower(): v for k, v in vbt.items()}
    profile = contract.firmware("ble_table")
    for name, bits in ble_flags.PROFILE_FLAGS.__dict__.items():
        assert profile.integer(name.upper()) == bits == vbt[name.upper()], name


def test_the_ble_sides_flag_copies_are_micropythons() -> None:
    """hil/ble's F_* constants, while it keeps copies (ble_flags has them all)."""
    flags = {"F_" + k.upper(): v for k, v in ble_flags.BLE_FLAGS.__dict__.items()}
    for path in sorted(BLE_DIR.glob("*.py")):
        for name, bits in contract.read(path).prefixed("F_").items():
            assert flags["F_" + name] == bits, f"{path}: F_{name}"
            assert getattr(ble_flags, "F_" + name) == bits


@pytest.mark.parametrize(
    ("name", "device"),
    [
        ("HEATING_STATES", series.STATE_NAMES),
        ("KIT_STATES", power.KIT_NAMES),
        ("MAX_LINE", contract.firmware("console").integer("MAX_LINE")),
        ("ATT_INVALID_LENGTH", contract.firmware("ble_table").integer("ATT_LENGTH")),
        ("ATT_VALUE_NOT_ALLOWED", contract.firmware("ble_table").integer("ATT_VALUE")),
        ("ATT_APP_STATE", contract.firmware("ble_table").integer("ATT_STATE")),
        ("ATT_INSUFFICIENT_ENCRYPTION", contract.firmware("ble_table").integer("ATT_ENCRYPTION")),
    ],
)
def test_the_ble_sides_copies_are_the_firmwares(name: str, device: object) -> None:
    for path, value in _ble_copies(name):
        assert value == device, f"{path}: {name}"


# --- the protocol's documentation ------------------------------------------------------


def _doc_table(path: Path, heading: str) -> list[tuple[str, str]]:
    """(first, second) cell of each row of the table under `heading`."""
    lines = path.read_text(encoding="utf-8").splitlines()
    start = lines.index(heading)
    rows = []
    for line in lines[start + 1 :]:
        if line.startswith("#"):
            break
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0] not in ("field", "---"):
            rows.append((cells[0], cells[1]))
    return rows


def test_the_documented_telemetry_payload_is_the_firmwares() -> None:
    heading = f"### Telemetry payload ({frames.TELEMETRY.size} bytes, little-endian)"
    rows = _doc_table(ROOT / "docs" / "console_protocol.md", heading)
    assert rows == list(frames.TELEMETRY.fields)


# --- names written in the QA limits ------------------------------------------------------


@pytest.mark.parametrize("path", sorted((ROOT / "limits").glob("*.toml")), ids=lambda p: p.name)
def test_limits_name_the_firmwares_end_reasons_and_faults(path: Path) -> None:
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    for kpi, names in (("end_reason", series.END_NAMES), ("fault", series.FAULT_NAMES)):
        if "equals" in data.get(kpi, {}):
            assert data[kpi]["equals"] in names, f"{path.name}: [{kpi}] equals"
