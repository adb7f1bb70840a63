//! Log records are slot-decomposable: the effects of a slot range, taken
//! out of a node's log (`strata_engines::slots`), applied to an empty node
//! give it exactly the source's keys of the range, of every type and in
//! every database, with TTLs, and key counts exact per slot.

use std::ops::RangeInclusive;

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use strata::client::Client;
use strata::protocol::Reply;
use strata::recovery;
use strata::server::Server;
use strata_engines::log::LogCursor;
use strata_engines::memory::checkpoint::{CheckpointWriter, ShardBody};
use strata_engines::memory::{MemShard, SHARDS};
use strata_engines::slots::{SlotExtractor, SlotImport};
use strata_engines::RocksEngine;

fn run(server: &Server, client: &mut Client, args: &[&str]) -> Reply {
    let argv: Vec<Bytes> = args.iter().map(|a| Bytes::copy_from_slice(a.as_bytes())).collect();
    strata::commands::dispatch(server, client, &argv)
}

/// One random command (or a MULTI of several) on keys `k0..k59`, in
/// database 0 or 1; FLUSHDB among them when `flushing`.
fn random_commands(rng: &mut StdRng, flushing: bool) -> Vec<Vec<String>> {
    let key = |rng: &mut StdRng| format!("k{}", rng.random_range(0..60));
    let n = |rng: &mut StdRng| rng.random_range(0..20).to_string();
    let one = |rng: &mut StdRng| -> Vec<String> {
        let k = key(rng);
        match rng.random_range(0..16) {
            0 => vec!["SET".into(), k, n(rng)],
            1 => vec!["SET".into(), k, n(rng), "EX".into(), "1000".into()],
            2 => vec!["DEL".into(), k],
            3 => vec!["HSET".into(), k, n(rng), n(rng)],
            4 => vec!["HDEL".into(), k, n(rng)],
            5 => vec!["RPUSH".into(), k, n(rng), n(rng)],
            6 => vec!["LPOP".into(), k],
            7 => vec!["SADD".into(), k, n(rng)],
            8 => vec!["SREM".into(), k, n(rng)],
            9 => vec!["ZADD".into(), k, n(rng), n(rng)],
            10 => vec!["XADD".into(), k, "*".into(), "f".into(), n(rng)],
            11 => vec!["EXPIRE".into(), k, "2000".into()],
            12 => vec!["PERSIST".into(), k],
            13 => vec!["RENAME".into(), k, key(rng)],
            14 => vec!["INCR".into(), k],
            _ => vec!["SELECT".into(), rng.random_range(0..2).to_string()],
        }
    };
    match rng.random_range(0..400) {
        0 if flushing => vec![vec!["FLUSHDB".into()]],
        1..=4 => vec![vec!["SWAPDB".into(), "0".into(), "1".into()]],
        5..=40 => {
            let mut commands = vec![vec!["MULTI".to_string()]];
            for _ in 0..rng.random_range(1..5) {
                commands.push(one(rng));
            }
            if flushing && rng.random_range(0..10) == 0 {
                commands.insert(2, vec!["FLUSHDB".into()]);
            }
            commands.push(vec!["EXEC".into()]);
            commands
        }
        _ => vec![one(rng)],
    }
}

fn slot(key: &str) -> u16 {
    strata_cluster::key_slot(key.as_bytes())
}

/// What a key holds, as commands show it (every type; the TTL's deadline).
fn contents(server: &Server, client: &mut Client, key: &str) -> Vec<Reply> {
    let kind = run(server, client, &["TYPE", key]);
    let Reply::Status(kind) = kind else { panic!("{kind:?}") };
    let value = match kind {
        "string" => run(server, client, &["GET", key]),
        "hash" => run(server, client, &["HGETALL", key]),
        "list" => run(server, client, &["LRANGE", key, "0", "-1"]),
        "set" => run(server, client, &["SMEMBERS", key]),
        "zset" => run(server, client, &["ZRANGE", key, "0", "-1", "WITHSCORES"]),
        "stream" => run(server, client, &["XRANGE", key, "-", "+"]),
        other => panic!("type {other}"),
    };
    vec![Reply::Status(kind), value, run(server, client, &["PEXPIRETIME", key])]
}

#[test]
fn a_slot_ranges_effects_applied_to_an_empty_node_give_it_the_sources_keys_of_the_range() {
    for seed in 0..6 {
        extract_and_compare(seed);
    }
}

/// A random workload (FLUSHDB and SWAPDB among it, then a quieter end so
/// that the databases hold keys), its records' effects on two slot ranges
/// applied to an empty node, and both nodes compared.
fn extract_and_compare(seed: u64) {
    let ranges: Vec<RangeInclusive<u16>> = vec![0..=5000, 12000..=16383];
    let in_ranges = |slot: u16| ranges.iter().any(|r| r.contains(&slot));
    let (source_dir, target_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (source, mut client) = Server::open_in_process(source_dir.path()).unwrap();
    let mut rng = StdRng::seed_from_u64(seed);
    for i in 0..4000 {
        for command in random_commands(&mut rng, i < 3000) {
            let words: Vec<&str> = command.iter().map(String::as_str).collect();
            run(&source, &mut client, &words);
        }
    }
    run(&source, &mut client, &["SELECT", "0"]);

    // Every record from the first, as the source's log holds them.
    let log = &source.keyspace.log;
    log.write_through(log.last_seq()).unwrap();
    let databases = source.keyspace.databases() as u32;
    let mut extractor = SlotExtractor::new(ranges.clone(), (0..databases).collect());
    let engine = RocksEngine::open(&recovery::rocks_dir(target_dir.path()), &Default::default()).unwrap();
    let mut shards: Vec<MemShard> = (0..SHARDS).map(|_| MemShard::default()).collect();
    let mut import = SlotImport::new(&engine, &mut shards, ranges.clone(), (0..databases).collect());
    let mut cursor = LogCursor::open(log.dir(), 0).unwrap();
    let (mut records, mut flushes) = (0, 0);
    while let Some(record) = cursor.next_record(log.written_seq()).unwrap() {
        let effects = extractor.extract(&source.keyspace.store.engine, &record).unwrap();
        flushes += effects.flushed.len();
        import.apply(&effects).unwrap();
        records += 1;
    }
    let last = cursor.position();
    assert_eq!(last, log.last_seq());
    assert!(records > 1500 && flushes > 3, "{records} records, {flushes} flushes");
    // The target as a data directory at the source's last sequence.
    engine.stamp_applied_seq(last).unwrap();
    drop(import);
    drop(engine);
    let mut writer = CheckpointWriter::create(&recovery::checkpoint_dir(target_dir.path()), SHARDS).unwrap();
    for shard in &shards {
        writer.shard(last, &ShardBody::of(shard)).unwrap();
    }
    writer.finish().unwrap();
    let (target, mut target_client) = Server::open_in_process(target_dir.path()).unwrap();

    for db in ["0", "1"] {
        run(&source, &mut client, &["SELECT", db]);
        run(&target, &mut target_client, &["SELECT", db]);
        let Reply::Array(keys) = run(&source, &mut client, &["KEYS", "*"]) else { panic!("KEYS") };
        let keys: Vec<String> = keys
            .into_iter()
            .map(|k| match k {
                Reply::Bulk(k) => String::from_utf8(k.to_vec()).unwrap(),
                other => panic!("{other:?}"),
            })
            .filter(|k| in_ranges(slot(k)))
            .collect();
        assert!(keys.len() > 10, "db {db}: {} keys in the ranges", keys.len());
        for key in &keys {
            let theirs = contents(&target, &mut target_client, key);
            assert_eq!(contents(&source, &mut client, key), theirs, "seed {seed} db {db} key {key}");
        }
        let dbsize = run(&target, &mut target_client, &["DBSIZE"]);
        assert_eq!(dbsize, Reply::Integer(keys.len() as i64), "db {db}: only the range's keys");
        // Per slot, the counts are the source's.
        let index: usize = db.parse().unwrap();
        let (ours, theirs) = (source.keyspace.store.physical(index), target.keyspace.store.physical(index));
        let (ours, theirs) = (source.keyspace.store.counters(ours), target.keyspace.store.counters(theirs));
        for slot in 0..strata_cluster::SLOT_COUNT as u16 {
            let expected = if in_ranges(slot) { ours.keys_in_slot(slot) } else { 0 };
            assert_eq!(theirs.keys_in_slot(slot), expected, "db {db} slot {slot}");
        }
    }
}
