//! SCAN-family cursors. RocksDB iterates in key order, but Redis clients
//! expect an integer cursor; like Kvrocks, Strata hands out a number and
//! remembers the key it stands for (the last one returned). The map is
//! bounded: a cursor that aged out restarts the iteration, which keeps
//! SCAN's guarantee (every key present throughout is returned) at the cost
//! of duplicates, which SCAN allows.

use std::collections::{HashMap, VecDeque};

use parking_lot::Mutex;

const MAX_CURSORS: usize = 16 * 1024;

#[derive(Default)]
struct Inner {
    next: u64,
    positions: HashMap<u64, Vec<u8>>,
    order: VecDeque<u64>,
}

/// Saved scan positions by cursor number.
#[derive(Default)]
pub struct Cursors {
    inner: Mutex<Inner>,
}

impl Cursors {
    /// Remembers `position` (an opaque resume key) and returns its cursor,
    /// never 0 (0 means "start" and "done").
    pub fn save(&self, position: Vec<u8>) -> u64 {
        let mut inner = self.inner.lock();
        inner.next += 1;
        let cursor = inner.next;
        inner.positions.insert(cursor, position);
        inner.order.push_back(cursor);
        while inner.order.len() > MAX_CURSORS {
            if let Some(old) = inner.order.pop_front() {
                inner.positions.remove(&old);
            }
        }
        cursor
    }

    /// The position behind a cursor; None for 0 or a forgotten cursor
    /// (both scan from the start).
    pub fn load(&self, cursor: u64) -> Option<Vec<u8>> {
        self.inner.lock().positions.get(&cursor).cloned()
    }
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
