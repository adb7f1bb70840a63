//! Versioned cuts: a checkpoint of the memory engines as of one sequence,
//! written while writers go on (Dragonfly's snapshot design).
//!
//! A cut starts on every shard at once, at sequence S (`MemShard::begin_cut`,
//! O(1) a shard). The checkpoint then walks each shard's keys in order
//! (database, slot, key), a bounded batch per lock, writing each key as it
//! is. A writer about to change a key the walk has not reached first keeps
//! what the key held at S (`Preserved`): nothing, or a copy of a small
//! value. Big sets and sorted sets are never copied whole, by the walk or by
//! a writer: they are cut element by element (`ElementCut`), their slots
//! walked a piece at a time and a writer keeping only the elements it
//! changes. So no writer waits for more than one batch, and the memory a
//! cut holds is what was written during it, never a copy of the data.
//!
//! A big value cut in pieces appears in the checkpoint as several entries
//! under one key, each holding some of its elements; together they are
//! the value (`checkpoint::read_checkpoint` joins them).

use std::collections::{HashMap, HashSet};
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use strata_cluster::key_slot;

use super::{owned, Hasher, MemDb, MemEntry, MemOp, MemShard, MemValue, Undo};

/// The elements of one big value as they were at the cut, in pieces.
/// The value's elements live in numbered slots (a sorted set's nodes, a
/// set's positions); the walk writes slots in order, and a writer calls
/// `before_change` before a slot's content changes.
#[derive(Debug)]
pub struct ElementCut<T> {
    /// Slots at or past `end` held nothing at the cut.
    end: usize,
    /// Slots below `next` are written.
    next: usize,
    /// Slots from `next` on that changed since the cut: the walk skips them.
    changed: HashSet<usize, Hasher>,
    /// What the changed slots held at the cut.
    saved: Vec<T>,
    /// Bytes the cut keeps, counted for the whole cut.
    kept: KeptBytes,
}

impl<T: Weigh> ElementCut<T> {
    fn new(end: usize, kept: KeptBytes) -> ElementCut<T> {
        ElementCut { end, next: 0, changed: HashSet::default(), saved: Vec::new(), kept }
    }

    /// Keeps what `slot` holds (`held`) if the walk still needs it.
    fn before_change(&mut self, slot: usize, held: impl FnOnce() -> Option<T>) {
        if slot >= self.next && slot < self.end && self.changed.insert(slot) {
            if let Some(element) = held() {
                self.kept.fetch_add(element.weight() as u64, Ordering::Relaxed);
                self.saved.push(element);
            }
        }
    }

    /// Appends the elements of the next `limit` slots as they were at the
    /// cut (`at` reads a slot as it is now); true once every slot is done,
    /// with the kept elements appended too.
    fn walk(&mut self, limit: usize, at: impl Fn(usize) -> Option<T>, out: &mut Vec<T>) -> bool {
        let stop = self.next.saturating_add(limit).min(self.end);
        for slot in self.next..stop {
            if !self.changed.remove(&slot) {
                out.extend(at(slot));
            }
        }
        self.next = stop;
        if stop < self.end {
            return false;
        }
        out.append(&mut self.saved);
        true
    }
}

/// Bytes a cut keeps beyond the live data (what writers changed during
/// it), added up over the whole cut: INFO's `rdb_last_cow_size`.
pub type KeptBytes = Arc<AtomicU64>;

/// The bytes an element or value takes, as the cut counts them: its data
/// plus the handle that holds it.
pub trait Weigh {
    fn weight(&self) -> usize;
}

impl Weigh for Bytes {
    fn weight(&self) -> usize {
        self.len() + std::mem::size_of::<Bytes>()
    }
}

impl Weigh for (f64, Bytes) {
    fn weight(&self) -> usize {
        self.1.len() + std::mem::size_of::<(f64, Bytes)>()
    }
}

/// A value's element cut, if one is in progress. A copy of the value is a
/// value of its own, outside any cut.
#[derive(Debug)]
pub struct CutSlot<T>(Option<Box<ElementCut<T>>>);

impl<T> Default for CutSlot<T> {
    fn default() -> Self {
        CutSlot(None)
    }
}

impl<T> Clone for CutSlot<T> {
    fn clone(&self) -> Self {
        CutSlot(None)
    }
}

impl<T: Weigh> CutSlot<T> {
    pub fn active(&self) -> bool {
        self.0.is_some()
    }

    /// Starts cutting a value whose slots below `end` may hold elements.
    pub fn begin(&mut self, end: usize, kept: &KeptBytes) {
        if self.0.is_none() {
            self.0 = Some(Box::new(ElementCut::new(end, kept.clone())));
        }
    }

    /// See `ElementCut::before_change`; nothing when no cut is in progress.
    pub fn before_change(&mut self, slot: usize, held: impl FnOnce() -> Option<T>) {
        if let Some(cut) = &mut self.0 {
            cut.before_change(slot, held);
        }
    }

    /// The next piece (`ElementCut::walk`); the cut ends when it is done.
    pub fn walk(&mut self, limit: usize, at: impl Fn(usize) -> Option<T>, out: &mut Vec<T>) -> bool {
        let done = self.0.as_mut().is_none_or(|cut| cut.walk(limit, at, out));
        if done {
            self.0 = None;
        }
        done
    }

    /// Ends the cut, dropping what it kept (a checkpoint given up).
    pub fn end(&mut self) {
        self.0 = None;
    }
}

/// Sets and sorted sets with more elements than this are cut element by
/// element: copying one whole is what a writer must not wait for.
pub const BIG_VALUE: usize = 1024;

/// Elements of a big value written in one batch (see `MemShard::walk_cut`).
pub const PIECE: usize = 4096;

/// Some elements of a big set or sorted set, as they were at the cut.
#[derive(Clone, Debug, PartialEq)]
pub enum Piece {
    Set(Vec<Bytes>),
    ZSet(Vec<(f64, Bytes)>),
}

impl Piece {
    pub fn len(&self) -> usize {
        match self {
            Piece::Set(members) => members.len(),
            Piece::ZSet(members) => members.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Weigh for Piece {
    fn weight(&self) -> usize {
        match self {
            Piece::Set(members) => members.iter().map(Weigh::weight).sum(),
            Piece::ZSet(members) => members.iter().map(Weigh::weight).sum(),
        }
    }
}

impl Weigh for MemValue {
    fn weight(&self) -> usize {
        match self {
            MemValue::List(list) => list.iter().map(|item| item.len() + 2).sum(),
            MemValue::Set(set) => set.iter().map(Weigh::weight).sum(),
            MemValue::ZSet(zset) => zset.members().map(|(member, _)| member.weight() + 8).sum(),
            MemValue::Stream(stream) => {
                stream.entries.iter().map(|(_, fields)| 16 + fields.iter().map(|f| f.len() + 1).sum::<usize>()).sum()
            }
        }
    }
}

impl MemValue {
    /// Whether the value is cut element by element.
    fn cut_by_element(&self) -> bool {
        match self {
            MemValue::Set(set) => set.cut_active() || set.len() > BIG_VALUE,
            MemValue::ZSet(zset) => zset.cut_active() || zset.len() > BIG_VALUE,
            _ => false,
        }
    }

    fn begin_element_cut(&mut self, kept: &KeptBytes) {
        match self {
            MemValue::Set(set) => set.begin_cut(kept),
            MemValue::ZSet(zset) => zset.begin_cut(kept),
            _ => unreachable!("only sets and sorted sets are cut by element"),
        }
    }

    pub(super) fn element_cut_active(&self) -> bool {
        match self {
            MemValue::Set(set) => set.cut_active(),
            MemValue::ZSet(zset) => zset.cut_active(),
            _ => false,
        }
    }

    /// The next `limit` slots of an element cut; true when it is over.
    fn element_cut_piece(&mut self, limit: usize) -> (Piece, bool) {
        match self {
            MemValue::Set(set) => {
                let mut out = Vec::new();
                let done = set.cut_walk(limit, &mut out);
                (Piece::Set(out), done)
            }
            MemValue::ZSet(zset) => {
                let mut out = Vec::new();
                let done = zset.cut_walk(limit, &mut out);
                (Piece::ZSet(out), done)
            }
            _ => unreachable!("only sets and sorted sets are cut by element"),
        }
    }

    fn end_element_cut(&mut self) {
        match self {
            MemValue::Set(set) => set.end_cut(),
            MemValue::ZSet(zset) => zset.end_cut(),
            _ => {}
        }
    }
}

/// What a key the walk has not reached held at the cut, kept by the writer
/// that changed it first.
#[derive(Debug)]
enum Preserved {
    /// It did not exist.
    Absent,
    Entry(MemEntry),
    /// A big value being cut by element (its elements are kept by the
    /// value), with its expiry at the cut.
    ByElement {
        expire_ms: u64,
    },
    /// The elements of a big value not yet written when a writer replaced
    /// or deleted it.
    Rest {
        expire_ms: u64,
        piece: Piece,
    },
}

/// A shard's cut in progress.
#[derive(Debug)]
pub struct ShardCut {
    seq: u64,
    /// The last (database, slot, key) the walk wrote: keys up to it are done.
    walked: Option<(u32, u16, Bytes)>,
    /// Keys changed ahead of the walk, by database.
    preserved: HashMap<u32, HashMap<Bytes, Preserved, Hasher>, Hasher>,
    kept: KeptBytes,
}

impl ShardCut {
    /// Whether the walk has not written `key` of `db` yet.
    fn ahead(&self, db: u32, key: &[u8]) -> bool {
        match &self.walked {
            None => true,
            Some((walked_db, walked_slot, walked_key)) => {
                (db, key_slot(key), key) > (*walked_db, *walked_slot, &walked_key[..])
            }
        }
    }

    /// Keeps what `key` of `db` holds before a change, if the walk still
    /// needs it; `whole` when the change replaces or deletes the entry.
    pub(super) fn before_change(&mut self, db: &mut MemDb, physical: u32, key: &[u8], whole: bool) {
        if !self.ahead(physical, key) {
            return;
        }
        let kept = self.preserved.entry(physical).or_default();
        let expire_ms = match kept.get(key) {
            None => None,
            Some(Preserved::ByElement { expire_ms }) if whole => Some(*expire_ms),
            Some(_) => return,
        };
        let Some(entry) = db.keys.get_mut(key) else {
            kept.insert(owned(key), Preserved::Absent);
            return;
        };
        if expire_ms.is_none() && !whole && entry.value.cut_by_element() {
            entry.value.begin_element_cut(&self.kept);
            kept.insert(owned(key), Preserved::ByElement { expire_ms: entry.expire_ms });
            return;
        }
        let preserved = match expire_ms {
            Some(expire_ms) => {
                let (piece, _) = entry.value.element_cut_piece(usize::MAX);
                self.kept.fetch_add(piece.weight() as u64, Ordering::Relaxed);
                Preserved::Rest { expire_ms, piece }
            }
            None => {
                self.kept.fetch_add(entry.value.weight() as u64, Ordering::Relaxed);
                Preserved::Entry(entry.clone())
            }
        };
        kept.insert(owned(key), preserved);
    }

    /// A big value removed by a change that emptied it: what it kept.
    fn orphaned(&mut self, physical: u32, key: Bytes, mut value: MemValue) {
        let kept = self.preserved.entry(physical).or_default();
        if let Some(Preserved::ByElement { expire_ms }) = kept.get(&key) {
            let expire_ms = *expire_ms;
            let (piece, _) = value.element_cut_piece(usize::MAX);
            self.kept.fetch_add(piece.weight() as u64, Ordering::Relaxed);
            kept.insert(key, Preserved::Rest { expire_ms, piece });
        }
    }
}

/// A memory database to change, with its shard's cut (if one is in
/// progress) told before each change.
pub struct DbMut<'a> {
    db: &'a mut MemDb,
    physical: u32,
    cut: Option<&'a mut ShardCut>,
}

impl std::ops::Deref for DbMut<'_> {
    type Target = MemDb;

    fn deref(&self) -> &MemDb {
        self.db
    }
}

impl DbMut<'_> {
    fn before_change(&mut self, key: &[u8], whole: bool) {
        if let Some(cut) = self.cut.as_deref_mut() {
            cut.before_change(self.db, self.physical, key, whole);
        }
    }

    fn after_change(&mut self) {
        if let Some(cut) = self.cut.as_deref_mut() {
            for (key, value) in self.db.orphans.drain(..) {
                cut.orphaned(self.physical, key, value);
            }
        }
    }

    /// `MemDb::apply`.
    pub fn apply(&mut self, op: &MemOp) {
        self.before_change(op.key(), matches!(op, MemOp::Put { .. } | MemOp::Delete { .. }));
        self.db.apply(op);
        self.after_change();
    }

    /// `MemDb::apply_undoable`.
    pub fn apply_undoable(&mut self, op: &MemOp) -> Undo {
        self.before_change(op.key(), matches!(op, MemOp::Put { .. } | MemOp::Delete { .. }));
        let undo = self.db.apply_undoable(op);
        self.after_change();
        undo
    }

    /// `MemDb::undo`.
    pub fn undo(&mut self, undo: Undo) {
        self.before_change(undo.key(), undo.replaces_entry());
        self.db.undo(undo);
        self.after_change();
    }

    /// `MemDb::insert`.
    pub fn insert(&mut self, key: Bytes, entry: MemEntry) {
        self.before_change(&key, true);
        self.db.insert(key, entry);
    }
}

/// One shard's checkpoint output: entries appended as the walk goes.
pub trait CutOutput {
    fn entry(&mut self, db: u32, key: &Bytes, entry: &MemEntry);
    /// An entry whose copy shares the value's chunks (lists, streams): it
    /// is cheap to take under the lock, and encoded once the lock is let go.
    fn entry_later(&mut self, db: u32, key: Bytes, entry: MemEntry);
    /// Some elements of a big value, encoded once the lock is let go.
    fn piece(&mut self, db: u32, key: &Bytes, expire_ms: u64, piece: Piece);
}

impl MemShard {
    /// The memory database `physical`, to change.
    pub fn db(&mut self, physical: u32) -> DbMut<'_> {
        DbMut { db: self.dbs.entry(physical).or_default(), physical, cut: self.cut.as_deref_mut() }
    }

    /// Starts a cut at sequence `seq`: the state the shard holds now is
    /// what `walk_cut` writes, however writers change it meanwhile.
    /// `kept` counts the bytes the cut keeps.
    pub fn begin_cut(&mut self, seq: u64, kept: &KeptBytes) {
        assert!(self.cut.is_none(), "one cut at a time");
        let kept = kept.clone();
        self.cut = Some(Box::new(ShardCut { seq, walked: None, preserved: HashMap::default(), kept }));
    }

    /// The sequence of the cut in progress.
    pub fn cut_seq(&self) -> Option<u64> {
        self.cut.as_ref().map(|cut| cut.seq)
    }

    /// Writes the next batch of the cut (about `budget` elements) into
    /// `out`; true when the cut is complete, and over.
    pub fn walk_cut(&mut self, budget: usize, out: &mut dyn CutOutput) -> bool {
        let Some(cut) = self.cut.as_deref_mut() else { return true };
        let mut spent = 0;
        let mut ids: Vec<u32> = self.dbs.keys().copied().collect();
        ids.sort_unstable();
        for id in ids {
            if cut.walked.as_ref().is_some_and(|(db, _, _)| *db > id) {
                continue;
            }
            let db = self.dbs.get_mut(&id).expect("listed");
            loop {
                let next = match &cut.walked {
                    Some((walked_db, slot, key)) if *walked_db == id => {
                        db.by_slot.range((Bound::Excluded((*slot, key.clone())), Bound::Unbounded)).next()
                    }
                    _ => db.by_slot.iter().next(),
                };
                let Some((slot, key)) = next.cloned() else { break };
                let entry = db.keys.get_mut(&key).expect("indexed keys exist");
                let kept = cut.preserved.entry(id).or_default();
                if !kept.contains_key(&key) && entry.value.cut_by_element() {
                    // First met by the walk: cut by element from here on.
                    entry.value.begin_element_cut(&cut.kept);
                    kept.insert(key.clone(), Preserved::ByElement { expire_ms: entry.expire_ms });
                }
                match kept.get(&key) {
                    Some(&Preserved::ByElement { expire_ms }) => {
                        let (piece, done) = entry.value.element_cut_piece(budget.saturating_sub(spent).max(1));
                        spent += piece.len();
                        out.piece(id, &key, expire_ms, piece);
                        if !done {
                            return false;
                        }
                        kept.remove(&key);
                    }
                    Some(_) => {}
                    None => match entry.value {
                        MemValue::List(_) | MemValue::Stream(_) => {
                            spent += 1;
                            out.entry_later(id, key.clone(), entry.clone());
                        }
                        MemValue::Set(_) | MemValue::ZSet(_) => {
                            spent += entry.value.len();
                            out.entry(id, &key, entry);
                        }
                    },
                }
                cut.walked = Some((id, slot, key));
                if spent >= budget {
                    return false;
                }
            }
        }
        // Every live key is written: now what writers kept.
        let cut = self.cut.take().expect("in progress");
        for (id, keys) in cut.preserved {
            for (key, kept) in keys {
                match kept {
                    Preserved::Entry(entry) => out.entry(id, &key, &entry),
                    Preserved::Rest { expire_ms, piece } => out.piece(id, &key, expire_ms, piece),
                    Preserved::Absent => {}
                    Preserved::ByElement { .. } => unreachable!("the walk finished every element cut"),
                }
            }
        }
        true
    }

    /// Gives up the cut in progress, dropping what it kept.
    pub fn abandon_cut(&mut self) {
        let Some(cut) = self.cut.take() else { return };
        for (id, keys) in cut.preserved {
            for (key, kept) in keys {
                if let (Preserved::ByElement { .. }, Some(db)) = (kept, self.dbs.get_mut(&id)) {
                    if let Some(entry) = db.keys.get_mut(&key) {
                        entry.value.end_element_cut();
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Weigh for u32 {
        fn weight(&self) -> usize {
            4
        }
    }

    /// Slots as a Vec of optional elements, changed through a cut.
    struct Slots {
        slots: Vec<Option<u32>>,
        cut: CutSlot<u32>,
    }

    impl Slots {
        fn set(&mut self, slot: usize, value: Option<u32>) {
            let slots = &self.slots;
            self.cut.before_change(slot, || slots.get(slot).copied().flatten());
            if slot >= self.slots.len() {
                self.slots.resize(slot + 1, None);
            }
            self.slots[slot] = value;
        }
    }

    #[test]
    fn a_cut_walked_in_pieces_sees_the_elements_of_its_start() {
        let mut rng = crate::test_rng::TestRng(0x9E37_79B9_7F4A_7C15);
        let mut next = move |n: u64| rng.below(n);
        for _ in 0..200 {
            let len = next(300) as usize;
            let mut s =
                Slots { slots: (0..len).map(|i| (next(4) > 0).then_some(i as u32)).collect(), cut: CutSlot::default() };
            let mut at_cut: Vec<u32> = s.slots.iter().flatten().copied().collect();
            s.cut.begin(s.slots.len(), &KeptBytes::default());
            let mut written = Vec::new();
            loop {
                for _ in 0..next(20) {
                    let slot = next(len as u64 + 20) as usize;
                    let value = (next(3) > 0).then_some(1000 + next(1000) as u32);
                    s.set(slot, value);
                }
                let slots = &s.slots;
                if s.cut.walk(1 + next(40) as usize, |i| slots.get(i).copied().flatten(), &mut written) {
                    break;
                }
            }
            assert!(!s.cut.active());
            at_cut.sort_unstable();
            written.sort_unstable();
            assert_eq!(written, at_cut);
        }
    }

    fn b(text: String) -> Bytes {
        Bytes::from(text)
    }

    use crate::test_rng::TestRng as Rng;

    /// A random effect on one of a few keys of each type, some big.
    fn random_op(rng: &mut Rng) -> MemOp {
        use crate::memory::{ListOp, SetOp, StreamId, StreamOp, ZSetOp};
        let key = b(format!("{}{}", ["z", "s", "l", "x"][rng.below(4) as usize], rng.below(12)));
        let member = |rng: &mut Rng| b(format!("m{}", rng.below(5000)));
        match rng.below(20) {
            0 => MemOp::Delete { key },
            1 => MemOp::Expire { key, expire_ms: rng.below(3) * 1000 },
            _ => match key[0] {
                b'z' => {
                    let op = match rng.below(6) {
                        0 => ZSetOp::Remove((0..rng.below(30)).map(|_| member(rng)).collect()),
                        1 => {
                            let start = rng.below(3000) as usize;
                            ZSetOp::RemoveRanks { start, end: start + rng.below(50) as usize }
                        }
                        _ => ZSetOp::Add((0..rng.below(30)).map(|_| (rng.below(100) as f64, member(rng))).collect()),
                    };
                    MemOp::ZSet { key, op }
                }
                b'x' => {
                    // Every Add's ID exceeds every ID before it.
                    static LAST_ID: AtomicU64 = AtomicU64::new(0);
                    let last = LAST_ID.load(Ordering::Relaxed);
                    let op = match rng.below(8) {
                        0 => StreamOp::Delete { ids: vec![StreamId::new(rng.below(last + 1), 0)] },
                        1 => StreamOp::Trim { through: StreamId::new(last.saturating_sub(rng.below(400)), 0) },
                        _ => {
                            let id = StreamId::new(LAST_ID.fetch_add(1, Ordering::Relaxed) + 1, 0);
                            StreamOp::Add { id, fields: vec![member(rng), member(rng)] }
                        }
                    };
                    MemOp::Stream { key, op }
                }
                b's' => {
                    let members = (0..rng.below(30)).map(|_| member(rng)).collect();
                    let op = if rng.below(3) == 0 { SetOp::Remove(members) } else { SetOp::Add(members) };
                    MemOp::Set { key, op }
                }
                _ => {
                    let op = if rng.below(3) == 0 {
                        ListOp::Pop { front: rng.below(2) == 0, count: rng.below(5) as usize }
                    } else {
                        ListOp::Push { front: rng.below(2) == 0, items: vec![member(rng)] }
                    };
                    MemOp::List { key, op }
                }
            },
        }
    }

    #[test]
    fn a_shard_cut_while_written_checkpoints_its_state_at_the_cut() {
        use crate::memory::checkpoint::{read_checkpoint, CheckpointWriter, ShardBody};
        use crate::memory::{MemImage, SetOp, ZSetOp};
        let dir = tempfile::tempdir().unwrap();
        for round in 0..12u64 {
            let mut rng = Rng(0x2545_F491_4F6C_DD1D ^ (round + 1).wrapping_mul(0x9E37_79B9));
            let mut shard = MemShard::default();
            for db in 0..2 {
                for i in 0..12 {
                    // Half the sets and sorted sets are big.
                    let n = if i % 2 == 0 { 3000 } else { 20 };
                    let members: Vec<Bytes> = (0..n).map(|m| b(format!("m{m}"))).collect();
                    let scored = members.iter().map(|m| (rng.below(100) as f64, m.clone())).collect();
                    shard.db(db).apply(&MemOp::ZSet { key: b(format!("z{i}")), op: ZSetOp::Add(scored) });
                    shard.db(db).apply(&MemOp::Set { key: b(format!("s{i}")), op: SetOp::Add(members) });
                }
                for _ in 0..300 {
                    let op = random_op(&mut rng);
                    shard.db(db).apply(&op);
                }
            }
            let mut at_cut = MemImage::new();
            shard.add_to_image(&mut at_cut);
            shard.begin_cut(7, &KeptBytes::default());
            let mut body = ShardBody::default();
            let mut undos = Vec::new();
            let mut flushed = None;
            loop {
                for _ in 0..rng.below(40) {
                    let db = rng.below(2) as u32;
                    let op = random_op(&mut rng);
                    match rng.below(4) {
                        0 => undos.push((db, shard.db(db).apply_undoable(&op))),
                        _ => shard.db(db).apply(&op),
                    }
                }
                // Taken back newest first, as a failed MULTI does.
                while rng.below(3) == 0 {
                    let Some((db, undo)) = undos.pop() else { break };
                    shard.db(db).undo(undo);
                }
                if rng.below(60) == 0 {
                    match flushed.take() {
                        None => flushed = shard.flush(1).map(|db| (1, db)),
                        Some((id, db)) => shard.unflush(id, db),
                    }
                    undos.clear();
                }
                if shard.walk_cut(1 + rng.below(5000) as usize, &mut body) {
                    break;
                }
            }
            assert_eq!(shard.cut_seq(), None);
            let mut writer = CheckpointWriter::create(dir.path(), 1).unwrap();
            body.settle();
            writer.shard(7, &body).unwrap();
            let (path, _) = writer.finish().unwrap();
            let images = read_checkpoint(&path).unwrap();
            std::fs::remove_file(path).unwrap();
            let mut written = MemImage::new();
            images[0].shard.add_to_image(&mut written);
            assert_eq!(written, at_cut, "round {round}");
        }
    }
}
