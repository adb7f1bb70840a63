"""MIGRATE, differential against redis-server 7.0: Strata migrating to a
second Strata answers as Redis migrating to a second Redis, both targets
end with the same data, and keys cross between Strata and Redis both ways
(Redis's MIGRATE into Strata's RESTORE and back)."""
import pytest

from conftest import free_port, start_redis, start_strata
from test_dump import VALUES, view


@pytest.fixture(scope="module")
def targets():
    """A Strata target for the Strata source, a Redis one for Redis."""
    strata, redis = start_strata(), start_redis()
    yield strata, redis
    strata.close()
    redis.close()


@pytest.fixture
def moves(pair, targets):
    """The pair plus its targets, emptied: `moves.same(...)` runs a MIGRATE
    template on each source towards its own target."""
    strata_target, redis_target = targets

    class Moves:
        def __init__(self):
            self.pair = pair
            self.strata_target = strata_target.raw()
            self.redis_target = redis_target.raw()
            self.ports = (strata_target.port, redis_target.port)

        def both_targets(self, *args):
            return self.strata_target.call(*args), self.redis_target.call(*args)

        def migrate(self, *args):
            """MIGRATE 127.0.0.1 <own target's port> *args on each source."""
            ours = pair.strata.call("MIGRATE", "127.0.0.1", str(self.ports[0]), *args)
            theirs = pair.redis.call("MIGRATE", "127.0.0.1", str(self.ports[1]), *args)
            assert ours == theirs, f"MIGRATE {args!r}: strata {ours!r}, redis {theirs!r}"
            return ours

        def same_targets(self, *args):
            ours, theirs = self.both_targets(*args)
            assert ours == theirs, f"{args!r} on the targets: strata {ours!r}, redis {theirs!r}"
            return ours

    moves = Moves()
    moves.both_targets("FLUSHALL")
    yield moves
    moves.strata_target.close()
    moves.redis_target.close()


def test_one_key_moves_with_its_ttl(moves):
    pair = moves.pair
    pair.same("SET", "k", "v", "PX", "100000")
    assert moves.migrate("k", "0", "5000")[1] == "OK"
    pair.same("EXISTS", "k")
    moves.same_targets("GET", "k")
    for target in moves.both_targets("PTTL", "k"):
        assert 0 < target[1] <= 100000


def test_keys_copy_replace_and_databases(moves):
    pair = moves.pair
    pair.same("RPUSH", "l", "a", "b")
    pair.same("SADD", "s", "x")
    pair.same("SET", "str", "1")
    assert moves.migrate("", "3", "5000", "COPY", "KEYS", "l", "s", "str", "missing")[1] == "OK"
    pair.same("EXISTS", "l", "s", "str")
    moves.same_targets("SELECT", "3")
    moves.same_targets("LRANGE", "l", "0", "-1")
    moves.same_targets("DBSIZE")
    # The key exists on the target: BUSYKEY comes back, nothing is deleted.
    moves.migrate("", "3", "5000", "KEYS", "l", "str")
    pair.same("EXISTS", "l", "str")
    pair.same("RPUSH", "l", "c")
    assert moves.migrate("", "3", "5000", "REPLACE", "KEYS", "l", "str")[1] == "OK"
    pair.same("EXISTS", "l", "str", "s")
    moves.same_targets("LRANGE", "l", "0", "-1")
    # Back in database 0 on the same cached connection.
    assert moves.migrate("s", "0", "5000")[1] == "OK"
    moves.same_targets("SELECT", "0")
    moves.same_targets("SMEMBERS", "s")


def test_errors_and_nokey(moves):
    pair = moves.pair
    pair.same("SET", "k", "v")
    moves.migrate("missing", "0", "1000")
    moves.migrate("k", "0", "1000", "KEYS", "k")
    moves.migrate("k", "0", "1000", "BOGUS")
    moves.migrate("k", "0", "1000", "AUTH")
    moves.migrate("k", "0", "1000", "AUTH2", "user")
    moves.migrate("k", "zero", "1000")
    moves.migrate("k", "0", "soon")
    moves.migrate("k", "99", "1000")   # the target's SELECT error
    pair.same("EXISTS", "k")
    pair.same("MIGRATE", "127.0.0.1", "1", "k", "0", "100")
    # A port nobody listens on.
    closed = str(free_port())
    pair.same("MIGRATE", "127.0.0.1", closed, "k", "0", "200")
    pair.same("EXISTS", "k")


@pytest.mark.parametrize("kind", sorted(VALUES))
def test_every_type_crosses_between_strata_and_redis(moves, kind):
    pair = moves.pair
    for command in VALUES[kind]:
        pair.call(*command)
    expected = view(pair.redis, kind)
    strata_port, redis_port = moves.ports
    # Strata to Redis and Redis to Strata.
    assert pair.strata.call("MIGRATE", "127.0.0.1", str(redis_port), "k", "0", "5000")[1] == "OK"
    assert pair.redis.call("MIGRATE", "127.0.0.1", str(strata_port), "k", "0", "5000")[1] == "OK"
    pair.same("EXISTS", "k")
    assert view(moves.redis_target, kind) == expected
    assert view(moves.strata_target, kind) == expected


def test_auth_and_auth2_on_the_target(pair):
    strata_target = start_strata(["--requirepass", "secret"])
    redis_target = start_redis(["--requirepass", "secret"])
    try:
        ports = (strata_target.port, redis_target.port)

        def migrate(*args):
            ours = pair.strata.call("MIGRATE", "127.0.0.1", str(ports[0]), *args)
            theirs = pair.redis.call("MIGRATE", "127.0.0.1", str(ports[1]), *args)
            assert ours == theirs, f"{args!r}: strata {ours!r}, redis {theirs!r}"
            return ours

        pair.same("SET", "a", "1")
        pair.same("SET", "b", "2")
        migrate("a", "0", "5000")                                     # NOAUTH
        migrate("a", "0", "5000", "AUTH", "wrong")                    # WRONGPASS
        assert migrate("a", "0", "5000", "AUTH", "secret")[1] == "OK"
        assert migrate("b", "0", "5000", "AUTH2", "default", "secret")[1] == "OK"
        pair.same("EXISTS", "a", "b")
        for target in (strata_target, redis_target):
            conn = target.raw()
            conn.call("AUTH", "secret")
            assert conn.call("MGET", "a", "b")[1] == [b"1", b"2"]
            conn.close()
    finally:
        strata_target.close()
        redis_target.close()
