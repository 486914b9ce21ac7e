#!/usr/bin/python3
"""make tbprof: what the initrd phase makes QEMU translate, abswitch against the floor.

Under TCG (no KVM), most of an initramfs's wall-clock is QEMU translating
guest code the first time it runs, kernel and user alike (README
"Benchmark"): an init that runs more distinct code is slower by that much,
however few instructions it executes. This boots the bench's abswitch and
floor UKIs once each (after an unmeasured first boot) with `nokaslr` and
bench/tbprof.c, a TCG plugin that logs every block as it is translated,
and reports for the initrd phase (from the CPU marker's first block to the
root's init's first block):

  - blocks translated, by region (user, kernel core, kernel modules, EFI
    runtime), for both;
  - the init's own blocks by library (from the linker map) and function;
  - kernel blocks the floor's whole boot never translated, by kernel
    function when a System.map is at hand (TBPROF_SYSTEM_MAP, else
    /usr/lib/debug/boot/System.map-KVER from linux-image-KVER-dbg; Debian's
    linux-image ships a placeholder) and by the init's function translated
    last before them (roughly: which call of the init ran that kernel code).

Module blocks are counted by region only: their load addresses move with
load order. Counts move by a few hundred blocks between boots (interrupts,
background kernel work in the window); compare differences of a thousand.
Writes build/bench/tbprof.json. The plugin is built against qemu-plugin.h
from Debian's QEMU source package, fetched into build/bench/tbprof/.
"""

import bisect
import collections
import json
import os
import struct
import sys
from pathlib import Path

TOP = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TOP / "bench"))
sys.path.insert(0, str(TOP / "tests/e2e"))
import bench  # noqa: E402
import sizes  # noqa: E402

RECORD = struct.Struct("<QQII")  # bench/tbprof.c's struct tb_record
KERNEL, MODULES, DIRECT = 0xffffffff80000000, 0xffffffffc0000000, 0xffff800000000000


def entry(elf):
    out = bench.run(["readelf", "-h", elf], capture_output=True, text=True).stdout
    return int(next(l for l in out.splitlines() if "Entry point" in l).split()[-1], 16)


def plugin(work, env):
    """bench/tbprof.c built against the running QEMU's plugin header."""
    so, hdr = work / "tbprof.so", work / "qemu-plugin.h"
    if not hdr.exists():
        conf = env["APT_CONF"]  # initramfs/deps.sh's apt configuration, with deb-src
        src = work / "src"
        src.mkdir(parents=True, exist_ok=True)
        bench.run(["apt-get", "-q", "-c", conf, "source", "--download-only", "qemu"], cwd=src, capture_output=True)
        orig = next(src.glob("qemu_*.orig.tar.*"))
        bench.run(["tar", "-xf", orig, "-C", src, "--wildcards", "*/include/qemu/qemu-plugin.h"])
        next(src.glob("*/include/qemu/qemu-plugin.h")).rename(hdr)
    if not so.exists() or so.stat().st_mtime < (TOP / "bench/tbprof.c").stat().st_mtime:
        bench.run(["gcc", "-O2", "-Wall", "-Werror", "-shared", "-fPIC", "-I", work, "-o", so, TOP / "bench/tbprof.c"])
    return so


class Machine(bench.BenchMachine):
    log = None

    def qemu_args(self, console_path):
        args = super().qemu_args(console_path)
        return args + (["-plugin", f"{self.plugin},arg=out={self.log}"] if self.log else [])


def load(path):
    data = path.read_bytes()
    return [RECORD.unpack_from(data, i) for i in range(0, len(data) - RECORD.size + 1, RECORD.size)]


def region(va):
    if va >= MODULES:
        return "kernel modules"
    if va >= KERNEL:
        return "kernel"
    if va >= DIRECT:
        return "EFI runtime"
    return "user"


def window(recs, marker, root):
    """The initrd phase: from the CPU marker's first block to the root's init's."""
    s = next(i for i, r in enumerate(recs) if r[1] == marker)
    e = next(i for i in range(s + 1, len(recs)) if recs[i][1] == root)
    return recs[s:e], (recs[e][0] - recs[s][0]) / 1e6


class Symbols:
    def __init__(self, pairs):
        self.pairs = sorted(pairs)
        self.addrs = [a for a, _ in self.pairs]

    def __call__(self, va):
        i = bisect.bisect_right(self.addrs, va) - 1
        return self.pairs[i][1] if i >= 0 else "?"


def elf_symbols(binary):
    out = bench.run(["nm", "-n", "--defined-only", binary], capture_output=True, text=True).stdout
    return Symbols((int(p[0], 16), p[2]) for p in (l.split() for l in out.splitlines())
                   if len(p) == 3 and p[1] in "tTwW")


def map_owners(map_path):
    """The library of an address of the init's .text, from the GNU ld map."""
    ranges = sorted((a, a + n, who) for sec, a, n, who in sizes.input_sections(map_path.read_text())
                    if sec == ".text")
    starts = [r[0] for r in ranges]

    def owner(va):
        i = bisect.bisect_right(starts, va) - 1
        return ranges[i][2] if i >= 0 and va < ranges[i][1] else "?"
    return owner


def main():
    build_dir = Path(os.environ.get("BUILD", TOP / "build")).resolve()
    work = build_dir / "bench/tbprof"
    work.mkdir(parents=True, exist_ok=True)
    env = bench.build_env(build_dir)
    Machine.plugin = plugin(work, env)

    bench.VARIANTS[:] = bench.PAIR
    bench.CONSOLE += " nokaslr"  # kernel addresses as System.map gives them
    (work / "boot").mkdir(exist_ok=True)
    disk, _ = bench.build(work / "boot", build_dir, env)
    logs = {}
    for v in bench.VARIANTS:
        m = bench.machine(work / "boot", disk, v, cls=Machine)
        bench.measure(m, v, 300, warmup=True)  # the firmware's first boot; abswitch's boot entries
        m.log = logs[v] = work / f"{v}.tb"
        r = bench.measure(m, v, 300)
        print(f"tbprof: {v}: initrd phase {r['initrd_phase_ms']:.0f} ms", flush=True)

    marker, root = entry(build_dir / "bench/cpumark"), entry(build_dir / "test-rootinit")
    init = build_dir / "abswitch-init.unstripped"
    init_entry = entry(init)
    res = {}
    recs = {v: load(logs[v]) for v in bench.VARIANTS}
    for v in bench.VARIANTS:
        w, host_ms = window(recs[v], marker, root)
        res[v] = {"blocks": len(w), "host_ms": round(host_ms),
                  "by_region": dict(collections.Counter(region(r[1]) for r in w))}

    # The init's own blocks: from its entry on, in the init's address range.
    aw, _ = window(recs["abswitch"], marker, root)
    owner, fn = map_owners(build_dir / "abswitch-init.map"), elf_symbols(init)
    by_lib, by_fn = collections.Counter(), collections.Counter()
    started = False
    for r in aw:
        started = started or r[1] == init_entry
        if started and r[1] < DIRECT and owner(r[1]) != "?":
            by_lib[owner(r[1])] += 1
            by_fn[fn(r[1])] += 1
    res["init_blocks_by_library"] = dict(by_lib.most_common())
    res["init_blocks_by_function"] = dict(by_fn.most_common(40))

    # Kernel blocks (core: module addresses move) the floor's boot never translated.
    floor_seen = {r[1] for r in recs["floor"]}
    smap = Path(os.environ.get("TBPROF_SYSTEM_MAP", f"/usr/lib/debug/boot/System.map-{env['KERNEL_VERSION']}"))
    ksym = Symbols((int(p[0], 16), p[2]) for p in (l.split() for l in smap.read_text().splitlines())
                   if len(p) >= 3 and p[1] in "tTwW") if smap.exists() else None
    by_kfn, by_caller, last, started = collections.Counter(), collections.Counter(), "(before the init)", False
    for r in aw:
        started = started or r[1] == init_entry
        if r[1] < DIRECT:
            if started and owner(r[1]) != "?":
                last = fn(r[1])
        elif KERNEL <= r[1] < MODULES and r[1] not in floor_seen:
            by_caller[last] += 1
            if ksym:
                by_kfn[ksym(r[1])] += 1
    res["kernel_blocks_not_in_floor"] = sum(by_caller.values())
    res["kernel_blocks_not_in_floor_by_init_function"] = dict(by_caller.most_common(40))
    if ksym:
        res["kernel_blocks_not_in_floor_by_kernel_function"] = dict(by_kfn.most_common(40))
    (build_dir / "bench/tbprof.json").write_text(json.dumps(res, indent=2) + "\n")

    a, f = res["abswitch"], res["floor"]
    print(f"\nblocks translated in the initrd phase: abswitch {a['blocks']} {a['by_region']}, "
          f"floor {f['blocks']} {f['by_region']}")
    print("the init's blocks by library: " + ", ".join(f"{k} {n}" for k, n in by_lib.most_common()))
    print(f"kernel blocks the floor never translated: {res['kernel_blocks_not_in_floor']}; by the init's "
          "function translated last before them:")
    for k, n in by_caller.most_common(15):
        print(f"  {n:5d} {k}")
    if ksym:
        print("by kernel function:")
        for k, n in by_kfn.most_common(15):
            print(f"  {n:5d} {k}")
    else:
        print(f"(no kernel symbols: {smap} is missing; linux-image-{env['KERNEL_VERSION']}-dbg has it)")
    print(f"\ntbprof: {build_dir / 'bench/tbprof.json'}")


if __name__ == "__main__":
    main()
