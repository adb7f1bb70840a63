//! SCAN-family cursors. A cursor carries its whole position: the server
//! keeps nothing between calls, so scans cost no memory however many run at
//! once, and none ever loses its place. Redis does the same with its
//! reverse-binary cursor over a hash table; Strata's positions are:
//!
//! - Sets and sorted sets (unordered, in memory): the order of a hash of
//!   each member, keyed once per process ([`member_position`]). The cursor
//!   is the position to resume at; a call selects its members in O(n)
//!   ([`next_by_position`]).
//! - SCAN: slot by slot, and within a slot in the order of the keys' keyed
//!   hash ([`key_cursor`]); a call reads the slot it resumes in.
//! - A hash's fields, in byte order in RocksDB: runs of fields that share
//!   a prefix, in byte order, and the keyed-hash order within a run
//!   ([`scan_runs`]). 64 bits cannot hold an arbitrary field, but they hold
//!   the first two bytes, a few bytes after the prefix that the fields
//!   starting with those two share, and that prefix's length, which finds
//!   it again.
//!
//! All keep Redis's guarantees: a full iteration returns every element
//! present throughout at least once (more than once only when the
//! collection changes), and any cursor is accepted and leads to the end.

use std::hash::BuildHasher;
use std::sync::LazyLock;

use strata_engines::encoding::prefix_end;

use crate::error::CmdError;

/// The position of `member` in a scan of a set or sorted set: a hash keyed
/// once per process (nobody can choose members that pile up at one
/// position), never 0 (which means "start" and "done"), and below 2^63
/// (some clients read cursors as signed numbers).
pub fn member_position(member: &[u8]) -> u64 {
    static KEY: LazyLock<foldhash::quality::RandomState> = LazyLock::new(Default::default);
    (KEY.hash_one(member) >> 1).max(1)
}

/// One call of a scan in position order: among the members at or after
/// `cursor`, the `batch` nearest and every other member at the last
/// position taken (so a call always moves on, even past colliding
/// positions), with the cursor of the next call (0 when none is left).
pub fn next_by_position<T>(
    members: impl Iterator<Item = T>,
    position: impl Fn(&T) -> u64,
    cursor: u64,
    batch: usize,
) -> (Vec<T>, u64) {
    let mut ahead: Vec<(u64, T)> = members
        .filter_map(|member| {
            let at = position(&member);
            (at >= cursor).then_some((at, member))
        })
        .collect();
    let batch = batch.max(1);
    if ahead.len() <= batch {
        return (ahead.into_iter().map(|(_, member)| member).collect(), 0);
    }
    ahead.select_nth_unstable_by_key(batch - 1, |(at, _)| *at);
    let boundary = ahead[batch - 1].0;
    let mut next = None::<u64>;
    let mut taken = Vec::with_capacity(batch);
    for (at, member) in ahead {
        if at <= boundary {
            taken.push(member);
        } else {
            next = Some(next.map_or(at, |n| n.min(at)));
        }
    }
    (taken, next.unwrap_or(0))
}

/// The SCAN cursor of a position in `slot`: the slot in the top 14 of 63
/// bits, the position of a key within it ([`key_position`]) below.
pub fn key_cursor(slot: u16, position: u64) -> u64 {
    (u64::from(slot) << KEY_POSITION_BITS) | position
}

/// The slot and the position within it of a SCAN cursor. Any value names
/// some slot and position.
pub fn split_key_cursor(cursor: u64) -> (u16, u64) {
    let slot = (cursor >> KEY_POSITION_BITS) as usize % strata_cluster::SLOT_COUNT;
    (slot as u16, cursor & low_bits(KEY_POSITION_BITS))
}

/// Where a key stands within its slot in a SCAN: its keyed hash, cut to
/// fit under the slot, never 0 (a slot's start).
pub fn key_position(key: &[u8]) -> u64 {
    (member_position(key) >> (63 - KEY_POSITION_BITS)).max(1)
}

const KEY_POSITION_BITS: u32 = 49;

/// A byte-ordered collection a scan walks (a hash's fields in RocksDB).
pub trait Ordered {
    /// The first `n` bytes of the first element at or after `from`.
    fn first_from(&self, from: &[u8], n: usize) -> Result<Option<Vec<u8>>, CmdError>;
    /// The first `n` bytes of the greatest element before `end` (None: of
    /// all).
    fn last_before(&self, end: Option<&[u8]>, n: usize) -> Result<Option<Vec<u8>>, CmdError>;
    /// Visits the elements at or after `from`, in byte order, with their
    /// values, until `visit` returns false.
    fn visit_from(&self, from: &[u8], visit: &mut dyn FnMut(&[u8], &[u8]) -> bool) -> Result<(), CmdError>;
}

/// An element and its value.
pub type Entry = (Vec<u8>, Vec<u8>);

/// One call of a scan over a byte-ordered collection ([`Ordered`]): the
/// elements it examined (about `count`) and the cursor of the next call (0
/// when none is left).
///
/// Elements are grouped by their first two bytes; a group's anchor is the
/// prefix all its elements share (up to [`MAX_ANCHOR`] bytes), so an odd
/// element elsewhere does not shorten it. A run is the elements of a group
/// that share the anchor and the [`WINDOW`] bytes after it. The walk goes
/// in byte order, by runs, and within a run in the order of
/// [`run_position`], so a call may end inside a run and takes at least
/// 1/64 of the run it is in: O(count) per call where runs are small (where
/// elements differ within a few bytes after their group's shared prefix),
/// O(run) where they are not, and a full iteration O(64 * run) per run.
/// Runs are long when a group's elements share much more than its anchor:
/// when an element shares the group's two bytes but little of the others'
/// prefix (`fi` beside `field:1`, `field:2` ...). A cursor holds the
/// anchor's length, the group, the run's window and a run position
/// ([`RunCursor`]).
pub fn scan_runs(source: &dyn Ordered, cursor: u64, count: usize) -> Result<(Vec<Entry>, u64), CmdError> {
    let mut walk = Walk { source, count, taken: Vec::new(), group: None, cap: None };
    let mut from = Vec::new();
    // 0 starts; so does a cursor Strata never makes (Redis answers a small
    // hash whole whatever the cursor).
    if let Some(resume) = RunCursor::decode(cursor) {
        walk.cap = Some((resume.group.clone(), resume.anchor_len));
        match resume.locate(source)? {
            Located::From(at) => from = at,
            Located::End => return Ok((Vec::new(), 0)),
            Located::Run(run) => {
                // The run the cursor stands in, as the cursor's anchor makes it.
                let full = run.len() == resume.anchor_len + WINDOW;
                let mut members = Vec::new();
                source.visit_from(&run, &mut |element, value| {
                    let member = if full { element.starts_with(&run) } else { element == run.as_slice() };
                    if member {
                        members.push((element.to_vec(), value.to_vec()));
                    }
                    member
                })?;
                if let Some(next) = walk.take_run(&run, resume.anchor_len, members, resume.at) {
                    return Ok((walk.taken, next));
                }
                // On after the run.
                if full {
                    match prefix_end(&run) {
                        Some(end) => from = end,
                        None => return Ok((walk.taken, 0)),
                    }
                } else {
                    from = run;
                    from.push(0);
                }
            }
        }
    }
    let next = walk.walk(&from)?;
    Ok((walk.taken, next))
}

/// What a call of [`scan_runs`] has taken so far.
struct Walk<'a> {
    source: &'a dyn Ordered,
    count: usize,
    taken: Vec<Entry>,
    /// The group the walk is in and its anchor's length.
    group: Option<(Vec<u8>, usize)>,
    /// The resumed cursor's group and anchor length. A scan never takes a
    /// group's anchor longer: once a field with a shorter shared prefix
    /// came into the group, the rest of the group is walked under the
    /// shorter one (longer runs), so that the field coming and going
    /// between calls sends the scan back to the group's start at most once.
    cap: Option<(Vec<u8>, usize)>,
}

impl Walk<'_> {
    /// Walks on from `from` until the budget is spent, then to the end of
    /// the run it is in (which is split by run position); the cursor of the
    /// next call (0 at the end). Anchors are read only there.
    fn walk(&mut self, from: &[u8]) -> Result<u64, CmdError> {
        let source = self.source;
        // Once the budget is spent: the run the walk is in (its key, its
        // anchor's length, its members taken or read in this call).
        let mut ending: Option<(Vec<u8>, usize, Vec<Entry>)> = None;
        // The run after it, where the next call starts.
        let mut after: Option<(Vec<u8>, usize)> = None;
        let mut failed = None;
        source.visit_from(from, &mut |element, value| {
            if ending.is_none() && self.taken.len() < self.count {
                self.taken.push((element.to_vec(), value.to_vec()));
                return true;
            }
            let anchor_len = match self.anchor_len(element) {
                Ok(len) => len,
                Err(e) => {
                    failed = Some(e);
                    return false;
                }
            };
            let key = run_key(element, anchor_len);
            match &mut ending {
                Some((run, _, members)) if run.as_slice() == key => {
                    members.push((element.to_vec(), value.to_vec()));
                    true
                }
                Some(_) => {
                    after = Some((key.to_vec(), anchor_len));
                    false
                }
                None => {
                    let in_run = self.taken.iter().rev().take_while(|(t, _)| run_key(t, anchor_len) == key).count();
                    if in_run == 0 {
                        after = Some((key.to_vec(), anchor_len));
                        return false;
                    }
                    let mut members = self.taken.split_off(self.taken.len() - in_run);
                    members.push((element.to_vec(), value.to_vec()));
                    ending = Some((key.to_vec(), anchor_len, members));
                    true
                }
            }
        })?;
        if let Some(e) = failed {
            return Err(e);
        }
        if let Some((key, anchor_len, members)) = ending {
            if let Some(cursor) = self.take_run(&key, anchor_len, members, 0) {
                return Ok(cursor);
            }
        }
        Ok(after.map_or(0, |(key, anchor_len)| RunCursor::new(&key, anchor_len, 0).encode()))
    }

    /// The anchor's length in `element`'s group (two seeks, once per group
    /// and call).
    fn anchor_len(&mut self, element: &[u8]) -> Result<usize, CmdError> {
        let group = group_of(element);
        if let Some((current, len)) = &self.group {
            if current.as_slice() == group {
                return Ok(*len);
            }
        }
        let mut len = group_anchor_len(self.source, group)?.unwrap_or(group.len());
        if let Some((capped, cap)) = &self.cap {
            if capped.as_slice() == group {
                len = len.min(*cap);
            }
        }
        self.group = Some((group.to_vec(), len));
        Ok(len)
    }

    /// Takes the members of run `key` from run position `at`: all of them
    /// if the call's budget allows, else the budget's worth (at least 1/64
    /// of the run) and the cursor to go on inside the run.
    fn take_run(&mut self, key: &[u8], anchor_len: usize, members: Vec<Entry>, at: u64) -> Option<u64> {
        let budget = self.count.saturating_sub(self.taken.len()).max(1);
        let batch = budget.max(members.len() / 64);
        let (taken, next) = next_by_position(members.into_iter(), |(e, _)| run_position(e), at, batch);
        self.taken.extend(taken);
        (next != 0).then(|| RunCursor::new(key, anchor_len, next).encode())
    }
}

/// The key of `element`'s run under an anchor of `anchor_len` bytes.
fn run_key(element: &[u8], anchor_len: usize) -> &[u8] {
    &element[..element.len().min(anchor_len + WINDOW)]
}

/// An element's group: its first two bytes. An element shorter than that
/// is a group of its own.
fn group_of(element: &[u8]) -> &[u8] {
    &element[..element.len().min(GROUP)]
}

/// The length of the prefix every element of a two-byte `group` shares
/// (at most [`MAX_ANCHOR`]); None when the group has no element, or is
/// shorter (its one element is its anchor).
fn group_anchor_len(source: &dyn Ordered, group: &[u8]) -> Result<Option<usize>, CmdError> {
    if group.len() < GROUP {
        return Ok(None);
    }
    let end = prefix_end(group);
    let Some(first) = source.first_from(group, MAX_ANCHOR)?.filter(|e| e.starts_with(group)) else {
        return Ok(None);
    };
    let last = source.last_before(end.as_deref(), MAX_ANCHOR)?.unwrap_or_default();
    Ok(Some(common_prefix(&first, &last)))
}

/// Bytes that make an element's group.
const GROUP: usize = 2;

/// Longest anchor a cursor names (its length takes 8 bits).
pub const MAX_ANCHOR: usize = 255;

/// Bytes after the anchor that a cursor holds: the elements of a group
/// that share the anchor and these bytes are one run.
pub const WINDOW: usize = 4;

const RUN_POSITION_BITS: u32 = 6;

/// Where an element stands within its run: a keyed hash, cut short.
fn run_position(element: &[u8]) -> u64 {
    member_position(element) >> (63 - RUN_POSITION_BITS)
}

/// A position in a [`scan_runs`] walk: the run `anchor ++ window`, from run
/// position `at` on. The anchor is the prefix every element of its group
/// (its first two bytes) shared when the cursor was made; the cursor holds
/// the group and the anchor's length, which find it again
/// ([`RunCursor::locate`]). Packed in 63 bits, from the top: the anchor's
/// length (8 bits), the group (16), the window (32, its first bytes), and
/// 7 bits: a full window's flag (64) and `at`, or else the window's length
/// plus one (so a cursor is never 0).
#[derive(Debug, PartialEq)]
struct RunCursor {
    anchor_len: usize,
    /// The anchor's first two bytes (fewer when it is shorter).
    group: Vec<u8>,
    window: Vec<u8>,
    at: u64,
}

/// Where a cursor resumes in the collection as it is now.
enum Located {
    /// At a run (its key).
    Run(Vec<u8>),
    /// In byte order from here.
    From(Vec<u8>),
    /// Nowhere: nothing is left after the cursor.
    End,
}

impl RunCursor {
    /// The cursor of run `key` (under an anchor of `anchor_len` bytes) from
    /// run position `at`.
    fn new(key: &[u8], anchor_len: usize, at: u64) -> RunCursor {
        RunCursor { anchor_len, group: key[..anchor_len.min(GROUP)].to_vec(), window: key[anchor_len..].to_vec(), at }
    }

    /// Finds the cursor's run again. Every element the scan still owes in
    /// the cursor's group had the anchor when the cursor was made, and has
    /// it now. If every element of the group now shares a prefix at least
    /// as long, the anchor is its start: exact. Otherwise elements with a
    /// shorter shared prefix came into the group, and the walk resumes at
    /// the group's start (duplicates, never a miss). An emptied group owes
    /// nothing: the walk resumes after it.
    fn locate(&self, source: &dyn Ordered) -> Result<Located, CmdError> {
        let run = |mut anchor: Vec<u8>| {
            anchor.extend_from_slice(&self.window);
            Located::Run(anchor)
        };
        if self.anchor_len <= GROUP {
            // The anchor is all in the cursor.
            return Ok(run(self.group.clone()));
        }
        let first = source.first_from(&self.group, self.anchor_len)?.filter(|e| e.starts_with(&self.group));
        match (first, group_anchor_len(source, &self.group)?) {
            (Some(first), Some(shared)) if shared >= self.anchor_len => Ok(run(first)),
            (Some(_), _) => Ok(Located::From(self.group.clone())),
            (None, _) => Ok(prefix_end(&self.group).map_or(Located::End, Located::From)),
        }
    }

    fn encode(&self) -> u64 {
        let mut group = [0u8; GROUP];
        group[..self.group.len()].copy_from_slice(&self.group);
        let mut window = [0u8; WINDOW];
        window[..self.window.len()].copy_from_slice(&self.window);
        let tail = match self.window.len() == WINDOW {
            true => 64 | self.at,
            false => self.window.len() as u64 + 1,
        };
        ((self.anchor_len as u64) << 55)
            | (u64::from(u16::from_be_bytes(group)) << 39)
            | (u64::from(u32::from_be_bytes(window)) << 7)
            | tail
    }

    /// The cursor in `bits`; None for 0 and for a value with the top bit
    /// set, which Strata never makes. Every other value decodes: a made-up
    /// cursor resumes somewhere.
    fn decode(bits: u64) -> Option<RunCursor> {
        if bits == 0 || bits >> 63 != 0 {
            return None;
        }
        let anchor_len = (bits >> 55) as usize;
        let group = ((bits >> 39) as u16).to_be_bytes();
        let window = ((bits >> 7) as u32).to_be_bytes();
        let tail = bits & 127;
        let (window_len, at) = match tail & 64 != 0 {
            true => (WINDOW, tail & 63),
            false => ((tail as usize).saturating_sub(1).min(WINDOW - 1), 0),
        };
        Some(RunCursor {
            anchor_len,
            group: group[..anchor_len.min(GROUP)].to_vec(),
            // A short anchor is a whole element: nothing follows it.
            window: if anchor_len < GROUP { Vec::new() } else { window[..window_len].to_vec() },
            at,
        })
    }
}

fn low_bits(n: u32) -> u64 {
    (1u64 << n) - 1
}

fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// Parses a cursor argument as Redis does (`strtoul` on the whole string,
/// no leading space): an optional sign, digits that fit 64 bits; a negative
/// cursor wraps around and the empty string is 0.
pub fn parse_cursor(arg: &[u8]) -> Result<u64, crate::error::CmdError> {
    let invalid = || crate::error::CmdError::err("invalid cursor");
    if arg.is_empty() {
        return Ok(0);
    }
    let (negative, digits) = match arg[0] {
        b'-' => (true, &arg[1..]),
        b'+' => (false, &arg[1..]),
        _ => (false, arg),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(invalid());
    }
    let value = std::str::from_utf8(digits).ok().and_then(|s| s.parse::<u64>().ok()).ok_or_else(invalid)?;
    Ok(if negative { value.wrapping_neg() } else { value })
}

/// The options of SCAN, HSCAN (and later SSCAN, ZSCAN).
pub struct ScanOptions<'a> {
    /// None when there is no MATCH or it is `*` (which Redis does not run
    /// through the matcher, so it also matches the empty string).
    pub pattern: Option<&'a bytes::Bytes>,
    pub count: usize,
    /// TYPE, only SCAN takes it.
    pub type_name: Option<&'a bytes::Bytes>,
}

impl<'a> ScanOptions<'a> {
    /// `[MATCH pattern] [COUNT count] [TYPE type]`: the arguments after the
    /// cursor. Each option takes a value; COUNT must be at least 1.
    pub fn parse(options: &'a [bytes::Bytes], allow_type: bool) -> Result<ScanOptions<'a>, crate::error::CmdError> {
        use crate::error::CmdError;
        let mut parsed = ScanOptions { pattern: None, count: 10, type_name: None };
        for pair in options.chunks(2) {
            let [option, value] = pair else { return Err(CmdError::Syntax) };
            if option.eq_ignore_ascii_case(b"COUNT") {
                let count = crate::commands::args::parse_int(value)?;
                if count < 1 {
                    return Err(CmdError::Syntax);
                }
                parsed.count = usize::try_from(count).unwrap_or(usize::MAX);
            } else if option.eq_ignore_ascii_case(b"MATCH") {
                parsed.pattern = (value.as_ref() != b"*").then_some(value);
            } else if allow_type && option.eq_ignore_ascii_case(b"TYPE") {
                parsed.type_name = Some(value);
            } else {
                return Err(CmdError::Syntax);
            }
        }
        Ok(parsed)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet, HashSet};

    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    use super::*;

    type Collection = BTreeMap<Vec<u8>, Vec<u8>>;

    fn cut(element: &[u8], n: usize) -> Vec<u8> {
        element[..element.len().min(n)].to_vec()
    }

    impl Ordered for Collection {
        fn first_from(&self, from: &[u8], n: usize) -> Result<Option<Vec<u8>>, CmdError> {
            Ok(self.range(from.to_vec()..).next().map(|(e, _)| cut(e, n)))
        }

        fn last_before(&self, end: Option<&[u8]>, n: usize) -> Result<Option<Vec<u8>>, CmdError> {
            let last = match end {
                Some(end) => self.range(..end.to_vec()).next_back(),
                None => self.iter().next_back(),
            };
            Ok(last.map(|(e, _)| cut(e, n)))
        }

        fn visit_from(&self, from: &[u8], visit: &mut dyn FnMut(&[u8], &[u8]) -> bool) -> Result<(), CmdError> {
            for (element, value) in self.range(from.to_vec()..) {
                if !visit(element, value) {
                    break;
                }
            }
            Ok(())
        }
    }

    fn call(collection: &Collection, cursor: u64, count: usize) -> (Vec<Vec<u8>>, u64) {
        let (taken, next) = scan_runs(collection, cursor, count).unwrap();
        (taken.into_iter().map(|(e, _)| e).collect(), next)
    }

    /// An element from a few families that share prefixes (some longer than
    /// an anchor plus a window), with short random tails.
    fn element(rng: &mut StdRng) -> Vec<u8> {
        let long = vec![b'L'; MAX_ANCHOR + 20];
        let families: [&[u8]; 6] = [b"", b"user:", b"user:000000000", b"\xff\xff", b"a", &long];
        let mut e = families[rng.random_range(0..families.len())].to_vec();
        for _ in 0..rng.random_range(0..4) {
            e.push([0u8, b'0', b'1', b'a', 0xff][rng.random_range(0..5)]);
        }
        e
    }

    /// Elements of one family: their anchor is long.
    fn family_element(rng: &mut StdRng) -> Vec<u8> {
        format!("user:{:08}", rng.random_range(0..100_000_000u32)).into_bytes()
    }

    fn collection(elements: impl IntoIterator<Item = Vec<u8>>) -> Collection {
        elements.into_iter().map(|e| (e, Vec::new())).collect()
    }

    #[test]
    fn without_changes_a_scan_returns_each_element_once() {
        let mut rng = StdRng::seed_from_u64(1);
        for round in 0..400 {
            let collection = if round % 2 == 0 {
                collection((0..rng.random_range(0..200)).map(|_| element(&mut rng)))
            } else {
                collection((0..rng.random_range(0..200)).map(|_| family_element(&mut rng)))
            };
            let count = rng.random_range(1..8);
            let (mut cursor, mut seen, mut calls) = (0, Vec::new(), 0);
            loop {
                let (taken, next) = call(&collection, cursor, count);
                seen.extend(taken);
                calls += 1;
                assert!(calls <= collection.len() + 1, "round {round}: no progress");
                cursor = next;
                if cursor == 0 {
                    break;
                }
            }
            seen.sort();
            assert_eq!(seen, collection.keys().cloned().collect::<Vec<_>>(), "round {round}");
        }
    }

    #[test]
    fn elements_present_throughout_are_returned_despite_changes() {
        let mut rng = StdRng::seed_from_u64(2);
        for round in 0..400 {
            let family = round % 2 == 1;
            let make =
                |rng: &mut StdRng| if family && rng.random_bool(0.9) { family_element(rng) } else { element(rng) };
            let mut collection = collection((0..rng.random_range(0..150)).map(|_| make(&mut rng)));
            // Elements that may go away; the others stay throughout.
            let stable: BTreeSet<Vec<u8>> = collection.keys().filter(|_| rng.random_bool(0.7)).cloned().collect();
            let count = rng.random_range(1..6);
            let (mut cursor, mut seen, mut calls) = (0, HashSet::new(), 0);
            loop {
                let (taken, next) = call(&collection, cursor, count);
                seen.extend(taken);
                calls += 1;
                assert!(calls < 10_000, "round {round}: the scan does not end");
                cursor = next;
                if cursor == 0 {
                    break;
                }
                // Between calls: new elements (before the cursor, after it,
                // with other prefixes), and removals.
                for _ in 0..rng.random_range(0..3) {
                    collection.insert(make(&mut rng), Vec::new());
                }
                let removable: Vec<Vec<u8>> = collection.keys().filter(|e| !stable.contains(*e)).cloned().collect();
                for e in removable {
                    if rng.random_bool(0.2) {
                        collection.remove(&e);
                    }
                }
            }
            let missed: Vec<_> = stable.iter().filter(|e| !seen.contains(*e)).collect();
            assert!(missed.is_empty(), "round {round}: missed {missed:?}");
        }
    }

    /// A field that shares the first two bytes of the others but less of
    /// their prefix, coming and going between calls (a lock in a hash of
    /// records), shortens the group's shared prefix every other call.
    #[test]
    fn an_element_with_a_shorter_shared_prefix_coming_and_going_does_not_stop_a_scan() {
        let mut rng = StdRng::seed_from_u64(5);
        let mut collection = collection((0..3000).map(|_| family_element(&mut rng)));
        let stable: Vec<Vec<u8>> = collection.keys().cloned().collect();
        let (mut cursor, mut seen, mut calls) = (0, HashSet::new(), 0);
        loop {
            let (taken, next) = call(&collection, cursor, 10);
            seen.extend(taken);
            calls += 1;
            cursor = next;
            if cursor == 0 {
                break;
            }
            let lock = b"us_lock".to_vec();
            if collection.remove(&lock).is_none() {
                collection.insert(lock, Vec::new());
            }
        }
        assert!(stable.iter().all(|e| seen.contains(e)));
        // One step back to the group's start, then runs under the shorter
        // prefix: more calls than 300, a bounded number.
        assert!(calls < 1000, "{calls} calls for 3000 elements, COUNT 10");
    }

    /// An element with another first byte has a group of its own: the
    /// others' runs stay short, and calls take about COUNT elements.
    #[test]
    fn an_odd_element_elsewhere_keeps_runs_short() {
        let mut rng = StdRng::seed_from_u64(7);
        let mut collection = collection((0..3000).map(|_| family_element(&mut rng)));
        collection.insert(b"_meta".to_vec(), Vec::new());
        let (mut cursor, mut seen) = (0, 0);
        loop {
            let (taken, next) = call(&collection, cursor, 10);
            assert!(taken.len() <= 20, "a call took {}", taken.len());
            seen += taken.len();
            cursor = next;
            if cursor == 0 {
                break;
            }
        }
        assert_eq!(seen, collection.len());
    }

    #[test]
    fn a_call_takes_a_bounded_part_of_a_long_run() {
        let mut rng = StdRng::seed_from_u64(6);
        // 4096 elements that share their group's anchor ("us", for the
        // short element) and the window after it: one run.
        let mut collection = collection((0..4096).map(|_| [&b"user:0000"[..], &rng.random::<[u8; 6]>()].concat()));
        collection.insert(b"us".to_vec(), Vec::new());
        let (mut cursor, mut seen, mut calls) = (0, Vec::new(), 0);
        loop {
            calls += 1;
            let (taken, next) = call(&collection, cursor, 1);
            assert!(taken.len() <= 4097 / 64 + 4097 / 32, "a call took {}", taken.len());
            seen.extend(taken);
            cursor = next;
            if cursor == 0 {
                break;
            }
        }
        seen.sort();
        assert_eq!(seen, collection.keys().cloned().collect::<Vec<_>>());
        // The run is split, not taken whole nor one element at a time.
        assert!((2..=100).contains(&calls), "{calls} calls");
    }

    #[test]
    fn any_cursor_is_accepted_and_leads_to_the_end() {
        let mut rng = StdRng::seed_from_u64(3);
        let mixed = collection((0..300).map(|_| element(&mut rng)));
        let family = collection((0..300).map(|_| family_element(&mut rng)));
        let mut cursors: Vec<u64> = vec![1, 2, u64::MAX, 1 << 63, (1 << 63) - 1, 0xff << 55];
        cursors.extend((0..500).map(|_| rng.random::<u64>()));
        for collection in [&mixed, &family] {
            for &start in &cursors {
                let (mut cursor, mut calls) = (start, 0);
                loop {
                    cursor = call(collection, cursor, 5).1;
                    calls += 1;
                    assert!(calls <= collection.len() + 1, "cursor {start} does not end");
                    if cursor == 0 {
                        break;
                    }
                }
            }
        }
    }

    #[test]
    fn run_cursors_round_trip_through_63_bits() {
        let mut rng = StdRng::seed_from_u64(4);
        for _ in 0..2000 {
            let element = element(&mut rng);
            // A group's anchor is its two bytes or more, or a short element.
            let anchor_len = match element.len() {
                0 | 1 => element.len(),
                len => rng.random_range(GROUP..=len.min(MAX_ANCHOR)),
            };
            let key = cut(&element, anchor_len + WINDOW);
            let at = if key.len() == anchor_len + WINDOW { rng.random_range(0..64) } else { 0 };
            let cursor = RunCursor::new(&key, anchor_len, at);
            let bits = cursor.encode();
            assert!(bits != 0 && bits < 1 << 63);
            assert_eq!(RunCursor::decode(bits), Some(cursor));
        }
    }

    #[test]
    fn key_cursors_hold_a_slot_and_a_position() {
        let position = key_position(b"some key");
        assert!(position > 0 && position < 1 << KEY_POSITION_BITS);
        let cursor = key_cursor(16383, position);
        assert!(cursor < 1 << 63);
        assert_eq!(split_key_cursor(cursor), (16383, position));
        // Any value names a slot.
        assert!(split_key_cursor(u64::MAX).0 < 16384);
    }

    #[test]
    fn a_scan_by_position_moves_past_colliding_positions() {
        // Four positions for 100 members: every call must take whole positions.
        let members: Vec<u32> = (0..100).collect();
        let position = |m: &&u32| u64::from(**m % 4) + 1;
        for batch in [1, 3, 30, 200] {
            let (mut cursor, mut seen) = (0, Vec::<&u32>::new());
            loop {
                let (taken, next) = next_by_position(members.iter(), position, cursor, batch);
                assert!(!taken.is_empty() && seen.len() < members.len(), "batch {batch}: no progress");
                seen.extend(taken);
                cursor = next;
                if cursor == 0 {
                    break;
                }
            }
            seen.sort();
            assert_eq!(seen, members.iter().collect::<Vec<_>>(), "batch {batch}");
        }
        // A cursor past every position ends at once.
        assert_eq!(next_by_position(members.iter(), position, 99, 10), (Vec::new(), 0));
    }
}
