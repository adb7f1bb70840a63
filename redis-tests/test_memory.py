"""maxmemory with the noeviction policy, compared with a real Redis."""


def test_noeviction_refuses_writes_over_the_limit(pair):
    pair.same("SET", "before", "v")
    pair.same("CONFIG", "SET", "maxmemory", "1")
    try:
        pair.same("SET", "k", "v")
        pair.same("HSET", "h", "f", "v")
        pair.same("INCR", "n")
        # Reads and deletes still work.
        pair.same("GET", "before")
        pair.same("DEL", "before")
        pair.same("PING")
    finally:
        pair.same("CONFIG", "SET", "maxmemory", "0")
    pair.same("SET", "k", "v")


def test_used_memory_is_reported(strata_server):
    client = strata_server.client()
    info = client.info("memory")
    assert info["used_memory"] > 0
    assert info["used_memory_rss"] >= info["used_memory"] // 2
    assert info["maxmemory_policy"] == "noeviction"
