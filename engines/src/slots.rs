//! The effects of a slot range in log records, taken out of them on one
//! node and applied on another (a slot migration's stream, and its test
//! here): records are slot-decomposable.
//!
//! Every write a record's RocksDB batch makes names its key's database and
//! hash slot (metadata, hash fields and the expiry index by their key
//! layout, `encoding`; key counters are per slot, holding the slot's count
//! after the record), and every memory record names its key. So the
//! effects on a slot range are the writes and records of its keys, each
//! slot's counters included, exact on both sides. Two things are not
//! per key and are turned into what they mean for the range:
//! - FLUSHDB and FLUSHALL (range deletes over a whole database, and a
//!   memory flush) become `SlotEffects::flushed`: the range's keys in that
//!   database are dropped before the rest of the record applies; what the
//!   record wrote there before the flush is left out (the flush dropped it).
//! - The hash versions' mark becomes `hash_version`, which the target
//!   raises its own mark to (never lowers it: its versions must stay above
//!   every hash it holds).
//!
//! Physical database ids become logical ones (the database map is followed
//! through SWAPDB records), and the target maps them to its own.

use std::ops::RangeInclusive;

use crate::encoding::{decode_expire_key, decode_meta_key, META_PREFIX_LEN};
use crate::keyspace::{counter_key_in, decode_db_map, decode_hash_version, ServerKey};
use crate::log::LogRecord;
use crate::memory::{MemOp, MemRecord, MemShard};
use crate::rocks::BatchWrite;
use crate::{Cf, EngineError, RocksEngine};

/// A RocksDB write of a slot range's effects, its key in a logical
/// database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RangeWrite {
    Put { cf: Cf, key: Vec<u8>, value: Vec<u8> },
    Delete { cf: Cf, key: Vec<u8> },
}

/// What one log record did to the keys of a slot range.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SlotEffects {
    pub seq: u64,
    /// Logical databases whose keys in the range are dropped before the
    /// rest applies (a FLUSHDB or FLUSHALL in the record).
    pub flushed: Vec<u32>,
    /// RocksDB writes, in the record's order.
    pub rocks: Vec<RangeWrite>,
    /// The hash versions' mark after the record, if it moved.
    pub hash_version: Option<u64>,
    /// Memory records (`MemRecord::Op` only), logical databases.
    pub mem: Vec<MemRecord>,
    /// SWAPDB: the two logical databases exchanged (a record that swaps
    /// writes no keys).
    pub swapped: Option<(u32, u32)>,
}

impl SlotEffects {
    pub fn is_empty(&self) -> bool {
        self.flushed.is_empty()
            && self.rocks.is_empty()
            && self.hash_version.is_none()
            && self.mem.is_empty()
            && self.swapped.is_none()
    }
}

/// Takes the effects on a set of slot ranges out of a node's records, in
/// sequence order.
pub struct SlotExtractor {
    ranges: Vec<RangeInclusive<u16>>,
    /// Physical database ids by logical index, as of the next record.
    db_map: Vec<u32>,
}

impl SlotExtractor {
    /// For records that follow a state whose database map is `db_map`.
    pub fn new(ranges: Vec<RangeInclusive<u16>>, db_map: Vec<u32>) -> SlotExtractor {
        SlotExtractor { ranges, db_map }
    }

    fn in_range(&self, slot: u16) -> bool {
        self.ranges.iter().any(|range| range.contains(&slot))
    }

    fn logical(&self, physical: u32) -> Result<u32, EngineError> {
        let index = self.db_map.iter().position(|&p| p == physical);
        index.map(|i| i as u32).ok_or_else(|| {
            EngineError::Corrupt(format!("a record names database {physical}, which no database maps to"))
        })
    }

    /// The effects of `record` (read from `engine`'s log) on the ranges.
    /// A record that swaps databases must not also write keys: its writes
    /// could not be told apart by map (SWAPDB is refused inside MULTI in
    /// cluster mode, where slots move).
    pub fn extract(&mut self, engine: &RocksEngine, record: &LogRecord) -> Result<SlotEffects, EngineError> {
        let mut effects = SlotEffects { seq: record.seq, ..SlotEffects::default() };
        let mut swapped = None;
        for write in engine.writes_of(&record.rocks)? {
            let (cf, key) = match &write {
                BatchWrite::Put { cf, key, .. } | BatchWrite::Delete { cf, key } => (*cf, *key),
                BatchWrite::DeleteRange { cf, from, .. } => {
                    // FLUSHDB: the same database range in each family.
                    if *cf == Cf::Meta {
                        let physical = from.get(..4).map(|db| u32::from_be_bytes(db.try_into().expect("4 bytes")));
                        let physical =
                            physical.ok_or_else(|| EngineError::Corrupt("a range delete of no database".into()))?;
                        let logical = self.logical(physical)?;
                        effects.rocks.retain(|w| database_of(w) != Some(logical));
                        effects.flushed.push(logical);
                    }
                    continue;
                }
            };
            let value = match &write {
                BatchWrite::Put { value, .. } => Some(*value),
                _ => None,
            };
            let (physical, slot) = match cf {
                Cf::Meta | Cf::Sub | Cf::Expire => data_key_slot(cf, key),
                Cf::Default => match ServerKey::of(key) {
                    Some(ServerKey::Counter { physical, slot }) => Some((physical, slot)),
                    Some(ServerKey::HashVersion) => {
                        effects.hash_version = value.and_then(decode_hash_version);
                        continue;
                    }
                    Some(ServerKey::DbMap) => {
                        swapped = value.map(decode_db_map);
                        continue;
                    }
                    None => None,
                },
            }
            .ok_or_else(|| EngineError::Corrupt(format!("a {cf:?} key of no known kind in record {}", record.seq)))?;
            if !self.in_range(slot) {
                continue;
            }
            let logical = self.logical(physical)?;
            let key = match cf {
                Cf::Default => counter_key_in(key, logical),
                _ => with_database(key, logical),
            };
            effects.rocks.push(match value {
                Some(value) => RangeWrite::Put { cf, key, value: value.to_vec() },
                None => RangeWrite::Delete { cf, key },
            });
        }
        for mem in &record.mem {
            match mem {
                MemRecord::Op { db, op } if self.in_range(strata_cluster::key_slot(op.key())) => {
                    effects.mem.push(MemRecord::Op { db: self.logical(*db)?, op: op.clone() });
                }
                MemRecord::Op { .. } => {}
                MemRecord::Flush { db } => {
                    let logical = self.logical(*db)?;
                    effects.mem.retain(|m| !matches!(m, MemRecord::Op { db, .. } if *db == logical));
                    if !effects.flushed.contains(&logical) {
                        effects.flushed.push(logical);
                    }
                }
                // Messages are not data: nothing of a slot range.
                MemRecord::Publish { .. } => {}
            }
        }
        if let Some(db_map) = swapped {
            if !effects.rocks.is_empty() || !effects.mem.is_empty() {
                return Err(EngineError::Corrupt(format!(
                    "record {} swaps databases and writes keys of the slot range: its writes cannot be placed",
                    record.seq
                )));
            }
            let changed: Vec<u32> = (0..db_map.len().min(self.db_map.len()))
                .filter(|&i| db_map[i] != self.db_map[i])
                .map(|i| i as u32)
                .collect();
            effects.swapped = match changed[..] {
                [] => None,
                [a, b] => Some((a, b)),
                _ => return Err(EngineError::Corrupt(format!("record {} remaps databases: {changed:?}", record.seq))),
            };
            self.db_map = db_map;
        }
        Ok(effects)
    }
}

/// The physical database and hash slot a key of the meta, sub or expire
/// family names (None for the default family's server keys, or garbage).
pub fn data_key_slot(cf: Cf, key: &[u8]) -> Option<(u32, u16)> {
    match cf {
        Cf::Meta | Cf::Sub => decode_meta_key(key).map(|(db, slot, _)| (db, slot)),
        Cf::Expire => decode_expire_key(key).map(|(db, _, slot, _)| (db, slot)),
        Cf::Default => None,
    }
}

/// The logical database a range write's key names.
fn database_of(write: &RangeWrite) -> Option<u32> {
    let (RangeWrite::Put { cf, key, .. } | RangeWrite::Delete { cf, key }) = write;
    match cf {
        Cf::Default => match ServerKey::of(key)? {
            ServerKey::Counter { physical, .. } => Some(physical),
            _ => None,
        },
        _ => key.get(..4).map(|db| u32::from_be_bytes(db.try_into().expect("4 bytes"))),
    }
}

/// `key` (of the meta, sub or expire family: each starts with its
/// database) in database `db`.
fn with_database(key: &[u8], db: u32) -> Vec<u8> {
    let mut moved = key.to_vec();
    moved[..4].copy_from_slice(&db.to_be_bytes());
    moved
}

/// Applies slot effects to a node's engines: RocksDB and its memory
/// shards, which hold nothing else of the ranges (the importing side of a
/// migration).
pub struct SlotImport<'e> {
    engine: &'e RocksEngine,
    shards: &'e mut [MemShard],
    ranges: Vec<RangeInclusive<u16>>,
    /// This node's physical database ids by logical index.
    db_map: Vec<u32>,
}

impl<'e> SlotImport<'e> {
    pub fn new(
        engine: &'e RocksEngine,
        shards: &'e mut [MemShard],
        ranges: Vec<RangeInclusive<u16>>,
        db_map: Vec<u32>,
    ) -> Self {
        SlotImport { engine, shards, ranges, db_map }
    }

    fn physical(&self, logical: u32) -> Result<u32, EngineError> {
        self.db_map
            .get(logical as usize)
            .copied()
            .ok_or_else(|| EngineError::Corrupt(format!("slot effects name database {logical}, which is not here")))
    }

    pub fn apply(&mut self, effects: &SlotEffects) -> Result<(), EngineError> {
        let mut batch = crate::rocks::Batch::default();
        for &logical in &effects.flushed {
            let physical = self.physical(logical)?;
            self.drop_ranges(physical, &mut batch)?;
        }
        for write in &effects.rocks {
            match write {
                RangeWrite::Put { cf, key, value } => {
                    let key = self.placed(*cf, key)?;
                    self.engine.put(&mut batch, *cf, key, value.clone());
                }
                RangeWrite::Delete { cf, key } => {
                    let key = self.placed(*cf, key)?;
                    self.engine.delete(&mut batch, *cf, key);
                }
            }
        }
        if let Some(mark) = effects.hash_version {
            crate::keyspace::raise_hash_version(self.engine, &mut batch, mark)?;
        }
        if let Some((a, b)) = effects.swapped {
            // As the source's: this node's databases are exchanged whole
            // (slots move in cluster mode, which has no SWAPDB; here the
            // node holds the ranges alone).
            self.db_map.swap(a as usize, b as usize);
            crate::keyspace::put_db_map(self.engine, &mut batch, &self.db_map);
        }
        self.engine.write(batch);
        for mem in &effects.mem {
            if let MemRecord::Op { db, op } = mem {
                let physical = self.physical(*db)?;
                let shard = crate::memory::shard_in(op.key(), self.shards.len());
                self.shards[shard].db(physical).apply(op);
            }
        }
        Ok(())
    }

    /// A range write's key in this node's database.
    fn placed(&self, cf: Cf, key: &[u8]) -> Result<Vec<u8>, EngineError> {
        let logical = database_of(&RangeWrite::Delete { cf, key: key.to_vec() })
            .ok_or_else(|| EngineError::Corrupt("a slot effect's key names no database".into()))?;
        let physical = self.physical(logical)?;
        Ok(match cf {
            Cf::Default => counter_key_in(key, physical),
            _ => with_database(key, physical),
        })
    }

    /// Drops every key of the ranges in database `physical`: RocksDB's
    /// (metadata, fields, expiry entries, counters) into `batch`, and the
    /// memory shards'.
    fn drop_ranges(&mut self, physical: u32, batch: &mut crate::rocks::Batch) -> Result<(), EngineError> {
        use crate::encoding::{expire_key, meta_key, Meta};
        for range in self.ranges.clone() {
            let start = meta_key(physical, *range.start(), b"");
            // Slot 16384 is past every slot's keys and before the next
            // database's.
            let end = meta_key(physical, range.end() + 1, b"");
            let mut expiring = Vec::new();
            self.engine.scan(Cf::Meta, &start, &end, false, &mut |key, value| {
                if let (Some((_, slot, user_key)), Some(meta)) = (decode_meta_key(key), Meta::decode(value)) {
                    if meta.expire_ms != 0 {
                        expiring.push(expire_key(physical, meta.expire_ms, slot, user_key));
                    }
                }
                true
            })?;
            for key in expiring {
                self.engine.delete(batch, Cf::Expire, key);
            }
            debug_assert_eq!(start.len(), META_PREFIX_LEN);
            self.engine.delete_range(batch, Cf::Meta, &start, &end);
            self.engine.delete_range(batch, Cf::Sub, &start, &end);
            let (first, last) = crate::keyspace::counter_keys_of(physical, range.clone());
            self.engine.delete_range(batch, Cf::Default, &first, &last);
            for shard in self.shards.iter_mut() {
                for key in shard.keys_in_slots(physical, range.clone()) {
                    shard.db(physical).apply(&MemOp::Delete { key });
                }
            }
        }
        Ok(())
    }
}
