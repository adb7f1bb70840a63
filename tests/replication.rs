//! Replication between real strata-server processes on loopback ports: a
//! replica ends with exactly its master's data (every engine, MULTI across
//! engines, SWAPDB, FLUSHDB, expiry), refuses writes, continues after a
//! restart with a partial resync, and becomes a master with REPLICAOF NO ONE.

mod common;

use std::time::Duration;

use common::{dump_port, wait_until, write_every_type, Conn, TestServer, Value};

fn offset(conn: &mut Conn, field: &str) -> u64 {
    conn.info_field(field).parse().unwrap_or(0)
}

/// Waits until the replica's link is up and it holds every record the
/// master has.
fn wait_caught_up(master: &TestServer, replica: &TestServer) {
    let (mut m, mut r) = (master.conn(), replica.conn());
    wait_until(Duration::from_secs(30), "the replica to catch up", || {
        r.info_field("master_link_status") == "up"
            && offset(&mut r, "slave_repl_offset") == offset(&mut m, "master_repl_offset")
    });
}

fn replicate(replica: &TestServer, master: &TestServer) {
    let reply = replica.conn().call(&["REPLICAOF", "127.0.0.1", &master.port.to_string()]);
    assert_eq!(reply, Value::Status("OK".into()));
}

#[test]
fn a_replica_holds_exactly_what_its_master_holds() {
    let master = TestServer::start();
    write_every_type(&mut master.conn(), 0);
    let replica = TestServer::start();
    replica.conn().call(&["SET", "only-on-the-replica", "x"]);
    replicate(&replica, &master);
    wait_caught_up(&master, &replica);
    assert_eq!(dump_port(replica.port), dump_port(master.port), "after the full sync");
    assert_eq!(replica.conn().call(&["EXISTS", "only-on-the-replica"]), Value::Int(0));
    assert_eq!(master.conn().info_field("sync_full"), "1");

    // Live records, while connected.
    for round in 1..3 {
        write_every_type(&mut master.conn(), round);
    }
    wait_caught_up(&master, &replica);
    assert_eq!(dump_port(replica.port), dump_port(master.port), "after streamed records");

    // Keys that expire: the replica drops them when the master's
    // deletions arrive, never on its own.
    master.conn().call(&["SET", "short", "v", "PX", "300"]);
    master.conn().call(&["RPUSH", "short-list", "v"]);
    master.conn().call(&["PEXPIRE", "short-list", "300"]);
    std::thread::sleep(Duration::from_millis(400));
    wait_until(Duration::from_secs(10), "the master to expire its keys", || {
        master.conn().call(&["DBSIZE"]) == replica.conn().call(&["DBSIZE"])
            && replica.conn().call(&["EXISTS", "short", "short-list"]) == Value::Int(0)
    });
    wait_caught_up(&master, &replica);
    assert_eq!(dump_port(replica.port), dump_port(master.port), "after expiry");

    let mut r = replica.conn();
    assert_eq!(
        r.call(&["SET", "k", "v"]),
        Value::Error("READONLY You can't write against a read only replica.".into())
    );
    assert_eq!(
        r.call(&["RPUSH", "l", "v"]),
        Value::Error("READONLY You can't write against a read only replica.".into())
    );
    assert_eq!(r.info_field("role"), "slave");
    let Value::Array(role) = r.call(&["ROLE"]) else { panic!("ROLE") };
    assert_eq!(role[0], Value::bulk("slave"));
    assert_eq!(role[3], Value::bulk("connected"));
    let mut m = master.conn();
    assert_eq!(m.info_field("connected_slaves"), "1");
    assert!(m.info_field("slave0").contains("state=online"), "{}", m.info_field("slave0"));
    assert_eq!(m.info_field("master_replid"), r.info_field("master_replid"));
}

#[test]
fn a_replica_killed_and_restarted_continues_where_it_was() {
    let master = TestServer::start();
    write_every_type(&mut master.conn(), 0);
    let port = master.port.to_string();
    let mut replica = TestServer::start_with(&["--replicaof", "127.0.0.1", &port]);
    wait_caught_up(&master, &replica);

    // Kill -9, while the master goes on; the replica restarts with its
    // master in its configuration and asks for what it misses.
    replica.kill();
    write_every_type(&mut master.conn(), 1);
    replica.start_again();
    wait_caught_up(&master, &replica);
    assert_eq!(dump_port(replica.port), dump_port(master.port));
    let mut m = master.conn();
    assert_eq!(m.info_field("sync_full"), "1", "no second full sync");
    assert_eq!(m.info_field("sync_partial_ok"), "1");
}

#[test]
fn a_promoted_replica_takes_writes_and_a_sibling_continues_with_it() {
    let master = TestServer::start();
    write_every_type(&mut master.conn(), 0);
    let (first, second) = (TestServer::start(), TestServer::start());
    replicate(&first, &master);
    replicate(&second, &master);
    wait_caught_up(&master, &first);
    wait_caught_up(&master, &second);
    let old_id = master.conn().info_field("master_replid");
    drop(master);

    assert_eq!(first.conn().call(&["REPLICAOF", "NO", "ONE"]), Value::Status("OK".into()));
    let mut promoted = first.conn();
    assert_eq!(promoted.info_field("role"), "master");
    assert_eq!(promoted.info_field("master_replid2"), old_id);
    assert_eq!(promoted.call(&["SET", "after", "promotion"]), Value::Status("OK".into()));

    replicate(&second, &first);
    wait_caught_up(&first, &second);
    assert_eq!(dump_port(second.port), dump_port(first.port));
    assert_eq!(first.conn().info_field("sync_partial_ok"), "1", "the sibling continued");
    assert_eq!(first.conn().info_field("sync_full"), "0");
}

#[test]
fn wait_counts_the_replicas_that_hold_every_write_so_far() {
    let master = TestServer::start();
    let port = master.port.to_string();
    let first = TestServer::start_with(&["--replicaof", "127.0.0.1", &port]);
    let mut second = TestServer::start_with(&["--replicaof", "127.0.0.1", &port]);
    wait_caught_up(&master, &first);
    wait_caught_up(&master, &second);
    let mut m = master.conn();
    m.call(&["SET", "k", "1"]);
    assert_eq!(m.call(&["WAIT", "2", "5000"]), Value::Int(2));
    // More than there are: the time runs out, and the answer is how many.
    let started = std::time::Instant::now();
    assert_eq!(m.call(&["WAIT", "3", "200"]), Value::Int(2));
    assert!(started.elapsed() >= Duration::from_millis(190));
    assert_eq!(m.call(&["WAIT", "1", "-1"]), Value::Error("ERR timeout is negative".into()));
    assert!(
        matches!(first.conn().call(&["WAIT", "1", "0"]), Value::Error(e) if e.starts_with("ERR WAIT cannot be used with replica"))
    );

    // A replica gone: writes are refused below min-replicas-to-write.
    second.kill();
    wait_until(Duration::from_secs(10), "the master to see the replica go", || m.info_field("connected_slaves") == "1");
    m.call(&["RPUSH", "l", "a"]);
    assert_eq!(m.call(&["WAIT", "2", "300"]), Value::Int(1));
    assert_eq!(m.call(&["CONFIG", "SET", "min-replicas-to-write", "2"]), Value::Status("OK".into()));
    assert_eq!(m.call(&["SET", "k", "2"]), Value::Error("NOREPLICAS Not enough good replicas to write.".into()));
    assert_eq!(m.call(&["GET", "k"]), Value::bulk("1"), "reads go on");
    assert_eq!(m.call(&["CONFIG", "SET", "min-replicas-to-write", "1"]), Value::Status("OK".into()));
    assert_eq!(m.call(&["SET", "k", "3"]), Value::Status("OK".into()));
    assert_eq!(m.call(&["WAIT", "1", "5000"]), Value::Int(1));
    assert_eq!(first.conn().call(&["GET", "k"]), Value::bulk("3"), "acknowledged means applied");

    // CLIENT KILL TYPE replica ends the link; the replica comes back.
    let Value::Int(killed) = m.call(&["CLIENT", "KILL", "TYPE", "replica"]) else { panic!("CLIENT KILL") };
    assert_eq!(killed, 1);
    wait_until(Duration::from_secs(10), "the replica to continue where it was", || {
        m.info_field("sync_partial_ok") == "1"
    });
    assert_eq!(m.info_field("sync_full"), "2", "one full sync per replica, none after the kill");
}

#[test]
fn config_rewrite_keeps_the_master_replicaof_names() {
    let master = TestServer::start();
    let config = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(config.path(), "# a replica\n").unwrap();
    let replica = TestServer::start_with_config(config.path(), &[]);
    replicate(&replica, &master);
    assert_eq!(replica.conn().call(&["CONFIG", "REWRITE"]), Value::Status("OK".into()));
    let text = std::fs::read_to_string(config.path()).unwrap();
    assert!(text.contains(&format!("replicaof 127.0.0.1 {}", master.port)), "{text}");
    assert_eq!(replica.conn().call(&["REPLICAOF", "NO", "ONE"]), Value::Status("OK".into()));
    assert_eq!(replica.conn().call(&["CONFIG", "REWRITE"]), Value::Status("OK".into()));
    assert!(!std::fs::read_to_string(config.path()).unwrap().contains("replicaof"));
}

#[test]
fn a_replica_of_a_replica_follows_and_messages_reach_subscribers_on_replicas() {
    let master = TestServer::start();
    let replica = TestServer::start_with(&["--replicaof", "127.0.0.1", &master.port.to_string()]);
    let chained = TestServer::start_with(&["--replicaof", "127.0.0.1", &replica.port.to_string()]);
    wait_caught_up(&master, &replica);
    wait_caught_up(&replica, &chained);
    write_every_type(&mut master.conn(), 0);
    wait_caught_up(&master, &replica);
    wait_caught_up(&replica, &chained);
    assert_eq!(dump_port(chained.port), dump_port(master.port));

    // Subscribers on both replicas get what is published on the master,
    // after the writes before it.
    let mut subscribers: Vec<Conn> = [&replica, &chained].iter().map(|s| s.conn()).collect();
    for subscriber in &mut subscribers {
        assert!(matches!(subscriber.call(&["SUBSCRIBE", "news"]), Value::Array(_)));
    }
    let mut m = master.conn();
    m.call(&["SET", "headline", "strata"]);
    assert_eq!(m.call(&["PUBLISH", "news", "hello"]), Value::Int(0), "no subscriber on the master itself");
    for subscriber in &mut subscribers {
        let message = subscriber.read().expect("a message");
        assert_eq!(message, Value::Array(vec![Value::bulk("message"), Value::bulk("news"), Value::bulk("hello")]));
    }
    assert_eq!(chained.conn().call(&["GET", "headline"]), Value::bulk("strata"));
    // A replica's own PUBLISH reaches its own subscribers only.
    assert_eq!(replica.conn().call(&["PUBLISH", "news", "local"]), Value::Int(1));
    wait_caught_up(&master, &replica);
    assert_eq!(offset(&mut replica.conn(), "master_repl_offset"), offset(&mut m, "master_repl_offset"));
}

/// One random command of any type on a few keys (so they collide), with
/// TTLs short enough to expire during the run.
fn random_command(rng: &mut rand::rngs::StdRng) -> Vec<String> {
    use rand::Rng;
    let key = |rng: &mut rand::rngs::StdRng, kind: &str| format!("{kind}{}", rng.random_range(0..8));
    let v = rng.random_range(0..1000).to_string();
    let any = ["s", "h", "l", "t", "z", "x"][rng.random_range(0..6)];
    let words: Vec<String> = match rng.random_range(0..22) {
        0 => vec!["SET".into(), key(rng, "s"), v],
        1 => vec!["INCRBY".into(), key(rng, "n"), v],
        2 => vec!["APPEND".into(), key(rng, "s"), v],
        3 => vec!["HSET".into(), key(rng, "h"), format!("f{}", rng.random_range(0..5)), v],
        4 => vec!["HDEL".into(), key(rng, "h"), format!("f{}", rng.random_range(0..5))],
        5 => vec!["RPUSH".into(), key(rng, "l"), v.clone(), v],
        6 => vec!["LPOP".into(), key(rng, "l")],
        7 => vec!["LREM".into(), key(rng, "l"), "1".into(), v],
        8 => vec!["LINSERT".into(), key(rng, "l"), "BEFORE".into(), v.clone(), "x".into()],
        9 => vec!["SADD".into(), key(rng, "t"), v],
        10 => vec!["SPOP".into(), key(rng, "t")],
        11 => vec!["ZADD".into(), key(rng, "z"), v.clone(), format!("m{v}")],
        12 => vec!["ZINCRBY".into(), key(rng, "z"), "1.5".into(), format!("m{}", rng.random_range(0..20))],
        13 => vec!["ZPOPMIN".into(), key(rng, "z")],
        14 => vec!["XADD".into(), key(rng, "x"), "MAXLEN".into(), "50".into(), "*".into(), "f".into(), v],
        15 => vec!["PEXPIRE".into(), key(rng, any), rng.random_range(1..400).to_string()],
        16 => vec!["DEL".into(), key(rng, any)],
        17 => vec!["RENAME".into(), key(rng, "l"), key(rng, "l")],
        18 => vec!["SUNIONSTORE".into(), key(rng, "t"), key(rng, "t"), key(rng, "t")],
        19 => vec!["SET".into(), key(rng, "s"), v, "PX".into(), rng.random_range(1..300).to_string()],
        20 => vec!["HINCRBYFLOAT".into(), key(rng, "h"), "f9".into(), "0.25".into()],
        _ => vec!["LMOVE".into(), key(rng, "l"), key(rng, "l"), "LEFT".into(), "RIGHT".into()],
    };
    words
}

/// Four clients writing random commands (`random_command`, and MULTI
/// across engines) to the server on `port` until `stop` is set.
fn random_writers(port: u16, stop: &std::sync::Arc<std::sync::atomic::AtomicBool>) -> Vec<std::thread::JoinHandle<()>> {
    use rand::{Rng, SeedableRng};
    (0..4)
        .map(|seed| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
                let mut conn = Conn::try_connect(port).unwrap();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let transaction = rng.random_range(0..10) == 0;
                    if transaction {
                        conn.call(&["MULTI"]);
                    }
                    for _ in 0..if transaction { 3 } else { 1 } {
                        let words = random_command(&mut rng);
                        conn.call(&words.iter().map(String::as_str).collect::<Vec<_>>());
                    }
                    if transaction {
                        conn.call(&["EXEC"]);
                    }
                }
            })
        })
        .collect()
}

/// Random writes while `replica_of` makes a replica of the master (its
/// full sync's snapshot cut under load, then records), then the short TTLs
/// run out; the replica on the returned port must end equal.
fn random_writes_while_a_replica_joins(master: &TestServer, replica_of: impl FnOnce() -> u16) {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers = random_writers(master.port, &stop);
    std::thread::sleep(Duration::from_millis(300));
    let replica = replica_of();
    std::thread::sleep(Duration::from_millis(1500));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for writer in writers {
        writer.join().unwrap();
    }
    std::thread::sleep(Duration::from_millis(500));
    wait_until(Duration::from_secs(30), "both nodes to hold the same data", || {
        dump_port(replica) == dump_port(master.port)
    });
    assert!(offset(&mut master.conn(), "master_repl_offset") > 1000, "the writers wrote");
}

#[test]
fn random_writes_from_several_clients_end_the_same_on_both_nodes() {
    let master = TestServer::start();
    let mut replica = None;
    random_writes_while_a_replica_joins(&master, || {
        let started = TestServer::start_with(&["--replicaof", "127.0.0.1", &master.port.to_string()]);
        let port = started.port;
        replica = Some(started);
        port
    });
    let replica = replica.unwrap();
    assert_eq!(offset(&mut replica.conn(), "slave_repl_offset"), offset(&mut master.conn(), "master_repl_offset"));
}

#[test]
fn a_redis_replica_follows_random_writes_of_a_strata_master() {
    let master = TestServer::start();
    let Some(redis) = common::RedisServer::start() else { return };
    random_writes_while_a_replica_joins(&master, || {
        redis.conn().call(&["REPLICAOF", "127.0.0.1", &master.port.to_string()]);
        redis.port
    });
}

#[test]
fn a_failed_send_or_load_is_retried_and_a_crash_during_a_load_starts_empty() {
    // The master's stream breaks once: the replica continues from its log.
    let master = TestServer::start_with_env(&[("FAILPOINTS", "repl-stream-send=1*return->off")], &[]);
    write_every_type(&mut master.conn(), 0);
    let replica = TestServer::start_with(&["--replicaof", "127.0.0.1", &master.port.to_string()]);
    for round in 1..4 {
        write_every_type(&mut master.conn(), round);
    }
    wait_until(Duration::from_secs(20), "the broken link to continue", || {
        master.conn().info_field("sync_partial_ok") == "1"
    });
    wait_caught_up(&master, &replica);
    assert_eq!(dump_port(replica.port), dump_port(master.port));
    assert_eq!(master.conn().info_field("sync_full"), "1");

    // The replica's first load fails half way (RocksDB's part moved in,
    // the rest not): the next full sync replaces everything.
    let replica = TestServer::start_with_env(
        &[("FAILPOINTS", "repl-sync-load=1*return->off")],
        &["--replicaof", "127.0.0.1", &master.port.to_string()],
    );
    wait_caught_up(&master, &replica);
    assert_eq!(dump_port(replica.port), dump_port(master.port));

    // Every load fails; kill -9 while one is half done: the restart finds
    // the sync mark, starts empty and syncs in full.
    let mut replica = TestServer::start_with_env(
        &[("FAILPOINTS", "repl-sync-load=return")],
        &["--replicaof", "127.0.0.1", &master.port.to_string()],
    );
    let mark = replica.dir.join("sync-in-progress");
    wait_until(Duration::from_secs(20), "a load to fail half way", || mark.exists());
    replica.kill();
    replica.set_env(&[]);
    replica.start_again();
    wait_caught_up(&master, &replica);
    assert!(!mark.exists());
    assert_eq!(dump_port(replica.port), dump_port(master.port));
}

#[test]
fn a_replica_cut_off_from_its_master_serves_stale_data_only_if_allowed() {
    let mut master = TestServer::start();
    master.conn().call(&["SET", "k", "v"]);
    let port = master.port.to_string();
    let allowed = TestServer::start_with(&["--replicaof", "127.0.0.1", &port]);
    let refused = TestServer::start_with(&["--replicaof", "127.0.0.1", &port, "--slave-serve-stale-data", "no"]);
    wait_caught_up(&master, &allowed);
    wait_caught_up(&master, &refused);
    assert_eq!(refused.conn().call(&["GET", "k"]), Value::bulk("v"), "the link is up");
    master.kill();
    wait_until(Duration::from_secs(20), "the replicas to see the link down", || {
        refused.conn().info_field("master_link_status") == "down"
            && allowed.conn().info_field("master_link_status") == "down"
    });
    assert_eq!(allowed.conn().call(&["GET", "k"]), Value::bulk("v"));
    let masterdown =
        Value::Error("MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.".into());
    let mut conn = refused.conn();
    assert_eq!(conn.call(&["GET", "k"]), masterdown);
    assert_eq!(conn.call(&["PING"]), masterdown);
    assert_eq!(conn.info_field("role"), "slave", "INFO is served");
    let Value::Array(got) = conn.call(&["CONFIG", "GET", "replica-serve-stale-data"]) else { panic!("CONFIG GET") };
    assert_eq!(got[1], Value::bulk("no"), "the old name set the new one");
    master.start_again();
    wait_until(Duration::from_secs(20), "the link to come back", || conn.call(&["GET", "k"]) == Value::bulk("v"));
}

#[test]
fn a_replica_is_listed_at_the_address_it_announces() {
    let master = TestServer::start();
    let port = master.port.to_string();
    let _replica = TestServer::start_with(&[
        "--replicaof",
        "127.0.0.1",
        &port,
        "--replica-announce-ip",
        "10.0.0.9",
        "--slave-announce-port",
        "7777",
    ]);
    let mut m = master.conn();
    wait_until(Duration::from_secs(20), "the replica to be online", || {
        m.info_field("connected_slaves") == "1" && m.info_field("slave0").contains("state=online")
    });
    assert!(m.info_field("slave0").starts_with("ip=10.0.0.9,port=7777,"), "{}", m.info_field("slave0"));
    let Value::Array(role) = m.call(&["ROLE"]) else { panic!("ROLE") };
    assert_eq!(
        role[2],
        Value::Array(vec![Value::Array(vec![
            Value::bulk("10.0.0.9"),
            Value::bulk("7777"),
            Value::bulk(&offset(&mut m, "master_repl_offset").to_string())
        ])])
    );
}

#[test]
fn a_replica_away_longer_than_the_backlog_syncs_in_full() {
    // A backlog of one byte: the log keeps only what the engines need.
    let master = TestServer::start_with(&["--repl-backlog-size", "1"]);
    write_every_type(&mut master.conn(), 0);
    let mut replica = TestServer::start_with(&["--replicaof", "127.0.0.1", &master.port.to_string()]);
    wait_caught_up(&master, &replica);
    replica.kill();
    // SAVE makes the engines hold everything and truncates the log.
    let mut m = master.conn();
    for round in 1..3 {
        write_every_type(&mut m, round);
        assert_eq!(m.call(&["SAVE"]), Value::Status("OK".into()));
    }
    replica.start_again();
    wait_caught_up(&master, &replica);
    assert_eq!(dump_port(replica.port), dump_port(master.port));
    assert_eq!(m.info_field("sync_full"), "2", "the records it missed were gone");
    assert_eq!(m.info_field("sync_partial_err"), "1");
}

#[test]
fn a_diverged_old_master_rejoining_as_a_replica_drops_what_was_never_replicated() {
    let mut old = TestServer::start();
    let mut new = TestServer::start_with(&["--replicaof", "127.0.0.1", &old.port.to_string()]);
    old.conn().call(&["SET", "both", "1"]);
    old.conn().call(&["RPUSH", "list", "a"]);
    wait_caught_up(&old, &new);
    // The replica is cut off; the old master takes writes it never gets.
    new.kill();
    old.conn().call(&["SET", "lost", "x"]);
    old.conn().call(&["RPUSH", "list", "lost"]);
    old.kill();
    // The replica is promoted and takes writes of its own.
    new.start_again();
    assert_eq!(new.conn().call(&["REPLICAOF", "NO", "ONE"]), Value::Status("OK".into()));
    new.conn().call(&["RPUSH", "list", "b"]);
    // The old master comes back and follows the new one.
    old.start_again();
    replicate(&old, &new);
    wait_caught_up(&new, &old);
    assert_eq!(dump_port(old.port), dump_port(new.port));
    let mut conn = old.conn();
    assert_eq!(conn.call(&["EXISTS", "lost"]), Value::Int(0));
    assert_eq!(conn.call(&["LRANGE", "list", "0", "-1"]), Value::Array(vec![Value::bulk("a"), Value::bulk("b")]));
}

#[test]
fn a_redis_replica_of_a_strata_master_ends_with_the_same_data() {
    use common::RedisServer;
    let master = TestServer::start();
    write_every_type(&mut master.conn(), 0);
    let Some(redis) = RedisServer::start() else { return };
    let reply = redis.conn().call(&["REPLICAOF", "127.0.0.1", &master.port.to_string()]);
    assert_eq!(reply, Value::Status("OK".into()));
    wait_until(Duration::from_secs(30), "the Redis replica to hold the master's data", || {
        redis.conn().info_field("master_link_status") == "up" && dump_port(redis.port) == dump_port(master.port)
    });
    // Records as they come: every type, MULTI across engines, FLUSHDB,
    // SWAPDB, list inserts and removals by index, consumer groups.
    for round in 1..3 {
        write_every_type(&mut master.conn(), round);
    }
    let mut m = master.conn();
    m.call(&["LINSERT", "l", "BEFORE", "150", "inserted"]);
    m.call(&["LREM", "l", "2", "inserted"]);
    m.call(&["RPUSH", "l", "x", "y", "x"]);
    m.call(&["LREM", "l", "-1", "x"]);
    m.call(&["HSET", "h2", "a", "1", "b", "2"]);
    m.call(&["DEL", "h2"]);
    m.call(&["HSET", "h2", "c", "3"]);
    m.call(&["XGROUP", "CREATE", "x", "g2", "0"]);
    m.call(&["XREADGROUP", "GROUP", "g2", "c2", "COUNT", "5", "STREAMS", "x", ">"]);
    m.call(&["XACK", "x", "g2", "0-1"]);
    m.call(&["ZADD", "zf", "0.1", "a", "1e300", "b", "-inf", "c"]);
    wait_until(Duration::from_secs(30), "the Redis replica to apply the stream", || {
        dump_port(redis.port) == dump_port(master.port)
    });
    // WAIT counts it once it acknowledged the bytes of the last record.
    m.call(&["SET", "acknowledged", "1"]);
    let started = std::time::Instant::now();
    assert_eq!(m.call(&["WAIT", "1", "5000"]), Value::Int(1));
    assert!(started.elapsed() < Duration::from_secs(2), "GETACK asked it at once");
    let Value::Array(role) = m.call(&["ROLE"]) else { panic!("ROLE") };
    assert_eq!(role[0], Value::bulk("master"));
}

#[test]
fn a_replica_authenticates_with_masterauth() {
    let master = TestServer::start_with(&["--requirepass", "s3cret"]);
    let mut m = master.conn();
    m.call(&["AUTH", "s3cret"]);
    m.call(&["SET", "k", "v"]);
    let port = master.port.to_string();
    let replica = TestServer::start_with(&["--replicaof", "127.0.0.1", &port, "--masterauth", "s3cret"]);
    let refused = TestServer::start_with(&["--replicaof", "127.0.0.1", &port, "--masterauth", "wrong"]);
    wait_until(Duration::from_secs(20), "the replica to sync", || {
        replica.conn().call(&["GET", "k"]) == Value::bulk("v")
    });
    std::thread::sleep(Duration::from_millis(500));
    let mut r = refused.conn();
    assert_eq!(r.info_field("master_link_status"), "down");
    assert_eq!(r.call(&["GET", "k"]), Value::Nil);
    assert_eq!(m.info_field("connected_slaves"), "1");
}

#[test]
fn redis_cli_replica_shows_the_writes_of_a_strata_master() {
    let master = TestServer::start();
    let mut cli = std::process::Command::new("redis-cli")
        .args(["-p", &master.port.to_string(), "--replica"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("redis-cli is installed");
    let stdout = cli.stdout.take().unwrap();
    let (lines_tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    wait_until(Duration::from_secs(10), "redis-cli to attach", || master.conn().info_field("connected_slaves") == "1");
    master.conn().call(&["SET", "greeting", "hello"]);
    master.conn().call(&["RPUSH", "queue", "job"]);
    let mut seen = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !seen.iter().any(|l: &String| l.contains("\"RPUSH\",\"queue\",\"job\"")) {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => seen.push(line),
            Err(_) => panic!("redis-cli showed {seen:?}"),
        }
    }
    assert!(seen.iter().any(|l| l.contains("\"SET\",\"greeting\",\"hello\"")), "{seen:?}");
    let _ = cli.kill();
    let _ = cli.wait();
}

#[test]
fn a_silent_peer_is_let_go_after_repl_timeout_and_the_link_comes_back() {
    let master = TestServer::start_with(&["--repl-timeout", "2"]);
    let replica =
        TestServer::start_with(&["--replicaof", "127.0.0.1", &master.port.to_string(), "--repl-timeout", "2"]);
    wait_caught_up(&master, &replica);
    // A replica that stops (SIGSTOP) acknowledges nothing: the master lets
    // it go; once it runs again it reconnects and continues.
    replica.signal("STOP");
    let mut m = master.conn();
    wait_until(Duration::from_secs(15), "the master to let the silent replica go", || {
        m.info_field("connected_slaves") == "0"
    });
    m.call(&["SET", "while", "stopped"]);
    replica.signal("CONT");
    wait_caught_up(&master, &replica);
    assert_eq!(replica.conn().call(&["GET", "while"]), Value::bulk("stopped"));
    // A master that stops sending (SIGSTOP): the replica's link goes down.
    master.signal("STOP");
    wait_until(Duration::from_secs(15), "the replica to give up on the silent master", || {
        replica.conn().info_field("master_link_status") == "down"
    });
    master.signal("CONT");
    wait_caught_up(&master, &replica);
}
