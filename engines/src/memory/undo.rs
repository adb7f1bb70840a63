//! Taking memory effects back. A command that fails, or panics, must leave
//! no effect (Redis's rule), yet handlers read their own writes, and a
//! MULTI's later commands read its earlier ones: effects apply as they are
//! made. So each applied op leaves an `Undo`, and a failed command's undos
//! are run in reverse before anything else sees the shard.
//!
//! An undo costs what the op touched, never the whole value: a push is
//! taken back by a pop, a pop by pushing the popped items, a sorted-set
//! change by the members' old scores; a whole entry is kept only when the
//! op replaced or deleted it anyway (moved, not copied).

use bytes::Bytes;

use super::stream::{self, StreamUndo};
use super::{ListOp, ListValue, MemDb, MemEntry, MemOp, MemValue, SetOp, SetValue, SortedSet, ZSetOp};

/// What takes one applied `MemOp` back (see `MemDb::apply_undoable`).
#[derive(Debug)]
pub struct Undo {
    key: Bytes,
    step: Step,
}

#[derive(Debug)]
enum Step {
    /// The key's whole entry before the op (None: it did not exist).
    Entry(Option<MemEntry>),
    /// The key's TTL before the op.
    Expire(u64),
    /// Items pushed onto an existing list: popped again (the commonest
    /// effect, so without an op list to allocate).
    Unpush {
        front: bool,
        count: usize,
    },
    /// Ops that take a change to an existing list, set or sorted set back;
    /// the key is made again with `expire_ms` if the change emptied it.
    Value {
        expire_ms: u64,
        ops: Vec<MemOp>,
    },
    Stream(Box<StreamUndo>),
}

impl Undo {
    /// The key the op changed.
    pub fn key(&self) -> &Bytes {
        &self.key
    }

    /// Whether taking the op back replaces the key's whole entry.
    pub fn replaces_entry(&self) -> bool {
        matches!(self.step, Step::Entry(_))
    }
}

impl MemDb {
    /// `apply`, returning what takes the op back.
    pub fn apply_undoable(&mut self, op: &MemOp) -> Undo {
        let key = op.key().clone();
        let step = match (op, self.keys.get_mut(&key)) {
            (MemOp::Put { .. } | MemOp::Delete { .. }, _) => {
                let before = self.remove(&key);
                self.apply(op);
                return Undo { key, step: Step::Entry(before) };
            }
            // The op makes the key, or does nothing.
            (_, None) => Step::Entry(None),
            (MemOp::Expire { .. }, Some(entry)) => Step::Expire(entry.expire_ms),
            (MemOp::List { op: ListOp::Push { front, items }, .. }, Some(_)) => {
                Step::Unpush { front: *front, count: items.len() }
            }
            (MemOp::Stream { op, .. }, Some(MemEntry { value: MemValue::Stream(value), .. })) => {
                // A stream is never deleted for being empty: changed in place.
                let undo = stream::apply_undoable(value, op);
                return Undo { key, step: Step::Stream(Box::new(undo)) };
            }
            (_, Some(entry)) => {
                let ops = inverse(&key, &entry.value, op);
                Step::Value { expire_ms: entry.expire_ms, ops }
            }
        };
        self.apply(op);
        Undo { key, step }
    }

    /// Takes back an op `apply_undoable` applied; every op applied after it
    /// must have been taken back first.
    pub fn undo(&mut self, undo: Undo) {
        let Undo { key, step } = undo;
        match step {
            Step::Entry(before) => {
                self.remove(&key);
                if let Some(entry) = before {
                    self.insert(key, entry);
                }
            }
            Step::Expire(expire_ms) => self.apply(&MemOp::Expire { key, expire_ms }),
            Step::Unpush { front, count } => self.apply(&MemOp::List { key, op: ListOp::Pop { front, count } }),
            Step::Value { expire_ms, ops } => {
                if !self.keys.contains_key(&key) {
                    let value = match ops.first() {
                        Some(MemOp::List { .. }) => MemValue::List(ListValue::default()),
                        Some(MemOp::Set { .. }) => MemValue::Set(SetValue::default()),
                        _ => MemValue::ZSet(SortedSet::default()),
                    };
                    self.insert(key.clone(), MemEntry { expire_ms, value });
                }
                for op in &ops {
                    self.apply(op);
                }
            }
            Step::Stream(undo) => {
                if let Some(MemEntry { value: MemValue::Stream(value), .. }) = self.keys.get_mut(&key) {
                    stream::undo(value, *undo);
                }
            }
        }
    }
}

/// The ops that take `op` back, computed on `value` before it applies.
fn inverse(key: &Bytes, value: &MemValue, op: &MemOp) -> Vec<MemOp> {
    let list = |op| MemOp::List { key: key.clone(), op };
    let set = |op| MemOp::Set { key: key.clone(), op };
    let zset = |op| MemOp::ZSet { key: key.clone(), op };
    match (value, op) {
        (MemValue::List(value), MemOp::List { op, .. }) => list_inverse(value, op).into_iter().map(list).collect(),
        (MemValue::Set(value), MemOp::Set { op, .. }) => vec![set(set_inverse(value, op))],
        (MemValue::ZSet(value), MemOp::ZSet { op, .. }) => zset_inverse(value, op).into_iter().map(zset).collect(),
        (value, op) => panic!("{op:?} on a {:?}", value.key_type()),
    }
}

fn copies<'a>(items: impl Iterator<Item = &'a [u8]>) -> Vec<Bytes> {
    items.map(Bytes::copy_from_slice).collect()
}

fn list_inverse(list: &ListValue, op: &ListOp) -> Vec<ListOp> {
    let len = list.len();
    match op {
        ListOp::Push { front, items } => vec![ListOp::Pop { front: *front, count: items.len() }],
        ListOp::Pop { front: true, count } => {
            // Pushed back one by one at the head: the first popped last.
            let mut items = copies(list.range(0..(*count).min(len)));
            items.reverse();
            vec![ListOp::Push { front: true, items }]
        }
        ListOp::Pop { front: false, count } => {
            vec![ListOp::Push { front: false, items: copies(list.range(len.saturating_sub(*count)..len)) }]
        }
        ListOp::Set { index, .. } => match list.get(*index) {
            Some(old) => vec![ListOp::Set { index: *index, item: Bytes::copy_from_slice(old) }],
            None => Vec::new(),
        },
        ListOp::Insert { index, .. } if *index >= len => vec![ListOp::Pop { front: false, count: 1 }],
        ListOp::Insert { index, .. } => vec![ListOp::Remove { indexes: vec![*index] }],
        ListOp::Trim { start, end } => {
            let end = (*end).min(len);
            if *start >= end {
                return vec![ListOp::Push { front: false, items: copies(list.iter()) }];
            }
            let mut head = copies(list.range(0..*start));
            head.reverse();
            let tail = copies(list.range(end..len));
            vec![ListOp::Push { front: false, items: tail }, ListOp::Push { front: true, items: head }]
        }
        // Inserted again in ascending order, each lands where it was.
        ListOp::Remove { indexes } => indexes
            .iter()
            .filter_map(|&index| {
                list.get(index).map(|item| ListOp::Insert { index, item: Bytes::copy_from_slice(item) })
            })
            .collect(),
    }
}

fn set_inverse(set: &SetValue, op: &SetOp) -> SetOp {
    let mut seen = std::collections::HashSet::new();
    match op {
        SetOp::Add(members) => {
            SetOp::Remove(members.iter().filter(|m| !set.contains(*m) && seen.insert(*m)).cloned().collect())
        }
        SetOp::Remove(members) => {
            SetOp::Add(members.iter().filter(|m| set.contains(*m) && seen.insert(*m)).cloned().collect())
        }
    }
}

fn zset_inverse(zset: &SortedSet, op: &ZSetOp) -> Vec<ZSetOp> {
    let mut seen = std::collections::HashSet::new();
    let mut first_time = |member: &Bytes| seen.insert(member.clone());
    match op {
        ZSetOp::Add(items) => {
            let (mut added, mut rescored) = (Vec::new(), Vec::new());
            for (_, member) in items {
                if first_time(member) {
                    match zset.score(member) {
                        Some(old) => rescored.push((old, member.clone())),
                        None => added.push(member.clone()),
                    }
                }
            }
            vec![ZSetOp::Remove(added), ZSetOp::Add(rescored)]
        }
        ZSetOp::Remove(members) => {
            let old = members.iter().filter(|m| first_time(m)).filter_map(|m| Some((zset.score(m)?, m.clone())));
            vec![ZSetOp::Add(old.collect())]
        }
        ZSetOp::RemoveRanks { start, end } => vec![ZSetOp::Add(zset.range(*start, (*end).min(zset.len())))],
    }
}

#[cfg(test)]
mod tests {
    use super::super::stream::{ClaimIds, StreamId, StreamOp, StreamValue};
    use super::*;

    fn b(text: &str) -> Bytes {
        Bytes::copy_from_slice(text.as_bytes())
    }

    /// Applies `op` undoably, then takes it back: the database must be as
    /// before, in every index (entries, TTLs, slots).
    fn round_trip(db: &mut MemDb, op: MemOp) {
        let before = db.clone();
        let undo = db.apply_undoable(&op);
        let after = db.clone();
        db.undo(undo);
        assert_eq!(*db, before, "after taking back {op:?}");
        // And the op still does what `apply` does.
        let mut applied = before.clone();
        applied.apply(&op);
        assert_eq!(applied, after, "{op:?} applied undoably");
        db.apply(&op);
    }

    #[test]
    fn list_set_and_zset_ops_are_taken_back() {
        let mut db = MemDb::default();
        let (l, s, z) = (b("l"), b("s"), b("z"));
        let items = |n: usize| (0..n).map(|i| b(&format!("item-{i}"))).collect::<Vec<_>>();
        let ops = [
            MemOp::List { key: l.clone(), op: ListOp::Push { front: false, items: items(300) } },
            MemOp::Expire { key: l.clone(), expire_ms: 99 },
            MemOp::List { key: l.clone(), op: ListOp::Push { front: true, items: items(5) } },
            MemOp::List { key: l.clone(), op: ListOp::Pop { front: true, count: 7 } },
            MemOp::List { key: l.clone(), op: ListOp::Pop { front: false, count: 9 } },
            MemOp::List { key: l.clone(), op: ListOp::Set { index: 17, item: b("x") } },
            MemOp::List { key: l.clone(), op: ListOp::Set { index: 10_000, item: b("x") } },
            MemOp::List { key: l.clone(), op: ListOp::Insert { index: 3, item: b("y") } },
            MemOp::List { key: l.clone(), op: ListOp::Insert { index: 10_000, item: b("z") } },
            MemOp::List { key: l.clone(), op: ListOp::Remove { indexes: vec![0, 4, 5, 100, 250] } },
            MemOp::List { key: l.clone(), op: ListOp::Trim { start: 3, end: 200 } },
            MemOp::List { key: l.clone(), op: ListOp::Trim { start: 5, end: 5 } },
            MemOp::List { key: l.clone(), op: ListOp::Pop { front: true, count: 1_000 } },
            MemOp::Set { key: s.clone(), op: SetOp::Add(vec![b("a"), b("b"), b("a")]) },
            MemOp::Set { key: s.clone(), op: SetOp::Add(vec![b("b"), b("c"), b("c")]) },
            MemOp::Set { key: s.clone(), op: SetOp::Remove(vec![b("a"), b("zz"), b("a")]) },
            MemOp::Set { key: s.clone(), op: SetOp::Remove(vec![b("b"), b("c")]) },
            MemOp::ZSet { key: z.clone(), op: ZSetOp::Add(vec![(1.0, b("a")), (2.0, b("b")), (3.0, b("a"))]) },
            MemOp::ZSet { key: z.clone(), op: ZSetOp::Add(vec![(5.0, b("a")), (0.5, b("c"))]) },
            MemOp::ZSet { key: z.clone(), op: ZSetOp::Remove(vec![b("b"), b("q"), b("b")]) },
            MemOp::ZSet { key: z.clone(), op: ZSetOp::RemoveRanks { start: 0, end: 1 } },
            MemOp::Put { key: z.clone(), entry: MemEntry { expire_ms: 5, value: MemValue::Set(SetValue::default()) } },
            MemOp::Delete { key: s.clone() },
            MemOp::Delete { key: l.clone() },
            MemOp::Delete { key: b("missing") },
        ];
        for op in ops {
            round_trip(&mut db, op);
        }
    }

    #[test]
    fn stream_ops_are_taken_back_with_their_nodes_and_groups() {
        let mut db = MemDb::default();
        let key = b("x");
        let stream = |op| MemOp::Stream { key: key.clone(), op };
        let id = |ms| StreamId::new(ms, 0);
        let (g, alice, bob) = (b("g"), b("alice"), b("bob"));
        // Enough entries for several nodes, so trims drop whole ones.
        for ms in 1..=250 {
            round_trip(&mut db, stream(StreamOp::Add { id: id(ms), fields: vec![b("f"), b(&ms.to_string())] }));
        }
        let ops = [
            StreamOp::Delete { ids: vec![id(3), id(150), id(999)] },
            StreamOp::Trim { through: id(120) },
            StreamOp::Trim { through: StreamId::MAX },
            StreamOp::SetId { last_id: id(400), entries_added: Some(1000), max_deleted_id: Some(id(300)) },
            StreamOp::CreateGroup { group: g.clone(), last_id: StreamId::MIN, entries_read: None },
            StreamOp::CreateConsumer { group: g.clone(), consumer: alice.clone(), now_ms: 5 },
            StreamOp::ReadGroup {
                group: g.clone(),
                consumer: bob.clone(),
                now_ms: 6,
                new: vec![id(130), id(140)],
                noack: false,
                history: vec![],
            },
            StreamOp::ReadGroup {
                group: g.clone(),
                consumer: alice.clone(),
                now_ms: 7,
                new: vec![id(160)],
                noack: false,
                history: vec![id(130)],
            },
            StreamOp::Claim {
                group: g.clone(),
                consumer: alice.clone(),
                now_ms: 8,
                claimed: vec![id(140)],
                count_delivery: true,
                dropped: vec![id(130)],
            },
            StreamOp::ClaimIds(Box::new(ClaimIds {
                group: g.clone(),
                consumer: b("carol"),
                now_ms: 9,
                delivered_ms: 9,
                claimed: vec![id(160), id(170)],
                retry_count: Some(4),
                count_delivery: false,
                dropped: vec![],
                last_id: Some(id(200)),
            })),
            StreamOp::Ack { group: g.clone(), ids: vec![id(160), id(1)] },
            StreamOp::SetGroupId { group: g.clone(), last_id: id(5), entries_read: Some(2) },
            StreamOp::DeleteConsumer { group: g.clone(), consumer: alice.clone() },
            StreamOp::DestroyGroup { group: g.clone() },
            StreamOp::Add { id: id(500), fields: vec![b("f"), b("v")] },
        ];
        // Each op taken back right away, on the state before it.
        let mut base = db.clone();
        for op in ops.iter().cloned() {
            round_trip(&mut base, stream(op));
        }
        // And a run of ops taken back in reverse: the state of the start.
        let before = db.clone();
        let undos: Vec<Undo> = ops.into_iter().map(|op| db.apply_undoable(&stream(op))).collect();
        for undo in undos.into_iter().rev() {
            db.undo(undo);
        }
        assert_eq!(db, before);
        let MemValue::Stream(value) = &db.get(&key).unwrap().value else { panic!("a stream") };
        let _: &StreamValue = value;
    }
}
