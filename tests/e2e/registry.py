"""A real OCI registry for the tests: Debian's docker-registry (the CNCF
distribution registry) on loopback, over TLS with a CA made for the test,
images pushed with skopeo. And a TCP proxy in front of it that can cut or
stall the stream, to play a flaky network.

The guest reaches the host's loopback at 10.0.2.2 (QEMU's user network),
which the test root's /etc/hosts calls registry.abswitch.test: the
certificate names that (mbedtls 2.28, under abctl's libcurl, matches DNS
names only, not IP addresses) and 127.0.0.1 for skopeo on the host."""

import json
import socket
import subprocess
import threading
import time
from pathlib import Path

GUEST_HOST = "registry.abswitch.test"   # 10.0.2.2 in the test root's /etc/hosts


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_ca(d):
    """A CA and a server certificate for registry.abswitch.test and 127.0.0.1 (openssl)."""
    d.mkdir(parents=True, exist_ok=True)
    def ssl(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=d)
    ssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
        "-days", "2", "-subj", "/CN=abswitch test CA")
    ssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
        "-subj", f"/CN={GUEST_HOST}")
    (d / "ext.cnf").write_text(f"subjectAltName=DNS:{GUEST_HOST},IP:127.0.0.1\n")
    ssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "server.crt", "-days", "2", "-extfile", "ext.cnf")
    return d / "ca.crt"


class Registry:
    def __init__(self, workdir):
        self.dir = Path(workdir) / "registry"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.ca = make_ca(self.dir / "tls")
        self.port = free_port()
        self.storage = self.dir / "storage"
        self.proc = None

    def start(self):
        cfg = self.dir / "config.yml"
        cfg.write_text(
            "version: 0.1\n"
            "log:\n  level: warn\n"
            f"storage:\n  filesystem:\n    rootdirectory: {self.storage}\n  delete:\n    enabled: true\n"
            f"http:\n  addr: 127.0.0.1:{self.port}\n"
            f"  tls:\n    certificate: {self.dir / 'tls/server.crt'}\n    key: {self.dir / 'tls/server.key'}\n")
        self.log = open(self.dir / "registry.log", "ab")
        self.proc = subprocess.Popen(["docker-registry", "serve", str(cfg)], stdout=self.log,
                                     stderr=subprocess.STDOUT)
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"docker-registry did not start; see {self.dir / 'registry.log'}")

    def stop(self):
        if self.proc:
            self.proc.terminate()
            self.proc.wait()
            self.proc = None

    def push(self, layout, tag, repo="abswitch/os"):
        """skopeo copy oci:LAYOUT:TAG docker://127.0.0.1:PORT/REPO:TAG, TLS verified."""
        certs = self.dir / "skopeo-certs"
        certs.mkdir(exist_ok=True)
        (certs / "ca.crt").write_bytes(self.ca.read_bytes())
        subprocess.run(["skopeo", "copy", "--quiet", "--dest-cert-dir", str(certs), f"oci:{layout}:{tag}",
                        f"docker://127.0.0.1:{self.port}/{repo}:{tag}"], check=True, capture_output=True)

    def blob_file(self, digest):
        """Where the registry keeps a blob's bytes (its filesystem driver's layout)."""
        hexd = digest.split(":", 1)[1]
        return self.storage / "docker/registry/v2/blobs/sha256" / hexd[:2] / hexd / "data"

    def guest_ref(self, tag, repo="abswitch/os", port=None):
        return guest_ref(port or self.port, tag, repo)


def guest_ref(port, tag=None, repo="abswitch/os", digest=None):
    """The reference abctl in the guest uses: GUEST_HOST:PORT/REPO:TAG or @DIGEST."""
    return f"{GUEST_HOST}:{port}/{repo}" + (f"@{digest}" if digest else f":{tag}")


def layout_index_digest(layout, tag):
    """The digest of the manifest an OCI layout tags tag (skopeo keeps it when pushing)."""
    index = json.loads((Path(layout) / "index.json").read_text())
    for m in index["manifests"]:
        if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag:
            return m["digest"]
    raise KeyError(tag)


def layout_manifest(layout, tag):
    """The manifest (parsed) that an OCI layout holds for tag."""
    d = layout_index_digest(layout, tag).split(":", 1)[1]
    return json.loads((Path(layout) / "blobs/sha256" / d).read_text())


class Proxy:
    """TCP proxy 127.0.0.1:port -> the registry. It counts the bytes the
    registry sends (over all connections); past cut_after it closes the
    connection that carries them (once), past stall_after it stops sending
    anything, for good."""

    def __init__(self, target_port, cut_after=None, stall_after=None):
        self.target = target_port
        self.cut_after, self.stall_after = cut_after, stall_after
        self.sent = 0
        self.cuts = 0
        self.stalled = threading.Event()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.lock = threading.Lock()
        self.closing = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.closing:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            try:
                u = socket.create_connection(("127.0.0.1", self.target))
            except OSError:
                c.close()
                continue
            threading.Thread(target=self._pump, args=(c, u, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(u, c, True), daemon=True).start()

    def _pump(self, src, dst, downstream):
        try:
            while True:
                data = src.recv(16384)
                if not data:
                    break
                if downstream:
                    with self.lock:
                        if self.stall_after is not None and self.sent + len(data) > self.stall_after:
                            self.stalled.set()
                        if self.cut_after is not None and self.cuts == 0 and self.sent + len(data) > self.cut_after:
                            self.cuts += 1
                            break
                        if not self.stalled.is_set():
                            self.sent += len(data)
                    if self.stalled.is_set():
                        while not self.closing:
                            time.sleep(0.1)
                        break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()

    def close(self):
        self.closing = True
        self.sock.close()
