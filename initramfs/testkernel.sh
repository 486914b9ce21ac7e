#!/bin/bash
# testkernel.sh: Debian's kernel image with a zstd payload instead of XZ, for
# the e2e tests only.
#
#   initramfs/testkernel.sh VMLINUZ CONFIG OUTPUT
#
# Why: under QEMU's TCG (no KVM on the test machines) the x86 boot wrapper's
# XZ decompression of Debian's kernel takes 4-5 s of every boot, a third of
# an e2e boot (measured 2026-12-02 by sampling the guest's RIP: LZMA's range
# decoder between "BdsDxe: starting" and the kernel's first line). zstd
# does the same in 0.85-1.1 s, at 1.2 times XZ's size (9.9 MB against
# 8.2 MB); LZ4 was faster still (0.45 s) but 1.8 times the size (14.9 MB),
# which the tests' 16 MiB slots that carry an update's UKI do not hold.
# (With zstd those hold 15.6 MiB; the one that also carries curl,
# slot-a-net, needs the 32M its tests give it.)
#
# What changes and what does not: the kernel proper is Debian's, byte for
# byte. The bzImage's payload (the stripped vmlinux and its relocations) is
# taken out of VMLINUZ and, unchanged, compressed with zstd; only the boot
# wrapper around it (setup code, EFI stub, decompressor) is rebuilt, with
# kbuild, from Debian's linux-source package of the same version and
# VMLINUZ's own CONFIG, with KERNEL_ZSTD for KERNEL_XZ. The result is checked
# before it is written: its payload decompresses to exactly the original's,
# and it names the same kernel version. Lockdown, module signatures and
# everything else the tests rely on live in the unchanged kernel proper.
# The benchmark and the README's examples keep Debian's image as shipped.
set -euo pipefail

[ $# = 3 ] || { echo "usage: $0 VMLINUZ CONFIG OUTPUT" >&2; exit 2; }
vmlinuz=$(realpath "$1")
config=$(realpath "$2")
out=$(realpath -m "$3")
JOBS=${JOBS:-$(nproc)}
log() { printf 'testkernel: %s\n' "$*" >&2; }

work=$(mktemp -d "${TMPDIR:-/var/tmp}/abswitch-testkernel.XXXXXX")
trap 'rm -rf "$work"' EXIT

# The bzImage's payload (boot protocol 2.08+: payload_offset and
# payload_length in the setup header), and its version string.
python3 - "$vmlinuz" "$work" <<'EOF'
import struct, sys
img, work = open(sys.argv[1], "rb").read(), sys.argv[2]
if img[0x202:0x206] != b"HdrS" or struct.unpack_from("<H", img, 0x206)[0] < 0x208:
    sys.exit(f"{sys.argv[1]}: not a bzImage with boot protocol 2.08 or newer")
start = (img[0x1F1] or 4) * 512 + 512 + struct.unpack_from("<I", img, 0x248)[0]
length = struct.unpack_from("<I", img, 0x24C)[0]
if img[start:start + 6] != b"\xfd7zXZ\x00":
    sys.exit(f"{sys.argv[1]}: its payload is not XZ; nothing to gain")
open(f"{work}/payload.xz", "wb").write(img[start:start + length])
kv = struct.unpack_from("<H", img, 0x20E)[0] + 0x200
open(f"{work}/kernel_version", "wb").write(img[kv:img.index(b"\0", kv)])
EOF
# The XZ stream ends with the 4-byte size kbuild appends: --single-stream stops before it.
xz -dc --single-stream "$work/payload.xz" > "$work/vmlinux.bin.all"
rm "$work/payload.xz"

# "6.1.0-57-amd64 (debian-kernel@lists.debian.org) #1 SMP ... Debian 6.1.192-3 (2026-11-26)"
kernel_version=$(cat "$work/kernel_version")
release=${kernel_version%% *}
by=$(sed -n 's/^[^ ]* (\([^@]*\)@\([^)]*\)) .*/\1/p' "$work/kernel_version")
host=$(sed -n 's/^[^ ]* (\([^@]*\)@\([^)]*\)) .*/\2/p' "$work/kernel_version")
uts_version=$(sed -n 's/^[^ ]* ([^)]*) \(.*\)$/\1/p' "$work/kernel_version")
[ -n "$by" ] && [ -n "$uts_version" ] || { log "cannot parse the kernel version string: $kernel_version"; exit 1; }

# The source of the same kernel: Debian's linux-source-X.Y package at the
# version of the linux source package VMLINUZ was built from.
debver=$(sed -n 's/.* Debian \([^ ]*\) .*/\1/p' "$work/kernel_version")
series=$(echo "$release" | cut -d. -f1,2)
log "fetching linux-source-$series $debver"
( cd "$work" && apt-get download -q -o APT::Sandbox::User=root "linux-source-$series=$debver" >/dev/null )
dpkg-deb --fsys-tarfile "$work"/linux-source-*.deb | tar -x -C "$work" --wildcards './usr/src/linux-source-*.tar.xz'
rm "$work"/linux-source-*.deb
tar -xf "$work"/usr/src/linux-source-*.tar.xz -C "$work"
rm -rf "$work/usr"
src=$(echo "$work"/linux-source-*)

# The kernel proper's symbols the boot wrapper needs (arch/x86/boot/voffset.h),
# read off the payload's ELF headers: Debian's System.map is a stub. _end is
# the page-aligned end of .brk (arch/x86/kernel/vmlinux.lds.S).
python3 - "$work/vmlinux.bin.all" > "$work/voffset.S" <<'EOF'
import struct, sys
e = open(sys.argv[1], "rb").read()
assert e[:4] == b"\x7fELF" and e[4] == 2, "payload is not a 64-bit ELF"
shoff, = struct.unpack_from("<Q", e, 0x28)
phoff, = struct.unpack_from("<Q", e, 0x20)
phentsize, phnum, shentsize, shnum, shstrndx = struct.unpack_from("<HHHHH", e, 0x36)
def sh(i):
    name, _type, _flags, addr, off, size = struct.unpack_from("<IIQQQQ", e, shoff + i * shentsize)
    return name, addr, off, size
strtab = sh(shstrndx)[2]
secs = {}
for i in range(shnum):
    name, addr, _, size = sh(i)
    secs[e[strtab + name:e.index(b"\0", strtab + name)].decode()] = (addr, size)
loads = [struct.unpack_from("<IIQQ", e, phoff + i * phentsize) for i in range(phnum)]
text = min(vaddr for ptype, _, _, vaddr in loads if ptype == 1 and vaddr >= 1 << 63)
brk_end = secs[".brk"][0] + secs[".brk"][1]
syms = {"_text": text, "__start_rodata": secs[".rodata"][0], "__bss_start": secs[".bss"][0],
        "_end": (brk_end + 4095) & ~4095}
# The layout arch/x86/kernel/vmlinux.lds.S gives them; the final check below
# compares the payload, not these, so a wrong value must stop here.
assert text == secs[".text"][0], "_text is not where .text starts"
assert syms["_text"] < syms["__start_rodata"] < syms["__bss_start"] < syms["_end"], syms
print(".globl " + ", ".join(syms))
for k, v in syms.items():
    print(f"{k} = {v:#x}")
EOF
as -o "$src/vmlinux" "$work/voffset.S"

cp "$config" "$src/.config"
"$src/scripts/config" --file "$src/.config" --disable KERNEL_XZ --enable KERNEL_ZSTD
printf '#define UTS_VERSION "%s"\n' "$uts_version" > "$work/utsversion.h"
# Only the boot wrapper: the EFI stub's library, the generated tables the
# wrapper includes, then arch/x86/boot/bzImage around the original payload
# (vmlinux.bin.all-y, the compressor's input, given on the command line).
cat > "$work/wrapper.mk" <<'EOF'
abswitch-bzimage: prepare
	$(Q)cp $(ABSWITCH_UTSVERSION) include/generated/utsversion.h
	$(Q)$(MAKE) $(build)=drivers/firmware/efi/libstub
	$(Q)$(MAKE) $(build)=arch/x86/kernel/cpu arch/x86/kernel/cpu/capflags.c
	$(Q)$(MAKE) $(build)=arch/x86/lib arch/x86/lib/inat-tables.c
	$(Q)$(MAKE) $(build)=arch/x86/boot arch/x86/boot/bzImage
EOF
log "building the boot wrapper of $release with a zstd payload"
make -C "$src" -s -j"$JOBS" olddefconfig >/dev/null
grep -qx 'CONFIG_KERNEL_ZSTD=y' "$src/.config" || { log "kbuild did not take KERNEL_ZSTD"; exit 1; }
make -C "$src" -s -j"$JOBS" -f Makefile -f "$work/wrapper.mk" \
	KERNELRELEASE="$release" KBUILD_BUILD_USER="$by" KBUILD_BUILD_HOST="$host" \
	ABSWITCH_UTSVERSION="$work/utsversion.h" vmlinux.bin.all-y="$work/vmlinux.bin.all" \
	abswitch-bzimage >"$work/build.log" 2>&1 || { tail -20 "$work/build.log" >&2; exit 1; }

# The check: the same kernel proper, the same version string.
python3 - "$src/arch/x86/boot/bzImage" "$work" <<'EOF'
import struct, subprocess, sys
img, work = open(sys.argv[1], "rb").read(), sys.argv[2]
start = (img[0x1F1] or 4) * 512 + 512 + struct.unpack_from("<I", img, 0x248)[0]
payload = img[start:start + struct.unpack_from("<I", img, 0x24C)[0]]
body = subprocess.run(["zstd", "-dc"], input=payload[:-4], capture_output=True, check=True).stdout
original = open(f"{work}/vmlinux.bin.all", "rb").read()
if body != original or struct.unpack("<I", payload[-4:])[0] != len(original):
    sys.exit("the zstd payload is not the original kernel")
kv = struct.unpack_from("<H", img, 0x20E)[0] + 0x200
if img[kv:img.index(b"\0", kv)] != open(f"{work}/kernel_version", "rb").read():
    sys.exit("the rebuilt wrapper names another kernel version")
EOF
mkdir -p "$(dirname "$out")"
cp "$src/arch/x86/boot/bzImage" "$out.tmp"
mv "$out.tmp" "$out"
log "ok: $out ($(stat -c %s "$out") bytes; Debian's XZ image $(stat -c %s "$vmlinuz"))"
