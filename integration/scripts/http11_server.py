#!/usr/bin/env python3
"""An HTTP/1.1 keep-alive test server: `http11_server.py PORT`.

  GET|HEAD /status/<code>   that status; body "status <code>\n" (none for
                            1xx/204/304 or HEAD; HEAD still gets Content-Length)
  GET|HEAD /bytes/<n>       200 with n bytes of a position-dependent pattern
  POST|PUT /echo            reads the body (Content-Length or chunked) and
                            answers 200 "got <n> bytes\n"
"""
import array
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def pattern(n):
    words = array.array("I", range(0x30000000, 0x30000000 + n // 4 + 1))
    return words.tobytes()[:n]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def reply(self, code, body, head_only=False):
        self.send_response(code)
        no_body = code < 200 or code in (204, 304)
        if not no_body:
            self.send_header("Content-Length", str(len(body)))
        self.send_header("Content-Type", "application/octet-stream")
        self.end_headers()
        if not no_body and not head_only:
            self.wfile.write(body)

    def route(self, head_only):
        parts = self.path.split("?")[0].strip("/").split("/")
        if len(parts) == 2 and parts[0] == "status":
            code = int(parts[1])
            self.reply(code, b"status %d\n" % code, head_only)
        elif len(parts) == 2 and parts[0] == "bytes":
            self.reply(200, pattern(int(parts[1])), head_only)
        else:
            self.reply(404, b"no such route\n", head_only)

    def do_GET(self):
        self.route(False)

    def do_HEAD(self):
        self.route(True)

    def read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            total = 0
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    # Trailers until the empty line.
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return total
                total += len(self.rfile.read(size))
                self.rfile.readline()
        n = int(self.headers.get("Content-Length", "0"))
        return len(self.rfile.read(n))

    def do_POST(self):
        n = self.read_body()
        self.reply(200, b"got %d bytes\n" % n)

    do_PUT = do_POST


ThreadingHTTPServer.allow_reuse_address = True
ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
