#!/usr/bin/env python3
"""make bench-oci: abctl install of a large OS image from a real registry,
in the guest, against a plain curl of the same blob to /dev/null on the
same boot.

A slot image holding SIZE MiB of random data (incompressible; default
1024) is made with mkslot, wrapped with mkoci, pushed with skopeo to
Debian's docker-registry over TLS on the host's loopback. Slot A's test
root (root-a-net) then runs, one after the other:

  curl --cacert CA -o /dev/null https://10.0.2.2:PORT/v2/.../blobs/<system layer>
  abctl install --ca CA 10.0.2.2:PORT/abswitch/big:v1

and reports each one's wall time and peak RSS (ABSWITCH-RUSAGE, from
wait4). abctl's own log gives the download-and-write throughput; its wall
time also covers verifying the whole slot against the root hash
(dm-verity's hash tree, read back from the disk). Results in
build/bench/oci.json. Software emulation (no KVM): absolute numbers are
this machine's, the ratio is what carries.

The delta scenario (--scenario delta; both run by default) is host level:
the glibc abctl (build/powercut/abctl) installs into a disk image whose
partitions it exposes as loop devices, from a real docker-registry on
localhost behind an HTTPS front that counts what it serves
(tests/e2e/registry.py HttpFront). v1 is the Debian test system
(build/e2e/root-debian, initramfs/mkdebian); v2 is v1 with one package
added (apt-get download, dpkg -x: strace) and one /etc file changed. Per
layout (EROFS uncompressed, EROFS LZ4HC, SquashFS), in the same run: both
images, a full install of v2 (--delta no) and a delta install of v2 on a
machine whose running slot A holds v1 and whose slot B holds nothing of
either (the first delta after provisioning). Written under "delta" in
oci.json, beside the throughput scenario's keys.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TOP = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TOP / "tests/e2e"))
import abvm  # noqa: E402
from registry import GUEST_HOST, HttpFront, Registry, layout_manifest  # noqa: E402

CA = "/run/abswitch-test/ca"


def run(*args, **kw):
    return subprocess.run([str(a) for a in args], check=True, capture_output=True, **kw)


LAYOUTS = ("erofs", "erofs-lz4", "squashfs")
PACKAGE = "strace"


def delta_scenario(build, out, layouts):
    """The delta table (see the top of this file): {layout: {...}}."""
    sys.path.insert(0, str(TOP / "tests/tools"))
    from test_hostile import ENV, Machine  # noqa: E402
    pc = Path(build) / "powercut/abctl"
    res = {"level": "host: glibc abctl (build/powercut/abctl, ASan build), loop devices over a disk image, "
                    "docker-registry on localhost over TLS behind an HTTPS front that counts bytes",
           "v1": "build/e2e/root-debian", "v2": f"v1 + apt-get download {PACKAGE} (dpkg -x) + /etc/motd changed",
           "layouts": {}}
    with tempfile.TemporaryDirectory(dir=out) as tmp:
        tmp = Path(tmp)
        print(f"oci-bench: delta: v2 = Debian + {PACKAGE} + a changed /etc/motd", flush=True)
        run("apt-get", "download", PACKAGE, cwd=tmp)
        deb = next(tmp.glob(f"{PACKAGE}_*.deb"))
        res["v2"] = f"v1 + {deb.name} (dpkg -x) + /etc/motd changed"
        v2root = tmp / "root-v2"
        run("cp", "-a", abvm.E2E / "root-debian", v2root)
        run("dpkg", "-x", deb, v2root)
        with open(v2root / "etc/motd", "a") as f:
            f.write("abswitch delta benchmark: v2\n")
        reg = Registry(tmp).start()
        try:
            for layout in layouts:
                d = tmp / layout
                d.mkdir()
                for v, root in (("v1", abvm.E2E / "root-debian"), ("v2", v2root)):
                    print(f"oci-bench: delta: mkslot --fs {layout} {v}", flush=True)
                    t0 = time.monotonic()
                    run(TOP / "initramfs/mkslot", "--root", root, "--fs", layout, "--output", d / v)
                    print(f"oci-bench: delta:   {time.monotonic() - t0:.0f} s", flush=True)
                img = {v: (d / f"{v}.img").stat().st_size for v in ("v1", "v2")}
                tree = (d / "v2.verity").stat().st_size
                slot = f"{max(img.values()) // 1048576 + 16}M"
                vsize = f"{tree // 1048576 + 2}M"
                row = {"image_bytes": img["v2"], "v1_image_bytes": img["v1"], "tree_bytes": tree}
                for kind in ("full", "delta"):
                    vm = tmp / f"{layout}-{kind}"
                    vm.mkdir()
                    m = Machine(vm)
                    m.disk.unlink()
                    # A runs v1; B holds an unrelated small image (nothing of v1 or v2).
                    run(TOP / "initramfs/mkdisk", "--output", m.disk, "--a-image", d / "v1", "--a-uki", m.ukis["a"],
                        "--b-image", abvm.E2E / "slot-b", "--b-uki", m.ukis["b"], "--esp-size", "64M",
                        "--slot-size", slot, "--verity-size", vsize)
                    assert m.boot("\\EFI\\abswitch\\boot-a.efi").returncode == 0
                    if kind == "full":
                        uki = m.uki("v2", f"@{d / 'v2.roothash'}", version="2")
                        run(TOP / "initramfs/mkoci", "--image", d / "v2", "--uki", uki, "--name", "bench",
                            "--version", "2", "--tag", layout, "--output", d / "oci")
                        reg.push(d / "oci", layout, repo="abswitch/delta")
                        system = layout_manifest(d / "oci", layout)["layers"][1]["digest"]
                    front = HttpFront(reg)
                    print(f"oci-bench: delta: {layout}: {kind} install of v2", flush=True)
                    t0 = time.monotonic()
                    r = subprocess.run([pc, "--disk", m.disk, "--efivars", m.efivars, "--esp", m.esp, "--record",
                                        "/nonexistent", "--running", "A", "--ca", reg.ca, "--delta",
                                        "no" if kind == "full" else "auto", "install",
                                        f"127.0.0.1:{front.port}/abswitch/delta:{layout}"],
                                       capture_output=True, text=True, env=ENV, timeout=3600)
                    secs = time.monotonic() - t0
                    front.close()
                    if r.returncode != 0:
                        sys.exit(f"oci-bench: delta: {layout} {kind} install failed:\n{r.stderr}")
                    reqs = [x for x in front.blob_requests() if x[0].endswith(system)]
                    row[f"{kind}_fetched_bytes"] = front.blob_bytes(system)
                    row[f"{kind}_seconds"] = round(secs, 1)
                    row[f"{kind}_requests"] = len(reqs)
                    if kind == "delta":
                        w = re.search(r"reused ([\d.]+) MiB \(([\d.]+) MiB in place, ([\d.]+) MiB from the running "
                                      r"slot, ([\d.]+) MiB moved\); ([\d.]+) MiB of local blocks hashed", r.stderr)
                        if not w:
                            sys.exit(f"oci-bench: delta: {layout}: no delta line:\n{r.stderr}")
                        row["delta_reused_mib"] = float(w.group(1))
                        row["delta_from_running_slot_mib"] = float(w.group(3))
                        row["delta_hashed_mib"] = float(w.group(5))
                    m.disk.unlink()
                row["requests"] = row["delta_requests"]
                row["delta_fraction_of_image"] = round(row["delta_fetched_bytes"] / img["v2"], 4)
                res["layouts"][layout] = row
                print(f"oci-bench: delta: {layout}: {json.dumps(row)}", flush=True)
                for f in d.glob("v*.img"):
                    f.unlink()
        finally:
            reg.stop()
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=str(TOP / "build"))
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--scenario", choices=("all", "throughput", "delta"), default="all")
    ap.add_argument("--layouts", default=",".join(LAYOUTS), help="delta: comma-separated mkslot --fs values")
    args = ap.parse_args()
    out = Path(args.build) / "bench"
    out.mkdir(parents=True, exist_ok=True)
    # One scenario alone keeps the other's last results.
    prev = out / "oci.json"
    res = json.loads(prev.read_text()) if prev.exists() else {}
    if args.scenario in ("all", "throughput"):
        res.update(throughput_scenario(args, out))
    if args.scenario in ("all", "delta"):
        d = delta_scenario(args.build, out, args.layouts.split(","))
        # --layouts X replaces X's row and keeps the others'.
        if "delta" in res:
            res["delta"]["layouts"].update(d["layouts"])
            d["layouts"] = res["delta"]["layouts"]
        res["delta"] = d
    prev.write_text(json.dumps(res, indent=1))
    print(json.dumps(res, indent=1))


def throughput_scenario(args, out):
    with tempfile.TemporaryDirectory(dir=out) as tmp:
        tmp = Path(tmp)
        root = tmp / "root"
        (root / "sbin").mkdir(parents=True)
        (root / "run").mkdir()
        run("install", "-m", "0755", abvm.BUILD / "test-rootinit", root / "sbin/init")
        (root / "etc").mkdir()
        (root / "etc/abswitch-test-slot").write_text("B\n")
        print(f"oci-bench: {args.size_mib} MiB of random data into a slot image", flush=True)
        with open(root / "payload", "wb") as f:
            for _ in range(args.size_mib):
                f.write(os.urandom(1 << 20))
        run(TOP / "initramfs/mkslot", "--root", root, "--fs", "erofs", "--output", tmp / "big")
        (root / "payload").unlink()
        env = abvm.env()
        roothash = (tmp / "big.roothash").read_text().strip()
        run(TOP / "initramfs/mkuki", "--kernel", env["DEBIAN_KERNEL_IMAGE"], "--initrd", abvm.E2E / "initramfs.img",
            "--roothash", roothash, "--cmdline", abvm.CONSOLE, "--output", tmp / "big.efi")
        run(TOP / "initramfs/mkoci", "--image", tmp / "big", "--uki", tmp / "big.efi", "--name", "bench",
            "--version", "1", "--tag", "v1", "--output", tmp / "oci")
        (tmp / "big.img").unlink()
        system = layout_manifest(tmp / "oci", "v1")["layers"][1]

        reg = Registry(tmp).start()
        try:
            print("oci-bench: pushing with skopeo", flush=True)
            reg.push(tmp / "oci", "v1", repo="abswitch/big")
            shutil.rmtree(tmp / "oci")
            m = abvm.Machine(tmp / "vm")
            a = m.uki("boot-a.efi", "A-NET")
            b = m.uki("boot-b.efi", "B")
            slot = f"{args.size_mib + 64}M"
            m.make_disk(a, b, a_image="a-net", slot_size=slot, verity_size=f"{args.size_mib // 64 + 2}M")
            m.net = True
            m.fw_files["ca"] = reg.ca
            url = f"https://{GUEST_HOST}:{reg.port}/v2/abswitch/big/blobs/{system['digest']}"
            curl = f"/usr/bin/curl -sS --cacert {CA} -o /dev/null {url}"
            install = f"/usr/bin/abctl install --delta no --ca {CA} {reg.guest_ref('v1', repo='abswitch/big')}"
            m.fw_run = [curl, install]
            print("oci-bench: booting; the guest downloads with curl, then installs with abctl", flush=True)
            boot = m.boot(timeout=3600)
        finally:
            reg.stop()

        def usage(cmd):
            mm = re.search(r"^ABSWITCH-RUSAGE maxrss_kb=(\d+) ms=(\d+) " + re.escape(cmd) + r"\r?$", boot.console, re.M)
            rc = re.search(r"^ABSWITCH-RUN rc=(\d+) " + re.escape(cmd) + r"\r?$", boot.console, re.M)
            if not mm or not rc or rc.group(1) != "0":
                sys.exit(f"oci-bench: {cmd.split()[0]} failed:\n{boot.tail(30)}")
            return int(mm.group(1)), int(mm.group(2))

        c_rss, c_ms = usage(curl)
        a_rss, a_ms = usage(install)
        w = re.search(r"Wrote ([\d.]+) MiB into slot B in ([\d.]+) s \(([\d.]+) MiB/s, (\d+) retries\)", boot.console)
        mib = system["size"] / 1048576
        res = {
            "system_layer_mib": round(mib, 1),
            "curl_to_devnull": {"seconds": c_ms / 1000, "mib_s": round(mib / (c_ms / 1000), 1), "maxrss_kib": c_rss},
            "abctl_install": {"seconds": a_ms / 1000, "maxrss_kib": a_rss,
                              "download_and_write_seconds": float(w.group(2)) if w else None,
                              "download_and_write_mib_s": float(w.group(3)) if w else None,
                              "retries": int(w.group(4)) if w else None},
        }
        res["abctl_install"]["verify_and_rest_seconds"] = (
            round(a_ms / 1000 - float(w.group(2)), 1) if w else None)
        res["abctl_vs_curl"] = round(float(w.group(3)) / res["curl_to_devnull"]["mib_s"], 2) if w else None
        return res


if __name__ == "__main__":
    main()
