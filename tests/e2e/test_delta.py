"""A delta install in the guest (issue 15): slot A (root-a-net) runs, slot B
holds v1 (B's "commit" image); v2 is v1 with one file changed and one added
(mkslot here, EROFS), published in a real docker-registry behind an HTTPS
front that counts what it serves (registry.HttpFront). The guest's static
abctl fetches v2's hash tree by Range, hashes the blocks it has, fetches
the rest by Range, verifies the whole slot against the root hash its UKI
pins; the next boot runs v2 from B. Two boots."""

import re
import shutil
import subprocess

import abvm
from registry import HttpFront, Registry, guest_ref
from test_registry import BOOT_A, BOOT_B, CA, PATH_A, PATH_B, ran


def make_v2(d):
    """v2: B's commit root with /etc/os-release changed and a 40 KiB file added."""
    root = d / "root-v2"
    shutil.copytree(abvm.E2E / "root-b-commit", root, symlinks=True)
    (root / "etc/os-release").write_text((root / "etc/os-release").read_text() + "DELTA_TEST=2\n")
    (root / "usr/new-in-v2").write_bytes(bytes(range(256)) * 160)
    subprocess.run([abvm.TOP / "initramfs/mkslot", "--root", root, "--output", d / "v2"], check=True,
                   capture_output=True)
    return d / "v2"


def test_delta_install_fetches_only_changed_blocks(machine, tmp_path):
    v2 = make_v2(tmp_path)
    uki = machine.uki("v2-boot-b.efi", v2.with_suffix(".roothash"), version="2")
    layout = tmp_path / "oci"
    subprocess.run([abvm.TOP / "initramfs/mkoci", "--image", v2, "--uki", uki, "--name", "abswitch delta test",
                    "--version", "2", "--tag", "v2", "--output", layout], check=True, capture_output=True)
    reg = Registry(tmp_path).start()
    reg.push(layout, "v2")
    front = HttpFront(reg)

    a = machine.uki("boot-a.efi", "A-NET")
    b = machine.uki("boot-b.efi", "B-COMMIT")
    machine.make_disk(a, b, a_image="a-net", b_image="b-commit", slot_size="32M")
    machine.add_boot_entries({BOOT_A: ("abswitch A", PATH_A), BOOT_B: ("abswitch B", PATH_B)},
                             order=[BOOT_A, BOOT_B])
    machine.net = True
    cmd = f"/usr/bin/abctl install --ca {CA} {guest_ref(front.port, 'v2')}"
    machine.fw_run = [cmd]
    machine.fw_files["ca"] = reg.ca
    try:
        boot = machine.boot()
    finally:
        front.close()
        reg.stop()
    assert boot.root["slot"] == "A"
    assert ran(boot, cmd) == 0, boot.tail(40)
    m = re.search(r"Wrote ([\d.]+) MiB into slot B by delta in [\d.]+ s: fetched ([\d.]+) MiB in (\d+) requests",
                  boot.console)
    assert m, boot.tail(40)

    # What the registry front served of the system layer: the tree and the
    # changed blocks, far below the image.
    img = v2.with_suffix(".img").stat().st_size
    tree = v2.with_suffix(".verity").stat().st_size
    system = next(p for p, _, s in front.blob_requests() if s == 206).rsplit("/", 1)[1]
    served = front.blob_bytes(system)
    assert served < (img + tree) / 10, (served, img + tree, boot.tail(20))
    assert served >= tree
    assert all(s == 206 for p, _, s in front.blob_requests() if p.endswith(system))
    assert machine.slot_state("B") == {"priority": 2, "tries": 2, "successful": False, "armed": True}

    # The next boot runs v2 from B (the init verifies it against the pin).
    machine.fw_run = []
    boot = machine.boot()
    assert boot.root["slot"] == "B", boot.tail(30)
    assert boot.record["root"]["roothash"] == abvm.roothash(v2.with_suffix(".roothash"))
    assert "ABSWITCH-RUN rc=0 /usr/bin/abctl mark-good" in boot.console, boot.tail(30)
