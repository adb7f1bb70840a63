//! A stream's entries, packed as Redis packs them: up to `NODE_ENTRIES`
//! entries per node, each node one byte buffer keyed by the ID of the first
//! entry ever appended to it (Redis's radix-tree key and listpack master
//! entry). An entry is
//!
//! `[ms - node ms, varint][seq, varint][fields length, varint][fields]`
//!
//! with each field and value framed as `[len varint][bytes]`. A one-field
//! entry costs its bytes plus about six; a `BTreeMap` slot and an
//! allocation per entry cost 60 more.
//!
//! Entries are only ever appended after the last one (stream IDs grow).
//! Deleting rewrites the one node; a node goes away when none of its
//! entries is left, while the count of entries appended to it, deleted
//! included, stays: Redis counts them when deciding the node is full, and
//! approximate trimming removes whole nodes.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use bytes::Bytes;

use super::list::{get_varint, put_varint, varint_len};
use super::stream::StreamId;

/// Entries per node (Redis's `stream-node-max-entries`).
pub const NODE_ENTRIES: u64 = 100;

/// One entry's field/value list, borrowed from its node.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Fields<'a>(&'a [u8]);

impl<'a> Fields<'a> {
    /// Field, value, field, value ...
    pub fn iter(self) -> impl Iterator<Item = &'a [u8]> {
        let mut at = 0;
        std::iter::from_fn(move || {
            (at < self.0.len()).then(|| {
                let (len, start) = get_varint(self.0, at);
                at = start + len as usize;
                &self.0[start..at]
            })
        })
    }
}

impl fmt::Debug for Fields<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter().map(Bytes::copy_from_slice)).finish()
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Node {
    /// Entries ever appended, deleted ones included.
    appended: u64,
    bytes: Vec<u8>,
}

/// An entry decoded from a node: its ID and where its fields are.
struct Slot {
    id: StreamId,
    start: usize,
    end: usize,
}

impl Node {
    /// The entries in order (a node holds at most `NODE_ENTRIES`).
    fn slots(&self, master: StreamId) -> impl Iterator<Item = Slot> + '_ {
        let mut at = 0;
        std::iter::from_fn(move || {
            (at < self.bytes.len()).then(|| {
                let (ms_delta, next) = get_varint(&self.bytes, at);
                let (seq, next) = get_varint(&self.bytes, next);
                let (len, start) = get_varint(&self.bytes, next);
                at = start + len as usize;
                Slot { id: StreamId::new(master.ms + ms_delta, seq), start, end: at }
            })
        })
    }

    fn push<T: AsRef<[u8]>>(&mut self, master: StreamId, id: StreamId, items: &[T]) {
        let fields_len: usize = items.iter().map(|i| varint_len(i.as_ref().len()) + i.as_ref().len()).sum();
        put_varint(&mut self.bytes, id.ms - master.ms);
        put_varint(&mut self.bytes, id.seq);
        put_varint(&mut self.bytes, fields_len as u64);
        for item in items {
            put_varint(&mut self.bytes, item.as_ref().len() as u64);
            self.bytes.extend_from_slice(item.as_ref());
        }
        self.appended += 1;
    }

    /// Keeps the entries `keep` says yes to; returns how many went.
    fn retain(&mut self, master: StreamId, mut keep: impl FnMut(StreamId) -> bool) -> usize {
        let mut kept = Vec::new();
        let mut removed = 0;
        let mut entry_start = 0;
        for slot in self.slots(master) {
            if keep(slot.id) {
                kept.extend_from_slice(&self.bytes[entry_start..slot.end]);
            } else {
                removed += 1;
            }
            entry_start = slot.end;
        }
        if removed > 0 {
            self.bytes = kept;
        }
        removed
    }
}

/// What takes back a change to a stream's entries (see `Entries::undo`).
#[derive(Debug)]
pub struct EntriesUndo {
    /// The entry count before the change.
    len: usize,
    /// In the order they were made; taken back in reverse.
    changes: Vec<NodeUndo>,
}

#[derive(Debug)]
enum NodeUndo {
    /// The node keyed `master` as it was (None: it did not exist).
    Image(StreamId, Option<Arc<Node>>),
    /// An entry was appended to node `master`, which had these many bytes
    /// and appended entries before.
    Truncate { master: StreamId, bytes: usize, appended: u64 },
}

/// A stream's entries in ID order.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Entries {
    /// First ID ever appended to each node -> the node, shared by copies
    /// of the value (a checkpoint's cut takes one): a change copies the one
    /// node it changes, if it is shared.
    nodes: BTreeMap<StreamId, Arc<Node>>,
    len: usize,
}

impl Entries {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends an entry; `id` is greater than every ID before it.
    pub fn push<T: AsRef<[u8]>>(&mut self, id: StreamId, items: &[T]) {
        let full = match self.nodes.last_key_value() {
            Some((_, node)) => node.appended >= NODE_ENTRIES,
            None => true,
        };
        if full {
            // The node before is done growing: give back its spare room.
            if let Some(mut last) = self.nodes.last_entry() {
                Arc::make_mut(last.get_mut()).bytes.shrink_to_fit();
            }
            self.nodes.insert(id, Arc::default());
        }
        let mut last = self.nodes.last_entry().expect("a node to append to");
        let master = *last.key();
        Arc::make_mut(last.get_mut()).push(master, id, items);
        self.len += 1;
    }

    /// Appends an entry to the node keyed `master` (created if new), as a
    /// checkpoint recorded it; `appended` is set by `set_appended`.
    pub(crate) fn restore<T: AsRef<[u8]>>(&mut self, master: StreamId, id: StreamId, items: &[T]) {
        let node = Arc::make_mut(self.nodes.entry(master).or_default());
        node.push(master, id, items);
        self.len += 1;
    }

    /// Sets how many entries were ever appended to node `master`, as a
    /// checkpoint recorded it (a node with no entry left is not kept).
    pub(crate) fn set_appended(&mut self, master: StreamId, appended: u64) {
        if let Some(node) = self.nodes.get_mut(&master) {
            let node = Arc::make_mut(node);
            node.appended = appended;
            node.bytes.shrink_to_fit();
        }
    }

    /// The entry with this ID.
    pub fn get(&self, id: StreamId) -> Option<Fields<'_>> {
        let (&master, node) = self.nodes.range(..=id).next_back()?;
        node.slots(master).find(|s| s.id >= id).filter(|s| s.id == id).map(|s| Fields(&node.bytes[s.start..s.end]))
    }

    pub fn contains(&self, id: StreamId) -> bool {
        self.get(id).is_some()
    }

    /// The entries with IDs in `range`, in order (either way).
    pub fn range(
        &self,
        range: impl RangeBounds<StreamId>,
    ) -> impl DoubleEndedIterator<Item = (StreamId, Fields<'_>)> + '_ {
        let (start, end) = (range.start_bound().cloned(), range.end_bound().cloned());
        let empty = match (start, end) {
            (Bound::Included(s), Bound::Included(e)) => s > e,
            (Bound::Included(s) | Bound::Excluded(s), Bound::Excluded(e))
            | (Bound::Excluded(s), Bound::Included(e)) => s >= e,
            _ => false,
        };
        // The node holding the first entry in range starts at or before it.
        let first_node = match start {
            Bound::Included(s) | Bound::Excluded(s) => self.nodes.range(..=s).next_back().map(|(k, _)| *k),
            Bound::Unbounded => None,
        };
        let nodes = (first_node.map_or(Bound::Unbounded, Bound::Included), end);
        let nodes = if empty { None } else { Some(self.nodes.range(nodes)) };
        nodes
            .into_iter()
            .flatten()
            .flat_map(|(&master, node)| {
                node.slots(master).map(|s| (s.id, Fields(&node.bytes[s.start..s.end]))).collect::<Vec<_>>()
            })
            .filter(move |(id, _)| (start, end).contains(id))
    }

    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (StreamId, Fields<'_>)> + '_ {
        self.range(..)
    }

    pub fn first(&self) -> Option<(StreamId, Fields<'_>)> {
        let (&master, node) = self.nodes.first_key_value()?;
        node.slots(master).next().map(|s| (s.id, Fields(&node.bytes[s.start..s.end])))
    }

    pub fn last(&self) -> Option<(StreamId, Fields<'_>)> {
        let (&master, node) = self.nodes.last_key_value()?;
        node.slots(master).last().map(|s| (s.id, Fields(&node.bytes[s.start..s.end])))
    }

    /// Deletes the entry with this ID; whether it was there.
    pub fn remove(&mut self, id: StreamId) -> bool {
        let Some((&master, node)) = self.nodes.range_mut(..=id).next_back() else {
            return false;
        };
        let node = Arc::make_mut(node);
        let removed = node.retain(master, |e| e != id);
        if node.bytes.is_empty() {
            self.nodes.remove(&master);
        }
        self.len -= removed;
        removed > 0
    }

    /// Deletes every entry up to and including `through`.
    pub fn trim_through(&mut self, through: StreamId) {
        while let Some(mut first) = self.nodes.first_entry() {
            let master = *first.key();
            let node = Arc::make_mut(first.get_mut());
            let removed = node.retain(master, |id| id > through);
            self.len -= removed;
            if !node.bytes.is_empty() {
                break;
            }
            first.remove();
        }
    }

    /// `push`, returning what takes it back.
    pub fn push_undoable<T: AsRef<[u8]>>(&mut self, id: StreamId, items: &[T]) -> EntriesUndo {
        let before = self.nodes.last_key_value().map(|(&master, node)| (master, node.bytes.len(), node.appended));
        self.push(id, items);
        let change = match before {
            Some((master, bytes, appended)) if self.nodes.last_key_value().is_some_and(|(&m, _)| m == master) => {
                NodeUndo::Truncate { master, bytes, appended }
            }
            _ => NodeUndo::Image(id, None),
        };
        EntriesUndo { len: self.len - 1, changes: vec![change] }
    }

    /// `remove` of each of `ids`, returning what takes it back: the
    /// touched nodes as they were (a node holds at most `NODE_ENTRIES`).
    pub fn remove_undoable(&mut self, ids: &[StreamId]) -> (EntriesUndo, Vec<bool>) {
        let mut undo = EntriesUndo { len: self.len, changes: Vec::new() };
        let removed = ids
            .iter()
            .map(|&id| {
                if let Some((&master, node)) = self.nodes.range(..=id).next_back() {
                    undo.changes.push(NodeUndo::Image(master, Some(node.clone())));
                }
                self.remove(id)
            })
            .collect();
        (undo, removed)
    }

    /// `trim_through`, returning what takes it back: the nodes it dropped
    /// (moved, not copied) and the one it cut into.
    pub fn trim_undoable(&mut self, through: StreamId) -> EntriesUndo {
        let mut undo = EntriesUndo { len: self.len, changes: Vec::new() };
        while let Some((&master, node)) = self.nodes.first_key_value() {
            if node.slots(master).last().is_some_and(|s| s.id <= through) {
                let node = self.nodes.remove(&master).expect("the first node");
                self.len -= node.slots(master).count();
                undo.changes.push(NodeUndo::Image(master, Some(node)));
                continue;
            }
            undo.changes.push(NodeUndo::Image(master, Some(node.clone())));
            self.trim_through(through);
            break;
        }
        undo
    }

    /// Takes back what an `*_undoable` call did.
    pub fn undo(&mut self, undo: EntriesUndo) {
        for change in undo.changes.into_iter().rev() {
            match change {
                NodeUndo::Image(master, Some(node)) => {
                    self.nodes.insert(master, node);
                }
                NodeUndo::Image(master, None) => {
                    self.nodes.remove(&master);
                }
                NodeUndo::Truncate { master, bytes, appended } => {
                    if let Some(node) = self.nodes.get_mut(&master) {
                        let node = Arc::make_mut(node);
                        node.bytes.truncate(bytes);
                        node.appended = appended;
                    }
                }
            }
        }
        self.len = undo.len;
    }

    /// The nodes in order: first ID ever appended and how many were.
    pub fn nodes(&self) -> impl Iterator<Item = (StreamId, u64)> + '_ {
        self.nodes.iter().map(|(id, node)| (*id, node.appended))
    }

    /// The nodes in order, each as its entries' IDs. Lazy: a trim looks
    /// at the first node or two of a stream of any length.
    pub fn node_entries(&self) -> impl Iterator<Item = Vec<StreamId>> + '_ {
        self.nodes.iter().map(|(&master, node)| node.slots(master).map(|s| s.id).collect())
    }
}

impl fmt::Debug for Entries {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// Random appends, deletes and trims against a `BTreeMap` model, with
    /// fields of every length class.
    #[test]
    fn matches_a_btreemap_model() {
        let mut entries = Entries::default();
        let mut model: BTreeMap<StreamId, Vec<Vec<u8>>> = BTreeMap::new();
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let mut last = StreamId::new(1, 0);
        for step in 0..20_000u64 {
            match next() % 10 {
                0..=6 => {
                    last = if next() % 3 == 0 {
                        StreamId::new(last.ms, last.seq + 1 + next() % 300)
                    } else {
                        StreamId::new(last.ms + next() % 40_000, next() % 5)
                    }
                    .max(last.next().unwrap());
                    let len = [0, 1, 127, 128, 300, 3000][(next() % 6) as usize];
                    let items: Vec<Vec<u8>> = (0..1 + next() % 4).map(|i| vec![(step + i) as u8; len]).collect();
                    entries.push(last, &items);
                    model.insert(last, items);
                }
                7 | 8 => {
                    let pick = model.keys().nth((next() % (model.len() as u64 + 1)) as usize).copied();
                    let id = pick.unwrap_or(StreamId::new(next() % 10, 0));
                    assert_eq!(entries.remove(id), model.remove(&id).is_some());
                }
                _ => {
                    let through = model.keys().nth((next() % (model.len() as u64 / 4 + 1)) as usize).copied();
                    if let Some(through) = through {
                        entries.trim_through(through);
                        model = model.split_off(&through.next().unwrap());
                    }
                }
            }
            assert_eq!(entries.len(), model.len());
            if step % 500 == 0 || step > 19_900 {
                let collect = |it: &mut dyn Iterator<Item = (StreamId, Fields<'_>)>| -> Vec<(StreamId, Vec<Vec<u8>>)> {
                    it.map(|(id, f)| (id, f.iter().map(<[u8]>::to_vec).collect())).collect()
                };
                let all: Vec<_> = model.iter().map(|(id, f)| (*id, f.clone())).collect();
                assert_eq!(collect(&mut entries.iter()), all);
                assert_eq!(collect(&mut entries.iter().rev()), all.iter().rev().cloned().collect::<Vec<_>>());
                if let (Some(a), Some(b)) = (model.keys().nth(model.len() / 3), model.keys().nth(model.len() / 2)) {
                    let want: Vec<_> = model.range(*a..=*b).map(|(id, f)| (*id, f.clone())).collect();
                    assert_eq!(collect(&mut entries.range(*a..=*b)), want);
                    let after: Vec<_> =
                        model.range((Bound::Excluded(*a), Bound::Unbounded)).map(|(id, _)| *id).collect();
                    let got: Vec<_> =
                        entries.range((Bound::Excluded(*a), Bound::Unbounded)).map(|(id, _)| id).collect();
                    assert_eq!(got, after);
                    assert_eq!(entries.range(*b..*a).count(), 0, "a reversed range is empty");
                    assert_eq!(entries.get(*a).map(|f| f.iter().count()), Some(model[a].len()));
                    assert!(!entries.contains(a.next().unwrap()) || model.contains_key(&a.next().unwrap()));
                }
                let live: usize = entries.node_entries().map(|n| n.len()).sum();
                assert_eq!(live, model.len());
                assert!(entries.nodes().all(|(_, appended)| appended <= NODE_ENTRIES));
            }
        }
    }

    #[test]
    fn nodes_hold_up_to_the_limit_and_stay_counted() {
        let mut entries = Entries::default();
        for ms in 1..=250 {
            entries.push(StreamId::new(ms, 0), &[b"f", b"v"]);
        }
        let sizes: Vec<usize> = entries.node_entries().map(|n| n.len()).collect();
        assert_eq!(sizes, vec![100, 100, 50]);
        assert!(entries.remove(StreamId::new(150, 0)));
        assert_eq!(entries.nodes().nth(1), Some((StreamId::new(101, 0), 100)), "a deleted entry stays counted");
        entries.trim_through(StreamId::new(100, 0));
        assert_eq!(entries.nodes().next(), Some((StreamId::new(101, 0), 100)));
        assert_eq!(entries.first().map(|(id, _)| id), Some(StreamId::new(101, 0)));
        assert_eq!(entries.last().map(|(id, _)| id), Some(StreamId::new(250, 0)));
    }
}
