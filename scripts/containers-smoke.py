#!/usr/bin/env python3
"""The containers smoke test, through the load balancer only (LB, TOKEN,
PROJECT from the environment): a topic, produce then read, a long-poll
woken by a produce, an SSE stream and a WebSocket subscription receiving a
record, reads served by the agent that wrote the record (peer reads),
then one agent killed: requests keep succeeding and nothing acknowledged
is lost. Prints what it saw; exits non-zero on any failure."""

import base64
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from urllib.parse import urlparse

LB = os.environ["LB"]
TOKEN = os.environ["TOKEN"]
PROJECT = os.environ.get("PROJECT", "streamhouse")
TOPIC = "smoke"


def call(method, path, body=None, headers=None, timeout=60):
    data = json.dumps(body).encode() if body is not None else None
    h = {"Authorization": f"Bearer {TOKEN}"}
    if data is not None:
        h["Content-Type"] = "application/json"
    h.update(headers or {})
    req = urllib.request.Request(LB + path, data=data, method=method, headers=h)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            text = r.read().decode()
            return r.status, (json.loads(text) if text else None)
    except urllib.error.HTTPError as e:
        text = e.read().decode()
        return e.code, (json.loads(text) if text.startswith("{") else text)


def produce(value, partition, key=None):
    """Produces one record; a 503 (nothing appended) is retried twice with
    the same Idempotency-Key, as the API asks of clients."""
    key = key or f"smoke-{uuid.uuid4()}"
    for attempt in range(3):
        s, b = call("POST", f"/v1/topics/{TOPIC}/records",
                    {"records": [{"value": value, "partition": partition}]},
                    {"Idempotency-Key": key})
        if s != 503:
            return s, b
        print(f"retrying a 503 (attempt {attempt + 1}): {b}", file=sys.stderr)
        time.sleep(1)
    return s, b


def check(cond, what):
    if not cond:
        print(f"FAILED: {what}", file=sys.stderr)
        sys.exit(1)
    print(f"ok: {what}")


def high_watermark(p):
    s, b = call("GET", f"/v1/topics/{TOPIC}/partitions/{p}/offsets")
    check(s == 200, f"offsets of partition {p}: {s} {b}")
    return b["high_watermark"]


def main():
    s, b = call("POST", "/v1/topics", {"name": TOPIC, "partitions": 2})
    check(s in (201, 409), f"create topic: {s}")

    # Produce on one request, read on the next (round robin: another agent).
    s, b = produce("first", 0)
    check(s == 200, f"produce: {s} {b}")
    off = b["offsets"][0]["offset"]
    s, page = call("GET", f"/v1/topics/{TOPIC}/partitions/0/records?offset={off}")
    check(s == 200 and page["records"][0]["value"] == "first", "read back on the next request")
    # nginx balances per worker process, so "the next request" may still
    # reach the writer: a few more reads land on the others too.
    again = [call("GET", f"/v1/topics/{TOPIC}/partitions/0/records?offset={off}")
             for _ in range(6)]
    check(all(s == 200 and p["records"][0]["value"] == "first" for s, p in again),
          "read back six more times")

    # A long-poll woken by a produce.
    hw = high_watermark(0)
    got = {}
    def poll():
        t0 = time.time()
        got["r"] = call("GET", f"/v1/topics/{TOPIC}/partitions/0/records?offset={hw}&wait_ms=20000")
        got["s"] = time.time() - t0
    t = threading.Thread(target=poll)
    t.start()
    time.sleep(1)
    produce("woken", 0)
    t.join(30)
    check(got.get("r", (0, {}))[0] == 200 and got["r"][1]["records"][0]["value"] == "woken"
          and got["s"] < 15, f"long-poll woken after {got.get('s', -1):.2f} s")

    # SSE through nginx (no buffering).
    hw = high_watermark(0)
    u = urlparse(LB)
    sse = socket.create_connection((u.hostname, u.port), timeout=20)
    sse.sendall((f"GET /v1/topics/{TOPIC}/partitions/0/records?from={hw} HTTP/1.1\r\nHost: {u.hostname}\r\n"
                 f"Accept: text/event-stream\r\nAuthorization: Bearer {TOKEN}\r\n\r\n").encode())
    time.sleep(1)
    produce("over-sse", 0)
    buf = b""
    deadline = time.time() + 20
    while b"over-sse" not in buf and time.time() < deadline:
        chunk = sse.recv(65536)
        if not chunk:
            break
        buf += chunk
    sse.close()
    check(b"event: records" in buf and b"over-sse" in buf, "an SSE stream received the record")

    # WebSocket through nginx.
    ws = socket.create_connection((u.hostname, u.port), timeout=20)
    key = base64.b64encode(os.urandom(16)).decode()
    ws.sendall((f"GET /v1/ws HTTP/1.1\r\nHost: {u.hostname}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                f"Authorization: Bearer {TOKEN}\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += ws.recv(1)
    check(head.startswith(b"HTTP/1.1 101"), f"WebSocket upgrade through nginx: {head.splitlines()[0]!r}")

    def ws_send(obj):
        data = json.dumps(obj).encode()
        mask = os.urandom(4)
        hdr = bytes([0x81])
        n = len(data)
        hdr += bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + n.to_bytes(2, "big")
        ws.sendall(hdr + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

    def ws_recv():
        def exact(n):
            out = b""
            while len(out) < n:
                c = ws.recv(n - len(out))
                if not c:
                    raise EOFError
                out += c
            return out
        while True:
            b0, b1 = exact(2)
            n = b1 & 0x7F
            if n == 126:
                n = int.from_bytes(exact(2), "big")
            elif n == 127:
                n = int.from_bytes(exact(8), "big")
            payload = exact(n)
            if b0 & 0x0F == 1:
                return json.loads(payload)

    ws_send({"type": "subscribe", "id": "s", "topic": TOPIC, "partitions": [1], "from": "latest"})
    m = ws_recv()
    check(m.get("type") == "subscribed", f"subscribed: {m}")
    produce("over-ws", 1)
    m = ws_recv()
    check(m.get("type") == "records" and m["records"][0]["value"] == "over-ws",
          "a WebSocket subscription received the record")
    ws.close()

    # The reads above on agents other than the writer came from the writer
    # (peer reads): some agent counts them, more than it had to read from
    # the store instead (a peer refusing every read, say with another
    # secret, would make every read fall back).
    fetched, fell_back = 0.0, 0.0
    for _ in range(12):
        req = urllib.request.Request(LB + "/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        with urllib.request.urlopen(req, timeout=20) as r:
            for line in r.read().decode().splitlines():
                if line.startswith("streamhouse_peer_fetches_total "):
                    fetched = max(fetched, float(line.split()[-1]))
                if line.startswith("streamhouse_peer_fetch_fallbacks_total "):
                    fell_back = max(fell_back, float(line.split()[-1]))
    check(fetched > fell_back,
          f"peer reads: an agent read {fetched:.0f} ranges from their writer, {fell_back:.0f} fell back")

    # One agent killed: requests keep succeeding, nothing acknowledged is lost.
    victim = f"{PROJECT}_agent2_1"
    subprocess.run(["podman", "kill", victim], check=True, capture_output=True)
    print(f"killed {victim}")
    acked, retried = [], 0
    for i in range(30):
        key = f"after-kill-{i}-{time.time()}"
        s, b = produce(f"after-kill-{i}", i % 2, key)
        if s != 200:
            retried += 1
            s, b = produce(f"after-kill-{i}", i % 2, key)
        check(s == 200, f"produce {i} after the kill: {s} {b}")
        o = b["offsets"][0]
        acked.append((o["partition"], o["offset"], f"after-kill-{i}"))
    print(f"30 produces after the kill: 30 acknowledged, {retried} needed a retry with the same key")
    for p in (0, 1):
        s, page = call("GET", f"/v1/topics/{TOPIC}/partitions/{p}/records?offset=0&limit=10000")
        check(s == 200, f"read partition {p} after the kill")
        stored = {(p, r["offset"]): r["value"] for r in page["records"]}
        for (ap, ao, v) in acked:
            if ap == p:
                check(stored.get((ap, ao)) == v, f"acknowledged record {ap}/{ao} is stored")
    print("smoke test passed")


if __name__ == "__main__":
    main()
