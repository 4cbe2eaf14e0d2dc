"""BLE on the rig: the phone's view of the profile, clients, the Bumble bridge and phones."""
