//! Data written to strings and hashes survives restarts, graceful and not.

mod common;

use common::{TestServer, Value};

#[test]
fn strings_survive_a_graceful_restart() {
    let mut server = TestServer::start();
    let mut conn = server.conn();
    for i in 0..500 {
        assert_eq!(conn.call(&["SET", &format!("key:{i}"), &format!("value:{i}")]), Value::Status("OK".into()));
    }
    conn.call_bytes(&[b"SET", b"bin\x00key", b"\xff\x00\r\n"]);
    drop(conn);
    server.restart();
    let mut conn = server.conn();
    for i in 0..500 {
        assert_eq!(conn.call(&["GET", &format!("key:{i}")]), Value::bulk(&format!("value:{i}")));
    }
    assert_eq!(conn.call_bytes(&[b"GET", b"bin\x00key"]), Value::Bulk(b"\xff\x00\r\n".to_vec()));
    assert_eq!(conn.call(&["DBSIZE"]), Value::Int(501));
}

#[test]
fn acknowledged_writes_survive_kill_9() {
    let mut server = TestServer::start();
    let mut conn = server.conn();
    for i in 0..200 {
        conn.call(&["SET", &format!("k{i}"), &i.to_string()]);
        conn.call(&["HSET", "h", &format!("f{i}"), &i.to_string()]);
    }
    drop(conn);
    server.crash_restart();
    let mut conn = server.conn();
    for i in 0..200 {
        assert_eq!(conn.call(&["GET", &format!("k{i}")]), Value::bulk(&i.to_string()));
    }
    assert_eq!(conn.call(&["HLEN", "h"]), Value::Int(200));
    assert_eq!(conn.call(&["DBSIZE"]), Value::Int(201));
}

#[test]
fn ttls_survive_a_restart() {
    let mut server = TestServer::start();
    let mut conn = server.conn();
    conn.call(&["SET", "short", "v", "PX", "300"]);
    conn.call(&["SET", "long", "v", "EX", "1000"]);
    drop(conn);
    server.restart();
    std::thread::sleep(std::time::Duration::from_millis(400));
    let mut conn = server.conn();
    assert_eq!(conn.call(&["GET", "short"]), Value::Nil);
    match conn.call(&["TTL", "long"]) {
        Value::Int(ttl) => assert!((990..=1000).contains(&ttl), "ttl {ttl}"),
        other => panic!("{other:?}"),
    }
}
