#!/usr/bin/env python3
"""Cluster figures (issue 21), Strata nodes beside Redis 7.0 cluster nodes
built the same way by the same tools, ONE FAMILY AT A TIME; every part
starts fresh nodes in temp dirs and kills them after.

- create: time for `redis-cli --cluster create` of 3 masters to return
  with every node agreeing (redis-cli waits for that itself).
- reshard: 3 masters; the 1000 slots 0..999 are filled with ~`--mb` MB
  (1 KB strings, keys {tag}:n with a tag per slot, loaded with redis-cli
  --pipe into the owner), then `redis-cli --cluster reshard` moves those
  1000 slots to the second master while a cluster client (redis-py
  RedisCluster) GETs and SETs keys of the moving slots back to back;
  reported: reshard time, the client's operations and its max latency.
- failover: 3 masters + 3 replicas, cluster-node-timeout 5000; a client
  SETs every few ms through RedisCluster; the first master's process
  group gets SIGKILL; reported: time from the kill to the first SET a
  promoted replica accepts for a key of the killed master's slots.
- throughput: `redis-benchmark --cluster -t set,get -P 16 -n N -r 100000`
  against 3 masters (appendfsync everysec / appendonly everysec);
  requests per second each, and the ratio Strata / Redis.

Run: python3 benches/cluster.py [--mb 380] [--requests 1000000]
"""
import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

import redis
from redis.cluster import ClusterNode, RedisCluster
from redis.crc import key_slot

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402


def pair_port():
    """A free port whose cluster bus port (+10000) is free too."""
    while True:
        port = benchlib.free_port()
        if port < 50000:
            try:
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port + 10000))
                return port
            except OSError:
                continue


class Node:
    def __init__(self, kind, binary, node_timeout):
        self.kind = kind
        self.port = pair_port()
        self.dir = tempfile.mkdtemp(prefix=f"cluster-bench-{kind}-")
        common = ["--cluster-enabled", "yes", "--cluster-node-timeout", str(node_timeout),
                  "--cluster-config-file", os.path.join(self.dir, "nodes.conf")]
        argv = benchlib.server_argv(kind, binary, self.port, self.dir, "everysec")
        if kind == "strata":
            argv += ["--bind", "127.0.0.1"]
        self.proc = benchlib.start(argv + common)
        benchlib.wait_ready(self.port, self.proc)

    def close(self):
        benchlib.stop(self.proc)
        shutil.rmtree(self.dir, ignore_errors=True)

    def client(self):
        return redis.Redis(port=self.port, decode_responses=True)

    def addr(self):
        return f"127.0.0.1:{self.port}"


def cli(*args, timeout=3600):
    result = subprocess.run(["redis-cli", *args], capture_output=True, text=True, timeout=timeout,
                            stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        sys.exit(f"redis-cli {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


def make_cluster(kind, binary, masters, replicas=0, node_timeout=5000):
    nodes = [Node(kind, binary, node_timeout) for _ in range(masters * (1 + replicas))]
    started = time.monotonic()
    cli("--cluster", "create", *[n.addr() for n in nodes], "--cluster-replicas", str(replicas), "--cluster-yes")
    return nodes, time.monotonic() - started


def close(nodes):
    for node in nodes:
        node.close()


def cluster_client(nodes):
    return RedisCluster(startup_nodes=[ClusterNode("127.0.0.1", n.port) for n in nodes], decode_responses=True)


def slot_tags(slots):
    """A hashtag for each slot (the first short string that hashes there)."""
    tags, i = {}, 0
    while len(tags) < len(slots):
        tag = f"t{i}"
        slot = key_slot(tag.encode())
        if slot in slots and slot not in tags:
            tags[slot] = tag
        i += 1
    return tags


def part_reshard(kind, binary, mb):
    nodes, _ = make_cluster(kind, binary, 3)
    try:
        slots = set(range(1000))
        tags = slot_tags(slots)
        per_slot = max(1, mb * 1024 // 1000)          # 1 KB values
        value = b"v" * 1000
        with tempfile.NamedTemporaryFile(delete=False) as f:
            for slot, tag in tags.items():
                for n in range(per_slot):
                    f.write(benchlib.resp("SET", f"{{{tag}}}:{n}", value))
            path = f.name
        benchlib.pipe(nodes[0].port, path)
        os.unlink(path)
        ids = [n.client().execute_command("CLUSTER", "MYID") for n in nodes]
        client = cluster_client(nodes)
        stop, latencies, errors = threading.Event(), [], []

        def work():
            i = 0
            while not stop.is_set():
                tag = tags[i % 1000]
                key = f"{{{tag}}}:{i % per_slot}"
                started = time.monotonic()
                try:
                    client.get(key)
                    client.set(f"{{{tag}}}:w", i)
                except redis.RedisError as e:
                    errors.append(repr(e))
                latencies.append(time.monotonic() - started)
                i += 1

        worker = threading.Thread(target=work)
        worker.start()
        started = time.monotonic()
        cli("--cluster", "reshard", nodes[0].addr(), "--cluster-from", ids[0], "--cluster-to", ids[1],
            "--cluster-slots", "1000", "--cluster-yes", "--cluster-pipeline", "100")
        elapsed = time.monotonic() - started
        stop.set()
        worker.join()
        return {"reshard_s": elapsed, "client_ops": len(latencies), "client_max_ms": max(latencies) * 1000,
                "client_errors": len(errors), "mb": per_slot * 1000 * 1000 / 1e6}
    finally:
        close(nodes)


def part_failover(kind, binary):
    nodes, _ = make_cluster(kind, binary, 3, replicas=1, node_timeout=5000)
    try:
        time.sleep(2)
        client = cluster_client(nodes)
        victim = nodes[0]
        key = "bar"                       # slot 5061, on the first master
        assert client.set(key, "before")
        benchlib.stop(victim.proc)
        killed = time.monotonic()
        while True:
            try:
                client.set(key, "after")
                return {"failover_s": time.monotonic() - killed}
            except redis.RedisError:
                if time.monotonic() - killed > 120:
                    return {"failover_s": None}
                time.sleep(0.05)
                client = cluster_client([n for n in nodes if n is not victim])
    finally:
        close(nodes)


def part_throughput(kind, binary, requests):
    nodes, _ = make_cluster(kind, binary, 3)
    try:
        out = subprocess.run(["redis-benchmark", "--cluster", "-p", str(nodes[0].port), "-t", "set,get",
                              "-P", "16", "-n", str(requests), "-r", "100000", "-q", "--csv"],
                             capture_output=True, text=True, timeout=3600).stdout
        rates = {}
        for line in out.splitlines():
            fields = [f.strip('"') for f in line.split(",")]
            if fields and fields[0] in ("SET", "GET"):
                rates[fields[0]] = float(fields[1])
        return rates
    finally:
        close(nodes)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--strata", default=benchlib.default_strata())
    parser.add_argument("--redis", default="redis-server")
    parser.add_argument("--mb", type=int, default=380)
    parser.add_argument("--requests", type=int, default=1_000_000)
    parser.add_argument("--parts", default="create,reshard,failover,throughput")
    args = parser.parse_args()
    parts = args.parts.split(",")
    results = {}
    for kind, binary in (("strata", args.strata), ("redis", args.redis)):
        figures = {}
        if "create" in parts:
            nodes, seconds = make_cluster(kind, binary, 3)
            close(nodes)
            figures["create_s"] = seconds
        if "reshard" in parts:
            figures.update(part_reshard(kind, binary, args.mb))
        if "failover" in parts:
            figures.update(part_failover(kind, binary))
        if "throughput" in parts:
            figures.update(part_throughput(kind, binary, args.requests))
        results[kind] = figures
        print(kind, figures, flush=True)
    for name in results["strata"]:
        ours, theirs = results["strata"].get(name), results["redis"].get(name)
        ratio = f"{ours / theirs:.2f}" if isinstance(ours, float) and isinstance(theirs, float) and theirs else "-"
        print(f"{name:16} strata {ours!s:>22}  redis {theirs!s:>22}  ratio {ratio}")


if __name__ == "__main__":
    main()
