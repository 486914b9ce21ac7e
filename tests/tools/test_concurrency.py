"""Two operators at once (issue 12, defect 1): every state-changing command
takes the disk's lock and re-reads the state under it, so what another
operator committed meanwhile stays; installs run one at a time.

The interleaving is made deterministic, not left to timing: the first
abctl runs under tests/powercut/cutter with --pause-data, which holds it at
its first large data write (the slot's image streaming in), and lets it go
on when the test says so. Everything else is real: abctl (glibc build,
userspace hashing), a GPT disk image from mkdisk, cgpt to read the state."""

import subprocess
import time

import pytest
from test_hostile import ENV, PC, Machine, E2E

BIG = 65536  # larger than any GPT or NVRAM write: only the image stream


@pytest.fixture
def m(tmp_path):
    machine = Machine(tmp_path)
    machine.procs = []
    yield machine
    for p in machine.procs:  # a failed test must not leave an install held forever
        if p.poll() is None:
            p.kill()
            p.wait()


def paused_abctl(m, until, *args, running="A", pause=BIG):
    """abctl ARGS under the cutter, held at its first data write of pause bytes or more."""
    cmd = [PC / "cutter", "--pause-data", str(pause), "--until", until, "--", PC / "abctl", "--disk", m.disk,
           "--efivars", m.efivars, "--esp", m.esp, "--record", "/nonexistent", "--running", running,
           *map(str, args)]
    p = subprocess.Popen([str(c) for c in cmd], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    m.procs.append(p)
    marker = until.with_name(until.name + ".paused")
    for _ in range(1500):
        if marker.exists():
            return p
        assert p.poll() is None, p.communicate()
        time.sleep(0.02)
    p.kill()
    raise AssertionError("the install never reached its image stream")


def finish(p):
    out, err = p.communicate(timeout=120)
    return subprocess.CompletedProcess(p.args, p.returncode, out, err)


def test_concurrent_install_and_mark_good_keeps_commit(m):
    # A runs on its last try, B is empty (failed): the first-install layout.
    m.set_state("A", priority=2, tries=0)
    m.set_state("B", priority=0)
    go = m.dir / "go"
    install = paused_abctl(m, go, "install", E2E / "slot-b-commit", m.ukis["b-commit"])
    # The commit unit runs while the image streams in: it must not wait for
    # the download, and what it commits must survive the install's end.
    r = m.abctl("mark-good")
    assert r.returncode == 0, r.stderr
    assert m.slot("A")["successful"]
    go.touch()
    r = finish(install)
    assert r.returncode == 0, r.stderr
    a, b = m.slot("A"), m.slot("B")
    assert a["successful"] and a["priority"] > 0, f"the commit was erased: {a}"
    assert b == {"priority": 2, "tries": 2, "successful": False, "armed": True}
    assert a["priority"] < b["priority"]


def test_concurrent_installs_serialize(m):
    go = m.dir / "go"
    first = paused_abctl(m, go, "install", E2E / "slot-b-commit", m.ukis["b-commit"])
    second = subprocess.Popen([str(c) for c in (PC / "abctl", "--disk", m.disk, "--efivars", m.efivars, "--esp",
                                                 m.esp, "--record", "/nonexistent", "--running", "A", "install",
                                                 E2E / "slot-b", m.ukis["b"])],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    m.procs.append(second)
    time.sleep(3)
    assert second.poll() is None, "the second install did not wait for the first: " + second.communicate()[1]
    go.touch()
    r1, r2 = finish(first), finish(second)
    assert r1.returncode == 0, r1.stderr
    assert r2.returncode == 0, r2.stderr
    assert "Waiting for another abctl to finish an install" in r2.stderr
    # The second ran after the first, whole: B holds its image and its UKI, together.
    assert (m.esp / "EFI/abswitch/boot-b.efi").read_bytes() == m.ukis["b"].read_bytes()
    assert m.partition_bytes(4, (E2E / "slot-b.img").stat().st_size) == (E2E / "slot-b.img").read_bytes()
    assert m.partition_bytes(5, (E2E / "slot-b.verity").stat().st_size) == (E2E / "slot-b.verity").read_bytes()
    assert m.slot("B") == {"priority": 2, "tries": 2, "successful": False, "armed": True}
    assert not list((m.esp / "EFI/abswitch").glob("*.new"))


def test_repair_and_set_active_of_the_damaged_slot(tmp_path):
    # abctl repair holds the install lock while it rewrites B's blocks; B
    # stays out of service. set-active and rollback take only the state
    # lock: they must not put B into service under the repair (it is
    # damaged), and what an operator forces meanwhile is not undone by the
    # repair's end.
    from test_delta import DeltaMachine
    from test_repair import corrupt, damaged_b, has_record, record
    m = DeltaMachine(tmp_path, E2E / "slot-b", E2E / "slot-b")
    m.procs = []
    try:
        damaged_b(m)
        corrupt(m, 4, 5)
        record(m, "B", E2E / "slot-b", [5])
        out = {"priority": 0, "tries": 0, "successful": True, "armed": False}
        go = m.dir / "go"
        repair = paused_abctl(m, go, "repair", "B", pause=4096)  # held at its first block write
        for args in (("set-active", "B"), ("rollback",)):
            r = m.abctl(*args)
            assert r.returncode == 1, r.stderr
            assert "Refusing to" in r.stderr and "failed dm-verity after boot" in r.stderr, r.stderr
            assert "abctl repair B" in r.stderr and "Nothing was changed" in r.stderr, r.stderr
            assert m.slot("B") == out
        # Forced: the operator's choice stands after the repair.
        r = m.abctl("--force", "set-active", "B")
        assert r.returncode == 0, r.stderr
        forced = m.slot("B")
        assert forced["priority"] > m.slot("A")["priority"], forced
        go.touch()
        r = finish(repair)
        assert r.returncode == 0, r.stderr
        assert "another abctl changed its state during the repair" in r.stdout, r.stdout
        assert m.slot("B") == forced
        assert not has_record(m, "B")
        assert m.b_holds(E2E / "slot-b")
    finally:
        for p in m.procs:
            if p.poll() is None:
                p.kill()
                p.wait()


def test_second_install_of_the_same_image_judges_the_state_it_waited_for(m):
    # Two operators install the same image at once. The second waits for
    # the first, which leaves B on trial with that image; the second must
    # judge that state, not the one it read before waiting (B not bootable,
    # mid-install), which made it call the image one that "already failed
    # in slot B".
    go = m.dir / "go"
    # Held at its first 1 MiB write: into B, after B was marked not bootable.
    first = paused_abctl(m, go, "install", E2E / "slot-b-commit", m.ukis["b-commit"], pause=1 << 20)
    assert m.slot("B")["priority"] == 0
    second = subprocess.Popen([str(c) for c in (PC / "abctl", "--disk", m.disk, "--efivars", m.efivars, "--esp",
                                                 m.esp, "--record", "/nonexistent", "--running", "A", "install",
                                                 E2E / "slot-b-commit", m.ukis["b-commit"])],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    m.procs.append(second)
    time.sleep(2)  # it has read the state and waits for the lock
    assert second.poll() is None, second.communicate()[1]
    go.touch()
    r1, r2 = finish(first), finish(second)
    assert r1.returncode == 0, r1.stderr
    assert "Waiting for another abctl to finish an install" in r2.stderr, r2.stderr
    assert "already failed" not in r2.stderr, r2.stderr
    assert r2.returncode == 0, r2.stderr
    assert m.slot("B") == {"priority": 2, "tries": 2, "successful": False, "armed": True}
