"""Hash commands, differential against redis-server 7.0.

Redis returns HKEYS/HVALS/HGETALL in its own dict order and Strata in field
byte order, so those are compared as sets (or as field -> value maps); HSCAN
is iterated to cursor 0 and the collected fields are compared.
"""
import random
import time

import pytest
import redis

from conftest import Err

BINARY = [b"", b"\x00", b"\xff\xfe", b"a\r\nb", b"\x00\r\n\xff", "ключ".encode(), b" ", b"*?[]"]


def as_map(flat):
    """A flat [field, value, ...] reply (RESP2 HGETALL) as a dict."""
    assert isinstance(flat, list) and len(flat) % 2 == 0, flat
    return dict(zip(flat[0::2], flat[1::2]))


def same_map(pair, *args):
    ours, theirs = pair.call(*args)
    assert as_map(ours) == as_map(theirs), f"{args!r}: strata {ours!r} != redis {theirs!r}"
    return as_map(theirs)


def full_hscan(conn, key, *options):
    """Iterates HSCAN to cursor 0; returns the field -> value map and the
    number of calls."""
    cursor, seen, calls = b"0", {}, 0
    while True:
        _, (cursor, items) = conn.call("HSCAN", key, cursor, *options)
        calls += 1
        seen.update(as_map(items))
        if cursor == b"0":
            return seen, calls
        assert calls < 100000


def has_command(pair, name):
    """Whether Strata serves `name` yet (other families add commands the
    hash tests use when they exist): probed on a key no test uses."""
    _, reply = pair.strata.call(name, "__probe__", *(["1"] if name.endswith("EXPIRE") else []))
    return not (isinstance(reply, Err) and reply.startswith("ERR unknown command"))


# ---------------------------------------------------------------- HSET / HGET


def test_hset_hget_basics(pair):
    pair.same("HSET", "h", "f1", "v1")
    pair.same("HSET", "h", "f1", "v2")
    pair.same("HSET", "h", "f2", "a", "f3", "b", "f1", "c")
    pair.same("HGET", "h", "f1")
    pair.same("HGET", "h", "f2")
    pair.same("HGET", "h", "nope")
    pair.same("HGET", "missing", "f")
    pair.same("HLEN", "h")
    # The same field twice in one call counts once.
    pair.same("HSET", "h2", "x", "1", "x", "2", "y", "3")
    pair.same("HGET", "h2", "x")
    pair.same("HLEN", "h2")
    pair.same("DBSIZE")


def test_hset_arity_errors(pair):
    pair.same("HSET", "h", "f")
    pair.same("HSET", "h", "f", "v", "g")
    pair.same("HSET", "h")
    pair.same("HMSET", "h", "f")
    pair.same("HMSET", "h", "f", "v", "g")
    pair.same("HSETNX", "h", "f")
    pair.same("HGET", "h")
    pair.same("HMGET", "h")
    pair.same("HDEL", "h")
    pair.same("HLEN")
    pair.same("HINCRBY", "h", "f")
    pair.same("HINCRBYFLOAT", "h", "f", "1", "2")
    pair.same("HRANDFIELD")
    pair.same("HSCAN", "h")
    # Nothing was created by the failed calls.
    pair.same("DBSIZE")


def test_hmset(pair):
    pair.same("HMSET", "h", "a", "1", "b", "2")
    pair.same("HMSET", "h", "a", "3", "c", "4")
    same_map(pair, "HGETALL", "h")
    pair.same("HLEN", "h")


def test_binary_fields_and_values(pair):
    for i, field in enumerate(BINARY):
        for value in BINARY:
            pair.same("HSET", b"bin\x00key", field, value + bytes([i]))
    pair.same("HLEN", b"bin\x00key")
    for field in BINARY:
        pair.same("HGET", b"bin\x00key", field)
        pair.same("HSTRLEN", b"bin\x00key", field)
        pair.same("HEXISTS", b"bin\x00key", field)
    same_map(pair, "HGETALL", b"bin\x00key")
    pair.same("HMGET", b"bin\x00key", *BINARY)
    # A field that is a prefix of another stays distinct.
    pair.same("HSET", "p", "ab", "1", "a", "2", "abc", "3", "a\x00", "4")
    same_map(pair, "HGETALL", "p")
    pair.same("HDEL", "p", "a")
    same_map(pair, "HGETALL", "p")


def test_empty_and_large_values(pair):
    big = b"x" * (1 << 20) + b"\x00\xff"
    pair.same("HSET", "h", "", "")
    pair.same("HGET", "h", "")
    pair.same("HSTRLEN", "h", "")
    pair.same("HSET", "h", "big", big)
    pair.same("HGET", "h", "big")
    pair.same("HSTRLEN", "h", "big")
    pair.same("HSET", "h", big, "v")
    pair.same("HGET", "h", big)
    pair.same("HLEN", "h")


def test_hsetnx(pair):
    pair.same("HSETNX", "h", "f", "1")
    pair.same("HSETNX", "h", "f", "2")
    pair.same("HGET", "h", "f")
    pair.same("HSETNX", "h", "g", "3")
    pair.same("HLEN", "h")
    pair.same("DBSIZE")


def test_hmget(pair):
    pair.same("HSET", "h", "a", "1", "b", "")
    pair.same("HMGET", "h", "a", "b", "c", "a")
    pair.same("HMGET", "missing", "a", "b")


# ---------------------------------------------------------------- HDEL etc.


def test_hdel(pair):
    pair.same("HSET", "h", "a", "1", "b", "2", "c", "3")
    pair.same("HDEL", "h", "a", "zz")
    pair.same("HDEL", "h", "a")
    pair.same("HLEN", "h")
    pair.same("HDEL", "missing", "a")
    # Deleting the last field deletes the key, duplicates count once.
    pair.same("HDEL", "h", "b", "c", "b", "c")
    pair.same("HLEN", "h")
    pair.same("DBSIZE")
    pair.same("HGETALL", "h")
    # A new hash of the same name does not see old fields.
    pair.same("HSET", "h", "x", "1")
    same_map(pair, "HGETALL", "h")
    pair.same("HGET", "h", "a")


def test_hlen_hstrlen_hexists(pair):
    pair.same("HSET", "h", "a", "hello", "n", "12345", "e", "")
    pair.same("HLEN", "h")
    pair.same("HLEN", "missing")
    for field in ["a", "n", "e", "zz"]:
        pair.same("HSTRLEN", "h", field)
        pair.same("HEXISTS", "h", field)
    pair.same("HSTRLEN", "missing", "a")
    pair.same("HEXISTS", "missing", "a")


def test_hkeys_hvals_hgetall(pair):
    fields = {f"field:{i}": f"value:{i * 7 % 13}" for i in range(300)}
    for f, v in fields.items():
        pair.same("HSET", "h", f, v)
    pair.same_unordered("HKEYS", "h")
    pair.same_unordered("HVALS", "h")
    assert same_map(pair, "HGETALL", "h") == {f.encode(): v.encode() for f, v in fields.items()}
    pair.same("HKEYS", "missing")
    pair.same("HVALS", "missing")
    pair.same("HGETALL", "missing")
    pair.same("HLEN", "h")


def test_resp3_shapes(pair):
    pair.call("HELLO", "3")
    pair.same("HSET", "h", "a", "1", "b", "2")
    ours, theirs = pair.call("HGETALL", "h")
    assert as_map(ours) == as_map(theirs)
    raw_ours = pair.strata.call("HGETALL", "h")[0]
    raw_theirs = pair.redis.call("HGETALL", "h")[0]
    assert raw_ours.startswith(b"%2\r\n") and raw_theirs.startswith(b"%2\r\n")
    pair.same("HGETALL", "missing")
    pair.same("HGET", "h", "zz")
    pair.same("HMGET", "h", "a", "zz")
    pair.same("HMGET", "missing", "a")
    pair.same("HRANDFIELD", "missing")
    pair.same("HRANDFIELD", "missing", "3", "WITHVALUES")
    pair.same("HSET", "one", "f", "v")
    # The only field, so the reply is deterministic: an array of pairs.
    pair.same("HRANDFIELD", "one", "1", "WITHVALUES")
    pair.same("HRANDFIELD", "one", "-2", "WITHVALUES")
    pair.same("HRANDFIELD", "one", "5", "WITHVALUES")
    pair.same("HRANDFIELD", "one", "-2")
    pair.same("HSCAN", "one", "0")
    pair.same("HINCRBYFLOAT", "one", "n", "1.5")


# ---------------------------------------------------------------- HINCRBY


def test_hincrby(pair):
    pair.same("HINCRBY", "h", "n", "5")
    pair.same("HINCRBY", "h", "n", "-12")
    pair.same("HINCRBY", "h", "n", "0")
    pair.same("HGET", "h", "n")
    pair.same("HSET", "h", "max", "9223372036854775807", "min", "-9223372036854775808")
    pair.same("HINCRBY", "h", "max", "1")
    pair.same("HINCRBY", "h", "max", "-1")
    pair.same("HINCRBY", "h", "min", "-1")
    pair.same("HINCRBY", "h", "min", "1")
    pair.same("HINCRBY", "h", "new", "-9223372036854775808")
    pair.same("HINCRBY", "h", "new", "-1")
    pair.same("HGET", "h", "max")
    pair.same("HGET", "h", "min")
    pair.same("HINCRBY", "fresh", "n", "9223372036854775807")
    pair.same("HLEN", "fresh")


@pytest.mark.parametrize("stored", ["abc", " 1", "1 ", "1.5", "", "01", "-0", "+1", "99999999999999999999", "1e3"])
def test_hincrby_bad_stored_value(pair, stored):
    pair.same("HSET", "h", "f", stored)
    pair.same("HINCRBY", "h", "f", "1")
    pair.same("HGET", "h", "f")


@pytest.mark.parametrize("incr", ["abc", "1.5", "", " 1", "9223372036854775808", "-9223372036854775809", "0x10"])
def test_hincrby_bad_increment(pair, incr):
    pair.same("HINCRBY", "h", "f", incr)
    pair.same("HINCRBY", "str", "f", incr)
    pair.same("DBSIZE")


# ---------------------------------------------------------------- HINCRBYFLOAT

FLOAT_CASES = [
    ("0", "0.1"), ("0.1", "0.2"), ("10.5", "0.1"), ("0", "1e20"), ("0", "1.5e-10"), ("0", "0x10"),
    ("0", "0x1.8p3"), ("5.0e3", "2.0e2"), ("-1", "1"), ("1", "-1"), ("3", "-0.5"), ("0", "-0"),
    ("9223372036854775807", "1"), ("-9223372036854775808", "-1"), ("0", "1e308"), ("1e308", "1e308"),
    ("0", "1e4000"), ("0", "1e-300"), ("0", "1.7976931348623157e308"), ("0", "3.14159265358979323846264338"),
    ("0.000003814697265625", "0"), ("0", "123456789012345678901234567890"), ("1", "1e-17"), ("1", "1e-18"),
    ("0", ".5"), ("0", "5."), ("0", "+.5"), ("0", "1E5"), ("0", "1e+5"), ("0", "-1e-5"), ("7", "0e-5000"),
    ("0", "0.30000000000000004"), ("100", "-100.00000000000001"), ("1e4932", "1e4932"),
    ("0", "1.18973149535723176502e+4932"), ("0", "3.6e-4951"), ("0", "1e-5000"), ("inf", "1"),
    ("1", "inf"), ("1", "-inf"), ("1", "nan"), ("1", "infinity"), ("1", "abc"), ("abc", "1"),
    ("1", " 1"), ("1", "1 "), ("1", "1e"), ("1", ""), ("", "1"), ("1", "."), ("1", "-."), ("0x", "1"),
    ("1", "0x"), ("1", "1" * 5200), ("1", "1" * 5000), ("nan", "1"), ("-inf", "1"),
]


@pytest.mark.parametrize("start,incr", FLOAT_CASES)
def test_hincrbyfloat_matches_redis(pair, start, incr):
    pair.same("HSET", "h", "f", start)
    pair.same("HINCRBYFLOAT", "h", "f", incr)
    pair.same("HGET", "h", "f")
    pair.same("HINCRBYFLOAT", "h", "new", incr)
    pair.same("HINCRBYFLOAT", "fresh", "f", incr)
    pair.same("DBSIZE")


def test_hincrbyfloat_random_values(pair):
    rng = random.Random(20240607)
    for i in range(400):
        kind = i % 4
        if kind == 0:
            incr = repr(rng.uniform(-1000, 1000))
        elif kind == 1:
            incr = f"{rng.uniform(-1, 1):.{rng.randint(1, 25)}f}"
        elif kind == 2:
            incr = f"{rng.uniform(1, 10):.{rng.randint(1, 20)}g}e{rng.randint(-60, 60)}"
        else:
            incr = str(rng.randint(-10**12, 10**12))
        field = f"f{i % 7}"
        pair.same("HINCRBYFLOAT", "h", field, incr)
    same_map(pair, "HGETALL", "h")


def test_hincrbyfloat_sequence_accumulates_like_redis(pair):
    for _ in range(50):
        pair.same("HINCRBYFLOAT", "h", "f", "0.1")
    for _ in range(30):
        pair.same("HINCRBYFLOAT", "h", "f", "-0.7")
    pair.same("HINCRBYFLOAT", "h", "g", "1e-10")
    for _ in range(20):
        pair.same("HINCRBYFLOAT", "h", "g", "1e10")


# ---------------------------------------------------------------- WRONGTYPE


WRONGTYPE_CALLS = [
    ("HSET", "s", "f", "v"), ("HMSET", "s", "f", "v"), ("HSETNX", "s", "f", "v"), ("HGET", "s", "f"),
    ("HMGET", "s", "f"), ("HDEL", "s", "f"), ("HLEN", "s"), ("HSTRLEN", "s", "f"), ("HEXISTS", "s", "f"),
    ("HKEYS", "s"), ("HVALS", "s"), ("HGETALL", "s"), ("HINCRBY", "s", "f", "1"),
    ("HINCRBYFLOAT", "s", "f", "1"), ("HRANDFIELD", "s"), ("HRANDFIELD", "s", "2"),
    ("HRANDFIELD", "s", "0"), ("HRANDFIELD", "s", "-2", "WITHVALUES"), ("HSCAN", "s", "0"),
    ("HSCAN", "s", "0", "BOGUS"), ("HSCAN", "s", "0", "COUNT", "0"),
]


@pytest.mark.parametrize("call", WRONGTYPE_CALLS, ids=lambda c: " ".join(c))
def test_wrongtype_against_string(pair, call):
    pair.same("SET", "s", "value")
    pair.same(*call)
    pair.same("GET", "s")


def test_string_commands_against_hash(pair):
    pair.same("HSET", "h", "f", "v")
    pair.same("GET", "h")
    # SET replaces a hash; the old fields must not show through a new hash.
    pair.same("SET", "h", "x")
    pair.same("GET", "h")
    pair.same("HSET", "h", "g", "1")
    # Back to a hash (through an expiring string): only the new field shows.
    pair.same("SET", "h", "y", "PX", "30")
    time.sleep(0.1)
    pair.same("HSET", "h", "z", "1")
    same_map(pair, "HGETALL", "h")
    pair.same("HGET", "h", "f")
    if has_command(pair, "DEL"):
        pair.same("DEL", "h")
        pair.same("HSET", "h", "w", "1")
        same_map(pair, "HGETALL", "h")


# ---------------------------------------------------------------- expiry


def test_expired_string_is_not_wrongtype(pair):
    pair.same("SET", "k", "v", "PX", "30")
    time.sleep(0.1)
    pair.same("HSET", "k", "f", "v")
    pair.same("HGETALL", "k")
    pair.same("DBSIZE")


def test_expired_hash_is_gone(pair):
    if not has_command(pair, "PEXPIRE"):
        pytest.skip("PEXPIRE is not served yet")
    pair.same("HSET", "h", "a", "1", "b", "2")
    pair.same("PEXPIRE", "h", "50")
    pair.same("HSET", "h", "c", "3")
    ours, theirs = pair.call("PTTL", "h")
    assert 0 < ours <= 50 and 0 < theirs <= 50
    time.sleep(0.1)
    for call in [("HGET", "h", "a"), ("HLEN", "h"), ("HGETALL", "h"), ("HEXISTS", "h", "c"), ("HSCAN", "h", "0")]:
        pair.same(*call)
    pair.same("HSET", "h", "x", "1")
    same_map(pair, "HGETALL", "h")
    pair.same("TTL", "h")


# ---------------------------------------------------------------- HRANDFIELD


def test_hrandfield_errors(pair):
    pair.same("HSET", "h", "a", "1")
    for args in [
        ("x",), ("1.5",), ("",), ("-9223372036854775808",), ("9223372036854775808",),
        ("1", "WITHVALUE"), ("1", "WITHVALUES", "x"), ("1", "foo"),
        ("4611686018427387904", "WITHVALUES"), ("-4611686018427387904", "WITHVALUES"),
        ("x", "WITHVALUES"), ("-9223372036854775808", "foo"),
    ]:
        pair.same("HRANDFIELD", "h", *args)
        pair.same("HRANDFIELD", "missing", *args)
    pair.same("HRANDFIELD", "missing")
    pair.same("HRANDFIELD", "missing", "5")
    pair.same("HRANDFIELD", "missing", "-5", "WITHVALUES")
    pair.same("HRANDFIELD", "h", "0")
    pair.same("HRANDFIELD", "h", "0", "withvalues")
    pair.same("HRANDFIELD", "missing", "0")


def test_hrandfield_counts(pair):
    fields = {f"f{i}".encode(): f"v{i}".encode() for i in range(20)}
    for f, v in fields.items():
        pair.same("HSET", "h", f, v)
    keys = set(fields)

    def distinct_from(n):
        return lambda reply: len(reply) == n and len(set(reply)) == n and set(reply) <= keys

    pair.same_shape("HRANDFIELD", "h", check=lambda r: r in keys)
    pair.same_shape("HRANDFIELD", "h", "5", check=distinct_from(5))
    pair.same_shape("HRANDFIELD", "h", "1", check=distinct_from(1))
    pair.same_shape("HRANDFIELD", "h", "19", check=distinct_from(19))
    pair.same_shape("HRANDFIELD", "h", "20", check=distinct_from(20))
    pair.same_shape("HRANDFIELD", "h", "1000", check=distinct_from(20))
    pair.same_shape("HRANDFIELD", "h", "-50", check=lambda r: len(r) == 50 and set(r) <= keys)
    pair.same_shape("HRANDFIELD", "h", "-1", check=lambda r: len(r) == 1 and set(r) <= keys)

    def pairs_ok(n, distinct):
        def check(reply):
            got = list(zip(reply[0::2], reply[1::2]))
            return (len(got) == n and len(reply) == 2 * n and all(fields.get(f) == v for f, v in got)
                    and (not distinct or len({f for f, _ in got}) == n))
        return check

    pair.same_shape("HRANDFIELD", "h", "7", "WITHVALUES", check=pairs_ok(7, True))
    pair.same_shape("HRANDFIELD", "h", "30", "withvalues", check=pairs_ok(20, True))
    pair.same_shape("HRANDFIELD", "h", "-30", "WITHVALUES", check=pairs_ok(30, False))


def test_hrandfield_resp3_pairs(pair):
    pair.call("HELLO", "3")
    fields = {f"f{i}".encode(): f"v{i}".encode() for i in range(10)}
    for f, v in fields.items():
        pair.same("HSET", "h", f, v)

    def nested(n):
        return lambda r: len(r) == n and all(isinstance(p, list) and fields[p[0]] == p[1] for p in r)

    pair.same_shape("HRANDFIELD", "h", "3", "WITHVALUES", check=nested(3))
    pair.same_shape("HRANDFIELD", "h", "-15", "WITHVALUES", check=nested(15))
    pair.same_shape("HRANDFIELD", "h", "15", "WITHVALUES", check=nested(10))
    pair.same_shape("HRANDFIELD", "h", "4", check=lambda r: len(set(r)) == 4 and set(r) <= set(fields))


def test_hrandfield_is_random(pair):
    for i in range(50):
        pair.same("HSET", "h", f"f{i}", "v")
    picks = {pair.strata.call("HRANDFIELD", "h")[1] for _ in range(200)}
    assert len(picks) > 20
    samples = {tuple(pair.strata.call("HRANDFIELD", "h", "5")[1]) for _ in range(20)}
    assert len(samples) > 10


# ---------------------------------------------------------------- HSCAN


def test_hscan_small_and_large(pair):
    for n in [1, 5, 200, 1500]:
        key = f"h{n}"
        for i in range(n):
            pair.same("HSET", key, f"field:{i}", f"value:{i}")
        for options in [(), ("COUNT", "1"), ("COUNT", "7"), ("COUNT", "1000")]:
            ours, calls = full_hscan(pair.strata, key, *options)
            theirs, _ = full_hscan(pair.redis, key, *options)
            assert ours == theirs
            assert len(ours) == n
            if options == ("COUNT", "1") and n > 1:
                assert calls >= n  # the count bounds each step
    pair.same("HSCAN", "missing", "0")


def test_hscan_match(pair):
    for i in range(300):
        pair.same("HSET", "h", f"{'ab'[i % 2]}:{i}", str(i))
    for pattern in ["a:*", "*1", "b:1?", "[ab]:2*", "*", "nomatch*", "A:*"]:
        for count in ["1", "10", "500"]:
            ours, _ = full_hscan(pair.strata, "h", "MATCH", pattern, "COUNT", count)
            theirs, _ = full_hscan(pair.redis, "h", "MATCH", pattern, "COUNT", count)
            assert ours == theirs, pattern


def test_hscan_binary_fields(pair):
    for i, field in enumerate(BINARY):
        pair.same("HSET", "h", field, bytes([i]))
    for count in ["1", "3"]:
        ours, _ = full_hscan(pair.strata, "h", "COUNT", count)
        theirs, _ = full_hscan(pair.redis, "h", "COUNT", count)
        assert ours == theirs


def test_hscan_errors(pair):
    pair.same("HSET", "h", "a", "1")
    for args in [
        ("abc",), ("1.5",), ("",), ("0", "COUNT"), ("0", "COUNT", "0"), ("0", "COUNT", "-1"),
        ("0", "COUNT", "x"), ("0", "MATCH"), ("0", "TYPE", "string"), ("0", "BOGUS", "1"),
        ("0", "NOVALUES"), ("0", "MATCH", "*", "COUNT"), ("0", "count", "5", "match", "a"),
        ("18446744073709551616",), ("+0",), ("-0",), ("-1",), ("+",), ("-",), (" 0",), ("0 ",),
        ("-18446744073709551616",), ("99999999999999999999",), ("12345678",),
    ]:
        pair.same("HSCAN", "h", *args)
        pair.same("HSCAN", "missing", *args)


def test_hscan_survives_concurrent_changes(pair):
    for i in range(100):
        pair.same("HSET", "h", f"f{i:03}", "v")
    cursor, seen = b"0", set()
    step = 0
    while True:
        _, (cursor, items) = pair.strata.call("HSCAN", "h", cursor, "COUNT", "10")
        seen.update(items[0::2])
        # Fields added and removed during the scan; every field present
        # throughout must still be returned.
        pair.strata.call("HSET", "h", f"new{step}", "v")
        pair.strata.call("HDEL", "h", f"f{99 - step:03}")
        step += 1
        if cursor == b"0":
            break
    stable = {f"f{i:03}".encode() for i in range(100 - step)}
    assert stable <= seen


# ---------------------------------------------------------------- misc


def test_dbsize_tracks_hash_keys(pair):
    for i in range(10):
        pair.same("HSET", f"h{i}", "f", "v")
    pair.same("DBSIZE")
    for i in range(0, 10, 2):
        pair.same("HDEL", f"h{i}", "f")
    pair.same("DBSIZE")


def test_select_separates_hashes(pair):
    pair.same("HSET", "h", "f", "db0")
    pair.same("SELECT", "1")
    pair.same("HGET", "h", "f")
    pair.same("HSET", "h", "f", "db1")
    pair.same("SELECT", "0")
    pair.same("HGET", "h", "f")


def test_type_reports_hash(pair):
    if not has_command(pair, "TYPE"):
        pytest.skip("TYPE is not served yet")
    pair.same("HSET", "h", "f", "v")
    pair.same("TYPE", "h")


def test_redis_py_roundtrip(r):
    r.hset("user:1", mapping={"name": "Ada", "age": "36"})
    assert r.hgetall("user:1") == {b"name": b"Ada", b"age": b"36"}
    assert r.hincrby("user:1", "age", 1) == 37
    assert r.hincrbyfloat("user:1", "score", 2.5) == 2.5
    assert sorted(r.hkeys("user:1")) == [b"age", b"name", b"score"]
    assert dict(r.hscan_iter("user:1")) == r.hgetall("user:1")
    assert r.hdel("user:1", "name", "age", "score") == 3
    assert r.hlen("user:1") == 0
    assert r.hget("user:1", "name") is None
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        r.set("s", "v")
        r.hget("s", "f")
