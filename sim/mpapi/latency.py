"""Timer latency injected into the simulator (kernel.timer_latency): how late
each timer callback starts. Models what delays a control step on a real
board -- interrupt latency and jitter on every tick, and now and then a long
stall such as a garbage collection of the main loop's heap -- so that tests
can show the controller and the safety checks hold under it.

Seeded and integer-only (16-bit xorshift): it runs inside the timer path,
possibly under heap_lock, and gives the same delays on every port.
"""


class TimerLatency:
    def __init__(self, jitter_us, stall_us, stall_every, seed=1):
        self.jitter_us = jitter_us  # every tick: uniform 0..jitter_us
        self.stall_us = stall_us  # a stall: uniform stall_us/2..stall_us
        self.stall_every = stall_every  # one tick in stall_every (on average) stalls; 0: never
        self.s = (seed * 40503 + 1) & 0xFFFF or 1
        self.stalls = 0
        self.max_us = 0

    def _rand16(self):
        x = self.s
        x ^= (x << 7) & 0xFFFF
        x ^= x >> 9
        x ^= (x << 8) & 0xFFFF
        self.s = x
        return x

    def __call__(self, _timer):
        late = self._rand16() * (self.jitter_us + 1) >> 16 if self.jitter_us else 0
        if self.stall_every and self._rand16() % self.stall_every == 0:
            half = self.stall_us >> 1
            late += half + (self._rand16() * (half + 1) >> 16)
            self.stalls += 1
        if late > self.max_us:
            self.max_us = late
        return late
