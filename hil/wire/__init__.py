"""The wire: frames, the firmware's contract (read from its source, with the
console's words and the BLE flags), telemetry series, the store's file format."""
