//! Sets: a hash set of byte strings.

use std::collections::HashSet;

use bytes::Bytes;

pub type SetValue = HashSet<Bytes>;

/// Deterministic set effects.
#[derive(Clone, Debug, PartialEq)]
pub enum SetOp {
    Add(Vec<Bytes>),
    Remove(Vec<Bytes>),
}

pub fn apply(set: &mut SetValue, op: &SetOp) {
    match op {
        SetOp::Add(members) => set.extend(members.iter().cloned()),
        SetOp::Remove(members) => members.iter().for_each(|m| {
            set.remove(m);
        }),
    }
}
