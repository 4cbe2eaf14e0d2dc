"""Firmware identity, reported on the console and over BLE."""

FIRMWARE_VERSION = "0.1.0"
PROTOCOL_VERSION = 2
