"""abctl install from a private registry: credentials from a containers auth
file (containers-auth.json(5), what podman login and skopeo login write),
found through --authfile, else $REGISTRY_AUTH_FILE, else
/etc/abswitch/auth.json. Against a real docker-registry with htpasswd
authentication (HTTP Basic; its bcrypt lines from htpasswd -B or glibc's
crypt, registry.make_htpasswd), images pushed with skopeo --dest-creds, and
against the registry behind the test's token service (TokenIssuer) giving
tokens only for credentials. Installs run whole, into slot B of a disk
image (test_oci.fetched_into_slot_b); refusals leave disk, EFI variables and
ESP byte-identical. No secret may appear in anything abctl prints."""

import base64
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_hostile import ENV, PC
from test_oci import fetched_into_slot_b, m, make_layout, pushed, token_registry  # noqa: F401 (fixtures)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))
from registry import Registry, TokenIssuer, make_htpasswd  # noqa: E402

USER, PASSWORD = "fleet", "S3cret-p4ss:word"      # a ':' in a password is allowed
WRONG = "Wr0ng-p4ss-Xyzzy"
REF = "127.0.0.1:{port}/abswitch/os:v2"


def auth_file(path, key, user=USER, password=PASSWORD, **entry):
    """A containers auth file with one entry, as podman login writes it."""
    if user is not None:
        entry["auth"] = base64.b64encode(f"{user}:{password}".encode()).decode()
    path.write_text(json.dumps({"auths": {key: entry}}, indent="\t"))
    return path


def abctl(m, *args, env=None, limit=120):
    """abctl install on m's disk with an environment of env added to the tests' own."""
    t0 = time.monotonic()
    try:
        r = subprocess.run([PC / "abctl", "--disk", m.disk, "--efivars", m.efivars, "--esp", m.esp,
                            "--record", "/nonexistent", "--running", "A", *map(str, args)],
                           capture_output=True, text=True, env=ENV | (env or {}), timeout=limit)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"abctl still running after {limit} s:\n{e.stderr}")
    return r, time.monotonic() - t0


def no_secret(r, *secrets):
    """None of the secrets, nor their base64, in anything abctl printed."""
    out = r.stdout + r.stderr
    for s in secrets:
        for form in (s, base64.b64encode(f"{USER}:{s}".encode()).decode()):
            assert form not in out, f"{form!r} printed:\n{out}"


@pytest.fixture
def private(m, tmp_path):
    """A real docker-registry with htpasswd auth, holding the test image as
    abswitch/os:v2, pushed by skopeo with --dest-creds. Yields (registry,
    blobs, log) where log() is what the registry logged since the start."""
    blobs = make_layout(tmp_path / "oci", m.ukis["b-commit"])
    reg = Registry(tmp_path)
    htpasswd = make_htpasswd(tmp_path / "htpasswd", {USER: PASSWORD})
    reg.start(htpasswd=htpasswd)
    reg.push(tmp_path / "oci", "v2", creds=f"{USER}:{PASSWORD}")
    start = (reg.dir / "registry.log").stat().st_size

    def read():
        with open(reg.dir / "registry.log", "rb") as f:
            f.seek(start)
            return f.read().decode(errors="replace")

    def log():
        # The registry writes a request's access line just after its
        # response: read until two reads 0.3 s apart agree (at most 5 s).
        text = read()
        for _ in range(16):
            time.sleep(0.3)
            again = read()
            if again == text:
                break
            text = again
        return text
    yield reg, blobs, log
    reg.stop()


def abctl_requests(log):
    """The registry's access-log lines of abctl's requests."""
    return [line for line in log.splitlines() if '"abctl/' in line and '] "GET ' in line]


def test_registry_basic_auth(m, private, tmp_path):
    # The registry wants a password (anonymous: 401, Basic challenge); abctl
    # reads it from --authfile, answers the challenge and installs.
    reg, blobs, log = private
    anonymous = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", reg.ca,
                                f"https://127.0.0.1:{reg.port}/v2/abswitch/os/manifests/v2"],
                               capture_output=True, text=True)
    assert anonymous.stdout == "401"
    key = f"127.0.0.1:{reg.port}"
    f = auth_file(tmp_path / "auth.json", key)
    r, _ = abctl(m, "--ca", reg.ca, "--timeout", "20", "--authfile", f, "install", REF.format(port=reg.port))
    assert f'Credentials for {key}: "{key}" in {f}' in r.stderr, r.stderr
    fetched_into_slot_b(m, r, blobs)
    no_secret(r, PASSWORD)
    assert "authentication failure" not in log()


def test_registry_wrong_credentials_fail_fast(m, private, tmp_path):
    # A wrong password: the registry's 401 to the one request that carried
    # it is final. abctl names the registry, the auth file and its key, and
    # changes nothing; the registry saw abctl twice (the anonymous request
    # that got the challenge, and the one with the password) and one failed
    # authentication. The password is nowhere in what abctl printed.
    reg, _, log = private
    key = f"127.0.0.1:{reg.port}"
    f = auth_file(tmp_path / "auth.json", key, password=WRONG)
    before = m.fingerprint()
    r, took = abctl(m, "--ca", reg.ca, "--timeout", "20", "--authfile", f, "install", REF.format(port=reg.port))
    assert r.returncode == 1, r.stderr
    assert f'{key} refuses the credentials of "{key}" in {f} for abswitch/os (HTTP 401)' in r.stderr, r.stderr
    assert "user name or password is wrong" in r.stderr, r.stderr
    assert "Nothing was changed" in r.stderr, r.stderr
    assert "retrying" not in r.stderr, r.stderr
    assert took < 10, took
    assert m.fingerprint() == before
    no_secret(r, WRONG, PASSWORD)
    text = log()
    assert len(abctl_requests(text)) == 2, text
    assert text.count(f'error authenticating user \\"{USER}\\"') == 1, text


def test_registry_auth_file_from_environment(m, private, tmp_path):
    # No --authfile: $REGISTRY_AUTH_FILE is read, and its most specific key
    # wins (host/namespace over host, whose password is wrong).
    reg, blobs, _ = private
    key = f"127.0.0.1:{reg.port}"
    f = tmp_path / "env-auth.json"
    f.write_text(json.dumps({"auths": {
        key: {"auth": base64.b64encode(f"{USER}:{WRONG}".encode()).decode()},
        f"{key}/abswitch": {"auth": base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()}}}))
    r, _ = abctl(m, "--ca", reg.ca, "--timeout", "20", "install", REF.format(port=reg.port),
                 env={"REGISTRY_AUTH_FILE": str(f)})
    assert f'"{key}/abswitch" in {f}' in r.stderr, r.stderr
    fetched_into_slot_b(m, r, blobs)
    no_secret(r, PASSWORD, WRONG)


@pytest.mark.parametrize("how", ["--authfile", "REGISTRY_AUTH_FILE"])
def test_registry_auth_file_missing_refused(m, private, tmp_path, how):
    # A file the operator named that is not there is an error, before any
    # request; only the default /etc/abswitch/auth.json may be missing.
    reg, _, log = private
    missing = tmp_path / "no-such-auth.json"
    opts, env = (("--authfile", missing), None) if how == "--authfile" else ((), {"REGISTRY_AUTH_FILE": str(missing)})
    before = m.fingerprint()
    r, _ = abctl(m, "--ca", reg.ca, *opts, "install", REF.format(port=reg.port), env=env)
    assert r.returncode == 1, r.stderr
    src = "--authfile" if how == "--authfile" else "$REGISTRY_AUTH_FILE"
    assert f"Cannot open the auth file {missing} ({src}): No such file or directory" in r.stderr, r.stderr
    assert "Nothing was changed" in r.stderr, r.stderr
    assert m.fingerprint() == before
    assert abctl_requests(log()) == []


def test_registry_auth_file_malformed_refused(m, private, tmp_path):
    reg, _, _ = private
    key = f"127.0.0.1:{reg.port}"
    f = tmp_path / "auth.json"
    f.write_text(json.dumps({"auths": {key: {"auth": "not base64: " + PASSWORD}}}))
    before = m.fingerprint()
    r, _ = abctl(m, "--ca", reg.ca, "--authfile", f, "install", REF.format(port=reg.port))
    assert r.returncode == 1, r.stderr
    assert f'is not a containers auth file: "auth" of auths entry "{key}" is not base64' in r.stderr, r.stderr
    assert m.fingerprint() == before
    no_secret(r, PASSWORD)


def test_registry_without_credentials_says_so(m, private, tmp_path):
    # An auth file without an entry for this registry (nor a default file):
    # one anonymous request, and a message saying what to do.
    reg, _, log = private
    f = auth_file(tmp_path / "auth.json", "other.example.com")
    before = m.fingerprint()
    r, _ = abctl(m, "--ca", reg.ca, "--authfile", f, "install", REF.format(port=reg.port))
    assert r.returncode == 1, r.stderr
    assert f"wants a user name and password for abswitch/os (HTTP 401, Basic) and {f} holds none" in r.stderr, r.stderr
    assert m.fingerprint() == before
    assert len(abctl_requests(log())) == 1


def test_registry_without_auth_file_says_so(m, private):
    # No --authfile, no $REGISTRY_AUTH_FILE, no /etc/abswitch/auth.json (the
    # test host has none): anonymous, and the message says where a file goes.
    reg, _, _ = private
    assert not Path("/etc/abswitch/auth.json").exists()
    r, _ = abctl(m, "--ca", reg.ca, "install", REF.format(port=reg.port))
    assert r.returncode == 1, r.stderr
    assert "and there is no auth file (--authfile, $REGISTRY_AUTH_FILE or /etc/abswitch/auth.json)" in r.stderr, \
        r.stderr
    assert "Credentials for" not in r.stderr


def test_token_registry_with_credentials(m, pushed, token_registry, tmp_path):
    # The registry behind a token service that gives tokens only for a user
    # name and password (HTTP Basic to its realm): abctl sends the auth
    # file's, once, and installs with the token.
    reg, blobs = pushed
    issuer = token_registry(users={USER: PASSWORD})
    key = f"127.0.0.1:{reg.port}"
    f = auth_file(tmp_path / "auth.json", key)
    r, _ = abctl(m, "--ca", reg.ca, "--timeout", "20", "--authfile", f, "install", REF.format(port=reg.port))
    assert f'Got a token for repository:abswitch/os:pull from {issuer.realm} (valid 300 s) with the credentials ' \
           f'of "{key}" in {f}' in r.stderr, r.stderr
    assert len(issuer.requests) == 1, issuer.requests
    expect = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    assert issuer.requests[0]["authorization"] == [expect]
    fetched_into_slot_b(m, r, blobs)
    no_secret(r, PASSWORD)


def test_token_registry_wrong_credentials_fail_fast(m, pushed, token_registry, tmp_path):
    # The token service refuses the password: final at its first 401, one
    # request, nothing changed, no secret printed.
    reg, _ = pushed
    issuer = token_registry(users={USER: PASSWORD})
    key = f"127.0.0.1:{reg.port}"
    f = auth_file(tmp_path / "auth.json", key, password=WRONG)
    before = m.fingerprint()
    r, took = abctl(m, "--ca", reg.ca, "--timeout", "20", "--authfile", f, "install", REF.format(port=reg.port))
    assert r.returncode == 1, r.stderr
    assert f'The token service {issuer.realm} of {key} refuses the credentials of "{key}" in {f}' in r.stderr, \
        r.stderr
    assert "Nothing was changed" in r.stderr and "retrying" not in r.stderr, r.stderr
    assert len(issuer.requests) == 1, issuer.requests
    assert took < 10
    assert m.fingerprint() == before
    no_secret(r, WRONG, PASSWORD)


def test_token_registry_identity_token(m, pushed, token_registry, tmp_path):
    # An identitytoken (what podman login stores for an OAuth 2 registry)
    # is a refresh token: POSTed to the realm (grant_type=refresh_token),
    # never sent to the registry, never printed.
    reg, blobs = pushed
    refresh = "rEfResH-t0ken-abcdef"
    issuer = token_registry(users={}, refresh_tokens={refresh})
    key = f"127.0.0.1:{reg.port}"
    f = auth_file(tmp_path / "auth.json", key, user=None, identitytoken=refresh)
    r, _ = abctl(m, "--ca", reg.ca, "--timeout", "20", "--authfile", f, "install", REF.format(port=reg.port))
    assert len(issuer.requests) == 1, issuer.requests
    q = issuer.requests[0]
    assert q["method"] == ["POST"] and q["grant_type"] == ["refresh_token"], q
    assert q["refresh_token"] == [refresh] and q["scope"] == ["repository:abswitch/os:pull"], q
    assert q["service"] == [TokenIssuer.service], q
    fetched_into_slot_b(m, r, blobs)
    assert refresh not in r.stdout + r.stderr
