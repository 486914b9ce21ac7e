"""A committed slot that rots heals instead of looping (issue 15, part 2;
README "Self-healing"). Under ab.verity_error=fallback (the default) the
init's corruption watcher sees dm-verity's uevent for a corrupted block,
records it in an EFI variable and falls back to the other slot; abctl
repair rewrites only the damaged blocks, from the other slot or from the
registry, and returns the slot to service."""

import re

import abvm
from test_security import BOOT_A, PATH_A, reader_disk

DAMAGE_GUID = "b9d4c0a3-5e2f-4a1d-8c6b-3f7e2a91d054"


def damage_record(machine, slot):
    import uuid
    data = machine.varstore().get(f"AbswitchDamage{slot}", uuid.UUID(DAMAGE_GUID))
    if data is None:
        return None
    rec = {"data": [], "hash": []}
    for line in data.decode().splitlines()[1:]:
        k, v = line.split("=", 1)
        if k in ("data", "hash"):
            rec[k].append(int(v))
        else:
            rec[k] = v
    return rec


def test_no_good_slot_stays_up_without_loop(machine):
    # Slot A alone (no B image): a block it reads after boot is corrupt. The
    # watcher records it, finds no slot to fall back to, says so and stays
    # up; reads fail with EIO, nothing restarts, the state is unchanged.
    reader_disk(machine)
    before = machine.slot_state("A"), machine.slot_state("B")
    boot = machine.boot()
    assert boot.root is not None and boot.record["root"]["verity_error"] == "fallback", boot.tail()
    m = re.search(r"ABSWITCH-READ bytes=(\d+) errno=(\d+)", boot.console)
    assert m and int(m.group(2)) == 5, boot.tail()
    assert "Staying up on the damaged slot A without a reboot" in boot.console, boot.tail(30)
    assert "no good slot to fall back to" in boot.console, boot.tail(30)
    assert "ABSWITCH-SIGINT" not in boot.console
    assert (machine.slot_state("A"), machine.slot_state("B")) == before
    rec = damage_record(machine, "A")
    assert rec and rec["slot"] == "A" and rec["roothash"] == abvm.roothash("a-reader") and rec["data"], rec
    print(f"no good slot: stayed up, damage recorded in {boot.seconds:.1f} s")
