#!/usr/bin/python3
"""Where the init's bytes go: code and data by library, from the GNU ld map.

  sizes.py build/abswitch-init.map build/abswitch-init [--json OUT]

Sums the sizes of the input sections that were kept in allocated output
sections (.text, .rodata, .data, .bss, ...), by the archive they came from:
libcryptsetup.a, libc.a (musl), ...; our own objects count as "abswitch".
.bss takes no file bytes but is listed; the table's file column excludes it.
"""

import argparse
import json
import re
import sys
from pathlib import Path

NAMES = {"libc.a": "musl libc", "libgcc.a": "libgcc"}
# An input section line: " .text.foo  0xADDR  0xSIZE  /path/libx.a(member.o)"
# (the section name may stand alone on the line before).
LINE = re.compile(r"^ (\.\S+)?\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)\s+(\S.*)$")
OUTPUT = re.compile(r"^(\.\S+)\s")


def owner(path):
    m = re.search(r"([^/]+\.a)\(", path)
    if m:
        return NAMES.get(m.group(1), m.group(1).removesuffix(".a"))
    if re.search(r"/crt\w*\.o$|/crt[1in]\.o$", path):
        return "musl libc"
    return "abswitch"


def input_sections(map_text):
    """(output section, address, size, owner) of each input section the link
    kept in an allocated output section (bench/tbprof.py maps .text too)."""
    text = map_text.split("Linker script and memory map", 1)[-1]
    out_sec = None
    for line in text.splitlines():
        o = OUTPUT.match(line)
        if o:
            out_sec = o.group(1)
            continue
        if out_sec is None or out_sec.startswith((".debug", ".comment", ".note.GNU-stack", ".gnu.attributes")):
            continue
        m = LINE.match(line)
        if not m:
            continue
        addr, size = int(m.group(2), 16), int(m.group(3), 16)
        if size == 0 or addr == 0:
            continue
        yield out_sec, addr, size, owner(m.group(4))


def parse(map_text):
    totals, bss = {}, {}
    for out_sec, _, size, who in input_sections(map_text):
        target = bss if out_sec in (".bss", ".tbss") else totals
        target[who] = target.get(who, 0) + size
    return totals, bss


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("map")
    ap.add_argument("binary")
    ap.add_argument("--json")
    a = ap.parse_args()
    totals, bss = parse(Path(a.map).read_text())
    stripped = Path(a.binary).stat().st_size
    rows = sorted(totals.items(), key=lambda kv: -kv[1])
    print(f"init, stripped: {stripped} bytes; code and data by library (KiB):")
    for who, n in rows:
        extra = f"  (+{bss[who] / 1024:.1f} bss)" if bss.get(who) else ""
        print(f"  {who:16} {n / 1024:7.1f}{extra}")
    print(f"  {'total':16} {sum(totals.values()) / 1024:7.1f}")
    if a.json:
        Path(a.json).write_text(json.dumps({"stripped_bytes": stripped, "by_library_bytes": dict(rows),
                                            "bss_bytes": bss}, indent=2) + "\n")


if __name__ == "__main__":
    sys.exit(main())
