//! Streams: entries ordered by ID, packed in nodes (`stream_entries`), plus the bookkeeping
//! Redis keeps next to them (last generated ID, entries added, max deleted
//! ID). Unlike the other aggregates, an empty stream is a real value: XDEL
//! of the last entry or XTRIM to 0 keep the key (see `MemValue::is_empty`).

use std::collections::BTreeMap;
use std::fmt;

use bytes::Bytes;

pub use super::stream_entries::{Entries, EntriesUndo, Fields, NODE_ENTRIES};

/// A stream entry ID: milliseconds and sequence number.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StreamId {
    pub ms: u64,
    pub seq: u64,
}

impl StreamId {
    pub const MIN: StreamId = StreamId { ms: 0, seq: 0 };
    pub const MAX: StreamId = StreamId { ms: u64::MAX, seq: u64::MAX };

    pub fn new(ms: u64, seq: u64) -> StreamId {
        StreamId { ms, seq }
    }

    /// The next ID, or None after the last possible one.
    pub fn next(self) -> Option<StreamId> {
        match (self.ms, self.seq) {
            (u64::MAX, u64::MAX) => None,
            (ms, u64::MAX) => Some(StreamId::new(ms + 1, 0)),
            (ms, seq) => Some(StreamId::new(ms, seq + 1)),
        }
    }

    /// The previous ID, or None before 0-0.
    pub fn prev(self) -> Option<StreamId> {
        match (self.ms, self.seq) {
            (0, 0) => None,
            (ms, 0) => Some(StreamId::new(ms - 1, u64::MAX)),
            (ms, seq) => Some(StreamId::new(ms, seq - 1)),
        }
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// A stream value.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StreamValue {
    /// The entries, packed in nodes as Redis packs them.
    pub entries: Entries,
    /// The last ID generated (or set by XSETID); new IDs must exceed it.
    pub last_id: StreamId,
    /// Entries ever added (XADD count, or XSETID ENTRIESADDED).
    pub entries_added: u64,
    /// The greatest ID removed by XDEL.
    pub max_deleted_id: StreamId,
    /// Consumer groups by name.
    pub groups: BTreeMap<Bytes, ConsumerGroup>,
}

/// A delivered, not yet acknowledged entry of a consumer group.
#[derive(Clone, Debug, PartialEq)]
pub struct Pending {
    pub consumer: Bytes,
    /// Unix ms of the last delivery.
    pub delivered_ms: u64,
    pub deliveries: u64,
}

/// A consumer group: its last delivered ID, its pending entries list (the
/// per-consumer lists Redis keeps are this one filtered by consumer), and
/// its consumers with the time each was last seen.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ConsumerGroup {
    pub last_id: StreamId,
    /// Redis's `entries_read`: how many entries the group has read counting
    /// from the first ever added, None when unknown (SCG_INVALID_ENTRIES_READ).
    /// ENTRIESREAD may set any value up to i64::MAX.
    pub entries_read: Option<i64>,
    pub pending: BTreeMap<StreamId, Pending>,
    pub consumers: BTreeMap<Bytes, u64>,
}

impl StreamValue {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The ID of the last entry present (0-0 when empty).
    pub fn last_entry_id(&self) -> StreamId {
        self.entries.last().map(|(id, _)| id).unwrap_or_default()
    }

    /// The ID of the first entry present (0-0 when empty): Redis's
    /// `first_id`, which XADD, XDEL and the trims keep equal to it.
    pub fn first_entry_id(&self) -> StreamId {
        self.entries.first().map(|(id, _)| id).unwrap_or_default()
    }

    /// Redis's `streamRangeHasTombstones(s, start, NULL)`: whether an entry
    /// at or after `start` may have been deleted (only the greatest deleted
    /// ID is known).
    pub fn has_tombstones_from(&self, start: StreamId) -> bool {
        if self.is_empty() || self.max_deleted_id == StreamId::MIN {
            return false;
        }
        if self.first_entry_id() > self.max_deleted_id {
            // The latest tombstone is before the first entry.
            return false;
        }
        start <= self.max_deleted_id
    }

    /// Redis's `streamEstimateDistanceFromFirstEverEntry`: the number of
    /// entries added up to and including `id`, when it can be known.
    pub fn entries_read_at(&self, id: StreamId) -> Option<i64> {
        let added = self.entries_added as i64;
        if self.entries_added == 0 {
            // Any ID of a never-used stream has read nothing.
            return Some(0);
        }
        if self.is_empty() && id <= self.last_id {
            // Whatever an emptied stream had, such an ID has read it all.
            return Some(added);
        }
        match id.cmp(&self.last_id) {
            std::cmp::Ordering::Equal => return Some(added),
            // The counter of a future ID is unknown.
            std::cmp::Ordering::Greater => return None,
            std::cmp::Ordering::Less => {}
        }
        let first = self.first_entry_id();
        if self.max_deleted_id == StreamId::MIN || self.max_deleted_id < first {
            // No deletion after the first entry: everything before it was
            // read by whoever is at or before it.
            match id.cmp(&first) {
                std::cmp::Ordering::Less => return Some(added - self.len() as i64),
                std::cmp::Ordering::Equal => return Some(added - self.len() as i64 + 1),
                std::cmp::Ordering::Greater => {}
            }
        }
        None
    }

    /// The group's read counter after it is delivered the `new` entries
    /// (ascending), counted as Redis's `streamReplyWithRange` does: one more
    /// per entry while no deletion lies ahead, else estimated afresh.
    pub fn entries_read_after(&self, group: &ConsumerGroup, new: &[StreamId]) -> Option<i64> {
        let mut read = group.entries_read;
        let mut last = group.last_id;
        for id in new {
            if *id <= last {
                continue;
            }
            if read.is_some() && !self.has_tombstones_from(*id) {
                read = read.map(|n| n.wrapping_add(1));
            } else if self.entries_added > 0 {
                read = self.entries_read_at(*id);
            }
            last = *id;
        }
        read
    }

    /// Redis's `streamReplyWithCGLag`: entries not yet delivered to the
    /// group, None when deletions make it unknowable.
    pub fn group_lag(&self, group: &ConsumerGroup) -> Option<i64> {
        let added = self.entries_added as i64;
        if self.entries_added == 0 {
            return Some(0);
        }
        if let Some(read) = group.entries_read {
            if !self.has_tombstones_from(group.last_id) {
                return Some(added.wrapping_sub(read));
            }
        }
        self.entries_read_at(group.last_id).map(|read| added.wrapping_sub(read))
    }
}

/// Deterministic stream effects. XADD records the ID it resolved (a `*` ID
/// depends on the clock), the trims record the last ID they removed.
#[derive(Clone, Debug, PartialEq)]
pub enum StreamOp {
    /// Appends an entry; `id` exceeds the stream's last ID.
    Add {
        id: StreamId,
        fields: Vec<Bytes>,
    },
    /// Deletes these entries (XDEL), raising the max deleted ID.
    Delete {
        ids: Vec<StreamId>,
    },
    /// Removes every entry up to and including `through` (XTRIM, XADD's
    /// MAXLEN/MINID).
    Trim {
        through: StreamId,
    },
    /// XSETID.
    SetId {
        last_id: StreamId,
        entries_added: Option<u64>,
        max_deleted_id: Option<StreamId>,
    },
    /// XGROUP CREATE (the stream is created if missing: MKSTREAM), with
    /// its ENTRIESREAD (None: unknown).
    CreateGroup {
        group: Bytes,
        last_id: StreamId,
        entries_read: Option<i64>,
    },
    DestroyGroup {
        group: Bytes,
    },
    /// XGROUP SETID, with its ENTRIESREAD (None: unknown).
    SetGroupId {
        group: Bytes,
        last_id: StreamId,
        entries_read: Option<i64>,
    },
    /// XGROUP CREATECONSUMER (a no-op if it exists).
    CreateConsumer {
        group: Bytes,
        consumer: Bytes,
        now_ms: u64,
    },
    /// XGROUP DELCONSUMER: the consumer and its pending entries go.
    DeleteConsumer {
        group: Bytes,
        consumer: Bytes,
    },
    /// XREADGROUP: `consumer` (created if missing) is seen at `now_ms`;
    /// `new` entries were delivered for the first time (they advance the
    /// group's last ID and, unless `noack`, become pending for `consumer`);
    /// `history` pending entries were delivered again.
    ReadGroup {
        group: Bytes,
        consumer: Bytes,
        now_ms: u64,
        new: Vec<StreamId>,
        noack: bool,
        history: Vec<StreamId>,
    },
    /// XACK.
    Ack {
        group: Bytes,
        ids: Vec<StreamId>,
    },
    /// XAUTOCLAIM: `claimed` pending entries move to `consumer` (created if
    /// missing, seen at `now_ms`), delivered at `now_ms` and, unless
    /// JUSTID, counted as one more delivery; `dropped` pending entries
    /// (whose stream entries are gone) are removed.
    Claim {
        group: Bytes,
        consumer: Bytes,
        now_ms: u64,
        claimed: Vec<StreamId>,
        count_delivery: bool,
        dropped: Vec<StreamId>,
    },
    /// XCLAIM: `dropped` pending entries (deleted from the stream) go;
    /// `claimed` entries (made pending first if FORCE found them not
    /// pending) move to `consumer`, seen at `now_ms` if anything was
    /// claimed, delivered at `delivered_ms`, with the delivery count set to
    /// `retry_count` or, unless JUSTID, incremented. `last_id` (LASTID)
    /// raises the group's last delivered ID.
    /// Boxed: it is the largest op by far.
    ClaimIds(Box<ClaimIds>),
}

/// The effect of one XCLAIM (see `StreamOp::ClaimIds`).
#[derive(Clone, Debug, PartialEq)]
pub struct ClaimIds {
    pub group: Bytes,
    pub consumer: Bytes,
    pub now_ms: u64,
    pub delivered_ms: u64,
    pub claimed: Vec<StreamId>,
    pub retry_count: Option<u64>,
    pub count_delivery: bool,
    pub dropped: Vec<StreamId>,
    pub last_id: Option<StreamId>,
}

pub fn apply(stream: &mut StreamValue, op: &StreamOp) {
    match op {
        StreamOp::Add { id, fields } => {
            stream.entries.push(*id, fields);
            stream.last_id = *id;
            stream.entries_added += 1;
        }
        StreamOp::Delete { ids } => {
            for id in ids {
                if stream.entries.remove(*id) && *id > stream.max_deleted_id {
                    stream.max_deleted_id = *id;
                }
            }
        }
        StreamOp::Trim { through } => stream.entries.trim_through(*through),
        StreamOp::SetId { last_id, entries_added, max_deleted_id } => {
            stream.last_id = *last_id;
            if let Some(n) = entries_added {
                stream.entries_added = *n;
            }
            if let Some(id) = max_deleted_id {
                stream.max_deleted_id = *id;
            }
        }
        StreamOp::CreateGroup { group, last_id, entries_read } => {
            let created = ConsumerGroup { last_id: *last_id, entries_read: *entries_read, ..Default::default() };
            stream.groups.insert(group.clone(), created);
        }
        StreamOp::DestroyGroup { group } => {
            stream.groups.remove(group);
        }
        StreamOp::SetGroupId { group, last_id, entries_read } => {
            if let Some(g) = stream.groups.get_mut(group) {
                g.last_id = *last_id;
                g.entries_read = *entries_read;
            }
        }
        StreamOp::CreateConsumer { group, consumer, now_ms } => {
            if let Some(g) = stream.groups.get_mut(group) {
                g.consumers.entry(consumer.clone()).or_insert(*now_ms);
            }
        }
        StreamOp::DeleteConsumer { group, consumer } => {
            if let Some(g) = stream.groups.get_mut(group) {
                g.consumers.remove(consumer);
                g.pending.retain(|_, p| p.consumer != *consumer);
            }
        }
        StreamOp::ReadGroup { group, consumer, now_ms, new, noack, history } => {
            let Some(read) = stream.groups.get(group).map(|g| stream.entries_read_after(g, new)) else { return };
            let Some(g) = stream.groups.get_mut(group) else { return };
            g.consumers.insert(consumer.clone(), *now_ms);
            g.entries_read = read;
            for id in new {
                g.last_id = g.last_id.max(*id);
                if !noack {
                    // An entry pending for another consumer (after SETID
                    // moved the group back) is reassigned.
                    let pending = Pending { consumer: consumer.clone(), delivered_ms: *now_ms, deliveries: 1 };
                    g.pending.insert(*id, pending);
                }
            }
            for id in history {
                if let Some(p) = g.pending.get_mut(id) {
                    p.delivered_ms = *now_ms;
                    p.deliveries += 1;
                }
            }
        }
        StreamOp::Claim { group, consumer, now_ms, claimed, count_delivery, dropped } => {
            let Some(g) = stream.groups.get_mut(group) else { return };
            g.consumers.insert(consumer.clone(), *now_ms);
            for id in dropped {
                g.pending.remove(id);
            }
            for id in claimed {
                if let Some(p) = g.pending.get_mut(id) {
                    p.consumer = consumer.clone();
                    p.delivered_ms = *now_ms;
                    p.deliveries += *count_delivery as u64;
                }
            }
        }
        StreamOp::ClaimIds(claim) => {
            let ClaimIds {
                group,
                consumer,
                now_ms,
                delivered_ms,
                claimed,
                retry_count,
                count_delivery,
                dropped,
                last_id,
            } = claim.as_ref();
            let Some(g) = stream.groups.get_mut(group) else { return };
            if let Some(id) = last_id {
                g.last_id = g.last_id.max(*id);
            }
            for id in dropped {
                g.pending.remove(id);
            }
            if !claimed.is_empty() {
                g.consumers.insert(consumer.clone(), *now_ms);
            }
            for id in claimed {
                let p = g.pending.entry(*id).or_insert_with(|| Pending {
                    consumer: consumer.clone(),
                    delivered_ms: *now_ms,
                    deliveries: 1,
                });
                p.consumer = consumer.clone();
                p.delivered_ms = *delivered_ms;
                match retry_count {
                    Some(n) => p.deliveries = *n,
                    None if *count_delivery => p.deliveries += 1,
                    None => {}
                }
            }
        }
        StreamOp::Ack { group, ids } => {
            if let Some(g) = stream.groups.get_mut(group) {
                for id in ids {
                    g.pending.remove(id);
                }
            }
        }
    }
}

/// What takes one applied `StreamOp` back (see `apply_undoable`).
#[derive(Debug)]
pub struct StreamUndo {
    last_id: StreamId,
    entries_added: u64,
    max_deleted_id: StreamId,
    entries: Option<EntriesUndo>,
    group: Option<GroupUndo>,
}

/// A consumer group as it was before an op.
#[derive(Debug)]
enum GroupUndo {
    /// The whole group (None: it did not exist).
    Whole(Bytes, Option<ConsumerGroup>),
    /// The parts of an existing group the op named: its header, these
    /// consumers' last-seen times and these pending entries (None: absent).
    Parts {
        name: Bytes,
        last_id: StreamId,
        entries_read: Option<i64>,
        consumers: Vec<(Bytes, Option<u64>)>,
        pending: Vec<(StreamId, Option<Pending>)>,
    },
}

/// The parts of group `name` that an op naming `consumers` and the pending
/// entries `ids` may change, as they are now.
fn group_parts<'a>(
    stream: &StreamValue,
    name: &Bytes,
    consumers: &[&Bytes],
    ids: impl Iterator<Item = &'a StreamId>,
) -> Option<GroupUndo> {
    let group = stream.groups.get(name)?;
    Some(GroupUndo::Parts {
        name: name.clone(),
        last_id: group.last_id,
        entries_read: group.entries_read,
        consumers: consumers.iter().map(|&c| (c.clone(), group.consumers.get(c).copied())).collect(),
        pending: ids.map(|id| (*id, group.pending.get(id).cloned())).collect(),
    })
}

/// `apply`, returning what takes the op back: the stream's counters, the
/// entry nodes it touched, and the parts of the group it names. Bounded
/// by the op's own size, except what the op drops anyway (a destroyed
/// group, trimmed nodes), which is moved into the undo.
pub fn apply_undoable(stream: &mut StreamValue, op: &StreamOp) -> StreamUndo {
    let mut undo = StreamUndo {
        last_id: stream.last_id,
        entries_added: stream.entries_added,
        max_deleted_id: stream.max_deleted_id,
        entries: None,
        group: None,
    };
    match op {
        StreamOp::Add { id, fields } => {
            undo.entries = Some(stream.entries.push_undoable(*id, fields));
            stream.last_id = *id;
            stream.entries_added += 1;
            return undo;
        }
        StreamOp::Delete { ids } => {
            let (entries, removed) = stream.entries.remove_undoable(ids);
            for (id, removed) in ids.iter().zip(removed) {
                if removed && *id > stream.max_deleted_id {
                    stream.max_deleted_id = *id;
                }
            }
            undo.entries = Some(entries);
            return undo;
        }
        StreamOp::Trim { through } => {
            undo.entries = Some(stream.entries.trim_undoable(*through));
            return undo;
        }
        StreamOp::SetId { .. } => {}
        StreamOp::CreateGroup { group, .. } => {
            undo.group = Some(GroupUndo::Whole(group.clone(), stream.groups.get(group).cloned()));
        }
        StreamOp::DestroyGroup { group } => {
            undo.group = Some(GroupUndo::Whole(group.clone(), stream.groups.remove(group)));
            return undo;
        }
        StreamOp::SetGroupId { group, .. } => undo.group = group_parts(stream, group, &[], std::iter::empty()),
        StreamOp::CreateConsumer { group, consumer, .. } => {
            undo.group = group_parts(stream, group, &[consumer], std::iter::empty());
        }
        StreamOp::DeleteConsumer { group, consumer } => {
            let owned: Vec<StreamId> = stream.groups.get(group).map_or_else(Vec::new, |g| {
                g.pending.iter().filter(|(_, p)| p.consumer == *consumer).map(|(id, _)| *id).collect()
            });
            undo.group = group_parts(stream, group, &[consumer], owned.iter());
        }
        StreamOp::ReadGroup { group, consumer, new, history, .. } => {
            undo.group = group_parts(stream, group, &[consumer], new.iter().chain(history));
        }
        StreamOp::Claim { group, consumer, claimed, dropped, .. } => {
            undo.group = group_parts(stream, group, &[consumer], claimed.iter().chain(dropped));
        }
        StreamOp::ClaimIds(claim) => {
            let ids = claim.claimed.iter().chain(&claim.dropped);
            undo.group = group_parts(stream, &claim.group, &[&claim.consumer], ids);
        }
        StreamOp::Ack { group, ids } => undo.group = group_parts(stream, group, &[], ids.iter()),
    }
    apply(stream, op);
    undo
}

/// Takes back an op `apply_undoable` applied (and every op applied after
/// it already taken back).
pub fn undo(stream: &mut StreamValue, undo: StreamUndo) {
    stream.last_id = undo.last_id;
    stream.entries_added = undo.entries_added;
    stream.max_deleted_id = undo.max_deleted_id;
    if let Some(entries) = undo.entries {
        stream.entries.undo(entries);
    }
    match undo.group {
        None => {}
        Some(GroupUndo::Whole(name, Some(group))) => {
            stream.groups.insert(name, group);
        }
        Some(GroupUndo::Whole(name, None)) => {
            stream.groups.remove(&name);
        }
        Some(GroupUndo::Parts { name, last_id, entries_read, consumers, pending }) => {
            let Some(group) = stream.groups.get_mut(&name) else { return };
            group.last_id = last_id;
            group.entries_read = entries_read;
            // In reverse: a part named twice gets its first (older) image.
            for (consumer, seen) in consumers.into_iter().rev() {
                match seen {
                    Some(ms) => group.consumers.insert(consumer, ms),
                    None => group.consumers.remove(&consumer),
                };
            }
            for (id, entry) in pending.into_iter().rev() {
                match entry {
                    Some(p) => group.pending.insert(id, p),
                    None => group.pending.remove(&id),
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add(s: &mut StreamValue, ms: u64, seq: u64) {
        apply(s, &StreamOp::Add { id: StreamId::new(ms, seq), fields: vec![Bytes::from_static(b"f")] });
    }

    #[test]
    fn add_delete_trim_keep_the_bookkeeping() {
        let mut s = StreamValue::default();
        add(&mut s, 1, 0);
        add(&mut s, 1, 5);
        add(&mut s, 3, 0);
        assert_eq!((s.len(), s.last_id, s.entries_added), (3, StreamId::new(3, 0), 3));
        apply(&mut s, &StreamOp::Delete { ids: vec![StreamId::new(1, 5), StreamId::new(9, 9)] });
        assert_eq!(s.max_deleted_id, StreamId::new(1, 5), "only removed IDs count");
        apply(&mut s, &StreamOp::Trim { through: StreamId::new(1, 0) });
        assert_eq!(s.entries.iter().map(|(id, _)| id).collect::<Vec<_>>(), vec![StreamId::new(3, 0)]);
        apply(&mut s, &StreamOp::Trim { through: StreamId::MAX });
        assert!(s.is_empty());
        assert_eq!(s.entries.nodes().count(), 0, "an emptied node goes away");
        assert_eq!(s.last_id, StreamId::new(3, 0), "trimming keeps the last ID");
    }

    #[test]
    fn nodes_fill_up_to_the_limit() {
        let mut s = StreamValue::default();
        for ms in 1..=250 {
            add(&mut s, ms, 0);
        }
        let sizes: Vec<usize> = s.entries.node_entries().map(|node| node.len()).collect();
        assert_eq!(sizes, vec![100, 100, 50]);
        apply(&mut s, &StreamOp::Delete { ids: (201..=250).map(|ms| StreamId::new(ms, 0)).collect() });
        assert_eq!(s.entries.nodes().count(), 2);
        add(&mut s, 300, 0);
        assert_eq!(s.entries.nodes().count(), 3, "a full tail node is not reused");
    }

    fn group(last: StreamId, entries_read: Option<i64>) -> ConsumerGroup {
        ConsumerGroup { last_id: last, entries_read, ..Default::default() }
    }

    #[test]
    fn lag_and_entries_read_follow_redis_rules() {
        let mut s = StreamValue::default();
        assert_eq!(s.group_lag(&group(StreamId::MIN, None)), Some(0), "a never-used stream has no lag");
        for ms in 1..=5 {
            add(&mut s, ms, 0);
        }
        // Known counter and no deletion: added - read.
        assert_eq!(s.group_lag(&group(StreamId::new(2, 0), Some(2))), Some(3));
        // Unknown counter: estimated at the ends only.
        assert_eq!(s.entries_read_at(StreamId::new(5, 0)), Some(5), "the last ID has read everything");
        assert_eq!(s.entries_read_at(StreamId::new(1, 0)), Some(1), "the first entry is the first read");
        assert_eq!(s.entries_read_at(StreamId::MIN), Some(0));
        assert_eq!(s.entries_read_at(StreamId::new(3, 0)), None, "inside the stream it is unknown");
        assert_eq!(s.entries_read_at(StreamId::new(9, 0)), None, "a future ID is unknown");
        assert_eq!(s.group_lag(&group(StreamId::new(3, 0), None)), None);
        // A deletion ahead of the group makes its counter unusable.
        apply(&mut s, &StreamOp::Delete { ids: vec![StreamId::new(4, 0)] });
        assert!(s.has_tombstones_from(StreamId::new(3, 0)));
        assert!(!s.has_tombstones_from(StreamId::new(4, 1)));
        assert_eq!(s.group_lag(&group(StreamId::new(3, 0), Some(3))), None);
        assert_eq!(s.group_lag(&group(StreamId::new(5, 0), None)), Some(0), "the last ID is exact");
        assert_eq!(s.group_lag(&group(StreamId::new(5, 0), Some(3))), Some(2), "no deletion after the group");
        // Trimming past the deletion: prefix arithmetic works again.
        apply(&mut s, &StreamOp::Trim { through: StreamId::new(4, 0) });
        assert_eq!(s.entries_read_at(StreamId::new(2, 0)), Some(4));
        // An emptied stream: anything up to the last ID has read it all.
        apply(&mut s, &StreamOp::Trim { through: StreamId::MAX });
        assert_eq!(s.entries_read_at(StreamId::new(1, 0)), Some(5));
    }

    #[test]
    fn group_reads_count_entries_read() {
        let mut s = StreamValue::default();
        for ms in 1..=4 {
            add(&mut s, ms, 0);
        }
        let g = Bytes::from_static(b"g");
        apply(&mut s, &StreamOp::CreateGroup { group: g.clone(), last_id: StreamId::MIN, entries_read: None });
        let read = |s: &mut StreamValue, ids: &[u64]| {
            let new = ids.iter().map(|ms| StreamId::new(*ms, 0)).collect();
            let consumer = Bytes::from_static(b"c");
            let op = StreamOp::ReadGroup { group: g.clone(), consumer, now_ms: 1, new, noack: true, history: vec![] };
            apply(s, &op);
            s.groups[&g].entries_read
        };
        assert_eq!(read(&mut s, &[1]), Some(1), "estimated at the first entry");
        assert_eq!(read(&mut s, &[2, 3]), Some(3), "then counted");
        apply(&mut s, &StreamOp::SetGroupId { group: g.clone(), last_id: StreamId::MIN, entries_read: Some(10) });
        assert_eq!(s.groups[&g].entries_read, Some(10), "ENTRIESREAD is taken as given");
        apply(&mut s, &StreamOp::Delete { ids: vec![StreamId::new(3, 0)] });
        // Deletion ahead: re-estimated, unknown in the middle, exact at the end.
        assert_eq!(read(&mut s, &[1]), None);
        assert_eq!(read(&mut s, &[2, 4]), Some(4));
    }

    #[test]
    fn ids_step_over_sequence_limits() {
        assert_eq!(StreamId::new(1, u64::MAX).next(), Some(StreamId::new(2, 0)));
        assert_eq!(StreamId::MAX.next(), None);
        assert_eq!(StreamId::new(2, 0).prev(), Some(StreamId::new(1, u64::MAX)));
        assert_eq!(StreamId::MIN.prev(), None);
    }
}
