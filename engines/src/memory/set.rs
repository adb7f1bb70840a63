//! Sets: an insertion-ordered hash set of byte strings. `IndexSet` gives
//! O(1) membership like a hash set and also O(1) access by position, which
//! SPOP and SRANDMEMBER need to pick uniformly at random (a std `HashSet`
//! can only be walked).

use bytes::Bytes;
use indexmap::IndexSet;

use super::cut::{CutSlot, KeptBytes};
use super::owned;

/// A set value: its members, read through `Deref` as an `IndexSet`, and
/// changed only through the methods here, which keep a checkpoint's cut
/// (`memory::cut`) informed. Equality ignores order.
#[derive(Clone, Debug, Default)]
pub struct SetValue {
    members: IndexSet<Bytes, super::Hasher>,
    /// A checkpoint's cut of this set, by member position.
    cut: CutSlot<Bytes>,
}

impl PartialEq for SetValue {
    fn eq(&self, other: &Self) -> bool {
        self.members == other.members
    }
}

impl std::ops::Deref for SetValue {
    type Target = IndexSet<Bytes, super::Hasher>;

    fn deref(&self) -> &Self::Target {
        &self.members
    }
}

impl FromIterator<Bytes> for SetValue {
    fn from_iter<I: IntoIterator<Item = Bytes>>(iter: I) -> Self {
        SetValue { members: iter.into_iter().collect(), cut: CutSlot::default() }
    }
}

impl IntoIterator for SetValue {
    type Item = Bytes;
    type IntoIter = indexmap::set::IntoIter<Bytes>;

    fn into_iter(self) -> Self::IntoIter {
        self.members.into_iter()
    }
}

impl<'a> IntoIterator for &'a SetValue {
    type Item = &'a Bytes;
    type IntoIter = indexmap::set::Iter<'a, Bytes>;

    fn into_iter(self) -> Self::IntoIter {
        self.members.iter()
    }
}

impl Extend<Bytes> for SetValue {
    fn extend<I: IntoIterator<Item = Bytes>>(&mut self, iter: I) {
        iter.into_iter().for_each(|member| {
            self.insert(member);
        });
    }
}

impl SetValue {
    /// Adds `member` at the end; false if it was there.
    pub fn insert(&mut self, member: Bytes) -> bool {
        if self.members.contains(&member) {
            return false;
        }
        self.cut.before_change(self.members.len(), || None);
        self.members.insert(member)
    }

    /// Removes `member`, moving the last member into its place (O(1);
    /// order is not part of a set's meaning, and replaying the same ops
    /// gives the same order anyway).
    pub fn swap_remove(&mut self, member: &[u8]) -> bool {
        let Some(at) = self.members.get_index_of(member) else { return false };
        let (members, last) = (&self.members, self.members.len() - 1);
        self.cut.before_change(at, || members.get_index(at).cloned());
        self.cut.before_change(last, || members.get_index(last).cloned());
        self.members.swap_remove_index(at);
        true
    }

    /// Keeps the members `keep` accepts (a value being built).
    pub fn retain(&mut self, keep: impl FnMut(&Bytes) -> bool) {
        assert!(!self.cut.active(), "retain on a set being cut");
        self.members.retain(keep);
    }

    /// Starts a checkpoint's cut of this set (`memory::cut`).
    pub fn begin_cut(&mut self, kept: &KeptBytes) {
        self.cut.begin(self.members.len(), kept);
    }

    pub fn cut_active(&self) -> bool {
        self.cut.active()
    }

    /// Appends the next `limit` positions' members as they were when the
    /// cut began; true when the cut is done (and over).
    pub fn cut_walk(&mut self, limit: usize, out: &mut Vec<Bytes>) -> bool {
        let members = &self.members;
        self.cut.walk(limit, |at| members.get_index(at).cloned(), out)
    }

    pub fn end_cut(&mut self) {
        self.cut.end();
    }
}

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
