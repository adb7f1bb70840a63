# Prints "name hex" DUMP payloads for rdb.rs's tests: python3 generate-dumps.py <port>
# of a scratch redis-server 7.0 (it is flushed).
import socket, sys, struct

def crc64(data):
    poly = 0x95ac9329ac4bc9b5
    crc = 0
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ poly if crc & 1 else crc >> 1
    return crc

class R:
    def __init__(s, port):
        s.s = socket.create_connection(("127.0.0.1", port)); s.f = s.s.makefile("rb")
    def cmd(s, *args):
        out = b"*%d\r\n" % len(args)
        for a in args:
            if isinstance(a, str): a = a.encode()
            if isinstance(a, (int, float)): a = repr(a).encode() if isinstance(a, float) else str(a).encode()
            out += b"$%d\r\n%s\r\n" % (len(a), a)
        s.s.sendall(out); return s.read()
    def read(s):
        line = s.f.readline()[:-2]; t, rest = line[:1], line[1:]
        if t == b"+": return rest
        if t == b"-": return Exception(rest.decode())
        if t == b":": return int(rest)
        if t == b"$":
            n = int(rest)
            if n < 0: return None
            d = s.f.read(n + 2)[:-2]; return d
        if t == b"*":
            n = int(rest)
            return None if n < 0 else [s.read() for _ in range(n)]
        raise ValueError(line)

r = R(int(sys.argv[1]))
r.cmd("FLUSHALL")
out = {}
def dump(name, key):
    d = r.cmd("DUMP", key); assert isinstance(d, bytes), (name, d); out[name] = d

# strings
strings = {"str_empty": b"", "str_zero": b"0", "str_neg1": b"-1", "str_127": b"127", "str_128": b"128",
  "str_neg129": b"-129", "str_32767": b"32767", "str_32768": b"32768", "str_i32max": b"2147483647",
  "str_i32max_plus1": b"2147483648", "str_i32min": b"-2147483648", "str_11digits": b"12345678901",
  "str_leading_zero": b"0123", "str_hello": b"hello", "str_binary": bytes([0, 255, 13, 10, 128]),
  "str_repetitive": b"a" * 100, "str_text": b"The quick brown fox jumps over the lazy dog; the quick brown fox jumps again.",
  "str_incompressible": bytes(range(30)), "str_21_same": b"x" * 21, "str_i64max": b"9223372036854775807"}
for name, v in strings.items():
    r.cmd("SET", name, v); dump(name, name)
# lists
r.cmd("RPUSH", "list_small", "a", "b", "c", "1", "-5", "1000", "", "70000", "-70000", "5000000000")
dump("list_small", "list_small")
r.cmd("RPUSH", "list_compressible", *([b"same-element"] * 10)); dump("list_compressible", "list_compressible")
r.cmd("RPUSH", "list_large", *[b"element-%d" % i for i in range(2000)]); dump("list_large", "list_large")
r.cmd("RPUSH", "list_big_items", *[bytes([97 + i % 26]) * 3000 for i in range(7)]); dump("list_big_items", "list_big_items")
# sets
r.cmd("SADD", "set_int16", "1", "2", "3", "-5", "32767"); dump("set_int16", "set_int16")
r.cmd("SADD", "set_int32", "1", "70000", "-70000"); dump("set_int32", "set_int32")
r.cmd("SADD", "set_int64", "5000000000", "-1", "9223372036854775807", "-9223372036854775808"); dump("set_int64", "set_int64")
r.cmd("SADD", "set_strings", "a", "b", "c"); dump("set_strings", "set_strings")
r.cmd("SADD", "set_large_ints", *[str(i * 3) for i in range(600)]); dump("set_large_ints", "set_large_ints")
# zsets
r.cmd("ZADD", "zset_small", "1", "a", "2.5", "b", "-inf", "c", "inf", "d", "0.1", "e", "-3", "f", "1e100", "g", "123456789012", "h")
dump("zset_small", "zset_small")
r.cmd("ZADD", "zset_large", *sum([[str(i * 0.5), "member:%d" % i] for i in range(200)], [])); dump("zset_large", "zset_large")
r.cmd("ZADD", "zset_scores", "1e19", "a", "1.5e-7", "b", "12345.678", "c", "0.0001", "d", "-0", "e", "1e18", "f", "4611686018427387904", "g", "-1e-300", "h")
dump("zset_scores", "zset_scores")
r.cmd("ZADD", "zset_long_member", "1", "m" * 65, "2", "short"); dump("zset_long_member", "zset_long_member")
# hashes
r.cmd("HSET", "hash_small", "f1", "v1", "n", "123", "neg", "-70000", "empty", ""); dump("hash_small", "hash_small")
r.cmd("HSET", "hash_large", *sum([["field:%d" % i, "value:%d" % i] for i in range(200)], [])); dump("hash_large", "hash_large")
r.cmd("HSET", "hash_table", *sum([["field:%d" % i, "value:%d" % i] for i in range(600)], [])); dump("hash_table", "hash_table")
r.cmd("HSET", "hash_long_value", "f", "v" * 65); dump("hash_long_value", "hash_long_value")
# streams
r.cmd("XADD", "stream_simple", "1-1", "name", "ann", "age", "30")
r.cmd("XADD", "stream_simple", "1-2", "name", "bob", "age", "41")
r.cmd("XADD", "stream_simple", "5-0", "other", "field")
dump("stream_simple", "stream_simple")
for i in range(1, 251):
    r.cmd("XADD", "stream_groups", "%d-0" % (i * 10), "k", "v%d" % i, "n", str(i))
r.cmd("XGROUP", "CREATE", "stream_groups", "g1", "0")
r.cmd("XGROUP", "CREATE", "stream_groups", "g0", "$")
r.cmd("XGROUP", "CREATE", "stream_groups", "g2", "100-0", "ENTRIESREAD", "10")
r.cmd("XREADGROUP", "GROUP", "g1", "alice", "COUNT", "3", "STREAMS", "stream_groups", ">")
r.cmd("XREADGROUP", "GROUP", "g1", "bob", "COUNT", "2", "STREAMS", "stream_groups", ">")
r.cmd("XACK", "stream_groups", "g1", "20-0")
r.cmd("XGROUP", "CREATECONSUMER", "stream_groups", "g1", "idle")
dump("stream_groups", "stream_groups")
for i in range(1, 61):
    r.cmd("XADD", "stream_big_values", "%d-%d" % (1000 + i // 4, i % 4), "payload", "p" * (i * 7 % 250), "i", str(i))
dump("stream_big_values", "stream_big_values")
r.cmd("XADD", "stream_deleted", "1-0", "a", "1"); r.cmd("XADD", "stream_deleted", "2-0", "a", "2"); r.cmd("XADD", "stream_deleted", "3-0", "b", "3")
r.cmd("XDEL", "stream_deleted", "2-0"); dump("stream_deleted", "stream_deleted")
r.cmd("XADD", "stream_empty", "7-7", "a", "1"); r.cmd("XDEL", "stream_empty", "7-7"); dump("stream_empty", "stream_empty")

# Old encodings Redis 7.0 still restores: built by hand and checked by RESTORE.
def rlen(n):
    if n < 64: return bytes([n])
    if n < 16384: return bytes([0x40 | (n >> 8), n & 255])
    return b"\x80" + struct.pack(">I", n)
def rstr(b): return rlen(len(b)) + b
def payload(body, version=10):
    p = body + struct.pack("<H", version); return p + struct.pack("<Q", crc64(p))
def zl_entry(prevlen, v):
    pl = bytes([prevlen]) if prevlen < 254 else b"\xfe" + struct.pack("<I", prevlen)
    if isinstance(v, int):
        if 0 <= v <= 12: enc = bytes([0xf1 + v])
        elif -128 <= v <= 127: enc = b"\xfe" + struct.pack("<b", v)
        elif -32768 <= v <= 32767: enc = b"\xc0" + struct.pack("<h", v)
        elif -(1 << 23) <= v < (1 << 23): enc = b"\xf0" + struct.pack("<i", v)[:3]
        elif -(1 << 31) <= v < (1 << 31): enc = b"\xd0" + struct.pack("<i", v)
        else: enc = b"\xe0" + struct.pack("<q", v)
    else:
        n = len(v)
        if n < 64: enc = bytes([n]) + v
        elif n < 16384: enc = bytes([0x40 | (n >> 8), n & 255]) + v
        else: enc = b"\x80" + struct.pack(">I", n) + v
    return pl + enc
def ziplist(items):
    body = b""; prev = 0; tail = 10
    for it in items:
        tail = 10 + len(body); e = zl_entry(prev, it); body += e; prev = len(e)
    total = 10 + len(body) + 1
    return struct.pack("<IIH", total, tail, len(items)) + body + b"\xff"
def zipmap(pairs):
    b = bytes([len(pairs)])
    for k, v in pairs:
        b += bytes([len(k)]) + k + bytes([len(v)]) + b"\x00" + v
    return b + b"\xff"
old = {
  "old_list_plain": payload(b"\x01" + rlen(3) + rstr(b"x") + b"\xc0\x05" + rstr(b"zz")),
  "old_list_ziplist": payload(b"\x0a" + rstr(ziplist([b"a", 7, -100, 300, 100000, 10000000, 5000000000, b"b" * 70]))),
  "old_list_quicklist": payload(b"\x0e" + rlen(2) + rstr(ziplist([b"a", 1])) + rstr(ziplist([b"b", -2]))),
  "old_zset_text": payload(b"\x03" + rlen(4) + rstr(b"a") + b"\x031.5" + rstr(b"b") + b"\xfe" + rstr(b"c") + b"\xff" + rstr(b"d") + b"\x02-2"),
  "old_zset_ziplist": payload(b"\x0c" + rstr(ziplist([b"a", 1, b"b", b"2.5", b"c", b"inf"]))),
  "old_hash_ziplist": payload(b"\x0d" + rstr(ziplist([b"f", b"v", b"n", 12, b"m", -7]))),
  "old_hash_zipmap": payload(b"\x09" + rstr(zipmap([(b"k1", b"v1"), (b"key2", b"")]))),
  "old_set_plain": payload(b"\x02" + rlen(2) + rstr(b"p") + rstr(b"q")),
  "old_hash_plain": payload(b"\x04" + rlen(1) + rstr(b"f") + rstr(b"v")),
}
# A version-1 stream (RDB_TYPE_STREAM_LISTPACKS, Redis < 7.0): stream_simple's
# node with the 7.0-only fields left out, and groups without read counters.
v2 = out["stream_simple"][:-10]
node = v2[1:1 + 1 + 17 + 83]  # node count, 16-byte key, 81-byte listpack
assert v2[1 + 1 + 17 + 83:] == bytes([3, 5, 0, 1, 1, 0, 0, 3, 0]), v2.hex()
def id16(ms, seq): return struct.pack(">QQ", ms, seq)
def group(name, ms, seq): return rstr(name) + rlen(ms) + rlen(seq)
body = b"\x0f" + node + bytes([3, 5, 0]) + rlen(3)
body += group(b"g", 1, 2) + rlen(1) + id16(1, 1) + struct.pack("<Q", 1000) + rlen(2)
body += rlen(1) + rstr(b"c") + struct.pack("<Q", 2000) + rlen(1) + id16(1, 1)
body += group(b"last", 5, 0) + rlen(0) + rlen(0)
body += group(b"zero", 0, 0) + rlen(0) + rlen(0)
old["old_stream_v1"] = payload(body)
for name, p in old.items():
    res = r.cmd("RESTORE", name, "0", p)
    assert res == b"OK", (name, res)
    out[name] = p
print(r.cmd("XINFO", "STREAM", "old_stream_v1", "FULL"), file=sys.stderr)
for name in sorted(out):
    print("%s %s" % (name, out[name].hex()))
