"""Garbage on the link, both ways: random bytes, cut lines and frames, a 10 kB
line. The firmware keeps serving and changes nothing; the rig reports what it
could not read and resynchronises. Runs on the simulator and on a board."""

from __future__ import annotations

import random

import pytest

from hil.rig.dut import Dut

pytestmark = pytest.mark.plant  # the plant's @plant channel puts the noise on the link


def _state(dut: Dut) -> tuple[str, str, str]:
    """What the firmware is and has stored (the cell voltage left out: it moves)."""
    status = " ".join(w for w in dut.command("status").split() if not w.startswith("cell_mv="))
    return status, dut.command("settings"), dut.command("cal")


def _telemetry_flows(dut: Dut) -> None:
    """Telemetry still comes, every frame in sequence (at the control rate
    for the first second after boot, then asleep at 1 Hz)."""
    n0 = len(dut.telemetry())
    dut.advance(3.0)
    seq = dut.telemetry().cols["seq"][n0:]
    assert len(seq) >= 3
    assert ((seq[1:] - seq[:-1]) % 65536 == 1).all()


# --- into the firmware ---------------------------------------------------------------


RING = 260  # the ESP32's console input between two main-loop passes (sim/mpapi/vstdin.py)


def test_random_bytes_change_nothing_and_the_console_keeps_serving(dut: Dut) -> None:
    """10 kB of noise, as a link that respects the ESP32's input ring carries
    it: each part with a line end and `ver` fits in one main-loop pass."""
    dut.start()
    before = _state(dut)
    rng = random.Random(3)
    noise = bytes(rng.randrange(256) for _ in range(10_000))  # Ctrl-C and Ctrl-D included
    answered = []
    part = RING - 1 - len(b"\nver\n")
    for k in range(0, len(noise), part):
        dut.send_raw(noise[k : k + part])
        answered += dut.resync()
    assert answered, "the firmware answered none of the garbage lines"
    assert all(r.startswith("ERR ") for r in answered), answered
    assert _state(dut) == before
    _telemetry_flows(dut)


def test_a_burst_beyond_the_input_ring_is_lost_and_the_console_recovers(dut: Dut) -> None:
    """10 kB in one go: the ESP32 keeps what its ring holds in a pass and
    drops the rest, the line end with it. The next line end closes the
    line, with an error; nothing changed."""
    dut.start()
    before = _state(dut)
    dut.send_raw(b"start" + b"x" * 10_240 + b"\n")
    assert dut.resync() == ["ERR 4 line longer than 120 bytes"]
    assert _state(dut) == before


def test_cut_lines_get_an_error_each_and_the_next_command_works(dut: Dut) -> None:
    dut.start()
    dut.send_raw(b"set profile ec\n")  # cut short, then the line ends
    dut.send_raw(b"cal 8120\n")
    assert dut.sync() == ["ERR 5 unknown profile ec", "ERR 2 usage: cal [R0_UOHM TCR_PPM]"]
    dut.send_raw(b"stat")  # cut with no line end: runs into the next line
    assert dut.command("ver", check=False) == "ERR 1 unknown command statver"
    assert dut.sync() == []
    assert dut.command("settings") == "OK profile=standard telemetry=1"


# --- into the rig ----------------------------------------------------------------------


def test_random_bytes_from_the_device_are_reported_and_skipped(dut: Dut) -> None:
    dut.start()
    link = dut.live.link if dut.live else None
    assert link is not None
    before = link.decoder.stats.text_bytes
    dut.plant("noise 10000 7")  # its reply comes after the noise: the rig found it
    assert link.decoder.stats.text_bytes - before >= 9_000
    assert "unframed bytes" in (dut.log_path.read_text() if dut.log_path else "")
    _telemetry_flows(dut)
    assert dut.command("ver").startswith("OK heatrig")


def test_a_cut_frame_from_the_device_is_given_up_on(dut: Dut) -> None:
    dut.start()
    link = dut.live.link if dut.live else None
    assert link is not None
    dut.plant("cut")  # a telemetry frame's first 17 bytes; the reply follows inside its span
    assert link.decoder.stats.resyncs + link.decoder.stats.bad_crc >= 1
    _telemetry_flows(dut)


def test_a_10_kB_line_from_the_device_is_reported_and_skipped(dut: Dut) -> None:
    dut.start()
    link = dut.live.link if dut.live else None
    assert link is not None
    before = link.decoder.stats.text_bytes
    dut.plant("line 10240")
    assert link.decoder.stats.text_bytes - before == 10_241
    _telemetry_flows(dut)
