"""The firmware's update code on the simulator's flash, driven as the main
loop drives it (tests/update/device_harness.py): refusals change nothing,
and a power cut at any byte leaves a kit that boots a complete, verified
firmware with every other record intact.

The full power-cut sweep (every N-th byte of the transfer for >= 500 cut
points, every byte of the switch and of the trial boot's writes) is
`make update-sweep`; `make test` runs a fixed sample of it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from harness import provision, run_device
from update_images import images, test_key  # noqa: F401  fixtures

from hil.update import image

# the sample make test runs; make update-sweep sets HEATRIG_UPDATE_SWEEP=full
FULL = os.environ.get("HEATRIG_UPDATE_SWEEP") == "full"
SAMPLE_CUTS = 24
FULL_CUTS = 520

TRANSFER = """
app = App()
b = boot()
before = records()
r = transfer(app, read_image(CFG['img']), b'12345678', busy_at=CFG.get('busy_at', -1))
print(json.dumps({'r': r, 'events': EVENTS, 'same': before == records(), 'rec': boot().record(),
                  'files': sorted(os.listdir('.'))}))
"""


def _fresh(tmp: Path, data: bytes, **kw: Any) -> tuple[Path, Path]:
    flash = tmp / "flash"
    if flash.exists():
        shutil.rmtree(flash)
    provision(flash, **kw)
    img = tmp / "image.bin"
    img.write_bytes(data)
    return flash, img


def _transfer(tmp: Path, data: bytes, **kw: Any) -> Any:
    flash, img = _fresh(tmp, data, **{k: v for k, v in kw.items() if k in ("keys", "hw")})
    before = sorted(os.listdir(flash))
    out = run_device(
        flash, TRANSFER, img=str(img), **{k: v for k, v in kw.items() if k == "busy_at"}
    )
    out["before_files"] = before
    return out


def test_a_good_image_is_taken_and_switches_nothing_yet(
    tmp_path: Path, images: dict[str, bytes]
) -> None:
    out = _transfer(tmp_path, images["new"])
    assert out["r"] == ["ready", "ok"], out
    assert out["same"]  # settings, calibration, counters, bonds, registration, keys
    assert out["rec"]["slot"] == "" and out["rec"]["trial"] == 0  # the switch is the commit's
    assert "fw_a" in out["files"] and "update.tmp" not in out["files"]


def test_a_heating_session_pauses_the_transfer(tmp_path: Path, images: dict[str, bytes]) -> None:
    out = _transfer(tmp_path, images["new"], busy_at=4096)
    assert out["r"] == ["ready", "ok"], out


@pytest.mark.parametrize(
    ("name", "code", "kw"),
    [
        ("other_key", "signature", {}),
        ("older", "version", {}),
        ("hw_b", "hardware", {}),
        ("esp32", "format", {}),
        ("new", "no_key", {"keys": []}),
        ("new", "signature", {"keys": ["other"]}),
    ],
)
def test_a_refused_image_changes_nothing(
    tmp_path: Path, images: dict[str, bytes], name: str, code: str, kw: dict[str, Any]
) -> None:
    if kw.get("keys") == ["other"]:
        other = image.load_private_key(Path(__file__).parent / "keys" / "TEST-ONLY-other-key.pem")
        kw = {"keys": [other.public_key()]}
    out = _transfer(tmp_path, images[name], **kw)
    assert out["r"] == ["refused", code], out
    assert out["same"] and out["files"] == out["before_files"], out  # not a file more or less
    assert out["rec"]["slot"] == "" and out["events"][-1] == f"update refused {code}"


def test_a_truncated_image_is_refused(tmp_path: Path, images: dict[str, bytes]) -> None:
    for cut in (6, 200, len(images["new"]) - 1):
        out = _transfer(tmp_path, images["new"][:cut])
        assert out["r"][0] in ("refused", "begin"), (cut, out)
        assert out["r"][1] in ("size", "header"), (cut, out)
        assert out["same"] and out["rec"]["slot"] == ""


FLIPS = """
app = App()
boot()
before = records()
data = read_image(CFG['img'])
out = []
for pos in CFG['positions']:
    for m in list(sys.modules):
        if m == 'update':
            del sys.modules[m]
    bad = bytearray(data)
    bad[pos] ^= 0x01
    r = transfer(App(), bytes(bad), b'flip%04d' % (pos % 10000))
    out.append([pos, r[0], r[1], boot().record()['slot'], before == records()])
print(json.dumps(out))
"""


def test_one_byte_changed_anywhere_is_refused(tmp_path: Path, images: dict[str, bytes]) -> None:
    """Every byte of the header (magic, lengths, manifest, signature) and
    sampled bytes of every file: refused, nothing else changed."""
    data = images["new"]
    img = image.parse(data)
    head = list(range(img.header_len))
    # make test: a fixed slice of the header (every magic and length byte, every
    # 7th byte of the manifest and signature); make update-sweep: every byte
    positions = head if FULL else sorted(set(head[:8] + head[8::7] + head[-3:]))
    off = img.header_len
    for _name, size, _h in img.files():
        positions += sorted({off, off + size // 2, off + size - 1})
        off += size
    flash, path = _fresh(tmp_path, data)
    rows = run_device(flash, FLIPS, img=str(path), positions=positions)
    codes: dict[str, int] = {}
    for pos, state, code, slot, same in rows:
        assert state in ("refused", "begin"), (pos, state, code)
        assert slot == "" and same, (pos, code)
        codes[code] = codes.get(code, 0) + 1
    assert len(rows) == len(positions)
    assert set(codes) <= {"header", "signature", "size", "file_hash"}, codes
    in_manifest = [p for p in positions if 8 <= p < 8 + len(img.manifest_bytes)]
    assert codes["signature"] >= len(in_manifest)  # a manifest byte: its signature fails
    assert codes["file_hash"] >= len(img.files())
    print(
        f"one byte changed: {len(positions)} positions ({len(in_manifest)} in the manifest), "
        f"all refused: {codes}"
    )


CUTS = """
app = App()
boot()
data = read_image(CFG['img'])
before = records()
# how many bytes the transfer and the switch write: counted through the shim
FS.arm(1 << 30)
transfer(app, data, b'count000')
n_transfer = (1 << 30) - FS.cut_after
try:
    commit(app)
except SimEnd:
    pass
n_all = (1 << 30) - FS.cut_after
FS.arm(-1)
out = {'n_transfer': n_transfer, 'n_switch': n_all - n_transfer, 'rows': []}
points = [int(x) for x in CFG['points']] + list(range(n_transfer, n_all + 1))
import os as _os

def wipe():
    for d in ('fw_a', 'fw_b'):
        try:
            for f in _os.listdir(d):
                _os.remove(d + '/' + f)
            _os.rmdir(d)
        except OSError:
            pass
    for f in ('boot.a', 'boot.b', 'update.tmp'):
        try:
            _os.remove(f)
        except OSError:
            pass

for n in points:
    wipe()
    b = boot()
    a = App()
    FS.arm(n)
    cut = False
    try:
        transfer(a, data, b'cut%05d' % (n % 100000))
        commit(a)
    except SimEnd as e:
        cut = e.reason == 'power_cut'
    FS.dead = False
    FS.arm(-1)
    b = boot()  # the power comes back
    rec = b.record()
    out['rows'].append([n, cut, b.running, rec['trial'], slot_ok(b.running), before == records()])
print(json.dumps(out))
"""


def _cut_points(total: int, count: int) -> list[int]:
    step = max(1, total // count)
    return list(range(0, total, step))[:count]


def test_a_power_cut_at_any_byte_of_transfer_and_switch(
    tmp_path: Path, images: dict[str, bytes]
) -> None:
    """The transfer's bytes (a sample, or every N-th for the full sweep) and
    every byte of the switch: the kit boots the deployed firmware or the new
    one, complete and verified, with every other record as it was."""
    data = images["new"]
    flash, path = _fresh(tmp_path, data)
    count = FULL_CUTS if FULL else SAMPLE_CUTS
    # the transfer writes the manifest and the files: about the image's size
    points = _cut_points(len(data) - 300, count)
    out = run_device(flash, CUTS, img=str(path), points=points)
    rows = out["rows"]
    n_transfer, n_switch = out["n_transfer"], out["n_switch"]
    assert 0 < n_switch < 300 and n_transfer > len(data) // 2
    assert len(rows) == len(points) + n_switch + 1
    if FULL:
        assert len([r for r in rows if r[0] < n_transfer]) >= 500
    bad = [r for r in rows if not (r[4] and r[5])]
    assert not bad, bad[:5]  # complete, verified firmware; nothing else lost
    for n, cut, running, trial, _ok, _same in rows:
        if n < n_transfer + n_switch:
            assert cut, n
        if n < n_transfer:
            assert running == "" and trial == 0, n  # the old firmware: the switch never came
    # a cut after the switch's last byte: the new firmware, booting on trial
    assert rows[-1][2] == "a" and rows[-1][3] == 2
    report = (
        f"power cuts: {len(points)} in the transfer ({n_transfer} bytes written), "
        f"{n_switch + 1} in the switch: 0 unbootable, 0 records lost"
    )
    print(report)


TRIAL_CUTS = """
app = App()
b = boot()
data = read_image(CFG['img'])
before = records()
transfer(app, data, b'trial000')
try:
    commit(app)
except SimEnd:
    pass
import os as _os
saved = {}
for f in ('boot.a', 'boot.b'):
    try:
        with open(f, 'rb') as fh:
            saved[f] = fh.read()
    except OSError:
        saved[f] = None

def restore():
    for f, v in saved.items():
        if v is None:
            try:
                _os.remove(f)
            except OSError:
                pass
        else:
            with open(f, 'wb') as fh:
                fh.write(v)

rows = []
for phase in ('select', 'confirm', 'fail'):
    n = 0
    while True:
        restore()
        cut = False
        try:
            if phase == 'select':
                FS.arm(n)
                boot()
            else:
                FS.arm(-1)
                b = boot()
                FS.arm(n)
                if phase == 'confirm':
                    b.confirm()
                else:
                    b.fail('selfcheck')
        except SimEnd as e:
            cut = e.reason == 'power_cut'
        FS.dead = False
        FS.arm(-1)
        b = boot()
        rec = b.record()
        rows.append([phase, n, cut, b.running, rec['trial'], slot_ok(b.running),
                     before == records()])
        if not cut:
            break
        n += 1
print(json.dumps(rows))
"""


def test_a_power_cut_at_any_byte_of_the_trial_boot(
    tmp_path: Path, images: dict[str, bytes]
) -> None:
    """Every byte of the trial boot's record writes -- marking the trial, the
    confirmation, a failed check's rollback: a complete firmware boots."""
    flash, path = _fresh(tmp_path, images["new"])
    rows = run_device(flash, TRIAL_CUTS, img=str(path))
    phases = {p for p, *_ in rows}
    assert phases == {"select", "confirm", "fail"}
    for phase, n, _cut, running, _trial, ok, same in rows:
        assert ok and same, (phase, n)
        assert running in ("", "a"), (phase, n)
    # each row: the boot after the cut. A cut before the write's last byte
    # leaves the record as it was (the last two rows of a phase: the write
    # whole, then the cut; no cut). A whole trial mark, then a boot with no
    # confirmation in between, is a reset on trial: it rolls back
    for phase in ("select", "confirm", "fail"):
        prows = [r for r in rows if r[0] == phase]
        for k, (_p, n, _cut, running, trial, _ok, _same) in enumerate(prows):
            whole = k >= len(prows) - 2
            want = {
                "select": ("", 0) if whole else ("a", 2),
                "confirm": ("a", 0) if whole else ("", 0),
                "fail": ("", 0),
            }[phase]
            assert (running, trial) == want, (phase, n)
    assert len([r for r in rows if r[0] == "select" and r[2]]) > 20  # the mark's bytes, each cut
    print(f"trial boot: {len(rows)} cuts (marking, confirming, rolling back): 0 unbootable")


def test_sigcheck_in_micropython_matches_the_host(tmp_path: Path, images: dict[str, bytes]) -> None:
    img = image.parse(images["new"])
    pub = image.load_public_key(image.TEST_PUBLIC_KEY)
    digest = hashlib.sha256(img.manifest_bytes).hexdigest()
    script = f"""
import sigcheck
from binascii import unhexlify
n = unhexlify('{image.modulus_hex(pub)}')
sig = unhexlify('{img.signature.hex()}')
d = unhexlify('{digest}')
bad = bytearray(sig); bad[100] ^= 1
print(json.dumps([sigcheck.verify(n, sig, d), sigcheck.verify(n, bytes(bad), d),
                  sigcheck.verify(n, sig, d[:31] + b'x'), sigcheck.verify(n, sig[:-1], d)]))
"""
    flash, _ = _fresh(tmp_path, b"")
    assert run_device(flash, script) == [True, False, False, False]
