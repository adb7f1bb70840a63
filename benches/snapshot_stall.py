#!/usr/bin/env python3
"""How long writers wait while a snapshot is taken, Strata beside Redis
in one run: one sorted set of N members (default 3 M) loaded into each
server (with `--dataset issue`, also the snapshot issue's mixed data: 2 M
strings of 50 bytes, 200 k hashes of 10 fields, 200 sorted sets of 20 k,
200 lists of 50 k), then one client writing to the big sorted set and one
setting strings, each every millisecond, while BGSAVE runs (Redis forks;
Strata cuts its memory engines while writers go on). Prints each writer's
latency percentiles and worst wait during the save, the save's duration,
and the server's extra memory for it (rdb_last_cow_size: the pages
Redis's child copied; the bytes Strata's cut kept for writers).

    python3 benches/snapshot_stall.py [--members 3000000] [--dataset zset|issue] [--strata PATH]

Not part of CI: it takes minutes and measures this machine."""
import argparse
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

from benchlib import default_strata, free_port, pipe, resp, server_argv, wait_ready, write_big_zset, write_issue_mixed


def write_dataset(path, members, dataset):
    with open(path, "wb") as f:
        write_big_zset(f, members)
        if dataset == "issue":
            write_issue_mixed(f)


def info(port):
    with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
        s.sendall(resp("INFO", "persistence"))
        data = b""
        while not data.endswith(b"\r\n") or data.count(b"\r\n") < 2:
            data += s.recv(65536)
        head = data.index(b"\r\n")
        size = int(data[1:head])
        while len(data) < head + 2 + size + 2:
            data += s.recv(65536)
    text = data[head + 2:head + 2 + size].decode()
    return dict(line.split(":", 1) for line in text.splitlines() if ":" in line)


def writer(port, stop, latencies, command):
    """`command(n)` every millisecond; (start time, seconds waited) per write."""
    with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        n = 0
        while not stop.is_set():
            n += 1
            start = time.perf_counter()
            s.sendall(resp(*command(n)))
            reply = b""
            while not reply.endswith(b"\r\n"):
                reply += s.recv(64)
            latencies.append((start, time.perf_counter() - start))
            time.sleep(max(0.0, 0.001 - (time.perf_counter() - start)))


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))] if values else 0.0


WRITERS = {
    # Rescores members already there: what a cut must keep for them.
    "zadd": lambda n: ("ZADD", "big", str(n % 1000), f"member:{n * 7919 % 3_000_000}"),
    "set": lambda n: ("SET", f"string:{n % 2_000_000}", "w" * 50),
}


def one_server(kind, binary, dataset_path, scratch):
    port = free_port()
    data = tempfile.mkdtemp(dir=scratch)
    proc = subprocess.Popen(server_argv(kind, binary, port, data, "everysec"), stdout=subprocess.DEVNULL)
    try:
        wait_ready(port, proc)
        pipe(port, dataset_path)
        time.sleep(5)
        stop, latencies = threading.Event(), {name: [] for name in WRITERS}
        threads = [threading.Thread(target=writer, args=(port, stop, latencies[name], command))
                   for name, command in WRITERS.items()]
        for thread in threads:
            thread.start()
        time.sleep(2)
        began = time.perf_counter()
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(resp("BGSAVE"))
            s.recv(256)
        time.sleep(0.05)
        while info(port).get("rdb_bgsave_in_progress", "0").strip() != "0":
            time.sleep(0.01)
        ended = time.perf_counter()
        time.sleep(1)
        stop.set()
        for thread in threads:
            thread.join()
        extra = info(port).get("rdb_last_cow_size", "?").strip()
        rows = {}
        for name, measured in latencies.items():
            during = [lat for at, lat in measured if began <= at <= ended]
            if os.environ.get("STALL_DEBUG"):
                worst = sorted(((lat, at - began) for at, lat in measured), reverse=True)[:5]
                print(kind, name, "worst waits (ms, at s after BGSAVE):",
                      [(round(lat * 1e3, 1), round(at, 3)) for lat, at in worst], file=sys.stderr)
            rows[name] = {
                "save_s": ended - began,
                "writes": len(during),
                "p99_ms": percentile(during, 0.99) * 1e3,
                "p999_ms": percentile(during, 0.999) * 1e3,
                "max_ms": max(during, default=0.0) * 1e3,
                "extra": extra,
            }
        return rows
    finally:
        proc.kill()
        proc.wait()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=3_000_000)
    parser.add_argument("--dataset", choices=["zset", "issue"], default="zset")
    parser.add_argument("--strata", default=default_strata())
    parser.add_argument("--redis", default="redis-server")
    args = parser.parse_args()
    if not os.path.exists(args.strata):
        sys.exit(f"{args.strata}: build it first (cargo build --release)")
    with tempfile.TemporaryDirectory() as scratch:
        dataset_path = os.path.join(scratch, "dataset.resp")
        write_dataset(dataset_path, args.members, args.dataset)
        results = {kind: one_server(kind, binary, dataset_path, scratch)
                   for kind, binary in (("redis", args.redis), ("strata", args.strata))}
    extra = " and the issue's mixed dataset" if args.dataset == "issue" else ""
    print(f"one sorted set of {args.members} members{extra}; a ZADD to it and a SET every ms each during BGSAVE")
    print(f"{'server':8} {'writer':6} {'save s':>8} {'writes':>7} {'p99 ms':>8} {'p99.9 ms':>9} {'max ms':>8}  "
          "extra memory (bytes)")
    for kind, rows in results.items():
        for name, r in rows.items():
            print(f"{kind:8} {name:6} {r['save_s']:8.2f} {r['writes']:7d} {r['p99_ms']:8.2f} {r['p999_ms']:9.2f} "
                  f"{r['max_ms']:8.2f}  {r['extra']}")


if __name__ == "__main__":
    main()
