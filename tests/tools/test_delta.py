"""Delta installs (abctl/delta.c) on the host: glibc abctl, the disk image's
partitions as loop devices, a real docker-registry behind an HTTPS front
(tests/e2e/registry.py HttpFront) that counts what it serves and can ignore
Range. The images are a pair made here with mkslot: v1, and v2 = v1 with
one changed file and one new one. Every case checks what landed in slot B
byte for byte, and that the running slot A's partitions were not written."""

import hashlib
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_hostile import E2E, ENV, PC, TOP, Machine
from test_install import loops_on, partition_bytes, prio
from test_oci import make_layout

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))
from registry import HttpFront, Registry, serve_https  # noqa: E402

B = 4096


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """v1 and v2 image prefixes (mkslot, EROFS): B's commit root plus 1.5 MiB
    of files; v2 changes one small file and adds one."""
    d = tmp_path_factory.mktemp("pair")
    v1 = d / "root-v1"
    shutil.copytree(E2E / "root-b-commit", v1, symlinks=True)
    rnd = __import__("random").Random(7)
    for i in range(6):
        (v1 / f"usr/data{i}").write_bytes(rnd.randbytes(256 * 1024))
    v2 = d / "root-v2"
    shutil.copytree(v1, v2, symlinks=True)
    (v2 / "etc/os-release").write_text((v1 / "etc/os-release").read_text() + "DELTA=2\n")
    (v2 / "usr/new-in-v2").write_bytes(rnd.randbytes(40 * 1024))
    for name, root in (("v1", v1), ("v2", v2)):
        subprocess.run([TOP / "initramfs/mkslot", "--root", root, "--output", d / name], check=True,
                       capture_output=True)
    return d / "v1", d / "v2"


class DeltaMachine(Machine):
    """Machine (test_hostile) with chosen images in slots A and B."""

    def __init__(self, tmp, a_image, b_image):
        super().__init__(tmp)
        self.disk.unlink()
        subprocess.run([TOP / "initramfs/mkdisk", "--output", self.disk, "--a-image", a_image,
                        "--a-uki", self.ukis["a"], "--b-image", b_image, "--b-uki", self.ukis["b"],
                        "--esp-size", "64M", "--slot-size", "8M", "--verity-size", "1M"],
                       check=True, capture_output=True)
        assert self.boot("\\EFI\\abswitch\\boot-a.efi").returncode == 0

    def a_partitions(self):
        return partition_bytes(self.disk, 2), partition_bytes(self.disk, 3)

    def b_holds(self, prefix):
        """Slot B's partitions begin with prefix.img and prefix.verity."""
        for part, ext in ((4, "img"), (5, "verity")):
            want = Path(f"{prefix}.{ext}").read_bytes()
            info = subprocess.run(["sgdisk", "-i", str(part), self.disk], capture_output=True, text=True,
                                  check=True).stdout
            first = int(info.split("First sector: ")[1].split()[0])
            with open(self.disk, "rb") as f:
                f.seek(first * 512)
                if f.read(len(want)) != want:
                    return False
        return True


def delta_line(stderr):
    """(fetched MiB, requests, reused MiB, in place, from the running slot, moved) of the delta's last line."""
    m = re.search(r"by delta in [\d.]+ s: fetched ([\d.]+) MiB in (\d+) requests .*reused ([\d.]+) MiB "
                  r"\(([\d.]+) MiB in place, ([\d.]+) MiB from the running slot, ([\d.]+) MiB moved\)", stderr)
    assert m, stderr
    return tuple(float(x) for x in m.groups())


def installed_v2(m, r, v2):
    assert r.returncode == 0, r.stderr
    assert "verified on the disk against root hash" in r.stdout, r.stdout
    assert m.b_holds(v2)
    assert m.slot("B") == {"priority": 2, "tries": 2, "successful": False, "armed": True}
    assert loops_on(m.disk) == ""


@pytest.fixture
def v2_uki(pair, tmp_path):
    def make(m):
        return m.uki("v2", f"@{pair[1]}.roothash", version="2")
    return make


def test_delta_from_the_running_slot(pair, tmp_path, v2_uki):
    # A runs v1, B holds an unrelated old image: v2's blocks come from A,
    # read-only; A's partitions are byte for byte what they were.
    v1, v2 = pair
    m = DeltaMachine(tmp_path, v1, E2E / "slot-b")
    a_before = m.a_partitions()
    r = m.abctl("--delta", "yes", "install", v2, v2_uki(m))
    installed_v2(m, r, v2)
    fetched, requests, reused, in_place, running, moved = delta_line(r.stderr)
    size = Path(f"{v2}.img").stat().st_size / 1048576
    assert running > 0.8 * size, r.stderr
    assert fetched < 0.2 * size, r.stderr
    assert m.a_partitions() == a_before
    # Only as much of each slot as its image (its hash partition's superblock), not the 8 MiB slots.
    hashed = float(re.search(r"([\d.]+) MiB of local blocks hashed", r.stderr).group(1))
    olds = (Path(f"{v1}.img").stat().st_size + (E2E / "slot-b.img").stat().st_size) / 1048576
    assert hashed == pytest.approx(olds, abs=0.05), r.stderr


def test_delta_within_the_target_slot(pair, tmp_path, v2_uki):
    # A holds an unrelated image, B holds v1: v2 is made of B's own blocks,
    # most in place, some moved (read into memory first when their place is
    # overwritten).
    v1, v2 = pair
    m = DeltaMachine(tmp_path, E2E / "slot-a", v1)
    a_before = m.a_partitions()
    r = m.abctl("--delta", "yes", "install", v2, v2_uki(m))
    installed_v2(m, r, v2)
    fetched, requests, reused, in_place, running, moved = delta_line(r.stderr)
    size = Path(f"{v2}.img").stat().st_size / 1048576
    assert in_place + moved > 0.8 * size, r.stderr
    assert fetched < 0.2 * size, r.stderr
    assert m.a_partitions() == a_before


def test_delta_again_fetches_only_the_tree(pair, tmp_path, v2_uki):
    # The same image installed twice: the second time every block is in
    # place; only the tree is fetched, nothing of the data is written.
    v1, v2 = pair
    m = DeltaMachine(tmp_path, E2E / "slot-a", E2E / "slot-b")
    uki = v2_uki(m)
    installed_v2(m, m.abctl("--delta", "no", "install", v2, uki), v2)
    r = m.abctl("--delta", "yes", "--force", "install", v2, uki)
    installed_v2(m, r, v2)
    fetched, requests, reused, in_place, running, moved = delta_line(r.stderr)
    assert fetched == pytest.approx(Path(f"{v2}.verity").stat().st_size / 1048576, abs=0.05), r.stderr
    assert requests == 1, r.stderr
    assert in_place == pytest.approx(Path(f"{v2}.img").stat().st_size / 1048576, abs=0.05)


def install_through(m, reg, front, *opts):
    return subprocess.run([PC / "abctl", "--disk", m.disk, "--efivars", m.efivars, "--esp", m.esp,
                           "--record", "/nonexistent", "--running", "A", "--ca", reg.ca, "--timeout", "30", *opts,
                           "install", f"127.0.0.1:{front.port}/abswitch/os:v2"],
                          capture_output=True, text=True, env=ENV, timeout=300)


def test_delta_falls_back_without_range(pair, tmp_path):
    # Two machines alike (A runs v1, B holds an old image) install v2 from
    # the same real registry: one through a front that ignores Range (it
    # answers the tree's Range request with the whole blob, 200), the other
    # through one that passes Range on. The first says it falls back and
    # downloads the whole image; the second fetches a delta. Both slots end
    # byte for byte v2, verified; the delta served far fewer bytes.
    v1, v2 = pair
    reg = Registry(tmp_path / "reg").start()
    results = {}
    try:
        for ignore in (True, False):
            (tmp_path / f"m-{ignore}").mkdir()
            m = DeltaMachine(tmp_path / f"m-{ignore}", v1, E2E / "slot-b")
            layout = tmp_path / f"oci-{ignore}"
            if ignore:
                blobs = make_layout(layout, m.uki("v2", f"@{v2}.roothash", version="2"), image=v2)
                reg.push(layout, "v2")
            front = HttpFront(reg, ignore_range=ignore)
            a_before = m.a_partitions()
            try:
                r = install_through(m, reg, front)
            finally:
                front.close()
            installed_v2(m, r, v2)
            assert m.a_partitions() == a_before
            results[ignore] = (r, front)
    finally:
        reg.stop()

    full, full_front = results[True]
    assert "does not honour Range requests (it answered a Range request with the whole blob (HTTP 200)): " \
           "downloading the whole image" in full.stderr, full.stderr
    total = (Path(f"{v2}.img").stat().st_size + Path(f"{v2}.verity").stat().st_size)
    assert f"Wrote {total / 1048576:.1f} MiB into slot B in" in full.stderr, full.stderr
    assert "by delta" not in full.stderr
    assert full_front.bytes > total, full_front.bytes
    # The fallback asked for the tree once (cut off at the first bytes), then the whole blob.
    system = blobs["system"]["digest"]
    asked = [(rng, status) for p, rng, status in full_front.blob_requests() if p.endswith(system)]
    assert asked[0][0] == f"bytes={Path(f'{v2}.img').stat().st_size}-{total - 1}" and asked[0][1] == 200, asked
    assert asked[-1] == (None, 200), asked

    delta, delta_front = results[False]
    assert "by delta" in delta.stderr, delta.stderr
    fetched, requests, *_ = delta_line(delta.stderr)
    assert requests <= 4096
    sys_requests = [x for x in delta_front.blob_requests() if x[0].endswith(system)]
    assert all(status == 206 for _, _, status in sys_requests), sys_requests
    assert len(sys_requests) == requests, (sys_requests, delta.stderr)
    uki_and_config = blobs["uki"]["size"] + blobs["config"]["size"]
    assert delta_front.bytes - uki_and_config < 0.2 * total, (delta_front.bytes, delta.stderr)
    assert delta_front.bytes < full_front.bytes / 2


def test_delta_tree_not_pinned_fails_before_data(pair, tmp_path):
    # The system layer's tree is another image's (v1's) while the UKI pins
    # v2's root hash: the delta finds it in the tree, before a data block is
    # written; B stays not bootable, A untouched.
    v1, v2 = pair
    m = DeltaMachine(tmp_path, v1, E2E / "slot-b")
    a_before = m.a_partitions()
    b_before = partition_bytes(m.disk, 4)
    make_layout(tmp_path / "oci", m.uki("v2", f"@{v2}.roothash", version="2"), image=v1,
                roothash=Path(f"{v2}.roothash").read_text().strip())
    r = m.abctl("install", f"oci:{tmp_path}/oci:v2")
    assert r.returncode == 1
    assert "The hash tree of oci:" in r.stderr and "is not the one its UKI pins: hash block 0 of level 1 " \
           "does not match the root hash the UKI pins" in r.stderr, r.stderr
    assert "slot B stays not bootable, slot A is untouched" in r.stderr, r.stderr
    assert prio(m, "B") == 0
    assert partition_bytes(m.disk, 4) == b_before
    assert m.a_partitions() == a_before


@pytest.mark.parametrize("field,value,says", [
    (0, b"VERITY", "no dm-verity superblock"),
    (32, b"sha1\0\0", "hashes with \"sha1\""),
    (72, (10**9).to_bytes(8, "little"), "the superblock says 1000000000 data blocks"),
])
def test_delta_bad_superblock_refused(pair, tmp_path, field, value, says):
    # A superblock that lies (the bytes come from the registry before
    # anything is verified): refused with the field named.
    v1, v2 = pair
    m = DeltaMachine(tmp_path, v1, E2E / "slot-b")
    bad = tmp_path / "bad"
    shutil.copy(f"{v2}.img", f"{bad}.img")
    tree = bytearray(Path(f"{v2}.verity").read_bytes())
    tree[field:field + len(value)] = value
    Path(f"{bad}.verity").write_bytes(bytes(tree))
    shutil.copy(f"{v2}.roothash", f"{bad}.roothash")
    make_layout(tmp_path / "oci", m.uki("v2", f"@{v2}.roothash", version="2"), image=bad,
                roothash=Path(f"{v2}.roothash").read_text().strip())
    r = m.abctl("install", f"oci:{tmp_path}/oci:v2")
    assert r.returncode == 1
    assert says in r.stderr, r.stderr
    assert "slot B stays not bootable, slot A is untouched" in r.stderr, r.stderr


def test_delta_tampered_block_named(pair, tmp_path):
    # One byte of a block that only v2 has, changed in the registry's
    # storage: the block is checked against the tree when it arrives and
    # named; nothing of it is written; B stays not bootable.
    v1, v2 = pair
    m = DeltaMachine(tmp_path, v1, E2E / "slot-b")
    blobs = make_layout(tmp_path / "oci", m.uki("v2", f"@{v2}.roothash", version="2"), image=v2)
    reg = Registry(tmp_path / "reg").start()
    try:
        reg.push(tmp_path / "oci", "v2")
        img1, img2 = Path(f"{v1}.img").read_bytes(), Path(f"{v2}.img").read_bytes()
        have = {hashlib.sha256(img1[i:i + B]).digest() for i in range(0, len(img1), B)}
        new = [i // B for i in range(0, len(img2), B) if hashlib.sha256(img2[i:i + B]).digest() not in have]
        assert new
        blob = reg.blob_file(blobs["system"]["digest"])
        data = bytearray(blob.read_bytes())
        data[new[0] * B + 100] ^= 1
        blob.write_bytes(bytes(data))
        front = HttpFront(reg)
        try:
            r = install_through(m, reg, front)
        finally:
            front.close()
    finally:
        reg.stop()
    assert r.returncode == 1
    assert f"Block {new[0]} of 127.0.0.1:" in r.stderr and "does not match the image's hash tree: it was " \
           "corrupted or tampered with in the registry or on the way" in r.stderr, r.stderr
    assert "slot B stays not bootable" in r.stderr
    assert prio(m, "B") == 0


def test_delta_local_read_error_falls_back(pair, tmp_path, v2_uki):
    # Reading the running slot's data partition fails (EIO, injected: an
    # LD_PRELOAD shim fails pread on the loop device at A's offset; this
    # host has no dm-error or nbd): one line says so, the whole image is
    # read instead, B ends v2, A unchanged.
    v1, v2 = pair
    shim = tmp_path / "failpread.so"
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", shim, Path(__file__).parent / "failpread.c", "-ldl"],
                   check=True)
    m = DeltaMachine(tmp_path, v1, E2E / "slot-b")
    a_before = m.a_partitions()
    info = subprocess.run(["sgdisk", "-i", "2", m.disk], capture_output=True, text=True, check=True).stdout
    a_offset = int(info.split("First sector: ")[1].split()[0]) * 512
    env = ENV | {"LD_PRELOAD": str(shim), "FAILPREAD_OFFSET": str(a_offset),
                 "ASAN_OPTIONS": "detect_leaks=0:verify_asan_link_order=0"}
    r = subprocess.run([PC / "abctl", "--disk", m.disk, "--efivars", m.efivars, "--esp", m.esp, "--record",
                        "/nonexistent", "--running", "A", "--delta", "yes", "install", v2, v2_uki(m)],
                       capture_output=True, text=True, env=env)
    installed_v2(m, r, v2)
    assert re.search(r"slot B: reading /dev/loop\d+ at byte 0 failed \(Input/output error\): downloading the "
                     r"whole image instead of a delta", r.stderr), r.stderr
    assert "by delta" not in r.stderr
    assert m.a_partitions() == a_before


class LyingFront:
    """An HTTPS front of a real Registry (its own certificate, as HttpFront)
    that answers the system blob's Range requests for data blocks (the
    tree's request passes) with a lie: "longer" (206, the right
    Content-Range, the bytes asked and 4 KiB more), "shorter" (the right
    Content-Range, 100 bytes less), "other" (206 with the bytes and
    Content-Range of the next block). Everything else is passed on."""

    def __init__(self, registry, system_digest, data_size, lie):
        import http.client
        import http.server
        import ssl
        upstream = ssl.create_default_context(cafile=str(registry.ca))
        self.lies = 0
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def do_GET(self):
                asked = self.headers.get("Range")
                hdrs = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection", "range")}
                first = last = None
                if asked and self.path.endswith(system_digest):
                    first, last = (int(x) for x in asked.split("=")[1].split("-"))
                if first is None or first >= data_size:
                    if asked:
                        hdrs["Range"] = asked
                    first = None
                conn = http.client.HTTPSConnection("127.0.0.1", registry.port, context=upstream, timeout=60)
                conn.request("GET", self.path, headers=hdrs)
                resp = conn.getresponse()
                body = resp.read()
                status, headers = resp.status, [(k, v) for k, v in resp.getheaders()
                                                if k.lower() not in ("connection", "transfer-encoding",
                                                                     "content-length", "content-range")]
                crange = resp.getheader("Content-Range")
                conn.close()
                if first is not None and status == 200:
                    outer.lies += 1
                    status = 206
                    if lie == "longer":
                        body, crange = body[first:last + 1 + B], f"bytes {first}-{last}/{len(body)}"
                    elif lie == "shorter":
                        body, crange = body[first:last + 1 - 100], f"bytes {first}-{last}/{len(body)}"
                    else:
                        body, crange = body[first + B:last + 1 + B], f"bytes {first + B}-{last + B}/{len(body)}"
                self.send_response(status)
                for k, v in headers:
                    self.send_header(k, v)
                if crange:
                    self.send_header("Content-Range", crange)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_HEAD = None

            def log_message(self, *args):
                pass

        def head(h):
            conn = http.client.HTTPSConnection("127.0.0.1", registry.port, context=upstream, timeout=60)
            conn.request("HEAD", h.path, headers={k: v for k, v in h.headers.items()
                                                  if k.lower() not in ("host", "connection")})
            resp = conn.getresponse()
            resp.read()
            h.send_response(resp.status)
            for k, v in resp.getheaders():
                if k.lower() not in ("connection", "transfer-encoding"):
                    h.send_header(k, v)
            h.end_headers()
            conn.close()
        H.do_HEAD = head
        self.server = serve_https(H, registry.dir / "tls")
        self.port = self.server.server_address[1]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize("lie,says", [
    ("longer", "with more than the"),
    ("shorter", "it answered bytes"),
    ("other", "with Content-Range"),
])
def test_delta_lying_range_answers_fall_back(pair, tmp_path, lie, says):
    # The registry answers the data blocks' Range requests wrongly, after
    # the tree's (right) one, so the slot is already being written: every
    # lie is "does not do ranges right", said, and the whole image is
    # downloaded instead (checked by its digest); B ends v2, A untouched.
    # A longer answer than asked was an error naming the blob's descriptor
    # ("longer than the 4096 bytes its descriptor says"), and no fallback.
    v1, v2 = pair
    m = DeltaMachine(tmp_path, v1, E2E / "slot-b")
    blobs = make_layout(tmp_path / "oci", m.uki("v2", f"@{v2}.roothash", version="2"), image=v2)
    reg = Registry(tmp_path / "reg").start()
    a_before = m.a_partitions()
    try:
        reg.push(tmp_path / "oci", "v2")
        front = LyingFront(reg, blobs["system"]["digest"], Path(f"{v2}.img").stat().st_size, lie)
        try:
            r = install_through(m, reg, front)
        finally:
            front.close()
    finally:
        reg.stop()
    assert front.lies >= 1
    assert "stopped honouring Range requests" in r.stderr and says in r.stderr, r.stderr
    assert "downloading the whole image" in r.stderr, r.stderr
    installed_v2(m, r, v2)
    assert m.a_partitions() == a_before
