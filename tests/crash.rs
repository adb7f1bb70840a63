//! Crash tests that really crash: several clients write to every engine
//! (MULTI/EXEC across engines included) while BGSAVE flushes RocksDB and
//! checkpoints memory; the server is killed with SIGKILL at a random
//! moment, restarted, and every acknowledged write must be there exactly
//! once, with no transaction half-applied. Cycles accumulate on one data
//! directory, so each restart also recovers what the earlier ones did.
//!
//! `STRATA_CRASH_CYCLES` sets the number of cycles per fsync policy.

mod common;

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Conn, TestServer, Value};

const WRITERS: usize = 4;

fn cycles() -> usize {
    std::env::var("STRATA_CRASH_CYCLES").ok().and_then(|v| v.parse().ok()).unwrap_or(8)
}

/// Writer `g`'s operation number `i`: one of five shapes.
fn run_op(conn: &mut Conn, g: usize, i: i64) -> Option<()> {
    let n = i.to_string();
    let ok = |v: Option<Value>| match v {
        Some(Value::Error(e)) => panic!("writer {g} op {i}: {e}"),
        Some(_) => Some(()),
        None => None,
    };
    let call = |conn: &mut Conn, args: &[&str]| {
        let frame: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        conn.try_send(&common::encode(&frame))?;
        conn.read()
    };
    match i % 5 {
        0 => ok(call(conn, &["SET", &format!("s:{g}:{i}"), &n])),
        1 => ok(call(conn, &["RPUSH", &format!("l:{g}"), &n])),
        2 => ok(call(conn, &["ZADD", &format!("z:{g}"), &n, &format!("m{i}")])),
        3 => ok(call(conn, &["HSET", &format!("h:{g}"), &format!("f{i}"), &n])),
        _ => {
            // One transaction over RocksDB and memory engines, pipelined.
            let mut frames = common::encode(&[b"MULTI"]);
            for args in [
                vec!["SET".to_string(), format!("m:{g}:{i}"), n.clone()],
                vec!["RPUSH".to_string(), format!("ml:{g}"), n.clone()],
                vec!["SADD".to_string(), format!("ms:{g}"), n.clone()],
                vec!["INCR".to_string(), format!("mc:{g}")],
            ] {
                let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
                frames.extend(common::encode(&args));
            }
            frames.extend(common::encode(&[b"EXEC"]));
            conn.try_send(&frames)?;
            for _ in 0..5 {
                ok(conn.read())?;
            }
            match conn.read()? {
                Value::Array(replies) if replies.len() == 4 => Some(()),
                other => panic!("EXEC answered {other:?}"),
            }
        }
    }
}

fn int(v: Value) -> i64 {
    match v {
        Value::Int(i) => i,
        Value::Nil => 0,
        Value::Bulk(b) => String::from_utf8(b).unwrap().parse().unwrap(),
        other => panic!("not an integer: {other:?}"),
    }
}

fn strings(v: Value) -> Vec<Option<String>> {
    match v {
        Value::Array(items) => items
            .into_iter()
            .map(|item| match item {
                Value::Bulk(b) => Some(String::from_utf8(b).unwrap()),
                _ => None,
            })
            .collect(),
        other => panic!("not an array: {other:?}"),
    }
}

/// How many of writer `g`'s operations are in the data: every
/// acknowledged one must be, the one in flight may be, nothing is there
/// twice, no transaction is half there. Reads each structure once.
fn applied_ops(conn: &mut Conn, g: usize, acked: i64) -> i64 {
    let upto = acked + 1; // The last op that may have been sent.
    let ops = |shape: i64| (0..=upto).filter(move |i| i % 5 == shape);
    let mget = |conn: &mut Conn, prefix: &str, shape: i64| -> Vec<i64> {
        let mut args = vec!["MGET".to_string()];
        args.extend(ops(shape).map(|i| format!("{prefix}:{g}:{i}")));
        if args.len() == 1 {
            return Vec::new();
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        ops(shape).zip(strings(conn.call(&args))).filter(|(_, v)| v.is_some()).map(|(i, _)| i).collect()
    };
    let numbers = |v: Value| -> Vec<i64> { strings(v).into_iter().map(|s| s.unwrap().parse().unwrap()).collect() };
    let members = |v: Value, strip: &str| -> Vec<i64> {
        let mut out: Vec<i64> =
            strings(v).into_iter().map(|s| s.unwrap().trim_start_matches(strip).parse().unwrap()).collect();
        out.sort_unstable();
        out
    };
    let mut present = vec![false; upto as usize + 1];
    let mut mark = |found: &[i64], shape: i64| {
        for &i in found {
            assert!(i % 5 == shape && i <= upto, "writer {g}: unexpected op {i}");
            present[i as usize] = true;
        }
    };
    mark(&mget(conn, "s", 0), 0);
    // Lists keep order and must hold each pushed number exactly once.
    let list = numbers(conn.call(&["LRANGE", &format!("l:{g}"), "0", "-1"]));
    assert!(list.windows(2).all(|w| w[0] < w[1]), "writer {g}: list out of order or doubled: {list:?}");
    mark(&list, 1);
    mark(&members(conn.call(&["ZRANGE", &format!("z:{g}"), "0", "-1"]), "m"), 2);
    mark(&members(conn.call(&["HKEYS", &format!("h:{g}")]), "f"), 3);
    // A transaction's four effects are all there or none.
    let tx_strings = mget(conn, "m", 4);
    let tx_list = numbers(conn.call(&["LRANGE", &format!("ml:{g}"), "0", "-1"]));
    let tx_set = members(conn.call(&["SMEMBERS", &format!("ms:{g}")]), "");
    let tx_count = int(conn.call(&["GET", &format!("mc:{g}")]));
    assert_eq!(tx_strings, tx_list, "writer {g}: transaction half-applied (strings vs list)");
    assert_eq!(tx_list, tx_set, "writer {g}: transaction half-applied (list vs set)");
    assert_eq!(tx_count, tx_list.len() as i64, "writer {g}: transaction counter applied twice or not at all");
    mark(&tx_list, 4);
    for (i, &there) in present.iter().enumerate().take(acked as usize + 1) {
        assert!(there, "writer {g}: acknowledged op {i} lost (acked through {acked})");
    }
    acked + 1 + present[upto as usize] as i64
}

fn crash_cycles(policy: &str, io_threads: &str) {
    let mut server = TestServer::start_with(&["--appendfsync", policy, "--io-threads", io_threads]);
    let mut seed = Instant::now().elapsed().as_nanos() as u64 ^ 0x9e37_79b9_7f4a_7c15 ^ std::process::id() as u64;
    let mut random = move |below: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % below
    };
    // (writer, ops applied) of every finished cycle, checked again after
    // every later crash.
    let mut history: Vec<(usize, i64)> = Vec::new();
    let mut total_acked = 0;
    for cycle in 0..cycles() {
        let stop = Arc::new(AtomicBool::new(false));
        let acked: Vec<Arc<AtomicI64>> = (0..WRITERS).map(|_| Arc::new(AtomicI64::new(-1))).collect();
        let mut threads = Vec::new();
        for (t, acked) in acked.iter().enumerate() {
            let (acked, port, g) = (acked.clone(), server.port, cycle * WRITERS + t);
            threads.push(std::thread::spawn(move || {
                let mut conn = Conn::try_connect(port).unwrap();
                let mut i = 0;
                while run_op(&mut conn, g, i).is_some() {
                    acked.store(i, Ordering::SeqCst);
                    i += 1;
                }
            }));
        }
        let saver = {
            let (stop, port) = (stop.clone(), server.port);
            std::thread::spawn(move || {
                let mut conn = Conn::try_connect(port).unwrap();
                while !stop.load(Ordering::SeqCst) {
                    if conn.try_send(&common::encode(&[b"BGSAVE"])).is_none() || conn.read().is_none() {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(25));
                }
            })
        };
        std::thread::sleep(Duration::from_millis(50 + random(400)));
        server.kill();
        stop.store(true, Ordering::SeqCst);
        for thread in threads {
            thread.join().unwrap();
        }
        saver.join().unwrap();
        server.start_again();
        let mut conn = server.conn();
        let mut this_cycle = Vec::new();
        for (t, acked) in acked.iter().enumerate() {
            let acked = acked.load(Ordering::SeqCst);
            total_acked += acked + 1;
            this_cycle.push((cycle * WRITERS + t, applied_ops(&mut conn, cycle * WRITERS + t, acked)));
        }
        for &(g, applied) in &history {
            assert_eq!(applied_ops(&mut conn, g, applied - 1), applied, "writer {g} changed after a later crash");
        }
        history.extend(this_cycle);
        // The key counters (stored in RocksDB batches that reach it in any
        // order, cut exact at each memtable switch) match the keys there.
        let (mut cursor, mut keys) = ("0".to_string(), 0i64);
        loop {
            let Value::Array(reply) = conn.call(&["SCAN", &cursor, "COUNT", "1000"]) else { panic!("SCAN reply") };
            let mut reply = reply.into_iter();
            let Some(Value::Bulk(next)) = reply.next() else { panic!("SCAN cursor") };
            keys += strings(reply.next().expect("SCAN keys")).len() as i64;
            cursor = String::from_utf8(next).unwrap();
            if cursor == "0" {
                break;
            }
        }
        assert_eq!(int(conn.call(&["DBSIZE"])), keys, "cycle {cycle}: DBSIZE against the keys SCAN finds");
    }
    eprintln!(
        "{policy}, {io_threads} io-threads: {} crash cycles, {total_acked} acknowledged writes, none lost",
        cycles()
    );
}

#[test]
fn kill_9_under_load_loses_nothing_with_appendfsync_always() {
    crash_cycles("always", "1");
}

/// The writers spread over two connection threads: each thread's
/// connections wait on the other's group fsync as well as their own.
#[test]
fn kill_9_under_load_loses_nothing_with_appendfsync_always_on_two_io_threads() {
    crash_cycles("always", "2");
}

#[test]
fn kill_9_under_load_loses_nothing_with_appendfsync_everysec() {
    // The log is handed to the OS before any reply, so a process crash
    // loses nothing under everysec either; only an OS crash could lose up
    // to a second.
    crash_cycles("everysec", "1");
}
