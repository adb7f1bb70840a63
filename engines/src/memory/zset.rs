//! Sorted sets: members ordered by (score, member).
//!
//! A `SortedSet` is a member → score map plus an order-statistic tree over
//! (score, member): a treap whose nodes count their subtree, so rank
//! lookups (ZRANK), access by index (ZRANGE) and rank-range removal
//! (ZREMRANGEBYRANK) are O(log n), as with Redis's skiplist with spans.
//! Nodes live in an arena (`Vec`) linked by index; freed slots are reused.
//! The member → node map is a hash table of node indexes (4 bytes a member,
//! hashed by the node's member bytes), so each member is stored once.

use std::cmp::Ordering;
use std::hash::BuildHasher;

use bytes::Bytes;
use hashbrown::HashTable;

use super::owned;

/// "No node".
const NIL: u32 = u32::MAX;

#[derive(Clone, Debug)]
struct Node {
    score: f64,
    member: Bytes,
    /// Heap priority of the treap (larger is nearer the root).
    priority: u64,
    left: u32,
    right: u32,
    /// Nodes in this subtree, this one included.
    size: u32,
}

/// Compares (score, member) pairs; scores are never NaN.
fn cmp_entry(a_score: f64, a_member: &[u8], b_score: f64, b_member: &[u8]) -> Ordering {
    a_score.partial_cmp(&b_score).expect("scores are never NaN").then_with(|| a_member.cmp(b_member))
}

/// A sorted set: member → score, and the members in (score, member) order.
#[derive(Clone, Debug)]
pub struct SortedSet {
    /// The node of each member.
    index: HashTable<u32>,
    hasher: super::Hasher,
    nodes: Vec<Node>,
    free: Vec<u32>,
    root: u32,
    /// xorshift state for priorities: deterministic, but the shape of the
    /// tree is not part of the value (equality compares contents only).
    seed: u64,
}

impl Default for SortedSet {
    fn default() -> Self {
        SortedSet {
            index: HashTable::new(),
            hasher: super::Hasher::default(),
            nodes: Vec::new(),
            free: Vec::new(),
            root: NIL,
            seed: 0x9E37_79B9_7F4A_7C15,
        }
    }
}

impl PartialEq for SortedSet {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.range(0, self.len()) == other.range(0, other.len())
    }
}

impl SortedSet {
    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// The node holding `member`.
    fn find(&self, member: &[u8]) -> Option<u32> {
        let nodes = &self.nodes;
        self.index.find(self.hasher.hash_one(member), |&i| nodes[i as usize].member == member).copied()
    }

    pub fn score(&self, member: &[u8]) -> Option<f64> {
        self.find(member).map(|i| self.nodes[i as usize].score)
    }

    /// Every member and its score, in no particular order.
    pub fn members(&self) -> impl Iterator<Item = (&Bytes, f64)> {
        self.index.iter().map(|&i| {
            let n = &self.nodes[i as usize];
            (&n.member, n.score)
        })
    }

    /// Members in ascending (score, member) order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (f64, Bytes)> {
        self.range(0, self.len()).into_iter()
    }

    fn size(&self, node: u32) -> usize {
        if node == NIL {
            0
        } else {
            self.nodes[node as usize].size as usize
        }
    }

    fn update(&mut self, node: u32) {
        let n = &self.nodes[node as usize];
        let size = 1 + self.size(n.left) + self.size(n.right);
        self.nodes[node as usize].size = size as u32;
    }

    fn next_priority(&mut self) -> u64 {
        let mut x = self.seed;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.seed = x;
        x
    }

    /// Splits `node` into (elements before `(score, member)`, the rest).
    fn split(&mut self, node: u32, score: f64, member: &[u8]) -> (u32, u32) {
        if node == NIL {
            return (NIL, NIL);
        }
        let n = &self.nodes[node as usize];
        if cmp_entry(n.score, &n.member, score, member) == Ordering::Less {
            let (l, r) = self.split(n.right, score, member);
            self.nodes[node as usize].right = l;
            self.update(node);
            (node, r)
        } else {
            let (l, r) = self.split(n.left, score, member);
            self.nodes[node as usize].left = r;
            self.update(node);
            (l, node)
        }
    }

    /// Splits `node` into (its first `count` elements, the rest).
    fn split_at(&mut self, node: u32, count: usize) -> (u32, u32) {
        if node == NIL {
            return (NIL, NIL);
        }
        let left = self.nodes[node as usize].left;
        let left_size = self.size(left);
        if count <= left_size {
            let (l, r) = self.split_at(left, count);
            self.nodes[node as usize].left = r;
            self.update(node);
            (l, node)
        } else {
            let right = self.nodes[node as usize].right;
            let (l, r) = self.split_at(right, count - left_size - 1);
            self.nodes[node as usize].right = l;
            self.update(node);
            (node, r)
        }
    }

    /// Joins two trees where every element of `a` precedes those of `b`.
    fn merge(&mut self, a: u32, b: u32) -> u32 {
        if a == NIL {
            return b;
        }
        if b == NIL {
            return a;
        }
        if self.nodes[a as usize].priority > self.nodes[b as usize].priority {
            let right = self.nodes[a as usize].right;
            let merged = self.merge(right, b);
            self.nodes[a as usize].right = merged;
            self.update(a);
            a
        } else {
            let left = self.nodes[b as usize].left;
            let merged = self.merge(a, left);
            self.nodes[b as usize].left = merged;
            self.update(b);
            b
        }
    }

    fn alloc(&mut self, score: f64, member: Bytes) -> u32 {
        let priority = self.next_priority();
        let node = Node { score, member, priority, left: NIL, right: NIL, size: 1 };
        match self.free.pop() {
            Some(slot) => {
                self.nodes[slot as usize] = node;
                slot
            }
            None => {
                self.nodes.push(node);
                (self.nodes.len() - 1) as u32
            }
        }
    }

    /// Inserts a new element: descends to where its priority puts it, and
    /// splits only the subtree below that point (expected O(1) nodes), so
    /// an insert is one walk down the tree.
    fn tree_insert(&mut self, node: u32) {
        let n = &mut self.nodes[node as usize];
        (n.left, n.right, n.size) = (NIL, NIL, 1);
        let score = n.score;
        // Lent out for the walk (a clone of the handle would allocate).
        let member = std::mem::take(&mut n.member);
        self.root = self.insert_below(self.root, node, score, &member);
        self.nodes[node as usize].member = member;
    }

    fn insert_below(&mut self, at: u32, node: u32, score: f64, member: &[u8]) -> u32 {
        if at == NIL {
            return node;
        }
        if self.nodes[node as usize].priority > self.nodes[at as usize].priority {
            let (l, r) = self.split(at, score, member);
            let n = &mut self.nodes[node as usize];
            (n.left, n.right) = (l, r);
            self.update(node);
            return node;
        }
        let a = &self.nodes[at as usize];
        if cmp_entry(score, member, a.score, &a.member) == Ordering::Less {
            let left = self.insert_below(a.left, node, score, member);
            self.nodes[at as usize].left = left;
        } else {
            let right = self.insert_below(a.right, node, score, member);
            self.nodes[at as usize].right = right;
        }
        self.nodes[at as usize].size += 1;
        at
    }

    /// Unlinks an element that is in the tree: one walk down to it, then
    /// its two subtrees merged in its place. Its node stays allocated.
    fn tree_remove(&mut self, score: f64, member: &[u8]) {
        self.root = self.remove_below(self.root, score, member);
    }

    fn remove_below(&mut self, at: u32, score: f64, member: &[u8]) -> u32 {
        assert!(at != NIL, "removing an element that is not in the tree");
        let a = &self.nodes[at as usize];
        match cmp_entry(a.score, &a.member, score, member) {
            Ordering::Equal => self.merge(a.left, a.right),
            Ordering::Less => {
                let right = self.remove_below(a.right, score, member);
                let n = &mut self.nodes[at as usize];
                n.right = right;
                n.size -= 1;
                at
            }
            Ordering::Greater => {
                let left = self.remove_below(a.left, score, member);
                let n = &mut self.nodes[at as usize];
                n.left = left;
                n.size -= 1;
                at
            }
        }
    }

    /// Frees a single detached node's slot (dropping its member bytes).
    fn release(&mut self, node: u32) {
        if node != NIL {
            self.nodes[node as usize].member = Bytes::new();
            self.free.push(node);
        }
    }

    /// Adds `member` or changes its score. A new member is copied in (see
    /// `memory::owned`).
    pub fn insert(&mut self, score: f64, member: &[u8]) {
        if !self.rescore(score, member) {
            self.add(score, owned(member));
        }
    }

    /// A sorted set of members that are already copies of their own
    /// (decoded from a checkpoint); a member given twice keeps its last score.
    pub fn from_owned(items: Vec<(f64, Bytes)>) -> SortedSet {
        let mut zset = SortedSet {
            index: HashTable::with_capacity(items.len()),
            nodes: Vec::with_capacity(items.len()),
            ..SortedSet::default()
        };
        for (score, member) in items {
            if !zset.rescore(score, &member) {
                zset.add(score, member);
            }
        }
        zset
    }

    /// Gives a member already in the set its new score; false when
    /// `member` is not in the set.
    fn rescore(&mut self, score: f64, member: &[u8]) -> bool {
        assert!(!score.is_nan(), "NaN score");
        let Some(node) = self.find(member) else { return false };
        let old = self.nodes[node as usize].score;
        if old.total_cmp(&score) != Ordering::Equal {
            self.tree_remove(old, member);
            self.nodes[node as usize].score = score;
            self.tree_insert(node);
        }
        true
    }

    /// Adds a member that is not in the set.
    fn add(&mut self, score: f64, member: Bytes) {
        let hash = self.hasher.hash_one(&member[..]);
        let node = self.alloc(score, member);
        let (nodes, hasher) = (&self.nodes, &self.hasher);
        self.index.insert_unique(hash, node, |&i| hasher.hash_one(&nodes[i as usize].member[..]));
        self.tree_insert(node);
    }

    pub fn remove(&mut self, member: &[u8]) -> bool {
        let Some(node) = self.find(member) else { return false };
        self.tree_remove(self.nodes[node as usize].score, member);
        self.forget(node);
        true
    }

    /// Drops a node that is out of the tree from the index and frees it.
    fn forget(&mut self, node: u32) {
        let hash = self.hasher.hash_one(&self.nodes[node as usize].member[..]);
        if let Ok(entry) = self.index.find_entry(hash, |&i| i == node) {
            entry.remove();
        }
        self.release(node);
    }

    /// Removes the elements with ranks in `start..end`.
    pub fn remove_ranks(&mut self, start: usize, end: usize) {
        let end = end.min(self.len());
        if start >= end {
            return;
        }
        let (l, rest) = self.split_at(self.root, start);
        let (middle, r) = self.split_at(rest, end - start);
        self.root = self.merge(l, r);
        // Free the detached subtree.
        let mut stack = vec![middle];
        while let Some(node) = stack.pop() {
            if node == NIL {
                continue;
            }
            let n = &self.nodes[node as usize];
            stack.push(n.left);
            stack.push(n.right);
            self.forget(node);
        }
    }

    /// The number of elements before `(score, member)` (its rank if it is
    /// in the set).
    fn rank_of(&self, score: f64, member: &[u8]) -> usize {
        self.count_while(|s, m| cmp_entry(s, m, score, member) == Ordering::Less)
    }

    /// The 0-based rank of a member in ascending order.
    pub fn rank(&self, member: &[u8]) -> Option<usize> {
        let score = self.score(member)?;
        Some(self.rank_of(score, member))
    }

    /// How many elements satisfy `before`, which must hold for a prefix of
    /// the order (true, ..., true, false, ... false).
    pub fn count_while(&self, mut before: impl FnMut(f64, &[u8]) -> bool) -> usize {
        let mut count = 0;
        let mut node = self.root;
        while node != NIL {
            let n = &self.nodes[node as usize];
            if before(n.score, &n.member) {
                count += self.size(n.left) + 1;
                node = n.right;
            } else {
                node = n.left;
            }
        }
        count
    }

    /// The element at rank `index`.
    pub fn get_by_rank(&self, mut index: usize) -> Option<(f64, &Bytes)> {
        if index >= self.len() {
            return None;
        }
        let mut node = self.root;
        loop {
            let n = &self.nodes[node as usize];
            let left = self.size(n.left);
            match index.cmp(&left) {
                Ordering::Less => node = n.left,
                Ordering::Equal => return Some((n.score, &n.member)),
                Ordering::Greater => {
                    index -= left + 1;
                    node = n.right;
                }
            }
        }
    }

    /// The elements with ranks in `start..end`, ascending.
    pub fn range(&self, start: usize, end: usize) -> Vec<(f64, Bytes)> {
        let end = end.min(self.len());
        if start >= end {
            return Vec::new();
        }
        let mut out = Vec::with_capacity(end - start);
        // Descend to `start`, stacking the nodes still to visit after it.
        let mut stack = Vec::new();
        let mut node = self.root;
        let mut skip = start;
        while node != NIL {
            let n = &self.nodes[node as usize];
            let left = self.size(n.left);
            if skip < left {
                stack.push(node);
                node = n.left;
            } else if skip == left {
                stack.push(node);
                break;
            } else {
                skip -= left + 1;
                node = n.right;
            }
        }
        while out.len() < end - start {
            let Some(node) = stack.pop() else { break };
            let n = &self.nodes[node as usize];
            out.push((n.score, n.member.clone()));
            let mut next = n.right;
            while next != NIL {
                stack.push(next);
                next = self.nodes[next as usize].left;
            }
        }
        out
    }
}

/// Deterministic sorted-set effects.
#[derive(Clone, Debug, PartialEq)]
pub enum ZSetOp {
    /// Sets each member's score (adding it if new).
    Add(Vec<(f64, Bytes)>),
    Remove(Vec<Bytes>),
    /// Removes the elements with ranks in `start..end` (ZREMRANGEBYRANK and
    /// the other range removals, computed on the state they apply to).
    RemoveRanks {
        start: usize,
        end: usize,
    },
}

pub fn apply(zset: &mut SortedSet, op: &ZSetOp) {
    match op {
        ZSetOp::Add(items) => items.iter().for_each(|(s, m)| zset.insert(*s, m)),
        ZSetOp::Remove(members) => members.iter().for_each(|m| {
            zset.remove(m);
        }),
        ZSetOp::RemoveRanks { start, end } => zset.remove_ranks(*start, *end),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// A tiny deterministic generator (the engines crate has no rand).
    struct Rng(u64);

    impl Rng {
        fn gen_range(&mut self, range: impl std::ops::RangeBounds<usize>) -> usize {
            use std::ops::Bound;
            let lo = match range.start_bound() {
                Bound::Included(&v) => v,
                _ => 0,
            };
            let hi = match range.end_bound() {
                Bound::Included(&v) => v + 1,
                Bound::Excluded(&v) => v,
                Bound::Unbounded => usize::MAX,
            };
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            lo + (self.0 % (hi - lo) as u64) as usize
        }
    }

    fn model_sorted(model: &HashMap<Bytes, f64>) -> Vec<(f64, Bytes)> {
        let mut v: Vec<(f64, Bytes)> = model.iter().map(|(m, s)| (*s, m.clone())).collect();
        v.sort_by(|a, b| cmp_entry(a.0, &a.1, b.0, &b.1));
        v
    }

    #[test]
    fn matches_a_sorted_vec_model() {
        let mut rng = Rng(0x2545_F491_4F6C_DD1D);
        let mut zset = SortedSet::default();
        let mut model: HashMap<Bytes, f64> = HashMap::new();
        for step in 0..20_000 {
            let member = Bytes::from(format!("m{}", rng.gen_range(0..300)));
            match rng.gen_range(0..10) {
                0..=4 => {
                    let score = rng.gen_range(0..20) as f64;
                    zset.insert(score, &member);
                    model.insert(member, score);
                }
                5..=7 => {
                    assert_eq!(zset.remove(&member), model.remove(&member).is_some());
                }
                _ => {
                    let len = model.len();
                    let start = rng.gen_range(0..=len);
                    let end = rng.gen_range(start..=len + 2);
                    let sorted = model_sorted(&model);
                    for (_, m) in &sorted[start..end.min(len)] {
                        model.remove(m);
                    }
                    zset.remove_ranks(start, end);
                }
            }
            let sorted = model_sorted(&model);
            assert_eq!(zset.len(), sorted.len());
            if step % 50 == 0 {
                assert_eq!(zset.range(0, usize::MAX), sorted);
                for (i, (s, m)) in sorted.iter().enumerate() {
                    assert_eq!(zset.rank(m), Some(i));
                    assert_eq!(zset.get_by_rank(i), Some((*s, m)));
                }
            }
            let a = rng.gen_range(0..=sorted.len());
            let b = rng.gen_range(0..=sorted.len() + 1);
            assert_eq!(zset.range(a, b), sorted[a.min(b.min(sorted.len()))..b.min(sorted.len())].to_vec());
            let bound = rng.gen_range(0..20) as f64;
            assert_eq!(zset.count_while(|s, _| s < bound), sorted.iter().filter(|(s, _)| *s < bound).count());
        }
    }

    #[test]
    fn equality_ignores_tree_shape() {
        let mut a = SortedSet::default();
        let mut b = SortedSet::default();
        for i in 0..100 {
            a.insert(i as f64, format!("{i}").as_bytes());
        }
        for i in (0..100).rev() {
            b.next_priority();
            b.insert(i as f64, format!("{i}").as_bytes());
        }
        assert_eq!(a, b);
        b.insert(5.5, b"5");
        assert_ne!(a, b);
    }
}
