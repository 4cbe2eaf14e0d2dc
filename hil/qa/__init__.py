"""QA: KPIs, measurements with limits, test records, control timing, the power summary."""
