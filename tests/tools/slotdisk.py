"""What the abctl and hostile-input rigs share: a slot's GPT state written
with cgpt, and EFI variables read from a stand-in efivarfs directory."""

import subprocess

GLOBAL = "8be4df61-93ca-11d2-aa0d-00e098032b8c"


class SlotDisk:
    """Mixed into a rig with .disk (a GPT image) and .efivars (a directory)."""

    def set_state(self, slot, priority, tries=0, successful=False):
        part = {"A": "2", "B": "4"}[slot]
        subprocess.run(["cgpt", "add", "-i", part, "-P", str(priority), "-T", str(tries),
                        "-S", "1" if successful else "0", self.disk], check=True, capture_output=True)

    def var(self, name):
        p = self.efivars / f"{name}-{GLOBAL}"
        return p.read_bytes()[4:] if p.exists() else None

    def slot(self, slot):
        """A slot's state as cgpt reads it (ChromeOS bits), plus abswitch's armed bit 57."""
        part = {"A": "2", "B": "4"}[slot]
        def cg(flag):
            return int(subprocess.run(["cgpt", "show", "-i", part, flag, self.disk], check=True,
                                      capture_output=True, text=True).stdout)
        raw = int(subprocess.run(["cgpt", "show", "-i", part, "-A", self.disk], check=True,
                                 capture_output=True, text=True).stdout, 16)
        return {"priority": cg("-P"), "tries": cg("-T"), "successful": bool(cg("-S")), "armed": bool(raw & 0x200)}

    def partition_bytes(self, partno, n):
        """The first n bytes of partition partno, found with sgdisk."""
        out = subprocess.run(["sgdisk", "-i", str(partno), str(self.disk)], check=True, capture_output=True,
                             text=True).stdout
        start = int(out.split("First sector: ")[1].split()[0]) * 512
        with open(self.disk, "rb") as f:
            f.seek(start)
            return f.read(n)
