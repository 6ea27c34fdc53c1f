"""A webhook receiver for the tests: verifies Patchbay-Signature (HMAC-SHA256
over "{t}.{body}", |now - t| <= 300 s), deduplicates by Patchbay-Delivery,
and counts. Written against docs/webhooks.md, independently of Patchbay's
code. Prints its port on the first line of stdout.

POST /config {"secret": "...", "delay_ms": N, "auth": "..."}  sets the
secret, a delay before each answer and (optionally) the Authorization header
a delivery must carry, else it is refused with 401 (counted in
"unauthorized", as Jira or ServiceNow would refuse it); GET /stats answers
the counts; anything else POSTed is a delivery.
"""
import hashlib
import hmac
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

lock = threading.Lock()
state = {"secret": None, "delay_ms": 0, "auth": None}
accepted = {}  # delivery id -> 1 (processed once; re-sends are counted in duplicates)
events = {}  # event id -> set of delivery ids accepted for it
stats = {"rejected": 0, "duplicates": 0, "unauthorized": 0}


def verify(secret, header, body):
    try:
        parts = dict(p.split("=", 1) for p in header.split(","))
        t = int(parts["t"])
    except (ValueError, KeyError):
        return False
    if abs(time.time() - t) > 300:
        return False
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(mac, parts.get("v1", ""))


class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def answer(self, code, obj=None):
        data = json.dumps(obj or {}).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        with lock:
            self.answer(200, {
                "accepted": accepted,
                "events": {k: sorted(v) for k, v in events.items()},
                **stats,
            })

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.path == "/config":
            with lock:
                state.update(json.loads(body))
            return self.answer(200)
        if state["delay_ms"]:
            time.sleep(state["delay_ms"] / 1000)
        sig = self.headers.get("Patchbay-Signature", "")
        did = self.headers.get("Patchbay-Delivery", "")
        with lock:
            want = state["auth"]
            got = self.headers.get("Authorization")
            if want is not None and (got is None or not hmac.compare_digest(got, want)):
                stats["unauthorized"] += 1
                return self.answer(401, {"errorMessages": ["not authenticated"]})
            if not state["secret"] or not did or not verify(state["secret"], sig, body):
                stats["rejected"] += 1
                return self.answer(401)
            if did in accepted:
                # A re-send (the sender crashed before storing our 2xx):
                # answered 200 so it stops, not processed again.
                stats["duplicates"] += 1
                return self.answer(200)
            accepted[did] = 1
            ev = json.loads(body)["id"]
            events.setdefault(ev, set()).add(did)
        self.answer(200)


srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
print(srv.server_address[1], flush=True)
srv.serve_forever()
