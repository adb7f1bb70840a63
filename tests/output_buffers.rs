//! Replies a client does not read, against the real binary: the output
//! buffer limits close it, without a limit its replies wait in bounded
//! memory, and CLIENT KILL, `timeout` and SHUTDOWN still reach it; replies
//! of a huge negative count (SRANDMEMBER s -100000000000) are produced as
//! the client reads them.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{Conn, TestServer, Value};

const MB: usize = 1 << 20;

/// A field of INFO as a number.
fn info_number(conn: &mut Conn, section: &str, field: &str) -> u64 {
    let Value::Bulk(text) = conn.call(&["INFO", section]) else { panic!("INFO is a bulk reply") };
    let text = String::from_utf8(text).unwrap();
    let line = text.lines().find_map(|line| line.strip_prefix(&format!("{field}:"))).expect(field);
    line.trim().parse().unwrap()
}

/// The CLIENT LIST line of client `id`, as name=value pairs; None once it
/// is gone.
fn client_fields(conn: &mut Conn, id: i64) -> Option<Vec<(String, String)>> {
    let Value::Bulk(text) = conn.call(&["CLIENT", "LIST"]) else { panic!("CLIENT LIST is a bulk reply") };
    let text = String::from_utf8(text).unwrap();
    let line = text.lines().find(|line| line.starts_with(&format!("id={id} ")))?;
    Some(
        line.split(' ')
            .filter_map(|pair| pair.split_once('='))
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect(),
    )
}

fn client_field(fields: &[(String, String)], name: &str) -> u64 {
    fields.iter().find(|(n, _)| n == name).map(|(_, v)| v.parse().unwrap()).expect(name)
}

/// Polls until `done` holds; panics with `what` after 30 s.
fn wait_until(what: &str, done: impl FnMut() -> bool) {
    common::wait_until(Duration::from_secs(30), what, done);
}

/// A client that sends `GET big` `count` times and never reads the
/// replies; returns its socket and its client id.
fn stuck_client(server: &TestServer, count: usize) -> (TcpStream, i64) {
    let mut socket = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    socket.write_all(b"CLIENT ID\r\n").unwrap();
    let mut reply = [0u8; 32];
    let n = socket.read(&mut reply).unwrap();
    let id = std::str::from_utf8(&reply[1..n - 2]).unwrap().parse().unwrap();
    socket.write_all(&b"*2\r\n$3\r\nGET\r\n$3\r\nbig\r\n".repeat(count)).unwrap();
    (socket, id)
}

/// True once the server has closed `socket` (what it had sent is read).
fn closed_by_server(socket: &mut TcpStream) -> bool {
    socket.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut sink = vec![0u8; MB];
    loop {
        match socket.read(&mut sink) {
            Ok(0) | Err(_) => return true,
            Ok(_) => {}
        }
    }
}

#[test]
fn a_client_over_the_normal_class_limit_is_closed() {
    let server = TestServer::start_with(&["--client-output-buffer-limit", "normal", "4mb", "0", "0"]);
    let mut admin = server.conn();
    admin.call_bytes(&[b"SET", b"big", &vec![b'v'; 100_000]]);
    let (mut stuck, id) = stuck_client(&server, 3000);
    wait_until("the stuck client is closed", || client_fields(&mut admin, id).is_none());
    assert_eq!(info_number(&mut admin, "clients", "connected_clients"), 1);
    assert!(closed_by_server(&mut stuck));
    // Under the limit, the same replies all arrive.
    let mut reader = server.conn();
    reader.send_raw(&b"*2\r\n$3\r\nGET\r\n$3\r\nbig\r\n".repeat(30));
    for _ in 0..30 {
        assert_eq!(reader.read().unwrap(), Value::Bulk(vec![b'v'; 100_000]));
    }
}

#[test]
fn a_client_that_does_not_read_holds_bounded_memory_and_can_be_killed() {
    let server = TestServer::start();
    let mut admin = server.conn();
    admin.call_bytes(&[b"SET", b"big", &vec![b'v'; MB]]);
    let before = info_number(&mut admin, "memory", "used_memory_rss");
    // 2 GB of replies asked for, none read.
    let (mut stuck, id) = stuck_client(&server, 2000);
    let mut omem = 0;
    wait_until("the replies pile up", || {
        let fields = client_fields(&mut admin, id).expect("still connected");
        omem = client_field(&fields, "omem");
        omem > 32 * MB as u64
    });
    std::thread::sleep(Duration::from_millis(500));
    let fields = client_fields(&mut admin, id).expect("still connected");
    assert!(client_field(&fields, "omem") >= omem, "omem only grows while the client does not read");
    assert!(client_field(&fields, "tot-mem") > omem);
    let rss = info_number(&mut admin, "memory", "used_memory_rss");
    assert!(rss < before + 300 * MB as u64, "RSS grew from {before} to {rss}");
    // CLIENT KILL reaches it while its replies wait.
    assert_eq!(admin.call(&["CLIENT", "KILL", "ID", &id.to_string()]), Value::Int(1));
    wait_until("the killed client is gone", || client_fields(&mut admin, id).is_none());
    assert!(closed_by_server(&mut stuck));
}

#[test]
fn timeout_closes_a_client_that_does_not_read() {
    let server = TestServer::start();
    let mut admin = server.conn();
    admin.call_bytes(&[b"SET", b"big", &vec![b'v'; MB]]);
    let (mut stuck, id) = stuck_client(&server, 200);
    wait_until("the replies pile up", || client_field(&client_fields(&mut admin, id).unwrap(), "omem") > 0);
    assert_eq!(admin.call(&["CONFIG", "SET", "timeout", "1"]), Value::Status("OK".into()));
    wait_until("the idle client is closed", || client_fields(&mut admin, id).is_none());
    assert!(closed_by_server(&mut stuck));
}

#[test]
fn shutdown_does_not_wait_for_a_client_that_does_not_read() {
    let mut server = TestServer::start();
    let mut admin = server.conn();
    admin.call_bytes(&[b"SET", b"big", &vec![b'v'; MB]]);
    let (_stuck, id) = stuck_client(&server, 200);
    wait_until("the replies pile up", || client_field(&client_fields(&mut admin, id).unwrap(), "omem") > 0);
    admin.send_raw(b"SHUTDOWN NOSAVE\r\n");
    let (exited, status) = std::sync::mpsc::channel();
    std::thread::spawn(move || exited.send(server.wait_exit().success()).unwrap());
    assert_eq!(status.recv_timeout(Duration::from_secs(30)), Ok(true));
}

#[test]
fn client_list_shows_the_connection_buffers() {
    let server = TestServer::start();
    let mut conn = server.conn();
    let Value::Bulk(line) = conn.call(&["CLIENT", "INFO"]) else { panic!("CLIENT INFO is a bulk reply") };
    let line = String::from_utf8(line).unwrap();
    let fields: Vec<(String, String)> =
        line.trim().split(' ').filter_map(|p| p.split_once('=')).map(|(n, v)| (n.into(), v.into())).collect();
    // Its own request is running: its arguments, and the bytes it came in.
    assert_eq!(client_field(&fields, "argv-mem"), ("client".len() + "info".len()) as u64);
    assert_eq!(client_field(&fields, "qbuf"), "*2\r\n$6\r\nclient\r\n$4\r\ninfo\r\n".len() as u64);
    assert!(client_field(&fields, "qbuf-free") > 0);
    assert!(client_field(&fields, "fd") > 2);
    assert!(client_field(&fields, "tot-mem") > 0);
    // Half a request: the arguments read so far, and its bytes, wait.
    let half = b"*3\r\n$3\r\nSET\r\n$5\r\nhello\r\n$10\r\nabc";
    conn.send_raw(half);
    let id = client_field(&fields, "id") as i64;
    let mut admin = server.conn();
    wait_until("the half request is read", || {
        let fields = client_fields(&mut admin, id).unwrap();
        client_field(&fields, "argv-mem") == 8 && client_field(&fields, "qbuf") == half.len() as u64
    });
}

/// Keys `s`, `z` and `h` of 100 members each.
fn random_pick_keys(conn: &mut Conn) -> Vec<String> {
    let members: Vec<String> = (0..100).map(|i| format!("member:{i}")).collect();
    for member in &members {
        conn.call(&["SADD", "s", member]);
        conn.call(&["ZADD", "z", &member[7..], member]);
        conn.call(&["HSET", "h", member, &format!("value:{}", &member[7..])]);
    }
    members
}

#[test]
fn huge_negative_counts_stream_until_the_client_leaves() {
    let server = TestServer::start();
    let mut admin = server.conn();
    random_pick_keys(&mut admin);
    let before = info_number(&mut admin, "memory", "used_memory_rss");
    let commands: [(&[&str], &str); 5] = [
        (&["SRANDMEMBER", "s", "-100000000000"], "*100000000000\r\n$"),
        (&["ZRANDMEMBER", "z", "-100000000000"], "*100000000000\r\n$"),
        (&["ZRANDMEMBER", "z", "-100000000000", "WITHSCORES"], "*200000000000\r\n$"),
        (&["HRANDFIELD", "h", "-100000000000"], "*100000000000\r\n$"),
        (&["HRANDFIELD", "h", "-100000000000", "WITHVALUES"], "*200000000000\r\n$"),
    ];
    for (command, start) in commands {
        let args: Vec<&[u8]> = command.iter().map(|a| a.as_bytes()).collect();
        let mut socket = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
        socket.write_all(&common::encode(&args)).unwrap();
        let mut received = vec![0u8; 4 * MB];
        socket.read_exact(&mut received).unwrap();
        assert!(received.starts_with(start.as_bytes()), "{command:?}");
        assert!(received.windows(9).any(|w| w == b"member:42"), "{command:?}");
        drop(socket);
        assert_eq!(admin.call(&["PING"]), Value::Status("PONG".into()));
        wait_until("the reader's connection ends", || info_number(&mut admin, "clients", "connected_clients") == 1);
    }
    let rss = info_number(&mut admin, "memory", "used_memory_rss");
    assert!(rss < before + 200 * MB as u64, "RSS grew from {before} to {rss}");
}

#[test]
fn a_negative_count_reply_read_whole_holds_every_pick() {
    let server = TestServer::start();
    let mut conn = server.conn();
    let members = random_pick_keys(&mut conn);
    let is_member = |value: &Value| matches!(value, Value::Bulk(m) if members.iter().any(|x| x.as_bytes() == m));
    let Value::Array(picks) = conn.call(&["SRANDMEMBER", "s", "-3000000"]) else { panic!("an array") };
    assert_eq!(picks.len(), 3_000_000);
    assert!(picks.iter().all(is_member));
    let Value::Array(picks) = conn.call(&["ZRANDMEMBER", "z", "-3000000", "WITHSCORES"]) else { panic!("an array") };
    assert_eq!(picks.len(), 6_000_000);
    for pair in picks.chunks(2) {
        let (Value::Bulk(member), Value::Bulk(score)) = (&pair[0], &pair[1]) else { panic!("{pair:?}") };
        assert!(is_member(&pair[0]));
        assert_eq!(&member[7..], &score[..]);
    }
    let Value::Array(picks) = conn.call(&["HRANDFIELD", "h", "-3000000", "WITHVALUES"]) else { panic!("an array") };
    assert_eq!(picks.len(), 6_000_000);
    for pair in picks.chunks(2) {
        let (Value::Bulk(field), Value::Bulk(value)) = (&pair[0], &pair[1]) else { panic!("{pair:?}") };
        assert!(is_member(&pair[0]));
        assert_eq!(value[..], [&b"value:"[..], &field[7..]].concat()[..]);
    }
    // Inside a transaction too, and the connection goes on.
    conn.call(&["MULTI"]);
    conn.call(&["HRANDFIELD", "h", "-2000"]);
    let Value::Array(exec) = conn.call(&["EXEC"]) else { panic!("an array") };
    let [Value::Array(picks)] = &exec[..] else { panic!("{exec:?}") };
    assert_eq!(picks.len(), 2000);
    assert!(picks.iter().all(is_member));
    assert_eq!(conn.call(&["PING"]), Value::Status("PONG".into()));
}
