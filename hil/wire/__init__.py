"""The wire: frames, the firmware's contract, telemetry series, the store's file format."""
