"""initramfs/mkdebian's refusals, before it debootstraps or writes anything.
The Debian root it builds (with the UKI kernel's modules) boots in
tests/e2e/test_systemd.py."""

import subprocess
from pathlib import Path

TOP = Path(__file__).resolve().parents[2]
MKDEBIAN = TOP / "initramfs" / "mkdebian"
ABCTL = TOP / "build" / "abctl"


def mkdebian(tmp_path, *args):
    out = tmp_path / "root"
    r = subprocess.run([MKDEBIAN, "--abctl", ABCTL, "--output", out, *args], capture_output=True, text=True)
    assert r.returncode == 1, r.stderr
    assert not out.exists(), "refused, yet the output directory was written"
    return r.stderr


def kernel_tree(tmp_path, *kvers):
    """The shape of an unpacked linux-image package: lib/modules/KVER/modules.dep."""
    root = tmp_path / "kernel"
    for kver in kvers:
        d = root / "lib/modules" / kver
        d.mkdir(parents=True)
        (d / "modules.dep").write_text("kernel/drivers/md/dm-mod.ko:\n")
    return root


def test_kver_not_in_kernel_root(tmp_path):
    root = kernel_tree(tmp_path, "6.1.0-1-amd64")
    err = mkdebian(tmp_path, "--kernel-root", root, "--kver", "6.1.0-2-amd64")
    assert f"{root}/lib/modules/6.1.0-2-amd64/modules.dep is missing" in err
    assert "depmod -b" in err


def test_two_kernels_need_kver(tmp_path):
    root = kernel_tree(tmp_path, "6.1.0-1-amd64", "6.1.0-2-amd64")
    err = mkdebian(tmp_path, "--kernel-root", root)
    assert "need --kver, found 2 kernels" in err


def test_no_kernel_in_kernel_root(tmp_path):
    (tmp_path / "empty").mkdir()
    err = mkdebian(tmp_path, "--kernel-root", tmp_path / "empty")
    assert "need --kver, found 0 kernels" in err


def test_kver_without_kernel_root(tmp_path):
    assert "--kver needs --kernel-root" in mkdebian(tmp_path, "--kver", "6.1.0-1-amd64")


def test_missing_overlay_refused_before_anything_is_written(tmp_path):
    # A mistyped --overlay used to be found only after the old --output was
    # removed and the new root unpacked: the previous root lost, a half-made one left.
    out = tmp_path / "root"
    out.mkdir()
    (out / "previous").write_text("the last good root\n")
    r = subprocess.run([MKDEBIAN, "--abctl", ABCTL, "--output", out, "--overlay", tmp_path / "my-config"],
                       capture_output=True, text=True)
    assert r.returncode == 1, r.stderr
    assert f"overlay {tmp_path / 'my-config'} is not a directory; nothing was written" in r.stderr, r.stderr
    assert sorted(p.name for p in out.iterdir()) == ["previous"]
