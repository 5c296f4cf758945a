#!/usr/bin/env python3
"""Writes the seed corpus of the fcgi_records fuzz target (fuzz/seeds/fcgi_records/): what
nginx and Apache send on a FastCGI connection, a few requests per file."""
import os
import struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "seeds", "fcgi_records")
BEGIN, ABORT, END, PARAMS, STDIN, STDOUT, STDERR, DATA, GET_VALUES = 1, 2, 3, 4, 5, 6, 7, 8, 9


def record(kind, rid, content=b"", padding=0):
    return struct.pack(">BBHHBB", 1, kind, rid, len(content), padding, 0) + content + b"\0" * padding


def length(n):
    return bytes([n]) if n < 0x80 else struct.pack(">I", n | 0x80000000)


def pairs(d):
    out = b""
    for k, v in d:
        out += length(len(k)) + length(len(v)) + k + v
    return out


def begin(rid, keep=True, role=1):
    return record(BEGIN, rid, struct.pack(">HB5x", role, 1 if keep else 0))


def request(rid, params, body=b"", keep=True, split=None, padding=0):
    p = pairs(params)
    out = begin(rid, keep)
    if split:
        out += record(PARAMS, rid, p[:split], padding) + record(PARAMS, rid, p[split:])
    else:
        out += record(PARAMS, rid, p, padding)
    out += record(PARAMS, rid)
    for i in range(0, len(body), 7):
        out += record(STDIN, rid, body[i : i + 7])
    return out + record(STDIN, rid)


GET = [
    (b"REQUEST_METHOD", b"GET"),
    (b"SCRIPT_NAME", b"/mapproxy"),
    (b"PATH_INFO", b"/service"),
    (b"QUERY_STRING", b"SERVICE=WMS&REQUEST=GetCapabilities"),
    (b"SERVER_PROTOCOL", b"HTTP/1.1"),
    (b"SERVER_NAME", b"localhost"),
    (b"SERVER_PORT", b"80"),
    (b"REMOTE_ADDR", b"127.0.0.1"),
    (b"REMOTE_PORT", b"51234"),
    (b"HTTP_HOST", b"example.org:8080"),
    (b"HTTP_ACCEPT_ENCODING", b"gzip"),
    (b"HTTP_X_FORWARDED_FOR", b"10.0.0.1"),
]
POST = [
    (b"REQUEST_METHOD", b"POST"),
    (b"REQUEST_URI", b"/a/b?x=1"),
    (b"PATH_INFO", b"/a/b"),
    (b"QUERY_STRING", b"x=1"),
    (b"CONTENT_TYPE", b"application/x-www-form-urlencoded"),
    (b"CONTENT_LENGTH", b"21"),
    (b"HTTPS", b"on"),
    (b"REMOTE_USER", b"bob"),
    (b"SERVER_PROTOCOL", b"HTTP/1.0"),
    (b"HTTP_COOKIE", b"a=b; c=d"),
    (b"LONG_NAME_" + b"X" * 130, b"v" * 200),
]

SEEDS = {
    "get": request(1, GET, keep=False),
    "get_keep_two": request(1, GET) + request(2, GET, keep=False),
    "post": request(1, POST, b"name=value&other=more", keep=False),
    "post_split_padded": request(3, POST, b"name=value&other=more", split=5, padding=3),
    "multiplexed": begin(1) + begin(2)
    + record(PARAMS, 1, pairs(GET)) + record(PARAMS, 2, pairs(POST))
    + record(PARAMS, 1) + record(PARAMS, 2)
    + record(STDIN, 2, b"name=value") + record(STDIN, 1) + record(STDIN, 2, b"&other=more")
    + record(STDIN, 2),
    "abort": begin(1) + record(PARAMS, 1, pairs(POST)) + record(PARAMS, 1)
    + record(STDIN, 1, b"part") + record(ABORT, 1) + request(1, GET, keep=False),
    "get_values": record(GET_VALUES, 0, pairs([(b"FCGI_MAX_CONNS", b""), (b"FCGI_MAX_REQS", b""),
                                                (b"FCGI_MPXS_CONNS", b""), (b"OTHER", b"")])),
    "management_unknown": record(42, 0, b"xyz") + record(42, 1) + record(DATA, 1, b"d")
    + record(STDOUT, 1, b"o") + record(STDERR, 1, b"e") + record(END, 1, b"\0" * 8),
    "role_filter": begin(1, role=3) + request(2, GET, keep=False),
    "bad_version": b"\x02" + record(BEGIN, 1, b"\0\1\1\0\0\0\0\0")[1:],
    "head_http09": request(1, [(b"REQUEST_METHOD", b"HEAD"), (b"SERVER_PROTOCOL", b"HTTP/0.9"),
                               (b"PATH_INFO", b"/%zz/\xff"), (b"QUERY_STRING", b"a b")], keep=False),
}

os.makedirs(OUT, exist_ok=True)
for name, data in SEEDS.items():
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)
print(f"{len(SEEDS)} seeds in {OUT}")
