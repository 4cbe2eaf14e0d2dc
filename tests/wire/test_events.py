"""The console words the host reads (hil/wire/events.py) are the ones the
device writes: each is the start of a string literal that the firmware or
the simulator sends as an event, a reply or run info."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from hil.paths import FIRMWARE_DIR, SIM_DIR
from hil.wire import events

# the device's senders, and which argument carries the text
_SENDERS = {"event": 0, "_event": 0, "reply": 0, "info": 0, "error": 1}

FIRMWARE_WORDS = [
    "BOOT", "STATE", "FAULT", "REFUSED", "KIT", "CHARGE", "PUFF", "SESSION", "CALIB", "VERSION",
    "NO_CHANNEL",
]  # fmt: skip
SIM_WORDS = ["SIM_START", "SIM_STEPS", "SIM_END", "SIM_REBOOT", "PAUSED"]


def _leading_text(node: ast.expr) -> str | None:
    """The literal text a message starts with: "a " + x, "a %d" % x, f"a {x}"."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _leading_text(node.left)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod):
        text = _leading_text(node.left)
        return None if text is None else text.split("%", 1)[0]
    if isinstance(node, ast.JoinedStr) and node.values:
        return _leading_text(node.values[0])
    return None


def _sender_arg(call: ast.Call) -> ast.expr | None:
    f = call.func
    name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""
    i = _SENDERS.get(name)
    return call.args[i] if i is not None and len(call.args) > i else None


def sent_texts(paths: list[Path]) -> set[str]:
    """The leading literal of every message the sources send, directly or
    through a variable (`msg = "state " + name` ... `event(msg)`)."""
    out: set[str] = set()
    for path in paths:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        assigned: dict[str, list[ast.expr]] = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
                assigned.setdefault(node.targets[0].id, []).append(node.value)
        for node in ast.walk(tree):
            arg = _sender_arg(node) if isinstance(node, ast.Call) else None
            if arg is None:
                continue
            values = assigned.get(arg.id, []) if isinstance(arg, ast.Name) else [arg]
            out |= {t for t in map(_leading_text, values) if t}
    return out


def is_sent(word: str, texts: set[str]) -> bool:
    """Some message starts with `word` as a whole word."""
    for t in texts:
        rest = t[len(word) :]
        if t.startswith(word) and (rest == "" or rest[0] == " " or word[-1] in " ="):
            return True
    return False


FIRMWARE = sorted(FIRMWARE_DIR.glob("*.py"))
SIM = sorted(SIM_DIR.rglob("*.py"))


@pytest.mark.parametrize("name", FIRMWARE_WORDS)
def test_the_firmware_sends_the_word(name: str) -> None:
    word = getattr(events, name)
    assert is_sent(word, sent_texts(FIRMWARE)), f"no firmware message starts with {word!r}"


@pytest.mark.parametrize("name", SIM_WORDS)
def test_the_simulator_sends_the_word(name: str) -> None:
    word = getattr(events, name)
    assert is_sent(word, sent_texts(SIM)), f"no simulator message starts with {word!r}"


def test_every_word_is_checked() -> None:
    words = {n for n, v in vars(events).items() if n.isupper() and isinstance(v, str)}
    assert words == set(FIRMWARE_WORDS) | set(SIM_WORDS)


def test_a_reworded_event_is_caught(tmp_path: Path) -> None:
    app = (FIRMWARE_DIR / "app.py").read_text(encoding="utf-8")
    assert app.count('"kit "') == 1
    (tmp_path / "app.py").write_text(app.replace('"kit "', '"kit_state "'), encoding="utf-8")
    others = [p for p in FIRMWARE if p.name != "app.py"]
    assert is_sent(events.KIT, sent_texts(FIRMWARE))
    assert not is_sent(events.KIT, sent_texts([*others, tmp_path / "app.py"]))


def test_words_are_matched_whole() -> None:
    assert is_sent("kit", {"kit "}) and is_sent("paused t_us=", {"paused t_us="})
    assert not is_sent("kit", {"kits "}) and not is_sent("sim end", {"sim ending "})
