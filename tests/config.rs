//! Starting from a Redis-style config file, with flags overriding it.

mod common;

use common::{Conn, TestServer, Value};

#[test]
fn config_file_then_flags() {
    let conf_dir = tempfile::tempdir().unwrap();
    let conf = conf_dir.path().join("strata.conf");
    std::fs::write(
        &conf,
        "# a comment\nrequirepass \"from file\"\ndatabases 4\nmaxmemory 2mb\nhz 20\nsave 900 1 300 10\n",
    )
    .unwrap();
    let server = TestServer::start_with_config(&conf, &["--databases", "8"]);
    let mut conn = server.conn();
    assert!(matches!(conn.call(&["GET", "k"]), Value::Error(e) if e.starts_with("NOAUTH")));
    assert_eq!(conn.call(&["AUTH", "from file"]), Value::Status("OK".into()));
    assert_eq!(conn.call(&["SELECT", "7"]), Value::Status("OK".into()));
    assert_eq!(conn.call(&["SELECT", "8"]), Value::Error("ERR DB index is out of range".into()));
    let get = |conn: &mut Conn, name: &str| match conn.call(&["CONFIG", "GET", name]) {
        Value::Array(items) => items[1].clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(get(&mut conn, "maxmemory"), Value::bulk("2097152"));
    assert_eq!(get(&mut conn, "hz"), Value::bulk("20"));
    assert_eq!(get(&mut conn, "save"), Value::bulk("900 1 300 10"));
    assert_eq!(get(&mut conn, "databases"), Value::bulk("8"));
}

/// `save <seconds> <changes>`: the cron saves once a rule is met, as
/// Redis's serverCron does, and not while none is.
#[test]
fn save_rules_start_a_background_save() {
    let server = TestServer::start_with(&["--save", ""]);
    let mut conn = server.conn();
    let saves = |conn: &mut Conn| conn.info_field("rdb_saves").parse::<u64>().unwrap();
    let before = saves(&mut conn);
    for i in 0..3 {
        conn.call(&["SET", &format!("k{i}"), "v"]);
        conn.call(&["RPUSH", "l", "v"]);
    }
    assert_eq!(conn.info_field("rdb_changes_since_last_save"), "6");
    // No rule: the cron (every 100 ms) leaves the changes unsaved.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert_eq!(saves(&mut conn), before);
    // Seven changes a second ago: not yet.
    assert_eq!(conn.call(&["CONFIG", "SET", "save", "1 7"]), Value::Status("OK".into()));
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert_eq!(saves(&mut conn), before);
    // Six: saved, once.
    assert_eq!(conn.call(&["CONFIG", "SET", "save", "3600 1000 1 6"]), Value::Status("OK".into()));
    common::wait_until(std::time::Duration::from_secs(30), "a save", || saves(&mut conn) > before);
    assert_eq!(conn.info_field("rdb_changes_since_last_save"), "0");
    assert_eq!(conn.info_field("rdb_last_bgsave_status"), "ok");
    let saved = saves(&mut conn);
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert_eq!(saves(&mut conn), saved, "nothing changed since");
}

#[test]
fn bad_config_refuses_to_start() {
    let conf_dir = tempfile::tempdir().unwrap();
    let conf = conf_dir.path().join("bad.conf");
    std::fs::write(&conf, "port 6379\nno-such-directive yes\n").unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_strata-server")).arg(&conf).output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("FATAL CONFIG FILE ERROR") && stderr.contains("line 2"), "{stderr}");
}
