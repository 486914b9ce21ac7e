"""Measured boot in real firmware: OVMF with a TPM 2.0 (swtpm, QEMU's
tpm-crb), the slot's init extending PCR 15 and writing the userspace event
log. One machine, three boots, with Secure Boot on (as a fleet machine has both):
conftest.py's SignedUpdate, A committed (its root installs v2 into B), B on
trial (its root runs abctl mark-good), B committed. Both tests, and
test_secureboot_signed_slots_boot, read the same boots: the boots are the
expensive part, the checks are not.

Independent of the init's code: the host computes each expected PCR value
from the slot, identity source, root hash and mode with hashlib, and
replays the event log the guest reported against the PCRs the guest's
kernel read."""

import base64
import hashlib
import json
import re
import subprocess

import pytest
import yaml

import abvm
from scenarios import SIGNED_UPDATE

PCR = 15
HASHES = {"sha1": hashlib.sha1, "sha256": hashlib.sha256, "sha384": hashlib.sha384, "sha512": hashlib.sha512}


def measured(slot, source, roothash, mode):
    """The string the init measures (README "Measured boot")."""
    return f"abswitch:slot={slot}:source={source}:roothash={roothash}:mode={mode}"


def pcr_after(bank, events):
    """A PCR's value after extending zeros with H(event) for each event."""
    h = HASHES[bank]
    v = bytes(h().digest_size)
    for e in events:
        v = h(v + h(e.encode()).digest()).digest()
    return v.hex()


class TpmBoot:
    """What the guest reported about its TPM on one boot."""

    def __init__(self, boot):
        self.boot = boot
        c = boot.console
        self.pcrs = {(b, int(n)): v.lower() for b, n, v in
                     re.findall(r"^ABSWITCH-PCR bank=(\S+) pcr=(\d+) value=([0-9A-Fa-f]+)", c, re.M)}
        self.log = [json.loads(l) for l in re.findall(r"^ABSWITCH-TPMLOG (.*)$", c, re.M)]
        chunks = re.findall(r"^ABSWITCH-EVENTLOG (\S+)\s*$", c, re.M)
        self.eventlog = base64.b64decode("".join(chunks))
        m = re.search(r"^ABSWITCH-EVENTLOG-END bytes=(\d+)", c, re.M)
        assert m and int(m.group(1)) == len(self.eventlog), "the firmware event log did not come through whole"

    def banks(self, pcr=PCR):
        return sorted(b for (b, n) in self.pcrs if n == pcr)


@pytest.fixture
def tpm_boots(signed_update):
    """conftest.py's SignedUpdate (Secure Boot on, a TPM): A committed, B on
    trial, B committed; the same boots test_secureboot_signed_slots_boot reads."""
    for name, bt in signed_update.boots.items():
        assert bt.root is not None, f"{name}: the root's init never ran:\n{bt.tail()}"
    return signed_update.machine, {k: TpmBoot(v) for k, v in signed_update.boots.items()}


EXPECTED = {
    "A-committed": ("A", "A-INSTALLER", "committed"),
    "B-trial": ("B", "B-COMMIT", "trial"),
    "B-committed": ("B", "B-COMMIT", "committed"),
}


@pytest.mark.xdist_group(SIGNED_UPDATE)
def test_tpm_pcr_matches_event_log(tpm_boots):
    m, boots = tpm_boots
    for name, t in boots.items():
        slot, image, mode = EXPECTED[name]
        rec = t.boot.record
        assert t.boot.root["slot"] == slot, name
        assert rec["decision"]["trial"] == (mode == "trial"), name
        # The firmware started the slot by its entry: the stub names the UKI's path.
        source = rec["identity"]["source"]
        assert source == "loader-image-identifier", (name, rec["identity"])
        want = measured(slot, source, abvm.roothash(image), mode)

        # The log: one record for PCR 15, our string, digests of H(string).
        ours = [r for r in t.log if r["pcr"] == PCR]
        assert [r["content"]["string"] for r in ours] == [want], (name, t.log)
        assert ours[0]["content_type"] == "abswitch"
        banks = t.banks()
        assert "sha256" in banks, t.pcrs
        assert sorted(d["hashAlg"] for d in ours[0]["digests"]) == banks
        for d in ours[0]["digests"]:
            assert d["digest"] == HASHES[d["hashAlg"]](want.encode()).hexdigest(), (name, d)

        # Replaying the log gives the PCR the kernel reads, in every bank, and
        # so does the value computed from the expected facts alone.
        for bank in banks:
            replay = bytes(HASHES[bank]().digest_size)
            for r in ours:
                d = bytes.fromhex(next(x["digest"] for x in r["digests"] if x["hashAlg"] == bank))
                replay = HASHES[bank](replay + d).digest()
            assert t.pcrs[(bank, PCR)] == replay.hex(), (name, bank)
            assert t.pcrs[(bank, PCR)] == pcr_after(bank, [want]), (name, bank)

        # The boot record says the same.
        tpm = rec["tpm"]
        assert tpm["state"] == "ready" and tpm["pcr"] == PCR and tpm["device"] == "/dev/tpmrm0", tpm
        assert [x["string"] for x in tpm["measurements"]] == [want]
        assert tpm["measurements"][0]["digests"]["sha256"] == hashlib.sha256(want.encode()).hexdigest()
        assert tpm["measurements"][0]["logged"] is True
        assert f"Measured into PCR 15: {want}" in t.boot.console


@pytest.mark.xdist_group(SIGNED_UPDATE)
def test_tpm_slots_measure_differently(tpm_boots):
    m, boots = tpm_boots
    pcr15 = {name: t.pcrs[("sha256", PCR)] for name, t in boots.items()}
    # A and B differ, and trial and committed boots of the same slot differ.
    assert len(set(pcr15.values())) == 3, pcr15
    # B's commit happened in its trial boot, by the root's abctl.
    assert "mark-good: slot B is now committed" in boots["B-trial"].boot.console
    assert m.slot_state("B")["successful"] is True

    # What systemd-stub 252 and the firmware measured into PCRs 11 and 12 on
    # these boots, from the firmware's event log (tpm2_eventlog): the log
    # replays to the PCRs the kernel reads. Kept next to the test's files
    # for the README and the report.
    summary = {}
    for name, t in boots.items():
        f = m.dir / f"eventlog-{name}.bin"
        f.write_bytes(t.eventlog)
        out = yaml.safe_load(subprocess.run(["tpm2_eventlog", str(f)], check=True, capture_output=True,
                                            text=True).stdout)
        replayed = {int(k): format(v, "064x") if isinstance(v, int) else str(v).lower().removeprefix("0x")
                    for k, v in out["pcrs"]["sha256"].items()}
        events = []
        for e in out["events"]:
            if e["PCRIndex"] in (11, 12):
                d = next(x["Digest"] for x in e["Digests"] if x["AlgorithmId"] == "sha256")
                what = e.get("Event")
                what = what.get("String", what) if isinstance(what, dict) else what
                events.append({"pcr": e["PCRIndex"], "type": e["EventType"], "sha256": d,
                               "event": str(what).replace("\\0", "").strip('"')[:120]})
        # The stub measured the UKI into 11; nothing went into 12 (no load
        # options, credentials or add-ons): the PCR reads zero.
        assert any(e["pcr"] == 11 for e in events), (name, events)
        assert replayed[11] == t.pcrs[("sha256", 11)], (name, replayed[11])
        assert replayed.get(12, "0" * 64) == t.pcrs[("sha256", 12)], name
        summary[name] = {"pcr": {str(p): t.pcrs.get(("sha256", p)) for p in (7, 9, 11, 12, 15)},
                         "pcr11_12_events": events}
    (m.dir / "tpm-summary.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps(summary, indent=1))
