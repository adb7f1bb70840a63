#!/usr/bin/env python3
"""Restart benchmark: load ~1.3 M keys of mixed types (1 M strings, the rest
hashes, lists, sets and sorted sets), kill -9, start again, and time until
PING answers PONG and DBSIZE matches. Strata and a Debian redis-server
(appendonly yes, appendfsync everysec) run side by side, interleaved over
several rounds; the median of each is printed with the ratio.

    python3 benches/restart.py --rounds 3 [--strings 1000000 --others 75000]
"""
import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

from benchlib import call, default_strata, free_port, pipe, resp, server_argv


def write_dataset(path, strings, others):
    with open(path, "wb") as f:
        for i in range(strings):
            f.write(resp("SET", f"key:{i}", f"value:{i:012d}"))
        for i in range(others):
            f.write(resp("HSET", f"hash:{i}", "f1", "a", "f2", "b", "f3", "c", "f4", "d"))
            f.write(resp("RPUSH", f"list:{i}", "a", "b", "c", "d"))
            f.write(resp("SADD", f"set:{i}", "a", "b", "c", "d"))
            f.write(resp("ZADD", f"zset:{i}", "1", "a", "2", "b", "3", "c", "4", "d"))
    return strings + 4 * others


def wait_serving(port, proc, keys):
    """Returns once PING answers PONG and DBSIZE equals `keys`."""
    while True:
        if proc.poll() is not None:
            sys.exit(f"server on port {port} exited")
        try:
            if call(port, "PING").startswith(b"+PONG") and call(port, "DBSIZE") == b":%d\r\n" % keys:
                return
        except OSError:
            pass
        time.sleep(0.002)


def one_round(kind, binary, dataset, keys):
    data = tempfile.mkdtemp(prefix=f"restart-{kind}-")
    port = free_port()
    try:
        argv = server_argv(kind, binary, port, data, "everysec")
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
        wait_serving(port, proc, 0)
        pipe(port, dataset)
        # Let Redis's everysec fsync run; Strata's acknowledged writes are
        # already in its log.
        time.sleep(1.5)
        assert call(port, "DBSIZE") == b":%d\r\n" % keys
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        started = time.monotonic()
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
        wait_serving(port, proc, keys)
        elapsed = time.monotonic() - started
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        return elapsed
    finally:
        shutil.rmtree(data, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--strata", default=default_strata())
    parser.add_argument("--redis", default=shutil.which("redis-server") or "redis-server")
    parser.add_argument("--strings", type=int, default=1_000_000)
    parser.add_argument("--others", type=int, default=75_000, help="keys of each other type")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        dataset = os.path.join(tmp, "dataset.resp")
        keys = write_dataset(dataset, args.strings, args.others)
        times = {"strata": [], "redis": []}
        for r in range(args.rounds):
            order = ["strata", "redis"] if r % 2 == 0 else ["redis", "strata"]
            for kind in order:
                binary = args.strata if kind == "strata" else args.redis
                times[kind].append(one_round(kind, binary, dataset, keys))
                print(f"round {r + 1} {kind}: back in service in {times[kind][-1]:.3f} s", flush=True)
    strata, redis = statistics.median(times["strata"]), statistics.median(times["redis"])
    print(f"\n{keys} keys, kill -9, restart until PING and DBSIZE answer (median of {args.rounds}):")
    print(f"strata {strata:.3f} s   redis {redis:.3f} s   strata/redis {strata / redis:.3f}")


if __name__ == "__main__":
    main()
