"""Every console command takes exactly the arguments docs/console_protocol.md
gives it: a seeded sweep of random argument lists, every command the
firmware's table has, checks that each list outside a command's grammar gets
an error (ERR 2 where the number or the words are wrong) and changes nothing.
Runs on the simulator and, unchanged, on a board."""

from __future__ import annotations

import ast
import binascii
import random
from collections.abc import Callable

import pytest

from hil.paths import FIRMWARE_DIR
from hil.rig.dut import Dut

pytestmark = pytest.mark.plant  # a live session on the plant's unit

SEED = 1515
LISTS_PER_COMMAND = 24


def firmware_commands() -> list[str]:
    """The console's command names, read from the table in firmware/console.py."""
    tree = ast.parse((FIRMWARE_DIR / "console.py").read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Assign)
            and isinstance(node.targets[0], ast.Attribute)
            and node.targets[0].attr == "commands"
            and isinstance(node.value, ast.Dict)
        ):
            return [str(k.value) for k in node.value.keys if isinstance(k, ast.Constant)]
    raise AssertionError("no `self.commands = {...}` table in firmware/console.py")


def _int(word: str) -> bool:
    try:
        int(word)
    except ValueError:
        return False
    return True


def _decodes(op: str, word: str) -> bool:
    """`update begin`'s image id is hex, `update data`'s block base64."""
    try:
        (binascii.unhexlify if op == "begin" else binascii.a2b_base64)(word)
    except (ValueError, binascii.Error):
        return False
    return True


# what each command takes (docs/console_protocol.md): True for an argument list
# in its grammar, whatever the values' ranges
GRAMMAR: dict[str, Callable[[list[str]], bool]] = {
    "ver": lambda a: not a,
    "status": lambda a: not a,
    "start": lambda a: not a,
    "stop": lambda a: not a,
    "clear": lambda a: not a,
    "settings": lambda a: not a,
    "tm": lambda a: a in (["on"], ["off"]),
    "faults": lambda a: a in ([], ["clear"]),
    "profile": lambda a: len(a) <= 1,
    "set": lambda a: len(a) == 2 and a[0] in ("profile", "telemetry", "ble"),
    "cal": lambda a: not a or (len(a) == 2 and all(_int(w) for w in a)),
    "reset": lambda a: a in ([], ["repl"]),
    "update": lambda a: (
        a in (["status"], ["commit"], ["abort"])
        or (len(a) == 3 and a[0] in ("begin", "data") and _int(a[1]) and _decodes(a[0], a[2]))
    ),
}

# words a sweep draws from: every command's own words, numbers, and junk
WORDS = [
    "on", "off", "clear", "repl", "eco", "standard", "intense", "profile", "telemetry",
    "ble", "0", "1", "7", "-1", "812000", "3420", "x", "on,off", "ON", "%s", "\\x00",
    "9" * 30, "é", "--", "@plant", "status",
]  # fmt: skip


LETTERS = "abcdefghijklmnopqrstuvwxyz0123456789_-."


def junk_args(rng: random.Random, takes: Callable[[list[str]], bool]) -> list[str]:
    """A random argument list (1 to 4 words) outside the command's grammar."""
    while True:
        args = [rng.choice(WORDS) for _ in range(rng.randint(1, 4))]
        if rng.random() < 0.3:
            args[rng.randrange(len(args))] = "".join(
                rng.choice("abcdefghijklmnopqrstuvwxyz0123456789_-.")
                for _ in range(rng.randint(1, 9))
            )
        if not takes(args):
            return args


def _state(dut: Dut) -> tuple[str, ...]:
    return tuple(dut.command(c) for c in ("status", "settings", "cal", "faults", "profile"))


def test_every_command_has_a_grammar_here() -> None:
    assert sorted(firmware_commands()) == sorted(GRAMMAR)


def test_the_grammar_holds_its_valid_forms() -> None:
    """The sweep can fail: the valid forms are in the grammar, so the sweep
    never sends them, and lists outside it exist for every command."""
    valid = [
        ("ver", []), ("tm", ["on"]), ("faults", ["clear"]), ("profile", ["eco"]),
        ("set", ["telemetry", "1"]), ("cal", ["812000", "3420"]), ("reset", ["repl"]),
    ]  # fmt: skip
    assert all(GRAMMAR[c](a) for c, a in valid)
    rng = random.Random(SEED)
    assert all(not GRAMMAR[c](junk_args(rng, GRAMMAR[c])) for c in GRAMMAR)


def test_no_command_accepts_arguments_it_does_not_take(dut: Dut) -> None:
    """A seeded sweep: every command, LISTS_PER_COMMAND random argument lists
    outside its grammar each. None may be accepted; a wrong number of words or
    an unknown word is ERR 2 (a known word out of range, e.g. an unknown
    profile, is ERR 5); the device's state is as before."""
    dut.start()
    rng = random.Random(SEED)
    before = _state(dut)
    accepted: list[str] = []
    wrong_code: list[str] = []
    for name in firmware_commands():
        takes = GRAMMAR[name]
        for _ in range(LISTS_PER_COMMAND):
            line = " ".join([name, *junk_args(rng, takes)])
            reply = dut.command(line, check=False)
            if not reply.startswith("ERR "):
                accepted.append(f"{line!r} -> {reply!r}")
            elif not reply.startswith(("ERR 2 ", "ERR 5 ")):
                wrong_code.append(f"{line!r} -> {reply!r}")
        assert _state(dut) == before, f"`{name}` with junk changed the device's state"
    assert accepted == [], f"{len(accepted)} lines accepted: {accepted[:10]}"
    assert wrong_code == []


@pytest.mark.parametrize("name", ["ver", "status", "start", "stop", "clear", "settings"])
def test_a_command_without_arguments_refuses_one_with_err_2(dut: Dut, name: str) -> None:
    dut.start()
    before = _state(dut)
    assert dut.command(f"{name} x", check=False) == f"ERR 2 usage: {name}"
    assert _state(dut) == before


def test_profile_takes_one_name_at_most(dut: Dut) -> None:
    dut.start()
    assert dut.command("profile eco intense", check=False) == "ERR 2 usage: profile [NAME]"
    assert dut.command("profile") == "OK standard of eco,intense,standard"
