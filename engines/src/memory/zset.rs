//! Sorted sets: members ordered by (score, member).
//!
//! A `SortedSet` is a member → score map plus an order-statistic tree over
//! (score, member): a treap whose nodes count their subtree, so rank
//! lookups (ZRANK), access by index (ZRANGE) and rank-range removal
//! (ZREMRANGEBYRANK) are O(log n), as with Redis's skiplist with spans.
//! Nodes live in an arena (`Vec`) linked by index; freed slots are reused.
//! The member → node map is a hash table of node indexes (4 bytes a member,
//! hashed by the node's member bytes), so each member is stored once.
//!
//! A treap is only as shallow as its priorities are random: a client that
//! could predict them could order its members so that the tree becomes a
//! chain, every insert O(n) and every recursive walk as deep as the set is
//! long. So a node's priority is a keyed hash of its member under a key
//! drawn once per process, and every walk is a loop, never a recursion, so
//! no shape of the tree can exhaust a thread's stack.

use std::cmp::Ordering;
use std::hash::BuildHasher;
use std::sync::OnceLock;

use bytes::Bytes;
use hashbrown::HashTable;

use super::cut::{CutSlot, KeptBytes};
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

/// Orders elements as a sorted set does: by score, then member.
pub fn cmp_elements(a: &(f64, Bytes), b: &(f64, Bytes)) -> Ordering {
    cmp_entry(a.0, &a.1, b.0, &b.1)
}

/// The treap priority of `member`: SipHash under a key the OS drew for this
/// process, which no client can compute (see the module comment). The tree's
/// shape is not part of the value, so it may differ from run to run.
fn priority_of(member: &[u8]) -> u64 {
    static KEY: OnceLock<std::hash::RandomState> = OnceLock::new();
    KEY.get_or_init(std::hash::RandomState::new).hash_one(member)
}

/// Where a subtree hangs: the root, or a child link of a node.
#[derive(Clone, Copy)]
enum Link {
    Root,
    Left(u32),
    Right(u32),
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
    /// A checkpoint's cut of this set, by node slot (see `memory::cut`).
    cut: CutSlot<(f64, Bytes)>,
}

impl Default for SortedSet {
    fn default() -> Self {
        SortedSet {
            index: HashTable::new(),
            hasher: super::Hasher::default(),
            nodes: Vec::new(),
            free: Vec::new(),
            root: NIL,
            cut: CutSlot::default(),
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

    fn set_link(&mut self, link: Link, node: u32) {
        match link {
            Link::Root => self.root = node,
            Link::Left(parent) => self.nodes[parent as usize].left = node,
            Link::Right(parent) => self.nodes[parent as usize].right = node,
        }
    }

    /// The depth of the deepest node (0 when empty): tests check that no
    /// order of inserts makes the tree deep.
    #[doc(hidden)]
    pub fn height(&self) -> usize {
        let mut deepest = 0;
        let mut stack = vec![(self.root, 1)];
        while let Some((node, depth)) = stack.pop() {
            if node != NIL {
                deepest = deepest.max(depth);
                let n = &self.nodes[node as usize];
                stack.push((n.left, depth + 1));
                stack.push((n.right, depth + 1));
            }
        }
        deepest
    }

    /// Splits the subtree at `node` into (its first `count` elements, the
    /// rest), top down. Knowing the count first gives each node its new
    /// size on the way down: a node that goes left keeps `count` elements
    /// of its subtree, one that goes right all but `count`.
    fn split_at(&mut self, mut node: u32, mut count: usize) -> (u32, u32) {
        let (mut left_root, mut right_root) = (NIL, NIL);
        // The last node given to each side: the next one hangs below it.
        let (mut left_last, mut right_last) = (NIL, NIL);
        while node != NIL {
            let left = self.nodes[node as usize].left;
            let left_size = self.size(left);
            if count <= left_size {
                // `node` and its right subtree go right; its left is split on.
                self.nodes[node as usize].size -= count as u32;
                if right_last == NIL {
                    right_root = node;
                } else {
                    self.nodes[right_last as usize].left = node;
                }
                right_last = node;
                node = left;
            } else {
                // `node` and its left subtree go left; its right is split on.
                self.nodes[node as usize].size = count as u32;
                if left_last == NIL {
                    left_root = node;
                } else {
                    self.nodes[left_last as usize].right = node;
                }
                left_last = node;
                count -= left_size + 1;
                node = self.nodes[node as usize].right;
            }
        }
        if left_last != NIL {
            self.nodes[left_last as usize].right = NIL;
        }
        if right_last != NIL {
            self.nodes[right_last as usize].left = NIL;
        }
        (left_root, right_root)
    }

    /// Joins two trees where every element of `a` precedes those of `b`,
    /// and hangs the result at `link`, top down: each node taken has the
    /// rest of both trees below it.
    fn merge_into(&mut self, mut link: Link, mut a: u32, mut b: u32) {
        loop {
            if a == NIL || b == NIL {
                self.set_link(link, if a == NIL { b } else { a });
                return;
            }
            let size = (self.size(a) + self.size(b)) as u32;
            if self.nodes[a as usize].priority > self.nodes[b as usize].priority {
                self.nodes[a as usize].size = size;
                self.set_link(link, a);
                link = Link::Right(a);
                a = self.nodes[a as usize].right;
            } else {
                self.nodes[b as usize].size = size;
                self.set_link(link, b);
                link = Link::Left(b);
                b = self.nodes[b as usize].left;
            }
        }
    }

    fn alloc(&mut self, score: f64, member: Bytes, priority: u64) -> u32 {
        let node = Node { score, member, priority, left: NIL, right: NIL, size: 1 };
        let slot = self.free.last().map_or(self.nodes.len(), |&slot| slot as usize);
        self.cut.before_change(slot, || None);
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

    /// Inserts a new element: descends while the nodes passed outrank it
    /// (each gains it in its subtree), then takes the place reached, with
    /// the subtree that was there split around it (expected O(1) nodes).
    fn tree_insert(&mut self, node: u32) {
        let n = &mut self.nodes[node as usize];
        let (score, priority) = (n.score, n.priority);
        // Lent out for the walk (a clone of the handle would allocate).
        let member = std::mem::take(&mut n.member);
        let mut link = Link::Root;
        let mut at = self.root;
        while at != NIL && self.nodes[at as usize].priority >= priority {
            let a = &mut self.nodes[at as usize];
            a.size += 1;
            if cmp_entry(score, &member, a.score, &a.member) == Ordering::Less {
                link = Link::Left(at);
                at = a.left;
            } else {
                link = Link::Right(at);
                at = a.right;
            }
        }
        let below = self.size(at);
        let before = self.count_in(at, |s, m| cmp_entry(s, m, score, &member) == Ordering::Less);
        let (left, right) = self.split_at(at, before);
        let n = &mut self.nodes[node as usize];
        (n.left, n.right, n.size, n.member) = (left, right, below as u32 + 1, member);
        self.set_link(link, node);
    }

    /// Unlinks an element that is in the tree: one walk down to it, then
    /// its two subtrees merged in its place. Its node stays allocated.
    fn tree_remove(&mut self, score: f64, member: &[u8]) {
        let mut link = Link::Root;
        let mut at = self.root;
        loop {
            assert!(at != NIL, "removing an element that is not in the tree");
            let a = &mut self.nodes[at as usize];
            let next = match cmp_entry(a.score, &a.member, score, member) {
                Ordering::Equal => {
                    let (left, right) = (a.left, a.right);
                    self.merge_into(link, left, right);
                    return;
                }
                Ordering::Less => {
                    link = Link::Right(at);
                    a.right
                }
                Ordering::Greater => {
                    link = Link::Left(at);
                    a.left
                }
            };
            a.size -= 1;
            at = next;
        }
    }

    /// Frees a single detached node's slot (dropping its member bytes); a
    /// free slot has size 0.
    fn release(&mut self, node: u32) {
        if node != NIL {
            let n = &mut self.nodes[node as usize];
            let (score, member) = (n.score, std::mem::take(&mut n.member));
            n.size = 0;
            self.cut.before_change(node as usize, || Some((score, member)));
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
        let ascending = items.windows(2).all(|p| cmp_entry(p[0].0, &p[0].1, p[1].0, &p[1].1) == Ordering::Less);
        let items = match ascending {
            true => match SortedSet::from_ascending(items) {
                Ok(zset) => return zset,
                Err(items) => items,
            },
            false => items,
        };
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

    /// The tree of members in ascending (score, member) order, built in
    /// O(n): each node goes at the bottom of the right spine, below the
    /// last node of higher priority, with the nodes it outranks as its left
    /// subtree. Gives the items back if a member comes twice (with two
    /// scores).
    fn from_ascending(items: Vec<(f64, Bytes)>) -> Result<SortedSet, Vec<(f64, Bytes)>> {
        let mut zset = SortedSet {
            index: HashTable::with_capacity(items.len()),
            nodes: Vec::with_capacity(items.len()),
            ..SortedSet::default()
        };
        let mut items = items.into_iter();
        while let Some((score, member)) = items.next() {
            assert!(!score.is_nan(), "NaN score");
            if zset.find(&member).is_some() {
                let mut back: Vec<(f64, Bytes)> = zset.nodes.into_iter().map(|n| (n.score, n.member)).collect();
                back.push((score, member));
                back.extend(items);
                return Err(back);
            }
            let hash = zset.hasher.hash_one(&member[..]);
            let node = zset.nodes.len() as u32;
            let priority = priority_of(&member);
            zset.nodes.push(Node { score, member, priority, left: NIL, right: NIL, size: 1 });
            let (nodes, hasher) = (&zset.nodes, &zset.hasher);
            zset.index.insert_unique(hash, node, |&i| hasher.hash_one(&nodes[i as usize].member[..]));
        }
        let mut spine: Vec<u32> = Vec::new();
        for node in 0..zset.nodes.len() as u32 {
            let priority = zset.nodes[node as usize].priority;
            let mut outranked = NIL;
            while let Some(&top) = spine.last() {
                if zset.nodes[top as usize].priority >= priority {
                    break;
                }
                outranked = spine.pop().expect("a top");
            }
            zset.nodes[node as usize].left = outranked;
            if let Some(&top) = spine.last() {
                zset.nodes[top as usize].right = node;
            }
            spine.push(node);
        }
        zset.root = spine.first().copied().unwrap_or(NIL);
        // Subtree sizes, children before parents.
        let mut stack = vec![(zset.root, false)];
        while let Some((node, children_done)) = stack.pop() {
            if node == NIL {
                continue;
            }
            let (left, right) = (zset.nodes[node as usize].left, zset.nodes[node as usize].right);
            if children_done {
                zset.nodes[node as usize].size = (zset.size(left) + zset.size(right) + 1) as u32;
            } else {
                stack.extend([(node, true), (left, false), (right, false)]);
            }
        }
        Ok(zset)
    }

    /// Gives a member already in the set its new score; false when
    /// `member` is not in the set.
    fn rescore(&mut self, score: f64, member: &[u8]) -> bool {
        assert!(!score.is_nan(), "NaN score");
        let Some(node) = self.find(member) else { return false };
        let old = self.nodes[node as usize].score;
        if old.total_cmp(&score) != Ordering::Equal {
            let nodes = &self.nodes;
            self.cut.before_change(node as usize, || Some((old, nodes[node as usize].member.clone())));
            self.tree_remove(old, member);
            self.nodes[node as usize].score = score;
            self.tree_insert(node);
        }
        true
    }

    /// Adds a member that is not in the set.
    fn add(&mut self, score: f64, member: Bytes) {
        let priority = priority_of(&member);
        self.add_with_priority(score, member, priority);
    }

    fn add_with_priority(&mut self, score: f64, member: Bytes, priority: u64) {
        let hash = self.hasher.hash_one(&member[..]);
        let node = self.alloc(score, member, priority);
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
        self.merge_into(Link::Root, l, r);
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
    pub fn count_while(&self, before: impl FnMut(f64, &[u8]) -> bool) -> usize {
        self.count_in(self.root, before)
    }

    /// `count_while` within the subtree at `node`.
    fn count_in(&self, mut node: u32, mut before: impl FnMut(f64, &[u8]) -> bool) -> usize {
        let mut count = 0;
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

    /// Starts a checkpoint's cut of this set (`memory::cut`).
    pub fn begin_cut(&mut self, kept: &KeptBytes) {
        self.cut.begin(self.nodes.len(), kept);
    }

    pub fn cut_active(&self) -> bool {
        self.cut.active()
    }

    /// Appends the next `limit` node slots' elements as they were when the
    /// cut began; true when the cut is done (and over).
    pub fn cut_walk(&mut self, limit: usize, out: &mut Vec<(f64, Bytes)>) -> bool {
        let nodes = &self.nodes;
        let at = |slot: usize| nodes.get(slot).filter(|n| n.size > 0).map(|n| (n.score, n.member.clone()));
        self.cut.walk(limit, at, out)
    }

    pub fn end_cut(&mut self) {
        self.cut.end();
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

    use crate::test_rng::TestRng as Rng;

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

    /// Members given in ascending order are built into the tree in one
    /// pass: the same set as one built member by member, its ranks right,
    /// its depth logarithmic; a member given twice keeps its last score.
    #[test]
    fn a_set_built_from_ascending_members_is_the_set_built_one_by_one() {
        let mut rng = Rng(0x5DEE_CE66_D1CE_4E5B);
        for n in [0usize, 1, 2, 3, 10, 1000, 50_000] {
            let mut items: Vec<(f64, Bytes)> =
                (0..n).map(|i| (rng.gen_range(0..100) as f64, Bytes::from(format!("m{i}")))).collect();
            items.sort_by(|a, b| cmp_entry(a.0, &a.1, b.0, &b.1));
            let built = SortedSet::from_owned(items.clone());
            let mut one_by_one = SortedSet::default();
            for (score, member) in &items {
                one_by_one.insert(*score, member);
            }
            assert_eq!(built, one_by_one);
            assert_eq!(built.range(0, n), items);
            for (rank, (_, member)) in items.iter().enumerate().step_by(97) {
                assert_eq!(built.rank(member), Some(rank));
            }
            assert!(built.height() <= 4 * (usize::BITS - n.leading_zeros()) as usize + 8, "{}", built.height());
        }
        let twice = vec![(1.0, Bytes::from("a")), (2.0, Bytes::from("b")), (3.0, Bytes::from("a"))];
        let zset = SortedSet::from_owned(twice);
        assert_eq!((zset.len(), zset.score(b"a"), zset.score(b"b")), (2, Some(3.0), Some(2.0)));
    }

    #[test]
    fn equality_ignores_tree_shape() {
        let mut a = SortedSet::default();
        let mut b = SortedSet::default();
        for i in 0..100 {
            a.insert(i as f64, format!("{i}").as_bytes());
            // Priorities in key order: `b` is a chain, `a` is not.
            b.add_with_priority(i as f64, Bytes::from(format!("{i}")), i);
        }
        assert_eq!(b.height(), 100);
        assert!(a.height() < 100);
        assert_eq!(a, b);
        b.insert(5.5, b"5");
        assert_ne!(a, b);
    }

    /// The priorities every new sorted set used to draw, in order: xorshift
    /// from a fixed seed, so a client could compute them.
    fn old_fixed_seed_priorities(n: usize) -> Vec<u64> {
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x
            })
            .collect()
    }

    /// The attack: the i-th member added gets a score that ranks it where
    /// the fixed-seed scheme's i-th priority ranks among all of them, so
    /// key order is priority order and the treap is one chain.
    fn adversarial_members(n: usize) -> Vec<(f64, Bytes, u64)> {
        let priorities = old_fixed_seed_priorities(n);
        let mut by_priority: Vec<usize> = (0..n).collect();
        by_priority.sort_by_key(|&i| priorities[i]);
        let mut score = vec![0.0; n];
        for (rank, &i) in by_priority.iter().enumerate() {
            score[i] = rank as f64;
        }
        (0..n).map(|i| (score[i], Bytes::from(format!("m{i}")), priorities[i])).collect()
    }

    #[test]
    fn fixed_seed_priorities_let_a_client_build_a_chain() {
        // What the old scheme did with the adversarial order: a chain.
        let n = 3_000;
        let members = adversarial_members(n);
        let mut zset = SortedSet::default();
        for (score, member, priority) in &members {
            zset.add_with_priority(*score, member.clone(), *priority);
        }
        assert_eq!(zset.height(), n);
        // Deep as it is, every walk is a loop: the chain still answers.
        for (score, member, _) in members.iter().step_by(101) {
            assert_eq!(zset.rank(member), Some(*score as usize));
        }
        zset.remove_ranks(10, n - 10);
        assert_eq!(zset.len(), 20);
    }

    #[test]
    fn adversarial_inserts_keep_the_tree_logarithmic() {
        let n = 200_000;
        let members = adversarial_members(n);
        let mut zset = SortedSet::default();
        for (score, member, _) in &members {
            zset.insert(*score, member);
        }
        let bound = 4 * n.ilog2() as usize + 8;
        assert!(zset.height() <= bound, "height {} for {n} members (bound {bound})", zset.height());
        for (score, member, _) in members.iter().step_by(997) {
            assert_eq!(zset.rank(member), Some(*score as usize));
        }
        // Rescoring every member in the same adversarial order, and loading
        // from a checkpoint, keep it shallow too.
        for (score, member, _) in &members {
            zset.insert(-*score, member);
        }
        assert!(zset.height() <= bound, "height {} after rescoring", zset.height());
        let loaded = SortedSet::from_owned(members.iter().map(|(s, m, _)| (*s, m.clone())).collect());
        assert!(loaded.height() <= bound, "height {} after loading", loaded.height());
    }
}
