"""The rig: transports, boards, deploy, targets, the device under test, pytest plugin."""
