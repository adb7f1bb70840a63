"""SCAN over keys held by different engines keeps Redis's guarantee: every
key present for the whole iteration is returned, even while other keys are
added and deleted between calls."""


def make_keys(r, prefix, n):
    names = []
    for i in range(n):
        name = f"{prefix}:{i}"
        kind = i % 5
        if kind == 0:
            r.set(name, "v")
        elif kind == 1:
            r.hset(name, "f", "v")
        elif kind == 2:
            r.rpush(name, "a")
        elif kind == 3:
            r.sadd(name, "m")
        else:
            r.zadd(name, {"m": 1})
        names.append(name.encode())
    return names


def test_scan_returns_stable_keys_under_churn(r):
    stable = make_keys(r, "stable", 400)
    seen = set()
    cursor = 0
    calls = 0
    while True:
        cursor, keys = r.scan(cursor, count=15)
        seen.update(keys)
        calls += 1
        # Churn: new keys of every type appear, others disappear.
        make_keys(r, f"churn{calls}", 5)
        if calls > 2:
            r.delete(*[f"churn{calls - 2}:{i}" for i in range(5)])
        if cursor == 0:
            break
        assert calls < 10000
    assert set(stable) <= seen


def test_scan_type_filter_across_engines(r):
    make_keys(r, "typed", 50)
    for type_name, expected in [("string", 10), ("hash", 10), ("list", 10), ("set", 10), ("zset", 10)]:
        found = set()
        cursor = 0
        while True:
            cursor, keys = r.scan(cursor, count=7, _type=type_name)
            found.update(keys)
            if cursor == 0:
                break
        assert len(found) == expected, type_name
    assert len(r.keys("typed:*")) == 50
    assert r.dbsize() == 50
    assert r.randomkey() is not None
