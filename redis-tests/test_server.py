"""Server and introspection commands: INFO, CONFIG, CLIENT, TIME, SHUTDOWN,
COMMAND. Differential where Strata must answer as Redis does; shape checks
where the values are Strata's own (INFO fields, ids, addresses)."""
import os
import re
import shutil
import socket
import tempfile
import time

import pytest

from conftest import RawConn, Server, start_strata, strata_binary


def resp3(pair):
    pair.strata.call("HELLO", "3")
    pair.redis.call("HELLO", "3")


def info_fields(text):
    """INFO text -> {section: {field: value}}."""
    sections, current = {}, None
    for line in text.decode().split("\r\n"):
        if line.startswith("# "):
            current = sections.setdefault(line[2:], {})
        elif line:
            key, _, value = line.partition(":")
            current[key] = value
    return sections


def served(pair, name):
    return pair.strata.call("COMMAND", "INFO", name)[1] != [None]


# ---------------------------------------------------------------- CONFIG

# Parameters Strata does not override: both servers report Redis's defaults.
REDIS_DEFAULT_PARAMS = [
    "maxmemory", "maxmemory-policy", "maxmemory-samples", "hz", "timeout", "databases",
    "appendfsync", "appendonly", "proto-max-bulk-len", "tcp-keepalive", "lazyfree-lazy-eviction",
    "list-max-listpack-size", "hash-max-listpack-entries", "notify-keyspace-events", "requirepass",
    "client-query-buffer-limit", "repl-backlog-size",
]


def test_config_get_matches_redis_defaults(pair):
    for name in REDIS_DEFAULT_PARAMS:
        pair.same("CONFIG", "GET", name)
    pair.same("CONFIG", "GET", "nosuch-param")
    pair.same_unordered("CONFIG", "GET", "maxmemory*")
    pair.same_unordered("CONFIG", "GET", "hz", "HZ", "maxmemory-p*", "timeout")
    pair.same("CONFIG", "GET")
    resp3(pair)
    pair.same("CONFIG", "GET", "maxmemory-policy")
    pair.same("CONFIG", "GET", "nosuch")


def test_config_set_round_trips_and_errors(pair):
    try:
        pair.same("CONFIG", "SET", "maxmemory", "1mb", "maxmemory-policy", "ALLKEYS-LRU", "hz", "20")
        pair.same("CONFIG", "GET", "maxmemory")
        pair.same("CONFIG", "GET", "maxmemory-policy")
        pair.same("CONFIG", "GET", "hz")
        # All or nothing: a bad value leaves the earlier ones unchanged.
        pair.same("CONFIG", "SET", "hz", "30", "maxmemory", "lots")
        pair.same("CONFIG", "GET", "hz")
        pair.same("CONFIG", "SET", "hz", "30", "nosuch", "1")
        pair.same("CONFIG", "GET", "hz")
    finally:
        pair.call("CONFIG", "SET", "maxmemory", "0", "maxmemory-policy", "noeviction", "hz", "10")
    for args in [
        ("Nosuch", "1"),
        ("maxmemory",),
        ("maxmemory", "1", "hz"),
        ("MAXMEMORY", "abc"),
        ("maxclients", "abc"),
        ("hz", "10", "HZ", "20"),
        ("DAEMONIZE", "yes"),
        ("databases", "3"),
        ("dir", "/tmp"),
        ("maxmemory-policy", "foo"),
        ("loglevel", "loud"),
        ("appendfsync", "sometimes"),
        ("appendonly", "maybe"),
        ("daemonize", "yes", "nosuch", "1"),
        ("nosuch", "1", "daemonize", "yes"),
    ]:
        pair.same("CONFIG", "SET", *args)
    pair.same("CONFIG", "GET", "maxmemory-policy")


def test_config_help_rewrite_resetstat(pair):
    pair.same("CONFIG", "HELP")
    pair.same("CONFIG", "REWRITE")
    pair.same("CONFIG", "NOPE")
    pair.same("CONFIG")
    pair.same("CONFIG", "GET")
    pair.same("CONFIG", "RESETSTAT", "x")
    pair.strata.call("GET", "k")
    pair.strata.call("GET")
    assert pair.same("CONFIG", "RESETSTAT") == "OK"
    stats = info_fields(pair.strata.call("INFO", "commandstats", "errorstats", "stats")[1])
    # Only the INFO call itself may have been counted since.
    assert "cmdstat_get" not in stats["Commandstats"]
    assert stats["Errorstats"] == {}
    assert int(stats["Stats"]["total_error_replies"]) == 0
    assert int(stats["Stats"]["total_commands_processed"]) <= 1


def test_config_rewrite_writes_the_file_back():
    data = tempfile.mkdtemp(prefix="strata-conf-")
    conf = os.path.join(data, "strata.conf")
    with open(conf, "w") as f:
        f.write("# kept comment\nhz 15\nmaxmemory 1mb\n")
    server = Server(lambda port: [strata_binary(), conf, "--port", str(port), "--dir", data], "strata-conf")
    server.start()
    try:
        conn = server.raw()
        assert conn.call("CONFIG", "GET", "hz")[1] == [b"hz", b"15"]
        assert conn.call("CONFIG", "SET", "hz", "25", "maxmemory-policy", "allkeys-lfu")[1] == "OK"
        assert conn.call("CONFIG", "REWRITE")[1] == "OK"
        text = open(conf).read()
        assert text.startswith("# kept comment\nhz 25\nmaxmemory 1048576\n"), text
        assert "maxmemory-policy allkeys-lfu" in text
        info = info_fields(conn.call("INFO", "server")[1])["Server"]
        assert info["config_file"] == os.path.realpath(conf)
        conn.close()
        server.restart()
        conn = server.raw()
        assert conn.call("CONFIG", "GET", "hz")[1] == [b"hz", b"25"]
        assert conn.call("CONFIG", "GET", "maxmemory-policy")[1] == [b"maxmemory-policy", b"allkeys-lfu"]
        conn.close()
    finally:
        server.stop()
        shutil.rmtree(data, ignore_errors=True)


# ---------------------------------------------------------------- INFO

def test_info_sections_and_fields(pair, strata_server):
    pair.strata.call("SET", "k1", "v")
    pair.strata.call("SET", "k2", "v", "EX", "100")
    pair.strata.call("SELECT", "3")
    pair.strata.call("SET", "k3", "v")
    pair.strata.call("GET", "k3")
    pair.strata.call("SET", "k3")
    raw, text = pair.strata.call("INFO")
    assert raw.startswith(b"$")
    assert text.endswith(b"\r\n") and not text.endswith(b"\r\n\r\n")
    sections = info_fields(text)
    for name in ["Server", "Clients", "Memory", "Persistence", "Stats", "Replication", "CPU", "Errorstats", "Keyspace"]:
        assert name in sections, name
    assert "Commandstats" not in sections
    server = sections["Server"]
    assert server["redis_version"] == "7.0.15"
    assert server["redis_mode"] == "standalone"
    assert server["tcp_port"] == str(strata_server.port)
    assert server["process_id"] == str(strata_server.proc.pid)
    assert re.fullmatch(r"[0-9a-f]{40}", server["run_id"])
    assert server["arch_bits"] == "64"
    assert server["executable"] == os.path.realpath(strata_binary())
    assert server["config_file"] == ""
    assert int(server["uptime_in_days"]) == int(server["uptime_in_seconds"]) // 86400
    assert server["hz"] == "10"
    assert int(sections["Clients"]["connected_clients"]) >= 1
    assert sections["Clients"]["blocked_clients"] == "0"
    assert sections["Clients"]["maxclients"] == "10000"
    memory = sections["Memory"]
    assert int(memory["used_memory"]) > 1 << 20
    assert re.fullmatch(r"\d+\.\d\d[KMG]", memory["used_memory_human"])
    assert memory["maxmemory"] == "0" and memory["maxmemory_policy"] == "noeviction"
    assert int(memory["strata_rocksdb_disk_bytes"]) >= 0
    persistence = sections["Persistence"]
    # Strata's log is always on, whatever `appendonly` says.
    assert persistence["loading"] == "0" and persistence["aof_enabled"] == "1"
    assert int(persistence["strata_log_seq"]) >= 0 and persistence["aof_last_write_status"] == "ok"
    assert persistence["rdb_last_bgsave_status"] == "ok"
    stats = sections["Stats"]
    for field in ["total_connections_received", "total_commands_processed", "instantaneous_ops_per_sec",
                  "total_net_input_bytes", "total_net_output_bytes", "rejected_connections", "expired_keys",
                  "keyspace_hits", "keyspace_misses", "total_error_replies"]:
        assert re.fullmatch(r"\d+", stats[field]), field
    assert int(stats["total_error_replies"]) >= 1
    assert sections["Replication"]["role"] == "master"
    assert float(sections["CPU"]["used_cpu_user"]) >= 0
    assert int(sections["Errorstats"]["errorstat_ERR"].split("=")[1]) >= 1
    keyspace = sections["Keyspace"]
    assert keyspace["db0"] == "keys=2,expires=1,avg_ttl=0"
    assert keyspace["db3"] == "keys=1,expires=0,avg_ttl=0"
    assert "db1" not in keyspace
    # Counters move.
    before = int(stats["total_commands_processed"])
    after = int(info_fields(pair.strata.call("INFO", "stats")[1])["Stats"]["total_commands_processed"])
    assert after > before


def test_info_section_selection(pair):
    pair.same("INFO", "nosuch")
    pair.same("INFO", "modules")
    pair.same("INFO", "cluster")
    only = info_fields(pair.strata.call("INFO", "KEYSPACE", "server")[1])
    assert list(only) == ["Server", "Keyspace"]
    pair.strata.call("GET", "x")
    everything = info_fields(pair.strata.call("INFO", "everything")[1])
    assert "cmdstat_get" in everything["Commandstats"]
    stat = everything["Commandstats"]["cmdstat_get"]
    assert re.fullmatch(r"calls=\d+,usec=\d+,usec_per_call=\d+\.\d\d,rejected_calls=\d+,failed_calls=\d+", stat)
    pair.strata.call("CONFIG", "GET", "hz")
    assert "cmdstat_config|get" in info_fields(pair.strata.call("INFO", "all")[1])["Commandstats"]
    assert "Commandstats" in info_fields(pair.strata.call("INFO", "default", "commandstats")[1])
    resp3(pair)
    raw, _ = pair.strata.call("INFO", "server")
    assert raw.startswith(b"=") and raw[raw.index(b"\r\n") + 2:].startswith(b"txt:# Server\r\n")
    pair.same("INFO", "nosuch")


# ---------------------------------------------------------------- CLIENT

def test_client_names(pair):
    pair.same("CLIENT", "GETNAME")
    pair.same("CLIENT", "SETNAME", "conn-1")
    pair.same("CLIENT", "GETNAME")
    pair.same("CLIENT", "SETNAME", "has space")
    pair.same("CLIENT", "SETNAME", "new\nline")
    pair.same("CLIENT", "SETNAME", "\xff")
    pair.same("CLIENT", "GETNAME")
    pair.same("CLIENT", "SETNAME", "")
    pair.same("CLIENT", "GETNAME")
    pair.same("CLIENT", "SETNAME")
    pair.same("CLIENT", "SETNAME", "a", "b")
    pair.same("CLIENT", "GETNAME", "x")
    pair.same("CLIENT", "NOPE")
    pair.same("CLIENT")


def test_client_id_list_info(pair):
    ours, theirs = pair.same_shape("CLIENT", "ID", check=lambda v: isinstance(v, int) and v > 0)
    pair.strata.call("CLIENT", "SETNAME", "lister")
    listing = pair.strata.call("CLIENT", "LIST")[1].decode()
    assert listing.endswith("\n")
    mine = [line for line in listing.splitlines() if line.startswith(f"id={ours} ")]
    assert len(mine) == 1 and " name=lister " in mine[0] and " cmd=client|list " in mine[0]
    ids = lambda text: {line.split()[0] for line in text.splitlines()}
    assert ids(listing) == ids(pair.strata.call("CLIENT", "LIST", "TYPE", "NORMAL")[1].decode())
    info = pair.strata.call("CLIENT", "INFO")[1].decode()
    assert info.startswith(f"id={ours} addr=127.0.0.1:") and info.endswith("\n") and info.count("\n") == 1
    assert " cmd=client|info " in info and " resp=2" in info
    by_id = pair.strata.call("CLIENT", "LIST", "ID", str(ours), "999999", str(ours))[1].decode().splitlines()
    assert len(by_id) == 2 and all(line.startswith(f"id={ours} ") for line in by_id)
    for args in [("TYPE", "pubsub"), ("TYPE", "master"), ("TYPE", "replica"), ("TYPE", "slave"), ("TYPE", "foo"),
                 ("ID", "1", "abc"), ("ID", "0"), ("ID", "-1"), ("ID",), ("foo",), ("TYPE", "normal", "ID", "1")]:
        pair.same("CLIENT", "LIST", *args)
    pair.same("CLIENT", "INFO", "x")
    pair.same("CLIENT", "HELP", "x")
    help_lines = pair.strata.call("CLIENT", "HELP")[1]
    assert help_lines[0].startswith("CLIENT <subcommand>") and help_lines[-1] == "    Prints this help."
    resp3(pair)
    raw, _ = pair.strata.call("CLIENT", "INFO")
    assert raw.startswith(b"=") and b"txt:id=" in raw and b" resp=3\n" in raw


def test_client_kill_errors_match_redis(pair):
    for args in [("ID", "0"), ("ID", "abc"), ("ID", "999999"), ("TYPE", "foo"), ("USER", "nosuch"),
                 ("SKIPME", "maybe"), ("MAXAGE", "10"), ("a", "b", "c"), ("ID",), ("1.2.3.4:5",),
                 ("ADDR", "1.2.3.4:5"), ("LADDR", "1.2.3.4:5"), ("ID", "1", "TYPE"), ("TYPE", "pubsub"),
                 ("USER", "default", "ID", "999999")]:
        pair.same("CLIENT", "KILL", *args)
    pair.same("CLIENT", "KILL")


def closed(conn):
    try:
        conn.sock.settimeout(5)
        return conn.sock.recv(1) == b""
    except (ConnectionResetError, socket.timeout):
        return True


def test_client_kill_closes_connections(strata_server):
    killer = strata_server.raw()
    victim = strata_server.raw()
    victim_id = victim.call("CLIENT", "ID")[1]
    assert killer.call("CLIENT", "KILL", "ID", str(victim_id))[1] == 1
    assert closed(victim)
    # Old form, by address.
    victim = strata_server.raw()
    addr = re.search(r"addr=(\S+)", victim.call("CLIENT", "INFO")[1].decode()).group(1)
    assert killer.call("CLIENT", "KILL", addr)[1] == "OK"
    assert closed(victim)
    time.sleep(0.2)  # the server forgets a client just after closing it
    assert killer.call("CLIENT", "KILL", addr)[1] == "ERR No such client"
    # By local address, sparing the caller (SKIPME yes is the default).
    victim = strata_server.raw()
    laddr = re.search(r"laddr=(\S+)", victim.call("CLIENT", "INFO")[1].decode()).group(1)
    killed = killer.call("CLIENT", "KILL", "LADDR", laddr, "TYPE", "normal", "USER", "default")[1]
    assert killed >= 1
    assert closed(victim)
    assert killer.call("PING")[1] == "PONG"
    # SKIPME no: the caller gets its answer, then is closed too.
    my_id = killer.call("CLIENT", "ID")[1]
    assert killer.call("CLIENT", "KILL", "ID", str(my_id), "SKIPME", "no")[1] == 1
    assert closed(killer)


# ---------------------------------------------------------------- TIME, SHUTDOWN

def test_time(pair):
    ours, _ = pair.same_shape("TIME", check=lambda v: len(v) == 2 and all(x.isdigit() for x in v))
    assert abs(int(ours[0]) - time.time()) < 5
    assert 0 <= int(ours[1]) < 1_000_000
    pair.same("TIME", "x")


def test_shutdown_errors_match_redis(pair):
    for args in [("ABORT",), ("NOSAVE", "SAVE"), ("foo",), ("ABORT", "NOW"), ("SAVE", "ABORT")]:
        pair.same("SHUTDOWN", *args)


def test_shutdown_stops_the_server():
    server = start_strata()
    try:
        conn = server.raw()
        conn.call("SET", "k", "v")
        conn.send_raw(b"*2\r\n$8\r\nSHUTDOWN\r\n$6\r\nNOSAVE\r\n")
        assert closed(conn)
        assert server.proc.wait(timeout=30) == 0
        server.start()
        assert server.raw().call("GET", "k")[1] == b"v"
    finally:
        server.close()


# ---------------------------------------------------------------- COMMAND

# Strata's own commands: rows Redis does not have.
OWN_COMMANDS = {"snapshot.create", "snapshot.read", "snapshot.release"}


def all_served_names(pair):
    return sorted(name.decode() for name in pair.strata.call("COMMAND", "LIST")[1])


def test_command_info_matches_redis_for_every_served_command(pair):
    names = all_served_names(pair)
    assert "get" in names and "config|get" in names and "command|info" in names
    containers = {name.split("|")[0] for name in names if "|" in name}
    own = {name for name in names if pair.redis.call("COMMAND", "INFO", name)[1] == [None]}
    assert own == OWN_COMMANDS, own
    for proto in (2, 3):
        if proto == 3:
            resp3(pair)
        for name in names:
            if name in own:
                assert pair.strata.call("COMMAND", "INFO", name)[1][0][0] == name.encode()
            elif name in containers:
                # Redis orders subcommands by a per-process hash seed, and
                # Strata lists only the served ones: compare the container
                # as a whole only when all are served, and in any order.
                redis_subs = len(pair.redis.call("COMMAND", "INFO", name)[1][0][9])
                if redis_subs == sum(1 for n in names if n.startswith(name + "|")):
                    pair.same_unordered("COMMAND", "INFO", name)
            else:
                pair.same("COMMAND", "INFO", name)
        pair.same("COMMAND", "INFO", "GET", "nosuch", "config|GET", "config|nosuch")


def test_command_count_list_and_all(pair):
    names = all_served_names(pair)
    top = [n for n in names if "|" not in n]
    assert pair.strata.call("COMMAND", "COUNT")[1] == len(top)
    rows = pair.strata.call("COMMAND")[1]
    assert sorted(row[0].decode() for row in rows) == top
    assert len(pair.strata.call("COMMAND", "INFO")[1]) == len(top)
    redis_list = {n.decode() for n in pair.redis.call("COMMAND", "LIST")[1]}
    assert set(names) - OWN_COMMANDS <= redis_list
    pair.same_unordered("COMMAND", "LIST", "FILTERBY", "PATTERN", "CONFIG*")
    pair.same_unordered("COMMAND", "LIST", "FILTERBY", "pattern", "command|*")
    pair.same("COMMAND", "LIST", "FILTERBY", "MODULE", "foo")
    pair.same("COMMAND", "LIST", "FILTERBY", "ACLCAT", "nosuch")
    pair.same("COMMAND", "LIST", "FILTERBY", "ACLCAT", "@read")
    pair.same("COMMAND", "LIST", "FILTERBY", "foo", "x")
    pair.same("COMMAND", "LIST", "foo")
    pair.same("COMMAND", "LIST", "FILTERBY", "PATTERN")
    admin = {n.decode() for n in pair.strata.call("COMMAND", "LIST", "FILTERBY", "ACLCAT", "ADMIN")[1]}
    redis_admin = {n.decode() for n in pair.redis.call("COMMAND", "LIST", "FILTERBY", "ACLCAT", "admin")[1]}
    assert admin == (redis_admin & set(names)) | OWN_COMMANDS and "config|set" in admin and "shutdown" in admin
    pair.same("COMMAND", "COUNT", "x")
    pair.same("COMMAND", "HELP")
    pair.same("COMMAND", "NOPE")


def test_command_docs(pair):
    for proto in (2, 3):
        if proto == 3:
            resp3(pair)
        for name in ["get", "set", "info", "time", "shutdown", "config|set", "command|getkeys", "PING"]:
            if served(pair, name):
                pair.same("COMMAND", "DOCS", name)
        # Containers: subcommands come in Redis's per-process hash order.
        pair.same_unordered("COMMAND", "DOCS", "config")
        pair.same_unordered("COMMAND", "DOCS", "command")
        pair.same("COMMAND", "DOCS", "nosuch")
        pair.same("COMMAND", "DOCS", "get", "nosuch", "info")
    docs = pair.strata.call("COMMAND", "DOCS")[1]
    assert len(docs) == 2 * pair.strata.call("COMMAND", "COUNT")[1]


GETKEYS_CASES = [
    ("get", "a"),
    ("set", "a", "b", "EX", "10"),
    ("set", "a", "b", "get"),
    ("bitfield", "a", "GET", "u8", "0"),
    ("bitfield", "a", "GET", "u8", "0", "INCRBY", "u8", "0", "1"),
    ("mset", "a", "1", "b", "2"),
    ("mget", "a", "b", "c"),
    ("del", "a", "b"),
    ("hset", "h", "f", "v"),
    ("rename", "a", "b"),
    ("zunionstore", "d", "2", "a", "b"),
    ("zunionstore", "d", "5", "a", "b"),
    ("xread", "COUNT", "1", "STREAMS", "a", "b", "1", "2"),
    ("eval", "s", "0"),
    ("eval", "s", "2", "a", "b", "x"),
    ("sort", "a", "LIMIT", "0", "1", "STORE", "b"),
    ("sort_ro", "a", "BY", "x"),
    ("migrate", "h", "1", "k", "0", "1"),
    ("migrate", "h", "1", "", "0", "1", "KEYS", "a", "b"),
    ("migrate", "h", "1", "k", "0", "1", "KEYS", "a", "b"),
    ("get", "a", "b"),
    ("GET", "a"),
]


def test_command_getkeys(pair):
    ran = 0
    for case in GETKEYS_CASES:
        if served(pair, case[0]):
            pair.same("COMMAND", "GETKEYS", *case)
            pair.same("COMMAND", "GETKEYSANDFLAGS", *case)
            ran += 1
    assert ran >= 3
    pair.same("COMMAND", "GETKEYS", "nosuch", "a")
    pair.same("COMMAND", "GETKEYS", "config", "get", "x")
    pair.same("COMMAND", "GETKEYS", "config", "nosuch", "x")
    pair.same("COMMAND", "GETKEYS", "config")
    pair.same("COMMAND", "GETKEYS", "ping", "x")
    pair.same("COMMAND", "GETKEYS", "get")
    pair.same("COMMAND", "GETKEYSANDFLAGS", "get")
    resp3(pair)
    pair.same("COMMAND", "GETKEYSANDFLAGS", "set", "a", "b")
