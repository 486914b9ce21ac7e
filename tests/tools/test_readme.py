"""README.md's promise to an integrator: the commands of "Putting the init
into your own UKI" work as written. The test runs that shell block itself,
read from README.md, in an empty directory (no out/ made beforehand), with
only the host-specific values put in: a test root for /path/to/rootfs, and
the unpacked Debian kernel of build/deps.mk for the running one (this host
runs another kernel and has no /lib/modules). What it made is then checked:
the reference layout, both slots' UKIs on the ESP, each pinning v1."""

import re
import subprocess
from pathlib import Path

from test_fleet import REPO, Agent, images, layout_index_digest  # noqa: F401 (images: a fixture)

TOP = Path(__file__).resolve().parents[2]
BUILD = TOP / "build"
TOOLS = TOP / "initramfs"


def deps():
    out = {}
    for line in (BUILD / "deps.mk").read_text().splitlines():
        k, sep, v = line.partition(" := ")
        if sep:
            out[k.strip()] = v.strip()
    return out


def integrator_block():
    text = (TOP / "README.md").read_text()
    section = text.split("## Putting the init into your own UKI", 1)[1]
    m = re.search(r"```sh\n(.*?)```", section, re.S)
    assert m, "README.md: no ```sh block in \"Putting the init into your own UKI\""
    return m.group(1)


def substitute(block, old, new):
    assert old in block, f"README.md's integrator block no longer has {old!r}: update this test"
    return block.replace(old, new)


def test_integrator_example_runs_as_written(tmp_path):
    d = deps()
    kroot, kver = d["KERNEL_ROOT"], d["KERNEL_VERSION"]
    block = integrator_block()
    block = substitute(block, "/path/to/rootfs", str(BUILD / "e2e/root-a"))
    block = substitute(block, "--kernel-root /", f"--kernel-root {kroot}")
    block = substitute(block, "/boot/vmlinuz-$(uname -r)", f"{kroot}/boot/vmlinuz-{kver}")
    block = substitute(block, '"$(uname -r)"', kver)
    assert "uname" not in block, block
    # The block's relative paths: initramfs/mk* and build/abswitch-init from the top of the tree.
    (tmp_path / "initramfs").symlink_to(TOOLS)
    (tmp_path / "build").symlink_to(BUILD)
    r = subprocess.run(["bash", "-euo", "pipefail", "-c", block], cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0, f"README's integrator example failed:\n{r.stderr}"

    disk = tmp_path / "disk.img"
    parts = subprocess.run(["sgdisk", "-p", disk], check=True, capture_output=True, text=True).stdout
    names = re.findall(r"^\s+\d+\s+\d+\s+\d+\s+\S+ \S+\s+\S+\s+(\S+)$", parts, re.M)
    assert names == ["esp", "system-a", "system-a-verity", "system-b", "system-b-verity"], parts
    roothash = (tmp_path / "out/v1.roothash").read_text().strip()
    for slot in ("a", "b"):
        uki = tmp_path / f"out/boot-{slot}.efi"
        cmdline = tmp_path / f"cmdline-{slot}"
        subprocess.run(["objcopy", "-O", "binary", "--only-section=.cmdline", uki, cmdline], check=True)
        assert f"ab.roothash={roothash}" in cmdline.read_text()
        # On the ESP (partition 1 at 1 MiB), byte for byte.
        copy = tmp_path / f"esp-boot-{slot}.efi"
        subprocess.run(["mcopy", "-n", "-i", f"{disk}@@1M", f"::/EFI/abswitch/boot-{slot}.efi", copy], check=True)
        assert copy.read_bytes() == uki.read_bytes()


def test_tools_make_the_output_directory(tmp_path):
    """mkslot, mkuki and mkdisk write into a directory that does not exist
    yet (mkinitramfs: the test above), as the README's example assumes."""
    d = deps()
    run = lambda *a: subprocess.run([str(x) for x in a], capture_output=True, text=True)
    r = run(TOOLS / "mkslot", "--root", BUILD / "e2e/root-a", "--output", tmp_path / "s/v1")
    assert r.returncode == 0, r.stderr
    r = run(TOOLS / "mkuki", "--kernel", d["KERNEL_IMAGE"], "--initrd", BUILD / "e2e/initramfs.img",
            "--roothash", f"@{tmp_path / 's/v1.roothash'}", "--output", tmp_path / "u/boot-a.efi")
    assert r.returncode == 0, r.stderr
    r = run(TOOLS / "mkdisk", "--output", tmp_path / "d/disk.img", "--a-image", tmp_path / "s/v1",
            "--a-uki", tmp_path / "u/boot-a.efi", "--esp-size", "64M", "--slot-size", "4M", "--verity-size", "1M")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "d/disk.img").stat().st_size > 64 << 20


def test_status_says_what_records_the_check(tmp_path, images):
    """README "Fleet operations": `abctl update --check` changes nothing, no
    state file; the agent's run records the check for `abctl status`.
    Status used to send the operator to `abctl update --check` for the
    missing line, which never fills it."""
    reg, v1, _ = images
    ref = f"127.0.0.1:{reg.port}/{REPO}:stable"
    reg.push(v1, "stable")
    digest = layout_index_digest(v1, "stable")
    a = Agent(tmp_path, 0, reg, ref)
    a.seed_origin(digest, ref)           # slot A runs what the tag names: up to date
    r = a.update("--check")
    assert r.returncode == 0 and "Up to date" in r.stdout, r.stdout + r.stderr
    assert not (a.state / "update-check.json").exists()
    st = a.abctl("status")
    assert st.returncode == 0, st.stderr
    line = next(x for x in st.stdout.splitlines() if "available" in x)
    assert "not checked yet" in line and "abctl update --check)" not in line, line
    r = a.update()
    assert r.returncode == 0 and "Up to date" in r.stdout, r.stdout + r.stderr
    st = a.abctl("status")
    assert f"available {digest} (checked " in st.stdout and ": up to date" in st.stdout, st.stdout


def test_nvme_initramfs_skips_cpu_specific_crc(tmp_path):
    """The README's initramfs (--module nvme): nvme pulls crct10dif-pclmul in
    through crc-t10dif's softdep; under QEMU's TCG (no PCLMULQDQ) the init
    logged "Failed to load .../crct10dif-pclmul.ko ... No such device" on
    every boot. Like crc32c-intel, it is left to the root; the generic one
    and the rest of nvme's chain stay, in load order."""
    d = deps()
    out = tmp_path / "initramfs.img"
    r = subprocess.run([TOOLS / "mkinitramfs", "--init", BUILD / "abswitch-init", "--kernel-root", d["KERNEL_ROOT"],
                        "--kver", d["KERNEL_VERSION"], "--module", "nvme", "--compress", "none", "--output", out],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    names = subprocess.run(["cpio", "-t", "--quiet"], input=out.read_bytes(), capture_output=True,
                           check=True).stdout.decode().split()
    assert not [n for n in names if n.endswith("crct10dif-pclmul.ko")], names
    paths = subprocess.run(["cpio", "-i", "--quiet", "--to-stdout", "etc/abswitch/modules.paths"],
                           input=out.read_bytes(), capture_output=True, check=True).stdout.decode()
    nvme = next(line.split()[1:] for line in paths.splitlines() if line.split()[0] == "nvme")
    mods = [Path(p).name for p in nvme]
    assert "crct10dif_generic.ko" in mods and mods[-2:] == ["nvme-core.ko", "nvme.ko"], mods
    assert "crct10dif-pclmul.ko" not in paths, paths


def test_initramfs_carries_no_kernel_crypto_modules(tmp_path):
    """README "Benchmark" (no kernel crypto modules): libcryptsetup and the
    init hash with nettle, so the initramfs loads neither af_alg nor
    algif_hash (libcryptsetup's kernel backend opened an AF_ALG socket
    before anything else, and every initramfs carried both)."""
    d = deps()
    out = tmp_path / "initramfs.img"
    r = subprocess.run([TOOLS / "mkinitramfs", "--init", BUILD / "abswitch-init", "--kernel-root", d["KERNEL_ROOT"],
                        "--kver", d["KERNEL_VERSION"], "--module", "virtio_pci", "--module", "virtio_blk",
                        "--compress", "none", "--output", out], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    names = subprocess.run(["cpio", "-t", "--quiet"], input=out.read_bytes(), capture_output=True,
                           check=True).stdout.decode().split()
    assert not [n for n in names if re.search(r"/(af_alg|algif_\w+)\.ko(\.xz|\.zst|\.gz)?$", n)], names
    listed = subprocess.run(["cpio", "-i", "--quiet", "--to-stdout", "etc/abswitch/modules"],
                            input=out.read_bytes(), capture_output=True, check=True).stdout.decode().split()
    assert listed == ["virtio_pci", "virtio_blk", "dm-verity", "efivarfs"], listed
