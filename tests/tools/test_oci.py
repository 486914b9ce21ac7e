"""abctl install from OCI layouts and a registry that must be refused, without
a VM: each case checks the message and that disk, EFI variables and ESP are
byte-for-byte unchanged (no partial UKI left on the ESP either). The
installs that succeed, and the failures that happen while streaming into
the slot, boot in tests/e2e/test_registry.py."""

import hashlib
import json
import sys
from pathlib import Path

import pytest
from test_hostile import E2E, Machine

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))
from registry import Registry  # noqa: E402


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
