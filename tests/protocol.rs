//! The wire protocol against the real binary: pipelining, inline commands,
//! malformed input (Redis's error, then a clean close), limits, and other
//! clients carrying on unaffected.

mod common;

use std::time::Duration;

use common::{Conn, TestServer, Value};

fn read_all(conn: &mut Conn) -> Vec<Value> {
    let mut replies = Vec::new();
    while let Some(v) = conn.read() {
        replies.push(v);
    }
    replies
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let server = TestServer::start();
    let mut conn = server.conn();
    let mut batch = Vec::new();
    for i in 0..100 {
        batch.extend(common::encode(&[b"SET", format!("k{i}").as_bytes(), format!("{i}").as_bytes()]));
        batch.extend(common::encode(&[b"GET", format!("k{i}").as_bytes()]));
    }
    batch.extend(b"PING\r\n");
    conn.send_raw(&batch);
    for i in 0..100 {
        assert_eq!(conn.read().unwrap(), Value::Status("OK".into()));
        assert_eq!(conn.read().unwrap(), Value::bulk(&i.to_string()));
    }
    assert_eq!(conn.read().unwrap(), Value::Status("PONG".into()));
}

#[test]
fn inline_commands_with_quotes() {
    let server = TestServer::start();
    let mut conn = server.conn();
    conn.send_raw(b"SET \"a key\" 'it''s'\r\n");
    assert_eq!(conn.read().unwrap(), Value::Error("ERR Protocol error: unbalanced quotes in request".into()));
    let mut conn = server.conn();
    conn.send_raw(b"SET \"a key\" \"x\\x41y\"\r\nGET \"a key\"\n\r\n   \r\nPING\r\n");
    assert_eq!(conn.read().unwrap(), Value::Status("OK".into()));
    assert_eq!(conn.read().unwrap(), Value::bulk("xAy"));
    assert_eq!(conn.read().unwrap(), Value::Status("PONG".into()));
}

#[test]
fn malformed_requests_get_redis_errors_and_a_close() {
    let server = TestServer::start();
    let cases: &[(&[u8], &str)] = &[
        (b"*1\r\n+PING\r\n", "ERR Protocol error: expected '$', got '+'"),
        (b"*abc\r\n", "ERR Protocol error: invalid multibulk length"),
        (b"*1\r\n$-5\r\n", "ERR Protocol error: invalid bulk length"),
        (b"*1\r\n$999999999999\r\n", "ERR Protocol error: invalid bulk length"),
        (b"*99999999999\r\n", "ERR Protocol error: invalid multibulk length"),
    ];
    let mut bystander = server.conn();
    for (input, error) in cases {
        let mut conn = server.conn();
        conn.send_raw(b"PING\r\n");
        conn.send_raw(input);
        assert_eq!(read_all(&mut conn), vec![Value::Status("PONG".into()), Value::Error(error.to_string())]);
        assert_eq!(bystander.call(&["PING"]), Value::Status("PONG".into()));
    }
}

#[test]
fn huge_counts_do_not_allocate_up_front() {
    let server = TestServer::start();
    let mut conn = server.conn();
    // 2^31-1 arguments announced, none sent: the server must wait, not
    // allocate, and serve others meanwhile.
    conn.send_raw(b"*2147483647\r\n$3\r\nSET\r\n");
    let mut other = server.conn();
    assert_eq!(other.call(&["PING"]), Value::Status("PONG".into()));
}

#[test]
fn oversized_inline_request_is_rejected() {
    let server = TestServer::start();
    let mut conn = server.conn();
    conn.send_raw(&vec![b'a'; 70 * 1024]);
    assert_eq!(read_all(&mut conn), vec![Value::Error("ERR Protocol error: too big inline request".into())]);
}

#[test]
fn bulk_length_follows_proto_max_bulk_len() {
    let server = TestServer::start_with(&["--proto-max-bulk-len", "1mb"]);
    let mut conn = server.conn();
    conn.send_raw(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1048577\r\n");
    assert_eq!(read_all(&mut conn), vec![Value::Error("ERR Protocol error: invalid bulk length".into())]);
}

#[test]
fn large_values_arrive_in_pieces() {
    let server = TestServer::start();
    let mut conn = server.conn();
    let value = vec![b'v'; 3 << 20];
    let frame = common::encode(&[b"SET", b"big", &value]);
    for chunk in frame.chunks(100_000) {
        conn.send_raw(chunk);
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(conn.read().unwrap(), Value::Status("OK".into()));
    assert_eq!(conn.call(&["STRLEN", "big"]), Value::Int(3 << 20));
}

#[test]
fn maxclients_rejects_with_redis_error() {
    let server = TestServer::start_with(&["--maxclients", "2"]);
    let _a = server.conn();
    let mut b = server.conn();
    assert_eq!(b.call(&["PING"]), Value::Status("PONG".into()));
    let mut c = server.conn();
    assert_eq!(c.read(), Some(Value::Error("ERR max number of clients reached".into())));
}

#[test]
fn idle_clients_are_closed_after_timeout() {
    let server = TestServer::start_with(&["--timeout", "1"]);
    let mut conn = server.conn();
    assert_eq!(conn.call(&["PING"]), Value::Status("PONG".into()));
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(conn.read(), None, "idle connection should be closed");
}

#[test]
fn quit_replies_then_closes() {
    let server = TestServer::start();
    let mut conn = server.conn();
    conn.send_raw(b"QUIT\r\nPING\r\n");
    assert_eq!(read_all(&mut conn), vec![Value::Status("OK".into())]);
}

#[test]
fn half_closed_socket_does_not_hurt_the_server() {
    let server = TestServer::start();
    {
        let mut conn = server.conn();
        conn.send_raw(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$10\r\nabc");
    }
    let mut conn = server.conn();
    assert_eq!(conn.call(&["GET", "k"]), Value::Nil);
}

#[test]
fn sigterm_shuts_down_gracefully_and_keeps_data() {
    let mut server = TestServer::start();
    let mut conn = server.conn();
    conn.call(&["SET", "k", "v"]);
    server.restart();
    let mut conn = server.conn();
    assert_eq!(conn.call(&["GET", "k"]), Value::bulk("v"));
}

#[test]
fn shutdown_command_stops_the_server() {
    let mut server = TestServer::start();
    let mut conn = server.conn();
    conn.call(&["SET", "k", "v"]);
    conn.send_raw(b"SHUTDOWN NOSAVE\r\n");
    assert_eq!(conn.read(), None);
    assert!(server.wait_exit().success());
}
