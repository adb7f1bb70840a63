#!/usr/bin/env python3
"""Replication and failover (issue 20), Strata beside Redis, ONE SERVER
FAMILY AT A TIME (Strata first, then Redis); every part starts fresh
servers in temp dirs and kills them after. Four parts:

- failover: 1 master, 2 replicas and 3 redis-sentinel processes
  (`sentinel monitor mymaster 127.0.0.1 PORT 2`, down-after-milliseconds
  2000, failover-timeout 20000). A writer SETs a key about every
  millisecond on the master a sentinel names (`SENTINEL
  get-master-addr-by-name mymaster`, asked again after every error, as a
  sentinel-aware client does). Once each sentinel sees both replicas and
  the two other sentinels, the master's process group gets SIGKILL;
  measured is the time from the kill to the first write the new master
  accepts, then until the other replica follows the new master (link up,
  offset caught up). `--rounds` rounds, each on new servers.
- lag: a master and one replica; a pipelined writer holds LAG_RATE SETs/s
  on the master while, every 10 ms, a probe SETs lagprobe:<n> (its value
  the time in ns) and GETs it from the replica back to back until it is
  there. The lag runs from the master's OK to the replica's answer (so it
  includes one GET round trip); p50/p99/max over LAG_SECONDS, with the
  write rate the writer achieved and the probe's SET round trip.
- sync: about `--gb` GB of elements (lists, sets and sorted sets, in
  Strata's memory engines; hashes and strings, in its RocksDB) piped into
  a master with redis-cli --pipe; once it has settled (no BGSAVE, AOF
  rewrite or checkpoint under way), a fresh replica is started and timed
  from its start until its INFO replication shows master_link_status:up
  and slave_repl_offset at the master's master_repl_offset. Redis's master
  runs with repl-diskless-sync-delay 0 here: its default waits 5 s for
  more replicas to share the transfer, which Strata never does.
- throughput: redis-benchmark -t set,lpush -P 16 -c 50 -n 300000 -r 100000
  -d 64 on one master alone (A) and with two synced replicas attached (B),
  A B B A (`--throughput-rounds` of each) after an unmeasured run that
  creates the keys; ops/s and the ratio with/without.

Nodes: Strata with appendfsync everysec, Redis with appendonly yes and
appendfsync everysec, each started with a config file of its own as first
argument (sentinel's reconfiguration ends with CONFIG REWRITE) and its
output in a log beside its data. When a part fails, or Strata logged
anything (at loglevel warning every line is worth a look), the part's
logs and config files are kept in /tmp/repl-bench-logs/. The machine may
be shared: the load average is printed at start and end.

    python3 benches/replication.py [--only strata|redis] [--parts failover,lag,sync,throughput]
                                   [--rounds 3] [--gb 1] [--strata PATH]

Not part of CI: it takes about 5 minutes at --gb 1, needs about
SYNC_MEMORY_PER_GB GB of memory per --gb for the sync part, and measures
this machine."""
import argparse
import base64
import collections
import csv
import io
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from benchlib import (call, default_strata, free_port, info, mem_available, read_reply, read_samples, resp, server_argv,
                      settle, stop, wait_ready)

PARTS = ("failover", "lag", "sync", "throughput")
KEPT_LOGS = "/tmp/repl-bench-logs"
LAG_RATE = 50_000  # SETs a second on the master during the lag probe
LAG_SECONDS = 20
# The sync part's data: share of `--gb`, bytes per element and elements
# per key, by type. Elements are an index and a slice of random base64, so
# that neither RDB's LZF nor Strata's compression shrinks them much.
SYNC_MIX = {
    "list": (0.25, 100, 1000),  # RPUSH
    "set": (0.15, 100, 1000),  # SADD
    "zset": (0.20, 100, 1000),  # ZADD, scores shuffled against the members
    "hash": (0.15, 100, 100),  # HSET of fields f0..f99
    "string": (0.25, 250, 1),  # MSET, 100 keys a command
}
# Rough: a master and a replica, each up to about twice the elements'
# bytes (Strata's memory engines), and the sync's buffers.
SYNC_MEMORY_PER_GB = 5.0
SYNC_TIMEOUT = 1800.0  # bound on loading and on the replica's full sync (s)
BENCHMARK = ["-t", "set,lpush", "-P", "16", "-c", "50", "-n", "300000", "-r", "100000", "-d", "64"]


class Failed(Exception):
    """A part could not be measured: a wait ran out or a server answered
    what it should not."""


Node = collections.namedtuple("Node", "port proc")


class Cluster:
    """The servers and sentinels of one part of one family, each in a
    directory of its own under `scratch` (config file, data, log); `close`
    kills every one (SIGKILL to its process group)."""

    def __init__(self, kind, binary, scratch):
        self.kind, self.binary, self.scratch = kind, binary, scratch
        self.procs = []

    def _start(self, argv, home, log_name):
        """benchlib.start with the output in a log file."""
        with open(os.path.join(home, log_name), "ab") as log:
            proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        proc.own_group = True
        self.procs.append(proc)
        return proc

    def node(self, name, master_port=None, extra=()):
        """A server with an empty config file (CONFIG REWRITE needs one),
        replicating `master_port` when given; returns once it answers PONG."""
        port = free_port()
        home = os.path.join(self.scratch, f"{name}-{port}")
        data = os.path.join(home, "data")
        os.makedirs(data)
        config = os.path.join(home, f"{name}.conf")
        open(config, "w").close()
        argv = server_argv(self.kind, self.binary, port, data, "everysec")
        argv.insert(1, config)
        if self.kind == "strata":
            argv += ["--bind", "127.0.0.1"]
        if master_port:
            argv += ["--replicaof", "127.0.0.1", str(master_port)]
        proc = self._start(argv + list(extra), home, "server.log")
        wait_ready(port, proc)
        return Node(port, proc)

    def sentinel(self, master_port):
        port = free_port()
        home = os.path.join(self.scratch, f"sentinel-{port}")
        os.makedirs(home)
        config = os.path.join(home, "sentinel.conf")
        with open(config, "w") as f:
            f.write(f"port {port}\nbind 127.0.0.1\ndaemonize no\ndir {home}\n"
                    f"sentinel monitor mymaster 127.0.0.1 {master_port} 2\n"
                    "sentinel down-after-milliseconds mymaster 2000\n"
                    "sentinel failover-timeout mymaster 20000\n")
        proc = self._start(["redis-sentinel", config], home, "sentinel.log")
        wait_ready(port, proc, 20)
        return Node(port, proc)

    def close(self):
        # Newest first: replicas go before their master, so that they do
        # not log its loss.
        for proc in reversed(self.procs):
            stop(proc)

    def strata_log_lines(self):
        """What Strata's servers logged (nothing for Redis), each line
        prefixed with its server's directory."""
        if self.kind != "strata":
            return []
        lines = []
        for home in sorted(os.listdir(self.scratch)):
            path = os.path.join(self.scratch, home, "server.log")
            if os.path.exists(path):
                with open(path, errors="replace") as f:
                    lines += [f"{home}: {line.rstrip()}" for line in f if line.strip()]
        return lines

    def keep_logs(self, label):
        """Copies the logs and config files (not the data) to KEPT_LOGS;
        returns where."""
        dest = os.path.join(KEPT_LOGS, f"{label}-{time.strftime('%Y%m%d-%H%M%S')}")
        shutil.copytree(self.scratch, dest, ignore=shutil.ignore_patterns("data"), dirs_exist_ok=True)
        return dest


def wait_for(what, check, timeout, interval=0.02):
    """Polls `check` until it returns something true, which is returned; a
    refused or broken connection counts as "not yet". Raises Failed after
    `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = check()
            if value:
                return value
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise Failed(f"{what}: not within {timeout:.0f} s")
        time.sleep(interval)


def required(fields, name, port):
    if name not in fields:
        raise Failed(f"INFO on port {port} has no {name}")
    return fields[name]


def synced(replica_port, master_port):
    """Whether the replica follows `master_port` with its link up and its
    offset at least the master's (read first)."""
    target = int(required(info(master_port, "replication"), "master_repl_offset", master_port))
    fields = info(replica_port, "replication")
    if fields.get("role") != "slave" or fields.get("master_port") != str(master_port):
        return False
    return (required(fields, "master_link_status", replica_port) == "up"
            and int(required(fields, "slave_repl_offset", replica_port)) >= target)


def integer_reply(port, *command):
    reply = call(port, *command)
    if not reply.startswith(b":"):
        raise Failed(f"{' '.join(command)} on port {port}: {reply[:100]!r}")
    return int(reply[1:].split(b"\r\n", 1)[0])


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))] if values else None


def error_name(e):
    """ConnectionRefusedError and the like by name; a plain OSError (a
    closed connection) by its message."""
    return str(e) if type(e) is OSError else type(e).__name__


class SentinelWriter(threading.Thread):
    """SET failover:<n> about every millisecond on the master the sentinels
    name (the first that answers); after any error it asks them again, as
    a sentinel-aware client does. Keeps (time of the OK, port) of every
    write accepted and a count of each error."""

    def __init__(self, sentinel_ports):
        super().__init__(daemon=True)
        self.sentinel_ports = sentinel_ports
        self.accepted = []
        self.errors = collections.Counter()
        self.done = threading.Event()

    def master_port(self):
        for port in self.sentinel_ports:
            try:
                addr = read_samples(port, [("SENTINEL", "get-master-addr-by-name", "mymaster")], timeout=1)[0]
            except OSError:
                continue
            if isinstance(addr, list) and len(addr) == 2:
                return int(addr[1])
        return None

    def run(self):
        n, conn, port = 0, None, None
        while not self.done.is_set():
            if conn is None:
                port = self.master_port()
                try:
                    if port is None:
                        raise ConnectionError("no sentinel named a master")
                    conn = socket.create_connection(("127.0.0.1", port), timeout=1)
                    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                except OSError as e:
                    self.errors[error_name(e)] += 1
                    self.done.wait(0.005)
                    continue
            n += 1
            began = time.monotonic()
            try:
                conn.sendall(resp("SET", f"failover:{n}", n))
                reply, _ = read_reply(conn, b"")
            except OSError as e:
                self.errors[error_name(e)] += 1
                conn.close()
                conn = None
                continue
            if reply == b"+OK":
                self.accepted.append((time.monotonic(), port))
            else:
                self.errors[reply.split()[0].decode(errors="replace")] += 1
                conn.close()
                conn = None
            self.done.wait(max(0.0, 0.001 - (time.monotonic() - began)))
        if conn is not None:
            conn.close()

    def first_write_after(self, moment, old_port):
        """(time, port) of the first write accepted after `moment` by
        another server than `old_port`, or None."""
        return next(((at, port) for at, port in list(self.accepted) if at > moment and port != old_port), None)

    def finish(self):
        self.done.set()
        self.join(10)


class PacedWriter(threading.Thread):
    """A batch of pipelined SETs every 10 ms, so that `rate` writes a
    second reach the master (keys load:0..99999, 64-byte values); a writer
    that falls behind catches up by at most 0.1 s instead of bursting."""

    TICK = 0.01

    def __init__(self, port, rate):
        super().__init__(daemon=True)
        self.port = port
        self.per_tick = max(1, round(rate * self.TICK))
        value = b"v" * 64
        self.batches = [b"".join(resp(b"SET", b"load:%d" % ((b * self.per_tick + i) % 100_000), value)
                                 for i in range(self.per_tick))
                        for b in range(max(1, 100_000 // self.per_tick))]
        self.written, self.elapsed, self.error = 0, 0.0, None
        self.done = threading.Event()

    def run(self):
        expected = b"+OK\r\n" * self.per_tick
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=10) as s:
                started = next_at = time.monotonic()
                while not self.done.is_set():
                    s.sendall(self.batches[(self.written // self.per_tick) % len(self.batches)])
                    replies = b""
                    while len(replies) < len(expected):
                        chunk = s.recv(65536)
                        if not chunk:
                            raise OSError("connection closed")
                        replies += chunk
                    if replies != expected:
                        raise OSError(f"replies other than +OK: {replies[:200]!r}")
                    self.written += self.per_tick
                    next_at += self.TICK
                    now = time.monotonic()
                    if now < next_at:
                        self.done.wait(next_at - now)
                    elif now - next_at > 0.1:
                        next_at = now
                self.elapsed = time.monotonic() - started
        except OSError as e:
            self.error = str(e)

    def finish(self):
        self.done.set()
        self.join(30)


def part_failover(cluster, args, dataset):
    master = cluster.node("master")
    replicas = [cluster.node(f"replica{i}", master.port) for i in (1, 2)]
    for replica in replicas:
        wait_for(f"replica {replica.port} to sync", lambda r=replica: synced(r.port, master.port), 60)
    sentinels = [cluster.sentinel(master.port) for _ in range(3)]

    def sentinels_see_everything():
        for s in sentinels:
            known_replicas, others = read_samples(s.port, [("SENTINEL", "replicas", "mymaster"),
                                                           ("SENTINEL", "sentinels", "mymaster")], timeout=5)
            if not (isinstance(known_replicas, list) and len(known_replicas) == 2
                    and isinstance(others, list) and len(others) == 2):
                return False
        return True

    wait_for("each sentinel to see 2 replicas and 2 other sentinels", sentinels_see_everything, 60, 0.2)
    writer = SentinelWriter([s.port for s in sentinels])
    writer.start()
    try:
        wait_for("the writer's first 100 writes", lambda: len(writer.accepted) >= 100, 20)
        killed_at = time.monotonic()
        stop(master.proc)
        at, new_port = wait_for("a write accepted by a new master",
                                lambda: writer.first_write_after(killed_at, master.port), 90, 0.01)
        others = [r for r in replicas if r.port != new_port]
        if len(others) != 1:
            raise Failed(f"the writer's new master, port {new_port}, is not one of the replicas")
        wait_for("the other replica to follow the new master", lambda: synced(others[0].port, new_port), 60)
        follow_s = time.monotonic() - killed_at
    finally:
        writer.finish()
    result = {"failover_s": at - killed_at, "follow_s": follow_s}
    print(f"{cluster.kind} failover: a write on the new master (port {new_port}) {result['failover_s']:.2f} s after "
          f"kill -9, the other replica following it after {follow_s:.2f} s; the writer's errors meanwhile: "
          f"{dict(writer.errors)}", flush=True)
    return result


def probe_lag(master_port, replica_port, seconds):
    """Every 10 ms for `seconds`: SET lagprobe:<n> on the master, then GET
    it from the replica back to back until there. Returns the lags and
    the SET round trips (s) and the probes the replica never showed
    within 10 s."""
    lags, round_trips, missing = [], [], 0
    with socket.create_connection(("127.0.0.1", master_port), timeout=10) as m, \
            socket.create_connection(("127.0.0.1", replica_port), timeout=10) as r:
        for s in (m, r):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        n, next_at = 0, time.monotonic()
        deadline = next_at + seconds
        while time.monotonic() < deadline:
            n += 1
            key, stamp = f"lagprobe:{n}", str(time.time_ns()).encode()
            sent = time.perf_counter()
            m.sendall(resp("SET", key, stamp))
            reply, _ = read_reply(m, b"")
            acked = time.perf_counter()
            if reply != b"+OK":
                raise Failed(f"SET {key} on the master: {reply!r}")
            get = resp("GET", key)
            while True:
                r.sendall(get)
                value, _ = read_reply(r, b"")
                if value is not None or time.perf_counter() - acked > 10:
                    break
            if value is None:
                missing += 1
            elif value != stamp:
                raise Failed(f"GET {key} on the replica: {value[:100]!r}, the master has {stamp!r}")
            else:
                lags.append(time.perf_counter() - acked)
            round_trips.append(acked - sent)
            next_at += 0.01
            time.sleep(max(0.0, next_at - time.monotonic()))
    return lags, round_trips, missing


def part_lag(cluster, args, dataset):
    master = cluster.node("master")
    replica = cluster.node("replica", master.port)
    wait_for("the replica to sync", lambda: synced(replica.port, master.port), 60)
    loader = PacedWriter(master.port, LAG_RATE)
    loader.start()
    try:
        time.sleep(1)  # the load under way before the first probe
        lags, round_trips, missing = probe_lag(master.port, replica.port, LAG_SECONDS)
    finally:
        loader.finish()
    if loader.error or loader.is_alive():
        raise Failed(f"the loader: {loader.error or 'still running 30 s after it was stopped'}")
    if not lags:
        raise Failed(f"the replica showed none of the {missing} probes")
    wait_for("the replica to catch up after the load", lambda: synced(replica.port, master.port), 60)
    result = {"p50_ms": percentile(lags, 0.5) * 1e3, "p99_ms": percentile(lags, 0.99) * 1e3,
              "max_ms": max(lags) * 1e3, "probes": len(lags), "missing": missing,
              "rate": loader.written / loader.elapsed, "set_p99_ms": percentile(round_trips, 0.99) * 1e3}
    print(f"{cluster.kind} lag: p50 {result['p50_ms']:.2f} ms, p99 {result['p99_ms']:.2f} ms, max "
          f"{result['max_ms']:.2f} ms over {len(lags)} probes ({missing} never seen) at {result['rate']:.0f} "
          f"writes/s; the probe's SET round trip p99 {result['set_p99_ms']:.2f} ms", flush=True)
    return result


def sync_element(pool, key, i, size):
    """`size` bytes: the key's and element's index, then a slice of the
    random pool."""
    head = b"%d:%d:" % (key, i)
    offset = (key * 1_000_003 + i * 7919) % (len(pool) - size)
    return head + pool[offset:offset + size - len(head)]


def write_sync_dataset(path, gb):
    """The sync part's commands (SYNC_MIX) as RESP in `path`; returns how
    many keys they make."""
    pool = base64.b64encode(random.Random(20).randbytes(3 << 19))
    keys = 0
    with open(path, "wb") as f:
        for kind, (share, size, per_key) in SYNC_MIX.items():
            count = max(1, round(gb * 1e9 * share / (size * per_key)))
            keys += count
            if kind == "string":
                for first in range(0, count, 100):
                    args = [b"MSET"]
                    for k in range(first, min(first + 100, count)):
                        args += [b"string:%d" % k, sync_element(pool, k, 0, size)]
                    f.write(resp(*args))
                continue
            for k in range(count):
                name = b"%s:%d" % (kind.encode(), k)
                items = [sync_element(pool, k, i, size) for i in range(per_key)]
                if kind == "list":
                    f.write(resp(b"RPUSH", name, *items))
                elif kind == "set":
                    f.write(resp(b"SADD", name, *items))
                elif kind == "zset":
                    f.write(resp(b"ZADD", name, *(x for i, item in enumerate(items)
                                                  for x in (b"%d" % (i * 2_654_435_761 % 1_000_003), item))))
                else:
                    f.write(resp(b"HSET", name, *(x for i, item in enumerate(items) for x in (b"f%d" % i, item))))
    return keys


def settled(port, timeout=600.0):
    """`settle`, so that a full sync is timed alone (Redis postpones a
    sync's save until its AOF rewrite ends); a server still busy fails the
    part. Seconds."""
    waited = settle(port, timeout)
    if waited is None:
        raise Failed(f"port {port} still saving or checkpointing after {timeout:.0f} s")
    return waited


def part_sync(cluster, args, dataset):
    path, keys = dataset
    extra = ["--repl-diskless-sync-delay", "0"] if cluster.kind == "redis" else []
    master = cluster.node("master", extra=extra)
    started = time.monotonic()
    with open(path, "rb") as commands:
        out = subprocess.run(["redis-cli", "-p", str(master.port), "--pipe"], stdin=commands, capture_output=True,
                             timeout=SYNC_TIMEOUT).stdout
    load_s = time.monotonic() - started
    if b"errors: 0" not in out:
        raise Failed(f"redis-cli --pipe: {out.decode(errors='replace')[-500:]}")
    if integer_reply(master.port, "DBSIZE") != keys:
        raise Failed(f"DBSIZE {integer_reply(master.port, 'DBSIZE')} after loading, expected {keys}")
    settle_s = settled(master.port)
    used_memory = int(info(master.port, "memory")["used_memory"])
    started = time.monotonic()
    replica = cluster.node("replica", master.port)
    wait_for("the replica's full sync", lambda: synced(replica.port, master.port), SYNC_TIMEOUT)
    sync_s = time.monotonic() - started
    if integer_reply(replica.port, "DBSIZE") != keys:
        raise Failed(f"the replica's DBSIZE is {integer_reply(replica.port, 'DBSIZE')} after the sync, expected {keys}")
    result = {"sync_s": sync_s, "used_memory": used_memory,
              "replica_memory": int(info(replica.port, "memory")["used_memory"]),
              "full_syncs": info(master.port, "stats").get("sync_full", "?")}
    print(f"{cluster.kind} sync: loaded in {load_s:.0f} s, settled in {settle_s:.0f} s, used_memory "
          f"{used_memory / 1e9:.2f} GB; a new replica synced in {sync_s:.2f} s (sync_full={result['full_syncs']}, "
          f"its used_memory {result['replica_memory'] / 1e9:.2f} GB)", flush=True)
    return result


def redis_benchmark(port):
    """ops/s of each test of BENCHMARK."""
    out = subprocess.run(["redis-benchmark", "-p", str(port), *BENCHMARK, "--csv"], capture_output=True,
                         text=True, timeout=600)
    rps = {row["test"].split(" ")[0]: float(row["rps"]) for row in csv.DictReader(io.StringIO(out.stdout))}
    if set(rps) != {"SET", "LPUSH"}:
        raise Failed(f"redis-benchmark: {out.stdout[-300:]!r} {out.stderr[-300:]!r}")
    return rps


def part_throughput(cluster, args, dataset):
    master = cluster.node("master")
    # Creates the 100 k keys, which every measured run then overwrites.
    redis_benchmark(master.port)
    runs = {"alone": [], "replicas": []}
    for i in range(2 * args.throughput_rounds):
        label = "replicas" if i % 4 in (1, 2) else "alone"  # A B B A
        replicas = [cluster.node(f"replica{i}-{j}", master.port) for j in (1, 2)] if label == "replicas" else []
        for replica in replicas:
            wait_for(f"replica {replica.port} to sync", lambda r=replica: synced(r.port, master.port), 120)
        wait_for(f"the master to list {len(replicas)} replicas",
                 lambda: info(master.port, "replication").get("connected_slaves") == str(len(replicas)), 10)
        # A replica's AOF rewrite or checkpoint after its sync, or the
        # master's, would land in some runs and not others.
        for node in (master, *replicas):
            settled(node.port)
        rps = redis_benchmark(master.port)
        runs[label].append(rps)
        print(f"{cluster.kind} throughput, {label}: " + ", ".join(f"{t} {v:.0f}/s" for t, v in rps.items()),
              flush=True)
        for replica in replicas:
            wait_for(f"replica {replica.port} to catch up", lambda r=replica: synced(r.port, master.port), 60)
            stop(replica.proc)
    result = {}
    for test in ("SET", "LPUSH"):
        alone = statistics.median(r[test] for r in runs["alone"])
        attached = statistics.median(r[test] for r in runs["replicas"])
        result[test] = {"alone": alone, "replicas": attached, "ratio": attached / alone}
    return result


PART_FUNCTIONS = {"failover": part_failover, "lag": part_lag, "sync": part_sync, "throughput": part_throughput}


def run_part(kind, binary, part, args, dataset):
    """One part (a failover round) on fresh servers; None if it failed."""
    scratch = tempfile.mkdtemp(prefix=f"repl-bench-{kind}-{part}-")
    cluster = Cluster(kind, binary, scratch)
    result, failure = None, None
    try:
        result = PART_FUNCTIONS[part](cluster, args, dataset)
    # benchlib's waits exit when a server dies.
    except (Failed, OSError, SystemExit, subprocess.SubprocessError) as e:
        failure = e
    finally:
        cluster.close()
        logged = cluster.strata_log_lines()
        if failure is not None or logged:
            kept = cluster.keep_logs(f"{kind}-{part}")
            if failure is not None:
                print(f"{kind} {part}: FAILED: {failure}; logs kept in {kept}", flush=True)
            if logged:
                print(f"{kind} {part}: Strata logged {len(logged)} lines (kept in {kept}), the first:", flush=True)
                for line in logged[:20]:
                    print(f"  {line}")
        shutil.rmtree(scratch, ignore_errors=True)
    return result


def median_of(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def print_table(results, args):
    kinds = list(results)
    print(f"\n{'':44}" + "".join(f"{k:>11}" for k in kinds) + ("  strata/redis" if len(kinds) == 2 else ""))

    def row(label, value, fmt):
        values = []
        for kind in kinds:
            try:
                values.append(value(results[kind]))
            except (KeyError, TypeError, IndexError):
                values.append(None)
        text = f"{label:44}" + "".join(f"{'-' if v is None else fmt.format(v):>11}" for v in values)
        if len(values) == 2 and None not in values and values[1]:
            text += f"  {values[0] / values[1]:12.3f}"
        print(text)

    if "failover" in args.parts:
        for i in range(args.rounds):
            row(f"failover {i + 1}: kill -9 to a write (s)", lambda r, i=i: r["failover"][i]["failover_s"], "{:.2f}")
        row("failover, median (s)", lambda r: median_of(x and x["failover_s"] for x in r["failover"]), "{:.2f}")
        row("  other replica following, median (s)", lambda r: median_of(x and x["follow_s"] for x in r["failover"]),
            "{:.2f}")
    if "lag" in args.parts:
        row(f"lag at {LAG_RATE / 1000:.0f} k SET/s: p50 (ms)", lambda r: r["lag"]["p50_ms"], "{:.2f}")
        row("  p99 (ms)", lambda r: r["lag"]["p99_ms"], "{:.2f}")
        row("  max (ms)", lambda r: r["lag"]["max_ms"], "{:.2f}")
        row("  writes/s achieved", lambda r: r["lag"]["rate"], "{:.0f}")
        row("  probe's SET round trip p99 (ms)", lambda r: r["lag"]["set_p99_ms"], "{:.2f}")
    if "sync" in args.parts:
        row(f"full sync, {args.gb:g} GB of elements (s)", lambda r: r["sync"]["sync_s"], "{:.2f}")
        row("  master used_memory (GB)", lambda r: r["sync"]["used_memory"] / 1e9, "{:.2f}")
        row("  replica used_memory after (GB)", lambda r: r["sync"]["replica_memory"] / 1e9, "{:.2f}")
    if "throughput" in args.parts:
        for test in ("SET", "LPUSH"):
            row(f"{test} -P 16 -c 50, master alone (ops/s)", lambda r: r["throughput"][test]["alone"], "{:.0f}")
            row("  with 2 replicas (ops/s)", lambda r: r["throughput"][test]["replicas"], "{:.0f}")
            row("  with / without", lambda r: r["throughput"][test]["ratio"], "{:.3f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["strata", "redis"])
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated, of {','.join(PARTS)}")
    parser.add_argument("--rounds", type=int, default=3, help="failover rounds per server family")
    parser.add_argument("--throughput-rounds", type=int, default=2, help="runs alone and with replicas, each")
    parser.add_argument("--gb", type=float, default=1.0, help="GB of elements for the full sync")
    parser.add_argument("--strata", default=default_strata())
    parser.add_argument("--redis", default=shutil.which("redis-server") or "redis-server")
    args = parser.parse_args()
    args.parts = [p for p in args.parts.split(",") if p]
    if not set(args.parts) <= set(PARTS):
        sys.exit(f"--parts: each of {', '.join(PARTS)}")
    if not os.path.exists(args.strata):
        sys.exit(f"{args.strata}: build it first (cargo build --release)")
    if "sync" in args.parts and mem_available() < (SYNC_MEMORY_PER_GB * args.gb + 1) * 1e9:
        sys.exit(f"MemAvailable {mem_available() / 1e9:.1f} GB; --gb {args.gb:g} needs about "
                 f"{SYNC_MEMORY_PER_GB * args.gb + 1:.0f}: try a smaller --gb")
    began = time.monotonic()
    print("load:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    print(f"{args.strata}: built {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(os.path.getmtime(args.strata)))}",
          flush=True)
    with tempfile.TemporaryDirectory(prefix="repl-bench-dataset-") as dataset_dir:
        dataset = None
        if "sync" in args.parts:
            path = os.path.join(dataset_dir, "sync.resp")
            keys = write_sync_dataset(path, args.gb)
            dataset = (path, keys)
            print(f"sync dataset: {keys} keys, {os.path.getsize(path) / 1e9:.2f} GB of RESP", flush=True)
        results = {}
        for kind, binary in (("strata", args.strata), ("redis", args.redis)):
            if args.only not in (None, kind):
                continue
            results[kind] = {}
            for part in args.parts:
                if part == "failover":
                    results[kind][part] = [run_part(kind, binary, part, args, dataset) for _ in range(args.rounds)]
                else:
                    results[kind][part] = run_part(kind, binary, part, args, dataset)
    print("load:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    print_table(results, args)
    print(f"\ntook {(time.monotonic() - began) / 60:.1f} min")


if __name__ == "__main__":
    main()
