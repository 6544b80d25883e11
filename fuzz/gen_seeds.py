#!/usr/bin/env python3
"""Writes the committed seed corpora under fuzz/seeds/<target>/.

Run from anywhere: python3 fuzz/gen_seeds.py. Deterministic; rerunning
rewrites the same files. Input formats are documented in each target and in
fuzz/src/lib.rs (the conversation format of the session targets).
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SEEDS = os.path.join(HERE, "seeds")


def write(target, name, data):
    d = os.path.join(SEEDS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# --- conversation format (fuzz/src/lib.rs) --------------------------------

REQ, RESP = 0, 1


def data(side, b, cuts=()):
    """A data segment; cuts = split points (at most 6), or 'bytes' for byte by byte."""
    if cuts == "bytes":
        c = side | (7 << 3)
        return bytes([c]) + struct.pack("<H", len(b)) + b
    assert len(cuts) <= 6
    c = side | (len(cuts) << 3)
    return bytes([c]) + struct.pack("<H", len(b)) + b"".join(struct.pack("<H", x) for x in cuts) + b


def gap(side, n):
    if n > 0xFFFF:
        return bytes([side | 6 | 8]) + struct.pack("<Q", n)
    return bytes([side | 6]) + struct.pack("<H", n)


# --- HTTP/1 ----------------------------------------------------------------

GET = b"GET /api/users?id=7 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\ntraceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\n\r\n"
OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 13\r\n\r\n{\"name\":\"a\"}\n"
POST = b"POST /upload HTTP/1.1\r\nHost: example.com\r\nContent-Type: text/plain\r\nContent-Length: 11\r\n\r\nhello world"
CREATED = b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"
CHUNKED_REQ = b"PUT /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n"
CHUNKED_RESP = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nWiki\r\n5\r\npedia\r\n0\r\nX-Trailer: 1\r\n\r\n"
HEAD = b"HEAD /h HTTP/1.1\r\nHost: h\r\n\r\n"
HEAD_RESP = b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n"
CONTINUE_REQ = b"POST /big HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n"
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
NO_CONTENT = b"HTTP/1.1 204 No Content\r\n\r\n"
HTTP10 = b"GET / HTTP/1.0\r\n\r\n"
CLOSE_DELIM = b"HTTP/1.0 200 OK\r\nContent-Type: text/html\r\n\r\n<html>until close</html>"
H2C_REQ = b"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\nConnection: Upgrade, HTTP2-Settings\r\n\r\n"
SWITCH = b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"
CONNECT = b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"
CONNECTED = b"HTTP/1.1 200 Connection established\r\n\r\n"
ERR500 = b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 5\r\nConnection: close\r\n\r\noops!"

H1 = b"\x00\x03"  # max_head 16384, max_pending 4


def http1_seeds():
    t = "http1_session"
    write(t, "get_ok", H1 + data(REQ, GET) + data(RESP, OK))
    write(t, "get_ok_split", H1 + data(REQ, GET, (1, 4, 30, 100)) + data(RESP, OK, (17, 18, 60)))
    write(t, "keepalive", H1 + data(REQ, GET) + data(RESP, OK) + data(REQ, POST) + data(RESP, CREATED) + data(REQ, HEAD) + data(RESP, HEAD_RESP))
    write(t, "pipelined", H1 + data(REQ, GET + POST + HEAD, (5, 120)) + data(RESP, OK + CREATED + HEAD_RESP, (90,)))
    write(t, "chunked", H1 + data(REQ, CHUNKED_REQ, "bytes") + data(RESP, CHUNKED_RESP, (50, 51, 52)))
    write(t, "continue", H1 + data(REQ, CONTINUE_REQ) + data(RESP, CONTINUE) + data(REQ, b"abcd") + data(RESP, OK))
    write(t, "no_content_500", H1 + data(REQ, b"DELETE /x HTTP/1.1\r\nHost: h\r\n\r\n") + data(RESP, NO_CONTENT) + data(REQ, GET) + data(RESP, ERR500))
    write(t, "close_delimited", H1 + data(REQ, HTTP10) + data(RESP, CLOSE_DELIM))
    write(t, "h2c_upgrade", H1 + data(REQ, H2C_REQ) + data(RESP, SWITCH + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"))
    write(t, "connect", H1 + data(REQ, CONNECT) + data(RESP, CONNECTED) + data(REQ, b"\x16\x03\x01\x00\x05hello"))
    write(t, "gap_in_body", H1 + data(REQ, GET) + data(RESP, OK[:70]) + gap(RESP, 5) + data(RESP, OK[75:]) + data(REQ, GET) + data(RESP, OK))
    write(t, "gap_resync", H1 + data(REQ, GET[:20]) + gap(REQ, 40) + data(REQ, b"xx\r\n\r\n" + POST) + data(RESP, OK) + gap(RESP, 3) + data(RESP, b"garbage" + CREATED))
    write(t, "huge_gap", H1 + data(REQ, GET) + data(RESP, CLOSE_DELIM) + gap(RESP, 1 << 62))
    write(t, "small_head_limit", b"\x03\x00" + data(REQ, GET) + data(RESP, OK))
    write(t, "garbage", H1 + data(REQ, b"\x16\x03\x01\x02\x00garbage GET / HTTP/1.1\r\n\r\n") + data(RESP, b"HTTP/1.1 abc\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"))


# --- HTTP/2 (RFC 9113) -----------------------------------------------------

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, PRIORITY, RST, SETTINGS, PUSH, PING, GOAWAY, WINDOW, CONT = 0, 1, 2, 3, 4, 5, 6, 7, 8, 9
END_STREAM, ACK, END_HEADERS, PADDED, PRIO = 1, 1, 4, 8, 0x20


def frame(kind, flags, sid, payload):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", sid) + payload


def settings(pairs=(), ack=False):
    return frame(SETTINGS, ACK if ack else 0, 0, b"".join(struct.pack(">HI", k, v) for k, v in pairs))


def lit(name, value):
    """Literal with incremental indexing, new name, no Huffman."""
    return b"\x40" + bytes([len(name)]) + name + bytes([len(value)]) + value


# RFC 7541 C.3.1 (request without Huffman): :method GET, :scheme http, :path /, :authority www.example.com
C31 = bytes.fromhex("828684410f7777772e6578616d706c652e636f6d")
# C.3.2: ... cache-control: no-cache (uses the dynamic table entry from C.3.1)
C32 = bytes.fromhex("828684be58086e6f2d6361636865")
# C.4.1 (Huffman)
C41 = bytes.fromhex("828684418cf1e3c2e5f23a6ba0ab90f4ff")
C42 = bytes.fromhex("828684be5886a8eb10649cbf")
# C.5.1 response without Huffman (table size 256)
C51 = bytes.fromhex("4803333032580770726976617465611d4d6f6e2c203231204f637420323031332032303a31333a323120474d546e1768747470733a2f2f7777772e6578616d706c652e636f6d")
# :status 200, content-type: application/grpc (literal, indexed name 31)
RESP_200 = b"\x88" + b"\x5f" + bytes([16]) + b"application/grpc"
TRAILERS = lit(b"grpc-status", b"0") + lit(b"grpc-message", b"ok")

H2_SERVER_PREFIX = settings([(3, 100), (4, 65535), (5, 16384)])


def h2_conversation():
    q = PREFACE + settings([(1, 4096), (2, 0), (4, 6291456)]) + frame(WINDOW, 0, 0, struct.pack(">I", 15663105))
    r = H2_SERVER_PREFIX + settings(ack=True)
    q2 = settings(ack=True) + frame(HEADERS, END_HEADERS, 1, C31) + frame(DATA, END_STREAM, 1, b"")
    q3 = frame(HEADERS, END_HEADERS | END_STREAM, 3, C32)
    r2 = frame(HEADERS, END_HEADERS, 1, RESP_200) + frame(DATA, 0, 1, b"\x00\x00\x00\x00\x05hello") + frame(HEADERS, END_HEADERS | END_STREAM, 1, TRAILERS)
    r3 = frame(HEADERS, END_HEADERS | END_STREAM, 3, b"\x8d")  # :status 404
    return q, r, q2, q3, r2, r3


def http2_seeds():
    t = "http2_session"
    q, r, q2, q3, r2, r3 = h2_conversation()
    std = b"\x00\x10"  # new(), 64 KiB header list, max_streams 17
    write(t, "preface_settings_headers_data", std + data(REQ, q) + data(RESP, r) + data(REQ, q2) + data(RESP, r2))
    write(t, "two_streams_split", std + data(REQ, q, (3, 24, 25)) + data(RESP, r, (9,)) + data(REQ, q2 + q3, "bytes") + data(RESP, r2 + r3, (1, 10, 20, 30)))
    # HEADERS + CONTINUATION, padding and priority
    hb = C41
    cont = frame(HEADERS, PADDED | PRIO, 1, bytes([3]) + b"\x00\x00\x00\x00\x10" + hb[:5] + b"\x00\x00\x00") + frame(CONT, END_HEADERS, 1, hb[5:])
    write(t, "continuation_padding", std + data(REQ, q + settings(ack=True) + cont) + data(RESP, r + frame(HEADERS, END_HEADERS | END_STREAM, 1, b"\x88")))
    # RST_STREAM, PING, GOAWAY, PUSH_PROMISE
    ctl = frame(PING, 0, 0, b"12345678") + frame(RST, 0, 1, struct.pack(">I", 8)) + frame(GOAWAY, 0, 0, struct.pack(">II", 1, 0) + b"debug")
    push = frame(PUSH, END_HEADERS, 1, struct.pack(">I", 2) + C31)
    write(t, "control_frames", std + data(REQ, q + settings(ack=True) + frame(HEADERS, END_HEADERS, 1, C31)) + data(RESP, r + push + ctl))
    # Midstream join: no preface, starts in the middle of a frame.
    mid = b"\x01\x10"  # new_midstream, max_streams 17
    write(t, "midstream", mid + data(REQ, (q2 + q3)[5:]) + data(RESP, (r2 + r3)[3:]))
    # Gaps: inside a DATA payload (absorbed), then inside a header (fatal).
    write(t, "gaps", std + data(REQ, q + q2) + data(RESP, r + r2[:20]) + gap(RESP, 3) + data(RESP, r2[23:]) + gap(REQ, 2))
    # After an h2c upgrade: preface then response on stream 1.
    write(t, "after_upgrade", b"\x02\x10" + data(REQ, q) + data(RESP, r + frame(HEADERS, END_HEADERS | END_STREAM, 1, b"\x88")))
    # SETTINGS raising frame size and header table size
    big = settings([(1, 65536), (5, 65536)])
    write(t, "settings_sizes", std + data(REQ, q + settings(ack=True)) + data(RESP, big)
          + data(REQ, settings(ack=True) + frame(HEADERS, END_HEADERS | END_STREAM, 1, b"\x3f\xe1\x1f" + C31))
          + data(RESP, frame(HEADERS, END_HEADERS | END_STREAM, 1, RESP_200)))


def hpack_seeds():
    t = "hpack_decoder"

    def block(b):
        return b"\x00" + struct.pack("<H", len(b)) + b

    def bound(n):
        return b"\xff" + struct.pack("<I", n)

    # C.3 / C.4: requests on one connection, default table.
    C33 = bytes.fromhex("828785bf400a637573746f6d2d6b65790c637573746f6d2d76616c7565")
    C43 = bytes.fromhex("828785bf408825a849e95ba97d7f8925a849e95bb8e8b4bf")
    write(t, "rfc7541_c3", b"\x00" + block(C31) + block(C32) + block(C33))
    write(t, "rfc7541_c4", b"\x00" + block(C41) + block(C42) + block(C43))
    # C.5 / C.6: responses with a 256-byte table (mode 2, size 256).
    C52 = bytes.fromhex("4803333037c1c0bf")
    C53 = bytes.fromhex("88c1611d4d6f6e2c203231204f637420323031332032303a31333a323220474d54c05a04677a69707738666f6f3d4153444a4b48514b425a584f5157454f50495541585157454f49553b206d61782d6167653d333630303b2076657273696f6e3d31")
    C61 = bytes.fromhex("488264025885aec3771a4b6196d07abe941054d444a8200595040b8166e082a62d1bff6e919d29ad171863c78f0b97c8e9ae82ae43d3")
    C62 = bytes.fromhex("4883640effc1c0bf")
    C63 = bytes.fromhex("88c16196d07abe941054d444a8200595040b8166e084a62d1bffc05a839bd9ab77ad94e7821dd7f2e6c7b335dfdfcd5b3960d5af27087f3672c1ab270fb5291f9587316065c003ed4ee5b1063d5007")
    write(t, "rfc7541_c5", b"\x02" + struct.pack("<H", 256) + block(C51) + block(C52) + block(C53))
    write(t, "rfc7541_c6", b"\x02" + struct.pack("<H", 256) + block(C61) + block(C62) + block(C63))
    # Size updates: to 0 and back, over the bound (error), after SETTINGS raise.
    write(t, "size_updates", b"\x00" + block(b"\x20\x3f\xe1\x1f" + C31) + bound(65536) + block(b"\x3f\xe1\xff\x03" + C32) + block(b"\x3f\xe1\x1f\x82"))
    # Midstream: unknown table, references past the static table.
    write(t, "midstream_unknown", b"\x01" + block(b"\x82\xbe\xc0" + lit(b"k", b"v") + b"\x7e\x01x") + block(b"\x3f\xe1\x1f\xbe"))


def conn_tracker_seeds():
    # `arbitrary`-decoded; a few byte strings of varied shape are enough to
    # start from (libFuzzer finds the structure).
    t = "conn_tracker"
    write(t, "zeros", bytes(64))
    write(t, "ramp", bytes(range(256)))
    write(t, "http_text", b"\x04\xff\xff\x00\x10\x00\x40\x08\x10\x00\x40\x00\x20" + GET + OK + POST)


def recording_seeds():
    t = "recording_reader"
    fx = os.path.join(ROOT, "collector", "tests", "fixtures")
    for name in ("http1_keepalive.rec", "http2_prior_knowledge.rec"):
        src = os.path.join(fx, name)
        if not os.path.exists(src):
            continue
        raw = open(src, "rb").read()
        write(t, name, raw)
        # The same without exec records (9 KiB each): small, quick to mutate.
        write(t, name.replace(".rec", "_noexec.rec"), strip_exec(raw))
    write(t, "empty_recording", b"WSPNREC1" + struct.pack("<I", 8) + struct.pack("<q", 0))


def strip_exec(raw):
    out = bytearray(raw[:12])
    hlen = struct.unpack_from("<I", raw, 8)[0]
    out += raw[12:12 + hlen]
    pos = 12 + hlen
    while pos + 4 <= len(raw):
        n = struct.unpack_from("<I", raw, pos)[0]
        rec = raw[pos + 4:pos + 4 + n]
        pos += 4 + n
        if len(rec) >= 4 and struct.unpack_from("<I", rec, 0)[0] == 4:  # kind::PROC_EXEC
            continue
        out += struct.pack("<I", len(rec)) + rec
    return bytes(out)


def config_seeds():
    t = "config_loader"
    src = os.path.join(ROOT, "config", "src", "default.yaml")
    write(t, "default.yaml", open(src, "rb").read())
    write(t, "small.yaml", b"capture:\n  ports: [80, 8080]\n  per_call_cap_bytes: 4096\nexport:\n  otlp:\n    endpoint: http://collector:4317\n    protocol: grpc\nhttp:\n  routes:\n    - /users/{id}\n")
    write(t, "env.yaml", b"log: info\n\x00EXPORT__QUEUE_SIZE=100\nCAPTURE__PORTS=80,443\nWIRESPAN_HTTP__ROUTES=/a/{b},/c\n")
    write(t, "bad.yaml", b"capture:\n  ports: [99999]\nunknown_key: 1\nconnections:\n  idle_timeout: 5x\n")


def found_seeds():
    """The reproducers of findings (fuzz/artifacts-found/<target>/), so every
    smoke run replays them first: a fixed finding that comes back fails CI."""
    found = os.path.join(HERE, "artifacts-found")
    for t in sorted(os.listdir(found)):
        d = os.path.join(found, t)
        if os.path.isdir(d):
            for f in sorted(os.listdir(d)):
                write(t, f, open(os.path.join(d, f), "rb").read())


if __name__ == "__main__":
    # Written over, never wiped: some seeds are committed by hand or come
    # from elsewhere (the ELF and pclntab targets, the recording fixtures).
    http1_seeds()
    http2_seeds()
    hpack_seeds()
    conn_tracker_seeds()
    recording_seeds()
    config_seeds()
    found_seeds()
    for d in sorted(os.listdir(SEEDS)):
        files = os.listdir(os.path.join(SEEDS, d))
        size = sum(os.path.getsize(os.path.join(SEEDS, d, f)) for f in files)
        print(f"{d}: {len(files)} seeds, {size} bytes")
