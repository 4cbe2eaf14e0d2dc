"""The firmware's console protocol (docs/console_protocol.md), driven live:
every command, its reply and error codes, and that a bad line changes
nothing. Runs on the simulator and, unchanged, on a board."""

from __future__ import annotations

import re

import pytest

from hil.rig.dut import Dut, DutError
from hil.wire import contract

pytestmark = pytest.mark.plant  # the plant supplies the stick, button and faults


def status(dut: Dut) -> dict[str, str]:
    reply = dut.command("status")
    return dict(w.split("=", 1) for w in reply.split()[1:])


def test_version_names_firmware_and_protocol(dut: Dut) -> None:
    dut.start()
    assert re.fullmatch(r"OK heatrig \d+\.\d+\.\d+ protocol 2", dut.command("ver"))


def test_start_and_stop_a_session_from_the_console(dut: Dut) -> None:
    dut.start()
    assert status(dut)["state"] == "sleep"
    dut.command("start")
    dut.wait_state("preheat", timeout_s=0.1)
    dut.wait_state("heating", timeout_s=30)
    dut.command("stop")
    dut.wait_state("cooling", timeout_s=0.1)
    st = status(dut)
    assert (st["state"], st["end"]) == ("cooling", "user_stop")
    assert dut.expect_event(r"^state cooling end=user_stop$", timeout_s=0.1)


def test_start_refused_without_a_stick(dut: Dut) -> None:
    dut.start()
    dut.stick(False)
    dut.command("start")
    assert dut.expect_event(r"^refused stick_missing$", timeout_s=1.0)
    assert status(dut)["state"] == "sleep"
    assert dut.command("start", check=False) == "OK start requested"  # idle: may ask again


def test_start_while_heating_is_an_error_in_state(dut: Dut) -> None:
    dut.start()
    dut.command("start")
    dut.wait_state("preheat", timeout_s=0.1)
    assert dut.command("start", check=False).startswith("ERR 3 ")


@pytest.mark.parametrize(
    ("line", "code"),
    [
        ("frobnicate", 1),  # unknown command
        ("tm sideways", 2),  # bad arguments
        ("faults everything", 2),
        ("set colour blue", 2),
        ("set profile volcano", 5),  # out of range
        ("set telemetry 7", 5),
        ("cal 1 2", 5),
        ("cal eight 3500", 2),
        ("cal 800000", 2),
        ("reset now", 2),
        ("@nosuch hello", 1),  # no such out-of-band channel
    ],
)
def test_a_bad_command_gets_its_error_and_changes_nothing(dut: Dut, line: str, code: int) -> None:
    dut.start()
    before = (status(dut), dut.command("settings"), dut.command("cal"))
    reply = dut.command(line, check=False)
    assert reply.startswith(f"ERR {code} "), reply
    assert (status(dut), dut.command("settings"), dut.command("cal")) == before


def test_an_oversized_line_is_refused_and_the_console_goes_on(dut: Dut) -> None:
    dut.start()
    reply = dut.command("start " + "x" * 200, check=False)
    assert reply == "ERR 4 line longer than 120 bytes"
    dut.advance(0.5)
    assert status(dut)["state"] == "sleep"
    assert dut.command("ver").startswith("OK heatrig")


def test_a_line_of_the_longest_length_is_served_one_byte_more_refused(dut: Dut) -> None:
    longest = contract.firmware("console").integer("MAX_LINE")
    dut.start()
    assert dut.command("ver".ljust(longest)).startswith("OK heatrig")
    reply = dut.command("ver".ljust(longest + 1), check=False)
    assert reply == f"ERR 4 line longer than {longest} bytes"
    assert dut.command("ver").startswith("OK heatrig")


def test_a_line_that_is_not_utf8(dut: Dut) -> None:
    dut.start()
    dut.send_raw(b"st\xffatus\n")
    assert dut.sync() == ["ERR 6 not UTF-8"]


def test_settings_are_stored_and_survive_a_reset(dut: Dut) -> None:
    dut.start()
    assert dut.command("settings") == "OK profile=standard telemetry=1"
    assert dut.command("set profile eco") == "OK profile eco"
    assert dut.command("profile") == "OK eco of eco,intense,standard"
    dut.reset()
    assert dut.command("settings") == "OK profile=eco telemetry=1"
    assert status(dut)["profile"] == "eco"


def test_profile_cannot_change_while_heating(dut: Dut) -> None:
    dut.start()
    dut.command("start")
    dut.wait_state("preheat", timeout_s=0.1)
    assert dut.command("set profile eco", check=False).startswith("ERR 3 ")
    assert status(dut)["profile"] == "standard"


def test_calibration_is_read_written_and_kept_over_a_reset(dut: Dut) -> None:
    """On the session's own unit (the scenario's calibration record, not a
    board's): changed, kept over a reset, and put back."""
    dut.start()
    original = dut.command("cal")
    assert original == "OK r0_uohm=800000 tcr_ppm=3500 stored=1"
    assert dut.command("cal 812000 3420") == "OK cal r0_uohm=812000 tcr_ppm=3420"
    assert dut.command("cal") == "OK r0_uohm=812000 tcr_ppm=3420 stored=1"
    dut.reset()
    assert dut.command("cal") == "OK r0_uohm=812000 tcr_ppm=3420 stored=1"
    assert dut.command("cal 800000 3500") == "OK cal r0_uohm=800000 tcr_ppm=3500"
    assert dut.command("cal") == original


def test_calibration_cannot_change_while_heating(dut: Dut) -> None:
    dut.start()
    dut.command("start")
    dut.wait_state("preheat", timeout_s=0.1)
    assert dut.command("cal 812000 3420", check=False).startswith("ERR 3 ")
    assert dut.command("cal") == "OK r0_uohm=800000 tcr_ppm=3500 stored=1"


def test_fault_log_read_clear_and_fault_reset(dut: Dut) -> None:
    dut.start()
    assert dut.command("faults") == "OK "
    dut.command("start")
    dut.wait_state("heating", timeout_s=30)
    dut.fault("heater_open")
    dut.wait_state("fault", timeout_s=0.05)
    assert dut.expect_event(r"^fault heater_open$", timeout_s=0.1)
    assert re.fullmatch(r"OK heater_open@\d+:\d+", dut.command("faults"))
    dut.command("clear")
    dut.wait_state("sleep", timeout_s=0.1)
    assert status(dut)["fault"] == "none"
    assert dut.command("faults clear") == "OK faults cleared"
    assert dut.command("faults") == "OK "


def test_telemetry_comes_at_the_full_control_rate_and_stops_on_request(dut: Dut) -> None:
    dut.start()
    dut.advance(1.5)
    n_asleep = len(dut.telemetry())
    dut.advance(2.0)
    assert 1 <= len(dut.telemetry()) - n_asleep <= 3  # asleep, the control step runs at 1 Hz
    dut.stick(True)
    dut.press(1.5)
    dut.wait_state("preheat", 2.0)
    n0 = len(dut.telemetry())
    dut.advance(2.0)
    rec = dut.telemetry()
    assert len(rec) - n0 == 200  # heating: 100 Hz
    seq = rec.cols["seq"][n0:]
    assert (seq[1:] - seq[:-1] == 1).all()  # none dropped
    dut.command("tm off")
    dut.advance(1.0)
    n1 = len(dut.telemetry())
    dut.advance(1.0)
    assert len(dut.telemetry()) == n1


def test_plant_commands_are_kept_apart_from_the_console(dut: Dut) -> None:
    dut.start()
    at = dut.plant("at")  # the device time: the boot's one flash write (counters), 0.4 ms
    assert at.startswith("OK t_us=") and 0 <= int(at.split("=")[1]) <= 1000, at
    assert dut.plant("warp 9", check=False).startswith("ERR 1 ")
    assert dut.plant("puff 55", check=False).startswith("ERR 2 ")
    assert dut.plant("ambient 500", check=False).startswith("ERR 2 ")
    assert status(dut)["state"] == "sleep"  # the firmware saw none of it


def test_usb_plug_over_the_plant_channel_starts_a_charge(dut: Dut) -> None:
    dut.start()
    dut.plant("charger_soc 30")
    dut.usb(True)
    dut.expect_event(r"charge usb (pre|cc)", 5.0)


def test_a_failed_wait_says_what_it_expected_what_came_and_where_the_log_is(dut: Dut) -> None:
    dut.start()
    with pytest.raises(DutError) as err:
        dut.wait_state("heating", timeout_s=0.5)
    text = str(err.value)
    assert "expected state heating within 0.5 s of device time" in text
    assert "state=sleep" in text
    assert "dut.log" in text


def test_a_real_time_session(dut: Dut) -> None:
    """The clock runs by itself (the simulator paced to the wall clock, a
    board as it boots): the same commands and waits, bounded in real time."""
    dut.start(real_time=True)
    dut.command("start")
    dut.wait_state("preheat", timeout_s=1.0)
    dut.advance(0.5)
    dut.command("stop")
    dut.wait_state("cooling", timeout_s=1.0)
    rec = dut.telemetry()
    assert 40 <= len(rec) <= 200  # about 100 Hz for well under two seconds
    assert status(dut)["end"] == "user_stop"
