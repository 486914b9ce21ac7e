"""A FleetLock server for the tests: the HTTP protocol Zincati uses
(coreos/zincati, docs/development/fleetlock/protocol.md), written here
because no real server can run on this machine. Airlock, the reference
server, is a Go program on etcd: it is not packaged in Debian (apt-cache
search airlock finds nothing) and Go modules cannot be fetched here. So
this is a stand-in that implements the published protocol, and the tests
say so; README "Fleet operations" lists what was not tried against a real
server.

The protocol as implemented:
- POST BASE/v1/pre-reboot (RecursiveLock) and BASE/v1/steady-state
  (UnlockIfHeld), each with the header "fleet-lock-protocol: true" and the
  body {"client_params": {"id": ID, "group": GROUP}}; id a non-empty
  string, group matching ^[a-zA-Z0-9.-]+$.
- A counting semaphore per group with `slots` places (default 1), owned
  by ids: pre-reboot by an id that holds a place succeeds again
  (recursive); by another id, it succeeds while a place is free, else 409
  with {"kind": "failed_lock_semaphore_full", "value": ...}.
  steady-state frees the id's place if it holds one and succeeds either way.
- Every other request: a 4xx with a {"kind", "value"} error object.

Beyond the protocol, for the tests and the operator case (a machine that
died holding the lock): GET BASE/holders shows each group's holders, and
`events` records every lock, unlock and refusal with its time, so a test
can check from the server's side that no two machines held a place at once."""

import http.server
import json
import re
import socket
import threading
import time

GROUP_RE = re.compile(r"^[a-zA-Z0-9.-]+$")


class FleetLockServer:
    def __init__(self, slots=1, base="/fleet"):
        self.slots = slots
        self.lose_answers = False   # act on each request, then close without answering (a lost answer)
        self.base = base
        self.holders = {}           # group -> [ids] in the order they locked
        self.events = []            # (monotonic time, "lock"|"unlock"|"refused"|"relock", group, id)
        self.lock = threading.Lock()
        server = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def answer(self, status, obj):
                data = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def error(self, status, kind, value):
                self.answer(status, {"kind": kind, "value": value})

            def do_GET(self):
                if self.path != server.base + "/holders":
                    return self.error(404, "not_found", f"no such endpoint {self.path}")
                with server.lock:
                    self.answer(200, {g: list(ids) for g, ids in server.holders.items()})

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n)
                op = {server.base + "/v1/pre-reboot": "lock", server.base + "/v1/steady-state": "unlock"}.get(self.path)
                if op is None:
                    return self.error(404, "not_found", f"no such endpoint {self.path}")
                if self.headers.get("fleet-lock-protocol") != "true":
                    return self.error(400, "missing_header", "the fleet-lock-protocol: true header is missing")
                try:
                    p = json.loads(body)["client_params"]
                    ident, group = p["id"], p["group"]
                    if not isinstance(ident, str) or not ident or not isinstance(group, str):
                        raise ValueError
                except (ValueError, KeyError, TypeError):
                    return self.error(400, "bad_request", "the body is not {\"client_params\":{\"id\":...,\"group\":...}}")
                if not GROUP_RE.match(group):
                    return self.error(400, "bad_group", f"group {group!r} is not ^[a-zA-Z0-9.-]+$")
                with server.lock:
                    held = server.holders.setdefault(group, [])
                    now = time.monotonic()
                    if op == "lock":
                        if ident in held:
                            server.events.append((now, "relock", group, ident))
                        elif len(held) < server.slots:
                            held.append(ident)
                            server.events.append((now, "lock", group, ident))
                        else:
                            server.events.append((now, "refused", group, ident))
                            if server.lose_answers:
                                self.close_connection = True
                                return
                            return self.error(409, "failed_lock_semaphore_full",
                                              "semaphore currently full, all slots are locked already")
                    elif ident in held:
                        held.remove(ident)
                        server.events.append((now, "unlock", group, ident))
                    if server.lose_answers:
                        self.close_connection = True
                        return
                self.answer(200, {})

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}{base}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def intervals(self, group="default"):
        """Each holder's (id, locked at, unlocked at or None), from the events."""
        out, open_ = [], {}
        for t, what, g, ident in self.events:
            if g != group:
                continue
            if what == "lock":
                open_[ident] = t
            elif what == "unlock":
                out.append((ident, open_.pop(ident), t))
        out += [(ident, t, None) for ident, t in open_.items()]
        return sorted(out, key=lambda x: x[1])

    def max_concurrent(self, group="default"):
        n = top = 0
        for _, what, g, _ in self.events:
            if g == group and what in ("lock", "unlock"):
                n += 1 if what == "lock" else -1
                top = max(top, n)
        return top

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def closed_port():
    """A loopback port nothing listens on: a FleetLock server that is down."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
