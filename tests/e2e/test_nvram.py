"""NVRAM wear: a normal boot of a committed slot writes nothing, in every
layout (BRIEF.md), here the most common first install: slot B never
installed (no image, no UKI, priority 0, so no Boot#### entry).

Real OVMF, the VARS file kept across boots. The firmware drops from
BootOrder every number that names no Boot#### at each boot; an init that
puts such a number back rewrites BootOrder on every boot (issue 12,
defect 8)."""

import hashlib
import uuid

BOOT_A = 0x1000
PATH_A = r"\EFI\abswitch\boot-a.efi"


# OVMF itself writes two variables at every boot, whatever the OS does
# (measured: the VARS file's bytes differ after every boot for these two
# alone): EDK2's monotonic counter (MdeModulePkg MonotonicCounterRuntimeDxe,
# "MTC") and the HDD-password driver's device list (SecurityPkg
# HddPasswordDxe, "HDDP"). Everything else must stay byte for byte.
FIRMWARE_OWN = {("MTC", uuid.UUID("eb704011-1402-11d3-8e77-00a0c969723b")),
                ("HDDP", uuid.UUID("fab7e9e1-39dd-4f2b-8408-e20e906cb6de"))}


def vars_digest(m):
    """sha256 over every live variable but the firmware's own (name, GUID,
    attributes, data), in a fixed order."""
    h = hashlib.sha256()
    for (name, guid), (attrs, data) in sorted(m.varstore().variables().items()):
        if (name, guid) not in FIRMWARE_OWN:
            h.update(f"{name}\0{guid}\0{attrs}\0{len(data)}\0".encode() + data)
    return h.hexdigest()


def changed_variables(before, after):
    """Names of the variables added, removed or changed between two
    VarStore.variables() snapshots."""
    keys = set(before) | set(after)
    return sorted(f"{name} ({guid})" for name, guid in keys if before.get((name, guid)) != after.get((name, guid)))


def assert_boot_order_names_entries(m):
    v = m.varstore()
    order, entries = v.boot_order(), v.boot_options()
    missing = [f"{n:04X}" for n in order if n not in entries]
    assert not missing, f"BootOrder {[f'{n:04X}' for n in order]} names no entry for {missing}"
    return v


def test_normal_boot_writes_nothing_with_empty_slot(machine):
    a = machine.uki("boot-a.efi", "A")
    machine.make_disk(a, b_uki=None, b_image=None)
    assert machine.slot_state("B")["priority"] == 0
    assert machine.slot_state("A") == {"priority": 2, "tries": 0, "successful": True, "armed": False}

    # First boot, fresh VARS: the firmware starts the removable path (A's
    # UKI); the init creates A's entry, and none for the empty B.
    boot = machine.boot()
    assert boot.root and boot.root["slot"] == "A", boot.tail()
    log = "\n".join(boot.init_log())
    assert "Created boot entry Boot1000 'abswitch A'" in log
    assert "'abswitch B'" not in log
    v = assert_boot_order_names_entries(machine)
    assert v.boot_order()[0] == BOOT_A
    assert v.boot_options()[BOOT_A]["path"] == PATH_A
    assert not any(o["path"] and o["path"].lower().endswith("boot-b.efi") for o in v.boot_options().values())

    # The next boot: A by the entry the init created, committed, and not one
    # byte of a variable written (but the firmware's own): the boot every
    # later one repeats.
    for n in range(1):
        before, before_vars = vars_digest(machine), machine.varstore().variables()
        boot = machine.boot()
        rec = boot.record
        assert boot.root and boot.root["slot"] == "A", boot.tail()
        assert rec["identity"]["source"] == "loader-image-identifier"
        assert rec["decision"]["action"] == "boot" and rec["decision"]["reason"] == "committed"
        assert rec["decision"]["gpt_writes"] == 0, f"boot {n + 2} wrote the GPT"
        assert rec["decision"]["nvram_writes"] == 0, f"boot {n + 2} wrote NVRAM:\n" + "\n".join(boot.init_log())
        assert "BootOrder updated" not in boot.console
        changed = changed_variables(before_vars, machine.varstore().variables())
        assert vars_digest(machine) == before, f"boot {n + 2} changed the VARS file: {changed}"
        assert_boot_order_names_entries(machine)
    assert machine.slot_state("B")["priority"] == 0
