//! Lists: a deque of byte strings.

use std::collections::VecDeque;

use bytes::Bytes;

pub type ListValue = VecDeque<Bytes>;

/// Deterministic list effects.
#[derive(Clone, Debug, PartialEq)]
pub enum ListOp {
    /// Pushes items one by one at the head (LPUSH order) or the tail.
    Push { front: bool, items: Vec<Bytes> },
    /// Removes `count` items from the head or the tail.
    Pop { front: bool, count: usize },
}

pub fn apply(list: &mut ListValue, op: &ListOp) {
    match op {
        ListOp::Push { front: true, items } => items.iter().for_each(|i| list.push_front(i.clone())),
        ListOp::Push { front: false, items } => list.extend(items.iter().cloned()),
        ListOp::Pop { front: true, count } => drop(list.drain(..(*count).min(list.len()))),
        ListOp::Pop { front: false, count } => list.truncate(list.len().saturating_sub(*count)),
    }
}
