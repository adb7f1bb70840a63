"""Connection commands and the wire protocol, compared with a real Redis."""
import socket

import pytest

from conftest import Pair, RawConn, encode, start_redis, start_strata


def test_ping_echo(pair):
    pair.same("PING")
    pair.same("PING", "hello world")
    pair.same("PING", "a", "b")
    pair.same("ECHO", "x\x00\xff\r\n")
    pair.same("ECHO", "")
    pair.same("ECHO")
    pair.same("ECHO", "a", "b")


def test_unknown_commands_and_arity(pair):
    pair.same("NOSUCH")
    pair.same("NOSUCH", "a", "b c", "")
    pair.same("nosuch", "x" * 300)
    pair.same("nosuch", *["arg%d" % i for i in range(100)])
    pair.same("GET")
    pair.same("GET", "a", "b")
    pair.same("SET", "a")
    pair.same("set", "a", "b", "c")


def test_select(pair):
    pair.same("SELECT", "1")
    pair.same("SET", "k", "in-db-1")
    pair.same("SELECT", "0")
    pair.same("GET", "k")
    pair.same("SELECT", "15")
    pair.same("GET", "k")
    pair.same("SELECT", "16")
    pair.same("SELECT", "-1")
    pair.same("SELECT", "abc")
    pair.same("SELECT", "1.5")
    pair.same("SELECT", "0")


def test_hello_switches_protocol(pair):
    ours, theirs = pair.call("HELLO", "3")
    mask = lambda reply: [("<id>" if i > 0 and reply[i - 1] == b"id" else v) for i, v in enumerate(reply)]
    assert mask(ours) == mask(theirs)
    pair.same("PING")
    pair.same("GET", "missing")
    pair.same("HELLO", "4")
    pair.same("HELLO", "x")
    pair.same("HELLO", "3", "FOO")
    pair.same("HELLO", "3", "SETNAME", "bad name")
    ours, theirs = pair.call("HELLO", "2", "SETNAME", "fine")
    assert mask(ours) == mask(theirs)
    pair.same("GET", "missing")


def assert_same_error_then_close(request, *servers):
    """Each server answers `request` with the same reply, then closes."""
    replies = []
    for server in servers:
        conn = RawConn(server.port)
        conn.send_raw(request)
        raw, _ = conn.read_reply()
        with pytest.raises((ConnectionError, OSError)):
            conn.read_reply()
        replies.append(raw)
        conn.close()
    assert replies[0] == replies[1], f"{request!r}: {replies}"


def test_protocol_errors_close_the_connection(strata_server, redis_server):
    cases = [
        b"*1\r\n+PING\r\n",
        b"*abc\r\n",
        b"*1\r\n$-5\r\n",
        b"*1\r\n$abc\r\n",
        b"*1\r\n$999999999999\r\n",
        b"*3000000000\r\n",
        b'SET "a b\r\n',
        b"SET 'a'b\r\n",
    ]
    for case in cases:
        assert_same_error_then_close(case, strata_server, redis_server)


def test_inline_commands(strata_server, redis_server):
    for server in (strata_server, redis_server):
        conn = RawConn(server.port)
        conn.send_raw(b'SET inline "a\\tb"\r\nGET inline\r\n\r\nECHO \'x y\'\n')
        assert conn.read_reply()[0] == b"+OK\r\n"
        assert conn.read_reply()[0] == b"$3\r\na\tb\r\n"
        assert conn.read_reply()[0] == b"$3\r\nx y\r\n"
        conn.close()


def test_quit_and_reset(pair):
    pair.same("SELECT", "3")
    pair.same("RESET")
    pair.same("SET", "k", "db0")
    pair.same("SELECT", "0")
    pair.same("GET", "k")
    pair.same("QUIT")


@pytest.fixture(scope="module")
def auth_pair():
    strata = start_strata(["--requirepass", "s3cret"])
    real = start_redis(["--requirepass", "s3cret"])
    yield strata, real
    strata.close()
    real.close()


def test_auth(auth_pair):
    strata, real = auth_pair
    pair = Pair(RawConn(strata.port), RawConn(real.port))
    pair.same("GET", "k")
    pair.same("PING")
    pair.same("NOSUCH")
    pair.same("HELLO", "3")
    pair.same("AUTH", "wrong")
    pair.same("AUTH", "default", "wrong")
    pair.same("AUTH", "bob", "s3cret")
    pair.same("AUTH", "s3cret")
    pair.same("GET", "k")
    pair.same("RESET")
    pair.same("GET", "k")
    pair.same("AUTH", "default", "s3cret")
    pair.same("AUTH", "a", "b", "c")


def test_auth_without_password(pair):
    pair.same("AUTH", "x")
    pair.same("AUTH", "default", "x")
    pair.same("AUTH", "default", "")


def test_hello_auth(auth_pair):
    strata, real = auth_pair
    pair = Pair(RawConn(strata.port), RawConn(real.port))
    pair.same("HELLO", "3", "AUTH", "default", "wrong")
    ours, theirs = pair.call("HELLO", "2", "AUTH", "default", "s3cret")
    assert ours[:6] == theirs[:6]
    pair.same("GET", "k")


def test_unauthenticated_clients_may_send_small_requests_only(auth_pair):
    """While a password is required, more than 10 arguments or an argument
    over 16384 bytes is a protocol error and a close, as in Redis."""
    strata, real = auth_pair
    refused = [
        b"*11\r\n",
        b"*1000000\r\n",
        b"*1\r\n$16385\r\n",
        b"*2\r\n$4\r\nECHO\r\n$100000000\r\n",
        # The limits are Redis's: a bad count is still just invalid.
        b"*3000000000\r\n",
        b"*1\r\n$-1\r\n",
    ]
    for case in refused:
        assert_same_error_then_close(case, strata, real)
    # At the limits, the command is read and refused for want of AUTH.
    pair = Pair(RawConn(strata.port), RawConn(real.port))
    pair.same("DEL", *["k%d" % i for i in range(9)])
    pair.same("ECHO", "x" * 16384)
    # AUTH lifts the limits, from the next request of the same pipeline on.
    replies = []
    for conn in (pair.strata, pair.redis):
        conn.send_raw(encode(["AUTH", "s3cret"]) + encode(["ECHO", "y" * 20000]) + encode(["DEL", *range(20)]))
        replies.append([conn.read_reply()[0] for _ in range(3)])
    assert replies[0] == replies[1]
    assert replies[1][0] == b"+OK\r\n" and replies[1][2] == b":0\r\n"


def test_query_buffer_limit_closes_a_client_mid_argument(strata_server, redis_server):
    """Over `client-query-buffer-limit`, the client is closed even while a
    big argument is still arriving, as Redis does."""
    for server in (strata_server, redis_server):
        admin = RawConn(server.port)
        assert admin.call("CONFIG", "SET", "client-query-buffer-limit", "1mb")[1] == "OK"
        try:
            conn = RawConn(server.port)
            conn.sock.settimeout(3)
            conn.send_raw(b"*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n$3000000\r\n")
            try:
                for _ in range(30):
                    conn.send_raw(b"x" * 100_000)
                outcome = conn.read_reply()
            except socket.timeout:
                outcome = "no answer, not closed"
            except (ConnectionError, OSError):
                outcome = "closed"
            assert outcome == "closed", (server, outcome)
            conn.close()
            # Under the limit, the same argument in pieces is taken.
            assert admin.call("CONFIG", "SET", "client-query-buffer-limit", "4mb")[1] == "OK"
            conn = RawConn(server.port)
            conn.send_raw(b"*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n$3000000\r\n")
            for _ in range(30):
                conn.send_raw(b"x" * 100_000)
            conn.send_raw(b"\r\n")
            assert conn.read_reply()[0] == b"+OK\r\n", server
            conn.close()
        finally:
            admin.call("CONFIG", "SET", "client-query-buffer-limit", "1gb")
            admin.call("DEL", "big")
            admin.close()
