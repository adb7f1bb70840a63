//! Sets: an insertion-ordered hash set of byte strings. `IndexSet` gives
//! O(1) membership like a hash set and also O(1) access by position, which
//! SPOP and SRANDMEMBER need to pick uniformly at random (a std `HashSet`
//! can only be walked).

use bytes::Bytes;
use indexmap::IndexSet;

use super::owned;

/// A set value. Equality ignores order (`IndexSet`'s `PartialEq`).
pub type SetValue = IndexSet<Bytes, super::Hasher>;

/// Deterministic set effects. SPOP records the members it chose, SMOVE a
/// `Remove` on the source and an `Add` on the destination; the *STORE
/// commands replace the destination with `MemOp::Put`.
#[derive(Clone, Debug, PartialEq)]
pub enum SetOp {
    Add(Vec<Bytes>),
    Remove(Vec<Bytes>),
}

pub fn apply(set: &mut SetValue, op: &SetOp) {
    match op {
        SetOp::Add(members) => members.iter().for_each(|m| {
            if !set.contains(m) {
                set.insert(owned(m));
            }
        }),
        SetOp::Remove(members) => members.iter().for_each(|m| {
            // swap_remove is O(1); order is not part of a set's meaning, and
            // replaying the same ops gives the same order anyway.
            set.swap_remove(m);
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(members: &[&str]) -> SetValue {
        members.iter().map(|m| Bytes::copy_from_slice(m.as_bytes())).collect()
    }

    #[test]
    fn add_and_remove_are_set_operations() {
        let mut s = SetValue::default();
        apply(&mut s, &SetOp::Add(set(&["a", "b", "a", "c"]).into_iter().collect()));
        assert_eq!(s, set(&["c", "b", "a"]));
        apply(&mut s, &SetOp::Remove(vec![Bytes::from_static(b"a"), Bytes::from_static(b"zz")]));
        assert_eq!(s, set(&["b", "c"]));
        assert_eq!(s.len(), 2);
    }
}
