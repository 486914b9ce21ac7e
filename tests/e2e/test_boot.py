"""Verified boot end to end: real OVMF, a real Debian kernel, a real GPT
disk, real dm-verity. Each test is one or more boots of about 10-15 s under
software emulation."""

import os

import pytest

import abvm

# The firmware modes these tests boot in: without Secure Boot, and, when
# ABSWITCH_BOOT_MODES says so, with it (secboot OVMF, snakeoil keys in db,
# UKIs signed). make check runs the plain mode only: a Secure Boot boot costs
# about a third more under emulation, and Secure Boot has its own tests in
# make check (test_secureboot.py: the signed update's three boots, refused
# unsigned and stranger-signed updates, entry options ignored, install
# refusing an unsigned UKI; test_tpm.py). ABSWITCH_BOOT_MODES=uefi,secureboot
# runs both; ABSWITCH_SECUREBOOT=1 runs the whole suite with Secure Boot.
MODES = [m for m in os.environ.get("ABSWITCH_BOOT_MODES", "uefi").split(",") if m]
assert set(MODES) <= {"uefi", "secureboot"}, f"ABSWITCH_BOOT_MODES: uefi and/or secureboot, not {MODES}"


@pytest.fixture(params=[m == "secureboot" for m in MODES], ids=MODES)
def machine(request, tmp_path):
    """Every test here in each of MODES. Under ABSWITCH_SECUREBOOT=1 both
    would be Secure Boot runs: the uefi one is skipped."""
    if not request.param and abvm.SECUREBOOT:
        pytest.skip("ABSWITCH_SECUREBOOT=1: the secureboot variant runs this test")
    m = abvm.Machine(tmp_path, secureboot=request.param)
    yield m
    # Each boot really ran in the mode its id says: the kernel's EFI stub saw
    # it (unless "quiet" hid its messages), and so did the root wherever one
    # came up (secureboot=1 and the kernel locked down).
    for n, b in enumerate(m.boots, 1):
        if "Linux version" in b.console:
            assert ("EFI stub: UEFI Secure Boot is enabled" in b.console) == request.param, \
                f"boot {n}:\n{b.tail()}"
        if b.security:
            want = {"secureboot": "1", "lockdown": "integrity"} if request.param else \
                {"secureboot": "0", "lockdown": "none"}
            assert b.security == want, f"boot {n}: {b.security}"

BOOT_A = 0x1000
BOOT_B = 0x1001
PATH_A = r"\EFI\abswitch\boot-a.efi"
PATH_B = r"\EFI\abswitch\boot-b.efi"


def two_slot_disk(m, a_cmdline="", b_cmdline="", active="a"):
    """Both slots installed and committed, each UKI pinning its own image."""
    a = m.uki("boot-a.efi", "A", cmdline=a_cmdline)
    b = m.uki("boot-b.efi", "B", cmdline=b_cmdline)
    m.make_disk(a, b, active=active)
    return a, b


def assert_verified_root(boot, slot):
    assert boot.root is not None, f"the root's init never ran; console ends with:\n{boot.tail()}"
    assert boot.root["slot"] == slot, boot.root
    assert boot.root["verity"] == "yes", boot.root
    assert boot.root["dm"] == "abswitch-root", boot.root
    assert boot.root["ro"] == "yes", boot.root
    rec = boot.record
    assert rec["slot"] == slot
    assert rec["root"]["roothash"] == abvm.roothash(slot)
    assert rec["root"]["device"] == "/dev/mapper/abswitch-root"
    # The log went to /dev/kmsg and the kernel printed it: logging really works.
    assert rec["log"] == "/dev/kmsg"
    assert any("Switching root to slot " + slot in l for l in boot.init_log()), boot.tail()
    return rec


def test_boot_slot_a_by_file_name(machine):
    two_slot_disk(machine)
    machine.add_boot_entries({BOOT_A: ("abswitch A", PATH_A), BOOT_B: ("abswitch B", PATH_B)},
                             order=[BOOT_A, BOOT_B])
    boot = machine.boot()
    rec = assert_verified_root(boot, "A")
    assert rec["identity"]["source"] == "loader-image-identifier"
    assert rec["identity"]["value"] == PATH_A
    assert rec["partitions"]["data"] == "/dev/vda2"
    assert rec["partitions"]["hash"] == "/dev/vda3"
    # The initramfs remover (a SCHED_IDLE child the root's init reaps) ran and finished.
    assert "ABSWITCH-FREE exited=0" in boot.console, boot.tail()
    # This machine has no TPM: one line says so, nothing is measured, the boot went on.
    assert sum("No TPM (neither /dev/tpmrm0 nor /dev/tpm0)" in l for l in boot.init_log()) == 1, boot.init_log()
    assert rec["tpm"]["state"] == "absent" and rec["tpm"]["measurements"] == [], rec["tpm"]


def test_boot_slot_b_by_file_name(machine):
    two_slot_disk(machine, active="b")
    machine.add_boot_entries({BOOT_A: ("abswitch A", PATH_A), BOOT_B: ("abswitch B", PATH_B)},
                             order=[BOOT_B, BOOT_A])
    boot = machine.boot()
    rec = assert_verified_root(boot, "B")
    assert rec["identity"]["source"] == "loader-image-identifier"
    assert rec["identity"]["value"] == PATH_B
    assert rec["partitions"]["data"] == "/dev/vda4"
    assert rec["partitions"]["hash"] == "/dev/vda5"


def test_boot_via_boot_entry_boot_current(machine):
    # The stub's LoaderImageIdentifier would answer first; this UKI tells the
    # init to consult only BootCurrent, so the Boot#### path must decide.
    two_slot_disk(machine, b_cmdline="ab.identity=boot-current", active="b")
    machine.add_boot_entries({BOOT_A: ("abswitch A", PATH_A), BOOT_B: ("abswitch B", PATH_B)},
                             order=[BOOT_A, BOOT_B], boot_next=BOOT_B)
    boot = machine.boot()
    rec = assert_verified_root(boot, "B")
    assert rec["identity"]["source"] == "boot-current"
    assert rec["identity"]["sources"]["loader-image-identifier"] == "disabled"
    assert rec["efi"]["BootCurrent"] == f"{BOOT_B:04X}"
    assert rec["efi"]["BootCurrentDescription"] == "abswitch B"
    assert rec["efi"]["BootCurrentPath"] == PATH_B
    # The firmware consumed BootNext; the init put the committed, preferred
    # slot B first in BootOrder: both are in the real VARS file.
    v = machine.varstore()
    assert v.boot_next() is None
    assert v.boot_order()[:2] == [BOOT_B, BOOT_A]
    assert rec["decision"]["nvram_writes"] == 1


def test_slot_override_cmdline(machine):
    # A UKI at boot-a.efi with ab.slot=B baked in (and B's root hash): the
    # command line beats the file name.
    a = machine.uki("boot-a.efi", "B", slot="B")
    b = machine.uki("boot-b.efi", "B")
    machine.make_disk(a, b)
    machine.add_boot_entries({BOOT_A: ("abswitch A", PATH_A)}, order=[BOOT_A])
    boot = machine.boot()
    rec = assert_verified_root(boot, "B")
    assert rec["identity"]["source"] == "cmdline"
    assert rec["efi"]["LoaderImageIdentifier"] == PATH_A


def test_wrong_root_hash_refused(machine):
    # boot-b.efi pins A's root hash: B's image must not be mounted. B is the
    # active slot; the init refuses it, marks it failed and falls back to A.
    a = machine.uki("boot-a.efi", "A")
    b = machine.uki("boot-b.efi", "A")
    machine.make_disk(a, b, active="b")
    machine.add_boot_entries({BOOT_A: ("abswitch A", PATH_A), BOOT_B: ("abswitch B", PATH_B)},
                             order=[BOOT_B, BOOT_A])
    boot = machine.boot()
    assert boot.root is None, "a root that does not verify was mounted"
    log = "\n".join(boot.init_log())
    assert "Slot B: setting up dm-verity: the hash tree on /dev/vda5 does not verify against the pinned " \
           "root hash" in log
    assert "refusing to mount an unverified root" in log
    assert "Mounted " not in log
    assert "EROFS" not in boot.console  # the kernel never mounted a file system
    assert "Slot B is now marked failed" in log
    assert "Rebooting into slot A (root-failed)" in log
    assert machine.slot_state("B")["priority"] == 0
    assert machine.varstore().boot_next() == BOOT_A

    boot = machine.boot()
    rec = assert_verified_root(boot, "A")
    assert rec["identity"]["value"] == PATH_A


def test_missing_system_partition(machine):
    a = machine.uki("boot-a.efi", "A")
    b = machine.uki("boot-b.efi", "B", cmdline="ab.timeout=3")
    machine.make_disk(a, b, active="b")
    machine.delete_partitions(4, 5)
    machine.add_boot_entries({BOOT_A: ("abswitch A", PATH_A), BOOT_B: ("abswitch B", PATH_B)},
                             order=[BOOT_B, BOOT_A])
    boot = machine.boot()
    assert boot.root is None
    log = "\n".join(boot.init_log())
    assert "Waiting up to 3 s for slot B's system partition" in log
    assert "Slot B: finding the system partition: no disk has GPT partitions labelled " \
           "system-b and system-b-verity after waiting 3 s" in log
    assert "setting up dm-verity" not in log
    assert "Rebooting into slot A (root-failed)" in log
    # Slot B has no partition to mark; A is untouched and boots next.
    assert machine.slot_state("A") == {"priority": 1, "tries": 0, "successful": True, "armed": True}
    boot = machine.boot()
    assert_verified_root(boot, "A")
    assert machine.slot_state("A") == {"priority": 1, "tries": 0, "successful": True, "armed": False}


def test_missing_both_slots_stops(machine):
    # Nothing to fall back to: a clear stop after the bounded wait, no reboot loop.
    a = machine.uki("boot-a.efi", "A", cmdline="ab.timeout=3")
    machine.make_disk(a, None, b_image=None)
    machine.delete_partitions(2, 3)
    boot = machine.boot()
    assert boot.stopped, boot.tail()
    assert not boot.exited  # it did not reboot
    log = "\n".join(boot.init_log())
    assert "Cannot boot slot A: no slot can boot: finding the system partition: no disk has GPT " \
           "partitions labelled system-a and system-a-verity after waiting 3 s; and slot B cannot take over" in log
    assert "Rebooting" not in log


def test_trial_without_watchdog_warns_on_the_console(machine):
    # An integrator's initramfs without the watchdog's driver (here: a
    # machine without one): the trial boot still happens, and the init says
    # at error level, which the console shows even with quiet, that a hang
    # would not fall back (issue 12, defect 11).
    a = machine.uki("boot-a.efi", "A")
    b = machine.uki("boot-b.efi", "B", cmdline="quiet")
    machine.make_disk(a, b, active="a")
    machine.set_slot_state("B", priority=2, tries=2, armed=True)
    machine.set_slot_state("A", priority=1, successful=True)
    machine.add_boot_entries({BOOT_A: ("abswitch A", PATH_A), BOOT_B: ("abswitch B", PATH_B)},
                             order=[BOOT_A, BOOT_B], boot_next=BOOT_B)
    machine.watchdog = False
    boot = machine.boot()
    assert boot.root is not None and boot.root["slot"] == "B", boot.tail()
    assert "TRIAL BOOT WITHOUT A HARDWARE WATCHDOG" in boot.console, boot.tail()
    assert boot.record["decision"]["trial"] is True
    assert boot.record["decision"]["watchdog"] is False
