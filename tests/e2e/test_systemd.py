"""A real Debian with systemd in slot B (initramfs/mkdebian: debootstrap
minbase + systemd, abctl, abswitch-mark-good.service, the UKI kernel's modules, a health check
required by boot-complete.target), booted on trial the way abctl install
leaves it. The slowest tests (systemd under software emulation): about a
minute for the commit, two for the fallback, which waits for the watchdog.

Boots and wall times go to build/test-results/systemd.json."""

import json
import re

import abvm

BOOT_A, BOOT_B = 0x1000, 0x1001
PATH_A = r"\EFI\abswitch\boot-a.efi"
PATH_B = r"\EFI\abswitch\boot-b.efi"
# Not anchored: the slot's serial getty can print its login prompt first on
# the same console line ("abswitch login: ABSWITCH-SYSTEMD ...").
SYSTEMD_RE = re.compile(r"ABSWITCH-SYSTEMD (.*)$", re.M)
RESULTS = abvm.BUILD / "test-results" / "systemd.json"


def record_result(name, machine):
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    data = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    data[name] = {"boots": len(machine.boots), "seconds": round(sum(b.seconds for b in machine.boots), 1),
                  "per_boot": [round(b.seconds, 1) for b in machine.boots]}
    RESULTS.write_text(json.dumps(data, indent=1))


def systemd_report(boot):
    m = SYSTEMD_RE.search(boot.console)
    assert m, f"the Debian slot did not report:\n{boot.tail(60)}"
    return dict(kv.split("=", 1) for kv in m.group(1).split())


def debian_trial(machine, cmdline=""):
    """A committed on slot A's test root; B freshly installed with the Debian
    image: on trial, one try, armed, BootNext set (as after abctl install --tries 1)."""
    a = machine.uki("boot-a.efi", "A")
    b = machine.uki("boot-b.efi", "DEBIAN", cmdline=cmdline)
    machine.make_disk(a, b, b_image="debian", slot_size="160M", verity_size="2M")
    machine.memory = 512  # systemd and the Debian userspace
    machine.add_boot_entries({BOOT_A: ("abswitch A", PATH_A), BOOT_B: ("abswitch B", PATH_B)},
                             order=[BOOT_A, BOOT_B], boot_next=BOOT_B)
    machine.set_slot_state("A", 1, successful=True)
    machine.set_slot_state("B", 2, tries=0, armed=True)
    return machine


def test_systemd_slot_commits_itself(machine):
    debian_trial(machine, "ab.watchdog=120")
    boot = machine.boot()
    assert boot.exited, boot.tail(40)          # the report unit powered off
    rep = systemd_report(boot)
    assert rep["health"] == "active"
    assert rep["boot-complete"] == "active"
    assert rep["mark-good"] == "active", boot.tail(60)
    # The kernel's modules are in the root (mkdebian --kernel-root): after
    # switch root, udev loads drivers for the machine's devices (Q35's SATA
    # and SMBus controllers) and systemd its modprobe@ modules; the initramfs
    # has none of these.
    assert rep["modules_dep"] == "yes"
    assert {"ahci", "i2c_i801", "efi_pstore", "fuse"} <= set(rep["modules"].split(",")), rep["modules"]
    assert boot.record["slot"] == "B"
    assert boot.record["decision"]["trial"] is True
    assert boot.record["root"]["roothash"] == abvm.roothash("DEBIAN")
    assert re.search(r"Slot B:\s+committed", boot.console), boot.tail(60)   # abctl status, after the unit ran
    assert machine.slot_state("B") == {"priority": 2, "tries": 0, "successful": True, "armed": False}
    assert machine.varstore().boot_order()[0] == BOOT_B
    assert machine.varstore().boot_next() is None
    record_result("commit", machine)


def test_systemd_failed_health_check_falls_back(machine):
    # The health check fails: boot-complete.target is never reached, the
    # unit never commits, the machine hangs in userspace until the trial's
    # watchdog resets it; the init then gives up on B and starts A.
    debian_trial(machine, "ab.watchdog=45 abswitch_test.unhealthy")
    boot = machine.boot()
    rep = systemd_report(boot)
    assert rep["health"] == "failed"
    assert rep["boot-complete"] != "active"
    assert rep["mark-good"] != "active"
    assert boot.exited                         # the watchdog's reset ends QEMU (-no-reboot)
    assert machine.slot_state("B")["successful"] is False

    boot = machine.boot()
    assert boot.root["slot"] == "A"
    assert boot.record["decision"]["trial"] is False
    assert machine.slot_state("B") == {"priority": 0, "tries": 0, "successful": False, "armed": False}
    assert machine.slot_state("A")["successful"] is True
    assert machine.varstore().boot_order()[0] == BOOT_A
    record_result("fallback", machine)
