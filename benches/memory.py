#!/usr/bin/env python3
"""Memory benchmark: bytes per element for 1 M small strings, a 1 M-member
sorted set, a 1 M-entry list and a 1 M-entry stream, in Strata and in a
Debian redis-server, from INFO `used_memory` before and after loading the
same data (each dataset into a fresh server). Strata keeps strings in
RocksDB, whose memtables and caches are outside `used_memory`; the growth
of each process's RSS is printed beside it.

    python3 benches/memory.py [--elements 1000000]
"""
import argparse
import os
import shutil
import signal
import subprocess
import tempfile
import time

from benchlib import call, default_strata, free_port, pipe, resp, server_argv, wait_ready


def dataset(kind, n, path):
    """Writes the commands that build `kind` with `n` elements."""
    batch = 1000
    with open(path, "wb") as f:
        if kind == "strings":
            for i in range(n):
                f.write(resp("SET", f"key:{i:010d}", f"value:{i:010d}"))
        elif kind == "zset":
            for start in range(0, n, batch):
                args = ["ZADD", "zset"]
                for i in range(start, min(n, start + batch)):
                    args += [str(i), f"member:{i:010d}"]
                f.write(resp(*args))
        elif kind == "list":
            for start in range(0, n, batch):
                f.write(resp("RPUSH", "list", *[f"item:{i:010d}" for i in range(start, min(n, start + batch))]))
        elif kind == "stream":
            for i in range(n):
                f.write(resp("XADD", "stream", "*", "field", f"value:{i:010d}"))


def info(port, field):
    for line in call(port, "INFO", "memory").decode().splitlines():
        if line.startswith(field + ":"):
            return int(line.split(":")[1])
    return 0


def settled(port):
    """used_memory once it stops moving: within 1 % over two seconds (write
    buffers kept while writes come, Strata's drain buffers and Redis's
    query buffers, go back within a second or so of the last write)."""
    readings = [info(port, "used_memory")]
    for _ in range(60):
        time.sleep(0.5)
        readings.append(info(port, "used_memory"))
        last = readings[-5:]
        if len(last) == 5 and max(last) - min(last) <= min(last) // 100:
            return last[-1]
    return readings[-1]


def measure(kind, binary, data_file, n):
    data = tempfile.mkdtemp(prefix=f"mem-{kind}-")
    port = free_port()
    proc = subprocess.Popen(server_argv(kind, binary, port, data, "none"), stdout=subprocess.DEVNULL)
    try:
        wait_ready(port, proc)
        before = info(port, "used_memory")
        rss_before = info(port, "used_memory_rss")
        pipe(port, data_file)
        # Steady state: Strata's background checkpoint (or its save after
        # the writes stop) holds a copy of a shard while it runs.
        after = settled(port)
        rss = info(port, "used_memory_rss") - rss_before
        return (after - before) / n, rss / n
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        shutil.rmtree(data, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--strata", default=default_strata())
    parser.add_argument("--redis", default=shutil.which("redis-server") or "redis-server")
    parser.add_argument("--elements", type=int, default=1_000_000)
    parser.add_argument("--kinds", default="strings,zset,list,stream")
    args = parser.parse_args()
    print(f"{'dataset':10} {'strata B/elem':>14} {'redis B/elem':>13} {'ratio':>6}   RSS growth B/elem strata / redis")
    with tempfile.TemporaryDirectory() as tmp:
        for kind in args.kinds.split(","):
            path = os.path.join(tmp, f"{kind}.resp")
            dataset(kind, args.elements, path)
            strata, strata_rss = measure("strata", args.strata, path, args.elements)
            redis, redis_rss = measure("redis", args.redis, path, args.elements)
            print(f"{kind:10} {strata:14.1f} {redis:13.1f} {strata / redis:6.2f}   {strata_rss:.1f} / {redis_rss:.1f}",
                  flush=True)


if __name__ == "__main__":
    main()
