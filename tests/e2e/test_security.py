"""The security promises, in QEMU/OVMF: no command line lets the init mount
a root that does not verify, and dm-verity keeps checking after the boot
with the corruption policy the UKI asks for (ab.verity_error=; the default,
fallback, is tests/e2e/test_heal.py's)."""

import re

import abvm

BOOT_A = 0x1000
BOOT_B = 0x1001
PATH_A = r"\EFI\abswitch\boot-a.efi"
PATH_B = r"\EFI\abswitch\boot-b.efi"
CORRUPTED = re.compile(r"device-mapper: verity: .*data block \d+ is corrupted")


def test_override_cannot_bypass_the_hash_pin(machine):
    # boot-a.efi says ab.slot=B but pins A's root hash: B's image must not be
    # mounted although the command line names it. The init refuses it and
    # the machine comes back on A, B marked failed.
    a = machine.uki("boot-a.efi", "A", slot="B")
    a_plain = machine.uki("boot-a-plain.efi", "A")
    machine.make_disk(a, a_plain, active="a")
    machine.add_boot_entries({BOOT_A: ("abswitch A", PATH_A)}, order=[BOOT_A])
    boot = machine.boot()
    assert boot.root is None or boot.root["slot"] != "B", "slot B's root was mounted against A's hash"
    log = "\n".join(boot.init_log())
    assert "does not verify against the pinned root hash" in log, boot.tail()
    assert "refusing to mount an unverified root" in log, boot.tail()
    assert machine.slot_state("B")["priority"] == 0


def reader_disk(machine, cmdline=""):
    a = machine.uki("boot-a.efi", "a-reader", cmdline=cmdline)
    machine.make_disk(a, None, a_image="a-reader", b_image=None, active="a")
    machine.add_boot_entries({BOOT_A: ("abswitch A", PATH_A)}, order=[BOOT_A])
    # Corrupt a block of /data/blob: the boot never reads it, the root's init does.
    image = (abvm.E2E / "slot-a-reader.img").read_bytes()
    off = image.find(b"ABSWITCH-BLOB-LINE-%012d\n" % 7900)
    assert off > 0 and off % 32 == 0
    machine.corrupt_slot("A", offset=off)


def test_corruption_after_boot_restarts(machine):
    reader_disk(machine, cmdline="ab.verity_error=restart")
    boot = machine.boot()
    # The root came up verified, read the blob, hit the corrupted block, and
    # dm-verity restarted the machine (QEMU exits on reboot): no read result.
    assert boot.root is not None and boot.root["verity"] == "yes", boot.tail()
    assert boot.record["root"]["verity_error"] == "restart"
    assert CORRUPTED.search(boot.console), boot.tail()
    assert "ABSWITCH-READ" not in boot.console, boot.tail()
    assert boot.exited


def test_corruption_after_boot_eio(machine):
    reader_disk(machine, cmdline="ab.verity_error=eio")
    boot = machine.boot()
    assert boot.root is not None and boot.root["verity"] == "yes", boot.tail()
    assert boot.record["root"]["verity_error"] == "eio"
    assert CORRUPTED.search(boot.console), boot.tail()
    m = re.search(r"ABSWITCH-READ bytes=(\d+) errno=(\d+)", boot.console)
    assert m, boot.tail()
    assert int(m.group(2)) == 5, m.group(0)     # EIO
    assert int(m.group(1)) < 262144             # stopped at the corrupted block
