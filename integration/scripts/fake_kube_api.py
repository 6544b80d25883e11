#!/usr/bin/env python3
"""A stand-in Kubernetes API server for the metadata tests:
`fake_kube_api.py PORT STATE.json`.

STATE.json holds real API objects: {"pods": [...], "services": [...],
"replicasets": [...]}. Lists (`GET /api/v1/pods?limit=500`, `/api/v1/services`,
`/apis/apps/v1/replicasets`) answer one page at resourceVersion "100", shaped
like the real API's (kind, apiVersion, metadata.resourceVersion, items). A
watch (`?watch=1...`) answers 200 with a chunked body and no events, held open
until its timeoutSeconds or until the client leaves, as a quiet real watch
would. Every request line is written to stderr.
"""
import json
import select
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

port = int(sys.argv[1])
with open(sys.argv[2]) as f:
    state = json.load(f)

RESOURCES = {
    "/api/v1/pods": ("PodList", "v1", "pods"),
    "/api/v1/services": ("ServiceList", "v1", "services"),
    "/apis/apps/v1/replicasets": ("ReplicaSetList", "apps/v1", "replicasets"),
}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        url = urlparse(self.path)
        query = parse_qs(url.query)
        if url.path not in RESOURCES:
            body = json.dumps({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                               "reason": "NotFound", "code": 404}).encode()
            self.send_response(404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        kind, api_version, key = RESOURCES[url.path]
        if query.get("watch") == ["1"]:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.flush()
            deadline = time.time() + float(query.get("timeoutSeconds", ["300"])[0])
            while time.time() < deadline:
                readable, _, _ = select.select([self.connection], [], [], 0.5)
                if readable and not self.connection.recv(1):
                    return  # the client left
            self.wfile.write(b"0\r\n\r\n")
            return
        body = json.dumps({"kind": kind, "apiVersion": api_version,
                           "metadata": {"resourceVersion": "100"},
                           "items": state.get(key, [])}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        sys.stderr.write("%s\n" % (fmt % args))
        sys.stderr.flush()


ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
