"""Device states and session end reasons, shared by the control loop, the
device state machine, the console and telemetry."""

from micropython import const

SLEEP = const(0)
PREHEAT = const(1)
HEATING = const(2)  # ready: the user may puff
END_WARNING = const(3)
COOLING = const(4)
FAULT = const(5)

NAMES = ("sleep", "preheat", "heating", "end_warning", "cooling", "fault")

# why the last session ended
END_NONE = const(0)
END_TIME = const(1)  # session time limit
END_PUFFS = const(2)  # puff limit
END_USER = const(3)  # user stopped it
END_FAULT = const(4)  # a safety fault cut the heater

END_NAMES = ("none", "time_limit", "puff_limit", "user_stop", "fault")

