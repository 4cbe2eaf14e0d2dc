"""python -m hil.mutation [MODULE ...]: mutation testing (`make mutation`)."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from tqdm import tqdm

from hil.mutation import plan, score
from hil.mutation.run import MutationError, Outcome
from hil.paths import RESULTS_DIR
from hil.tomlfile import TomlFileError

TARGET_PCT = 95.0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m hil.mutation",
        description="Mutate firmware modules one change at a time and run each "
        "module's tests (mutation/plan.toml) against every mutant.",
    )
    ap.add_argument("modules", nargs="*", help="firmware modules (default: all in the plan)")
    ap.add_argument("--workers", type=int, help="local worker processes (default: one per core)")
    ap.add_argument("--scheduler", help="a Dask scheduler address (tcp://host:8786)")
    ap.add_argument(
        "--branches", action="store_true", help="only the never-taken branches (`if False`)"
    )
    ap.add_argument(
        "--fast", action="store_true", help="judge by each module's fast tests only (plan.toml)"
    )
    ap.add_argument("--sample", type=int, help="a fixed-seed sample of N mutants per module")
    ap.add_argument("--seed", type=int, default=1, help="the sample's seed (default 1)")
    ap.add_argument(
        "--run-equivalent", action="store_true", help="run the reviewed equivalent mutants too"
    )
    ap.add_argument("--no-bugs", action="store_true", help="skip the named bugs of the plan")
    ap.add_argument(
        "--fail-under",
        type=float,
        help=f"exit 1 if the safety modules score below this percentage (the goal: {TARGET_PCT:g})",
    )
    ap.add_argument(
        "--json", type=Path, default=RESULTS_DIR / "mutation" / "mutation.json",
        help="every outcome as JSON (default results/mutation/mutation.json)",
    )  # fmt: skip
    ap.add_argument("--list", action="store_true", help="list the mutants and exit")
    args = ap.parse_args(argv)
    try:
        p = plan.load()
        if args.fast:
            p = p.with_fast_tests()
        modules = args.modules or list(p.modules)
        if args.list:
            return _list(p, modules, args)
        args.json.parent.mkdir(parents=True, exist_ok=True)
        as_they_come = args.json.with_suffix(".jsonl")  # every outcome as it comes
        with (
            tqdm(desc="mutants", unit="run", file=sys.stderr, dynamic_ncols=True) as bar,
            as_they_come.open("w") as stream,
        ):

            def progress(n: int, total: int) -> None:
                bar.total = total
                bar.update(n - bar.n)

            def log(o: Outcome) -> None:
                stream.write(json.dumps(asdict(o) | {"coverage": None}) + "\n")
                stream.flush()

            rep = score.run(
                p, modules, workers=args.workers, scheduler=args.scheduler,
                branches=args.branches, sample=args.sample, seed=args.seed,
                run_equivalent=args.run_equivalent, bugs=not args.no_bugs, progress=progress,
                log=log,
            )  # fmt: skip
    except (MutationError, TomlFileError) as e:
        print(f"heatrig mutation: {e}", file=sys.stderr)
        return 2
    print(score.format_report(rep, TARGET_PCT))
    args.json.write_text(
        json.dumps({"wall_s": rep.wall_s, "outcomes": [asdict(o) for o in rep.outcomes]}, indent=1)
    )
    failed = False
    if any(b.outcome is not None and b.outcome.status == "survived" for b in rep.bugs):
        failed = True
    killed, judged = rep.safety_score()
    if args.fail_under is not None and judged and 100 * killed / judged < args.fail_under:
        failed = True
    return 1 if failed else 0


def _list(p: plan.Plan, modules: list[str], args: argparse.Namespace) -> int:
    from hil.mutation import mutants
    from hil.paths import FIRMWARE_DIR

    for m in modules:
        muts = mutants.generate(FIRMWARE_DIR / f"{m}.py")
        chosen = score.select(muts, branches=args.branches, sample=args.sample, seed=args.seed)
        for mu in chosen:
            eq = "  [equivalent]" if mu.key in p.equivalent else ""
            print(f"{m}.py:{mu.line}  {mu.key.split(':', 1)[1].strip()}{eq}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
