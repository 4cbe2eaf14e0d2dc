"""BLE on the rig: the simulated device's stack played by Bumble (sim.py) and
one client API for tests over Bumble or bleak (client.py)."""
