"""abctl repair (abctl/repair.c) on the host: glibc abctl, the disk image's
partitions as loop devices, a stand-in efivarfs directory holding the damage
record the init's watcher writes (efi/damage.h), and for the registry part
a real docker-registry behind tests/e2e/registry.py's HttpFront, which
counts what it serves. Refusals change nothing; a repair rewrites only the
blocks that fail the slot's pinned tree, each checked before it is written,
and returns the slot to service. The same through real firmware:
tests/e2e/test_heal.py."""

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_delta import DeltaMachine, install_through
from test_hostile import E2E, ENV, PC
from test_install import partition_bytes
from test_oci import make_layout

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))
from registry import HttpFront, Registry  # noqa: E402

GUID = "b9d4c0a3-5e2f-4a1d-8c6b-3f7e2a91d054"
B = 4096
PART = {"A": (2, 3), "B": (4, 5)}


def roothash(image):
    return Path(f"{image}.roothash").read_text().strip()


def record(m, slot, image, blocks, kind="data"):
    text = f"abswitch-damage 1\nslot={slot}\nroothash={roothash(image)}\ntime=1764650000\n"
    text += "".join(f"{kind}={b}\n" for b in blocks)
    (m.efivars / f"AbswitchDamage{slot}-{GUID}").write_bytes(b"\x07\0\0\0" + text.encode())


def has_record(m, slot):
    return (m.efivars / f"AbswitchDamage{slot}-{GUID}").exists()


def part_offset(m, partno):
    info = subprocess.run(["sgdisk", "-i", str(partno), m.disk], capture_output=True, text=True, check=True).stdout
    return int(info.split("First sector: ")[1].split()[0]) * 512


def corrupt(m, partno, block):
    with open(m.disk, "r+b") as f:
        f.seek(part_offset(m, partno) + block * B + 100)
        data = f.read(16)
        f.seek(part_offset(m, partno) + block * B + 100)
        f.write(bytes(x ^ 0xFF for x in data))


def fingerprint(m):
    h = hashlib.sha256(m.disk.read_bytes())
    for p in sorted(m.efivars.iterdir()):
        h.update(p.name.encode() + p.read_bytes())
    return h.hexdigest()


def damaged_b(m):
    """B committed, then failed by the watcher (SLOT_OP_DAMAGED): priority 0, successful."""
    m.set_state("A", 2, successful=True)
    m.set_state("B", 0, successful=True)
    for part in (2, 4):
        subprocess.run(["sgdisk", "-A", f"{part}:clear:57", m.disk], check=True, capture_output=True)


def unique_block(image, other):
    """A data block of image that other does not hold anywhere."""
    a = Path(f"{image}.img").read_bytes()
    o = Path(f"{other}.img").read_bytes()
    have = {o[i:i + B] for i in range(0, len(o), B)}
    for i in range(1, len(a) // B):
        blk = a[i * B:(i + 1) * B]
        if blk not in have and blk.count(0) < B // 2:
            return i
    raise AssertionError("no block of its own")


def refused_unchanged(m, r, says):
    assert r.returncode == 1, r.stderr
    assert says in r.stderr, r.stderr
    assert "Nothing was changed" in r.stderr, r.stderr


def test_repair_refuses_running_slot(tmp_path):
    m = DeltaMachine(tmp_path, E2E / "slot-a", E2E / "slot-b")
    record(m, "A", E2E / "slot-a", [3])
    before = fingerprint(m)
    r = m.abctl("repair", "A")
    refused_unchanged(m, r, "Refusing to repair slot A: it is the running slot")
    assert "Boot slot B" in r.stderr and "'abctl repair A' there" in r.stderr, r.stderr
    # The default with only the running slot damaged: the same refusal.
    r = m.abctl("repair")
    refused_unchanged(m, r, "it is the running slot")
    assert fingerprint(m) == before


def test_repair_refuses_nothing_recorded(tmp_path):
    m = DeltaMachine(tmp_path, E2E / "slot-a", E2E / "slot-b")
    damaged_b(m)
    before = fingerprint(m)
    r = m.abctl("repair", "B")
    refused_unchanged(m, r, "Slot B has no damage record")
    r = m.abctl("repair")
    refused_unchanged(m, r, "Slot B has no damage record")
    assert fingerprint(m) == before


def test_repair_from_the_other_slot(tmp_path):
    # Both slots hold the same image (B's UKI pins it): B's corrupted block
    # comes back from A, B verifies, returns to service as the fallback, and
    # its record is gone. A's partitions are not written.
    m = DeltaMachine(tmp_path, E2E / "slot-b", E2E / "slot-b")
    damaged_b(m)
    want = partition_bytes(m.disk, 4)
    a_before = m.a_partitions()
    corrupt(m, 4, 5)
    assert partition_bytes(m.disk, 4) != want
    record(m, "B", E2E / "slot-b", [5])
    r = m.abctl("status")
    assert "DAMAGED: 1 block(s) failed dm-verity after boot at 2025-12-02T04:33:20Z: data 5" in r.stdout, r.stdout
    r = m.abctl("repair")
    assert r.returncode == 0, r.stderr
    assert "Rewrote 1 block(s) of slot B: 1 from slot A, 0 from the registry" in r.stdout, r.stdout
    assert "back in service" in r.stdout
    assert partition_bytes(m.disk, 4) == want
    assert m.a_partitions() == a_before
    assert m.slot("B") == {"priority": 1, "tries": 0, "successful": True, "armed": False}
    assert m.slot("A")["priority"] == 2
    assert not has_record(m, "B")
    assert "DAMAGED" not in m.abctl("status").stdout


def test_repair_tree_mismatch(tmp_path):
    # B's hash tree itself is corrupt (a level-0 block), A holds another
    # image and B has no origin: nothing to take a good tree from. Refused,
    # nothing written, B stays out of service.
    m = DeltaMachine(tmp_path, E2E / "slot-a", E2E / "slot-b")
    damaged_b(m)
    corrupt(m, 5, 1)
    record(m, "B", E2E / "slot-b", [1], kind="hash")
    before = fingerprint(m)
    r = m.abctl("repair", "B")
    refused_unchanged(m, r, "Slot B's hash tree does not verify against the root hash its UKI pins")
    assert fingerprint(m) == before


@pytest.fixture
def registry(tmp_path):
    reg = Registry(tmp_path / "reg").start()
    yield reg
    reg.stop()


@pytest.fixture
def front(registry):
    """An HTTP front of the registry that counts what it serves."""
    f = HttpFront(registry)
    yield f
    f.close()


def damaged_from_registry(tmp_path, registry, front):
    """B installed from the registry through front (its origin records the
    reference), committed, then damaged: a block no local slot holds is
    corrupted and recorded. Returns the machine, the layout's blobs, that
    block and B's data partition as it was before the damage."""
    image = E2E / "slot-b-commit"
    m = DeltaMachine(tmp_path, E2E / "slot-a", E2E / "slot-b")
    blobs = make_layout(tmp_path / "oci", m.ukis["b-commit"], image=image)
    registry.push(tmp_path / "oci", "v2")
    r = install_through(m, registry, front, "--delta", "no")
    assert r.returncode == 0, r.stderr
    damaged_b(m)
    good = partition_bytes(m.disk, 4)
    blk = unique_block(image, E2E / "slot-a")
    corrupt(m, 4, blk)
    record(m, "B", image, [blk])
    return m, blobs, blk, good


def repair_from(m, registry, *args):
    return subprocess.run([PC / "abctl", "--disk", m.disk, "--efivars", m.efivars, "--esp", m.esp, "--record",
                           "/nonexistent", "--running", "A", "--ca", registry.ca, "repair", *args],
                          capture_output=True, text=True, env=ENV, timeout=300)


def test_repair_from_the_registry(tmp_path, registry, front):
    # B installed from a real registry (its origin records the reference),
    # committed, then damaged: a block no local slot holds is fetched by
    # Range, and only that block (plus the manifest and config).
    m, blobs, blk, want = damaged_from_registry(tmp_path, registry, front)
    front.requests.clear()
    front.bytes = 0
    r = repair_from(m, registry)
    assert r.returncode == 0, r.stderr
    assert "1 from the registry (4096 bytes in 1 request(s))" in r.stdout, r.stdout
    assert partition_bytes(m.disk, 4) == want
    assert m.slot("B") == {"priority": 1, "tries": 0, "successful": True, "armed": False}
    system = [x for x in front.blob_requests() if x[0].endswith(blobs["system"]["digest"])]
    assert [(rng, st) for _, rng, st in system] == [(f"bytes={blk * B}-{blk * B + B - 1}", 206)], system
    print(f"repair of one block: {front.bytes} bytes served in {len(front.requests)} requests")
    assert front.bytes < 64 * 1024, front.bytes


def test_repair_registry_block_that_does_not_verify(tmp_path, registry, front):
    # The registry's copy of the block is tampered with: fetched, checked
    # against the tree, not written; the slot stays out of service with its
    # record, A untouched.
    m, blobs, blk, _ = damaged_from_registry(tmp_path, registry, front)
    stored = registry.blob_file(blobs["system"]["digest"])
    data = bytearray(stored.read_bytes())
    data[blk * B + 7] ^= 0x01
    stored.write_bytes(bytes(data))
    before = partition_bytes(m.disk, 4)
    a_before = m.a_partitions()
    r = repair_from(m, registry, "B")
    assert r.returncode == 1, r.stderr
    assert f"Block {blk} from the registry does not match slot B's hash tree: not written" in r.stderr, r.stderr
    assert "stays out of service" in r.stderr
    assert partition_bytes(m.disk, 4) == before
    assert m.a_partitions() == a_before
    assert m.slot("B") == {"priority": 0, "tries": 0, "successful": True, "armed": False}
    assert has_record(m, "B")


def test_repair_stale_record(tmp_path):
    # A record for another image than the one B's UKI pins now (B was
    # installed over since): status does not show it, repair deletes it and
    # writes nothing else.
    m = DeltaMachine(tmp_path, E2E / "slot-a", E2E / "slot-b")
    damaged_b(m)
    record(m, "B", E2E / "slot-b-commit", [3])
    assert "DAMAGED" not in m.abctl("status").stdout
    disk = hashlib.sha256(m.disk.read_bytes()).hexdigest()
    r = m.abctl("repair", "B")
    assert r.returncode == 1 and "a new image was installed since; deleting the stale record" in r.stderr, r.stderr
    assert not has_record(m, "B")
    assert hashlib.sha256(m.disk.read_bytes()).hexdigest() == disk


def test_repair_registry_tree_superblock_not_trusted(tmp_path, registry):
    # B's hash tree is corrupt (a level-0 block), A holds another image, so
    # the tree comes from B's origin. The registry lies about the tree's
    # superblock (its salt), which no hash covers: the levels still verify
    # with B's own salt. Refused before anything is written; B's hash
    # partition, superblock included, is as it was.
    image = E2E / "slot-b-commit"
    m = DeltaMachine(tmp_path, E2E / "slot-a", E2E / "slot-b")
    blobs = make_layout(tmp_path / "oci", m.ukis["b-commit"], image=image)
    registry.push(tmp_path / "oci", "v2")
    front = HttpFront(registry)
    try:
        r = install_through(m, registry, front, "--delta", "no")
        assert r.returncode == 0, r.stderr
        damaged_b(m)
        corrupt(m, 5, 1)
        record(m, "B", image, [1], kind="hash")
        stored = registry.blob_file(blobs["system"]["digest"])
        data = bytearray(stored.read_bytes())
        data_size = Path(f"{image}.img").stat().st_size
        data[data_size + 88] ^= 0x01  # the first byte of the salt
        stored.write_bytes(bytes(data))
        before = fingerprint(m)
        r = subprocess.run([PC / "abctl", "--disk", m.disk, "--efivars", m.efivars, "--esp", m.esp, "--record",
                            "/nonexistent", "--running", "A", "--ca", registry.ca, "repair", "B"],
                           capture_output=True, text=True, env=ENV, timeout=300)
    finally:
        front.close()
    refused_unchanged(m, r, "superblock")
    assert fingerprint(m) == before
    assert m.slot("B") == {"priority": 0, "tries": 0, "successful": True, "armed": False}


def test_install_over_damage_deletes_record(tmp_path):
    # The repair's own advice when it cannot: install the image again. The
    # same image (the record's root hash is the one the new UKI pins): the
    # slot is written whole and verified, so the record of its old blocks
    # must go; else status calls the fresh slot DAMAGED and, once it runs
    # committed, nothing could ever delete the record (repair refuses the
    # running slot).
    m = DeltaMachine(tmp_path, E2E / "slot-a", E2E / "slot-b")
    damaged_b(m)
    corrupt(m, 4, 5)
    record(m, "B", E2E / "slot-b", [5])
    r = m.abctl("install", E2E / "slot-b", m.ukis["b"])
    assert r.returncode == 0, r.stderr
    assert m.b_holds(E2E / "slot-b")
    assert not has_record(m, "B")
    assert "DAMAGED" not in m.abctl("status").stdout


def test_repair_cut_anywhere_then_rerun(tmp_path):
    # README: "a power cut or a failure in the middle leaves it out of
    # service with its record: run abctl repair again". The repair (a tree
    # block and two data blocks from A) runs under tests/powercut/cutter,
    # cut before each kind of durable call it makes: its first block write,
    # a flush, the state write, the record's deletion. After each cut B is
    # out of service with its record, or back in service verifying (only
    # the record's deletion left); the rerun always ends it repaired, in
    # service, without the record. A's partitions are never written.
    m = DeltaMachine(tmp_path, E2E / "slot-b", E2E / "slot-b")
    damaged_b(m)
    want = partition_bytes(m.disk, 4), partition_bytes(m.disk, 5)
    a_before = m.a_partitions()
    corrupt(m, 4, 5)
    corrupt(m, 4, 9)
    corrupt(m, 5, 1)
    record(m, "B", E2E / "slot-b", [5, 9])
    base = tmp_path / "base"
    shutil.copytree(m.dir, base, ignore=shutil.ignore_patterns("base"))
    args = [PC / "abctl", "--disk", m.disk, "--efivars", m.efivars, "--esp", m.esp, "--record", "/nonexistent",
            "--running", "A", "repair", "B"]
    log = tmp_path / "calls.log"
    r = subprocess.run([PC / "cutter", "--atomic", m.efivars, "--log", log, "--", *args], capture_output=True,
                       text=True, env=ENV)
    assert r.returncode == 0, r.stderr
    calls = [line.split() for line in log.read_text().splitlines()]
    first = {}
    for k, call, path, *_ in calls:
        kind = "record" if "AbswitchDamage" in path else "block" if path.startswith("/dev/loop") and call == "pwrite" \
            else "flush" if call == "fdatasync" and path.startswith("/dev/loop") else "state" if path == str(m.disk) \
            else None
        if kind and kind not in first:
            first[kind] = int(k)
    assert sorted(first) == ["block", "flush", "record", "state"], calls
    for kind, k in sorted(first.items(), key=lambda x: x[1]):
        shutil.rmtree(m.efivars)
        shutil.copytree(base / "efivars", m.efivars)
        shutil.copy(base / "disk.img", m.disk)
        r = subprocess.run([PC / "cutter", "--atomic", m.efivars, "--cut", str(k), "--", *args], capture_output=True,
                           text=True, env=ENV)
        assert f"cut={k}" in r.stderr, r.stderr
        b = m.slot("B")
        if kind == "record":
            assert b["priority"] > 0 and has_record(m, "B"), (kind, b)
            assert (partition_bytes(m.disk, 4), partition_bytes(m.disk, 5)) == want
        else:
            assert b["priority"] == 0 and has_record(m, "B"), (kind, b)
        r = subprocess.run(args, capture_output=True, text=True, env=ENV)
        assert r.returncode == 0, (kind, r.stderr)
        assert (partition_bytes(m.disk, 4), partition_bytes(m.disk, 5)) == want, kind
        assert m.slot("B") == {"priority": 1, "tries": 0, "successful": True, "armed": False}, kind
        assert not has_record(m, "B"), kind
        assert m.a_partitions() == a_before, kind


def shared_block(image, other):
    """A data block of image, not mostly zeros, that other holds at the same place."""
    a = Path(f"{image}.img").read_bytes()
    o = Path(f"{other}.img").read_bytes()
    for i in range(1, min(len(a), len(o)) // B):
        blk = a[i * B:(i + 1) * B]
        if blk == o[i * B:(i + 1) * B] and blk.count(0) < B // 2:
            return i
    raise AssertionError("no shared block")


def test_repair_refused_before_any_write(tmp_path):
    # B (its origin: files, nothing to fetch from) has a block A holds too and one
    # only its image has: the repair cannot finish, and says so before it
    # writes anything; it used to rewrite the block from A first, then stop.
    image = E2E / "slot-b-commit"
    m = DeltaMachine(tmp_path, E2E / "slot-a", E2E / "slot-b")
    r = m.abctl("install", image, m.ukis["b-commit"])
    assert r.returncode == 0, r.stderr
    damaged_b(m)
    mine, shared = unique_block(image, E2E / "slot-a"), shared_block(image, E2E / "slot-a")
    corrupt(m, 4, shared)
    corrupt(m, 4, mine)
    record(m, "B", image, [shared, mine])
    before = fingerprint(m)
    r = m.abctl("repair", "B")
    refused_unchanged(m, r, "Slot B has an origin of files, not a registry")
    assert fingerprint(m) == before
    assert m.slot("B") == {"priority": 0, "tries": 0, "successful": True, "armed": False}
