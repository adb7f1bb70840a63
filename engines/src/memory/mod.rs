//! Memory engines: lists, sets and sorted sets live in memory, inside the
//! keyspace's lock shards (the lock that makes a command atomic also guards
//! the data it touches).
//!
//! Every change goes through `MemDb::apply` with a `MemOp`: a deterministic
//! effect (the members SPOP chose, the absolute expiry, the items pushed),
//! never a raw command. Handlers compute effects and apply them; the same
//! records replayed on an empty engine give the same state, which is what
//! the write-ahead log and replicas rely on.

pub mod checkpoint;
pub mod codec;
pub mod cut;
pub mod list;
pub mod set;
pub mod stream;
pub mod stream_entries;
pub mod undo;
pub mod zset;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use bytes::Bytes;
use strata_cluster::key_slot;

use crate::encoding::KeyType;

pub use cut::{DbMut, Piece};
pub use list::{ListOp, ListValue};
pub use set::{SetOp, SetValue};
pub use stream::{StreamId, StreamOp, StreamValue};
pub use undo::Undo;
pub use zset::{SortedSet, ZSetOp};

/// A memory-resident value.
#[derive(Clone, Debug, PartialEq)]
pub enum MemValue {
    List(ListValue),
    Set(SetValue),
    ZSet(SortedSet),
    Stream(StreamValue),
}

impl MemValue {
    pub fn key_type(&self) -> KeyType {
        match self {
            MemValue::List(_) => KeyType::List,
            MemValue::Set(_) => KeyType::Set,
            MemValue::ZSet(_) => KeyType::ZSet,
            MemValue::Stream(_) => KeyType::Stream,
        }
    }

    pub fn len(&self) -> usize {
        match self {
            MemValue::List(l) => l.len(),
            MemValue::Set(s) => s.len(),
            MemValue::ZSet(z) => z.len(),
            MemValue::Stream(s) => s.len(),
        }
    }

    /// Redis never keeps an empty aggregate: the key is deleted instead.
    /// Streams are the exception: an empty stream keeps its last ID (and
    /// consumer groups), so it is never "empty" in this sense.
    pub fn is_empty(&self) -> bool {
        !matches!(self, MemValue::Stream(_)) && self.len() == 0
    }
}

/// A memory key's value and TTL.
#[derive(Clone, Debug, PartialEq)]
pub struct MemEntry {
    /// Absolute unix ms; 0 = no TTL.
    pub expire_ms: u64,
    pub value: MemValue,
}

/// A deterministic effect on one memory key.
#[derive(Clone, Debug, PartialEq)]
pub enum MemOp {
    /// Creates or replaces the key with a whole value (RENAME, COPY, MOVE,
    /// the *STORE commands).
    Put {
        key: Bytes,
        entry: MemEntry,
    },
    Delete {
        key: Bytes,
    },
    /// Sets (or with 0 clears) the TTL.
    Expire {
        key: Bytes,
        expire_ms: u64,
    },
    List {
        key: Bytes,
        op: ListOp,
    },
    Set {
        key: Bytes,
        op: SetOp,
    },
    ZSet {
        key: Bytes,
        op: ZSetOp,
    },
    Stream {
        key: Bytes,
        op: StreamOp,
    },
}

impl MemOp {
    /// Whether the effect changes its key for WATCH (Redis 7.0's
    /// `signalModifiedKey`): consumer-group bookkeeping (XREADGROUP, XACK,
    /// XCLAIM, XGROUP, XSETID) does not.
    pub fn touches_watchers(&self) -> bool {
        match self {
            MemOp::Stream { op, .. } => {
                matches!(op, StreamOp::Add { .. } | StreamOp::Delete { .. } | StreamOp::Trim { .. })
            }
            _ => true,
        }
    }

    /// The key the effect changes.
    pub fn key(&self) -> &Bytes {
        match self {
            MemOp::Put { key, .. }
            | MemOp::Delete { key }
            | MemOp::Expire { key, .. }
            | MemOp::List { key, .. }
            | MemOp::Set { key, .. }
            | MemOp::ZSet { key, .. }
            | MemOp::Stream { key, .. } => key,
        }
    }
}

/// One op-log record: an effect in a physical database, or a whole
/// database emptied.
#[derive(Clone, Debug, PartialEq)]
pub enum MemRecord {
    Op {
        db: u32,
        op: MemOp,
    },
    Flush {
        db: u32,
    },
    /// A message PUBLISHed (SPUBLISHed when `shard`) while replicas were
    /// attached: it changes no data, and reaches the replicas' subscribers
    /// in order with the writes, as Redis propagates PUBLISH.
    Publish {
        shard: bool,
        channel: Bytes,
        message: Bytes,
    },
}

/// The memory keys of one physical database within one lock shard.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MemDb {
    keys: HashMap<Bytes, MemEntry, Hasher>,
    /// Keys by hash slot, so that "every key of slots S..E" is a range.
    by_slot: BTreeSet<(u16, Bytes)>,
    /// Keys with a TTL, soonest first, for active expiry.
    expires: BTreeSet<(u64, Bytes)>,
    /// Big values a change emptied while a checkpoint's cut of them was in
    /// progress: the shard's cut takes what they kept (`cut::DbMut`).
    orphans: Vec<(Bytes, MemValue)>,
}

impl MemDb {
    pub fn get(&self, key: &[u8]) -> Option<&MemEntry> {
        self.keys.get(key)
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn expires_len(&self) -> usize {
        self.expires.len()
    }

    /// Keys of `slot` from `from` on (inclusive; empty = from the start), in
    /// byte order.
    pub fn keys_in_slot<'a>(&'a self, slot: u16, from: &[u8]) -> impl Iterator<Item = &'a Bytes> + 'a {
        let start = (slot, Bytes::copy_from_slice(from));
        self.by_slot.range(start..).take_while(move |(s, _)| *s == slot).map(|(_, k)| k)
    }

    /// Keys whose TTL is at or before `now_ms`, soonest first.
    pub fn due(&self, now_ms: u64, limit: usize) -> Vec<Bytes> {
        self.expires.iter().take_while(|(at, _)| *at <= now_ms).take(limit).map(|(_, k)| k.clone()).collect()
    }

    /// A database of whole entries (loading a checkpoint; a key given
    /// twice keeps its last entry): each index is built in one go from a
    /// sorted run, not one insert at a time.
    pub fn from_entries(entries: Vec<(Bytes, MemEntry)>) -> MemDb {
        let mut keys = HashMap::with_capacity_and_hasher(entries.len(), Hasher::default());
        keys.extend(entries);
        let mut by_slot: Vec<(u16, Bytes)> = keys.keys().map(|k| (key_slot(k), k.clone())).collect();
        by_slot.sort_unstable();
        let mut expires: Vec<(u64, Bytes)> =
            keys.iter().filter(|(_, e)| e.expire_ms != 0).map(|(k, e)| (e.expire_ms, k.clone())).collect();
        expires.sort_unstable();
        MemDb {
            keys,
            by_slot: by_slot.into_iter().collect(),
            expires: expires.into_iter().collect(),
            orphans: Vec::new(),
        }
    }

    /// Creates or replaces a key with a whole entry (`apply` with
    /// `MemOp::Put` when the effect must be recorded).
    pub fn insert(&mut self, key: Bytes, entry: MemEntry) {
        self.remove(&key);
        if entry.expire_ms != 0 {
            self.expires.insert((entry.expire_ms, key.clone()));
        }
        self.by_slot.insert((key_slot(&key), key.clone()));
        self.keys.insert(key, entry);
    }

    fn remove(&mut self, key: &[u8]) -> Option<MemEntry> {
        let (key, entry) = self.keys.remove_entry(key)?;
        if entry.expire_ms != 0 {
            self.expires.remove(&(entry.expire_ms, key.clone()));
        }
        self.by_slot.remove(&(key_slot(&key), key));
        Some(entry)
    }

    /// The single mutation path of the memory engines.
    pub fn apply(&mut self, op: &MemOp) {
        match op {
            MemOp::Put { key, entry } => {
                if !entry.value.is_empty() {
                    self.insert(owned(key), entry.clone());
                } else {
                    self.remove(key);
                }
            }
            MemOp::Delete { key } => {
                self.remove(key);
            }
            MemOp::Expire { key, expire_ms } => {
                if let Some(entry) = self.keys.get_mut(key) {
                    if entry.expire_ms != 0 {
                        self.expires.remove(&(entry.expire_ms, key.clone()));
                    }
                    entry.expire_ms = *expire_ms;
                    if *expire_ms != 0 {
                        self.expires.insert((*expire_ms, key.clone()));
                    }
                }
            }
            MemOp::List { key, op } => self.update(
                key,
                || MemValue::List(ListValue::default()),
                |v| match v {
                    MemValue::List(list) => list::apply(list, op),
                    other => panic!("list op on a {:?}", other.key_type()),
                },
            ),
            MemOp::Set { key, op } => self.update(
                key,
                || MemValue::Set(SetValue::default()),
                |v| match v {
                    MemValue::Set(set) => set::apply(set, op),
                    other => panic!("set op on a {:?}", other.key_type()),
                },
            ),
            MemOp::ZSet { key, op } => self.update(
                key,
                || MemValue::ZSet(SortedSet::default()),
                |v| match v {
                    MemValue::ZSet(zset) => zset::apply(zset, op),
                    other => panic!("zset op on a {:?}", other.key_type()),
                },
            ),
            MemOp::Stream { key, op } => self.update(
                key,
                || MemValue::Stream(StreamValue::default()),
                |v| match v {
                    MemValue::Stream(stream) => stream::apply(stream, op),
                    other => panic!("stream op on a {:?}", other.key_type()),
                },
            ),
        }
    }

    /// Applies a family op to the key's value, creating it if missing and
    /// deleting it if the op left it empty.
    fn update(&mut self, key: &Bytes, create: impl FnOnce() -> MemValue, change: impl FnOnce(&mut MemValue)) {
        if let Some(entry) = self.keys.get_mut(key) {
            change(&mut entry.value);
            if entry.value.is_empty() {
                let gone = self.remove(key).expect("present");
                if gone.value.element_cut_active() {
                    self.orphans.push((key.clone(), gone.value));
                }
            }
            return;
        }
        // A new key: built first, indexed once (one hash lookup, not four).
        let mut value = create();
        change(&mut value);
        if !value.is_empty() {
            let key = owned(key);
            self.by_slot.insert((key_slot(&key), key.clone()));
            self.keys.insert(key, MemEntry { expire_ms: 0, value });
        }
    }
}

/// The hasher of the memory engines' tables: SipHash was a visible part of
/// every lookup; foldhash is several times faster and still seeded per
/// process, so clients cannot aim keys at one bucket.
pub type Hasher = foldhash::fast::RandomState;

/// A copy of `bytes` in an allocation of its own. The memory engines copy
/// what they keep: a command's arguments are slices of the connection's
/// read buffer, and keeping a slice would keep the whole buffer alive.
pub(crate) fn owned(bytes: &[u8]) -> Bytes {
    Bytes::copy_from_slice(bytes)
}

/// Number of lock shards the keyspace splits memory keys into. A command
/// locks the shards of its keys, so two commands on different keys share
/// a lock one time in SHARDS, and a 10-key MSET meets another one time in
/// ten (at 64 shards, most of the time: MSET ran 20 % slower on 2 cores).
/// Checkpoints record the count they were written with (see `reshard`).
pub const SHARDS: usize = 1024;

/// The shard holding `key`: by hash slot, so a slot never spans shards.
pub fn shard_of(key: &[u8]) -> usize {
    shard_of_slot(key_slot(key))
}

/// The shard holding the keys of hash slot `slot`.
pub fn shard_of_slot(slot: u16) -> usize {
    slot as usize % SHARDS
}

/// The shard holding `key` when keys are split into `count` shards.
pub fn shard_in(key: &[u8], count: usize) -> usize {
    key_slot(key) as usize % count
}

/// Moves every key of `shards` into the shard `shard_of` gives it (a
/// checkpoint written with another shard count, once replay is done).
pub fn reshard(shards: Vec<MemShard>) -> Vec<MemShard> {
    let mut parts: Vec<BTreeMap<u32, Vec<(Bytes, MemEntry)>>> = (0..SHARDS).map(|_| BTreeMap::new()).collect();
    for shard in shards {
        for (id, db) in shard.dbs {
            for (key, entry) in db.keys {
                parts[shard_of(&key)].entry(id).or_default().push((key, entry));
            }
        }
    }
    parts.into_iter().map(MemShard::from_entries).collect()
}

/// The memory keys of every database within one lock shard.
#[derive(Debug, Default)]
pub struct MemShard {
    /// Looked up by every memory effect: hashed with foldhash, not SipHash.
    dbs: HashMap<u32, MemDb, Hasher>,
    /// A checkpoint's cut in progress (`memory::cut`).
    cut: Option<Box<cut::ShardCut>>,
}

impl MemShard {
    /// A shard of whole entries, by physical database.
    pub fn from_entries(dbs: BTreeMap<u32, Vec<(Bytes, MemEntry)>>) -> MemShard {
        MemShard { dbs: dbs.into_iter().map(|(id, entries)| (id, MemDb::from_entries(entries))).collect(), cut: None }
    }

    pub fn db_ref(&self, physical: u32) -> Option<&MemDb> {
        self.dbs.get(&physical)
    }

    /// Empties physical database `physical` here, returning what it held.
    pub fn flush(&mut self, physical: u32) -> Option<MemDb> {
        let mut db = self.dbs.remove(&physical)?;
        if let Some(cut) = self.cut.as_deref_mut() {
            let keys: Vec<Bytes> = db.keys.keys().cloned().collect();
            for key in keys {
                cut.before_change(&mut db, physical, &key, true);
            }
        }
        Some(db)
    }

    /// Puts back what `flush` returned.
    pub fn unflush(&mut self, physical: u32, db: MemDb) {
        self.dbs.insert(physical, db);
    }

    /// Every key: `(physical database, key, entry)`.
    pub fn entries(&self) -> impl Iterator<Item = (u32, &Bytes, &MemEntry)> {
        self.dbs.iter().flat_map(|(&id, db)| db.keys.iter().map(move |(k, e)| (id, k, e)))
    }

    /// Whether a key of any database here has a TTL at or before `now_ms`.
    pub fn any_due(&self, now_ms: u64) -> bool {
        self.dbs.values().any(|db| db.expires.first().is_some_and(|(at, _)| *at <= now_ms))
    }

    /// The keys of database `physical` in the hash slots `slots`.
    pub fn keys_in_slots(&self, physical: u32, slots: std::ops::RangeInclusive<u16>) -> Vec<Bytes> {
        let Some(db) = self.dbs.get(&physical) else { return Vec::new() };
        let from = (*slots.start(), Bytes::new());
        db.by_slot.range(from..).take_while(|(slot, _)| slots.contains(slot)).map(|(_, key)| key.clone()).collect()
    }

    /// Physical databases that hold keys in this shard.
    pub fn databases(&self) -> Vec<u32> {
        self.dbs.iter().filter(|(_, db)| !db.is_empty()).map(|(&id, _)| id).collect()
    }
}

/// Every key of every database, by physical database: the state records
/// replay to, for comparing engines.
pub type MemImage = BTreeMap<u32, BTreeMap<Bytes, MemEntry>>;

/// Replays records onto empty databases.
pub fn replay(records: &[MemRecord]) -> MemImage {
    let mut dbs: HashMap<u32, MemDb> = HashMap::new();
    for record in records {
        match record {
            MemRecord::Op { db, op } => dbs.entry(*db).or_default().apply(op),
            MemRecord::Flush { db } => {
                dbs.remove(db);
            }
            MemRecord::Publish { .. } => {}
        }
    }
    dbs.into_iter().filter(|(_, db)| !db.is_empty()).map(|(id, db)| (id, db.keys.into_iter().collect())).collect()
}

impl MemShard {
    /// Adds this shard's keys to an image.
    pub fn add_to_image(&self, image: &mut MemImage) {
        for (&id, db) in &self.dbs {
            for (key, entry) in &db.keys {
                image.entry(id).or_default().insert(key.clone(), entry.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(k: &str) -> Bytes {
        Bytes::copy_from_slice(k.as_bytes())
    }

    #[test]
    fn stored_bytes_do_not_keep_the_request_buffer_alive() {
        // Arguments arrive as slices of a connection's read buffer.
        let buffer = Bytes::from((0..4096).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
        let arg = |at: usize| buffer.slice(at..at + 8);
        let outside = |b: &Bytes| !buffer.as_ptr_range().contains(&b.as_ptr());
        let mut db = MemDb::default();
        db.apply(&MemOp::List { key: arg(0), op: ListOp::Push { front: false, items: vec![arg(8)] } });
        db.apply(&MemOp::Set { key: arg(16), op: SetOp::Add(vec![arg(24)]) });
        db.apply(&MemOp::ZSet { key: arg(32), op: ZSetOp::Add(vec![(1.0, arg(40))]) });
        let id = StreamId { ms: 1, seq: 0 };
        db.apply(&MemOp::Stream { key: arg(48), op: StreamOp::Add { id, fields: vec![arg(56), arg(64)] } });
        for stored in db.keys.keys() {
            assert!(outside(stored));
        }
        let MemValue::Set(set) = &db.get(&arg(16)).unwrap().value else { panic!() };
        assert!(set.iter().all(outside));
        let MemValue::ZSet(zset) = &db.get(&arg(32)).unwrap().value else { panic!() };
        assert!(zset.iter().all(|(_, m)| outside(&m)));
        assert!(zset.members().all(|(m, _)| outside(m)));
    }

    #[test]
    fn a_database_built_at_once_equals_one_built_key_by_key() {
        let entry = |expire_ms: u64, member: &str| MemEntry {
            expire_ms,
            value: MemValue::Set([key(member)].into_iter().collect()),
        };
        let entries: Vec<(Bytes, MemEntry)> =
            (0..500).map(|i| (key(&format!("k{i}")), entry(if i % 3 == 0 { 1000 + i } else { 0 }, "m"))).collect();
        let mut one_by_one = MemDb::default();
        for (k, e) in entries.iter().cloned() {
            one_by_one.insert(k, e);
        }
        assert_eq!(MemDb::from_entries(entries.clone()), one_by_one);
        // A key given twice keeps its last entry, in every index.
        let mut twice = entries.clone();
        twice.push((key("k3"), entry(7, "n")));
        one_by_one.insert(key("k3"), entry(7, "n"));
        assert_eq!(MemDb::from_entries(twice), one_by_one);
    }

    #[test]
    fn indexes_follow_the_keys() {
        let mut db = MemDb::default();
        db.apply(&MemOp::Set { key: key("s"), op: SetOp::Add(vec![key("a")]) });
        db.apply(&MemOp::Expire { key: key("s"), expire_ms: 50 });
        assert_eq!(db.due(60, 10), vec![key("s")]);
        assert_eq!(db.keys_in_slot(key_slot(b"s"), b"").count(), 1);
        db.apply(&MemOp::Set { key: key("s"), op: SetOp::Remove(vec![key("a")]) });
        assert!(db.is_empty(), "an emptied set is deleted");
        assert_eq!(db.due(60, 10), Vec::<Bytes>::new());
        assert_eq!(db.keys_in_slot(key_slot(b"s"), b"").count(), 0);
    }
}
