"""Fixtures for Strata's compatibility tests.

Each test session starts the real `strata-server` binary and a real Debian
`redis-server` side by side on free loopback ports. Differential tests send
the same command to both and compare the replies byte for byte (`pair.same`)
or as parsed values where Redis leaves the order unspecified
(`pair.same_unordered`).
"""
import os
import shutil
import socket
import subprocess
import tempfile
import time

import pytest
import redis

HERE = os.path.dirname(os.path.abspath(__file__))


def strata_binary():
    if os.environ.get("STRATA_BIN"):
        return os.environ["STRATA_BIN"]
    target = os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/strata-target"))
    return os.path.join(target, "release", "strata-server")


_USED_PORTS = set()


def free_port():
    """A free port not handed out before in this session."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _USED_PORTS:
            _USED_PORTS.add(port)
            return port


def wait_for_ping(port, proc, timeout=30.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server on port {port} exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                if s.recv(64).startswith((b"+PONG", b"-NOAUTH")):
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"server on port {port} did not answer PING")


class Server:
    """A server process on a free port; `restart()` keeps its data dir."""

    def __init__(self, argv_for_port, name):
        self.argv_for_port = argv_for_port
        self.name = name
        self.port = free_port()
        self.proc = None

    def start(self):
        log = open(os.path.join(tempfile.gettempdir(), f"{self.name}-{self.port}.log"), "ab")
        self.proc = subprocess.Popen(self.argv_for_port(self.port), stdout=log, stderr=log)
        wait_for_ping(self.port, self.proc)
        return self

    def stop(self, sig_kill=False):
        if self.proc and self.proc.poll() is None:
            if sig_kill:
                self.proc.kill()
            else:
                self.proc.terminate()
            self.proc.wait(timeout=30)

    def close(self):
        """Stops the server for good and deletes its data dir."""
        self.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def restart(self, sig_kill=False):
        self.stop(sig_kill)
        return self.start()

    def client(self, **kwargs):
        return redis.Redis(port=self.port, **kwargs)

    def raw(self):
        return RawConn(self.port)


def start_strata(extra=()):
    data = tempfile.mkdtemp(prefix="strata-test-")
    server = Server(
        lambda port: [strata_binary(), "--port", str(port), "--dir", data, "--loglevel", "warning", *extra],
        "strata",
    )
    server.data_dir = data
    return server.start()


def start_redis(extra=()):
    data = tempfile.mkdtemp(prefix="redis-test-")
    server = Server(
        lambda port: ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                      "--appendonly", "no", "--dir", data, "--daemonize", "no", *extra],
        "redis",
    )
    server.data_dir = data
    return server.start()


class Err(str):
    """An error reply, kept apart from status and bulk strings."""

    def __repr__(self):
        return f"Err({str.__repr__(self)})"


class RawConn:
    """A minimal RESP client that returns each reply's exact bytes and a
    parsed form (lists for aggregates, Err for errors)."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buf = b""

    def close(self):
        self.sock.close()

    def send_raw(self, data):
        self.sock.sendall(data)

    def call(self, *args):
        self.send_raw(encode(args))
        return self.read_reply()

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("connection closed")
        self.buf += chunk

    def _line(self, pos):
        while True:
            end = self.buf.find(b"\r\n", pos)
            if end >= 0:
                return self.buf[pos:end], end + 2
            self._fill()

    def _parse(self, pos):
        while len(self.buf) <= pos:
            self._fill()
        kind = self.buf[pos:pos + 1]
        line, pos = self._line(pos + 1)
        if kind in (b"+",):
            return line.decode("utf-8", "replace"), pos
        if kind == b"-":
            return Err(line.decode("utf-8", "replace")), pos
        if kind == b":":
            return int(line), pos
        if kind == b",":
            return ("double", line.decode()), pos
        if kind == b"#":
            return line == b"t", pos
        if kind == b"_":
            return None, pos
        if kind in (b"$", b"="):
            n = int(line)
            if n < 0:
                return None, pos
            while len(self.buf) < pos + n + 2:
                self._fill()
            return self.buf[pos:pos + n], pos + n + 2
        if kind in (b"*", b"~", b">", b"%"):
            n = int(line)
            if n < 0:
                return None, pos
            if kind == b"%":
                n *= 2
            items = []
            for _ in range(n):
                item, pos = self._parse(pos)
                items.append(item)
            return items, pos
        raise ValueError(f"bad reply type {kind!r} in {self.buf[pos - 10:pos + 20]!r}")

    def read_reply(self):
        value, end = self._parse(0)
        raw, self.buf = self.buf[:end], self.buf[end:]
        return raw, value


def run_both(strata_server, redis_server, scenario, conns=5):
    """Runs `scenario` (given `conns` fresh connections, the data flushed)
    against Strata and then Redis; the results must be equal."""
    results = []
    for server in (strata_server, redis_server):
        cs = [RawConn(server.port) for _ in range(conns)]
        cs[0].call("FLUSHALL")
        results.append(scenario(cs))
        for c in cs:
            c.close()
    assert results[0] == results[1], f"strata {results[0]!r} != redis {results[1]!r}"
    return results[1]


def blocked_count(conn):
    info = conn.call("INFO", "clients")[1].decode()
    return int([l for l in info.splitlines() if l.startswith("blocked_clients:")][0].split(":")[1])


def wait_blocked(conn, n):
    """Waits (up to 3 s) until `n` clients are blocked."""
    for _ in range(300):
        if blocked_count(conn) == n:
            return
        time.sleep(0.01)
    raise AssertionError(f"expected {n} blocked clients, have {blocked_count(conn)}")


def encode(args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        if isinstance(a, str):
            a = a.encode()
        elif isinstance(a, (int, float)):
            a = str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


def canonical(value):
    """Order-insensitive form of a parsed reply (for HKEYS, KEYS, SMEMBERS...)."""
    if isinstance(value, list):
        return sorted((canonical(v) for v in value), key=repr)
    return value


class Pair:
    """The same connection to Strata and to Redis."""

    def __init__(self, strata, real):
        self.strata = strata
        self.redis = real

    def call(self, *args):
        return self.strata.call(*args)[1], self.redis.call(*args)[1]

    def same(self, *args):
        """Sends a command to both; the replies must be byte-identical."""
        ours, theirs = self.strata.call(*args), self.redis.call(*args)
        assert ours[0] == theirs[0], f"{args!r}: strata {ours[0]!r} != redis {theirs[0]!r}"
        return theirs[1]

    def same_unordered(self, *args):
        """The replies must hold the same elements, in any order."""
        ours, theirs = self.call(*args)
        assert canonical(ours) == canonical(theirs), f"{args!r}: strata {ours!r} != redis {theirs!r}"
        return theirs

    def same_shape(self, *args, check=None):
        """Both answer with the same reply type (values may differ), and
        `check(value)` holds for both."""
        ours, theirs = self.call(*args)
        assert type(ours) is type(theirs), f"{args!r}: strata {ours!r} vs redis {theirs!r}"
        if check:
            assert check(ours), f"{args!r}: strata {ours!r}"
            assert check(theirs), f"{args!r}: redis {theirs!r}"
        return ours, theirs


@pytest.fixture(scope="session")
def strata_server():
    server = start_strata()
    yield server
    server.close()


@pytest.fixture(scope="session")
def redis_server():
    server = start_redis()
    yield server
    server.close()


@pytest.fixture
def pair(strata_server, redis_server):
    """A fresh connection to each server, both emptied first."""
    p = Pair(strata_server.raw(), redis_server.raw())
    p.call("FLUSHALL")
    yield p
    p.strata.close()
    p.redis.close()


@pytest.fixture
def r(strata_server):
    """A redis-py client of Strata, emptied first."""
    client = strata_server.client()
    client.flushall()
    yield client
    client.close()
