"""MULTI / EXEC / DISCARD / WATCH / UNWATCH compared with a real Redis:
each scenario runs against both servers (several connections each) and
every reply must be byte-identical."""
import time

import pytest

from conftest import encode, run_both, wait_blocked


def steps(strata_server, redis_server, script, resp3=False):
    """`script` is a list of (connection index, command...) rows; the raw
    replies of every row must match."""
    def scenario(c):
        if resp3:
            c[0].call("HELLO", "3")
        return [c[row[0]].call(*row[1:])[0] for row in script]
    return run_both(strata_server, redis_server, scenario)


def test_queueing_and_mixed_engines(strata_server, redis_server):
    replies = steps(strata_server, redis_server, [
        (0, "MULTI"),
        (0, "SET", "s", "1"),
        (0, "INCRBY", "s", "41"),
        (0, "HSET", "h", "f", "v", "g", "w"),
        (0, "HGETALL", "h"),
        (0, "RPUSH", "l", "a", "b", "c"),
        (0, "LPOP", "l"),
        (0, "ZADD", "z", "1", "one", "2", "two"),
        (0, "ZRANGE", "z", "0", "-1", "WITHSCORES"),
        (0, "SADD", "set", "x"),
        (0, "SISMEMBER", "set", "x"),
        (0, "XADD", "st", "1-1", "f", "v"),
        (0, "XLEN", "st"),
        (0, "TYPE", "st"),
        (0, "DEL", "s", "h", "nothing"),
        (0, "EXEC"),
        (0, "GET", "s"),
        (0, "LRANGE", "l", "0", "-1"),
    ])
    assert replies[0] == b"+OK\r\n" and replies[1] == b"+QUEUED\r\n"


def test_empty_exec_and_discard(strata_server, redis_server):
    steps(strata_server, redis_server, [
        (0, "MULTI"), (0, "EXEC"),
        (0, "MULTI"), (0, "SET", "k", "v"), (0, "DISCARD"), (0, "GET", "k"),
        (0, "EXEC"), (0, "DISCARD"),
    ])


def test_errors_outside_and_nested(strata_server, redis_server):
    steps(strata_server, redis_server, [
        (0, "EXEC"),
        (0, "DISCARD"),
        (0, "MULTI"),
        (0, "MULTI"),
        (0, "WATCH", "x"),
        (0, "SET", "x", "1"),
        (0, "EXEC"),
        (0, "GET", "x"),
        (0, "MULTI", "extra"),
    ])


def test_execabort_on_queueing_errors(strata_server, redis_server):
    steps(strata_server, redis_server, [
        (0, "MULTI"), (0, "SET", "a", "1"), (0, "NOSUCHCOMMAND", "x"), (0, "EXEC"), (0, "GET", "a"),
        (0, "MULTI"), (0, "GET"), (0, "SET", "a", "1"), (0, "EXEC"), (0, "EXEC"),
        (0, "MULTI"), (0, "CONFIG", "NOSUCHSUB"), (0, "EXEC"),
        (0, "MULTI"), (0, "SHUTDOWN", "NOSAVE"), (0, "EXEC"),
        (0, "MULTI"), (0, "WATCH"), (0, "EXEC"),
        (0, "MULTI"), (0, "SET", "a", "1"), (0, "EXEC", "extra"), (0, "EXEC"), (0, "GET", "a"),
        (0, "MULTI"), (0, "DISCARD", "extra"), (0, "EXEC"),
    ])


def test_runtime_errors_do_not_stop_the_others(strata_server, redis_server):
    steps(strata_server, redis_server, [
        (0, "SET", "s", "text"),
        (0, "RPUSH", "l", "a"),
        (0, "MULTI"),
        (0, "LPUSH", "s", "x"),
        (0, "INCR", "s"),
        (0, "SET", "k", "1", "EX", "notanumber"),
        (0, "HGET", "l", "f"),
        (0, "RPUSH", "l", "b"),
        (0, "ZADD", "l", "1", "m"),
        (0, "EXEC"),
        (0, "LRANGE", "l", "0", "-1"),
    ])


def test_keyspace_wide_commands_inside_multi(strata_server, redis_server):
    steps(strata_server, redis_server, [
        (0, "RPUSH", "l", "a"),
        (0, "MULTI"),
        (0, "DBSIZE"),
        (0, "KEYS", "*"),
        (0, "SCAN", "0"),
        (0, "RANDOMKEY"),
        (0, "EXISTS", "l"),
        (0, "SWAPDB", "0", "1"),
        (0, "DBSIZE"),
        (0, "SELECT", "1"),
        (0, "LRANGE", "l", "0", "-1"),
        (0, "FLUSHDB"),
        (0, "DBSIZE"),
        (0, "SELECT", "0"),
        (0, "SET", "s", "v"),
        (0, "FLUSHALL"),
        (0, "EXEC"),
        (0, "DBSIZE"),
    ])


def test_select_inside_multi(strata_server, redis_server):
    steps(strata_server, redis_server, [
        (0, "MULTI"),
        (0, "SELECT", "1"),
        (0, "SET", "k", "in1"),
        (0, "RPUSH", "l", "in1"),
        (0, "SELECT", "0"),
        (0, "GET", "k"),
        (0, "SELECT", "2"),
        (0, "EXEC"),
        (0, "GET", "k"),
        (0, "SELECT", "1"),
        (0, "GET", "k"),
        (0, "LRANGE", "l", "0", "-1"),
        (0, "SELECT", "0"),
    ])


def test_resp3_exec(strata_server, redis_server):
    steps(strata_server, redis_server, [
        (0, "MULTI"),
        (0, "GET", "missing"),
        (0, "HSET", "h", "f", "v"),
        (0, "HGETALL", "h"),
        (0, "BLPOP", "nothing", "1"),
        (0, "EXEC"),
        (0, "WATCH", "h"),
        (1, "HSET", "h", "f", "w"),
        (0, "MULTI"),
        (0, "PING"),
        (0, "EXEC"),
    ], resp3=True)


def test_blocking_commands_inside_multi_return_at_once(strata_server, redis_server):
    def scenario(c):
        started = time.time()
        replies = [c[0].call(*args)[0] for args in [
            ("MULTI",),
            ("BLPOP", "empty", "0"),
            ("BRPOP", "empty", "5"),
            ("BLMOVE", "empty", "dst", "LEFT", "RIGHT", "0"),
            ("BZPOPMIN", "emptyz", "0"),
            ("BLMPOP", "0", "1", "empty", "LEFT"),
            ("BRPOPLPUSH", "empty", "dst", "0"),
            ("RPUSH", "later", "v"),
            ("BLPOP", "later", "0"),
            ("EXEC",),
        ]]
        assert time.time() - started < 3
        return replies
    run_both(strata_server, redis_server, scenario)


def test_push_inside_exec_wakes_other_client(strata_server, redis_server):
    def scenario(c):
        c[1].send_raw(encode(["BLPOP", "q", "0"]))
        wait_blocked(c[0], 1)
        replies = [c[0].call(*args)[0] for args in [
            ("MULTI",), ("RPUSH", "q", "a", "b"), ("LPUSH", "q", "first"), ("LLEN", "q"), ("EXEC",),
        ]]
        replies.append(c[1].read_reply()[0])
        replies.append(c[0].call("LRANGE", "q", "0", "-1")[0])
        return replies
    run_both(strata_server, redis_server, scenario)


# WATCH: each row of WRITES changes the watched key `k` from another client;
# EXEC must fail on both servers.
SETUP = {
    "string": [("SET", "k", "v")],
    "hash": [("HSET", "k", "f", "v")],
    "list": [("RPUSH", "k", "a")],
    "set": [("SADD", "k", "a")],
    "zset": [("ZADD", "k", "1", "a")],
    "stream": [("XADD", "k", "1-1", "f", "v")],
}
WRITES = [
    ("string", ("SET", "k", "w")),
    ("string", ("APPEND", "k", "w")),
    ("string", ("EXPIRE", "k", "100")),
    ("hash", ("HSET", "k", "f", "v")),
    ("hash", ("HSET", "k", "g", "v")),
    ("hash", ("HINCRBY", "k", "n", "1")),
    ("hash", ("HDEL", "k", "f")),
    ("list", ("RPUSH", "k", "b")),
    ("list", ("LPOP", "k")),
    ("list", ("LSET", "k", "0", "z")),
    ("set", ("SADD", "k", "b")),
    ("set", ("SREM", "k", "a")),
    ("zset", ("ZADD", "k", "2", "a")),
    ("zset", ("ZINCRBY", "k", "1", "a")),
    ("stream", ("XADD", "k", "2-1", "f", "v")),
    ("stream", ("XTRIM", "k", "MAXLEN", "0")),
    ("list", ("DEL", "k")),
    ("hash", ("UNLINK", "k")),
    ("zset", ("RENAME", "k", "other")),
    ("string", ("RENAME", "src", "k")),
    ("set", ("MOVE", "k", "3")),
    ("list", ("FLUSHALL",)),
    ("hash", ("FLUSHDB",)),
    ("string", ("SWAPDB", "0", "1")),
    ("list", ("PERSIST", "k")),
]


@pytest.mark.parametrize("kind,write", WRITES, ids=[f"{k}-{w[0]}" for k, w in WRITES])
def test_watch_invalidated_by_other_client(strata_server, redis_server, kind, write):
    def scenario(c):
        for setup in SETUP[kind]:
            c[0].call(*setup)
        c[0].call("SET", "src", "s")
        if write[0] == "PERSIST":
            c[0].call("EXPIRE", "k", "100")
        replies = [c[0].call("WATCH", "k")[0], c[1].call(*write)[0]]
        replies += [c[0].call("MULTI")[0], c[0].call("SET", "done", "1")[0], c[0].call("EXEC")[0]]
        replies.append(c[0].call("EXISTS", "done")[0])
        c[0].call("FLUSHALL")
        return replies
    replies = run_both(strata_server, redis_server, scenario)
    assert replies[4] == b"*-1\r\n"


# Writes that change nothing: EXEC must succeed on both servers.
NO_OPS = [
    ("string", ("SET", "k", "x", "NX")),
    ("string", ("DEL", "missing")),
    ("string", ("PERSIST", "k")),
    ("string", ("EXPIRE", "k", "100", "XX")),
    ("hash", ("HDEL", "k", "nofield")),
    ("list", ("LREM", "k", "0", "nothing")),
    ("set", ("SREM", "k", "nothing")),
    ("set", ("SADD", "k", "a")),
    ("zset", ("ZADD", "k", "1", "a")),
    ("zset", ("ZREM", "k", "nothing")),
    ("list", ("SET", "other", "v")),
    ("list", ("FLUSHALL",)),
]


@pytest.mark.parametrize("kind,write", NO_OPS, ids=[f"{k}-{' '.join(w)}" for k, w in NO_OPS])
def test_watch_not_invalidated_by_no_op(strata_server, redis_server, kind, write):
    def scenario(c):
        if write != ("FLUSHALL",):
            for setup in SETUP[kind]:
                c[0].call(*setup)
        replies = [c[0].call("WATCH", "k")[0], c[1].call(*write)[0]]
        replies += [c[0].call("MULTI")[0], c[0].call("PING")[0], c[0].call("EXEC")[0]]
        return replies
    replies = run_both(strata_server, redis_server, scenario)
    assert replies[4] == b"*1\r\n+PONG\r\n"


def test_watch_own_write_and_unwatch(strata_server, redis_server):
    steps(strata_server, redis_server, [
        (0, "WATCH", "k"), (0, "SET", "k", "1"), (0, "MULTI"), (0, "PING"), (0, "EXEC"),
        # EXEC forgot the watch: a later write does not matter.
        (1, "SET", "k", "2"), (0, "MULTI"), (0, "PING"), (0, "EXEC"),
        (0, "WATCH", "k"), (1, "SET", "k", "3"), (0, "UNWATCH"), (0, "MULTI"), (0, "PING"), (0, "EXEC"),
        (0, "WATCH", "k"), (1, "SET", "k", "4"), (0, "MULTI"), (0, "DISCARD"), (0, "MULTI"), (0, "PING"), (0, "EXEC"),
        # UNWATCH is queued inside MULTI: the watch still counts.
        (0, "WATCH", "k"), (0, "MULTI"), (0, "UNWATCH"), (1, "SET", "k", "5"), (0, "EXEC"),
        # A transaction's own writes never fail it.
        (0, "WATCH", "k"), (0, "MULTI"), (0, "SET", "k", "6"), (0, "EXEC"),
        (0, "WATCH", "a", "b", "k"), (1, "SADD", "b", "x"), (0, "MULTI"), (0, "PING"), (0, "EXEC"),
    ])


def test_watch_per_database(strata_server, redis_server):
    steps(strata_server, redis_server, [
        (0, "SELECT", "2"), (0, "WATCH", "k"),
        (1, "SET", "k", "in db 0"),
        (0, "MULTI"), (0, "PING"), (0, "EXEC"),
        (0, "WATCH", "k"),
        (1, "SELECT", "2"), (1, "RPUSH", "k", "in db 2"), (1, "SELECT", "0"),
        (0, "MULTI"), (0, "PING"), (0, "EXEC"),
        (0, "SELECT", "0"),
    ])


def test_watch_and_flush_or_swap_of_missing_keys(strata_server, redis_server):
    steps(strata_server, redis_server, [
        (0, "SET", "other", "v"),
        (0, "WATCH", "k"), (1, "FLUSHALL"), (0, "MULTI"), (0, "PING"), (0, "EXEC"),
        (0, "WATCH", "k"), (1, "SWAPDB", "0", "1"), (0, "MULTI"), (0, "PING"), (0, "EXEC"),
        (1, "SELECT", "1"), (1, "HSET", "k", "f", "v"), (1, "SELECT", "0"),
        (0, "WATCH", "k"), (1, "SWAPDB", "0", "1"), (0, "MULTI"), (0, "PING"), (0, "EXEC"),
        (0, "FLUSHALL"),
    ])


def test_watch_invalidated_by_expiry(strata_server, redis_server):
    def scenario(c):
        replies = []
        for kind in ("string", "list", "hash"):
            c[0].call("FLUSHALL")
            for setup in SETUP[kind]:
                c[0].call(*setup)
            c[0].call("PEXPIRE", "k", "100")
            replies.append(c[0].call("WATCH", "k")[0])
            time.sleep(0.2)
            replies += [c[0].call("MULTI")[0], c[0].call("PING")[0], c[0].call("EXEC")[0]]
        # Already expired when watched: no change afterwards.
        c[0].call("SET", "gone", "v", "PX", "1")
        time.sleep(0.05)
        replies += [c[0].call("WATCH", "gone")[0], c[0].call("MULTI")[0], c[0].call("EXEC")[0]]
        return replies
    replies = run_both(strata_server, redis_server, scenario)
    assert replies[3] == b"*-1\r\n"


def test_reset_discards_multi_and_watches(strata_server, redis_server):
    steps(strata_server, redis_server, [
        (0, "WATCH", "k"), (0, "MULTI"), (0, "SET", "k", "1"), (0, "RESET"),
        (0, "EXEC"), (0, "GET", "k"),
        (1, "SET", "k", "2"), (0, "MULTI"), (0, "PING"), (0, "EXEC"),
    ])


def test_client_list_shows_multi(strata_server, redis_server):
    def scenario(c):
        def fields(line):
            return dict(kv.split("=", 1) for kv in line.strip().split(" "))
        my_id = str(c[0].call("CLIENT", "ID")[1])

        def seen_by_other():
            lines = c[1].call("CLIENT", "LIST")[1].decode().splitlines()
            mine = [fields(l) for l in lines if fields(l)["id"] == my_id][0]
            return mine["flags"], mine["multi"]
        out = [seen_by_other()]
        c[0].call("WATCH", "k")
        c[0].call("MULTI")
        out.append(seen_by_other())
        c[0].call("SET", "a", "1")
        c[0].call("SET", "b", "1")
        c[1].call("SET", "k", "v")
        out.append(seen_by_other())
        c[0].call("EXEC")
        out.append(seen_by_other())
        return out
    replies = run_both(strata_server, redis_server, scenario)
    assert replies[2] == ("xd", "2")


def test_disconnect_drops_transaction(strata_server, redis_server):
    def scenario(c):
        c[2].call("WATCH", "k")
        c[2].call("MULTI")
        c[2].call("SET", "k", "never")
        c[2].close()
        time.sleep(0.1)
        return [c[0].call("SET", "k", "v")[0], c[0].call("GET", "k")[0]]
    run_both(strata_server, redis_server, scenario)
