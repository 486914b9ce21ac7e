import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import abvm  # noqa: E402

# Tests of what happens without Secure Boot, which ABSWITCH_SECUREBOOT=1 would
# turn into something else: systemd-stub takes a boot entry's options as the
# command line only without Secure Boot (README "Secure Boot";
# test_secureboot_entry_cmdline_ignored covers the Secure Boot side).
UEFI_ONLY = {
    "test_identity.py::test_entry_options_": "with Secure Boot systemd-stub ignores a boot entry's options",
}


@pytest.fixture
def machine(tmp_path):
    return abvm.Machine(tmp_path)


def pytest_collection_modifyitems(config, items):
    if not abvm.SECUREBOOT:
        return
    for item in items:
        for prefix, why in UEFI_ONLY.items():
            if item.nodeid.split("/")[-1].startswith(prefix):
                item.add_marker(pytest.mark.skip(reason=f"ABSWITCH_SECUREBOOT=1: {why}"))


# ---- one signed update, read by several tests (scenarios.py) ----------------------
from scenarios import Heal, PanicFallback, SignedUpdate  # noqa: E402


@pytest.fixture(scope="session")
def signed_update(tmp_path_factory):
    return SignedUpdate(tmp_path_factory.mktemp("signed-update"))


@pytest.fixture(scope="session")
def heal(tmp_path_factory):
    h = Heal(tmp_path_factory.mktemp("heal"))
    yield h
    h.close()


@pytest.fixture(scope="session")
def panic_fallback(tmp_path_factory):
    return PanicFallback(tmp_path_factory.mktemp("panic-fallback"))
