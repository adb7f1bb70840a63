//! Snapshots read over RESP (SNAPSHOT.CREATE / READ / RELEASE) from the
//! real binary: the files read back in chunks make a data directory that
//! another server starts from with the same data.

mod common;

use std::path::Path;

use common::{Conn, TestServer, Value};

fn bulk(value: &Value) -> Vec<u8> {
    match value {
        Value::Bulk(bytes) => bytes.clone(),
        other => panic!("expected a bulk reply, got {other:?}"),
    }
}

fn error(value: Value) -> String {
    match value {
        Value::Error(text) => text,
        other => panic!("expected an error, got {other:?}"),
    }
}

/// Everything the test writes, read back the same way from any server.
fn contents(conn: &mut Conn) -> Vec<Value> {
    [
        &["GET", "string"][..],
        &["HGETALL", "hash"],
        &["LRANGE", "list", "0", "-1"],
        &["SMEMBERS", "set"],
        &["ZRANGE", "zset", "0", "-1", "WITHSCORES"],
        &["XRANGE", "stream", "-", "+"],
        &["DBSIZE"],
    ]
    .iter()
    .map(|command| conn.call(command))
    .collect()
}

/// Reads every file of snapshot `id` into `to`, `chunk` bytes at a time,
/// checking each chunk's CRC32C.
fn download(conn: &mut Conn, id: &str, manifest: &serde_json::Value, to: &Path, chunk: usize) {
    for file in manifest["files"].as_array().unwrap() {
        let (path, size) = (file["path"].as_str().unwrap(), file["size"].as_u64().unwrap() as usize);
        let mut data = Vec::new();
        while data.len() < size {
            let reply = conn.call(&["SNAPSHOT.READ", id, path, &data.len().to_string(), &chunk.to_string()]);
            let Value::Array(parts) = reply else { panic!("SNAPSHOT.READ answered {reply:?}") };
            let bytes = bulk(&parts[0]);
            assert_eq!(String::from_utf8(bulk(&parts[1])).unwrap(), format!("{:08x}", crc32c::crc32c(&bytes)));
            assert!(!bytes.is_empty() && bytes.len() <= chunk, "{} bytes for {path}", bytes.len());
            data.extend(bytes);
        }
        let target = to.join(path);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::write(target, data).unwrap();
    }
}

#[test]
fn a_snapshot_read_in_chunks_starts_another_server_with_the_same_data() {
    let mut source = TestServer::start();
    let mut conn = source.conn();
    for i in 0..200 {
        let i = i.to_string();
        conn.call(&["HSET", "hash", &format!("f{i}"), &i]);
        conn.call(&["RPUSH", "list", &i]);
        conn.call(&["SADD", "set", &i]);
        conn.call(&["ZADD", "zset", &i, &format!("m{i}")]);
        conn.call(&["XADD", "stream", &format!("{}-1", i.parse::<u64>().unwrap() + 1), "f", &i]);
    }
    assert_eq!(conn.call(&["SAVE"]), Value::Status("OK".into()));
    // Written after the parts: only the log part holds these.
    conn.call(&["SET", "string", "after the save"]);
    conn.call(&["RPUSH", "list", "last"]);
    let expected = contents(&mut conn);

    let Value::Array(created) = conn.call(&["SNAPSHOT.CREATE"]) else { panic!("SNAPSHOT.CREATE failed") };
    let id = String::from_utf8(bulk(&created[0])).unwrap();
    let manifest: serde_json::Value = serde_json::from_slice(&bulk(&created[1])).unwrap();
    assert_eq!(manifest["level"], "strict");
    for part in ["rocksdb", "memory"] {
        let keys = &manifest["parts"][part]["keys"];
        assert_eq!((&keys["databases"], &keys["slots"]), (&serde_json::json!("all"), &serde_json::json!([[0, 16383]])));
    }
    // Written after the snapshot: not in it.
    conn.call(&["SET", "string", "after the snapshot"]);

    let restored = tempfile::tempdir().unwrap();
    download(&mut conn, &id, &manifest, restored.path(), 4096);
    assert_eq!(conn.call(&["SNAPSHOT.RELEASE", &id]), Value::Int(1));
    assert_eq!(conn.call(&["SNAPSHOT.RELEASE", &id]), Value::Int(0));

    let copy = TestServer::start_with(&["--dir", restored.path().to_str().unwrap()]);
    let mut copy_conn = copy.conn();
    assert_eq!(contents(&mut copy_conn), expected);
    let info = match copy_conn.call(&["INFO", "persistence"]) {
        Value::Bulk(text) => String::from_utf8(text).unwrap(),
        other => panic!("INFO answered {other:?}"),
    };
    assert!(info.contains(&format!("strata_log_seq:{}\r\n", manifest["seq"])), "{info}");

    // A snapshot not released is gone after a restart.
    let Value::Array(created) = conn.call(&["SNAPSHOT.CREATE"]) else { panic!("SNAPSHOT.CREATE failed") };
    let id = String::from_utf8(bulk(&created[0])).unwrap();
    drop(conn);
    source.restart();
    let mut conn = source.conn();
    assert_eq!(error(conn.call(&["SNAPSHOT.READ", &id, "manifest.json", "0", "10"])), "ERR no such snapshot");
}

#[test]
fn snapshot_reads_stay_inside_the_snapshot() {
    let server = TestServer::start();
    let mut conn = server.conn();
    let Value::Array(created) = conn.call(&["SNAPSHOT.CREATE"]) else { panic!("SNAPSHOT.CREATE failed") };
    let id = String::from_utf8(bulk(&created[0])).unwrap();
    let no_file = "ERR no such file in the snapshot";
    for path in ["../../log", "/etc/passwd", "rocksdb/../../rocksdb/CURRENT", "missing", "", "rocksdb"] {
        assert_eq!(error(conn.call(&["SNAPSHOT.READ", &id, path, "0", "10"])), no_file, "{path}");
    }
    for bad_id in ["..", "../snapshots", "", "nope"] {
        assert_eq!(error(conn.call(&["SNAPSHOT.READ", bad_id, "manifest.json", "0", "10"])), "ERR no such snapshot");
    }
    assert!(error(conn.call(&["SNAPSHOT.READ", &id, "manifest.json", "-1", "10"])).contains("negative"));
    assert_eq!(
        error(conn.call(&["SNAPSHOT.READ", &id, "manifest.json", "x", "10"])),
        "ERR value is not an integer or out of range"
    );
    // Past the end: nothing, and a huge count is capped.
    let Value::Array(parts) = conn.call(&["SNAPSHOT.READ", &id, "manifest.json", "1000000", "10"]) else { panic!() };
    assert_eq!(bulk(&parts[0]), b"");
    let Value::Array(parts) = conn.call(&["SNAPSHOT.READ", &id, "manifest.json", "0", "9223372036854775807"]) else {
        panic!()
    };
    assert!(!bulk(&parts[0]).is_empty());
    assert!(matches!(conn.call(&["SNAPSHOT.READ", &id]), Value::Error(e) if e.contains("wrong number of arguments")));
    for bad in
        [&["LEVEL"][..], &["LEVEL", "sometimes"], &["SINCE"], &["LEVEL", "strict", "LEVEL", "strict"], &["NOW", "1"]]
    {
        let args: Vec<&str> = std::iter::once("SNAPSHOT.CREATE").chain(bad.iter().copied()).collect();
        assert_eq!(error(conn.call(&args)), "ERR syntax error", "{bad:?}");
    }
    assert!(
        error(conn.call(&["SNAPSHOT.CREATE", "LEVEL", "eventual", "SINCE", "1"])).contains("an increment is strict")
    );
    assert!(error(conn.call(&["SNAPSHOT.CREATE", "SINCE", "-1"])).contains("negative"));
    // Listed by COMMAND as an admin command.
    let Value::Array(info) = conn.call(&["COMMAND", "INFO", "snapshot.read"]) else { panic!() };
    assert!(format!("{info:?}").contains("@dangerous"), "{info:?}");
}
