"""Runs tests/update/device_harness.py in the unix port: the firmware's
update code on a flash that can lose power at any byte."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from hil.simulator import toolchain
from hil.update import image
from hil.wire import store_format

HERE = Path(__file__).parent
SCRIPT = (HERE / "device_harness.py").read_text()


def provision(flash: Path, *, keys: list[Any] | None = None, hw: str | None = None) -> None:
    """A unit as the factory leaves it: settings, calibration, a bond, the
    registration, and the update key."""
    flash.mkdir(parents=True, exist_ok=True)
    pub = image.load_public_key(image.TEST_PUBLIC_KEY)
    files = {
        "settings.a": store_format.slot_file({"profile": "standard", "telemetry": False}),
        "calib.a": store_format.slot_file({"r0_uohm": 801000, "tcr_ppm": 3490}),
        "counters.a": store_format.slot_file({"sessions": 7, "puffs": 84}),
        "bonds.a": store_format.slot_file(
            {"bonds": [[2, "AAECAwQFBg==", "AAECAwQFBgcICQoLDA0ODw=="]]}
        ),
        "registration.a": store_format.slot_file({"registered": True, "date": 1767225600}),
        "upkeys.a": store_format.slot_file(
            image.keys_record(*(keys if keys is not None else [pub]))
        ),
    }
    if hw is not None:
        files["hw.a"] = store_format.slot_file({"rev": hw})
    for name, data in files.items():
        (flash / name).write_bytes(data)


def run_device(flash: Path, script: str, **cfg: Any) -> Any:
    cfg = {"flash": str(flash), "script": script, **cfg}
    code = f"CFG = {json.dumps(cfg)}\n" + SCRIPT
    argv, env = toolchain.micropython_command(
        ["-c", code], heap="2M", modules=toolchain.sim_modules()
    )
    r = subprocess.run(argv, capture_output=True, text=True, cwd=flash, env=env, check=False)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])
