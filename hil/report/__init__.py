"""Reports and plots: heating curves, overlays, distributions, the HTML report."""
