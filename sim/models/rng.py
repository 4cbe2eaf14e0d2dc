"""Seeded xorshift32: the same numbers on every port, integer-only (so ADC
reads that draw noise allocate nothing)."""


class Rng:
    def __init__(self, seed):
        self.s = (seed * 2654435761 + 1) & 0xFFFFFFFF or 1

    def next_u32(self):
        x = self.s
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        self.s = x
        return x

    def noise_q8(self):
        """Approximately normal noise with unit rms, times 256: the sum of four
        bytes has mean 510 and rms 147.8."""
        x = self.next_u32()
        s = (x & 0xFF) + ((x >> 8) & 0xFF) + ((x >> 16) & 0xFF) + (x >> 24)
        return (s - 510) * 256 * 100 // 14780
