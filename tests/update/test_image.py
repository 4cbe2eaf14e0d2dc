"""Update images on the host (hil/update/image.py), and the device's
signature check (firmware/sigcheck.py, plain Python) against `cryptography`."""

from __future__ import annotations

import hashlib
import importlib.util
import stat
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from hypothesis import given, settings
from hypothesis import strategies as st

from hil import cli
from hil.paths import FIRMWARE_DIR
from hil.update import image

_spec = importlib.util.spec_from_file_location("sigcheck", FIRMWARE_DIR / "sigcheck.py")
assert _spec is not None and _spec.loader is not None
sigcheck = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sigcheck)

KEY = image.load_private_key(image.TEST_KEY)
N = bytes.fromhex(image.modulus_hex(KEY.public_key()))


@settings(max_examples=60, deadline=None)
@given(msg=st.binary(max_size=64), flip=st.integers(min_value=-1, max_value=255))
def test_the_devices_check_agrees_with_cryptography(msg: bytes, flip: int) -> None:
    """A signature verifies exactly when it is the key's over this message;
    one bit changed anywhere in it fails."""
    sig = bytearray(KEY.sign(msg, padding.PKCS1v15(), hashes.SHA256()))
    if flip >= 0:
        sig[flip] ^= 1 << (flip % 8)
    digest = hashlib.sha256(msg).digest()
    assert sigcheck.verify(N, bytes(sig), digest) is (flip < 0)


def test_a_signature_of_another_key_or_digest_fails() -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    msg = b"manifest"
    digest = hashlib.sha256(msg).digest()
    sig = other.sign(msg, padding.PKCS1v15(), hashes.SHA256())
    assert not sigcheck.verify(N, sig, digest)
    good = KEY.sign(msg, padding.PKCS1v15(), hashes.SHA256())
    assert not sigcheck.verify(N, good, hashlib.sha256(b"other").digest())
    assert not sigcheck.verify(N, good[1:], digest)  # the wrong length
    assert not sigcheck.verify(N, b"\xff" * len(N), digest)  # not below the modulus


def test_build_and_parse(tmp_path: Path) -> None:
    files = [("a.mpy", b"M\x06" + b"x" * 100), ("b.mpy", b""), ("c.mpy", b"y" * 3)]
    data = image.build(KEY, files=files, arch="xtensawin", version="1.2.3", hw_min="B")
    img = image.parse(data)
    assert img.version == "1.2.3" and img.manifest["hw_min"] == "B"
    assert img.files() == [(n, len(d), hashlib.sha256(d).hexdigest()) for n, d in files]
    assert img.manifest["mpy"] == image.mpy_tag("xtensawin") == 10 << 10 | 3 << 8 | 6
    assert img.verify(KEY.public_key())
    assert data.endswith(b"".join(d for _, d in files))
    with pytest.raises(image.ImageError, match="cut short"):
        image.parse(data[:-1])
    with pytest.raises(image.ImageError, match="magic"):
        image.parse(b"XXXX" + data[4:])
    with pytest.raises(image.ImageError, match="unknown architecture"):
        image.mpy_tag("z80")


def test_the_firmware_image_leaves_out_the_bootstrap() -> None:
    names = [n for n, _ in image.compile_tree(FIRMWARE_DIR, "x64")]
    assert "app.mpy" in names and "update.mpy" in names
    assert not {"main.mpy", "bootslot.mpy", "boot_hold.mpy"} & set(names)


def test_keygen_keeps_the_private_key_private(tmp_path: Path) -> None:
    priv, pub = image.keygen(tmp_path / "k.pem", bits=2048)
    assert stat.S_IMODE(priv.stat().st_mode) == 0o600
    assert image.load_public_key(pub).public_numbers() == (
        image.load_private_key(priv).public_key().public_numbers()
    )
    with pytest.raises(image.ImageError, match="never overwritten"):
        image.keygen(priv)


def test_the_cli_says_what_is_wrong(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["image", "show", str(tmp_path / "none.hri")]) == 2
    assert "cannot read the image" in capsys.readouterr().err
    (tmp_path / "k.pem").write_text("not a key")
    assert cli.main(["image", "build", "--key", str(tmp_path / "k.pem")]) == 2
    assert "not a PEM private key" in capsys.readouterr().err
    assert sys.modules["hil.update.image"] is image
