"""Boot scenarios several tests read. The boots are the expensive part, the
checks are not: test_secureboot.py's signed update and test_tpm.py's
measurements read the same three boots of one machine with Secure Boot on
and a TPM (as a fleet machine has both). Tests that use one carry
@pytest.mark.xdist_group(SIGNED_UPDATE), so one worker boots it once
(conftest.py's session fixture signed_update)."""

import time
import uuid

import abvm

SIGNED_UPDATE = "signed-update"


class SignedUpdate:
    """Slot A (the installer image) committed; its root installs v2 (B's image
    and its UKI, signed by make) into B with abctl; B boots on trial, its root
    commits it (abctl mark-good); B boots committed."""

    BOOT_A, BOOT_B = 0x1000, 0x1001
    NAMES = ("A-committed", "B-trial", "B-committed")

    def __init__(self, workdir):
        m = self.machine = abvm.Machine(workdir, secureboot=True, tpm=True)
        a = m.uki("boot-a.efi", "A-INSTALLER")
        b = m.uki("boot-b.efi", "B")
        m.make_disk(a, b, a_image="a-installer")
        m.add_boot_entries({self.BOOT_A: ("abswitch A", r"\EFI\abswitch\boot-a.efi"),
                            self.BOOT_B: ("abswitch B", r"\EFI\abswitch\boot-b.efi")},
                           order=[self.BOOT_A, self.BOOT_B])
        t0 = time.monotonic()
        self.boots, self.after = {}, {}
        for name in self.NAMES:
            self.boots[name] = m.boot()
            # What each boot left: the tests compare it with what the next one found.
            v = m.varstore()
            self.after[name] = {"A": m.slot_state("A"), "B": m.slot_state("B"),
                                "boot_next": v.boot_next(), "boot_order": v.boot_order()}
        self.seconds = time.monotonic() - t0




HEAL = "heal"


class Heal:
    """A committed slot rots and heals (tests/e2e/test_heal.py): slot A (the
    net root, committed) installs oci-heal (B's commit root plus /data/blob)
    from a real registry into B (through an HttpFront that counts what the
    registry serves, per blob): a delta install, since A's root carries the
    v2 layout and so most of oci-heal's blocks (test_delta.py reads that
    boot); B's trial commits; the host
    corrupts two blocks of B's /data/blob, one that A holds too (8 blocks
    of the static curl A carries) and one only B's image has; B, committed,
    reads them: the init's watcher records them and falls back to A; A runs
    abctl repair. Four boots."""

    BOOT_A, BOOT_B = 0x1000, 0x1001
    CA = "/run/abswitch-test/ca"

    def __init__(self, workdir):
        from registry import HttpFront, Registry, layout_manifest
        m = self.machine = abvm.Machine(workdir)
        self.registry = Registry(workdir / "registry").start()
        self.registry.push(abvm.E2E / "oci-heal", "v2")
        self.front = HttpFront(self.registry)
        self.system = next(l["digest"] for l in layout_manifest(abvm.E2E / "oci-heal", "v2")["layers"]
                           if l["mediaType"] == "application/vnd.abswitch.system.v1")
        a = m.uki("boot-a.efi", "A-NET")
        b = m.uki("boot-b.efi", "B")
        m.make_disk(a, b, a_image="a-net", slot_size="32M")
        m.add_boot_entries({self.BOOT_A: ("abswitch A", r"\EFI\abswitch\boot-a.efi"),
                            self.BOOT_B: ("abswitch B", r"\EFI\abswitch\boot-b.efi")},
                           order=[self.BOOT_A, self.BOOT_B])
        m.net = True
        m.fw_files["ca"] = self.registry.ca
        self.install = f"/usr/bin/abctl install --ca {self.CA} {self.registry.guest_ref('v2', port=self.front.port)}"
        self.repair = f"/usr/bin/abctl repair --ca {self.CA}"

        image = (abvm.E2E / "slot-b-heal.img").read_bytes()
        curl = (abvm.E2E / "root-a-net/usr/bin/curl").read_bytes()
        shared = image.find(curl[4096:8192])
        own = image.find(b"ABSWITCH-B-BLOB-LINE-%010d\n" % 1000)
        assert shared > 0 and shared % 4096 == 0 and image.find(curl[4096:8192], shared + 1) < 0
        assert own > 0
        self.blocks = sorted({shared // 4096, own // 4096})

        t0 = time.monotonic()
        self.boots, self.after = {}, {}
        m.fw_run = [self.install, "/usr/bin/abctl status"]
        self._boot("A-installs")
        # What the install fetched of the system layer: (Range asked, status) per request, and bytes.
        self.install_system_requests = [(r, st) for p, r, st in self.front.blob_requests()
                                        if p.endswith(f"/blobs/{self.system}")]
        self.install_system_bytes = self.front.blob_bytes(self.system)
        m.fw_run = []
        self._boot("B-trial")
        for b in self.blocks:
            m.corrupt_slot("B", offset=b * 4096 + 100)
        self._boot("B-damaged")
        m.fw_run = ["/usr/bin/abctl status", self.repair, "/usr/bin/abctl status"]
        self.sent_before_repair = self.front.bytes
        self._boot("A-repairs")
        self.repair_sent = self.front.bytes - self.sent_before_repair
        self.seconds = time.monotonic() - t0

    def _boot(self, name):
        m = self.machine
        self.boots[name] = m.boot()
        v = m.varstore()
        self.after[name] = {"A": m.slot_state("A"), "B": m.slot_state("B"), "boot_next": v.boot_next(),
                            "damage": v.get("AbswitchDamageB", uuid.UUID("b9d4c0a3-5e2f-4a1d-8c6b-3f7e2a91d054"))}

    def close(self):
        self.front.close()
        self.registry.stop()


PANIC_FALLBACK = "panic-fallback"


class PanicFallback:
    """B's kernel panics before any init (rdinit=/nonexistent) on its last
    try; A is committed. Booted until it settles twice: with the init's
    redirects through the firmware (ab.redirect=firmware) and by kexec
    (ab.redirect=kexec). test_protocol.py's test_panic_before_init_falls_back
    reads the firmware variant, test_kexec.py's
    test_kexec_redirect_saves_firmware_resets both."""

    VARIANTS = ("firmware", "kexec")
    BOOT_A, BOOT_B = 0x1000, 0x1001

    def __init__(self, workdir):
        from test_protocol import boot_until_settled
        self.runs, self.machines, self.after = {}, {}, {}
        for redirect in self.VARIANTS:
            m = self.machines[redirect] = abvm.Machine(workdir / redirect)
            self.setup(m, redirect)
            self.runs[redirect] = boot_until_settled(m, limit=5)
            self.after[redirect] = {"A": m.slot_state("A"), "B": m.slot_state("B"),
                                    "boot_next": m.varstore().boot_next()}

    def setup(self, m, redirect):
        """B was installed with two tries and its first attempt has panicked
        already: one try left, its armed bit still set, BootNext consumed by
        the firmware. That first attempt is the same in both variants (the
        firmware starts B by BootNext), so the scenario starts after it.
        Both UKIs carry ab.redirect=REDIRECT."""
        a = m.uki("boot-a.efi", "A", cmdline=f"ab.redirect={redirect}")
        b = m.uki("boot-b.efi", "B", cmdline=f"ab.redirect={redirect} rdinit=/nonexistent")
        m.make_disk(a, b)
        m.set_slot_state("A", priority=1, successful=True)
        m.set_slot_state("B", priority=2, tries=1, armed=True)
        m.add_boot_entries({self.BOOT_A: ("abswitch A", r"\EFI\abswitch\boot-a.efi"),
                            self.BOOT_B: ("abswitch B", r"\EFI\abswitch\boot-b.efi")},
                           order=[self.BOOT_A, self.BOOT_B])
