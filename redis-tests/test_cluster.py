"""Cluster mode with the real tools: `redis-cli --cluster create/check/
reshard/add-node/del-node/import`, redis-py's RedisCluster, failover after
kill -9. Replies that do not depend on node ids are compared with a real
Redis 7.0 cluster built the same way by the same tool."""
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time

import pytest
import redis
from redis.cluster import ClusterNode, RedisCluster

from conftest import RawConn, Server, encode, strata_binary, wait_for_ping

NODE_TIMEOUT_MS = 2000


def port_is_free(port):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


_TAKEN = set()


def cluster_port():
    """A free port whose bus port (+10000) is free too."""
    for _ in range(1000):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port < 50000 and port not in _TAKEN and port_is_free(port + 10000):
            _TAKEN.add(port)
            return port
    raise RuntimeError("no free port pair")


def cluster_node(kind):
    data = tempfile.mkdtemp(prefix=f"{kind}-cluster-")
    common = ["--cluster-enabled", "yes", "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
              "--cluster-config-file", os.path.join(data, "nodes.conf")]
    if kind == "strata":
        argv = lambda port: [strata_binary(), "--port", str(port), "--bind", "127.0.0.1", "--dir", data,
                             "--loglevel", "warning", *common]
    else:
        argv = lambda port: ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", data,
                             "--save", "", "--appendonly", "no", *common]
    server = Server(argv, f"{kind}-cluster")
    server.port = cluster_port()
    server.data_dir = data
    return server.start()


def cli(*args, timeout=120, check=True):
    result = subprocess.run(["redis-cli", *args], capture_output=True, text=True, timeout=timeout,
                            stdin=subprocess.DEVNULL)
    if check:
        assert result.returncode == 0, f"redis-cli {args}: {result.stdout}\n{result.stderr}"
    return result


def wait_until(what, predicate, timeout=30.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if predicate():
                return
        except (redis.RedisError, OSError):
            pass
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


class Cluster:
    def __init__(self, kind, masters, replicas=0):
        self.kind = kind
        self.nodes = [cluster_node(kind) for _ in range(masters * (1 + replicas))]
        addresses = [f"127.0.0.1:{n.port}" for n in self.nodes]
        cli("--cluster", "create", *addresses, "--cluster-replicas", str(replicas), "--cluster-yes")
        wait_until("cluster_state:ok everywhere", lambda: all(self.info(n)["cluster_state"] == "ok"
                                                              for n in self.nodes))

    def info(self, node):
        text = node.client(decode_responses=True).execute_command("CLUSTER", "INFO")
        return dict(line.split(":", 1) for line in text.strip().splitlines())

    def client(self):
        return RedisCluster(startup_nodes=[ClusterNode("127.0.0.1", n.port) for n in self.live()],
                            decode_responses=True)

    def live(self):
        return [n for n in self.nodes if n.proc.poll() is None]

    def close(self):
        for node in self.nodes:
            node.close()


def topology(node):
    """(address, role, slots) of every node in a node's CLUSTER NODES."""
    text = node.client(decode_responses=True).execute_command("CLUSTER", "NODES")
    rows = []
    for line in text.strip().splitlines():
        fields = line.split(" ")
        role = "master" if "master" in fields[2] else "slave"
        rows.append((fields[1].split("@")[0], role, tuple(f for f in fields[8:] if not f.startswith("["))))
    return sorted(rows)


@pytest.fixture(scope="module")
def clusters():
    strata = Cluster("strata", 3)
    real = Cluster("redis", 3)
    yield strata, real
    strata.close()
    real.close()


def test_create_converges_and_check_passes(clusters):
    for cluster in clusters:
        views = [topology(n) for n in cluster.nodes]
        assert all(v == views[0] for v in views), cluster.kind
        assert sorted(row[2] for row in views[0]) == [("0-5460",), ("10923-16383",), ("5461-10922",)]
        check = cli("--cluster", "check", f"127.0.0.1:{cluster.nodes[0].port}")
        assert "[OK] All 16384 slots covered." in check.stdout
        info = cluster.info(cluster.nodes[0])
        assert (info["cluster_state"], info["cluster_slots_assigned"], info["cluster_known_nodes"],
                info["cluster_size"]) == ("ok", "16384", "3", "3"), cluster.kind
    ours, theirs = (sorted(row[2] for row in topology(c.nodes[0])) for c in clusters)
    assert ours == theirs


def both(clusters, *args):
    """The reply of the first node of each cluster, parsed."""
    replies = []
    for cluster in clusters:
        conn = RawConn(cluster.nodes[0].port)
        replies.append(conn.call(*args)[1])
        conn.close()
    return replies


def same(clusters, *args):
    ours, theirs = both(clusters, *args)
    assert ours == theirs, f"{args}: strata {ours!r}, redis {theirs!r}"
    return ours


def test_redirections_and_errors_match_redis(clusters):
    # The first node holds 0-5460 in both: "foo" (12182) lives elsewhere.
    ours, theirs = both(clusters, "SET", "foo", "1")
    assert ours.split(" ")[:2] == theirs.split(" ")[:2] == ["MOVED", "12182"]
    ports = {c.kind: {n.port for n in c.nodes} for c in clusters}
    assert int(ours.split(":")[-1]) in ports["strata"]
    same(clusters, "SET", "bar", "1")
    same(clusters, "MGET", "bar", "foo")
    same(clusters, "MSET", "{bar}1", "a", "{bar}2", "b")
    same(clusters, "CLUSTER", "KEYSLOT", "{bar}1")
    same(clusters, "CLUSTER", "COUNTKEYSINSLOT", "5061")
    # Redis lists a slot's keys newest first, Strata in key order.
    ours, theirs = both(clusters, "CLUSTER", "GETKEYSINSLOT", "5061", "10")
    assert sorted(ours) == sorted(theirs)
    ours, theirs = both(clusters, "CLUSTER", "GETKEYSINSLOT", "5061", "2")
    assert len(ours) == len(theirs) == 2
    for args in [("SELECT", "1"), ("SELECT", "0"), ("SWAPDB", "0", "1"), ("MOVE", "bar", "1"),
                 ("COPY", "bar", "{bar}x", "DB", "1"), ("REPLICAOF", "127.0.0.1", "1"),
                 ("CLUSTER", "ADDSLOTS", "16384"), ("CLUSTER", "ADDSLOTS", "1"), ("CLUSTER", "ADDSLOTS", "x"),
                 ("CLUSTER", "ADDSLOTSRANGE", "5", "1"), ("CLUSTER", "ADDSLOTSRANGE", "1"),
                 ("CLUSTER", "DELSLOTS", "6000", "6000"), ("CLUSTER", "SETSLOT", "1", "BOGUS"),
                 ("CLUSTER", "SETSLOT", "1", "MIGRATING", "nosuchnode"), ("CLUSTER", "SETSLOT", "9000", "MIGRATING", "x"),
                 ("CLUSTER", "COUNTKEYSINSLOT", "-1"), ("CLUSTER", "GETKEYSINSLOT", "1", "-1"),
                 ("CLUSTER", "FORGET", "nosuchnode"), ("CLUSTER", "REPLICATE", "nosuchnode"),
                 ("CLUSTER", "REPLICAS", "nosuchnode"), ("CLUSTER", "COUNT-FAILURE-REPORTS", "nosuchnode"),
                 ("CLUSTER", "FAILOVER"), ("CLUSTER", "FAILOVER", "NOW"), ("CLUSTER", "RESET", "MAYBE"),
                 ("CLUSTER", "SET-CONFIG-EPOCH", "5"), ("CLUSTER", "MEET", "127.0.0.1", "notaport"),
                 ("CLUSTER", "BOGUS"), ("CLUSTER", "FLUSHSLOTS"), ("READWRITE",), ("ASKING",)]:
        same(clusters, *args)
    for cluster in clusters:
        conn = RawConn(cluster.nodes[0].port)
        myid = conn.call("CLUSTER", "MYID")[1]
        assert len(myid) == 40
        assert conn.call("CLUSTER", "FORGET", myid)[1] == "ERR I tried hard but I can't forget myself..."
        assert conn.call("CLUSTER", "REPLICATE", myid)[1] == "ERR Can't replicate myself"
        conn.close()
    same(clusters, "DEL", "bar", "{bar}1", "{bar}2")


def test_shapes_of_slots_shards_and_info(clusters):
    for cluster in clusters:
        conn = RawConn(cluster.nodes[0].port)
        slots = conn.call("CLUSTER", "SLOTS")[1]
        assert sorted((s[0], s[1]) for s in slots) == [(0, 5460), (5461, 10922), (10923, 16383)]
        assert all(len(s[2]) == 4 and s[2][3] == [] for s in slots), slots
        shards = conn.call("CLUSTER", "SHARDS")[1]
        assert len(shards) == 3
        for shard in shards:
            assert shard[0] == b"slots" and shard[2] == b"nodes"
            node = dict(zip(shard[3][0][::2], shard[3][0][1::2]))
            assert set(node) == {b"id", b"port", b"ip", b"endpoint", b"role", b"replication-offset", b"health"}
        info = conn.call("CLUSTER", "INFO")[1].decode().split("\r\n")
        keys = [line.split(":")[0] for line in info if line][:9]
        assert keys == ["cluster_state", "cluster_slots_assigned", "cluster_slots_ok", "cluster_slots_pfail",
                        "cluster_slots_fail", "cluster_known_nodes", "cluster_size", "cluster_current_epoch",
                        "cluster_my_epoch"]
        assert "cluster_enabled:1" in conn.call("INFO", "cluster")[1].decode()
        conn.close()


def test_redis_py_cluster_client_reads_and_writes(clusters):
    client = clusters[0].client()
    for i in range(500):
        client.set(f"key:{i}", i)
    assert [client.get(f"key:{i}") for i in range(500)] == [str(i) for i in range(500)]
    pipe = client.pipeline()
    for i in range(100):
        pipe.incr(f"counter:{i}")
    assert pipe.execute() == [1] * 100
    client.rpush("{q}list", "a", "b")
    assert client.lrange("{q}list", 0, -1) == ["a", "b"]
    client.zadd("zs", {"a": 1})
    assert client.zscore("zs", "a") == 1.0
    total = sum(n.client().dbsize() for n in clusters[0].nodes)
    assert total == 500 + 100 + 2
    client.flushall()
    client.close()


def test_publish_reaches_every_node(clusters):
    strata = clusters[0]
    subscribers = []
    for node in strata.nodes:
        pubsub = node.client().pubsub()
        pubsub.subscribe("news")
        pubsub.get_message(timeout=2)
        subscribers.append(pubsub)
    assert strata.nodes[1].client().publish("news", "hello") == 1
    for pubsub in subscribers:
        message = pubsub.get_message(timeout=5)
        assert message and message["data"] == b"hello"
        pubsub.close()


def test_reshard_under_a_writer_loses_and_doubles_nothing(clusters):
    strata = clusters[0]
    client = strata.client()
    model = {}
    stop = threading.Event()
    errors = []

    def writer():
        writer_client = strata.client()
        i = 0
        while not stop.is_set():
            key = f"w:{i % 2000}"
            try:
                writer_client.incr(key)
                model[key] = model.get(key, 0) + 1
            except redis.RedisError as e:
                errors.append(repr(e))
            i += 1
        writer_client.close()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        source, target = strata.nodes[0], strata.nodes[1]
        ids = [n.client(decode_responses=True).execute_command("CLUSTER", "MYID") for n in (source, target)]
        cli("--cluster", "reshard", f"127.0.0.1:{source.port}", "--cluster-from", ids[0],
            "--cluster-to", ids[1], "--cluster-slots", "1000", "--cluster-yes", timeout=300)
    finally:
        stop.set()
        thread.join(timeout=60)
    assert not errors, errors[:5]
    for key, count in model.items():
        assert client.get(key) == str(count), key
    check = cli("--cluster", "check", f"127.0.0.1:{source.port}")
    assert "[OK] All 16384 slots covered." in check.stdout
    views = [topology(n) for n in strata.nodes]
    assert all(v == views[0] for v in views)
    client.flushall()
    client.close()


def test_nodes_keep_their_id_and_slots_across_restarts(clusters):
    node = clusters[0].nodes[2]
    before = (node.client(decode_responses=True).execute_command("CLUSTER", "MYID"), topology(node))
    node.restart()
    wait_until("the restarted node serving", lambda: clusters[0].info(node)["cluster_state"] == "ok")
    assert (node.client(decode_responses=True).execute_command("CLUSTER", "MYID"), topology(node)) == before


def replica_of(cluster, master_name):
    for node in cluster.live():
        for line in node.client(decode_responses=True).execute_command("CLUSTER", "NODES").strip().splitlines():
            fields = line.split(" ")
            if "myself" in fields[2] and fields[3] == master_name:
                return node
    return None


def test_kill_9_of_a_master_promotes_its_replica():
    cluster = Cluster("strata", 3, replicas=1)
    try:
        client = cluster.client()
        for i in range(300):
            client.set(f"k{i}", i)

        # CLUSTER FAILOVER on a replica: the master hands over, nothing lost.
        second = cluster.nodes[1]
        second_id = node_id(second)
        wait_until("the second master's replica attached", lambda: replica_of(cluster, second_id) is not None)
        replica = replica_of(cluster, second_id)
        assert replica.client(decode_responses=True).execute_command("CLUSTER", "FAILOVER") == "OK"
        wait_until("the replica serving 5461-10922", lambda: owned_slots(replica, node_id(replica)) == 5462)
        wait_until("the old master following it", lambda: replica_of(cluster, node_id(replica)) is second)
        client = cluster.client()
        assert [client.get(f"k{i}") for i in range(300)] == [str(i) for i in range(300)]
        master = cluster.nodes[0]
        master_id = master.client(decode_responses=True).execute_command("CLUSTER", "MYID")
        raw = master.client()
        raw.set("bar", "before")             # slot 5061, on the first master
        assert raw.execute_command("WAIT", 1, 2000) == 1
        master.stop(sig_kill=True)
        survivor = cluster.live()[0]

        def promoted():
            lines = survivor.client(decode_responses=True).execute_command("CLUSTER", "NODES").strip().splitlines()
            return any(("master" in l.split(" ")[2]) and "0-5460" in l and master_id not in l for l in lines)

        wait_until("a replica serving 0-5460", promoted, timeout=30)
        wait_until("cluster_state:ok", lambda: cluster.info(survivor)["cluster_state"] == "ok", timeout=30)
        client = cluster.client()
        assert client.get("bar") == "before"
        assert [client.get(f"k{i}") for i in range(300)] == [str(i) for i in range(300)]
        client.set("after", 1)
    finally:
        cluster.close()


def node_id(node):
    return node.client(decode_responses=True).execute_command("CLUSTER", "MYID")


def owned_slots(node, name):
    """How many slots `name` owns in node's CLUSTER NODES."""
    for line in node.client(decode_responses=True).execute_command("CLUSTER", "NODES").strip().splitlines():
        fields = line.split(" ")
        if fields[0] == name:
            total = 0
            for spec in fields[8:]:
                if spec.startswith("["):
                    continue
                first, _, last = spec.partition("-")
                total += int(last or first) - int(first) + 1
            return total
    return None


def test_add_node_rebalance_fix_call_del_node_import_and_benchmark():
    cluster = Cluster("strata", 3)
    extra, replica = cluster_node("strata"), cluster_node("strata")
    source = None
    try:
        first = f"127.0.0.1:{cluster.nodes[0].port}"
        client = cluster.client()
        for i in range(200):
            client.set(f"k{i}", i)
        cli("--cluster", "add-node", f"127.0.0.1:{extra.port}", first)
        extra_id = node_id(extra)
        wait_until("the new node known everywhere",
                   lambda: all(cluster.info(n)["cluster_known_nodes"] == "4" for n in cluster.nodes + [extra]))
        # A light weight for the new master: a few hundred slots move.
        cli("--cluster", "rebalance", first, "--cluster-use-empty-masters", "--cluster-weight", f"{extra_id}=0.1",
            "--cluster-yes", timeout=300)
        assert owned_slots(cluster.nodes[0], extra_id) > 300
        cli("--cluster", "add-node", f"127.0.0.1:{replica.port}", first, "--cluster-slave",
            "--cluster-master-id", extra_id)
        wait_until("the replica attached", lambda: node_id(extra) in
                   replica.client(decode_responses=True).execute_command("CLUSTER", "NODES").split(
                       node_id(replica))[1].split("\n")[0])
        info = cli("--cluster", "info", first).stdout
        assert "4 masters" in info or info.count("slots") >= 4, info
        call = cli("--cluster", "call", first, "PING").stdout
        assert call.count("PONG") == 5, call

        # An open slot left by an interrupted move: fix closes it.
        owner = cluster.nodes[0]
        conn = owner.client(decode_responses=True)
        slot = next(s for s in range(16384) if owner_of(conn, s) == node_id(owner))
        conn.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", node_id(cluster.nodes[1]))
        check = cli("--cluster", "check", first, check=False)
        assert "The following slots are open" in check.stdout, check.stdout
        cli("--cluster", "fix", first, "--cluster-yes", timeout=120)
        assert "[OK] All 16384 slots covered." in cli("--cluster", "check", first).stdout
        assert "The following slots are open" not in cli("--cluster", "check", first).stdout

        # Empty the extra master, then delete both new nodes.
        cli("--cluster", "rebalance", first, "--cluster-weight", f"{extra_id}=0", "--cluster-yes", timeout=300)
        assert owned_slots(cluster.nodes[0], extra_id) == 0
        cli("--cluster", "del-node", first, node_id(replica))
        cli("--cluster", "del-node", first, extra_id)
        wait_until("the nodes forgotten", lambda: all(cluster.info(n)["cluster_known_nodes"] == "3"
                                                      for n in cluster.nodes))
        assert [client.get(f"k{i}") for i in range(200)] == [str(i) for i in range(200)]

        # Keys of a standalone Redis imported through its MIGRATE.
        source = subprocess.Popen(["redis-server", "--port", str(port := cluster_port()), "--save", "",
                                   "--appendonly", "no"], stdout=subprocess.DEVNULL)
        wait_for_ping(port, source)
        plain = redis.Redis(port=port)
        for i in range(100):
            plain.set(f"imported:{i}", i)
        plain.rpush("imported:list", "a", "b")
        cli("--cluster", "import", first, "--cluster-from", f"127.0.0.1:{port}", "--cluster-copy", timeout=120)
        client = cluster.client()
        assert [client.get(f"imported:{i}") for i in range(100)] == [str(i) for i in range(100)]
        assert client.lrange("imported:list", 0, -1) == ["a", "b"]

        bench = subprocess.run(["redis-benchmark", "--cluster", "-p", str(cluster.nodes[0].port), "-t", "set,get",
                                "-n", "3000", "-q"], capture_output=True, text=True, timeout=120)
        assert bench.returncode == 0 and "SET:" in bench.stdout and "GET:" in bench.stdout, bench.stdout + bench.stderr
    finally:
        if source:
            source.kill()
            source.wait()
        for node in (extra, replica):
            node.close()
        cluster.close()


def owner_of(conn, slot):
    for start, end, master, *_ in conn.execute_command("CLUSTER", "SLOTS"):
        if start <= slot <= end:
            return master[2]
    return None


def test_a_client_blocked_on_a_slot_that_moves_is_redirected(clusters):
    strata = clusters[0]
    a, b = strata.nodes[0], strata.nodes[1]
    a_id, b_id = node_id(a), node_id(b)
    waiting = RawConn(a.port)
    waiting.send_raw(encode(("BLPOP", "bar", "0")))
    wait_until("BLPOP blocked", lambda: a.client().info("clients")["blocked_clients"] == 1)
    # "bar" is in slot 5061, empty: it moves by SETSLOT alone.
    b.client().execute_command("CLUSTER", "SETSLOT", 5061, "IMPORTING", a_id)
    a.client().execute_command("CLUSTER", "SETSLOT", 5061, "MIGRATING", b_id)
    for node in (b, a):
        node.client().execute_command("CLUSTER", "SETSLOT", 5061, "NODE", b_id)
    assert waiting.read_reply()[1] == f"MOVED 5061 127.0.0.1:{b.port}"
    waiting.close()
    for node in (a, b):
        node.client().execute_command("CLUSTER", "SETSLOT", 5061, "NODE", a_id)
    wait_until("slot 5061 back", lambda: owner_of(a.client(decode_responses=True), 5061) == a_id)


def test_a_minority_partition_stops_serving(clusters):
    import signal
    strata = clusters[0]
    alone, others = strata.nodes[0], strata.nodes[1:]
    for node in others:
        node.proc.send_signal(signal.SIGSTOP)
    try:
        def refused():
            try:
                alone.client().set("bar", "x")
            except redis.exceptions.ClusterDownError:   # -CLUSTERDOWN
                return True
            return False

        wait_until("the lone node refusing writes", refused, timeout=NODE_TIMEOUT_MS / 1000 * 5)
        assert strata.info(alone)["cluster_state"] == "fail"
    finally:
        for node in others:
            node.proc.send_signal(signal.SIGCONT)
    wait_until("the cluster back", lambda: all(strata.info(n)["cluster_state"] == "ok" for n in strata.nodes))
    alone.client().delete("bar")


def test_ioredis_cluster_client(clusters):
    here = os.path.dirname(os.path.abspath(__file__))
    if not os.path.isdir(os.path.join(here, "node_modules", "ioredis")):
        pytest.fail("ioredis is not installed: .ci/test runs npm install in redis-tests")
    ports = [str(n.port) for n in clusters[0].nodes]
    result = subprocess.run(["node", os.path.join(here, "ioredis_cluster.js"), *ports], capture_output=True,
                            text=True, timeout=120, cwd=here)
    assert result.stdout.strip() == "ok", result.stdout + result.stderr
    clusters[0].client().flushall()
