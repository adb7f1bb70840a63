//! The keyspace router: which engine holds a key, type checks across
//! engines, expiry, and the shard locks that make a command atomic.
//!
//! A command names the keys it touches; `Keyspace::run` locks their shards
//! in a fixed order (no deadlock between multi-key commands), gives the
//! handler a `Tx` over the store, and commits the handler's writes as one
//! batch. Memory engines (lists, sets, sorted sets, streams) join here: a key
//! has one type in the whole server, and `Tx::meta` is where that is decided.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use parking_lot::{Mutex, MutexGuard};
use strata_cluster::key_slot;
use strata_engines::keyspace::{KeyMeta, KeyRef, Store, Txn};
use strata_engines::memory::{ListOp, MemDb, MemEntry, MemOp, MemRecord, MemShard, MemValue, StreamOp, ZSetOp};
use strata_engines::{EngineError, KeyType, RocksConfig};

use crate::blocking::Blocking;
use crate::error::CmdError;

/// Number of lock shards. A power of two so a slot maps to one cheaply.
const SHARDS: usize = 64;

fn shard_of(key: &[u8]) -> usize {
    key_slot(key) as usize % SHARDS
}

/// The server's keyspace across engines.
pub struct Keyspace {
    pub store: Store,
    /// Lock shards; each holds the memory engines' keys of its slots.
    shards: Vec<Mutex<MemShard>>,
    pub expired_keys: AtomicU64,
    /// When set, committed memory records are appended here: replay tests
    /// read them (the write-ahead log will take them from the same place).
    pub record_tap: Mutex<Option<Vec<MemRecord>>>,
    /// Clients blocked on keys (BLPOP ...); writes that add data signal it.
    pub blocking: Blocking,
}

impl Keyspace {
    pub fn open(dir: &Path, config: &RocksConfig, databases: usize) -> Result<Keyspace, EngineError> {
        Ok(Keyspace {
            store: Store::open(dir, config, databases)?,
            shards: (0..SHARDS).map(|_| Mutex::new(MemShard::default())).collect(),
            expired_keys: AtomicU64::new(0),
            record_tap: Mutex::new(None),
            blocking: Blocking::default(),
        })
    }

    pub fn databases(&self) -> usize {
        self.store.databases()
    }

    fn lock_keys(&self, keys: &[&[u8]]) -> Vec<(usize, MutexGuard<'_, MemShard>)> {
        let mut shards: Vec<usize> = keys.iter().map(|k| shard_of(k)).collect();
        shards.sort_unstable();
        shards.dedup();
        shards.into_iter().map(|s| (s, self.shards[s].lock())).collect()
    }

    fn lock_all(&self) -> Vec<(usize, MutexGuard<'_, MemShard>)> {
        self.shards.iter().enumerate().map(|(i, s)| (i, s.lock())).collect()
    }

    /// Runs `body` with the shards of `keys` locked, then commits its writes
    /// atomically. Nothing is written to RocksDB when `body` fails; memory
    /// effects apply as they are made, so handlers check everything
    /// (types, arguments) before their first effect.
    pub fn run<R>(
        &self,
        db: usize,
        keys: &[&[u8]],
        body: impl FnOnce(&mut Tx) -> Result<R, CmdError>,
    ) -> Result<R, CmdError> {
        let shards = self.lock_keys(keys);
        self.run_locked(db, shards, body)
    }

    /// Like `run`, with every shard locked: FLUSHDB, SWAPDB, whole-keyspace
    /// writes.
    pub fn run_exclusive<R>(
        &self,
        db: usize,
        body: impl FnOnce(&mut Tx) -> Result<R, CmdError>,
    ) -> Result<R, CmdError> {
        let shards = self.lock_all();
        self.run_locked(db, shards, body)
    }

    /// Reads of RocksDB that need no locks: scans over a consistent-enough
    /// view (SCAN, KEYS, RANDOMKEY) where Redis gives no atomicity either.
    /// Memory keys are reached with `visit_memory_slot`.
    pub fn run_unlocked<R>(&self, db: usize, body: impl FnOnce(&mut Tx) -> Result<R, CmdError>) -> Result<R, CmdError> {
        let mut tx = self.tx(db, Vec::new());
        // Lazy expiry found by an unlocked read is not written back: another
        // client may be changing the key. Active expiry deletes it.
        body(&mut tx)
    }

    fn tx<'s>(&'s self, db: usize, shards: Vec<(usize, MutexGuard<'s, MemShard>)>) -> Tx<'s> {
        Tx {
            txn: self.store.txn(),
            physical: self.store.physical(db),
            db,
            shards,
            records: Vec::new(),
            blocking: &self.blocking,
            store: &self.store,
        }
    }

    fn run_locked<'s, R>(
        &'s self,
        db: usize,
        shards: Vec<(usize, MutexGuard<'s, MemShard>)>,
        body: impl FnOnce(&mut Tx<'s>) -> Result<R, CmdError>,
    ) -> Result<R, CmdError> {
        let mut tx = self.tx(db, shards);
        let result = body(&mut tx);
        let Tx { txn, records, .. } = tx;
        let expired = txn.expired;
        if result.is_ok() {
            txn.commit()?;
        }
        self.publish(records);
        if expired > 0 && result.is_ok() {
            self.expired_keys.fetch_add(expired, Ordering::Relaxed);
        }
        result
    }

    fn publish(&self, records: Vec<MemRecord>) {
        if records.is_empty() {
            return;
        }
        if let Some(tap) = self.record_tap.lock().as_mut() {
            tap.extend(records);
        }
    }

    /// Every memory key of every database (tests compare it with a replay
    /// of the records).
    pub fn memory_image(&self) -> strata_engines::memory::MemImage {
        let mut image = Default::default();
        for shard in &self.shards {
            shard.lock().add_to_image(&mut image);
        }
        image.retain(|_, keys: &mut std::collections::BTreeMap<Bytes, MemEntry>| !keys.is_empty());
        image
    }

    /// Keys and keys with a TTL in a logical database, across engines.
    pub fn key_counts(&self, db: usize) -> (u64, u64) {
        let physical = self.store.physical(db);
        let counters = self.store.counters(physical);
        let mut keys = counters.keys.load(Ordering::Relaxed).max(0) as u64;
        let mut expires = counters.expires.load(Ordering::Relaxed).max(0) as u64;
        for shard in &self.shards {
            if let Some(mem) = shard.lock().db_ref(physical) {
                keys += mem.len() as u64;
                expires += mem.expires_len() as u64;
            }
        }
        (keys, expires)
    }

    /// Visits the live memory keys of `slot` in database `physical` after
    /// `after` (exclusive), in byte order, until `visit` returns false.
    pub fn visit_memory_slot(
        &self,
        physical: u32,
        slot: u16,
        after: Option<&[u8]>,
        now_ms: u64,
        visit: &mut dyn FnMut(&Bytes, &MemEntry) -> bool,
    ) -> bool {
        let shard = self.shards[slot as usize % SHARDS].lock();
        let Some(db) = shard.db_ref(physical) else { return true };
        for key in db.keys_in_slot(slot, after) {
            let entry = db.get(key).expect("indexed keys exist");
            if entry.expire_ms != 0 && entry.expire_ms <= now_ms {
                continue;
            }
            if !visit(key, entry) {
                return false;
            }
        }
        true
    }

    /// One active-expiry pass over every database (Redis's `activeExpireCycle`
    /// samples; the ordered expiry indexes let Strata take exactly the keys
    /// that are due). Returns how many keys were deleted.
    pub fn active_expire(&self, limit_per_db: usize) -> Result<usize, EngineError> {
        let mut deleted = 0;
        let now = strata_engines::now_ms();
        let mut all_done = true;
        for db in 0..self.databases() {
            let physical = self.store.physical(db);
            let due = self.store.due_expirations(physical, now, limit_per_db)?;
            all_done &= due.len() < limit_per_db;
            for (slot, key, expire) in due {
                let _guard = self.shards[slot as usize % SHARDS].lock();
                let mut txn = self.store.txn();
                if txn.reap(&KeyRef { db: physical, slot, key: &key }, expire)? {
                    deleted += 1;
                }
                txn.commit()?;
            }
        }
        for shard in &self.shards {
            let mut shard = shard.lock();
            let mut records = Vec::new();
            for physical in shard.databases() {
                let mem = shard.db(physical);
                for key in mem.due(now, limit_per_db) {
                    let op = MemOp::Delete { key };
                    mem.apply(&op);
                    records.push(MemRecord::Op { db: physical, op });
                }
            }
            deleted += records.len();
            self.publish(records);
        }
        if all_done {
            self.store.engine.set_expired_before(now);
        }
        self.expired_keys.fetch_add(deleted as u64, Ordering::Relaxed);
        Ok(deleted)
    }
}

/// A handler's view of one logical database during a command.
pub struct Tx<'s> {
    pub txn: Txn<'s>,
    pub physical: u32,
    /// The logical database index (SELECT).
    pub db: usize,
    /// The locked shards, by index.
    shards: Vec<(usize, MutexGuard<'s, MemShard>)>,
    /// Memory effects made by this command, in order.
    records: Vec<MemRecord>,
    blocking: &'s Blocking,
    store: &'s Store,
}

impl<'s> Tx<'s> {
    /// A key of this database, with its slot.
    pub fn key<'k>(&self, key: &'k [u8]) -> KeyRef<'k> {
        KeyRef { db: self.physical, slot: key_slot(key), key }
    }

    /// The memory database holding `key` in physical database `physical`.
    /// The key's shard must have been locked by naming it to `run`.
    fn mem_db_in(&mut self, physical: u32, key: &[u8]) -> &mut MemDb {
        let shard = shard_of(key);
        let (_, guard) = self
            .shards
            .iter_mut()
            .find(|(index, _)| *index == shard)
            .unwrap_or_else(|| panic!("key {:?} was not named to Keyspace::run", String::from_utf8_lossy(key)));
        guard.db(physical)
    }

    /// The memory entry of `key` in `physical`, deleting it if expired.
    fn mem_entry_in(&mut self, physical: u32, key: &[u8]) -> Option<&MemEntry> {
        if self.shards.is_empty() {
            return None;
        }
        let now = self.txn.now_ms;
        let expired = match self.mem_db_in(physical, key).get(key) {
            None => return None,
            Some(entry) => entry.expire_ms != 0 && entry.expire_ms <= now,
        };
        if expired {
            self.mem_apply_in(physical, MemOp::Delete { key: Bytes::copy_from_slice(key) });
            self.txn.expired += 1;
            return None;
        }
        self.mem_db_in(physical, key).get(key)
    }

    /// Applies a memory effect in `physical` and records it.
    pub fn mem_apply_in(&mut self, physical: u32, op: MemOp) {
        let key = match &op {
            MemOp::Put { key, .. }
            | MemOp::Delete { key }
            | MemOp::Expire { key, .. }
            | MemOp::List { key, .. }
            | MemOp::Set { key, .. }
            | MemOp::ZSet { key, .. }
            | MemOp::Stream { key, .. } => key.clone(),
        };
        self.mem_db_in(physical, &key).apply(&op);
        // Data arrived: clients blocked on this key may now be served. A
        // deleted key is signalled too: XREADGROUP waiters are told it went.
        let feeds_waiters = matches!(
            &op,
            MemOp::Put { .. }
                | MemOp::Delete { .. }
                | MemOp::List { op: ListOp::Push { .. }, .. }
                | MemOp::ZSet { op: ZSetOp::Add(_), .. }
                | MemOp::Stream { op: StreamOp::Add { .. }, .. }
        );
        if feeds_waiters {
            if let Some(logical) = self.store.logical(physical) {
                self.blocking.signal(logical, &key);
            }
        }
        self.records.push(MemRecord::Op { db: physical, op });
    }

    /// Applies a memory effect in this database and records it. The caller
    /// has checked types: a key holds one type across all engines.
    pub fn mem_apply(&mut self, op: MemOp) {
        self.mem_apply_in(self.physical, op);
    }

    /// The memory value at `key` if it holds `expected`; WRONGTYPE if the
    /// key holds anything else in any engine; None if it does not exist.
    pub fn mem_value(&mut self, key: &[u8], expected: KeyType) -> Result<Option<&MemValue>, CmdError> {
        let physical = self.physical;
        match self.mem_entry_in(physical, key).map(|e| e.value.key_type()) {
            Some(found) if found != expected => return Err(CmdError::WrongType),
            Some(_) => {}
            None => {
                let k = self.key(key);
                if self.txn.meta(&k)?.is_some() {
                    return Err(CmdError::WrongType);
                }
                return Ok(None);
            }
        }
        Ok(self.mem_db_in(physical, key).get(key).map(|e| &e.value))
    }

    /// The whole memory entry of `key` in `physical` (for RENAME, COPY...).
    pub fn mem_entry_of(&mut self, physical: u32, key: &[u8]) -> Option<MemEntry> {
        self.mem_entry_in(physical, key).cloned()
    }

    /// The key's metadata if it exists in any engine (expired keys are
    /// deleted here). A memory key's metadata has an empty body.
    pub fn meta(&mut self, key: &[u8]) -> Result<Option<KeyMeta>, CmdError> {
        let physical = self.physical;
        self.meta_in(physical, key)
    }

    /// `meta` in another physical database (COPY DB, MOVE).
    pub fn meta_in(&mut self, physical: u32, key: &[u8]) -> Result<Option<KeyMeta>, CmdError> {
        if let Some(entry) = self.mem_entry_in(physical, key) {
            return Ok(Some(KeyMeta {
                key_type: entry.value.key_type(),
                expire_ms: entry.expire_ms,
                body: Vec::new(),
            }));
        }
        let k = KeyRef { db: physical, slot: key_slot(key), key };
        Ok(self.txn.meta(&k)?)
    }

    /// The key's metadata, or WRONGTYPE when it holds another type.
    pub fn meta_of(&mut self, key: &[u8], expected: KeyType) -> Result<Option<KeyMeta>, CmdError> {
        match self.meta(key)? {
            Some(meta) if meta.key_type != expected => Err(CmdError::WrongType),
            other => Ok(other),
        }
    }

    /// The key's type, if it exists.
    pub fn key_type(&mut self, key: &[u8]) -> Result<Option<KeyType>, CmdError> {
        Ok(self.meta(key)?.map(|m| m.key_type))
    }

    /// Deletes a key of any type. Returns whether it existed.
    pub fn delete(&mut self, key: &[u8]) -> Result<bool, CmdError> {
        let physical = self.physical;
        self.delete_in(physical, key)
    }

    /// `delete` in another physical database.
    pub fn delete_in(&mut self, physical: u32, key: &[u8]) -> Result<bool, CmdError> {
        if self.mem_entry_in(physical, key).is_some() {
            self.mem_apply_in(physical, MemOp::Delete { key: Bytes::copy_from_slice(key) });
            return Ok(true);
        }
        let k = KeyRef { db: physical, slot: key_slot(key), key };
        match self.txn.meta(&k)? {
            Some(meta) => {
                self.txn.delete_key(&k, &meta)?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Creates or replaces a RocksDB key's metadata (and thus its TTL). A
    /// memory key of the same name (`old` says so) is deleted first.
    pub fn put_meta(&mut self, key: &[u8], old: Option<&KeyMeta>, new: &KeyMeta) {
        let old = match old {
            Some(meta) if is_memory_type(meta.key_type) => {
                self.mem_apply(MemOp::Delete { key: Bytes::copy_from_slice(key) });
                None
            }
            other => other,
        };
        let k = self.key(key);
        self.txn.put_meta(&k, old, new);
    }

    /// Changes the TTL of an existing key (0 removes it), whatever engine
    /// holds it. `meta` is what `meta` returned for it.
    pub fn set_expire(&mut self, key: &[u8], meta: &KeyMeta, expire_ms: u64) {
        if is_memory_type(meta.key_type) {
            self.mem_apply(MemOp::Expire { key: Bytes::copy_from_slice(key), expire_ms });
        } else {
            let new = KeyMeta { expire_ms, ..meta.clone() };
            self.put_meta(key, Some(meta), &new);
        }
    }

    /// Replaces whatever `key` holds with a string value and TTL.
    pub fn set_string(&mut self, key: &[u8], old: Option<&KeyMeta>, value: &[u8], expire_ms: u64) {
        let new = KeyMeta { key_type: KeyType::String, expire_ms, body: value.to_vec() };
        self.put_meta(key, old, &new);
    }

    /// Empties a physical database in every engine. The caller holds every
    /// shard (`run_exclusive`).
    pub fn flush_database(&mut self, physical: u32) -> Result<(), CmdError> {
        assert_eq!(self.shards.len(), SHARDS, "flush needs every shard locked");
        for (_, shard) in &mut self.shards {
            shard.flush(physical);
        }
        self.records.push(MemRecord::Flush { db: physical });
        // XREADGROUP waiters of the emptied database are told their keys went.
        if let Some(logical) = self.store.logical(physical) {
            self.blocking.signal_database(logical);
        }
        Ok(self.txn.store().flush_database(physical)?)
    }

    pub fn now_ms(&self) -> u64 {
        self.txn.now_ms
    }
}

/// Whether a key of this type lives in a memory engine.
pub fn is_memory_type(key_type: KeyType) -> bool {
    !matches!(key_type, KeyType::String | KeyType::Hash)
}
