"""`heatrig update --port PORT IMAGE` on the virtual board: deployed with its
update key, the firmware running in real time (processor in the loop), the
image sent over its console through pyserial, switched, booted on trial."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from update_images import image_file, images, test_key  # noqa: F401  fixtures

from hil import cli
from hil.rig import deploy
from hil.rig.board import Board
from hil.rig.vboard import VirtualBoard
from hil.update import image

# about a minute of real time (the firmware's main loop takes two console lines
# a pass): in make update-sweep, not in make test
pytestmark = pytest.mark.skipif(
    os.environ.get("HEATRIG_UPDATE_SWEEP") != "full", reason="make update-sweep runs it"
)


def test_update_over_the_virtual_boards_console(
    tmp_path: Path, image_file: Callable[[str], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path = image_file("new")
    with VirtualBoard(tmp_path / "flash") as vb:
        board = Board(vb.port, 115200)
        try:
            deploy.deploy(board, start=False, say=lambda _m: None)
            key = image.load_public_key(image.TEST_PUBLIC_KEY)
            deploy.provision_update_keys(board, [image.modulus_hex(key)])
            board.hard_reset()
            deploy.wait_boot(board, deploy.BOOT_TIMEOUT_S)
        finally:
            board.close()
        t0 = time.monotonic()
        assert cli.main(["update", "--port", vb.port, str(path)]) == 0
        wall = time.monotonic() - t0
        out = capsys.readouterr().out
        assert "received and verified by the kit" in out, out
        assert "update trial 0.2.0 slot=a" in out, out
        size = path.stat().st_size
        print(f"console update on the virtual board: {size} bytes, {wall:.1f} s wall")
        assert (vb.flash / "fw_a" / "manifest.json").exists()
        assert vb.boots >= 2  # the switch reset it
