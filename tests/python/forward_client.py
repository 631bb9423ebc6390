#!/usr/bin/env python3
"""A Fluentd forward-protocol client in the shape of Docker's fluentd log
driver: records {container_id, container_name, source, log}, EventTime
timestamps, and (with --ack) a `chunk` id per message whose {"ack": id}
answer it waits for, resending unacknowledged chunks over a new
connection until every one is acknowledged (at-least-once, like the
driver with fluentd-request-ack=true).

Modes: message ([tag, time, record, option]), forward ([tag, [[time,
record]...], option]), packed (PackedForward) and gzip
(CompressedPackedForward). --shared-key runs the HELO/PING/PONG handshake.

Prints one JSON line: {"sent": events, "chunks": n, "acked": n,
"reconnects": n, "auth": "ok"|reason}.
"""

import argparse
import base64
import gzip
import hashlib
import json
import os
import socket
import sys
import time

import msgpack


def event_time(t):
    sec = int(t)
    nsec = int((t - sec) * 1e9)
    return msgpack.ExtType(0, sec.to_bytes(4, "big") + nsec.to_bytes(4, "big"))


def record(args, i):
    return {
        "container_id": args.container_id,
        "container_name": "/" + args.container_name,
        "source": "stderr" if i % 2 else "stdout",
        "log": f"{args.prefix} {i}",
    }


def message_bytes(args, first, n, chunk):
    now = time.time()
    entries = [[event_time(now), record(args, i)] for i in range(first, first + n)]
    option = {"chunk": chunk, "size": n} if chunk else {}
    if args.mode == "message":
        assert n == 1
        t, r = entries[0]
        return msgpack.packb([args.tag, t, r, option], use_bin_type=True)
    if args.mode == "forward":
        return msgpack.packb([args.tag, entries, option], use_bin_type=True)
    stream = b"".join(msgpack.packb(e, use_bin_type=True) for e in entries)
    if args.mode == "gzip":
        stream = gzip.compress(stream)
        option["compressed"] = "gzip"
    return msgpack.packb([args.tag, stream, option], use_bin_type=True)


def handshake(sock, unpacker, args):
    """HELO → PING → PONG; returns "ok" or the server's reason."""
    helo = next_value(sock, unpacker)
    assert helo[0] == "HELO", helo
    nonce = helo[1]["nonce"]
    if isinstance(nonce, str):
        nonce = nonce.encode()
    salt = os.urandom(16).hex().encode()
    hostname = args.hostname.encode()
    digest = hashlib.sha512(salt + hostname + nonce + args.shared_key.encode()).hexdigest()
    sock.sendall(msgpack.packb(["PING", args.hostname, salt, digest, "", ""], use_bin_type=True))
    pong = next_value(sock, unpacker)
    assert pong[0] == "PONG", pong
    if not pong[1]:
        return pong[2]
    server = pong[3].encode() if isinstance(pong[3], str) else pong[3]
    want = hashlib.sha512(salt + server + nonce + args.shared_key.encode()).hexdigest()
    if pong[4] != want:
        return "the server's digest does not prove the key"
    return "ok"


def next_value(sock, unpacker):
    while True:
        for value in unpacker:
            return value
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("closed by the server")
        unpacker.feed(data)


def connect(args):
    deadline = time.time() + args.connect_timeout
    while True:
        try:
            sock = socket.create_connection(("127.0.0.1", args.port), timeout=args.ack_timeout)
            return sock
        except OSError:
            if time.time() > deadline:
                raise
            time.sleep(0.1)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--mode", choices=["message", "forward", "packed", "gzip"], default="forward")
    p.add_argument("--count", type=int, default=10)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--tag", default="docker.web")
    p.add_argument("--prefix", default="line")
    p.add_argument("--container-id", default="4f1c2a9b8d7e")
    p.add_argument("--container-name", default="shop-web-1")
    p.add_argument("--ack", action="store_true")
    p.add_argument("--ack-timeout", type=float, default=5.0)
    p.add_argument("--connect-timeout", type=float, default=60.0)
    p.add_argument("--shared-key")
    p.add_argument("--hostname", default="app-host")
    p.add_argument("--pause", type=float, default=0.0, help="seconds between messages")
    p.add_argument("--deadline", type=float, default=120.0, help="give up resending after this many seconds")
    args = p.parse_args()
    if args.mode == "message":
        args.batch = 1

    pending = []  # (chunk, bytes) in order
    first = 0
    chunks = 0
    while first < args.count:
        n = min(args.batch, args.count - first)
        chunk = base64.b64encode(os.urandom(16)).decode() if args.ack else None
        pending.append((chunk, message_bytes(args, first, n, chunk)))
        first += n
        chunks += 1

    acked = 0
    reconnects = -1
    auth = "ok"
    deadline = time.time() + args.deadline
    while pending and time.time() < deadline:
        reconnects += 1
        try:
            sock = connect(args)
            unpacker = msgpack.Unpacker(raw=False)
            if args.shared_key:
                auth = handshake(sock, unpacker, args)
                if auth != "ok":
                    break
            while pending:
                chunk, data = pending[0]
                sock.sendall(data)
                if args.ack:
                    answer = next_value(sock, unpacker)
                    if answer.get("ack") != chunk:
                        raise ConnectionError(f"unexpected answer {answer}")
                    acked += 1
                pending.pop(0)
                if args.pause:
                    time.sleep(args.pause)
            sock.close()
        except (OSError, ConnectionError, AssertionError, StopIteration):
            if not args.ack:
                break
            time.sleep(0.1)
    if not args.ack and not pending:
        # Without acks, "sent" is all the client can know.
        acked = chunks
    print(json.dumps({"sent": args.count, "chunks": chunks, "acked": acked, "reconnects": max(reconnects, 0), "auth": auth}))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
