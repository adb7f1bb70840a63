"""Set commands, differential against redis-server 7.0.

Redis returns members in its hash table's order and Strata in its own, so
set replies are compared as sets (and by reply type: `~` in RESP3). Random
commands (SPOP, SRANDMEMBER) and SSCAN are checked for shape and
invariants: membership, counts, distinctness, and what is left behind.
"""
import time

import pytest

from conftest import Err

BINARY = [b"", b"\x00", b"\xff\xfe", b"a\r\nb", b"\x00\r\n\xff", "ключ".encode(), b" ", b"*?[]"]
WRONGTYPE = "WRONGTYPE Operation against a key holding the wrong kind of value"


def same_set(pair, *args):
    """The replies are the same aggregate type and length, with the same
    members in any order."""
    (ours_raw, ours), (theirs_raw, theirs) = pair.strata.call(*args), pair.redis.call(*args)
    header = lambda raw: raw.split(b"\r\n", 1)[0]
    assert header(ours_raw) == header(theirs_raw), f"{args!r}: strata {ours_raw[:40]!r} != redis {theirs_raw[:40]!r}"
    assert isinstance(theirs, list), theirs
    assert sorted(ours) == sorted(theirs), f"{args!r}: strata {ours!r} != redis {theirs!r}"
    return theirs


def both(pair, *args):
    """Sends a command whose reply may differ (random) to both servers."""
    return pair.call(*args)


def members(conn, key):
    return set(conn.call("SMEMBERS", key)[1])


def same_members(pair, key):
    ours, theirs = members(pair.strata, key), members(pair.redis, key)
    assert ours == theirs, f"{key!r}: strata {ours!r} != redis {theirs!r}"
    return theirs


def full_sscan(conn, key, *options):
    """Iterates SSCAN to cursor 0; returns every member returned (a list, to
    see duplicates) and the number of calls."""
    cursor, seen, calls = b"0", [], 0
    while True:
        _, reply = conn.call("SSCAN", key, cursor, *options)
        cursor, items = reply
        calls += 1
        seen.extend(items)
        if cursor == b"0":
            return seen, calls
        assert calls < 100000


# ---------------------------------------------------------------- SADD / SREM / SCARD / SISMEMBER


def test_sadd_srem_scard(pair):
    pair.same("SADD", "s", "a")
    pair.same("SADD", "s", "a", "b", "c", "b")
    pair.same("SADD", "s", "a")
    pair.same("SCARD", "s")
    pair.same("SCARD", "missing")
    pair.same("SREM", "s", "a", "a", "zz")
    pair.same("SREM", "s", "zz")
    pair.same("SREM", "missing", "a")
    pair.same("SCARD", "s")
    same_set(pair, "SMEMBERS", "s")
    # Removing the last members deletes the key.
    pair.same("SREM", "s", "b", "c")
    pair.same("EXISTS", "s")
    pair.same("TYPE", "s")
    same_set(pair, "SMEMBERS", "s")
    pair.same("DBSIZE")


def test_integers_and_binary_members(pair):
    pair.same("SADD", "ints", "1", "2", "3", "-5", "1")
    same_set(pair, "SMEMBERS", "ints")
    pair.same("SADD", "bin", *BINARY)
    pair.same("SCARD", "bin")
    same_set(pair, "SMEMBERS", "bin")
    for m in BINARY:
        pair.same("SISMEMBER", "bin", m)
    pair.same("SMISMEMBER", "bin", *BINARY, "nope")
    pair.same("SREM", "bin", *BINARY[:3])
    same_set(pair, "SMEMBERS", "bin")
    pair.same("SADD", BINARY[4], BINARY[4])
    same_set(pair, "SMEMBERS", BINARY[4])


def test_sismember_smismember(pair):
    pair.same("SADD", "s", "a", "b")
    pair.same("SISMEMBER", "s", "a")
    pair.same("SISMEMBER", "s", "x")
    pair.same("SISMEMBER", "missing", "a")
    pair.same("SMISMEMBER", "s", "a", "x", "b", "a")
    pair.same("SMISMEMBER", "missing", "a", "b")
    pair.same("SMISMEMBER", "s", "a")


def test_large_sets(pair):
    many = [f"member:{i}" for i in range(3000)]
    for chunk in range(0, len(many), 500):
        pair.same("SADD", "big", *many[chunk:chunk + 500])
    pair.same("SADD", "big", *many[:10])
    pair.same("SCARD", "big")
    same_set(pair, "SMEMBERS", "big")
    pair.same("SREM", "big", *many[::2])
    pair.same("SCARD", "big")
    same_set(pair, "SMEMBERS", "big")
    large = b"x" * 200000
    pair.same("SADD", "big", large)
    pair.same("SISMEMBER", "big", large)
    pair.same("SADD", "ints", *[str(i) for i in range(1000)])
    same_set(pair, "SMEMBERS", "ints")


def test_arity_errors(pair):
    for args in [("SADD", "s"), ("SADD",), ("SREM", "s"), ("SMEMBERS",), ("SMEMBERS", "a", "b"),
                 ("SISMEMBER", "s"), ("SISMEMBER", "s", "a", "b"), ("SMISMEMBER", "s"), ("SCARD",),
                 ("SCARD", "a", "b"), ("SPOP",), ("SRANDMEMBER",), ("SMOVE", "a", "b"),
                 ("SMOVE", "a", "b", "c", "d"), ("SINTER",), ("SINTERCARD", "1"), ("SINTERSTORE", "d"),
                 ("SUNION",), ("SUNIONSTORE", "d"), ("SDIFF",), ("SDIFFSTORE", "d"), ("SSCAN", "s")]:
        pair.same(*args)


# ---------------------------------------------------------------- wrong types


def test_wrong_type_both_ways(pair):
    pair.same("SET", "str", "x")
    pair.same("HSET", "hash", "f", "v")
    for key in ("str", "hash"):
        for args in [("SADD", key, "a"), ("SREM", key, "a"), ("SMEMBERS", key), ("SISMEMBER", key, "a"),
                     ("SMISMEMBER", key, "a"), ("SCARD", key), ("SPOP", key), ("SPOP", key, "2"),
                     ("SPOP", key, "0"), ("SRANDMEMBER", key), ("SRANDMEMBER", key, "2"),
                     ("SRANDMEMBER", key, "0"), ("SRANDMEMBER", key, "-2"), ("SINTER", key),
                     ("SINTERCARD", "1", key), ("SUNION", key), ("SDIFF", key), ("SSCAN", key, "0"),
                     ("SSCAN", key, "0", "COUNT", "0"), ("SINTERSTORE", "d", key), ("SUNIONSTORE", "d", key),
                     ("SDIFFSTORE", "d", key)]:
            assert pair.same(*args) == WRONGTYPE, args
    # The string and hash are untouched.
    pair.same("GET", "str")
    pair.same("HGETALL", "hash")
    pair.same("SADD", "s", "a")
    for args in [("GET", "s"), ("APPEND", "s", "x"), ("INCR", "s"), ("HGET", "s", "f"), ("HSET", "s", "f", "v"),
                 ("STRLEN", "s"), ("GETRANGE", "s", "0", "1")]:
        assert pair.same(*args) == WRONGTYPE, args
    # SET replaces a set whatever it holds.
    pair.same("SET", "s", "now a string")
    pair.same("GET", "s")
    pair.same("TYPE", "s")


def test_multi_key_type_checks(pair):
    pair.same("SADD", "s", "a")
    pair.same("SET", "str", "x")
    # A missing key does not stop the type check of the others (Redis 7.0).
    for args in [("SINTER", "missing", "str"), ("SINTER", "s", "str"), ("SINTERCARD", "2", "missing", "str"),
                 ("SINTERSTORE", "d", "missing", "str"), ("SUNION", "missing", "str"), ("SDIFF", "missing", "str"),
                 ("SDIFF", "s", "str"), ("SUNIONSTORE", "d", "s", "str"), ("SDIFFSTORE", "d", "missing", "str")]:
        assert pair.same(*args) == WRONGTYPE, args
    # A failed store leaves the destination alone.
    pair.same("SET", "d", "keep")
    pair.same("SUNIONSTORE", "d", "s", "str")
    pair.same("GET", "d")


# ---------------------------------------------------------------- SPOP / SRANDMEMBER


def test_spop_single(pair):
    pair.same("SPOP", "missing")
    values = {b"a", b"b", b"c"}
    pair.same("SADD", "s", *values)
    popped = set()
    for _ in range(3):
        ours, theirs = both(pair, "SPOP", "s")
        assert ours in values and theirs in values
        assert ours not in popped
        popped.add(ours)
        assert ours not in members(pair.strata, "s")
    assert popped == values
    pair.same("EXISTS", "s")
    pair.same("SPOP", "s")


def test_spop_with_count(pair):
    values = {f"m{i}".encode() for i in range(20)}
    pair.same("SADD", "s", *values)
    ours, theirs = both(pair, "SPOP", "s", "5")
    for reply in (ours, theirs):
        assert isinstance(reply, list) and len(reply) == 5 and len(set(reply)) == 5
        assert set(reply) <= values
    assert members(pair.strata, "s") == values - set(ours)
    pair.same("SCARD", "s")
    same_set(pair, "SPOP", "s", "0")
    same_set(pair, "SPOP", "missing", "3")
    same_set(pair, "SPOP", "missing", "0")
    # A count larger than the set pops everything and deletes the key.
    left = members(pair.strata, "s")
    ours, theirs = both(pair, "SPOP", "s", "100")
    assert len(ours) == len(theirs) == 15
    assert set(ours) == left
    pair.same("EXISTS", "s")
    pair.same("SADD", "s", "a", "b")
    same_set(pair, "SPOP", "s", "2")
    pair.same("EXISTS", "s")


def test_spop_errors(pair):
    pair.same("SADD", "s", "a")
    for count in ("-1", "x", "1.5", "", "99999999999999999999", "-9223372036854775808"):
        pair.same("SPOP", "s", count)
        pair.same("SPOP", "missing", count)
    pair.same("SPOP", "s", "1", "2")
    pair.same("SPOP", "missing", "1", "2")
    pair.same("SCARD", "s")


def test_srandmember(pair):
    pair.same("SRANDMEMBER", "missing")
    pair.same("SRANDMEMBER", "missing", "5")
    pair.same("SRANDMEMBER", "missing", "-5")
    pair.same("SRANDMEMBER", "missing", "0")
    values = {f"m{i}".encode() for i in range(10)}
    pair.same("SADD", "s", *values)
    ours, theirs = both(pair, "SRANDMEMBER", "s")
    assert ours in values and theirs in values
    pair.same("SRANDMEMBER", "s", "0")
    for count in (1, 3, 9, 10, 11, 1000):
        for reply in both(pair, "SRANDMEMBER", "s", str(count)):
            assert isinstance(reply, list) and len(reply) == min(count, 10)
            assert len(set(reply)) == len(reply) and set(reply) <= values
    for count in (-1, -3, -10, -50):
        for reply in both(pair, "SRANDMEMBER", "s", str(count)):
            assert isinstance(reply, list) and len(reply) == -count and set(reply) <= values
    # Negative counts allow repeats: 50 picks from a 2-member set repeat.
    pair.same("SADD", "two", "x", "y")
    for reply in both(pair, "SRANDMEMBER", "two", "-50"):
        assert len(reply) == 50 and set(reply) <= {b"x", b"y"}
    # SRANDMEMBER does not change the set.
    assert same_members(pair, "s") == values


def test_srandmember_errors(pair):
    pair.same("SADD", "s", "a")
    for count in ("x", "1.5", "", "99999999999999999999", "-9223372036854775808", "-9223372036854775807x"):
        pair.same("SRANDMEMBER", "s", count)
        pair.same("SRANDMEMBER", "missing", count)
    pair.same("SRANDMEMBER", "s", "1", "2")
    pair.same("SRANDMEMBER", "s", "1", "WITHVALUES")


def test_spop_and_srandmember_cover_every_member(pair):
    values = {f"v{i}".encode() for i in range(8)}
    pair.same("SADD", "s", *values)
    seen = set()
    for _ in range(400):
        seen.add(pair.strata.call("SRANDMEMBER", "s")[1])
    assert seen == values


# ---------------------------------------------------------------- SMOVE


def test_smove(pair):
    pair.same("SADD", "src", "a", "b")
    pair.same("SADD", "dst", "c")
    pair.same("SMOVE", "src", "dst", "a")
    same_set(pair, "SMEMBERS", "src")
    same_set(pair, "SMEMBERS", "dst")
    pair.same("SMOVE", "src", "dst", "a")
    pair.same("SMOVE", "src", "dst", "zz")
    pair.same("SMOVE", "missing", "dst", "a")
    # Moving onto a member the destination already has.
    pair.same("SADD", "src", "c")
    pair.same("SMOVE", "src", "dst", "c")
    same_set(pair, "SMEMBERS", "dst")
    # Same source and destination.
    pair.same("SMOVE", "dst", "dst", "c")
    pair.same("SMOVE", "dst", "dst", "nope")
    # Moving the last member deletes the source; a missing destination is created.
    pair.same("SMOVE", "src", "new", "b")
    pair.same("EXISTS", "src")
    same_set(pair, "SMEMBERS", "new")
    pair.same("SMOVE", "new", "new2", b"\x00\xff")
    pair.same("DBSIZE")


def test_smove_types(pair):
    pair.same("SET", "str", "x")
    pair.same("SADD", "s", "a")
    pair.same("SMOVE", "missing", "str", "a")
    pair.same("SMOVE", "s", "str", "a")
    pair.same("SMOVE", "s", "str", "zz")
    pair.same("SMOVE", "str", "s", "a")
    pair.same("SMOVE", "str", "missing", "a")
    same_set(pair, "SMEMBERS", "s")
    pair.same("GET", "str")


def test_smove_keeps_ttl_of_source_and_destination(pair):
    pair.same("SADD", "src", "a", "b")
    pair.same("SADD", "dst", "c")
    pair.same("EXPIRE", "src", "100")
    pair.same("EXPIRE", "dst", "200")
    pair.same("SMOVE", "src", "dst", "a")
    pair.same("TTL", "src")
    pair.same("TTL", "dst")


# ---------------------------------------------------------------- SINTER / SUNION / SDIFF


def fill_algebra(pair):
    pair.same("SADD", "a", "1", "2", "3", "4", "x")
    pair.same("SADD", "b", "2", "3", "5", "x", "y")
    pair.same("SADD", "c", "3", "x", "z", b"\x00")
    pair.same("SADD", "d", b"\x00", "only-d")


COMBOS = [("a",), ("a", "b"), ("b", "a"), ("a", "b", "c"), ("a", "missing"), ("missing", "a"), ("a", "a"),
          ("c", "d"), ("a", "d"), ("missing",), ("missing", "missing2"), ("a", "b", "c", "d")]


def test_sinter_sunion_sdiff(pair):
    fill_algebra(pair)
    for keys in COMBOS:
        for cmd in ("SINTER", "SUNION", "SDIFF"):
            same_set(pair, cmd, *keys)
    same_set(pair, "SMEMBERS", "missing")


def test_store_variants(pair):
    fill_algebra(pair)
    for keys in COMBOS:
        for cmd in ("SINTERSTORE", "SUNIONSTORE", "SDIFFSTORE"):
            pair.same(cmd, "dst", *keys)
            pair.same("EXISTS", "dst")
            pair.same("TYPE", "dst")
            same_set(pair, "SMEMBERS", "dst")
    same_set(pair, "SMEMBERS", "a")


def test_store_replaces_destination(pair):
    fill_algebra(pair)
    # A string or hash destination is replaced; its TTL goes away.
    pair.same("SET", "dst", "x", "EX", "100")
    pair.same("SUNIONSTORE", "dst", "a", "b")
    pair.same("TYPE", "dst")
    pair.same("TTL", "dst")
    same_set(pair, "SMEMBERS", "dst")
    pair.same("HSET", "h", "f", "v")
    pair.same("SINTERSTORE", "h", "a", "b")
    same_set(pair, "SMEMBERS", "h")
    # A set destination with a TTL loses it too.
    pair.same("EXPIRE", "dst", "100")
    pair.same("SDIFFSTORE", "dst", "a", "b")
    pair.same("TTL", "dst")
    # An empty result deletes the destination, whatever it held.
    pair.same("SET", "gone", "x")
    pair.same("SINTERSTORE", "gone", "a", "missing")
    pair.same("EXISTS", "gone")
    pair.same("HSET", "gone", "f", "v")
    pair.same("SDIFFSTORE", "gone", "a", "a")
    pair.same("EXISTS", "gone")
    pair.same("SUNIONSTORE", "gone", "missing")
    pair.same("EXISTS", "gone")
    # The destination may be one of the sources.
    pair.same("SUNIONSTORE", "a", "a", "d")
    same_set(pair, "SMEMBERS", "a")
    pair.same("SINTERSTORE", "b", "b", "a")
    same_set(pair, "SMEMBERS", "b")
    pair.same("SDIFFSTORE", "c", "c", "b")
    same_set(pair, "SMEMBERS", "c")


def test_sintercard(pair):
    fill_algebra(pair)
    for keys in COMBOS:
        pair.same("SINTERCARD", len(keys), *keys)
        for limit in ("0", "1", "2", "100"):
            pair.same("SINTERCARD", len(keys), *keys, "LIMIT", limit)
            pair.same("SINTERCARD", len(keys), *keys, "limit", limit)
    pair.same("SINTERCARD", "1", "a", "LIMIT", "1", "LIMIT", "0")


def test_sintercard_errors(pair):
    pair.same("SADD", "a", "1")
    for args in [("0", "a"), ("-1", "a"), ("x", "a"), ("", "a"), ("2", "a"), ("3", "a", "b"), ("1", "a", "LIMIT"),
                 ("1", "a", "LIMIT", "-1"), ("1", "a", "LIMIT", "x"), ("1", "a", "b"), ("1", "a", "LIMIT", "1", "x"),
                 ("1", "a", "COUNT", "1"), ("99999999999999999999", "a")]:
        pair.same("SINTERCARD", *args)


# ---------------------------------------------------------------- SSCAN


def test_sscan_returns_every_member_once(pair):
    values = {f"m:{i}".encode() for i in range(500)} | set(BINARY)
    pair.same("SADD", "s", *values)
    for options in [(), ("COUNT", "1"), ("COUNT", "7"), ("COUNT", "1000")]:
        seen, calls = full_sscan(pair.strata, "s", *options)
        assert sorted(seen) == sorted(values), options
    seen, calls = full_sscan(pair.strata, "s", "COUNT", "10")
    assert calls >= 50
    # MATCH filters what a call returns (Redis: after picking the members).
    for pattern in ("m:1*", "*", "m:?", "*[0-2]", "\\*?\\[\\]", ""):
        ours, _ = full_sscan(pair.strata, "s", "MATCH", pattern, "COUNT", "20")
        theirs, _ = full_sscan(pair.redis, "s", "MATCH", pattern, "COUNT", "20")
        assert sorted(ours) == sorted(theirs), pattern


def test_sscan_small_and_missing(pair):
    pair.same("SSCAN", "missing", "0")
    pair.same("SSCAN", "missing", "0", "COUNT", "0")
    pair.same("SSCAN", "missing", "0", "NOPE")
    pair.same("SADD", "s", "a", "b", "c")
    ours, theirs = both(pair, "SSCAN", "s", "0")
    for cursor, items in (ours, theirs):
        assert cursor == b"0" and sorted(items) == [b"a", b"b", b"c"]
    pair.same("SSCAN", "s", "0", "MATCH", "zz*")


def test_sscan_errors(pair):
    pair.same("SADD", "s", "a")
    for args in [("x",), ("-",), ("1.5",), ("0", "COUNT", "0"), ("0", "COUNT", "-1"), ("0", "COUNT", "x"),
                 ("0", "COUNT"), ("0", "MATCH"), ("0", "NOPE", "x"), ("0", "TYPE", "set")]:
        pair.same("SSCAN", "s", *args)
    pair.same("SSCAN", "missing", "x")


def test_sscan_survives_changes(pair):
    values = {f"k{i}".encode() for i in range(200)}
    pair.strata.call("SADD", "s", *values)
    cursor, seen, step = b"0", set(), 0
    while True:
        cursor, items = pair.strata.call("SSCAN", "s", cursor, "COUNT", "10")[1]
        seen.update(items)
        # Members added and removed during the scan may or may not show up;
        # the ones present throughout must.
        pair.strata.call("SADD", "s", f"new{step}")
        pair.strata.call("SREM", "s", f"k{199 - step}")
        step += 1
        if cursor == b"0":
            break
    stable = {f"k{i}".encode() for i in range(200 - step)}
    assert stable <= seen


# ---------------------------------------------------------------- keyspace commands on sets


def test_generic_commands(pair):
    pair.same("SADD", "s", "a", "b", "c")
    pair.same("TYPE", "s")
    pair.same("EXISTS", "s", "s", "missing")
    pair.same("EXPIRE", "s", "100")
    pair.same("TTL", "s")
    pair.same("PERSIST", "s")
    pair.same("TTL", "s")
    pair.same("RENAME", "s", "t")
    same_set(pair, "SMEMBERS", "t")
    pair.same("EXISTS", "s")
    pair.same("COPY", "t", "u")
    pair.same("SADD", "u", "d")
    same_set(pair, "SMEMBERS", "t")
    same_set(pair, "SMEMBERS", "u")
    pair.same("MOVE", "u", "1")
    pair.same("SELECT", "1")
    same_set(pair, "SMEMBERS", "u")
    pair.same("SELECT", "0")
    pair.same("SET", "str", "x")
    pair.same("HSET", "h", "f", "v")
    for typ in ("set", "string", "hash"):
        ours, theirs = pair.call("SCAN", "0", "TYPE", typ, "COUNT", "1000")
        assert ours[0] == theirs[0] == b"0" and sorted(ours[1]) == sorted(theirs[1]), typ
    pair.same("DEL", "t", "str")
    pair.same("EXISTS", "t")
    pair.same("DBSIZE")


def test_set_expiry(pair):
    pair.same("SADD", "s", "a")
    pair.same("PEXPIRE", "s", "50")
    time.sleep(0.15)
    pair.same("SCARD", "s")
    pair.same("SADD", "s", "b")
    pair.same("TTL", "s")
    same_set(pair, "SMEMBERS", "s")
    # An expired source is an empty set for the multi-key commands.
    pair.same("SADD", "e", "x")
    pair.same("PEXPIRE", "e", "30")
    time.sleep(0.1)
    same_set(pair, "SUNION", "e", "s")
    pair.same("SMOVE", "e", "s", "x")
    pair.same("SINTERCARD", "1", "e")


# ---------------------------------------------------------------- RESP3


def test_resp3_shapes(pair):
    pair.call("HELLO", "3")
    fill_algebra(pair)
    same_set(pair, "SMEMBERS", "a")
    same_set(pair, "SMEMBERS", "missing")
    for cmd in ("SINTER", "SUNION", "SDIFF"):
        same_set(pair, cmd, "a", "b")
        same_set(pair, cmd, "missing")
    pair.same("SMISMEMBER", "a", "1", "nope")
    pair.same("SISMEMBER", "a", "1")
    pair.same("SPOP", "missing")
    pair.same("SRANDMEMBER", "missing")
    same_set(pair, "SPOP", "missing", "2")
    pair.same("SRANDMEMBER", "missing", "2")
    pair.same("SRANDMEMBER", "a", "0")
    same_set(pair, "SPOP", "a", "0")
    (ours_raw, ours), (theirs_raw, theirs) = pair.strata.call("SPOP", "d", "1"), pair.redis.call("SPOP", "d", "1")
    assert ours_raw[:2] == theirs_raw[:2] == b"~1"
    (ours_raw, _), (theirs_raw, _) = pair.strata.call("SRANDMEMBER", "a", "2"), pair.redis.call("SRANDMEMBER", "a", "2")
    assert ours_raw[:2] == theirs_raw[:2] == b"*2"
    (ours_raw, _), (theirs_raw, _) = pair.strata.call("SSCAN", "c", "0"), pair.redis.call("SSCAN", "c", "0")
    assert ours_raw[:4] == theirs_raw[:4] == b"*2\r\n"
    pair.same("SSCAN", "missing", "0")


def test_keyspace_hits_and_misses(pair):
    pair.same("SADD", "s", "1", "2")
    pair.same("SADD", "t", "a")
    pair.call("CONFIG", "RESETSTAT")
    for args in [("SMEMBERS", "s"), ("SMEMBERS", "nx"), ("SISMEMBER", "s", "1"), ("SMISMEMBER", "nx", "1"),
                 ("SCARD", "t"), ("SINTER", "s", "t", "nx"), ("SINTERSTORE", "d", "s", "nx"), ("SUNION", "s", "nx"),
                 ("SDIFF", "t", "s"), ("SINTERCARD", "2", "t", "nx"), ("SSCAN", "nx", "0"), ("SSCAN", "s", "0"),
                 ("SRANDMEMBER", "t"), ("SRANDMEMBER", "nx", "2"), ("SMOVE", "s", "t", "1"), ("SPOP", "s")]:
        pair.call(*args)
    stats = [{k: v for k, v in (line.split(b":", 1) for line in info.split(b"\r\n") if line.startswith(b"keyspace_"))}
             for info in pair.call("INFO", "stats")]
    assert stats[0] == stats[1]


def test_sscan_large_set_finishes_in_few_calls(pair):
    values = [f"e{i}" for i in range(20000)]
    for chunk in range(0, len(values), 1000):
        pair.strata.call("SADD", "big", *values[chunk:chunk + 1000])
    seen, calls = full_sscan(pair.strata, "big", "COUNT", "5")
    assert sorted(seen) == sorted(v.encode() for v in values)
    assert calls <= 70
