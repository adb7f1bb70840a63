"""Pub/sub compared with a real Redis: (un)subscribe replies in RESP2 and
RESP3, the subscribed context's rules, message delivery to channels,
patterns and shard channels, PUBSUB introspection, CLIENT LIST fields,
slow subscribers cut off at the pubsub output limit, and delivery under
concurrency."""
import socket
import threading
import time

from conftest import RawConn, encode, run_both, start_strata


def replies(conn, n):
    """The next `n` replies' bytes and values."""
    return [conn.read_reply() for _ in range(n)]


def same_replies(pair, args, n):
    """Sends `args` to both; the `n` replies each gives must be the same bytes."""
    pair.strata.send_raw(encode(args))
    pair.redis.send_raw(encode(args))
    ours, theirs = replies(pair.strata, n), replies(pair.redis, n)
    assert [raw for raw, _ in ours] == [raw for raw, _ in theirs], f"{args!r}: {ours!r} != {theirs!r}"
    return [value for _, value in theirs]


def test_subscribing_and_the_resp2_subscribed_context(pair):
    same_replies(pair, ("SUBSCRIBE", "a", "b"), 2)
    same_replies(pair, ("SUBSCRIBE", "a"), 1)
    same_replies(pair, ("PSUBSCRIBE", "p*", "q?"), 2)
    # Only (un)subscribing, PING, QUIT and RESET while subscribed.
    pair.same("GET", "x")
    pair.same("SET", "x", "1")
    pair.same("CONFIG", "GET", "maxmemory")
    pair.same("PING")
    pair.same("PING", "hi")
    same_replies(pair, ("UNSUBSCRIBE", "b", "nosuch"), 2)
    same_replies(pair, ("PUNSUBSCRIBE", "q?"), 1)
    same_replies(pair, ("PUNSUBSCRIBE",), 1)
    same_replies(pair, ("UNSUBSCRIBE",), 1)
    # Nothing left: one reply with a nil name.
    same_replies(pair, ("UNSUBSCRIBE",), 1)
    same_replies(pair, ("PUNSUBSCRIBE",), 1)
    same_replies(pair, ("SUNSUBSCRIBE",), 1)
    pair.same("PING")
    pair.same("GET", "x")
    # Shard channels count apart from channels and patterns.
    same_replies(pair, ("SSUBSCRIBE", "s1", "s2"), 2)
    same_replies(pair, ("SUBSCRIBE", "c"), 1)
    same_replies(pair, ("SUNSUBSCRIBE", "s1"), 1)
    pair.same("GET", "x")
    same_replies(pair, ("SUNSUBSCRIBE",), 1)
    same_replies(pair, ("UNSUBSCRIBE",), 1)
    pair.same("PING")
    pair.same("SUBSCRIBE")
    pair.same("PSUBSCRIBE")


def test_resp3_subscribers_get_pushes_and_run_any_command(pair):
    pair.call("HELLO", "3")
    same_replies(pair, ("SUBSCRIBE", "a"), 1)
    pair.same("SET", "x", "1")
    pair.same("GET", "x")
    pair.same("PING")
    same_replies(pair, ("PSUBSCRIBE", "*"), 1)
    same_replies(pair, ("UNSUBSCRIBE",), 1)
    pair.same("RESET")
    pair.same("PING")


def test_subscribe_in_multi_and_ssubscribe_refused_in_exec(pair):
    pair.same("MULTI")
    pair.same("SUBSCRIBE", "z")
    pair.same("SSUBSCRIBE", "q")
    same_replies(pair, ("EXEC",), 1)
    pair.same("PING")
    pair.same("RESET")


def test_messages_reach_channel_pattern_and_shard_subscribers(strata_server, redis_server):
    def scenario(cs):
        subscriber, patterns, both, shard, publisher = cs
        subscriber.call("SUBSCRIBE", "news", "hello")
        patterns.send_raw(encode(("PSUBSCRIBE", "h?llo", "n[a-f]ws", "*", "x\\*")))
        replies(patterns, 4)
        both.send_raw(encode(("SUBSCRIBE", "news")))
        replies(both, 1)
        both.call("PSUBSCRIBE", "news")
        shard.call("SSUBSCRIBE", "news")
        got = [publisher.call("PUBLISH", channel, payload)[1] for channel, payload in
               [("news", "one"), ("hello", "two"), ("hallo", "three"), ("x*", "four"), ("xy", "five"),
                ("nobody", "")]]
        got.append(publisher.call("SPUBLISH", "news", "sharded")[1])
        got.append(publisher.call("SPUBLISH", "hello", "nobody")[1])
        got.append(replies(subscriber, 2))
        # Patterns matching one channel are tried in no set order (Redis's
        # dict order): compared as a set.
        got.append(sorted(replies(patterns, 9)))
        got.append(replies(both, 2))
        got.append(replies(shard, 1))
        return got

    run_both(strata_server, redis_server, scenario)


def test_pubsub_introspection(strata_server, redis_server):
    def scenario(cs):
        a, b, c, asker = cs[:4]
        a.send_raw(encode(("SUBSCRIBE", "ch1", "ch2", "other")))
        replies(a, 3)
        b.send_raw(encode(("SUBSCRIBE", "ch1")))
        replies(b, 1)
        b.send_raw(encode(("PSUBSCRIBE", "ch*", "x")))
        replies(b, 2)
        c.send_raw(encode(("PSUBSCRIBE", "ch*")))
        replies(c, 1)
        c.send_raw(encode(("SSUBSCRIBE", "s1", "s2")))
        replies(c, 2)
        out = []
        for args in [("PUBSUB", "CHANNELS"), ("PUBSUB", "CHANNELS", "ch*"), ("PUBSUB", "SHARDCHANNELS"),
                     ("PUBSUB", "SHARDCHANNELS", "*2")]:
            raw, value = asker.call(*args)
            out.append(sorted(value))
        for args in [("PUBSUB", "NUMSUB"), ("PUBSUB", "NUMSUB", "ch1", "ch2", "nope"), ("PUBSUB", "NUMPAT"),
                     ("PUBSUB", "SHARDNUMSUB", "s1", "x"), ("PUBSUB", "HELP"), ("PUBSUB", "CHANNELS", "a", "b"),
                     ("PUBSUB", "numsub"), ("PUBSUB", "FOO"), ("PUBSUB",)]:
            out.append(asker.call(*args)[0])
        stats = asker.call("INFO", "stats")[1].decode()
        out.append([l for l in stats.splitlines() if l.startswith("pubsub")])
        listed = asker.call("CLIENT", "LIST", "TYPE", "pubsub")[1].decode()
        out.append(sorted(f.split("=")[1] for l in listed.splitlines() for f in l.split(" ") if f.startswith("sub=")))
        # A closed subscriber's subscriptions go with it.
        b.close()
        time.sleep(0.2)
        out.append(asker.call("PUBSUB", "NUMSUB", "ch1")[0])
        out.append(asker.call("PUBSUB", "NUMPAT")[0])
        return out

    run_both(strata_server, redis_server, scenario)


def client_fields(conn):
    """CLIENT LIST's pub/sub fields of the connection itself."""
    me = conn.call("CLIENT", "ID")[1]
    text = conn.call("CLIENT", "LIST")[1].decode().removeprefix("txt:")
    line = [l for l in text.splitlines() if l.startswith(f"id={me} ")][0]
    fields = dict(f.split("=", 1) for f in line.split(" "))
    return {k: fields[k] for k in ("flags", "sub", "psub", "ssub")}


def test_client_list_shows_subscriptions(strata_server, redis_server):
    def scenario(cs):
        c = cs[0]
        c.call("HELLO", "3")
        out = [client_fields(c)]
        c.send_raw(encode(("SUBSCRIBE", "a", "b")))
        replies(c, 2)
        c.call("PSUBSCRIBE", "p")
        c.call("SSUBSCRIBE", "s")
        out.append(client_fields(c))
        c.call("RESET")
        out.append(client_fields(c))
        return out

    run_both(strata_server, redis_server, scenario, conns=1)


def numsub(conn, channel):
    return conn.call("PUBSUB", "NUMSUB", channel)[1][1]


def test_a_subscriber_that_does_not_read_is_closed_at_the_pubsub_limit(strata_server, redis_server):
    for server in (strata_server, redis_server):
        admin = RawConn(server.port)
        old = admin.call("CONFIG", "GET", "client-output-buffer-limit")[1][1]
        admin.call("CONFIG", "SET", "client-output-buffer-limit", "pubsub 1mb 0 0")
        try:
            slow = socket.create_connection(("127.0.0.1", server.port))
            slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            slow.sendall(encode(("SUBSCRIBE", "flood")))
            deadline = time.time() + 10
            while numsub(admin, "flood") != 1 and time.time() < deadline:
                time.sleep(0.01)
            payload = "x" * 65536
            sent = 0
            while numsub(admin, "flood") == 1 and time.time() < deadline:
                admin.call("PUBLISH", "flood", payload)
                sent += 1
            assert numsub(admin, "flood") == 0, f"{server.name}: still subscribed after {sent} messages"
            assert sent * len(payload) < 64 << 20, f"{server.name}: {sent} messages before the cut"
            slow.close()
        finally:
            admin.call("CONFIG", "SET", "client-output-buffer-limit", old)
            admin.close()


def test_concurrent_publishers_reach_every_subscriber_once_in_order():
    server = start_strata(["--io-threads", "4"])
    try:
        publishers, per_publisher, channels = 4, 1500, ["c0", "c1", "c2"]
        subscribers = []
        for i in range(6):
            conn = RawConn(server.port)
            if i % 2:
                conn.call("PSUBSCRIBE", "c*")
            else:
                conn.send_raw(encode(("SUBSCRIBE", *channels)))
                replies(conn, len(channels))
            subscribers.append(conn)
        received = [[] for _ in subscribers]

        def read(i):
            conn = subscribers[i]
            while len(received[i]) < publishers * per_publisher:
                _, value = conn.read_reply()
                received[i].append(value[-1].decode())

        readers = [threading.Thread(target=read, args=(i,)) for i in range(len(subscribers))]
        for t in readers:
            t.start()

        def publish(p):
            conn = RawConn(server.port)
            for n in range(per_publisher):
                assert conn.call("PUBLISH", channels[n % 3], f"{p}:{n}")[1] == len(subscribers)
            conn.close()

        writers = [threading.Thread(target=publish, args=(p,)) for p in range(publishers)]
        for t in writers:
            t.start()
        for t in writers + readers:
            t.join(timeout=60)
        for got in received:
            assert len(got) == publishers * per_publisher
            for p in range(publishers):
                mine = [int(m.split(":")[1]) for m in got if m.startswith(f"{p}:")]
                assert mine == list(range(per_publisher)), f"publisher {p}: out of order or lost"
    finally:
        server.close()


def test_notify_keyspace_events_config(pair):
    for value in ["KEA", "Ex", "zl$gK", "Anm", "KEn", ""]:
        pair.same("CONFIG", "SET", "notify-keyspace-events", value)
        pair.same("CONFIG", "GET", "notify-keyspace-events")
    pair.same("CONFIG", "SET", "notify-keyspace-events", "KEq")
    pair.same("CONFIG", "GET", "notify-keyspace-events")


def events_of(server, commands, flags="KEA"):
    """The keyspace and keyevent messages `commands` make, in order."""
    admin, listener = RawConn(server.port), RawConn(server.port)
    admin.call("FLUSHALL")
    old = admin.call("CONFIG", "GET", "notify-keyspace-events")[1][1]
    admin.call("CONFIG", "SET", "notify-keyspace-events", flags)
    try:
        listener.call("PSUBSCRIBE", "__key*__:*")
        listener.call("SUBSCRIBE", "end")
        for command in commands:
            if command == "pause":
                time.sleep(0.05)
            else:
                admin.call(*command)
        admin.call("PUBLISH", "end", "")
        got = []
        while True:
            value = listener.read_reply()[1]
            if value[0] == b"message":
                return got
            got.append(tuple(value[2:]))
    finally:
        admin.call("CONFIG", "SET", "notify-keyspace-events", old)
        admin.close()
        listener.close()


def test_generic_and_string_commands_notify_as_redis_does(strata_server, redis_server):
    commands = [
        ("SET", "s", "1"), ("SET", "s", "2", "EX", "100"), ("SETNX", "s", "3"), ("SETNX", "n", "1"),
        ("SETEX", "e", "100", "v"), ("PSETEX", "e", "100000", "v"), ("GETSET", "s", "4"), ("GETDEL", "n"),
        ("GETDEL", "nosuch"), ("GETEX", "s", "EX", "50"), ("GETEX", "s", "PERSIST"), ("MSET", "a", "1", "b", "2"),
        ("MSETNX", "c", "1", "d", "2"), ("MSETNX", "c", "1", "z", "2"), ("APPEND", "a", "x"), ("APPEND", "new", "x"),
        ("INCR", "i"), ("INCRBY", "i", "5"), ("DECR", "i"), ("DECRBY", "i", "2"), ("INCRBYFLOAT", "f", "1.5"),
        ("SETRANGE", "r", "2", "ab"), ("SETRANGE", "r", "0", ""), ("SETBIT", "bits", "7", "1"),
        ("SETBIT", "bits", "7", "1"), ("BITOP", "OR", "dest", "bits", "a"), ("BITOP", "AND", "dest", "nosuch"),
        ("BITFIELD", "bf", "SET", "u8", "0", "5", "GET", "u8", "0"), ("BITFIELD", "bf", "GET", "u8", "0"),
        ("DEL", "a", "nosuch", "b"), ("UNLINK", "c"), ("EXPIRE", "d", "100"), ("PEXPIRE", "d", "100000", "XX"),
        ("EXPIRE", "d", "10", "GT"), ("PERSIST", "d"), ("PERSIST", "d"), ("EXPIREAT", "d", "1"),
        ("RENAME", "s", "s2"), ("RENAMENX", "s2", "e"), ("SET", "m", "1"), ("MOVE", "m", "1"),
        ("COPY", "e", "e2"), ("COPY", "e", "e3", "DB", "2"), ("RENAME", "e2", "e3"),
        ("SET", "gone", "1", "PX", "1"), "pause", ("GET", "gone"), ("FLUSHALL",),
    ]
    for flags in ["KEA", "KEAn", "Kg", "E$", "Kx"]:
        ours, theirs = events_of(strata_server, commands, flags), events_of(redis_server, commands, flags)
        assert ours == theirs, f"{flags}: strata {ours} != redis {theirs}"


def same_events(strata_server, redis_server, commands):
    for flags in ["KEA", "KEAn", "Kg", "El", "Kh", "Esz", "Kt"]:
        ours, theirs = events_of(strata_server, commands, flags), events_of(redis_server, commands, flags)
        assert ours == theirs, f"{flags}: strata {ours} != redis {theirs}"


def test_hash_and_list_commands_notify_as_redis_does(strata_server, redis_server):
    same_events(strata_server, redis_server, [
        ("HSET", "h", "a", "1", "b", "2"), ("HMSET", "h", "c", "3"), ("HSETNX", "h", "a", "9"),
        ("HSETNX", "h", "d", "4"), ("HINCRBY", "h", "i", "2"), ("HINCRBYFLOAT", "h", "f", "0.5"),
        ("HDEL", "h", "nosuch"), ("HDEL", "h", "a", "b"), ("HDEL", "h", "c", "d", "i", "f"), ("HDEL", "h", "x"),
        ("RPUSH", "l", "a", "b", "c", "d", "e"), ("LPUSH", "l", "z"), ("LPUSHX", "nosuch", "a"), ("RPUSHX", "l", "f"),
        ("LPOP", "l"), ("RPOP", "l", "2"), ("LPOP", "l", "0"), ("LSET", "l", "0", "x"),
        ("LINSERT", "l", "BEFORE", "x", "w"), ("LINSERT", "l", "AFTER", "nope", "w"), ("LREM", "l", "0", "nope"),
        ("LREM", "l", "1", "w"), ("LTRIM", "l", "0", "-1"), ("LTRIM", "l", "0", "0"), ("LTRIM", "nosuch", "0", "1"),
        ("RPUSH", "m", "1", "2"), ("LMOVE", "m", "n", "LEFT", "RIGHT"), ("RPOPLPUSH", "m", "n"),
        ("RPOPLPUSH", "n", "n"), ("LMPOP", "2", "nosuch", "n", "LEFT", "COUNT", "5"), ("RPUSH", "q", "1"),
        ("BLPOP", "q", "0"), ("RPUSH", "q", "1", "2"), ("BRPOP", "q", "0"), ("LTRIM", "q", "1", "0"),
        ("RPUSH", "r", "a"), ("LREM", "r", "0", "a"),
    ])


def test_set_and_sorted_set_commands_notify_as_redis_does(strata_server, redis_server):
    same_events(strata_server, redis_server, [
        ("SADD", "s", "a", "b", "c"), ("SADD", "s", "a"), ("SREM", "s", "x"), ("SREM", "s", "a"),
        ("SMOVE", "s", "t", "b"), ("SMOVE", "s", "t", "nope"), ("SADD", "t", "c"), ("SMOVE", "s", "t", "c"),
        ("SADD", "u", "1", "2"), ("SPOP", "u"), ("SPOP", "u", "5"), ("SPOP", "nosuch"),
        ("SADD", "v", "1"), ("SINTERSTORE", "w", "t", "v"), ("SUNIONSTORE", "w", "t", "v"),
        ("SUNIONSTORE", "w2", "t", "v"), ("SDIFFSTORE", "w", "t", "t"), ("SDIFFSTORE", "w", "t", "t"),
        ("SET", "str", "x"), ("SUNIONSTORE", "str", "t"),
        ("ZADD", "z", "1", "a", "2", "b", "3", "c", "4", "d"), ("ZADD", "z", "1", "a"), ("ZADD", "z", "INCR", "0", "a"),
        ("ZADD", "z", "INCR", "5", "a"), ("ZINCRBY", "z", "1", "b"), ("ZADD", "z", "XX", "CH", "9", "c", "1", "new"),
        ("ZREM", "z", "nope"), ("ZREM", "z", "d"), ("ZREMRANGEBYRANK", "z", "5", "9"),
        ("ZREMRANGEBYSCORE", "z", "-inf", "1"), ("ZADD", "y", "0", "a", "0", "b", "0", "c"),
        ("ZREMRANGEBYLEX", "y", "[a", "[a"), ("ZPOPMIN", "y"), ("ZPOPMAX", "y", "5"), ("ZPOPMIN", "nosuch"),
        ("ZADD", "x", "1", "m", "2", "n"), ("ZMPOP", "2", "nosuch", "x", "MIN"), ("BZPOPMAX", "x", "0"),
        ("ZADD", "p", "1", "a", "2", "b"), ("ZRANGESTORE", "q", "p", "0", "0"), ("ZRANGESTORE", "q", "p", "5", "9"),
        ("ZUNIONSTORE", "r", "2", "p", "z"), ("ZINTERSTORE", "r", "2", "p", "z"), ("ZDIFFSTORE", "r", "1", "p"),
        ("ZDIFFSTORE", "r2", "2", "p", "p"), ("ZREMRANGEBYSCORE", "p", "-inf", "+inf"),
    ])


def test_stream_commands_notify_as_redis_does(strata_server, redis_server):
    same_events(strata_server, redis_server, [
        ("XADD", "x", "1-1", "f", "v"), ("XADD", "x", "2-1", "f", "v"), ("XADD", "x", "MAXLEN", "1", "3-1", "f", "v"),
        ("XADD", "nosuch", "NOMKSTREAM", "*", "f", "v"), ("XADD", "x", "4-1", "f", "v"), ("XDEL", "x", "9-9"),
        ("XDEL", "x", "3-1"), ("XTRIM", "x", "MAXLEN", "5"), ("XTRIM", "x", "MAXLEN", "0"), ("XSETID", "x", "9-9"),
        ("XGROUP", "CREATE", "x", "g", "0"), ("XGROUP", "CREATE", "y", "g", "$", "MKSTREAM"),
        ("XGROUP", "SETID", "x", "g", "0"), ("XGROUP", "CREATECONSUMER", "x", "g", "c1"),
        ("XGROUP", "CREATECONSUMER", "x", "g", "c1"), ("XADD", "x", "10-1", "f", "v"),
        ("XREADGROUP", "GROUP", "g", "c2", "STREAMS", "x", ">"), ("XREADGROUP", "GROUP", "g", "c3", "STREAMS", "x", ">"),
        ("XREADGROUP", "GROUP", "g", "c4", "STREAMS", "x", "0"), ("XCLAIM", "x", "g", "c5", "0", "10-1"),
        ("XCLAIM", "x", "g", "c6", "0", "99-1"), ("XAUTOCLAIM", "x", "g", "c7", "0", "0"),
        ("XAUTOCLAIM", "y", "g", "c8", "0", "0"), ("XACK", "x", "g", "10-1"),
        ("XGROUP", "DELCONSUMER", "x", "g", "c2"), ("XGROUP", "DELCONSUMER", "x", "g", "nope"),
        ("XGROUP", "DESTROY", "x", "g"), ("XGROUP", "DESTROY", "x", "g"),
    ])


def test_read_misses_notify_keymiss_as_redis_does(strata_server, redis_server):
    commands = [
        ("SET", "a", "x"), ("GET", "nosuch"), ("GET", "a"), ("MGET", "a", "m1", "m2"), ("EXISTS", "nosuch", "a"),
        ("TYPE", "nosuch"), ("TTL", "nosuch"), ("PTTL", "a"), ("HGET", "nosuch", "f"), ("LRANGE", "nosuch", "0", "-1"),
        ("LLEN", "nosuch"), ("SMEMBERS", "nosuch"), ("SINTER", "nosuch", "other"), ("ZRANGE", "nosuch", "0", "-1"),
        ("ZSCORE", "nosuch", "m"), ("XLEN", "nosuch"), ("XRANGE", "nosuch", "-", "+"), ("GETBIT", "nosuch", "1"),
        ("BITCOUNT", "nosuch"), ("STRLEN", "nosuch"), ("GETRANGE", "nosuch", "0", "1"), ("LCS", "a", "nosuch"),
        ("COPY", "nosuch", "dst"), ("OBJECT", "ENCODING", "nosuch"), ("SET", "b", "v", "GET"),
        ("BITOP", "AND", "d", "nosuch", "a"), ("GETDEL", "nosuch"), ("GETEX", "nosuch"),
    ]
    for flags in ["KEm", "Em", "KEA"]:
        ours, theirs = events_of(strata_server, commands, flags), events_of(redis_server, commands, flags)
        assert ours == theirs, f"{flags}: strata {ours} != redis {theirs}"


def monitor_lines(server, commands):
    """What a MONITOR client sees of `commands` (run by another client),
    the time and the client's port taken out."""
    watcher, actor = RawConn(server.port), RawConn(server.port)
    assert watcher.call("MONITOR")[1] == "OK"
    for command in commands:
        actor.call(*command)
    actor.call("ECHO", "done")
    lines = []
    while True:
        line = watcher.read_reply()[1]
        _, rest = line.split(" ", 1)
        db, _, args = rest.partition("] ")
        lines.append((db.split(" ")[0], args))
        if args == '"ECHO" "done"':
            break
    watcher.close()
    actor.close()
    return lines


def test_monitor_shows_each_command_as_redis_does(strata_server, redis_server):
    commands = [
        ("SET", "k", "v"), ("GET", "k"), ("SELECT", "1"), ("SET", "k", 'a "b"\n\x00\xff'), ("CONFIG", "GET", "save"),
        ("MULTI",), ("SET", "x", "1"), ("INCR", "x"), ("EXEC",), ("NOSUCH", "x"), ("GET",), ("SELECT", "0"),
        ("RPUSH", "l", "a"), ("LPOP", "l"),
    ]
    assert monitor_lines(strata_server, commands) == monitor_lines(redis_server, commands)


def test_client_reply_on_off_skip(strata_server, redis_server):
    def scenario(cs):
        c = cs[0]
        c.send_raw(b"".join(encode(args) for args in [
            ("CLIENT", "REPLY", "OFF"), ("SET", "a", "1"), ("GET", "a"), ("GET",), ("CLIENT", "REPLY", "SKIP"),
            ("CLIENT", "REPLY", "ON"), ("GET", "a"), ("CLIENT", "REPLY", "SKIP"), ("GET", "a"), ("INCR", "a"),
            ("CLIENT", "REPLY", "FOO"), ("PING",),
        ]))
        got = []
        while not got or got[-1] != "PONG":
            got.append(c.read_reply()[1])
        return got

    run_both(strata_server, redis_server, scenario, conns=1)


def until_pong(conn):
    """Sends PING; the pushes that come before its PONG."""
    conn.send_raw(encode(("PING",)))
    got = []
    while True:
        value = conn.read_reply()[1]
        if value == "PONG":
            return got
        got.append(value)


def test_client_tracking_invalidates_as_redis_does(strata_server, redis_server):
    def scenario(cs):
        tracker, other, bcast, optin, optout = cs
        for c in (tracker, bcast, optin, optout):
            c.call("HELLO", "3")
        out = [tracker.call("CLIENT", "TRACKING", "ON")[1]]
        bcast.call("CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "user:", "PREFIX", "k")
        optin.call("CLIENT", "TRACKING", "ON", "OPTIN")
        optout.call("CLIENT", "TRACKING", "ON", "OPTOUT", "NOLOOP")
        for c in (tracker, optin, optout):
            c.call("GET", "a")
            c.call("MGET", "b", "c")
        optin.call("CLIENT", "CACHING", "YES")
        optin.call("GET", "d")
        optout.call("CLIENT", "CACHING", "NO")
        optout.call("GET", "d")
        other.call("SET", "a", "1")
        other.call("MSET", "b", "1", "c", "2", "d", "3", "user:1", "x", "other", "y")
        other.call("SET", "a", "2")  # not read since: nothing more
        out += [until_pong(c) for c in (tracker, bcast, optin, optout)]
        # A tracking client's own write: after its reply (unless NOLOOP).
        tracker.call("GET", "own")
        out.append(tracker.call("SET", "own", "1")[1])
        out.append(until_pong(tracker))
        optout.call("GET", "own2")
        optout.call("SET", "own2", "1")
        out.append(until_pong(optout))
        # Expired keys are invalidated too; FLUSHALL invalidates everything.
        tracker.call("SET", "brief", "1", "PX", "1")
        tracker.call("GET", "brief")
        time.sleep(0.05)
        other.call("GET", "brief")
        out.append(until_pong(tracker))
        other.call("FLUSHALL")
        out += [until_pong(c) for c in (tracker, bcast, optin, optout)]
        out.append(tracker.call("CLIENT", "TRACKINGINFO")[1])
        out.append(bcast.call("CLIENT", "TRACKINGINFO")[1])
        out.append(optin.call("CLIENT", "TRACKINGINFO")[1])
        out.append(other.call("CLIENT", "TRACKINGINFO")[1])
        out.append(other.call("CLIENT", "GETREDIR")[1])
        out.append(tracker.call("CLIENT", "GETREDIR")[1])
        info = other.call("INFO", "clients")[1].decode()
        out.append([l for l in info.splitlines() if l.startswith("tracking_clients")])
        out.append(tracker.call("CLIENT", "TRACKING", "OFF")[1])
        out.append(tracker.call("CLIENT", "TRACKINGINFO")[1])
        return out

    run_both(strata_server, redis_server, scenario)


def test_client_tracking_redirect_and_errors(strata_server, redis_server):
    def scenario(cs):
        tracker, listener, other, gone = cs[:4]
        out = []
        listener_id = listener.call("CLIENT", "ID")[1]
        listener.call("SUBSCRIBE", "__redis__:invalidate")
        out.append(tracker.call("CLIENT", "TRACKING", "ON", "REDIRECT", listener_id)[1])
        out.append(tracker.call("CLIENT", "GETREDIR")[1] == listener_id)
        tracker.call("GET", "a")
        other.call("SET", "a", "1")
        out.append(listener.read_reply()[1])
        other.call("FLUSHDB")
        out.append(listener.read_reply()[1])
        # The client redirected to is gone: the tracker is told (RESP3).
        gone_id = gone.call("CLIENT", "ID")[1]
        tracker.call("HELLO", "3")
        tracker.call("CLIENT", "TRACKING", "ON", "REDIRECT", gone_id)
        gone.close()
        time.sleep(0.1)
        tracker.call("GET", "b")
        other.call("SET", "b", "1")
        pushes = until_pong(tracker)
        out.append([p[0] for p in pushes])
        out.append(tracker.call("CLIENT", "TRACKINGINFO")[1][1])
        line = [l for l in tracker.call("CLIENT", "INFO")[1].decode().split(" ") if l.startswith("flags=")]
        out.append(line)
        for args in [("ON", "PREFIX", "x"), ("ON", "BCAST", "OPTIN"), ("ON", "OPTIN", "OPTOUT"),
                     ("ON", "REDIRECT", "999999"), ("ON", "REDIRECT", "abc"), ("ON", "FOO"), ("MAYBE",),
                     ("ON", "BCAST", "PREFIX", "ab", "PREFIX", "abc"), ("ON", "REDIRECT")]:
            out.append(other.call("CLIENT", "TRACKING", *args)[1])
        out.append(other.call("CLIENT", "CACHING", "YES")[1])
        other.call("CLIENT", "TRACKING", "ON", "OPTIN")
        out.append(other.call("CLIENT", "CACHING", "NO")[1])
        out.append(other.call("CLIENT", "CACHING", "MAYBE")[1])
        out.append(other.call("CLIENT", "TRACKING", "ON", "OPTOUT")[1])
        out.append(other.call("CLIENT", "TRACKING", "ON", "BCAST")[1])
        return out

    run_both(strata_server, redis_server, scenario)
