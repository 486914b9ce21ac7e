"""abctl install under real Secure Boot: the guest's static abctl reads db
and dbx from the firmware through efivarfs and refuses, before writing
anything, a UKI the firmware would refuse; a UKI signed with the db key
installs.

Real parts: OVMF's Secure Boot build (OVMF_CODE_4M.secboot.fd, SMM) with a
copy of Debian's OVMF_VARS_4M.snakeoil.fd (Secure Boot on, the snakeoil
test key in PK, KEK and db), UKIs signed with sbsign, Debian's kernel in
lockdown. The Secure Boot machine below is a minimal local one; the lead
moves this test onto tests/e2e/abvm.py's Machine(secureboot=True) (being
added in test_secureboot.py) at merge. Two boots: one with the two
refusals, one with the install that goes through. The same check on the
host, case by case, is tests/tools/test_signature.py."""

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import abvm

OVMF_CODE_SB = Path("/usr/share/OVMF/OVMF_CODE_4M.secboot.fd")
OVMF_VARS_SB = Path("/usr/share/OVMF/OVMF_VARS_4M.snakeoil.fd")
SNAKEOIL_PEM = Path("/usr/share/ovmf/PkKek-1-snakeoil.pem")
KEYS = abvm.BUILD / "sbkeys"
BOOT_A, BOOT_B = 0x1000, 0x1001
PATH_A = r"\EFI\abswitch\boot-a.efi"
PATH_B = r"\EFI\abswitch\boot-b.efi"


class SecureBootMachine(abvm.Machine):
    """Secure Boot on in real firmware: OVMF's SMM build and the snakeoil VARS."""

    def __init__(self, workdir):
        super().__init__(workdir)
        shutil.copy(OVMF_VARS_SB, self.vars)

    def qemu_args(self, console_path):
        args = super().qemu_args(console_path)
        args[args.index("q35")] = "q35,smm=on"
        args[args.index(f"if=pflash,format=raw,readonly=on,file={abvm.OVMF_CODE}")] = \
            f"if=pflash,format=raw,readonly=on,file={OVMF_CODE_SB}"
        return args + ["-global", "driver=cfi.pflash01,property=secure,value=on"]


def keys():
    """The snakeoil key without its passphrase, and a stranger's key pair (build/sbkeys, never committed)."""
    KEYS.mkdir(parents=True, exist_ok=True)
    # Made under a temporary name and renamed, the certificate last: tests
    # on other workers (pytest-xdist) may look for them at the same time.
    snake, stranger = KEYS / "snakeoil.key", KEYS / "stranger.key"
    tmp = f".tmp-{os.getpid()}"
    if not snake.exists():
        subprocess.run(["openssl", "rsa", "-in", "/usr/share/ovmf/PkKek-1-snakeoil.key", "-passin", "pass:snakeoil",
                        "-out", KEYS / f"snakeoil.key{tmp}"], check=True, capture_output=True)
        os.replace(KEYS / f"snakeoil.key{tmp}", snake)
    if not (KEYS / "stranger.pem").exists():
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", KEYS / f"stranger.key{tmp}",
                        "-out", KEYS / f"stranger.pem{tmp}", "-subj", "/CN=abswitch test stranger", "-days", "3650"],
                       check=True, capture_output=True)
        os.replace(KEYS / f"stranger.key{tmp}", stranger)
        os.replace(KEYS / f"stranger.pem{tmp}", KEYS / "stranger.pem")
    return {"snakeoil": (snake, SNAKEOIL_PEM), "stranger": (stranger, KEYS / "stranger.pem")}


def sign(k, uki, out):
    subprocess.run(["sbsign", "--key", k[0], "--cert", k[1], "--output", out, uki], check=True, capture_output=True)
    return out


def installer_root(m, k):
    """Slot A's image: abctl, v2 (B's commit image) with its UKI unsigned,
    signed by a stranger and signed with the db key; the qemu_fw_cfg module,
    so each boot runs what the test passes (-fw_cfg opt/abswitch/run)."""
    root = m.dir / "root-a"
    unsigned = abvm.E2E / "v2-boot-b.efi"
    subprocess.run([abvm.TOP / "tests/e2e/mkroot", abvm.BUILD / "test-rootinit", "a", root, "installer"],
                   env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "INSTALL_PAYLOAD": str(abvm.E2E / "slot-b-commit"),
                        "INSTALL_UKI": str(unsigned)}, check=True, capture_output=True)
    (root / "etc/abswitch-test-run").write_text("")
    sign(k["stranger"], unsigned, root / "images/v2-stranger.efi")
    sign(k["snakeoil"], unsigned, root / "images/v2-signed.efi")
    kmod = Path(m.env["KERNEL_IMAGE"]).parents[1] / "lib/modules" / m.env["KERNEL_VERSION"] / "kernel"
    (root / "lib/modules").mkdir(parents=True)
    shutil.copy(kmod / "drivers/firmware/qemu_fw_cfg.ko", root / "lib/modules/")
    (root / "etc/abswitch-test-modules").write_text("/lib/modules/qemu_fw_cfg.ko\n")
    subprocess.run([abvm.TOP / "initramfs/mkslot", "--root", root, "--fs", "erofs", "--output", m.dir / "slot-a-sb"],
                   check=True, capture_output=True)
    return m.dir / "slot-a-sb"


def disk_digest(m):
    return hashlib.sha256(m.disk.read_bytes()).hexdigest()


def test_install_refuses_unsigned_uki(tmp_path):
    m = SecureBootMachine(tmp_path)
    k = keys()
    image = installer_root(m, k)
    a = tmp_path / "boot-a-unsigned.efi"
    subprocess.run([abvm.TOP / "initramfs/mkuki", "--kernel", m.env["KERNEL_IMAGE"], "--initrd",
                    abvm.E2E / "initramfs.img", "--roothash", f"@{image}.roothash", "--cmdline", abvm.CONSOLE,
                    "--output", a], check=True, capture_output=True)
    a = sign(k["snakeoil"], a, tmp_path / "boot-a.efi")
    b = sign(k["snakeoil"], m.uki("boot-b-unsigned.efi", "B"), tmp_path / "boot-b.efi")
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
    assert 'it is signed by "CN=abswitch test stranger" (issued by "CN=abswitch test stranger"), which chains to ' \
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
    assert m.esp_file("/EFI/abswitch/boot-b.efi") == (image.parent / "root-a/images/v2-signed.efi").read_bytes()
