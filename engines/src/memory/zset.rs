//! Sorted sets: members ordered by (score, member).

use std::collections::{BTreeSet, HashMap};

use bytes::Bytes;

/// A score that orders like Redis's (NaN never gets in).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Score(pub f64);

impl Eq for Score {}

impl PartialOrd for Score {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Score {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.partial_cmp(&other.0).expect("scores are never NaN")
    }
}

/// A sorted set: member → score, and the members in (score, member) order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SortedSet {
    scores: HashMap<Bytes, f64>,
    order: BTreeSet<(Score, Bytes)>,
}

impl SortedSet {
    pub fn len(&self) -> usize {
        self.scores.len()
    }

    pub fn is_empty(&self) -> bool {
        self.scores.is_empty()
    }

    pub fn score(&self, member: &[u8]) -> Option<f64> {
        self.scores.get(member).copied()
    }

    /// Members in ascending (score, member) order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (f64, &Bytes)> {
        self.order.iter().map(|(s, m)| (s.0, m))
    }

    pub fn insert(&mut self, score: f64, member: Bytes) {
        if let Some(old) = self.scores.insert(member.clone(), score) {
            self.order.remove(&(Score(old), member.clone()));
        }
        self.order.insert((Score(score), member));
    }

    pub fn remove(&mut self, member: &[u8]) -> bool {
        match self.scores.remove_entry(member) {
            Some((member, score)) => {
                self.order.remove(&(Score(score), member));
                true
            }
            None => false,
        }
    }
}

/// Deterministic sorted-set effects.
#[derive(Clone, Debug, PartialEq)]
pub enum ZSetOp {
    /// Sets each member's score (adding it if new).
    Add(Vec<(f64, Bytes)>),
    Remove(Vec<Bytes>),
}

pub fn apply(zset: &mut SortedSet, op: &ZSetOp) {
    match op {
        ZSetOp::Add(items) => items.iter().for_each(|(s, m)| zset.insert(*s, m.clone())),
        ZSetOp::Remove(members) => members.iter().for_each(|m| {
            zset.remove(m);
        }),
    }
}
