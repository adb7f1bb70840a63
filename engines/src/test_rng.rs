//! A tiny deterministic generator for tests (xorshift64; the engines
//! crate has no rand): a seed gives the same run every time.

use std::ops::{Bound, RangeBounds};

pub struct TestRng(pub u64);

impl TestRng {
    fn step(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number below `n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.step() % n.max(1)
    }

    /// A number in `range`.
    pub fn gen_range(&mut self, range: impl RangeBounds<usize>) -> usize {
        let lo = match range.start_bound() {
            Bound::Included(&v) => v,
            _ => 0,
        };
        let hi = match range.end_bound() {
            Bound::Included(&v) => v + 1,
            Bound::Excluded(&v) => v,
            Bound::Unbounded => usize::MAX,
        };
        lo + self.below((hi - lo) as u64) as usize
    }
}
