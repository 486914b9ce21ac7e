"""A slot is marked failed only when the init knows it is that slot's image
that failed (BRIEF.md), and the root-hash pin survives a command line
replaced by a boot entry's options (issue 12, defects 9 and 10).

Real OVMF and systemd-stub 252; "reboot" is QEMU exiting (-no-reboot) and
starting again with the same disk and VARS file."""

import re

import abvm
import ovmfvars

BOOT_A, BOOT_B = 0x1000, 0x1001
OPERATOR = 0x0010  # an entry an operator made with efibootmgr -c ... -u "ab.slot=B ..."
PATH_A = r"\EFI\abswitch\boot-a.efi"
PATH_B = r"\EFI\abswitch\boot-b.efi"
COMMITTED = {"tries": 0, "successful": True, "armed": False}


def boot_until_root(m, limit):
    """Boots until a root's init runs or the init stops. Returns the boots."""
    boots = []
    for _ in range(limit):
        b = m.boot()
        boots.append(b)
        if b.root or b.stopped:
            return boots
    raise AssertionError(f"no root after {limit} boots; last console:\n{boots[-1].tail()}")


def kernel_cmdline(boot):
    m = re.search(r"Kernel command line: (.*)", boot.console)
    return m.group(1).strip() if m else None


# ---- defect 9: a UKI that is not the slot's fails nothing ----------------------------

def foreign_removable_disk(m, b_trial):
    """No boot entries; \\EFI\\BOOT\\BOOTX64.EFI is B's UKI; B's file system is
    corrupt; A committed and healthy."""
    a = m.uki("boot-a.efi", "A")
    b = m.uki("boot-b.efi", "B")
    m.make_disk(a, b, removable="b")
    m.corrupt_slot("B")
    if b_trial:
        # B installed, then the operator preferred A again (set-active A).
        m.set_slot_state("A", priority=2, successful=True)
        m.set_slot_state("B", priority=1, tries=2)
    else:
        m.set_slot_state("A", priority=2, successful=True)
        m.set_slot_state("B", priority=1, successful=True)
    assert m.esp_file("/EFI/BOOT/BOOTX64.EFI") == b.read_bytes()


def assert_foreign_boot_failed_nothing(boot):
    log = "\n".join(boot.init_log())
    assert boot.root is None
    assert "This is slot A, from default" in log
    assert "no slot will be marked failed by this boot" in log
    assert "is now marked failed" not in log
    assert "Rebooting into slot A (identity-unknown)" in log, boot.tail()


def test_foreign_uki_never_fails_a_healthy_slot(machine):
    foreign_removable_disk(machine, b_trial=False)
    boots = boot_until_root(machine, limit=4)
    assert_foreign_boot_failed_nothing(boots[0])
    # The init armed A's own entry; the firmware started it.
    assert [b.root["slot"] if b.root else "-" for b in boots] == ["-", "A"]
    rec = boots[-1].record
    assert rec["identity"]["source"] == "loader-image-identifier"
    assert rec["decision"]["reason"] == "committed"
    assert machine.slot_state("A") == {"priority": 2, **COMMITTED}
    # B's image is corrupt, but nothing that knew it was B's booted it: B keeps its state.
    assert machine.slot_state("B") == {"priority": 1, **COMMITTED}
    assert machine.varstore().boot_options()[BOOT_A]["path"] == PATH_A


def test_foreign_uki_never_fails_a_healthy_slot_b_on_trial(machine):
    foreign_removable_disk(machine, b_trial=True)
    boots = boot_until_root(machine, limit=4)
    assert_foreign_boot_failed_nothing(boots[0])
    assert [b.root["slot"] if b.root else "-" for b in boots] == ["-", "A"]
    assert boots[-1].record["decision"]["reason"] == "committed"
    assert machine.slot_state("A") == {"priority": 2, **COMMITTED}
    # B's trial is untouched: the foreign boot was not B's attempt.
    assert machine.slot_state("B") == {"priority": 1, "tries": 2, "successful": False, "armed": False}


def test_foreign_uki_firmware_ignores_bootnext_stops(machine):
    # As above, but the firmware keeps starting the removable path, B's
    # UKI: it ignores BootNext and lost the entries the init made (as after
    # an NVRAM reset; with them, BootOrder alone would reach A). A's armed
    # bit stops a second redirect: the init stops instead of looping.
    foreign_removable_disk(machine, b_trial=False)
    boot = machine.boot()
    assert_foreign_boot_failed_nothing(boot)
    assert machine.slot_state("A")["armed"]
    v = machine.varstore()
    assert v.boot_next() == BOOT_A
    assert v.boot_order()[:2] == [BOOT_A, BOOT_B]
    v.set_boot_next(None)
    for n in (BOOT_A, BOOT_B):
        v.set(f"Boot{n:04X}", None)
    v.set_boot_order([n for n in v.boot_order() if n not in (BOOT_A, BOOT_B)])
    v.save()
    boot = machine.boot()
    assert boot.stopped, boot.tail()
    assert not boot.exited  # waiting on the console, not rebooting
    log = "\n".join(boot.init_log())
    assert "this UKI is not known to be any slot's: no slot was marked failed for it" in log
    assert "This UKI's pinned root hash verifies against neither slot's hash tree" in log
    assert "armed once already and never reached its init" in log
    assert r"from the firmware's boot menu" in log
    assert "is now marked failed" not in log
    assert machine.slot_state("A") == {"priority": 2, "tries": 0, "successful": True, "armed": True}
    assert machine.slot_state("B") == {"priority": 1, **COMMITTED}
    # The operator starts A's own entry (the stopped boot made it again):
    # A boots, committed, disarmed.
    v = machine.varstore()
    assert v.boot_options()[BOOT_A]["path"] == PATH_A
    v.set_boot_next(BOOT_A)
    v.save()
    boot = machine.boot()
    assert boot.root["slot"] == "A", boot.tail()
    assert machine.slot_state("A") == {"priority": 2, **COMMITTED}


def test_rollback_and_set_active_refresh_removable_copy(machine):
    # The stale removable-path copy above came from abctl rollback and
    # set-active, which left BOOTX64.EFI as it was: it must follow the slot
    # that leads BootOrder. A's root carries abctl and runs what fw_run says.
    a = machine.uki("boot-a.efi", "A-NET")
    b = machine.uki("boot-b.efi", "B")
    # slot-a-net holds an update's UKI and curl: 32M, as test_registry.py gives it.
    machine.make_disk(a, b, a_image="a-net", removable="b", slot_size="32M")  # both committed, A preferred, copy stale
    machine.add_boot_entries({BOOT_A: ("abswitch A", PATH_A), BOOT_B: ("abswitch B", PATH_B)},
                             order=[BOOT_A, BOOT_B])
    machine.fw_run = ["/usr/bin/abctl set-active A"]
    boot = machine.boot()
    assert "ABSWITCH-RUN rc=0 /usr/bin/abctl set-active A" in boot.console, boot.tail(30)
    assert machine.esp_file("/EFI/BOOT/BOOTX64.EFI") == a.read_bytes()

    machine.fw_run = ["/usr/bin/abctl rollback"]
    boot = machine.boot()
    assert boot.root["slot"] == "A"
    assert "ABSWITCH-RUN rc=0 /usr/bin/abctl rollback" in boot.console, boot.tail(30)
    assert machine.varstore().boot_order()[0] == BOOT_B
    assert machine.esp_file("/EFI/BOOT/BOOTX64.EFI") == b.read_bytes()


# ---- defect 10: a boot entry's command line keeps the pin ----------------------------

def operator_override_disk(m, b_pin):
    """Both committed, B preferred; abswitch's entries, plus an operator's
    entry for B's UKI whose optional data replaces its command line, armed
    in BootNext."""
    a = m.uki("boot-a.efi", "A")
    b = m.uki("boot-b.efi", "B", pin=b_pin)
    m.make_disk(a, b, active="b")
    opts = ovmfvars.ucs2(f"ab.slot=B {abvm.CONSOLE}")
    m.add_boot_entries({BOOT_A: ("abswitch A", PATH_A), BOOT_B: ("abswitch B", PATH_B),
                        OPERATOR: ("operator: slot B", PATH_B, opts)},
                       order=[BOOT_B, BOOT_A], boot_next=OPERATOR)


def test_entry_options_override_keeps_pin(machine):
    operator_override_disk(machine, b_pin=True)
    boot = machine.boot()
    # systemd-stub replaced the UKI's command line with the entry's: no ab.roothash= left.
    assert kernel_cmdline(boot) == f"ab.slot=B {abvm.CONSOLE}", kernel_cmdline(boot)
    assert boot.root and boot.root["slot"] == "B", boot.tail()
    assert boot.root["verity"] == "yes"
    rec = boot.record
    assert rec["efi"]["BootCurrent"] == f"{OPERATOR:04X}"
    assert rec["identity"]["source"] == "cmdline"
    assert rec["root"]["roothash"] == abvm.roothash("B")
    assert rec["root"]["roothash_source"] == "pin"
    assert "is now marked failed" not in boot.console
    assert machine.slot_state("B") == {"priority": 2, **COMMITTED}
    assert machine.slot_state("A") == {"priority": 1, **COMMITTED}
    # The one-off entry stays one-off: BootOrder still leads with abswitch's B.
    assert machine.varstore().boot_order()[:2] == [BOOT_B, BOOT_A]


def test_entry_options_override_cmdline_hash_cannot_change_trust(machine):
    # The entry's options also name another root hash (A's): reported and
    # ignored, B's pin is what B's root must verify against.
    operator_override_disk(machine, b_pin=True)
    opts = ovmfvars.ucs2(f"ab.slot=B ab.roothash={abvm.roothash('A')} {abvm.CONSOLE}")
    machine.add_boot_entries({OPERATOR: ("operator: slot B", PATH_B, opts)}, boot_next=OPERATOR)
    boot = machine.boot()
    assert boot.root and boot.root["slot"] == "B", boot.tail()
    assert boot.record["root"]["roothash"] == abvm.roothash("B")
    assert "differs from the root hash this UKI pins" in boot.console
    assert machine.slot_state("B") == {"priority": 2, **COMMITTED}


def test_entry_options_override_without_pin_fails_nothing(machine):
    # B's UKI built the old way (root hash only on its command line): the
    # entry's options leave it no root hash. Not B's image's fault: nothing
    # is marked failed, and B comes up through its own entry.
    operator_override_disk(machine, b_pin=False)
    boots = boot_until_root(machine, limit=3)
    first = "\n".join(boots[0].init_log())
    assert "carries no /etc/abswitch/pin" not in first  # no ab.roothash= to trust either
    assert "this UKI pins no root hash" in first
    assert "no slot is marked failed for it" in first
    assert "is now marked failed" not in "".join(b.console for b in boots)
    assert machine.slot_state("A") == {"priority": 1, **COMMITTED}
    assert boots[-1].root and boots[-1].root["slot"] == "B", boots[-1].tail()
    assert boots[-1].record["root"]["roothash_source"] == "cmdline"
    assert machine.slot_state("B") == {"priority": 2, **COMMITTED}
