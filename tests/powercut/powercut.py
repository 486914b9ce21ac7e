#!/usr/bin/python3
"""make powercut: every state-changing path, cut at every durable write.

Each scenario starts from a disk image (initramfs/mkdisk, real GPT), a
directory standing in for efivarfs and one standing in for the mounted
ESP, and runs a real program: abctl (built for the host against Debian's
libcryptsetup, which hashes in userspace as the static abctl's does) or bootsim (the
init's protocol code on files). cutter runs it once to count the durable
calls (writes, flushes, renames, unlinks), then again for every k, cut
cleanly before call k and, for data writes, torn in half at call k.

After each cut the firmware model (below) and bootsim boot the machine
until a slot's root verifies and the init boots it, at most MAX_BOOTS
times, and the harness checks:

  unbootable            no slot boots (STOP, no loadable UKI, or too many boots)
  looping               the same state seen twice across those boots
  running_slot_damaged  the running (or committed) slot's partitions or
                        UKI changed, or its GPT state stopped it booting
  mixed_state           a valid GPT copy holds attributes that are neither
                        the old state nor any state the uncut run settled in

The firmware model is OVMF's: BootNext first (consumed), then BootOrder,
then the removable path; an entry whose file is missing or not one of the
UKIs the scenario knows (a torn copy) fails to load and the next is tried.
A UKI's root verifies on a slot when that slot's partitions hold exactly
the image whose root hash the UKI pins.

Writes build/powercut/results.json; exit status 1 if any count is not 0.
"""

import argparse
import hashlib
import json
import multiprocessing
import os
import re
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

TOP = Path(__file__).resolve().parents[2]
GLOBAL = "8be4df61-93ca-11d2-aa0d-00e098032b8c"
MAX_BOOTS = 12
SLOT_PARTS = {"A": (2, 3), "B": (4, 5)}


def run(args, **kw):
    return subprocess.run([str(a) for a in args], **kw)


# ---- GPT, read back independently of the C code --------------------------------

def gpt_copies(disk):
    """[(valid, {partno: (first, last, attrs)}) for primary, backup]."""
    with open(disk, "rb") as f:
        size = f.seek(0, 2)
        head = f.seek(0) or f.read(64 << 10)
        f.seek(size - (64 << 10))
        tail = f.read()
    base_tail = size - len(tail)

    def at(off, n):
        return head[off:off + n] if off + n <= len(head) else tail[off - base_tail:off - base_tail + n]

    out = []
    for lba in (1, size // 512 - 1):
        h = at(lba * 512, 92)
        if h[:8] != b"EFI PART":
            out.append((False, {}))
            continue
        hsize, hcrc = struct.unpack_from("<II", h, 12)
        hdr = bytearray(at(lba * 512, hsize))
        hdr[16:20] = b"\0\0\0\0"
        entries_lba, n, esize, ecrc = struct.unpack_from("<QIII", h, 72)
        ents = at(entries_lba * 512, n * esize)
        valid = zlib.crc32(bytes(hdr)) == hcrc and zlib.crc32(ents) == ecrc
        parts = {}
        for i in range(n):
            e = ents[i * esize:(i + 1) * esize]
            if e[:16] != b"\0" * 16:
                first, last, attrs = struct.unpack_from("<QQQ", e, 32)
                parts[i + 1] = (first, last, attrs)
        out.append((valid, parts))
    return out


def attrs_of(parts):
    return tuple(sorted((p, a) for p, (_, _, a) in parts.items()))


def slot_state(attrs):
    return {"priority": attrs >> 48 & 15, "tries": attrs >> 52 & 15, "successful": bool(attrs >> 56 & 1)}


# ---- efivarfs directory --------------------------------------------------------

def var_path(efivars, name):
    return Path(efivars) / f"{name}-{GLOBAL}"


def read_var(efivars, name):
    p = var_path(efivars, name)
    return p.read_bytes()[4:] if p.exists() else None


def load_option_path(data):
    """The file path of an EFI_LOAD_OPTION, None if malformed."""
    try:
        _, fpl = struct.unpack_from("<IH", data, 0)
        i = 6
        while data[i:i + 2] != b"\0\0":
            i += 2
        i += 2
        end = i + fpl
        while i + 4 <= end:
            t, st, ln = struct.unpack_from("<BBH", data, i)
            if ln < 4:
                return None
            if t == 4 and st == 4:
                return data[i + 4:i + ln].decode("utf-16-le").rstrip("\0")
            if t == 0x7F:
                break
            i += ln
    except (struct.error, UnicodeDecodeError):
        return None
    return None


# ---- one machine: disk, efivars, ESP ---------------------------------------------

class Machine:
    def __init__(self, d, known_ukis, images):
        self.dir = Path(d)
        self.disk = self.dir / "disk.img"
        self.efivars = self.dir / "efivars"
        self.esp = self.dir / "esp"
        self.known_ukis = known_ukis  # sha256 of UKI bytes -> pinned root hash
        self.images = images          # root hash -> (image bytes, verity bytes)

    def copy_to(self, d):
        d = Path(d)
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
        run(["cp", "--sparse=always", self.disk, d / "disk.img"], check=True)
        shutil.copytree(self.efivars, d / "efivars")
        shutil.copytree(self.esp, d / "esp")
        return Machine(d, self.known_ukis, self.images)

    def parts(self):
        for valid, parts in gpt_copies(self.disk):
            if valid:
                return parts
        return {}

    def slot_bytes(self, slot):
        parts = self.parts()
        with open(self.disk, "rb") as f:
            out = []
            for p in SLOT_PARTS[slot]:
                if p not in parts:
                    return None
                first, last, _ = parts[p]
                f.seek(first * 512)
                out.append(f.read((last - first + 1) * 512))
        return out

    def uki(self, path):
        f = self.esp / path.lstrip("\\").replace("\\", "/")
        if not f.is_file():
            return None
        return self.known_ukis.get(hashlib.sha256(f.read_bytes()).hexdigest())

    def root_ok(self, roothash):
        ok = ""
        img = self.images.get(roothash)
        for s in "AB":
            b = self.slot_bytes(s)
            if img and b and b[0][:len(img[0])] == img[0] and b[1][:len(img[1])] == img[1]:
                ok += s
        return ok or "-"

    def snapshot(self):
        with open(self.disk, "rb") as f:
            h = hashlib.sha256(f.read(64 << 10))
            f.seek(-(64 << 10), 2)
            h.update(f.read())
        for p in sorted(self.efivars.iterdir()):
            h.update(p.name.encode() + p.read_bytes())
        return h.hexdigest()

    def firmware(self):
        """OVMF's choice: (path, entry) of the UKI it starts, or None."""
        nxt = read_var(self.efivars, "BootNext")
        cands = []
        if nxt is not None:
            var_path(self.efivars, "BootNext").unlink()
            if len(nxt) == 2:
                cands.append(struct.unpack("<H", nxt)[0])
        order = read_var(self.efivars, "BootOrder") or b""
        cands += list(struct.unpack(f"<{len(order) // 2}H", order[:len(order) // 2 * 2]))
        for n in cands:
            opt = read_var(self.efivars, f"Boot{n:04X}")
            path = load_option_path(opt) if opt else None
            if path and self.uki(path):
                return path
        if self.uki("\\EFI\\BOOT\\BOOTX64.EFI"):
            return "\\EFI\\BOOT\\BOOTX64.EFI"
        return None

    def boot_until_up(self, bootsim, stubborn=None):
        """Boots until the init boots a verified root: (slot, boots, outcome, trace).
        stubborn: a UKI path the firmware starts first instead of following
        BootOrder (a firmware that reordered its entries), once; BootNext,
        when set, it still honours."""
        seen = set()
        trace = []
        for n in range(1, MAX_BOOTS + 1):
            snap = self.snapshot()
            if snap in seen:
                return None, n, "looping", trace
            seen.add(snap)
            reorder = n == 1 and stubborn and self.uki(stubborn) and read_var(self.efivars, "BootNext") is None
            path = stubborn if reorder else self.firmware()
            if path is None:
                return None, n, "no loadable UKI", trace
            ok = self.root_ok(self.uki(path))
            r = run([bootsim, "--disk", self.disk, "--efivars", self.efivars, "--loader-path", path,
                     "--root-ok", ok], capture_output=True, text=True)
            if r.returncode != 0:
                return None, n, f"bootsim failed: {r.stderr.strip()}", trace
            d = json.loads(r.stdout)
            trace.append(f"{path.split(chr(92))[-1]}:{d['action']} {d['target']} ({d['reason']})")
            if d["action"] == "boot":
                return d["target"], n, "up", trace
            if d["action"] == "stop":
                return None, n, "stopped", trace
        return None, MAX_BOOTS, "too many boots", trace


# ---- scenarios -------------------------------------------------------------------

def cgpt_set(disk, slot, priority, tries, successful):
    part = SLOT_PARTS[slot][0]
    run(["cgpt", "add", "-i", part, "-P", priority, "-T", tries, "-S", int(successful), disk], check=True,
        capture_output=True)


class Rig:
    def __init__(self, build, work):
        self.build = build
        self.work = work
        e2e = build / "e2e"
        pc = build / "powercut"
        self.abctl = pc / "abctl"
        self.bootsim = pc / "bootsim"
        self.cutter = pc / "cutter"
        # Images: v1 of each slot, v2 for installs (e2e's slot-b-commit).
        self.img = {name: e2e / f"slot-{name}" for name in ("a", "b", "b-commit")}
        images, known = {}, {}
        self.ukis = {}
        for name, prefix in self.img.items():
            rh = Path(f"{prefix}.roothash").read_text().strip()
            images[rh] = (Path(f"{prefix}.img").read_bytes(), Path(f"{prefix}.verity").read_bytes())
            uki = work / f"uki-{name}.efi"
            # A small UKI: the stub with a placeholder kernel and initramfs
            # pinning the image's root hash (the firmware model only needs
            # to tell the UKIs apart; abctl checks the pin).
            (work / "kernel").write_bytes(b"\x7fkernel placeholder\n" * 64)
            (work / "initrd").write_bytes(b"initrd placeholder\n" * 64)
            run([TOP / "initramfs/mkuki", "--kernel", work / "kernel", "--initrd", work / "initrd", "--roothash", rh,
                 "--output", uki], check=True, capture_output=True)
            self.ukis[name] = uki
            known[hashlib.sha256(uki.read_bytes()).hexdigest()] = rh
        self.known, self.images = known, images

    def base(self, name, a=(2, 0, True), b=(1, 0, True), entries=True):
        """A machine: A and B with their v1 images and UKIs, states a and b."""
        m = Machine(self.work / "base" / name, self.known, self.images)
        shutil.rmtree(m.dir, ignore_errors=True)
        m.dir.mkdir(parents=True)
        m.efivars.mkdir()
        (m.esp / "EFI/abswitch").mkdir(parents=True)
        (m.esp / "EFI/BOOT").mkdir(parents=True)
        shutil.copy(self.ukis["a"], m.esp / "EFI/abswitch/boot-a.efi")
        shutil.copy(self.ukis["b"], m.esp / "EFI/abswitch/boot-b.efi")
        shutil.copy(self.ukis["a"], m.esp / "EFI/BOOT/BOOTX64.EFI")
        run([TOP / "initramfs/mkdisk", "--output", m.disk, "--a-image", self.img["a"], "--a-uki", self.ukis["a"],
             "--b-image", self.img["b"], "--b-uki", self.ukis["b"], "--esp-size", "64M", "--slot-size", "8M",
             "--verity-size", "1M"], check=True, capture_output=True)
        cgpt_set(m.disk, "A", *a)
        cgpt_set(m.disk, "B", *b)
        if entries:
            # The init creates its boot entries on the first boot.
            r = run([self.bootsim, "--disk", m.disk, "--efivars", m.efivars, "--loader-path",
                     "\\EFI\\abswitch\\boot-a.efi", "--root-ok", "AB"], capture_output=True, text=True)
            assert r.returncode == 0, r.stderr
        return m

    def abctl_cmd(self, m, running, *args):
        return [self.abctl, "--disk", m.disk, "--efivars", m.efivars, "--esp", m.esp, "--record", "/nonexistent",
                "--running", running, *args]

    def bootsim_cmd(self, m, path, ok):
        # The firmware acts first: it consumes BootNext and starts a UKI.
        started = m.firmware()
        assert started == path, f"the firmware model starts {started}, the scenario expects {path}"
        return [self.bootsim, "--disk", m.disk, "--efivars", m.efivars, "--loader-path", path, "--root-ok", ok]

    def scenarios(self):
        """(name, machine builder, command builder, the slot that must stay intact, the running slot)."""
        def armed_b():
            m = self.base("trial-boot", a=(1, 0, True), b=(2, 2, False))
            run(["sgdisk", "-A", "4:set:57", m.disk], check=True, capture_output=True)
            return m

        def corrupt_primary():
            m = self.base("gpt-repair")
            with open(m.disk, "r+b") as f:
                f.seek(512 + 16)  # the primary header's CRC
                f.write(b"\xde\xad\xbe\xef")
            return m

        b_uki, bootx = "\\EFI\\abswitch\\boot-b.efi", "\\EFI\\BOOT\\BOOTX64.EFI"
        return [
            # abctl, from a committed A: a new image into B, on trial.
            ("install", lambda: self.base("install"),
             lambda m: self.abctl_cmd(m, "A", "install", self.img["b-commit"], self.ukis["b-commit"]), "A", "A"),
            # abctl in B's trial boot: commit it.
            ("mark-good", lambda: self.base("mark-good", a=(1, 0, True), b=(2, 2, False)),
             lambda m: self.abctl_cmd(m, "B", "mark-good"), "A", "B"),
            ("mark-bad", lambda: self.base("mark-bad"), lambda m: self.abctl_cmd(m, "A", "mark-bad", "B"), "A", "A"),
            ("set-active", lambda: self.base("set-active"), lambda m: self.abctl_cmd(m, "A", "set-active", "B"), "A", "A"),
            ("rollback", lambda: self.base("rollback", a=(1, 0, True), b=(2, 0, True)),
             lambda m: self.abctl_cmd(m, "B", "rollback"), "A", "B"),
            # The init in an armed trial attempt of B: it takes the attempt.
            ("trial-boot", armed_b, lambda m: self.bootsim_cmd(m, b_uki, "AB"), "A", "B"),
            # The init when B's root fails on its last try: B failed, back to A.
            ("mark-failed", lambda: self.base("mark-failed", a=(1, 0, True), b=(2, 1, False)),
             lambda m: self.bootsim_cmd(m, b_uki, "A"), "A", "B"),
            # The init after the firmware lost every boot entry: it recreates them.
            ("entry-repair", lambda: self.base("entry-repair", entries=False),
             lambda m: self.bootsim_cmd(m, bootx, "AB"), "A", "A"),
            # A corrupt primary GPT header, then a state write that repairs it.
            ("gpt-repair", corrupt_primary, lambda m: self.abctl_cmd(m, "A", "set-active", "B"), "A", "A"),
        ]


# ---- the driver: every cut of every scenario, spread over --jobs processes ---------
# Each cut works in its own directory (a copy of the scenario's base machine),
# so cuts of any scenarios run side by side; results come back in cut order.
# The workers are forked: they inherit the rig and the prepared scenarios.

RIG = None
PREPARED = {}   # name -> prepared scenario (see prepare)


def prepare(name):
    """Builds a scenario's base machine and counts its durable calls (uncut run)."""
    rig = RIG
    _, make_base, cmd, keep, running = next(s for s in rig.scenarios() if s[0] == name)
    base = make_base()
    work = rig.work / "runs" / name
    counted = base.copy_to(work / "count")
    log = work / "calls.log"
    r = run([rig.cutter, "--atomic", counted.efivars.resolve(), "--log", log, "--", *cmd(counted)],
            capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"powercut: {name}: the uncut run failed:\n{r.stderr}")
    calls = log.read_text().splitlines()
    return {"name": name, "base": str(base.dir), "calls": calls, "keep": keep, "running": running,
            "keep_bytes": base.slot_bytes(keep),
            "keep_uki": (base.esp / f"EFI/abswitch/boot-{keep.lower()}.efi").read_bytes()}


def cut_points(calls):
    total = len(calls)
    kinds = [c.split()[1] for c in calls]
    cuts = [(k, False) for k in range(1, total + 2)]  # total+1: no cut at all
    cuts += [(k, True) for k in range(1, total + 1) if kinds[k - 1] in ("write", "pwrite")]
    return cuts


def cut_once(task):
    """One cut of one scenario, then the boots after it."""
    name, k, tear = task
    rig, prep = RIG, PREPARED[name]
    cmd = next(s for s in rig.scenarios() if s[0] == name)[2]
    keep, running, calls = prep["keep"], prep["running"], prep["calls"]
    base = Machine(prep["base"], rig.known, rig.images)
    work = rig.work / "runs" / name / f"cut-{k}{'-torn' if tear else ''}"
    m = base.copy_to(work / "machine")
    args = [rig.cutter, "--atomic", m.efivars.resolve(), "--cut", k] + (["--tear"] if tear else [])
    run(args + ["--", *cmd(m)], capture_output=True, text=True)
    copies = gpt_copies(m.disk)
    res = {"k": k, "torn": tear, "call": calls[k - 1] if k <= len(calls) else "none",
           "copies": [(v, attrs_of(p)) for v, p in copies]}
    res["damaged"] = m.slot_bytes(keep) != prep["keep_bytes"] or \
        (m.esp / f"EFI/abswitch/boot-{keep.lower()}.efi").read_bytes() != prep["keep_uki"]
    parts = m.parts()
    st = slot_state(parts[SLOT_PARTS[keep][0]][2]) if parts else None
    if not st or st["priority"] == 0 or not st["successful"]:
        res["damaged"] = True
    # Two firmwares: OVMF's order, and one that starts the slot that was
    # running once more first (it reordered its entries).
    stubborn = m.copy_to(work / "stubborn")
    slot, boots, why, trace = m.boot_until_up(rig.bootsim)
    s2, b2, why2, trace2 = stubborn.boot_until_up(rig.bootsim, stubborn=f"\\EFI\\abswitch\\boot-{running.lower()}.efi")
    if s2 is None and slot is not None:
        slot, boots, why, trace = s2, b2, f"{why2} (reordering firmware)", trace2
    res.update({"booted": slot, "boots": max(boots, b2), "outcome": why, "trace": trace})
    if slot is not None and not res["damaged"]:
        shutil.rmtree(work, ignore_errors=True)   # kept for a look when the cut went wrong
    return res


def settle(base_dir, results):
    """Marks mixed states: a valid GPT copy whose attributes are neither the
    old state nor one the uncut run settles in (both copies valid and equal)."""
    settled = {attrs_of(p) for _, p in gpt_copies(Path(base_dir) / "disk.img")}
    for r in results:
        if not r["torn"]:
            (v1, a1), (v2, a2) = r["copies"]
            if v1 and v2 and a1 == a2:
                settled.add(a1)
    for r in results:
        r["mixed"] = any(v and a not in settled for v, a in r["copies"])
        del r["copies"]
    return results


def run_all(rig, names, jobs):
    """{name: (calls, results)} for every scenario, cuts spread over jobs processes."""
    global RIG
    RIG = rig
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(jobs) as pool:
        for p in pool.map(prepare, names, chunksize=1):
            PREPARED[p["name"]] = p
    tasks = [(n, k, tear) for n in names for k, tear in cut_points(PREPARED[n]["calls"])]
    with ctx.Pool(jobs) as pool:   # forked again: the workers see PREPARED
        flat = pool.map(cut_once, tasks, chunksize=1)
    out = {}
    for (n, _, _), res in zip(tasks, flat):
        out.setdefault(n, []).append(res)
    return {n: (len(PREPARED[n]["calls"]), settle(PREPARED[n]["base"], out[n])) for n in names}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default=str(TOP / "build"))
    ap.add_argument("--only", help="run one scenario")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="cuts run at a time (default: one per core)")
    a = ap.parse_args()
    # LeakSanitizer cannot run under ptrace; ASan and UBSan still do.
    os.environ["ASAN_OPTIONS"] = "detect_leaks=0"
    build = Path(a.build).resolve()
    out = build / "powercut"
    work = out / "work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    rig = Rig(build, work)

    summary = {"cut_points": 0, "unbootable": 0, "looping": 0, "mixed_state": 0, "running_slot_damaged": 0,
               "scenarios": {}}
    rows = []
    names = [s[0] for s in rig.scenarios() if not a.only or s[0] == a.only]
    try:
        done = run_all(rig, names, max(1, a.jobs))
    except RuntimeError as e:
        raise SystemExit(str(e))
    for name in names:
        total, results = done[name]
        unboot = [r for r in results if r["booted"] is None and r["outcome"] != "looping"]
        loops = [r for r in results if r["outcome"] == "looping"]
        mixed = [r for r in results if r["mixed"]]
        damaged = [r for r in results if r["damaged"]]
        booted = {s: sum(1 for r in results if r["booted"] == s) for s in "AB"}
        worst = max(r["boots"] for r in results)
        summary["scenarios"][name] = {"calls": total, "cut_points": len(results), "unbootable": len(unboot),
                                      "looping": len(loops), "mixed_state": len(mixed),
                                      "running_slot_damaged": len(damaged), "booted_A": booted["A"],
                                      "booted_B": booted["B"], "max_boots_to_up": worst,
                                      "failures": [r for r in unboot + loops + mixed + damaged][:10]}
        for key, lst in (("unbootable", unboot), ("looping", loops), ("mixed_state", mixed),
                         ("running_slot_damaged", damaged)):
            summary[key] += len(lst)
        summary["cut_points"] += len(results)
        rows.append((name, str(total), str(len(results)), str(booted["A"]), str(booted["B"]), str(worst),
                     str(len(unboot)), str(len(loops)), str(len(mixed)), str(len(damaged))))
        print(f"powercut: {name}: {len(results)} cut points", flush=True)

    (out / "results.json").write_text(json.dumps(summary, indent=2) + "\n")
    head = ("scenario", "calls", "cuts", "up on A", "up on B", "max boots", "unbootable", "looping", "mixed",
            "damaged")
    w = [max(len(r[i]) for r in rows + [head]) for i in range(len(head))]
    print()
    for r in [head] + rows:
        print("  ".join(c.rjust(w[i]) if i else c.ljust(w[i]) for i, c in enumerate(r)))
    print(f"\npowercut: {summary['cut_points']} cut points; unbootable {summary['unbootable']}, looping "
          f"{summary['looping']}, mixed_state {summary['mixed_state']}, running_slot_damaged "
          f"{summary['running_slot_damaged']}; results in {out / 'results.json'}")
    bad = summary["unbootable"] + summary["looping"] + summary["mixed_state"] + summary["running_slot_damaged"]
    for name, sc in summary["scenarios"].items():
        for f in sc["failures"]:
            print(f"  {name}: cut {f['k']}{' torn' if f['torn'] else ''} at '{f['call']}': {f['outcome']}, "
                  f"mixed={f['mixed']} damaged={f['damaged']}; {' -> '.join(f['trace'])}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
