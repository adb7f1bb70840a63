"""XREAD BLOCK and XREADGROUP BLOCK with several clients, compared with a
real Redis: each scenario runs against both servers and must produce the
same replies (entry IDs are explicit, so replies are byte-identical)."""
import time

import pytest

from conftest import RawConn, blocked_count, encode, run_both, wait_blocked


def test_xread_block_woken_by_xadd(strata_server, redis_server):
    def scenario(c):
        c[1].send_raw(encode(["XREAD", "BLOCK", "0", "STREAMS", "s", "0-0"]))
        wait_blocked(c[0], 1)
        added = c[0].call("XADD", "s", "5-1", "f", "v")[0]
        return added, c[1].read_reply()[0], blocked_count(c[0])
    result = run_both(strata_server, redis_server, scenario)
    assert b"5-1" in result[1]


def test_dollar_is_resolved_when_blocking(strata_server, redis_server):
    def scenario(c):
        c[0].call("XADD", "s", "1-0", "old", "1")
        c[1].send_raw(encode(["XREAD", "BLOCK", "0", "STREAMS", "s", "$"]))
        wait_blocked(c[0], 1)
        c[0].call("XADD", "s", "2-0", "new", "2")
        first = c[1].read_reply()[0]
        # `$` on a missing stream waits for anything after 0-0.
        c[1].send_raw(encode(["XREAD", "BLOCK", "0", "STREAMS", "missing", "$"]))
        wait_blocked(c[0], 1)
        c[0].call("XADD", "missing", "0-1", "a", "b")
        return first, c[1].read_reply()[0]
    result = run_both(strata_server, redis_server, scenario)
    assert b"old" not in result[0] and b"new" in result[0]


def test_entries_present_are_read_without_blocking(strata_server, redis_server):
    def scenario(c):
        c[0].call("XADD", "s", "1-0", "a", "1")
        return (c[1].call("XREAD", "BLOCK", "0", "STREAMS", "s", "0")[0],
                c[1].call("XREAD", "COUNT", "1", "BLOCK", "10", "STREAMS", "nokey", "s", "0", "0")[0])
    run_both(strata_server, redis_server, scenario)


def test_timeouts_and_errors(strata_server, redis_server):
    def scenario(c):
        replies = []
        for args in (["XREAD", "BLOCK", "50", "STREAMS", "s", "$"],
                     ["XREAD", "BLOCK", "-1", "STREAMS", "s", "$"],
                     ["XREAD", "BLOCK", "1.5", "STREAMS", "s", "$"],
                     ["XREAD", "BLOCK", "abc", "COUNT", "x", "STREAMS", "s", "$"],
                     ["XREAD", "COUNT", "x", "BLOCK", "abc", "STREAMS", "s", "$"],
                     ["XREAD", "BLOCK", "99999999999999999999", "STREAMS", "s", "$"],
                     ["XREADGROUP", "GROUP", "g", "c", "BLOCK", "10", "STREAMS", "s", ">"]):
            replies.append(c[1].call(*args)[0])
        c[0].call("XGROUP", "CREATE", "s", "g", "$", "MKSTREAM")
        replies.append(c[1].call("XREADGROUP", "GROUP", "g", "c", "BLOCK", "50", "STREAMS", "s", ">")[0])
        c[1].call("HELLO", "3")
        replies.append(c[1].call("XREAD", "BLOCK", "30", "STREAMS", "s", "$")[0])
        replies.append(c[1].call("XREADGROUP", "GROUP", "g", "c", "BLOCK", "30", "STREAMS", "s", ">")[0])
        c[0].call("SET", "str", "x")
        replies.append(c[1].call("XREAD", "BLOCK", "30", "STREAMS", "str", "$")[0])
        return replies, blocked_count(c[0])
    run_both(strata_server, redis_server, scenario)


def test_timeout_takes_about_the_given_time(strata_server):
    conn = RawConn(strata_server.port)
    conn.call("FLUSHALL")
    started = time.monotonic()
    assert conn.call("XREAD", "BLOCK", "200", "STREAMS", "s", "$")[0] == b"*-1\r\n"
    elapsed = time.monotonic() - started
    assert 0.18 <= elapsed < 2.0, elapsed
    conn.close()


def test_one_xadd_serves_every_reader(strata_server, redis_server):
    def scenario(c):
        c[0].call("XADD", "s", "1-0", "a", "1")
        c[1].send_raw(encode(["XREAD", "BLOCK", "0", "STREAMS", "s", "$"]))
        wait_blocked(c[0], 1)
        # Waits for an ID beyond what the next XADD gives: stays blocked,
        # and must not hold up the readers behind it.
        c[2].send_raw(encode(["XREAD", "BLOCK", "0", "STREAMS", "s", "100-0"]))
        wait_blocked(c[0], 2)
        c[3].send_raw(encode(["XREAD", "BLOCK", "0", "STREAMS", "other", "s", "$", "1-0"]))
        wait_blocked(c[0], 3)
        c[0].call("XADD", "s", "2-0", "b", "2")
        first, third = c[1].read_reply()[0], c[3].read_reply()[0]
        still = blocked_count(c[0])
        c[0].call("XADD", "s", "101-0", "c", "3")
        return first, third, still, c[2].read_reply()[0], blocked_count(c[0])
    result = run_both(strata_server, redis_server, scenario)
    assert result[2] == 1


def test_count_with_block(strata_server, redis_server):
    def scenario(c):
        c[1].send_raw(encode(["XREAD", "COUNT", "2", "BLOCK", "0", "STREAMS", "s", "$"]))
        wait_blocked(c[0], 1)
        c[0].send_raw(encode(["MULTI"]) + encode(["XADD", "s", "1-0", "a", "1"]) + encode(["XADD", "s", "2-0", "a", "2"])
                      + encode(["XADD", "s", "3-0", "a", "3"]) + encode(["EXEC"]))
        for _ in range(5):
            c[0].read_reply()
        return c[1].read_reply()[0]
    if RawConn(strata_server.port).call("MULTI")[1] != "OK":
        pytest.skip("MULTI is not served yet")
    run_both(strata_server, redis_server, scenario)


def test_count_with_block_one_at_a_time(strata_server, redis_server):
    def pipelined(c):
        c[1].send_raw(encode(["XREAD", "COUNT", "1", "BLOCK", "0", "STREAMS", "s", "$"]))
        wait_blocked(c[0], 1)
        c[0].call("XADD", "s", "1-0", "a", "1")
        return c[1].read_reply()[0], c[1].call("XREAD", "COUNT", "1", "STREAMS", "s", "0")[0]
    run_both(strata_server, redis_server, pipelined)


def test_xreadgroup_block_two_consumers(strata_server, redis_server):
    def scenario(c):
        c[0].call("XGROUP", "CREATE", "s", "g", "$", "MKSTREAM")
        c[1].send_raw(encode(["XREADGROUP", "GROUP", "g", "alice", "BLOCK", "0", "STREAMS", "s", ">"]))
        wait_blocked(c[0], 1)
        c[2].send_raw(encode(["XREADGROUP", "GROUP", "g", "bob", "COUNT", "1", "BLOCK", "0", "STREAMS", "s", ">"]))
        wait_blocked(c[0], 2)
        c[0].call("XADD", "s", "1-0", "a", "1")
        alice = c[1].read_reply()[0]
        # bob still waits: the entry went to alice, nothing is new for the group.
        still = blocked_count(c[0])
        c[0].call("XADD", "s", "2-0", "b", "2")
        bob = c[2].read_reply()[0]
        pending = c[0].call("XPENDING", "s", "g", "-", "+", "10")[1]
        return (alice, bob, still, [(p[0], p[1], p[3]) for p in pending],
                c[0].call("XINFO", "GROUPS", "s")[0],
                c[1].call("XREADGROUP", "GROUP", "g", "alice", "BLOCK", "0", "STREAMS", "s", "0")[0])
    result = run_both(strata_server, redis_server, scenario)
    assert result[2] == 1


def test_xreadgroup_block_noack_and_history(strata_server, redis_server):
    def scenario(c):
        c[0].call("XADD", "s", "1-0", "a", "1")
        c[0].call("XGROUP", "CREATE", "s", "g", "$")
        # History reads answer at once, even empty.
        history = c[1].call("XREADGROUP", "GROUP", "g", "c", "BLOCK", "0", "STREAMS", "s", "0")[0]
        c[1].send_raw(encode(["XREADGROUP", "GROUP", "g", "c", "NOACK", "BLOCK", "0", "STREAMS", "s", ">"]))
        wait_blocked(c[0], 1)
        c[0].call("XADD", "s", "2-0", "b", "2")
        return history, c[1].read_reply()[0], c[0].call("XPENDING", "s", "g")[0]
    run_both(strata_server, redis_server, scenario)


def test_group_destroyed_or_key_deleted_while_blocked(strata_server, redis_server):
    def scenario(c):
        c[0].call("XGROUP", "CREATE", "s", "g", "$", "MKSTREAM")
        c[1].send_raw(encode(["XREADGROUP", "GROUP", "g", "c", "BLOCK", "0", "STREAMS", "s", ">"]))
        wait_blocked(c[0], 1)
        c[0].call("XGROUP", "DESTROY", "s", "g")
        destroyed = c[1].read_reply()[0]
        c[0].call("XGROUP", "CREATE", "s", "g", "$")
        c[1].send_raw(encode(["XREADGROUP", "GROUP", "g", "c", "BLOCK", "0", "STREAMS", "s", ">"]))
        # A plain reader of the same key keeps waiting.
        c[2].send_raw(encode(["XREAD", "BLOCK", "0", "STREAMS", "s", "$"]))
        wait_blocked(c[0], 2)
        c[0].call("DEL", "s")
        deleted = c[1].read_reply()[0]
        wait_blocked(c[0], 1)
        c[0].call("XADD", "s", "7-0", "x", "y")
        reader = c[2].read_reply()[0]
        # Replaced by another type.
        c[0].call("XGROUP", "CREATE", "s", "g", "$")
        c[1].send_raw(encode(["XREADGROUP", "GROUP", "g", "c", "BLOCK", "0", "STREAMS", "s", ">"]))
        wait_blocked(c[0], 1)
        c[0].call("SET", "s", "string")
        replaced = c[1].read_reply()[0]
        # Emptied with FLUSHALL.
        c[0].call("XGROUP", "CREATE", "t", "g", "$", "MKSTREAM")
        c[1].send_raw(encode(["XREADGROUP", "GROUP", "g", "c", "BLOCK", "0", "STREAMS", "t", ">"]))
        wait_blocked(c[0], 1)
        c[0].call("FLUSHALL")
        flushed = c[1].read_reply()[0]
        return destroyed, deleted, reader, replaced, flushed, blocked_count(c[0])
    run_both(strata_server, redis_server, scenario)


def test_client_unblock_and_resp3(strata_server, redis_server):
    def scenario(c):
        cid = c[1].call("CLIENT", "ID")[1]
        c[1].send_raw(encode(["XREAD", "BLOCK", "0", "STREAMS", "s", "$"]))
        wait_blocked(c[0], 1)
        unblocked = c[0].call("CLIENT", "UNBLOCK", str(cid))[0], c[1].read_reply()[0]
        c[2].call("HELLO", "3")
        c[2].send_raw(encode(["XREAD", "BLOCK", "0", "STREAMS", "s", "$"]))
        wait_blocked(c[0], 1)
        c[0].call("XADD", "s", "3-3", "k", "v")
        return unblocked, c[2].read_reply()[0]
    run_both(strata_server, redis_server, scenario)


def test_multiple_keys_only_the_fed_one_is_returned(strata_server, redis_server):
    def scenario(c):
        c[0].call("XADD", "a", "1-0", "f", "v")
        c[1].send_raw(encode(["XREAD", "BLOCK", "0", "STREAMS", "a", "b", "$", "$"]))
        wait_blocked(c[0], 1)
        c[0].call("XADD", "b", "1-0", "g", "w")
        return c[1].read_reply()[0]
    run_both(strata_server, redis_server, scenario)
