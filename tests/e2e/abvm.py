"""A disk, a VARS file and a QEMU/OVMF boot: the pieces every e2e test uses.

Real parts only: Debian's kernel, OVMF firmware with a per-machine copy of
its VARS file (so EFI variables persist across that machine's boots), a GPT
disk made by initramfs/mkdisk, dm-verity in the guest kernel.
"""

import json
import os
import re
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import ovmfvars

TOP = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("BUILD", TOP / "build"))
E2E = BUILD / "e2e"
OVMF_CODE = Path("/usr/share/OVMF/OVMF_CODE_4M.fd")
OVMF_VARS = Path("/usr/share/OVMF/OVMF_VARS_4M.fd")
# Secure Boot: the SMM build of OVMF and a VARS template with Secure Boot on
# and Debian's snakeoil test key in PK, KEK and db (README "Secure Boot").
OVMF_CODE_SB = Path("/usr/share/OVMF/OVMF_CODE_4M.secboot.fd")
OVMF_VARS_SB = Path("/usr/share/OVMF/OVMF_VARS_4M.snakeoil.fd")
# Signing keys (Makefile, build/keys): "snakeoil" is in db, "stranger" in none.
KEYS = BUILD / "keys"
# ABSWITCH_SECUREBOOT=1: every machine boots with Secure Boot on, its UKIs signed.
SECUREBOOT = os.environ.get("ABSWITCH_SECUREBOOT", "") == "1"
# no_timer_check: the kernel's IO-APIC timer check counts ticks in a busy
# loop; under TCG on a loaded host a kexec'd kernel (whose timer hardware no
# firmware reset) missed them once and panicked ("IO-APIC + timer doesn't
# work!", test_kexec_update_commit, 2026-12-02). Common for VMs; test UKIs only.
CONSOLE = "console=ttyS0,115200 panic=-1 no_timer_check"
BOOT_TIMEOUT = int(os.environ.get("ABSWITCH_BOOT_TIMEOUT", "240"))

ROOT_RE = re.compile(r"^ABSWITCH-ROOT (.*)$", re.M)
# Not anchored: a Debian slot's serial getty can print its login prompt
# first on the same console line (test_systemd.py's report).
RECORD_RE = re.compile(r"ABSWITCH-RECORD (.*)$", re.M)
STOPPED_RE = re.compile(r"abswitch: Stopped here")
SECURITY_RE = re.compile(r"^ABSWITCH-SECURITY (.*)$", re.M)


def env():
    out = {}
    for line in (E2E / "env").read_text().splitlines():
        k, _, v = line.partition("=")
        out[k] = v
    return out


def roothash(slot):
    """The root hash of test image slot-SLOT, or of the image whose .roothash file slot is (a Path)."""
    path = slot if isinstance(slot, Path) else E2E / f"slot-{slot.lower()}.roothash"
    return path.read_text().strip()


class Boot:
    """What one boot printed on the serial console."""

    def __init__(self, console, seconds, exited):
        self.console = console
        self.seconds = seconds
        self.exited = exited

    @property
    def root(self):
        m = ROOT_RE.search(self.console)
        if not m:
            return None
        return dict(kv.split("=", 1) for kv in m.group(1).split())

    @property
    def record(self):
        m = RECORD_RE.search(self.console)
        return json.loads(m.group(1)) if m else None

    @property
    def security(self):
        """{"secureboot": "1"|"0"|"-", "lockdown": mode} as the booted root saw them, or None."""
        m = SECURITY_RE.search(self.console)
        return dict(kv.split("=", 1) for kv in m.group(1).split()) if m else None

    @property
    def stopped(self):
        return bool(STOPPED_RE.search(self.console))

    def init_log(self):
        """The init's own lines, without the kernel's timestamps' noise."""
        return [l for l in self.console.splitlines() if "abswitch: " in l]

    def tail(self, n=40):
        return "\n".join(self.console.splitlines()[-n:])


def default_slot_size(*images):
    """16 MiB, or the next 8 MiB above the larger image with a quarter to
    spare: an image that grows (the installer's root carries abctl and a
    UKI) gets a larger slot instead of failing set-up. A test about sizes
    passes slot_size itself."""
    paths = [E2E / f"slot-{i}.img" for i in images if i]
    size = max([p.stat().st_size for p in paths if p.exists()] + [0])
    mib = max(16, -(-(size * 5 // 4) // (8 << 20)) * 8)
    return f"{mib}M"


class Machine:
    def __init__(self, workdir, secureboot=None, tpm=False):
        self.dir = Path(workdir)
        # A TPM 2.0 (swtpm, QEMU's tpm-crb); its state persists across this machine's boots.
        self.tpm = tpm
        self.dir.mkdir(parents=True, exist_ok=True)
        # Secure Boot on (None: as ABSWITCH_SECUREBOOT says): secboot firmware,
        # snakeoil VARS, and uki() signs with the snakeoil key by default.
        self.secureboot = SECUREBOOT if secureboot is None else secureboot
        self.vars = self.dir / "vars.fd"
        shutil.copy(OVMF_VARS_SB if self.secureboot else OVMF_VARS, self.vars)
        if self.secureboot:
            # The snakeoil template was saved after a boot: it holds Boot0000-0002
            # (UiApp, an IDE disk, the shell) that the plain template does not.
            # Start from the same boot options as without Secure Boot.
            v = self.varstore()
            for num in v.boot_options():
                v.set_boot_option_raw(num, None)
            v.save()
        self.disk = self.dir / "disk.img"
        self.env = env()
        self.boots = []
        # QEMU's user network on an e1000 (OVMF has no driver for it without
        # its option ROM, so the firmware's boot options stay ours).
        self.net = False
        # The test roots are tiny: 256 MiB boots OVMF and the kernel about
        # 0.5 s faster than 512 (measured, 2026-12-02); the Debian system
        # (test_systemd.py) asks for more.
        self.memory = 256
        # A hardware watchdog (i6300esb); its reset ends QEMU like any reboot (-no-reboot).
        self.watchdog = True
        # Commands the test root runs after booting (-fw_cfg opt/abswitch/run),
        # and files it can read under /sys/firmware/qemu_fw_cfg/by_name/opt/abswitch/.
        self.fw_run = []
        self.fw_files = {}

    # ---- building ---------------------------------------------------------------

    def uki(self, name, hash_of, slot=None, cmdline="", pin=True, version="1", sign=None):
        """A UKI pinning the root hash of slot hash_of's image (pin=False:
        only on its command line, no /etc/abswitch/pin in its initramfs), at
        version (IMAGE_VERSION; the updates the tests install are newer).
        sign: a key of build/keys ("snakeoil", in db; "stranger", in no db),
        False for an unsigned UKI, None for snakeoil with Secure Boot on and
        unsigned without."""
        out = self.dir / name
        args = [TOP / "initramfs/mkuki", "--kernel", self.env["KERNEL_IMAGE"],
                "--initrd", E2E / "initramfs.img", "--roothash", roothash(hash_of),
                "--cmdline", f"{CONSOLE} {cmdline}".strip(), "--output", out]
        if slot:
            args += ["--slot", slot]
        if not pin:
            args += ["--no-pin"]
        if version:
            args += ["--version", version]
        if sign is None:
            sign = "snakeoil" if self.secureboot else False
        if sign:
            args += ["--sign-key", KEYS / f"{sign}.key", "--sign-cert", KEYS / f"{sign}.pem"]
        subprocess.run([str(a) for a in args], check=True, capture_output=True)
        return out

    def make_disk(self, a_uki, b_uki=None, a_image="a", b_image="b", active="a", removable=None, slot_size=None,
                  verity_size="1M"):
        if slot_size is None:
            slot_size = default_slot_size(a_image, b_image)
        args = [TOP / "initramfs/mkdisk", "--output", self.disk, "--a-uki", a_uki,
                "--esp-size", "80M", "--slot-size", slot_size, "--verity-size", verity_size, "--active", active,
                "--removable", removable or active]
        if a_image:
            args += ["--a-image", E2E / f"slot-{a_image}"]
        if b_uki:
            args += ["--b-uki", b_uki]
        if b_image:
            args += ["--b-image", E2E / f"slot-{b_image}"]
        r = subprocess.run([str(a) for a in args], capture_output=True, text=True)
        # mkdisk says why (an image larger than slot_size, say).
        assert r.returncode == 0, f"mkdisk failed: {r.stderr}"

    def esp(self):
        out = subprocess.run(["sgdisk", "-i", "1", str(self.disk)], check=True, capture_output=True,
                             text=True).stdout
        first = int(re.search(r"First sector: (\d+)", out).group(1))
        last = int(re.search(r"Last sector: (\d+)", out).group(1))
        guid = re.search(r"Partition unique GUID: (\S+)", out).group(1)
        return {"partno": 1, "partuuid": str(uuid.UUID(guid)), "start": first, "size": last - first + 1}

    def varstore(self):
        return ovmfvars.VarStore(self.vars)

    def add_boot_entries(self, entries, order=None, boot_next=None):
        """entries: {number: (description, path[, optional data bytes])}; written into the VARS file."""
        v = self.varstore()
        esp = self.esp()
        for num, (desc, path, *opt) in entries.items():
            v.set_boot_option(num, desc, esp, path, optional_data=opt[0] if opt else b"")
        if order is not None:
            v.set_boot_order(order)
        if boot_next is not None:
            v.set_boot_next(boot_next)
        v.save()

    def slot_state(self, slot):
        """The GPT state of a slot as cgpt reads it (ChromeOS bits), plus our armed bit."""
        part = {"A": 2, "B": 4}[slot]
        def cg(flag):
            return int(subprocess.run(["cgpt", "show", "-i", str(part), flag, str(self.disk)], check=True,
                                      capture_output=True, text=True).stdout.strip())
        attrs = int(subprocess.run(["cgpt", "show", "-i", str(part), "-A", str(self.disk)], check=True,
                                   capture_output=True, text=True).stdout.strip(), 16)
        return {"priority": cg("-P"), "tries": cg("-T"), "successful": bool(cg("-S")),
                "armed": bool(attrs & (1 << (57 - 48)))}

    def set_slot_state(self, slot, priority, tries=0, successful=False, armed=False):
        """Writes a slot's state with the tools ChromeOS and gdisk ship."""
        part = {"A": 2, "B": 4}[slot]
        subprocess.run(["cgpt", "add", "-i", str(part), "-P", str(priority), "-T", str(tries),
                        "-S", "1" if successful else "0", str(self.disk)], check=True, capture_output=True)
        subprocess.run(["sgdisk", "-A", f"{part}:{'set' if armed else 'clear'}:57", str(self.disk)],
                       check=True, capture_output=True)

    def corrupt_slot(self, slot, offset=1024):
        """Flips bytes in a slot's file system (erofs keeps its superblock at 1024)."""
        part = {"A": 2, "B": 4}[slot]
        out = subprocess.run(["sgdisk", "-i", str(part), str(self.disk)], check=True, capture_output=True,
                             text=True).stdout
        start = int(re.search(r"First sector: (\d+)", out).group(1)) * 512
        with open(self.disk, "r+b") as f:
            f.seek(start + offset)
            data = bytearray(f.read(16))
            f.seek(start + offset)
            f.write(bytes(b ^ 0xFF for b in data))

    def esp_file(self, path):
        """A file's bytes from the FAT ESP inside the disk image (mtools)."""
        esp = self.esp()
        out = self.dir / "esp-file"
        subprocess.run(["mcopy", "-o", "-i", f"{self.disk}@@{esp['start'] * 512}", f"::{path}", str(out)],
                       check=True, capture_output=True)
        return out.read_bytes()

    def delete_partitions(self, *partnos):
        for p in partnos:
            subprocess.run(["sgdisk", "-d", str(p), str(self.disk)], check=True, capture_output=True)

    # ---- booting ----------------------------------------------------------------

    def qemu_args(self, console_path):
        # Secure Boot: OVMF's SMM build keeps its variables in flash only SMM may write.
        code, machine = (OVMF_CODE_SB, "q35,smm=on") if self.secureboot else (OVMF_CODE, "q35")
        return ["qemu-system-x86_64", "-machine", machine, "-m", str(self.memory), "-smp", "1", "-nodefaults",
                "-display", "none", "-no-reboot", "-serial", f"file:{console_path}",
                "-drive", f"if=pflash,format=raw,readonly=on,file={code}",
                "-drive", f"if=pflash,format=raw,file={self.vars}",
                "-drive", f"file={self.disk},if=virtio,format=raw",
                ] + (["-device", "i6300esb"] if self.watchdog else []) + (
                ["-global", "driver=cfi.pflash01,property=secure,value=on"] if self.secureboot else []
                ) + self.extra_args()

    def extra_args(self):
        args = []
        if self.net:
            args += ["-netdev", "user,id=n0", "-device", "e1000,netdev=n0,romfile="]
        files = dict(self.fw_files)
        if self.fw_run:
            run = self.dir / "fw-run"
            run.write_text("".join(l + "\n" for l in self.fw_run))
            files["run"] = run
        for name, path in files.items():
            args += ["-fw_cfg", f"name=opt/abswitch/{name},file={path}"]
        if self.tpm:
            args += ["-chardev", f"socket,id=chrtpm,path={self.dir / 'tpm' / 'sock'}", "-tpmdev",
                     "emulator,id=tpm0,chardev=chrtpm", "-device", "tpm-crb,tpmdev=tpm0"]
        return args

    def start_tpm(self):
        """swtpm for one boot (it ends when QEMU disconnects); the state directory stays."""
        d = self.dir / "tpm"
        d.mkdir(exist_ok=True)
        (d / "sock").unlink(missing_ok=True)
        p = subprocess.Popen(["swtpm", "socket", "--tpm2", "--tpmstate", f"dir={d}", "--terminate",
                              "--ctrl", f"type=unixio,path={d / 'sock'}", "--log", f"file={d / 'swtpm.log'}"],
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(250):
            if (d / "sock").exists() or p.poll() is not None:
                break
            time.sleep(0.02)
        assert (d / "sock").exists(), f"swtpm did not start; see {d / 'swtpm.log'}"
        return p

    def boot(self, timeout=BOOT_TIMEOUT, stop_on=STOPPED_RE, grace=3.0, cut=None, marks=None, until=None):
        """Boots once. Returns when QEMU exits (power-off, or a reboot, which
        -no-reboot turns into an exit), or grace seconds after the console
        matched stop_on (the init stopped and waits forever by design).
        cut=(regex, seconds): a power cut that many seconds after the console
        matched regex (QEMU is killed; what the guest had not written to the
        disk image or the VARS file is lost). marks={name: regex}: the
        returned Boot's .marks has the seconds at which each first showed.
        until: a callable; a power cut as soon as it returns true."""
        if cut is not None:
            stop_on, grace = cut
        n = len(self.boots) + 1
        console = self.dir / f"console-{n}.log"
        console.write_bytes(b"")
        swtpm = self.start_tpm() if self.tpm else None
        t0 = time.monotonic()
        p = subprocess.Popen(self.qemu_args(console), stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        matched_at = None
        seen = {}
        if cut is not None:
            stop_on = re.compile(stop_on) if isinstance(stop_on, str) else stop_on
        try:
            while True:
                if p.poll() is not None:
                    break
                now = time.monotonic()
                text = console.read_bytes().decode("utf-8", "replace")
                for name, rx in (marks or {}).items():
                    if name not in seen and re.search(rx, text):
                        seen[name] = now - t0
                if matched_at is None and stop_on is not None and stop_on.search(text):
                    matched_at = now
                if matched_at is not None and now - matched_at >= grace:
                    break
                if until is not None and until():
                    matched_at = now
                    cut = True
                    break
                if now - t0 > timeout:
                    break
                time.sleep(0.02 if cut is not None else 0.2)
        finally:
            exited = p.poll() is not None
            if not exited:
                p.kill()
            p.wait()
            if swtpm:  # --terminate: it ends with QEMU's connection
                try:
                    swtpm.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    swtpm.kill()
                    swtpm.wait()
        b = Boot(console.read_bytes().decode("utf-8", "replace"), time.monotonic() - t0, exited)
        for name, rx in (marks or {}).items():  # lines written just before QEMU exited
            if name not in seen and re.search(rx, b.console):
                seen[name] = b.seconds
        b.cut = cut is not None and not exited and matched_at is not None
        b.marks = seen
        if not exited and matched_at is None:
            raise AssertionError(f"boot {n} timed out after {timeout}s; console ends with:\n{b.tail()}")
        self.boots.append(b)
        return b
