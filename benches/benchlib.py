"""What the benchmark scripts share: free ports, RESP encoding, waiting for
a server to answer PONG (not -LOADING), the default Strata binary, INFO
fields, and the snapshot issue's dataset."""
import os
import signal
import socket
import subprocess
import sys
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def resp(*args):
    """One command in RESP (what redis-cli --pipe reads)."""
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


def wait_ready(port, proc, timeout=60.0):
    """Returns once the server answers PING with PONG; a server still
    loading answers -LOADING and is waited for."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"server on port {port} exited")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return
        except OSError:
            pass
        time.sleep(0.02)
    sys.exit(f"server on port {port} did not start")


def default_strata():
    target = os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/strata-target"))
    return os.path.join(target, "release", "strata-server")


def server_argv(kind, binary, port, data, durability):
    """The command line of a Strata or Redis server at one durability:
    `none` (Redis without AOF, Strata with appendfsync no), `everysec` or
    `always` (Redis with appendonly yes and that appendfsync)."""
    if kind == "strata":
        fsync = "no" if durability == "none" else durability
        return [binary, "--port", str(port), "--dir", data, "--loglevel", "warning", "--appendfsync", fsync]
    aof = ["--appendonly", "no"] if durability == "none" else ["--appendonly", "yes", "--appendfsync", durability]
    return [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", data, "--loglevel", "warning",
            *aof]


def pipe(port, path):
    """Sends a file of RESP commands with redis-cli --pipe."""
    with open(path, "rb") as f:
        subprocess.run(["redis-cli", "-p", str(port), "--pipe"], stdin=f, check=True, stdout=subprocess.DEVNULL)


def call(port, *args):
    """One command on a fresh connection; the raw reply (a bulk reply read
    whole)."""
    with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
        s.sendall(resp(*args))
        data = s.recv(65536)
        if data.startswith(b"$") and b"\r\n" in data:
            head = data.index(b"\r\n")
            size = head + 2 + max(int(data[1:head]), 0) + 2
            while len(data) < size:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        return data


def info(port, section=""):
    """INFO `section` as a dict of field to string value."""
    reply = call(port, "INFO", section) if section else call(port, "INFO")
    if not reply.startswith(b"$"):
        raise OSError(f"INFO on port {port}: {reply[:100]!r}")
    text = reply[reply.index(b"\r\n") + 2:].decode(errors="replace")
    return dict(line.strip().split(":", 1) for line in text.splitlines() if ":" in line)


def wait_loaded(port, proc, timeout=600.0):
    """Seconds until the server answers PING with PONG and INFO shows
    loading:0 (polled every 10 ms on fresh connections), from the call;
    exits if the server dies or `timeout` passes."""
    started = time.monotonic()
    deadline = started + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"server on port {port} exited with status {proc.returncode}")
        try:
            if call(port, "PING").startswith(b"+PONG") and info(port, "persistence").get("loading") == "0":
                return time.monotonic() - started
        except OSError:
            pass
        time.sleep(0.01)
    sys.exit(f"server on port {port} was not serving after {timeout:.0f} s")


def peak_rss(pid):
    """VmHWM of a live process in bytes (0 if it cannot be read)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def start(argv):
    """Starts a server in its own process group (its pid is the group's
    id), so that `stop` reaches what it forks too: Redis's BGSAVE and
    AOF rewrite children, which a SIGKILL of the server alone leaves
    running."""
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, start_new_session=True)
    proc.own_group = True
    return proc


def stop(proc, timeout=30.0):
    """SIGKILL (kill -9) to a server and, if `start` started it, to its
    process group; then reaps the server (bounded)."""
    try:
        if getattr(proc, "own_group", False):
            os.killpg(proc.pid, signal.SIGKILL)
        elif proc.poll() is None:
            proc.kill()
    except ProcessLookupError:
        pass
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        print(f"pid {proc.pid} did not exit {timeout:.0f} s after SIGKILL", file=sys.stderr)


# The snapshot issue's dataset: 2 M strings of 50 bytes, 200 k hashes of 10
# fields, 200 sorted sets of 20 k members, 200 lists of 50 k elements, and
# one sorted set ("big") of 3 M members.
ISSUE = {"strings": 2_000_000, "hashes": 200_000, "zsets": 200, "zset_members": 20_000, "lists": 200,
         "list_items": 50_000, "big_members": 3_000_000}


def issue_sizes(scale=1.0):
    """The issue's sizes scaled: the number of keys of each type and the big
    sorted set's members (each collection keeps its size)."""
    sizes = dict(ISSUE)
    for name in ("strings", "hashes", "zsets", "lists", "big_members"):
        sizes[name] = max(1, int(ISSUE[name] * scale))
    return sizes


def write_big_zset(f, members):
    """ZADDs of the sorted set "big": member:i scored i % 9973."""
    for start in range(0, members, 1000):
        args = ["ZADD", "big"]
        for i in range(start, min(start + 1000, members)):
            args += [str(i % 9973), f"member:{i}"]
        f.write(resp(*args))


def write_issue_mixed(f, sizes=ISSUE):
    """The issue's mixed keys: strings string:i ("v" * 50), hashes hash:h
    (f0..f9 = value-h-f), sorted sets zset:z (m<i> scored i), lists list:n
    (item-i)."""
    value = "v" * 50
    for start in range(0, sizes["strings"], 1000):
        args = ["MSET"]
        for i in range(start, min(start + 1000, sizes["strings"])):
            args += [f"string:{i}", value]
        f.write(resp(*args))
    for h in range(sizes["hashes"]):
        args = ["HSET", f"hash:{h}"]
        for field in range(10):
            args += [f"f{field}", f"value-{h}-{field}"]
        f.write(resp(*args))
    for z in range(sizes["zsets"]):
        for start in range(0, sizes["zset_members"], 1000):
            args = ["ZADD", f"zset:{z}"]
            for i in range(start, min(start + 1000, sizes["zset_members"])):
                args += [str(i), f"m{i}"]
            f.write(resp(*args))
    for name in range(sizes["lists"]):
        for start in range(0, sizes["list_items"], 1000):
            stop_at = min(start + 1000, sizes["list_items"])
            f.write(resp("RPUSH", f"list:{name}", *(f"item-{i}" for i in range(start, stop_at))))


def issue_keys(sizes=ISSUE):
    """How many keys the issue's dataset makes."""
    return sizes["strings"] + sizes["hashes"] + sizes["zsets"] + sizes["lists"] + (1 if sizes["big_members"] else 0)


def read_reply(s, buf):
    """One RESP2 reply from socket `s` (after what `buf` holds): (value,
    rest of the buffer)."""
    def need(n):
        nonlocal buf
        while len(buf) < n:
            chunk = s.recv(65536)
            if not chunk:
                raise OSError("connection closed")
            buf += chunk

    def line():
        nonlocal buf
        while b"\r\n" not in buf:
            need(len(buf) + 1)
        head, buf = buf.split(b"\r\n", 1)
        return head

    def one():
        nonlocal buf
        head = line()
        kind, rest = head[:1], head[1:]
        if kind in (b"+", b"-", b":"):
            return head
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            need(n + 2)
            value, buf = buf[:n], buf[n + 2:]
            return value
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [one() for _ in range(n)]
        raise OSError(f"unexpected reply {head[:80]!r}")

    return one(), buf


def read_samples(port, commands, timeout=120):
    """The replies to `commands`, pipelined on one connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(b"".join(resp(*c) for c in commands))
        buf, out = b"", []
        for _ in commands:
            value, buf = read_reply(s, buf)
            out.append(value)
        return out


def settle(port, timeout):
    """Waits (bounded) until the server has nothing in the background: no
    save, AOF rewrite or rewrite scheduled, and Strata's checkpoint and
    RocksDB flush sequences unmoved for 3 s. Seconds waited, or None when
    it was still busy after `timeout` (the caller decides what that means)."""
    started = stable_since = time.monotonic()
    last = None
    while time.monotonic() - started < timeout:
        f = info(port, "persistence")
        busy = "1" in (f.get("rdb_bgsave_in_progress"), f.get("aof_rewrite_in_progress"),
                       f.get("aof_rewrite_scheduled"))
        mark = (f.get("strata_checkpoint_seq"), f.get("strata_rocksdb_flushed_seq"))
        if busy or mark != last:
            stable_since, last = time.monotonic(), mark
        elif time.monotonic() - stable_since >= 3:
            return time.monotonic() - started
        time.sleep(0.2)
    return None


def mem_available():
    """MemAvailable from /proc/meminfo, in bytes (0 if unreadable)."""
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 0
