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
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

TOP = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TOP / "tests/e2e"))
import abvm  # noqa: E402
from registry import GUEST_HOST, Registry, layout_manifest  # noqa: E402

CA = "/run/abswitch-test/ca"


def run(*args, **kw):
    return subprocess.run([str(a) for a in args], check=True, capture_output=True, **kw)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=str(TOP / "build"))
    ap.add_argument("--size-mib", type=int, default=1024)
    args = ap.parse_args()
    out = Path(args.build) / "bench"
    out.mkdir(parents=True, exist_ok=True)

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
        run(TOP / "initramfs/mkuki", "--kernel", env["KERNEL_IMAGE"], "--initrd", abvm.E2E / "initramfs.img",
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
            install = f"/usr/bin/abctl install --ca {CA} {reg.guest_ref('v1', repo='abswitch/big')}"
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
        (out / "oci.json").write_text(json.dumps(res, indent=1))
        print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
