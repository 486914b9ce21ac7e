"""A delta install in the guest (issue 15, README "Delta installs"): the
first boot of the heal scenario (scenarios.py Heal): slot A (root-a-net,
which carries the v2 OCI layout and so most of the new image's blocks)
installs oci-heal (B's commit root plus a /data/blob of its own) into B from
a real docker-registry behind an HTTPS front that counts what it serves per
blob (registry.HttpFront). The guest's static abctl fetches the image's
hash tree by Range, hashes the blocks it has with the new salt, copies the
matching ones, fetches the rest by Range and verifies the whole slot
against the root hash its UKI pins; the next boot runs the image from B and
commits it. The scenario's boots serve test_heal.py too: one machine,
four boots, for both. Deltas from the target slot's own old content (in
place and moved), the fallback without Range, bad trees and read errors:
tests/tools/test_delta.py, on the host."""

import re

import pytest

import abvm
from scenarios import HEAL


@pytest.mark.xdist_group(HEAL)
def test_delta_install_fetches_only_changed_blocks(heal):
    boot = heal.boots["A-installs"]
    assert boot.root["slot"] == "A"
    assert re.search(r"^ABSWITCH-RUN rc=0 " + re.escape(heal.install) + r"\r?$", boot.console, re.M), boot.tail(40)
    m = re.search(r"Wrote ([\d.]+) MiB into slot B by delta in [\d.]+ s: fetched ([\d.]+) MiB in (\d+) requests",
                  boot.console)
    assert m, boot.tail(40)

    # What the front served of the system layer: the tree and the blocks A
    # does not hold, far below the image; every request a range.
    img = (abvm.E2E / "slot-b-heal.img").stat().st_size
    tree = (abvm.E2E / "slot-b-heal.verity").stat().st_size
    served = heal.install_system_bytes
    print(f"delta install: {served} bytes of the system layer served ({img + tree} bytes), "
          f"{len(heal.install_system_requests)} requests")
    assert tree <= served < (img + tree) / 10, (served, img + tree, boot.tail(20))
    assert heal.install_system_requests and all(st == 206 for _, st in heal.install_system_requests), \
        heal.install_system_requests
    assert heal.after["A-installs"]["B"] == {"priority": 2, "tries": 2, "successful": False, "armed": True}

    # The next boot runs the image from B (the init verifies it against the pin) and commits it.
    boot = heal.boots["B-trial"]
    assert boot.root["slot"] == "B", boot.tail(30)
    assert boot.record["root"]["roothash"] == abvm.roothash("b-heal")
    assert "ABSWITCH-RUN rc=0 /usr/bin/abctl mark-good" in boot.console, boot.tail(30)
