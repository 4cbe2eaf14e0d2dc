"""BLE on the rig. Each module imports only those listed above it:

uuids.py    UUID text (128-bit, lower case) and Bumble's UUIDs
values.py   the phone's view of the profile: UUIDs, values decoded with units
client.py   one synchronous client API (BleClient), and its bleak backend (real boards)
bridge.py   the simulated device's BLE stack, played by Bumble (BleBridge)
phone.py    phones on its virtual link: Bumble centrals (VirtualAir, what Dut.ble() gives)
doc.py      docs/ble_profile.md, rendered from the firmware's table
cli.py      `heatrig ble ...`
"""
