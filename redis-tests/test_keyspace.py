"""Generic keyspace commands against a real Redis 7.0: DEL UNLINK EXISTS TYPE
RENAME RENAMENX COPY MOVE TOUCH, the EXPIRE/TTL family, PERSIST, KEYS, SCAN,
RANDOMKEY, OBJECT, and active expiry. Keys of both RocksDB types (strings
and hashes) and binary key names throughout."""
import time

import pytest

from conftest import Err, canonical, start_redis, start_strata

BIN = b"bin\x00\xff\r\nkey"
BIN2 = b"\x00"


def ttl_close(pair, *args, tolerance):
    """Both reply with integers within `tolerance` of each other (TTLs tick
    between the two calls)."""
    ours, theirs = pair.call(*args)
    assert isinstance(ours, int) and isinstance(theirs, int), (args, ours, theirs)
    assert abs(ours - theirs) <= tolerance, f"{args!r}: strata {ours} vs redis {theirs}"
    return ours, theirs


def fill(pair):
    """A string, an integer string, a hash and binary-named keys."""
    pair.same("SET", "s", "hello")
    pair.same("SET", "n", "42")
    pair.same("HSET", "h", "f1", "v1", "f2", b"\x00\xff")
    pair.same("SET", BIN, b"\r\n\x00")
    pair.same("HSET", BIN2, "", "empty-field")


def test_del_and_unlink(pair):
    fill(pair)
    pair.same("DEL", "s", "s", "missing")
    pair.same("EXISTS", "s")
    pair.same("DEL", "h", BIN, "n")
    pair.same("DBSIZE")
    pair.same("UNLINK", BIN2, BIN2)
    pair.same("DBSIZE")
    pair.same("DEL", "nothing")
    pair.same("UNLINK", "nothing", "")
    pair.same("DEL")
    pair.same("UNLINK")
    # A deleted hash comes back empty: old fields do not show through.
    pair.same("HSET", "h", "a", "1")
    pair.same("DEL", "h")
    pair.same("HSET", "h", "b", "2")
    pair.same_unordered("HGETALL", "h")


def test_exists_counts_duplicates(pair):
    fill(pair)
    pair.same("EXISTS", "s", "s", "s", "h", "missing", BIN, BIN2)
    pair.same("EXISTS", "missing")
    pair.same("EXISTS", "")
    pair.same("EXISTS")


def test_type(pair):
    fill(pair)
    for key in ["s", "n", "h", BIN, BIN2, "missing", ""]:
        pair.same("TYPE", key)
    pair.same("TYPE")
    pair.same("TYPE", "a", "b")


def test_touch(pair):
    fill(pair)
    pair.same("TOUCH", "s", "h", "s", "missing", BIN)
    pair.same("TOUCH", "missing")
    pair.same("TOUCH")


def test_rename_strings_and_hashes(pair):
    fill(pair)
    pair.same("RENAME", "s", "s2")
    pair.same("EXISTS", "s")
    pair.same("GET", "s2")
    pair.same("RENAME", "h", BIN + b"-h")
    pair.same("EXISTS", "h")
    pair.same_unordered("HGETALL", BIN + b"-h")
    pair.same("HLEN", BIN + b"-h")
    # Overwrite a key of another type.
    pair.same("RENAME", BIN + b"-h", "s2")
    pair.same("TYPE", "s2")
    pair.same_unordered("HGETALL", "s2")
    pair.same("RENAME", "n", "s2")
    pair.same("TYPE", "s2")
    pair.same("GET", "s2")
    pair.same("DBSIZE")
    # Errors and the same key.
    pair.same("RENAME", "missing", "x")
    pair.same("RENAME", "missing", "missing")
    pair.same("RENAME", "s2", "s2")
    pair.same("GET", "s2")
    pair.same("RENAME", "s2")
    pair.same("RENAME", "a", "b", "c")


def test_rename_keeps_and_replaces_ttl(pair):
    pair.same("SET", "src", "v", "EX", "100")
    pair.same("SET", "dst", "old", "EX", "5000")
    pair.same("RENAME", "src", "dst")
    ttl_close(pair, "TTL", "dst", tolerance=1)
    pair.same("TTL", "src")
    # A source without a TTL clears the destination's.
    pair.same("SET", "plain", "v")
    pair.same("RENAME", "plain", "dst")
    pair.same("TTL", "dst")
    pair.same("HSET", "hsrc", "f", "v")
    pair.same("PEXPIRE", "hsrc", "100000")
    pair.same("RENAME", "hsrc", "hdst")
    ttl_close(pair, "PTTL", "hdst", tolerance=1000)
    pair.same("HGET", "hdst", "f")
    pair.same("DBSIZE")


def test_renamenx(pair):
    fill(pair)
    pair.same("RENAMENX", "s", "h")
    pair.same("GET", "s")
    pair.same("RENAMENX", "s", "new")
    pair.same("GET", "new")
    pair.same("RENAMENX", "h", "h")
    pair.same("RENAMENX", "missing", "x")
    pair.same("RENAMENX", "missing", "missing")
    pair.same("RENAMENX", "h", BIN + b"2")
    pair.same_unordered("HGETALL", BIN + b"2")
    pair.same("RENAMENX", "h")


def test_rename_expired_source(pair):
    pair.same("SET", "gone", "v", "PX", "1")
    time.sleep(0.05)
    pair.same("RENAME", "gone", "x")
    pair.same("RENAMENX", "gone", "x")
    pair.same("EXISTS", "x")


def test_copy(pair):
    fill(pair)
    pair.same("COPY", "s", "s-copy")
    pair.same("GET", "s-copy")
    pair.same("COPY", "s", "s-copy")
    pair.same("COPY", "n", "s-copy", "REPLACE")
    pair.same("GET", "s-copy")
    pair.same("COPY", "h", "h-copy")
    pair.same_unordered("HGETALL", "h-copy")
    # The copy is independent of its source.
    pair.same("HSET", "h-copy", "f1", "changed", "f3", "new")
    pair.same_unordered("HGETALL", "h")
    pair.same_unordered("HGETALL", "h-copy")
    pair.same("HDEL", "h", "f2")
    pair.same_unordered("HGETALL", "h-copy")
    pair.same("COPY", "h", "s", "replace")
    pair.same("TYPE", "s")
    pair.same_unordered("HGETALL", "s")
    pair.same("COPY", BIN, BIN2, "REPLACE")
    pair.same("GET", BIN2)
    pair.same("COPY", "missing", "x")
    pair.same("EXISTS", "x")
    pair.same("DBSIZE")


def test_copy_ttl_and_db(pair):
    pair.same("SET", "k", "v", "EX", "1000")
    pair.same("HSET", "h", "a", "1", "b", "2")
    pair.same("COPY", "k", "k2")
    ttl_close(pair, "TTL", "k2", tolerance=1)
    pair.same("COPY", "k", "k", "DB", "1")
    pair.same("COPY", "h", "h", "db", "2")
    pair.same("COPY", "h", "h", "db", "2")
    pair.same("COPY", "k", "h", "DB", "2", "REPLACE")
    pair.same("SELECT", "1")
    ttl_close(pair, "TTL", "k", tolerance=1)
    pair.same("GET", "k")
    pair.same("DBSIZE")
    pair.same("SELECT", "2")
    pair.same("TYPE", "h")
    pair.same("GET", "h")
    pair.same("SELECT", "0")
    pair.same_unordered("HGETALL", "h")
    pair.same("DBSIZE")


def test_copy_errors(pair):
    pair.same("SET", "a", "1")
    pair.same("COPY", "a", "a")
    pair.same("COPY", "missing", "missing")
    pair.same("COPY", "a", "a", "DB", "0")
    pair.same("COPY", "a", "b", "DB", "16")
    pair.same("COPY", "a", "b", "DB", "-1")
    pair.same("COPY", "a", "b", "DB", "x")
    pair.same("COPY", "a", "b", "DB", "99999999999")
    pair.same("COPY", "a", "b", "DB", "1.5")
    pair.same("COPY", "a", "b", "DB")
    pair.same("COPY", "a", "b", "DB", "1", "foo")
    pair.same("COPY", "a", "b", "foo")
    pair.same("COPY", "a", "b", "DB", "99", "foo")
    pair.same("COPY", "a")
    pair.same("DBSIZE")


def test_move(pair):
    fill(pair)
    pair.same("SET", "ttl", "v", "EX", "1000")
    pair.same("MOVE", "s", "1")
    pair.same("EXISTS", "s")
    pair.same("MOVE", "h", "1")
    pair.same("MOVE", BIN, "15")
    pair.same("MOVE", "ttl", "1")
    pair.same("MOVE", "missing", "1")
    pair.same("DBSIZE")
    # Already present in the target: nothing moves.
    pair.same("SET", "s", "again")
    pair.same("MOVE", "s", "1")
    pair.same("GET", "s")
    pair.same("SELECT", "1")
    pair.same("GET", "s")
    pair.same_unordered("HGETALL", "h")
    ttl_close(pair, "TTL", "ttl", tolerance=1)
    pair.same("DBSIZE")
    # And back.
    pair.same("MOVE", "h", "0")
    pair.same("EXISTS", "h")
    pair.same("SELECT", "15")
    pair.same("GET", BIN)
    pair.same("SELECT", "0")
    pair.same_unordered("HGETALL", "h")
    pair.same("DBSIZE")


def test_move_errors(pair):
    pair.same("SET", "a", "1")
    pair.same("MOVE", "a", "0")
    pair.same("MOVE", "missing", "0")
    pair.same("MOVE", "a", "16")
    pair.same("MOVE", "a", "-1")
    pair.same("MOVE", "a", "1x")
    pair.same("MOVE", "a", "")
    pair.same("MOVE", "a", "99999999999")
    pair.same("MOVE", "a", "-99999999999")
    pair.same("MOVE", "a")
    pair.same("MOVE", "a", "1", "2")
    pair.same("GET", "a")


def test_expire_sets_ttls(pair):
    fill(pair)
    pair.same("EXPIRE", "s", "100")
    ttl_close(pair, "TTL", "s", tolerance=1)
    ttl_close(pair, "PTTL", "s", tolerance=1000)
    pair.same("PEXPIRE", "h", "200000")
    ttl_close(pair, "TTL", "h", tolerance=1)
    ttl_close(pair, "PTTL", "h", tolerance=1000)
    pair.same("EXPIREAT", BIN, "4102444800")
    pair.same("EXPIRETIME", BIN)
    pair.same("PEXPIRETIME", BIN)
    pair.same("PEXPIREAT", BIN2, "4102444800123")
    pair.same("EXPIRETIME", BIN2)
    pair.same("PEXPIRETIME", BIN2)
    pair.same("PEXPIREAT", "h", "4102444800500")
    pair.same("EXPIRETIME", "h")
    pair.same("PEXPIREAT", "h", "4102444800499")
    pair.same("EXPIRETIME", "h")
    ttl_close(pair, "TTL", BIN2, tolerance=1)
    pair.same("EXPIRE", "missing", "100")
    pair.same("PEXPIRE", "missing", "100")
    pair.same("EXPIREAT", "missing", "4102444800")
    pair.same("PEXPIREAT", "missing", "4102444800000")
    # The value is untouched.
    pair.same("GET", "s")
    pair.same_unordered("HGETALL", "h")
    pair.same("DBSIZE")


def test_expire_in_the_past_deletes(pair):
    fill(pair)
    pair.same("EXPIRE", "s", "0")
    pair.same("EXISTS", "s")
    pair.same("EXPIRE", "h", "-10")
    pair.same("EXISTS", "h")
    pair.same("PEXPIRE", "n", "-1")
    pair.same("EXPIREAT", BIN, "1")
    pair.same("PEXPIREAT", BIN2, "0")
    pair.same("DBSIZE")
    pair.same("SET", "k", "v")
    pair.same("EXPIREAT", "k", "-5")
    pair.same("EXISTS", "k")
    pair.same("HSET", "h", "f", "v")
    pair.same("EXPIRE", "h", "-9223372036854775")
    pair.same("HGETALL", "h")


def test_expire_options(pair):
    pair.same("SET", "k", "v")
    # NX: only without a TTL.
    pair.same("EXPIRE", "k", "100", "NX")
    pair.same("EXPIRE", "k", "200", "nx")
    ttl_close(pair, "TTL", "k", tolerance=1)
    # XX: only with a TTL.
    pair.same("SET", "plain", "v")
    pair.same("EXPIRE", "plain", "100", "XX")
    pair.same("TTL", "plain")
    pair.same("EXPIRE", "k", "300", "XX")
    ttl_close(pair, "TTL", "k", tolerance=1)
    # GT: only a later TTL; no TTL counts as infinite.
    pair.same("EXPIRE", "k", "200", "GT")
    pair.same("EXPIRE", "k", "299", "GT")
    pair.same("EXPIRE", "k", "400", "GT")
    ttl_close(pair, "TTL", "k", tolerance=1)
    pair.same("EXPIRE", "plain", "400", "GT")
    pair.same("TTL", "plain")
    # LT: only an earlier TTL; a key without one accepts any.
    pair.same("EXPIRE", "k", "500", "LT")
    pair.same("EXPIRE", "k", "400", "LT")
    pair.same("EXPIRE", "k", "350", "lt")
    ttl_close(pair, "TTL", "k", tolerance=1)
    pair.same("EXPIRE", "plain", "50", "LT")
    ttl_close(pair, "TTL", "plain", tolerance=1)
    # XX combines with GT and LT.
    pair.same("SET", "p2", "v")
    pair.same("EXPIRE", "p2", "100", "XX", "GT")
    pair.same("EXPIRE", "k", "1000", "XX", "GT")
    pair.same("EXPIRE", "k", "10", "LT", "XX")
    ttl_close(pair, "TTL", "k", tolerance=1)
    # The same with milliseconds and absolute times, on a hash.
    pair.same("HSET", "h", "f", "v")
    pair.same("PEXPIREAT", "h", "4102444800000", "NX")
    pair.same("PEXPIREAT", "h", "4102444800001", "NX")
    pair.same("PEXPIREAT", "h", "4102444700000", "GT")
    pair.same("PEXPIREAT", "h", "4102444900000", "GT")
    pair.same("EXPIREAT", "h", "4102444950", "LT")
    pair.same("EXPIREAT", "h", "4102444850", "LT")
    pair.same("PEXPIRETIME", "h")
    pair.same("EXPIRE", "missing", "10", "XX")
    pair.same("EXPIRE", "missing", "10", "NX")
    # A past time under a passing condition deletes.
    pair.same("EXPIRE", "h", "-1", "LT")
    pair.same("EXISTS", "h")
    pair.same("SET", "x", "v", "EX", "100")
    pair.same("EXPIRE", "x", "-1", "GT")
    pair.same("EXISTS", "x")


def test_expire_errors(pair):
    pair.same("SET", "k", "v")
    for cmd in ["EXPIRE", "PEXPIRE", "EXPIREAT", "PEXPIREAT"]:
        pair.same(cmd, "k", "10", "NX", "XX")
        pair.same(cmd, "k", "10", "NX", "GT")
        pair.same(cmd, "k", "10", "LT", "NX")
        pair.same(cmd, "k", "10", "GT", "LT")
        pair.same(cmd, "k", "10", "FOO")
        pair.same(cmd, "k", "10", "NX", "FOO")
        pair.same(cmd, "k", "abc")
        pair.same(cmd, "k", "abc", "FOO")
        pair.same(cmd, "k", "abc", "NX", "XX")
        pair.same(cmd, "k", "1.5")
        pair.same(cmd, "k", "")
        pair.same(cmd, "k", "99999999999999999999")
        pair.same(cmd, "k")
        pair.same(cmd, "missing", "abc")
    # Overflow in the unit conversion or the base-time addition.
    pair.same("EXPIRE", "k", "9223372036854775")
    pair.same("TTL", "k")
    pair.same("EXPIRE", "k", "9223372036854776")
    pair.same("EXPIRE", "k", "-9223372036854776")
    pair.same("EXPIRE", "k", "-9223372036854775808")
    pair.same("EXPIREAT", "k", "9223372036854776")
    pair.same("PEXPIRE", "k", "9223372036854775807")
    pair.same("PEXPIRE", "k", "9223372036854775000")
    pair.same("PEXPIREAT", "k", "9223372036854775807")
    pair.same("PEXPIRETIME", "k")
    pair.same("EXPIRETIME", "k")
    pair.same("EXPIRE", "missing", "9223372036854776")


def test_ttl_family(pair):
    fill(pair)
    for cmd in ["TTL", "PTTL", "EXPIRETIME", "PEXPIRETIME"]:
        pair.same(cmd, "s")
        pair.same(cmd, "h")
        pair.same(cmd, "missing")
        pair.same(cmd, BIN)
        pair.same(cmd)
        pair.same(cmd, "a", "b")
    pair.same("SET", "e", "v", "PX", "1500")
    ttl_close(pair, "TTL", "e", tolerance=1)
    ttl_close(pair, "PTTL", "e", tolerance=200)
    pair.same("SET", "soon", "v", "PX", "1")
    time.sleep(0.05)
    for cmd in ["TTL", "PTTL", "EXPIRETIME", "PEXPIRETIME"]:
        pair.same(cmd, "soon")


def test_persist(pair):
    fill(pair)
    pair.same("PERSIST", "s")
    pair.same("EXPIRE", "s", "100")
    pair.same("PERSIST", "s")
    pair.same("TTL", "s")
    pair.same("PERSIST", "s")
    pair.same("PEXPIRE", "h", "100000")
    pair.same("PERSIST", "h")
    pair.same("TTL", "h")
    pair.same_unordered("HGETALL", "h")
    pair.same("PERSIST", "missing")
    pair.same("PERSIST")
    pair.same("PERSIST", "a", "b")
    # The key is no longer expired by active expiry.
    pair.same("SET", "p", "v", "PX", "300")
    pair.same("PERSIST", "p")
    time.sleep(0.5)
    pair.same("GET", "p")
    pair.same("DBSIZE")


def test_keys(pair):
    fill(pair)
    for i in range(30):
        pair.same("SET", f"user:{i}", i)
    pair.same("HSET", "user:h", "f", "v")
    for pattern in ["*", "user:*", "user:1?", "user:[12]", "user:[^1]*", "s", "h*", "nomatch*",
                    "*\x00*", "bin*", "", "\\*", "user:\\1"]:
        pair.same_unordered("KEYS", pattern)
    pair.same_unordered("KEYS", BIN)
    pair.same("KEYS")
    pair.same("KEYS", "a", "b")


def test_keys_skips_expired(pair):
    pair.same("SET", "live", "v")
    pair.same("SET", "dead", "v", "PX", "1")
    pair.same("HSET", "hdead", "f", "v")
    pair.same("PEXPIRE", "hdead", "1")
    time.sleep(0.05)
    pair.same_unordered("KEYS", "*")


def scan_all(conn, *options):
    """Iterates SCAN to cursor 0; returns every key returned and the number
    of calls."""
    seen = []
    cursor = b"0"
    calls = 0
    while True:
        raw, reply = conn.call("SCAN", cursor, *options)
        assert not isinstance(reply, Err), reply
        cursor, keys = reply
        seen.extend(keys)
        calls += 1
        assert calls < 10000
        if cursor == b"0":
            return seen, calls


def test_scan_iterates_everything(pair):
    fill(pair)
    for i in range(200):
        pair.same("SET", f"k:{i}", i)
    for i in range(20):
        pair.same("HSET", f"h:{i}", "f", i)
    pair.same("SET", "dead", "v", "PX", "1")
    time.sleep(0.05)
    for options in [(), ("COUNT", "1"), ("COUNT", "7"), ("COUNT", "1000"),
                    ("MATCH", "k:1*"), ("MATCH", "*"), ("MATCH", "h:*", "COUNT", "3"),
                    ("TYPE", "hash"), ("TYPE", "STRING", "COUNT", "50"), ("TYPE", "list"),
                    ("TYPE", "nosuchtype"), ("MATCH", "k:*", "TYPE", "hash"),
                    ("match", "bin*", "count", "2", "type", "string")]:
        ours, calls = scan_all(pair.strata, *options)
        theirs, _ = scan_all(pair.redis, *options)
        assert sorted(set(ours)) == sorted(set(theirs)), options
        # Each key at most once when nothing changes between calls.
        assert len(ours) == len(set(ours)), options
    ours, calls = scan_all(pair.strata, "COUNT", "10")
    assert calls >= 200 // 10


def test_scan_count_bounds_the_work(pair):
    for i in range(50):
        pair.strata.call("SET", f"k{i}", i)
    raw, (cursor, keys) = pair.strata.call("SCAN", "0", "COUNT", "5")
    assert cursor != b"0" and len(keys) == 5
    raw, (cursor, keys) = pair.strata.call("SCAN", cursor, "COUNT", "100")
    assert cursor == b"0" and len(keys) == 45


def test_scan_errors(pair):
    pair.same("SET", "a", "1")
    pair.same("SCAN", "x")
    # strtoul's rules: a sign is accepted (where a foreign cursor resumes
    # is up to the server).
    for cursor in ["-1", "+1", "-0"]:
        pair.same_shape("SCAN", cursor, check=lambda reply: isinstance(reply, list) and len(reply) == 2)
    pair.same("SCAN", "18446744073709551616")
    pair.same("SCAN", "")
    pair.same("SCAN", "-")
    pair.same("SCAN", " 0")
    pair.same("SCAN", "x", "COUNT", "0")
    pair.same("SCAN", "0", "COUNT", "0")
    pair.same("SCAN", "0", "COUNT", "-1")
    pair.same("SCAN", "0", "COUNT", "abc")
    pair.same("SCAN", "0", "COUNT")
    pair.same("SCAN", "0", "MATCH")
    pair.same("SCAN", "0", "TYPE")
    pair.same("SCAN", "0", "FOO", "bar")
    pair.same("SCAN", "0", "MATCH", "*", "FOO")
    pair.same("SCAN")
    pair.same("SCAN", "0", "COUNT", "10", "MATCH", "a")


def test_randomkey(pair):
    pair.same("RANDOMKEY")
    pair.same("SET", BIN, "v")
    pair.same("RANDOMKEY")
    pair.same("RANDOMKEY", "extra")
    keys = {b"a", b"b", b"c", b"h"}
    for k in [b"a", b"b", b"c"]:
        pair.same("SET", k, "v")
    pair.same("HSET", "h", "f", "v")
    keys.add(BIN)
    seen = set()
    for _ in range(200):
        raw, key = pair.strata.call("RANDOMKEY")
        assert key in keys
        seen.add(key)
    assert len(seen) >= 2
    # Only expired keys left: none is returned.
    pair.same("FLUSHALL")
    pair.same("SET", "dead", "v", "PX", "1")
    time.sleep(0.05)
    raw, key = pair.strata.call("RANDOMKEY")
    assert key is None


def test_object_encoding_strings(pair):
    values = ["1", "0", "-1", "9999", "10000", "-9223372036854775808", "9223372036854775807",
              "9223372036854775808", "01", "+1", "-0", " 1", "1.5", "", "x" * 44, "x" * 45,
              "12345678901234567890", b"\x00\xff", "y" * 1000]
    for i, value in enumerate(values):
        pair.same("SET", f"s{i}", value)
        pair.same("OBJECT", "ENCODING", f"s{i}")
        pair.same("OBJECT", "REFCOUNT", f"s{i}")
    pair.same("OBJECT", "ENCODING", "missing")
    pair.same("OBJECT", "REFCOUNT", "missing")


def test_object_encoding_hashes(pair):
    pair.same("HSET", "small", "f", "v")
    pair.same("OBJECT", "ENCODING", "small")
    pair.same("HSET", "long-value", "f", "v" * 64)
    pair.same("OBJECT", "ENCODING", "long-value")
    pair.same("HSET", "long-value2", "f", "v" * 65)
    pair.same("OBJECT", "ENCODING", "long-value2")
    pair.same("HSET", "long-field", "f" * 65, "v")
    pair.same("OBJECT", "ENCODING", "long-field")
    args = []
    for i in range(512):
        args += [f"f{i}", "v"]
    pair.same("HSET", "many", *args)
    pair.same("OBJECT", "ENCODING", "many")
    pair.same("HSET", "many", "one-more", "v")
    pair.same("OBJECT", "ENCODING", "many")
    pair.same("OBJECT", "REFCOUNT", "many")
    pair.same("OBJECT", "encoding", BIN)


def test_object_idletime_freq_help(pair):
    pair.same("SET", "k", "v")
    pair.same("OBJECT", "IDLETIME", "k")
    pair.same("OBJECT", "IDLETIME", "missing")
    pair.same("OBJECT", "FREQ", "k")
    pair.same("OBJECT", "FREQ", "missing")
    pair.same("OBJECT", "HELP")
    pair.same("OBJECT", "help")
    pair.same("OBJECT", "NOPE", "k")
    pair.same("OBJECT")
    pair.same("OBJECT", "ENCODING")
    pair.same("OBJECT", "ENCODING", "a", "b")
    pair.same("OBJECT", "HELP", "x")


def test_object_under_lfu_policy():
    """FREQ answers and IDLETIME refuses when the policy is LFU."""
    extra = ["--maxmemory-policy", "allkeys-lfu"]
    ours, theirs = start_strata(extra), start_redis(extra)
    try:
        s, r = ours.raw(), theirs.raw()
        for conn in (s, r):
            conn.call("SET", "k", "v")
        assert s.call("OBJECT", "IDLETIME", "k")[0] == r.call("OBJECT", "IDLETIME", "k")[0]
        assert s.call("OBJECT", "IDLETIME", "nokey")[0] == r.call("OBJECT", "IDLETIME", "nokey")[0]
        freq = s.call("OBJECT", "FREQ", "k")[1]
        assert isinstance(freq, int) and 0 <= freq <= 255
        assert isinstance(r.call("OBJECT", "FREQ", "k")[1], int)
        s.close()
        r.close()
    finally:
        ours.close()
        theirs.close()


def test_active_expiry_without_access(pair):
    """Keys with short TTLs leave DBSIZE without anyone reading them."""
    # Memory-engine keys too, spread over many shards; made first, and
    # with TTLs the setup cannot outlast, so that both servers still hold
    # them at the first DBSIZE.
    for i in range(40):
        pair.same("RPUSH", f"lshort:{i}", "a")
        pair.same("PEXPIRE", f"lshort:{i}", "1000")
        pair.same("ZADD", f"zshort:{i}", "1", "m")
        pair.same("PEXPIRE", f"zshort:{i}", "1200")
    for i in range(50):
        pair.same("SET", f"short:{i}", "v", "PX", "100")
    for i in range(10):
        pair.same("HSET", f"hshort:{i}", "f", "v")
        pair.same("PEXPIRE", f"hshort:{i}", "150")
    pair.same("SET", "long", "v", "EX", "1000")
    pair.same("SET", "forever", "v")
    pair.same("DBSIZE")
    deadline = time.time() + 5
    while time.time() < deadline:
        ours, theirs = pair.call("DBSIZE")
        if ours == 2 and theirs == 2:
            break
        time.sleep(0.1)
    pair.same("DBSIZE")
    assert pair.call("DBSIZE") == (2, 2)


def test_generic_commands_on_large_values(pair):
    big = b"\x00\xff" * 300000
    pair.same("SET", "big", big)
    pair.same("RENAME", "big", "big2")
    pair.same("COPY", "big2", "big3")
    pair.same("GET", "big3")
    pair.same("OBJECT", "ENCODING", "big3")
    fields = []
    for i in range(2000):
        fields += [f"field:{i}", f"value:{i}"]
    pair.same("HSET", "bigh", *fields)
    pair.same("COPY", "bigh", "bigh2")
    pair.same("RENAME", "bigh", "bigh3")
    pair.same("MOVE", "bigh3", "3")
    pair.same("HLEN", "bigh2")
    ours, theirs = pair.call("HGETALL", "bigh2")
    assert canonical(ours) == canonical(theirs)
    pair.same("SELECT", "3")
    pair.same("HLEN", "bigh3")
    pair.same("HGET", "bigh3", "field:1999")
    pair.same("OBJECT", "ENCODING", "bigh3")


def test_arguments_in_error_texts_end_at_a_nul(pair):
    """Redis prints arguments into errors with %s: a C string ends at NUL."""
    pair.same("SET", "k", "v")
    pair.same("OBJECT", "\x00abc", "k")
    pair.same("EXPIRE", "k", "10", "\x00NX")
    pair.same("XGROUP", "CREATECONSUMER", "k\x00k", "g", "c")
    pair.same("XREADGROUP", "GROUP", "g\x00", "c", "STREAMS", "k\x00x", ">")
