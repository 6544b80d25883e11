#!/usr/bin/env python3
"""A thread-per-request HTTP service for the trace-tree tests:
`chain_service.py PORT [DOWNSTREAM_URL ...]`.

GET /anything: the worker thread serving the request first calls every
DOWNSTREAM_URL in order (urllib, one new connection each, on the same thread),
then answers 200 with one line per call: `<url> <status> <body length>`.
Without downstreams it answers 200 `leaf <path>`. The service's name comes
from OTEL_SERVICE_NAME, which the test sets.
"""
import sys
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

port = int(sys.argv[1])
downstreams = sys.argv[2:]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        lines = []
        for url in downstreams:
            with urllib.request.urlopen(url, timeout=10) as resp:
                body = resp.read()
                lines.append(f"{url} {resp.status} {len(body)}")
        if not downstreams:
            lines.append(f"leaf {self.path}")
        out = ("\n".join(lines) + "\n").encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, fmt, *args):
        sys.stderr.write("%s\n" % (fmt % args))


ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
