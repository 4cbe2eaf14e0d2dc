"""How long the kit takes to check an update's signature (firmware/sigcheck.py:
RSA, e = 65537, on MicroPython's big integers), on the unix port, for the
key sizes heatrig uses. The ESP32's estimate is in docs/update.md: its
MicroPython multiplies big integers in 16-bit digits (the x64 port in 32-bit
ones), on a 240 MHz core."""

from __future__ import annotations

import json
import subprocess
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from hil.simulator import toolchain
from hil.update import image

ROUNDS = 50


def _time_verify(bits: int) -> float:
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    msg = b"a manifest"
    sig = key.sign(msg, padding.PKCS1v15(), hashes.SHA256())
    import hashlib

    script = f"""
import sigcheck, time, json
from binascii import unhexlify
n = unhexlify('{image.modulus_hex(key.public_key())}')
s = unhexlify('{sig.hex()}')
d = unhexlify('{hashlib.sha256(msg).hexdigest()}')
assert sigcheck.verify(n, s, d)
t = time.ticks_us()
for _ in range({ROUNDS}):
    sigcheck.verify(n, s, d)
print(json.dumps(time.ticks_diff(time.ticks_us(), t) / {ROUNDS}))
"""
    argv, env = toolchain.micropython_command(["-c", script], modules=toolchain.sim_modules())
    r = subprocess.run(argv, capture_output=True, text=True, env=env, check=True)
    return float(json.loads(r.stdout.strip().splitlines()[-1]))


def test_signature_check_time_on_the_unix_port(benchmark: Any) -> None:
    got: dict[int, float] = {}

    def run() -> None:
        for bits in (2048, 3072):
            got[bits] = _time_verify(bits)

    benchmark.pedantic(run, rounds=1, iterations=1)
    benchmark.extra_info.update({f"rsa{b}_verify_us": round(us, 1) for b, us in got.items()})
    for b, us in got.items():
        print(f"\nRSA-{b} signature check (sigcheck.verify) on the unix port: {us / 1000:.2f} ms")
    assert got[2048] < 100_000  # a tenth of a second: a gross regression, not a benchmark band
