//! A command that fails or panics leaves no effect, in or out of EXEC, and
//! a panic costs the server nothing: not the process, not the client's
//! slot. Panics are injected with the `mem-apply-panic` failpoint, which
//! panics right after a memory effect on the key it names has applied.

#![cfg(feature = "failpoints")]

mod common;

use common::{Conn, TestServer, Value};

/// A server whose `setup` ran before the failpoint panics on `boom`.
fn panicking_on_boom(extra: &[&str], setup: &[&[&str]]) -> TestServer {
    let mut server = TestServer::start_with(extra);
    let mut c = server.conn();
    for command in setup {
        assert!(!matches!(c.call(command), Value::Error(_)), "{command:?}");
    }
    server.set_env(&[("FAILPOINTS", "mem-apply-panic=return(boom)")]);
    server.restart();
    server
}

fn is_internal_error(reply: &Value) -> bool {
    matches!(reply, Value::Error(e) if e.starts_with("ERR internal error running"))
}

fn list(c: &mut Conn, key: &str) -> Vec<Value> {
    match c.call(&["LRANGE", key, "0", "-1"]) {
        Value::Array(items) => items,
        other => panic!("LRANGE answered {other:?}"),
    }
}

#[test]
fn a_command_that_panics_is_answered_and_leaves_nothing() {
    let mut server = panicking_on_boom(&[], &[&["RPUSH", "boom", "a", "b"], &["RPUSH", "l", "x", "y"]]);
    let mut c = server.conn();
    // Each panic comes after the effect applied: it is taken back.
    assert!(is_internal_error(&c.call(&["RPUSH", "boom", "c", "d"])));
    assert!(is_internal_error(&c.call(&["LPOP", "boom", "2"])));
    assert!(is_internal_error(&c.call(&["LTRIM", "boom", "5", "6"])));
    assert_eq!(c.call(&["RPUSH", "boom2", "x"]), Value::Int(1));
    // A command over two keys: the effect on the first goes back too.
    assert!(is_internal_error(&c.call(&["LMOVE", "l", "boom", "LEFT", "RIGHT"])));
    assert_eq!(list(&mut c, "boom"), ["a", "b"].map(Value::bulk));
    assert_eq!(list(&mut c, "l"), ["x", "y"].map(Value::bulk));
    assert_eq!(c.call(&["PING"]), Value::Status("PONG".into()));
    server.set_env(&[]);
    server.crash_restart();
    let mut c = server.conn();
    assert_eq!(list(&mut c, "boom"), ["a", "b"].map(Value::bulk));
    assert_eq!(list(&mut c, "l"), ["x", "y"].map(Value::bulk));
}

#[test]
fn exec_keeps_the_other_commands_and_drops_the_one_that_panicked() {
    let setup: [&[&str]; 2] = [&["RPUSH", "boom", "old"], &["RPUSH", "l", "a", "b", "c"]];
    let mut server = panicking_on_boom(&["--appendfsync", "always"], &setup);
    let mut c = server.conn();
    assert_eq!(c.call(&["MULTI"]), Value::Status("OK".into()));
    for command in [&["RPUSH", "l", "x"][..], &["LPOP", "boom"], &["SET", "s", "v"], &["LSET", "l", "0", "z"]] {
        assert_eq!(c.call(command), Value::Status("QUEUED".into()));
    }
    let Value::Array(replies) = c.call(&["EXEC"]) else { panic!("EXEC answers an array") };
    assert_eq!(replies[0], Value::Int(4));
    assert!(is_internal_error(&replies[1]), "{:?}", replies[1]);
    assert_eq!(replies[2..], [Value::Status("OK".into()), Value::Status("OK".into())]);
    assert_eq!(list(&mut c, "boom"), [Value::bulk("old")]);
    assert_eq!(list(&mut c, "l"), ["z", "b", "c", "x"].map(Value::bulk));
    assert_eq!(c.call(&["GET", "s"]), Value::bulk("v"));
    // What the others saw is what the log holds: a kill -9 keeps it, and
    // positional records after it (LREM) replay on the same state.
    c.call(&["LREM", "l", "1", "b"]);
    server.set_env(&[]);
    server.crash_restart();
    let mut c = server.conn();
    assert_eq!(list(&mut c, "l"), ["z", "c", "x"].map(Value::bulk));
    assert_eq!(list(&mut c, "boom"), [Value::bulk("old")]);
    assert_eq!(c.call(&["GET", "s"]), Value::bulk("v"));
}

#[test]
fn panics_do_not_use_up_client_slots() {
    let server = panicking_on_boom(&["--maxclients", "5"], &[]);
    for _ in 0..30 {
        let mut c = server.conn();
        assert!(is_internal_error(&c.call(&["SADD", "boom", "m"])));
    }
    let mut c = server.conn();
    assert_eq!(c.call(&["PING"]), Value::Status("PONG".into()));
    assert_eq!(c.call(&["EXISTS", "boom"]), Value::Int(0));
}
