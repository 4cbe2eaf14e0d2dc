"""Machine-smoking regimes (docs/reference.md#puffing-regimes).

(E) marks an engineering estimate (docs/reference.md#kinds-of-numbers).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Regime:
    name: str
    volume_ml: float
    duration_s: float
    interval_s: float
    vent_bypass: float  # share of the draw entering by the filter vents, not the plug (E)
    first_after_start_s: float  # first puff, after heating starts: once the device is ready
    title: str


REGIMES = {
    "hci": Regime("hci", 55.0, 2.0, 30.0, 0.0, 25.0, "Health Canada Intense (ISO 20778)"),
    "iso3308": Regime("iso3308", 35.0, 2.0, 60.0, 0.3, 25.0, "ISO 3308"),
}
