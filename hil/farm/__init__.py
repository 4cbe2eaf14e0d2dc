"""A board farm's tools: put MicroPython on a bare board (flash.py, with
esptool), share a board's serial port on the network (share.py, RFC 2217),
and their `heatrig` commands (cli.py)."""
