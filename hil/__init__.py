"""heatrig host tools: run the firmware in simulation or on a board, record
telemetry, compute heating KPIs and plot heating curves."""
