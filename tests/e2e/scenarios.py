"""Boot scenarios several tests read. The boots are the expensive part, the
checks are not: test_secureboot.py's signed update and test_tpm.py's
measurements read the same three boots of one machine with Secure Boot on
and a TPM (as a fleet machine has both). Tests that use one carry
@pytest.mark.xdist_group(SIGNED_UPDATE), so one worker boots it once
(conftest.py's session fixture signed_update)."""

import time

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


