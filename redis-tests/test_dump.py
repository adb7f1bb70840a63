"""DUMP and RESTORE, differential against redis-server 7.0: payloads cross
both ways (Redis's DUMP restored by Strata, Strata's restored by Redis) for
every type, byte-identical where Redis's encoding is fixed, and RESTORE's
options and errors as Redis's."""
import pytest

VALUES = {
    "string": [("SET", "k", "hello")],
    "int": [("SET", "k", "12345")],
    "long": [("SET", "k", "x" * 100)],
    "list": [("RPUSH", "k", "a", "b", "1", "2")],
    "biglist": [("RPUSH", "k", *[f"item{i}" for i in range(3000)])],
    "intset": [("SADD", "k", "1", "2", "300", "-7")],
    "set": [("SADD", "k", "a", "b", "c")],
    "zset": [("ZADD", "k", "1", "a", "2.5", "b", "-inf", "c")],
    "bigzset": [("ZADD", "k", *[x for i in range(500) for x in (str(i / 7), f"m{i}")])],
    "hash": [("HSET", "k", "f1", "v1", "f2", "v2")],
    "bighash": [("HSET", "k", *[x for i in range(1000) for x in (f"f{i}", f"v{i}")])],
    "stream": [("XADD", "k", "1-1", "a", "1"), ("XADD", "k", "2-1", "b", "2"), ("XGROUP", "CREATE", "k", "g", "0"),
               ("XREADGROUP", "GROUP", "g", "c", "COUNT", "1", "STREAMS", "k", ">"), ("XDEL", "k", "2-1")],
}

# Values whose DUMP Redis writes one way only (no hash-table order).
FIXED = {"string", "int", "long", "list", "biglist", "intset", "zset", "bigzset"}


def view(conn, kind):
    """The value at `k`, in a form that compares across servers."""
    if kind in ("string", "int", "long"):
        return conn.call("GET", "k")[1]
    if kind in ("list", "biglist"):
        return conn.call("LRANGE", "k", "0", "-1")[1]
    if kind in ("intset", "set"):
        return sorted(conn.call("SMEMBERS", "k")[1])
    if kind in ("zset", "bigzset"):
        return conn.call("ZRANGE", "k", "0", "-1", "WITHSCORES")[1]
    if kind in ("hash", "bighash"):
        return sorted(conn.call("HGETALL", "k")[1])
    return [conn.call("XRANGE", "k", "-", "+")[1], conn.call("XPENDING", "k", "g")[1],
            conn.call("XINFO", "STREAM", "k")[1][:6]]


@pytest.mark.parametrize("kind", sorted(VALUES))
def test_payloads_cross_both_ways(pair, kind):
    for command in VALUES[kind]:
        pair.call(*command)
    ours, theirs = pair.call("DUMP", "k")
    if kind in FIXED:
        assert ours == theirs, kind
    expected = view(pair.redis, kind)
    assert view(pair.strata, kind) == expected
    # Each restores the other's payload to the same value.
    pair.call("DEL", "k")
    assert pair.strata.call("RESTORE", "k", "0", theirs)[1] == "OK"
    assert pair.redis.call("RESTORE", "k", "0", ours)[1] == "OK"
    assert view(pair.strata, kind) == expected
    assert view(pair.redis, kind) == expected
    pair.same("TYPE", "k")
    pair.same("TTL", "k")


def test_restore_options_and_errors(pair):
    pair.same("SET", "src", "v")
    payload = pair.call("DUMP", "src")[1]
    pair.same("DUMP", "missing")
    pair.same("RESTORE", "src", "0", payload)                       # BUSYKEY
    pair.same("RESTORE", "src", "0", payload, "REPLACE")
    pair.same("RESTORE", "k", "-1", payload)
    pair.same("RESTORE", "k", "0", payload[:-1])
    pair.same("RESTORE", "k", "0", b"garbage")
    bad = bytearray(payload)
    bad[1] ^= 0xff
    pair.same("RESTORE", "k", "0", bytes(bad))
    pair.same("RESTORE", "k", "0", payload, "IDLETIME", "-1")
    pair.same("RESTORE", "k", "0", payload, "FREQ", "256")
    pair.same("RESTORE", "k", "0", payload, "IDLETIME", "1", "FREQ", "1")
    pair.same("RESTORE", "k", "0", payload, "BOGUS")
    pair.same("RESTORE", "k", "0", payload, "IDLETIME", "10")
    pair.same("RESTORE", "t", "100000", payload)
    pair.same_shape("PTTL", "t", check=lambda ttl: 0 < ttl <= 100000)
    pair.same("RESTORE", "past", "1", payload, "ABSTTL")            # already expired: not created
    pair.same("EXISTS", "past")
    pair.same("RESTORE", "k", "0", payload, "REPLACE", "ABSTTL")
    pair.same("GET", "k")
    pair.same("HSET", "h", "f", "v")
    pair.same("RESTORE", "h", "0", payload, "REPLACE")             # another type replaced
    pair.same("TYPE", "h")
