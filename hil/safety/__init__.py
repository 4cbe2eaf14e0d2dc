"""The generated safety campaign (docs/safety.md): scenarios drawn at random
over the whole envelope (generate.py), run on the simulator, every invariant
checked on its truth at every sample (invariants.py), a violation shrunk to
the smallest scenario that still fails and written as a scenario file with
its curve (search.py), and a QA report (report.py)."""
