"""List commands, differential against redis-server 7.0.

Every reply is compared byte for byte (lists are ordered), in RESP2 and,
where the shapes differ, RESP3.
"""
import random
import time

BINARY = [b"", b"\x00", b"\xff\xfe", b"a\r\nb", b"\x00\r\n\xff", "ключ".encode(), b" ", b"*?[]"]


def fill(pair, key, *items):
    pair.same("DEL", key)
    if items:
        pair.same("RPUSH", key, *items)


def dump(pair, *keys):
    for key in keys:
        pair.same("LRANGE", key, "0", "-1")
        pair.same("EXISTS", key)


# ------------------------------------------------------------------ pushes


def test_push_basics(pair):
    pair.same("LPUSH", "l", "a")
    pair.same("LPUSH", "l", "b", "c", "d")
    pair.same("RPUSH", "l", "x", "y")
    dump(pair, "l")
    pair.same("LLEN", "l")
    pair.same("TYPE", "l")
    pair.same("OBJECT", "ENCODING", "missing")


def test_pushx(pair):
    pair.same("LPUSHX", "l", "a", "b")
    pair.same("RPUSHX", "l", "a")
    pair.same("EXISTS", "l")
    pair.same("RPUSH", "l", "z")
    pair.same("LPUSHX", "l", "a", "b")
    pair.same("RPUSHX", "l", "c", "d")
    dump(pair, "l")


def test_arity(pair):
    for args in [("LPUSH", "l"), ("RPUSH",), ("LPUSHX", "l"), ("RPUSHX", "l"), ("LPOP",),
                 ("LPOP", "l", "1", "2"), ("RPOP", "l", "1", "2"), ("LLEN",), ("LLEN", "a", "b"),
                 ("LINDEX", "l"), ("LRANGE", "l", "0"), ("LSET", "l", "0"), ("LINSERT", "l", "before", "x"),
                 ("LTRIM", "l", "0"), ("LREM", "l", "0"), ("LPOS", "l"), ("LMOVE", "a", "b", "left"),
                 ("RPOPLPUSH", "a"), ("LMPOP", "1", "l")]:
        pair.same(*args)
    pair.same("DBSIZE")


def test_wrong_type(pair):
    pair.same("SET", "s", "v")
    pair.same("HSET", "h", "f", "v")
    fill(pair, "l", "a", "b")
    for key in ("s", "h"):
        for args in [("LPUSH", key, "x"), ("RPUSH", key, "x"), ("LPUSHX", key, "x"), ("RPUSHX", key, "x"),
                     ("LPOP", key), ("RPOP", key, "2"), ("LLEN", key), ("LINDEX", key, "0"),
                     ("LRANGE", key, "0", "-1"), ("LSET", key, "0", "x"), ("LINSERT", key, "before", "a", "b"),
                     ("LTRIM", key, "0", "1"), ("LREM", key, "0", "a"), ("LPOS", key, "a"),
                     ("LMOVE", key, "l", "left", "left"), ("LMOVE", "l", key, "left", "left"),
                     ("RPOPLPUSH", key, "l"), ("RPOPLPUSH", "l", key), ("LMPOP", "2", key, "l", "left"),
                     ("LMPOP", "2", "missing", key, "left")]:
            pair.same(*args)
    # Nothing moved out of l by the failed commands.
    dump(pair, "l")
    # A missing source answers nil before the destination's type is checked.
    pair.same("LMOVE", "missing", "s", "left", "left")
    pair.same("RPOPLPUSH", "missing", "s")
    # The first non-empty list wins before a wrong type later in the keys.
    pair.same("LMPOP", "2", "l", "s", "left")
    # Other families against a list.
    fill(pair, "l", "a", "b")
    pair.same("GET", "l")
    pair.same("HGET", "l", "f")
    pair.same("APPEND", "l", "x")
    pair.same("SET", "l", "v")
    pair.same("GET", "l")
    pair.same("TYPE", "l")
    pair.same("LPUSH", "l", "x")


# -------------------------------------------------------------------- pops


def test_pop(pair):
    fill(pair, "l", *"abcdefg")
    pair.same("LPOP", "l")
    pair.same("RPOP", "l")
    pair.same("LPOP", "l", "2")
    pair.same("RPOP", "l", "2")
    pair.same("LPOP", "l", "0")
    pair.same("RPOP", "l", "10")
    pair.same("EXISTS", "l")
    pair.same("LPOP", "l")
    pair.same("LPOP", "l", "1")
    pair.same("RPOP", "l", "0")
    for bad in ("-1", "abc", "1.5", "", "99999999999999999999"):
        pair.same("LPOP", "l", bad)
        pair.same("RPOP", "l", bad)
    fill(pair, "l", "a")
    pair.same("LPOP", "l", "-1")
    pair.same("LPOP", "l", "5")
    pair.same("EXISTS", "l")


def test_pop_resp3(pair):
    pair.call("HELLO", "3")
    fill(pair, "l", "a", "b", "c")
    pair.same("LPOP", "l", "2")
    pair.same("RPOP", "l")
    pair.same("LPOP", "l")
    pair.same("LPOP", "l", "2")
    pair.same("RPOP", "l", "0")
    pair.same("LINDEX", "l", "0")
    pair.same("LPOS", "l", "a")
    pair.same("LPOS", "l", "a", "COUNT", "0")
    pair.same("LMPOP", "1", "l", "left")
    pair.same("LMOVE", "l", "m", "left", "right")
    pair.same("RPUSH", "l", "x", "y")
    pair.same("LMPOP", "1", "l", "right", "count", "5")
    pair.same("LRANGE", "l", "0", "-1")


# ------------------------------------------------------------- index reads


def test_lindex_lrange(pair):
    fill(pair, "l", *"abcdef")
    for i in ("0", "1", "5", "6", "-1", "-6", "-7", "100", "-100", "9223372036854775807", "-9223372036854775808"):
        pair.same("LINDEX", "l", i)
    pair.same("LINDEX", "l", "x")
    pair.same("LINDEX", "missing", "x")
    pair.same("LINDEX", "missing", "0")
    points = ["0", "1", "3", "5", "6", "7", "-1", "-2", "-6", "-7", "-100", "100",
              "9223372036854775807", "-9223372036854775808"]
    for start in points:
        for stop in points:
            pair.same("LRANGE", "l", start, stop)
    pair.same("LRANGE", "l", "a", "1")
    pair.same("LRANGE", "l", "0", "1.0")
    pair.same("LRANGE", "missing", "0", "-1")
    pair.same("LRANGE", "missing", "x", "-1")
    pair.same("LLEN", "missing")


def test_lset(pair):
    fill(pair, "l", *"abc")
    pair.same("LSET", "l", "0", "x")
    pair.same("LSET", "l", "-1", "y")
    pair.same("LSET", "l", "3", "z")
    pair.same("LSET", "l", "-4", "z")
    pair.same("LSET", "l", "abc", "z")
    pair.same("LSET", "missing", "0", "z")
    pair.same("LSET", "missing", "abc", "z")
    pair.same("LSET", "l", "1", b"\x00\xff")
    dump(pair, "l", "missing")


# ----------------------------------------------------------------- editing


def test_linsert(pair):
    fill(pair, "l", "a", "b", "a")
    pair.same("LINSERT", "l", "BEFORE", "a", "x")
    pair.same("LINSERT", "l", "after", "a", "y")
    pair.same("LINSERT", "l", "After", "b", "z")
    pair.same("LINSERT", "l", "before", "nope", "z")
    pair.same("LINSERT", "l", "middle", "a", "z")
    pair.same("LINSERT", "missing", "before", "a", "z")
    pair.same("LINSERT", "missing", "middle", "a", "z")
    dump(pair, "l", "missing")


def test_ltrim(pair):
    points = ["0", "1", "2", "4", "5", "-1", "-2", "-5", "-6", "100", "-100"]
    for start in points:
        for stop in points:
            fill(pair, "l", *"abcde")
            pair.same("LTRIM", "l", start, stop)
            dump(pair, "l")
    pair.same("LTRIM", "l", "x", "1")
    pair.same("LTRIM", "missing", "0", "1")
    pair.same("LTRIM", "missing", "x", "1")
    pair.same("EXISTS", "missing")


def test_lrem(pair):
    items = list("abacabaa")
    for count in ("0", "1", "2", "-1", "-2", "100", "-100", "-9223372036854775808"):
        fill(pair, "l", *items)
        pair.same("LREM", "l", count, "a")
        dump(pair, "l")
    fill(pair, "l", "a", "a")
    pair.same("LREM", "l", "0", "a")
    pair.same("EXISTS", "l")
    pair.same("LREM", "l", "x", "a")
    pair.same("LREM", "missing", "1", "a")
    pair.same("LREM", "missing", "x", "a")


def test_lpos(pair):
    fill(pair, "l", *"abcabcab")
    for opts in [(), ("RANK", "1"), ("RANK", "2"), ("RANK", "3"), ("RANK", "4"), ("RANK", "-1"), ("RANK", "-3"),
                 ("RANK", "-4"), ("COUNT", "0"), ("COUNT", "1"), ("COUNT", "2"), ("COUNT", "10"),
                 ("RANK", "2", "COUNT", "0"), ("RANK", "-2", "COUNT", "2"), ("MAXLEN", "1"), ("MAXLEN", "4"),
                 ("MAXLEN", "0"), ("COUNT", "0", "MAXLEN", "5"), ("RANK", "-1", "COUNT", "0", "MAXLEN", "4"),
                 ("rank", "9223372036854775807"), ("RANK", "-9223372036854775807"),
                 ("RANK", "-9223372036854775808"), ("RANK", "-9223372036854775808", "COUNT", "2"),
                 ("RANK", "1", "RANK", "2"), ("COUNT", "1", "COUNT", "0")]:
        for element in ("a", "b", "c", "z"):
            pair.same("LPOS", "l", element, *opts)
    for bad in [("RANK", "0"), ("RANK", "x"), ("COUNT", "-1"), ("COUNT", "x"), ("MAXLEN", "-1"),
                ("MAXLEN", "x"), ("RANK",), ("COUNT",), ("FOO", "1"), ("RANK", "1", "MAXLEN")]:
        pair.same("LPOS", "l", "a", *bad)
        pair.same("LPOS", "missing", "a", *bad)
    pair.same("LPOS", "missing", "a")
    pair.same("LPOS", "missing", "a", "COUNT", "1")


# ------------------------------------------------------------------- moves


def test_lmove(pair):
    ends = ("LEFT", "RIGHT", "left", "right")
    for src_end in ends[:2]:
        for dst_end in ends[:2]:
            fill(pair, "a", *"123")
            fill(pair, "b", *"xy")
            pair.same("LMOVE", "a", "b", src_end, dst_end)
            pair.same("LMOVE", "a", "a", src_end, dst_end)
            pair.same("LMOVE", "a", "new", src_end, dst_end)
            dump(pair, "a", "b", "new")
            pair.same("DEL", "new")
    pair.same("LMOVE", "a", "b", "up", "left")
    pair.same("LMOVE", "a", "b", "left", "down")
    pair.same("LMOVE", "missing", "b", "left", "left")
    pair.same("LMOVE", "missing", "b", "up", "left")
    fill(pair, "a", "only")
    pair.same("LMOVE", "a", "b", "left", "left")
    pair.same("EXISTS", "a")
    dump(pair, "b")


def test_lmove_same_key_keeps_ttl(pair):
    fill(pair, "a", "x")
    pair.same("EXPIRE", "a", "100")
    pair.same("LMOVE", "a", "a", "left", "right")
    pair.same("TTL", "a")
    pair.same("RPOPLPUSH", "a", "a")
    pair.same("TTL", "a")
    dump(pair, "a")


def test_rpoplpush(pair):
    fill(pair, "a", *"123")
    pair.same("RPOPLPUSH", "a", "b")
    pair.same("RPOPLPUSH", "a", "b")
    pair.same("RPOPLPUSH", "a", "a")
    pair.same("RPOPLPUSH", "a", "b")
    pair.same("RPOPLPUSH", "a", "b")
    pair.same("RPOPLPUSH", "missing", "b")
    dump(pair, "a", "b")


def test_lmpop(pair):
    fill(pair, "a")
    fill(pair, "b", *"12345")
    fill(pair, "c", *"xyz")
    pair.same("LMPOP", "3", "a", "b", "c", "LEFT")
    pair.same("LMPOP", "3", "a", "b", "c", "right", "COUNT", "2")
    pair.same("LMPOP", "2", "a", "b", "left", "count", "100")
    pair.same("LMPOP", "3", "a", "b", "c", "right", "count", "1")
    pair.same("LMPOP", "1", "a", "left")
    pair.same("LMPOP", "1", "a", "left", "count", "3")
    for bad in [("0", "a", "left"), ("-1", "a", "left"), ("x", "a", "left"), ("2", "a", "left"),
                ("5", "a", "b", "left"), ("1", "a", "middle"), ("1", "a", "left", "count"),
                ("1", "a", "left", "count", "0"), ("1", "a", "left", "count", "-1"),
                ("1", "a", "left", "count", "x"), ("1", "a", "left", "count", "1", "count", "1"),
                ("1", "a", "left", "foo"), ("9223372036854775807", "a", "left")]:
        pair.same("LMPOP", *bad)
    dump(pair, "a", "b", "c")


# ---------------------------------------------------------- data and sizes


def test_binary_items(pair):
    for item in BINARY:
        pair.same("RPUSH", b"bin\x00key", item)
        pair.same("LPUSH", b"bin\x00key", item)
    dump(pair, b"bin\x00key")
    for item in BINARY:
        pair.same("LPOS", b"bin\x00key", item, "COUNT", "0")
        pair.same("LINSERT", b"bin\x00key", "after", item, b"\xff")
    pair.same("LREM", b"bin\x00key", "0", b"\xff")
    pair.same("LREM", b"bin\x00key", "1", b"")
    dump(pair, b"bin\x00key")


def test_large(pair):
    big = b"x" * (1 << 20) + b"\x00"
    pair.same("RPUSH", "l", big, "", big)
    pair.same("LINDEX", "l", "-1")
    pair.same("LPOS", "l", big, "COUNT", "0")
    items = [str(i) for i in range(5000)]
    pair.same("RPUSH", "many", *items)
    pair.same("LLEN", "many")
    pair.same("LRANGE", "many", "100", "4100")
    pair.same("LTRIM", "many", "10", "-10")
    pair.same("LREM", "many", "-3", "4000")
    pair.same("LPOP", "many", "1000")
    pair.same("LRANGE", "many", "0", "-1")


def test_random_against_redis(pair):
    rng = random.Random(5)
    keys = ["r0", "r1", "r2"]
    for _ in range(1500):
        k, d = rng.choice(keys), rng.choice(keys)
        item = rng.choice("abcd")
        n = str(rng.randint(-5, 5))
        m = str(rng.randint(-5, 5))
        end = rng.choice(["left", "right"])
        cmd = rng.choice([
            ("LPUSH", k, item, rng.choice("abcd")), ("RPUSH", k, item), ("LPUSHX", k, item), ("RPUSHX", k, item),
            ("LPOP", k), ("RPOP", k, str(rng.randint(0, 3))), ("LINDEX", k, n), ("LRANGE", k, n, m),
            ("LSET", k, n, item), ("LINSERT", k, rng.choice(["before", "after"]), item, "new"),
            ("LTRIM", k, n, m), ("LREM", k, n, item), ("LPOS", k, item, "RANK", n if n != "0" else "1"),
            ("LPOS", k, item, "COUNT", str(abs(int(n))), "MAXLEN", str(abs(int(m)))),
            ("LMOVE", k, d, end, rng.choice(["left", "right"])), ("RPOPLPUSH", k, d),
            ("LMPOP", "3", *keys, end, "COUNT", str(rng.randint(1, 3))), ("LLEN", k),
        ])
        pair.same(*cmd)
    dump(pair, *keys)


# ---------------------------------------------------------- keyspace glue


def test_keyspace_commands(pair):
    fill(pair, "l", *"abc")
    pair.same("TYPE", "l")
    pair.same("EXISTS", "l", "l")
    pair.same("EXPIRE", "l", "100")
    pair.same("TTL", "l")
    pair.same("PERSIST", "l")
    pair.same("TTL", "l")
    pair.same("RENAME", "l", "l2")
    dump(pair, "l", "l2")
    pair.same("COPY", "l2", "l3")
    pair.same("LPUSH", "l3", "z")
    dump(pair, "l2", "l3")
    pair.same("MOVE", "l3", "1")
    pair.same("SELECT", "1")
    dump(pair, "l3")
    pair.same("SELECT", "0")
    pair.same("SCAN", "0", "TYPE", "list", "COUNT", "1000")
    pair.same("DEL", "l2")
    pair.same("EXISTS", "l2")
    pair.same("DBSIZE")


def test_expired_list_is_gone(pair):
    fill(pair, "l", "a", "b")
    pair.same("PEXPIRE", "l", "30")
    time.sleep(0.1)
    pair.same("LLEN", "l")
    pair.same("LPUSHX", "l", "x")
    pair.same("LPOP", "l")
    pair.same("EXISTS", "l")
    pair.same("RPUSH", "l", "fresh")
    pair.same("TTL", "l")


def test_keyspace_hits_and_misses(pair):
    def counters(conn):
        _, info = conn.call("INFO", "stats")
        lines = dict(l.split(":", 1) for l in info.decode().split("\r\n") if l.startswith("keyspace_"))
        return int(lines["keyspace_hits"]), int(lines["keyspace_misses"])

    fill(pair, "l", "a", "b", "c")
    pair.call("CONFIG", "RESETSTAT")
    for cmd in [("LLEN", "l"), ("LLEN", "n"), ("LINDEX", "l", "0"), ("LINDEX", "n", "0"), ("LINDEX", "l", "x"),
                ("LRANGE", "l", "0", "1"), ("LRANGE", "n", "0", "1"), ("LPOS", "l", "a"), ("LPOS", "n", "a"),
                ("LPOP", "l"), ("LPOP", "n"), ("LMOVE", "l", "l", "left", "left"), ("LMPOP", "2", "n", "l", "left")]:
        pair.same(*cmd)
    assert counters(pair.strata) == counters(pair.redis)
