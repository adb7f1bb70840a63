//! Model-based test of the hash engine: random HSET/HDEL/HINCRBY/HGET/HLEN/
//! HGETALL/DEL sequences run against the real server and a `BTreeMap`
//! model, which must agree after every step and again after restarts.

mod common;

use std::collections::BTreeMap;

use common::{Conn, TestServer, Value};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

type Model = BTreeMap<Vec<u8>, BTreeMap<Vec<u8>, Vec<u8>>>;

const KEYS: [&[u8]; 4] = [b"h0", b"h1", b"bin\x00\xffkey", b"h\r\n3"];
const FIELDS: [&[u8]; 8] = [b"a", b"b", b"", b"\x00", b"\xff\xfe", b"a\x00", b"ab", b"long-field-name"];

fn int(value: i64) -> Value {
    Value::Int(value)
}

fn error(text: &str) -> Value {
    Value::Error(text.to_string())
}

fn random_value(rng: &mut StdRng) -> Vec<u8> {
    match rng.random_range(0..6) {
        0 => rng.random_range(-100i64..100).to_string().into_bytes(),
        1 => i64::MAX.to_string().into_bytes(),
        2 => i64::MIN.to_string().into_bytes(),
        3 => b"not a number\r\n\x00".to_vec(),
        4 => Vec::new(),
        _ => (0..rng.random_range(1..300)).map(|_| rng.random::<u8>()).collect(),
    }
}

/// Runs one random command on the server and the model; returns the key it
/// touched. Panics when the replies differ.
fn step(rng: &mut StdRng, conn: &mut Conn, model: &mut Model, has_del: bool) -> Vec<u8> {
    let key = KEYS[rng.random_range(0..KEYS.len())].to_vec();
    let field = |rng: &mut StdRng| FIELDS[rng.random_range(0..FIELDS.len())].to_vec();
    let op = rng.random_range(0..if has_del { 7 } else { 6 });
    match op {
        0 => {
            let pairs: Vec<(Vec<u8>, Vec<u8>)> =
                (0..rng.random_range(1..4)).map(|_| (field(rng), random_value(rng))).collect();
            let mut args: Vec<&[u8]> = vec![b"HSET", &key];
            for (f, v) in &pairs {
                args.push(f);
                args.push(v);
            }
            let hash = model.entry(key.clone()).or_default();
            let mut created = 0;
            for (f, v) in &pairs {
                created += hash.insert(f.clone(), v.clone()).is_none() as i64;
            }
            assert_eq!(conn.call_bytes(&args), int(created), "HSET {key:?} {pairs:?}");
        }
        1 => {
            let fields: Vec<Vec<u8>> = (0..rng.random_range(1..4)).map(|_| field(rng)).collect();
            let mut args: Vec<&[u8]> = vec![b"HDEL", &key];
            args.extend(fields.iter().map(|f| f.as_slice()));
            let mut deleted = 0;
            if let Some(hash) = model.get_mut(&key) {
                for f in &fields {
                    deleted += hash.remove(f).is_some() as i64;
                }
                if hash.is_empty() {
                    model.remove(&key);
                }
            }
            assert_eq!(conn.call_bytes(&args), int(deleted), "HDEL {key:?} {fields:?}");
        }
        2 => {
            let f = field(rng);
            let by: i64 = match rng.random_range(0..4) {
                0 => i64::MAX,
                1 => i64::MIN,
                _ => rng.random_range(-1000..1000),
            };
            let current = model.get(&key).and_then(|h| h.get(&f)).cloned();
            let expected = match current {
                None => Ok(by),
                Some(raw) => match std::str::from_utf8(&raw).ok().and_then(|s| s.parse::<i64>().ok()) {
                    // Redis takes only canonical integers ("-0", "+1", "01" are not).
                    Some(n) if n.to_string().as_bytes() == raw.as_slice() => {
                        n.checked_add(by).ok_or("ERR increment or decrement would overflow")
                    }
                    _ => Err("ERR hash value is not an integer"),
                },
            };
            let reply = conn.call_bytes(&[b"HINCRBY", &key, &f, by.to_string().as_bytes()]);
            match expected {
                Ok(n) => {
                    model.entry(key.clone()).or_default().insert(f.clone(), n.to_string().into_bytes());
                    assert_eq!(reply, int(n), "HINCRBY {key:?} {f:?} {by}");
                }
                Err(text) => assert_eq!(reply, error(text), "HINCRBY {key:?} {f:?} {by}"),
            }
        }
        3 => {
            let f = field(rng);
            let expected = model.get(&key).and_then(|h| h.get(&f)).map_or(Value::Nil, |v| Value::Bulk(v.clone()));
            assert_eq!(conn.call_bytes(&[b"HGET", &key, &f]), expected, "HGET {key:?} {f:?}");
        }
        4 => {
            let len = model.get(&key).map_or(0, |h| h.len() as i64);
            assert_eq!(conn.call_bytes(&[b"HLEN", &key]), int(len), "HLEN {key:?}");
        }
        5 => check_key(conn, model, &key),
        _ => {
            let existed = model.remove(&key).is_some() as i64;
            assert_eq!(conn.call_bytes(&[b"DEL", &key]), int(existed), "DEL {key:?}");
        }
    }
    key
}

/// HGETALL and HLEN of one key agree with the model (as a map: the field
/// order is the server's business).
fn check_key(conn: &mut Conn, model: &Model, key: &[u8]) {
    let expected = model.get(key).cloned().unwrap_or_default();
    let Value::Array(items) = conn.call_bytes(&[b"HGETALL", key]) else {
        panic!("HGETALL {key:?} is not an array");
    };
    let mut actual = BTreeMap::new();
    for pair in items.chunks(2) {
        match pair {
            [Value::Bulk(f), Value::Bulk(v)] => {
                assert!(actual.insert(f.clone(), v.clone()).is_none(), "field {f:?} twice in HGETALL {key:?}");
            }
            other => panic!("HGETALL {key:?}: {other:?}"),
        }
    }
    assert_eq!(actual, expected, "HGETALL {key:?}");
    assert_eq!(conn.call_bytes(&[b"HLEN", key]), int(expected.len() as i64), "HLEN {key:?}");
}

fn check_all(conn: &mut Conn, model: &Model) {
    for key in KEYS {
        check_key(conn, model, key);
    }
    assert_eq!(conn.call(&["DBSIZE"]), int(model.len() as i64), "DBSIZE");
}

/// Whether the server has DEL yet, probed on a key the test never uses.
fn serves_del(conn: &mut Conn) -> bool {
    conn.call(&["DEL", "probe-key"]) == int(0)
}

fn run(seed: u64, steps: usize) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut server = TestServer::start();
    let mut conn = server.conn();
    // DEL belongs to the keyspace family; without it the sequences still
    // create and empty hashes through HSET and HDEL.
    let has_del = serves_del(&mut conn);
    let mut model = Model::new();
    for round in 0..3 {
        for _ in 0..steps {
            let key = step(&mut rng, &mut conn, &mut model, has_del);
            check_key(&mut conn, &model, &key);
        }
        check_all(&mut conn, &model);
        drop(conn);
        if round == 1 {
            server.crash_restart();
        } else {
            server.restart();
        }
        conn = server.conn();
        check_all(&mut conn, &model);
    }
}

#[test]
fn hashes_agree_with_a_model_seed_1() {
    run(1, 400);
}

#[test]
fn hashes_agree_with_a_model_seed_2() {
    run(0x0005_eed2, 400);
}

#[test]
fn hashes_agree_with_a_model_seed_3() {
    run(0xdead_beef, 400);
}
