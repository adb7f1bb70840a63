"""Stream commands, differential against redis-server 7.0.

Explicit IDs keep replies byte-identical; `*` IDs depend on each server's
clock, so those are checked for shape and ordering.
"""
import pytest

WRONGTYPE = "WRONGTYPE Operation against a key holding the wrong kind of value"
BINARY = [b"", b"\x00", b"\xff\xfe", b"a\r\nb", "ключ".encode(), b" "]


def fill(pair, key, n, ms0=1, fields=("f", "v")):
    for i in range(n):
        pair.same("XADD", key, f"{ms0 + i}-1", *fields)


def test_xadd_explicit_ids_and_xlen(pair):
    pair.same("XADD", "s", "1-1", "a", "1")
    pair.same("XADD", "s", "1-2", "a", "2", "b", "3")
    pair.same("XADD", "s", "1-2", "a", "2")
    pair.same("XADD", "s", "1-1", "a", "2")
    pair.same("XADD", "s", "0-5", "a", "2")
    pair.same("XADD", "s", "1", "a", "2")
    pair.same("XADD", "s", "2", "a", "2")
    pair.same("XADD", "s", "2-*", "a", "2")
    pair.same("XADD", "s", "5-*", "a", "2")
    pair.same("XADD", "s", "4-*", "a", "2")
    pair.same("XLEN", "s")
    pair.same("XLEN", "missing")
    pair.same("XRANGE", "s", "-", "+")
    pair.same("TYPE", "s")
    pair.same("OBJECT", "ENCODING", "s")


def test_xadd_id_errors(pair):
    pair.same("XADD", "s", "0-0", "a", "1")
    pair.same("EXISTS", "s")
    pair.same("XADD", "s", "0-*", "a", "1")
    pair.same("XADD", "s", "0", "a", "1")
    for bad in ["-", "+", "abc", "1-x", "-1", "1-", "1--1", "18446744073709551616-0", "1-18446744073709551616", "*-1", "1-**"]:
        pair.same("XADD", "s2", bad, "a", "1")
    pair.same("XADD", "s", "18446744073709551615-18446744073709551615", "a", "1")
    pair.same("XADD", "s", "*", "a", "1")
    pair.same("XADD", "s", "18446744073709551615-*", "a", "1")
    pair.same("EXISTS", "s2")


def test_xadd_arity_and_option_errors(pair):
    pair.same("XADD", "s", "1-1", "a")
    pair.same("XADD", "s", "1-1", "a", "b", "c")
    pair.same("XADD", "s", "*")
    pair.same("XADD", "s", "NOMKSTREAM", "1-1", "a")
    pair.same("XADD", "s", "MAXLEN", "x", "1-1", "a", "b")
    pair.same("XADD", "s", "MAXLEN", "-1", "1-1", "a", "b")
    pair.same("XADD", "s", "MAXLEN", "1", "MINID", "1", "1-1", "a", "b")
    pair.same("XADD", "s", "MINID", "bad", "1-1", "a", "b")
    pair.same("XADD", "s", "MINID", "-", "1-1", "a", "b")
    pair.same("XADD", "s", "MAXLEN", "5", "LIMIT", "10", "1-1", "a", "b")
    pair.same("XADD", "s", "LIMIT", "10", "1-1", "a", "b")
    pair.same("XADD", "s", "LIMIT", "0", "1-1", "a", "b")
    pair.same("XADD", "s", "MAXLEN", "~", "5", "LIMIT", "-1", "1-1", "a", "b")
    pair.same("XADD", "s", "MAXLEN", "~", "5", "LIMIT", "x", "1-1", "a", "b")
    pair.same("XADD", "s")
    pair.same("XADD", "s", "1-1", "a", "b")
    pair.same("XRANGE", "s", "-", "+")


def test_xadd_nomkstream(pair):
    pair.same("XADD", "s", "NOMKSTREAM", "1-1", "a", "b")
    pair.same("EXISTS", "s")
    pair.same("XADD", "s", "1-1", "a", "b")
    pair.same("XADD", "s", "nomkstream", "2-1", "a", "b")
    pair.same("XLEN", "s")


def test_xadd_auto_ids_are_increasing(pair):
    ids = []
    for i in range(20):
        ours, theirs = pair.call("XADD", "s", "*", "n", str(i))
        for reply in (ours, theirs):
            ms, seq = reply.split(b"-")
            assert int(ms) > 1_600_000_000_000
        ids.append(tuple(map(int, ours.split(b"-"))))
    assert ids == sorted(ids) and len(set(ids)) == 20
    pair.same("XLEN", "s")
    # An explicit ID far in the future: `*` then continues after it.
    pair.same("XADD", "f", "99999999999999-5", "a", "b")
    pair.same("XADD", "f", "*", "a", "b")
    pair.same("XADD", "f", "99999999999999-*", "a", "b")


def test_xadd_trimming_exact(pair):
    fill(pair, "s", 10)
    pair.same("XADD", "s", "MAXLEN", "5", "20-1", "a", "b")
    pair.same("XRANGE", "s", "-", "+")
    pair.same("XADD", "s", "MAXLEN", "=", "3", "21-1", "a", "b")
    pair.same("XRANGE", "s", "-", "+")
    pair.same("XADD", "s", "MINID", "21", "22-1", "a", "b")
    pair.same("XRANGE", "s", "-", "+")
    pair.same("XADD", "s", "MINID", "=", "22-1", "23-1", "a", "b")
    pair.same("XRANGE", "s", "-", "+")
    pair.same("XADD", "s", "MAXLEN", "0", "24-1", "a", "b")
    pair.same("XLEN", "s")
    pair.same("EXISTS", "s")
    pair.same("XADD", "s", "maxlen", "1", "minid", "1", "25-1", "a", "b")


def test_approximate_trimming_removes_whole_nodes(pair):
    for i in range(1, 351):
        pair.same("XADD", "s", f"{i}-0", "f", "v")
    pair.same("XADD", "s", "MAXLEN", "~", "300", "351-0", "f", "v")
    pair.same("XLEN", "s")
    pair.same("XADD", "s", "MAXLEN", "~", "10", "LIMIT", "100", "352-0", "f", "v")
    pair.same("XLEN", "s")
    pair.same("XTRIM", "s", "MAXLEN", "~", "10")
    pair.same("XLEN", "s")
    pair.same("XRANGE", "s", "-", "+", "COUNT", "2")
    pair.same("XTRIM", "s", "MAXLEN", "~", "0")
    pair.same("XLEN", "s")
    for i in range(400, 650):
        pair.same("XADD", "s", f"{i}-0", "f", "v")
    pair.same("XTRIM", "s", "MINID", "~", "560")
    pair.same("XRANGE", "s", "-", "+", "COUNT", "1")
    pair.same("XTRIM", "s", "MINID", "~", "600", "LIMIT", "0")
    pair.same("XLEN", "s")


def test_xtrim(pair):
    pair.same("XTRIM", "missing", "MAXLEN", "0")
    pair.same("XTRIM", "missing", "BOGUS")
    fill(pair, "s", 10)
    pair.same("XTRIM", "s", "MAXLEN", "8")
    pair.same("XTRIM", "s", "MAXLEN", "=", "6")
    pair.same("XTRIM", "s", "MINID", "7")
    pair.same("XTRIM", "s", "MINID", "7-2")
    pair.same("XTRIM", "s", "MAXLEN", "100")
    pair.same("XRANGE", "s", "-", "+")
    for bad in [
        ("BOGUS",),
        ("MAXLEN",),
        ("MAXLEN", "x"),
        ("MAXLEN", "-1"),
        ("MAXLEN", "1", "LIMIT", "5"),
        ("MAXLEN", "1", "MINID", "1"),
        ("LIMIT", "5"),
        ("MAXLEN", "1", "extra"),
        ("MINID", "+"),
    ]:
        pair.same("XTRIM", "s", *bad)
    pair.same("XTRIM", "s", "MAXLEN", "0")
    pair.same("XLEN", "s")
    pair.same("TYPE", "s")
    pair.same("XTRIM", "s")


def test_xrange_and_xrevrange(pair):
    for ms in (1, 2, 3):
        for seq in (0, 1, 2):
            pair.same("XADD", "s", f"{ms}-{seq}", "k", f"{ms}.{seq}")
    for cmd in ("XRANGE", "XREVRANGE"):
        ranges = [("-", "+"), ("2", "2"), ("2-1", "3"), ("(2-1", "+"), ("-", "(3-0"), ("(1-2", "(3-0"),
                  ("3", "1"), ("0", "0"), ("(3-2", "+"), ("1-1", "1-1"), ("(1-1", "(1-2")]
        for a, b in ranges:
            if cmd == "XREVRANGE":
                a, b = b, a
            pair.same(cmd, "s", a, b)
            pair.same(cmd, "s", a, b, "COUNT", "2")
        pair.same(cmd, "s", "-", "+", "COUNT", "0")
        pair.same(cmd, "s", "-", "+", "COUNT", "-3")
        pair.same(cmd, "missing", "-", "+", "COUNT", "0")
        pair.same(cmd, "s", "-", "+", "COUNT", "1", "COUNT", "3")
        pair.same(cmd, "s", "-", "+", "COUNT")
        pair.same(cmd, "s", "-", "+", "COUNT", "x")
        pair.same(cmd, "s", "-", "+", "LIMIT", "1")
        pair.same(cmd, "s", "x", "+")
        pair.same(cmd, "s", "-", "y")
        pair.same(cmd, "s", "(-", "+")
        pair.same(cmd, "s", "-", "(+")
        pair.same(cmd, "s", "(", "+")
        pair.same(cmd, "missing", "-", "+")
        pair.same(cmd, "s", "-")
    pair.same("XRANGE", "s", "(18446744073709551615-18446744073709551615", "+")
    pair.same("XRANGE", "s", "-", "(0-0")
    pair.same("XREVRANGE", "s", "(0-0", "-")


def test_xdel(pair):
    fill(pair, "s", 5)
    pair.same("XDEL", "s", "2-1", "4-1", "9-9", "2-1")
    pair.same("XDEL", "s", "2-1")
    pair.same("XDEL", "s", "1-1", "bad")
    pair.same("XDEL", "missing", "bad")
    pair.same("XDEL", "s", "3")
    pair.same("XDEL", "s", "3-1", "5-1", "1-1")
    pair.same("XLEN", "s")
    pair.same("EXISTS", "s")
    pair.same("TYPE", "s")
    pair.same("XRANGE", "s", "-", "+")
    # The last ID survives an empty stream.
    pair.same("XADD", "s", "5-1", "a", "b")
    pair.same("XADD", "s", "5-2", "a", "b")
    pair.same("XDEL", "s")


def test_xsetid(pair):
    pair.same("XSETID", "missing", "1-1")
    fill(pair, "s", 3)
    pair.same("XSETID", "s", "2-1")
    pair.same("XSETID", "s", "3-1")
    pair.same("XSETID", "s", "10-0")
    pair.same("XADD", "s", "9-0", "a", "b")
    pair.same("XADD", "s", "10-*", "a", "b")
    pair.same("XSETID", "s", "20-0", "ENTRIESADDED", "1")
    pair.same("XSETID", "s", "20-0", "ENTRIESADDED", "-1")
    pair.same("XSETID", "s", "20-0", "ENTRIESADDED", "x")
    pair.same("XSETID", "s", "20-0", "ENTRIESADDED", "100", "MAXDELETEDID", "2-1")
    pair.same("XSETID", "s", "20-0", "MAXDELETEDID", "30-0")
    pair.same("XSETID", "s", "20-0", "MAXDELETEDID", "bad")
    pair.same("XSETID", "s", "20-0", "BOGUS", "1")
    pair.same("XSETID", "s", "20-0", "ENTRIESADDED")
    pair.same("XSETID", "s", "bad")
    pair.same("XSETID", "s", "+")
    pair.same("XTRIM", "s", "MAXLEN", "0")
    pair.same("XSETID", "s", "1-5")
    pair.same("XSETID", "s", "25-0", "MAXDELETEDID", "25-0")
    pair.same("XSETID", "s", "24-0")
    pair.same("XADD", "s", "25-0", "a", "b")
    pair.same("XADD", "s", "25-*", "a", "b")
    pair.same("XSETID", "s")


def test_xread(pair):
    fill(pair, "a", 3)
    fill(pair, "b", 2, ms0=10)
    pair.same("XREAD", "STREAMS", "a", "0")
    pair.same("XREAD", "STREAMS", "a", "b", "0", "0")
    pair.same("XREAD", "COUNT", "1", "STREAMS", "a", "b", "1-1", "0")
    pair.same("XREAD", "COUNT", "0", "STREAMS", "a", "b", "1-1", "0")
    pair.same("XREAD", "COUNT", "-1", "STREAMS", "a", "b", "1-1", "0")
    pair.same("XREAD", "STREAMS", "a", "b", "3-1", "0")
    pair.same("XREAD", "STREAMS", "a", "b", "$", "$")
    pair.same("XREAD", "STREAMS", "a", "missing", "2", "0")
    pair.same("XREAD", "STREAMS", "missing", "0")
    pair.same("XREAD", "count", "2", "streams", "a", "1")
    pair.same("XREAD", "BLOCK", "0", "STREAMS", "a", "0")
    for bad in [
        ("STREAMS", "a"),
        ("STREAMS", "a", "b", "0"),
        ("STREAMS",),
        ("COUNT", "x", "STREAMS", "a", "0"),
        ("BOGUS", "STREAMS", "a", "0"),
        ("COUNT", "1"),
        ("STREAMS", "a", "bad"),
        ("STREAMS", "a", ">"),
        ("STREAMS", "a", "+"),
        ("STREAMS", "a", "-"),
        ("BLOCK", "x", "STREAMS", "a", "0"),
        ("BLOCK", "-1", "STREAMS", "a", "0"),
    ]:
        pair.same("XREAD", *bad)
    pair.same("XREAD", "STREAMS")
    pair.same("XREAD")


def test_resp3_replies(pair):
    pair.call("HELLO", "3")
    fill(pair, "a", 2)
    fill(pair, "b", 2)
    pair.same("XREAD", "STREAMS", "a", "b", "0", "1-1")
    pair.same("XREAD", "STREAMS", "a", "$")
    pair.same("XRANGE", "a", "-", "+")
    pair.same("XRANGE", "a", "-", "+", "COUNT", "0")
    pair.same("XADD", "n", "NOMKSTREAM", "*", "a", "b")
    pair.same("XREVRANGE", "a", "+", "-", "COUNT", "1")


def test_binary_and_large_entries(pair):
    fields = []
    for i, b in enumerate(BINARY):
        fields += [b, b + b"v"]
    pair.same("XADD", b"\x00key\xff", "1-1", *fields)
    pair.same("XRANGE", b"\x00key\xff", "-", "+")
    big = b"x" * 100_000
    pair.same("XADD", b"\x00key\xff", "2-0", big, big)
    pair.same("XREVRANGE", b"\x00key\xff", "+", "-", "COUNT", "1")
    many = []
    for i in range(500):
        many += [f"f{i}", f"v{i}"]
    pair.same("XADD", "m", "1-0", *many)
    pair.same("XRANGE", "m", "-", "+")
    fill(pair, "long", 1000)
    pair.same("XRANGE", "long", "500", "+", "COUNT", "50")
    pair.same("XREVRANGE", "long", "+", "-", "COUNT", "3")
    pair.same("XLEN", "long")


def test_wrong_type_both_ways(pair):
    pair.same("SET", "str", "x")
    pair.same("HSET", "h", "f", "v")
    pair.same("LPUSH", "l", "x")
    for key in ("str", "h", "l"):
        pair.same("XADD", key, "1-1", "a", "b")
        pair.same("XADD", key, "NOMKSTREAM", "1-1", "a", "b")
        pair.same("XLEN", key)
        pair.same("XRANGE", key, "-", "+")
        pair.same("XREVRANGE", key, "+", "-")
        pair.same("XDEL", key, "1-1")
        pair.same("XTRIM", key, "MAXLEN", "0")
        pair.same("XSETID", key, "1-1")
        pair.same("XREAD", "STREAMS", key, "0")
    fill(pair, "s", 2)
    pair.same("XREAD", "STREAMS", "s", "str", "0", "0")
    pair.same("GET", "s")
    pair.same("HGET", "s", "f")
    pair.same("LPUSH", "s", "x")
    pair.same("SADD", "s", "x")
    pair.same("ZADD", "s", "1", "x")
    pair.same("SET", "s", "x")
    pair.same("GET", "s")
    pair.same("XADD", "s", "1-1", "a", "b")


def test_generic_keyspace_commands(pair):
    fill(pair, "s", 3)
    pair.same("TYPE", "s")
    pair.same("EXISTS", "s")
    pair.same("EXPIRE", "s", "100")
    pair.same("TTL", "s")
    pair.same("PERSIST", "s")
    pair.same("TTL", "s")
    pair.same("RENAME", "s", "t")
    pair.same("XRANGE", "t", "-", "+")
    pair.same("COPY", "t", "u")
    pair.same("XADD", "u", "3-1", "a", "b")
    pair.same("XADD", "u", "4-1", "a", "b")
    pair.same("XLEN", "t")
    pair.same("XLEN", "u")
    pair.same_unordered("SCAN", "0", "TYPE", "stream")
    pair.same("MOVE", "u", "1")
    pair.same("SELECT", "1")
    pair.same("XRANGE", "u", "-", "+")
    pair.same("SELECT", "0")
    # An empty stream is still a key: it can be renamed and copied.
    pair.same("XTRIM", "t", "MAXLEN", "0")
    pair.same("RENAME", "t", "e")
    pair.same("EXISTS", "t", "e")
    pair.same("COPY", "e", "e2")
    pair.same("XADD", "e2", "3-1", "a", "b")
    pair.same("TYPE", "e2")
    pair.same("DEL", "e", "e2")
    pair.same("EXISTS", "e", "e2")
    pair.same("PEXPIRE", "x", "1")


def test_expired_stream_is_gone(pair):
    import time
    fill(pair, "s", 2)
    pair.same("PEXPIRE", "s", "20")
    time.sleep(0.1)
    pair.same("XLEN", "s")
    pair.same("XRANGE", "s", "-", "+")
    pair.same("XADD", "s", "1-1", "a", "b")


@pytest.mark.parametrize("cmd", ["XLEN", "XRANGE", "XREVRANGE", "XDEL", "XTRIM", "XSETID", "XREAD", "XADD"])
def test_arity(pair, cmd):
    pair.same(cmd)
    pair.same(cmd, "k")


def test_xgroup_subcommands(pair):
    pair.same("XGROUP", "CREATE", "s", "g", "0")
    pair.same("XGROUP", "CREATE", "s", "g", "0", "bogus")
    pair.same("XGROUP", "CREATE", "s", "g", "bad", "MKSTREAM")
    pair.same("XGROUP", "CREATE", "s", "g", "0", "MKSTREAM", "ENTRIESREAD", "-5")
    pair.same("XGROUP", "CREATE", "s", "g", "0", "MKSTREAM", "ENTRIESREAD", "x")
    pair.same("XGROUP", "CREATE", "s", "g", "$", "MKSTREAM")
    pair.same("EXISTS", "s")
    pair.same("XLEN", "s")
    pair.same("XGROUP", "CREATE", "s", "g", "0")
    pair.same("XGROUP", "CREATE", "s", "g2", "0", "ENTRIESREAD", "3")
    pair.same("XGROUP", "SETID", "s", "g", "0", "ENTRIESREAD", "3")
    pair.same("XGROUP", "SETID", "s", "g", "$")
    pair.same("XGROUP", "SETID", "s", "nog", "0")
    pair.same("XGROUP", "SETID", "s", "g", "0", "ENTRIESREAD")
    pair.same("XGROUP", "SETID", "s", "g", "0", "1", "2", "3")
    pair.same("XGROUP", "SETID", "s", "g", "bad")
    pair.same("XGROUP", "SETID", "missing", "g", "0")
    pair.same("XGROUP", "CREATECONSUMER", "s", "g", "c")
    pair.same("XGROUP", "CREATECONSUMER", "s", "g", "c")
    pair.same("XGROUP", "CREATECONSUMER", "s", "nog", "c")
    pair.same("XGROUP", "DELCONSUMER", "s", "g", "x")
    pair.same("XGROUP", "DELCONSUMER", "s", "g", "c")
    pair.same("XGROUP", "DELCONSUMER", "s", "nog", "c")
    pair.same("XGROUP", "DESTROY", "s", "g2")
    pair.same("XGROUP", "DESTROY", "s", "g2")
    pair.same("XGROUP", "DESTROY", "missing", "g2")
    pair.same("XGROUP", "DESTROY", "s", "g", "extra")
    pair.same("XGROUP", "FOO")
    pair.same("XGROUP", "CREATE", "s")
    pair.same("SET", "str", "x")
    pair.same("XGROUP", "CREATE", "str", "g", "0", "MKSTREAM")
    pair.same("XGROUP", "DESTROY", "str", "g")


def test_xreadgroup_xack_xpending(pair):
    fill(pair, "s", 5)
    pair.same("XGROUP", "CREATE", "s", "g", "0")
    pair.same("XPENDING", "s", "g")
    pair.same("XREADGROUP", "GROUP", "g", "alice", "COUNT", "2", "STREAMS", "s", ">")
    pair.same("XREADGROUP", "GROUP", "g", "bob", "STREAMS", "s", ">")
    pair.same("XREADGROUP", "GROUP", "g", "bob", "STREAMS", "s", ">")
    pair.same("XPENDING", "s", "g")
    pair.same("XPENDING", "s", "g", "IDLE", "1000000", "-", "+", "10")
    pair.same_shape("XPENDING", "s", "g", "-", "+", "10", check=lambda rows: len(rows) == 5)
    pair.same_shape("XPENDING", "s", "g", "-", "+", "2", "alice", check=lambda rows: [r[1] for r in rows] == [b"alice"] * 2)
    pair.same("XPENDING", "s", "g", "-", "+", "10", "nobody")
    pair.same("XPENDING", "s", "g", "-", "+", "0")
    pair.same("XPENDING", "s", "g", "(5-1", "+", "10")
    # History: the consumer's pending entries, a deleted one with a null body.
    pair.same("XDEL", "s", "1-1")
    pair.same("XREADGROUP", "GROUP", "g", "alice", "STREAMS", "s", "0")
    pair.same("XREADGROUP", "GROUP", "g", "alice", "COUNT", "1", "STREAMS", "s", "1-1")
    pair.same_shape("XPENDING", "s", "g", "-", "+", "10", "alice",
                    check=lambda rows: [r[3] for r in rows] == [1, 3])
    pair.same("XACK", "s", "g", "1-1", "2-1", "2-1", "9-9")
    pair.same("XACK", "s", "g", "1-1")
    pair.same("XACK", "s", "g", "bad")
    pair.same("XACK", "s", "nog", "bad")
    pair.same("XACK", "missing", "g", "1-1")
    pair.same("XREADGROUP", "GROUP", "g", "alice", "STREAMS", "s", "0")
    pair.same("XPENDING", "s", "g")
    pair.same("XGROUP", "DELCONSUMER", "s", "g", "bob")
    pair.same("XPENDING", "s", "g")
    # NOACK delivers without making entries pending.
    pair.same("XADD", "s", "6-1", "a", "b")
    pair.same("XREADGROUP", "GROUP", "g", "carol", "NOACK", "STREAMS", "s", ">")
    pair.same("XPENDING", "s", "g")
    # SETID back: entries are delivered again and reassigned.
    pair.same("XGROUP", "SETID", "s", "g", "0")
    pair.same("XREADGROUP", "GROUP", "g", "dave", "COUNT", "2", "STREAMS", "s", ">")
    pair.same("XPENDING", "s", "g")


def test_xreadgroup_errors(pair):
    fill(pair, "s", 2)
    pair.same("XGROUP", "CREATE", "s", "g", "0")
    for bad in [
        ("GROUP", "nog", "c", "STREAMS", "s", ">"),
        ("GROUP", "g", "c", "STREAMS", "missing", ">"),
        ("GROUP", "g", "c", "STREAMS", "s", "$"),
        ("GROUP", "g", "c", "STREAMS", "s", "bad"),
        ("GROUP", "g", "c", "STREAMS", "s", "s", ">"),
        ("GROUP", "g", "c", "COUNT", "x", "STREAMS", "s", ">"),
        ("GROUP", "g", "c", "BOGUS", "STREAMS", "s", ">"),
        ("COUNT", "1", "STREAMS", "s", "0", "x"),
        ("GROUP", "g", "STREAMS", "s", ">"),
    ]:
        pair.same("XREADGROUP", *bad)
    pair.same("XREAD", "GROUP", "g", "c", "STREAMS", "s", ">")
    pair.same("XREAD", "NOACK", "STREAMS", "s", "0")
    pair.same("XREADGROUP", "GROUP", "g", "c", "STREAMS", "s")
    pair.same("SET", "str", "x")
    pair.same("XREADGROUP", "GROUP", "g", "c", "STREAMS", "str", ">")
    pair.same("XACK", "str", "g", "1-1")
    pair.same("XPENDING", "str", "g")
    pair.same("XPENDING", "missing", "g")
    pair.same("XPENDING", "s", "g", "-", "+")
    pair.same("XPENDING", "s", "g", "IDLE", "10", "-", "+")
    pair.same("XPENDING", "s", "g", "IDLE", "x", "-", "+", "1")
    pair.same("XPENDING", "s", "g", "-", "+", "x")
    pair.same("XPENDING", "s", "g", "bad", "+", "1")
    pair.same("XPENDING", "s", "g", "-", "+", "1", "c", "extra", "more", "evenmore")
    # Nothing new for the group: a null reply and no consumer created.
    pair.same("XREADGROUP", "GROUP", "g", "c", "STREAMS", "s", ">")
    pair.same("XREADGROUP", "GROUP", "g", "late", "STREAMS", "s", ">")
    pair.same("XGROUP", "DELCONSUMER", "s", "g", "late")


def test_group_resp3_and_generic_commands(pair):
    pair.call("HELLO", "3")
    fill(pair, "s", 3)
    pair.same("XGROUP", "CREATE", "s", "g", "0")
    pair.same("XPENDING", "s", "g")
    pair.same("XREADGROUP", "GROUP", "g", "c", "STREAMS", "s", ">")
    pair.same("XPENDING", "s", "g")
    pair.same("COPY", "s", "t")
    pair.same("XPENDING", "t", "g")
    pair.same("RENAME", "s", "u")
    pair.same("XREADGROUP", "GROUP", "g", "c", "STREAMS", "u", "0")


def test_xinfo_stream(pair):
    pair.same("XINFO", "STREAM", "missing")
    pair.same("XGROUP", "CREATE", "e", "g", "$", "MKSTREAM")
    pair.same("XINFO", "STREAM", "e")
    fill(pair, "s", 3)
    pair.same("XINFO", "STREAM", "s")
    pair.same("XDEL", "s", "1-1")
    pair.same("XGROUP", "CREATE", "s", "g", "0")
    pair.same("XGROUP", "CREATE", "s", "a", "0")
    pair.same("XINFO", "STREAM", "s")
    pair.same("XTRIM", "s", "MAXLEN", "0")
    pair.same("XINFO", "STREAM", "s")
    for n in (150, 450, 1000):
        pair.same("DEL", "t")
        fill(pair, "t", n)
        pair.same("XINFO", "STREAM", "t")
    pair.same("XDEL", "t", "1-1", "500-1")
    pair.same("XTRIM", "t", "MAXLEN", "~", "700")
    pair.same("XINFO", "STREAM", "t")
    pair.same("SET", "str", "x")
    pair.same("XINFO", "STREAM", "str")
    pair.same("XINFO", "STREAM")
    pair.call("HELLO", "3")
    pair.same("XINFO", "STREAM", "t")
    pair.same("XINFO", "STREAM", "s")


def test_xinfo_consumers(pair):
    fill(pair, "s", 3)
    pair.same("XGROUP", "CREATE", "s", "g", "0")
    pair.same("XINFO", "CONSUMERS", "s", "g")
    pair.same("XINFO", "CONSUMERS", "s", "nog")
    pair.same("XINFO", "CONSUMERS", "missing", "g")
    pair.same("XREADGROUP", "GROUP", "g", "bob", "COUNT", "2", "STREAMS", "s", ">")
    pair.same("XREADGROUP", "GROUP", "g", "alice", "STREAMS", "s", ">")
    pair.same_shape("XINFO", "CONSUMERS", "s", "g",
                    check=lambda rows: [(r[1], r[3]) for r in rows] == [(b"alice", 1), (b"bob", 2)])


def test_xautoclaim(pair):
    fill(pair, "s", 6)
    pair.same("XGROUP", "CREATE", "s", "g", "0")
    pair.same("XAUTOCLAIM", "s", "g", "c", "0", "-")
    pair.same("XREADGROUP", "GROUP", "g", "alice", "STREAMS", "s", ">")
    pair.same("XDEL", "s", "2-1", "4-1")
    pair.same("XAUTOCLAIM", "s", "g", "bob", "0", "-", "COUNT", "2")
    pair.same("XAUTOCLAIM", "s", "g", "bob", "0", "3-1", "COUNT", "2", "JUSTID")
    pair.same("XAUTOCLAIM", "s", "g", "bob", "0", "0")
    pair.same("XAUTOCLAIM", "s", "g", "carol", "100000000", "-")
    pair.same("XPENDING", "s", "g")
    pair.same_shape("XPENDING", "s", "g", "-", "+", "10",
                    check=lambda rows: [(r[0], r[1], r[3]) for r in rows] == [
                        (b"1-1", b"bob", 3), (b"3-1", b"bob", 2), (b"5-1", b"bob", 2), (b"6-1", b"bob", 2)])
    for bad in [
        ("s", "g", "c", "x", "-"),
        ("s", "g", "c", "0", "bad"),
        ("s", "g", "c", "0", "(1-1"),
        ("s", "g", "c", "0", "-", "COUNT", "0"),
        ("s", "g", "c", "0", "-", "COUNT", "x"),
        ("s", "g", "c", "0", "-", "BOGUS"),
        ("s", "nog", "c", "0", "-"),
        ("missing", "g", "c", "0", "-"),
        ("missing", "g", "c", "x", "-"),
    ]:
        pair.same("XAUTOCLAIM", *bad)
    pair.same("SET", "str", "x")
    pair.same("XAUTOCLAIM", "str", "g", "c", "x", "-")
    pair.same("XAUTOCLAIM", "s", "g", "c", "0")


def test_xclaim(pair):
    fill(pair, "s", 5)
    pair.same("XCLAIM", "s", "g", "c", "0", "1-1")
    pair.same("XGROUP", "CREATE", "s", "g", "0")
    pair.same("XREADGROUP", "GROUP", "g", "alice", "COUNT", "3", "STREAMS", "s", ">")
    pair.same("XDEL", "s", "2-1")
    pair.same("XCLAIM", "s", "g", "bob", "0", "1-1", "2-1", "4-1", "9-9")
    pair.same("XPENDING", "s", "g")
    pair.same("XCLAIM", "s", "g", "bob", "0", "3-1", "JUSTID")
    pair.same("XCLAIM", "s", "g", "carol", "0", "4-1", "5-1", "FORCE", "JUSTID")
    pair.same("XCLAIM", "s", "g", "carol", "100000000", "1-1")
    pair.same("XCLAIM", "s", "g", "dave", "0", "1-1", "RETRYCOUNT", "7", "IDLE", "5000000")
    # Idle times depend on each server's clock: compare all but their exact value.
    idle_rows = lambda rows: [(r[0], r[1], r[2] >= 5_000_000, r[3]) for r in rows]
    pair.same_shape("XPENDING", "s", "g", "IDLE", "4000000", "-", "+", "10",
                    check=lambda rows: idle_rows(rows) == [(b"1-1", b"dave", True, 7)])
    pair.same("XCLAIM", "s", "g", "dave", "0", "3-1", "TIME", "1", "RETRYCOUNT", "-1")
    pair.same_shape("XPENDING", "s", "g", "IDLE", "4000000", "-", "+", "10",
                    check=lambda rows: idle_rows(rows) == [(b"1-1", b"dave", True, 7), (b"3-1", b"dave", True, 2)])
    pair.same("XCLAIM", "s", "g", "dave", "0", "9-9", "LASTID", "5-1")
    pair.same("XREADGROUP", "GROUP", "g", "erin", "STREAMS", "s", ">")
    pair.same_shape("XPENDING", "s", "g", "-", "+", "10",
                    check=lambda rows: [(r[0], r[1], r[3]) for r in rows] == [
                        (b"1-1", b"dave", 7), (b"3-1", b"dave", 2), (b"4-1", b"carol", 1), (b"5-1", b"carol", 1)])
    for bad in [
        ("s", "g", "c", "x", "1-1"),
        ("s", "g", "c", "0", "1-1", "IDLE", "x"),
        ("s", "g", "c", "0", "1-1", "TIME", "x"),
        ("s", "g", "c", "0", "1-1", "RETRYCOUNT", "x"),
        ("s", "g", "c", "0", "1-1", "LASTID", "x"),
        ("s", "g", "c", "0", "1-1", "BOGUS"),
        ("s", "g", "c", "0", "1-1", "IDLE"),
        ("s", "nog", "c", "0", "1-1"),
        ("missing", "g", "c", "x", "1-1"),
    ]:
        pair.same("XCLAIM", *bad)
    pair.same("SET", "str", "x")
    pair.same("XCLAIM", "str", "g", "c", "x", "1-1")
    pair.same("XCLAIM", "s", "g", "c", "0")


def test_xinfo_and_xgroup_help(pair):
    pair.same("XINFO", "HELP")
    pair.same("XGROUP", "HELP")
    pair.same("XINFO", "HELP", "extra")
    pair.same("XGROUP", "HELP", "extra")
    pair.same("XINFO", "BOGUS", "k")
    pair.same("XGROUP", "BOGUS")
    pair.same("XINFO")
    pair.call("HELLO", "3")
    pair.same("XINFO", "HELP")


def test_xinfo_groups(pair):
    pair.same("XINFO", "GROUPS", "missing")
    pair.same("SET", "str", "x")
    pair.same("XINFO", "GROUPS", "str")
    pair.same("XINFO", "GROUPS", "str", "extra")
    pair.same("XGROUP", "CREATE", "s", "g", "$", "MKSTREAM")
    pair.same("XINFO", "GROUPS", "s")
    fill(pair, "s", 5)
    pair.same("XGROUP", "CREATE", "s", "from0", "0")
    pair.same("XGROUP", "CREATE", "s", "future", "99-0")
    pair.same("XGROUP", "CREATE", "s", "known", "2-1", "ENTRIESREAD", "2")
    pair.same("XGROUP", "CREATE", "s", "big", "0", "ENTRIESREAD", "9223372036854775807")
    pair.same("XGROUP", "CREATE", "s", "unknown", "3-1", "ENTRIESREAD", "-1")
    pair.same("XINFO", "GROUPS", "s")
    pair.same("XREADGROUP", "GROUP", "from0", "c", "COUNT", "2", "STREAMS", "s", ">")
    pair.same("XREADGROUP", "GROUP", "unknown", "c", "COUNT", "1", "STREAMS", "s", ">")
    pair.same("XINFO", "GROUPS", "s")
    # A deletion ahead of a group makes its lag unknowable ...
    pair.same("XDEL", "s", "4-1")
    pair.same("XINFO", "GROUPS", "s")
    # ... until it reads past it.
    pair.same("XREADGROUP", "GROUP", "from0", "c", "STREAMS", "s", ">")
    pair.same("XINFO", "GROUPS", "s")
    pair.same("XGROUP", "SETID", "s", "from0", "0", "ENTRIESREAD", "0")
    pair.same("XGROUP", "SETID", "s", "known", "$")
    pair.same("XINFO", "GROUPS", "s")
    pair.same("XTRIM", "s", "MAXLEN", "1")
    pair.same("XINFO", "GROUPS", "s")
    pair.same("XSETID", "s", "10-0", "ENTRIESADDED", "20", "MAXDELETEDID", "9-0")
    pair.same("XINFO", "GROUPS", "s")
    pair.same("XINFO", "STREAM", "s")
    pair.call("HELLO", "3")
    pair.same("XINFO", "GROUPS", "s")


def test_lag_follows_redis_under_random_operations(pair):
    """entries-read and lag after random adds, deletions, trims, group
    moves and reads: XINFO GROUPS and XINFO STREAM must stay identical."""
    import random
    rng = random.Random(7)
    next_ms = 1
    pair.same("XGROUP", "CREATE", "s", "g1", "0", "MKSTREAM")
    pair.same("XGROUP", "CREATE", "s", "g2", "$")
    for step in range(600):
        op = rng.randrange(10)
        if op < 3:
            pair.same("XADD", "s", f"{next_ms}-0", "f", str(step))
            next_ms += 1
        elif op == 3:
            pair.same("XDEL", "s", f"{rng.randrange(1, next_ms + 1)}-0")
        elif op == 4 and rng.random() < 0.3:
            pair.same("XTRIM", "s", "MAXLEN", str(rng.randrange(0, 6)))
        elif op == 5:
            group = rng.choice(["g1", "g2"])
            target = rng.choice(["0", "$", f"{rng.randrange(0, next_ms + 2)}-0"])
            extra = rng.choice([[], ["ENTRIESREAD", str(rng.randrange(-1, next_ms + 2))]])
            pair.same("XGROUP", "SETID", "s", group, target, *extra)
        elif op == 6 and rng.random() < 0.2:
            pair.same("XSETID", "s", f"{next_ms}-0", "ENTRIESADDED", str(next_ms + rng.randrange(0, 3)),
                      "MAXDELETEDID", f"{rng.randrange(0, next_ms)}-0")
        else:
            group = rng.choice(["g1", "g2"])
            pair.same("XREADGROUP", "GROUP", group, "c", "COUNT", str(rng.randrange(1, 4)), "NOACK",
                      "STREAMS", "s", ">")
        pair.same("XINFO", "GROUPS", "s")
        pair.same("XINFO", "STREAM", "s")


def without_times(full):
    """XINFO STREAM FULL (parsed, maps flattened) with delivery and seen
    times blanked, after checking each is a plausible Unix ms time."""
    def blank(t):
        assert isinstance(t, int) and t > 1_600_000_000_000, t
        return "time"
    out = list(full)
    groups = out[out.index(b"groups") + 1]
    new_groups = []
    for g in groups:
        g = list(g)
        p = g.index(b"pending") + 1
        g[p] = [[row[0], row[1], blank(row[2]), row[3]] for row in g[p]]
        c = g.index(b"consumers") + 1
        consumers = []
        for cons in g[c]:
            cons = list(cons)
            s = cons.index(b"seen-time") + 1
            cons[s] = blank(cons[s])
            pp = cons.index(b"pending") + 1
            cons[pp] = [[row[0], blank(row[1]), row[2]] for row in cons[pp]]
            consumers.append(cons)
        g[c] = consumers
        new_groups.append(g)
    out[out.index(b"groups") + 1] = new_groups
    return out


def test_xinfo_stream_full(pair):
    pair.same("XINFO", "STREAM", "missing", "FULL")
    pair.same("SET", "str", "x")
    pair.same("XINFO", "STREAM", "str", "FULL", "COUNT", "x")
    pair.same("XGROUP", "CREATE", "s", "g", "$", "MKSTREAM")
    pair.same("XINFO", "STREAM", "s", "FULL")
    fill(pair, "s", 15)
    pair.same("XINFO", "STREAM", "s", "FULL")
    for args in (["FULL", "COUNT", "3"], ["full", "count", "0"], ["FULL", "COUNT", "-1"], ["FULL", "COUNT", "x"],
                 ["FULL", "x", "1"], ["foo"], ["FULL", "COUNT"], ["FULL", "COUNT", "1", "x"]):
        pair.same("XINFO", "STREAM", "s", *args)
    pair.same("XINFO", "stream", "s", "bogus")
    pair.same("XGROUP", "CREATE", "s", "a", "0", "ENTRIESREAD", "0")
    pair.same("XREADGROUP", "GROUP", "g", "c1", "COUNT", "12", "STREAMS", "s", "0")
    pair.same("XGROUP", "SETID", "s", "g", "0")
    pair.same("XREADGROUP", "GROUP", "g", "c1", "COUNT", "12", "STREAMS", "s", ">")
    pair.same("XREADGROUP", "GROUP", "g", "c2", "COUNT", "2", "STREAMS", "s", ">")
    pair.same("XGROUP", "CREATECONSUMER", "s", "g", "idle")
    pair.same("XDEL", "s", "14-1")
    for args in (["FULL"], ["FULL", "COUNT", "2"], ["FULL", "COUNT", "0"]):
        ours, theirs = pair.call("XINFO", "STREAM", "s", *args)
        assert without_times(ours) == without_times(theirs), args
    pair.call("HELLO", "3")
    ours, theirs = pair.call("XINFO", "STREAM", "s", "FULL", "COUNT", "5")
    assert without_times(ours) == without_times(theirs)
    pair.same("XINFO", "STREAM", "s")


def test_consumer_group_bookkeeping_does_not_fail_watch(pair):
    """Redis 7.0 signals a stream key modified only for XADD, XDEL, XTRIM and
    the stream XGROUP CREATE MKSTREAM makes."""
    fill(pair, "s", 3)
    pair.same("XGROUP", "CREATE", "s", "g", "0")
    bookkeeping = [
        ("XREADGROUP", "GROUP", "g", "c", "COUNT", "2", "STREAMS", "s", ">"),
        ("XREADGROUP", "GROUP", "g", "c", "STREAMS", "s", "0"),
        ("XACK", "s", "g", "1-1"),
        ("XCLAIM", "s", "g", "d", "0", "2-1"),
        ("XAUTOCLAIM", "s", "g", "c", "0", "0"),
        ("XGROUP", "CREATECONSUMER", "s", "g", "e"),
        ("XGROUP", "DELCONSUMER", "s", "g", "e"),
        ("XGROUP", "SETID", "s", "g", "0"),
        ("XGROUP", "CREATE", "s", "g2", "$"),
        ("XGROUP", "DESTROY", "s", "g2"),
        ("XSETID", "s", "9-9"),
    ]
    for command in bookkeeping:
        pair.same("WATCH", "s")
        pair.same(*command)
        pair.same("MULTI")
        pair.same("PING")
        pair.same("EXEC")
    for command in [("XADD", "s", "10-1", "f", "v"), ("XDEL", "s", "3-1"), ("XTRIM", "s", "MAXLEN", "1")]:
        pair.same("WATCH", "s")
        pair.same(*command)
        pair.same("MULTI")
        pair.same("PING")
        pair.same("EXEC")
    pair.same("WATCH", "new")
    pair.same("XGROUP", "CREATE", "new", "g", "$", "MKSTREAM")
    pair.same("MULTI")
    pair.same("PING")
    pair.same("EXEC")


def test_xtrim_checks_its_options_before_the_key(pair):
    for args in [("MAXLEN", "=", "5-2"), ("MINID", "=", "abc"), ("MINID", "~", "-"), ("MAXLEN", "-1")]:
        pair.same("XTRIM", "missing", *args)
        pair.same("SET", "str", "x")
        pair.same("XTRIM", "str", *args)
