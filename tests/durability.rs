//! The write-ahead log and recovery, proven by crashing the real binary:
//! every engine's data survives graceful and kill -9 restarts, torn records
//! are cut, corruption stops startup with a clear message (and
//! strata-check-log --fix restores service), damaged checkpoints fall back
//! to older ones.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{dump_all, text, write_every_type, Conn, TestServer, Value};

#[test]
fn every_engine_survives_graceful_and_crash_restarts() {
    let mut server = TestServer::start();
    write_every_type(&mut server.conn(), 0);
    let before = dump_all(&server);
    assert!(before.len() >= 60, "{}", before.len());

    server.restart();
    assert_eq!(dump_all(&server), before);
    // A clean shutdown saved everything: nothing to replay.
    assert_eq!(server.conn().info_field("strata_recovery_records"), "0");

    write_every_type(&mut server.conn(), 1);
    let before = dump_all(&server);
    server.crash_restart();
    assert_eq!(dump_all(&server), before);
    assert_ne!(server.conn().info_field("strata_recovery_records"), "0");

    // SAVE in between: RocksDB flushed, checkpoint written, log truncated;
    // then more writes and a crash replay only the tail.
    assert_eq!(server.conn().call(&["SAVE"]), Value::Status("OK".into()));
    write_every_type(&mut server.conn(), 2);
    let before = dump_all(&server);
    server.crash_restart();
    assert_eq!(dump_all(&server), before);
}

#[test]
fn a_pause_after_a_burst_of_writes_saves_so_a_crash_replays_nothing() {
    let mut server = TestServer::start();
    let mut conn = server.conn();
    let value = "v".repeat(1000);
    for i in 0..1500 {
        conn.call(&["SET", &format!("k{i}"), &value]);
        conn.call(&["RPUSH", "list", &value]);
    }
    let before = dump_all(&server);
    // Both engines catch up with the log within a few seconds of quiet.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let seq = conn.info_field("strata_log_seq");
        if conn.info_field("strata_rocksdb_flushed_seq") == seq && conn.info_field("strata_checkpoint_seq") == seq {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no save after the writes paused");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    drop(conn);
    server.crash_restart();
    assert_eq!(dump_all(&server), before);
    assert_eq!(server.conn().info_field("strata_recovery_records"), "0");
    // With nothing replayed, the key count is the one the save stored.
    assert_eq!(server.conn().call(&["DBSIZE"]), Value::Int(1501));
}

/// A few writes (too little log for the size rule, or for a quiet save)
/// are checkpointed once the interval in force passes; INFO tells the
/// interval and why, and CONFIG SET changes its bounds.
#[test]
fn memory_checkpoints_follow_the_interval_in_force() {
    let server = TestServer::start_with(&["--checkpoint-min-interval", "1", "--checkpoint-max-interval", "2"]);
    let mut conn = server.conn();
    assert_eq!(conn.info_field("strata_checkpoint_interval_reason"), "unmeasured");
    assert_eq!(conn.info_field("strata_checkpoint_interval_sec"), "1");
    assert_eq!(conn.info_field("strata_replay_speed"), "assumed");
    let saves = |conn: &mut Conn| conn.info_field("rdb_saves").parse::<u64>().unwrap();
    let wait_for_a_checkpoint = |conn: &mut Conn, after: u64| {
        let within = std::time::Duration::from_secs(20);
        common::wait_until(within, "a checkpoint after the interval", || saves(conn) > after);
    };
    let before = saves(&mut conn);
    assert_eq!(conn.call(&["RPUSH", "list", "a"]), Value::Int(1));
    wait_for_a_checkpoint(&mut conn, before);
    assert_eq!(conn.info_field("strata_checkpoint_seq"), conn.info_field("strata_log_seq"));
    // Measured now: a few bytes of log a second make a long optimal
    // interval, held to the maximum.
    assert_eq!(conn.info_field("strata_checkpoint_interval_reason"), "max-bound");
    assert_eq!(conn.info_field("strata_checkpoint_interval_sec"), "2");
    assert!(conn.info_field("strata_checkpoint_cost_ms").parse::<i64>().unwrap() >= 0);
    // Without writes, no checkpoint comes however long the wait.
    let idle = saves(&mut conn);
    std::thread::sleep(std::time::Duration::from_millis(2500));
    assert_eq!(saves(&mut conn), idle);
    for (name, value) in [("checkpoint-max-interval", "5"), ("checkpoint-mtbf-hours", "1000")] {
        assert_eq!(conn.call(&["CONFIG", "SET", name, value]), Value::Status("OK".into()));
    }
    assert_eq!(conn.info_field("strata_checkpoint_interval_sec"), "5");
    assert_eq!(conn.info_field("strata_checkpoint_mtbf_hours"), "1000");
    assert!(matches!(conn.call(&["CONFIG", "SET", "checkpoint-mtbf-hours", "0"]), Value::Error(_)));
}

#[test]
fn appendfsync_always_survives_kill_9_too() {
    let mut server = TestServer::start_with(&["--appendfsync", "always"]);
    write_every_type(&mut server.conn(), 0);
    let before = dump_all(&server);
    server.kill();
    // The log wrote zeros ahead of its records: unused space, not damage.
    let last = segments(&server.dir).pop().unwrap();
    assert_eq!(std::fs::read(&last).unwrap().last(), Some(&0), "zeros follow the records");
    let (code, text) = check_log(&server.dir, &[]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("zeros written ahead"), "{text}");
    server.start_again();
    assert_eq!(dump_all(&server), before);
    assert_eq!(server.conn().info_field("strata_appendfsync"), "always");
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir.join("log")).unwrap().map(|e| e.unwrap().path()).collect();
    out.sort();
    out
}

fn check_log(dir: &Path, args: &[&str]) -> (i32, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_strata-check-log")).args(args).arg(dir).output().unwrap();
    let text = String::from_utf8_lossy(&output.stdout).to_string() + &String::from_utf8_lossy(&output.stderr);
    (output.status.code().unwrap_or(-1), text)
}

/// 100 numbered writes (string and list), then a crash: the log holds
/// them all (nothing was flushed or checkpointed).
fn crashed_server_with_100_writes() -> TestServer {
    let mut server = TestServer::start();
    let mut conn = server.conn();
    for i in 0..100 {
        conn.call(&["SET", &format!("k{i}"), &i.to_string()]);
        conn.call(&["RPUSH", "list", &i.to_string()]);
    }
    drop(conn);
    server.kill();
    server
}

#[test]
fn a_torn_last_record_is_cut_off() {
    let mut server = crashed_server_with_100_writes();
    let last = segments(&server.dir).pop().unwrap();
    let len = std::fs::metadata(&last).unwrap().len();
    // Lose the tail of the last record (the last RPUSH), as a crash in the
    // middle of writing it would.
    std::fs::OpenOptions::new().write(true).open(&last).unwrap().set_len(len - 3).unwrap();
    server.start_again();
    let mut conn = server.conn();
    assert_eq!(conn.call(&["GET", "k99"]), Value::bulk("99"));
    assert_eq!(conn.call(&["LLEN", "list"]), Value::Int(99));
    // And the cut log keeps working: new writes, another crash.
    conn.call(&["RPUSH", "list", "again"]);
    drop(conn);
    server.crash_restart();
    assert_eq!(server.conn().call(&["LINDEX", "list", "-1"]), Value::bulk("again"));
}

#[test]
fn corruption_refuses_to_start_until_strata_check_log_fixes_it() {
    let mut server = crashed_server_with_100_writes();
    let last = segments(&server.dir).pop().unwrap();
    let mut bytes = std::fs::read(&last).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x5a;
    std::fs::write(&last, &bytes).unwrap();

    let message = server.start_expecting_failure();
    assert!(message.contains(&last.display().to_string()), "{message}");
    assert!(message.contains("offset") && message.contains("after sequence"), "{message}");

    let (code, report) = check_log(&server.dir, &[]);
    assert_eq!(code, 1, "{report}");
    assert!(report.contains("Damage in") && report.contains("--fix"), "{report}");
    // Without a yes, --fix asks and does nothing.
    let (code, _) = check_log(&server.dir, &["--fix"]);
    assert_eq!(code, 1);
    let (code, report) = check_log(&server.dir, &["--fix", "--yes"]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(check_log(&server.dir, &[]).0, 0);

    server.start_again();
    let mut conn = server.conn();
    // A prefix of the writes is back: every SET before the damage, in order.
    let Value::Int(len) = conn.call(&["LLEN", "list"]) else { panic!("LLEN") };
    assert!(len > 10 && len < 100, "{len}");
    for i in 0..len {
        assert_eq!(conn.call(&["GET", &format!("k{i}")]), Value::bulk(&i.to_string()));
    }
    assert_eq!(conn.call(&["EXISTS", "k99"]), Value::Int(0));
}

fn checkpoints(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> =
        std::fs::read_dir(dir.join("checkpoints")).unwrap().map(|e| e.unwrap().path()).collect();
    out.sort();
    out
}

#[test]
fn a_damaged_checkpoint_falls_back_to_the_previous_one() {
    let mut server = TestServer::start();
    let mut conn = server.conn();
    for round in 0..3 {
        for i in 0..50 {
            conn.call(&["RPUSH", "list", &format!("{round}:{i}")]);
            conn.call(&["ZADD", "z", &i.to_string(), &format!("{round}:{i}")]);
        }
        if round < 2 {
            assert_eq!(conn.call(&["SAVE"]), Value::Status("OK".into()));
        }
    }
    drop(conn);
    let before = dump_all(&server);
    server.kill();
    let kept = checkpoints(&server.dir);
    assert_eq!(kept.len(), 2, "{kept:?}");
    let newest = kept.last().unwrap();
    let mut bytes = std::fs::read(newest).unwrap();
    let at = bytes.len() - 10;
    bytes[at] ^= 1;
    std::fs::write(newest, &bytes).unwrap();
    server.start_again();
    assert_eq!(dump_all(&server), before);

    // With every checkpoint damaged and the log truncated, nothing can
    // restore the state exactly: the server says so and refuses.
    server.kill();
    for path in checkpoints(&server.dir) {
        std::fs::write(&path, b"garbage").unwrap();
    }
    let message = server.start_expecting_failure();
    assert!(message.contains("the log starts at sequence"), "{message}");
}

#[test]
fn clients_get_loading_while_the_log_replays() {
    // Redis's key-load-delay slows replay down (5 ms a record) so that
    // loading lasts long enough to be seen.
    let mut server = TestServer::start_with(&["--key-load-delay", "5000"]);
    let mut conn = server.conn();
    for i in 0..300 {
        conn.call(&["RPUSH", "list", &i.to_string()]);
    }
    drop(conn);
    server.kill();
    server.spawn_without_waiting();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut conn = loop {
        match Conn::try_connect(server.port) {
            Ok(conn) => break conn,
            Err(_) if std::time::Instant::now() < deadline => std::thread::sleep(std::time::Duration::from_millis(5)),
            Err(e) => panic!("server never listened: {e}"),
        }
    };
    assert_eq!(conn.call(&["PING"]), Value::Error("LOADING Strata is loading the dataset in memory".into()));
    assert_eq!(conn.call(&["LLEN", "list"]), Value::Error("LOADING Strata is loading the dataset in memory".into()));
    // Garbage while loading gets Redis's protocol error and a close; the
    // load goes on.
    let mut garbage = Conn::try_connect(server.port).unwrap();
    garbage.send_raw(b"*abc\r\n");
    match garbage.read() {
        Some(Value::Error(e)) => assert!(e.starts_with("ERR Protocol error"), "{e}"),
        other => panic!("garbage answered {other:?}"),
    }
    assert_eq!(garbage.read(), None, "connection closed after the protocol error");
    let info = text(&conn.call(&["INFO", "persistence"]));
    assert!(info.contains("loading:1"), "{info}");
    let perc: f64 =
        info.lines().find_map(|l| l.strip_prefix("loading_loaded_perc:")).expect("progress in INFO").parse().unwrap();
    assert!((0.0..=100.0).contains(&perc));
    // The same connection becomes an ordinary client once loading ends.
    server.wait_ready();
    loop {
        match conn.call(&["LLEN", "list"]) {
            Value::Error(e) if e.starts_with("LOADING") => std::thread::sleep(std::time::Duration::from_millis(20)),
            other => {
                assert_eq!(other, Value::Int(300));
                break;
            }
        }
    }
    assert_eq!(conn.info_field("loading"), "0");
}

#[test]
fn a_checkpoint_written_with_another_shard_count_still_loads() {
    use strata_engines::memory::checkpoint::{read_checkpoint, CheckpointWriter, ShardBody};
    use strata_engines::memory::{shard_in, MemShard};

    let mut server = TestServer::start();
    let mut conn = server.conn();
    let fill = |conn: &mut Conn, round: usize| {
        for i in 0..200 {
            let n = (round * 1000 + i).to_string();
            conn.call(&["RPUSH", &format!("l{i}"), &n]);
            conn.call(&["SADD", &format!("s{i}"), &n]);
            conn.call(&["ZADD", &format!("z{i}"), &n, &n]);
            conn.call(&["XADD", &format!("x{i}"), "*", "n", &n]);
        }
    };
    fill(&mut conn, 0);
    assert_eq!(conn.call(&["SAVE"]), Value::Status("OK".into()));
    // Records after the checkpoint: replayed into the old layout.
    fill(&mut conn, 1);
    conn.call(&["LPOP", "l7"]);
    conn.call(&["DEL", "s9"]);
    drop(conn);
    let before = dump_all(&server);
    server.kill();

    // Rewrite the newest checkpoint as a server with 64 shards wrote it.
    let path = checkpoints(&server.dir).pop().unwrap();
    let images = read_checkpoint(&path).unwrap();
    let seq = images[0].seq;
    assert!(images.iter().all(|i| i.seq == seq), "SAVE on an idle server cuts every shard at one sequence");
    let mut parts: Vec<std::collections::BTreeMap<u32, Vec<_>>> = vec![Default::default(); 64];
    for image in &images {
        for (db, key, entry) in image.shard.entries() {
            parts[shard_in(key, 64)].entry(db).or_default().push((key.clone(), entry.clone()));
        }
    }
    std::fs::remove_file(&path).unwrap();
    let mut writer = CheckpointWriter::create(&server.dir.join("checkpoints"), 64).unwrap();
    for part in parts {
        writer.shard(seq, &ShardBody::of(&MemShard::from_entries(part))).unwrap();
    }
    assert_eq!(writer.finish().unwrap().0, path);

    server.start_again();
    assert_eq!(dump_all(&server), before);
    assert_ne!(server.conn().info_field("strata_recovery_records"), "0");
    // The next checkpoint is written in the server's own shards.
    assert_eq!(server.conn().call(&["SAVE"]), Value::Status("OK".into()));
    let newest = checkpoints(&server.dir).pop().unwrap();
    assert_eq!(read_checkpoint(&newest).unwrap().len(), strata_engines::memory::SHARDS);
}
