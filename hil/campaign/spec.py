"""Campaign specs: many runs of one scenario, as parameter sweeps and
Monte-Carlo draws, in a TOML file (docs/qa.md):

    [campaign]
    name = "hci_monte_carlo"
    scenario = "hci"            # a built-in scenario, or a path relative to this file
    runs = 200                  # Monte-Carlo draws (per sweep point)
    seed = 1                    # the campaign's seed: every run's seed derives from it
    # limits = "x.toml"         # heating limits (default: limits/<profile>-<regime>.toml)
    # power_limits = "y.toml"   # power limits (default: limits/power-<scenario>.toml)

    [sweep]                     # every combination of the listed values
    "ambient.temp_c" = [10.0, 25.0, 40.0]

    [draw]                      # one distribution per scenario key
    "unit.r0_ohm" = { normal = [0.80, 0.0267], clip = [0.72, 0.88] }
    "holder.soc_pct" = { uniform = [40.0, 100.0] }
    "unit.calibrated" = { choice = [true, false] }

Keys are scenario keys as `table.key` (those of docs/scenarios.md). The plan
-- every run's seed and parameters -- is a pure function of the spec: run i's
seed derives from the campaign seed and i, its draws from its own seed, and
that seed is also the run's scenario seed (ADC noise). So one run can be
repeated alone, anywhere, from the spec and its seed.

The whole spec is checked before anything runs; problems carry their line.
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hil import tomlfile
from hil.paths import SCENARIOS_DIR
from hil.scenarios import scenario

MAX_RUNS = 100_000
DISTRIBUTIONS = ("uniform", "normal", "choice")
_TABLES = ("scenario", "ambient", "holder", "charger", "usb", "unit", "start", "puffing", "plant")


class CampaignError(tomlfile.TomlFileError):
    """The campaign spec is invalid, or a campaign cannot run; the message says
    what to change."""


@dataclass(frozen=True)
class Draw:
    key: str
    dist: str  # uniform | normal | choice
    args: tuple[Any, ...]
    clip: tuple[float, float] | None = None

    def sample(self, rng: np.random.Generator) -> Any:
        if self.dist == "choice":
            return self.args[int(rng.integers(len(self.args)))]
        for _ in range(1000):  # a truncated distribution: draw again outside the clip
            if self.dist == "uniform":
                x = float(rng.uniform(self.args[0], self.args[1]))
            else:
                x = float(rng.normal(self.args[0], self.args[1]))
            if self.clip is None or self.clip[0] <= x <= self.clip[1]:
                return x
        assert self.clip is not None
        return min(max(x, self.clip[0]), self.clip[1])

    def describe(self) -> str:
        a = ", ".join(f"{v:g}" if isinstance(v, float) else repr(v) for v in self.args)
        clip = f" within {self.clip[0]:g}..{self.clip[1]:g}" if self.clip else ""
        return f"{self.dist}({a}){clip}"


@dataclass
class CampaignSpec:
    name: str
    path: Path
    scenario_path: Path
    scenario_text: str
    description: str = ""
    runs: int = 1
    seed: int = 1
    limits_path: Path | None = None
    power_limits_path: Path | None = None
    sweep: dict[str, list[Any]] = field(default_factory=dict)
    draws: list[Draw] = field(default_factory=list)

    @property
    def total_runs(self) -> int:
        return self.runs * math.prod(len(v) for v in self.sweep.values())


@dataclass(frozen=True)
class Job:
    """One run of a campaign: everything a worker needs, with no file access
    beyond its own heatrig tree."""

    index: int
    seed: int
    params: dict[str, Any]  # the swept and drawn scenario keys
    scenario_text: str
    scenario_name: str
    limits_text: str | None
    limits_label: str | None
    keep_telemetry: bool = False
    power_limits_text: str | None = None
    power_limits_label: str | None = None

    @property
    def overrides(self) -> dict[str, Any]:
        return {**self.params, "scenario.seed": self.seed}


def load(path: Path) -> CampaignSpec:
    return parse(tomlfile.read(path, CampaignError), path)


def parse(text: str, path: Path) -> CampaignSpec:
    data = tomlfile.loads(text, str(path), CampaignError)
    ck = tomlfile.Checker(text, str(path))
    for key in data:
        ck.known_table(key, ("campaign", "sweep", "draw"))
    head = data.get("campaign", {})
    ck.check_keys(
        head,
        "campaign",
        ("name", "description", "scenario", "runs", "seed", "limits", "power_limits"),
    )
    name = head.get("name")
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.\-]+", name):
        ck.fail("campaign", "name", "needs a name of letters, digits, _ . -")
        name = "campaign"
    runs = head.get("runs", 1)
    if isinstance(runs, bool) or not isinstance(runs, int) or runs < 1:
        ck.fail("campaign", "runs", f"must be an integer >= 1, got {runs!r}")
        runs = 1
    seed = head.get("seed", 1)
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
        ck.fail("campaign", "seed", f"must be an integer >= 0, got {seed!r}")
        seed = 1
    scen_path = _scenario_path(ck, head.get("scenario"), path)
    limits_path = _file(ck, head, "limits", path)
    power_limits_path = _file(ck, head, "power_limits", path)
    spec = CampaignSpec(
        name=name,
        path=path,
        scenario_path=scen_path or Path("?"),
        scenario_text=scen_path.read_text(encoding="utf-8") if scen_path else "",
        description=str(head.get("description", "")),
        runs=runs,
        seed=seed,
        limits_path=limits_path,
        power_limits_path=power_limits_path,
    )
    for key, values in data.get("sweep", {}).items():
        if not isinstance(values, list) or not values:
            ck.fail("sweep", key, "must be a non-empty list of values")
            continue
        spec.sweep[key] = values
    for key, d in data.get("draw", {}).items():
        draw = _draw(ck, key, d)
        if draw is not None:
            spec.draws.append(draw)
    for key in set(spec.sweep) & {d.key for d in spec.draws}:
        ck.report(f"{key}: both swept and drawn; choose one", "sweep", key)
    if spec.total_runs > MAX_RUNS:
        ck.report(f"{spec.total_runs} runs: more than {MAX_RUNS}", "campaign", "runs")
    if scen_path and not ck.problems:
        _check_keys(ck, spec)
    ck.raise_problems(CampaignError)
    return spec


def plan(spec: CampaignSpec, *, keep_telemetry: bool = False) -> list[Job]:
    """Every run of the campaign, in order."""
    limits_text = spec.limits_path.read_text(encoding="utf-8") if spec.limits_path else None
    power_path = spec.power_limits_path
    power_text = power_path.read_text(encoding="utf-8") if power_path else None
    points = list(itertools.product(*spec.sweep.values())) if spec.sweep else [()]
    jobs: list[Job] = []
    seen: set[int] = set()
    for point in points:
        for _ in range(spec.runs):
            i = len(jobs)
            seed = _run_seed(spec.seed, i, seen)
            rng = np.random.default_rng(seed)
            params = dict(zip(spec.sweep, point, strict=True))
            for d in spec.draws:
                params[d.key] = d.sample(rng)
            jobs.append(
                Job(
                    index=i,
                    seed=seed,
                    params=params,
                    scenario_text=spec.scenario_text,
                    scenario_name=str(spec.scenario_path),
                    limits_text=limits_text,
                    limits_label=str(spec.limits_path) if spec.limits_path else None,
                    keep_telemetry=keep_telemetry,
                    power_limits_text=power_text,
                    power_limits_label=str(power_path) if power_path else None,
                )
            )
    return jobs


def _run_seed(campaign_seed: int, index: int, seen: set[int]) -> int:
    """A scenario seed (0..2**31-1) for run `index`, unique in the campaign."""
    k = 0
    while True:
        state = np.random.SeedSequence([campaign_seed, index, k]).generate_state(1)[0]
        seed = int(state) & 0x7FFFFFFF
        if seed not in seen:
            seen.add(seed)
            return seed
        k += 1


def _file(ck: tomlfile.Checker, head: dict[str, Any], key: str, spec_path: Path) -> Path | None:
    """A file the spec names, relative to the spec; None (and a problem) if missing."""
    if key not in head:
        return None
    p = (spec_path.parent / str(head[key])).resolve()
    if not p.is_file():
        ck.fail("campaign", key, f"no such file: {p}")
        return None
    return p


def _scenario_path(ck: tomlfile.Checker, value: Any, spec_path: Path) -> Path | None:
    if not isinstance(value, str) or not value:
        ck.fail("campaign", "scenario", "needs a built-in scenario name or a file")
        return None
    rel = spec_path.parent / value
    if rel.is_file():
        return rel.resolve()
    builtin = SCENARIOS_DIR / (value if value.endswith(".toml") else value + ".toml")
    if builtin.is_file():
        return builtin
    known = ", ".join(sorted(p.stem for p in SCENARIOS_DIR.glob("*.toml")))
    ck.fail("campaign", "scenario", f"{value}: no such file, nor a built-in ({known})")
    return None


def _draw(ck: tomlfile.Checker, key: str, d: Any) -> Draw | None:
    def fail(msg: str) -> None:
        ck.fail("draw", key, msg)

    if not isinstance(d, dict):
        fail("must be a table, e.g. { uniform = [lo, hi] }")
        return None
    dists = [k for k in d if k in DISTRIBUTIONS]
    extra = [k for k in d if k not in (*DISTRIBUTIONS, "clip")]
    if len(dists) != 1 or extra:
        fail(f"needs exactly one of {', '.join(DISTRIBUTIONS)} (and clip)")
        return None
    dist = dists[0]
    args = d[dist]
    if not isinstance(args, list) or not args:
        fail(f"{dist} takes a list")
        return None
    clip = d.get("clip")
    if dist == "choice":
        if clip is not None:
            fail("choice takes no clip")
            return None
        return Draw(key, dist, tuple(args))
    if len(args) != 2 or not all(tomlfile.is_number(a) for a in args):
        fail(f"{dist} takes two numbers, got {args!r}")
        return None
    a, b = float(args[0]), float(args[1])
    if dist == "uniform" and not a < b:
        fail(f"uniform needs lo < hi, got {args!r}")
        return None
    if dist == "normal" and not b > 0:
        fail(f"normal needs a standard deviation > 0, got {b!r}")
        return None
    if clip is not None:
        if (
            not isinstance(clip, list)
            or len(clip) != 2
            or not all(tomlfile.is_number(c) for c in clip)
        ):
            fail("clip takes two numbers [lo, hi]")
            return None
        if not clip[0] < clip[1]:
            fail("clip needs lo < hi")
            return None
        return Draw(key, dist, (a, b), (float(clip[0]), float(clip[1])))
    return Draw(key, dist, (a, b))


def _check_keys(ck: tomlfile.Checker, spec: CampaignSpec) -> None:
    """Every key names a scenario setting, and every value a valid one: the
    scenario is loaded with each sweep value and each draw's extremes."""
    probes: dict[str, list[Any]] = {key: list(values) for key, values in spec.sweep.items()}
    for d in spec.draws:
        if d.dist == "choice":
            probes[d.key] = list(d.args)
        elif d.clip:
            probes[d.key] = list(d.clip)
        elif d.dist == "uniform":
            probes[d.key] = [d.args[0], d.args[1]]
        else:  # a normal draw: its 3-sigma ends
            probes[d.key] = [d.args[0] - 3 * d.args[1], d.args[0] + 3 * d.args[1]]
    for key, values in probes.items():
        table, _, name = key.partition(".")
        written_in = "sweep" if key in spec.sweep else "draw"
        if table not in _TABLES or not name or "." in name or key == "scenario.seed":
            ck.report(
                f"{key}: not a scenario key to vary (table.key, table one of "
                f"{', '.join(_TABLES)}; the seed comes from the campaign)",
                written_in,
                key,
            )
            continue
        for raw in values:
            value = float(f"{raw:.12g}") if isinstance(raw, float) else raw  # 0.8 - 3 x 0.3
            try:
                scenario.parse(spec.scenario_text, spec.scenario_path, {key: value})
            except scenario.ScenarioError as e:
                first = e.problems[0].split(": ", 1)[-1]
                ck.report(f"{key} = {value!r}: {first}", written_in, key)
                break
