"""OBJECT ENCODING of memory-engine types follows Redis 7.0's rules."""


def test_set_and_zset_encodings(pair):
    pair.same("SADD", "ints", "1", "2", "-3")
    pair.same("OBJECT", "ENCODING", "ints")
    pair.same("SADD", "mixed", "1", "a")
    pair.same("OBJECT", "ENCODING", "mixed")
    pair.same("SADD", "big", *[str(i) for i in range(600)])
    pair.same("OBJECT", "ENCODING", "big")
    pair.same("ZADD", "small", "1", "a", "2", "b")
    pair.same("OBJECT", "ENCODING", "small")
    pair.same("ZADD", "long", "1", "x" * 100)
    pair.same("OBJECT", "ENCODING", "long")
    pair.same("ZADD", "many", *[x for i in range(200) for x in (str(i), f"m{i}")])
    pair.same("OBJECT", "ENCODING", "many")
    pair.same("RPUSH", "list", "a")
    pair.same("OBJECT", "ENCODING", "list")
