"""What the benchmark scripts share: free ports, RESP encoding, waiting for
a server to answer PONG (not -LOADING), the default Strata binary."""
import os
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
