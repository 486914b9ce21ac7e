"""kexec activation (README "kexec", issue 16 part 1), end to end in real
OVMF and Debian's kernel.

Machine runs QEMU with -no-reboot: a firmware reset ends a QEMU run, a
kexec does not. So QEMU runs count firmware starts, and the console of one
run holds one kernel per kexec (split at the kernels' "Linux version"
banners). The numbers go to build/test-results/kexec.json."""

import fcntl
import hashlib
import json
import os
import re

import pytest

import abvm
from scenarios import PANIC_FALLBACK, PanicFallback
from test_protocol import BOOT_A, BOOT_B, PATH_A, PATH_B, slots_seen

RESULTS = abvm.BUILD / "test-results" / "kexec.json"
BANNER = re.compile(r"(?m)^.*Linux version \d")


def kernels(run):
    """One QEMU run's console, one Boot per kernel that started in it."""
    starts = [m.start() for m in BANNER.finditer(run.console)] or [0]
    starts[0] = 0
    ends = starts[1:] + [len(run.console)]
    return [abvm.Boot(run.console[s:e], run.seconds, run.exited) for s, e in zip(starts, ends)]


def save(key, value):
    """Merges {key: value} into kexec.json (tests may run on parallel workers)."""
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with open(RESULTS.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        data = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
        # Other QEMUs on the machine stretch every second measured here.
        data[key] = {**value, "load_average_at_end": round(os.getloadavg()[0], 1)}
        RESULTS.write_text(json.dumps(data, indent=2) + "\n")
    print(f"kexec.json {key}: {json.dumps(value)}")


def test_kexec_update_commit(machine):
    m = machine
    # Slot A's root installs v2 into B, then runs "abctl reboot --kexec"
    # (Makefile: root-a-kexec); B's v2 image runs "abctl mark-good".
    a = m.uki("boot-a.efi", "A-KEXEC")
    b = m.uki("boot-b.efi", "B")
    m.make_disk(a, b, a_image="a-kexec")
    m.add_boot_entries({BOOT_A: ("abswitch A", PATH_A), BOOT_B: ("abswitch B", PATH_B)}, order=[BOOT_A, BOOT_B])

    run = m.boot(marks={"kexec": r"Loaded slot B's UKI", "b_root": r"ABSWITCH-ROOT slot=B"})
    k = kernels(run)
    if m.secureboot:
        # ABSWITCH_SECUREBOOT=1: lockdown refuses Debian's kernel, signed by
        # Debian's CA, which no keyring of this kernel holds without shim
        # (README "kexec"): one line, and the firmware path instead.
        assert len(k) == 1 and run.exited, run.tail(30)
        assert "kexec_file: Enforced kernel signature verification failed (-126)" in run.console
        lines = [l for l in run.console.splitlines() if "kexec of slot B refused" in l]
        assert len(lines) == 1, run.tail(30)
        assert "rebooting through the firmware instead, which starts slot B (armed in BootNext)" in lines[0]
        trial = m.boot()
        assert trial.root["slot"] == "B" and trial.record["kexec"]["uki_sha256"] is None
        assert "ABSWITCH-RUN rc=0 /usr/bin/abctl mark-good" in trial.console
        assert m.slot_state("B") == {"priority": 2, "tries": 0, "successful": True, "armed": False}
        return
    assert len(k) == 2, f"expected A's kernel, then B's by kexec, in one QEMU run:\n{run.tail(60)}"
    first, second = k
    assert first.root["slot"] == "A"
    assert "ABSWITCH-RUN rc=0 /usr/bin/abctl install /images/v2 /images/v2.efi" in first.console
    uki = m.esp_file("EFI/abswitch/boot-b.efi")
    sha = hashlib.sha256(uki).hexdigest()
    assert f"Loaded slot B's UKI \\EFI\\abswitch\\boot-b.efi (armed in BootNext, sha256 {sha})" in first.console
    assert "kexec of slot B refused" not in first.console

    # B's trial, started by kexec: the protocol's trial, not an override.
    assert second.root["slot"] == "B"
    rec = second.record
    assert rec["kexec"]["uki_sha256"] == sha
    assert rec["identity"]["source"] == "cmdline"
    assert rec["decision"]["reason"] == "trial" and rec["decision"]["trial"] is True
    assert rec["decision"]["watchdog"] is True
    # Its try was spent by the install's arm (3 -> 2), not again by the start.
    assert rec["state"]["B"]["before"] == {"priority": 2, "tries": 2, "successful": False, "armed": True}
    log = "\n".join(second.init_log())
    assert "Started by kexec from a UKI with sha256" in log
    assert "Removed BootNext (Boot1001): this kexec is the attempt it armed" in log
    assert "ABSWITCH-RUN rc=0 /usr/bin/abctl mark-good" in second.console
    assert "whose sha256 is the one kexec'd" in second.console
    assert m.slot_state("B") == {"priority": 2, "tries": 0, "successful": True, "armed": False}
    v = m.varstore()
    assert v.boot_next() is None
    assert v.boot_order()[0] == BOOT_B

    # The firmware path was proven before the commit: a cold boot comes up on B.
    cold = m.boot(marks={"b_root": r"ABSWITCH-ROOT slot=B"})
    assert cold.root["slot"] == "B"
    assert cold.record["identity"]["source"] == "loader-image-identifier"
    assert cold.record["efi"]["LoaderImageIdentifier"] == PATH_B
    assert cold.record["decision"]["reason"] == "committed"
    assert cold.record["kexec"]["uki_sha256"] is None
    assert cold.record["decision"]["gpt_writes"] == 0

    save("update", {
        "qemu_runs_install_to_commit": 1,
        "firmware_resets_install_to_commit": 0,
        "firmware_resets_install_to_commit_without_kexec": 1,
        "seconds_install_to_commit": round(run.seconds, 1),
        # The same slot B, started by kexec and by the firmware: to its root's init.
        "seconds_kexec_to_b_root": round(run.marks["b_root"] - run.marks["kexec"], 1),
        "seconds_power_on_to_b_root_by_firmware": round(cold.marks["b_root"], 1),
    })


@pytest.mark.xdist_group(PANIC_FALLBACK)
def test_kexec_redirect_saves_firmware_resets(panic_fallback):
    # Both variants of one scenario (scenarios.py PanicFallback: B's last
    # try, its kernel panics before any init), side by side in one run; the
    # firmware variant is test_protocol.py's panic test too.
    numbers = {}
    for redirect in PanicFallback.VARIANTS:
        m, runs = panic_fallback.machines[redirect], panic_fallback.runs[redirect]
        k = [kernels(r) for r in runs]
        panics = sum(b.console.count("Kernel panic -") for b in runs)
        kexecs = sum(len(x) - 1 for x in k)
        assert panics == 1, "B's kernel panics on its last try"
        assert "Slot B is now marked failed" in "\n".join(runs[-1].init_log())
        after = panic_fallback.after[redirect]
        assert after["B"]["priority"] == 0
        assert after["A"] == {"priority": 1, "tries": 0, "successful": True, "armed": False}
        assert after["boot_next"] is None
        numbers[redirect] = {"qemu_runs": len(runs), "kexecs": kexecs,
                             "seconds": round(sum(r.seconds for r in runs), 1)}
        log = "\n".join(runs[0].init_log())
        assert "Rebooting into slot B (better-slot)" in log
        if redirect == "firmware" or m.secureboot:
            # A arms B and resets; B panics; A fails B.
            assert slots_seen(runs) == ["-", "-", "A"]
            assert kexecs == 0
            if redirect == "kexec":
                # ABSWITCH_SECUREBOOT=1: lockdown refuses Debian's kernel (see
                # test_kexec_update_commit); the redirect says so and resets.
                assert "cannot start slot B by kexec: kexec_file_load refused" in log
        else:
            # A arms B and kexecs it, B panics (one run); A fails B.
            assert slots_seen(runs) == ["-", "A"]
            assert kexecs == 1
            assert "Starting slot B by kexec (ab.redirect=kexec)" in log
            assert "cannot start slot B by kexec" not in log
    numbers["firmware_resets_saved"] = numbers["firmware"]["qemu_runs"] - numbers["kexec"]["qemu_runs"]
    numbers["seconds_saved"] = round(numbers["firmware"]["seconds"] - numbers["kexec"]["seconds"], 1)
    save("panic_fallback_last_try" + ("_secureboot" if abvm.SECUREBOOT else ""), numbers)
    assert numbers["firmware_resets_saved"] == (0 if abvm.SECUREBOOT else 1)
