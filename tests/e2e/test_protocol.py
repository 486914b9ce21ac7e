"""Tried/failed state and automatic fallback, end to end.

Each test starts from the state `abctl install` leaves (A committed, B
installed at a higher priority with its first attempt armed: tries spent,
armed bit, BootNext), written with cgpt, sgdisk and the VARS writer, then
boots real OVMF until the machine settles. "Reboot" is QEMU exiting
(-no-reboot) and starting again with the same disk and VARS file."""

import pytest

import abvm
from scenarios import PANIC_FALLBACK, SIGNED_UPDATE

BOOT_A, BOOT_B = 0x1000, 0x1001
PATH_A = r"\EFI\abswitch\boot-a.efi"
PATH_B = r"\EFI\abswitch\boot-b.efi"


def installed_trial(m, b_cmdline="", b_image="b", tries_left=2, b_hash=None):
    """A committed at priority 1; B on trial at priority 2, its first attempt armed."""
    a = m.uki("boot-a.efi", "A")
    b = m.uki("boot-b.efi", b_hash or b_image.upper(), cmdline=b_cmdline)
    m.make_disk(a, b, b_image=b_image)
    m.set_slot_state("A", priority=1, successful=True)
    m.set_slot_state("B", priority=2, tries=tries_left, armed=True)
    m.add_boot_entries({BOOT_A: ("abswitch A", PATH_A), BOOT_B: ("abswitch B", PATH_B)},
                       order=[BOOT_A, BOOT_B], boot_next=BOOT_B)


def boot_until_settled(m, limit=10):
    """Boots until a root's init runs in a committed slot. Returns the boots."""
    boots = []
    for _ in range(limit):
        b = m.boot()
        boots.append(b)
        rec = b.record
        if rec and rec["decision"]["action"] == "boot" and not rec["decision"]["trial"]:
            return boots
    raise AssertionError(f"not settled after {limit} boots; last console:\n{boots[-1].tail()}")


def slots_seen(boots):
    """Per boot: which slot's root ran ('-' when none did)."""
    return [b.root["slot"] if b.root else "-" for b in boots]


def test_corrupt_image_falls_back(machine):
    installed_trial(machine)
    machine.corrupt_slot("B")
    boots = boot_until_settled(machine)
    log = "\n".join(boots[0].init_log())
    assert "This is slot B" in log
    assert "does not verify against the pinned root hash" in log
    assert "Rebooting into slot A (root-failed)" in log
    assert slots_seen(boots) == ["-", "A"]
    assert machine.slot_state("B") == {"priority": 0, "tries": 0, "successful": False, "armed": False}
    # B is not retried: the next boot is A again, and writes nothing.
    boot = machine.boot()
    assert boot.root["slot"] == "A"
    assert boot.record["decision"]["reason"] == "committed"
    assert boot.record["decision"]["gpt_writes"] == 0
    assert boot.record["decision"]["nvram_writes"] == 0


@pytest.mark.xdist_group(PANIC_FALLBACK)
def test_panic_before_init_falls_back(panic_fallback):
    # B's kernel cannot run the initramfs: it panics before any init, on its
    # last try (scenarios.py PanicFallback, its firmware variant; the kexec
    # variant is test_kexec.py's). A, started by the firmware, arms B (the
    # try is spent before the attempt) and resets; B panics; A, with B
    # armed and out of tries, marks it failed. Counting over several tries
    # without an init: test_never_marked_good_falls_back (two) and the unit
    # tests (every state).
    boots = panic_fallback.runs["firmware"]
    assert slots_seen(boots) == ["-", "-", "A"]
    assert "Rebooting into slot B (better-slot)" in "\n".join(boots[0].init_log())
    assert sum("Kernel panic" in b.console for b in boots) == 1
    assert "Kernel panic" in boots[1].console
    assert "Slot B is now marked failed" in "\n".join(boots[-1].init_log())
    after = panic_fallback.after["firmware"]
    assert after["B"]["priority"] == 0
    assert after["boot_next"] is None


def test_never_marked_good_falls_back(machine):
    # B boots fine but nobody commits it: after its tries, back on A for good.
    # B's last try here (the state after abctl install --tries 1): counting
    # over several tries is test_secureboot_unsigned_update_falls_back's (A
    # arms B again in between) and the unit tests' (every state), and the
    # boots saved keep make check under 15 minutes.
    installed_trial(machine, tries_left=0)
    boots = boot_until_settled(machine, limit=10)
    assert slots_seen(boots) == ["B", "A"]
    assert boots[0].record["decision"]["trial"] is True
    assert boots[0].record["decision"]["reason"] == "trial"
    # Settled: B failed (priority 0, never chosen again), A committed, nothing armed.
    assert machine.slot_state("B")["priority"] == 0
    assert machine.slot_state("A") == {"priority": 1, "tries": 0, "successful": True, "armed": False}
    assert machine.varstore().boot_next() is None


def test_hang_watchdog_falls_back(machine):
    # B's userspace hangs on its last try; the i6300esb watchdog resets it.
    installed_trial(machine, b_cmdline="ab.watchdog=10", b_image="b-hang", tries_left=0)
    boot = machine.boot()
    assert "ABSWITCH-HANG" in boot.console
    assert boot.exited, "the watchdog did not reset the hung machine"
    assert boot.record["decision"]["watchdog"] is True
    boot = machine.boot()
    assert boot.root["slot"] == "A"
    assert "Slot B is now marked failed" in "\n".join(boot.init_log())
    assert machine.slot_state("B")["priority"] == 0


def test_lost_boot_entries_repaired(machine):
    # B committed and preferred; the VARS file is fresh, as after an NVRAM
    # reset: the firmware boots the removable path, a copy of B's UKI.
    a = machine.uki("boot-a.efi", "A")
    b = machine.uki("boot-b.efi", "B")
    machine.make_disk(a, b, active="b")
    boot = machine.boot()
    rec = boot.record
    assert boot.root["slot"] == "B"
    assert rec["efi"]["LoaderImageIdentifier"] == r"\EFI\BOOT\BOOTX64.EFI"
    assert rec["identity"]["source"] == "root-hash"
    log = "\n".join(boot.init_log())
    assert "Created boot entry Boot1000 'abswitch A'" in log
    assert "Created boot entry Boot1001 'abswitch B'" in log
    v = machine.varstore()
    assert v.boot_order()[:2] == [BOOT_B, BOOT_A]
    opts = v.boot_options()
    assert opts[BOOT_A]["path"] == PATH_A and opts[BOOT_B]["path"] == PATH_B

    # The firmware now starts the committed slot by its entry, and the boot writes nothing.
    boot = machine.boot()
    rec = boot.record
    assert boot.root["slot"] == "B"
    assert rec["identity"]["source"] == "loader-image-identifier"
    assert rec["decision"]["nvram_writes"] == 0
    assert rec["decision"]["gpt_writes"] == 0


def test_override_is_obeyed(machine):
    # B is on trial at a higher priority, but this UKI says ab.slot=A.
    a = machine.uki("boot-a.efi", "A", slot="A")
    b = machine.uki("boot-b.efi", "B")
    machine.make_disk(a, b)
    machine.set_slot_state("A", priority=1, successful=True)
    machine.set_slot_state("B", priority=2, tries=2)
    machine.add_boot_entries({BOOT_A: ("abswitch A", PATH_A), BOOT_B: ("abswitch B", PATH_B)}, order=[BOOT_A])
    boot = machine.boot()
    assert boot.root["slot"] == "A"
    rec = boot.record
    assert rec["identity"]["source"] == "cmdline"
    assert rec["decision"]["reason"] == "override"
    # B was not armed or charged a try.
    assert machine.slot_state("B") == {"priority": 2, "tries": 2, "successful": False, "armed": False}
    assert machine.varstore().boot_next() is None


def test_trial_commit_in_the_guest(machine):
    # B's system runs `abctl mark-good` on its trial boot, on real efivarfs.
    installed_trial(machine, b_image="b-commit")
    boot = machine.boot()
    assert boot.root["slot"] == "B"
    assert boot.record["decision"]["trial"] is True
    assert "ABSWITCH-RUN rc=0 /usr/bin/abctl mark-good" in boot.console, boot.tail()
    assert "mark-good: slot B is now committed" in boot.console
    assert machine.slot_state("B") == {"priority": 2, "tries": 0, "successful": True, "armed": False}
    assert machine.slot_state("A") == {"priority": 1, "tries": 0, "successful": True, "armed": False}
    assert machine.varstore().boot_order()[0] == BOOT_B

    # Next boot: the firmware starts B by BootOrder; a committed boot writes nothing.
    boot = machine.boot()
    assert boot.root["slot"] == "B"
    rec = boot.record
    assert rec["decision"]["reason"] == "committed"
    assert rec["decision"]["gpt_writes"] == 0
    assert rec["decision"]["nvram_writes"] == 0


@pytest.mark.xdist_group(SIGNED_UPDATE)
def test_update_commit(signed_update):
    # Slot A's system installs v2 into B with abctl, B boots on trial and
    # commits itself; B stays, first in BootOrder. The boots are the signed
    # update's (scenarios.py: this very flow, on a machine with Secure Boot
    # and a TPM, which test_secureboot.py and test_tpm.py read too); the same
    # flow without Secure Boot boots in test_registry.py's installs and
    # test_systemd.py. One machine's three boots instead of two machines' six.
    machine, boots, after = signed_update.machine, signed_update.boots, signed_update.after

    boot = boots["A-committed"]
    assert boot.root["slot"] == "A"
    assert "ABSWITCH-RUN rc=0 /usr/bin/abctl install /images/v2 /images/v2.efi" in boot.console, boot.tail(30)
    assert after["A-committed"]["B"] == {"priority": 2, "tries": 2, "successful": False, "armed": True}
    assert after["A-committed"]["A"] == {"priority": 1, "tries": 0, "successful": True, "armed": False}
    assert after["A-committed"]["boot_next"] == BOOT_B

    boot = boots["B-trial"]
    assert boot.root["slot"] == "B"
    assert boot.record["decision"]["trial"] is True
    assert boot.record["root"]["roothash"] == abvm.roothash("B-COMMIT")
    assert "ABSWITCH-RUN rc=0 /usr/bin/abctl mark-good" in boot.console
    # The install put v2's UKI on the ESP; the commit made the removable path a copy of it.
    v2 = (abvm.E2E / "v2-boot-b.efi").read_bytes()
    assert machine.esp_file("/EFI/abswitch/boot-b.efi") == v2
    assert machine.esp_file("/EFI/BOOT/BOOTX64.EFI") == v2

    boot = boots["B-committed"]
    assert boot.root["slot"] == "B"
    assert boot.record["decision"]["reason"] == "committed"
    assert after["B-committed"]["boot_order"][0] == BOOT_B
    assert after["B-committed"]["B"] == {"priority": 2, "tries": 0, "successful": True, "armed": False}


def test_install_refuses_mismatched_hash(machine):
    # Inside slot A: an image whose hash tree does not match what the UKI pins.
    a = machine.uki("boot-a.efi", "A-MISMATCH")
    b = machine.uki("boot-b.efi", "B")
    machine.make_disk(a, b, a_image="a-mismatch")
    machine.add_boot_entries({BOOT_A: ("abswitch A", PATH_A), BOOT_B: ("abswitch B", PATH_B)},
                             order=[BOOT_A, BOOT_B])
    before = (machine.slot_state("A"), machine.slot_state("B"))
    boot = machine.boot()
    assert "ABSWITCH-RUN rc=1 /usr/bin/abctl install" in boot.console, boot.tail(30)
    assert "does not verify against the root hash the UKI pins" in boot.console
    assert "Nothing was changed." in boot.console
    assert (machine.slot_state("A"), machine.slot_state("B")) == before
    assert machine.varstore().boot_next() is None


def test_failed_image_not_reinstalled(machine):
    # v2 already failed in slot B (its UKI is on the ESP, B is failed):
    # installing the same v2 again is refused without --force.
    a = machine.uki("boot-a.efi", "A-INSTALLER")
    machine.make_disk(a, abvm.E2E / "v2-boot-b.efi", a_image="a-installer", b_image="b-commit")
    machine.set_slot_state("B", priority=0)
    machine.add_boot_entries({BOOT_A: ("abswitch A", PATH_A), BOOT_B: ("abswitch B", PATH_B)},
                             order=[BOOT_A, BOOT_B])
    boot = machine.boot()
    assert boot.root["slot"] == "A"
    assert "ABSWITCH-RUN rc=1 /usr/bin/abctl install" in boot.console, boot.tail(30)
    assert "already failed in slot B. Install it anyway with --force" in boot.console
    assert machine.slot_state("B") == {"priority": 0, "tries": 0, "successful": False, "armed": False}
    assert machine.varstore().boot_next() is None
