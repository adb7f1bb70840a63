//! Lists: a deque of byte strings.

use std::collections::VecDeque;

use bytes::Bytes;

use super::owned;

pub type ListValue = VecDeque<Bytes>;

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
        ListOp::Push { front: true, items } => items.iter().for_each(|i| list.push_front(owned(i))),
        ListOp::Push { front: false, items } => list.extend(items.iter().map(|i| owned(i))),
        ListOp::Pop { front: true, count } => drop(list.drain(..(*count).min(list.len()))),
        ListOp::Pop { front: false, count } => list.truncate(list.len().saturating_sub(*count)),
        ListOp::Set { index, item } => {
            if let Some(slot) = list.get_mut(*index) {
                *slot = owned(item);
            }
        }
        ListOp::Insert { index, item } => list.insert((*index).min(list.len()), owned(item)),
        ListOp::Trim { start, end } => {
            let end = (*end).min(list.len());
            if *start >= end {
                list.clear();
            } else {
                list.truncate(end);
                list.drain(..*start);
            }
        }
        ListOp::Remove { indexes } => {
            let mut doomed = indexes.iter().peekable();
            let mut position = 0;
            list.retain(|_| {
                let keep = doomed.peek() != Some(&&position);
                if !keep {
                    doomed.next();
                }
                position += 1;
                keep
            });
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
}
