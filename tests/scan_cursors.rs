//! SCAN, SSCAN, HSCAN and ZSCAN cursors hold their whole position: any
//! number of scans may run at once without the server keeping anything for
//! them, a scan never loses its place, every element present throughout an
//! iteration is returned, and any cursor a client makes up leads to the end.

mod common;

use std::collections::{BTreeSet, HashSet};

use common::{encode, Conn, TestServer, Value};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// What a scan walks over.
#[derive(Clone, Copy, Debug)]
enum Kind {
    /// SCAN over the keys of the database (strings, sets and lists mixed).
    Keys,
    Set,
    Hash,
    ZSet,
}

const KINDS: [Kind; 4] = [Kind::Keys, Kind::Set, Kind::Hash, Kind::ZSet];

impl Kind {
    /// The key scanned (unused by SCAN).
    fn key(self) -> &'static [u8] {
        match self {
            Kind::Keys => b"",
            Kind::Set => b"the-set",
            Kind::Hash => b"the-hash",
            Kind::ZSet => b"the-zset",
        }
    }

    fn add(self, conn: &mut Conn, element: &[u8]) {
        let reply = match self {
            // Both engines, so SCAN merges them.
            Kind::Keys => match element.len() % 3 {
                0 => conn.call_bytes(&[b"SADD", element, b"m"]),
                1 => conn.call_bytes(&[b"RPUSH", element, b"v"]),
                _ => conn.call_bytes(&[b"SET", element, b"v"]),
            },
            Kind::Set => conn.call_bytes(&[b"SADD", self.key(), element]),
            Kind::Hash => conn.call_bytes(&[b"HSET", self.key(), element, b"v"]),
            Kind::ZSet => conn.call_bytes(&[b"ZADD", self.key(), b"1", element]),
        };
        assert!(matches!(reply, Value::Int(_) | Value::Status(_)), "{reply:?}");
    }

    fn remove(self, conn: &mut Conn, element: &[u8]) {
        match self {
            Kind::Keys => conn.call_bytes(&[b"DEL", element]),
            Kind::Set => conn.call_bytes(&[b"SREM", self.key(), element]),
            Kind::Hash => conn.call_bytes(&[b"HDEL", self.key(), element]),
            Kind::ZSet => conn.call_bytes(&[b"ZREM", self.key(), element]),
        };
    }

    fn command(self, cursor: &[u8], count: usize) -> Vec<u8> {
        let count = count.to_string();
        match self {
            Kind::Keys => encode(&[b"SCAN", cursor, b"COUNT", count.as_bytes()]),
            Kind::Set => encode(&[b"SSCAN", self.key(), cursor, b"COUNT", count.as_bytes()]),
            Kind::Hash => encode(&[b"HSCAN", self.key(), cursor, b"COUNT", count.as_bytes()]),
            Kind::ZSet => encode(&[b"ZSCAN", self.key(), cursor, b"COUNT", count.as_bytes()]),
        }
    }

    /// The next cursor and the elements of a reply.
    fn parse(self, reply: Value) -> (Vec<u8>, Vec<Vec<u8>>) {
        let Value::Array(parts) = reply else { panic!("{self:?} reply {reply:?}") };
        let [Value::Bulk(cursor), Value::Array(items)] = &parts[..] else { panic!("{self:?} reply {parts:?}") };
        let items = items.iter().map(|item| match item {
            Value::Bulk(b) => b.clone(),
            other => panic!("{other:?}"),
        });
        // HSCAN and ZSCAN alternate elements with values or scores.
        let step = if matches!(self, Kind::Hash | Kind::ZSet) { 2 } else { 1 };
        (cursor.clone(), items.step_by(step).collect())
    }

    fn call(self, conn: &mut Conn, cursor: &[u8], count: usize) -> (Vec<u8>, Vec<Vec<u8>>) {
        conn.send_raw(&self.command(cursor, count));
        self.parse(conn.read().expect("reply"))
    }

    /// Calls from `cursor` until the scan ends; every element returned.
    fn finish(self, conn: &mut Conn, mut cursor: Vec<u8>, count: usize) -> Vec<Vec<u8>> {
        let mut seen = Vec::new();
        for _ in 0..100_000 {
            let (next, items) = self.call(conn, &cursor, count);
            seen.extend(items);
            if next == b"0" {
                return seen;
            }
            cursor = next;
        }
        panic!("{self:?} scan does not end");
    }
}

fn used_memory(conn: &mut Conn) -> i64 {
    let Value::Bulk(info) = conn.call(&["INFO", "memory"]) else { panic!("INFO") };
    let info = String::from_utf8(info).unwrap();
    let line = info.lines().find(|l| l.starts_with("used_memory:")).expect("used_memory");
    line["used_memory:".len()..].trim().parse().unwrap()
}

fn sorted(items: impl IntoIterator<Item = Vec<u8>>) -> Vec<Vec<u8>> {
    let mut items: Vec<_> = items.into_iter().collect();
    items.sort();
    items
}

/// The cursor table this replaces remembered 16,384 positions: a scan that
/// many other scans overtook started again from the beginning.
#[test]
fn a_scan_keeps_its_place_while_17000_other_scans_run() {
    let server = TestServer::start();
    let mut conn = server.conn();
    let elements: Vec<Vec<u8>> = (0..300).map(|i| format!("element:{i:06}").into_bytes()).collect();
    for kind in [Kind::Set, Kind::Hash, Kind::ZSet] {
        for element in &elements {
            kind.add(&mut conn, element);
        }
    }
    for element in &elements {
        Kind::Keys.add(&mut conn, element);
    }
    for i in 0..300 {
        conn.call(&["SADD", "other", &format!("m{i}")]);
    }
    // Every scan takes its first step.
    let mut started = Vec::new();
    for kind in KINDS {
        let (cursor, items) = kind.call(&mut conn, b"0", 10);
        assert_ne!(cursor, b"0");
        started.push((kind, cursor, items));
    }
    // 17,000 other scans, pipelined, each leaving a cursor behind.
    for _ in 0..17 {
        let mut batch = Vec::new();
        for _ in 0..1000 {
            batch.extend(encode(&[b"SSCAN", b"other", b"0", b"COUNT", b"10"]));
        }
        conn.send_raw(&batch);
        for _ in 0..1000 {
            let (cursor, _) = Kind::Set.parse(conn.read().expect("reply"));
            assert_ne!(cursor, b"0");
        }
    }
    // The first scans go on where they were: each element exactly once.
    let all_keys = sorted(
        elements
            .iter()
            .cloned()
            .chain(["the-set", "the-hash", "the-zset", "other"].into_iter().map(|k| k.as_bytes().to_vec())),
    );
    for (kind, cursor, mut seen) in started {
        seen.extend(kind.finish(&mut conn, cursor, 10));
        let expected = if matches!(kind, Kind::Keys) { all_keys.clone() } else { elements.clone() };
        assert_eq!(sorted(seen), expected, "{kind:?}");
    }
}

/// Scans in progress over big elements pin nothing: the cursor table this
/// replaces kept a copy of an element per cursor.
#[test]
fn many_scans_in_progress_over_big_elements_hold_no_memory() {
    // More than 128, so that ZSCAN does not answer in one reply.
    let big: Vec<Vec<u8>> = (0..130).map(|i| [format!("{i:04}").as_bytes(), &[b'x'; 32 * 1024]].concat()).collect();
    for kind in KINDS {
        let server = TestServer::start();
        let mut conn = server.conn();
        for element in &big {
            kind.add(&mut conn, element);
        }
        // The checkpoint and the write-back to RocksDB run now rather than
        // in the background while measuring.
        assert_eq!(conn.call(&["SAVE"]), Value::Status("OK".into()));
        // One whole iteration first, so that whatever a scan sets up once
        // (buffers) is there before measuring.
        kind.finish(&mut conn, b"0".to_vec(), 1);
        let before = settled_used_memory(&mut conn);
        // One at a time: pipelined replies would queue up in the server.
        for _ in 0..500 {
            let (cursor, _) = kind.call(&mut conn, b"0", 1);
            assert_ne!(cursor, b"0", "{kind:?}");
        }
        let grown = used_memory(&mut conn) - before;
        // 500 scans in progress; a copy of an element each would be 16 MB.
        assert!(grown < 4 << 20, "{kind:?}: used_memory grew by {grown} bytes");
    }
}

/// `used_memory` once the background work a SAVE leaves (freeing its
/// copies, the write-back's next pass) is over: unchanged for half a second.
fn settled_used_memory(conn: &mut Conn) -> i64 {
    let mut last = used_memory(conn);
    let mut same = 0;
    for _ in 0..200 {
        std::thread::sleep(std::time::Duration::from_millis(50));
        let now = used_memory(conn);
        same = if now == last { same + 1 } else { 0 };
        last = now;
        if same == 10 {
            break;
        }
    }
    last
}

/// An element name: a few families sharing long prefixes (HSCAN and SCAN
/// resume at a prefix), with random tails.
fn element(rng: &mut StdRng) -> Vec<u8> {
    let families: [&[u8]; 5] = [b"user:00000000", b"user:1", b"a", b"\xff\xfe", b"session:2024-01-15T10:"];
    let mut name = families[rng.random_range(0..families.len())].to_vec();
    name.extend(rng.random_range(0..100_000u32).to_string().bytes());
    name
}

#[test]
fn elements_present_throughout_are_returned_while_others_come_and_go() {
    let server = TestServer::start();
    let mut conn = server.conn();
    let mut rng = StdRng::seed_from_u64(11);
    for kind in KINDS {
        for round in 0..4 {
            conn.call(&["FLUSHALL"]);
            let initial: BTreeSet<Vec<u8>> = (0..rng.random_range(100..400)).map(|_| element(&mut rng)).collect();
            for element in &initial {
                kind.add(&mut conn, element);
            }
            let stable: BTreeSet<Vec<u8>> = initial.iter().filter(|_| rng.random_bool(0.7)).cloned().collect();
            let mut present: BTreeSet<Vec<u8>> = initial.clone();
            let count = rng.random_range(1..30);
            let (mut cursor, mut seen) = (b"0".to_vec(), HashSet::new());
            for call in 0.. {
                assert!(call < 10_000, "{kind:?} round {round}: the scan does not end");
                let (next, items) = kind.call(&mut conn, &cursor, count);
                seen.extend(items);
                if next == b"0" {
                    break;
                }
                cursor = next;
                for _ in 0..rng.random_range(0..4) {
                    let new = element(&mut rng);
                    kind.add(&mut conn, &new);
                    present.insert(new);
                }
                let removable: Vec<Vec<u8>> = present.difference(&stable).cloned().collect();
                for _ in 0..rng.random_range(0..4).min(removable.len()) {
                    let gone = &removable[rng.random_range(0..removable.len())];
                    kind.remove(&mut conn, gone);
                    present.remove(gone);
                }
            }
            let missed: Vec<String> =
                stable.iter().filter(|e| !seen.contains(*e)).map(|e| String::from_utf8_lossy(e).into()).collect();
            assert!(missed.is_empty(), "{kind:?} round {round} (COUNT {count}) missed {missed:?}");
        }
    }
}

#[test]
fn made_up_cursors_are_accepted_and_lead_to_the_end() {
    let server = TestServer::start();
    let mut conn = server.conn();
    let mut rng = StdRng::seed_from_u64(12);
    let elements: BTreeSet<Vec<u8>> = (0..300).map(|_| element(&mut rng)).collect();
    for kind in KINDS {
        for element in &elements {
            kind.add(&mut conn, element);
        }
    }
    let all_keys: HashSet<Vec<u8>> =
        elements.iter().cloned().chain([b"the-set".to_vec(), b"the-hash".to_vec(), b"the-zset".to_vec()]).collect();
    let mut cursors: Vec<String> =
        ["1", "2", "-1", "9223372036854775807", "9223372036854775808", "18446744073709551615"]
            .map(String::from)
            .to_vec();
    cursors.extend((0..40).map(|_| rng.random::<u64>().to_string()));
    cursors.extend((0..40).map(|_| (rng.random::<u64>() >> 1).to_string()));
    for kind in KINDS {
        for cursor in &cursors {
            let seen = kind.finish(&mut conn, cursor.clone().into_bytes(), 10);
            for item in seen {
                let known =
                    if matches!(kind, Kind::Keys) { all_keys.contains(&item) } else { elements.contains(&item) };
                assert!(known, "{kind:?} from cursor {cursor} returned {item:?}");
            }
        }
    }
}
