"""Power cuts in the real VM, a seeded sample (the exhaustive matrix on
files is make powercut): QEMU is killed at a random moment of an install
inside slot A, of slot B's trial boot and of B's commit, then the machine
boots again until a root comes up. Checked each time: some slot boots
within a few boots, never a stop; slot A (running, committed) keeps its
partitions byte for byte; the GPT has a valid copy.

ABSWITCH_POWERCUT_SEED picks the sample (default 1); each test prints its
cut so that a failure can be replayed. Boots vary in speed: a cut that comes
after the operation finished is retried earlier (halved), up to 4 times."""

import hashlib
import os
import random
import re
import shutil
import subprocess
import sys

import pytest

import abvm

sys.path.insert(0, str(abvm.TOP / "tests/powercut"))
from powercut import gpt_copies  # noqa: E402  (the harness's own GPT reader)

BOOT_A = 0x1000
BOOT_B = 0x1001
PATH_A = r"\EFI\abswitch\boot-a.efi"
PATH_B = r"\EFI\abswitch\boot-b.efi"
SEED = int(os.environ.get("ABSWITCH_POWERCUT_SEED", "1"))
MAX_BOOTS = 6


def update_disk(machine):
    """A runs and installs v2 into B when it boots (as in test_update_commit)."""
    a = machine.uki("boot-a.efi", "A-INSTALLER")
    b = machine.uki("boot-b.efi", "B")
    machine.make_disk(a, b, a_image="a-installer")
    machine.add_boot_entries({BOOT_A: ("abswitch A", PATH_A), BOOT_B: ("abswitch B", PATH_B)},
                             order=[BOOT_A, BOOT_B])


def slot_digest(machine, slot):
    h = hashlib.sha256()
    for part in {"A": (2, 3), "B": (4, 5)}[slot]:
        out = subprocess.run(["sgdisk", "-i", str(part), str(machine.disk)], check=True, capture_output=True,
                             text=True).stdout
        first = int(re.search(r"First sector: (\d+)", out).group(1))
        last = int(re.search(r"Last sector: (\d+)", out).group(1))
        with open(machine.disk, "rb") as f:
            f.seek(first * 512)
            h.update(f.read((last - first + 1) * 512))
    return h.hexdigest()


def gpt_has_valid_copy(machine):
    return any(valid for valid, _ in gpt_copies(machine.disk))


def recover(machine, a_digest, what):
    """Boots until a root comes up; returns its slot."""
    for n in range(1, MAX_BOOTS + 1):
        boot = machine.boot()
        assert not boot.stopped, f"{what}: the init stopped on boot {n}:\n{boot.tail()}"
        assert slot_digest(machine, "A") == a_digest, f"{what}: slot A's partitions changed"
        if boot.root:
            assert boot.root["verity"] == "yes"
            return boot.root["slot"]
    raise AssertionError(f"{what}: no root after {MAX_BOOTS} boots")


# What each cut aims into: (from, to) console lines of the operation.
WINDOWS = {
    "install": (r"ABSWITCH-ROOT slot=A", r"ABSWITCH-RUN rc=\d+ /usr/bin/abctl install"),
    "trial": (r"abswitch: abswitch .*init starting", r"abswitch: Switching root"),
    "commit": (r"ABSWITCH-ROOT slot=B", r"ABSWITCH-RUN rc=\d+ /usr/bin/abctl mark-good"),
}


@pytest.fixture(scope="module")
def windows(tmp_path_factory):
    """How long each operation takes on this machine now, from one uncut
    update (install in A, then B's trial boot and commit)."""
    m = abvm.Machine(tmp_path_factory.mktemp("reference"))
    update_disk(m)
    marks = {f"{k}-{i}": rx for k, pair in WINDOWS.items() for i, rx in enumerate(pair)}
    out = {}
    for _ in range(2):
        b = m.boot(marks=marks)
        for k in WINDOWS:
            if f"{k}-0" in b.marks and f"{k}-1" in b.marks:
                out[k] = b.marks[f"{k}-1"] - b.marks[f"{k}-0"]
    assert set(out) == set(WINDOWS), out
    print(f"operation windows (s): {out}")
    return out


def cut_sample(windows, name, index):
    """A seeded moment inside the operation (10-80% of its measured length)."""
    w = windows[name]
    delay = random.Random(f"{SEED}-{name}-{index}").uniform(0.1 * w, 0.8 * w)
    print(f"power cut {name}[{index}] at +{delay:.3f} s of {w:.3f} s (seed {SEED})")
    return delay


def cut(machine, windows, name, prepare, index=0):
    """prepare(machine) brings it to just before the operation; then the cut.
    Boots vary in speed: when the operation finished before the moment drawn
    (the cut missed it), the machine is prepared again and the moment
    halved, up to 4 times."""
    delay = cut_sample(windows, name, index)
    for attempt in range(4):
        prepare(machine)
        machine.a_digest = slot_digest(machine, "A")   # before the cut
        boot = machine.boot(cut=(WINDOWS[name][0], delay))
        if boot.cut and not re.search(WINDOWS[name][1], boot.console):
            break  # the cut fell inside the operation
        print(f"  the {name} finished before +{delay:.3f} s; again at +{delay / 2:.3f} s")
        delay /= 2
    else:
        raise AssertionError(f"{name}: no cut landed inside the operation in 4 attempts")
    assert gpt_has_valid_copy(machine)
    return delay


def fresh(machine):
    """A new disk and VARS file, before A's first boot."""
    shutil.copy(abvm.OVMF_VARS, machine.vars)
    update_disk(machine)


def installed(machine):
    """v2 installed into B from A, B armed: just before B's trial boot."""
    fresh(machine)
    assert machine.boot().root["slot"] == "A"


@pytest.mark.parametrize("index", [0, 1])
def test_power_cut_during_install(machine, windows, index):
    delay = cut(machine, windows, "install", fresh, index)
    # A comes back and (its root installs again on every boot) B's trial may follow.
    assert recover(machine, machine.a_digest, f"install cut at +{delay:.3f} s") in ("A", "B")


def test_power_cut_during_trial_boot(machine, windows):
    delay = cut(machine, windows, "trial", installed)
    assert recover(machine, machine.a_digest, f"trial cut at +{delay:.3f} s") in ("A", "B")


def test_power_cut_during_commit(machine, windows):
    delay = cut(machine, windows, "commit", installed)
    assert recover(machine, machine.a_digest, f"commit cut at +{delay:.3f} s") in ("A", "B")
