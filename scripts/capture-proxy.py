#!/usr/bin/env python3
"""A recording HTTP/1.1 forwarder: listens on 127.0.0.1:PORT, forwards every
request to UPSTREAM (http://host:port) and appends each exchange to OUT as one
JSON line {method, path, request_headers, request_body, status, response_body}.

Used by scripts/make-upgrade-fixture to capture what an agent of a previous
release sends, so tests can replay it against the current server.

    capture-proxy.py PORT UPSTREAM OUT
"""
import http.server
import json
import sys
import urllib.request
import urllib.error

PORT, UPSTREAM, OUT = int(sys.argv[1]), sys.argv[2].rstrip("/"), sys.argv[3]
KEEP = {"content-type", "authorization", "user-agent", "x-patchbay-protocol"}


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _forward(self):
        n = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(n) if n else b""
        req = urllib.request.Request(UPSTREAM + self.path, data=body or None, method=self.command)
        for k, v in self.headers.items():
            if k.lower() not in ("host", "content-length", "connection"):
                req.add_header(k, v)
        try:
            with urllib.request.urlopen(req, timeout=120) as r:
                status, rbody, rheaders = r.status, r.read(), r.headers
        except urllib.error.HTTPError as e:
            status, rbody, rheaders = e.code, e.read(), e.headers
        with open(OUT, "a") as f:
            f.write(json.dumps({
                "method": self.command,
                "path": self.path,
                "request_headers": {k.lower(): v for k, v in self.headers.items() if k.lower() in KEEP},
                "request_body": body.decode("utf-8", "replace"),
                "status": status,
                "response_body": rbody.decode("utf-8", "replace"),
            }) + "\n")
        self.send_response(status)
        ct = rheaders.get("content-type")
        if ct:
            self.send_header("content-type", ct)
        self.send_header("content-length", str(len(rbody)))
        self.end_headers()
        self.wfile.write(rbody)

    do_GET = do_POST = do_PUT = do_DELETE = _forward

    def log_message(self, *a):
        pass


http.server.ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
