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
import zlib
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
        # Versions as a fleet has them: A and B at 1, the update (b-commit) at 2,
        # so every install of it is an upgrade (abctl refuses downgrades).
        for name, version in (("a", "1"), ("b", "1"), ("b-commit", "2")):
            self.ukis[name] = self.uki(name, f"@{E2E}/slot-{name}.roothash", version=version)
        shutil.copy(self.ukis["a"], self.esp / "EFI/abswitch/boot-a.efi")
        shutil.copy(self.ukis["b"], self.esp / "EFI/abswitch/boot-b.efi")
        subprocess.run([TOP / "initramfs/mkdisk", "--output", self.disk, "--a-image", E2E / "slot-a",
                        "--a-uki", self.ukis["a"], "--b-image", E2E / "slot-b", "--b-uki", self.ukis["b"],
                        "--esp-size", "64M", "--slot-size", "8M", "--verity-size", "1M"],
                       check=True, capture_output=True)
        # The init's first boot on A creates the boot entries.
        assert self.boot("\\EFI\\abswitch\\boot-a.efi").returncode == 0

    def uki(self, name, roothash, version=None):
        out = self.dir / f"uki-{name}.efi"
        subprocess.run([TOP / "initramfs/mkuki", "--kernel", self.dir / "kernel", "--initrd", self.dir / "initrd",
                        "--roothash", roothash, "--output", out] + (["--version", version] if version else []),
                       check=True, capture_output=True)
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


def test_init_gpt_warning_says_why(m):
    """The init's warning names the check that refused the copy, not only "INVALID"."""
    size = m.disk.stat().st_size
    with open(m.disk, "r+b") as f:
        f.seek(size - 512 + 12)  # the backup header's size field, CRC left as it was
        f.write(struct.pack("<I", 80))
    r = m.boot("\\EFI\\abswitch\\boot-a.efi")
    assert "primary valid, backup INVALID (header size 80 is outside 92-512 bytes)" in r.stderr, r.stderr
    assert "backup GPT refused: header size 80 is outside 92-512 bytes" in m.abctl("status").stdout


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


# ---- partition geometry ----------------------------------------------------------

ROOT_TYPE = "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709"
VERITY_TYPE = "2C7357ED-EBD2-46D9-AEC1-23D437EC2BF5"


def gpt_patch_entry(disk, partno, first=None, last=None):
    """Sets one entry's first and/or last LBA in both GPT copies and
    recomputes their CRC32s, so the table passes every header check (sgdisk
    refuses to make overlapping partitions, so a hostile table is patched)."""
    with open(disk, "r+b") as f:
        f.seek(512)
        alternate = struct.unpack_from("<Q", f.read(512), 32)[0]
        for lba in (1, alternate):
            f.seek(lba * 512)
            h = bytearray(f.read(512))
            assert h[:8] == b"EFI PART"
            hsize, = struct.unpack_from("<I", h, 12)
            array_lba, n, esize = struct.unpack_from("<QII", h, 72)
            f.seek(array_lba * 512)
            a = bytearray(f.read(n * esize))
            if first is not None:
                struct.pack_into("<Q", a, (partno - 1) * esize + 32, first)
            if last is not None:
                struct.pack_into("<Q", a, (partno - 1) * esize + 40, last)
            struct.pack_into("<I", h, 88, zlib.crc32(a))
            struct.pack_into("<I", h, 16, 0)
            struct.pack_into("<I", h, 16, zlib.crc32(bytes(h[:hsize])))
            f.seek(array_lba * 512)
            f.write(a)
            f.seek(lba * 512)
            f.write(h)


class HandDisk(Machine):
    """A disk partitioned by hand with sgdisk, not by mkdisk: the reference
    layout plus a data partition, A's image written with dd, A committed and
    running, B a committed fallback; boot entries as A's init left them."""

    def __init__(self, tmp):
        self.dir = tmp
        self.disk = tmp / "disk.img"
        self.efivars = tmp / "efivars"
        self.esp = tmp / "esp"
        self.efivars.mkdir()
        (self.esp / "EFI/abswitch").mkdir(parents=True)
        (tmp / "kernel").write_bytes(b"kernel placeholder\n" * 64)
        (tmp / "initrd").write_bytes(b"initrd placeholder\n" * 64)
        self.ukis = {n: self.uki(n, f"@{E2E}/slot-{n}.roothash") for n in ("a", "b", "b-commit")}
        shutil.copy(self.ukis["a"], self.esp / "EFI/abswitch/boot-a.efi")
        shutil.copy(self.ukis["b"], self.esp / "EFI/abswitch/boot-b.efi")
        subprocess.run(["truncate", "-s", "48M", self.disk], check=True)
        subprocess.run(["sgdisk", "-n", "1:1M:+8M", "-t", "1:EF00", "-c", "1:esp",
                        "-n", f"2:0:+8M", "-t", f"2:{ROOT_TYPE}", "-c", "2:system-a",
                        "-n", f"3:0:+1M", "-t", f"3:{VERITY_TYPE}", "-c", "3:system-a-verity",
                        "-n", f"4:0:+8M", "-t", f"4:{ROOT_TYPE}", "-c", "4:system-b",
                        "-n", f"5:0:+1M", "-t", f"5:{VERITY_TYPE}", "-c", "5:system-b-verity",
                        "-n", "6:0:0", "-c", "6:data", self.disk], check=True, capture_output=True)
        for part, src in ((2, "slot-a.img"), (3, "slot-a.verity"), (4, "slot-b.img"), (5, "slot-b.verity")):
            subprocess.run(["dd", f"if={E2E / src}", f"of={self.disk}", "bs=512", f"seek={self.first(part)}",
                            "conv=notrunc", "status=none"], check=True)
        self.set_state("A", 2, successful=True)
        self.set_state("B", 1, successful=True)
        assert self.boot("\\EFI\\abswitch\\boot-a.efi").returncode == 0

    def first(self, part):
        return self.range(part)[0]

    def range(self, part):
        out = subprocess.run(["sgdisk", "-i", str(part), self.disk], check=True, capture_output=True,
                             text=True).stdout
        get = lambda what: int(next(l for l in out.splitlines() if l.startswith(what)).split()[2])
        return get("First sector:"), get("Last sector:")


@pytest.fixture
def hand(tmp_path):
    return HandDisk(tmp_path)


# Each way of breaking the geometry: the patch, then what the message names.
GEOMETRY = {
    # system-b starts inside system-a, the running slot
    "b-overlaps-a": (lambda d: gpt_patch_entry(d.disk, 4, first=d.first(2) + 100),
                     lambda d: f"partition 2 (system-a, LBA {d.range(2)[0]}-{d.range(2)[1]}) overlaps "
                               f"partition 4 (system-b, LBA {d.first(2) + 100}-{d.range(4)[1]})"),
    # system-b inside the ESP
    "b-overlaps-esp": (lambda d: gpt_patch_entry(d.disk, 4, first=d.first(1) + 8, last=d.first(1) + 4103),
                       lambda d: f"partition 1 (esp, LBA {d.range(1)[0]}-{d.range(1)[1]}) overlaps "
                                 f"partition 4 (system-b, LBA {d.first(1) + 8}-{d.first(1) + 4103})"),
    # last < first: libblkid's size (last - first + 1) wraps around
    "b-negative": (lambda d: gpt_patch_entry(d.disk, 4, last=d.first(4) - 2),
                   lambda d: f"partition 4 (system-b, LBA {d.first(4)}-{d.first(4) - 2}) ends before it "
                             f"starts: it is empty or negative"),
    # a data partition reaching back into system-b: it must never be written
    "data-overlaps-b": (lambda d: gpt_patch_entry(d.disk, 6, first=d.range(4)[1]),
                        lambda d: f"partition 4 (system-b, LBA {d.range(4)[0]}-{d.range(4)[1]}) overlaps "
                                  f"partition 6 (data, LBA {d.range(4)[1]}-"),
    # system-b past the last usable LBA, over the backup GPT
    "b-outside-usable": (lambda d: gpt_patch_entry(d.disk, 4, last=d.disk.stat().st_size // 512 - 2),
                         lambda d: f"partition 4 (system-b, LBA {d.first(4)}-{d.disk.stat().st_size // 512 - 2}) lies "
                                   f"outside the usable LBA 34-{d.disk.stat().st_size // 512 - 34}"),
}

STATE_CHANGING = [
    ("install", E2E / "slot-b-commit", "UKI"),
    ("install", "oci:/nonexistent-layout"),
    ("mark-good",),
    ("mark-bad",),
    ("mark-bad", "B"),
    ("set-active", "B"),
    ("set-active", "A"),
    ("rollback",),
]


@pytest.mark.parametrize("how", GEOMETRY)
def test_overlapping_partitions_refused(hand, how):
    patch, message = GEOMETRY[how]
    expected = message(hand)       # the ranges as sgdisk sees them before the patch
    patch(hand)
    if how == "data-overlaps-b":   # sgdisk reads the patched table too: both CRCs are right
        assert "data" in subprocess.run(["sgdisk", "-p", hand.disk], capture_output=True, text=True).stdout
    before = hand.fingerprint()
    disk_hash = hashlib.sha256(hand.disk.read_bytes()).hexdigest()
    for args in STATE_CHANGING + [("status",)]:
        args = [hand.ukis["b-commit"] if a == "UKI" else a for a in args]
        r = hand.abctl(*args)
        assert r.returncode == 1, (args, r.stdout, r.stderr)
        assert expected in r.stderr, (args, r.stderr)
        assert "is unsafe to use" in r.stderr and "repair the table (sgdisk --print" in r.stderr, r.stderr
        assert "Nothing was changed" in r.stderr, r.stderr
        assert hashlib.sha256(hand.disk.read_bytes()).hexdigest() == disk_hash, args
        assert hand.fingerprint() == before, args
    # The init's layout reader refuses the disk too.
    r = hand.boot("\\EFI\\abswitch\\boot-a.efi")
    assert r.returncode != 0 and expected in r.stderr, r.stderr
    assert hand.fingerprint() == before


def test_hand_built_disk_accepted(hand):
    """The rig itself: the same disk unpatched (adjacent partitions, a data
    partition after them) is fine, and an install into B works."""
    r = hand.abctl("install", E2E / "slot-b-commit", hand.ukis["b-commit"])
    assert r.returncode == 0, r.stderr
    assert "slot B" in r.stdout


# ---- arguments -------------------------------------------------------------------

@pytest.mark.parametrize("option,value", [
    ("--tries", "-18446744073709551615"),  # strtoul wraps it around to 1
    ("--tries", "-1"),
    ("--tries", "+3"),
    ("--tries", " 3"),
    ("--tries", "3 "),
    ("--tries", "0x3"),
    ("--tries", ""),
    ("--tries", "16"),
    ("--timeout", "-18446744073709551615"),
    ("--timeout", "+10"),
    ("--timeout", "\t10"),
    ("--timeout", "18446744073709551626"),  # wraps to 10 in 64 bits
])
def test_signed_numbers_refused(m, option, value):
    before = m.fingerprint()
    for verb in (("status",), ("install", E2E / "slot-b-commit", m.ukis["b-commit"])):
        r = m.abctl(option, value, *verb)
        assert r.returncode == 1, (verb, r.stdout, r.stderr)
        assert f"{option} must be 1 to " in r.stderr and f"not '{value}'" in r.stderr, r.stderr
    assert m.fingerprint() == before


def test_plain_numbers_accepted(m):
    assert m.abctl("--tries", "015", "--timeout", "86400", "status").returncode == 0
    r = m.abctl("--tries", "15", "install", E2E / "slot-b-commit", m.ukis["b-commit"])
    assert r.returncode == 0, r.stderr
    assert "tries=14 armed" in r.stdout, r.stdout  # 15, one spent arming the first attempt


@pytest.mark.parametrize("args,extra", [
    (("set-active", "B", "A"), "A"),
    (("status", "A"), "A"),
    (("status", "--json", "B"), "B"),
    (("mark-good", "A"), "A"),
    (("mark-bad", "B", "A"), "A"),
    (("rollback", "B"), "B"),
    (("install", "PREFIX", "UKI", "extra"), "extra"),
])
def test_extra_arguments_refused(m, args, extra):
    m.set_state("B", 1, successful=True)
    args = [E2E / "slot-b-commit" if a == "PREFIX" else m.ukis["b-commit"] if a == "UKI" else a for a in args]
    before = m.fingerprint()
    r = m.abctl(*args)
    assert r.returncode == 1, (r.stdout, r.stderr)
    verb = args[0]
    assert f"Too many arguments for {verb}: '{extra}' is one more than it takes. Usage: abctl {verb}" in r.stderr, \
        r.stderr
    assert m.fingerprint() == before


def test_missing_arguments_refused(m):
    before = m.fingerprint()
    r = m.abctl("set-active")
    assert r.returncode == 1 and "set-active needs a slot: abctl set-active A|B" in r.stderr, r.stderr
    r = m.abctl("install")
    assert r.returncode == 1 and "install needs an image" in r.stderr, r.stderr
    assert m.fingerprint() == before


def test_huge_record_refused(m):
    record = m.dir / "boot.json"
    small = b'{"slot": "B", "partitions": {"disk": "/nonexistent"}}'
    # Just over the 1 MiB bound: refused before json-c sees it, even with --disk and --running given.
    record.write_bytes(small + b" " * ((1 << 20) + 1 - len(small)))
    before = m.fingerprint()
    for verb in (("status",), ("set-active", "B")):
        r = m.abctl("--record", record, *verb)
        assert r.returncode == 1, r.stderr
        assert f"The boot record {record} is 1048577 bytes, more than the 1048576 bytes a boot record can be" \
            in r.stderr, r.stderr
        assert "Nothing was changed" in r.stderr
    assert m.fingerprint() == before
    # Exactly 1 MiB is read (and --running A from the command line wins over its "B").
    record.write_bytes(small + b" " * ((1 << 20) - len(small)))
    r = m.abctl("--record", record, "status")
    assert r.returncode == 0, r.stderr
    assert "Running: slot A" in r.stdout


def test_record_not_a_regular_file_refused(m):
    """A FIFO (or /dev/zero) as --record: json-c would block or read forever."""
    fifo = m.dir / "fifo"
    subprocess.run(["mkfifo", fifo], check=True)
    before = m.fingerprint()
    r = subprocess.run([PC / "abctl", "--disk", m.disk, "--efivars", m.efivars, "--esp", m.esp, "--running", "A",
                        "--record", fifo, "set-active", "B"], capture_output=True, text=True, env=ENV, timeout=30)
    assert r.returncode == 1, r.stderr
    assert f"The boot record {fifo} is not a regular file" in r.stderr, r.stderr
    assert m.fingerprint() == before
