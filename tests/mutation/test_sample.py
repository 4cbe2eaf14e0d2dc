"""The sample of mutation testing `make test` runs (docs/qa.md#mutation-testing):
every branch of the safety modules made never to run -- `if X:` become
`if False:` -- judged by each module's fast tests (mutation/plan.toml). Each
must fail some test: a branch no test needs is a branch no test checks.
A mutant that changes nothing the firmware does is listed, with the reason,
in mutation/equivalent.toml."""

from __future__ import annotations

from hil.mutation import plan, score

# the safety modules whose branches the sample covers; ble_gatt's (a larger
# module, with slower tests) are judged by `make mutation` alone
SAMPLED = ("heater_safety", "heater_ctl", "puff_detect", "cal_check", "store", "calib")


def test_every_branch_of_the_safety_modules_is_needed_by_a_test() -> None:
    p = plan.load().with_fast_tests()
    modules = [m for m in SAMPLED if m in p.modules]
    assert set(SAMPLED) <= set(p.safety) and modules == list(SAMPLED)
    rep = score.run(p, modules, workers=2, branches=True, bugs=False)
    print(score.format_report(rep, 100.0))
    for s in rep.modules.values():
        assert s.selected > 0, f"{s.module}: no branch in the sample"
        assert not s.errors, [o.detail for _, o in s.errors]
    survivors = [
        f"{m.module}.py:{m.line} {m.key}" for s in rep.modules.values() for m, _ in s.survived
    ]
    assert not survivors, "branches no test needs:\n" + "\n".join(survivors)
