"""A client's output, compared with a real Redis: the
client-output-buffer-limit setting, a client that does not read closed at
its limit, and replies of random picks with large counts (their range
checks, and their shape when they are produced as the client reads)."""
import socket
import time

from conftest import RawConn, encode

DEFAULT_LIMITS = "normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60"


def test_output_buffer_limit_setting(pair):
    try:
        pair.same("CONFIG", "GET", "client-output-buffer-limit")
        for value in [
            "normal 1mb 2MB 3",
            "replica 1 1 1",
            "pubsub 5mb 1gb 0 normal 0 0 0",
            "normal 1mb",
            "master 1 1 1",
            "foo 1 1 1",
            "normal x 1 1",
            "normal -1 1 1",
            "normal 1 1 -1",
            "pubsub 7 7 7 master 1 1 1",
            "",
        ]:
            pair.same("CONFIG", "SET", "client-output-buffer-limit", value)
            pair.same("CONFIG", "GET", "client-output-buffer-limit")
    finally:
        pair.call("CONFIG", "SET", "client-output-buffer-limit", DEFAULT_LIMITS)


def client_ids(admin):
    text = admin.call("CLIENT", "LIST")[1].decode()
    return {int(line.split(" ")[0][3:]) for line in text.splitlines()}


def test_a_client_over_its_output_limit_is_closed(strata_server, redis_server):
    for server in (strata_server, redis_server):
        admin = RawConn(server.port)
        try:
            admin.call("CONFIG", "SET", "client-output-buffer-limit", "normal 1mb 0 0")
            admin.call("SET", "big", "v" * 100_000)
            stuck = socket.create_connection(("127.0.0.1", server.port), timeout=30)
            stuck.sendall(b"CLIENT ID\r\n")
            stuck_id = int(stuck.recv(64)[1:-2])
            stuck.sendall(encode(["GET", "big"]) * 3000)
            deadline = time.time() + 30
            while stuck_id in client_ids(admin):
                assert time.time() < deadline, f"{server}: the client was not closed"
                time.sleep(0.05)
            try:
                while stuck.recv(1 << 20):
                    pass
            except OSError:
                pass
            stuck.close()
        finally:
            admin.call("CONFIG", "SET", "client-output-buffer-limit", DEFAULT_LIMITS)
            admin.call("DEL", "big")
            admin.close()


def test_random_pick_count_ranges(pair):
    pair.call("ZADD", "z", 1, "a", 2, "b")
    pair.call("HSET", "h", "a", 1, "b", 2)
    pair.call("SADD", "s", "a", "b")
    # Never -4611686018427387903 or beyond with WITHSCORES: Redis 7.0
    # crashes building that reply.
    for count in [
        "4611686018427387904",
        "-4611686018427387904",
        "9223372036854775807",
        "-9223372036854775807",
        "-9223372036854775808",
        "x",
    ]:
        pair.same("ZRANDMEMBER", "z", count, "WITHSCORES")
        pair.same("ZRANDMEMBER", "missing", count, "WITHSCORES")
        pair.same("HRANDFIELD", "h", count, "WITHVALUES")
        pair.same("HRANDFIELD", "missing", count, "WITHVALUES")
    pair.same_unordered("ZRANDMEMBER", "z", "4611686018427387903", "WITHSCORES")
    pair.same_unordered("HRANDFIELD", "h", "4611686018427387903", "WITHVALUES")
    pair.same("SRANDMEMBER", "s", "-9223372036854775808")
    pair.same("ZRANDMEMBER", "z", "-9223372036854775808")
    pair.same("HRANDFIELD", "h", "-9223372036854775808")
    # The count is read first, then the syntax.
    pair.same("ZRANDMEMBER", "z", "x", "foo", "bar")
    pair.same("ZRANDMEMBER", "z", "1", "foo")
    pair.same("ZRANDMEMBER", "z", "1", "WITHSCORES", "x")
    pair.same("HRANDFIELD", "h", "x", "foo")
    pair.same("HRANDFIELD", "h", "1", "foo")


def test_many_random_picks_have_redis_shapes(pair):
    members = ["m%d" % i for i in range(10)]
    for i, member in enumerate(members):
        pair.call("ZADD", "z", i, member)
        pair.call("HSET", "h", member, "v" + member)
        pair.call("SADD", "s", member)
    # More picks than members: produced as the client reads them.
    commands = [
        ("SRANDMEMBER", "s", "-3000"),
        ("ZRANDMEMBER", "z", "-3000"),
        ("ZRANDMEMBER", "z", "-3000", "WITHSCORES"),
        ("HRANDFIELD", "h", "-3000"),
        ("HRANDFIELD", "h", "-3000", "WITHVALUES"),
    ]
    for protocol in ("2", "3"):
        pair.call("HELLO", protocol)
        for command in commands:
            ours, theirs = pair.strata.call(*command), pair.redis.call(*command)
            # The same header, and items of the same form.
            assert ours[0].split(b"\r\n")[0] == theirs[0].split(b"\r\n")[0], command
            assert len(ours[1]) == len(theirs[1])
            shape = lambda value: type(value).__name__ + (
                "[" + ",".join(shape(v) for v in value) + "]" if isinstance(value, (list, tuple)) else ""
            )
            assert {shape(v) for v in ours[1]} == {shape(v) for v in theirs[1]}, command
