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

/// Counts, limits and ranges far beyond what a key holds are answered from
/// what it holds: nothing is sized by the number a client sent.
#[test]
fn huge_counts_against_small_keys_are_answered_from_what_exists() {
    let server = TestServer::start();
    let mut conn = server.conn();
    let huge = (i64::MAX / 2).to_string();
    let h = huge.as_str();
    let bulks = |items: &[&str]| Value::Array(items.iter().map(|i| Value::bulk(i)).collect());
    let reset = |conn: &mut common::Conn| {
        conn.call(&["FLUSHALL"]);
        conn.call(&["RPUSH", "l", "a", "b", "a"]);
        conn.call(&["SADD", "s", "m"]);
        conn.call(&["ZADD", "z", "1", "a", "2", "b"]);
        conn.call(&["XADD", "x", "1-1", "f", "v"]);
        conn.call(&["XGROUP", "CREATE", "x", "g", "0"]);
        conn.call(&["XREADGROUP", "GROUP", "g", "c", "STREAMS", "x", ">"]);
        conn.call(&["SET", "str", "hello"]);
    };
    let entries = Value::Array(vec![Value::Array(vec![Value::bulk("1-1"), bulks(&["f", "v"])])]);
    let keyed = |key: &str, items: Value| Value::Array(vec![Value::bulk(key), items]);
    let cases: Vec<(Vec<&str>, Value)> = vec![
        (vec!["LRANGE", "l", "0", h], bulks(&["a", "b", "a"])),
        (vec!["LPOP", "l", h], bulks(&["a", "b", "a"])),
        (vec!["RPOP", "l", h], bulks(&["a", "b", "a"])),
        (vec!["LPOS", "l", "a", "COUNT", h, "MAXLEN", h], Value::Array(vec![Value::Int(0), Value::Int(2)])),
        (vec!["LREM", "l", h, "a"], Value::Int(2)),
        (vec!["LMPOP", "1", "l", "LEFT", "COUNT", h], keyed("l", bulks(&["a", "b", "a"]))),
        (vec!["SPOP", "s", h], bulks(&["m"])),
        (vec!["SINTERCARD", "1", "s", "LIMIT", h], Value::Int(1)),
        (vec!["ZRANGE", "z", "0", h], bulks(&["a", "b"])),
        (vec!["ZRANGE", "z", "-inf", "+inf", "BYSCORE", "LIMIT", "0", h], bulks(&["a", "b"])),
        (vec!["ZRANGE", "z", "-inf", "+inf", "BYSCORE", "LIMIT", h, h], bulks(&[])),
        (vec!["ZPOPMIN", "z", h], bulks(&["a", "1", "b", "2"])),
        (
            vec!["ZMPOP", "1", "z", "MAX", "COUNT", h],
            keyed("z", Value::Array(vec![bulks(&["b", "2"]), bulks(&["a", "1"])])),
        ),
        (vec!["ZINTERCARD", "1", "z", "LIMIT", h], Value::Int(2)),
        (vec!["XRANGE", "x", "-", "+", "COUNT", h], entries.clone()),
        (vec!["XREAD", "COUNT", h, "STREAMS", "x", "0"], Value::Array(vec![keyed("x", entries.clone())])),
        (vec!["GETRANGE", "str", "0", h], Value::bulk("hello")),
    ];
    for (command, expected) in cases {
        reset(&mut conn);
        assert_eq!(conn.call(&command), expected, "{command:?}");
    }
    // The one pending entry: its ID, consumer, idle time and deliveries.
    match conn.call(&["XPENDING", "x", "g", "-", "+", h, "c"]) {
        Value::Array(rows) => assert_eq!(rows.len(), 1),
        other => panic!("XPENDING: {other:?}"),
    }
    assert_eq!(conn.call(&["PING"]), Value::Status("PONG".into()));
}
