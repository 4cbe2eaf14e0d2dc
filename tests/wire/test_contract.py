"""contract.py reads the wire contract from the device's source: changed
copies of the firmware's files show that what the host decodes follows the
source, and that a change only one side makes is refused, naming the file."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hil.paths import FIRMWARE_DIR, ROOT, SIM_DIR
from hil.wire import ble_flags, contract, frames

TEL_FMT = 'FMT = "<HIBBBBBhhHHHHH"'
TEL_LEN = "PAYLOAD_LEN = const(25)"
TEL_LAST = "heater_mv u16 (on-phase voltage)"


def _edited(src: Path, dest: Path, *edits: tuple[str, str]) -> Path:
    """A copy of `src` at `dest` with each (old, new) replaced once."""
    text = src.read_text(encoding="utf-8")
    for old, new in edits:
        assert text.count(old) == 1, f"{src.name}: {old!r} is not there once"
        text = text.replace(old, new)
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(text, encoding="utf-8")
    return dest


def _copy(tmp_path: Path, src: Path, *edits: tuple[str, str]) -> contract.SourceConstants:
    return contract.read(_edited(src, tmp_path / src.name, *edits))


# --- payload layouts ---------------------------------------------------------------------


def test_the_layouts_are_the_device_formats() -> None:
    for layout, src, fmt in (
        (frames.TELEMETRY, contract.firmware("telemetry"), "FMT"),
        (frames.PLANT, contract.sim("truth"), "FMT"),
        (frames.POWER, contract.firmware("charger"), "FMT"),
        (frames.PLANT_POWER, contract.sim("truth"), "POWER_FMT"),
    ):
        assert layout.fmt == src.text(fmt)
        assert layout.path == src.path


def test_a_field_list_in_the_docstring_names_the_payload(tmp_path: Path) -> None:
    src = _copy(
        tmp_path,
        FIRMWARE_DIR / "telemetry.py",
        ("duty u16", "duty_u16 u16"),
    )
    layout = src.layout("FMT", "PAYLOAD_LEN")
    assert layout.names[9] == "duty_u16"
    assert np.dtype(layout.numpy_fields()).names == layout.names
    with pytest.raises(contract.ContractError, match=r"telemetry\.py.*duty_u16"):
        layout.check_names(frames.TelemetryFrame._fields, "TelemetryFrame")


def test_a_format_the_docstring_does_not_follow_is_refused(tmp_path: Path) -> None:
    src = _copy(
        tmp_path,
        FIRMWARE_DIR / "telemetry.py",
        (TEL_FMT, 'FMT = "<HIBBBBBhhHHHHHH"'),
        (TEL_LEN, "PAYLOAD_LEN = const(27)"),
    )
    with pytest.raises(contract.ContractError, match=r"telemetry\.py: FMT packs 15 fields.* 14"):
        src.layout("FMT", "PAYLOAD_LEN")


def test_a_field_type_changed_on_one_side_is_refused(tmp_path: Path) -> None:
    src = _copy(tmp_path, FIRMWARE_DIR / "telemetry.py", (TEL_FMT, 'FMT = "<HIBBBBBHhHHHHH"'))
    with pytest.raises(contract.ContractError, match=r"telemetry\.py: setpoint_dc is i16"):
        src.layout("FMT")


def test_a_length_constant_must_be_the_formats_size(tmp_path: Path) -> None:
    src = _copy(tmp_path, FIRMWARE_DIR / "telemetry.py", (TEL_LEN, "PAYLOAD_LEN = const(26)"))
    src.layout("FMT")  # the format and its fields agree
    with pytest.raises(contract.ContractError, match=r"PAYLOAD_LEN is 26, FMT packs 25"):
        src.layout("FMT", "PAYLOAD_LEN")


def test_a_field_added_on_both_sides_reaches_the_layout(tmp_path: Path) -> None:
    src = _copy(
        tmp_path,
        FIRMWARE_DIR / "telemetry.py",
        (TEL_FMT, 'FMT = "<HIBBBBBhhHHHHHh"'),
        (TEL_LEN, "PAYLOAD_LEN = const(27)"),
        (TEL_LAST, TEL_LAST + ", blade_dc i16"),
    )
    layout = src.layout("FMT", "PAYLOAD_LEN")
    assert (layout.size, layout.fields[-1]) == (27, ("blade_dc", "i16"))
    assert np.dtype(layout.numpy_fields()).itemsize == 27
    # the host's typed view of the frame must follow by hand: refused until it does
    with pytest.raises(contract.ContractError, match="blade_dc"):
        layout.check_names(frames.TelemetryFrame._fields, "TelemetryFrame")


def test_the_second_layout_of_a_file_is_told_apart(tmp_path: Path) -> None:
    src = _copy(
        tmp_path,
        SIM_DIR / "truth.py",
        ('POWER_FMT = "<Q13iB"', 'POWER_FMT = "<Q14iB"'),
        ("hchg_ua i32,", "hchg_ua i32, spare_ua i32,"),
        ("POWER_LEN = 61", "POWER_LEN = 65"),
    )
    assert src.layout("FMT", "PAYLOAD_LEN").names == frames.PLANT.names
    assert src.layout("POWER_FMT", "POWER_LEN").names[-2:] == ("spare_ua", "io")


def test_a_format_without_a_field_list_is_refused(tmp_path: Path) -> None:
    src = _copy(tmp_path, FIRMWARE_DIR / "telemetry.py", ("as FMT packs it", "as packed"))
    with pytest.raises(contract.ContractError, match=r"telemetry\.py: the docstring has no field"):
        src.layout("FMT")


@pytest.mark.parametrize(
    ("fmt", "why"),
    [('">HIBBBBBhhHHHHH"', "little-endian"), ('"<HIBBBBBhhHHHHd"', "little-endian")],
)
def test_formats_the_host_cannot_decode_are_refused(tmp_path: Path, fmt: str, why: str) -> None:
    src = _copy(tmp_path, FIRMWARE_DIR / "telemetry.py", (TEL_FMT, f"FMT = {fmt}"))
    with pytest.raises(contract.ContractError, match=why):
        src.layout("FMT")


def test_a_malformed_field_is_refused(tmp_path: Path) -> None:
    src = _copy(tmp_path, FIRMWARE_DIR / "telemetry.py", ("duty u16", "duty u24"))
    with pytest.raises(contract.ContractError, match=r"'duty u24' in the fields of FMT"):
        src.layout("FMT")


# --- names, codes, keys ------------------------------------------------------------------


def test_names_out_of_step_with_their_codes_are_refused(tmp_path: Path) -> None:
    src = _copy(
        tmp_path,
        FIRMWARE_DIR / "states.py",
        ('"end_warning", "cooling"', '"cooling", "end_warning"'),
    )
    with pytest.raises(contract.ContractError, match=r"states\.py: NAMES\[3\] is 'cooling'"):
        src.enum("NAMES")


def test_a_renamed_constant_fails_naming_the_file(tmp_path: Path) -> None:
    src = _copy(tmp_path, FIRMWARE_DIR / "framing.py", ("T_TELEMETRY = ", "T_CONTROL = "))
    assert src.prefixed("T_")["CONTROL"] == frames.T_TELEMETRY
    with pytest.raises(contract.ContractError, match=r"framing\.py: no integer constant named"):
        src.integer("T_TELEMETRY")


def test_dict_keys_in_the_order_written(tmp_path: Path) -> None:
    src = _copy(
        tmp_path,
        FIRMWARE_DIR / "profiles.py",
        ('    "eco": (', '    "mild": ('),
    )
    assert src.keys("PROFILES") == ("standard", "mild", "intense")


def test_the_profiles_flags_must_be_micropythons(tmp_path: Path) -> None:
    src = _copy(
        tmp_path,
        FIRMWARE_DIR / "ble_table.py",
        ("NOTIFY = const(0x0010)", "NOTIFY = const(0x0020)"),
    )
    with pytest.raises(contract.ContractError, match=r"ble_table\.py: NOTIFY is 0x0020"):
        ble_flags.profile_flags(src, ble_flags.BLE_FLAGS)


# --- the whole host, on a changed device -------------------------------------------------


def _host_on(tmp_path: Path, code: str) -> subprocess.CompletedProcess[str]:
    """Run `code` in a fresh interpreter whose contract reads tmp_path/firmware and sim."""
    prelude = (
        "from pathlib import Path\n"
        "from hil.wire import contract\n"
        f"contract.FIRMWARE_DIR = Path({str(tmp_path / 'firmware')!r})\n"
        f"contract.SIM_DIR = Path({str(tmp_path / 'sim')!r})\n"
    )
    return subprocess.run(
        [sys.executable, "-c", prelude + code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _device_tree(tmp_path: Path) -> None:
    shutil.copytree(FIRMWARE_DIR, tmp_path / "firmware")
    shutil.copytree(SIM_DIR, tmp_path / "sim", ignore=shutil.ignore_patterns("__pycache__"))


def test_the_host_decodes_a_power_frame_the_firmware_extends(tmp_path: Path) -> None:
    _device_tree(tmp_path)
    charger = tmp_path / "firmware" / "charger.py"
    _edited(
        FIRMWARE_DIR / "charger.py",
        charger,
        ('FMT = "<IBBBBBBBBBBHhHhHhHhHHB"', 'FMT = "<IBBBBBBBBBBHhHhHhHhHHBH"'),
        ("PAYLOAD_LEN = const(35)", "PAYLOAD_LEN = const(37)"),
        ("    leds u8\n", "    leds u8, hchg_ma u16\n"),
    )
    got = _host_on(
        tmp_path,
        "from hil.wire import frames\nfrom hil.qa import power\n"
        "print(frames.KNOWN_LENGTHS[frames.T_POWER], power._FW_DTYPE.itemsize,"
        " power._FW_DTYPE.names[-1])",
    )
    assert got.returncode == 0, got.stderr
    assert got.stdout.split() == ["37", "37", "hchg_ma"]


def test_the_host_refuses_a_telemetry_format_it_was_not_told_of(tmp_path: Path) -> None:
    _device_tree(tmp_path)
    _edited(
        FIRMWARE_DIR / "telemetry.py",
        tmp_path / "firmware" / "telemetry.py",
        (TEL_FMT, 'FMT = "<HIBBBBBhhHHHHHh"'),
        (TEL_LEN, "PAYLOAD_LEN = const(27)"),
    )
    got = _host_on(tmp_path, "import hil.wire.series")
    assert got.returncode != 0
    assert "ContractError" in got.stderr and "telemetry.py: FMT packs 15 fields" in got.stderr


def test_the_host_reads_the_copied_tree(tmp_path: Path) -> None:
    """The two tests above prove something only if an unchanged copy imports."""
    _device_tree(tmp_path)
    got = _host_on(
        tmp_path,
        "import hil.wire.series, hil.qa.power, hil.wire.ble_flags, hil.wire.events\n"
        "from hil.wire import frames\nprint(frames.TELEMETRY.path)",
    )
    assert got.returncode == 0, got.stderr
    assert got.stdout.strip() == str(tmp_path / "firmware" / "telemetry.py")
