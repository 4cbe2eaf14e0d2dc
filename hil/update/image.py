"""Signed firmware update images (docs/update.md): made on the host from the
firmware tree and a private key; verified on the device (firmware/update.py,
firmware/sigcheck.py) with the public key alone.

    "HRI1" | manifest length u16 LE | signature length u16 LE | manifest | signature | files

The manifest is JSON: format, version, hw_min, mpy (the target's
sys.implementation._mpy), size and sha256 of the payload, files as
[name, size, sha256] in payload order, and optionally keys (the public
moduli, hex, that sign the next images: key rotation). The signature is
RSASSA-PKCS1-v1_5 with SHA-256 over the manifest's bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from hil.paths import FIRMWARE_DIR, ROOT
from hil.simulator import toolchain

MAGIC = b"HRI1"
HEAD = struct.Struct("<4sHH")
# the bootstrap: deployed once, never replaced by an image (firmware/bootslot.py)
BOOTSTRAP = ("main.py", "bootslot.py", "boot_hold.py")
# MicroPython's native architectures, as sys.implementation._mpy numbers them
# (py/persistentcode.h, MP_NATIVE_ARCH_*)
ARCH_CODES = {
    "x86": 1,
    "x64": 2,
    "armv6": 3,
    "armv6m": 4,
    "armv7m": 5,
    "armv7em": 6,
    "armv7emsp": 7,
    "armv7emdp": 8,
    "xtensa": 9,
    "xtensawin": 10,
    "rv32imc": 11,
}
TEST_KEY = ROOT / "tests" / "update" / "keys" / "TEST-ONLY-update-key.pem"  # tests and demos only
TEST_PUBLIC_KEY = TEST_KEY.with_name("TEST-ONLY-update-key.pub.pem")


class ImageError(ValueError):
    """An image or a key could not be made or read; the message says why."""


@dataclass(frozen=True)
class Image:
    data: bytes
    manifest: dict[str, Any]
    manifest_bytes: bytes
    signature: bytes
    header_len: int

    @property
    def version(self) -> str:
        return str(self.manifest["version"])

    @property
    def image_id(self) -> bytes:
        """What the device tells one transfer from another by (resume)."""
        return hashlib.sha256(self.data).digest()[:8]

    def files(self) -> list[tuple[str, int, str]]:
        return [(str(n), int(s), str(h)) for n, s, h in self.manifest["files"]]

    def verify(self, public_key: rsa.RSAPublicKey) -> bool:
        try:
            public_key.verify(
                self.signature, self.manifest_bytes, padding.PKCS1v15(), hashes.SHA256()
            )
        except InvalidSignature:
            return False
        return True


def mpy_tag(arch: str) -> int:
    """sys.implementation._mpy of a MicroPython that loads what mpy-cross
    emits for `arch`."""
    if arch not in ARCH_CODES:
        raise ImageError(f"unknown architecture {arch!r}: one of {', '.join(ARCH_CODES)}")
    major, minor = toolchain.mpy_version()
    return ARCH_CODES[arch] << 10 | minor << 8 | major


def load_private_key(path: Path) -> rsa.RSAPrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as e:
        raise ImageError(f"{path}: not a PEM private key without a password ({e})") from None
    if not isinstance(key, rsa.RSAPrivateKey) or key.public_key().public_numbers().e != 65537:
        raise ImageError(f"{path}: an RSA key with e = 65537 is needed (heatrig image keygen)")
    return key


def load_public_key(path: Path) -> rsa.RSAPublicKey:
    try:
        data = path.read_bytes()
        try:
            key: Any = serialization.load_pem_public_key(data)
        except ValueError:
            key = serialization.load_pem_private_key(data, password=None).public_key()
    except (OSError, ValueError, TypeError) as e:
        raise ImageError(f"{path}: not a PEM public (or private) key ({e})") from None
    if not isinstance(key, rsa.RSAPublicKey) or key.public_numbers().e != 65537:
        raise ImageError(f"{path}: an RSA public key with e = 65537 is needed")
    return key


def modulus_hex(key: rsa.RSAPublicKey) -> str:
    """The public key as the device keeps it (the record "upkeys")."""
    n = key.public_numbers().n
    return n.to_bytes((n.bit_length() + 7) // 8, "big").hex()


def keygen(out: Path, bits: int = 3072) -> tuple[Path, Path]:
    """A new key pair: OUT (private, readable by its owner only) and OUT.pub.pem."""
    if out.exists():
        raise ImageError(f"{out} exists: a private key is never overwritten")
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    pub = out.with_name(out.name.removesuffix(".pem") + ".pub.pem")
    pub.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return out, pub


def firmware_version(tree: Path) -> str:
    for line in (tree / "version.py").read_text().splitlines():
        if line.startswith("FIRMWARE_VERSION"):
            return line.split("=", 1)[1].strip().strip("\"'")
    raise ImageError(f"{tree}/version.py has no FIRMWARE_VERSION")


def compile_tree(tree: Path, arch: str) -> list[tuple[str, bytes]]:
    """The firmware's modules but the bootstrap, compiled for `arch`, by name."""
    from concurrent.futures import ThreadPoolExecutor

    srcs = [p for p in sorted(tree.glob("*.py")) if p.name not in BOOTSTRAP]
    if not srcs:
        raise ImageError(f"{tree}: no firmware modules in it")
    with tempfile.TemporaryDirectory(prefix="heatrig-image-") as tmp:

        def one(src: Path) -> tuple[str, bytes]:
            dst = Path(tmp) / (src.stem + ".mpy")
            toolchain.compile_file(src, dst, arch)
            return dst.name, dst.read_bytes()

        with ThreadPoolExecutor(max_workers=4) as pool:  # mpy-cross: one process a file
            return list(pool.map(one, srcs))


def build(
    key: rsa.RSAPrivateKey,
    *,
    tree: Path = FIRMWARE_DIR,
    arch: str = "xtensawin",
    hw_min: str = "A",
    next_keys: list[rsa.RSAPublicKey] | None = None,
    files: list[tuple[str, bytes]] | None = None,
    version: str | None = None,
) -> bytes:
    """An image of the firmware in `tree` compiled for `arch` (or of `files`
    as given), signed with `key`."""
    files = compile_tree(tree, arch) if files is None else files
    payload = b"".join(d for _, d in files)
    manifest: dict[str, Any] = {
        "format": 1,
        "version": version or firmware_version(tree),
        "hw_min": hw_min,
        "mpy": mpy_tag(arch),
        "size": len(payload),
        "sha256": hashlib.sha256(payload).hexdigest(),
        "files": [[n, len(d), hashlib.sha256(d).hexdigest()] for n, d in files],
    }
    if next_keys:
        manifest["keys"] = [modulus_hex(k) for k in next_keys]
    man = json.dumps(manifest, separators=(",", ":"), sort_keys=True).encode()
    sig = key.sign(man, padding.PKCS1v15(), hashes.SHA256())
    if len(man) + len(sig) > 8192:
        raise ImageError(f"the manifest is {len(man)} bytes: the device takes at most 8 kB")
    return HEAD.pack(MAGIC, len(man), len(sig)) + man + sig + payload


def parse(data: bytes) -> Image:
    """The image's parts; ImageError if it is not one (the signature unchecked)."""
    if len(data) < HEAD.size:
        raise ImageError("not a heatrig image: too short")
    magic, ml, sl = HEAD.unpack_from(data)
    if magic != MAGIC:
        raise ImageError(f"not a heatrig image: magic {magic!r}")
    end = HEAD.size + ml + sl
    try:
        manifest = json.loads(data[HEAD.size : HEAD.size + ml])
        size = int(manifest["size"])
    except (ValueError, KeyError, TypeError) as e:
        raise ImageError(f"the image's manifest is malformed: {e}") from None
    if len(data) != end + size:
        raise ImageError(
            f"the image is {len(data)} bytes, its manifest says {end + size}: cut short or padded"
        )
    return Image(data, manifest, data[HEAD.size : HEAD.size + ml], data[HEAD.size + ml : end], end)


def read(path: Path) -> Image:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ImageError(f"cannot read the image {path}: {e}") from None
    return parse(data)


def keys_record(*keys: rsa.RSAPublicKey) -> dict[str, Any]:
    """The device's record of trusted keys ("upkeys", firmware/update.py)."""
    return {"keys": [modulus_hex(k) for k in keys]}
