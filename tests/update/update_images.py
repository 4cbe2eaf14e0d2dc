"""Update images for the tests: the firmware as it is, and variants of it
(newer, older, for other hardware, signed by a key no kit trusts, broken in
three ways), compiled for the simulator (x64) and signed with the test key
(tests/update/keys: TEST ONLY)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from hil.paths import FIRMWARE_DIR
from hil.update import image
from hil.wire import store_format

KEYS = Path(__file__).parent / "keys"
OTHER_KEY = KEYS / "TEST-ONLY-other-key.pem"

# a broken build, each as an edit of one file: (file, text replaced, replacement)
BROKEN = {
    "raises": (
        "app.py",
        '"""Wires the firmware',
        'raise ImportError("a broken build")\n"""Wires the firmware',
    ),
    "hangs": (
        "app.py",
        "def main():\n    App().run()",
        "def main():\n    while True:  # waits for what never comes, never confirms\n"
        "        time.sleep_ms(100)",
    ),
    "selfcheck": (
        "ble_gatt.py",
        "        self.app = app\n        self.heater",
        "        raise OSError(19)  # the radio never comes up\n"
        "        self.app = app\n        self.heater",
    ),
}


def tree(
    tmp: Path, version: str, edit: tuple[str, str, str] | None = None, tag: str = "ok"
) -> Path:
    out = tmp / f"fw-{version}-{tag}"
    shutil.copytree(FIRMWARE_DIR, out, ignore=shutil.ignore_patterns("__pycache__"))
    v = out / "version.py"
    v.write_text(
        v.read_text().replace('FIRMWARE_VERSION = "0.1.0"', f'FIRMWARE_VERSION = "{version}"')
    )
    if edit is not None:
        f = out / edit[0]
        text = f.read_text()
        assert edit[1] in text, f"{edit[0]} changed: the broken build's edit no longer applies"
        f.write_text(text.replace(edit[1], edit[2], 1))
    return out


@pytest.fixture(scope="session")
def test_key() -> rsa.RSAPrivateKey:
    return image.load_private_key(image.TEST_KEY)


@pytest.fixture(scope="session")
def images(
    tmp_path_factory: pytest.TempPathFactory, test_key: rsa.RSAPrivateKey
) -> dict[str, bytes]:
    """name -> image bytes (x64: the simulator's architecture)."""
    tmp = tmp_path_factory.mktemp("images")
    other = image.load_private_key(OTHER_KEY)
    new = tree(tmp, "0.2.0")
    out = {
        "new": image.build(test_key, tree=new, arch="x64"),
        "older": image.build(test_key, tree=tree(tmp, "0.0.9"), arch="x64"),
        "other_key": image.build(other, tree=new, arch="x64"),
        "hw_b": image.build(test_key, tree=new, arch="x64", hw_min="B"),
        "esp32": image.build(test_key, tree=new, arch="xtensawin"),
    }
    for name, edit in BROKEN.items():
        out[name] = image.build(test_key, tree=tree(tmp, "0.3.0", edit, name), arch="x64")
    return out


@pytest.fixture(scope="session")
def image_file(
    tmp_path_factory: pytest.TempPathFactory, images: dict[str, bytes]
) -> Callable[[str], Path]:
    tmp = tmp_path_factory.mktemp("image-files")

    def path(name: str) -> Path:
        p = tmp / f"{name}.hri"
        if not p.exists():
            p.write_bytes(images[name])
        return p

    return path


def trusted_flash() -> dict[str, bytes]:
    """What a kit needs on flash to take updates: the test key, trusted."""
    pub = image.load_public_key(image.TEST_PUBLIC_KEY)
    return {"upkeys.a": store_format.slot_file(image.keys_record(pub))}
