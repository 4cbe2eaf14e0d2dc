"""Campaigns: specs, execution on local cores or Dask, statistics (Cpk), the summary."""
