"""A real OCI registry for the tests: Debian's docker-registry (the CNCF
distribution registry) on loopback, over TLS with a CA made for the test,
images pushed with skopeo; optionally behind token authentication, with a
token service the test runs (TokenIssuer). And fronts that play a bad
network: a TCP proxy in front of it that can cut, stall or throttle the
stream, and a server that drips its response headers (Trickle).

The guest reaches the host's loopback at 10.0.2.2 (QEMU's user network),
which the test root's /etc/hosts calls registry.abswitch.test: the
certificate names that (mbedtls 2.28, under abctl's libcurl, matches DNS
names only, not IP addresses) and 127.0.0.1 for skopeo on the host."""

import base64
import http.server
import json
import socket
import ssl
import subprocess
import threading
import time
import urllib.parse
import uuid
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


def serve_https(handler, tls_dir):
    """A threading HTTPS server on loopback with handler, the certificate in
    tls_dir (server.crt, server.key), serving in a daemon thread."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(Path(tls_dir) / "server.crt", Path(tls_dir) / "server.key")
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


class Registry:
    def __init__(self, workdir):
        self.dir = Path(workdir) / "registry"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.ca = make_ca(self.dir / "tls")
        self.port = free_port()
        self.storage = self.dir / "storage"
        self.proc = None

    def start(self, issuer=None, htpasswd=None):
        """Serves the storage; with issuer (a TokenIssuer), only to its tokens
        (the registry's own token authentication, auth: token:); with htpasswd
        (a file of bcrypt lines, make_htpasswd), only to those users (HTTP Basic)."""
        cfg = self.dir / "config.yml"
        auth = ""
        if htpasswd:
            auth = f"auth:\n  htpasswd:\n    realm: abswitch-test\n    path: {htpasswd}\n"
        if issuer:
            auth = ("auth:\n  token:\n"
                    f"    realm: {issuer.realm}\n    service: {issuer.service}\n"
                    f"    issuer: {issuer.issuer}\n    rootcertbundle: {issuer.cert}\n")
        cfg.write_text(
            "version: 0.1\n"
            "log:\n  level: warn\n"
            f"storage:\n  filesystem:\n    rootdirectory: {self.storage}\n  delete:\n    enabled: true\n"
            f"http:\n  addr: 127.0.0.1:{self.port}\n"
            f"  tls:\n    certificate: {self.dir / 'tls/server.crt'}\n    key: {self.dir / 'tls/server.key'}\n"
            + auth)
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

    def push(self, layout, tag, repo="abswitch/os", creds=None):
        """skopeo copy oci:LAYOUT:TAG docker://127.0.0.1:PORT/REPO:TAG, TLS verified;
        creds "user:password" for a registry that wants them (--dest-creds)."""
        certs = self.dir / "skopeo-certs"
        certs.mkdir(exist_ok=True)
        (certs / "ca.crt").write_bytes(self.ca.read_bytes())
        subprocess.run(["skopeo", "copy", "--quiet", "--dest-cert-dir", str(certs),
                        *(["--dest-creds", creds] if creds else []), f"oci:{layout}:{tag}",
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


def make_htpasswd(path, users):
    """An htpasswd file for docker-registry, which takes only bcrypt lines:
    htpasswd -B (apache2-utils) where installed, else glibc's crypt(3) via
    python3's crypt module ($2b$, which Go's bcrypt reads)."""
    lines = []
    for user, password in users.items():
        try:
            r = subprocess.run(["htpasswd", "-nbB", user, password], check=True, capture_output=True, text=True)
            lines.append(r.stdout.strip())
        except FileNotFoundError:
            import warnings
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                try:
                    import crypt    # gone in Python 3.13: then htpasswd is needed
                except ImportError:
                    raise RuntimeError("no bcrypt here: install apache2-utils (htpasswd -B)") from None
            # cost 5, not 12: the registry checks it on every request
            lines.append(f"{user}:{crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=32))}")
    Path(path).write_text("\n".join(lines) + "\n")
    return Path(path)


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenIssuer:
    """The token service of the distribution token authentication
    (docs/spec/auth/token.md), run by the test: HTTPS on loopback with the
    registry's TLS certificate (tls_dir, from make_ca). It answers
    GET /token?service=S&scope=repository:NAME:ACTIONS anonymously with a
    JWT signed RS256 (python3-cryptography) by a key of its own, whose
    self-signed certificate the registry trusts (its rootcertbundle) and
    which each token carries in its x5c header, as registry 2.8 wants. It
    grants pull, and only pull, on the repositories in grant.
    answer(token) -> dict replaces the JSON it sends (a hostile token
    service). requests: the query of each request, parsed. rotate() makes
    a new signing key (self.cert): a registry restarted with it refuses
    the tokens signed before. users ({name: password}): tokens only for a
    request with those Basic credentials (else 401), or for a POST with
    grant_type=refresh_token and a refresh_token in refresh_tokens (OAuth 2,
    docs/spec/auth/oauth.md; else 401); each request's Authorization header
    is in requests[i]["authorization"], its method in ["method"]."""

    service = "abswitch-test-registry"
    issuer = "abswitch-test-issuer"

    def __init__(self, workdir, tls_dir, grant=("abswitch/os",), answer=None, host="127.0.0.1", users=None,
                 refresh_tokens=()):
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import padding

        self.dir = Path(workdir) / "token-issuer"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.grant, self.answer, self.requests = set(grant), answer, []
        self.users, self.refresh_tokens = users, set(refresh_tokens)
        self.keys = 0
        outer = self

        def new_key():
            """A signing key and its self-signed certificate, self.cert."""
            self.keys += 1
            subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                            f"sign{self.keys}.key", "-out", f"sign{self.keys}.crt", "-days", "2", "-subj",
                            f"/CN=abswitch test token signer {self.keys}"],
                           check=True, capture_output=True, cwd=self.dir)
            self.cert = self.dir / f"sign{self.keys}.crt"
            self.key = serialization.load_pem_private_key((self.dir / f"sign{self.keys}.key").read_bytes(), None)
            self.der = x509.load_pem_x509_certificate(self.cert.read_bytes()).public_bytes(serialization.Encoding.DER)
        self.rotate = new_key
        new_key()

        def sign(claims):
            header = {"typ": "JWT", "alg": "RS256", "x5c": [base64.b64encode(outer.der).decode()]}
            msg = b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode())
            return msg + "." + b64url(outer.key.sign(msg.encode(), padding.PKCS1v15(), hashes.SHA256()))

        class H(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                self.do_GET(urllib.parse.parse_qs(self.rfile.read(n).decode()))

            def do_GET(self, form=None):
                url = urllib.parse.urlsplit(self.path)
                q = urllib.parse.parse_qs(url.query) if form is None else form
                q["authorization"] = [self.headers.get("Authorization", "")]
                q["method"] = [self.command]
                outer.requests.append(q)
                if url.path != "/token":
                    self.send_error(404)
                    return
                if outer.users is not None or outer.refresh_tokens:
                    basic = ["Basic " + base64.b64encode(f"{u}:{p}".encode()).decode() for u, p in
                             (outer.users or {}).items()]
                    ok = (q["authorization"][0] in basic if form is None else
                          q.get("grant_type") == ["refresh_token"] and
                          q.get("refresh_token", [None])[0] in outer.refresh_tokens)
                    if not ok:
                        self.send_response(401)
                        self.send_header("WWW-Authenticate", 'Basic realm="abswitch-test-token"')
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                access = []
                for scope in q.get("scope", []):
                    kind, _, rest = scope.partition(":")
                    name, _, actions = rest.rpartition(":")
                    if kind == "repository" and name in outer.grant and "pull" in actions.split(","):
                        access.append({"type": "repository", "name": name, "actions": ["pull"]})
                now = int(time.time())
                token = sign({"iss": outer.issuer, "sub": "", "aud": q.get("service", [""])[0],
                              "exp": now + 300, "nbf": now - 10, "iat": now, "jti": str(uuid.uuid4()),
                              "access": access})
                body = json.dumps(outer.answer(token) if outer.answer else {"token": token, "expires_in": 300})
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body.encode())))
                self.end_headers()
                self.wfile.write(body.encode())

            def log_message(self, *args):
                pass

        self.server = serve_https(H, tls_dir)
        self.port = self.server.server_address[1]
        self.realm = f"https://{host}:{self.port}/token"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class Trickle:
    """A plain-HTTP server on loopback that answers every request with
    response (bytes), rate bytes a second, after the first `fast` of them at
    once: a registry that holds its client with headers, or a body, dripped
    just fast enough to look alive. connections counts the requests."""

    def __init__(self, response, rate=1, fast=0):
        self.response, self.rate, self.fast = response, rate, fast
        self.connections = 0
        self.closing = False
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.closing:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        try:
            request = b""
            while b"\r\n\r\n" not in request:
                data = c.recv(4096)
                if not data:
                    return
                request += data
            c.sendall(self.response[:self.fast])
            for i in range(self.fast, len(self.response)):
                if self.closing:
                    break
                c.sendall(self.response[i:i + 1])
                time.sleep(1 / self.rate)
        except OSError:
            pass
        finally:
            c.close()

    def close(self):
        self.closing = True
        self.sock.close()


class Proxy:
    """TCP proxy 127.0.0.1:port -> the registry. It counts the bytes the
    registry sends (over all connections); past cut_after it closes the
    connection that carries them (once; on_cut() runs first, the client
    waiting), past stall_after it stops sending anything, for good; past
    rate_after it passes them on at rate bytes a
    second (a slow link, or a registry that trickles)."""

    def __init__(self, target_port, cut_after=None, stall_after=None, rate=None, rate_after=0, on_cut=None):
        self.target = target_port
        self.on_cut = on_cut
        self.cut_after, self.stall_after = cut_after, stall_after
        self.rate, self.rate_after = rate, rate_after
        self.sent = 0
        self.cut_at = None          # time.monotonic() of the cut
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
                throttled = False
                if downstream:
                    with self.lock:
                        if self.stall_after is not None and self.sent + len(data) > self.stall_after:
                            self.stalled.set()
                        if self.cut_after is not None and self.cuts == 0 and self.sent + len(data) > self.cut_after:
                            self.cuts += 1
                            self.cut_at = time.monotonic()
                            if self.on_cut:
                                self.on_cut()
                            break
                        throttled = self.rate is not None and self.sent >= self.rate_after
                        if not self.stalled.is_set():
                            self.sent += len(data)
                    if self.stalled.is_set():
                        while not self.closing:
                            time.sleep(0.1)
                        break
                    if throttled:
                        piece = max(1, self.rate // 20)
                        for i in range(0, len(data), piece):
                            if self.closing:
                                break
                            dst.sendall(data[i:i + piece])
                            time.sleep(len(data[i:i + piece]) / self.rate)
                        continue
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


class HttpFront:
    """An HTTPS front of a Registry, on loopback with the registry's own
    certificate (the same --ca works; the guest reaches it at GUEST_HOST
    like the registry): it forwards every request and streams every answer
    back, and counts what it served: requests (method, path, the Range
    header asked, status), body bytes (bytes; served: per path). ignore_range=True drops the
    client's Range header, as a registry or CDN that does not do ranges:
    every blob request then gets 200 and the whole blob."""

    def __init__(self, registry, ignore_range=False):
        import http.client
        self.ignore_range = ignore_range
        self.requests, self.bytes, self.served = [], 0, {}
        self.lock = threading.Lock()
        outer = self
        upstream = ssl.create_default_context(cafile=str(registry.ca))

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body are separate writes: with Nagle each small
            # answer waited for the client's delayed ACK, 40 ms a request.
            disable_nagle_algorithm = True

            def do_GET(self):
                self.forward("GET")

            def do_HEAD(self):
                self.forward("HEAD")

            def forward(self, method):
                asked = self.headers.get("Range")
                drop = {"host", "connection"} | ({"range"} if outer.ignore_range else set())
                hdrs = {k: v for k, v in self.headers.items() if k.lower() not in drop}
                # One upstream connection per client connection, kept alive
                # like the client's (a delta makes thousands of requests).
                conn = getattr(self, "upstream", None)
                if conn is None:
                    conn = self.upstream = http.client.HTTPSConnection("127.0.0.1", registry.port,
                                                                       context=upstream, timeout=60)
                try:
                    try:
                        conn.request(method, self.path, headers=hdrs)
                        resp = conn.getresponse()
                    except (http.client.HTTPException, OSError):
                        conn.close()        # the registry closed it: once more on a new one
                        conn.request(method, self.path, headers=hdrs)
                        resp = conn.getresponse()
                    length = resp.getheader("Content-Length")
                    body = None if length is not None or method == "HEAD" else resp.read()
                    with outer.lock:
                        outer.requests.append((method, self.path, asked, resp.status))
                    self.send_response(resp.status)
                    for k, v in resp.getheaders():
                        if k.lower() not in ("connection", "transfer-encoding", "content-length"):
                            self.send_header(k, v)
                    self.send_header("Content-Length", length if body is None else str(len(body)))
                    self.end_headers()
                    if method == "HEAD":
                        return
                    if body is not None:
                        chunks = [body]
                    else:
                        chunks = iter(lambda: resp.read(65536), b"")
                    for chunk in chunks:
                        self.wfile.write(chunk)
                        with outer.lock:
                            outer.bytes += len(chunk)
                            outer.served[self.path] = outer.served.get(self.path, 0) + len(chunk)
                except BaseException:
                    conn.close()
                    raise

            def log_message(self, *args):
                pass

        self.server = serve_https(H, registry.dir / "tls")
        self.port = self.server.server_address[1]

    def blob_bytes(self, digest):
        """Body bytes served of blob digest."""
        return sum(n for p, n in self.served.items() if p.endswith(f"/blobs/{digest}"))

    def blob_requests(self):
        """The requests for blobs: (path, Range asked, status)."""
        return [(p, r, s) for m, p, r, s in self.requests if "/blobs/" in p]

    def close(self):
        self.server.shutdown()
        self.server.server_close()
