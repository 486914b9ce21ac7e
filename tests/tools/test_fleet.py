"""Fleet operations (issue 16, README "Fleet operations"): the update agent
`abctl update` on several simulated machines, without a VM.

Each machine is a disk image with slots A and B, an efivarfs directory and
an ESP directory (test_hostile.Machine), its own /etc/machine-id and
update.conf. The registry is a real docker-registry (tests/e2e/registry.py);
the images are pushed with skopeo. The FleetLock server is
tests/tools/fleetlock.py, a stand-in that implements the published protocol
(no real server can run here: Airlock is not packaged in Debian and Go
modules cannot be fetched). A reboot is the agent's reboot command (a hook
that records the time), then the firmware's choice (BootNext, then
BootOrder, as tests/powercut/powercut.py models OVMF) started with bootsim,
the init's real boot code on the disk image; then abctl mark-good and the
agent again, as the units do at boot."""

import calendar
import hmac
import json
import subprocess
import sys
import threading
import time
import urllib.request

import pytest
from fleetlock import FleetLockServer, closed_port
from test_hostile import E2E, ENV, PC, TOP, Machine
from test_oci import make_layout

sys.path.insert(0, str(TOP / "tests" / "e2e"))
sys.path.insert(0, str(TOP / "tests" / "powercut"))
from powercut import load_option_path, read_var, var_path  # noqa: E402
from registry import Registry, layout_index_digest  # noqa: E402

REPO = "abswitch/os"


def new_machine(d):
    d.mkdir(parents=True)
    return Machine(d)


def machine_id(i):
    return f"{0x5eed0000 + i:08x}" + f"{(i * 2654435761) % (1 << 32):08x}" * 3


class Agent:
    """One machine of the fleet: its disk, its ids, its update.conf."""

    def __init__(self, tmp, i, reg, ref, lock_url=None, wait=120, windows=()):
        self.m = new_machine(tmp / f"m{i}")
        self.dir = self.m.dir
        self.running = "A"
        self.mid = self.dir / "machine-id"
        self.mid.write_text(machine_id(i) + "\n")
        self.state = self.dir / "state"
        self.reboots = self.dir / "reboots"
        self.conf = self.dir / "update.conf"
        self.write_conf(reg, ref, lock_url, wait, windows)

    def write_conf(self, reg, ref, lock_url=None, wait=120, windows=()):
        lines = [f"reference = {ref}", f"ca = {reg.ca}", "timeout = 30", f"state-directory = {self.state}",
                 f"machine-id-file = {self.mid}",
                 # The reboot: record when it was asked for; the test boots the machine.
                 f"reboot-command = date +%s.%N >> {self.reboots}"]
        lines += [f"window = {w}" for w in windows]
        if lock_url:
            lines += [f"fleetlock-url = {lock_url}", f"fleetlock-wait = {wait}"]
        self.conf.write_text("\n".join(lines) + "\n")

    def abctl(self, *args, timeout=300, env=None):
        return subprocess.run([PC / "abctl", "--disk", self.m.disk, "--efivars", self.m.efivars, "--esp", self.m.esp,
                               "--record", "/nonexistent", "--running", self.running, "--config", self.conf,
                               *map(str, args)], capture_output=True, text=True, env={**ENV, **(env or {})},
                              timeout=timeout)

    def update(self, *args, **kw):
        return self.abctl("update", *args, **kw)

    def seed_origin(self, digest, ref):
        """Slot A runs v1, installed from the registry (what abctl install records, origin.h)."""
        o = {"kind": "registry", "reference": ref, "digest": digest,
             "roothash": (E2E / "slot-a.roothash").read_text().strip(), "version": "1",
             "installed": "2026-12-01T00:00:00Z"}
        (self.m.esp / "EFI/abswitch/boot-a.origin").write_text(json.dumps(o))

    def reboots_asked(self):
        return [float(x) for x in self.reboots.read_text().split()] if self.reboots.exists() else []

    def firmware(self):
        """OVMF's choice: BootNext (consumed), then BootOrder; the UKI path it starts."""
        ev = self.m.efivars
        nxt = read_var(ev, "BootNext")
        cands = []
        if nxt is not None:
            var_path(ev, "BootNext").unlink()
            cands.append(int.from_bytes(nxt[:2], "little"))
        order = read_var(ev, "BootOrder") or b""
        cands += [int.from_bytes(order[i:i + 2], "little") for i in range(0, len(order) - 1, 2)]
        for n in cands:
            opt = read_var(ev, f"Boot{n:04X}")
            path = load_option_path(opt) if opt else None
            if path and (self.m.esp / path.lstrip("\\").replace("\\", "/")).is_file():
                return path
        raise AssertionError("the firmware finds nothing to boot")

    def reboot(self, root_ok="AB"):
        """The machine goes down and comes up: the firmware's choice, the init
        (bootsim), again while the init sends it elsewhere. root_ok: the
        slots whose root verifies. Returns the boots it took."""
        for boots in range(1, 6):
            path = self.firmware()
            r = subprocess.run([PC / "bootsim", "--disk", self.m.disk, "--efivars", self.m.efivars,
                                "--loader-path", path, "--root-ok", root_ok], capture_output=True, text=True, env=ENV)
            assert r.returncode == 0, r.stderr
            d = json.loads(r.stdout)
            if d["action"] == "boot":
                self.running = d["target"]
                return boots
        raise AssertionError(f"not up after {boots} boots: {d}")


@pytest.fixture
def images(tmp_path):
    """v1 (slot A's image) and v2 (slot B's commit image) as OCI layouts, and a running registry."""
    probe = new_machine(tmp_path / "probe")      # its UKIs: a (v1) and b-commit (v2)
    v1 = tmp_path / "v1"
    make_layout(v1, probe.ukis["a"], image=E2E / "slot-a", tag="stable", version="1")
    v2 = tmp_path / "v2"
    make_layout(v2, probe.ukis["b-commit"], tag="stable")
    reg = Registry(tmp_path).start()
    yield reg, v1, v2
    reg.stop()


@pytest.fixture
def lock():
    """A FleetLock server with one reboot slot."""
    server = FleetLockServer(slots=1)
    yield server
    server.close()


def v1_agent_v2_tagged(tmp_path, images, lock_url, wait):
    """One machine running v1 in slot A (its origin recorded), following
    :stable, which names v2 now."""
    reg, v1, v2 = images
    ref = f"127.0.0.1:{reg.port}/{REPO}:stable"
    reg.push(v2, "stable")
    a = Agent(tmp_path, 0, reg, ref, lock_url, wait=wait)
    a.seed_origin(layout_index_digest(v1, "stable"), ref)
    return a


def wait_all(threads):
    for t in threads:
        t.join(timeout=600)
        assert not t.is_alive(), "an agent hung"


def test_fleet_reboots_one_at_a_time(tmp_path, images):
    reg, v1, v2 = images
    ref = f"127.0.0.1:{reg.port}/{REPO}:stable"
    reg.push(v1, "stable")
    d1, d2 = layout_index_digest(v1, "stable"), layout_index_digest(v2, "stable")
    lock = FleetLockServer(slots=1)
    try:
        fleet = [Agent(tmp_path, i, reg, ref, lock.url, wait=4) for i in range(3)]
        for a in fleet:
            a.seed_origin(d1, ref)

        # The fleet runs v1, what the tag names: nothing to do.
        for a in fleet:
            r = a.update()
            assert r.returncode == 0, r.stderr
            assert f"Up to date: slot A runs {d1}" in r.stdout, r.stdout
        assert lock.events == []

        # A machine died holding the lock (the operator case): the agents
        # install v2 and arm it, but do not reboot without the lock.
        dead = "0f0e0d0c0b0a09080706050403020100"
        req = urllib.request.Request(f"{lock.url}/v1/pre-reboot", method="POST",
                                     data=json.dumps({"client_params": {"id": dead, "group": "default"}}).encode(),
                                     headers={"fleet-lock-protocol": "true"})
        assert urllib.request.urlopen(req).status == 200
        reg.push(v2, "stable")
        results = {}
        threads = [threading.Thread(target=lambda a=a: results.__setitem__(a, a.update())) for a in fleet]
        for t in threads:
            t.start()
        wait_all(threads)
        for a in fleet:
            r = results[a]
            assert r.returncode == 1, r.stdout + r.stderr
            assert "Not rebooting: no reboot lock" in r.stderr, r.stderr
            assert "failed_lock_semaphore_full" in r.stderr, r.stderr
            assert a.reboots_asked() == []
            assert a.m.slot("B") == {"priority": 2, "tries": 2, "successful": False, "armed": True}
        # What an operator sees (README) and does: the holder, released in its name.
        holders = json.loads(urllib.request.urlopen(f"{lock.url}/holders").read())
        assert holders == {"default": [dead]}
        subprocess.run(["curl", "-sf", "-X", "POST", "-H", "fleet-lock-protocol: true", "-d",
                        json.dumps({"client_params": {"id": dead, "group": "default"}}),
                        f"{lock.url}/v1/steady-state"], check=True)

        # Now the fleet reboots, one machine at a time: each agent takes the
        # lock, asks for the reboot; the machine comes up on B, commits it,
        # and its agent gives the lock back. The others wait meanwhile.
        for a in fleet:
            a.write_conf(reg, ref, lock.url, wait=300)

        def cycle(a):
            r = a.update()
            assert r.returncode == 0, r.stdout + r.stderr
            assert len(a.reboots_asked()) == 1, r.stdout + r.stderr
            time.sleep(1.5)                     # the firmware's reset, POST
            a.reboot()
            assert a.running == "B"
            # On trial: the agent keeps the lock (the machine may still fall back).
            r = a.update()
            assert r.returncode == 0, r.stderr
            assert "stays held until it is committed" in r.stdout, r.stdout
            me = json.loads(a.abctl("--json", "update", "--check").stdout)["fleetlock_id"]
            assert me in json.loads(urllib.request.urlopen(f"{lock.url}/holders").read())["default"]
            r = a.abctl("mark-good")
            assert r.returncode == 0, r.stderr
            r = a.update()
            assert r.returncode == 0, r.stderr
            assert "Gave back the reboot lock" in r.stdout, r.stdout
            assert f"Up to date: slot B runs {d2}" in r.stdout, r.stdout
            results[a] = r

        errors = []
        threads = [threading.Thread(target=_guard, args=(cycle, a, errors)) for a in fleet]
        for t in threads:
            t.start()
        wait_all(threads)
        assert not errors, errors

        # From the server's side: never two holders, each machine once, and
        # each reboot asked for while that machine held the lock.
        assert lock.max_concurrent() == 1
        held = [h for h in lock.intervals() if h[0] != dead]
        assert len(held) == 3 and all(h[2] is not None for h in held), held
        for (_, _, end), (_, start, _) in zip(held, held[1:]):
            assert end <= start
        assert any(e[1] == "refused" for e in lock.events if e[3] != dead and e[0] > held[0][1])
        for a in fleet:
            (t,) = a.reboots_asked()
            r = a.abctl("--json", "update", "--check")
            me = json.loads(r.stdout)["fleetlock_id"]
            (iv,) = [h for h in held if h[0] == me]
            # time.monotonic (server) against the wall clock (hook): compare through the offset now.
            offset = time.time() - time.monotonic()
            assert iv[1] + offset - 0.5 <= t <= iv[2] + offset + 0.5, (iv, t)
            assert a.m.slot("B")["successful"] and a.m.slot("B")["priority"] > a.m.slot("A")["priority"]
            assert not (a.state / "fleetlock.json").exists()
        assert json.loads(urllib.request.urlopen(f"{lock.url}/holders").read()) == {"default": []}

        # abctl status: what runs, what the last check saw, the windows.
        st = fleet[0].abctl("status")
        assert st.returncode == 0, st.stderr
        assert f"Update:  following {ref}" in st.stdout, st.stdout
        assert f"installed {d2} (slot B)" in st.stdout, st.stdout
        assert f"available {d2} (checked " in st.stdout and ": up to date" in st.stdout, st.stdout
        assert "no maintenance windows: reboots at any time" in st.stdout, st.stdout
        j = json.loads(fleet[0].abctl("--json", "status").stdout)["update"]
        assert j["installed"] == j["available"] == d2 and j["inside_window"] is True, j
    finally:
        lock.close()


def _guard(fn, a, errors):
    try:
        fn(a)
    except BaseException as e:     # noqa: B036 (reported by the main thread)
        errors.append(f"{a.dir.name}: {e!r}")


def test_fleetlock_down_means_no_reboot(tmp_path, images):
    # The server does not answer: the agent installs, keeps asking until
    # fleetlock-wait, then says so and does not reboot.
    reg, v1, v2 = images
    ref = f"127.0.0.1:{reg.port}/{REPO}:stable"
    reg.push(v2, "stable")
    a = Agent(tmp_path, 0, reg, ref, f"http://127.0.0.1:{closed_port()}", wait=3)
    t0 = time.monotonic()
    r = a.update()
    assert r.returncode == 1, r.stdout + r.stderr
    assert time.monotonic() - t0 >= 3
    assert "the server does not answer" in r.stderr, r.stderr
    assert "Not rebooting: no reboot lock" in r.stderr, r.stderr
    assert a.reboots_asked() == []
    assert a.m.slot("B")["armed"]
    assert not (a.state / "fleetlock.json").exists()


def test_update_reboots_with_abctl_reboot_kexec(tmp_path, images):
    """reboot-command = abctl reboot --kexec (README "Fleet operations"). The
    agent holds the install lock while it installs, and the kexec it starts
    takes that lock too: the agent gives it back before the reboot command
    (before, both waited for ever: the agent for its child, the child for
    the agent's lock). kexec_file_load and reboot are build/powercut/abctl's
    test hooks (tests/tools/test_kexec.py says why)."""
    a = v1_agent_v2_tagged(tmp_path, images, None, wait=120)
    rebooted = a.dir / "rebooted"
    kexec = (f"{PC / 'abctl'} --disk {a.m.disk} --efivars {a.m.efivars} --esp {a.m.esp} --record /nonexistent "
             f"--running A reboot --kexec")
    a.conf.write_text(a.conf.read_text().replace(f"reboot-command = date +%s.%N >> {a.reboots}",
                                                 f"reboot-command = {kexec}"))
    r = a.update(env={"ABCTL_TEST_REBOOT": str(rebooted), "ABCTL_TEST_KEXEC": "ok"}, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert rebooted.read_text().strip() == "kexec"
    assert "Loaded slot B's UKI \\EFI\\abswitch\\boot-b.efi (armed in BootNext" in r.stdout, r.stdout


def test_fallback_gives_the_lock_back(tmp_path, images, lock):
    # The new image does not come up (its root does not verify): the init
    # falls back to A, which is committed, so the agent gives the lock back
    # and does not install the image that failed again.
    a = v1_agent_v2_tagged(tmp_path, images, lock.url, wait=10)
    r = a.update()
    assert r.returncode == 0 and len(a.reboots_asked()) == 1, r.stdout + r.stderr
    assert a.reboot(root_ok="A") >= 2 and a.running == "A"
    assert not a.m.slot("B")["successful"] and a.m.slot("B")["priority"] == 0
    r = a.update()
    assert r.returncode == 0, r.stderr
    assert "Gave back the reboot lock" in r.stdout, r.stdout
    assert "failed in slot B before: not installing it again" in r.stdout, r.stdout
    assert json.loads(urllib.request.urlopen(f"{lock.url}/holders").read()) == {"default": []}
    assert len(a.reboots_asked()) == 1


def test_lost_answer_lock_given_back_after_reboot(tmp_path, images, lock):
    # The server takes the lock but its answers never arrive: the agent
    # does not reboot, and keeps its record of the lock it asked for. The
    # machine then reboots anyway (a power cut): on the new slot, once
    # committed, the agent gives back the lock the server did take.
    # (Before the record was written ahead of the request, a lock taken
    # this way stayed held for good: the group could not reboot again.)
    a = v1_agent_v2_tagged(tmp_path, images, lock.url, wait=3)
    lock.lose_answers = True
    r = a.update()
    assert r.returncode == 1, r.stdout + r.stderr
    assert "Not rebooting: no reboot lock" in r.stderr and "an answer was lost" in r.stderr, r.stderr
    assert a.reboots_asked() == []
    assert "asked" in json.loads((a.state / "fleetlock.json").read_text())
    me = json.loads(a.abctl("--json", "update", "--check").stdout)["fleetlock_id"]
    assert lock.holders == {"default": [me]}
    st = a.abctl("status")
    assert "asked for the FleetLock reboot lock at" in st.stdout, st.stdout

    lock.lose_answers = False
    assert a.reboot() == 1 and a.running == "B"      # the power cut: B, armed, boots
    r = a.update()
    assert "stays held until it is committed" in r.stdout, r.stdout
    assert a.abctl("mark-good").returncode == 0
    r = a.update()
    assert r.returncode == 0, r.stderr
    assert "Gave back the reboot lock" in r.stdout, r.stdout
    assert lock.holders == {"default": []}
    assert not (a.state / "fleetlock.json").exists()


# ---- staged rollouts --------------------------------------------------------------

START = "2026-12-09T12:00:00Z"            # a Wednesday
DURATION = 3600


def at(offset):
    t = calendar.timegm(time.strptime(START, "%Y-%m-%dT%H:%M:%SZ"))
    return f"@{int(t + offset)}"


def test_staged_rollout_admits_a_growing_share(tmp_path, images):
    reg, _, _ = images
    probe = new_machine(tmp_path / "m")
    oci = tmp_path / "staged"
    subprocess.run([TOP / "initramfs/mkoci", "--image", E2E / "slot-b-commit", "--uki", probe.ukis["b-commit"],
                    "--output", oci, "--tag", "stable", "--name", "test", "--version", "2",
                    "--rollout-start", START, "--rollout-duration", f"{DURATION // 60}m"],
                   check=True, capture_output=True)
    reg.push(oci, "stable")
    digest = layout_index_digest(oci, "stable")
    ref = f"127.0.0.1:{reg.port}/{REPO}:stable"
    n = 40
    confs = []
    for i in range(n):
        mid = tmp_path / f"machine-id-{i}"
        mid.write_text(machine_id(100 + i) + "\n")
        c = tmp_path / f"update-{i}.conf"
        c.write_text(f"reference = {ref}\nca = {reg.ca}\nmachine-id-file = {mid}\n"
                     f"state-directory = {tmp_path / 'state'}\n")
        confs.append(c)
    before = probe.fingerprint()

    def check(conf, when):
        r = subprocess.run([PC / "abctl", "--disk", probe.disk, "--efivars", probe.efivars, "--esp", probe.esp,
                            "--record", "/nonexistent", "--running", "A", "--config", conf, "--json",
                            "update", "--check", "--at", when], capture_output=True, text=True, env=ENV)
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)

    # Each machine's wariness, computed here independently of abctl: the top
    # 53 bits of HMAC-SHA256(key = the machine id's 16 bytes, message = the
    # image's manifest digest). The digest changes with every build, so the
    # shares below are exact for this build, not a statistical tolerance
    # (the even spread over many ids is the unit test's, with fixed inputs).
    def wariness(i):
        h = hmac.digest(bytes.fromhex(machine_id(100 + i)), digest.encode(), "sha256")
        return (int.from_bytes(h[:8], "big") >> 11) / float(1 << 53)

    expect_w = [wariness(i) for i in range(n)]
    admitted_before = set()
    shares = []
    for frac in (-0.01, 0.25, 0.5, 0.75, 1.0):
        offset = int(frac * DURATION)
        when = at(offset)
        admitted = set()
        for i, c in enumerate(confs):
            rep = check(c, when)
            assert rep["available"] == digest
            ro = rep["rollout"]
            assert ro["staged"] and ro["duration"] == DURATION and ro["start"] == START
            assert ro["wariness"] == pytest.approx(expect_w[i], abs=1e-9), (i, ro)
            # admitted from start + floor(wariness * duration) on, not before
            assert ro["admitted"] == (offset >= int(expect_w[i] * DURATION)), (i, frac, ro)
            if ro["admitted"]:
                admitted.add(i)
                assert rep["action"] == "install-and-reboot", rep
            else:
                assert rep["action"] == "wait-rollout", rep
        assert admitted_before <= admitted          # the admitted set only grows
        admitted_before = admitted
        shares.append(len(admitted) / n)
    print("admitted shares", shares, "expected", [sum(int(w * DURATION) <= int(f * DURATION) for w in expect_w) / n
                                                  for f in (-0.01, 0.25, 0.5, 0.75, 1.0)])
    assert shares[0] == 0 and shares[-1] == 1, shares
    # --check wrote nothing: no state, no install, no lock.
    assert probe.fingerprint() == before
    assert not (tmp_path / "state").exists()

    # Windows, through --check: on Saturday nights only. Wednesday after the
    # rollout: install now, reboot at the window; Saturday 23:45: both now.
    conf = tmp_path / "window.conf"
    conf.write_text(confs[0].read_text() + "window = Sat 23:30 90m\n")
    rep = check(conf, at(DURATION + 60))
    assert rep["action"] == "install" and rep["inside_window"] is False, rep
    assert rep["next_window"] == "2026-12-12T23:30:00Z", rep
    rep = check(conf, at(3 * 86400 + 11 * 3600 + 45 * 60))       # Saturday 23:45
    assert rep["action"] == "install-and-reboot" and rep["inside_window"] is True, rep
    assert rep["window_closes"] == "2026-12-13T01:00:00Z", rep
    assert probe.fingerprint() == before


def test_update_refuses_bad_config_changing_nothing(tmp_path):
    # A mistake in update.conf names its line and what to write; nothing
    # is fetched, installed or written.
    m = new_machine(tmp_path / "m")
    conf = tmp_path / "update.conf"
    before = m.fingerprint()

    def run(*args):
        return subprocess.run([PC / "abctl", "--disk", m.disk, "--efivars", m.efivars, "--esp", m.esp,
                               "--record", "/nonexistent", "--running", "A", "--config", conf, *args],
                              capture_output=True, text=True, env=ENV)

    r = run("update")
    assert r.returncode == 1 and f"{conf} does not exist: write the tag to follow" in r.stderr, r.stderr
    for text, says in (("reference = r.example.com/os:1\nwindow = Sat 23:30 90x\n",
                        "line 2: '90x' is not a length from 1 minute to a week"),
                       ("reference = r.example.com/os:1\n\nfleetlock-group = a_b\n", "line 3: fleetlock-group 'a_b'"),
                       ("window = Sat 23:30 90m\n", "no reference: write the tag to follow")):
        conf.write_text(text)
        r = run("update", "--check")
        assert r.returncode == 1, r.stderr
        assert says in r.stderr and "Nothing was changed" in r.stderr, r.stderr
    r = run("update", "--at", "tomorrow")
    assert r.returncode == 1 and "--at 'tomorrow' is not a time" in r.stderr, r.stderr
    r = run("status", "--check")
    assert r.returncode == 1 and "options of abctl update, not of status" in r.stderr, r.stderr
    # abctl status says the file is unusable instead of failing.
    r = run("status")
    assert r.returncode == 0 and f"Update:  {conf} is not usable: no reference" in r.stdout, r.stdout
    assert m.fingerprint() == before


def test_update_command_line_registry_options_win(tmp_path, images):
    # The registry options on abctl's command line apply to an update run,
    # over update.conf's: here the CA the registry's certificate needs is
    # given only as --ca (update.conf names none). They were ignored: the
    # run failed on the certificate, and --timeout left update.conf's (or the
    # default 300 s) in force.
    reg, v1, v2 = images
    a = v1_agent_v2_tagged(tmp_path, images, None, 0)
    a.conf.write_text("\n".join(l for l in a.conf.read_text().splitlines() if not l.startswith("ca ")) + "\n")
    before = a.m.fingerprint()
    r = a.abctl("--json", "update", "--check", "--timeout", "20")
    assert r.returncode == 1, r.stdout + r.stderr
    r = a.abctl("--json", "update", "--check", "--ca", reg.ca, "--timeout", "20")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["available"] == layout_index_digest(v2, "stable"), r.stdout
    assert a.m.fingerprint() == before
