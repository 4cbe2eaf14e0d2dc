"""Names of the simulator's plant parameters (sim/models/params.py), read from its
source so that scenario files are checked against the real list."""

from __future__ import annotations

import ast
import contextlib

from hil.paths import SIM_DIR


def _tree() -> ast.Module:
    return ast.parse((SIM_DIR / "models" / "params.py").read_text())


def _scalar_names() -> tuple[str, ...]:
    for node in ast.walk(_tree()):
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "DEFAULTS" for t in node.targets
        ):
            assert isinstance(node.value, ast.Dict)
            return tuple(
                str(k.value)
                for k, v in zip(node.value.keys, node.value.values, strict=True)
                if isinstance(k, ast.Constant) and not isinstance(v, ast.Tuple)
            )
    raise RuntimeError("sim/models/params.py has no DEFAULTS")


def _signed_names() -> tuple[str, ...]:
    """The parameters that may be negative (SIGNED in params.py)."""
    for node in ast.walk(_tree()):
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "SIGNED" for t in node.targets
        ):
            return tuple(ast.literal_eval(node.value))
    return ()


def defaults() -> dict[str, object]:
    """The defaults written as literals in params.py (the rest are read from board.py)."""
    for node in ast.walk(_tree()):
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "DEFAULTS" for t in node.targets
        ):
            assert isinstance(node.value, ast.Dict)
            out: dict[str, object] = {}
            for k, v in zip(node.value.keys, node.value.values, strict=True):
                if isinstance(k, ast.Constant):
                    with contextlib.suppress(ValueError):
                        out[str(k.value)] = ast.literal_eval(v)
            return out
    raise RuntimeError("sim/models/params.py has no DEFAULTS")


PLANT_PARAMS = _scalar_names()
SIGNED_PARAMS = _signed_names()
