"""Where the project's own files are, wherever heatrig is run from."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# HEATRIG_FIRMWARE_DIR: another copy of firmware/ (mutation testing runs the
# tests against mutated copies, one per worker)
FIRMWARE_DIR = Path(os.environ.get("HEATRIG_FIRMWARE_DIR", ROOT / "firmware"))
SIM_DIR = ROOT / "sim"
SCENARIOS_DIR = ROOT / "scenarios"
BUILD_DIR = Path(os.environ.get("HEATRIG_BUILD_DIR", ROOT / "build"))
RESULTS_DIR = Path(os.environ.get("HEATRIG_RESULTS_DIR", ROOT / "results"))


def firmware_version() -> str:
    """FIRMWARE_VERSION as written in firmware/version.py."""
    for line in (FIRMWARE_DIR / "version.py").read_text().splitlines():
        if line.startswith("FIRMWARE_VERSION"):
            return line.split("=", 1)[1].strip().strip("\"'")
    raise RuntimeError("firmware/version.py has no FIRMWARE_VERSION")
