//! `strata-backup` against the real server: backups made while it serves,
//! listed, verified (damage found), restored into a data directory another
//! server starts from with the same data, pruned.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use common::{Conn, TestServer, Value};
use serde_json::json;

fn backup(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_strata-backup")).args(args).output().expect("run strata-backup")
}

fn ok(output: Output) -> String {
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

fn exit_code(output: &Output) -> i32 {
    output.status.code().unwrap()
}

fn contents(conn: &mut Conn) -> Vec<Value> {
    [&["GET", "s"][..], &["HGETALL", "h"], &["LRANGE", "l", "0", "-1"], &["ZRANGE", "z", "0", "-1"], &["DBSIZE"]]
        .iter()
        .map(|command| conn.call(command))
        .collect()
}

/// `strata-backup create` of `server` into `repo`, with `extra` flags; its
/// output.
fn create_backup(repo: &str, server: &TestServer, extra: &[&str]) -> String {
    let port = server.port.to_string();
    let mut args = vec!["create", "--repo", repo, "-p", &port];
    args.extend_from_slice(extra);
    ok(backup(&args))
}

fn list(repo: &Path) -> Vec<serde_json::Value> {
    serde_json::from_str(&ok(backup(&["list", "--repo", repo.to_str().unwrap(), "--json"]))).unwrap()
}

#[test]
fn backups_are_made_listed_verified_restored_and_pruned() {
    let server = TestServer::start_with(&["--requirepass", "s3cret"]);
    let mut conn = server.conn();
    assert_eq!(conn.call(&["AUTH", "s3cret"]), Value::Status("OK".into()));
    for i in 0..300 {
        let i = i.to_string();
        conn.call(&["HSET", "h", &i, &"v".repeat(100)]);
        conn.call(&["RPUSH", "l", &i]);
        conn.call(&["ZADD", "z", &i, &i]);
    }
    conn.call(&["SET", "s", "first"]);
    let repo = tempfile::tempdir().unwrap();
    let repo_arg = repo.path().join("repo");
    let repo_arg = repo_arg.to_str().unwrap();
    let port = server.port.to_string();
    let create = || backup(&["create", "--repo", repo_arg, "-p", &port, "-a", "s3cret"]);
    let first = ok(create());
    assert!(first.contains("full backup"), "{first}");
    let expected_first = contents(&mut conn);
    conn.call(&["SET", "s", "second"]);
    conn.call(&["RPUSH", "l", "more"]);
    ok(create());
    let expected_second = contents(&mut conn);

    let backups = list(repo.path().join("repo").as_path());
    assert_eq!(backups.len(), 2);
    assert!(backups[0]["seq"].as_u64() < backups[1]["seq"].as_u64());
    let first_id = backups[0]["id"].as_str().unwrap().to_string();
    assert!(ok(backup(&["verify", "--repo", repo_arg])).contains(&format!("{first_id}: ok")));

    // The newest by default, or the one named.
    for (id, expected) in [(None, &expected_second), (Some(first_id.as_str()), &expected_first)] {
        let target = tempfile::tempdir().unwrap();
        let data = target.path().join("data");
        let mut args = vec!["restore", "--repo", repo_arg, "--to", data.to_str().unwrap()];
        args.extend(id.iter().flat_map(|id| ["--id", id]));
        ok(backup(&args));
        let copy = TestServer::start_with(&["--dir", data.to_str().unwrap()]);
        assert_eq!(&contents(&mut copy.conn()), expected);
    }

    // A restore never writes into a directory that holds something.
    let occupied = tempfile::tempdir().unwrap();
    std::fs::write(occupied.path().join("keep"), "mine").unwrap();
    let refused = backup(&["restore", "--repo", repo_arg, "--to", occupied.path().to_str().unwrap()]);
    assert_eq!(exit_code(&refused), 1);
    assert!(String::from_utf8_lossy(&refused.stderr).contains("not empty"));
    assert_eq!(std::fs::read_dir(occupied.path()).unwrap().count(), 1);

    // A damaged chunk is found by verify and stops a restore, which leaves
    // nothing behind.
    let chunks = repo.path().join("repo/backups").join(&first_id).join("chunks");
    let chunk = std::fs::read_dir(&chunks).unwrap().next().unwrap().unwrap().path();
    let mut bytes = std::fs::read(&chunk).unwrap();
    bytes[0] ^= 1;
    std::fs::write(&chunk, bytes).unwrap();
    let damaged = backup(&["verify", "--repo", repo_arg, "--id", &first_id]);
    assert_eq!(exit_code(&damaged), 1);
    assert!(String::from_utf8_lossy(&damaged.stderr).contains("damaged"));
    let target = tempfile::tempdir().unwrap();
    let data = target.path().join("data");
    let refused = backup(&["restore", "--repo", repo_arg, "--to", data.to_str().unwrap(), "--id", &first_id]);
    assert_eq!(exit_code(&refused), 1);
    assert!(!data.exists() && std::fs::read_dir(target.path()).unwrap().count() == 0);

    // An unfinished backup (no manifest) is not listed.
    std::fs::create_dir_all(repo.path().join("repo/backups/cut-short/chunks")).unwrap();
    assert_eq!(list(repo.path().join("repo").as_path()).len(), 2);
    ok(backup(&["prune", "--repo", repo_arg, "--keep-full", "1"]));
    let left = list(repo.path().join("repo").as_path());
    assert_eq!(left.len(), 1);
    assert_ne!(left[0]["id"].as_str().unwrap(), first_id);

    // Usage and connection errors.
    assert_eq!(exit_code(&backup(&["create"])), 2);
    assert_eq!(exit_code(&backup(&["create", "--repo", repo_arg, "-p", "1"])), 2);
    let no_auth = backup(&["create", "--repo", repo_arg, "-p", &port]);
    assert_eq!(exit_code(&no_auth), 2);
    assert!(String::from_utf8_lossy(&no_auth.stderr).contains("NOAUTH"));
}

/// kill -9 of strata-backup, or of the server, in the middle of backups:
/// the repository keeps only whole backups, each verifies, the server
/// comes back without the snapshots it was serving, and a backup made
/// afterwards restores to the data as it is.
#[test]
fn backups_cut_short_by_kill_9_leave_the_repository_valid() {
    let mut server = TestServer::start();
    let mut conn = server.conn();
    let value = "v".repeat(1000);
    for i in 0..3000 {
        conn.call(&["HSET", "h", &i.to_string(), &value]);
        conn.call(&["RPUSH", "l", &value]);
    }
    let repo = tempfile::tempdir().unwrap();
    let repo_arg = repo.path().to_str().unwrap().to_string();
    let spawn = |port: u16| {
        Command::new(env!("CARGO_BIN_EXE_strata-backup"))
            .args(["create", "--repo", &repo_arg, "-p", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    ok(backup(&["create", "--repo", &repo_arg, "-p", &server.port.to_string()]));
    let backups_dir = repo.path().join("backups");
    let unfinished = || {
        let dirs = std::fs::read_dir(&backups_dir).unwrap().map(|e| e.unwrap().path());
        dirs.filter(|dir| !dir.join("manifest.json").exists()).count()
    };
    for cycle in 0..8u64 {
        conn.call(&["SET", "s", &cycle.to_string()]);
        let before = unfinished();
        let mut child = spawn(server.port);
        if cycle % 2 == 0 {
            // The backup is killed part way through its chunks: once its
            // directory is there, a few milliseconds on.
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while unfinished() == before && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(1));
            }
            std::thread::sleep(Duration::from_millis(cycle));
            // (Gone already if it finished meanwhile.)
            let _ = child.kill();
            child.wait().unwrap();
        } else {
            // The server dies, at some point of the backup's snapshot or
            // chunks.
            std::thread::sleep(Duration::from_millis(5 + cycle * 7));
            server.kill();
            child.wait().unwrap();
            server.start_again();
            conn = server.conn();
            let leftover = server.data_dir().join("snapshots");
            assert!(!leftover.exists(), "the snapshots of the last run are removed at start");
        }
        ok(backup(&["verify", "--repo", &repo_arg]));
    }
    let backups = std::fs::read_dir(repo.path().join("backups")).unwrap().map(|e| e.unwrap().path());
    let cut_short = backups.filter(|dir| !dir.join("manifest.json").exists()).count();
    assert!(cut_short > 0, "no kill landed during a backup");
    ok(backup(&["create", "--repo", &repo_arg, "-p", &server.port.to_string()]));
    let expected = contents(&mut conn);
    let target = tempfile::tempdir().unwrap();
    let data = target.path().join("data");
    ok(backup(&["restore", "--repo", &repo_arg, "--to", data.to_str().unwrap()]));
    let copy = TestServer::start_with(&["--dir", data.to_str().unwrap()]);
    assert_eq!(contents(&mut copy.conn()), expected);
}

/// The first sequence the server's log still holds.
fn oldest_log_record(server: &TestServer) -> u64 {
    std::fs::read_dir(server.data_dir().join("log"))
        .unwrap()
        .filter_map(|e| e.unwrap().file_name().to_str()?.strip_suffix(".log")?.parse().ok())
        .min()
        .unwrap()
}

/// Increments hold only the log since the newest backup, restore through
/// their chain to their own point, need every link of it, and become full
/// backups when the server's log no longer holds what they would continue.
#[test]
fn incremental_backups_hold_the_changes_and_restore_through_their_chain() {
    let server = TestServer::start();
    let mut conn = server.conn();
    for i in 0..2000 {
        conn.call(&["HSET", "h", &i.to_string(), &"v".repeat(200)]);
        conn.call(&["RPUSH", "l", &i.to_string()]);
    }
    conn.call(&["SET", "s", "full"]);
    // RocksDB's data in table files, which the full backup stores.
    assert_eq!(conn.call(&["SAVE"]), Value::Status("OK".into()));
    let repo = tempfile::tempdir().unwrap();
    let repo_arg = repo.path().to_str().unwrap().to_string();
    let create = |extra: &[&str]| create_backup(&repo_arg, &server, extra);
    create(&[]);
    // About 1 % of the data changes between backups.
    let mut expected = Vec::new();
    let mut inside = None;
    for round in 0..2 {
        for i in 0..20 {
            conn.call(&["HSET", "h", &i.to_string(), &format!("round {round}")]);
        }
        // A point inside the last increment's log, to restore to.
        inside = Some((conn.info_field("strata_log_seq"), contents(&mut conn)));
        conn.call(&["SET", "s", &format!("increment {round}")]);
        assert!(create(&["--incremental"]).contains("incremental (log) backup"));
        expected.push(contents(&mut conn));
    }
    let backups = list(repo.path());
    assert_eq!(
        backups.iter().map(|b| b["kind"].as_str().unwrap()).collect::<Vec<_>>(),
        ["full", "incremental", "incremental"]
    );
    assert_eq!(backups[1]["base"], backups[0]["id"]);
    assert_eq!(backups[2]["base"], backups[1]["id"]);
    let (full, increment) = (backups[0]["bytes"].as_u64().unwrap(), backups[1]["bytes"].as_u64().unwrap());
    assert!(increment * 20 < full, "an increment of {increment} bytes against a full backup of {full}");

    for (backup_id, expected) in [(&backups[1]["id"], &expected[0]), (&backups[2]["id"], &expected[1])] {
        let target = tempfile::tempdir().unwrap();
        let data = target.path().join("data");
        ok(backup(&[
            "restore",
            "--repo",
            &repo_arg,
            "--to",
            data.to_str().unwrap(),
            "--id",
            backup_id.as_str().unwrap(),
        ]));
        let copy = TestServer::start_with(&["--dir", data.to_str().unwrap()]);
        assert_eq!(&contents(&mut copy.conn()), expected);
    }

    // --at-seq: the chain up to the backup holding that point, its log
    // ended there.
    let (seq, expected_inside) = inside.unwrap();
    let target = tempfile::tempdir().unwrap();
    let data = target.path().join("data");
    let said = ok(backup(&["restore", "--repo", &repo_arg, "--to", data.to_str().unwrap(), "--at-seq", &seq]));
    assert!(said.contains(&format!("at sequence {seq}")), "{said}");
    let copy = TestServer::start_with(&["--dir", data.to_str().unwrap()]);
    assert_eq!(contents(&mut copy.conn()), expected_inside);
    assert_eq!(copy.conn().info_field("strata_log_seq"), seq);
    let nowhere = target.path().join("nowhere");
    let past = (backups[2]["seq"].as_u64().unwrap() + 1).to_string();
    let refused = backup(&["restore", "--repo", &repo_arg, "--to", nowhere.to_str().unwrap(), "--at-seq", &past]);
    assert_eq!(exit_code(&refused), 1, "{}", String::from_utf8_lossy(&refused.stderr));
    assert!(!nowhere.exists());
    let both = ["restore", "--repo", &repo_arg, "--to", nowhere.to_str().unwrap(), "--at-seq", "1", "--id", "x"];
    assert_eq!(exit_code(&backup(&both)), 2);

    // Once the server has truncated what the newest backup would continue
    // from, the next one holds the engines' parts, without the table files
    // the chain stores already, and restores to the server's data.
    let newest = backups[2]["seq"].as_u64().unwrap();
    // Two: the log is kept for the older of the two checkpoints kept.
    for round in 0..2 {
        conn.call(&["SET", "s", &format!("after {round}")]);
        assert_eq!(conn.call(&["SAVE"]), Value::Status("OK".into()));
    }
    common::wait_until(Duration::from_secs(20), "the log to be truncated", || oldest_log_record(&server) > newest + 1);
    let said = create(&["--incremental"]);
    assert!(said.contains("its parts instead") && said.contains("incremental (parts) backup"), "{said}");
    let parts = list(repo.path()).last().unwrap().clone();
    assert_eq!((&parts["kind"], &parts["base"]), (&json!("incremental"), &backups[2]["id"]));
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(repo.path().join("backups").join(parts["id"].as_str().unwrap()).join("manifest.json")).unwrap(),
    )
    .unwrap();
    let reused = manifest["files"].as_array().unwrap().iter().filter(|f| f["in"] == backups[0]["id"]).count();
    assert!(reused > 0, "table files of the full backup are named, not stored again: {manifest}");
    let (copy, _dir, _) = restored(&repo_arg, &[]);
    assert_eq!(contents(&mut copy.conn()), contents(&mut conn));
    drop(copy);

    // An increment whose base is gone cannot be verified or restored.
    std::fs::remove_dir_all(repo.path().join("backups").join(backups[1]["id"].as_str().unwrap())).unwrap();
    ok(backup(&["verify", "--repo", &repo_arg, "--id", backups[0]["id"].as_str().unwrap()]));
    let broken = backup(&["verify", "--repo", &repo_arg, "--id", backups[2]["id"].as_str().unwrap()]);
    assert_eq!(exit_code(&broken), 1);
    assert!(String::from_utf8_lossy(&broken.stderr).contains("missing from the chain"));
    // Pruning to one full backup removes the broken chain.
    ok(backup(&["prune", "--repo", &repo_arg, "--keep-full", "1"]));
    assert_eq!(list(repo.path()).len(), 1);
}

/// `--level`: a bounded and an eventual backup of a quiet server each
/// restore to its data; the eventual one is listed as such, restored with
/// its parts stamped at its sequence, and an `--incremental` after it is a
/// full backup (an eventual backup has no one point to continue from).
#[test]
fn backups_at_each_level_restore_and_an_eventual_one_is_not_continued() {
    let server = TestServer::start();
    let mut conn = server.conn();
    for i in 0..500 {
        conn.call(&["HSET", "h", &i.to_string(), "v"]);
        conn.call(&["RPUSH", "l", &i.to_string()]);
        conn.call(&["ZADD", "z", &i.to_string(), &i.to_string()]);
    }
    conn.call(&["SET", "s", "levels"]);
    let expected = contents(&mut conn);
    let repo = tempfile::tempdir().unwrap();
    let repo_arg = repo.path().to_str().unwrap().to_string();
    let create = |extra: &[&str]| create_backup(&repo_arg, &server, extra);
    for level in ["bounded", "eventual"] {
        create(&["--level", level]);
        let newest = list(repo.path()).pop().unwrap();
        assert_eq!(newest["level"], level);
        let target = tempfile::tempdir().unwrap();
        let data = target.path().join("data");
        ok(backup(&["restore", "--repo", &repo_arg, "--to", data.to_str().unwrap()]));
        let copy = TestServer::start_with(&["--dir", data.to_str().unwrap()]);
        assert_eq!(contents(&mut copy.conn()), expected, "{level}");
    }
    assert!(create(&["--incremental"]).contains("is eventual"));
    assert_eq!(list(repo.path()).last().unwrap()["kind"], "full");
    let bad = backup(&["create", "--repo", &repo_arg, "-p", &server.port.to_string(), "--level", "sometimes"]);
    assert_eq!(exit_code(&bad), 2);
}

/// Unix milliseconds now.
fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
}

fn rfc3339(ms: u64) -> String {
    let time = time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000).unwrap();
    time.format(&time::format_description::well_known::Rfc3339).unwrap()
}

/// Restores `repo` with `args` into a new directory and starts a server
/// there.
fn restored(repo: &str, args: &[&str]) -> (TestServer, tempfile::TempDir, String) {
    let target = tempfile::tempdir().unwrap();
    let data = target.path().join("data");
    let mut all = vec!["restore", "--repo", repo, "--to", data.to_str().unwrap()];
    all.extend_from_slice(args);
    let said = ok(backup(&all));
    (TestServer::start_with(&["--dir", data.to_str().unwrap()]), target, said)
}

/// A restore that is refused (exit 1) with a message containing `why`.
fn refused(repo: &str, args: &[&str], why: &str) {
    let target = tempfile::tempdir().unwrap();
    let data = target.path().join("data");
    let mut all = vec!["restore", "--repo", repo, "--to", data.to_str().unwrap()];
    all.extend_from_slice(args);
    let output = backup(&all);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(exit_code(&output), 1, "{args:?}: {stderr}");
    assert!(stderr.contains(why), "{args:?}: {stderr}");
    assert!(!data.exists());
}

/// With `log-archive-repo`, closed log segments go into the repository
/// (through a kill -9 too): a restore to a time or a sequence past the
/// backups rolls the newest backup before it forward with them, to
/// exactly the commands committed by then, both engines at one point.
#[test]
fn point_in_time_restore_rolls_a_backup_forward_with_the_archived_log() {
    let repo = tempfile::tempdir().unwrap();
    let repo_arg = repo.path().to_str().unwrap().to_string();
    let mut server = TestServer::start_with(&["--log-archive-repo", &repo_arg, "--log-archive-timeout", "1"]);
    let mut conn = server.conn();
    assert_eq!(conn.info_field("strata_log_archive_status"), "ok");
    conn.call(&["SET", "base", "1"]);
    create_backup(&repo_arg, &server, &[]);
    // Steps of one transaction across both engines, each with the time it
    // was sent and the time it was acknowledged; a kill -9 half way.
    let mut steps: Vec<(u64, u64)> = Vec::new();
    for i in 0..400 {
        if i == 200 {
            drop(conn);
            server.kill();
            server.start_again();
            conn = server.conn();
        }
        let sent = now_ms();
        conn.call(&["MULTI"]);
        conn.call(&["SET", &format!("k{i}"), &i.to_string()]);
        conn.call(&["RPUSH", "l", &i.to_string()]);
        assert!(matches!(conn.call(&["EXEC"]), Value::Array(_)));
        steps.push((sent, now_ms()));
        std::thread::sleep(Duration::from_millis(5));
    }
    let last = conn.info_field("strata_log_seq").parse::<u64>().unwrap();
    let mut archived = || conn.info_field("strata_log_archived_seq").parse::<u64>().unwrap();
    common::wait_until(Duration::from_secs(30), "the log to be archived", || archived() >= last);
    let expected_end = contents_of_steps(&mut conn);

    // A time in the middle: every step acknowledged by then is there,
    // none sent after it, and each engine holds the same steps.
    let time = steps[300].1;
    let (copy, _dir, said) = restored(&repo_arg, &["--at-time", &rfc3339(time)]);
    assert!(said.contains("rolled forward"), "{said}");
    let mut c = copy.conn();
    let held = c.call(&["LLEN", "l"]);
    let Value::Int(held) = held else { panic!("{held:?}") };
    let acknowledged = steps.iter().filter(|(_, acked)| *acked <= time).count() as i64;
    let sent = steps.iter().filter(|(sent, _)| *sent <= time).count() as i64;
    assert!((acknowledged..=sent).contains(&held), "{held} steps held, {acknowledged} acknowledged, {sent} sent");
    assert_eq!(c.call(&["EXISTS", &format!("k{}", held - 1)]), Value::Int(1));
    assert_eq!(c.call(&["EXISTS", &format!("k{held}")]), Value::Int(0));
    assert_eq!(c.call(&["GET", "base"]), Value::bulk("1"));
    drop((c, copy));

    // A sequence past every backup: the archive's end.
    let (copy, _dir, _) = restored(&repo_arg, &["--at-seq", &last.to_string()]);
    assert_eq!(contents_of_steps(&mut copy.conn()), expected_end);
    assert_eq!(copy.conn().info_field("strata_log_seq"), last.to_string());
    drop(copy);

    // Outside the archive: refused, saying why.
    let first_step = rfc3339(steps[0].0 - 60_000);
    refused(&repo_arg, &["--at-time", &first_step], "after that time");
    refused(&repo_arg, &["--at-time", &rfc3339(now_ms() + 3_600_000)], "not archived yet");
    refused(&repo_arg, &["--at-seq", &(last + 1000).to_string()], "does not hold");
    let usage = backup(&["restore", "--repo", &repo_arg, "--to", "/nonexistent", "--at-time", "yesterday"]);
    assert_eq!(exit_code(&usage), 2);
    let text = ok(backup(&["list", "--repo", &repo_arg]));
    assert!(text.contains("archived log  seq"), "{text}");
    let text = ok(backup(&["verify", "--repo", &repo_arg]));
    assert!(text.contains("archived log: ok"), "{text}");

    // A repository without an archive: a time cannot be found, and a
    // sequence past its backups cannot be reached.
    let plain = tempfile::tempdir().unwrap();
    let plain_arg = plain.path().to_str().unwrap();
    create_backup(plain_arg, &server, &[]);
    refused(plain_arg, &["--at-time", &rfc3339(time)], "needs log archiving");
    refused(plain_arg, &["--at-seq", &(last + 1000).to_string()], "no backup");

    // Pruning to a newer full backup drops the archive before it.
    let before = list_segments_in(&repo.path().join("log"));
    create_backup(&repo_arg, &server, &[]);
    ok(backup(&["prune", "--repo", &repo_arg, "--keep-full", "1"]));
    let after = list_segments_in(&repo.path().join("log"));
    assert!(after.len() < before.len() && !after.is_empty(), "{before:?} -> {after:?}");
}

fn contents_of_steps(conn: &mut Conn) -> Vec<Value> {
    vec![conn.call(&["LRANGE", "l", "0", "-1"]), conn.call(&["DBSIZE"]), conn.call(&["GET", "base"])]
}

fn list_segments_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.unwrap().file_name().into_string().ok())
        .filter(|name| name.ends_with(".log"))
        .collect();
    names.sort();
    names
}

/// `prune --keep-full N --keep-incremental M`: the newest N full backups
/// stay, and the increments of the newest M of them.
#[test]
fn prune_keeps_the_increments_of_the_newest_full_backups() {
    let server = TestServer::start();
    let mut conn = server.conn();
    let repo = tempfile::tempdir().unwrap();
    let repo_arg = repo.path().to_str().unwrap();
    for round in 0..3 {
        conn.call(&["SET", "s", &format!("full {round}")]);
        create_backup(repo_arg, &server, &[]);
        conn.call(&["SET", "s", &format!("increment {round}")]);
        create_backup(repo_arg, &server, &["--incremental"]);
    }
    let before = list(repo.path());
    let kinds = |backups: &[serde_json::Value]| -> Vec<String> {
        backups.iter().map(|b| b["kind"].as_str().unwrap().to_string()).collect()
    };
    assert_eq!(kinds(&before), ["full", "incremental", "full", "incremental", "full", "incremental"]);
    ok(backup(&["prune", "--repo", repo_arg, "--keep-full", "2", "--keep-incremental", "1"]));
    let after = list(repo.path());
    let ids: Vec<&serde_json::Value> = after.iter().map(|b| &b["id"]).collect();
    assert_eq!(ids, [&before[2]["id"], &before[4]["id"], &before[5]["id"]]);
    // What is left restores: the older full backup alone, the newest chain.
    let (copy, _dir, _) = restored(repo_arg, &["--id", before[2]["id"].as_str().unwrap()]);
    assert_eq!(copy.conn().call(&["GET", "s"]), Value::bulk("full 1"));
    let (copy, _dir, _) = restored(repo_arg, &[]);
    assert_eq!(copy.conn().call(&["GET", "s"]), Value::bulk("increment 2"));
}
