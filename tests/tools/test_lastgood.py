"""The last known-good slot (issue 12, defect 7; the Fedora CoreOS rollback
goal): while the running slot is still on trial, the other slot may be the
only committed one. Installing over it, or failing it, would leave nothing
known to boot if the trial fails: refused unless --force, saying why, and
nothing changes. Real abctl (glibc build), real GPT, stand-in efivarfs."""

import pytest
from test_hostile import E2E, Machine


@pytest.fixture
def m(tmp_path):
    machine = Machine(tmp_path)
    # B was just installed and runs on trial; A is the only committed slot.
    machine.set_state("B", priority=2, tries=1)
    machine.set_state("A", priority=1, successful=True)
    return machine


@pytest.mark.parametrize("args", [
    ("install", E2E / "slot-a", "UKI-A"),
    ("install", "--slot", "A", E2E / "slot-a", "UKI-A"),
    ("mark-bad", "A"),
])
def test_install_refuses_last_good_slot(m, args):
    args = [m.ukis["a"] if a == "UKI-A" else a for a in args]
    before = m.fingerprint()
    r = m.abctl(*args, running="B")
    assert r.returncode == 1, r.stdout
    assert "slot A is the only committed slot and the running slot B is still on trial" in r.stderr, r.stderr
    assert "--force" in r.stderr
    assert "Nothing was changed" in r.stderr
    assert m.fingerprint() == before
    assert m.slot("A") == {"priority": 1, "tries": 0, "successful": True, "armed": False}


def test_last_good_slot_with_force_or_after_commit(m):
    # --force: the operator means it.
    r = m.abctl("install", "--force", E2E / "slot-a", m.ukis["a"], running="B")
    assert r.returncode == 0, r.stderr
    assert m.slot("A") == {"priority": 2, "tries": 2, "successful": False, "armed": True}


def test_last_good_rule_ends_with_the_commit(m):
    assert m.abctl("mark-good", running="B").returncode == 0
    r = m.abctl("install", E2E / "slot-a", m.ukis["a"], running="B")
    assert r.returncode == 0, r.stderr
