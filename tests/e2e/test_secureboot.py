"""Secure Boot in real firmware (issue 14): OVMF's SMM build with Debian's
snakeoil VARS (Secure Boot on, the snakeoil key in PK, KEK and db), UKIs
signed by initramfs/mkuki --sign-key with that key, with the "stranger" key
(in no db) or not at all. Debian's kernel enters lockdown under Secure Boot,
so the init's modules must carry their signatures.

"Reboot" is QEMU exiting (-no-reboot) and starting again with the same disk
and VARS file, as in test_protocol.py, whose helpers these tests reuse."""

import hashlib
import json
import os
import shutil
import re
import subprocess
import time
from pathlib import Path

import pytest

import abvm
import ovmfvars
from scenarios import SIGNED_UPDATE
from test_identity import kernel_cmdline
from test_protocol import boot_until_settled, slots_seen

BOOT_A, BOOT_B = 0x1000, 0x1001
OPERATOR = 0x0010  # an entry made with efibootmgr -c ... -u "ab.slot=B ..."
PATH_A = r"\EFI\abswitch\boot-a.efi"
PATH_B = r"\EFI\abswitch\boot-b.efi"
MODULE_SIG_MAGIC = b"~Module signature appended~\n"
# OVMF, when the image verification of a boot option fails.
REFUSED_B = re.compile(r"BdsDxe: failed to load Boot1001 \"abswitch B\" .*: Access Denied")
# The kernel refusing something under lockdown; hibernation is refused on every such boot.
LOCKDOWN_DENIAL = re.compile(r"Lockdown: .*: (?!hibernation is restricted).* is restricted")


def report(request, boots, seconds, what):
    """Prints a test's boots and seconds and records them in
    build/test-results/secureboot.json, keyed by the test's id."""
    line = f"{what}: {len(boots)} boots, {seconds:.1f} s ({', '.join(f'{b.seconds:.1f}' for b in boots)})"
    print(line)
    path = abvm.BUILD / "test-results" / "secureboot.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        data = {}
    data[request.node.nodeid] = {"boots": len(boots), "seconds": round(seconds, 1),
                                 "per_boot": [round(b.seconds, 1) for b in boots], "summary": line}
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    tmp.replace(path)


@pytest.fixture
def machine(tmp_path):
    return abvm.Machine(tmp_path, secureboot=True)


def assert_secure(boot):
    """The booted root reports Secure Boot on and the kernel locked down, and
    nothing the boot needed was refused by lockdown or module signing."""
    assert boot.security is not None, f"the root's init never ran; console ends with:\n{boot.tail()}"
    assert boot.security["secureboot"] == "1", boot.security
    assert boot.security["lockdown"] in ("integrity", "confidentiality"), boot.security
    assert "EFI stub: UEFI Secure Boot is enabled" in boot.console
    assert not LOCKDOWN_DENIAL.search(boot.console), LOCKDOWN_DENIAL.search(boot.console).group(0)
    assert "module verification failed" not in boot.console
    assert "Loading of unsigned module" not in boot.console
    log = "\n".join(boot.init_log())
    assert "Loaded kernel modules" in log, log
    for bad in ("Failed to load kernel module", "Failed to look up kernel module", "is neither built in"):
        assert bad not in log, log
    assert boot.root["verity"] == "yes" and boot.root["dm"] == "abswitch-root", boot.root


def initramfs_modules():
    """{path: bytes} of every .ko in the initramfs the e2e UKIs carry."""
    data = subprocess.run(["zstd", "-dc", str(abvm.E2E / "initramfs.img")], check=True,
                          capture_output=True).stdout
    out, off = {}, 0
    while data[off:off + 6] == b"070701":
        f = [int(data[off + 6 + 8 * i:off + 14 + 8 * i], 16) for i in range(13)]
        size, namesize = f[6], f[11]
        name = data[off + 110:off + 110 + namesize - 1].decode()
        off = (off + 110 + namesize + 3) & ~3
        if name.endswith(".ko"):
            out[name] = data[off:off + size]
        off = (off + size + 3) & ~3
        if name == "TRAILER!!!":
            break
    return out


@pytest.mark.xdist_group(SIGNED_UPDATE)
def test_secureboot_signed_slots_boot(signed_update, request):
    # mkinitramfs copies Debian's modules as they are: each keeps its appended
    # signature, which lockdown (module.sig_enforce in effect) requires.
    mods = initramfs_modules()
    assert any(p.endswith("/dm-verity.ko") for p in mods) and any(p.endswith("/i6300esb.ko") for p in mods)
    unsigned = [p for p, b in mods.items() if not b.endswith(MODULE_SIG_MAGIC)]
    assert not unsigned, f"modules without a signature in the initramfs: {unsigned}"

    # The whole update of test_protocol.py's test_update_commit, Secure Boot on
    # (conftest.py's SignedUpdate; the machine has a TPM too, test_tpm.py reads
    # the same boots): signed A installs v2 (B's image and its UKI, signed by
    # make) into B with abctl, B boots on trial with the watchdog armed and
    # commits itself, then boots committed.
    machine, boots, after = signed_update.machine, signed_update.boots, signed_update.after

    boot = boots["A-committed"]
    assert boot.root and boot.root["slot"] == "A", boot.tail()
    assert_secure(boot)
    assert boot.record["root"]["roothash"] == abvm.roothash("A-INSTALLER")
    assert "ABSWITCH-RUN rc=0 /usr/bin/abctl install /images/v2 /images/v2.efi" in boot.console, boot.tail(30)
    assert after["A-committed"]["B"] == {"priority": 2, "tries": 2, "successful": False, "armed": True}
    assert after["A-committed"]["boot_next"] == BOOT_B

    boot = boots["B-trial"]
    assert boot.root and boot.root["slot"] == "B", boot.tail()
    assert_secure(boot)
    rec = boot.record
    assert rec["decision"]["trial"] is True
    # The i6300esb driver loaded under lockdown and the init armed it.
    assert rec["decision"]["watchdog"] is True, rec["decision"]
    assert "TRIAL BOOT WITHOUT A HARDWARE WATCHDOG" not in boot.console
    assert rec["root"]["roothash"] == abvm.roothash("B-COMMIT")
    assert "ABSWITCH-RUN rc=0 /usr/bin/abctl mark-good" in boot.console, boot.tail(30)
    v2 = (abvm.E2E / "v2-boot-b.efi").read_bytes()
    assert machine.esp_file("/EFI/abswitch/boot-b.efi") == v2
    assert machine.esp_file("/EFI/BOOT/BOOTX64.EFI") == v2

    boot = boots["B-committed"]
    assert boot.root and boot.root["slot"] == "B", boot.tail()
    assert_secure(boot)
    assert boot.record["decision"]["reason"] == "committed"
    assert boot.record["decision"]["gpt_writes"] == 0 and boot.record["decision"]["nvram_writes"] == 0
    assert after["B-committed"]["B"] == {"priority": 2, "tries": 0, "successful": True, "armed": False}
    assert after["B-committed"]["boot_order"][0] == BOOT_B
    report(request, list(boots.values()), signed_update.seconds, "signed update under Secure Boot")


# The unsigned UKI spends B's one remaining try (two refusals: A arms B again
# in between, then fails it); the stranger-signed one is B's last try (one
# refusal), which is enough to show that a signature by a key not in db is
# refused the same way. (Counting over more tries: the unit tests, every state.)
@pytest.mark.parametrize("sign,tries_left,refusals", [(False, 1, 2), ("stranger", 0, 1)],
                         ids=["unsigned", "stranger"])
def test_secureboot_unsigned_update_falls_back(machine, request, sign, tries_left, refusals):
    # The state abctl install leaves (A committed; B at a higher priority,
    # its first attempt armed: a try spent, BootNext), but B's UKI is one the
    # firmware will not start.
    a = machine.uki("boot-a.efi", "A")
    b = machine.uki("boot-b.efi", "B", sign=sign)
    if sign:
        out = subprocess.run(["sbverify", "--cert", str(abvm.KEYS / "snakeoil.pem"), str(b)], capture_output=True,
                             text=True)
        assert out.returncode != 0, "the stranger's UKI verifies against the key in db"
    machine.make_disk(a, b)
    machine.set_slot_state("A", priority=1, successful=True)
    machine.set_slot_state("B", priority=2, tries=tries_left, armed=True)
    machine.add_boot_entries({BOOT_A: ("abswitch A", PATH_A), BOOT_B: ("abswitch B", PATH_B)},
                             order=[BOOT_A, BOOT_B], boot_next=BOOT_B)

    t0 = time.monotonic()
    boots = boot_until_settled(machine, limit=6)
    report(request, boots, time.monotonic() - t0,
           f"{'unsigned' if not sign else sign + '-signed'} B under Secure Boot, back on A for good after")

    # Each QEMU run: the firmware refuses B, falls through BootOrder to A;
    # A arms B again while it has tries, then marks it failed and stays.
    assert [bool(REFUSED_B.search(x.console)) for x in boots] == [True] * refusals, \
        [x.tail(15) for x in boots]
    assert not any("This is slot B" in "\n".join(x.init_log()) for x in boots), "B's kernel ran"
    assert slots_seen(boots) == ["-"] * (refusals - 1) + ["A"]
    assert len(boots) == tries_left + 1
    log = "\n".join(boots[-1].init_log())
    assert "Slot B is now marked failed" in log, log
    assert_secure(boots[-1])
    assert machine.slot_state("B") == {"priority": 0, "tries": 0, "successful": False, "armed": False}
    assert machine.slot_state("A") == {"priority": 1, "tries": 0, "successful": True, "armed": False}
    assert machine.varstore().boot_next() is None


def test_secureboot_entry_cmdline_ignored(machine):
    # An operator's entry, as `efibootmgr -c -l \EFI\abswitch\boot-b.efi -u
    # "ab.slot=B ..."` makes it, on a signed UKI built for slot A (mkuki
    # --slot A) that sits at B's path. Without Secure Boot systemd-stub 252
    # would take the entry's options as the whole command line
    # (test_identity.py, test_entry_options_override_keeps_pin); with Secure
    # Boot the signed .cmdline stands: the entry's ab.slot=B is ignored, the
    # baked-in ab.slot=A is obeyed over both the entry and the file name.
    a = machine.uki("boot-a.efi", "A")
    b = machine.uki("boot-b.efi", "A", slot="A")
    machine.make_disk(a, b)
    machine.add_boot_entries({BOOT_A: ("abswitch A", PATH_A), BOOT_B: ("abswitch B", PATH_B),
                              OPERATOR: ("operator: slot B", PATH_B, ovmfvars.ucs2(f"ab.slot=B {abvm.CONSOLE}"))},
                             order=[BOOT_A, BOOT_B], boot_next=OPERATOR)
    boot = machine.boot()
    assert kernel_cmdline(boot) == f"ab.roothash={abvm.roothash('A')} ab.slot=A {abvm.CONSOLE}", \
        kernel_cmdline(boot)
    assert boot.root and boot.root["slot"] == "A", boot.tail()
    rec = boot.record
    assert rec["efi"]["BootCurrent"] == f"{OPERATOR:04X}", rec["efi"]
    assert rec["efi"]["LoaderImageIdentifier"] == PATH_B
    assert rec["identity"]["source"] == "cmdline"
    # The init never saw the entry's ab.slot=B (the pin's slot=A would have overruled it, with this complaint).
    assert "differs from the slot this UKI is built for" not in boot.console
    assert_secure(boot)
    assert machine.slot_state("B")["priority"] > 0, "nothing failed"


# ---- abctl install under Secure Boot ----------------------------------------


def disk_digest(m):
    return hashlib.sha256(m.disk.read_bytes()).hexdigest()


def sign(key, uki, out):
    """uki signed with build/keys/KEY (snakeoil: in db; stranger: in no db)."""
    subprocess.run(["sbsign", "--key", abvm.KEYS / f"{key}.key", "--cert", abvm.KEYS / f"{key}.pem", "--output", out,
                    uki], check=True, capture_output=True)
    return out


def installer_root(m):
    """Slot A's image: abctl, v2 (B's commit image) with its UKI unsigned,
    signed by a stranger and signed with the db key; the qemu_fw_cfg module,
    so each boot runs what the test passes (-fw_cfg opt/abswitch/run)."""
    root = m.dir / "root-a"
    # make signs v2's UKI; the unsigned one is that UKI with its signature removed.
    unsigned = m.dir / "v2-unsigned.efi"
    shutil.copy(abvm.E2E / "v2-boot-b.efi", unsigned)
    subprocess.run(["sbattach", "--remove", unsigned], check=True, capture_output=True)
    subprocess.run([abvm.TOP / "tests/e2e/mkroot", abvm.BUILD / "test-rootinit", "a", root, "installer"],
                   env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "INSTALL_PAYLOAD": str(abvm.E2E / "slot-b-commit"),
                        "INSTALL_UKI": str(unsigned)}, check=True, capture_output=True)
    (root / "etc/abswitch-test-run").write_text("")
    sign("stranger", unsigned, root / "images/v2-stranger.efi")
    sign("snakeoil", unsigned, root / "images/v2-signed.efi")
    kmod = Path(m.env["KERNEL_ROOT"]) / "lib/modules" / m.env["KERNEL_VERSION"] / "kernel"
    (root / "lib/modules").mkdir(parents=True)
    shutil.copy(kmod / "drivers/firmware/qemu_fw_cfg.ko", root / "lib/modules/")
    (root / "etc/abswitch-test-modules").write_text("/lib/modules/qemu_fw_cfg.ko\n")
    subprocess.run([abvm.TOP / "initramfs/mkslot", "--root", root, "--fs", "erofs", "--output", m.dir / "slot-a-sb"],
                   check=True, capture_output=True)
    return m.dir / "slot-a-sb"


def test_install_refuses_unsigned_uki(machine, tmp_path):
    # The guest's static abctl reads db and dbx from the firmware through
    # efivarfs and refuses, before writing anything, a UKI the firmware would
    # refuse; one signed with the db key installs. Two boots: the two
    # refusals, then the install that goes through (the same check case by
    # case on the host: tests/tools/test_signature.py).
    m = machine
    image = installer_root(m)
    a = m.uki("boot-a.efi", Path(f"{image}.roothash"))
    b = m.uki("boot-b.efi", "B")
    subprocess.run([abvm.TOP / "initramfs/mkdisk", "--output", m.disk, "--a-uki", a, "--b-uki", b,
                    "--a-image", image, "--b-image", abvm.E2E / "slot-b", "--esp-size", "80M", "--slot-size", "40M",
                    "--verity-size", "1M", "--active", "a", "--removable", "a"], check=True, capture_output=True)
    m.add_boot_entries({BOOT_A: ("abswitch A", PATH_A), BOOT_B: ("abswitch B", PATH_B)}, order=[BOOT_A, BOOT_B])

    # Boot 1: the unsigned UKI and the stranger's are refused, and nothing
    # on the disk changes (a boot of the committed slot writes nothing).
    before = (disk_digest(m), m.slot_state("A"), m.slot_state("B"))
    m.fw_run = ["/usr/bin/abctl install /images/v2 /images/v2.efi",
                "/usr/bin/abctl install /images/v2 /images/v2-stranger.efi"]
    boot = m.boot()
    assert "Secure Boot is enabled" in boot.console, boot.tail(60)
    assert boot.root and boot.root["slot"] == "A", boot.tail(60)
    assert "ABSWITCH-RUN rc=1 /usr/bin/abctl install /images/v2 /images/v2.efi" in boot.console, boot.tail(40)
    assert "Secure Boot is on and the firmware would refuse the UKI of /images/v2: it is not signed" in boot.console
    assert "ABSWITCH-RUN rc=1 /usr/bin/abctl install /images/v2 /images/v2-stranger.efi" in boot.console
    assert 'it is signed by "CN=abswitch test stranger' in boot.console, boot.tail(40)
    assert 'which chains to ' \
           'no certificate in db' in boot.console, boot.tail(40)
    assert boot.console.count("Nothing was changed.") == 2
    assert (disk_digest(m), m.slot_state("A"), m.slot_state("B")) == before
    assert m.varstore().boot_next() is None

    # Boot 2: signed with the db key, it installs (B on trial, armed).
    m.fw_run = ["/usr/bin/abctl install /images/v2 /images/v2-signed.efi"]
    boot = m.boot()
    assert "ABSWITCH-RUN rc=0 /usr/bin/abctl install /images/v2 /images/v2-signed.efi" in boot.console, boot.tail(40)
    assert 'Secure Boot: the UKI of /images/v2 is signed by "/C=US/ST=Colorado/L=Fort Collins/O=SnakeOil"' \
           in boot.console, boot.tail(40)
    assert "which chains to db entry 0" in boot.console
    assert m.slot_state("B") == {"priority": 2, "tries": 2, "successful": False, "armed": True}
    assert m.varstore().boot_next() == BOOT_B
    assert m.esp_file("/EFI/abswitch/boot-b.efi") == (m.dir / "root-a/images/v2-signed.efi").read_bytes()
