#!/usr/bin/python3
"""make bench: abswitch against the systemd/dracut initrd and the floor.

Four UKIs on the same Debian kernel, the same disk and the same verified
root (the e2e slot A image, whose /sbin/init prints the ABSWITCH-BENCH line):

  abswitch        our production initramfs (virtio only), full protocol
  dracut_lean     dracut's systemd initrd with only what the job needs
  dracut_generic  dracut's default module set plus systemd-veritysetup
  floor           bench/floor.c: modules, one raw verity table, switch root

Each boots once unmeasured (the firmware's first boot with a fresh VARS
file; abswitch creating its boot entries), then BOOTS times, in rotation,
under QEMU/OVMF without KVM. The disk is attached with snapshot=on, so every
boot starts from the same bytes. All command lines carry "quiet": the serial
console would otherwise dominate what is measured.

abswitch and the floor, whose ratio moves most from run to run, go on for
PAIR_BOOTS rounds in all (at least BOOTS), and each round boots the two
back to back, so that a slow spell of the host falls on both; the table
gives their ratio round by round (median, middle half, range).

Times come from the kernel's printk clock, read back from /dev/kmsg by the
root's init: "Run /init as init process" (the initramfs's /init starts) and
its own marker (the root's init starts). CPU is PID 1's and its reaped
children's, from /init to the root's init: each booted initramfs gets
bench/cpumark.c as /init (appended as a second cpio archive), which logs
PID 1's CPU so far and execs the real init. Sizes are of the initramfs and
UKI without that wrapper.

Then abswitch and the floor boot ICOUNT_BOOTS more times each under QEMU's
-icount (ICOUNT: while the guest runs, each instruction advances its clock
by a fixed 4 ns; while it idles, waiting for the disk, the host's clock
runs): the same phase in instructions, which neither the host's load nor
TCG's translation of code run for the first time changes (two boots agree
within 0.5%). Wall-clock under TCG is mostly that translation and the
host's load (the initrd phase of one UKI varies by 250 ms between boots
here); -icount is how much work each initramfs does. (sleep=off would warp
an idle guest to its next timer, which makes a disk read cost up to a
tick.)

Writes build/bench/results.json and prints a table. Compare numbers only
within one run: the machine is shared and emulated.
"""

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

TOP = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TOP / "tests/e2e"))
import abvm  # noqa: E402

BENCH_RE = re.compile(r"^ABSWITCH-BENCH (.*)$", re.M)
VARIANTS = ["abswitch", "dracut_lean", "dracut_generic", "floor"]
PAIR = ["abswitch", "floor"]  # always booted, back to back in every round, and under -icount
CONSOLE = "console=ttyS0,115200 panic=-1 quiet"
DRACUT_LEAN_MODULES = "systemd-veritysetup systemd-initrd dracut-systemd rootfs-block base"
# The floor's modules, in dependency order from modules.dep; crc32c_generic is
# libcrc32c's soft dependency (modules.softdep), which the floor does not read.
FLOOR_MODULES = ["virtio_pci", "virtio_blk", "dm-verity", "crc32c_generic", "erofs"]
# 4 ns per instruction (250 MIPS); idle (disk) time is the host's.
ICOUNT = "shift=2"


def run(args, **kw):
    return subprocess.run([str(a) for a in args], check=True, **kw)


class BenchMachine(abvm.Machine):
    """One variant's firmware variables, on the shared disk, never written."""

    def __init__(self, workdir, disk, icount=None):
        super().__init__(workdir)
        self.disk = disk
        self.icount = icount

    def qemu_args(self, console_path):
        args = super().qemu_args(console_path)
        args[args.index("-m") + 1] = "1024"  # dracut-generic unpacks ~100 MB
        i = args.index(f"file={self.disk},if=virtio,format=raw")
        args[i] += ",snapshot=on"
        j = args.index("i6300esb")  # no watchdog: nothing arms one here
        del args[j - 1:j + 1]
        return args + (["-icount", self.icount] if self.icount else [])


def module_order(kroot, kver, names):
    """Module paths in load order (dependencies first), from modules.dep."""
    mdir = Path(kroot) / "lib/modules" / kver
    deps = {}
    for line in (mdir / "modules.dep").read_text().splitlines():
        mod, _, rest = line.partition(":")
        deps[mod] = rest.split()
    by_name = {Path(m).name.removesuffix(".ko").replace("_", "-"): m for m in deps}
    out = []

    def add(m):
        if m in out:
            return
        for d in reversed(deps[m]):
            add(d)
        out.append(m)

    for n in names:
        add(by_name[n.replace("_", "-")])
    return [mdir / m for m in out]


def verity_table(image, hashfile, roothash):
    """The dm-verity table for slot A on the bench disk (vda2 data, vda3 hash)."""
    dump = run(["veritysetup", "dump", hashfile], capture_output=True, text=True).stdout
    f = dict(re.findall(r"^([\w ]+):\s*(\S+)", dump, re.M))
    blocks = int(f["Data blocks"])
    bs = int(f["Data block size"])
    assert bs == int(f["Hash block size"]), "the floor assumes equal block sizes"
    sectors = blocks * bs // 512
    return (f"0 {sectors} verity {f['Hash type']} /dev/vda2 /dev/vda3 {bs} {bs} {blocks} 1 "
            f"{f['Hash algorithm']} {roothash} {f['Salt']} 1 restart_on_corruption\n")


def floor_initramfs(out, floor, env, table):
    stage = out.parent / "floor-root"
    shutil.rmtree(stage, ignore_errors=True)
    for d in ["dev", "proc", "sys", "root", "lib/modules"]:
        (stage / d).mkdir(parents=True)
    shutil.copy(floor, stage / "init")
    paths = []
    for m in module_order(env["KERNEL_ROOT"], env["KERNEL_VERSION"], FLOOR_MODULES):
        shutil.copy(m, stage / "lib/modules" / m.name)
        paths.append(f"/lib/modules/{m.name}")
    (stage / "modules").write_text("\n".join(paths) + "\n")
    (stage / "table").write_text(table)
    files = subprocess.run("find . -mindepth 1 | LC_ALL=C sort", shell=True, cwd=stage, check=True,
                           capture_output=True).stdout
    cpio = subprocess.run(["cpio", "--quiet", "-o", "-H", "newc", "--reproducible", "-R", "0:0"], cwd=stage,
                          input=files, check=True, capture_output=True).stdout
    out.write_bytes(subprocess.run(["zstd", "-q", "-19", "-c"], input=cpio, check=True, capture_output=True).stdout)


def wrapped(initrd, cpumark, real_init, out):
    """initrd plus an uncompressed cpio that makes cpumark /init and the
    original init /init.real (a file, or a symlink target for dracut's)."""
    stage = out.with_suffix(".wrap")
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir()
    shutil.copy(cpumark, stage / "init")
    if isinstance(real_init, Path):
        shutil.copy(real_init, stage / "init.real")
    else:
        (stage / "init.real").symlink_to(real_init)
    cpio = subprocess.run(["cpio", "--quiet", "-o", "-H", "newc", "--reproducible", "-R", "0:0"], cwd=stage,
                          input=b"init\ninit.real\n", check=True, capture_output=True).stdout
    data = initrd.read_bytes()
    out.write_bytes(data + b"\0" * (-len(data) % 4) + cpio)
    shutil.rmtree(stage)


def dracut(out, env, lean):
    args = ["dracut", "--quiet", "--force", "--no-hostonly", "--zstd", "--kver", env["KERNEL_VERSION"],
            "--kmoddir", f"{env['KERNEL_ROOT']}/lib/modules/{env['KERNEL_VERSION']}"]
    if lean:
        args += ["-m", DRACUT_LEAN_MODULES, "--add-drivers", "virtio_pci virtio_blk dm-verity erofs"]
    else:
        args += ["--add", "systemd-veritysetup"]
    run(args + [out], capture_output=True)


def build(work, build_dir, env):
    """The four UKIs and the one disk; returns {variant: (initrd, uki)}."""
    e2e = build_dir / "e2e"
    roothash = (e2e / "slot-a.roothash").read_text().strip()
    initrds = {
        "abswitch": work / "abswitch.initrd",
        "dracut_lean": work / "dracut-lean.initrd",
        "dracut_generic": work / "dracut-generic.initrd",
        "floor": work / "floor.initrd",
    }
    shutil.copy(build_dir / "bench/initramfs.img", initrds["abswitch"])
    t = time.monotonic()
    for v, lean in (("dracut_lean", True), ("dracut_generic", False)):
        if v in VARIANTS:
            dracut(initrds[v], env, lean=lean)
    if "dracut_lean" in VARIANTS or "dracut_generic" in VARIANTS:
        print(f"bench: dracut images built in {time.monotonic() - t:.0f} s", flush=True)
    floor_initramfs(initrds["floor"], build_dir / "bench/floor", env,
                    verity_table(e2e / "slot-a.img", e2e / "slot-a.verity", roothash))

    dracut_cmdline = (f"{CONSOLE} roothash={roothash} systemd.verity_root_data=PARTLABEL=system-a "
                      "systemd.verity_root_hash=PARTLABEL=system-a-verity root=/dev/mapper/root ro")
    cmdlines = {"abswitch": CONSOLE, "dracut_lean": dracut_cmdline, "dracut_generic": dracut_cmdline,
                "floor": CONSOLE}
    real_inits = {"abswitch": build_dir / "abswitch-init", "dracut_lean": "usr/lib/systemd/systemd",
                  "dracut_generic": "usr/lib/systemd/systemd", "floor": build_dir / "bench/floor"}
    ukis, sized = {}, {}
    for v in VARIANTS:
        # abswitch's UKI keeps its slot name (identity from the file name).
        ukis[v] = work / ("boot-a.efi" if v == "abswitch" else f"{v}.efi")
        sized[v] = work / f"{v}.sized.efi"
        booted = work / f"{v}.wrapped.initrd"
        wrapped(initrds[v], build_dir / "bench/cpumark", real_inits[v], booted)
        for initrd, uki in ((initrds[v], sized[v]), (booted, ukis[v])):
            run([TOP / "initramfs/mkuki", "--kernel", env["DEBIAN_KERNEL_IMAGE"], "--initrd", initrd,
                 "--roothash", roothash, "--cmdline", cmdlines[v], "--output", uki], capture_output=True)

    disk = work / "disk.img"
    run([TOP / "initramfs/mkdisk", "--output", disk, "--a-uki", ukis["abswitch"], "--a-image", e2e / "slot-a",
         "--b-uki", ukis["abswitch"], "--b-image", e2e / "slot-a", "--active", "a", "--esp-size", "256M",
         "--slot-size", "16M", "--verity-size", "1M"], capture_output=True)
    esp_start = BenchMachine(work / "probe", disk).esp()["start"] * 512
    run(["mmd", "-i", f"{disk}@@{esp_start}", "::EFI/bench"], capture_output=True)
    for v in VARIANTS:
        if v == "abswitch":
            continue
        run(["mcopy", "-i", f"{disk}@@{esp_start}", ukis[v], f"::EFI/bench/{v}.efi"], capture_output=True)
    return disk, {v: (initrds[v], sized[v]) for v in VARIANTS}


def build_env(build_dir):
    """abvm's environment plus the paths initramfs/deps.sh recorded (the kernel's)."""
    env = abvm.env()
    env.update(dict(l.split(" := ", 1) for l in (build_dir / "deps.mk").read_text().splitlines()
                    if " := " in l))
    return env


def machine(work, disk, v, icount=None, cls=BenchMachine):
    m = cls(work / (f"{v}-icount" if icount else v), disk, icount)
    path = "\\EFI\\abswitch\\boot-a.efi" if v == "abswitch" else f"\\EFI\\bench\\{v}.efi"
    m.add_boot_entries({1: (f"bench {v}", path)}, order=[1])
    return m


def measure(m, v, timeout, warmup=False):
    b = m.boot(timeout=timeout, stop_on=None)
    line = BENCH_RE.search(b.console)
    root = b.root
    if not line or not root:
        raise SystemExit(f"bench: {v} did not reach the root's init in {b.seconds:.0f} s; console ends with:\n"
                         f"{b.tail()}")
    if root["slot"] != "A" or root["ro"] != "yes" or root["dm"] == "-":
        raise SystemExit(f"bench: {v} mounted the wrong root: {root}")
    if v != "floor" and root["verity"] != "yes":
        raise SystemExit(f"bench: {v}'s root is not a verity device: {root}")
    if v == "abswitch" and not warmup:  # the warm-up creates its boot entries
        dec = (b.record or {}).get("decision", {})
        if dec.get("gpt_writes") != 0 or dec.get("nvram_writes") != 0:
            raise SystemExit(f"bench: abswitch wrote state in a measured boot (or left no record): {dec}")
    f = {k: int(x) for k, x in (kv.split("=") for kv in line.group(1).split())}
    if f["init_us"] < 0 or f["root_us"] < 0 or f["initrd_cpu_ms"] < 0:
        raise SystemExit(f"bench: {v}: the kernel log lost a marker: {line.group(0)}")
    r = {"initrd_phase_ms": (f["root_us"] - f["init_us"]) / 1000, "time_to_root_ms": f["root_us"] / 1000,
         "init_start_ms": f["init_us"] / 1000, "initrd_cpu_ms": f["initrd_cpu_ms"], "busy_ms": f["busy_ms"],
         "wall_s": round(b.seconds, 1)}
    if v == "abswitch" and not warmup:  # the init's own phases, from its boot record
        r["phases_ms"] = (b.record or {}).get("timings_ms", {})
    return r


def summarize(files, boots):
    out = {}
    for v in VARIANTS:
        initrd, uki = files[v]
        runs = boots[v]
        ph = [r["initrd_phase_ms"] for r in runs]
        out[v] = {
            "initrd_bytes": initrd.stat().st_size,
            "uki_bytes": uki.stat().st_size,
            "initrd_phase_ms_median": statistics.median(ph),
            "initrd_phase_ms_min": min(ph),
            "initrd_phase_ms_max": max(ph),
            "time_to_root_ms_median": statistics.median(r["time_to_root_ms"] for r in runs),
            "init_start_ms_median": statistics.median(r["init_start_ms"] for r in runs),
            "initrd_cpu_ms_median": statistics.median(r["initrd_cpu_ms"] for r in runs),
            "boots": runs,
        }
        phases = [r["phases_ms"] for r in runs if r.get("phases_ms")]
        if phases:
            out[v]["phases_ms_median"] = {k: statistics.median(p.get(k, 0) for p in phases) for k in phases[0]
                                          if k not in ("init_start_ms", "switch_root_ms")}
    return out


def pair_ratio(boots):
    """abswitch/floor initrd phase within each round (the two boot back to back)."""
    r = sorted(x["initrd_phase_ms"] / y["initrd_phase_ms"] for x, y in zip(boots["abswitch"], boots["floor"]))
    q = statistics.quantiles(r, n=4) if len(r) > 1 else [r[0]] * 3
    return {"rounds": len(r), "median": statistics.median(r), "q1": q[0], "q3": q[2], "min": r[0], "max": r[-1],
            "ratios": r}


def table(res):
    rows = [("", "initramfs", "UKI", "initrd phase ms", "(min-max)", "time to root ms", "initrd CPU ms")]
    for v in VARIANTS:
        r = res[v]
        rows.append((v, f"{r['initrd_bytes'] / 1e6:.2f} MB", f"{r['uki_bytes'] / 1e6:.2f} MB",
                     f"{r['initrd_phase_ms_median']:.0f}",
                     f"{r['initrd_phase_ms_min']:.0f}-{r['initrd_phase_ms_max']:.0f}",
                     f"{r['time_to_root_ms_median']:.0f}", f"{r['initrd_cpu_ms_median']:.0f}"))
    w = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.rjust(w[i]) if i else c.ljust(w[i]) for i, c in enumerate(r)) for r in rows]
    a, f = res["abswitch"], res["floor"]
    lines.append("")
    for d in ("dracut_lean", "dracut_generic"):
        if d not in res:
            continue
        r = res[d]
        lines.append(f"{d}/abswitch: initramfs {r['initrd_bytes'] / a['initrd_bytes']:.1f}x, "
                     f"initrd phase {r['initrd_phase_ms_median'] / a['initrd_phase_ms_median']:.1f}x, "
                     f"time to root {r['time_to_root_ms_median'] / a['time_to_root_ms_median']:.2f}x")
    lines.append(f"abswitch/floor: initramfs {a['initrd_bytes'] / f['initrd_bytes']:.2f}x, "
                 f"initrd phase {a['initrd_phase_ms_median'] / f['initrd_phase_ms_median']:.2f}x, "
                 f"time to root {a['time_to_root_ms_median'] / f['time_to_root_ms_median']:.2f}x")
    q = res["pair_ratio"]
    lines.append(f"abswitch/floor initrd phase, round by round ({q['rounds']} rounds): median {q['median']:.2f}x, "
                 f"middle half {q['q1']:.2f}-{q['q3']:.2f}x, all {q['min']:.2f}-{q['max']:.2f}x")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default=str(TOP / "build"))
    ap.add_argument("--boots", type=int, default=5)
    ap.add_argument("--pair-boots", type=int, default=0,
                    help="rounds of abswitch and the floor in all (at least --boots; the dracut variants boot --boots)")
    ap.add_argument("--variants", default=",".join(VARIANTS),
                    help="comma-separated subset to boot (abswitch and floor always); the full table needs all")
    ap.add_argument("--icount-boots", type=int, default=2,
                    help="boots of abswitch and the floor under -icount (deterministic; 0: none)")
    ap.add_argument("--timeout", type=int, default=300, help="seconds before a boot counts as hung")
    a = ap.parse_args()
    chosen = set(a.variants.split(",")) | set(PAIR)
    if not chosen <= set(VARIANTS):
        raise SystemExit(f"bench: --variants: unknown {sorted(chosen - set(VARIANTS))}; choose from {VARIANTS}")
    VARIANTS[:] = [v for v in VARIANTS if v in chosen]
    build_dir = Path(a.build).resolve()
    out = build_dir / "bench"
    work = out / "work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    env = build_env(build_dir)

    disk, files = build(work, build_dir, env)
    machines = {v: machine(work, disk, v) for v in VARIANTS}
    for v in VARIANTS:
        w = measure(machines[v], v, a.timeout, warmup=True)
        print(f"bench: warm-up {v}: {w['wall_s']} s", flush=True)
    boots = {v: [] for v in VARIANTS}
    rounds = max(a.boots, a.pair_boots)
    for i in range(rounds):
        for v in PAIR + [v for v in VARIANTS if v not in PAIR]:
            if i >= a.boots and v not in PAIR:
                continue
            r = measure(machines[v], v, a.timeout)
            boots[v].append(r)
            print(f"bench: round {i + 1}/{rounds} {v}: initrd phase {r['initrd_phase_ms']:.0f} ms, "
                  f"time to root {r['time_to_root_ms']:.0f} ms ({r['wall_s']} s wall)", flush=True)

    icount = {}
    counted = {v: machine(work, disk, v, ICOUNT) for v in PAIR} if a.icount_boots else {}
    for v, m in counted.items():
        measure(m, v, a.timeout * 3, warmup=True)
    for i in range(a.icount_boots):
        for v, m in counted.items():
            r = measure(m, v, a.timeout * 3)
            icount.setdefault(v, []).append(r)
            print(f"bench: -icount {ICOUNT} {i + 1}/{a.icount_boots} {v}: initrd phase {r['initrd_phase_ms']:.0f} ms "
                  f"({r['wall_s']} s wall)", flush=True)

    res = summarize(files, boots)
    res["pair_ratio"] = pair_ratio(boots)
    if icount:
        res["icount"] = {"qemu": f"-icount {ICOUNT}"}
        for v, runs in icount.items():
            res["icount"][v] = {"initrd_phase_ms_median": statistics.median(r["initrd_phase_ms"] for r in runs),
                                "boots": runs}
    res["meta"] = {"kernel": env["KERNEL_VERSION"], "boots_per_variant": {v: len(boots[v]) for v in VARIANTS},
                   "qemu": "TCG, 1 vCPU, 1 GiB",
                   "cmdline_common": CONSOLE, "dracut_lean_modules": DRACUT_LEAN_MODULES,
                   "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    sizes = out / "init-sizes.json"
    if sizes.exists():
        res["abswitch"]["init_size_by_library"] = json.loads(sizes.read_text())
    (out / "results.json").write_text(json.dumps(res, indent=2) + "\n")
    print()
    print(table(res))
    if "icount" in res:
        a_, f_ = res["icount"]["abswitch"], res["icount"]["floor"]
        print(f"\nUnder -icount {ICOUNT} (4 ns per instruction; {a.icount_boots} boots): initrd phase abswitch "
              f"{a_['initrd_phase_ms_median']:.0f} ms, floor {f_['initrd_phase_ms_median']:.0f} ms, abswitch/floor "
              f"{a_['initrd_phase_ms_median'] / f_['initrd_phase_ms_median']:.2f}x")
    if res["abswitch"].get("phases_ms_median"):
        print("abswitch init phases (median ms): " +
              ", ".join(f"{k} {x:.0f}" for k, x in res["abswitch"]["phases_ms_median"].items()))
    print(f"\nbench: results in {out / 'results.json'}")


if __name__ == "__main__":
    main()
