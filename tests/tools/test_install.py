"""abctl install's one pipeline on the host, without a VM: every source
(files, an OCI layout, a real registry) streams into the slot's partitions
through loop devices over the disk image (this host's loop devices have no
partition nodes; abctl sets one up per partition, with offset and size
limit), and what landed there is verified with build/powercut/abctl
(glibc, Debian's libcryptsetup, hashing in userspace). Interrupted
installs, stale temporaries and long paths. The same installs inside
QEMU, through the partition nodes sysfs names, are in tests/e2e."""

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_hostile import E2E, ENV, PC, Machine
from test_oci import make_layout

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))
from registry import Proxy, Registry  # noqa: E402


def partition_bytes(disk, part):
    """sha256 of partition part's bytes (sgdisk -i for its sectors)."""
    info = subprocess.run(["sgdisk", "-i", str(part), disk], capture_output=True, text=True, check=True).stdout
    first = int(info.split("First sector: ")[1].split()[0])
    last = int(info.split("Last sector: ")[1].split()[0])
    with open(disk, "rb") as f:
        f.seek(first * 512)
        return hashlib.sha256(f.read((last - first + 1) * 512)).hexdigest()


def prio(m, slot):
    part = {"A": "2", "B": "4"}[slot]
    return int(subprocess.run(["cgpt", "show", "-i", part, "-P", m.disk], capture_output=True, text=True,
                              check=True).stdout)


def loops_on(disk):
    """Loop devices backed by disk (ours are cleared when their last user closes them)."""
    for _ in range(50):
        out = subprocess.run(["losetup", "-j", str(disk)], capture_output=True, text=True).stdout.strip()
        if not out:
            return ""
        time.sleep(0.1)
    return out


def our_mounts():
    return [l for l in Path("/proc/self/mountinfo").read_text().splitlines() if "/run/abswitch/esp" in l]


def files_under(d):
    """Every name under d, also deeper than PATH_MAX (os.fwalk works through descriptors)."""
    return sorted(f"{root}/{n}" for root, dirs, files, _ in os.fwalk(d) for n in dirs + files)


def installed(m, r, slot="B"):
    assert r.returncode == 0, r.stderr
    assert "verified on the disk against root hash" in r.stdout, r.stdout
    assert f"slot {slot} is now on trial" in r.stdout, r.stdout
    assert not list(m.esp.rglob("*.new"))
    assert loops_on(m.disk) == ""


@pytest.fixture
def m(tmp_path):
    return Machine(tmp_path)


@pytest.fixture
def small_esp(m):
    """The ESP as its own small file system (tmpfs: this host has no vfat)."""
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", m.esp], check=True)
    (m.esp / "EFI/abswitch").mkdir(parents=True)
    shutil.copy(m.ukis["a"], m.esp / "EFI/abswitch/boot-a.efi")
    shutil.copy(m.ukis["b"], m.esp / "EFI/abswitch/boot-b.efi")
    yield m.esp
    subprocess.run(["umount", m.esp], check=True)


def test_files_install_verifies_on_the_disk(m):
    a_before = (partition_bytes(m.disk, 2), partition_bytes(m.disk, 3))
    installed(m, m.abctl("install", E2E / "slot-b-commit", m.ukis["b-commit"]))
    assert (m.esp / "EFI/abswitch/boot-b.efi").read_bytes() == m.ukis["b-commit"].read_bytes()
    assert (partition_bytes(m.disk, 2), partition_bytes(m.disk, 3)) == a_before
    # What landed in B's partitions is the image (then zeros).
    img = (E2E / "slot-b-commit.img").read_bytes()
    info = subprocess.run(["sgdisk", "-i", "4", m.disk], capture_output=True, text=True, check=True).stdout
    first = int(info.split("First sector: ")[1].split()[0])
    with open(m.disk, "rb") as f:
        f.seek(first * 512)
        assert f.read(len(img)) == img


def test_layout_install_verifies_on_the_disk(m, tmp_path):
    # Before the one pipeline, an OCI install on an image file had no
    # partition nodes to verify through and always failed.
    make_layout(tmp_path / "oci", m.ukis["b-commit"])
    installed(m, m.abctl("install", f"oci:{tmp_path}/oci:v2"))
    assert (m.esp / "EFI/abswitch/boot-b.efi").read_bytes() == m.ukis["b-commit"].read_bytes()


def test_layer_that_does_not_match_the_pin_fails_on_the_disk(m, tmp_path):
    # Every digest is right, the UKI pins what the config says, but the
    # system layer is another image: only the check of what is on the disk
    # finds it. The slot stays not bootable; the old UKI stays. (A whole
    # download: a delta finds it sooner, in the tree, tests/tools/test_delta.py.)
    make_layout(tmp_path / "oci", m.ukis["b-commit"], image=E2E / "slot-b",
                roothash=(E2E / "slot-b-commit.roothash").read_text().strip())
    r = m.abctl("--delta", "no", "install", f"oci:{tmp_path}/oci:v2")
    assert r.returncode == 1
    assert "does not verify against the root hash the UKI pins" in r.stderr, r.stderr
    assert "slot B stays not bootable, slot A is untouched" in r.stderr, r.stderr
    assert prio(m, "B") == 0
    assert (m.esp / "EFI/abswitch/boot-b.efi").read_bytes() == m.ukis["b"].read_bytes()
    assert not list(m.esp.rglob("*.new"))
    assert loops_on(m.disk) == ""


def fill_to(esp, free):
    """Leaves exactly about free bytes on the ESP."""
    now = shutil.disk_usage(esp).free
    if now > free:
        (esp / "filler").write_bytes(b"\0" * (now - free))


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_interrupted_install_cleans_up(m, small_esp, tmp_path, sig):
    # A real registry behind a proxy that stops sending 256 KiB into the
    # system layer: abctl is blocked mid-stream, the slot already marked
    # not bootable and the UKI's temporary on the ESP. Then the signal.
    blobs = make_layout(tmp_path / "oci", m.ukis["b-commit"])
    reg = Registry(tmp_path).start()
    try:
        reg.push(tmp_path / "oci", "v2")
        before_system = blobs["config"]["size"] + blobs["uki"]["size"] + 64 * 1024
        proxy = Proxy(reg.port, stall_after=before_system + 256 * 1024)
        a_before = (partition_bytes(m.disk, 2), partition_bytes(m.disk, 3), prio(m, "A"))
        mounts = our_mounts()
        p = subprocess.Popen([PC / "abctl", "--disk", m.disk, "--efivars", m.efivars, "--esp", m.esp,
                              "--record", "/nonexistent", "--running", "A", "--ca", reg.ca, "--timeout", "60",
                              "install", f"127.0.0.1:{proxy.port}/abswitch/os:v2"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env={"ASAN_OPTIONS": "detect_leaks=0", "PATH": os.environ["PATH"]})
        assert proxy.stalled.wait(30), p.communicate()
        time.sleep(0.5)
        assert p.poll() is None
        assert list(m.esp.rglob("*.new")), "the UKI's temporary should be there mid-stream"
        assert prio(m, "B") == 0
        p.send_signal(sig)
        out, err = p.communicate(timeout=10)
        proxy.close()
    finally:
        reg.stop()
    assert p.returncode == 1, err
    assert "interrupted by a signal; slot B stays not bootable, slot A is untouched" in err, err
    assert not list(m.esp.rglob("*.new"))
    assert loops_on(m.disk) == ""
    assert our_mounts() == mounts
    assert prio(m, "B") == 0
    assert (partition_bytes(m.disk, 2), partition_bytes(m.disk, 3), prio(m, "A")) == a_before
    assert m.var("BootNext") is None

    # kill -9 leaves the temporary: on an ESP with room for one more UKI
    # only when it is gone, the next install removes it and succeeds.
    stale = m.esp / "EFI/abswitch/boot-b.efi.new"
    stale.write_bytes(m.ukis["b-commit"].read_bytes())
    fill_to(m.esp, m.ukis["b-commit"].stat().st_size + 64 * 1024 + 16 * 1024)
    assert shutil.disk_usage(m.esp).free < m.ukis["b-commit"].stat().st_size * 2 + 64 * 1024
    r = m.abctl("install", E2E / "slot-b-commit", m.ukis["b-commit"])
    installed(m, r)
    assert "left by an interrupted install" in r.stderr
    assert (m.esp / "EFI/abswitch/boot-b.efi").read_bytes() == m.ukis["b-commit"].read_bytes()


def deep_dir(base, length, component=200):
    """A directory whose path is about length characters, made one level at
    a time (a path beyond PATH_MAX cannot be made in one call)."""
    os.makedirs(base, exist_ok=True)
    fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY)
    path = str(base)
    i = 0
    while len(path) < length:
        name = f"{i:03d}" + "d" * min(component, max(1, length - len(path) - 4))
        os.mkdir(name, dir_fd=fd)
        nfd = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        os.close(fd)
        fd = nfd
        path += "/" + name
        i += 1
    return path, fd


def test_interrupted_install_is_not_a_failed_image(m):
    # An install of b-commit into B is cut off at its first write into B's
    # partitions (the cutter kills it there, as a power cut or kill -9
    # would; a signal leaves the same state). B keeps its old UKI (slot-b's
    # pin) and is not bootable, as a slot whose image failed at boot is.
    # Installing slot-b, B's previous image, again is not retrying "an image
    # that already failed in slot B": it never failed. A slot whose image
    # did fail at boot is still refused without --force.
    args = [PC / "abctl", "--disk", m.disk, "--efivars", m.efivars, "--esp", m.esp, "--record", "/nonexistent",
            "--running", "A", "install", E2E / "slot-b-commit", m.ukis["b-commit"]]
    base = m.dir / "base"
    shutil.copytree(m.dir, base, ignore=shutil.ignore_patterns("base"))
    log = m.dir / "calls.log"
    r = subprocess.run([PC / "cutter", "--atomic", m.efivars, "--log", log, "--", *args], capture_output=True,
                       text=True, env=ENV)
    assert r.returncode == 0, r.stderr
    k = next(int(line.split()[0]) for line in log.read_text().splitlines() if line.split()[2].startswith("/dev/loop"))
    for name in ("disk.img", "esp", "efivars"):
        if (m.dir / name).is_dir():
            shutil.rmtree(m.dir / name)
            shutil.copytree(base / name, m.dir / name)
        else:
            shutil.copy(base / name, m.dir / name)
    r = subprocess.run([PC / "cutter", "--atomic", m.efivars, "--cut", str(k), "--", *args], capture_output=True,
                       text=True, env=ENV)
    assert r.returncode == 0 and f"cut={k}" in r.stderr, r.stderr
    assert m.slot("B") == {"priority": 0, "tries": 0, "successful": False, "armed": False}
    assert (m.esp / "EFI/abswitch/boot-b.efi").read_bytes() == m.ukis["b"].read_bytes()
    r = m.abctl("install", E2E / "slot-b", m.ukis["b"])
    assert "already failed" not in r.stderr, r.stderr
    installed(m, r)
    # The image in B now fails at boot (its tries used up): that one is refused.
    m.set_state("B", 0, tries=0)
    r = m.abctl("install", E2E / "slot-b", m.ukis["b"])
    assert r.returncode == 1 and "already failed in slot B" in r.stderr, r.stderr


def test_long_paths_refused(m, tmp_path):
    # A PREFIX whose PREFIX.img and PREFIX.verity were cut, by a 512-byte
    # buffer, to names that exist (PREFIX.i and PREFIX.v, a real image):
    # those must not be installed in their place.
    d, fd = deep_dir(tmp_path / "p", 480)
    os.close(fd)
    prefix = d + "/" + "x" * (509 - len(d) - 1)
    assert len(prefix) == 509
    shutil.copy(E2E / "slot-b-commit.img", prefix + ".i")
    shutil.copy(E2E / "slot-b-commit.verity", prefix + ".v")
    before, files = m.fingerprint(), files_under(tmp_path)
    r = m.abctl("install", prefix, m.ukis["b-commit"])
    assert r.returncode == 1, r.stderr
    assert f"The image is incomplete: expected {prefix}.img " in r.stderr, r.stderr
    assert "Nothing was changed" in r.stderr
    assert m.fingerprint() == before and files_under(tmp_path) == files

    # An ESP deeper than any path can be: refused before anything is written.
    esp, fd = deep_dir(tmp_path / "e", 4200)
    os.mkdir("EFI", dir_fd=fd)
    efi = os.open("EFI", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
    os.mkdir("abswitch", dir_fd=efi)
    os.close(efi)
    os.close(fd)
    before, files = m.fingerprint(), files_under(tmp_path)
    r = subprocess.run([PC / "abctl", "--disk", m.disk, "--efivars", m.efivars, "--esp", esp, "--record",
                        "/nonexistent", "--running", "A", "install", E2E / "slot-b-commit", m.ukis["b-commit"]],
                       capture_output=True, text=True, env={"ASAN_OPTIONS": "detect_leaks=0"})
    assert r.returncode == 1, r.stderr
    assert "The ESP's path is too long for the UKI's file name in it" in r.stderr, r.stderr[:500]
    assert "Nothing was changed" in r.stderr
    assert m.fingerprint() == before and files_under(tmp_path) == files
    assert loops_on(m.disk) == ""


def test_long_esp_path_gets_the_whole_name(m, tmp_path):
    # A --esp of about 700 characters: the UKI goes to that ESP's
    # EFI/abswitch/boot-b.efi, not to a name cut at 600 characters.
    d, fd = deep_dir(tmp_path / "e", 700)
    os.close(fd)
    esp = Path(d)
    (esp / "EFI/abswitch").mkdir(parents=True)
    shutil.copy(m.ukis["a"], esp / "EFI/abswitch/boot-a.efi")
    shutil.copy(m.ukis["b"], esp / "EFI/abswitch/boot-b.efi")
    files = files_under(tmp_path / "e")
    m.esp = esp
    r = m.abctl("install", E2E / "slot-b-commit", m.ukis["b-commit"])
    # The one new file: B's origin, next to its UKI (abctl/origin.h).
    origin = esp / "EFI/abswitch/boot-b.origin"
    assert files_under(tmp_path / "e") == sorted(files + [str(origin)]), "a file was created where it does not belong"
    assert json.loads(origin.read_text())["reference"] == str(E2E / "slot-b-commit")
    assert (esp / "EFI/abswitch/boot-b.efi").read_bytes() == m.ukis["b-commit"].read_bytes()
    installed(m, r)
