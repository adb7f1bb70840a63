#!/usr/bin/env python3
"""Side-by-side redis-benchmark: Strata against a Debian redis-server on the
same machine, at the same durability, alternating A B / B A for several
rounds so that noise hits both alike. Prints per-test ops/s, p50/p99 latency
and the ratio Strata/Redis (median of the per-round ratios), and one
geometric-mean ratio per load shape.

    python3 benches/compare.py --durability everysec --pipeline 16 --rounds 5

Only ratios from one interleaved run are meaningful on a shared machine.
"""
import argparse
import csv
import io
import math
import shutil
import statistics
import subprocess
import tempfile

from benchlib import default_strata, free_port, server_argv, wait_ready

DEFAULT_TESTS = "set,get,incr,lpush,rpush,lpop,rpop,sadd,hset,spop,zadd,zpopmin,lrange_100,mset"

# Custom commands: name -> (setup command run once before, benchmarked command).
CUSTOM = {
    "hget": (["HSET", "bench:hash", "field", "value"], ["HGET", "bench:hash", "field"]),
    "zrangebyscore": (
        ["ZADD", "bench:zset"] + [x for i in range(100) for x in (str(i), f"m{i}")],
        ["ZRANGEBYSCORE", "bench:zset", "0", "100", "LIMIT", "0", "10"],
    ),
    "xadd": (None, ["XADD", "bench:stream", "MAXLEN", "~", "10000", "*", "field", "__rand_int__"]),
}


def start(kind, binary, durability, data):
    port = free_port()
    argv = server_argv(kind, binary if kind == "strata" else "redis-server", port, data, durability)
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_ready(port, proc)
    return port, proc


def run_benchmark(port, args, tests, custom, pipeline):
    """Returns {test: (rps, p50, p99)} for one server."""
    base = ["redis-benchmark", "-p", str(port), "-c", str(args.clients), "-n", str(args.requests),
            "-r", "100000", "-d", "64", "-P", str(pipeline), "--csv"]
    results = {}
    runs = [(None, ["-t", ",".join(tests)])] if tests else []
    runs += [(name, CUSTOM[name][1]) for name in custom]
    for name, extra in runs:
        if name and CUSTOM[name][0]:
            subprocess.run(["redis-cli", "-p", str(port), *CUSTOM[name][0]], check=True, capture_output=True)
        out = subprocess.run(base + extra, check=True, capture_output=True, text=True).stdout
        for row in csv.DictReader(io.StringIO(out)):
            test = name or row["test"].split(" ")[0].lower()
            results[test] = (float(row["rps"]), float(row["p50_latency_ms"]), float(row["p99_latency_ms"]))
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--strata", default=default_strata())
    parser.add_argument("--durability", choices=["none", "everysec", "always"], default="everysec")
    parser.add_argument("--tests", default=DEFAULT_TESTS, help="redis-benchmark -t list ('' for none)")
    parser.add_argument("--custom", default="hget,zrangebyscore,xadd", help=f"any of {','.join(CUSTOM)}")
    parser.add_argument("--pipeline", default="1,16", help="comma-separated -P values (load shapes)")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--requests", type=int, default=100000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    tests = [t for t in args.tests.split(",") if t]
    custom = [c for c in args.custom.split(",") if c]

    data = {k: tempfile.mkdtemp(prefix=f"bench-{k}-") for k in ("strata", "redis")}
    servers = {k: start(k, args.strata, args.durability, data[k]) for k in ("strata", "redis")}
    try:
        for pipeline in [int(p) for p in args.pipeline.split(",")]:
            rounds = []
            for r in range(args.rounds):
                order = ("strata", "redis") if r % 2 == 0 else ("redis", "strata")
                rounds.append({k: run_benchmark(servers[k][0], args, tests, custom, pipeline) for k in order})
            report(rounds, pipeline, args)
    finally:
        for port, proc in servers.values():
            proc.terminate()
            proc.wait()
        for d in data.values():
            shutil.rmtree(d, ignore_errors=True)


def report(rounds, pipeline, args):
    print(f"\n## -c {args.clients} -P {pipeline}, durability {args.durability}, {len(rounds)} rounds, "
          f"-n {args.requests} -r 100000 -d 64")
    print(f"{'test':<15}{'strata ops/s':>14}{'redis ops/s':>14}{'ratio':>8}"
          f"{'strata p50/p99 ms':>20}{'redis p50/p99 ms':>20}")
    ratios = []
    for test in rounds[0]["strata"]:
        if not all(test in r["redis"] and test in r["strata"] for r in rounds):
            continue
        per_round = [r["strata"][test][0] / r["redis"][test][0] for r in rounds]
        ratio = statistics.median(per_round)
        ratios.append(ratio)
        med = lambda k, i: statistics.median(r[k][test][i] for r in rounds)
        print(f"{test:<15}{med('strata', 0):>14.0f}{med('redis', 0):>14.0f}{ratio:>8.2f}"
              f"{med('strata', 1):>10.3f}/{med('strata', 2):<9.3f}{med('redis', 1):>10.3f}/{med('redis', 2):<9.3f}")
    if ratios:
        geo = math.exp(sum(math.log(r) for r in ratios) / len(ratios))
        print(f"geometric-mean ratio (-P {pipeline}): {geo:.3f}")


if __name__ == "__main__":
    main()
