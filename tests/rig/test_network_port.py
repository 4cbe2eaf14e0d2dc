"""Boards on another machine: `--port` takes pyserial's URLs -- rfc2217://
(ser2net, LabGrid's exporters) and socket:// (raw TCP) -- here served on
loopback by hil/farm/share.py in front of a virtual board. `make test-net`
runs the whole `dut` suite this way."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Generator
from pathlib import Path

import pytest
from conftest import heatrig, parse
from serial import rfc2217

from hil.farm.share import PortServer
from hil.paths import ROOT
from hil.rig.board import Board, BoardError
from hil.rig.targets import SerialTarget, SimTarget
from hil.rig.urlhandler import protocol_rfc2217
from hil.rig.vboard import VirtualBoard

SHORT = """
[scenario]
name = "over the network"
duration_s = 20.0
[puffing]
regime = "hci"
"""


@pytest.fixture(scope="module")
def vboard(tmp_path_factory: pytest.TempPathFactory) -> Generator[VirtualBoard, None, None]:
    with VirtualBoard(tmp_path_factory.mktemp("netboard") / "flash") as vb:
        yield vb


@pytest.fixture
def server(vboard: VirtualBoard) -> Generator[PortServer, None, None]:
    with PortServer(vboard.port) as srv:
        yield srv


def test_the_console_tests_run_through_an_rfc2217_server_on_loopback() -> None:
    """A slice of the `dut` suite through RFC 2217, the board holding a user's
    records, which are byte-identical afterwards."""
    r = subprocess.run(
        [
            sys.executable, "-m", "tests.board_session", "--rfc2217", "--",
            sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "dut",
            "--target", "serial", "--port", "{port}", "tests/rig/test_console_args.py",
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )  # fmt: skip
    out = r.stdout
    assert r.returncode == 0, out[-3000:] + r.stderr[-2000:]
    assert "board_session: rfc2217://127.0.0.1:" in out
    assert "8 passed" in out and ": byte-identical;" in out  # the file's tests that take `dut`


def test_a_run_through_rfc2217_gives_the_simulators_telemetry(
    server: PortServer, tmp_path: Path
) -> None:
    board = SerialTarget(server.url, 115200, workdir=tmp_path)
    sim = SimTarget()
    try:
        got = board.run(parse(SHORT))
        want = sim.run(parse(SHORT))
    finally:
        board.close()
        sim.close()
    assert got.series.meta["target"] == f"serial {server.url}"

    def csv(text: str) -> str:
        return "\n".join(x for x in text.splitlines() if not x.startswith("# target:"))

    assert csv(got.series.to_csv()) == csv(want.series.to_csv())


def test_the_client_negotiates_the_line_once_and_keeps_timeouts_to_itself(
    server: PortServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pyserial's own client would negotiate again (and wait 50 ms) at every
    timeout change, which the rig makes at every read."""
    calls: list[int] = []
    original = rfc2217.Serial._reconfigure_port  # type: ignore[attr-defined]

    def counted(self: rfc2217.Serial) -> None:
        calls.append(1)
        original(self)

    monkeypatch.setattr(rfc2217.Serial, "_reconfigure_port", counted)
    b = Board(server.url, 115200)
    try:
        assert isinstance(b.serial, protocol_rfc2217.Serial)
        b.to_repl()
        assert b.info().platform == "linux"
        assert b.eval("1 + 1") == 2
        b.serial.baudrate = 57600  # a line setting: negotiated
    finally:
        b.close()
    assert len(calls) == 2  # at the open, and for the new baud rate


def test_a_raw_socket_url_works_too(vboard: VirtualBoard) -> None:
    with PortServer(vboard.port, raw=True) as srv:
        assert srv.url.startswith("socket://127.0.0.1:")
        b = Board(srv.url, 115200)
        try:
            b.to_repl()
            assert b.eval("2 + 3") == 5
        finally:
            b.close()


def test_one_client_at_a_time(server: PortServer) -> None:
    b = Board(server.url, 115200)
    try:
        b.to_repl()
        second = socket.create_connection((server.host, server.port), timeout=5)
        second.settimeout(5)
        assert second.recv(16) == b""  # refused: closed at once
        second.close()
        assert b.eval("3 + 4") == 7  # the first goes on
    finally:
        b.close()
    again = Board(server.url, 115200)  # and once it has left, the next one gets in
    try:
        again.to_repl()
    finally:
        again.close()
    assert server.clients == 2


def test_a_url_with_nothing_behind_it_says_what_to_check() -> None:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # a port nobody listens on
    r = heatrig("deploy", "--port", f"rfc2217://127.0.0.1:{port}")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert f"cannot reach rfc2217://127.0.0.1:{port}" in r.stderr
    assert "Connection refused" in r.stderr and "ser2net" in r.stderr
    r = heatrig("deploy", "--port", "telnet://127.0.0.1:1")
    assert r.returncode == 2 and "protocol 'telnet' not known" in r.stderr
    assert "rfc2217://HOST:PORT" in r.stderr
    with pytest.raises(BoardError, match="cannot reach socket://"):
        Board(f"socket://127.0.0.1:{port}", 115200)
