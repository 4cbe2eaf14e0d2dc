"""One version for the kit: FIRMWARE_VERSION in firmware/version.py, which
pyproject.toml reads at install time ([tool.setuptools.dynamic])."""

from __future__ import annotations

from importlib import metadata

from hil.paths import firmware_version


def test_the_installed_package_has_the_firmware_version() -> None:
    installed = metadata.version("heatrig")
    assert installed == firmware_version(), (
        f"heatrig is installed as {installed}, the firmware says {firmware_version()}: "
        "reinstall (make refreshes .venv when firmware/version.py changes)"
    )
