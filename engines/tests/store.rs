//! The RocksDB engine on a real temporary database: the write set's merged
//! view against a model, the compaction filters, counters across reopen.

use std::collections::BTreeMap;

use proptest::prelude::*;
use strata_engines::encoding::{encode_meta, meta_key, HashBody, KeyType};
use strata_engines::keyspace::{KeyMeta, KeyRef, Store};
use strata_engines::{Cf, RocksConfig, RocksEngine, WriteSet};

fn scan_all(ws: &WriteSet, reverse: bool, limit: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut out = Vec::new();
    ws.scan(Cf::Meta, b"", b"\xff\xff", reverse, &mut |k, v| {
        out.push((k.to_vec(), v.to_vec()));
        out.len() < limit
    })
    .unwrap();
    out
}

#[derive(Debug, Clone)]
enum Op {
    Put(u8, u8),
    Delete(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![(0u8..20, any::<u8>()).prop_map(|(k, v)| Op::Put(k, v)), (0u8..20).prop_map(Op::Delete)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]

    /// Committed data plus pending writes must read like one map.
    #[test]
    fn write_set_reads_like_a_map(committed in prop::collection::vec(op(), 0..30),
                                  pending in prop::collection::vec(op(), 0..30),
                                  limit in 1usize..25) {
        let dir = tempfile::tempdir().unwrap();
        let engine = RocksEngine::open(dir.path(), &RocksConfig::default()).unwrap();
        let mut model = BTreeMap::new();
        let mut ws = WriteSet::new(&engine);
        for op in &committed {
            match op {
                Op::Put(k, v) => { ws.put(Cf::Meta, vec![*k], vec![*v]); model.insert(vec![*k], vec![*v]); }
                Op::Delete(k) => { ws.delete(Cf::Meta, vec![*k]); model.remove(&vec![*k]); }
            }
        }
        ws.commit().unwrap();
        let mut ws = WriteSet::new(&engine);
        for op in &pending {
            match op {
                Op::Put(k, v) => { ws.put(Cf::Meta, vec![*k], vec![*v]); model.insert(vec![*k], vec![*v]); }
                Op::Delete(k) => { ws.delete(Cf::Meta, vec![*k]); model.remove(&vec![*k]); }
            }
        }
        let forward: Vec<_> = model.iter().take(limit).map(|(k, v)| (k.clone(), v.clone())).collect();
        let backward: Vec<_> = model.iter().rev().take(limit).map(|(k, v)| (k.clone(), v.clone())).collect();
        prop_assert_eq!(scan_all(&ws, false, limit), forward);
        prop_assert_eq!(scan_all(&ws, true, limit), backward);
        for k in 0u8..20 {
            prop_assert_eq!(ws.get(Cf::Meta, &[k]).unwrap(), model.get(&vec![k]).cloned());
        }
        ws.commit().unwrap();
        let ws = WriteSet::new(&engine);
        prop_assert_eq!(scan_all(&ws, false, usize::MAX), model.into_iter().collect::<Vec<_>>());
    }
}

#[test]
fn deleted_hash_fields_are_dropped_by_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &RocksConfig::default(), 16).unwrap();
    let k = KeyRef { db: store.physical(0), slot: 7, key: b"h" };
    let mut txn = store.txn();
    let body = txn.new_hash_body();
    for i in 0..100u32 {
        let mut field = k.sub_prefix(body.version);
        field.extend_from_slice(&i.to_be_bytes());
        txn.ws.put(Cf::Sub, field, b"v".to_vec());
    }
    let meta = KeyMeta { key_type: KeyType::Hash, expire_ms: 0, body: HashBody { len: 100, ..body }.encode().to_vec() };
    txn.put_meta(&k, None, &meta);
    txn.commit().unwrap();

    let count_fields = |store: &Store| {
        let mut n = 0;
        store
            .engine
            .scan(Cf::Sub, b"", b"\xff\xff\xff\xff", false, &mut |_, _| {
                n += 1;
                true
            })
            .unwrap();
        n
    };
    store.engine.flush().unwrap();
    store.engine.compact_all();
    assert_eq!(count_fields(&store), 100, "live fields survive compaction");

    let mut txn = store.txn();
    txn.delete_key(&k, &meta).unwrap();
    txn.commit().unwrap();
    store.engine.flush().unwrap();
    store.engine.compact_all();
    assert_eq!(count_fields(&store), 0, "fields of a deleted hash are dropped");
}

/// Several hashes side by side, one deleted and one recreated with a new
/// version: each compaction keeps exactly the live version's fields.
#[test]
fn compaction_keeps_the_live_version_of_each_hash() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &RocksConfig::default(), 16).unwrap();
    let write_hash = |key: &'static [u8], fields: u32| {
        let k = KeyRef { db: store.physical(0), slot: 3, key };
        let mut txn = store.txn();
        let old = txn.meta(&k).unwrap();
        if let Some(old) = &old {
            txn.delete_key(&k, old).unwrap();
        }
        let body = txn.new_hash_body();
        for i in 0..fields {
            let mut field = k.sub_prefix(body.version);
            field.extend_from_slice(&i.to_be_bytes());
            txn.ws.put(Cf::Sub, field, b"v".to_vec());
        }
        let meta = KeyMeta {
            key_type: KeyType::Hash,
            expire_ms: 0,
            body: HashBody { len: fields as u64, ..body }.encode().to_vec(),
        };
        txn.put_meta(&k, old.as_ref(), &meta);
        txn.commit().unwrap();
        (k, meta, body.version)
    };
    let fields_by_key = |store: &Store| {
        let mut seen = BTreeMap::new();
        store
            .engine
            .scan(Cf::Sub, b"", b"\xff\xff\xff\xff", false, &mut |raw, _| {
                let sub = strata_engines::encoding::decode_sub_key(raw).unwrap();
                *seen.entry((sub.key.to_vec(), sub.version)).or_insert(0) += 1;
                true
            })
            .unwrap();
        seen
    };
    let (_, _, a) = write_hash(b"a", 10);
    let (kb, meta_b, _) = write_hash(b"b", 20);
    write_hash(b"c", 30);
    store.engine.flush().unwrap();
    let (_, _, c) = write_hash(b"c", 5);
    let mut txn = store.txn();
    txn.delete_key(&kb, &meta_b).unwrap();
    txn.commit().unwrap();
    store.engine.flush().unwrap();
    store.engine.compact_all();
    let expected = [((b"a".to_vec(), a), 10), ((b"c".to_vec(), c), 5)].into_iter().collect();
    assert_eq!(fields_by_key(&store), expected);
}

#[test]
fn counters_and_db_map_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path(), &RocksConfig::default(), 16).unwrap();
        let mut txn = store.txn();
        for i in 0..10u8 {
            let key = [i];
            let k = KeyRef { db: store.physical(0), slot: 0, key: &key };
            let expire = if i < 3 { u64::MAX / 2 } else { 0 };
            txn.put_meta(&k, None, &KeyMeta { key_type: KeyType::String, expire_ms: expire, body: vec![i] });
        }
        txn.commit().unwrap();
        let mut txn = store.txn();
        store.swap_databases(&mut txn, 0, 5);
        txn.commit().unwrap();
        assert_eq!(store.counters(store.physical(5)).keys.load(std::sync::atomic::Ordering::Relaxed), 10);
        // Without a log, what RocksDB holds after a close is what it flushed.
        store.engine.flush().unwrap();
    }
    let store = Store::open(dir.path(), &RocksConfig::default(), 16).unwrap();
    let counters = store.counters(store.physical(5));
    assert_eq!(counters.keys.load(std::sync::atomic::Ordering::Relaxed), 10);
    assert_eq!(counters.expires.load(std::sync::atomic::Ordering::Relaxed), 3);
    assert_eq!(store.counters(store.physical(0)).keys.load(std::sync::atomic::Ordering::Relaxed), 0);
    let mut txn = store.txn();
    txn.flush_database(store.physical(5));
    txn.commit().unwrap();
    assert_eq!(store.counters(store.physical(5)).keys.load(std::sync::atomic::Ordering::Relaxed), 0);
    let ws = WriteSet::new(&store.engine);
    assert_eq!(ws.get(Cf::Meta, &meta_key(store.physical(5), 0, &[1])).unwrap(), None);
}

#[test]
fn corrupt_metadata_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &RocksConfig::default(), 1).unwrap();
    let k = KeyRef { db: store.physical(0), slot: 1, key: b"bad" };
    let mut ws = WriteSet::new(&store.engine);
    ws.put(Cf::Meta, k.meta_key(), vec![200, 1, 2]);
    ws.commit().unwrap();
    let mut txn = store.txn();
    assert!(txn.meta(&k).is_err());
    // A well-formed record next to it still reads.
    let good = KeyRef { db: store.physical(0), slot: 1, key: b"good" };
    let mut ws = WriteSet::new(&store.engine);
    ws.put(Cf::Meta, good.meta_key(), encode_meta(KeyType::String, 0, b"v"));
    ws.commit().unwrap();
    assert_eq!(txn.meta(&good).unwrap().unwrap().body, b"v");
}

#[test]
fn a_due_entry_whose_key_went_meanwhile_is_not_uncounted_again() {
    // Active expiry scans the index without locks: the key it found may be
    // deleted (DEL, FLUSHALL, both counting their own deletes) before it
    // takes the key's shard lock to reap it.
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &RocksConfig::default(), 16).unwrap();
    let physical = store.physical(0);
    let counted = |what: &str| {
        let counters = store.counters(physical);
        let value = if what == "keys" { &counters.keys } else { &counters.expires };
        value.load(std::sync::atomic::Ordering::Relaxed)
    };
    // How the key goes before the reap, and what is counted after.
    type Delete<'a> = &'a dyn Fn(&mut strata_engines::keyspace::Txn, &KeyRef);
    let deletes: [(Delete, (i64, i64)); 3] = [
        (
            &|txn, k| {
                let meta = txn.raw_meta(k).unwrap().expect("still there");
                txn.delete_key(k, &meta).unwrap();
            },
            (0, 0),
        ),
        (&|txn, _| txn.flush_database(physical), (0, 0)),
        // As the compaction filter drops an expired key: its metadata only,
        // still counted, which the reap uncounts.
        (&|txn, k| txn.ws.delete(Cf::Meta, k.meta_key()), (1, 1)),
    ];
    for (delete, counted_before_reap) in deletes {
        let k = KeyRef { db: physical, slot: 7, key: b"volatile" };
        let mut txn = store.txn();
        txn.put_meta(&k, None, &KeyMeta { key_type: KeyType::String, expire_ms: 1, body: b"v".to_vec() });
        txn.commit().unwrap();
        assert_eq!((counted("keys"), counted("expires")), (1, 1));
        let due = store.due_expirations(physical, strata_engines::now_ms(), 10).unwrap();
        assert_eq!(due, [(7, b"volatile".to_vec(), 1)]);
        let mut txn = store.txn();
        delete(&mut txn, &k);
        txn.commit().unwrap();
        assert_eq!((counted("keys"), counted("expires")), counted_before_reap);
        for (slot, key, expire) in due {
            let mut txn = store.txn();
            assert!(!txn.reap(&KeyRef { db: physical, slot, key: &key }, expire).unwrap());
            txn.commit().unwrap();
        }
        assert_eq!((counted("keys"), counted("expires")), (0, 0), "counted once");
        assert!(store.due_expirations(physical, strata_engines::now_ms(), 10).unwrap().is_empty());
    }
}
