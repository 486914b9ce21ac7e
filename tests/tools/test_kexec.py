"""abctl reboot --kexec and mark-good after a kexec boot, on a real GPT disk
image (initramfs/mkdisk), a directory standing in for efivarfs and one for
the mounted ESP, with a real UKI (build/e2e/v2-boot-b.efi, made by mkuki).

Mocked, because they cannot run here: kexec_file_load(2) and reboot(2) of
the machine running the tests. build/powercut/abctl (the glibc build) is
compiled with ABCTL_TEST_HOOKS: ABCTL_TEST_KEXEC answers for the kernel
(ok, or an errno name) and ABCTL_TEST_REBOOT names a file that receives
"kexec" or "firmware" instead of a reboot. Everything before them (which
slot is armed, the UKI's sections, its hash, the boot entry) is the real
code on real files."""

import fcntl
import hashlib
import json
import os
import struct
import subprocess
from pathlib import Path

import pytest
from test_abctl import Rig as DiskRig

TOP = Path(__file__).resolve().parents[2]
ABCTL = TOP / "build" / "powercut" / "abctl"
UKI = TOP / "build" / "e2e" / "v2-boot-b.efi"
# Another real UKI (v1 of slot B), for a file an install replaced.
UKI_V1 = TOP / "build" / "e2e" / "v1-boot-b.efi"


class Rig(DiskRig):
    """test_abctl's disk and efivarfs, with an ESP directory holding B's real UKI."""

    def __init__(self, tmp):
        super().__init__(tmp)
        self.esp = tmp / "esp"
        (self.esp / "EFI" / "abswitch").mkdir(parents=True)
        self.reboot = tmp / "rebooted"
        self.put_uki("B", UKI.read_bytes())

    def put_uki(self, slot, data):
        (self.esp / "EFI" / "abswitch" / f"boot-{slot.lower()}.efi").write_bytes(data)

    def abctl(self, *args, running="A", record=None, kexec="ok"):
        env = {**os.environ, "ABCTL_TEST_REBOOT": str(self.reboot)}
        if kexec:
            env["ABCTL_TEST_KEXEC"] = kexec
        where = ["--record", str(record)] if record else ["--record", "/nonexistent", "--running", running]
        return subprocess.run([ABCTL, "--disk", self.disk, "--efivars", self.efivars, "--esp", self.esp,
                               *where, *args], capture_output=True, text=True, env=env)

    def arm_b(self):
        """A committed, B installed and armed (what abctl install leaves): its entry and BootNext."""
        self.set_state("A", priority=1, successful=True)
        self.set_state("B", priority=1, tries=3)
        r = self.abctl("set-active", "B")
        assert r.returncode == 0, r.stderr
        assert self.var("BootNext") is not None

    def rebooted(self):
        return self.reboot.read_text().strip() if self.reboot.exists() else None

    def kexec_record(self, sha):
        """The record the init of a kexec'd slot B writes (common/record.h), as far as abctl reads it."""
        rec = self.dir / "boot.json"
        rec.write_text(json.dumps({"version": 1, "slot": "B", "partitions": {"disk": str(self.disk)},
                                   "identity": {"source": "cmdline"}, "kexec": {"uki_sha256": sha}}))
        return rec


@pytest.fixture
def rig(tmp_path):
    return Rig(tmp_path)


def test_kexec_starts_the_armed_slot(rig):
    rig.arm_b()
    r = rig.abctl("reboot", "--kexec")
    assert r.returncode == 0, r.stderr
    assert rig.rebooted() == "kexec"
    sha = hashlib.sha256(UKI.read_bytes()).hexdigest()
    assert f"Loaded slot B's UKI \\EFI\\abswitch\\boot-b.efi (armed in BootNext, sha256 {sha})" in r.stdout


def test_kexec_refused_without_armed_slot(rig):
    before = rig.fingerprint()
    r = rig.abctl("reboot", "--kexec")
    assert r.returncode == 1
    assert "Refusing to kexec: no slot is armed" in r.stderr
    assert "Nothing was changed" in r.stderr
    assert rig.rebooted() is None
    assert rig.fingerprint() == before


def test_kexec_refuses_uki_without_linux(rig):
    rig.arm_b()
    broken = rig.dir / "no-linux.efi"
    subprocess.run(["objcopy", "--remove-section", ".linux", UKI, broken], check=True, capture_output=True)
    rig.put_uki("B", broken.read_bytes())
    before = rig.fingerprint()
    r = rig.abctl("reboot", "--kexec")
    assert r.returncode == 1
    assert "has no .linux section (no kernel), so neither kexec nor the firmware can start it" in r.stderr
    assert rig.rebooted() is None
    assert rig.fingerprint() == before


@pytest.mark.parametrize("err", ["EPERM", "EKEYREJECTED"])
def test_kexec_refused_by_kernel_reboots_through_firmware(rig, err):
    rig.arm_b()
    before = rig.fingerprint()
    r = rig.abctl("reboot", "--kexec", kexec=err)
    assert r.returncode == 0, r.stderr
    assert rig.rebooted() == "firmware"
    lines = [l for l in r.stderr.splitlines() if "kexec of slot B refused" in l]
    assert len(lines) == 1, r.stderr
    assert "rebooting through the firmware instead, which starts slot B (armed in BootNext)" in lines[0]
    # BootNext stays: the firmware starts B.
    assert rig.fingerprint() == before


def test_mark_good_after_kexec_refused_when_esp_file_differs(rig):
    rig.arm_b()
    sha = hashlib.sha256(UKI.read_bytes()).hexdigest()
    rig.put_uki("B", UKI.read_bytes() + b"\0")  # what the firmware would start is not what ran
    before = rig.fingerprint()
    r = rig.abctl("mark-good", record=rig.kexec_record(sha))
    assert r.returncode == 1
    assert f"Refusing to commit slot B: it was started by kexec from a UKI with sha256 {sha}" in r.stderr
    assert "a cold boot would start other bytes" in r.stderr
    assert rig.fingerprint() == before
    assert rig.slot("B")["successful"] is False


def test_mark_good_after_kexec_refused_when_esp_file_missing(rig):
    rig.arm_b()
    sha = hashlib.sha256(UKI.read_bytes()).hexdigest()
    (rig.esp / "EFI" / "abswitch" / "boot-b.efi").unlink()
    before = rig.fingerprint()
    r = rig.abctl("mark-good", record=rig.kexec_record(sha))
    assert r.returncode == 1
    assert "cannot be read" in r.stderr and "so the firmware could not start it" in r.stderr
    assert rig.fingerprint() == before


def test_mark_good_after_kexec_repairs_a_missing_entry_first(rig):
    rig.arm_b()
    sha = hashlib.sha256(UKI.read_bytes()).hexdigest()
    for p in rig.efivars.glob("Boot1001-*"):
        p.unlink()
    r = rig.abctl("mark-good", record=rig.kexec_record(sha))
    assert r.returncode == 0, r.stderr
    assert "has no boot entry for \\EFI\\abswitch\\boot-b.efi: creating it before committing" in r.stderr
    assert rig.var("Boot1001") is not None
    assert rig.slot("B")["successful"] is True


def test_mark_good_after_kexec_commits_when_proven(rig):
    rig.arm_b()
    sha = hashlib.sha256(UKI.read_bytes()).hexdigest()
    r = rig.abctl("mark-good", record=rig.kexec_record(sha))
    assert r.returncode == 0, r.stderr
    assert "its boot entry Boot1001 names \\EFI\\abswitch\\boot-b.efi, whose sha256 is the one kexec'd" in r.stderr
    assert rig.slot("B")["successful"] is True


def test_plain_reboot_needs_no_disk(tmp_path):
    hook = tmp_path / "rebooted"
    r = subprocess.run([ABCTL, "--record", str(tmp_path / "none.json"), "reboot"], capture_output=True, text=True,
                       env={**os.environ, "ABCTL_TEST_REBOOT": str(hook)})
    assert r.returncode == 0, r.stderr
    assert hook.read_text().strip() == "firmware"


def test_kexec_option_only_with_reboot(rig):
    r = rig.abctl("status", "--kexec")
    assert r.returncode == 1
    assert "--kexec goes with reboot" in r.stderr


class DiskLock:
    """Holds one of abctl's open file description locks on the disk image, as
    another abctl would (abctl.c: byte 0 guards state changes, byte 1 a whole
    install)."""

    def __init__(self, disk, byte):
        self.fd = os.open(disk, os.O_RDWR)
        # struct flock on x86-64: l_type, l_whence, (pad), l_start, l_len, l_pid, (pad).
        fcntl.fcntl(self.fd, fcntl.F_OFD_SETLK, struct.pack("hhxxxxqqixxxx", fcntl.F_WRLCK, os.SEEK_SET, byte, 1, 0))

    def release(self):
        os.close(self.fd)


def start_kexec(rig):
    """abctl reboot --kexec in the background, once it says it waits for the lock."""
    env = {**os.environ, "ABCTL_TEST_REBOOT": str(rig.reboot), "ABCTL_TEST_KEXEC": "ok"}
    p = subprocess.Popen([ABCTL, "--disk", rig.disk, "--efivars", rig.efivars, "--esp", rig.esp, "--record",
                          "/nonexistent", "--running", "A", "reboot", "--kexec"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=env)
    line = p.stderr.readline()
    return p, line


def finish(p):
    """Its output, once the lock is free; killed if it still does not end."""
    try:
        return p.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        raise


def test_kexec_waits_for_an_install_and_starts_what_it_installed(rig):
    """An install in progress holds the install lock: the kexec waits, then
    loads the UKI that install left, not the one on the ESP before."""
    rig.arm_b()
    lock = DiskLock(rig.disk, 1)
    p, line = start_kexec(rig)
    try:
        assert "Waiting for another abctl to finish an install" in line, line
        assert rig.rebooted() is None
        rig.put_uki("B", UKI_V1.read_bytes())  # what the install wrote
    finally:
        lock.release()
        out, err = finish(p)
    assert p.returncode == 0, err
    assert rig.rebooted() == "kexec"
    assert f"sha256 {hashlib.sha256(UKI_V1.read_bytes()).hexdigest()}" in out, out


def test_kexec_decides_under_the_state_lock(rig):
    """Another operator's state change in progress (here B made not bootable,
    as mark-bad or rollback would): the kexec waits for it and decides from
    its result, so it does not start the slot that operator just took away."""
    rig.arm_b()
    lock = DiskLock(rig.disk, 0)
    p, line = start_kexec(rig)
    try:
        assert "Waiting for another abctl to finish a state change" in line, line
        rig.set_state("B", priority=0)
    finally:
        lock.release()
        out, err = finish(p)
    assert p.returncode == 1, out + err
    assert "Refusing to kexec slot B (armed in BootNext): it is failed (priority 0)" in err, err
    assert rig.rebooted() is None
