#!/usr/bin/env python3
"""PUBLISH throughput to 1, 10 and 100 subscribers, Strata beside Redis in
one run: redis-benchmark publishes to one channel (`-c` clients, `-P`
pipelining) while subscriber connections, read by two reader processes,
count what reaches them. Prints, per server and subscriber count, the
PUBLISH rate and the messages each subscriber received per second.

    python3 benches/pubsub.py [--messages 200000] [--payload 32] [--strata PATH]

Not part of CI: it takes a minute and measures this machine."""
import argparse
import multiprocessing
import os
import re
import selectors
import socket
import subprocess
import sys
import tempfile
import time

from benchlib import default_strata, free_port, resp, server_argv, wait_ready

CHANNEL = b"bench-channel"


def frame_size(payload):
    """Bytes of one `message` push (RESP2) of `payload` bytes."""
    return len(resp(b"message", CHANNEL, b"x" * payload))


def reader(port, count, payload, expected, ready, done):
    """Subscribes `count` connections and reads until each has `expected`
    messages' bytes (or 60 s pass); puts the bytes each received."""
    sel = selectors.DefaultSelector()
    socks = []
    for _ in range(count):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(resp("SUBSCRIBE", CHANNEL))
        reply = resp(b"subscribe", CHANNEL, 1).replace(b"$1\r\n1\r\n", b":1\r\n")
        got = b""
        while len(got) < len(reply):
            got += s.recv(len(reply) - len(got))
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ, len(socks))
        socks.append(s)
    ready.put(count)
    target = expected * frame_size(payload)
    received = [0] * count
    deadline = time.monotonic() + 60
    while min(received) < target and time.monotonic() < deadline:
        for key, _ in sel.select(timeout=1):
            try:
                data = key.fileobj.recv(1 << 20)
            except BlockingIOError:
                continue
            received[key.data] += len(data)
    done.put(received)
    for s in socks:
        s.close()


def run(kind, binary, subscribers, messages, payload):
    port = free_port()
    data = tempfile.mkdtemp()
    proc = subprocess.Popen(server_argv(kind, binary, port, data, "everysec"), stdout=subprocess.DEVNULL)
    readers = []
    try:
        wait_ready(port, proc)
        ready, done = multiprocessing.Queue(), multiprocessing.Queue()
        split = [subscribers // 2 + subscribers % 2, subscribers // 2]
        for count in filter(None, split):
            r = multiprocessing.Process(target=reader, args=(port, count, payload, messages, ready, done))
            r.start()
            readers.append(r)
        for _ in readers:
            ready.get(timeout=60)
        started = time.monotonic()
        bench = subprocess.run(
            ["redis-benchmark", "-p", str(port), "-n", str(messages), "-c", "4", "-P", "16", "-q",
             "PUBLISH", CHANNEL.decode(), "x" * payload],
            capture_output=True, text=True, check=True)
        received = []
        for _ in readers:
            received += done.get(timeout=90)
        elapsed = time.monotonic() - started
        rates = re.findall(r"([\d.]+) requests per second", bench.stdout)
        publish_rate = float(rates[-1]) if rates else float("nan")
        per_subscriber = min(received) / frame_size(payload) / elapsed
        complete = min(received) // frame_size(payload)
        return publish_rate, per_subscriber, complete
    finally:
        for r in readers:
            r.join(timeout=10)
            if r.is_alive():
                r.kill()
        proc.kill()
        proc.wait()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--payload", type=int, default=32)
    parser.add_argument("--strata", default=default_strata())
    parser.add_argument("--redis", default="redis-server")
    args = parser.parse_args()
    if not os.path.exists(args.strata):
        sys.exit(f"no Strata binary at {args.strata} (build with cargo build --release)")
    print(f"{args.messages} PUBLISH of {args.payload} bytes (redis-benchmark -c 4 -P 16); load {os.getloadavg()[0]:.2f}")
    print(f"{'subscribers':>11} {'server':>7} {'PUBLISH/s':>11} {'received/s each':>16} {'all received':>13} {'ratio':>6}")
    for subscribers in (1, 10, 100):
        results = {}
        for kind, binary in (("redis", args.redis), ("strata", args.strata)):
            results[kind] = run(kind, binary, subscribers, args.messages, args.payload)
        for kind in ("redis", "strata"):
            rate, each, complete = results[kind]
            ratio = rate / results["redis"][0]
            print(f"{subscribers:>11} {kind:>7} {rate:>11.0f} {each:>16.0f} {str(complete == args.messages):>13} "
                  f"{ratio:>6.2f}")


if __name__ == "__main__":
    main()
