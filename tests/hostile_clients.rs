//! Clients that send data shaped to hurt the server: members ordered to
//! degenerate a sorted set's tree, counts far beyond what a key holds. The
//! server must keep serving, answer correctly, and recover the data.

mod common;

use common::{encode, TestServer, Value};

/// The treap priorities every new sorted set once drew, in order: xorshift
/// from a fixed seed that any client could compute.
fn old_fixed_seed_priorities(n: usize) -> Vec<u64> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        })
        .collect()
}

/// Scores for members `m0..m{n}` (added in that order) that put key order
/// in priority order under the fixed-seed scheme: the tree is one chain.
fn chain_scores(n: usize) -> Vec<usize> {
    let priorities = old_fixed_seed_priorities(n);
    let mut by_priority: Vec<usize> = (0..n).collect();
    by_priority.sort_by_key(|&i| priorities[i]);
    let mut scores = vec![0; n];
    for (rank, &i) in by_priority.iter().enumerate() {
        scores[i] = rank;
    }
    scores
}

#[test]
fn one_zadd_ordered_to_build_a_chain_is_served_and_replayed() {
    let n = 200_000;
    let scores = chain_scores(n);
    let args: Vec<Vec<u8>> = [b"ZADD".to_vec(), b"z".to_vec()]
        .into_iter()
        .chain((0..n).flat_map(|i| [scores[i].to_string().into_bytes(), format!("m{i}").into_bytes()]))
        .collect();
    let args: Vec<&[u8]> = args.iter().map(|a| &a[..]).collect();
    let mut server = TestServer::start();
    let mut conn = server.conn();
    conn.send_raw(&encode(&args));
    assert_eq!(conn.read(), Some(Value::Int(n as i64)), "the server answers the ZADD");
    let check = |conn: &mut common::Conn| {
        assert_eq!(conn.call(&["PING"]), Value::Status("PONG".into()));
        assert_eq!(conn.call(&["ZCARD", "z"]), Value::Int(n as i64));
        for i in (0..n).step_by(9_973).chain([n - 1]) {
            assert_eq!(conn.call(&["ZRANK", "z", &format!("m{i}")]), Value::Int(scores[i] as i64), "m{i}");
        }
    };
    check(&mut conn);
    // More members after it, and a kill -9: the log replays the same ZADD.
    assert_eq!(conn.call(&["ZADD", "z", "-1", "first"]), Value::Int(1));
    drop(conn);
    server.crash_restart();
    let mut conn = server.conn();
    assert_eq!(conn.call(&["ZRANK", "z", "first"]), Value::Int(0));
    assert_eq!(conn.call(&["ZREM", "z", "first"]), Value::Int(1));
    check(&mut conn);
}
