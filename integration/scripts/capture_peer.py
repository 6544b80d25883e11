#!/usr/bin/env python3
"""One side of a capture test: `capture_peer.py server|client PORT MODE OUT [COUNT]`.

Both sides write a transcript to OUT: for each connection, a line
`index local_port peer_port sent_len recv_len\n` followed by the bytes sent and
the bytes received, exactly as the socket calls returned them. The test
compares the probes' capture with these transcripts.

Modes:
  small     one connection, a short request and response (send/recv)
  vectored  one connection; client: sendmsg with 3 iovecs, then writev with 2;
            server: readv; server replies with writev (3) then sendmsg (2);
            client: readv and recvmsg_into (2 buffers)
  large     one connection, 8 MiB each way (position-dependent pattern),
            sent in 1 MiB calls
  many      COUNT connections, each a small request and response
"""
import array
import os
import socket
import sys

role, port, mode, out = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
count = int(sys.argv[5]) if len(sys.argv) > 5 else 1

LARGE = 8 * 1024 * 1024


def pattern(nbytes, tag):
    # 32-bit little-endian counters starting at `tag`: every 4-byte word
    # differs from its neighbours, so misordered or shifted data is caught.
    words = array.array("I", range(tag, tag + nbytes // 4))
    return words.tobytes()


REQ_SEGMENTS = [b"GET /vectored HTTP/1.1\r\n", b"Host: x\r\n", b"X-Seg: 3\r\n"]
REQ_WRITEV = [b"X-Last: writev\r\n", b"\r\n"]
RESP_WRITEV = [b"HTTP/1.1 200 OK\r\n", b"Content-Length: 10\r\n", b"X-A: 1\r\n"]
RESP_SENDMSG = [b"\r\n", b"0123456789"]


def request_for(i):
    if mode == "small":
        return b"PING small request from the client\n"
    if mode == "many":
        return b"REQ %06d of the many-connections test\n" % i
    if mode == "large":
        return pattern(LARGE, 0x10000000)
    raise ValueError(mode)


def response_for(i):
    if mode == "small":
        return b"PONG and a small response from the server\n"
    if mode == "many":
        return b"RESP %06d " % i + b"x" * (i % 97) + b"\n"
    if mode == "large":
        return pattern(LARGE, 0x20000000)
    raise ValueError(mode)


def send_all(sock, data):
    # At most 1 MiB per call: one call is captured up to the 4 MiB per-call
    # cap, so every byte can be copied.
    view = memoryview(data)
    for off in range(0, len(view), 1 << 20):
        sock.sendall(view[off:off + (1 << 20)])


def recv_exact(sock, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(min(65536, n - len(buf)))
        if not chunk:
            break
        buf += chunk
    return bytes(buf)


def readv_exact(fd, n):
    buf = bytearray()
    while len(buf) < n:
        left = n - len(buf)
        a = bytearray(min(7, left))
        b = bytearray(max(0, min(4096, left - len(a))))
        got = os.readv(fd, [a, b] if len(b) else [a])
        if got == 0:
            break
        buf += (a + b)[:got]
    return bytes(buf)


transcript = []

if role == "server":
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", port))
    srv.listen(512)
    for i in range(count):
        conn, peer = srv.accept()
        if mode == "vectored":
            want = sum(map(len, REQ_SEGMENTS + REQ_WRITEV))
            got = readv_exact(conn.fileno(), want)
            sent = os.writev(conn.fileno(), RESP_WRITEV)
            assert sent == sum(map(len, RESP_WRITEV)), sent
            sent2 = conn.sendmsg(RESP_SENDMSG)
            assert sent2 == sum(map(len, RESP_SENDMSG)), sent2
            out_bytes = b"".join(RESP_WRITEV + RESP_SENDMSG)
        else:
            want = len(request_for(i))
            got = recv_exact(conn, want)
            out_bytes = response_for(i)
            send_all(conn, out_bytes)
        transcript.append((i, port, peer[1], out_bytes, got))
        conn.close()
    srv.close()
else:
    for i in range(count):
        c = socket.create_connection(("127.0.0.1", port))
        lport = c.getsockname()[1]
        if mode == "vectored":
            n1 = c.sendmsg(REQ_SEGMENTS)
            assert n1 == sum(map(len, REQ_SEGMENTS)), n1
            n2 = os.writev(c.fileno(), REQ_WRITEV)
            assert n2 == sum(map(len, REQ_WRITEV)), n2
            sent = b"".join(REQ_SEGMENTS + REQ_WRITEV)
            # First part with readv, the rest with recvmsg_into (2 buffers).
            head = readv_exact(c.fileno(), sum(map(len, RESP_WRITEV)))
            rest = bytearray()
            want_rest = sum(map(len, RESP_SENDMSG))
            while len(rest) < want_rest:
                a, b = bytearray(1), bytearray(64)
                nbytes, _, _, _ = c.recvmsg_into([a, b])
                if nbytes == 0:
                    break
                rest += (a + b)[:nbytes]
            got = head + bytes(rest)
        else:
            sent = request_for(i)
            send_all(c, sent)
            want = len(response_for(i))
            got = recv_exact(c, want)
        # Read to EOF so the close is clean (the server closes first).
        tail = c.recv(1)
        assert tail == b"", tail
        transcript.append((i, lport, port, sent, got))
        c.close()

with open(out, "wb") as f:
    for i, lport, pport, sent, got in transcript:
        f.write(b"%d %d %d %d %d\n" % (i, lport, pport, len(sent), len(got)))
        f.write(sent)
        f.write(got)
print("done", role, len(transcript), flush=True)
