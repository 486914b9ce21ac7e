"""abctl install from an OCI registry and from an OCI image layout, in the
guest: a real registry (Debian's docker-registry, TLS with a CA made for
the test, images pushed with skopeo) on the host's loopback, reached over
QEMU's user network; the image is build/e2e/oci-v2 (initramfs/mkoci of B's
"commit" image and its UKI). Slot A's test root (root-a-net) brings the
network up and runs what each test passes it with -fw_cfg."""

import json
import re

import pytest

import abvm
from registry import GUEST_HOST, Proxy, Registry, TokenIssuer, free_port, guest_ref, layout_index_digest, layout_manifest

BOOT_A, BOOT_B = 0x1000, 0x1001
PATH_A = r"\EFI\abswitch\boot-a.efi"
PATH_B = r"\EFI\abswitch\boot-b.efi"
LAYOUT = abvm.E2E / "oci-v2"
CA = "/run/abswitch-test/ca"
BEFORE = {"A": {"priority": 2, "tries": 0, "successful": True, "armed": False},
          "B": {"priority": 1, "tries": 0, "successful": True, "armed": False}}
NOT_BOOTABLE = {"priority": 0, "tries": 0, "successful": False, "armed": False}


@pytest.fixture
def registry(tmp_path):
    r = Registry(tmp_path).start()
    r.push(LAYOUT, "v2")
    yield r
    r.stop()


def net_machine(machine, *commands, ca=None):
    a = machine.uki("boot-a.efi", "A-NET")
    b = machine.uki("boot-b.efi", "B")
    machine.make_disk(a, b, a_image="a-net", slot_size="32M")
    machine.add_boot_entries({BOOT_A: ("abswitch A", PATH_A), BOOT_B: ("abswitch B", PATH_B)},
                             order=[BOOT_A, BOOT_B])
    machine.net = True
    machine.fw_run = list(commands) + ["/usr/bin/abctl status"]
    if ca:
        machine.fw_files["ca"] = ca
    return machine


def ran(boot, command):
    m = re.search(r"^ABSWITCH-RUN rc=(\d+) " + re.escape(command) + r"\r?$", boot.console, re.M)
    assert m, f"{command} did not run:\n{boot.tail(40)}"
    return int(m.group(1))


def unchanged(machine):
    assert machine.slot_state("A") == BEFORE["A"]
    assert machine.slot_state("B") == BEFORE["B"]
    assert machine.varstore().boot_next() is None


def armed(machine):
    """After an install into B: B armed, its first attempt set up."""
    assert machine.slot_state("B") == {"priority": 2, "tries": 2, "successful": False, "armed": True}
    assert machine.slot_state("A") == {"priority": 1, "tries": 0, "successful": True, "armed": False}
    assert machine.varstore().boot_next() == BOOT_B


def test_install_from_registry(machine, registry):
    # Through a proxy that cuts the connection once, 4 MB into the
    # transfer (inside the UKI's blob): abctl retries and resumes.
    proxy = Proxy(registry.port, cut_after=4 << 20)
    cmd = f"/usr/bin/abctl install --ca {CA} {registry.guest_ref('v2', port=proxy.port)}"
    net_machine(machine, cmd, ca=registry.ca)
    boot = machine.boot()
    proxy.close()
    assert boot.root["slot"] == "A"
    assert ran(boot, cmd) == 0, boot.tail(40)
    assert proxy.cuts == 1
    assert "(resuming)" in boot.console, boot.tail(40)
    assert re.search(r"Wrote [\d.]+ MiB into slot B", boot.console)
    # Where B's image came from, next to its UKI (abctl/origin.h): what
    # abctl repair and abctl update read.
    origin = json.loads(machine.esp_file("/EFI/abswitch/boot-b.origin"))
    assert origin["kind"] == "registry"
    assert origin["reference"] == registry.guest_ref("v2", port=proxy.port)
    assert origin["digest"] == layout_index_digest(LAYOUT, "v2")
    assert origin["roothash"] == abvm.roothash("B-COMMIT")
    # B's trial boot after a registry install, and its commit: the heal
    # scenario's (test_delta.py, test_heal.py); the bytes on the disk were
    # verified by abctl against the pinned root hash either way.
    armed(machine)


def test_install_from_registry_with_token(machine, tmp_path):
    # The registry behind its own token authentication (auth: token:),
    # the token service in the test: the guest's abctl (static, libcurl
    # over mbedtls) is sent for an anonymous pull token, gets it and
    # installs with it. (The whole flow on the
    # host, and hostile token services: tests/tools/test_oci.py.)
    reg = Registry(tmp_path).start()
    reg.push(LAYOUT, "v2")
    reg.stop()
    issuer = TokenIssuer(tmp_path, reg.dir / "tls", host=GUEST_HOST)
    reg.start(issuer=issuer)
    cmd = f"/usr/bin/abctl install --ca {CA} {reg.guest_ref('v2')}"
    net_machine(machine, cmd, ca=reg.ca)
    try:
        boot = machine.boot()
    finally:
        reg.stop()
        issuer.close()
    assert ran(boot, cmd) == 0, boot.tail(40)
    assert f"Got a token for repository:abswitch/os:pull from {issuer.realm}" in boot.console, boot.tail(40)
    assert len(issuer.requests) == 1
    # B's trial and commit after a registry install: test_install_from_registry
    # boots it; the token changes nothing on the disk, so no boot here.
    armed(machine)


def test_install_from_layout(machine):
    cmd = "/usr/bin/abctl install oci:/images/oci:v2"
    net_machine(machine, cmd)
    boot = machine.boot()
    assert ran(boot, cmd) == 0, boot.tail(40)
    # The same image as test_install_from_registry's, which boots it in B.
    armed(machine)
    assert machine.esp_file("/EFI/abswitch/boot-b.efi") == (abvm.E2E / "v2-boot-b.efi").read_bytes()


def test_tampered_blob_rejected(machine, registry):
    # One byte of the system layer changed in the registry's storage: the
    # registry serves it as it is; abctl must notice.
    system = layout_manifest(LAYOUT, "v2")["layers"][1]
    assert system["mediaType"] == "application/vnd.abswitch.system.v1"
    blob = registry.blob_file(system["digest"])
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0x01
    blob.write_bytes(bytes(data))

    # By digest this time: the manifest is fetched by its digest and checked.
    # A whole download (--delta no): a delta names the block instead
    # (tests/tools/test_delta.py test_delta_tampered_block_named).
    digest = layout_index_digest(LAYOUT, "v2")
    cmd = f"/usr/bin/abctl install --delta no --ca {CA} {guest_ref(registry.port, digest=digest)}"
    net_machine(machine, cmd, ca=registry.ca)
    boot = machine.boot()
    assert ran(boot, cmd) == 1
    assert f"abctl: Image {digest}:" in boot.console, boot.tail(30)
    assert f"Blob {system['digest']} does not match its digest" in boot.console, boot.tail(30)
    # Streamed into B, which was marked not bootable first; nothing armed,
    # A untouched.
    assert machine.slot_state("B") == NOT_BOOTABLE
    assert machine.slot_state("A") == BEFORE["A"]
    assert machine.varstore().boot_next() is None


def test_registry_down_retries_then_fails(machine):
    cmd = f"/usr/bin/abctl install --timeout 15 {guest_ref(free_port(), 'v2')}"
    net_machine(machine, cmd)
    boot = machine.boot()
    assert ran(boot, cmd) == 1
    retries = re.findall(r"registry.abswitch.test:\d+: .*; retrying in", boot.console)
    assert len(retries) >= 3, boot.tail(30)
    assert re.search(r"Giving up on [\w.:]+ after \d+ attempts in 1[5-9] s", boot.console), boot.tail(30)
    assert "Nothing was changed" in boot.console
    unchanged(machine)


def test_unknown_tag_fails_fast(machine, registry):
    cmd = f"/usr/bin/abctl install --ca {CA} {registry.guest_ref('v9')}"
    net_machine(machine, cmd, ca=registry.ca)
    boot = machine.boot()
    assert ran(boot, cmd) == 1
    assert "has no image v9 (HTTP 404" in boot.console, boot.tail(30)
    assert "retrying" not in boot.console       # a 404 is not worth a retry
    unchanged(machine)


def test_interrupted_download_leaves_slot_unbootable(machine, registry):
    # The proxy stops sending 256 KiB into the system layer (after the
    # manifest, the config and the whole UKI), and the power goes.
    m = layout_manifest(LAYOUT, "v2")
    before_system = m["config"]["size"] + m["layers"][0]["size"] + 64 * 1024
    # A whole download (--delta no): a delta would fetch less than 256 KiB
    # of it, most of B's image being in A already.
    proxy = Proxy(registry.port, stall_after=before_system + 256 * 1024)
    cmd = f"/usr/bin/abctl install --delta no --ca {CA} {registry.guest_ref('v2', port=proxy.port)}"
    net_machine(machine, cmd, ca=registry.ca)
    boot = machine.boot(until=proxy.stalled.is_set)
    proxy.close()
    assert boot.cut, boot.tail(30)
    assert re.search(r"abctl: Image sha256:", boot.console), boot.tail(30)
    assert machine.slot_state("B") == NOT_BOOTABLE
    assert machine.slot_state("A") == BEFORE["A"]
    assert machine.varstore().boot_next() is None
    # The machine comes back on A, which nothing touched.
    machine.fw_run = []
    boot = machine.boot()
    assert boot.root["slot"] == "A"
    assert boot.record["root"]["roothash"] == abvm.roothash("A-NET")
