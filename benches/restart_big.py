#!/usr/bin/env python3
"""Restart after kill -9 with a big in-memory dataset: about `--gb` GB
(default 10) of lists, sorted sets, sets and streams — the types Strata
keeps in its memory engines — loaded into one server, which is then killed
with SIGKILL and started again on the same directory; measured is the time
from the new process's start until PING answers PONG and INFO shows
loading:0 (with the restarted server's CPU time and the bytes it read from
disk until then, /proc/PID/stat and io, and the load average: the machine
may be shared). Strata runs with appendfsync everysec and its default
checkpoints, Redis with appendonly yes, appendfsync everysec and its
default AOF (aof-use-rdb-preamble yes, auto-aof-rewrite 100 % / 64 MB).
The same data and script for both, ONE SERVER AT A TIME (Strata first,
then Redis; the data directory is removed in between).

`--gb` counts the bytes of the elements the clients send (members, list
items, stream field values): 35 % in lists of 10 k items of 200 B, 25 %
in sorted sets of 10 k members of 100 B (scores shuffled against the
members), 15 % in sets of 10 k members of 100 B, 25 % in streams of 10 k
entries with two 100 B values; elements are an index and a slice of a
random pool, so neither RDB's LZF nor anything else shrinks them much.
Each server's used_memory, RSS and data directory size are printed.

Two loads per server, each on a fresh directory, three kills:
- `after load`: killed 2 s after the last write was answered (Redis's
  everysec fsync has run); whatever checkpoint or AOF rewrite is under
  way is lost, and the restart replays what the files hold.
- `idle`: on the second load, killed once the server has settled (no
  checkpoint, save or AOF rewrite running, its checkpoint sequence still
  for 3 s).
- `saved`: the restarted server of `idle` (the same data) is saved —
  Strata's SAVE, Redis's BGREWRITEAOF (the AOF becomes one RDB base) —
  then killed: the restart loads the saved files and replays nothing.
The kill is SIGKILL to the server's process group, so an AOF rewrite child
of Redis dies with it. After each restart DBSIZE and sampled keys of every
type must answer as before the kill.

Safety: before loading, MemAvailable and free disk are checked against
what the data will need (NEEDS below, measured at --gb 2); while
loading and restarting, the server is killed and the run stopped if free
disk falls under `--min-free-disk-gb` or MemAvailable under 1 GB, so the
machine's other users keep their disk and memory. The files may be in the
page cache at restart (nothing drops caches): a warm-cache restart.

    python3 benches/restart_big.py [--gb 10] [--only strata|redis] [--strata PATH] [--redis PATH]

Not part of CI: at 10 GB Strata needs about 22 GB of memory and 28 GB
of disk (see NEEDS); it refuses to start where they are missing."""
import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

from benchlib import (default_strata, free_port, info, mem_available, peak_rss, read_samples, resp, server_argv, settle,
                      start, stop, wait_loaded)

ELEMENTS = 10_000  # per key
SHARES = {"list": 0.35, "zset": 0.25, "set": 0.15, "stream": 0.25}
ELEMENT_BYTES = {"list": 200, "zset": 100, "set": 100, "stream": 200}
# Per GB of elements, measured at --gb 2 (rounded up): memory the server
# needs (its peak RSS) and the disk its directory reaches at peak (Strata:
# the previous checkpoint and the one being written, uncompressed, plus the
# log since the previous one; Redis: the AOF's base and increments and a
# rewrite's new base).
NEEDS = {"strata": {"memory": 2.2, "disk": 2.8}, "redis": {"memory": 1.5, "disk": 2.8}}


class Dataset:
    """The keys `--gb` makes, and their commands in order."""

    def __init__(self, gb):
        self.keys = {kind: max(1, round(gb * 1e9 * share / (ELEMENTS * ELEMENT_BYTES[kind])))
                     for kind, share in SHARES.items()}
        self.pool = random.Random(3).randbytes(1 << 20).hex().encode()

    def total_keys(self):
        return sum(self.keys.values())

    def payload(self):
        return sum(n * ELEMENTS * ELEMENT_BYTES[kind] for kind, n in self.keys.items())

    def element(self, key, i, size):
        """size bytes: the key and index, then a slice of the random pool."""
        head = b"%d:%d:" % (key, i)
        offset = (key * 1_000_003 + i * 7919) % (len(self.pool) - size)
        return head + self.pool[offset:offset + size - len(head)]

    def commands(self):
        """Chunks of RESP (about 1 MB each) that build every key."""
        batch, size = [], 0
        for kind, count in self.keys.items():
            width = ELEMENT_BYTES[kind]
            for k in range(count):
                name = b"%s:%d" % (kind.encode(), k)
                if kind == "stream":
                    half = width // 2
                    for i in range(ELEMENTS):
                        c = resp(b"XADD", name, b"*", b"a", self.element(k, i, half), b"b",
                                self.element(k + 500_000, i, half))
                        batch.append(c)
                        size += len(c)
                        if size > 1 << 20:
                            yield b"".join(batch)
                            batch, size = [], 0
                    continue
                for start in range(0, ELEMENTS, 1000):
                    items = range(start, start + 1000)
                    if kind == "list":
                        c = resp(b"RPUSH", name, *(self.element(k, i, width) for i in items))
                    elif kind == "set":
                        c = resp(b"SADD", name, *(self.element(k, i, width) for i in items))
                    else:
                        args = []
                        for i in items:
                            args += [b"%d" % (i * 2_654_435_761 % 1_000_003), self.element(k, i, width)]
                        c = resp(b"ZADD", name, *args)
                    batch.append(c)
                    size += len(c)
                    if size > 1 << 20:
                        yield b"".join(batch)
                        batch, size = [], 0
        if batch:
            yield b"".join(batch)

    def samples(self):
        """Commands whose replies must be the same after a restart."""
        out = [(b"DBSIZE",)]
        for kind, count in self.keys.items():
            for k in sorted({0, count - 1}):
                name = b"%s:%d" % (kind.encode(), k)
                out += {
                    "list": [(b"LLEN", name), (b"LINDEX", name, b"0"), (b"LINDEX", name, b"-1")],
                    "zset": [(b"ZCARD", name), (b"ZRANGE", name, b"0", b"1", b"WITHSCORES"),
                             (b"ZSCORE", name, self.element(k, ELEMENTS - 1, ELEMENT_BYTES["zset"]))],
                    "set": [(b"SCARD", name), (b"SISMEMBER", name, self.element(k, 17, ELEMENT_BYTES["set"]))],
                    "stream": [(b"XLEN", name), (b"XRANGE", name, b"-", b"+", b"COUNT", b"1"),
                               (b"XREVRANGE", name, b"+", b"-", b"COUNT", b"1")],
                }[kind]
        return out


def cpu_and_reads(pid):
    """(CPU seconds, user and system, and bytes read from storage) of a
    live process so far."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        with open(f"/proc/{pid}/io") as f:
            reads = next(int(line.split()[1]) for line in f if line.startswith("read_bytes:"))
        return cpu, reads
    except (OSError, StopIteration, IndexError, ValueError):
        return 0.0, 0


def dir_bytes(path):
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total


class Guard(threading.Thread):
    """Every half second: the data directory's size (its peak is kept), free
    disk and MemAvailable; when disk or memory run short, kills the server
    and its process group (its pid)."""

    def __init__(self, data, min_free_disk):
        super().__init__(daemon=True)
        self.data, self.min_free_disk = data, min_free_disk
        self.proc, self.tripped, self.peak_disk = None, None, 0
        self.done = threading.Event()
        self.lock = threading.Lock()

    def watch(self, proc):
        with self.lock:
            self.proc = proc

    def run(self):
        while not self.done.wait(0.5):
            self.peak_disk = max(self.peak_disk, dir_bytes(self.data))
            free, avail = shutil.disk_usage(self.data).free, mem_available()
            why = None
            if free < self.min_free_disk:
                why = f"free disk {free / 1e9:.1f} GB < {self.min_free_disk / 1e9:.1f} GB"
            elif avail < 1e9:
                why = f"MemAvailable {avail / 1e9:.2f} GB < 1 GB"
            if why:
                with self.lock:
                    if self.proc is not None and self.proc.poll() is None:
                        self.tripped = why
                        os.killpg(self.proc.pid, signal.SIGKILL)

    def check(self):
        if self.tripped:
            sys.exit(f"stopped: {self.tripped}; the server was killed to protect the machine")


def load(port, dataset, guard, timeout):
    """Streams the dataset into redis-cli --pipe; seconds."""
    started = time.monotonic()
    pipe = subprocess.Popen(["redis-cli", "-p", str(port), "--pipe"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        for chunk in dataset.commands():
            pipe.stdin.write(chunk)
            if time.monotonic() - started > timeout:
                raise TimeoutError
        out = pipe.communicate(timeout=max(60.0, timeout - (time.monotonic() - started)))[0]
    except (BrokenPipeError, TimeoutError, subprocess.TimeoutExpired):
        guard.check()
        sys.exit(f"loading failed or took over {timeout:.0f} s")
    finally:
        if pipe.poll() is None:
            pipe.kill()
        pipe.wait()
    guard.check()
    if pipe.returncode != 0 or b"errors: 0" not in out:
        sys.exit(f"redis-cli --pipe: {out.decode(errors='replace')[-500:]}")
    return time.monotonic() - started


def settled(port, timeout):
    """`settle`, going on when the server stays busy; seconds waited."""
    started = time.monotonic()
    if settle(port, timeout) is None:
        print(f"port {port}: still busy after {timeout:.0f} s; going on", file=sys.stderr)
    return time.monotonic() - started


def persistence_summary(port):
    f = info(port, "persistence")
    keys = ("rdb_changes_since_last_save", "rdb_bgsave_in_progress", "aof_rewrite_in_progress",
            "aof_rewrites", "rdb_saves", "strata_checkpoint_bytes", "strata_checkpoint_seq", "strata_log_seq")
    return " ".join(f"{k}={f[k]}" for k in keys if k in f)


def files_summary(data):
    """The data directory's files by top folder (and AOF files by name)."""
    sizes = {}
    for root, _, files in os.walk(data):
        rel = os.path.relpath(root, data)
        top = rel.split(os.sep)[0] if rel != "." else "."
        for name in files:
            try:
                size = os.lstat(os.path.join(root, name)).st_size
            except OSError:
                continue
            label = top if top != "appendonlydir" else f"{top}/{name.split('.')[-2] if '.' in name else name}"
            sizes[label] = sizes.get(label, 0) + size
    return ", ".join(f"{k} {v / 1e9:.2f} GB" for k, v in sorted(sizes.items()) if v > 1e6)


def save_everything(kind, port, timeout=1800.0):
    """Strata: SAVE (RocksDB flushed, a memory checkpoint at the last
    sequence); Redis: BGREWRITEAOF, until the rewrite is done (the AOF is
    then one RDB-preamble base). Seconds."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        f = info(port, "persistence")
        if "1" not in (f.get("rdb_bgsave_in_progress"), f.get("aof_rewrite_in_progress"),
                       f.get("aof_rewrite_scheduled")):
            break
        time.sleep(0.1)
    if kind == "strata":
        reply = read_samples(port, [(b"SAVE",)])[0]
        if reply != b"+OK":
            sys.exit(f"SAVE: {reply!r}")
        return time.monotonic() - started
    rewrites = int(info(port, "persistence")["aof_rewrites"])
    reply = read_samples(port, [(b"BGREWRITEAOF",)])[0]
    if not reply.startswith(b"+"):
        sys.exit(f"BGREWRITEAOF: {reply!r}")
    while time.monotonic() - started < timeout:
        f = info(port, "persistence")
        if f["aof_rewrite_in_progress"] == "0" and int(f["aof_rewrites"]) > rewrites:
            if f["aof_last_bgrewrite_status"] != "ok":
                sys.exit(f"BGREWRITEAOF failed: {f['aof_last_bgrewrite_status']}")
            return time.monotonic() - started
        time.sleep(0.1)
    sys.exit(f"BGREWRITEAOF still running after {timeout:.0f} s")


def one_load(kind, binary, dataset, args, scratch, first):
    """A fresh server loaded with the dataset, then killed and restarted:
    `first` is "after load" (killed 2 s after the load) or "idle" (killed
    once settled; then SAVE or BGREWRITEAOF, killed again: "saved").
    A row per restart."""
    data = tempfile.mkdtemp(prefix=f"restart-big-{kind}-", dir=scratch)
    guard = Guard(data, args.min_free_disk_gb * 1e9)
    guard.start()
    port = free_port()
    argv = server_argv(kind, binary, port, data, "everysec")
    if kind == "strata":
        argv += ["--bind", "127.0.0.1"]
    rows = []
    proc = None
    try:
        need_mem = NEEDS[kind]["memory"] * dataset.payload()
        need_disk = NEEDS[kind]["disk"] * dataset.payload() + args.min_free_disk_gb * 1e9
        avail, free = mem_available(), shutil.disk_usage(data).free
        print(f"{kind} {first}: MemAvailable {avail / 1e9:.1f} GB (needs ~{need_mem / 1e9:.1f} + 1), free disk "
              f"{free / 1e9:.1f} GB (needs ~{need_disk / 1e9:.1f} with the {args.min_free_disk_gb:g} GB kept free)",
              flush=True)
        if avail < need_mem + 1e9 or free < need_disk:
            sys.exit(f"{kind}: not enough memory or disk for --gb {args.gb:g} on this machine; try a smaller --gb")
        proc = start(argv)
        guard.watch(proc)
        wait_loaded(port, proc, 60)
        load_s = load(port, dataset, guard, args.timeout)
        time.sleep(2)
        expected = read_samples(port, dataset.samples(), timeout=300)
        if expected[0] != b":%d" % dataset.total_keys():
            sys.exit(f"{kind}: DBSIZE {expected[0]!r} after loading, expected {dataset.total_keys()}")
        used_memory = int(info(port, "memory")["used_memory"])
        print(f"{kind} {first}: loaded in {load_s:.0f} s", flush=True)
        for label in (("after load",) if first == "after load" else ("idle", "saved")):
            r = {"label": label, "load_s": load_s, "used_memory": used_memory}
            if label == "idle":
                r["wait_s"] = settled(port, 1800.0)
            elif label == "saved":
                r["wait_s"] = save_everything(kind, port)
            else:
                r["wait_s"] = 0.0
            r.update(state=persistence_summary(port), files=files_summary(data), disk=dir_bytes(data),
                     rss_before=peak_rss(proc.pid))
            stop(proc)
            started = time.monotonic()
            proc = start(argv)
            guard.watch(proc)
            try:
                wait_loaded(port, proc, args.timeout)
            except SystemExit:
                guard.check()
                raise
            r["seconds"] = time.monotonic() - started
            r["cpu_s"], r["read_bytes"] = cpu_and_reads(proc.pid)
            r["loadavg"] = os.getloadavg()[0]
            r["rss_after"] = peak_rss(proc.pid)
            got = read_samples(port, dataset.samples(), timeout=300)
            r["mismatches"] = [(c, a, b) for c, a, b in zip(dataset.samples(), expected, got) if a != b]
            fields = info(port, "persistence")
            r["recovery"] = {k: fields[k] for k in ("strata_recovery_ms", "strata_recovery_records") if k in fields}
            r["peak_disk"] = guard.peak_disk
            print(f"{kind} {label}: killed {r['wait_s']:.0f} s after {'the load' if label != 'saved' else 'idle'}, "
                  f"back in service in {r['seconds']:.2f} s ({r['state']}; {r['files']})"
                  f"{'; MISMATCHES' if r['mismatches'] else ''}", flush=True)
            rows.append(r)
        return rows
    finally:
        guard.done.set()
        if proc is not None:
            stop(proc)
        guard.join()
        shutil.rmtree(data, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gb", type=float, default=10.0, help="GB of elements (see above)")
    parser.add_argument("--strata", default=default_strata())
    parser.add_argument("--redis", default=shutil.which("redis-server") or "redis-server")
    parser.add_argument("--only", choices=["strata", "redis"])
    parser.add_argument("--scratch", help="where the data directories go (default: the system's temp dir)")
    parser.add_argument("--min-free-disk-gb", type=float, default=3.0)
    parser.add_argument("--timeout", type=float, default=3600.0, help="bound on loading and on each restart (s)")
    args = parser.parse_args()
    if not os.path.exists(args.strata):
        sys.exit(f"{args.strata}: build it first (cargo build --release)")
    dataset = Dataset(args.gb)
    print("load:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    print(f"{args.strata}: built {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(os.path.getmtime(args.strata)))}")
    print(f"dataset: {dataset.payload() / 1e9:.2f} GB of elements in {dataset.total_keys()} keys: "
          + ", ".join(f"{n} {kind}s of {ELEMENTS} x {ELEMENT_BYTES[kind]} B" for kind, n in dataset.keys.items()),
          flush=True)
    scratch = args.scratch or tempfile.gettempdir()
    results = {}
    for kind, binary in (("strata", args.strata), ("redis", args.redis)):
        if args.only in (None, kind):
            results[kind] = [row for first in ("after load", "idle")
                             for row in one_load(kind, binary, dataset, args, scratch, first)]
    print("load:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())

    print(f"\n{dataset.payload() / 1e9:.2f} GB of lists, sorted sets, sets and streams ({dataset.total_keys()} keys), "
          "kill -9, restart until PONG and loading:0")
    print(f"{'':34} " + " ".join(f"{k:>10}" for k in results) + ("  strata/redis" if len(results) == 2 else ""))

    def row(label, values, fmt):
        text = f"{label:34} " + " ".join(f"{fmt.format(v):>10}" for v in values)
        if len(values) == 2 and values[1]:
            text += f"  {values[0] / values[1]:12.3f}"
        print(text)

    res = list(results.values())
    for i, label in enumerate(("after load", "idle", "saved")):
        if i < 2:
            row(f"{label}: load, redis-cli --pipe (s)", [r[i]["load_s"] for r in res], "{:.0f}")
            row("  used_memory after load (GB)", [r[i]["used_memory"] / 1e9 for r in res], "{:.2f}")
            row("  peak RSS before the kill (GB)", [r[i]["rss_before"] / 1e9 for r in res], "{:.2f}")
        else:
            row(f"{label}: SAVE / BGREWRITEAOF (s)", [r[i]["wait_s"] for r in res], "{:.1f}")
        if i == 1:
            row("  settled after (s)", [r[i]["wait_s"] for r in res], "{:.0f}")
        row("  data dir at the kill (GB)", [r[i]["disk"] / 1e9 for r in res], "{:.2f}")
        row("  RESTART until PONG, loading:0 (s)", [r[i]["seconds"] for r in res], "{:.2f}")
        row("    its CPU time, user + sys (s)", [r[i]["cpu_s"] for r in res], "{:.2f}")
        row("    read from disk (GB)", [r[i]["read_bytes"] / 1e9 for r in res], "{:.2f}")
        row("    load average (1 min) then", [r[i]["loadavg"] for r in res], "{:.2f}")
        row("  peak RSS of the restarted (GB)", [r[i]["rss_after"] / 1e9 for r in res], "{:.2f}")
    row("peak data dir size (GB)", [max(x["peak_disk"] for x in r) / 1e9 for r in res], "{:.2f}")
    print()
    failed = False
    for kind, rows in results.items():
        for r in rows:
            print(f"{kind} {r['label']}: at the kill {r['state']}; files {r['files']}; recovery {r['recovery']}")
            for c, a, b in r["mismatches"]:
                failed = True
                print(f"  MISMATCH {b' '.join(c)[:80]!r}: before {a!r:.200} after {b!r:.200}")
    if failed:
        sys.exit(1)
    print("after every restart: DBSIZE and the sampled keys of every type answered as before the kill")


if __name__ == "__main__":
    main()
