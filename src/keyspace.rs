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

use parking_lot::{Mutex, MutexGuard};
use strata_cluster::key_slot;
use strata_engines::keyspace::{KeyMeta, KeyRef, Store, Txn};
use strata_engines::{EngineError, KeyType, RocksConfig};

use crate::error::CmdError;

/// Number of lock shards. A power of two so a slot maps to one cheaply.
const SHARDS: usize = 64;

fn shard_of(key: &[u8]) -> usize {
    key_slot(key) as usize % SHARDS
}

/// The server's keyspace across engines.
pub struct Keyspace {
    pub store: Store,
    shards: Vec<Mutex<()>>,
    pub expired_keys: AtomicU64,
}

impl Keyspace {
    pub fn open(dir: &Path, config: &RocksConfig, databases: usize) -> Result<Keyspace, EngineError> {
        Ok(Keyspace {
            store: Store::open(dir, config, databases)?,
            shards: (0..SHARDS).map(|_| Mutex::new(())).collect(),
            expired_keys: AtomicU64::new(0),
        })
    }

    pub fn databases(&self) -> usize {
        self.store.databases()
    }

    fn lock_keys(&self, keys: &[&[u8]]) -> Vec<MutexGuard<'_, ()>> {
        let mut shards: Vec<usize> = keys.iter().map(|k| shard_of(k)).collect();
        shards.sort_unstable();
        shards.dedup();
        shards.into_iter().map(|s| self.shards[s].lock()).collect()
    }

    fn lock_all(&self) -> Vec<MutexGuard<'_, ()>> {
        self.shards.iter().map(|s| s.lock()).collect()
    }

    /// Runs `body` with the shards of `keys` locked, then commits its writes
    /// atomically. Nothing is written when `body` fails.
    pub fn run<R>(
        &self,
        db: usize,
        keys: &[&[u8]],
        body: impl FnOnce(&mut Tx) -> Result<R, CmdError>,
    ) -> Result<R, CmdError> {
        let _guards = self.lock_keys(keys);
        self.run_locked(db, body)
    }

    /// Like `run`, with every shard locked: FLUSHDB, SWAPDB, whole-keyspace
    /// writes.
    pub fn run_exclusive<R>(
        &self,
        db: usize,
        body: impl FnOnce(&mut Tx) -> Result<R, CmdError>,
    ) -> Result<R, CmdError> {
        let _guards = self.lock_all();
        self.run_locked(db, body)
    }

    /// Reads that need no locks: scans over a consistent-enough view (SCAN,
    /// KEYS, RANDOMKEY) where Redis gives no atomicity either.
    pub fn run_unlocked<R>(&self, db: usize, body: impl FnOnce(&mut Tx) -> Result<R, CmdError>) -> Result<R, CmdError> {
        let mut tx = Tx { txn: self.store.txn(), physical: self.store.physical(db), db };
        let result = body(&mut tx)?;
        // Lazy expiry found by an unlocked read is not written back: another
        // client may be changing the key. Active expiry deletes it.
        Ok(result)
    }

    fn run_locked<R>(&self, db: usize, body: impl FnOnce(&mut Tx) -> Result<R, CmdError>) -> Result<R, CmdError> {
        let mut tx = Tx { txn: self.store.txn(), physical: self.store.physical(db), db };
        let result = body(&mut tx)?;
        let expired = tx.txn.expired;
        tx.txn.commit()?;
        if expired > 0 {
            self.expired_keys.fetch_add(expired, Ordering::Relaxed);
        }
        Ok(result)
    }

    /// One active-expiry pass over every database (Redis's `activeExpireCycle`
    /// samples; the ordered expiry index lets Strata take exactly the keys
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
}

impl<'s> Tx<'s> {
    /// A key of this database, with its slot.
    pub fn key<'k>(&self, key: &'k [u8]) -> KeyRef<'k> {
        KeyRef { db: self.physical, slot: key_slot(key), key }
    }

    /// The key's metadata if it exists (expired keys are deleted here).
    pub fn meta(&mut self, key: &[u8]) -> Result<Option<KeyMeta>, CmdError> {
        let k = self.key(key);
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
        let k = self.key(key);
        match self.txn.meta(&k)? {
            Some(meta) => {
                self.txn.delete_key(&k, &meta)?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Creates or replaces a key's metadata (and thus its TTL).
    pub fn put_meta(&mut self, key: &[u8], old: Option<&KeyMeta>, new: &KeyMeta) {
        let k = self.key(key);
        self.txn.put_meta(&k, old, new);
    }

    /// Replaces whatever `key` holds with a string value and TTL.
    pub fn set_string(&mut self, key: &[u8], old: Option<&KeyMeta>, value: &[u8], expire_ms: u64) {
        let new = KeyMeta { key_type: KeyType::String, expire_ms, body: value.to_vec() };
        self.put_meta(key, old, &new);
    }

    pub fn now_ms(&self) -> u64 {
        self.txn.now_ms
    }
}
