//! Lists: items packed back to back into chunks of at most 8 KB, in a
//! deque of chunks (Redis's quicklist of listpacks, with its default
//! `list-max-listpack-size -2`). A small item costs its bytes plus two
//! length bytes, not a 32-byte handle and an allocation of its own.
//!
//! An entry is `[len varint][bytes][len backwards]`: the length at both
//! ends lets either end be read and popped without a scan.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;

/// Bytes a chunk holds before a new chunk is started.
const CHUNK_BYTES: usize = 8 << 10;

/// A list value.
#[derive(Clone, Default)]
pub struct ListValue {
    /// Shared by copies of the value (a checkpoint's cut takes one): a
    /// change copies the one chunk it changes, if it is shared.
    chunks: VecDeque<Arc<Chunk>>,
    len: usize,
}

#[derive(Clone, Default)]
struct Chunk {
    /// The entries are `bytes[start..]`. The bytes before `start` are room
    /// for pushes at the head (or what pops there left), so neither moves
    /// the chunk's other entries: moving them was a memmove of up to 8 KB
    /// per LPUSH and LPOP, a tenth of LPUSH's CPU on a hot list.
    bytes: Vec<u8>,
    start: usize,
    count: usize,
}

pub(crate) fn varint_len(mut n: usize) -> usize {
    let mut len = 1;
    while n >= 0x80 {
        n >>= 7;
        len += 1;
    }
    len
}

fn entry_len(item: usize) -> usize {
    2 * varint_len(item) + item
}

/// Appends `n` as a varint: 7 bits a byte, low group first, each byte but
/// the last flagged.
pub(crate) fn put_varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push(n as u8 | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// The varint starting at `at`, and where the bytes after it start.
pub(crate) fn get_varint(bytes: &[u8], at: usize) -> (u64, usize) {
    let (mut n, mut shift, mut pos) = (0u64, 0, at);
    loop {
        let b = bytes[pos];
        pos += 1;
        n |= ((b & 0x7f) as u64) << shift;
        shift += 7;
        if b & 0x80 == 0 {
            return (n, pos);
        }
    }
}

fn encode_entry(out: &mut Vec<u8>, item: &[u8]) {
    put_varint(out, item.len() as u64);
    out.extend_from_slice(item);
    // Backwards: the low group last, each group but the farthest flagged.
    let groups = varint_len(item.len());
    for i in (0..groups).rev() {
        let group = (item.len() >> (7 * i)) as u8 & 0x7f;
        out.push(if i + 1 < groups { group | 0x80 } else { group });
    }
}

/// The item of the entry starting at `at`, and where the next one starts.
fn entry_at(bytes: &[u8], at: usize) -> (&[u8], usize) {
    let (n, pos) = get_varint(bytes, at);
    let n = n as usize;
    (&bytes[pos..pos + n], pos + n + varint_len(n))
}

/// The item of the entry ending at `end`, and where that entry starts.
fn entry_before(bytes: &[u8], end: usize) -> (&[u8], usize) {
    let (mut n, mut shift, mut pos) = (0usize, 0, end);
    loop {
        pos -= 1;
        let b = bytes[pos];
        n |= ((b & 0x7f) as usize) << shift;
        shift += 7;
        if b & 0x80 == 0 {
            break;
        }
    }
    let item = pos - n;
    (&bytes[item..pos], item - varint_len(n))
}

impl Chunk {
    fn iter(&self) -> impl DoubleEndedIterator<Item = &[u8]> + '_ {
        ChunkIter { bytes: &self.bytes, front: self.start, back: self.bytes.len() }
    }

    /// Bytes of entries.
    fn used(&self) -> usize {
        self.bytes.len() - self.start
    }

    /// Makes room for `need` bytes before the entries. The room made is as
    /// much again as the chunk holds (Vec's doubling, at the head), up to
    /// what the chunk may still take, so a run of pushes at the head
    /// copies each byte a bounded number of times.
    fn reserve_front(&mut self, need: usize) {
        if self.start >= need {
            return;
        }
        let used = self.used();
        let room = used.max(64).min(CHUNK_BYTES.saturating_sub(used)).max(need);
        let mut bytes = Vec::with_capacity(room + used);
        bytes.resize(room, 0);
        bytes.extend_from_slice(&self.bytes[self.start..]);
        self.bytes = bytes;
        self.start = room;
    }

    /// Drops the room before the entries and any spare capacity (a chunk
    /// that is full, or that an edit split).
    fn compact(&mut self) {
        self.bytes.drain(..self.start);
        self.start = 0;
        self.bytes.shrink_to_fit();
    }

    /// Byte offset of the entry at `index`.
    fn offset_of(&self, index: usize) -> usize {
        let mut at = self.start;
        for _ in 0..index {
            at = entry_at(&self.bytes, at).1;
        }
        at
    }
}

struct ChunkIter<'a> {
    bytes: &'a [u8],
    front: usize,
    back: usize,
}

impl<'a> Iterator for ChunkIter<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.front >= self.back {
            return None;
        }
        let (item, next) = entry_at(self.bytes, self.front);
        self.front = next;
        Some(item)
    }
}

impl DoubleEndedIterator for ChunkIter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        if self.front >= self.back {
            return None;
        }
        let (item, start) = entry_before(self.bytes, self.back);
        self.back = start;
        Some(item)
    }
}

impl ListValue {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The items from head to tail.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &[u8]> + '_ {
        self.chunks.iter().flat_map(|chunk| chunk.iter())
    }

    /// The items with indexes in `range`.
    pub fn range(&self, range: std::ops::Range<usize>) -> impl Iterator<Item = &[u8]> + '_ {
        let (mut chunk, mut skip) = (0, range.start);
        while chunk < self.chunks.len() && skip >= self.chunks[chunk].count {
            skip -= self.chunks[chunk].count;
            chunk += 1;
        }
        self.chunks.range(chunk..).flat_map(|chunk| chunk.iter()).skip(skip).take(range.len())
    }

    pub fn get(&self, index: usize) -> Option<&[u8]> {
        let (chunk, within) = self.locate(index)?;
        let chunk = &self.chunks[chunk];
        Some(entry_at(&chunk.bytes, chunk.offset_of(within)).0)
    }

    /// The chunk holding item `index`, and the item's index within it.
    fn locate(&self, mut index: usize) -> Option<(usize, usize)> {
        if index >= self.len {
            return None;
        }
        for (i, chunk) in self.chunks.iter().enumerate() {
            if index < chunk.count {
                return Some((i, index));
            }
            index -= chunk.count;
        }
        None
    }

    pub fn push_back(&mut self, item: &[u8]) {
        self.push(false, item);
    }

    pub fn push_front(&mut self, item: &[u8]) {
        self.push(true, item);
    }

    /// Adds `item` at one end, in that end's chunk while it has room.
    fn push(&mut self, front: bool, item: &[u8]) {
        let need = entry_len(item.len());
        let end = if front { 0 } else { self.chunks.len().saturating_sub(1) };
        if self.chunks.get(end).is_none_or(|c| c.used() + need > CHUNK_BYTES) {
            if let Some(full) = self.chunks.get_mut(end) {
                Arc::make_mut(full).compact();
            }
            if front {
                self.chunks.push_front(Arc::default());
            } else {
                self.chunks.push_back(Arc::default());
            }
        }
        let chunk =
            Arc::make_mut(if front { self.chunks.front_mut() } else { self.chunks.back_mut() }.expect("a chunk"));
        if front {
            let mut entry = Vec::with_capacity(need);
            encode_entry(&mut entry, item);
            chunk.reserve_front(need);
            chunk.start -= need;
            chunk.bytes[chunk.start..chunk.start + need].copy_from_slice(&entry);
        } else {
            encode_entry(&mut chunk.bytes, item);
        }
        chunk.count += 1;
        self.len += 1;
    }

    /// Removes up to `count` items from the head.
    pub fn pop_front(&mut self, mut count: usize) {
        while count > 0 {
            let Some(chunk) = self.chunks.front_mut() else { return };
            if count >= chunk.count {
                count -= chunk.count;
                self.len -= chunk.count;
                self.chunks.pop_front();
                continue;
            }
            let chunk = Arc::make_mut(chunk);
            chunk.start = chunk.offset_of(count);
            if chunk.start > chunk.used() {
                // Mostly popped bytes: keep the chunk from growing at the
                // tail forever under RPUSH and LPOP.
                chunk.compact();
            }
            chunk.count -= count;
            self.len -= count;
            return;
        }
    }

    /// Removes up to `count` items from the tail.
    pub fn pop_back(&mut self, mut count: usize) {
        while count > 0 {
            let Some(chunk) = self.chunks.back_mut() else { return };
            if count >= chunk.count {
                count -= chunk.count;
                self.len -= chunk.count;
                self.chunks.pop_back();
                continue;
            }
            let chunk = Arc::make_mut(chunk);
            let mut end = chunk.bytes.len();
            for _ in 0..count {
                end = entry_before(&chunk.bytes, end).1;
            }
            chunk.bytes.truncate(end);
            chunk.count -= count;
            self.len -= count;
            return;
        }
    }

    /// Replaces item `index` (nothing past the end), or inserts `item`
    /// before it (`insert`; past the end inserts at the tail).
    fn edit(&mut self, index: usize, item: &[u8], insert: bool) {
        if insert && index >= self.len {
            self.push_back(item);
            return;
        }
        let Some((c, within)) = self.locate(index) else { return };
        let chunk = Arc::make_mut(&mut self.chunks[c]);
        let at = chunk.offset_of(within);
        let end = if insert { at } else { entry_at(&chunk.bytes, at).1 };
        let mut entry = Vec::with_capacity(entry_len(item.len()));
        encode_entry(&mut entry, item);
        chunk.bytes.splice(at..end, entry);
        if insert {
            chunk.count += 1;
            self.len += 1;
        }
        if chunk.used() > 2 * CHUNK_BYTES && chunk.count > 1 {
            // Edits grew one chunk: split it in two.
            let half = chunk.count / 2;
            let cut = chunk.offset_of(half);
            let tail = Chunk { bytes: chunk.bytes.split_off(cut), start: 0, count: chunk.count - half };
            chunk.count = half;
            chunk.compact();
            self.chunks.insert(c + 1, Arc::new(tail));
        }
    }
}

impl PartialEq for ListValue {
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len && self.iter().eq(other.iter())
    }
}

impl std::fmt::Debug for ListValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter().map(Bytes::copy_from_slice)).finish()
    }
}

impl<T: AsRef<[u8]>> FromIterator<T> for ListValue {
    fn from_iter<I: IntoIterator<Item = T>>(items: I) -> Self {
        let mut list = ListValue::default();
        items.into_iter().for_each(|item| list.push_back(item.as_ref()));
        list
    }
}

/// Deterministic list effects. Indexes are absolute (0 = head) and valid
/// for the list the op is applied to: the handler resolved them.
#[derive(Clone, Debug, PartialEq)]
pub enum ListOp {
    /// Pushes items one by one at the head (LPUSH order) or the tail.
    Push { front: bool, items: Vec<Bytes> },
    /// Removes `count` items from the head or the tail.
    Pop { front: bool, count: usize },
    /// Replaces the item at `index` (LSET).
    Set { index: usize, item: Bytes },
    /// Inserts `item` so that it ends up at `index` (LINSERT).
    Insert { index: usize, item: Bytes },
    /// Keeps only the items in `start..end`; an empty range empties the
    /// list (LTRIM).
    Trim { start: usize, end: usize },
    /// Removes the items at these indexes, given in ascending order (LREM).
    Remove { indexes: Vec<usize> },
}

pub fn apply(list: &mut ListValue, op: &ListOp) {
    match op {
        ListOp::Push { front: true, items } => items.iter().for_each(|i| list.push_front(i)),
        ListOp::Push { front: false, items } => items.iter().for_each(|i| list.push_back(i)),
        ListOp::Pop { front: true, count } => list.pop_front(*count),
        ListOp::Pop { front: false, count } => list.pop_back(*count),
        ListOp::Set { index, item } => list.edit(*index, item, false),
        ListOp::Insert { index, item } => list.edit(*index, item, true),
        ListOp::Trim { start, end } => {
            let end = (*end).min(list.len());
            if *start >= end {
                *list = ListValue::default();
            } else {
                list.pop_back(list.len() - end);
                list.pop_front(*start);
            }
        }
        ListOp::Remove { indexes } => {
            let mut doomed = indexes.iter().peekable();
            let kept: ListValue = list
                .iter()
                .enumerate()
                .filter(|(position, _)| {
                    let keep = doomed.peek() != Some(&position);
                    if !keep {
                        doomed.next();
                    }
                    keep
                })
                .map(|(_, item)| item)
                .collect();
            *list = kept;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(items: &[&str]) -> ListValue {
        items.iter().map(|i| Bytes::copy_from_slice(i.as_bytes())).collect()
    }

    #[test]
    fn ops_edit_the_right_items() {
        let mut l = list(&["a", "b", "c", "d", "e"]);
        apply(&mut l, &ListOp::Remove { indexes: vec![0, 2, 4] });
        assert_eq!(l, list(&["b", "d"]));
        apply(&mut l, &ListOp::Insert { index: 1, item: Bytes::from_static(b"x") });
        assert_eq!(l, list(&["b", "x", "d"]));
        apply(&mut l, &ListOp::Set { index: 2, item: Bytes::from_static(b"y") });
        assert_eq!(l, list(&["b", "x", "y"]));
        apply(&mut l, &ListOp::Trim { start: 1, end: 2 });
        assert_eq!(l, list(&["x"]));
        apply(&mut l, &ListOp::Trim { start: 1, end: 1 });
        assert!(l.is_empty());
    }

    #[test]
    fn chunks_stay_bounded_whichever_end_is_pushed_and_popped() {
        // A queue: pushed at the tail, popped at the head.
        let mut queue = ListValue::default();
        for i in 0..100_000u32 {
            queue.push_back(&i.to_le_bytes());
            if i >= 10 {
                queue.pop_front(1);
            }
        }
        assert!(queue.iter().eq((99_990..100_000u32)
            .map(|i| i.to_le_bytes())
            .collect::<Vec<_>>()
            .iter()
            .map(|i| &i[..])));
        assert!(queue.chunks.iter().all(|c| c.bytes.capacity() <= 2 * CHUNK_BYTES), "popped bytes are reclaimed");
        // Pushed at the head only: chunks fill up to their size.
        let mut stack = ListValue::default();
        for i in 0..10_000u32 {
            stack.push_front(&i.to_le_bytes());
        }
        assert_eq!(stack.iter().next(), Some(&9_999u32.to_le_bytes()[..]));
        assert!(stack.chunks.len() <= 10_000 * 6 / CHUNK_BYTES + 2, "{} chunks", stack.chunks.len());
        assert!(stack.chunks.iter().all(|c| c.used() <= CHUNK_BYTES && c.bytes.capacity() <= 2 * CHUNK_BYTES));
    }

    /// Random ops on a packed list and on a plain deque give the same list,
    /// across chunk boundaries and with items of every length class.
    #[test]
    fn packed_list_matches_a_deque() {
        let mut rng = crate::test_rng::TestRng(0x2545_F491_4F6C_DD1D);
        let mut next = move |n: usize| rng.below(n as u64) as usize;
        let mut packed = ListValue::default();
        let mut model: VecDeque<Vec<u8>> = VecDeque::new();
        for step in 0..20_000 {
            let size = [0, 1, 15, 127, 128, 300, 20_000][next(7)];
            let item: Vec<u8> = (0..size).map(|i| (i + step) as u8).collect();
            let index = next(model.len() + 1);
            let op = match next(10) {
                0..=2 => ListOp::Push { front: next(2) == 0, items: vec![Bytes::from(item.clone())] },
                3 | 4 => ListOp::Pop { front: next(2) == 0, count: next(4) },
                5 => ListOp::Set { index, item: Bytes::from(item.clone()) },
                6 => ListOp::Insert { index, item: Bytes::from(item.clone()) },
                7 => ListOp::Trim { start: next(3), end: model.len().saturating_sub(next(3)) },
                8 => ListOp::Remove { indexes: (0..model.len()).filter(|_| next(8) == 0).collect() },
                _ => ListOp::Push {
                    front: false,
                    items: (0..next(300)).map(|i| Bytes::from(vec![i as u8; next(40)])).collect(),
                },
            };
            match &op {
                ListOp::Push { front: true, items } => items.iter().for_each(|i| model.push_front(i.to_vec())),
                ListOp::Push { front: false, items } => items.iter().for_each(|i| model.push_back(i.to_vec())),
                ListOp::Pop { front: true, count } => drop(model.drain(..(*count).min(model.len()))),
                ListOp::Pop { front: false, count } => model.truncate(model.len().saturating_sub(*count)),
                ListOp::Set { index, item } => {
                    if let Some(slot) = model.get_mut(*index) {
                        *slot = item.to_vec();
                    }
                }
                ListOp::Insert { index, item } => model.insert((*index).min(model.len()), item.to_vec()),
                ListOp::Trim { start, end } => {
                    let end = (*end).min(model.len());
                    if *start >= end {
                        model.clear();
                    } else {
                        model.truncate(end);
                        model.drain(..*start);
                    }
                }
                ListOp::Remove { indexes } => {
                    let mut position = 0;
                    model.retain(|_| {
                        position += 1;
                        !indexes.contains(&(position - 1))
                    });
                }
            }
            apply(&mut packed, &op);
            assert_eq!(packed.len(), model.len(), "step {step}");
            if step % 97 == 0 {
                assert!(packed.iter().eq(model.iter().map(|i| &i[..])), "step {step}");
                assert!(packed.iter().rev().eq(model.iter().rev().map(|i| &i[..])), "step {step}");
                let (a, b) = (next(model.len() + 1), next(model.len() + 1));
                let (a, b) = (a.min(b), a.max(b));
                assert!(packed.range(a..b).eq(model.range(a..b).map(|i| &i[..])), "step {step}");
                let i = next(model.len() + 1);
                assert_eq!(packed.get(i), model.get(i).map(|i| &i[..]), "step {step}");
            }
        }
    }
}
