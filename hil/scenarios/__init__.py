"""Scenarios and their inputs: scenario files, puffing regimes, plant parameters."""
