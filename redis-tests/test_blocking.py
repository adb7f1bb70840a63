"""Blocking list commands with several clients, compared with a real Redis:
each scenario runs against both servers and must produce the same replies."""
import time

import pytest

from conftest import blocked_count, encode, run_both, wait_blocked


def test_blpop_woken_by_lpush(strata_server, redis_server):
    def scenario(c):
        c[1].send_raw(encode(["BLPOP", "empty", "list", "0"]))
        wait_blocked(c[0], 1)
        pushed = c[0].call("RPUSH", "list", "a", "b")[0]
        return pushed, c[1].read_reply()[0], c[0].call("LRANGE", "list", "0", "-1")[0]
    run_both(strata_server, redis_server, scenario)


def test_fifo_order_and_one_item_each(strata_server, redis_server):
    def scenario(c):
        c[1].send_raw(encode(["BRPOP", "q", "0"]))
        wait_blocked(c[0], 1)
        c[2].send_raw(encode(["BLPOP", "q", "0"]))
        wait_blocked(c[0], 2)
        c[0].call("LPUSH", "q", "x")
        first = c[1].read_reply()[0]
        c[0].call("LPUSH", "q", "y")
        second = c[2].read_reply()[0]
        return first, second, blocked_count(c[0])
    run_both(strata_server, redis_server, scenario)


def test_timeouts_and_errors(strata_server, redis_server):
    def scenario(c):
        replies = [c[1].call("BLPOP", "nothing", "0.05")[0], c[1].call("BLMOVE", "a", "b", "LEFT", "RIGHT", "0.05")[0]]
        replies.append(c[1].call("BLMPOP", "0.05", "2", "a", "b", "LEFT")[0])
        replies.append(c[1].call("BLPOP", "k", "-1")[0])
        replies.append(c[1].call("BLPOP", "k", "abc")[0])
        replies.append(c[1].call("BLMPOP", "abc", "0", "k", "LEFT")[0])
        c[1].call("SET", "str", "v")
        replies.append(c[1].call("BLPOP", "str", "0")[0])
        replies.append(c[1].call("BLMOVE", "str", "b", "LEFT", "LEFT", "0")[0])
        c[1].call("RPUSH", "ready", "1", "2", "3")
        replies.append(c[1].call("BLMPOP", "0", "2", "nothing", "ready", "RIGHT", "COUNT", "2")[0])
        replies.append(c[1].call("BRPOPLPUSH", "ready", "other", "0")[0])
        return replies
    run_both(strata_server, redis_server, scenario)


def test_blmove_chain(strata_server, redis_server):
    def scenario(c):
        c[1].send_raw(encode(["BLMOVE", "a", "b", "LEFT", "RIGHT", "0"]))
        wait_blocked(c[0], 1)
        c[2].send_raw(encode(["BLMOVE", "b", "c", "LEFT", "RIGHT", "0"]))
        wait_blocked(c[0], 2)
        c[3].send_raw(encode(["BLPOP", "c", "0"]))
        wait_blocked(c[0], 3)
        c[0].call("RPUSH", "a", "item")
        return (c[1].read_reply()[0], c[2].read_reply()[0], c[3].read_reply()[0],
                c[0].call("EXISTS", "a", "b", "c")[0], blocked_count(c[0]))
    run_both(strata_server, redis_server, scenario)


def test_disconnected_waiter_is_removed(strata_server, redis_server):
    def scenario(c):
        c[1].send_raw(encode(["BLPOP", "gone", "0"]))
        wait_blocked(c[0], 1)
        c[1].close()
        wait_blocked(c[0], 0)
        c[0].call("RPUSH", "gone", "v")
        return c[0].call("LLEN", "gone")[0]
    run_both(strata_server, redis_server, scenario)


def test_client_unblock(strata_server, redis_server):
    def scenario(c):
        id1 = c[1].call("CLIENT", "ID")[1]
        id2 = c[2].call("CLIENT", "ID")[1]
        c[1].send_raw(encode(["BLPOP", "k", "0"]))
        c[2].send_raw(encode(["BLMOVE", "k", "d", "LEFT", "LEFT", "0"]))
        wait_blocked(c[0], 2)
        r1 = c[0].call("CLIENT", "UNBLOCK", str(id1))[0]
        r2 = c[0].call("CLIENT", "UNBLOCK", str(id2), "ERROR")[0]
        r3 = c[0].call("CLIENT", "UNBLOCK", str(id2))[0]
        return r1, r2, r3, c[1].read_reply()[0], c[2].read_reply()[0]
    run_both(strata_server, redis_server, scenario)


def test_pipelined_commands_after_a_blocked_one_wait(strata_server, redis_server):
    def scenario(c):
        c[1].send_raw(encode(["BLPOP", "p", "0"]) + encode(["ECHO", "after"]))
        wait_blocked(c[0], 1)
        c[0].call("RPUSH", "p", "v")
        return c[1].read_reply()[0], c[1].read_reply()[0]
    run_both(strata_server, redis_server, scenario)


def test_bzpopmin_bzpopmax_bzmpop(strata_server, redis_server):
    def scenario(c):
        c[1].send_raw(encode(["BZPOPMIN", "z1", "z2", "0"]))
        wait_blocked(c[0], 1)
        c[2].send_raw(encode(["BZMPOP", "0", "1", "z2", "MAX", "COUNT", "2"]))
        wait_blocked(c[0], 2)
        c[0].call("ZADD", "z2", "1", "a", "2", "b", "3", "c", "4", "d")
        replies = [c[1].read_reply()[0], c[2].read_reply()[0]]
        replies.append(c[1].call("BZPOPMAX", "z2", "z1", "0")[0])
        replies.append(c[1].call("BZPOPMIN", "none", "0.05")[0])
        replies.append(c[1].call("BZMPOP", "0.05", "1", "none", "MIN")[0])
        replies.append(c[1].call("BZPOPMIN", "none", "-1")[0])
        c[1].call("SET", "s", "v")
        replies.append(c[1].call("BZPOPMIN", "s", "0")[0])
        return replies
    run_both(strata_server, redis_server, scenario)


def test_resp3_blocking_replies(strata_server, redis_server):
    def scenario(c):
        c[1].call("HELLO", "3")
        c[1].send_raw(encode(["BZPOPMIN", "z", "0"]))
        wait_blocked(c[0], 1)
        c[0].call("ZADD", "z", "1.5", "m")
        first = c[1].read_reply()[0]
        return first, c[1].call("BLPOP", "none", "0.05")[0]
    run_both(strata_server, redis_server, scenario)


def test_swapdb_serves_blocked_clients(strata_server, redis_server):
    def scenario(c):
        c[0].call("SELECT", "1")
        c[0].call("RPUSH", "k", "from-db1")
        c[1].send_raw(encode(["BLPOP", "k", "0"]))
        wait_blocked(c[0], 1)
        c[0].call("SWAPDB", "0", "1")
        reply = c[1].read_reply()[0]
        c[0].call("FLUSHALL")
        return reply
    run_both(strata_server, redis_server, scenario)
