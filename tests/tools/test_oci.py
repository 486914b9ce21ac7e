"""abctl install from OCI layouts and a registry that must be refused, without
a VM: each case checks the message and that disk, EFI variables and ESP are
byte-for-byte unchanged (no partial UKI left on the ESP either). The
installs that succeed, and the failures that happen while streaming into
the slot, boot in tests/e2e/test_registry.py.

The registry flows that must get through (token authentication, a cut that
resumes) run here against a real docker-registry as whole installs: every
blob is fetched, checked and written into slot B of the disk image, which
the install pipeline exposes as loop devices (one per partition: the host's
loop devices get no partition nodes, FACTS.md) to verify it on the disk,
and slot B ends on trial and armed."""

import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_hostile import E2E, ENV, PC, Machine

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))
from registry import Proxy, Registry, TokenIssuer, Trickle  # noqa: E402


def blob(layout, data):
    d = hashlib.sha256(data).hexdigest()
    (layout / "blobs/sha256" / d).write_bytes(data)
    return {"digest": f"sha256:{d}", "size": len(data)}


def make_layout(layout, uki, image=E2E / "slot-b-commit", tag="v2", config_type="application/vnd.abswitch.os.config.v1+json",
                **config):
    """An OCI layout of the abswitch artifact, written by hand, with config fields overridden."""
    (layout / "blobs/sha256").mkdir(parents=True)
    img = Path(f"{image}.img").read_bytes()
    tree = Path(f"{image}.verity").read_bytes()
    cfg = {"os": "linux", "architecture": "amd64", "name": "test", "version": "2",
           "roothash": Path(f"{image}.roothash").read_text().strip(), "dataSize": len(img), "hashSize": len(tree)}
    cfg.update(config)
    c = blob(layout, json.dumps(cfg).encode()) | {"mediaType": config_type}
    u = blob(layout, Path(uki).read_bytes()) | {"mediaType": "application/vnd.abswitch.uki.v1"}
    s = blob(layout, img + tree) | {"mediaType": "application/vnd.abswitch.system.v1"}
    man = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                      "config": c, "layers": [u, s]}).encode()
    m = blob(layout, man) | {"mediaType": "application/vnd.oci.image.manifest.v1+json",
                             "annotations": {"org.opencontainers.image.ref.name": tag}}
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [m]}))
    (layout / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    return {"config": c, "uki": u, "system": s}


@pytest.fixture
def m(tmp_path):
    return Machine(tmp_path)


def refused(m, ref, says, *opts):
    before = m.fingerprint()
    r = m.abctl(*opts, "install", ref)
    assert r.returncode == 1, r.stderr
    assert says in r.stderr, r.stderr
    assert "Nothing was changed" in r.stderr, r.stderr
    assert m.fingerprint() == before
    return r


def test_unknown_tag(m, tmp_path):
    make_layout(tmp_path / "oci", m.ukis["b-commit"])
    refused(m, f"oci:{tmp_path}/oci:v3", "no image is tagged 'v3' here (tags: v2)")


def test_not_a_layout(m, tmp_path):
    refused(m, f"oci:{tmp_path}:v2", "is not an OCI image layout")


def test_wrong_architecture(m, tmp_path):
    make_layout(tmp_path / "oci", m.ukis["b-commit"], architecture="arm64")
    refused(m, f"oci:{tmp_path}/oci:v2", "is for linux/arm64; this machine is linux/amd64")


def test_container_image_refused(m, tmp_path):
    make_layout(tmp_path / "oci", m.ukis["b-commit"], config_type="application/vnd.oci.image.config.v1+json")
    refused(m, f"oci:{tmp_path}/oci:v2", "this is not an abswitch OS image")


def test_uki_pins_another_hash(m, tmp_path):
    # The config names v2's root hash, the UKI pins B's: downloaded to the
    # ESP next to the current UKI, found out, removed again.
    make_layout(tmp_path / "oci", m.ukis["b"])
    refused(m, f"oci:{tmp_path}/oci:v2", "they do not belong together")


def test_too_big_for_the_slot(m, tmp_path):
    make_layout(tmp_path / "oci", m.ukis["b-commit"], image=E2E / "slot-a-net")
    refused(m, f"oci:{tmp_path}/oci:v2", "does not fit slot B")


def test_missing_blob(m, tmp_path):
    blobs = make_layout(tmp_path / "oci", m.ukis["b-commit"])
    (tmp_path / "oci/blobs/sha256" / blobs["config"]["digest"][7:]).unlink()
    refused(m, f"oci:{tmp_path}/oci:v2", "Cannot open")


def test_bad_reference(m):
    refused(m, "fleet/os:v2", "abctl has no default registry")
    refused(m, "registry.example.com/Fleet:v2", "is not a repository name")


def test_registry_certificate_not_trusted(m, tmp_path):
    # A real registry over TLS whose CA the machine does not know.
    reg = Registry(tmp_path).start()
    try:
        refused(m, f"127.0.0.1:{reg.port}/abswitch/os:v2", "does not verify", "--timeout", "5")
    finally:
        reg.stop()


class Answers:
    """A plain-HTTP server on loopback answering every request with the next
    status of a list (the last one repeats), counting requests."""

    def __init__(self, *statuses, headers=None):
        import http.server
        import threading
        self.statuses, self.requests = list(statuses), 0
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                code = outer.statuses[min(outer.requests, len(outer.statuses) - 1)]
                outer.requests += 1
                body = b'{"errors":[{"code":"X","message":"test says %d"}]}' % code
                self.send_response(code)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()


@pytest.mark.parametrize("status", [429, 500, 502, 503])
def test_transient_status_retried_until_deadline(m, status):
    srv = Answers(status, headers={"Retry-After": "1"} if status == 429 else None)
    try:
        r = refused(m, f"127.0.0.1:{srv.port}/abswitch/os:v2", "Giving up on 127.0.0.1", "--plain-http",
                    "--timeout", "4")
    finally:
        srv.close()
    assert f"HTTP {status}" in r.stderr
    assert srv.requests >= 3, r.stderr       # 0.5 s, 1 s, 2 s (or Retry-After: 1 s) within 4 s
    assert "retrying in" in r.stderr


@pytest.mark.parametrize("status,says", [(401, "refuses access"), (403, "refuses access"), (404, "has no image v2"),
                                         (400, "failed: HTTP 400")])
def test_permanent_status_fails_at_once(m, status, says):
    srv = Answers(status)
    try:
        r = refused(m, f"127.0.0.1:{srv.port}/abswitch/os:v2", says, "--plain-http", "--timeout", "30")
    finally:
        srv.close()
    assert srv.requests == 1, r.stderr
    assert "retrying" not in r.stderr


# ---- registry flows that must get through, and registries that hold abctl -------

def run_abctl(m, *args, limit):
    """m.abctl with a time limit (a hung abctl fails the test, not the run) and its duration."""
    t0 = time.monotonic()
    try:
        r = subprocess.run([PC / "abctl", "--disk", m.disk, "--efivars", m.efivars, "--esp", m.esp,
                            "--record", "/nonexistent", "--running", "A", *map(str, args)],
                           capture_output=True, text=True, env=ENV, timeout=limit)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"abctl still running after {limit} s:\n{e.stderr}")
    return r, time.monotonic() - t0


def partition(disk, name):
    """(offset, size) in bytes of the partition called name."""
    t = json.loads(subprocess.run(["sfdisk", "--json", disk], check=True, capture_output=True, text=True).stdout)
    p = next(p for p in t["partitiontable"]["partitions"] if p.get("name") == name)
    return p["start"] * 512, p["size"] * 512


def fetched_into_slot_b(m, r, blobs):
    """The whole install on the host (the pipeline exposes an image file's
    partitions as loop devices, so what landed is verified on the disk):
    the system layer is in slot B byte for byte, B is on trial and armed."""
    assert r.returncode == 0, r.stderr
    assert "verified on the disk against root hash" in r.stdout, r.stdout
    img = (E2E / "slot-b-commit.img").read_bytes()
    tree = (E2E / "slot-b-commit.verity").read_bytes()
    assert f"Wrote {(len(img) + len(tree)) / 1048576:.1f} MiB into slot B" in r.stderr, r.stderr
    off, _ = partition(m.disk, "system-b")
    hoff, _ = partition(m.disk, "system-b-verity")
    with open(m.disk, "rb") as f:
        f.seek(off)
        assert f.read(len(img)) == img
        f.seek(hoff)
        assert f.read(len(tree)) == tree
    assert hashlib.sha256(img + tree).hexdigest() == blobs["system"]["digest"][7:]
    assert m.slot("B") == {"priority": 2, "tries": 2, "successful": False, "armed": True}
    assert m.var("BootNext") is not None
    assert not (m.esp / "EFI/abswitch/boot-b.efi.new").exists()


@pytest.fixture
def pushed(m, tmp_path):
    """A real registry holding the test image as abswitch/os:v2 (not started)."""
    blobs = make_layout(tmp_path / "oci", m.ukis["b-commit"])
    reg = Registry(tmp_path).start()
    reg.push(tmp_path / "oci", "v2")
    reg.stop()
    return reg, blobs


@pytest.fixture
def token_registry(pushed, tmp_path):
    """The registry of `pushed` behind token authentication: start(**issuer options)."""
    reg, _ = pushed
    started = []

    def start(**kw):
        issuer = TokenIssuer(tmp_path, reg.dir / "tls", **kw)
        reg.start(issuer=issuer)
        started.append(issuer)
        return issuer
    yield start
    reg.stop()
    for i in started:
        i.close()


@pytest.mark.parametrize("field", ["token", "access_token"])
def test_registry_token_auth(m, pushed, token_registry, field):
    # A real docker-registry that serves only to tokens its token service
    # signed. abctl's first request gets 401 and a Bearer challenge; it
    # fetches an anonymous token for repository:abswitch/os:pull (the
    # answer's "token", or OAuth 2's "access_token" with no expires_in) and
    # pulls with it. Before the fix, the token request handed its headers
    # to the token callback as the registry request's state, and every
    # registry that asks for a token was "refusing access".
    reg, blobs = pushed
    issuer = token_registry(answer=(lambda t: {"access_token": t}) if field == "access_token" else None)
    anonymous = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", reg.ca,
                                f"https://127.0.0.1:{reg.port}/v2/abswitch/os/manifests/v2"],
                               capture_output=True, text=True)
    assert anonymous.stdout == "401"     # the registry does want a token
    r, _ = run_abctl(m, "--ca", reg.ca, "--timeout", "20", "install", f"127.0.0.1:{reg.port}/abswitch/os:v2",
                     limit=120)
    assert "refuses access" not in r.stderr, r.stderr
    assert f"Got a token for repository:abswitch/os:pull from {issuer.realm}" in r.stderr, r.stderr
    assert len(issuer.requests) == 1, issuer.requests       # one token served the whole install
    assert issuer.requests[0]["service"] == [TokenIssuer.service]
    assert issuer.requests[0]["scope"] == ["repository:abswitch/os:pull"]
    fetched_into_slot_b(m, r, blobs)


@pytest.mark.parametrize("token", ["{t}\r\nX-Injected: 1", "{t}\nX-Injected: 1", "{t}\x00", "{t} {t}"])
def test_registry_token_with_control_characters_refused(m, pushed, token_registry, token):
    # A token service whose token would add a header of its choosing to
    # every request abctl sends the registry: refused before it is used.
    reg, _ = pushed
    token_registry(answer=lambda t: {"token": token.format(t=t)})
    r = refused(m, f"127.0.0.1:{reg.port}/abswitch/os:v2", "refusing to copy it into a request header",
                "--ca", reg.ca, "--timeout", "20")
    assert "The token from https://127.0.0.1:" in r.stderr, r.stderr


def test_registry_token_without_access_fails_clearly(m, pushed, token_registry):
    # The token service issues tokens, but none grants pull: the registry
    # answers 401 again with a token just issued. One token, then a clear
    # refusal, not a loop of tokens or retries.
    reg, _ = pushed
    issuer = token_registry(grant=())
    r = refused(m, f"127.0.0.1:{reg.port}/abswitch/os:v2", "even with a token just issued by", "--ca", reg.ca,
                "--timeout", "20")
    assert len(issuer.requests) == 1, r.stderr
    assert "retrying" not in r.stderr


def test_late_cut_resumes(m, pushed):
    # A slow but steady link (200 KiB/s, well above the 16 KiB/s abctl takes
    # for progress) cut once 900 KB into the transfer, inside the system
    # layer, when the install has run longer than --timeout (3 s). Before,
    # --timeout counted from the start of the install and the cut transfer
    # was given up at once; now it resumes where it stopped (Range).
    reg, blobs = pushed
    reg.start()
    timeout = 3
    proxy = Proxy(reg.port, cut_after=900_000, rate=200 * 1024)
    try:
        t0 = time.monotonic()
        r, took = run_abctl(m, "--ca", reg.ca, "--timeout", timeout, "install",
                            f"127.0.0.1:{proxy.port}/abswitch/os:v2", limit=120)
    finally:
        proxy.close()
        reg.stop()
    assert proxy.cuts == 1, r.stderr
    assert proxy.cut_at - t0 > timeout + 1, (proxy.cut_at - t0, r.stderr)
    assert "Giving up" not in r.stderr, r.stderr
    assert "retrying in" in r.stderr and "(resuming)" in r.stderr, r.stderr
    assert took > timeout * 2
    fetched_into_slot_b(m, r, blobs)


MANIFEST_HEADERS = (b"HTTP/1.1 200 OK\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\n"
                    b"Docker-Distribution-Api-Version: registry/2.0\r\nContent-Length: 400\r\n\r\n" + b"{" * 400)


@pytest.mark.parametrize("front", ["body", "headers"])
def test_trickling_registry_bounded_by_timeout(m, pushed, front):
    # body: the real registry behind a proxy that passes 16 KiB, then 2 KiB/s
    # (above the old 1 KiB/s stall limit, so the old abctl took it as a slow
    # transfer and waited for the whole image: hours); the trickle begins
    # in the UKI's blob, before anything of the slot is written.
    # headers: a server that drips its response headers, a byte a second
    # (the old abctl waited 30 s per attempt, whatever --timeout said).
    # Either way abctl gives up within --timeout and a little, and says why.
    reg, _ = pushed
    timeout = 5
    if front == "body":
        reg.start()
        srv = Proxy(reg.port, rate=2048, rate_after=16 * 1024)
        opts = ("--ca", reg.ca)
    else:
        srv = Trickle(MANIFEST_HEADERS, rate=1)
        opts = ("--plain-http",)
    before = m.fingerprint()
    try:
        r, took = run_abctl(m, *opts, "--timeout", timeout, "install", f"127.0.0.1:{srv.port}/abswitch/os:v2",
                            limit=timeout + 60)
    finally:
        srv.close()
        reg.stop()
    assert r.returncode == 1, r.stderr
    assert took < timeout + 5, (took, r.stderr)
    assert f"no progress for {timeout} s (--timeout)" in r.stderr, r.stderr
    assert "Nothing was changed" in r.stderr, r.stderr
    assert m.fingerprint() == before


def test_registry_token_renewed_after_401(m, pushed, token_registry):
    # Mid-install, 300 KB into the transfer (inside the system layer), the
    # connection is cut and the registry restarts trusting a new token
    # signing key (a key rotation): the retry with the token abctl holds is
    # refused with 401; abctl gets one fresh token and resumes. (Token
    # expiry would do the same, but registry 2.8 allows 60 s past "exp".)
    reg, blobs = pushed
    issuer = token_registry()

    def rotate():
        reg.stop()
        issuer.rotate()
        reg.start(issuer=issuer)
    proxy = Proxy(reg.port, cut_after=300_000, on_cut=rotate)
    try:
        r, _ = run_abctl(m, "--ca", reg.ca, "--timeout", "20", "install", f"127.0.0.1:{proxy.port}/abswitch/os:v2",
                         limit=120)
    finally:
        proxy.close()
    assert proxy.cuts == 1
    assert len(issuer.requests) == 2, r.stderr
    assert r.stderr.count("Got a token for repository:abswitch/os:pull") == 2, r.stderr
    assert "(resuming)" in r.stderr, r.stderr
    fetched_into_slot_b(m, r, blobs)
