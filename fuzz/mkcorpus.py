#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets into fuzz/corpus/<target>/.

Each seed is a valid input of its target's own format (see the comment at
the top of fuzz/<target>.c): a mode byte and what follows. Datagrams and
frames that must verify are signed with the targets' fixed test keys
(32 bytes of 0x42; 0x43 is the second key of the ring). Run it again after
changing a format; the output is deterministic. Regression inputs for
findings (files named regress-*) are kept by hand and not touched here.
"""
import hashlib
import hmac
import os
import struct
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")
K0 = b"\x42" * 32


def put(target, name, data):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


# ---- fuzz_proto: mode byte (0 raw, 1 sign key 0, 2 sign key 1, 3 foreign) + data

NONCE = "0123456789abcdef0123456789abcdef"
BOOT = "fedcba9876543210fedcba9876543210"
HDR = '{"v":1,"type":"%s","seq":7,"ts":1700000000000,"nonce":"' + NONCE + '"'
ID = ',"name":"cache-a","boot":"' + BOOT + '"'
METRICS = (',"ip":"127.0.0.1","port":8080,"ram_free":1000,"ram_total":4000,'
           '"cpu_idle":55.5,"load1":0.25,"uptime":12,"service":"up"')


def proto():
    msgs = {
        "probe_request": HDR % "probe_request" + "}",
        "probe_response": HDR % "probe_response" + ID + ',"hold_ms":12.5' + METRICS
        + ',"cpu_milli":2000}',
        "hello": HDR % "hello" + ID + METRICS
        + ',"cgroup":true,"cpu_milli":200,"future":[1,{"x":null}]}',
        "bye": HDR % "bye" + ID + "}",
    }
    for name, js in msgs.items():
        put("fuzz_proto", "signed-" + name, b"\x01" + js.encode())
    put("fuzz_proto", "key2-hello", b"\x02" + msgs["hello"].encode())
    put("fuzz_proto", "foreign-bye", b"\x03" + msgs["bye"].encode())
    js = msgs["probe_response"].encode()
    tag = hmac.new(K0, js, hashlib.sha256).hexdigest().encode()
    put("fuzz_proto", "raw-probe_response", b"\x00" + js + b"\n" + tag)


# ---- fuzz_cfg: mode byte (0: file only, 1: file NUL argv...) + data

def cfg():
    full = (b"# every key once\nname = node-a\ntext = anything at all\nport = 8080\n"
            b"wide = -9223372036854775808\nneg = -3\ninterval = 0.25\nany = -1.5e300\n"
            b"json = yes\nmode = path\npeer = 10.0.0.1:7000\npeer = 10.0.0.2:7000\n"
            b"log-file = -\nlog-level = debug\n; another comment\n")
    put("fuzz_cfg", "file-every-key", b"\x00" + full)
    put("fuzz_cfg", "file-errors", b"\x00port = 0x10\n[section]\nname = too-long-for-its-cap\n")
    put("fuzz_cfg", "file-no-value", b"\x00json\nmode = nope\n")
    argv = [b"--port", b"9000", b"--json", b"--mode=off", b"--peer", b"a:1", b"--peer=b:2",
            b"--interval", b"1e-1", b"--log-level=warn", b"--config", b"x"]
    put("fuzz_cfg", "file-and-flags", b"\x01peer = f:1\nport = 1\n\x00" + b"\x00".join(argv))
    put("fuzz_cfg", "flags-help", b"\x01\x00--name\x00x\x00--help")
    put("fuzz_cfg", "flags-bad", b"\x01\x00--wide=9223372036854775807\x00--any=inf\x00--nope")


# ---- fuzz_repl_frame: mode byte, seed byte, then records or a raw stream

def s16(b):
    return struct.pack(">H", len(b)) + b


def s32(b):
    return struct.pack(">I", len(b)) + b


def begin(oid, body, primary=b"example.com/a?b=1"):
    return (struct.pack(">QHqqqqQ", oid, 200, 1700000000, 3, 60, 30, len(body)) +
            hashlib.sha256(body).digest() + s16(primary) + s16(b"accept-encoding=gzip") +
            s16(b"Accept-Encoding") + s16(b'"v1"') +
            s32(b"Content-Type: text/plain\r\nX-A: 1\r\n"))


def rec(t, payload):
    return struct.pack(">BH", t, len(payload)) + payload


def inventory():
    e = b""
    for i, key in enumerate([b"example.com/a", b"example.com/b"]):
        e += s16(key) + s16(b"") + s16(b'"e%d"' % i) + struct.pack(">q", 1700000000 + i)
    return struct.pack(">II", 0, 2) + e


def repl():
    body = b"hello, replicated world"
    obj = (rec(3, begin(1, body)) + rec(4, struct.pack(">QQ", 1, 0) + body[:10]) +
           rec(4, struct.pack(">QQ", 1, 10) + body[10:]) + rec(5, struct.pack(">Q", 1)))
    misc = (rec(2, b"") + rec(6, b"\x00" + s16(b"example.com/a")) +
            rec(6, b"\x01" + s16(b"example.com/b")) + rec(7, b"") + rec(8, inventory()) +
            rec(9, struct.pack(">IQ", 1, 2)))
    put("fuzz_repl_frame", "signed-object", b"\x01\x07" + obj)
    put("fuzz_repl_frame", "signed-object-bytewise", b"\x05\x07" + obj)
    put("fuzz_repl_frame", "signed-misc", b"\x09\x2a" + misc)
    put("fuzz_repl_frame", "signed-misc-key2", b"\x0f\x11" + misc)
    hello = struct.pack(">H", 1) + b"\x33" * 16 + b"\x06peer-b"
    put("fuzz_repl_frame", "own-hello", b"\x02\x00" + rec(1, hello) + rec(2, b"") + obj)
    put("fuzz_repl_frame", "second-hello", b"\x01\x00" + rec(2, b"") + rec(1, hello))
    # A raw stream as a peer sends it: HELLO (zero nonces), then a HEARTBEAT
    # tagged with (sender 0x22.., receiver 0x11..).
    snd, rcv, z = b"\x22" * 16, b"\x11" * 16, b"\x00" * 16

    def frame(t, seq, payload, n1, n2):
        f = b"FULR" + struct.pack(">BBHQI", 1, t, 0, seq, len(payload)) + payload
        return f + hmac.new(K0, n1 + n2 + f, hashlib.sha256).digest()
    hp = struct.pack(">H", 1) + snd + b"\x06peer-a"
    raw = frame(1, 1, hp, z, z) + frame(2, 2, b"", snd, rcv) + frame(7, 3, b"", snd, rcv)
    put("fuzz_repl_frame", "raw-hello-heartbeat", b"\x08\x05" + raw)


# ---- fuzz_http: mode, script and seed bytes, then what the client sends

def http():
    seeds = {
        "get": b"GET /a/b?x=1 HTTP/1.1\r\nHost: Example.COM\r\nAccept: */*\r\n\r\n",
        "pipeline": (b"GET / HTTP/1.1\r\nHost: a\r\n\r\nHEAD /h HTTP/1.1\r\nHost: a\r\n\r\n"
                     b"DELETE /d HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"),
        "post-length": b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
        "post-chunked": (b"PUT /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                         b"5\r\nhello\r\n0\r\nX-Trailer: t\r\n\r\n"),
        "expect": (b"POST /e HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n"
                   b"Content-Length: 3\r\n\r\nabc"),
        "http10": b"GET /old HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /again HTTP/1.0\r\n\r\n",
        "absolute": b"GET http://Origin.Example:8080/p?q HTTP/1.1\r\nHost: other\r\n\r\n",
        "options-star": b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
        "purge": b"PURGE /obj HTTP/1.1\r\nHost: a\r\n\r\n",
        "upgrade": b"GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
        "bad-version": b"GET / HTTP/2.0\r\nHost: a\r\n\r\n",
        "two-hosts": b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    }
    modes = [0x00, 0x02, 0x05, 0x0a, 0x0c, 0x03, 0x1e, 0x09, 0x00, 0x01, 0x00, 0x02]
    for i, (name, req) in enumerate(seeds.items()):
        put("fuzz_http", name, bytes([modes[i], 0xe4 if i % 2 else 0x1b, i]) + req)
    # The tiny-limits server: a long URL, many headers, a big body.
    put("fuzz_http", "tiny-limits", b"\x01\x00\x00GET /" + b"u" * 80 + b" HTTP/1.1\r\nHost: a\r\n\r\n"
        + b"GET / HTTP/1.1\r\nHost: a\r\n" + b"X: y\r\n" * 9 + b"\r\n")
    # A slow reader of 24 KiB streamed answers from the tiny server (output
    # backpressure, drain callbacks), and the tiny server with 2 ms timeouts.
    put("fuzz_http", "slow-reader", b"\x23\xa5\x01" + b"GET /s HTTP/1.1\r\nHost: a\r\n\r\n" * 3)
    put("fuzz_http", "timeouts", b"\x45\x00\x09GET /t HTTP/1.1\r\nHost: a\r\n\r\nGET /u HTTP/1.1\r\n")
    put("fuzz_http", "hangup-held", b"\x12\x00\x00GET /h HTTP/1.1\r\nHost: a\r\n\r\n")
    put("fuzz_http", "tiny-body", b"\x03\x55\x00POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2000\r\n\r\n"
        + b"b" * 64)


if __name__ == "__main__":
    for f in (proto, cfg, repl, http):
        f()
    sys.exit(0)
