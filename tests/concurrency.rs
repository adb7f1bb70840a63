//! Many clients hammer overlapping keys of every type at once: no deadlock,
//! no lost update, and a key never ends up held by two engines.

mod common;

use std::sync::Arc;
use std::thread;

use common::{TestServer, Value};

const CLIENTS: usize = 8;
const ROUNDS: usize = 300;

#[test]
fn concurrent_mixed_writes_stay_consistent() {
    mixed_writes(TestServer::start());
}

/// Clients spread over three connection threads run their commands in
/// parallel, contending for the same shards.
#[test]
fn concurrent_mixed_writes_on_three_io_threads_stay_consistent() {
    mixed_writes(TestServer::start_with(&["--io-threads", "3"]));
}

fn mixed_writes(server: TestServer) {
    let server = Arc::new(server);
    let workers: Vec<_> = (0..CLIENTS)
        .map(|id| {
            let server = server.clone();
            thread::spawn(move || {
                let mut conn = server.conn();
                for round in 0..ROUNDS {
                    conn.call(&["INCR", "{s}counter"]);
                    conn.call(&["HINCRBY", "{s}hash", "field", "1"]);
                    conn.call(&["ZINCRBY", "zset", "1", "member"]);
                    conn.call(&["RPUSH", "list", &format!("{id}:{round}")]);
                    conn.call(&["SADD", "set", &format!("{id}:{round}")]);
                    // Multi-key commands over shards in both orders.
                    conn.call(&["MSET", "{s}counter-shadow", "x", "other", "y"]);
                    conn.call(&["RPOPLPUSH", "list", "list"]);
                    // Two kinds of writer race for one key name.
                    if id % 2 == 0 {
                        conn.call(&["SET", "race", "string"]);
                    } else {
                        conn.call(&["DEL", "race"]);
                        conn.call(&["LPUSH", "race", "list"]);
                    }
                    // A key renamed across shards while others write nearby.
                    let (a, b) = (format!("mine:{id}"), format!("moved:{id}"));
                    conn.call(&["SADD", &a, &round.to_string()]);
                    conn.call(&["RENAME", &a, &b]);
                    conn.call(&["RENAME", &b, &a]);
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().expect("worker panicked");
    }
    let mut conn = server.conn();
    let total = (CLIENTS * ROUNDS) as i64;
    assert_eq!(conn.call(&["GET", "{s}counter"]), Value::bulk(&total.to_string()));
    assert_eq!(conn.call(&["HGET", "{s}hash", "field"]), Value::bulk(&total.to_string()));
    assert_eq!(conn.call(&["ZSCORE", "zset", "member"]), Value::bulk(&total.to_string()));
    assert_eq!(conn.call(&["LLEN", "list"]), Value::Int(total));
    assert_eq!(conn.call(&["SCARD", "set"]), Value::Int(total));
    for id in 0..CLIENTS {
        assert_eq!(conn.call(&["SCARD", &format!("mine:{id}")]), Value::Int(ROUNDS as i64));
        assert_eq!(conn.call(&["EXISTS", &format!("moved:{id}")]), Value::Int(0));
    }
    // "race" is held by exactly one engine: one DEL removes it for good.
    assert_eq!(conn.call(&["DEL", "race"]), Value::Int(1));
    assert_eq!(conn.call(&["EXISTS", "race"]), Value::Int(0));
}
