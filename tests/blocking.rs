//! Blocked clients on two io-threads: writers on different threads, and
//! CLIENT UNBLOCK, reach one waiter at once. Every pushed element still
//! goes to exactly one place: the waiter's one reply, or the list.

mod common;

use std::sync::{Arc, Barrier};
use std::thread;

use common::{Conn, TestServer, Value};

/// Connections are handed to the io-threads in turn: connections opened one
/// after the other (each answered before the next is opened) alternate
/// between the two threads.
fn connections(server: &TestServer, count: usize) -> Vec<Conn> {
    (0..count)
        .map(|_| {
            let mut conn = server.conn();
            assert_eq!(conn.call(&["PING"]), Value::Status("PONG".into()));
            conn
        })
        .collect()
}

fn bulk_text(value: &Value) -> String {
    match value {
        Value::Bulk(bytes) => String::from_utf8(bytes.clone()).unwrap(),
        other => panic!("expected a bulk string, got {other:?}"),
    }
}

/// The waiter's BRPOP: on `key`, after many empty keys, so that running it
/// on the waiter's behalf takes long enough for the race to be hit.
fn brpop_after_empty_keys(key: &str) -> Vec<String> {
    let mut args = vec!["BRPOP".to_string()];
    args.extend((0..100).map(|i| format!("{{empty}}{i}")));
    args.push(key.to_string());
    args.push("0".to_string());
    args
}

fn send(conn: &mut Conn, args: &[String]) {
    let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    conn.send_raw(&common::encode(&args));
}

/// Waits until `count` clients are blocked.
fn wait_blocked(conn: &mut Conn, count: usize) {
    while !bulk_text(&conn.call(&["INFO", "clients"])).contains(&format!("blocked_clients:{count}\r\n")) {
        thread::yield_now();
    }
}

#[test]
fn pushes_from_two_threads_reach_a_looping_brpop_exactly_once() {
    const ROUNDS: usize = 20_000;
    let server = TestServer::start_with(&["--io-threads", "2"]);
    let mut conns = connections(&server, 4);
    let pushers = [conns.pop().unwrap(), conns.pop().unwrap()];
    let mut observer = conns.pop().unwrap();
    let mut consumer = conns.pop().unwrap();
    // Each round both pushers push at once to the blocked consumer.
    let start = Arc::new(Barrier::new(3));
    let pushed = Arc::new(Barrier::new(3));
    let pushing: Vec<_> = pushers
        .into_iter()
        .enumerate()
        .map(|(pusher, mut conn)| {
            let (start, pushed) = (start.clone(), pushed.clone());
            thread::spawn(move || {
                for round in 0..ROUNDS {
                    start.wait();
                    assert!(matches!(conn.call(&["LPUSH", "queue", &format!("{pusher}:{round}")]), Value::Int(_)));
                    pushed.wait();
                }
            })
        })
        .collect();
    let brpop = brpop_after_empty_keys("queue");
    let mut received = Vec::new();
    for round in 0..ROUNDS {
        send(&mut consumer, &brpop);
        wait_blocked(&mut observer, 1);
        start.wait();
        pushed.wait();
        // The waiter got one element, the other is left for its next BRPOP.
        let Some(Value::Array(reply)) = consumer.read() else { panic!("round {round}: BRPOP's reply") };
        received.push(bulk_text(&reply[1]));
        assert_eq!(observer.call(&["LLEN", "queue"]), Value::Int(1), "round {round}: an element was lost");
        send(&mut consumer, &brpop);
        let Some(Value::Array(reply)) = consumer.read() else { panic!("round {round}: BRPOP's reply") };
        received.push(bulk_text(&reply[1]));
    }
    for pusher in pushing {
        pusher.join().expect("pusher panicked");
    }
    let mut expected: Vec<String> =
        (0..2).flat_map(|pusher| (0..ROUNDS).map(move |round| format!("{pusher}:{round}"))).collect();
    received.sort();
    expected.sort();
    assert_eq!(received, expected, "every pushed element received exactly once");
    assert_eq!(observer.call(&["LLEN", "queue"]), Value::Int(0));
}

#[test]
fn client_unblock_racing_a_push_on_another_thread_loses_nothing() {
    const ROUNDS: usize = 5_000;
    let server = TestServer::start_with(&["--io-threads", "2"]);
    // The pusher and the unblocker on different threads.
    let mut conns = connections(&server, 3);
    let mut unblocker = conns.pop().unwrap();
    let mut pusher = conns.pop().unwrap();
    let mut waiter = conns.pop().unwrap();
    let Value::Int(waiter_id) = waiter.call(&["CLIENT", "ID"]) else { panic!("CLIENT ID") };
    let waiter_id = waiter_id.to_string();
    let brpop = brpop_after_empty_keys("key");
    let (mut served, mut unblocked) = (0, 0);
    for round in 0..ROUNDS {
        let item = round.to_string();
        send(&mut waiter, &brpop);
        wait_blocked(&mut unblocker, 1);
        let start = Arc::new(Barrier::new(2));
        let pushing = {
            let start = start.clone();
            let item = item.clone();
            thread::spawn(move || {
                start.wait();
                assert_eq!(pusher.call(&["LPUSH", "key", &item]), Value::Int(1));
                pusher
            })
        };
        start.wait();
        let unblock = unblocker.call(&["CLIENT", "UNBLOCK", &waiter_id]);
        pusher = pushing.join().expect("pusher panicked");
        let reply = waiter.read().expect("the waiter's reply");
        let left = unblocker.call(&["LLEN", "key"]);
        if was_served(round, reply, &item, left) {
            served += 1;
        } else {
            assert_eq!(unblock, Value::Int(1), "round {round}: unblocked without CLIENT UNBLOCK saying so");
            unblocker.call(&["DEL", "key"]);
            unblocked += 1;
        }
    }
    // Both outcomes happen, or the race was never run.
    assert!(served > 0 && unblocked > 0, "served {served}, unblocked {unblocked}");
}

/// A BRPOP raced against the push of `item`: whether it was served (then
/// with `item`, and nothing `left` in the list) or ended without it (then
/// the item is still there: nothing lost either way).
fn was_served(round: usize, reply: Value, item: &str, left: Value) -> bool {
    match reply {
        Value::Array(pair) => {
            assert_eq!(bulk_text(&pair[1]), item);
            assert_eq!(left, Value::Int(0), "round {round}: served, yet the element is still there");
            true
        }
        Value::Nil => {
            assert_eq!(left, Value::Int(1), "round {round}: ended empty-handed, and the pushed element is gone");
            false
        }
        other => panic!("round {round}: BRPOP answered {other:?}"),
    }
}

#[test]
fn a_timeout_racing_a_push_on_another_thread_loses_nothing() {
    const ROUNDS: usize = 2_000;
    let server = TestServer::start_with(&["--io-threads", "2"]);
    // The waiter (whose timer runs on its thread) and the pusher on
    // different threads.
    let mut conns = connections(&server, 2);
    let mut pusher = conns.pop().unwrap();
    let mut waiter = conns.pop().unwrap();
    let mut brpop = brpop_after_empty_keys("key");
    *brpop.last_mut().unwrap() = "0.002".to_string();
    let (mut served, mut timed_out) = (0, 0);
    for round in 0..ROUNDS {
        let item = round.to_string();
        send(&mut waiter, &brpop);
        // The push lands around the deadline (2 ms, on a timer that ticks
        // each millisecond): a little before or after.
        let offset = 1_800 + (round * 37) % 2_000;
        thread::sleep(std::time::Duration::from_micros(offset as u64));
        assert_eq!(pusher.call(&["LPUSH", "key", &item]), Value::Int(1));
        let reply = waiter.read().expect("the waiter's reply");
        let left = pusher.call(&["LLEN", "key"]);
        if was_served(round, reply, &item, left) {
            served += 1;
        } else {
            pusher.call(&["DEL", "key"]);
            timed_out += 1;
        }
    }
    assert!(served > 0 && timed_out > 0, "served {served}, timed out {timed_out}");
}
