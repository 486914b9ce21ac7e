"""Read and write EFI variables in an OVMF VARS file, offline.

The tests put real Boot#### entries, BootOrder and BootNext into the
per-test copy of OVMF_VARS_4M.fd before a boot, and read what the firmware
and the init left there afterwards. Debian 12 has no tool for this
(virt-firmware is not packaged), so this follows EDK2's formats:

  firmware volume header (MdePkg/Include/Pi/PiFirmwareVolume.h), then
  VARIABLE_STORE_HEADER (MdeModulePkg/Include/Guid/VariableFormat.h) with
  the authenticated-variable GUID, then AUTHENTICATED_VARIABLE_HEADER
  records: StartId 0x55AA, State, Attributes, MonotonicCount, TimeStamp,
  PubKeyIndex, NameSize, DataSize, VendorGuid; then the name and the data,
  unpadded (EDK2's ALIGNMENT is 1 on x86), the next header 4-byte aligned.

A changed variable is written the way EDK2 does it: the old record is
marked deleted and a new one appended.
"""

import struct
import uuid

AUTH_VAR_STORE_GUID = uuid.UUID("aaf32c78-947b-439a-a180-2e144ec37792")
EFI_GLOBAL = uuid.UUID("8be4df61-93ca-11d2-aa0d-00e098032b8c")
EFI_LOADER = uuid.UUID("4a67b082-0a4c-41cf-b6c7-440b29bb8c4f")

VAR_ADDED = 0x3F
VAR_DELETED_MASK = 0xFD  # clears VAR_DELETED (bit 1): 0x3F -> 0x3D
VAR_IN_DELETED_TRANSITION = 0x3E
HDR = struct.Struct("<HBBIQ16sIII16s")  # 60 bytes

NV_BS_RT = 7


def _pad4(n):
    return (-n) & 3


class VarStore:
    def __init__(self, path):
        self.path = path
        with open(path, "rb") as f:
            self.buf = bytearray(f.read())
        if self.buf[40:44] != b"_FVH":
            raise ValueError(f"{path}: no firmware volume header")
        hlen = struct.unpack_from("<H", self.buf, 48)[0]
        guid = uuid.UUID(bytes_le=bytes(self.buf[hlen:hlen + 16]))
        if guid != AUTH_VAR_STORE_GUID:
            raise ValueError(f"{path}: variable store is {guid}, not the authenticated format")
        self.store_size = struct.unpack_from("<I", self.buf, hlen + 16)[0]
        self.start = hlen + 28
        self.end = hlen + self.store_size

    def _records(self):
        off = self.start
        while off + HDR.size <= self.end:
            (start_id, state, _r, attrs, _mc, _ts, _pk, nsize, dsize, guid) = HDR.unpack_from(self.buf, off)
            if start_id != 0x55AA:
                break
            name_off = off + HDR.size
            data_off = name_off + nsize
            name = bytes(self.buf[name_off:name_off + nsize]).decode("utf-16-le").rstrip("\0")
            data = bytes(self.buf[data_off:data_off + dsize])
            yield off, state, attrs, name, uuid.UUID(bytes_le=guid), data
            off = data_off + dsize
            off += _pad4(off)
        self._free = off

    def variables(self):
        """{(name, guid): (attrs, data)} of the live variables."""
        out = {}
        for _off, state, attrs, name, guid, data in self._records():
            if state in (VAR_ADDED, VAR_IN_DELETED_TRANSITION):
                out[(name, guid)] = (attrs, data)
        return out

    def get(self, name, guid=EFI_GLOBAL):
        v = self.variables().get((name, guid))
        return v[1] if v else None

    def _delete(self, name, guid):
        for off, state, _a, n, g, _d in list(self._records()):
            if n == name and g == guid and state in (VAR_ADDED, VAR_IN_DELETED_TRANSITION):
                self.buf[off + 2] = state & VAR_DELETED_MASK

    def set(self, name, data, guid=EFI_GLOBAL, attrs=NV_BS_RT):
        self._delete(name, guid)
        if data is None:
            return
        list(self._records())
        off = self._free
        # The area past the last record is erased flash (0xff); the next
        # record's start id goes where the erased area begins.
        name_b = (name + "\0").encode("utf-16-le")
        rec = HDR.pack(0x55AA, VAR_ADDED, 0, attrs, 0, b"\0" * 16, 0, len(name_b), len(data), guid.bytes_le)
        rec += name_b + data
        if off + len(rec) > self.end:
            raise ValueError("variable store full")
        self.buf[off:off + len(rec)] = rec

    def save(self):
        with open(self.path, "wb") as f:
            f.write(self.buf)

    # ---- boot manager variables -------------------------------------------------

    def boot_order(self):
        d = self.get("BootOrder")
        return list(struct.unpack(f"<{len(d) // 2}H", d)) if d else []

    def set_boot_order(self, order):
        self.set("BootOrder", struct.pack(f"<{len(order)}H", *order))

    def boot_next(self):
        d = self.get("BootNext")
        return struct.unpack("<H", d)[0] if d and len(d) == 2 else None

    def set_boot_next(self, n):
        self.set("BootNext", None if n is None else struct.pack("<H", n))

    def set_boot_option(self, num, description, esp, path, active=True, optional_data=b""):
        self.set(f"Boot{num:04X}", load_option(description, esp, path, active, optional_data))

    def set_boot_option_raw(self, num, data):
        """Boot#### as raw EFI_LOAD_OPTION bytes; None deletes it."""
        self.set(f"Boot{num:04X}", data)

    def boot_options(self):
        out = {}
        for (name, guid), (_a, data) in self.variables().items():
            if guid == EFI_GLOBAL and len(name) == 8 and name.startswith("Boot") and name[4:] != "Next":
                try:
                    out[int(name[4:], 16)] = parse_load_option(data)
                except ValueError:
                    pass
        return out


def load_option(description, esp, path, active=True, optional_data=b""):
    """EFI_LOAD_OPTION: HD(partno,GPT,uuid,start,size)/File(path)/End, then
    the optional data (UEFI 2.10 section 3.1.3), which the firmware passes to
    the image as its load options: what `efibootmgr -u "..."` writes (UCS-2)
    and what systemd-stub takes as the kernel command line.

    esp: dict with partno, partuuid, start, size (sectors)."""
    hd = struct.pack("<BBHIQQ16sBB", 4, 1, 42, esp["partno"], esp["start"], esp["size"],
                     uuid.UUID(esp["partuuid"]).bytes_le, 2, 2)
    p = (path + "\0").encode("utf-16-le")
    fp = struct.pack("<BBH", 4, 4, 4 + len(p)) + p
    dp = hd + fp + struct.pack("<BBH", 0x7F, 0xFF, 4)
    desc = (description + "\0").encode("utf-16-le")
    return struct.pack("<IH", 1 if active else 0, len(dp)) + desc + dp + optional_data


def ucs2(s):
    """A command line as efibootmgr -u writes it: UCS-2 (UTF-16LE), NUL-terminated."""
    return (s + "\0").encode("utf-16-le")


def parse_load_option(data):
    attrs, fpl = struct.unpack_from("<IH", data, 0)
    i = 6
    while data[i:i + 2] != b"\0\0":
        i += 2
    desc = data[6:i].decode("utf-16-le")
    dp = data[i + 2:i + 2 + fpl]
    path = None
    off = 0
    while off + 4 <= len(dp):
        t, s, ln = struct.unpack_from("<BBH", dp, off)
        if t == 0x7F or ln < 4:
            break
        if t == 4 and s == 4:
            path = dp[off + 4:off + ln].decode("utf-16-le").rstrip("\0")
        off += ln
    return {"active": bool(attrs & 1), "description": desc, "path": path,
            "optional_data": bytes(data[i + 2 + fpl:])}
