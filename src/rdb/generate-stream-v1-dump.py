import sys, struct
sys.argv = [sys.argv[0], sys.argv[1]]
src=open("gen.py").read()
exec(src.split("r = R(")[0])
exec("#" + src.split("# Old encodings")[1].split("old = {")[0])
r = R(int(sys.argv[1]))
fx = dict(l.split() for l in open("fixtures.txt"))
v2 = bytes.fromhex(fx["stream_simple"])[:-10]
# v2 layout: type, node count, key(1+16), listpack(2+81), length, last ms, last seq, first(2), maxdel(2), added, groups
head = v2[1:1 + 1 + 17 + 83]
assert v2[1 + 1 + 17 + 83:] == bytes([3, 5, 0, 1, 1, 0, 0, 3, 0]), v2[1 + 1 + 17 + 83:].hex()
def id16(ms, seq): return struct.pack(">QQ", ms, seq)
group = lambda name, ms, seq: rstr(name) + rlen(ms) + rlen(seq)
body = b"\x0f" + head + bytes([3, 5, 0]) + rlen(3)
body += group(b"g", 1, 2) + rlen(1) + id16(1, 1) + struct.pack("<Q", 1000) + rlen(2)
body += rlen(1) + rstr(b"c") + struct.pack("<Q", 2000) + rlen(1) + id16(1, 1)
body += group(b"last", 5, 0) + rlen(0) + rlen(0)
body += group(b"zero", 0, 0) + rlen(0) + rlen(0)
p = payload(body)
res = r.cmd("RESTORE", "old_stream_v1", "0", p); assert res == b"OK", res
info = r.cmd("XINFO", "STREAM", "old_stream_v1", "FULL")
print(info, file=sys.stderr)
print("old_stream_v1", p.hex())
bad = bytes.fromhex(fx["str_hello"]); bad = bad[:-8] + b"\0" * 8
print("zero crc:", r.cmd("RESTORE", "zc", "0", bad), file=sys.stderr)
print("trailing:", r.cmd("RESTORE", "tr", "0", payload(bytes.fromhex(fx["str_hello"])[:-10] + b"\x00")), file=sys.stderr)
print("empty list:", r.cmd("RESTORE", "el", "0", payload(b"\x12\x00")), file=sys.stderr)
print("v11:", r.cmd("RESTORE", "v11", "0", payload(b"\x00\x01a", 11)), file=sys.stderr)
