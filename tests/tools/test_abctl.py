"""abctl against a real GPT disk image (made by initramfs/mkdisk, read back
with cgpt) and a directory standing in for efivarfs (the same file format:
4 bytes of attributes, then the value). No VM needed."""

import hashlib
import json
import struct
import subprocess
import zlib
from pathlib import Path

import pytest
from slotdisk import SlotDisk

TOP = Path(__file__).resolve().parents[2]
ABCTL = TOP / "build" / "abctl"


class Rig(SlotDisk):
    def __init__(self, tmp):
        self.dir = tmp
        self.disk = tmp / "disk.img"
        self.efivars = tmp / "efivars"
        self.efivars.mkdir()
        for s in "ab":
            (tmp / f"boot-{s}.efi").write_bytes(b"MZ not really a UKI")
        subprocess.run([TOP / "initramfs/mkdisk", "--output", self.disk,
                        "--a-image", TOP / "build/e2e/slot-a", "--a-uki", tmp / "boot-a.efi",
                        "--b-image", TOP / "build/e2e/slot-b", "--b-uki", tmp / "boot-b.efi",
                        "--esp-size", "64M", "--slot-size", "4M", "--verity-size", "1M"],
                       check=True, capture_output=True)

    def abctl(self, *args, running="A"):
        return subprocess.run([ABCTL, "--disk", self.disk, "--efivars", self.efivars, "--record", "/nonexistent",
                               "--running", running, *args], capture_output=True, text=True)

    def state(self, slot):
        return self.slot(slot)

    def u16s(self, name):
        v = self.var(name)
        return list(struct.unpack(f"<{len(v) // 2}H", v)) if v else None

    def fingerprint(self):
        h = hashlib.sha256(self.disk.read_bytes())
        for p in sorted(self.efivars.iterdir()):
            h.update(p.name.encode() + p.read_bytes())
        return h.hexdigest()


@pytest.fixture
def rig(tmp_path):
    return Rig(tmp_path)


def test_status_json(rig):
    r = rig.abctl("status", "--json")
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    assert s["running"] == "A"
    assert s["slots"]["A"] == {**s["slots"]["A"], "status": "committed", "priority": 2, "successful": True,
                               "partition": 2}
    assert s["slots"]["B"]["priority"] == 1
    assert s["gpt_primary_valid"] and s["gpt_backup_valid"]
    words = rig.abctl("status").stdout
    assert "Slot A:  committed" in words and "running" in words


def test_mark_good_commits_the_running_trial_slot(rig):
    rig.set_state("B", priority=2, tries=1)
    rig.set_state("A", priority=1, successful=True)
    r = rig.abctl("mark-good", running="B")
    assert r.returncode == 0, r.stderr
    assert rig.state("B") == {"priority": 2, "tries": 0, "successful": True, "armed": False}
    assert rig.state("A") == {"priority": 1, "tries": 0, "successful": True, "armed": False}
    # Entries exist for both UKIs and B's leads BootOrder.
    assert rig.var("Boot1000") and rig.var("Boot1001")
    assert rig.u16s("BootOrder")[0] == 0x1001
    # Once more: nothing left to write.
    before = rig.fingerprint()
    assert rig.abctl("mark-good", running="B").returncode == 0
    assert rig.fingerprint() == before


def test_set_active_trial_slot_arms_it(rig):
    rig.set_state("B", priority=1, tries=3)
    r = rig.abctl("set-active", "B")
    assert r.returncode == 0, r.stderr
    assert rig.state("B") == {"priority": 2, "tries": 2, "successful": False, "armed": True}
    assert rig.u16s("BootNext") == [0x1001]
    assert "BootNext: Boot1001 (slot B)" in r.stdout


def test_mark_bad_other_then_rollback_refused(rig):
    rig.set_state("B", priority=1, tries=2)  # B on trial, never committed
    assert rig.abctl("mark-bad", "B").returncode == 0
    assert rig.state("B")["priority"] == 0
    r = rig.abctl("rollback")
    assert r.returncode == 1
    assert "slot B has never been committed" in r.stderr


@pytest.mark.parametrize("args,running,message", [
    (("mark-bad",), "A", "marking it bad would leave no slot to boot"),
    (("set-active", "B"), "A", "slot B has failed; install a new image into it first"),
    (("rollback",), "A", "slot B has never been committed"),
    (("set-active", "C"), "A", "'C' is not a slot"),
    (("frobnicate",), "A", "Unknown command 'frobnicate'"),
])
def test_refusals_change_nothing(rig, args, running, message):
    rig.set_state("B", priority=0)  # B failed, never committed
    before = rig.fingerprint()
    r = rig.abctl(*args, running=running)
    assert r.returncode == 1
    assert message in r.stderr
    assert rig.fingerprint() == before


def test_corrupt_primary_gpt_is_reported_and_repaired(rig):
    with open(rig.disk, "r+b") as f:
        f.seek(512 + 16)  # primary header CRC
        f.write(b"\xde\xad\xbe\xef")
    s = rig.abctl("status").stdout
    assert "GPT: primary INVALID, backup valid" in s
    assert rig.abctl("set-active", "B").returncode == 0
    assert "No problems found" in subprocess.run(["sgdisk", "-v", rig.disk], capture_output=True,
                                                 text=True).stdout


def test_no_record_no_disk(tmp_path):
    r = subprocess.run([ABCTL, "--record", str(tmp_path / "none.json"), "status"], capture_output=True, text=True)
    assert r.returncode == 1
    assert "Was this system booted by abswitch? Pass --disk." in r.stderr


def test_install_refuses_running_slot(rig):
    before = rig.fingerprint()
    r = rig.abctl("install", "--slot", "A", str(TOP / "build/e2e/slot-b"), str(rig.dir / "boot-b.efi"))
    assert r.returncode == 1
    assert "slot A is the running slot; install into slot B" in r.stderr
    assert "Nothing was changed" in r.stderr
    assert rig.fingerprint() == before


@pytest.mark.parametrize("what,message", [
    ("not-pe", "is not a PE file, so not a UKI"),
    ("missing-image", "expected "),
    ("too-big", "does not fit"),
])
def test_install_refuses_bad_input(rig, what, message):
    prefix, uki = TOP / "build/e2e/slot-b", rig.dir / "boot-b.efi"   # boot-b.efi here is not a PE file
    if what == "missing-image":
        prefix = rig.dir / "nothing"
    if what == "too-big":
        big = rig.dir / "big"
        (rig.dir / "big.img").write_bytes(b"\0" * (5 << 20))   # the slot partitions here are 4 MiB
        (rig.dir / "big.verity").write_bytes(b"\0" * 4096)
        prefix = big
    before = rig.fingerprint()
    r = rig.abctl("install", "--esp", str(rig.dir), str(prefix), str(uki))
    assert r.returncode == 1
    assert message in r.stderr
    assert rig.fingerprint() == before


def test_status_shows_versions_from_the_ukis(rig):
    env = dict(l.split("=", 1) for l in (TOP / "build/e2e/env").read_text().splitlines())
    esp = rig.dir / "esp" / "EFI" / "abswitch"
    esp.mkdir(parents=True)
    for slot, version in (("a", "41"), ("b", "42")):
        osrel = rig.dir / f"os-release-{slot}"
        osrel.write_text(f'NAME=fleetos\nPRETTY_NAME="FleetOS {version}"\nVERSION_ID={version}\n')
        subprocess.run([TOP / "initramfs/mkuki", "--kernel", env["KERNEL_IMAGE"],
                        "--initrd", TOP / "build/e2e/initramfs.img", "--roothash", f"@{TOP}/build/e2e/slot-{slot}.roothash",
                        "--os-release", osrel, "--output", esp / f"boot-{slot}.efi"], check=True, capture_output=True)
    r = rig.abctl("--esp", str(rig.dir / "esp"), "status", "--json")
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    assert s["slots"]["A"]["version"] == "41" and s["slots"]["B"]["version"] == "42"
    assert s["slots"]["B"]["name"] == "FleetOS 42"
    assert s["slots"]["A"]["roothash"] == (TOP / "build/e2e/slot-a.roothash").read_text().strip()
    words = rig.abctl("--esp", str(rig.dir / "esp"), "status").stdout
    assert "FleetOS 42 version 42, root hash " in words
    # Without a mounted ESP, status still works and claims no version.
    s = json.loads(rig.abctl("status", "--json").stdout)
    assert "version" not in s["slots"]["A"]


def test_status_says_why_a_gpt_copy_was_refused(rig):
    """Not just "INVALID": the check that refused the copy, as libblkid and cgptlib keep it."""
    with open(rig.disk, "r+b") as f:
        f.seek(512 + 16)  # primary header CRC
        f.write(b"\xde\xad\xbe\xef")
    s = rig.abctl("status").stdout
    assert "GPT: primary INVALID, backup valid" in s
    assert "primary GPT refused: header CRC32 0xefbeadde does not match its contents (0x" in s, s
    j = json.loads(rig.abctl("status", "--json").stdout)
    assert j["gpt_primary_reason"].startswith("header CRC32 0xefbeadde does not match"), j
    assert "gpt_backup_reason" not in j
    # The backup's MyLBA pointing elsewhere (with a correct CRC): its own reason.
    size = rig.disk.stat().st_size
    with open(rig.disk, "r+b") as f:
        f.seek(size - 512)
        h = bytearray(f.read(512))
        struct.pack_into("<Q", h, 24, 7)
        struct.pack_into("<I", h, 16, 0)
        struct.pack_into("<I", h, 16, zlib.crc32(bytes(h[:92])))
        f.seek(size - 512)
        f.write(h)
    r = rig.abctl("status")
    assert r.returncode == 1
    assert "has no valid GPT copy (primary: header CRC32 0xefbeadde" in r.stderr, r.stderr
    assert f"backup: MyLBA 7 is not where the header is (LBA {size // 512 - 1})" in r.stderr, r.stderr
