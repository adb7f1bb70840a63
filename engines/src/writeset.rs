//! A command's (or a transaction's) pending writes to the RocksDB engine.
//!
//! Reads see the pending writes first, so a command that writes and then
//! reads (or a MULTI whose second command reads what the first wrote) sees
//! its own changes; `commit` applies everything as one atomic batch.

use std::collections::BTreeMap;
use std::ops::Bound;

use crate::rocks::{Batch, Cf, RocksEngine};
use crate::EngineError;

/// A pending write seen by a scan: the key and its value (None = deleted).
type PendingEntry<'a> = (&'a Vec<u8>, &'a Option<Vec<u8>>);

/// Pending writes over a RocksDB engine.
pub struct WriteSet<'e> {
    engine: &'e RocksEngine,
    pending: BTreeMap<(Cf, Vec<u8>), Option<Vec<u8>>>,
    deleted_ranges: Vec<(Cf, Vec<u8>, Vec<u8>)>,
    /// Once a savepoint is taken (EXEC, where one failed command's writes
    /// go but the others' stay): how each change found what it replaced.
    journal: Option<Vec<Change>>,
    /// At least the bytes `into_batch` makes of the writes (never less:
    /// it only grows, also when a write replaces or a rollback drops one).
    bytes_bound: usize,
}

/// Bytes a batch record takes beside its key and value, at most: its tag,
/// family and lengths.
const RECORD_OVERHEAD: usize = 16;

/// One change to the pending writes, as the journal keeps it.
enum Change {
    /// The key's pending write before (None: it had none).
    Pending(Cf, Vec<u8>, Option<Option<Vec<u8>>>),
    /// A range was added to `deleted_ranges`.
    Range,
}

/// A point in a write set's changes to go back to (`WriteSet::rollback_to`).
#[derive(Clone, Copy, Debug)]
pub struct Savepoint(usize);

impl<'e> WriteSet<'e> {
    pub fn new(engine: &'e RocksEngine) -> WriteSet<'e> {
        WriteSet { engine, pending: BTreeMap::new(), deleted_ranges: Vec::new(), journal: None, bytes_bound: 12 }
    }

    pub fn engine(&self) -> &'e RocksEngine {
        self.engine
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty() && self.deleted_ranges.is_empty()
    }

    fn in_deleted_range(&self, cf: Cf, key: &[u8]) -> bool {
        self.deleted_ranges.iter().any(|(c, from, to)| *c == cf && key >= &from[..] && key < &to[..])
    }

    pub fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, EngineError> {
        // BTreeMap lookups need an owned key; avoid the allocation when
        // nothing is pending (the common single-read command).
        if !self.pending.is_empty() {
            if let Some(value) = self.pending.get(&(cf, key.to_vec())) {
                return Ok(value.clone());
            }
        }
        if self.in_deleted_range(cf, key) {
            return Ok(None);
        }
        self.engine.get(cf, key)
    }

    pub fn put(&mut self, cf: Cf, key: Vec<u8>, value: Vec<u8>) {
        self.set(cf, key, Some(value));
    }

    pub fn delete(&mut self, cf: Cf, key: Vec<u8>) {
        self.set(cf, key, None);
    }

    fn set(&mut self, cf: Cf, key: Vec<u8>, value: Option<Vec<u8>>) {
        self.bytes_bound += RECORD_OVERHEAD + key.len() + value.as_ref().map_or(0, Vec::len);
        match &mut self.journal {
            None => {
                self.pending.insert((cf, key), value);
            }
            Some(journal) => {
                let before = self.pending.insert((cf, key.clone()), value);
                journal.push(Change::Pending(cf, key, before));
            }
        }
    }

    /// Marks the current pending writes: `rollback_to` goes back to them.
    /// From the first savepoint on, every change is journaled.
    pub fn savepoint(&mut self) -> Savepoint {
        Savepoint(self.journal.get_or_insert_with(Vec::new).len())
    }

    /// Takes back every change made since `savepoint`.
    pub fn rollback_to(&mut self, savepoint: Savepoint) {
        let Some(journal) = &mut self.journal else { return };
        for change in journal.drain(savepoint.0..).rev() {
            match change {
                Change::Pending(cf, key, Some(before)) => {
                    self.pending.insert((cf, key), before);
                }
                Change::Pending(cf, key, None) => {
                    self.pending.remove(&(cf, key));
                }
                Change::Range => {
                    self.deleted_ranges.pop();
                }
            }
        }
    }

    /// The keys with a pending put or delete, in order (WATCH learns from
    /// them which user keys a command changed).
    pub fn pending_keys(&self) -> impl Iterator<Item = (Cf, &[u8])> + '_ {
        self.pending.keys().map(|(cf, key)| (*cf, key.as_slice()))
    }

    /// Deletes every key in `[from, to)`, including pending ones.
    pub fn delete_range(&mut self, cf: Cf, from: Vec<u8>, to: Vec<u8>) {
        let doomed: Vec<_> = self.pending.range((cf, from.clone())..(cf, to.clone())).map(|(k, _)| k.clone()).collect();
        for key in doomed {
            let before = self.pending.remove(&key);
            if let Some(journal) = &mut self.journal {
                journal.push(Change::Pending(key.0, key.1, before));
            }
        }
        self.bytes_bound += RECORD_OVERHEAD + from.len() + to.len();
        self.deleted_ranges.push((cf, from, to));
        if let Some(journal) = &mut self.journal {
            journal.push(Change::Range);
        }
    }

    /// Visits the merged view of `[start, end)` in key order (or reverse)
    /// until `visit` returns false.
    pub fn scan(
        &self,
        cf: Cf,
        start: &[u8],
        end: &[u8],
        reverse: bool,
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), EngineError> {
        let range = (Bound::Included((cf, start.to_vec())), Bound::Excluded((cf, end.to_vec())));
        let mut pending: Box<dyn Iterator<Item = PendingEntry>> = if reverse {
            Box::new(self.pending.range(range).rev().map(|((_, k), v)| (k, v)))
        } else {
            Box::new(self.pending.range(range).map(|((_, k), v)| (k, v)))
        };
        let mut next_pending = pending.next();
        // `before(a, b)`: a comes first in the scan direction.
        let before = |a: &[u8], b: &[u8]| if reverse { a > b } else { a < b };
        let mut stopped = false;
        self.engine.scan(cf, start, end, reverse, &mut |key, value| {
            // Emit pending entries that come before this stored key.
            while let Some((pkey, pvalue)) = next_pending {
                if !before(pkey, key) && pkey.as_slice() != key {
                    break;
                }
                let shadows = pkey.as_slice() == key;
                if let Some(v) = pvalue {
                    if !visit(pkey, v) {
                        stopped = true;
                        return false;
                    }
                }
                next_pending = pending.next();
                if shadows {
                    return true;
                }
            }
            if self.in_deleted_range(cf, key) {
                return true;
            }
            if !visit(key, value) {
                stopped = true;
                return false;
            }
            true
        })?;
        if stopped {
            return Ok(());
        }
        while let Some((pkey, pvalue)) = next_pending {
            if let Some(v) = pvalue {
                if !visit(pkey, v) {
                    break;
                }
            }
            next_pending = pending.next();
        }
        Ok(())
    }

    /// The pending writes as one RocksDB batch (empty when there are none).
    pub fn into_batch(self) -> Batch {
        let engine = self.engine;
        let mut batch = Batch::default();
        for (cf, from, to) in &self.deleted_ranges {
            engine.delete_range(&mut batch, *cf, from, to);
        }
        for ((cf, key), value) in self.pending {
            match value {
                Some(v) => engine.put(&mut batch, cf, key, v),
                None => engine.delete(&mut batch, cf, key),
            }
        }
        batch
    }

    /// Applies every pending write in one atomic batch, outside the log:
    /// only for bookkeeping that is the same whatever the log holds (the
    /// database map written at open).
    pub fn commit(self) -> Result<(), EngineError> {
        let engine = self.engine;
        let batch = self.into_batch();
        if !batch.is_empty() {
            engine.write(batch);
        }
        Ok(())
    }

    /// At most how many bytes `into_batch` makes of these writes.
    pub fn encoded_len_bound(&self) -> usize {
        self.bytes_bound
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bound commits check against the log's frame limit is never
    /// below what the batch takes, through replaced writes, deletes,
    /// ranges and rollbacks.
    #[test]
    fn the_encoded_length_bound_holds() {
        let dir = tempfile::tempdir().unwrap();
        let engine = RocksEngine::open(dir.path(), &crate::RocksConfig::default()).unwrap();
        let mut ws = WriteSet::new(&engine);
        let check = |ws: &WriteSet| {
            let bound = ws.encoded_len_bound();
            let mut copy = WriteSet::new(&engine);
            copy.pending = ws.pending.clone();
            copy.deleted_ranges = ws.deleted_ranges.clone();
            assert!(copy.into_batch().data().len() <= bound);
        };
        check(&ws);
        for i in 0..300u32 {
            let key = format!("key{}", i % 37).into_bytes();
            match i % 5 {
                0 => ws.delete(Cf::Sub, key),
                1 => ws.delete_range(Cf::Meta, key, b"kez".to_vec()),
                _ => ws.put(Cf::ALL[i as usize % 4], key, vec![b'v'; (i * 7 % 300) as usize]),
            }
            if i == 100 {
                let savepoint = ws.savepoint();
                ws.put(Cf::Meta, b"dropped".to_vec(), vec![0; 1000]);
                ws.rollback_to(savepoint);
            }
            check(&ws);
        }
    }
}
