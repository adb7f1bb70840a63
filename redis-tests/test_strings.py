"""String commands, differential against redis-server 7.0: every command and
option, error texts and their order, binary and big values, TTL effects."""
import random
import time

import pytest

from conftest import Pair, start_redis, start_strata

BINARY = b"a\x00b\xff\r\nc"
WRONG = "ERR wrong number of arguments"


def setup_types(pair):
    pair.same("SET", "s", "hello")
    pair.same("HSET", "h", "f", "v")


# --- GET / SET -------------------------------------------------------------

def test_get_set_basic(pair):
    pair.same("GET", "nokey")
    pair.same("SET", "k", "v")
    pair.same("GET", "k")
    pair.same("SET", "k", "")
    pair.same("GET", "k")
    pair.same("SET", BINARY, BINARY)
    pair.same("GET", BINARY)
    pair.same("SET", "big", b"x" * 300_000)
    pair.same("GET", "big")
    pair.same("SET", "k")
    pair.same("GET")
    pair.same("GET", "a", "b")


def test_set_options(pair):
    pair.same("SET", "k", "v", "NX")
    pair.same("SET", "k", "v2", "NX")
    pair.same("SET", "k", "v3", "XX")
    pair.same("SET", "missing", "v", "XX")
    pair.same("GET", "missing")
    pair.same("SET", "k", "v4", "GET")
    pair.same("SET", "new", "v", "GET")
    pair.same("SET", "k", "v5", "XX", "GET")
    pair.same("SET", "k", "v6", "NX", "GET")
    pair.same("SET", "k2", "v", "nx", "get")
    # Repeated options are allowed; conflicting ones are not.
    pair.same("SET", "k", "v", "XX", "XX")
    pair.same("SET", "k", "v", "NX", "NX")
    pair.same("SET", "k", "v", "NX", "XX")
    pair.same("SET", "k", "v", "GET", "GET")
    pair.same("SET", "k", "v", "EX", "10", "EX", "20")
    pair.same("TTL", "k")
    pair.same("SET", "k", "v", "EX", "abc", "EX", "20")
    pair.same("SET", "k", "v", "EX", "10", "PX", "20")
    pair.same("SET", "k", "v", "EX", "10", "KEEPTTL")
    pair.same("SET", "k", "v", "KEEPTTL", "EX", "10")
    pair.same("SET", "k", "v", "KEEPTTL", "KEEPTTL")
    pair.same("SET", "k", "v", "PERSIST")
    pair.same("SET", "k", "v", "EX")
    pair.same("SET", "k", "v", "FOO")
    pair.same("SET", "k", "v", "EX", "0")
    pair.same("SET", "k", "v", "EX", "-5")
    pair.same("SET", "k", "v", "PX", "0")
    pair.same("SET", "k", "v", "EX", "abc")
    pair.same("SET", "k", "v", "EX", "0", "FOO")
    pair.same("SET", "k", "v", "EX", "9223372036854775807")
    pair.same("SET", "k", "v", "PX", "9223372036854775807")
    pair.same("SET", "k", "v", "EXAT", "9223372036854775807")
    pair.same("SET", "k", "v", "EX", "1.5")


def test_set_ttls(pair):
    pair.same("SET", "k", "v", "EX", "100")
    pair.same("TTL", "k")
    pair.same("SET", "k", "v2", "KEEPTTL")
    pair.same("TTL", "k")
    pair.same("SET", "k", "v3")
    pair.same("TTL", "k")
    pair.same("SET", "k", "v", "PX", "100000")
    pair.same_shape("PTTL", "k", check=lambda v: 99000 < v <= 100000)
    future = int(time.time()) + 1000
    pair.same("SET", "k", "v", "EXAT", str(future))
    pair.same_shape("TTL", "k", check=lambda v: 990 < v <= 1000)
    pair.same("SET", "k", "v", "PXAT", str(future * 1000))
    pair.same_shape("TTL", "k", check=lambda v: 990 < v <= 1000)
    # An absolute time in the past leaves no key.
    pair.same("SET", "k", "v", "PXAT", "1")
    pair.same("GET", "k")
    pair.same("EXISTS", "k")
    pair.same("SET", "k", "v", "PX", "30")
    time.sleep(0.1)
    pair.same("GET", "k")


def test_set_wrongtype(pair):
    setup_types(pair)
    pair.same("GET", "h")
    pair.same("SET", "h", "v", "GET")
    pair.same("HGET", "h", "f")
    pair.same("SET", "h", "v", "NX")
    pair.same("SET", "h", "v", "XX")
    pair.same("GET", "h")
    pair.same("TYPE", "h")


def test_setnx(pair):
    setup_types(pair)
    pair.same("SETNX", "k", "v")
    pair.same("SETNX", "k", "v2")
    pair.same("GET", "k")
    pair.same("SETNX", "h", "v")
    pair.same("SETNX", BINARY, "")
    pair.same("GET", BINARY)
    pair.same("SETNX", "k")
    pair.same("SETNX", "k", "v", "x")


def test_setex_psetex(pair):
    setup_types(pair)
    pair.same("SETEX", "k", "100", "v")
    pair.same("TTL", "k")
    pair.same("GET", "k")
    pair.same("PSETEX", "p", "100000", BINARY)
    pair.same_shape("PTTL", "p", check=lambda v: 99000 < v <= 100000)
    pair.same("GET", "p")
    pair.same("SETEX", "h", "100", "v")
    pair.same("TYPE", "h")
    for cmd in ("SETEX", "PSETEX"):
        pair.same(cmd, "k", "0", "v")
        pair.same(cmd, "k", "-1", "v")
        pair.same(cmd, "k", "abc", "v")
        pair.same(cmd, "k", "1.5", "v")
        pair.same(cmd, "k", "9223372036854775807", "v")
        pair.same(cmd, "k", "", "v")
        pair.same(cmd, "k", "10")
        pair.same(cmd, "k", "10", "v", "x")
    pair.same("SETEX", "k", "9223372036854775", "v")
    pair.same("SETEX", "k", "9223372036854776", "v")
    pair.same("PSETEX", "e", "40", "v")
    time.sleep(0.1)
    pair.same("GET", "e")


def test_getset_getdel(pair):
    setup_types(pair)
    pair.same("GETSET", "k", "v1")
    pair.same("GETSET", "k", BINARY)
    pair.same("GET", "k")
    pair.same("GETSET", "h", "v")
    pair.same("SETEX", "t", "100", "v")
    pair.same("GETSET", "t", "w")
    pair.same("TTL", "t")
    pair.same("GETSET", "k")
    pair.same("GETDEL", "k")
    pair.same("GETDEL", "k")
    pair.same("EXISTS", "k")
    pair.same("GETDEL", "h")
    pair.same("EXISTS", "h")
    pair.same("SET", "e", "")
    pair.same("GETDEL", "e")
    pair.same("GETDEL")
    pair.same("GETDEL", "a", "b")


def test_getex(pair):
    setup_types(pair)
    pair.same("SET", "k", BINARY)
    pair.same("GETEX", "k")
    pair.same("TTL", "k")
    pair.same("GETEX", "k", "EX", "100")
    pair.same("TTL", "k")
    pair.same("GETEX", "k", "PX", "200000")
    pair.same_shape("PTTL", "k", check=lambda v: 199000 < v <= 200000)
    future = int(time.time()) + 500
    pair.same("GETEX", "k", "EXAT", str(future))
    pair.same_shape("TTL", "k", check=lambda v: 490 < v <= 500)
    pair.same("GETEX", "k", "PXAT", str(future * 1000 + 500_000))
    pair.same_shape("TTL", "k", check=lambda v: 990 < v <= 1000)
    pair.same("GETEX", "k", "PERSIST")
    pair.same("TTL", "k")
    pair.same("GETEX", "k", "persist", "persist")
    pair.same("GETEX", "k", "EX", "10", "EX", "20")
    pair.same("TTL", "k")
    # Errors: syntax first, then the key, then the expiry value.
    for args in (("EX",), ("EX", "10", "PX", "10"), ("EX", "10", "PERSIST"), ("PERSIST", "EX", "10"),
                 ("KEEPTTL",), ("NX",), ("GET",), ("FOO",), ("EX", "0", "FOO")):
        pair.same("GETEX", "k", *args)
        pair.same("GETEX", "nokey", *args)
        pair.same("GETEX", "h", *args)
    for bad in ("0", "-1", "abc", "9223372036854775807"):
        pair.same("GETEX", "k", "EX", bad)
        pair.same("GETEX", "k", "PXAT", bad)
        pair.same("GETEX", "nokey", "EX", bad)
        pair.same("GETEX", "h", "EX", bad)
    pair.same("GETEX", "h")
    pair.same("GETEX", "nokey")
    pair.same("GETEX", "nokey", "PERSIST")
    pair.same("EXISTS", "nokey")
    # An absolute expiry in the past deletes the key after replying.
    pair.same("GETEX", "k", "EXAT", "1")
    pair.same("EXISTS", "k")
    pair.same("SET", "k", "v")
    pair.same("GETEX", "k", "PX", "30")
    time.sleep(0.1)
    pair.same("GET", "k")
    pair.same("GETEX")


def test_mget_mset(pair):
    setup_types(pair)
    pair.same("MSET", "a", "1", "b", BINARY, "c", "")
    pair.same("MGET", "a", "b", "c", "nokey", "h", "s", "a")
    pair.same("MSET", "a")
    pair.same("MSET", "a", "1", "b")
    pair.same("MSETNX", "a", "1", "b")
    pair.same("MGET")
    pair.same("SETEX", "t", "100", "v")
    pair.same("MSET", "t", "w", "h", "now-a-string", "a", "x", "a", "y")
    pair.same("TTL", "t")
    pair.same("TYPE", "h")
    pair.same("GET", "a")
    many = []
    for i in range(500):
        many += [f"key:{i}", f"value:{i}" * (i % 7)]
    pair.same("MSET", *many)
    pair.same("MGET", *[f"key:{i}" for i in range(0, 600, 3)])
    pair.same("DBSIZE")


def test_msetnx(pair):
    setup_types(pair)
    pair.same("MSETNX", "x", "1", "y", "2")
    pair.same("MGET", "x", "y")
    # One existing key (of any type) blocks every write.
    pair.same("MSETNX", "z", "3", "x", "4")
    pair.same("EXISTS", "z")
    pair.same("MSETNX", "z", "3", "h", "4")
    pair.same("EXISTS", "z")
    pair.same("MSETNX", "d", "1", "d", "2")
    pair.same("GET", "d")
    pair.same("MSETNX", "x")


def test_append_strlen(pair):
    setup_types(pair)
    pair.same("APPEND", "k", "abc")
    pair.same("APPEND", "k", BINARY)
    pair.same("APPEND", "k", "")
    pair.same("GET", "k")
    pair.same("STRLEN", "k")
    pair.same("APPEND", "new", "")
    pair.same("EXISTS", "new")
    pair.same("STRLEN", "new")
    pair.same("STRLEN", "nokey")
    pair.same("APPEND", "h", "x")
    pair.same("STRLEN", "h")
    pair.same("SETEX", "t", "100", "v")
    pair.same("APPEND", "t", "w")
    pair.same("TTL", "t")
    pair.same("SET", "n", "10")
    pair.same("APPEND", "n", "5")
    pair.same("INCR", "n")
    pair.same("APPEND", "big", b"y" * 200_000)
    pair.same("APPEND", "big", b"z" * 200_000)
    pair.same("STRLEN", "big")
    pair.same("GETRANGE", "big", "199995", "200004")
    pair.same("APPEND", "k")
    pair.same("STRLEN")
    pair.same("STRLEN", "a", "b")


# --- counters --------------------------------------------------------------

def test_incr_decr(pair):
    setup_types(pair)
    pair.same("INCR", "n")
    pair.same("INCR", "n")
    pair.same("DECR", "n")
    pair.same("DECR", "m")
    pair.same("INCRBY", "n", "100")
    pair.same("INCRBY", "n", "-1000")
    pair.same("DECRBY", "n", "-5")
    pair.same("DECRBY", "n", "5")
    pair.same("GET", "n")
    for value in ("abc", "1.5", " 1", "1 ", "+1", "01", "-0", "", "0x10", "99999999999999999999",
                  "9223372036854775808", "1e3", BINARY):
        pair.same("SET", "v", value)
        for cmd in (("INCR", "v"), ("DECR", "v"), ("INCRBY", "v", "1"), ("DECRBY", "v", "1")):
            pair.same(*cmd)
    pair.same("SET", "v", "-0")
    pair.same("GET", "v")
    pair.same("SET", "max", "9223372036854775807")
    pair.same("INCR", "max")
    pair.same("INCRBY", "max", "0")
    pair.same("DECRBY", "max", "-1")
    pair.same("SET", "min", "-9223372036854775808")
    pair.same("DECR", "min")
    pair.same("INCRBY", "min", "-1")
    pair.same("INCRBY", "min", "9223372036854775807")
    pair.same("GET", "min")
    pair.same("DECRBY", "x", "-9223372036854775808")
    pair.same("DECRBY", "x", "9223372036854775807")
    pair.same("INCRBY", "x", "-9223372036854775808")
    for bad in ("abc", "1.0", "", "9223372036854775808", " 1"):
        pair.same("INCRBY", "n", bad)
        pair.same("DECRBY", "n", bad)
        pair.same("INCRBY", "h", bad)
    for cmd in ("INCR", "DECR"):
        pair.same(cmd, "h")
        pair.same(cmd, "s")
        pair.same(cmd)
        pair.same(cmd, "a", "b")
    pair.same("INCRBY", "h", "1")
    pair.same("INCRBY", "n")
    pair.same("SETEX", "t", "100", "5")
    pair.same("INCR", "t")
    pair.same("INCRBY", "t", "10")
    pair.same("TTL", "t")
    pair.same("GET", "t")


INCRBYFLOAT_CASES = [
    ("10", "0.1"), ("0.2", "0.1"), ("0.1", "0"), ("1", "1e-10"), ("1", "1.5e-5"), ("5", "-5"),
    ("3.0000000000000000000000001", "0"), ("-0.00000000000000000001", "0"), ("0", "-0"),
    ("-0", "-0"), ("1", "0x1p-18"), ("0x10", "1"), ("17", "0x1.8p3"), ("1e3", "1E-3"),
    ("123456789.123456789", "0.000015"), ("1", "1e300"), ("1", "1e4000"), ("0", "1e-4940"),
    ("1.18973149535723176502e+4932", "0"), ("-1", "-1e4932"), ("3", "inf"), ("3", "-Infinity"),
    ("inf", "1"), ("1e4932", "1e4932"), ("1", "1e5000"), ("1", "1e-4960"), ("1", "1e-400"),
    ("0.1", "0.2"), ("1.1", "2.2"), ("100", "-0.000001"), ("-5.5", "2.25"),
    ("9007199254740993", "0"), ("18446744073709551617", "0"), ("5.0e3", "-2.5"),
    ("1", "nan"), ("1", " 1"), ("1", "1 "), ("1", ""), ("1", "abc"), ("1", "1e"), ("1", ".5"),
    ("1", "5."), ("1", "."), ("1", "0x"), ("1", "+1.5"), ("1", "1..2"), ("1", "1e+5"),
    ("abc", "1"), (" 1", "1"), ("1\x00", "1"), ("", "1"), ("0.5", "0.25"), ("1", "-0.9999999999999999"),
    ("2", "1e-20"), ("1234.5678", "8765.4321"), ("-1e-5", "1e-5"), ("7", "1e-17"), ("7", "5e-18"),
    ("7", "4.9e-18"), ("0", "2.5e-17"), ("0", "1.5e-17"), ("0", "3.5e-17"), ("0.3", "-0.1"),
]


def test_incrbyfloat_values(pair):
    for start, incr in INCRBYFLOAT_CASES:
        pair.same("SET", "f", start)
        pair.same("INCRBYFLOAT", "f", incr)
        pair.same("GET", "f")
        pair.same("INCRBYFLOAT", "f", incr)
        pair.same("GET", "f")


def test_incrbyfloat_chain_and_errors(pair):
    setup_types(pair)
    for incr in ("0.1", "0.7", "-3.3", "1e-7", "12345.678", "-0.0001", "3e10", "-3e10", "1.5", "2e-3"):
        pair.same("INCRBYFLOAT", "acc", incr)
    pair.same("GET", "acc")
    pair.same("INCRBYFLOAT", "h", "1")
    pair.same("INCRBYFLOAT", "h", "abc")
    pair.same("INCRBYFLOAT", "s", "abc")
    pair.same("INCRBYFLOAT", "nokey", "abc")
    pair.same("INCRBYFLOAT", "nokey", "inf")
    pair.same("EXISTS", "nokey")
    pair.same("INCRBYFLOAT", "new", "5")
    pair.same("INCRBYFLOAT", "new", "1e3")
    pair.same("SETEX", "t", "100", "1.5")
    pair.same("INCRBYFLOAT", "t", "1")
    pair.same("TTL", "t")
    pair.same("INCRBYFLOAT", "t")
    pair.same("INCRBYFLOAT", "t", "1", "2")
    pair.same("INCRBYFLOAT", "f", "1" * 5200)
    pair.same("INCRBYFLOAT", "f", "0." + "1" * 5000)
    pair.same("INCRBYFLOAT", "f", "1" * 4000 + "e-3990")


# --- ranges ----------------------------------------------------------------

def test_getrange(pair):
    setup_types(pair)
    pair.same("SET", "k", "Hello World")
    pair.same("SET", "b", BINARY)
    pair.same("SET", "e", "")
    ranges = [(0, 3), (-3, -1), (0, -1), (10, 100), (5, 3), (-100, 2), (-1, -5), (-5, -1),
              (100, 200), (0, 0), (-1, -1), (11, 11), (3, -100), (-9223372036854775808, 9223372036854775807)]
    for key in ("k", "b", "e", "nokey"):
        for s, e in ranges:
            pair.same("GETRANGE", key, str(s), str(e))
            pair.same("SUBSTR", key, str(s), str(e))
    pair.same("GETRANGE", "h", "0", "1")
    pair.same("GETRANGE", "h", "a", "1")
    pair.same("GETRANGE", "k", "a", "1")
    pair.same("GETRANGE", "k", "0", "1.5")
    pair.same("GETRANGE", "nokey", "x", "1")
    pair.same("GETRANGE", "k", "0")
    pair.same("SUBSTR", "k", "0", "1", "2")
    pair.same("SET", "n", "12345")
    pair.same("INCR", "n")
    pair.same("GETRANGE", "n", "1", "3")


def test_setrange(pair):
    setup_types(pair)
    pair.same("SET", "k", "Hello World")
    pair.same("SETRANGE", "k", "6", "Redis")
    pair.same("GET", "k")
    pair.same("SETRANGE", "k", "20", BINARY)
    pair.same("GET", "k")
    pair.same("SETRANGE", "k", "0", "")
    pair.same("SETRANGE", "k", "100", "")
    pair.same("STRLEN", "k")
    pair.same("SETRANGE", "new", "5", "x")
    pair.same("GET", "new")
    pair.same("SETRANGE", "none", "5", "")
    pair.same("EXISTS", "none")
    pair.same("SETRANGE", "h", "0", "x")
    pair.same("SETRANGE", "h", "0", "")
    pair.same("SETRANGE", "k", "-1", "x")
    pair.same("SETRANGE", "h", "-1", "x")
    pair.same("SETRANGE", "k", "abc", "x")
    pair.same("SETRANGE", "k", "536870911", "xy")
    pair.same("SETRANGE", "k", "536870912", "x")
    pair.same("SETRANGE", "k", "9223372036854775807", "x")
    pair.same("SETRANGE", "nokey", "536870912", "x")
    pair.same("SETRANGE", "nokey", "536870912", "")
    pair.same("SETEX", "t", "100", "abc")
    pair.same("SETRANGE", "t", "1", "X")
    pair.same("TTL", "t")
    pair.same("GET", "t")
    pair.same("SET", "n", "100")
    pair.same("SETRANGE", "n", "1", "5")
    pair.same("INCR", "n")
    pair.same("SETRANGE", "big", "100000", b"z" * 1000)
    pair.same("STRLEN", "big")
    pair.same("GETRANGE", "big", "99990", "100005")
    pair.same("SETRANGE", "k", "1")


def test_lcs(pair):
    setup_types(pair)
    pair.same("MSET", "a", "ohmytext", "b", "mynewtext", "c", "", "x", BINARY, "y", b"\x00\xff\r\n" * 3)
    for k1, k2 in (("a", "b"), ("b", "a"), ("a", "c"), ("a", "nokey"), ("x", "y"), ("a", "a"), ("nokey", "nokey2")):
        pair.same("LCS", k1, k2)
        pair.same("LCS", k1, k2, "LEN")
        pair.same("LCS", k1, k2, "IDX")
        pair.same("LCS", k1, k2, "IDX", "WITHMATCHLEN")
        pair.same("LCS", k1, k2, "IDX", "MINMATCHLEN", "4")
        pair.same("LCS", k1, k2, "IDX", "MINMATCHLEN", "2", "WITHMATCHLEN")
        pair.same("LCS", k1, k2, "idx", "minmatchlen", "-5", "withmatchlen")
    pair.same("MSET", "p", "GTCGTTCGGAATGCCGTTGCTCTGTAAA", "q", "ACCGGTCGAGTGCGCGGAAGCCGGCCGAA")
    pair.same("LCS", "p", "q")
    pair.same("LCS", "p", "q", "IDX", "WITHMATCHLEN")
    pair.same("LCS", "p", "q", "IDX", "MINMATCHLEN", "3", "WITHMATCHLEN")
    pair.same("LCS", "p", "q", "WITHMATCHLEN")
    pair.same("LCS", "p", "q", "LEN", "WITHMATCHLEN")
    pair.same("LCS", "p", "q", "LEN", "MINMATCHLEN", "3")
    # Errors: the keys' types come first, then the options.
    pair.same("LCS", "a", "h")
    pair.same("LCS", "h", "a", "FOO")
    pair.same("LCS", "a", "b", "FOO")
    pair.same("LCS", "a", "b", "LEN", "IDX")
    pair.same("LCS", "a", "b", "MINMATCHLEN")
    pair.same("LCS", "a", "b", "MINMATCHLEN", "abc")
    pair.same("LCS", "a")
    pair.same("MSET", "r1", "abcdefghij" * 30, "r2", "jihgfedcba" * 30)
    pair.same("LCS", "r1", "r2", "IDX", "MINMATCHLEN", "2", "WITHMATCHLEN")


def test_lcs_resp3(pair):
    pair.call("HELLO", "3")
    pair.same("MSET", "a", "ohmytext", "b", "mynewtext")
    pair.same("LCS", "a", "b", "IDX", "WITHMATCHLEN")
    pair.same("LCS", "a", "b", "LEN")
    pair.same("GETDEL", "nokey")
    pair.same("BITFIELD", "bf", "OVERFLOW", "FAIL", "INCRBY", "u2", "0", "9")


# --- bits ------------------------------------------------------------------

def test_setbit_getbit(pair):
    setup_types(pair)
    pair.same("SETBIT", "k", "7", "1")
    pair.same("GET", "k")
    pair.same("SETBIT", "k", "7", "1")
    pair.same("SETBIT", "k", "7", "0")
    pair.same("SETBIT", "k", "100", "1")
    pair.same("GET", "k")
    pair.same("SETBIT", "z", "0", "0")
    pair.same("GET", "z")
    for off in ("0", "7", "8", "100", "101", "1000", "4294967295"):
        pair.same("GETBIT", "k", off)
        pair.same("GETBIT", "nokey", off)
    for off in ("-1", "abc", "4294967296", "1.5", "", "#1", "9223372036854775807"):
        pair.same("SETBIT", "k", off, "1")
        pair.same("GETBIT", "k", off)
        pair.same("GETBIT", "nokey", off)
        pair.same("GETBIT", "h", off)
    for val in ("2", "-1", "abc", "", "1.0", "01"):
        pair.same("SETBIT", "k", "1", val)
        pair.same("SETBIT", "h", "1", val)
    pair.same("SETBIT", "h", "1", "1")
    pair.same("GETBIT", "h", "1")
    pair.same("SETEX", "t", "100", "a")
    pair.same("SETBIT", "t", "50", "1")
    pair.same("TTL", "t")
    pair.same("GET", "t")
    pair.same("SET", "n", "12")
    pair.same("SETBIT", "n", "6", "0")
    pair.same("GET", "n")
    pair.same("SETBIT", "k", "1")
    pair.same("GETBIT", "k")


def test_bitcount(pair):
    setup_types(pair)
    pair.same("SET", "k", "foobar")
    pair.same("SET", "b", BINARY)
    pair.same("SET", "e", "")
    ranges = [(0, 0), (1, 1), (0, -1), (-2, -1), (-1, -2), (5, 30), (2, 1), (-100, 100), (0, 3),
              (3, 20), (-9223372036854775808, 9223372036854775807)]
    for key in ("k", "b", "e", "nokey"):
        pair.same("BITCOUNT", key)
        for s, e in ranges:
            pair.same("BITCOUNT", key, str(s), str(e))
            pair.same("BITCOUNT", key, str(s), str(e), "BYTE")
            pair.same("BITCOUNT", key, str(s), str(e), "bit")
    # Redis 7.0 looks the key up before it parses the range.
    for key in ("k", "nokey", "h", "e"):
        pair.same("BITCOUNT", key, "0")
        pair.same("BITCOUNT", key, "a", "b")
        pair.same("BITCOUNT", key, "0", "1", "FOO")
        pair.same("BITCOUNT", key, "-1", "-2", "FOO")
        pair.same("BITCOUNT", key, "0", "1", "BIT", "x")
    pair.same("BITCOUNT")
    pair.same("SET", "n", "1234")
    pair.same("INCR", "n")
    pair.same("BITCOUNT", "n")
    pair.same("SET", "big", b"\xaa" * 100_000)
    pair.same("BITCOUNT", "big")
    pair.same("BITCOUNT", "big", "13", "799993", "BIT")


def test_bitpos(pair):
    setup_types(pair)
    pair.same("SET", "ones", b"\xff\xf0\x00")
    pair.same("SET", "allones", b"\xff\xff\xff")
    pair.same("SET", "zeros", b"\x00\x00\x00")
    pair.same("SET", "mixed", b"\x00\x0f\xf0\x01")
    pair.same("SET", "e", "")
    ranges = [(), ("0",), ("1",), ("-1",), ("2",), ("10",), ("0", "-1"), ("1", "2"), ("2", "1"),
              ("-2", "-1"), ("0", "0"), ("-100", "100"), ("5", "17", "BIT"), ("0", "-1", "BIT"),
              ("7", "7", "BIT"), ("12", "12", "bit"), ("9", "15", "BIT"), ("0", "7", "BIT"),
              ("8", "8", "BIT"), ("4", "27", "BIT"), ("1", "2", "BYTE"), ("-3", "-1", "BIT"),
              ("3", "2", "BIT"), ("23", "23", "BIT"), ("1", "30", "BIT"), ("24", "30", "BIT")]
    for key in ("ones", "allones", "zeros", "mixed", "e", "nokey"):
        for bit in ("0", "1"):
            for r in ranges:
                pair.same("BITPOS", key, bit, *r)
    for key in ("ones", "nokey", "h"):
        pair.same("BITPOS", key, "2")
        pair.same("BITPOS", key, "-1")
        pair.same("BITPOS", key, "abc")
        pair.same("BITPOS", key, "1", "abc")
        pair.same("BITPOS", key, "1", "0", "abc")
        pair.same("BITPOS", key, "1", "0", "abc", "FOO")
        pair.same("BITPOS", key, "1", "0", "1", "FOO")
        pair.same("BITPOS", key, "1", "0", "1", "BIT", "x")
        pair.same("BITPOS", key, "0", "0", "1", "BIT")
    pair.same("BITPOS", "ones")
    pair.same("SET", "big", b"\x00" * 50_000 + b"\x01" + b"\xff" * 50_000)
    pair.same("BITPOS", "big", "1")
    pair.same("BITPOS", "big", "0", "50000")
    pair.same("BITPOS", "big", "0", "50001")
    pair.same("BITPOS", "big", "1", "3", "400006", "BIT")


def test_bitop(pair):
    setup_types(pair)
    pair.same("SET", "a", b"\xf0\x0f\xaa")
    pair.same("SET", "b", b"\xff")
    pair.same("SET", "c", BINARY)
    for op in ("AND", "OR", "XOR", "and", "Or"):
        pair.same("BITOP", op, "dest", "a", "b", "c")
        pair.same("GET", "dest")
        pair.same("BITOP", op, "dest", "a", "nokey")
        pair.same("GET", "dest")
        pair.same("BITOP", op, "dest", "a")
        pair.same("GET", "dest")
    pair.same("BITOP", "NOT", "dest", "c")
    pair.same("GET", "dest")
    pair.same("BITOP", "NOT", "dest", "a", "b")
    pair.same("BITOP", "NOT", "dest")
    pair.same("BITOP", "FOO", "dest", "a")
    pair.same("BITOP", "AND", "dest", "a", "h")
    pair.same("BITOP", "AND", "dest")
    # An empty result deletes the destination, whatever its type.
    pair.same("SET", "dest", "x")
    pair.same("BITOP", "OR", "dest", "nokey", "nokey2")
    pair.same("EXISTS", "dest")
    pair.same("HSET", "hd", "f", "v")
    pair.same("BITOP", "OR", "hd", "nokey")
    pair.same("EXISTS", "hd")
    pair.same("HSET", "hd", "f", "v")
    pair.same("BITOP", "OR", "hd", "a")
    pair.same("TYPE", "hd")
    pair.same("SETEX", "t", "100", "v")
    pair.same("BITOP", "AND", "t", "a", "b")
    pair.same("TTL", "t")
    pair.same("SET", "e", "")
    pair.same("BITOP", "NOT", "ne", "e")
    pair.same("EXISTS", "ne")
    pair.same("BITOP", "XOR", "a", "a", "b")
    pair.same("GET", "a")
    pair.same("SET", "big1", b"\x12\x34" * 40_000)
    pair.same("SET", "big2", b"\xff" * 50_001)
    pair.same("BITOP", "XOR", "bd", "big1", "big2")
    pair.same("GET", "bd")


def test_bitfield(pair):
    setup_types(pair)
    pair.same("BITFIELD", "bf", "SET", "i8", "0", "100", "GET", "i8", "0", "INCRBY", "i8", "0", "100")
    pair.same("GET", "bf")
    pair.same("BITFIELD", "bf", "GET", "u4", "0", "GET", "i4", "4", "GET", "u63", "0", "GET", "i64", "0")
    pair.same("BITFIELD", "bf", "INCRBY", "u2", "100", "1", "OVERFLOW", "SAT", "INCRBY", "u2", "102", "1")
    for ow in ("WRAP", "SAT", "FAIL", "wrap", "sat", "fail"):
        for typ in ("i8", "u8", "i1", "u1", "i64", "u63", "i16", "u7"):
            for off in ("0", "5", "#1", "#3"):
                for incr in ("1", "-1", "127", "-128", "255", "300", "-300", "9223372036854775807",
                             "-9223372036854775808"):
                    pair.same("BITFIELD", "o", "OVERFLOW", ow, "INCRBY", typ, off, incr)
                    pair.same("BITFIELD", "o2", "OVERFLOW", ow, "SET", typ, off, incr)
    pair.same("GET", "o")
    pair.same("GET", "o2")
    pair.same("BITFIELD", "bf", "SET", "u8", "0", "255", "OVERFLOW", "FAIL", "INCRBY", "u8", "0", "1",
              "GET", "u8", "0", "OVERFLOW", "WRAP", "INCRBY", "u8", "0", "1")
    # FAIL refuses the write but the string still grows.
    pair.same("BITFIELD", "grow", "OVERFLOW", "FAIL", "SET", "u2", "100", "9")
    pair.same("GET", "grow")
    pair.same("BITFIELD", "nokey", "GET", "u8", "1000")
    pair.same("EXISTS", "nokey")
    pair.same("BITFIELD", "nokey")
    pair.same("BITFIELD", "s")
    pair.same("BITFIELD", "s", "GET", "u8", "0", "GET", "i16", "4", "GET", "u8", "40")
    pair.same("BITFIELD", "h")
    pair.same("BITFIELD", "h", "GET", "u8", "0")
    pair.same("BITFIELD", "h", "SET", "u8", "0", "1")
    pair.same("SETEX", "t", "100", "v")
    pair.same("BITFIELD", "t", "SET", "u8", "0", "65")
    pair.same("TTL", "t")
    pair.same("GET", "t")


def test_bitfield_errors(pair):
    setup_types(pair)
    bad = [
        ("GET", "u8"), ("GET",), ("SET", "u8", "0"), ("INCRBY", "i8", "0"), ("FOO", "u8", "0"),
        ("GET", "u64", "0"), ("GET", "i65", "0"), ("GET", "u0", "0"), ("GET", "I8", "0"), ("GET", "x8", "0"),
        ("GET", "i", "0"), ("GET", "i8a", "0"), ("GET", "u8", "-1"), ("GET", "u8", "abc"),
        ("GET", "u8", "4294967296"), ("GET", "u8", "#536870912"), ("GET", "u8", "#-1"), ("GET", "u8", "#"),
        ("SET", "u8", "0", "abc"), ("INCRBY", "u8", "0", "1.5"), ("OVERFLOW", "FOO", "GET", "u8", "0"),
        ("OVERFLOW",), ("GET", "u8", "0", "OVERFLOW"), ("SET", "u8", "0", "1", "GET", "x8", "0"),
        ("GET", "u8", "0", "BAD", "u8", "0"), ("GET", "i64", "#9223372036854775807"),
        ("SET", "i64", "#2305843009213693952", "1"),
    ]
    for key in ("k", "nokey", "h"):
        for args in bad:
            pair.same("BITFIELD", key, *args)
            pair.same("BITFIELD_RO", key, *args)
    pair.same("BITFIELD_RO", "s", "GET", "u8", "0", "GET", "i4", "#3")
    pair.same("BITFIELD_RO", "s", "SET", "u8", "0", "1")
    pair.same("BITFIELD_RO", "s", "INCRBY", "u8", "0", "1")
    pair.same("BITFIELD_RO", "s", "OVERFLOW", "SAT", "GET", "u8", "0")
    pair.same("BITFIELD_RO", "h", "GET", "u8", "0")
    pair.same("BITFIELD_RO", "h", "SET", "u8", "0", "1")
    pair.same("BITFIELD_RO", "nokey", "GET", "u8", "0")
    pair.same("BITFIELD_RO", "s")
    pair.same("BITFIELD_RO")
    pair.same("BITFIELD")
    pair.same("GET", "s")


# --- limits ----------------------------------------------------------------

@pytest.fixture(scope="module")
def small_pair():
    """A pair whose proto-max-bulk-len is 1 MB (Redis's minimum)."""
    args = ["--proto-max-bulk-len", "1048576"]
    strata, real = start_strata(args), start_redis(args)
    p = Pair(strata.raw(), real.raw())
    yield p
    p.strata.close()
    p.redis.close()
    for server in (strata, real):
        server.close()


def test_growth_limits(small_pair):
    p = small_pair
    p.call("FLUSHALL")
    p.same("SET", "k", b"x" * 1_048_000)
    p.same("APPEND", "k", b"y" * 576)
    p.same("APPEND", "k", b"y")
    p.same("STRLEN", "k")
    p.same("SETRANGE", "k", "1048575", "z")
    p.same("SETRANGE", "k", "1048576", "z")
    p.same("SETRANGE", "k", "1048570", "abcdefgh")
    p.same("SETRANGE", "new", "1048576", "z")
    p.same("SETRANGE", "new", "1048575", "z")
    p.same("STRLEN", "new")
    p.same("SETBIT", "bits", str(8 * 1048576 - 1), "1")
    p.same("SETBIT", "bits", str(8 * 1048576), "1")
    p.same("GETBIT", "bits", str(8 * 1048576))
    p.same("STRLEN", "bits")
    p.same("BITFIELD", "bits", "SET", "u8", str(8 * 1048576), "1")
    p.same("BITFIELD", "bits", "SET", "u8", "#1048576", "1")
    p.same("BITFIELD", "bits", "SET", "u8", "#1048575", "1")
    p.same("BITCOUNT", "bits")
    p.same("SET", "a", b"a" * 600)
    p.same("SET", "b", b"b" * 600)
    p.same("LCS", "a", "b", "LEN")
    p.same("SET", "b", b"b" * 300)
    p.same("LCS", "a", "b", "LEN")
    p.same("SET", "k", "v", "EX", "0")


# --- randomized differential runs (fixed seeds) -----------------------------

def random_decimal(rng):
    mantissa = rng.choice(["", "-"]) + str(rng.randint(0, 10 ** rng.randint(1, 25)))
    if rng.random() < 0.6:
        mantissa += "." + str(rng.randint(0, 10 ** rng.randint(1, 22))).zfill(rng.randint(1, 22))
    if rng.random() < 0.4:
        mantissa += "e" + str(rng.randint(-40, 40))
    elif rng.random() < 0.1:
        mantissa += "E" + str(rng.randint(-4960, 4940))
    elif rng.random() < 0.1:
        mantissa = "0x" + format(rng.randrange(1 << 70), "x") + "p" + str(rng.randint(-16500, 16400))
    return mantissa


def test_incrbyfloat_random(pair):
    rng = random.Random(7)
    for i in range(800):
        if i % 20 == 0:
            pair.same("SET", "f", random_decimal(rng))
        pair.same("INCRBYFLOAT", "f", random_decimal(rng))
        pair.same("GET", "f")


def test_bits_random(pair):
    rng = random.Random(11)
    for _ in range(60):
        value = bytes(rng.choice([0, 0xFF, rng.randrange(256)]) for _ in range(rng.randint(0, 12)))
        pair.same("SET", "r", value)
        for _ in range(15):
            s, e = rng.randint(-100, 100), rng.randint(-100, 100)
            unit = rng.choice([(), ("BIT",), ("BYTE",)])
            pair.same("BITCOUNT", "r", s, e, *unit)
            bit = rng.choice(["0", "1"])
            pair.same("BITPOS", "r", bit, s, e, *unit)
            pair.same("BITPOS", "r", bit, s)
            pair.same("GETRANGE", "r", s, e)


def test_bitfield_random(pair):
    rng = random.Random(13)
    for _ in range(300):
        args = []
        for _ in range(rng.randint(1, 4)):
            if rng.random() < 0.3:
                args += ["OVERFLOW", rng.choice(["WRAP", "SAT", "FAIL"])]
            signed = rng.random() < 0.5
            typ = ("i" if signed else "u") + str(rng.randint(1, 64 if signed else 63))
            off = rng.choice([str(rng.randint(0, 70)), "#" + str(rng.randint(0, 5))])
            op = rng.choice(["GET", "SET", "INCRBY"])
            args += [op, typ, off]
            if op != "GET":
                args.append(str(rng.choice([rng.randint(-300, 300), rng.randint(-2 ** 63, 2 ** 63 - 1)])))
        pair.same("BITFIELD", "bfr", *args)
    pair.same("GET", "bfr")


def test_lcs_random(pair):
    rng = random.Random(17)
    for _ in range(60):
        a = "".join(rng.choice("ab\x00c") for _ in range(rng.randint(0, 30)))
        b = "".join(rng.choice("abc\x00") for _ in range(rng.randint(0, 30)))
        pair.same("MSET", "la", a, "lb", b)
        pair.same("LCS", "la", "lb")
        pair.same("LCS", "la", "lb", "IDX", "WITHMATCHLEN", "MINMATCHLEN", str(rng.randint(0, 3)))
