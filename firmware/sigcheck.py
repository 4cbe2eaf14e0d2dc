"""RSA signature check (RSASSA-PKCS1-v1_5 with SHA-256, e = 65537) on
MicroPython's big integers: s^65537 mod n is 16 squarings and one
multiplication, and the result must be the padded digest exactly
(RFC 8017, 8.2.2 and 9.2). Only the public key is on the device.
"""

from binascii import unhexlify

# DigestInfo of SHA-256 (RFC 8017, 9.2, note 1), before the 32-byte digest
_SHA256_INFO = unhexlify("3031300d060960864801650304020105000420")


def verify(n_bytes, sig, digest):
    """True if `sig` is the signature of the SHA-256 `digest` under the public
    modulus `n_bytes` (big-endian)."""
    k = len(n_bytes)
    if len(sig) != k or len(digest) != 32 or k < 128:
        return False
    n = int.from_bytes(n_bytes, "big")
    s = int.from_bytes(sig, "big")
    if s >= n:
        return False
    m = s
    for _ in range(16):
        m = m * m % n
    m = m * s % n
    pad = k - 3 - len(_SHA256_INFO) - 32
    return m.to_bytes(k, "big") == b"\x00\x01" + b"\xff" * pad + b"\x00" + _SHA256_INFO + digest
