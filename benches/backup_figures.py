#!/usr/bin/env python3
"""Backups, Strata beside Redis in one run, on the snapshot issue's dataset
(2 M strings of 50 bytes, 200 k hashes of 10 fields, 200 sorted sets of
20 k members, 200 lists of 50 k elements, one sorted set of 3 M members;
`--scale` shrinks the number of keys of each type and the big set's
members). Each server in turn (Strata first, then Redis; never both at
once), Strata with appendfsync everysec, Redis with appendonly yes and
appendfsync everysec (save ""), loaded with redis-cli --pipe, then left
until no background save runs:

- full backup: Strata's `strata-backup create` (strict) into a fresh
  repository, its wall time, the bytes it stored (the chunk files) and
  the raw bytes they hold (per part: RocksDB files, memory checkpoint,
  log); Redis's BGSAVE, from the command until INFO persistence shows
  rdb_bgsave_in_progress:0 (rdb_last_bgsave_status must be ok), and the
  size of dump.rdb.
- after 1 % of every type's elements changed (20 k of the 2 M strings get a
  new value, 2 k of the 200 k hashes get all 10 fields new, 200 members of
  each 20 k sorted set are rescored, 500 elements of each 50 k list are
  replaced with LSET, 30 k of the big set's 3 M members are rescored; every
  100th of each): `strata-backup create --incremental`, its time, stored
  bytes and their ratio to the full backup's; Redis has no increments, so
  its BGSAVE again.
- restore: `strata-backup restore` of the newest backup (the increment's
  chain) into a new directory, then strata-server started on it, until
  PING answers PONG and INFO shows loading:0; for Redis, dump.rdb copied
  into a new directory and redis-server (appendonly no) started on it,
  until the same. The source server is killed first. DBSIZE and sampled
  keys (changed and unchanged ones of every type) must read back as the
  source server answered them, and the same in Strata and Redis.
- Strata's full backup at level bounded too (a RocksDB flush and a memory
  checkpoint cut for it, as BGSAVE writes an RDB for it; strict copies
  the parts the server had already written, after the wait for background
  saves that follows the load), and the full backup alone restored and
  started (the increment's chain adds the replay of its log).
- each server's peak RSS (VmHWM) and used_memory after loading.

    python3 benches/backup_figures.py [--scale 1.0] [--strata PATH] [--backup PATH] [--redis PATH]

Not part of CI: it takes minutes (about 3 at --scale 1 on 2 cores), a few
GB of memory and disk, and measures this machine."""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

from benchlib import (call, read_samples, default_strata, free_port, info, issue_keys, issue_sizes, peak_rss, pipe, resp,
                      server_argv, settle, start, stop, wait_loaded, write_big_zset, write_issue_mixed)

EVERY = 100  # every 100th element of each type is changed: 1 %


def write_change(f, sizes):
    """1 % of every type's elements, every EVERY-th one (see the docstring)."""
    value = "c" * 50
    changed = [f"string:{i}" for i in range(0, sizes["strings"], EVERY)]
    for start in range(0, len(changed), 1000):
        args = ["MSET"]
        for key in changed[start:start + 1000]:
            args += [key, value]
        f.write(resp(*args))
    for h in range(0, sizes["hashes"], EVERY):
        args = ["HSET", f"hash:{h}"]
        for field in range(10):
            args += [f"f{field}", f"changed-{h}-{field}"]
        f.write(resp(*args))
    for z in range(sizes["zsets"]):
        args = ["ZADD", f"zset:{z}"]
        for i in range(0, sizes["zset_members"], EVERY):
            args += [str(-i - 1), f"m{i}"]
        f.write(resp(*args))
    for name in range(sizes["lists"]):
        for i in range(0, sizes["list_items"], EVERY):
            f.write(resp("LSET", f"list:{name}", str(i), f"changed-{i}"))
    members = list(range(0, sizes["big_members"], EVERY))
    for start in range(0, len(members), 1000):
        args = ["ZADD", "big"]
        for i in members[start:start + 1000]:
            args += [str(i % 9973 + 10000), f"member:{i}"]
        f.write(resp(*args))
    return {
        "strings": len(changed),
        "hash fields": len(range(0, sizes["hashes"], EVERY)) * 10,
        "zset members": sizes["zsets"] * len(range(0, sizes["zset_members"], EVERY)),
        "list elements": sizes["lists"] * len(range(0, sizes["list_items"], EVERY)),
        "big zset members": len(members),
    }


def samples(sizes):
    """Commands whose replies must survive a restore: changed (index 0) and
    unchanged (index 1 and the last) elements of every type, and sizes."""
    last_s, last_h = sizes["strings"] - 1, sizes["hashes"] - 1
    last_z, last_l = sizes["zsets"] - 1, sizes["lists"] - 1
    out = [("DBSIZE",)]
    for i in sorted({0, 1, last_s}):
        out.append(("GET", f"string:{i}"))
    for h in sorted({0, 1, last_h}):
        out.append(("HGETALL", f"hash:{h}"))
    for z in sorted({0, last_z}):
        out += [("ZCARD", f"zset:{z}"), ("ZSCORE", f"zset:{z}", "m0"), ("ZSCORE", f"zset:{z}", "m1"),
                ("ZRANGE", f"zset:{z}", "0", "4", "WITHSCORES")]
    for n in sorted({0, last_l}):
        out += [("LLEN", f"list:{n}"), ("LINDEX", f"list:{n}", "0"), ("LINDEX", f"list:{n}", "1"),
                ("LRANGE", f"list:{n}", "-3", "-1")]
    out += [("ZCARD", "big"), ("ZSCORE", "big", "member:0"), ("ZSCORE", "big", "member:1"),
            ("ZRANGE", "big", "0", "4", "WITHSCORES")]
    return out


def load_settled(port, proc, dataset, kind, r):
    """Loads `dataset` once the server answers and lets its background saves
    settle; notes the times, `used_memory` and DBSIZE in `r`."""
    wait_loaded(port, proc, 60)
    started = time.monotonic()
    pipe(port, dataset)
    r["load_s"] = time.monotonic() - started
    r["settle_s"] = settled(port, kind)
    r["used_memory"] = int(info(port, "memory")["used_memory"])
    r["dbsize"] = read_samples(port, [("DBSIZE",)])[0]


def run_timed(argv, log):
    """Runs a tool to completion (bounded: 30 min); (seconds, its stdout).
    Exits with the tool's output if it fails."""
    started = time.monotonic()
    with open(log, "w+") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
        try:
            proc.wait(1800)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            sys.exit(f"{' '.join(argv)}: still running after 30 min, killed")
        elapsed = time.monotonic() - started
        out.seek(0)
        text = out.read()
    if proc.returncode != 0:
        sys.exit(f"{' '.join(argv)} exited with status {proc.returncode}:\n{text}")
    return elapsed, text


def settled(port, kind, timeout=300.0):
    """`settle`, going on when the server stays busy; seconds waited."""
    started = time.monotonic()
    if settle(port, timeout) is None:
        print(f"{kind}: still busy in the background after {timeout:.0f} s; going on", file=sys.stderr)
    return time.monotonic() - started


def bgsave(port, timeout=1800.0):
    """Seconds from BGSAVE until rdb_bgsave_in_progress:0 with
    rdb_last_bgsave_status:ok (INFO polled every 10 ms)."""
    saves_before = int(info(port, "persistence").get("rdb_saves", "0"))
    started = time.monotonic()
    reply = call(port, "BGSAVE")
    if not reply.startswith(b"+"):
        sys.exit(f"BGSAVE: {reply!r}")
    while time.monotonic() - started < timeout:
        fields = info(port, "persistence")
        if fields["rdb_bgsave_in_progress"] == "0" and int(fields.get("rdb_saves", "0")) > saves_before:
            elapsed = time.monotonic() - started
            if fields["rdb_last_bgsave_status"] != "ok":
                sys.exit(f"BGSAVE failed: rdb_last_bgsave_status:{fields['rdb_last_bgsave_status']}")
            return elapsed
        time.sleep(0.01)
    sys.exit(f"BGSAVE still running after {timeout:.0f} s")


def strata_backup_row(repo, backup, log):
    """The newest backup of `repo` (list --json), with the bytes of its
    chunk files on disk and the raw bytes per part from its manifest."""
    _, text = run_timed([backup, "list", "--repo", repo, "--json"], log)
    row = json.loads(text)[-1]
    folder = os.path.join(repo, "backups", row["id"])
    chunks = os.path.join(folder, "chunks")
    row["stored"] = sum(os.path.getsize(os.path.join(chunks, name)) for name in os.listdir(chunks))
    with open(os.path.join(folder, "manifest.json")) as f:
        manifest = json.load(f)
    row["raw"] = sum(file["size"] for file in manifest["files"])
    row["parts"] = {}
    for file in manifest["files"]:
        part = file["path"].split("/", 1)[0]
        raw, stored = row["parts"].get(part, (0, 0))
        row["parts"][part] = (raw + file["size"], stored + sum(c["stored"] for c in file["chunks"]))
    return row


def run_strata(args, dataset, change, sample_commands, scratch):
    r = {}
    data, repo, restored = (os.path.join(scratch, name) for name in ("strata-data", "strata-repo", "strata-restored"))
    os.mkdir(data)
    port = free_port()
    argv = server_argv("strata", args.strata, port, data, "everysec") + ["--bind", "127.0.0.1"]
    procs = []
    try:
        proc = start(argv)
        procs.append(proc)
        load_settled(port, proc, dataset, "strata", r)

        log = os.path.join(scratch, "strata-backup.out")
        r["full_s"], out = run_timed([args.backup, "create", "--repo", repo, "-p", str(port)], log)
        print("strata full:", out.strip(), flush=True)
        r["full"] = strata_backup_row(repo, args.backup, log)

        started = time.monotonic()
        pipe(port, change)
        r["change_s"] = time.monotonic() - started
        r["incr_s"], out = run_timed([args.backup, "create", "--repo", repo, "-p", str(port), "--incremental"], log)
        print("strata incremental:", out.strip(), flush=True)
        r["incr"] = strata_backup_row(repo, args.backup, log)
        # A full backup at level bounded, into a repository of its own: a
        # RocksDB flush and a memory checkpoint cut for it, as BGSAVE writes
        # its RDB for it (strict takes the parts already on disk).
        r["bounded_s"], out = run_timed([args.backup, "create", "--repo", repo + "-bounded", "-p", str(port),
                                         "--level", "bounded"], log)
        print("strata full bounded:", out.strip(), flush=True)
        r["bounded"] = strata_backup_row(repo + "-bounded", args.backup, log)
        r["source"] = read_samples(port, sample_commands)
        r["peak_rss"] = peak_rss(proc.pid)
        stop(proc)

        # The full backup alone (before the change): restore and start.
        only_full = restored + "-full"
        r["restore_full_s"], out = run_timed([args.backup, "restore", "--repo", repo, "--to", only_full,
                                              "--id", r["full"]["id"]], log)
        print("strata restore of the full backup:", out.strip(), flush=True)
        port = free_port()
        proc = start(server_argv("strata", args.strata, port, only_full, "everysec") + ["--bind", "127.0.0.1"])
        procs.append(proc)
        r["start_full_s"] = wait_loaded(port, proc, 1800)
        r["full_dbsize"] = read_samples(port, [("DBSIZE",)])[0]
        stop(proc)
        shutil.rmtree(only_full, ignore_errors=True)

        r["restore_s"], out = run_timed([args.backup, "restore", "--repo", repo, "--to", restored], log)
        print("strata restore:", out.strip(), flush=True)
        port = free_port()
        argv = server_argv("strata", args.strata, port, restored, "everysec") + ["--bind", "127.0.0.1"]
        proc = start(argv)
        procs.append(proc)
        r["start_s"] = wait_loaded(port, proc, 1800)
        r["restored"] = read_samples(port, sample_commands)
        r["restored_peak_rss"] = peak_rss(proc.pid)
        r["recovery"] = {k: v for k, v in info(port, "persistence").items()
                         if k in ("strata_recovery_ms", "strata_recovery_records")}
        stop(proc)
        return r
    finally:
        for proc in procs:
            stop(proc)


def run_redis(args, dataset, change, sample_commands, scratch):
    r = {}
    data, restored = os.path.join(scratch, "redis-data"), os.path.join(scratch, "redis-restored")
    os.mkdir(data)
    os.mkdir(restored)
    port = free_port()
    procs = []
    try:
        proc = start(server_argv("redis", args.redis, port, data, "everysec"))
        procs.append(proc)
        load_settled(port, proc, dataset, "redis", r)
        dump = os.path.join(data, "dump.rdb")

        r["full_s"] = bgsave(port)
        r["full"] = {"stored": os.path.getsize(dump)}
        started = time.monotonic()
        pipe(port, change)
        r["change_s"] = time.monotonic() - started
        settled(port, "redis")  # an AOF rewrite the change started would refuse BGSAVE
        r["incr_s"] = bgsave(port)
        r["incr"] = {"stored": os.path.getsize(dump)}
        r["source"] = read_samples(port, sample_commands)
        r["peak_rss"] = peak_rss(proc.pid)
        stop(proc)

        started = time.monotonic()
        shutil.copyfile(dump, os.path.join(restored, "dump.rdb"))
        r["restore_s"] = time.monotonic() - started
        port = free_port()
        proc = start(server_argv("redis", args.redis, port, restored, "none"))
        procs.append(proc)
        r["start_s"] = wait_loaded(port, proc, 1800)
        r["restored"] = read_samples(port, sample_commands)
        r["restored_peak_rss"] = peak_rss(proc.pid)
        stop(proc)
        return r
    finally:
        for proc in procs:
            stop(proc)


def mb(n):
    return f"{n / 1e6:.1f}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the issue dataset's keys")
    parser.add_argument("--strata", default=default_strata())
    parser.add_argument("--backup", help="strata-backup (default: beside --strata)")
    parser.add_argument("--redis", default=shutil.which("redis-server") or "redis-server")
    parser.add_argument("--scratch", help="where the temp dirs go (default: the system's)")
    args = parser.parse_args()
    args.backup = args.backup or os.path.join(os.path.dirname(args.strata), "strata-backup")
    for binary in (args.strata, args.backup):
        if not os.path.exists(binary):
            sys.exit(f"{binary}: build it first (cargo build --release)")
    print("load:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    for binary in (args.strata, args.backup):
        print(f"{binary}: built {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(os.path.getmtime(binary)))}")
    sizes = issue_sizes(args.scale)
    with tempfile.TemporaryDirectory(prefix="backup-figures-", dir=args.scratch) as scratch:
        dataset, change = os.path.join(scratch, "dataset.resp"), os.path.join(scratch, "change.resp")
        with open(dataset, "wb") as f:
            write_issue_mixed(f, sizes)
            write_big_zset(f, sizes["big_members"])
        with open(change, "wb") as f:
            changed = write_change(f, sizes)
        sample_commands = samples(sizes)
        results = {}
        for kind, run in (("strata", run_strata), ("redis", run_redis)):
            print(f"{kind}: running", flush=True)
            results[kind] = run(args, dataset, change, sample_commands, scratch)
            print(f"{kind}: done", flush=True)
        print("load:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())

    s, r = results["strata"], results["redis"]
    keys = issue_keys(sizes)
    print()
    print(f"dataset (scale {args.scale:g}): {sizes['strings']} strings of 50 B, {sizes['hashes']} hashes of 10 fields, "
          f"{sizes['zsets']} sorted sets of {sizes['zset_members']}, {sizes['lists']} lists of "
          f"{sizes['list_items']}, one sorted set of {sizes['big_members']}: {keys} keys")
    print("1 % change: " + ", ".join(f"{n} {what}" for what, n in changed.items()))
    print()
    rows = [
        ("load, redis-cli --pipe (s)", s["load_s"], r["load_s"], "{:.1f}"),
        ("used_memory after load (MB)", s["used_memory"] / 1e6, r["used_memory"] / 1e6, "{:.1f}"),
        ("wait for background saves after load (s)", s["settle_s"], r["settle_s"], "{:.1f}"),
        ("full backup / BGSAVE (s)", s["full_s"], r["full_s"], "{:.2f}"),
        ("full: stored (MB)", s["full"]["stored"] / 1e6, r["full"]["stored"] / 1e6, "{:.1f}"),
        ("full: raw (MB)", s["full"]["raw"] / 1e6, None, "{:.1f}"),
        ("full, level bounded / BGSAVE (s)", s["bounded_s"], r["full_s"], "{:.2f}"),
        ("  stored (MB)", s["bounded"]["stored"] / 1e6, r["full"]["stored"] / 1e6, "{:.1f}"),
        ("change 1 %, redis-cli --pipe (s)", s["change_s"], r["change_s"], "{:.2f}"),
        ("incremental / BGSAVE again (s)", s["incr_s"], r["incr_s"], "{:.2f}"),
        ("  stored (MB)", s["incr"]["stored"] / 1e6, r["incr"]["stored"] / 1e6, "{:.2f}"),
        ("  raw (MB)", s["incr"]["raw"] / 1e6, None, "{:.2f}"),
        ("  stored / full stored (%)", 100 * s["incr"]["stored"] / s["full"]["stored"],
         100 * r["incr"]["stored"] / r["full"]["stored"], "{:.2f}"),
        ("restore: backup restore / copy rdb (s)", s["restore_s"], r["restore_s"], "{:.2f}"),
        ("restore: start until PONG, loading:0 (s)", s["start_s"], r["start_s"], "{:.2f}"),
        ("restore: total (s)", s["restore_s"] + s["start_s"], r["restore_s"] + r["start_s"], "{:.2f}"),
        ("restore full backup only (s)", s["restore_full_s"], None, "{:.2f}"),
        ("  start until PONG, loading:0 (s)", s["start_full_s"], None, "{:.2f}"),
        ("peak RSS, source server (MB)", s["peak_rss"] / 1e6, r["peak_rss"] / 1e6, "{:.0f}"),
        ("peak RSS, restored server (MB)", s["restored_peak_rss"] / 1e6, r["restored_peak_rss"] / 1e6, "{:.0f}"),
    ]
    print(f"{'':42} {'strata':>10} {'redis':>10} {'strata/redis':>13}")
    for label, a, b, fmt in rows:
        ratio = f"{a / b:.3f}" if b else "-"
        print(f"{label:42} {fmt.format(a):>10} {fmt.format(b) if b is not None else '-':>10} {ratio:>13}")
    print()
    for name in ("full", "incr", "bounded"):
        row = s[name]
        parts = ", ".join(f"{part} {mb(raw)} MB raw, {mb(stored)} MB stored" for part, (raw, stored) in
                          sorted(row["parts"].items()))
        print(f"strata {name} backup {row['id']}: {row['kind']} {row['level']} seq {row['seq']}: {parts}")
    if s["incr"]["kind"] != "incremental":
        print(f"WARNING: strata's --incremental backup was {s['incr']['kind']}, not incremental")
    print(f"strata restored server: {s['recovery']}")

    failures = []
    for kind, res in results.items():
        if res["dbsize"] != b":%d" % keys:
            failures.append(f"{kind}: DBSIZE after load {res['dbsize']!r}, expected {keys}")
        if res.get("full_dbsize", b":%d" % keys) != b":%d" % keys:
            failures.append(f"{kind}: DBSIZE restored from the full backup {res['full_dbsize']!r}, expected {keys}")
        for command, before, after in zip(sample_commands, res["source"], res["restored"]):
            if before != after:
                failures.append(f"{kind}: {' '.join(command)}: source {before!r}, restored {after!r}")
    for command, a, b in zip(sample_commands, s["restored"], r["restored"]):
        if a != b:
            failures.append(f"{' '.join(command)}: restored strata {a!r}, restored redis {b!r}")
    checked = len(sample_commands)
    if failures:
        print(f"RESTORE CHECK FAILED ({len(failures)} of {checked} sampled replies per server):")
        for line in failures:
            print("  " + line)
        sys.exit(1)
    print(f"restore check: DBSIZE {keys} and {checked - 1} sampled replies (changed and unchanged keys of every "
          "type) equal in source and restored copy, and in Strata and Redis")


if __name__ == "__main__":
    main()
