//! Key-level bookkeeping over the RocksDB engine, shared by every command:
//! reading a key's metadata (with lazy expiry), creating, replacing and
//! deleting keys, TTLs and the expiry index, and per-database counters
//! (DBSIZE and INFO keyspace are O(1)).
//!
//! Every change of a key's existence or TTL goes through `Txn::put_meta` or
//! `Txn::delete_key`, so the counters and the expiry index cannot drift.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, Ordering};

use parking_lot::RwLock;

use crate::clock::now_ms;
use crate::encoding::{
    db_end, db_start, decode_expire_key, decode_meta_key, encode_meta, expire_key, meta_key, sub_prefix, HashBody,
    KeyType, Meta,
};
use crate::rocks::{Batch, BatchWrite, Cf, RocksEngine};
use crate::writeset::WriteSet;
use crate::EngineError;

const DB_MAP_KEY: &[u8] = b"dbmap";

/// Default-family key holding the hash versions' high-water mark: no
/// version handed out is above it. It goes into every batch that may use a
/// new version, so RocksDB plus the log replayed after its sequence give
/// it back at startup, whatever the clock says then.
const HASH_VERSION_KEY: &[u8] = b"hash_version";

/// The two key counters: keys, and keys with a TTL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Counter {
    Keys,
    Expires,
}

/// Where a slot's counter is stored: `slotcount/<physical BE><slot BE><0
/// keys | 1 expires>`. Counters are per hash slot, not per database: a log
/// record then holds the counts of the slots it changes only, so the
/// records of a slot range can be applied elsewhere with the counts exact
/// on both sides.
fn counter_key(physical: u32, slot: u16, counter: Counter) -> Vec<u8> {
    let mut key = counters_prefix(physical);
    key.extend_from_slice(&slot.to_be_bytes());
    key.push(counter as u8);
    key
}

fn counters_prefix(physical: u32) -> Vec<u8> {
    let mut key = Vec::with_capacity(COUNTERS_PREFIX.len() + 7);
    key.extend_from_slice(COUNTERS_PREFIX);
    key.extend_from_slice(&physical.to_be_bytes());
    key
}

const COUNTERS_PREFIX: &[u8] = b"slotcount/";

/// What a key of the default family is, as a log record's batch writes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerKey {
    /// A slot's key counter (absolute: the slot's count after the record).
    Counter { physical: u32, slot: u16 },
    /// The hash versions' high-water mark.
    HashVersion,
    /// The logical-to-physical database map (SWAPDB).
    DbMap,
}

impl ServerKey {
    pub fn of(key: &[u8]) -> Option<ServerKey> {
        if key == HASH_VERSION_KEY {
            return Some(ServerKey::HashVersion);
        }
        if key == DB_MAP_KEY {
            return Some(ServerKey::DbMap);
        }
        match key.strip_prefix(COUNTERS_PREFIX)? {
            &[a, b, c, d, hi, lo, 0 | 1] => Some(ServerKey::Counter {
                physical: u32::from_be_bytes([a, b, c, d]),
                slot: u16::from_be_bytes([hi, lo]),
            }),
            _ => None,
        }
    }
}

/// The counter key `key` (see `ServerKey::Counter`) moved to database
/// `physical`.
pub fn counter_key_in(key: &[u8], physical: u32) -> Vec<u8> {
    let mut moved = key.to_vec();
    moved[COUNTERS_PREFIX.len()..COUNTERS_PREFIX.len() + 4].copy_from_slice(&physical.to_be_bytes());
    moved
}

/// The database map a `DbMap` write holds: physical ids by logical index.
pub fn decode_db_map(raw: &[u8]) -> Vec<u32> {
    raw.chunks_exact(4).map(|c| u32::from_be_bytes(c.try_into().expect("4 bytes"))).collect()
}

/// Stores the database map `db_map` (physical ids by logical index) in
/// `batch`.
pub fn put_db_map(engine: &RocksEngine, batch: &mut Batch, db_map: &[u32]) {
    engine.put(batch, Cf::Default, DB_MAP_KEY.to_vec(), db_map.iter().flat_map(|p| p.to_be_bytes()).collect());
}

/// The hash versions' mark a `HashVersion` write holds.
pub fn decode_hash_version(raw: &[u8]) -> Option<u64> {
    raw.try_into().ok().map(u64::from_le_bytes)
}

/// The counter keys of database `physical`'s slots in `slots`, as a
/// range `[first, end)`.
pub fn counter_keys_of(physical: u32, slots: std::ops::RangeInclusive<u16>) -> (Vec<u8>, Vec<u8>) {
    let mut end = counters_prefix(physical);
    end.extend_from_slice(&(u32::from(*slots.end()) + 1).to_be_bytes()[2..]);
    (counter_key(physical, *slots.start(), Counter::Keys), end)
}

/// Raises the hash versions' mark stored in `engine` to `mark` (in
/// `batch`), never lowering it: a node importing hashes keeps its own
/// versions above theirs.
pub fn raise_hash_version(engine: &RocksEngine, batch: &mut Batch, mark: u64) -> Result<(), EngineError> {
    let stored = engine.get(Cf::Default, HASH_VERSION_KEY)?.and_then(|raw| decode_hash_version(&raw)).unwrap_or(0);
    if mark > stored {
        engine.put(batch, Cf::Default, HASH_VERSION_KEY.to_vec(), mark.to_le_bytes().to_vec());
    }
    Ok(())
}

/// What a store keeps live of what its engine holds: the database map
/// (physical ids by logical index, `databases` of them at least), each
/// database's key counters, and the hash versions' mark.
#[allow(clippy::type_complexity)]
fn load_state(
    engine: &RocksEngine,
    databases: usize,
) -> Result<(Vec<u32>, HashMap<u32, std::sync::Arc<DbCounters>>, u64), EngineError> {
    let mut db_map: Vec<u32> = engine.get(Cf::Default, DB_MAP_KEY)?.map_or_else(Vec::new, |raw| decode_db_map(&raw));
    // Databases added by a larger `databases` setting get fresh ids.
    while db_map.len() < databases {
        let next = db_map.iter().copied().max().map_or(0, |m| m + 1);
        db_map.push(next);
    }
    let mut counters = HashMap::new();
    for &physical in &db_map {
        let c = DbCounters::default();
        let (start, end) = (counters_prefix(physical), counters_prefix(physical + 1));
        let mut damaged = false;
        engine.scan(Cf::Default, &start, &end, false, &mut |key, value| {
            let (Some(&[hi, lo, which]), Ok(value)) = (key.get(start.len()..), <[u8; 8]>::try_from(value)) else {
                damaged = true;
                return false;
            };
            let counter = if which == 0 { Counter::Keys } else { Counter::Expires };
            c.add(u16::from_be_bytes([hi, lo]), counter, i64::from_le_bytes(value));
            true
        })?;
        if damaged {
            return Err(EngineError::Corrupt(format!("key counters of database {physical}")));
        }
        count_keys_of_an_older_format(engine, physical, &c)?;
        counters.insert(physical, std::sync::Arc::new(c));
    }
    // No mark: a new database, or one whose versions were clock
    // microseconds (far above anything this count will reach).
    let last_version =
        engine.get(Cf::Default, HASH_VERSION_KEY)?.and_then(|raw| decode_hash_version(&raw)).unwrap_or(0);
    Ok((db_map, counters, last_version))
}

/// A data directory written before counters were per slot holds one
/// counter per database: its keys are counted once, by slot, from their
/// metadata, and the old counters replaced (flushed at once: the log holds
/// no record of this).
fn count_keys_of_an_older_format(
    engine: &RocksEngine,
    physical: u32,
    counters: &DbCounters,
) -> Result<(), EngineError> {
    let old = |what: &str| format!("count/{physical}/{what}").into_bytes();
    if engine.get(Cf::Default, &old("keys"))?.is_none() && engine.get(Cf::Default, &old("expires"))?.is_none() {
        return Ok(());
    }
    engine.scan(Cf::Meta, &db_start(physical), &db_end(physical), false, &mut |key, value| {
        if let (Some((_, slot, _)), Some(meta)) = (decode_meta_key(key), Meta::decode(value)) {
            counters.add(slot, Counter::Keys, 1);
            if meta.expire_ms != 0 {
                counters.add(slot, Counter::Expires, 1);
            }
        }
        true
    })?;
    let mut batch = Batch::default();
    for (slot, counter, value) in counters.counted_slots() {
        engine.put(&mut batch, Cf::Default, counter_key(physical, slot, counter), value.to_le_bytes().to_vec());
    }
    engine.delete(&mut batch, Cf::Default, old("keys"));
    engine.delete(&mut batch, Cf::Default, old("expires"));
    engine.write(batch);
    engine.flush()
}

/// A transaction's changes to the key counters, by physical database, slot
/// and counter: a command has one or two, so a list beats hashing.
#[derive(Clone, Default)]
struct Deltas(Vec<((u32, u16, Counter), i64)>);

impl Deltas {
    fn get_mut(&mut self, counter: (u32, u16, Counter)) -> &mut i64 {
        let index = match self.0.iter().position(|(c, _)| *c == counter) {
            Some(index) => index,
            None => {
                self.0.push((counter, 0));
                self.0.len() - 1
            }
        };
        &mut self.0[index].1
    }
}

/// Live key counters of one physical database: its totals, and each hash
/// slot's (RocksDB stores the slots', see `counter_key`).
#[derive(Default)]
pub struct DbCounters {
    pub keys: AtomicI64,
    pub expires: AtomicI64,
    /// Keys and keys with a TTL, per slot; made when the database first
    /// holds a key (256 KB: most of the sixteen databases never do).
    slots: std::sync::OnceLock<Box<[[AtomicI64; 2]]>>,
}

impl DbCounters {
    fn total(&self, counter: Counter) -> &AtomicI64 {
        match counter {
            Counter::Keys => &self.keys,
            Counter::Expires => &self.expires,
        }
    }

    /// Adds `delta` to a slot's counter (and the total); the slot's new
    /// value.
    fn add(&self, slot: u16, counter: Counter, delta: i64) -> i64 {
        self.total(counter).fetch_add(delta, Ordering::Relaxed);
        let slots = self
            .slots
            .get_or_init(|| (0..strata_cluster::SLOT_COUNT).map(|_| [AtomicI64::new(0), AtomicI64::new(0)]).collect());
        slots[slot as usize][counter as usize].fetch_add(delta, Ordering::Relaxed) + delta
    }

    /// Sets a slot's counter (and moves the total with it).
    fn set(&self, slot: u16, counter: Counter, value: i64) {
        let now = self.slots.get().map_or(0, |slots| slots[slot as usize][counter as usize].load(Ordering::Relaxed));
        self.add(slot, counter, value - now);
    }

    /// The slots with something counted, with their values.
    fn counted_slots(&self) -> impl Iterator<Item = (u16, Counter, i64)> + '_ {
        self.slots.get().into_iter().flat_map(|slots| slots.iter()).enumerate().flat_map(|(slot, values)| {
            [Counter::Keys, Counter::Expires].into_iter().filter_map(move |counter| {
                let value = values[counter as usize].load(Ordering::Relaxed);
                (value != 0).then_some((slot as u16, counter, value))
            })
        })
    }

    /// The keys counted in `slot`.
    pub fn keys_in_slot(&self, slot: u16) -> i64 {
        self.slots.get().map_or(0, |slots| slots[slot as usize][Counter::Keys as usize].load(Ordering::Relaxed))
    }
}

/// A key's metadata, owned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyMeta {
    pub key_type: KeyType,
    pub expire_ms: u64,
    pub body: Vec<u8>,
}

impl KeyMeta {
    pub fn hash(&self) -> Result<HashBody, EngineError> {
        HashBody::decode(&self.body).ok_or_else(|| EngineError::Corrupt("hash metadata".into()))
    }
}

/// A key in a physical database, with its hash slot.
#[derive(Clone, Copy, Debug)]
pub struct KeyRef<'a> {
    pub db: u32,
    pub slot: u16,
    pub key: &'a [u8],
}

impl KeyRef<'_> {
    pub fn meta_key(&self) -> Vec<u8> {
        meta_key(self.db, self.slot, self.key)
    }

    pub fn sub_prefix(&self, version: u64) -> Vec<u8> {
        sub_prefix(self.db, self.slot, self.key, version)
    }
}

/// The RocksDB-resident keyspace: the engine, the logical→physical database
/// map (SWAPDB swaps two entries) and the counters.
pub struct Store {
    pub engine: RocksEngine,
    /// Logical database index -> physical id: read by every command, so
    /// plain atomics (a lock's counter would bounce between cores);
    /// changed only by SWAPDB, which holds every shard lock.
    db_map: Box<[AtomicU32]>,
    counters: RwLock<HashMap<u32, std::sync::Arc<DbCounters>>>,
    /// The last hash version handed out (see `new_version`).
    last_version: AtomicU64,
}

impl Store {
    /// Opens the engine in `dir` and the store over it, with no log (tests
    /// and tools).
    pub fn open(dir: &std::path::Path, config: &crate::RocksConfig, databases: usize) -> Result<Store, EngineError> {
        Store::new(RocksEngine::open(dir, config)?, databases)
    }

    /// The store over an opened (and recovered) engine.
    pub fn new(engine: RocksEngine, databases: usize) -> Result<Store, EngineError> {
        let (db_map, counters, last_version) = load_state(&engine, databases)?;
        let store = Store {
            engine,
            db_map: db_map.into_iter().map(AtomicU32::new).collect(),
            counters: RwLock::new(counters),
            last_version: AtomicU64::new(last_version),
        };
        store.persist_db_map()?;
        Ok(store)
    }

    /// Reads the database map, key counters and hash versions' mark again
    /// from the engine, whose contents were replaced
    /// (`RocksEngine::replace_contents`). Nobody may use the store meanwhile.
    pub fn reload(&self) -> Result<(), EngineError> {
        let (db_map, counters, last_version) = load_state(&self.engine, self.db_map.len())?;
        for (slot, physical) in self.db_map.iter().zip(db_map) {
            slot.store(physical, Ordering::Release);
        }
        *self.counters.write() = counters;
        self.last_version.store(last_version, Ordering::Relaxed);
        self.persist_db_map()
    }

    /// Follows what another node's batch writes (`RocksEngine::batch_of`)
    /// store as absolute values: slot counters, the database map and the
    /// hash versions' mark. A replica applies its master's records as they
    /// are, so its live values must become the master's.
    pub fn follow(&self, writes: &[BatchWrite]) {
        for write in writes {
            let (key, value) = match *write {
                BatchWrite::Put { cf: Cf::Default, key, value } => (key, Some(value)),
                BatchWrite::Delete { cf: Cf::Default, key } => (key, None),
                _ => continue,
            };
            match ServerKey::of(key) {
                Some(ServerKey::Counter { physical, slot }) => {
                    let counter = if key.last() == Some(&0) { Counter::Keys } else { Counter::Expires };
                    let stored = value.and_then(|v| <[u8; 8]>::try_from(v).ok()).map_or(0, i64::from_le_bytes);
                    let counters = self.counters.write().entry(physical).or_default().clone();
                    counters.set(slot, counter, stored);
                }
                Some(ServerKey::DbMap) => {
                    for (slot, physical) in self.db_map.iter().zip(decode_db_map(value.unwrap_or_default())) {
                        slot.store(physical, Ordering::Release);
                    }
                }
                Some(ServerKey::HashVersion) => {
                    if let Some(mark) = value.and_then(decode_hash_version) {
                        self.last_version.fetch_max(mark, Ordering::Relaxed);
                    }
                }
                None => {}
            }
        }
    }

    fn persist_db_map(&self) -> Result<(), EngineError> {
        let mut ws = WriteSet::new(&self.engine);
        ws.put(Cf::Default, DB_MAP_KEY.to_vec(), self.encode_db_map());
        ws.commit().map(|_| ())
    }

    fn encode_db_map(&self) -> Vec<u8> {
        self.db_map.iter().flat_map(|p| p.load(Ordering::Relaxed).to_be_bytes()).collect()
    }

    /// The highest hash version handed out.
    pub fn hash_mark(&self) -> u64 {
        self.last_version.load(Ordering::Relaxed)
    }

    /// The physical id of logical database `index`.
    pub fn physical(&self, index: usize) -> u32 {
        self.db_map[index].load(Ordering::Acquire)
    }

    /// The logical index that points to physical database `physical`.
    pub fn logical(&self, physical: u32) -> Option<usize> {
        self.db_map.iter().position(|p| p.load(Ordering::Acquire) == physical)
    }

    pub fn databases(&self) -> usize {
        self.db_map.len()
    }

    /// SWAPDB: exchanges what two logical databases point to, as part of
    /// `txn`. The caller holds every shard lock, so no command holding one
    /// sees the map half swapped.
    pub fn swap_databases(&self, txn: &mut Txn, a: usize, b: usize) {
        self.swap_map(a, b);
        txn.ws.put(Cf::Default, DB_MAP_KEY.to_vec(), self.encode_db_map());
    }

    /// Exchanges two logical databases' physical ids in the live map only
    /// (a failed command's SWAPDB taken back: its write went with it).
    pub fn swap_map(&self, a: usize, b: usize) {
        let (pa, pb) = (self.physical(a), self.physical(b));
        self.db_map[a].store(pb, Ordering::Release);
        self.db_map[b].store(pa, Ordering::Release);
    }

    /// Switches RocksDB's memtables at log sequence `seq` (see
    /// `RocksEngine::switch_memtables`), with the hash versions'
    /// high-water mark. (Slot counters need no such cut: a slot's writers
    /// hold its shard's lock until their batch is applied, so batches
    /// reach RocksDB in log order for each slot.)
    pub fn switch_memtables(&self, seq: u64) -> crate::rocks::PendingSwitch<'_> {
        let mut batch = Batch::default();
        self.put_version_mark(&mut batch);
        self.engine.switch_memtables(batch, seq)
    }

    pub fn counters(&self, physical: u32) -> std::sync::Arc<DbCounters> {
        self.counters.read().get(&physical).cloned().unwrap_or_default()
    }

    /// A version for a newly created hash: unique and increasing across
    /// restarts, so fields of a deleted hash (gone only once compaction
    /// drops them) never show through a new one of the same name. A
    /// counter, not the clock: a clock set back would hand out a version
    /// again. The transaction that uses it stores the high-water mark.
    fn new_version(&self) -> u64 {
        self.last_version.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Stores the hash versions' high-water mark in `batch`.
    fn put_version_mark(&self, batch: &mut Batch) {
        let mark = self.last_version.load(Ordering::Relaxed).to_le_bytes().to_vec();
        self.engine.put(batch, Cf::Default, HASH_VERSION_KEY.to_vec(), mark);
    }

    pub fn txn(&self) -> Txn<'_> {
        Txn {
            store: self,
            ws: WriteSet::new(&self.engine),
            now_ms: now_ms(),
            deltas: Deltas::default(),
            expired: 0,
            new_version: false,
        }
    }

    /// Up to `limit` keys of database `physical` whose TTL is at or before
    /// `now`, oldest first: `(slot, key, expire_ms)`.
    pub fn due_expirations(
        &self,
        physical: u32,
        now: u64,
        limit: usize,
    ) -> Result<Vec<(u16, Vec<u8>, u64)>, EngineError> {
        let mut due = Vec::new();
        let end = expire_key(physical, now + 1, 0, b"");
        self.engine.scan(Cf::Expire, &db_start(physical), &end, false, &mut |raw, _| {
            if let Some((_, expire, slot, key)) = decode_expire_key(raw) {
                due.push((slot, key.to_vec(), expire));
            }
            due.len() < limit
        })?;
        Ok(due)
    }
}

/// One command's (or transaction's) view of the store: reads see its own
/// pending writes; `commit` applies them atomically and updates counters.
pub struct Txn<'s> {
    store: &'s Store,
    pub ws: WriteSet<'s>,
    /// The time the command started; expiry decisions use this one clock.
    pub now_ms: u64,
    deltas: Deltas,
    /// Keys found expired (and deleted) by this transaction.
    pub expired: u64,
    /// Whether a hash version was handed out to this transaction.
    new_version: bool,
}

impl<'s> Txn<'s> {
    pub fn store(&self) -> &'s Store {
        self.store
    }

    fn count(&mut self, k: &KeyRef, counter: Counter, delta: i64) {
        *self.deltas.get_mut((k.db, k.slot, counter)) += delta;
    }

    /// FLUSHDB of one physical database. The caller holds every shard lock.
    pub fn flush_database(&mut self, physical: u32) {
        for cf in [Cf::Meta, Cf::Sub, Cf::Expire] {
            self.ws.delete_range(cf, db_start(physical), db_end(physical));
        }
        // Whatever this transaction counted before is gone with the rest.
        self.deltas.0.retain(|((db, _, _), _)| *db != physical);
        for (slot, counter, value) in self.store.counters(physical).counted_slots() {
            *self.deltas.get_mut((physical, slot, counter)) = -value;
        }
    }

    /// The stored metadata, expired or not.
    pub fn raw_meta(&self, k: &KeyRef) -> Result<Option<KeyMeta>, EngineError> {
        let Some(mut raw) = self.ws.get(Cf::Meta, &k.meta_key())? else {
            return Ok(None);
        };
        let meta = Meta::decode(&raw).ok_or_else(|| EngineError::Corrupt("key metadata".into()))?;
        let (key_type, expire_ms, header) = (meta.key_type, meta.expire_ms, raw.len() - meta.body.len());
        // The body stays where it was read to (a string's value: no copy).
        raw.drain(..header);
        Ok(Some(KeyMeta { key_type, expire_ms, body: raw }))
    }

    /// The key's metadata if it exists and has not expired; an expired key
    /// is deleted here (lazy expiry).
    pub fn meta(&mut self, k: &KeyRef) -> Result<Option<KeyMeta>, EngineError> {
        match self.raw_meta(k)? {
            Some(meta) if meta.expire_ms != 0 && meta.expire_ms <= self.now_ms => {
                self.delete_key(k, &meta)?;
                self.expired += 1;
                Ok(None)
            }
            other => Ok(other),
        }
    }

    /// Creates or replaces a key's metadata. `old` is what `meta` returned.
    pub fn put_meta(&mut self, k: &KeyRef, old: Option<&KeyMeta>, new: &KeyMeta) {
        let old_expire = old.map_or(0, |m| m.expire_ms);
        if old.is_none() {
            self.count(k, Counter::Keys, 1);
        }
        if old_expire != new.expire_ms {
            if old_expire != 0 {
                self.ws.delete(Cf::Expire, expire_key(k.db, old_expire, k.slot, k.key));
                self.count(k, Counter::Expires, -1);
            }
            if new.expire_ms != 0 {
                self.ws.put(Cf::Expire, expire_key(k.db, new.expire_ms, k.slot, k.key), Vec::new());
                self.count(k, Counter::Expires, 1);
            }
        }
        self.ws.put(Cf::Meta, k.meta_key(), encode_meta(new.key_type, new.expire_ms, &new.body));
    }

    /// Deletes a key. A hash's fields become unreachable at once (their
    /// version is gone) and are dropped by compaction.
    pub fn delete_key(&mut self, k: &KeyRef, old: &KeyMeta) -> Result<(), EngineError> {
        self.ws.delete(Cf::Meta, k.meta_key());
        self.count(k, Counter::Keys, -1);
        if old.expire_ms != 0 {
            self.ws.delete(Cf::Expire, expire_key(k.db, old.expire_ms, k.slot, k.key));
            self.count(k, Counter::Expires, -1);
        }
        Ok(())
    }

    /// Active expiry of one index entry: deletes the key if it is still the
    /// one that expires at `expire_ms`, or drops the stale entry. Returns
    /// whether a key was deleted.
    pub fn reap(&mut self, k: &KeyRef, expire_ms: u64) -> Result<bool, EngineError> {
        match self.raw_meta(k)? {
            Some(meta) if meta.expire_ms == expire_ms && meta.expire_ms <= self.now_ms => {
                self.delete_key(k, &meta)?;
                Ok(true)
            }
            Some(meta) if meta.expire_ms == expire_ms => Ok(false),
            other => {
                let entry = expire_key(k.db, expire_ms, k.slot, k.key);
                // The scan that found the entry held no lock: a command may
                // have deleted the key and its entry since (DEL, FLUSHALL),
                // counting that itself.
                if self.ws.get(Cf::Expire, &entry)?.is_none() {
                    return Ok(false);
                }
                // The key is gone (or has another TTL now) but its entry
                // stayed: the only drift possible is a key the compaction
                // filter dropped, which is still counted. Uncount it.
                self.ws.delete(Cf::Expire, entry);
                if other.is_none() {
                    self.count(k, Counter::Keys, -1);
                    self.count(k, Counter::Expires, -1);
                }
                Ok(false)
            }
        }
    }

    /// Marks this point: `rollback_to` takes back every write after it.
    pub fn savepoint(&mut self) -> TxnSavepoint {
        TxnSavepoint { writes: self.ws.savepoint(), deltas: self.deltas.clone(), expired: self.expired }
    }

    /// Takes back every write since `savepoint` (a command of a MULTI that
    /// failed: the others' writes stay).
    pub fn rollback_to(&mut self, savepoint: TxnSavepoint) {
        self.ws.rollback_to(savepoint.writes);
        self.deltas = savepoint.deltas;
        self.expired = savepoint.expired;
    }

    /// Starts a new, empty hash (its meta is written by `put_meta`).
    pub fn new_hash_body(&mut self) -> HashBody {
        self.new_version = true;
        HashBody { version: self.store.new_version(), len: 0 }
    }

    /// Applies the writes without logging them: for tests and tools that
    /// use the store alone (the server always goes through `finish` and
    /// the log).
    pub fn commit(self) -> Result<(), EngineError> {
        self.finish().seal().write();
        Ok(())
    }

    /// At most how many bytes the sealed batch takes in a log record: the
    /// writes, and a counter per delta (`Commit::seal`). Checked against
    /// the log's frame limit before anything applies.
    pub fn encoded_len_bound(&self) -> usize {
        self.ws.encoded_len_bound() + self.deltas.0.len() * 64
    }

    /// Ends the transaction: its writes, ready to be applied and logged.
    pub fn finish(self) -> Commit<'s> {
        let Txn { store, ws, deltas, new_version, .. } = self;
        Commit { store, batch: ws.into_batch(), deltas, new_version }
    }
}

/// A point in a transaction to go back to (see `Txn::savepoint`).
pub struct TxnSavepoint {
    writes: crate::writeset::Savepoint,
    deltas: Deltas,
    expired: u64,
}

/// A finished transaction's writes (see `Txn::finish`).
pub struct Commit<'s> {
    store: &'s Store,
    batch: Batch,
    deltas: Deltas,
    /// Whether the writes may use a new hash version.
    new_version: bool,
}

impl<'s> Commit<'s> {
    pub fn is_empty(&self) -> bool {
        self.batch.is_empty() && self.deltas.0.iter().all(|&(_, d)| d == 0)
    }

    /// Puts the counters' new values (and, after a new hash version, the
    /// versions' high-water mark) into the batch and marks it in flight
    /// (see `RocksEngine::begin_write`). Call it with the log's append lock
    /// held: counters and the mark are stored as absolute values, in log
    /// order, so replaying the log ends with the live values; everything
    /// else is idempotent, so replaying a record RocksDB already holds
    /// changes nothing.
    pub fn seal(self) -> Sealed<'s> {
        let Commit { store, mut batch, deltas, new_version } = self;
        if new_version {
            store.put_version_mark(&mut batch);
        }
        for ((physical, slot, counter), delta) in deltas.0 {
            if delta == 0 {
                continue;
            }
            let value = store.counters(physical).add(slot, counter, delta);
            let key = counter_key(physical, slot, counter);
            match value {
                0 => store.engine.delete(&mut batch, Cf::Default, key),
                _ => store.engine.put(&mut batch, Cf::Default, key, value.to_le_bytes().to_vec()),
            }
        }
        store.engine.begin_write();
        Sealed { store, batch }
    }
}

/// A sealed transaction (see `Commit::seal`): its data goes into the log,
/// then `write` applies it to RocksDB, outside the log's append lock (the
/// keys' shard locks, still held, keep each key's writes in log order).
pub struct Sealed<'s> {
    store: &'s Store,
    batch: Batch,
}

impl Sealed<'_> {
    /// The batch as the log stores it (empty when nothing is written).
    pub fn data(&self) -> &[u8] {
        if self.batch.is_empty() {
            &[]
        } else {
            self.batch.data()
        }
    }

    /// Applies the batch (write-back: it cannot fail, see
    /// `RocksEngine::write`).
    pub fn write(mut self) {
        let batch = std::mem::take(&mut self.batch);
        if !batch.is_empty() {
            self.store.engine.write(batch);
        }
    }
}

impl Drop for Sealed<'_> {
    fn drop(&mut self) {
        self.store.engine.end_write();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock;
    use crate::encoding::prefix_end;
    use crate::RocksConfig;

    fn key(key: &[u8]) -> KeyRef<'_> {
        KeyRef { db: 0, slot: strata_cluster::key_slot(key), key }
    }

    fn small() -> RocksConfig {
        RocksConfig { block_cache_bytes: 1 << 20, write_buffer_bytes: 1 << 20, row_cache_bytes: 1 << 20 }
    }

    /// Commits `txn` as the server does, returning the batch as the log
    /// stores it.
    fn commit_logged(txn: Txn) -> Vec<u8> {
        let sealed = txn.finish().seal();
        let logged = sealed.data().to_vec();
        sealed.write();
        logged
    }

    /// Creates hash `name` with `fields` (each its own value); returns the
    /// logged batch.
    fn create_hash(store: &Store, name: &[u8], fields: &[&[u8]]) -> Vec<u8> {
        let k = key(name);
        let mut txn = store.txn();
        assert_eq!(txn.meta(&k).unwrap(), None);
        let mut body = txn.new_hash_body();
        for field in fields {
            let mut sub = k.sub_prefix(body.version);
            sub.extend_from_slice(field);
            txn.ws.put(Cf::Sub, sub, field.to_vec());
        }
        body.len = fields.len() as u64;
        txn.put_meta(&k, None, &KeyMeta { key_type: KeyType::Hash, expire_ms: 0, body: body.encode().to_vec() });
        commit_logged(txn)
    }

    /// Deletes hash `name`: its fields stay in RocksDB until compaction.
    fn delete_hash(store: &Store, name: &[u8]) -> Vec<u8> {
        let mut txn = store.txn();
        let meta = txn.meta(&key(name)).unwrap().expect("the hash exists");
        txn.delete_key(&key(name), &meta).unwrap();
        commit_logged(txn)
    }

    /// The fields HGETALL would list: those under the hash's version.
    fn fields_of(store: &Store, name: &[u8]) -> Vec<Vec<u8>> {
        let k = key(name);
        let Some(meta) = store.txn().meta(&k).unwrap() else { return Vec::new() };
        let prefix = k.sub_prefix(meta.hash().unwrap().version);
        let mut fields = Vec::new();
        store
            .engine
            .scan(Cf::Sub, &prefix, &prefix_end(&prefix).unwrap(), false, &mut |sub, _| {
                fields.push(sub[prefix.len()..].to_vec());
                true
            })
            .unwrap();
        fields
    }

    /// Stores string `name` (with a TTL when `expire_ms` is not 0);
    /// returns the logged batch.
    fn put_string(store: &Store, name: &[u8], expire_ms: u64) -> Vec<u8> {
        let k = key(name);
        let mut txn = store.txn();
        let old = txn.meta(&k).unwrap();
        txn.put_meta(&k, old.as_ref(), &KeyMeta { key_type: KeyType::String, expire_ms, body: b"v".to_vec() });
        commit_logged(txn)
    }

    /// Keys are counted per hash slot: each logged batch stores the counts
    /// of its own key's slot only, so replaying one slot's records on
    /// another store gives that slot's keys and counts exactly, while the
    /// source's totals and slots agree.
    #[test]
    fn key_counts_are_per_slot_and_travel_with_their_slots_records() {
        let (source_dir, target_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let source = Store::open(source_dir.path(), &small(), 1).unwrap();
        let names: Vec<Vec<u8>> = (0..200).map(|i| format!("key:{i}").into_bytes()).collect();
        let moved_slot = key(&names[0]).slot;
        let mut moved_records = Vec::new();
        for (i, name) in names.iter().enumerate() {
            let logged = put_string(&source, name, if i % 3 == 0 { 1 << 60 } else { 0 });
            if key(name).slot == moved_slot {
                moved_records.push(logged);
            }
        }
        let counters = source.counters(0);
        assert_eq!(counters.keys.load(Ordering::Relaxed), 200);
        assert_eq!(counters.expires.load(Ordering::Relaxed), 67);
        let slots: i64 = (0..strata_cluster::SLOT_COUNT as u16).map(|slot| counters.keys_in_slot(slot)).sum();
        assert_eq!(slots, 200);
        // The first key's record names no counter of another slot.
        let first = &moved_records[0];
        let other_slot = counter_key(0, key(&names[1]).slot, Counter::Keys);
        assert!(!first.windows(other_slot.len()).any(|w| w == &other_slot[..]));

        let target = Store::open(target_dir.path(), &small(), 1).unwrap();
        for batch in &moved_records {
            target.engine.write_data(batch).unwrap();
        }
        target.engine.flush().unwrap();
        drop(target);
        let target = Store::open(target_dir.path(), &small(), 1).unwrap();
        let expected = names.iter().filter(|n| key(n).slot == moved_slot).count() as i64;
        assert_eq!(target.counters(0).keys.load(Ordering::Relaxed), expected);
        assert_eq!(target.counters(0).keys_in_slot(moved_slot), expected);
    }

    /// A data directory from before per-slot counters (one counter per
    /// database) is counted once from its keys at the next start.
    #[test]
    fn counters_of_the_older_format_are_recounted_by_slot() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &small(), 1).unwrap();
        for i in 0..50 {
            put_string(&store, format!("k{i}").as_bytes(), if i < 10 { 1 << 60 } else { 0 });
        }
        let mut batch = Batch::default();
        for (slot, counter, _) in store.counters(0).counted_slots().collect::<Vec<_>>() {
            store.engine.delete(&mut batch, Cf::Default, counter_key(0, slot, counter));
        }
        store.engine.put(&mut batch, Cf::Default, b"count/0/keys".to_vec(), 7i64.to_le_bytes().to_vec());
        store.engine.write(batch);
        store.engine.flush().unwrap();
        drop(store);
        for _ in 0..2 {
            let store = Store::open(dir.path(), &small(), 1).unwrap();
            assert_eq!(store.counters(0).keys.load(Ordering::Relaxed), 50);
            assert_eq!(store.counters(0).expires.load(Ordering::Relaxed), 10);
            assert_eq!(store.engine.get(Cf::Default, b"count/0/keys").unwrap(), None);
        }
    }

    /// The clock reads the same at the second start as at the first (it was
    /// set back): a new hash of a deleted one's name must not get its
    /// version, whose fields are still in RocksDB.
    #[test]
    fn hash_versions_survive_a_restart_with_the_clock_set_back() {
        let dir = tempfile::tempdir().unwrap();
        clock::pin_for_tests(clock::now_ms());
        let store = Store::open(dir.path(), &small(), 1).unwrap();
        create_hash(&store, b"h", &[b"old"]);
        delete_hash(&store, b"h");
        store.engine.flush().unwrap();
        drop(store);
        let store = Store::open(dir.path(), &small(), 1).unwrap();
        create_hash(&store, b"h", &[b"new"]);
        assert_eq!(fields_of(&store, b"h"), vec![b"new".to_vec()]);
        clock::pin_for_tests(0);
    }

    /// After a crash RocksDB has none of the batches (they were never
    /// flushed) and recovery replays them from the log: the high-water mark
    /// comes back with them.
    #[test]
    fn hash_versions_survive_a_replay_with_the_clock_set_back() {
        let (first, second) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        clock::pin_for_tests(clock::now_ms());
        let store = Store::open(first.path(), &small(), 1).unwrap();
        let logged = [create_hash(&store, b"h", &[b"old"]), delete_hash(&store, b"h")];
        drop(store);
        let engine = RocksEngine::open(second.path(), &small()).unwrap();
        for batch in &logged {
            engine.write_data(batch).unwrap();
        }
        let store = Store::new(engine, 1).unwrap();
        create_hash(&store, b"h", &[b"new"]);
        assert_eq!(fields_of(&store, b"h"), vec![b"new".to_vec()]);
        clock::pin_for_tests(0);
    }

    /// Batches reach RocksDB out of log order: the one with the lower mark
    /// may land last. The memtable cut stores the live mark, so a restart
    /// from the cut does not hand out a version again.
    #[test]
    fn a_memtable_cut_stores_the_live_version_mark() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &small(), 1).unwrap();
        let mut first = store.txn();
        let v1 = first.new_hash_body().version;
        let first = first.finish().seal();
        let mut second = store.txn();
        let v2 = second.new_hash_body().version;
        let second = second.finish().seal();
        second.write();
        first.write();
        store.switch_memtables(2).finish().unwrap();
        // A close does not flush (the log holds what RocksDB did not).
        while store.engine.flush_pending() {
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        drop(store);
        let store = Store::open(dir.path(), &small(), 1).unwrap();
        let v3 = store.txn().new_hash_body().version;
        assert!(v1 < v2 && v2 < v3, "{v1} {v2} {v3}");
    }
}
