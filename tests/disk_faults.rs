//! Disk faults stop writes and lose nothing. The real binary runs with
//! failpoints (FAILPOINTS, see `strata_engines::faults`) in its log
//! writes and fsyncs, its RocksDB writes and its checkpoints, and once on
//! a real full disk (a small tmpfs): write commands get Redis's MISCONF,
//! reads and PING are served, INFO says what failed, the server recovers
//! by itself once the disk takes writes again, and after a crash every
//! acknowledged write is there and nothing refused is half there.

#![cfg(feature = "failpoints")]

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{encode, Conn, TestServer, Value};

fn with_faults(failpoints: &str, extra: &[&str]) -> TestServer {
    TestServer::start_with_env(&[("FAILPOINTS", failpoints)], extra)
}

fn ok() -> Value {
    Value::Status("OK".into())
}

fn log_refusal(reason: &str) -> Value {
    Value::Error(format!("MISCONF Errors writing to the AOF file: {reason}"))
}

fn rocksdb_refusal(reason: &str) -> Value {
    Value::Error(format!("MISCONF Errors writing to RocksDB: {reason}"))
}

fn list(items: &[&str]) -> Value {
    Value::Array(items.iter().map(|item| Value::bulk(item)).collect())
}

/// Waits (the cron retries once a second) until an INFO field says `value`.
fn wait_for(conn: &mut Conn, name: &str, value: &str) {
    common::wait_until(Duration::from_secs(60), &format!("{name} to be {value}"), || conn.info_field(name) == value);
}

/// Restarts after a kill -9, without faults.
fn crash_restart_healthy(server: &mut TestServer) {
    server.set_env(&[]);
    server.crash_restart();
}

#[test]
fn a_failed_log_write_refuses_writes_and_a_retry_makes_them_durable() {
    // Log writes: two work, three fail (the client's, then the cron's
    // first two retries, a second apart), then all work.
    let mut server = with_faults("log-write=2*off->3*return(ENOSPC)->off", &["--appendfsync", "everysec"]);
    let mut c = server.conn();
    assert_eq!(c.call(&["SET", "before", "1"]), ok());
    assert_eq!(c.call(&["RPUSH", "list", "a"]), Value::Int(1));
    // Its log write fails: the client is not told OK, and stays connected.
    assert_eq!(c.call(&["SET", "refused", "1"]), log_refusal("No space left on device"));
    assert_eq!(c.call(&["PING"]), Value::Status("PONG".into()));
    assert_eq!(c.call(&["GET", "before"]), Value::bulk("1"));
    // The refused write applied in memory; its record waits in the log.
    assert_eq!(c.call(&["GET", "refused"]), Value::bulk("1"));
    // New writes are refused before they apply, inside MULTI too.
    assert_eq!(c.call(&["RPUSH", "list", "b"]), log_refusal("No space left on device"));
    assert_eq!(c.call(&["LRANGE", "list", "0", "-1"]), list(&["a"]));
    assert_eq!(c.call(&["MULTI"]), ok());
    assert_eq!(c.call(&["GET", "before"]), Value::Status("QUEUED".into()));
    assert_eq!(c.call(&["SET", "queued", "1"]), log_refusal("No space left on device"));
    let discarded = Value::Error("EXECABORT Transaction discarded because of previous errors.".into());
    assert_eq!(c.call(&["EXEC"]), discarded);
    assert_eq!(c.info_field("aof_last_write_status"), "err");
    assert_eq!(c.info_field("strata_log_write_status"), "err");
    assert_eq!(c.info_field("strata_log_fsync_status"), "ok");
    assert_eq!(c.info_field("strata_writes_refused"), "1");

    wait_for(&mut c, "aof_last_write_status", "ok");
    assert_eq!(c.info_field("strata_writes_refused"), "0");
    assert_eq!(c.call(&["RPUSH", "list", "c"]), Value::Int(2));
    crash_restart_healthy(&mut server);
    let mut c = server.conn();
    assert_eq!(c.call(&["GET", "before"]), Value::bulk("1"));
    assert_eq!(c.call(&["GET", "refused"]), Value::bulk("1"), "the retry wrote it");
    assert_eq!(c.call(&["EXISTS", "queued"]), Value::Int(0));
    assert_eq!(c.call(&["LRANGE", "list", "0", "-1"]), list(&["a", "c"]));
}

#[test]
fn a_failed_fsync_under_always_answers_every_waiting_client_and_recovers() {
    // Fsyncs: the first works, three fail, then all work.
    let mut server = with_faults("log-fsync=1*off->3*return(EIO)->off", &["--appendfsync", "always"]);
    let mut c = server.conn();
    assert_eq!(c.call(&["SET", "before", "1"]), ok());
    // Several clients' transactions wait for one fsync, which fails (or
    // come after it): each is refused (none is left waiting), and the
    // client stays connected.
    let mut clients: Vec<Conn> = (0..4).map(|_| server.conn()).collect();
    for (i, client) in clients.iter_mut().enumerate() {
        let (list, string) = (format!("l{i}"), format!("s{i}"));
        let mut pipeline = encode(&[b"MULTI"]);
        pipeline.extend(encode(&[b"RPUSH", list.as_bytes(), b"v"]));
        pipeline.extend(encode(&[b"SET", string.as_bytes(), b"v"]));
        pipeline.extend(encode(&[b"EXEC"]));
        client.send_raw(&pipeline);
    }
    let discarded = Value::Error("EXECABORT Transaction discarded because of previous errors.".into());
    for client in &mut clients {
        let replies: Vec<Value> = (0..4).map(|_| client.read().expect("a reply")).collect();
        let queued = Value::Status("QUEUED".into());
        let waited = [ok(), queued.clone(), queued, log_refusal("Input/output error")];
        let refused = [ok(), log_refusal("Input/output error"), log_refusal("Input/output error"), discarded.clone()];
        assert!(replies == waited || replies == refused, "{replies:?}");
        assert_eq!(client.call(&["GET", "before"]), Value::bulk("1"));
    }
    assert_eq!(c.call(&["PING"]), Value::Status("PONG".into()));
    assert_eq!(c.info_field("aof_last_write_status"), "err");
    assert_eq!(c.info_field("strata_log_fsync_status"), "err");
    assert_eq!(c.info_field("strata_log_write_status"), "ok");

    wait_for(&mut c, "aof_last_write_status", "ok");
    assert_eq!(c.call(&["SET", "after", "1"]), ok());
    crash_restart_healthy(&mut server);
    let mut c = server.conn();
    assert_eq!(c.call(&["GET", "before"]), Value::bulk("1"));
    assert_eq!(c.call(&["GET", "after"]), Value::bulk("1"));
    // Told MISCONF: done (it waited for the failed fsync, and the retry
    // wrote it) or not (refused before it applied), never half.
    for i in 0..4 {
        let list = c.call(&["LRANGE", &format!("l{i}"), "0", "-1"]);
        let string = c.call(&["GET", &format!("s{i}")]);
        let done = list == self::list(&["v"]) && string == Value::bulk("v");
        let not_done = list == self::list(&[]) && string == Value::Nil;
        assert!(done || not_done, "transaction {i}: {list:?} {string:?}");
    }
}

#[test]
fn a_failed_fsync_under_everysec_writes_the_records_again() {
    // The syncer's fsync a second later fails, and the cron's first retry.
    let mut server = with_faults("log-fsync=2*return(EIO)->off", &["--appendfsync", "everysec"]);
    let mut c = server.conn();
    assert_eq!(c.call(&["RPUSH", "list", "a"]), Value::Int(1));
    wait_for(&mut c, "strata_log_fsync_status", "err");
    assert_eq!(c.call(&["RPUSH", "list", "b"]), log_refusal("Input/output error"));
    assert_eq!(c.info_field("aof_last_write_status"), "err");
    let synced: u64 = c.info_field("strata_log_synced_seq").parse().unwrap();
    let written: u64 = c.info_field("strata_log_written_seq").parse().unwrap();
    assert!(synced < written, "a failed fsync is not taken for all synced: {synced} of {written}");
    // As Linux may after a failed fsync: the pages it could not write are
    // dropped, and the file reads what the disk had (here zeros).
    lose_unsynced_pages(&newest_segment(server.data_dir()));

    wait_for(&mut c, "aof_last_write_status", "ok");
    assert_eq!(c.info_field("strata_log_synced_seq"), c.info_field("strata_log_written_seq"));
    assert_eq!(c.call(&["RPUSH", "list", "c"]), Value::Int(2));
    crash_restart_healthy(&mut server);
    assert_eq!(server.conn().call(&["LRANGE", "list", "0", "-1"]), list(&["a", "c"]));
}

#[test]
fn rocksdb_write_failures_refuse_writes_until_rocksdb_takes_them_again() {
    // RocksDB's first write works; five fail (the drainer retries after
    // 0.1, 0.2, 0.4, 0.8 and 1.6 s), then all work.
    let mut server = with_faults("rocks-write=1*off->5*return(ENOSPC)->off", &[]);
    let mut c = server.conn();
    // The first write, made by now: the database map, written at start
    // (a scan drains the backlog).
    assert_eq!(c.call(&["SCAN", "0"]), Value::Array(vec![Value::bulk("0"), Value::Array(vec![])]));
    assert_eq!(c.call(&["SET", "before", "1"]), ok());
    wait_for(&mut c, "strata_rocksdb_write_status", "err");
    assert_eq!(c.call(&["SET", "refused", "1"]), rocksdb_refusal("No space left on device"));
    assert_eq!(c.call(&["RPUSH", "list", "a"]), rocksdb_refusal("No space left on device"));
    // The backlog keeps what RocksDB refused; reads find it.
    assert_eq!(c.call(&["GET", "before"]), Value::bulk("1"));
    assert_eq!(c.call(&["PING"]), Value::Status("PONG".into()));
    assert_eq!(c.info_field("strata_writes_refused"), "1");
    assert_eq!(c.info_field("aof_last_write_status"), "ok", "the log is fine");

    wait_for(&mut c, "strata_rocksdb_write_status", "ok");
    assert_eq!(c.call(&["SET", "after", "1"]), ok());
    crash_restart_healthy(&mut server);
    let mut c = server.conn();
    assert_eq!(c.call(&["GET", "before"]), Value::bulk("1"));
    assert_eq!(c.call(&["GET", "after"]), Value::bulk("1"));
    assert_eq!(c.call(&["EXISTS", "refused", "list"]), Value::Int(0));
}

#[test]
fn a_write_rocksdb_refuses_is_answered_as_the_log_holds_it() {
    // The drainer thread stands still, and RocksDB refuses every write
    // after the first (the database map): the backlog grows until a
    // writer drains it itself (at 16 MB), and RocksDB refuses that.
    let mut server = with_faults("rocks-drainer=pause;rocks-write=1*off->return(ENOSPC)", &[]);
    let mut c = server.conn();
    assert_eq!(c.call(&["SCAN", "0"]), Value::Array(vec![Value::bulk("0"), Value::Array(vec![])]));
    let value = "v".repeat(64 << 10);
    // Writers drain only into memtable room, which a memtable switch (the
    // cron's, when it comes) makes: write until RocksDB has been asked.
    let mut replies: Vec<Value> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while replies.iter().all(|reply| *reply == ok()) {
        assert!(Instant::now() < deadline, "no writer drained: {} acknowledged", replies.len());
        let mut pipeline = Vec::new();
        for i in replies.len()..replies.len() + 64 {
            pipeline.extend(encode(&[b"SET", format!("key{i}").as_bytes(), value.as_bytes()]));
        }
        c.send_raw(&pipeline);
        replies.extend((0..64).map(|_| c.read().expect("a reply")));
    }
    // The write whose drain failed is in the log: it is acknowledged, and
    // the writes after it are refused before they apply.
    let acknowledged = replies.iter().take_while(|reply| **reply == ok()).count();
    assert!(acknowledged >= 1, "{acknowledged} acknowledged");
    for reply in &replies[acknowledged..] {
        assert_eq!(*reply, rocksdb_refusal("No space left on device"));
    }
    server.kill();
    server.set_env(&[]);
    server.start_again();
    let mut c = server.conn();
    for (i, reply) in replies.iter().enumerate() {
        let expected = if *reply == ok() { Value::bulk(&value) } else { Value::Nil };
        assert!(c.call(&["GET", &format!("key{i}")]) == expected, "key{i} after {reply:?}");
    }
}

#[test]
fn a_failed_checkpoint_is_retried_and_reported() {
    let server = with_faults("checkpoint-write=2*return(ENOSPC)->off", &[]);
    let mut c = server.conn();
    assert_eq!(c.call(&["RPUSH", "list", "a"]), Value::Int(1));
    assert_eq!(c.call(&["BGSAVE"]), Value::Status("Background saving started".into()));
    wait_for(&mut c, "rdb_last_bgsave_status", "err");
    assert_eq!(c.info_field("strata_checkpoint_failures"), "1");
    let checkpoints = server.data_dir().join("checkpoints");
    assert!(!checkpoints.join("checkpoint.tmp").exists(), "a failed checkpoint's temp file is removed");
    // Writes go on: the log holds them.
    assert_eq!(c.call(&["RPUSH", "list", "b"]), Value::Int(2));
    // Tried again without being asked: after a second (fails), then two.
    wait_for(&mut c, "rdb_last_bgsave_status", "ok");
    assert_eq!(c.info_field("strata_checkpoint_failures"), "2");
    let written = std::fs::read_dir(&checkpoints).unwrap().flatten();
    assert!(written.into_iter().any(|entry| entry.file_name().to_string_lossy().ends_with(".ckpt")));
}

/// A checkpoint that fails part way through its walk, with an I/O error or
/// a panic, gives up the cut of every shard (else the next could not
/// begin, and writers would keep old values for a cut nobody writes) and
/// is reported and retried: writes go on, the retry succeeds, and a crash
/// after it restarts with the data as it was.
#[test]
fn a_checkpoint_failing_mid_walk_gives_up_its_cut() {
    for failure in ["checkpoint-shard=1*return(EIO)->off", "checkpoint-shard=1*panic->off"] {
        checkpoint_failing_mid_walk(failure);
    }
}

/// A checkpoint that fails (`failure`) part way through its walk.
fn checkpoint_failing_mid_walk(failure: &str) {
    let mut server = with_faults(failure, &[]);
    let mut c = server.conn();
    for i in 0..3000 {
        c.call(&["ZADD", "big", &i.to_string(), &format!("m{i}")]);
    }
    for i in 0..200 {
        c.call(&["RPUSH", &format!("list{i}"), "a", "b"]);
        c.call(&["SADD", &format!("set{i}"), "x"]);
    }
    assert_eq!(c.call(&["BGSAVE"]), Value::Status("Background saving started".into()));
    wait_for(&mut c, "rdb_last_bgsave_status", "err");
    // Written after the failed cut: nothing holds on to the old values.
    for i in 0..3000 {
        c.call(&["ZADD", "big", &(i * 2).to_string(), &format!("m{i}")]);
    }
    c.call(&["LPUSH", "list7", "front"]);
    wait_for(&mut c, "rdb_last_bgsave_status", "ok");
    assert_eq!(c.info_field("strata_checkpoint_failures"), "1");
    let dump = |c: &mut Conn| {
        [&["ZRANGE", "big", "0", "-1", "WITHSCORES"][..], &["LRANGE", "list7", "0", "-1"], &["DBSIZE"]]
            .iter()
            .map(|command| c.call(command))
            .collect::<Vec<_>>()
    };
    let before = dump(&mut c);
    server.crash_restart();
    assert_eq!(dump(&mut server.conn()), before);
}

/// The newest log segment.
fn newest_segment(dir: &Path) -> std::path::PathBuf {
    let mut segments: Vec<_> = std::fs::read_dir(dir.join("log")).unwrap().flatten().map(|e| e.path()).collect();
    segments.sort();
    segments.pop().expect("a segment")
}

/// Zeros everything after a segment's header (24 bytes, fsynced when
/// the segment was created).
fn lose_unsynced_pages(segment: &Path) {
    use std::os::unix::fs::FileExt;
    let file = std::fs::OpenOptions::new().write(true).open(segment).unwrap();
    let len = file.metadata().unwrap().len();
    file.write_all_at(&vec![0; len as usize - 24], 24).unwrap();
}

/// The newest log segment's size.
fn last_segment_bytes(dir: &Path) -> u64 {
    std::fs::metadata(newest_segment(dir)).unwrap().len()
}

#[test]
fn shutdown_closes_the_log_when_the_checkpoint_fails() {
    let mut server = with_faults("checkpoint-write=return(EIO)", &["--appendfsync", "always"]);
    let mut c = server.conn();
    assert_eq!(c.call(&["RPUSH", "list", "a", "b"]), Value::Int(2));
    assert_eq!(c.call(&["SET", "s", "v"]), ok());
    assert!(matches!(c.call(&["SAVE"]), Value::Error(_)), "the checkpoint, and so a save, fails");
    c.send_raw(&encode(&[b"SHUTDOWN"]));
    assert_eq!(c.read(), None);
    server.wait_exit();
    // Closed: the segment ends at its last record, without the zeros
    // written ahead under `always` (a megabyte).
    assert!(last_segment_bytes(server.data_dir()) < 1 << 20);
    server.set_env(&[]);
    server.start_again();
    let mut c = server.conn();
    assert_eq!(c.call(&["LRANGE", "list", "0", "-1"]), list(&["a", "b"]));
    assert_eq!(c.call(&["GET", "s"]), Value::bulk("v"));
}

#[test]
fn writes_are_refused_once_the_log_reaches_log_max_size() {
    // Without checkpoints the log cannot be truncated.
    let server = with_faults("checkpoint-write=return(EIO)", &["--log-max-size", "1mb"]);
    let mut c = server.conn();
    let value = "v".repeat(64 << 10);
    // 20 pushes take the log past 1 MB; the cron may see it before the
    // last of them (a loaded machine runs them slowly), which refuses them.
    let mut pushed = 0;
    for _ in 0..20 {
        match c.call(&["RPUSH", "list", &value]) {
            Value::Int(n) => pushed = n,
            Value::Error(refusal) => assert!(refusal.starts_with("MISCONF The log has reached"), "{refusal}"),
            other => panic!("RPUSH answered {other:?}"),
        }
    }
    assert!(pushed >= 15, "the first megabyte is taken: {pushed}");
    wait_for(&mut c, "strata_writes_refused", "1");
    let Value::Error(refusal) = c.call(&["RPUSH", "list", "x"]) else { panic!("a write is refused") };
    assert!(refusal.starts_with("MISCONF The log has reached log-max-size"), "{refusal}");
    assert_eq!(c.call(&["LLEN", "list"]), Value::Int(pushed));
    assert_eq!(c.call(&["PING"]), Value::Status("PONG".into()));
    assert_eq!(c.call(&["CONFIG", "SET", "log-max-size", "0"]), ok());
    wait_for(&mut c, "strata_writes_refused", "0");
    assert_eq!(c.call(&["RPUSH", "list", "x"]), Value::Int(pushed + 1));
}

#[test]
fn a_record_too_big_for_a_log_frame_is_refused_before_anything_applies() {
    // The frame limit (4 GiB) lowered to 4000 bytes.
    let mut server = with_faults("log-max-record=return(4000)", &[]);
    let mut c = server.conn();
    assert_eq!(c.call(&["RPUSH", "list", "small"]), Value::Int(1));
    let big = "b".repeat(5000);
    let Value::Error(refusal) = c.call(&["RPUSH", "list", &big]) else { panic!("refused") };
    assert!(refusal.starts_with("ERR the transaction's log record would take"), "{refusal}");
    assert_eq!(c.call(&["LLEN", "list"]), Value::Int(1));
    // A transaction is refused whole, in both engines.
    let half = "h".repeat(2500);
    assert_eq!(c.call(&["MULTI"]), ok());
    assert_eq!(c.call(&["RPUSH", "list", &half]), Value::Status("QUEUED".into()));
    assert_eq!(c.call(&["SET", "string", &half]), Value::Status("QUEUED".into()));
    assert!(matches!(c.call(&["EXEC"]), Value::Error(e) if e.starts_with("ERR the transaction's log record")));
    assert_eq!(c.call(&["LLEN", "list"]), Value::Int(1));
    assert_eq!(c.call(&["EXISTS", "string"]), Value::Int(0));
    assert_eq!(c.call(&["MULTI"]), ok());
    assert_eq!(c.call(&["RPUSH", "list", "x"]), Value::Status("QUEUED".into()));
    assert_eq!(c.call(&["SET", "string", "y"]), Value::Status("QUEUED".into()));
    assert_eq!(c.call(&["EXEC"]), Value::Array(vec![Value::Int(2), ok()]));
    crash_restart_healthy(&mut server);
    let mut c = server.conn();
    assert_eq!(c.call(&["LRANGE", "list", "0", "-1"]), list(&["small", "x"]));
    assert_eq!(c.call(&["GET", "string"]), Value::bulk("y"));
}

/// A tmpfs mounted for one test, unmounted when dropped.
struct Tmpfs(tempfile::TempDir);

impl Tmpfs {
    /// None (and why) when mounting is not possible here.
    fn mount(bytes: u64) -> Result<Tmpfs, String> {
        let dir = tempfile::tempdir().unwrap();
        let output = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .map_err(|e| format!("running mount: {e}"))?;
        match output.status.success() {
            true => Ok(Tmpfs(dir)),
            false => Err(String::from_utf8_lossy(&output.stderr).trim().to_string()),
        }
    }

    fn path(&self) -> &Path {
        self.0.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(self.0.path()).status();
    }
}

#[test]
fn a_full_disk_under_always_stops_writes_and_loses_nothing() {
    let tmpfs = match Tmpfs::mount(24 << 20) {
        Ok(tmpfs) => tmpfs,
        Err(why) => {
            eprintln!("SKIPPED a_full_disk_under_always_stops_writes_and_loses_nothing: cannot mount a tmpfs ({why})");
            return;
        }
    };
    // Space the test gives back once the disk is full: more than the data,
    // so that a checkpoint the server writes then fits too.
    let ballast = tmpfs.path().join("ballast");
    std::fs::write(&ballast, vec![1u8; 16 << 20]).unwrap();
    let data = tmpfs.path().join("data");
    let mut server = TestServer::start_with(&["--dir", data.to_str().unwrap(), "--appendfsync", "always"]);
    let mut c = server.conn();
    let value = "v".repeat(64 << 10);
    let mut pushed = 0;
    let refusal = loop {
        match c.call(&["RPUSH", "list", &value]) {
            Value::Int(n) => pushed = n,
            other => break other,
        }
        assert!(pushed < 1000, "the disk never filled");
    };
    assert_eq!(refusal, log_refusal("No space left on device"));
    assert_eq!(c.call(&["PING"]), Value::Status("PONG".into()));
    assert_eq!(c.call(&["RPUSH", "list", "x"]), refusal, "refused while the disk is full");
    assert_eq!(c.info_field("aof_last_write_status"), "err");
    // The refused push applied in memory, whole; it waits in the log.
    assert_eq!(c.call(&["LLEN", "list"]), Value::Int(pushed + 1));

    std::fs::remove_file(&ballast).unwrap();
    wait_for(&mut c, "aof_last_write_status", "ok");
    assert_eq!(c.call(&["RPUSH", "list", "after"]), Value::Int(pushed + 2));
    server.crash_restart();
    let mut c = server.conn();
    assert_eq!(c.call(&["LLEN", "list"]), Value::Int(pushed + 2), "every push is there, the retried one too");
    assert_eq!(c.call(&["LINDEX", "list", "-1"]), Value::bulk("after"));
    assert_eq!(c.call(&["LINDEX", "list", "-2"]), Value::bulk(&value));
    drop(c);
    server.kill();
    drop(server);
}

fn segment_names(dir: &Path) -> Vec<String> {
    let names = std::fs::read_dir(dir).map(|entries| entries.flatten().collect::<Vec<_>>()).unwrap_or_default();
    let mut names: Vec<String> = names
        .into_iter()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|name| name.ends_with(".log"))
        .collect();
    names.sort();
    names
}

/// A segment the archive could not copy is kept from truncation (SAVE
/// included) and copied once archiving works again; INFO says so.
#[test]
fn a_failing_log_archive_keeps_the_segments_it_has_not_copied() {
    let repo = tempfile::tempdir().unwrap();
    let repo_arg = repo.path().to_str().unwrap();
    let archive_flags = ["--log-archive-repo", repo_arg, "--log-archive-timeout", "1"];
    let server = with_faults("log-archive=return(ENOSPC)", &archive_flags);
    let mut c = server.conn();
    for i in 0..50 {
        c.call(&["SET", &format!("k{i}"), "v"]);
    }
    // Closed after a second, and not archived.
    wait_for(&mut c, "strata_log_archive_status", "err");
    let local = segment_names(&server.data_dir().join("log"));
    assert_eq!(c.call(&["SAVE"]), ok());
    assert_eq!(segment_names(&server.data_dir().join("log"))[0], local[0], "kept for the archive");
    assert!(segment_names(&repo.path().join("log")).is_empty());
    assert!(c.info_field("strata_log_archive_failures").parse::<u64>().unwrap() >= 1);
    // Archiving off: nothing holds them back.
    assert_eq!(c.call(&["CONFIG", "SET", "log-archive-repo", ""]), ok());
    wait_for(&mut c, "strata_log_archive_status", "off");
    assert_eq!(c.call(&["SAVE"]), ok());
    assert!(!segment_names(&server.data_dir().join("log")).contains(&local[0]), "truncated");
    drop((c, server));

    // Two copies fail, the third works: every record is archived.
    let repo = tempfile::tempdir().unwrap();
    let repo_arg = repo.path().to_str().unwrap();
    let server = with_faults("log-archive=2*return(EIO)->off", &["--log-archive-repo", repo_arg]);
    let mut c = server.conn();
    assert_eq!(c.call(&["CONFIG", "SET", "log-archive-timeout", "1"]), ok());
    for i in 0..50 {
        c.call(&["SET", &format!("k{i}"), "v"]);
    }
    let seq = c.info_field("strata_log_seq").parse::<u64>().unwrap();
    common::wait_until(Duration::from_secs(30), "the log to be archived", || {
        c.info_field("strata_log_archived_seq").parse::<u64>().unwrap() >= seq
    });
    assert_eq!(c.info_field("strata_log_archive_status"), "ok");
    assert_eq!(c.info_field("strata_log_archive_failures"), "2");
    assert!(!segment_names(&repo.path().join("log")).is_empty());
}

/// A save while a checkpoint is being written (the first one's first
/// shard is held up here) waits for it and writes its own, holding
/// everything before it: a clean shutdown during a BGSAVE leaves nothing
/// to replay.
#[test]
fn a_save_during_a_checkpoint_writes_its_own() {
    let mut server = with_faults("checkpoint-shard=1*sleep(1500)->off", &[]);
    let mut c = server.conn();
    for i in 0..100 {
        c.call(&["RPUSH", "list", &i.to_string()]);
    }
    assert_eq!(c.call(&["BGSAVE"]), Value::Status("Background saving started".into()));
    wait_for(&mut c, "rdb_bgsave_in_progress", "1");
    for i in 0..100 {
        c.call(&["RPUSH", "tail", &i.to_string()]);
    }
    drop(c);
    server.stop_graceful();
    server.set_env(&[]);
    server.start_again();
    let mut c = server.conn();
    assert_eq!(c.info_field("strata_recovery_records"), "0", "the shutdown's save held everything");
    assert_eq!(c.call(&["LLEN", "tail"]), Value::Int(100));
}
