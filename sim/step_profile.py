"""Host CPU time of each timer callback (the firmware's control step) in the
simulator, where the clock is virtual and the telemetry's timestamps carry no
jitter. A histogram in 1-us bins, filled without allocating (the callbacks
may run under heap_lock)."""

from array import array

_BINS = 1024  # the last bin takes everything longer


class StepProfile:
    def __init__(self):
        self.hist = array("I", [0] * _BINS)
        self.n = 0
        self.total_us = 0
        self.max_us = 0

    def add(self, us):
        self.hist[us if us < _BINS else _BINS - 1] += 1
        self.n += 1
        self.total_us += us
        if us > self.max_us:
            self.max_us = us

    def percentile(self, pct):
        """The smallest bin holding pct % of the samples."""
        want = (self.n * pct + 99) // 100
        seen = 0
        for us in range(_BINS):
            seen += self.hist[us]
            if seen >= want:
                return us
        return _BINS - 1

    def summary(self):
        mean_ns = self.total_us * 1000 // self.n if self.n else 0
        return "steps=%d cpu_mean_ns=%d cpu_p50_us=%d cpu_p99_us=%d cpu_max_us=%d" % (
            self.n, mean_ns, self.percentile(50), self.percentile(99), self.max_us)
