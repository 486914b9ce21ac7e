"""No silent downgrade (issue 14 part 4): abctl install refuses an image
older than the last committed slot's, before writing anything, unless
--allow-downgrade. An image's version is IMAGE_VERSION= (else VERSION_ID=)
in its UKI's .osrel (mkuki --version), or an OCI config's "version"; the
committed slot's is read from its UKI on the ESP. Versions compare as
systemd's strverscmp_improved (common/version.c).

Real parts: build/powercut/abctl (glibc, Debian's libcryptsetup), a GPT
disk image from initramfs/mkdisk, UKIs from initramfs/mkuki, OCI layouts;
efivarfs is a stand-in directory (no firmware on the host)."""

import shutil

import pytest
from test_hostile import E2E, Machine
from test_install import installed
from test_oci import make_layout


@pytest.fixture
def m(tmp_path):
    machine = Machine(tmp_path)
    # A is the committed slot (mkdisk --active a, its first boot).
    assert machine.slot("A")["successful"]
    return machine


def commit_a_at(m, version):
    """Slot A's UKI on the ESP, as if version had been installed and committed."""
    uki = m.uki(f"a-{version}", f"@{E2E}/slot-a.roothash", version=version)
    shutil.copy(uki, m.esp / "EFI/abswitch/boot-a.efi")


def update(m, version):
    """The update (B's next image, slot-b-commit) with its UKI at version (None: no version)."""
    return m.uki(f"b-commit-{version}", f"@{E2E}/slot-b-commit.roothash", version=version)


def test_install_refuses_downgrade(m):
    commit_a_at(m, "2.10")
    before = m.fingerprint()
    r = m.abctl("install", E2E / "slot-b-commit", update(m, "2.9"))
    assert r.returncode == 1, r.stdout + r.stderr
    # Both versions and the way out, in one message; 2.9 < 2.10 (not as text).
    assert "is version 2.9, older than version 2.10 of slot A, the last committed: refusing a downgrade" in r.stderr, \
        r.stderr
    assert "--allow-downgrade" in r.stderr
    assert "Nothing was changed" in r.stderr
    # Disk (both GPT copies, every partition), efivars and ESP: byte for byte.
    assert m.fingerprint() == before


def test_allow_downgrade_installs_it(m):
    commit_a_at(m, "3")
    uki = update(m, "2")
    r = m.abctl("install", "--allow-downgrade", E2E / "slot-b-commit", uki)
    installed(m, r)
    assert "although slot A, the last committed, has version 3 (--allow-downgrade)" in r.stderr, r.stderr
    assert (m.esp / "EFI/abswitch/boot-b.efi").read_bytes() == uki.read_bytes()


@pytest.mark.parametrize("committed,new", [
    ("1", "2"),              # the fleet's v1 -> v2
    ("1.9", "1.10"),         # numbers, not text
    ("2~rc1", "2"),          # a pre-release, then the release
    ("2", "2"),              # the same version: a re-install
    (None, "1"),             # the committed slot has no version: nothing to be older than
    (None, None),
])
def test_newer_or_same_version_installs(m, committed, new):
    if committed:
        commit_a_at(m, committed)
    else:
        shutil.copy(m.uki("a-none", f"@{E2E}/slot-a.roothash"), m.esp / "EFI/abswitch/boot-a.efi")
    installed(m, m.abctl("install", E2E / "slot-b-commit", update(m, new)))


def test_no_version_refused_when_committed_has_one(m):
    # abctl cannot tell that an image without a version is not older.
    commit_a_at(m, "1")
    before = m.fingerprint()
    r = m.abctl("install", E2E / "slot-b-commit", update(m, None))
    assert r.returncode == 1, r.stdout + r.stderr
    assert "has no version" in r.stderr and "slot A, the last committed, has version 1" in r.stderr, r.stderr
    assert "--allow-downgrade" in r.stderr and "Nothing was changed" in r.stderr
    assert m.fingerprint() == before
    installed(m, m.abctl("install", "--allow-downgrade", E2E / "slot-b-commit", update(m, None)))


def test_oci_install_refuses_downgrade(m, tmp_path):
    # The OCI source: the config's version, checked before anything is fetched or written.
    commit_a_at(m, "5")
    make_layout(tmp_path / "old", update(m, "4"), version="4")
    before = m.fingerprint()
    r = m.abctl("install", f"oci:{tmp_path}/old:v2")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "is version 4, older than version 5 of slot A, the last committed" in r.stderr, r.stderr
    assert "--allow-downgrade" in r.stderr and "Nothing was changed" in r.stderr
    assert m.fingerprint() == before
    installed(m, m.abctl("install", "--allow-downgrade", f"oci:{tmp_path}/old:v2"))


def test_oci_install_newer_goes_through(m, tmp_path):
    commit_a_at(m, "5")
    make_layout(tmp_path / "new", update(m, "5.1"), version="5.1")
    installed(m, m.abctl("install", f"oci:{tmp_path}/new:v2"))


def test_oci_config_version_must_be_the_ukis(m, tmp_path):
    # The config claims 9, the UKI it carries says 1: the downgrade check
    # would have passed on a version the slot does not have. Refused before
    # the ESP is touched (the old code installed it).
    commit_a_at(m, "5")
    make_layout(tmp_path / "liar", update(m, "1"), version="9")
    before = m.fingerprint()
    r = m.abctl("install", f"oci:{tmp_path}/liar:v2")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "says version 1, the image says version 9: they do not belong together" in r.stderr, r.stderr
    assert "Nothing was changed" in r.stderr
    assert m.fingerprint() == before


def test_reference_is_the_committed_slot_not_the_running_one(m):
    # B committed at a newer version and preferred (after an update and its
    # mark-good), the machine back on A: B's version is the floor.
    commit_a_at(m, "1")
    shutil.copy(m.uki("b-7", f"@{E2E}/slot-b.roothash", version="7"), m.esp / "EFI/abswitch/boot-b.efi")
    m.set_state("B", priority=3, successful=True)
    before = m.fingerprint()
    r = m.abctl("install", "--slot", "B", "--force", E2E / "slot-b-commit", update(m, "6"))
    assert r.returncode == 1, r.stdout + r.stderr
    assert "is version 6, older than version 7 of slot B, the last committed" in r.stderr, r.stderr
    assert m.fingerprint() == before


def test_refusal_writes_nothing_on_the_esp(m):
    # Not even the clean-up of an interrupted install's temporary: a refused
    # downgrade changes nothing at all (the next accepted install removes it).
    commit_a_at(m, "2")
    (m.esp / "EFI/abswitch/boot-b.efi.new").write_bytes(b"left by a power cut")
    before = m.fingerprint()
    r = m.abctl("install", E2E / "slot-b-commit", update(m, "1"))
    assert r.returncode == 1 and "refusing a downgrade" in r.stderr, r.stderr
    assert m.fingerprint() == before
