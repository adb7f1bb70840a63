"""Replication as Redis's tools and clients see it: INFO replication and
ROLE in Redis's shapes (a Strata master and replica beside a Redis master
and replica), and redis-py's Sentinel client carried through a failover
by Debian's redis-sentinel."""
import os
import subprocess
import tempfile
import time

import redis
import redis.sentinel

from conftest import free_port, start_redis, start_strata


def wait(what, done, timeout=30.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if done():
                return
        except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError):
            pass
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def caught_up(master, replica):
    info = replica.client().info("replication")
    return (info.get("master_link_status") == "up"
            and info["slave_repl_offset"] == master.client().info("replication")["master_repl_offset"])


def pair(start, **kwargs):
    master = start()
    replica = start(("--replicaof", "127.0.0.1", str(master.port)))
    wait("the replica to sync", lambda: replica.client().info("replication").get("master_link_status") == "up")
    return master, replica


def test_info_replication_and_role_have_redis_fields():
    shapes = {}
    for name, start in (("strata", start_strata), ("redis", start_redis)):
        master, replica = pair(start)
        try:
            master.client().set("k", "v")
            wait("the replica to catch up", lambda: caught_up(master, replica))
            wait("the master to list its replica",
                 lambda: master.client().info("replication")["connected_slaves"] == 1
                 and master.client().info("replication")["slave0"]["state"] == "online")
            m_info = master.client().info("replication")
            r_info = replica.client().info("replication")
            m_role = master.client().execute_command("ROLE")
            r_role = replica.client().execute_command("ROLE")
            shapes[name] = {
                "master fields": sorted(m_info),
                "replica fields": sorted(r_info),
                "slave0 keys": sorted(m_info["slave0"]),
                "master role": [m_role[0], type(m_role[1]), [[type(x) for x in r] for r in m_role[2]]],
                "replica role": [r_role[0], r_role[1], r_role[2] == master.port, r_role[3], type(r_role[4])],
                "same replid": m_info["master_replid"] == r_info["master_replid"],
                "same offset": m_info["master_repl_offset"] == r_info["slave_repl_offset"],
            }
            assert m_info["slave0"]["port"] == replica.port
            assert replica.client().execute_command("ROLE")[4] == master.client().execute_command("ROLE")[1]
            try:
                replica.client().set("k", "w")
                raise AssertionError("a replica took a write")
            except redis.ReadOnlyError as e:
                assert str(e) == "You can't write against a read only replica."
        finally:
            replica.close()
            master.close()
    assert shapes["strata"] == shapes["redis"]


def start_sentinel(directory, master_port):
    port = free_port()
    config = os.path.join(directory, f"sentinel-{port}.conf")
    with open(config, "w") as f:
        f.write(f"port {port}\nbind 127.0.0.1\ndaemonize no\ndir {directory}\n"
                f"sentinel monitor mymaster 127.0.0.1 {master_port} 2\n"
                "sentinel down-after-milliseconds mymaster 2000\n"
                "sentinel failover-timeout mymaster 20000\n")
    proc = subprocess.Popen(["redis-sentinel", config], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait("redis-sentinel to listen", lambda: redis.Redis(port=port).ping())
    return port, proc


def test_redis_py_sentinel_client_follows_a_failover():
    master = start_strata(("--appendfsync", "always"))
    replicas = [start_strata(("--replicaof", "127.0.0.1", str(master.port))) for _ in range(2)]
    directory = tempfile.mkdtemp(prefix="sentinels-")
    sentinels = []
    try:
        sentinels = [start_sentinel(directory, master.port) for _ in range(3)]
        wait("the sentinels to discover the replicas and each other", lambda: all(
            len(redis.Redis(port=port).sentinel_slaves("mymaster")) == 2
            and len(redis.Redis(port=port).sentinel_sentinels("mymaster")) == 2 for port, _ in sentinels))
        sentinel = redis.sentinel.Sentinel([("127.0.0.1", port) for port, _ in sentinels], socket_timeout=1)
        client = sentinel.master_for("mymaster", socket_timeout=1)
        client.set("before", "failover")
        assert client.wait(2, 5000) == 2
        master.stop(sig_kill=True)
        deadline = time.time() + 60
        while True:
            try:
                client.set("after", "failover")
                break
            except (redis.ConnectionError, redis.TimeoutError, redis.ReadOnlyError):
                assert time.time() < deadline, "redis-py never reached a new master"
                time.sleep(0.2)
        host, port = sentinel.discover_master("mymaster")
        assert port in [r.port for r in replicas]
        assert client.get("before") == b"failover"
        assert redis.Redis(port=port).get("after") == b"failover"
    finally:
        for _, proc in sentinels:
            proc.kill()
            proc.wait()
        for server in [master, *replicas]:
            server.close()
