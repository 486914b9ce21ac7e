"""Hostile and broken input, without a VM: each case checks the message
and that nothing changed that must not.

abctl here is build/powercut/abctl (glibc, Debian's libcryptsetup, which
hashes in userspace, so images really are verified on this host); the
init's side is bootsim, the init's protocol code on a disk image and an
efivarfs directory. The same cases inside QEMU/OVMF (a wrong root hash, a
missing partition, lost entries, a firmware ignoring BootNext) are in
tests/e2e/."""

import hashlib
import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from slotdisk import GLOBAL, SlotDisk

TOP = Path(__file__).resolve().parents[2]
PC = TOP / "build" / "powercut"
E2E = TOP / "build" / "e2e"
ENV = {"ASAN_OPTIONS": "detect_leaks=0", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}


class Machine(SlotDisk):
    """A reference disk, an efivarfs directory, a mounted-ESP directory."""

    def __init__(self, tmp):
        self.dir = tmp
        self.disk = tmp / "disk.img"
        self.efivars = tmp / "efivars"
        self.esp = tmp / "esp"
        self.efivars.mkdir()
        (self.esp / "EFI/abswitch").mkdir(parents=True)
        self.ukis = {}
        (tmp / "kernel").write_bytes(b"kernel placeholder\n" * 64)
        (tmp / "initrd").write_bytes(b"initrd placeholder\n" * 64)
        for name in ("a", "b", "b-commit"):
            self.ukis[name] = self.uki(name, f"@{E2E}/slot-{name}.roothash")
        shutil.copy(self.ukis["a"], self.esp / "EFI/abswitch/boot-a.efi")
        shutil.copy(self.ukis["b"], self.esp / "EFI/abswitch/boot-b.efi")
        subprocess.run([TOP / "initramfs/mkdisk", "--output", self.disk, "--a-image", E2E / "slot-a",
                        "--a-uki", self.ukis["a"], "--b-image", E2E / "slot-b", "--b-uki", self.ukis["b"],
                        "--esp-size", "64M", "--slot-size", "2M", "--verity-size", "1M"],
                       check=True, capture_output=True)
        # The init's first boot on A creates the boot entries.
        assert self.boot("\\EFI\\abswitch\\boot-a.efi").returncode == 0

    def uki(self, name, roothash):
        out = self.dir / f"uki-{name}.efi"
        subprocess.run([TOP / "initramfs/mkuki", "--kernel", self.dir / "kernel", "--initrd", self.dir / "initrd",
                        "--roothash", roothash, "--output", out], check=True, capture_output=True)
        return out

    def abctl(self, *args, running="A"):
        return subprocess.run([PC / "abctl", "--disk", self.disk, "--efivars", self.efivars, "--esp", self.esp,
                               "--record", "/nonexistent", "--running", running, *map(str, args)],
                              capture_output=True, text=True, env=ENV)

    def boot(self, path, ok="AB"):
        return subprocess.run([PC / "bootsim", "--disk", self.disk, "--efivars", self.efivars,
                               "--loader-path", path, "--root-ok", ok], capture_output=True, text=True, env=ENV)


    def set_var(self, name, value):
        (self.efivars / f"{name}-{GLOBAL}").write_bytes(b"\x07\0\0\0" + value)

    def fingerprint(self):
        h = hashlib.sha256(self.disk.read_bytes())
        for d in (self.efivars, self.esp):
            for p in sorted(d.rglob("*")):
                if p.is_file():
                    h.update(str(p.relative_to(d)).encode() + p.read_bytes())
        return h.hexdigest()


@pytest.fixture
def m(tmp_path):
    return Machine(tmp_path)


def refused(m, r, message):
    assert r.returncode == 1, r.stderr
    assert message in r.stderr, r.stderr
    assert "Nothing was changed" in r.stderr


# ---- abctl install: what it is given --------------------------------------------

def test_install_truncated_image(m):
    half = m.dir / "half"
    img = (E2E / "slot-b-commit.img").read_bytes()
    (m.dir / "half.img").write_bytes(img[:len(img) // 2])
    shutil.copy(E2E / "slot-b-commit.verity", m.dir / "half.verity")
    before = m.fingerprint()
    refused(m, m.abctl("install", half, m.ukis["b-commit"]), "half.img is truncated")
    assert m.fingerprint() == before


def test_install_image_the_uki_does_not_pin(m):
    before = m.fingerprint()
    refused(m, m.abctl("install", E2E / "slot-b-commit", m.ukis["a"]),
            "this image and this UKI do not belong together")
    assert m.fingerprint() == before


def test_install_uki_without_root_hash(m):
    plain = m.dir / "plain.efi"
    shutil.copy("/usr/lib/systemd/boot/efi/linuxx64.efi.stub", plain)
    before = m.fingerprint()
    refused(m, m.abctl("install", E2E / "slot-b-commit", plain), "has no .cmdline section")
    assert m.fingerprint() == before


@pytest.fixture
def small_esp(m):
    """The ESP as its own small file system (tmpfs), so it can fill up or go read-only."""
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", m.esp], check=True)
    (m.esp / "EFI/abswitch").mkdir(parents=True)
    shutil.copy(m.ukis["a"], m.esp / "EFI/abswitch/boot-a.efi")
    shutil.copy(m.ukis["b"], m.esp / "EFI/abswitch/boot-b.efi")
    yield m.esp
    subprocess.run(["umount", m.esp], check=True)


def test_install_esp_full(m, small_esp):
    free = shutil.disk_usage(small_esp).free
    (small_esp / "filler").write_bytes(b"\0" * (free - 8192))
    before = m.fingerprint()
    refused(m, m.abctl("install", E2E / "slot-b-commit", m.ukis["b-commit"]), "the ESP is full")
    assert m.fingerprint() == before


def test_install_esp_read_only(m, small_esp):
    subprocess.run(["mount", "-o", "remount,ro", small_esp], check=True)
    before = m.fingerprint()
    refused(m, m.abctl("install", E2E / "slot-b-commit", m.ukis["b-commit"]), "read-only")
    assert m.fingerprint() == before


# ---- the GPT ---------------------------------------------------------------------

def test_corrupt_backup_gpt_reported_and_repaired(m):
    size = m.disk.stat().st_size
    with open(m.disk, "r+b") as f:
        f.seek(size - 512 + 16)  # the backup header's CRC
        f.write(b"\xde\xad\xbe\xef")
    assert "primary valid, backup INVALID" in m.abctl("status").stdout
    r = m.boot("\\EFI\\abswitch\\boot-a.efi")
    assert "backup INVALID" in r.stderr and '"action": "boot"' in r.stdout
    assert m.abctl("set-active", "B").returncode == 0
    assert "No problems found" in subprocess.run(["sgdisk", "-v", m.disk], capture_output=True, text=True).stdout


def test_both_gpt_copies_corrupt(m):
    size = m.disk.stat().st_size
    with open(m.disk, "r+b") as f:
        for off in (512 + 16, size - 512 + 16):
            f.seek(off)
            f.write(b"\xde\xad\xbe\xef")
    before = m.fingerprint()
    r = m.abctl("set-active", "B")
    assert r.returncode == 1 and "no valid GPT" in r.stderr, r.stderr
    assert m.fingerprint() == before


# ---- EFI variables and firmware, as the init sees them ---------------------------

@pytest.mark.parametrize("name,value", [
    ("BootOrder", b"\x01"),              # odd size
    ("BootNext", b"\x01\x00\x02\x00"),   # four bytes, not two
    ("Boot1000", b"\xff" * 7),           # garbage load option
])
def test_garbage_variable_ignored(m, name, value):
    m.set_var(name, value)
    gpt = m.disk.read_bytes()
    r = m.boot("\\EFI\\abswitch\\boot-a.efi")
    assert '"action": "boot", "target": "A"' in r.stdout, r.stdout + r.stderr
    assert "unreadable or malformed, ignoring them" in r.stderr, r.stderr
    assert m.disk.read_bytes() == gpt  # a committed boot writes no state


def test_bootnext_names_missing_entry(m):
    m.set_var("BootNext", struct.pack("<H", 0x0777))
    gpt = m.disk.read_bytes()
    r = m.boot("\\EFI\\abswitch\\boot-a.efi")
    assert '"action": "boot", "target": "A", "reason": "committed"' in r.stdout, r.stdout + r.stderr
    assert m.disk.read_bytes() == gpt


def test_both_slots_failed_stops_with_message(m):
    m.set_state("A", 0)
    m.set_state("B", 0)
    before = m.fingerprint()
    r = m.boot("\\EFI\\abswitch\\boot-a.efi")
    assert '"action": "stop"' in r.stdout and "nothing-bootable" in r.stdout, r.stdout + r.stderr
    assert m.fingerprint() == before


def test_firmware_ignores_bootnext(m):
    # B is better (committed, higher priority): A's init arms B and reboots...
    m.set_state("B", 2, successful=True)
    m.set_state("A", 1, successful=True)
    r = m.boot("\\EFI\\abswitch\\boot-a.efi")
    assert '"action": "reboot", "target": "B"' in r.stdout, r.stdout + r.stderr
    assert m.var("BootNext") is not None
    # ... but the firmware starts A again and leaves BootNext: A boots, no second redirect.
    gpt = m.disk.read_bytes()
    r = m.boot("\\EFI\\abswitch\\boot-a.efi")
    assert '"action": "boot", "target": "A", "reason": "bootnext-ignored"' in r.stdout, r.stdout + r.stderr
    assert m.var("BootNext") is not None
    assert m.disk.read_bytes() == gpt
