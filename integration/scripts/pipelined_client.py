#!/usr/bin/env python3
"""`pipelined_client.py PORT PATH...`: sends one GET per PATH in ONE write on
one connection, then reads the responses (Content-Length framed). Prints
`local_port` then, per response, `status body_len`."""
import socket
import sys

port = int(sys.argv[1])
paths = sys.argv[2:]
c = socket.create_connection(("127.0.0.1", port))
reqs = b"".join(
    b"GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUser-Agent: pipeline-test/1\r\n\r\n"
    % (p.encode(), port)
    for p in paths
)
c.sendall(reqs)
f = c.makefile("rb")
print(c.getsockname()[1])
for _ in paths:
    status = int(f.readline().split()[1])
    length = 0
    while True:
        line = f.readline()
        if line in (b"\r\n", b""):
            break
        k, _, v = line.decode().partition(":")
        if k.strip().lower() == "content-length":
            length = int(v.strip())
    body = f.read(length)
    print(status, len(body))
c.close()
