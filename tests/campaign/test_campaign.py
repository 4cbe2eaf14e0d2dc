"""Campaigns: specs checked before anything runs, plans that are a pure
function of the spec, parallel runs here or on Dask with the same results,
statistics, and any run repeated alone by its seed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import heatrig

from hil.campaign import executor
from hil.campaign import spec as campaign_spec
from hil.campaign.executor import JobResult
from hil.campaign.spec import CampaignError
from hil.paths import ROOT
from hil.qa import limits
from hil.report import html as report

# a short session keeps the tests quick: 60 s of HCI, two puffs
SCENARIO = """
[scenario]
name = "short_hci"
duration_s = 60
[puffing]
regime = "hci"
"""
SPEC = """
[campaign]
name = "t"
scenario = "short_hci.toml"
runs = 2
seed = 7

[sweep]
"ambient.temp_c" = [15.0, 30.0]

[draw]
"unit.r0_ohm" = { normal = [0.80, 0.0267], clip = [0.72, 0.88] }
"holder.soc_pct" = { uniform = [90.0, 100.0] }
"unit.calibrated" = { choice = [true, false] }
"""


@pytest.fixture
def spec_path(tmp_path: Path) -> Path:
    (tmp_path / "short_hci.toml").write_text(SCENARIO)
    p = tmp_path / "spec.toml"
    p.write_text(SPEC)
    return p


def test_the_plan_is_a_pure_function_of_the_spec(spec_path: Path) -> None:
    spec = campaign_spec.load(spec_path)
    jobs = campaign_spec.plan(spec)
    assert len(jobs) == spec.total_runs == 4
    assert jobs == campaign_spec.plan(campaign_spec.load(spec_path))
    assert len({j.seed for j in jobs}) == 4
    assert [j.params["ambient.temp_c"] for j in jobs] == [15.0, 15.0, 30.0, 30.0]
    for j in jobs:
        assert 0.72 <= j.params["unit.r0_ohm"] <= 0.88
        assert 90.0 <= j.params["holder.soc_pct"] <= 100.0
        assert j.overrides["scenario.seed"] == j.seed
    other = campaign_spec.parse(SPEC.replace("seed = 7", "seed = 8"), spec_path)
    assert [j.seed for j in campaign_spec.plan(other)] != [j.seed for j in jobs]


def test_draws_follow_their_distribution(spec_path: Path) -> None:
    spec = campaign_spec.parse(SPEC.replace("runs = 2", "runs = 500"), spec_path)
    r0 = [j.params["unit.r0_ohm"] for j in campaign_spec.plan(spec)]
    assert sum(r0) / len(r0) == pytest.approx(0.80, abs=0.005)
    calibrated = [j.params["unit.calibrated"] for j in campaign_spec.plan(spec)]
    assert 0.4 < sum(calibrated) / len(calibrated) < 0.6


def test_every_problem_in_a_spec_is_reported_with_its_line(spec_path: Path) -> None:
    text = SPEC.replace("runs = 2", "runs = 0").replace(
        '"holder.soc_pct" = { uniform = [90.0, 100.0] }',
        '"holder.soc_pct" = { uniform = [100.0, 90.0] }\n"unit.r00_ohm" = { uniform = [0.7, 0.9] }',
    )
    with pytest.raises(CampaignError) as e:
        campaign_spec.parse(text, spec_path)
    msg = str(e.value)
    assert f"{spec_path}:5: [campaign] runs: must be an integer >= 1, got 0" in msg
    assert f"{spec_path}:13: [draw] holder.soc_pct: uniform needs lo < hi" in msg
    bad_key = SPEC.replace('"holder.soc_pct"', '"holder.soc"')
    with pytest.raises(CampaignError, match=r":13: holder.soc = 90.0: \[holder\] soc: unknown key"):
        campaign_spec.parse(bad_key, spec_path)
    out_of_range = SPEC.replace("[90.0, 100.0]", "[90.0, 120.0]")
    with pytest.raises(
        CampaignError, match=r":13: holder.soc_pct = 120.0: .*must be within 0..100"
    ):
        campaign_spec.parse(out_of_range, spec_path)


def test_a_campaign_summarises_and_repeats_any_run_exactly(spec_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    r = heatrig("campaign", str(spec_path), "--out", str(out), "--no-progress")
    assert r.returncode == 0, r.stderr
    assert "4 runs of short_hci on" in r.stdout and "Cpk" in r.stdout
    for name in ("runs.csv", "runs.json", "summary.json", "distributions.png", "campaign.html"):
        assert (out / name).stat().st_size > 0
    summary = json.loads((out / "summary.json").read_text())
    (group,) = summary["groups"]
    assert group["limits"] == "limits/standard-hci.toml"
    numeric = [k for k in group["kpis"] if k["limits"] and "equals" not in (k["limits"] or {})]
    assert numeric and all(k["cpk"] is not None or k["cpk_note"] for k in numeric)
    assert "data:image/png;base64," in (out / "campaign.html").read_text()
    # a 60 s run never reaches the 6-minute end: every run fails end_reason
    assert group["outcomes"]["fail"] == 4
    seed = group["worst_runs"][0]["seed"]
    assert group["worst_runs"][0]["rerun"].endswith(f"--only {seed}")
    again = heatrig("campaign", str(spec_path), "--out", str(out), "--only", str(seed))
    assert again.returncode == 0, again.stderr
    assert "every measurement is identical to the campaign's run" in again.stdout
    rows = {row["seed"]: row for row in json.loads((out / "runs.json").read_text())}
    rec = json.loads((out / f"seed-{seed}" / "record.json").read_text())
    assert {m["name"]: m["value"] for m in rec["measurements"]} == rows[seed]["values"]


def test_dask_runs_the_same_spec_to_the_same_numbers(spec_path: Path) -> None:
    from distributed import LocalCluster

    jobs = campaign_spec.plan(campaign_spec.load(spec_path))
    local = executor.execute(jobs, workers=2, progress=False)
    with LocalCluster(  # type: ignore[no-untyped-call]
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
    ) as cluster:
        on_dask = executor.execute(jobs, scheduler=cluster.scheduler_address, progress=False)
    assert [r.values for r in on_dask] == [r.values for r in local]
    assert [r.seed for r in on_dask] == [j.seed for j in jobs]


def test_an_unreachable_scheduler_says_what_to_do(
    spec_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(executor, "CONNECT_TIMEOUT_S", 1)
    jobs = campaign_spec.plan(campaign_spec.load(spec_path))
    with pytest.raises(CampaignError) as e:
        executor.execute(jobs, scheduler="tcp://127.0.0.1:9", progress=False)
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:9" in str(e.value)
    assert "dask worker" in str(e.value)


def test_results_from_another_firmware_tree_are_refused() -> None:
    r = JobResult(index=3, seed=42, params={}, tree="mpy-x64-aaaa")
    with pytest.raises(CampaignError, match="install the same heatrig tree"):
        executor.check_tree(r, "mpy-x64-bbbb")
    executor.check_tree(r, "mpy-x64-aaaa")


def test_an_unknown_seed_is_refused(spec_path: Path) -> None:
    r = heatrig("campaign", str(spec_path), "--only", "12345")
    assert r.returncode == 2 and "no run of" in r.stderr


def test_a_profile_sweep_is_judged_per_profile_and_overlays_in_a_report(
    spec_path: Path, tmp_path: Path
) -> None:
    spec = spec_path.parent / "profiles.toml"
    spec.write_text(
        SPEC.replace("runs = 2", "runs = 1").replace(
            '"ambient.temp_c" = [15.0, 30.0]', '"scenario.profile" = ["standard", "eco"]'
        )
    )
    out = tmp_path / "out"
    r = heatrig("campaign", str(spec), "--out", str(out), "--keep-telemetry", "--no-progress")
    assert r.returncode == 0, r.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert [g["limits"] for g in summary["groups"]] == [
        "limits/eco-hci.toml",
        "limits/standard-hci.toml",
    ]
    assert (out / "distributions-standard-hci.png").exists()
    runs = sorted((out / "runs").iterdir())
    assert len(runs) == 2
    html = tmp_path / "overlay.html"
    r = heatrig("report", *map(str, runs), "-o", str(html))
    assert r.returncode == 0, r.stderr
    assert html.read_text().count('id="run-seed-') == 2
    loaded = [report.load_run(p) for p in runs]
    labels = report.run_labels([x.test.meta for x in loaded], [x.name for x in loaded])
    assert sorted("profile eco" in label for label in labels) == [False, True]


def test_the_campaign_judges_with_its_own_limits() -> None:
    strict = limits.parse("[energy_j]\nmax = 1000.0\n", Path("strict.toml"))
    r = JobResult(index=0, seed=1, params={}, values={"energy_j": 1200.0}, outcome="pass")
    executor.judge(r, strict)
    assert r.outcomes["energy_j"] == "fail" and r.outcome == "fail"
    executor.judge(r, None)
    assert r.outcome == "unset"
    broken = JobResult(index=1, seed=2, params={}, error="the simulator exited with code 3")
    executor.judge(broken, strict)
    assert broken.outcome == "fail"


# a charge at 50 C (an hour of device time, a few seconds): the power side of a campaign
POWER_SPEC = """
[campaign]
name = "p"
scenario = "usb_charge_hot"
runs = 2
seed = 5

[draw]
"usb.i_limit_a" = { uniform = [1.5, 2.0] }
"plant.chg_cell_fade" = { uniform = [0.0, 0.2] }
"""


def test_a_power_campaign_judges_power_and_repeats_a_run(tmp_path: Path) -> None:
    spec = tmp_path / "power.toml"
    spec.write_text(POWER_SPEC)
    out = tmp_path / "out"
    r = heatrig("campaign", str(spec), "--out", str(out), "--no-progress")
    assert r.returncode == 0, r.stderr
    assert "USB charge time" in r.stdout and "time to set-point" not in r.stdout
    summary = json.loads((out / "summary.json").read_text())
    (group,) = summary["groups"]
    assert group["judged"] == ["power"]
    assert group["limits"] == "limits/power-usb_charge_hot.toml"
    stats = {k["name"]: k for k in group["kpis"]}
    assert stats["usb_charge_end_soc_pct"]["cpk"] is not None
    assert stats["usb_charge_end_soc_pct"]["n"] == 2
    assert "usb_charge_min" in (out / "runs.csv").read_text().splitlines()[0]
    seed = json.loads((out / "runs.json").read_text())[1]["seed"]
    again = heatrig("campaign", str(spec), "--out", str(out), "--only", str(seed))
    assert again.returncode == 0, again.stderr
    assert "every measurement is identical to the campaign's run" in again.stdout
    assert "usb charge: done in " in again.stdout
    for name in ("power.csv", "usb_charge.png", "record.json"):
        assert (out / f"seed-{seed}" / name).stat().st_size > 0


def test_the_power_campaign_spec_plans_its_runs() -> None:
    spec = campaign_spec.load(ROOT / "campaigns" / "power_monte_carlo.toml")
    jobs = campaign_spec.plan(spec)
    assert len(jobs) == spec.runs >= 30 and spec.scenario_path.stem == "power_day"
    keys = set(jobs[0].params)
    assert {"ambient.temp_c", "usb.i_limit_a", "plant.chg_cell_fade"} <= keys
    assert {"plant.chg_cell_capacity_mah", "plant.chg_cell_r0_ohm"} <= keys
    assert limits.power_for_run("power_day") is not None
