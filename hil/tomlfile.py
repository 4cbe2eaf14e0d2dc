"""TOML files people write -- scenarios, limits, campaign specs, benchmark
tolerances: read with a syntax error that names its line, then checked
whole, every problem reported at once with the line it is on:

    scenarios/x.toml:12: [puffing] interval_s: must be > 0, got -3
"""

from __future__ import annotations

import difflib
import math
import re
import sys
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


class TomlFileError(ValueError):
    """A file is missing or invalid; str() lists every problem, one per line."""

    def __init__(self, problems: str | list[str]):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


def read(path: Path, error: type[TomlFileError] = TomlFileError) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as e:
        raise error(f"{path}: cannot read: {e.strerror}") from None


_SYNTAX_AT = re.compile(r"\s*\(at line (\d+), column (\d+)\)")


def loads(text: str, where: str, error: type[TomlFileError] = TomlFileError) -> dict[str, Any]:
    """The data of a TOML text; a syntax error is raised as `where:LINE:COLUMN:
    TOML syntax: ...` (`where` names the file)."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        m = _SYNTAX_AT.search(str(e))
        loc = f"{where}:{m.group(1)}:{m.group(2)}" if m else where
        raise error(f"{loc}: TOML syntax: {_SYNTAX_AT.sub('', str(e))}") from None


def is_number(value: Any) -> bool:
    """A finite integer or float (TOML's booleans are not numbers)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def did_you_mean(name: str, allowed: Collection[str]) -> str:
    """` (did you mean 'x'?)` for the closest allowed name, or nothing."""
    hint = difflib.get_close_matches(name, list(allowed), n=1)
    return f" (did you mean {hint[0]!r}?)" if hint else ""


_HEADER = re.compile(r"^\s*(\[\[?)\s*([A-Za-z0-9_.\-\"' ]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"""^\s*("[^"]*"|'[^']*'|[A-Za-z0-9_\-]+)\s*=""")


class Lines:
    """Where the tables and keys of a TOML text were written: a table by its
    dotted path and, in an array of tables, its index."""

    def __init__(self, text: str):
        self.keys: dict[tuple[str, int, str], int] = {}
        self.tables: dict[tuple[str, int], int] = {}
        self.arrays: set[str] = set()  # arrays of tables, [[name]]
        counts: dict[str, int] = {}
        table, index = "", 0
        for no, line in enumerate(text.splitlines(), 1):
            m = _HEADER.match(line)
            if m:
                table = re.sub(r"[\"' ]", "", m.group(2))
                if m.group(1) == "[[":
                    self.arrays.add(table)
                    index = counts.get(table, 0)
                    counts[table] = index + 1
                else:
                    index = 0
                self.tables[(table, index)] = no
                continue
            m = _KEY.match(line)
            if m:
                self.keys.setdefault((table, index, m.group(1).strip("\"'")), no)

    def of(self, table: str, key: str | None = None, index: int = 0) -> int | None:
        """The line of a key (a table's header if the key is a table), else of
        its table (an inline table's: the line of the key that holds it);
        None if neither is in the text."""
        if key is not None:
            if (table, index, key) in self.keys:
                return self.keys[(table, index, key)]
            sub = f"{table}.{key}" if table else key
            if (sub, 0) in self.tables:
                return self.tables[(sub, 0)]
        if (table, index) in self.tables:
            return self.tables[(table, index)]
        parent, _, name = table.rpartition(".")
        return self.keys.get((parent, 0, name)) if name else None


class Checker:
    """Collects the problems of one file, each with its line; raise_problems()
    raises them all as one error."""

    def __init__(self, text: str, where: str):
        self.where = where  # the file, as the problems name it
        self.lines = Lines(text)
        self.problems: list[str] = []

    def at(self, table: str, key: str | None = None, index: int = 0) -> str:
        """`path:line` of a key (else of its table), or the path alone."""
        no = self.lines.of(table, key, index)
        return f"{self.where}:{no}" if no else self.where

    def name(self, table: str, index: int = 0) -> str:
        if not table:
            return "top level"
        if table in self.lines.arrays:
            return f"[[{table}]] #{index + 1}"
        return f"[{table}]"

    def report(self, msg: str, table: str = "", key: str | None = None, index: int = 0) -> None:
        """A problem in the caller's own words, at the line of a key or table."""
        self.problems.append(f"{self.at(table, key, index)}: {msg}")

    def fail(self, table: str, key: str | None, msg: str, index: int = 0) -> None:
        """A problem with a key of a table ("": the top level), or with the
        table itself (no key): `path:line: [table] key: msg`."""
        self.report(
            f"{self.name(table, index)}{' ' + key if key else ''}: {msg}", table, key, index
        )

    def known(self, table: str, key: str, allowed: Collection[str], index: int = 0) -> bool:
        """Whether a table's key is allowed; if not, a problem that names the
        closest allowed key and lists them all."""
        if key in allowed:
            return True
        more = did_you_mean(key, allowed)
        self.fail(table, key, f"unknown key{more}; allowed: {', '.join(allowed)}", index)
        return False

    def check_keys(
        self, data: Mapping[str, Any], table: str, allowed: Collection[str], index: int = 0
    ) -> bool:
        """Every key of a table is allowed (each one that is not is reported)."""
        return all([self.known(table, key, allowed, index) for key in data])  # a list: report all

    def known_table(
        self,
        name: str,
        allowed: Collection[str],
        *,
        unknown: str = "unknown table",
        list_allowed: bool = True,
    ) -> bool:
        """Whether a top-level table is allowed; if not, a problem that names
        the closest one (and lists them all if `list_allowed`)."""
        if name in allowed:
            return True
        listed = "; allowed: " + ", ".join(f"[{a}]" for a in allowed) if list_allowed else ""
        self.fail(name, None, f"{unknown}{did_you_mean(name, allowed)}{listed}")
        return False

    def raise_problems(self, error: type[TomlFileError] = TomlFileError) -> None:
        if self.problems:
            raise error(self.problems)
