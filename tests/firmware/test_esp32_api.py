"""The firmware uses only what the ESP32 port offers: it type-checks against
the published ESP32 MicroPython stubs, and the check does catch a misuse."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from hil.paths import ROOT
from hil.simulator import toolchain

CONFIG = ROOT / "tests" / "esp32" / "mypy.ini"


def _mypy(*paths: str) -> subprocess.CompletedProcess[str]:
    stubs = toolchain.esp32_stubs_dir()
    if not (stubs / "machine.pyi").exists():
        pytest.fail(f"ESP32 stubs missing from {stubs}: run `make test` (it installs them)")
    cmd = [sys.executable, "-m", "mypy", "--config-file", str(CONFIG)]
    cmd += ["--custom-typeshed-dir", str(stubs), *paths]
    env = dict(os.environ, MYPYPATH=str(stubs))
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=False)


def test_firmware_type_checks_against_the_esp32_api() -> None:
    r = _mypy("firmware")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "no issues found in" in r.stdout


def test_a_misuse_of_machine_pwm_is_caught() -> None:
    r = _mypy("tests/esp32/pwm_misuse.py")
    assert r.returncode == 1, r.stdout
    assert 'pwm_misuse.py:6: error: No overload variant of "duty_u16"' in r.stdout
    assert 'pwm_misuse.py:7: error: "PWM" has no attribute "duty_percent"' in r.stdout
