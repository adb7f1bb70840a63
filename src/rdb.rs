//! Redis 7.0's DUMP / RESTORE payload format: the RDB encoding of one value,
//! followed by the 2-byte little-endian RDB version and an 8-byte
//! little-endian CRC64 of everything before it.
//!
//! The module is self-contained: it speaks a neutral value model
//! ([`RdbValue`]) so that the keyspace can convert to and from its own types
//! without this code knowing about them.
//!
//! `dump` writes the encodings Redis 7.0.15 writes with its default
//! configuration (listpack / intset thresholds, LZF compression of strings
//! longer than 20 bytes), so small values come out byte for byte identical to
//! Redis's DUMP. Redis picks an encoding from a value's history (a hash that
//! once held a long value stays a hash table), `dump` from its current shape;
//! RESTORE accepts either.
//!
//! `restore` reads every encoding Redis 7.0's RESTORE accepts: the ones 7.0
//! writes and the older ziplist / zipmap / plain / version-1 stream encodings
//! found in payloads dumped by earlier versions.
//!
//! Everything read from a payload is untrusted: counts are bounded by the
//! bytes left before anything is allocated, and malformed input gives
//! [`RdbError::BadData`] rather than a panic.

use bytes::Bytes;
use std::collections::{HashMap, HashSet};
use std::fmt;

/// The RDB version Redis 7.0 writes; RESTORE refuses payloads from newer ones.
pub const RDB_VERSION: u16 = 10;

/// A value as it travels in a DUMP payload.
#[derive(Debug, Clone, PartialEq)]
pub enum RdbValue {
    String(Bytes),
    List(Vec<Bytes>),
    /// Members in no particular order (Redis's own order is a hash table's).
    Set(Vec<Bytes>),
    /// Members in ascending (score, member) order, as ZRANGE lists them.
    ZSet(Vec<(f64, Bytes)>),
    Hash(Vec<(Bytes, Bytes)>),
    Stream(RdbStream),
}

/// A stream entry ID: milliseconds and sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct StreamId {
    pub ms: u64,
    pub seq: u64,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct RdbStream {
    /// Live entries in ascending ID order (deleted entries are not carried).
    pub entries: Vec<RdbStreamEntry>,
    pub last_id: StreamId,
    /// How many entries were ever added, including deleted ones.
    pub entries_added: u64,
    /// The greatest ID ever deleted (0-0 when none).
    pub max_deleted_id: StreamId,
    /// The first live entry's ID (0-0 when the stream is empty).
    pub first_id: StreamId,
    pub groups: Vec<RdbConsumerGroup>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RdbStreamEntry {
    pub id: StreamId,
    pub fields: Vec<(Bytes, Bytes)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RdbConsumerGroup {
    pub name: Bytes,
    pub last_id: StreamId,
    /// The group's logical read counter; `None` when Redis marks it invalid.
    pub entries_read: Option<u64>,
    /// Delivered but not yet acknowledged entries, in ascending ID order.
    pub pending: Vec<RdbPendingEntry>,
    pub consumers: Vec<RdbConsumer>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RdbPendingEntry {
    pub id: StreamId,
    pub delivery_time_ms: u64,
    pub delivery_count: u64,
    /// The consumer that owns the entry; it must be one of the group's
    /// consumers.
    pub consumer: Bytes,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RdbConsumer {
    pub name: Bytes,
    pub seen_time_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RdbError {
    /// The version is newer than ours or the checksum does not match.
    BadPayload,
    /// The payload's checksum is right but its content cannot be decoded.
    BadData,
}

impl fmt::Display for RdbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Redis's RESTORE error texts, so clients see the same replies.
        match self {
            RdbError::BadPayload => f.write_str("DUMP payload version or checksum are wrong"),
            RdbError::BadData => f.write_str("Bad data format"),
        }
    }
}

impl std::error::Error for RdbError {}

type Result<T> = std::result::Result<T, RdbError>;

// Object type bytes (rdb.h).
const TYPE_STRING: u8 = 0;
const TYPE_LIST: u8 = 1;
const TYPE_SET: u8 = 2;
const TYPE_ZSET: u8 = 3;
const TYPE_HASH: u8 = 4;
const TYPE_ZSET_2: u8 = 5;
const TYPE_HASH_ZIPMAP: u8 = 9;
const TYPE_LIST_ZIPLIST: u8 = 10;
const TYPE_SET_INTSET: u8 = 11;
const TYPE_ZSET_ZIPLIST: u8 = 12;
const TYPE_HASH_ZIPLIST: u8 = 13;
const TYPE_LIST_QUICKLIST: u8 = 14;
const TYPE_STREAM_LISTPACKS: u8 = 15;
const TYPE_HASH_LISTPACK: u8 = 16;
const TYPE_ZSET_LISTPACK: u8 = 17;
const TYPE_LIST_QUICKLIST_2: u8 = 18;
const TYPE_STREAM_LISTPACKS_2: u8 = 19;

// Redis 7.0's default thresholds for the compact encodings.
const SET_MAX_INTSET_ENTRIES: usize = 512;
const ZSET_MAX_LISTPACK_ENTRIES: usize = 128;
const ZSET_MAX_LISTPACK_VALUE: usize = 64;
const HASH_MAX_LISTPACK_ENTRIES: usize = 512;
const HASH_MAX_LISTPACK_VALUE: usize = 64;
/// list-max-listpack-size -2: a quicklist node holds up to 8 KiB.
const LIST_MAX_NODE_BYTES: usize = 8192;
/// quicklist.c's estimate of an element's listpack header and backlen
/// when it decides whether one more element fits in a node.
const LIST_ELEMENT_OVERHEAD: usize = 8;
const STREAM_NODE_MAX_BYTES: usize = 4096;
const STREAM_NODE_MAX_ENTRIES: usize = 100;

// Quicklist node containers (RDB_TYPE_LIST_QUICKLIST_2).
const QUICKLIST_NODE_PLAIN: u64 = 1;
const QUICKLIST_NODE_PACKED: u64 = 2;

// Stream entry flags inside a listpack.
const STREAM_ITEM_DELETED: i64 = 1;
const STREAM_ITEM_SAME_FIELDS: i64 = 2;

// ---------------------------------------------------------------------------
// Payload envelope
// ---------------------------------------------------------------------------

/// Serializes `value` as Redis's DUMP does, version and checksum included.
pub fn dump(value: &RdbValue) -> Vec<u8> {
    let mut out = Vec::new();
    match value {
        RdbValue::String(s) => {
            out.push(TYPE_STRING);
            write_string(&mut out, s);
        }
        RdbValue::List(items) => write_list(&mut out, items),
        RdbValue::Set(members) => write_set(&mut out, members),
        RdbValue::ZSet(members) => write_zset(&mut out, members),
        RdbValue::Hash(fields) => write_hash(&mut out, fields),
        RdbValue::Stream(stream) => write_stream(&mut out, stream),
    }
    out.extend_from_slice(&RDB_VERSION.to_le_bytes());
    let checksum = crc64(0, &out);
    out.extend_from_slice(&checksum.to_le_bytes());
    out
}

/// Decodes a DUMP payload as Redis's RESTORE does.
pub fn restore(payload: &[u8]) -> Result<RdbValue> {
    verify_footer(payload)?;
    let body = &payload[..payload.len() - 10];
    // Like Redis, bytes between the object and the footer are ignored: the
    // checksum covers them, and RESTORE in 7.0.15 accepts such payloads.
    read_object(&mut Reader::new(body))
}

/// verifyDumpPayload: the version must not be newer than ours and the CRC64
/// must match. A zero CRC gets no special treatment: RESTORE only skips the
/// check when `skip-checksum-validation` is configured.
fn verify_footer(payload: &[u8]) -> Result<()> {
    if payload.len() < 10 {
        return Err(RdbError::BadPayload);
    }
    let footer = &payload[payload.len() - 10..];
    let version = u16::from_le_bytes([footer[0], footer[1]]);
    if version > RDB_VERSION {
        return Err(RdbError::BadPayload);
    }
    let stored = u64::from_le_bytes(footer[2..].try_into().expect("8 bytes"));
    if crc64(0, &payload[..payload.len() - 8]) != stored {
        return Err(RdbError::BadPayload);
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// CRC64 (Jones polynomial, reflected, no final xor), as Redis's crc64.c
// ---------------------------------------------------------------------------

/// 0xad93d23594c935a9 with its bits reversed, for the reflected algorithm.
const CRC64_JONES_REFLECTED: u64 = 0x95ac_9329_ac4b_c9b5;

const CRC64_TABLE: [u64; 256] = {
    let mut table = [0u64; 256];
    let mut byte = 0;
    while byte < 256 {
        let mut crc = byte as u64;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ CRC64_JONES_REFLECTED } else { crc >> 1 };
            bit += 1;
        }
        table[byte] = crc;
        byte += 1;
    }
    table
};

pub fn crc64(mut crc: u64, data: &[u8]) -> u64 {
    for &byte in data {
        crc = CRC64_TABLE[((crc ^ byte as u64) & 0xff) as usize] ^ (crc >> 8);
    }
    crc
}

// ---------------------------------------------------------------------------
// LZF, as Redis's lzf_c.c / lzf_d.c (HLOG 16, VERY_FAST)
// ---------------------------------------------------------------------------

const LZF_HASH_LOG: u32 = 16;
const LZF_MAX_LITERAL: usize = 1 << 5;
const LZF_MAX_OFFSET: usize = 1 << 13;
const LZF_MAX_REFERENCE: usize = (1 << 8) + (1 << 3);

fn lzf_hash_slot(hash: u32) -> usize {
    (((hash >> (3 * 8 - LZF_HASH_LOG)).wrapping_sub(hash.wrapping_mul(5))) & ((1 << LZF_HASH_LOG) - 1)) as usize
}

/// Compresses `input` into at most `out_limit` bytes, or gives `None` when
/// it does not fit. The algorithm follows liblzf step by step (including
/// its quirks, such as matches that may run to the very end of the input
/// when fewer than 19 bytes are left) because Redis's choice to store a
/// string compressed depends on the exact output length, and DUMP payloads
/// are compared byte for byte.
fn lzf_compress(input: &[u8], out_limit: usize) -> Option<Vec<u8>> {
    let in_len = input.len();
    if in_len < 3 || out_limit == 0 {
        return None;
    }
    // Positions of the last occurrence of each 3-byte hash; 0 means none,
    // which loses nothing since a match at position 0 is never taken.
    let mut table = vec![0u32; 1 << LZF_HASH_LOG];
    // Slack past the limit: liblzf may step one byte beyond `out_end`
    // before noticing that the output is full.
    let mut out = vec![0u8; out_limit + 4];
    let out_end = out_limit;
    let mut ip = 0usize;
    let mut op = 1usize; // out[0] is reserved for the first literal run's length
    let mut lit = 0usize;
    let mut hash = (u32::from(input[0]) << 8) | u32::from(input[1]);

    while ip < in_len - 2 {
        hash = (hash << 8) | u32::from(input[ip + 2]);
        let slot = lzf_hash_slot(hash);
        let reference = table[slot] as usize;
        table[slot] = ip as u32;

        let is_match = reference > 0
            && reference < ip
            && ip - reference - 1 < LZF_MAX_OFFSET
            && input[reference..reference + 3] == input[ip..ip + 3];
        if is_match {
            let offset = ip - reference - 1;
            let mut len = 2usize;
            let max_len = (in_len - ip - len).min(LZF_MAX_REFERENCE);
            if op + 3 + 1 >= out_end && op - usize::from(lit == 0) + 3 + 1 >= out_end {
                return None;
            }
            out[op - lit - 1] = (lit as u8).wrapping_sub(1); // close the literal run
            op -= usize::from(lit == 0); // an empty run takes no byte
            let mut mismatch = false;
            if max_len > 16 {
                for _ in 0..16 {
                    len += 1;
                    if input[reference + len] != input[ip + len] {
                        mismatch = true;
                        break;
                    }
                }
            }
            if !mismatch {
                loop {
                    len += 1;
                    if !(len < max_len && input[reference + len] == input[ip + len]) {
                        break;
                    }
                }
            }
            len -= 2; // the encoded length is the match length minus 2
            ip += 1;
            if len < 7 {
                out[op] = ((offset >> 8) + (len << 5)) as u8;
                op += 1;
            } else {
                out[op] = ((offset >> 8) + (7 << 5)) as u8;
                out[op + 1] = (len - 7) as u8;
                op += 2;
            }
            out[op] = offset as u8;
            op += 2; // the offset byte, then room for the next run's length
            lit = 0;
            ip += len + 1;
            if ip >= in_len - 2 {
                break;
            }
            // Hash the last two positions of the match so later data can
            // refer into it.
            ip -= 2;
            hash = (u32::from(input[ip]) << 8) | u32::from(input[ip + 1]);
            for _ in 0..2 {
                hash = (hash << 8) | u32::from(input[ip + 2]);
                table[lzf_hash_slot(hash)] = ip as u32;
                ip += 1;
            }
        } else {
            if op >= out_end {
                return None;
            }
            out[op] = input[ip];
            op += 1;
            ip += 1;
            lit += 1;
            if lit == LZF_MAX_LITERAL {
                out[op - lit - 1] = (lit - 1) as u8;
                lit = 0;
                op += 1;
            }
        }
    }
    if op + 3 > out_end {
        return None;
    }
    while ip < in_len {
        out[op] = input[ip];
        op += 1;
        ip += 1;
        lit += 1;
        if lit == LZF_MAX_LITERAL {
            out[op - lit - 1] = (lit - 1) as u8;
            lit = 0;
            op += 1;
        }
    }
    out[op - lit - 1] = (lit as u8).wrapping_sub(1);
    op -= usize::from(lit == 0);
    out.truncate(op);
    Some(out)
}

/// Decompresses LZF data that must expand to exactly `expected_len` bytes.
/// The output grows with what the input actually produces, so a lying
/// length cannot make us allocate more than the data expands to.
fn lzf_decompress(input: &[u8], expected_len: usize) -> Result<Vec<u8>> {
    let mut out: Vec<u8> = Vec::with_capacity(expected_len.min(input.len().saturating_mul(4)));
    let mut ip = 0;
    while ip < input.len() {
        let control = input[ip] as usize;
        ip += 1;
        if control < LZF_MAX_LITERAL {
            let run = control + 1;
            let literal = input.get(ip..ip + run).ok_or(RdbError::BadData)?;
            if out.len() + run > expected_len {
                return Err(RdbError::BadData);
            }
            out.extend_from_slice(literal);
            ip += run;
        } else {
            let mut len = control >> 5;
            if len == 7 {
                len += *input.get(ip).ok_or(RdbError::BadData)? as usize;
                ip += 1;
            }
            len += 2;
            let low = *input.get(ip).ok_or(RdbError::BadData)? as usize;
            ip += 1;
            let distance = ((control & 0x1f) << 8) + low + 1;
            if distance > out.len() || out.len() + len > expected_len {
                return Err(RdbError::BadData);
            }
            // Byte by byte: the source may overlap what is being written.
            let start = out.len() - distance;
            for i in 0..len {
                out.push(out[start + i]);
            }
        }
    }
    if out.len() != expected_len {
        return Err(RdbError::BadData);
    }
    Ok(out)
}

// ---------------------------------------------------------------------------
// Integers in text form
// ---------------------------------------------------------------------------

/// Parses `text` when it is the canonical decimal form of an i64 (Redis's
/// string2ll: no sign on zero, no leading zeros, no spaces, no '+').
fn parse_canonical_i64(text: &[u8]) -> Option<i64> {
    let (negative, digits) = match text {
        [b'0'] => return Some(0),
        [b'-', rest @ ..] => (true, rest),
        _ => (false, text),
    };
    match digits.first() {
        Some(b'1'..=b'9') if digits.len() <= 19 => {}
        _ => return None,
    }
    let mut magnitude: u64 = 0;
    for &digit in digits {
        if !digit.is_ascii_digit() {
            return None;
        }
        magnitude = magnitude.checked_mul(10)?.checked_add(u64::from(digit - b'0'))?;
    }
    if negative {
        if magnitude > 1 << 63 {
            return None;
        }
        Some((magnitude as i64).wrapping_neg())
    } else {
        i64::try_from(magnitude).ok()
    }
}

fn i64_to_bytes(value: i64) -> Bytes {
    Bytes::from(value.to_string())
}

/// Redis's d2string: how a score is written into a listpack. Integral
/// values within ±2^62 print as integers, others as printf's "%.17g".
fn format_score(score: f64) -> String {
    if score.is_nan() {
        return "nan".into();
    }
    if score.is_infinite() {
        return if score < 0.0 { "-inf".into() } else { "inf".into() };
    }
    if score == 0.0 {
        return if score.is_sign_negative() { "-0".into() } else { "0".into() };
    }
    let integral_limit = (i64::MAX / 2) as f64;
    if (-integral_limit..=integral_limit).contains(&score) && score.trunc() == score {
        return (score as i64).to_string();
    }
    format_g17(score)
}

/// printf's "%.17g" for a finite, non-zero double.
fn format_g17(value: f64) -> String {
    const PRECISION: i32 = 17;
    // Rust's exponent form gives the 17 correctly rounded significant
    // digits; %g then picks fixed or exponent notation by the exponent.
    let scientific = format!("{:.*e}", (PRECISION - 1) as usize, value);
    let (mantissa, exponent) = scientific.split_once('e').expect("exponent form");
    let exponent: i32 = exponent.parse().expect("integer exponent");
    let negative = mantissa.starts_with('-');
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let mut text = String::new();
    if negative {
        text.push('-');
    }
    if (-4..PRECISION).contains(&exponent) {
        if exponent < 0 {
            text.push_str("0.");
            text.extend(std::iter::repeat_n('0', (-exponent - 1) as usize));
            text.push_str(digits.trim_end_matches('0'));
        } else {
            let (whole, fraction) = digits.split_at(exponent as usize + 1);
            text.push_str(whole);
            let fraction = fraction.trim_end_matches('0');
            if !fraction.is_empty() {
                text.push('.');
                text.push_str(fraction);
            }
        }
    } else {
        let (first, rest) = digits.split_at(1);
        text.push_str(first);
        let rest = rest.trim_end_matches('0');
        if !rest.is_empty() {
            text.push('.');
            text.push_str(rest);
        }
        text.push('e');
        text.push(if exponent < 0 { '-' } else { '+' });
        text.push_str(&format!("{:02}", exponent.abs()));
    }
    text
}

/// Parses a score the way strtod would accept it from a listpack or an
/// old-style RDB_TYPE_ZSET string.
fn parse_score(text: &[u8]) -> Result<f64> {
    let text = std::str::from_utf8(text).map_err(|_| RdbError::BadData)?;
    text.parse::<f64>().map_err(|_| RdbError::BadData)
}

// ---------------------------------------------------------------------------
// Writing RDB primitives
// ---------------------------------------------------------------------------

/// rdbSaveLen: 6-bit, 14-bit, 32-bit or 64-bit big-endian lengths.
fn write_length(out: &mut Vec<u8>, len: u64) {
    if len < 1 << 6 {
        out.push(len as u8);
    } else if len < 1 << 14 {
        out.push(0x40 | (len >> 8) as u8);
        out.push(len as u8);
    } else if len <= u64::from(u32::MAX) {
        out.push(0x80);
        out.extend_from_slice(&(len as u32).to_be_bytes());
    } else {
        out.push(0x81);
        out.extend_from_slice(&len.to_be_bytes());
    }
}

/// rdbSaveRawString: small canonical integers as 1/2/4-byte integers,
/// strings over 20 bytes LZF-compressed when that saves at least 4 bytes,
/// everything else verbatim.
fn write_string(out: &mut Vec<u8>, s: &[u8]) {
    if s.len() <= 11 {
        if let Some(value) = parse_canonical_i64(s) {
            if let Ok(small) = i8::try_from(value) {
                out.extend_from_slice(&[0xc0, small as u8]);
                return;
            }
            if let Ok(medium) = i16::try_from(value) {
                out.push(0xc1);
                out.extend_from_slice(&medium.to_le_bytes());
                return;
            }
            if let Ok(large) = i32::try_from(value) {
                out.push(0xc2);
                out.extend_from_slice(&large.to_le_bytes());
                return;
            }
        }
    }
    if s.len() > 20 {
        if let Some(compressed) = lzf_compress(s, s.len() - 4) {
            out.push(0xc3);
            write_length(out, compressed.len() as u64);
            write_length(out, s.len() as u64);
            out.extend_from_slice(&compressed);
            return;
        }
    }
    write_length(out, s.len() as u64);
    out.extend_from_slice(s);
}

fn write_binary_double(out: &mut Vec<u8>, value: f64) {
    out.extend_from_slice(&value.to_le_bytes());
}

fn write_stream_id_raw(out: &mut Vec<u8>, id: StreamId) {
    out.extend_from_slice(&id.ms.to_be_bytes());
    out.extend_from_slice(&id.seq.to_be_bytes());
}

// ---------------------------------------------------------------------------
// Listpack
// ---------------------------------------------------------------------------

/// Builds a listpack blob: 4-byte total size, 2-byte element count,
/// elements each followed by their own length (for backward walks), 0xFF.
#[derive(Default)]
struct ListpackBuilder {
    elements: Vec<u8>,
    count: usize,
}

const LISTPACK_HEADER_BYTES: usize = 6;
const LISTPACK_END: u8 = 0xff;
/// The element count field saturates here, meaning "count them".
const LISTPACK_UNKNOWN_COUNT: u16 = u16::MAX;

impl ListpackBuilder {
    /// Appends a string, stored as an integer when it is a canonical one,
    /// as lpAppend does.
    fn push_bytes(&mut self, s: &[u8]) {
        match parse_canonical_i64(s) {
            Some(value) => self.push_integer(value),
            None => self.push_string(s),
        }
    }

    fn push_string(&mut self, s: &[u8]) {
        let start = self.elements.len();
        let len = s.len();
        if len < 1 << 6 {
            self.elements.push(0x80 | len as u8);
        } else if len < 1 << 12 {
            self.elements.push(0xe0 | (len >> 8) as u8);
            self.elements.push(len as u8);
        } else {
            self.elements.push(0xf0);
            self.elements.extend_from_slice(&(len as u32).to_le_bytes());
        }
        self.elements.extend_from_slice(s);
        self.finish_element(start);
    }

    fn push_integer(&mut self, value: i64) {
        let start = self.elements.len();
        if (0..=127).contains(&value) {
            self.elements.push(value as u8);
        } else if (-4096..=4095).contains(&value) {
            let bits = (value as u64) & 0x1fff;
            self.elements.push(0xc0 | (bits >> 8) as u8);
            self.elements.push(bits as u8);
        } else if let Ok(v) = i16::try_from(value) {
            self.elements.push(0xf1);
            self.elements.extend_from_slice(&v.to_le_bytes());
        } else if (-(1 << 23)..(1 << 23)).contains(&value) {
            self.elements.push(0xf2);
            self.elements.extend_from_slice(&value.to_le_bytes()[..3]);
        } else if let Ok(v) = i32::try_from(value) {
            self.elements.push(0xf3);
            self.elements.extend_from_slice(&v.to_le_bytes());
        } else {
            self.elements.push(0xf4);
            self.elements.extend_from_slice(&value.to_le_bytes());
        }
        self.finish_element(start);
    }

    fn finish_element(&mut self, start: usize) {
        let element_len = self.elements.len() - start;
        self.elements.extend_from_slice(&listpack_backlen(element_len));
        self.count += 1;
    }

    /// The size of the finished blob.
    fn total_bytes(&self) -> usize {
        LISTPACK_HEADER_BYTES + self.elements.len() + 1
    }

    fn finish(self) -> Vec<u8> {
        let total = self.total_bytes();
        let mut blob = Vec::with_capacity(total);
        blob.extend_from_slice(&(total as u32).to_le_bytes());
        let count = u16::try_from(self.count).unwrap_or(LISTPACK_UNKNOWN_COUNT);
        blob.extend_from_slice(&count.to_le_bytes());
        blob.extend_from_slice(&self.elements);
        blob.push(LISTPACK_END);
        blob
    }
}

/// An element's length written after it, 7 bits a byte, most significant
/// first, every byte but the first flagged with 0x80.
fn listpack_backlen(len: usize) -> Vec<u8> {
    let mut groups = vec![(len & 0x7f) as u8];
    let mut rest = len >> 7;
    while rest > 0 {
        groups.push((rest & 0x7f) as u8);
        rest >>= 7;
    }
    groups.reverse();
    for byte in groups.iter_mut().skip(1) {
        *byte |= 0x80;
    }
    groups
}

/// One decoded listpack or ziplist element.
#[derive(Debug, Clone, PartialEq)]
enum PackedElement {
    Integer(i64),
    Bytes(Bytes),
}

impl PackedElement {
    fn into_bytes(self) -> Bytes {
        match self {
            PackedElement::Integer(value) => i64_to_bytes(value),
            PackedElement::Bytes(bytes) => bytes,
        }
    }

    fn integer(&self) -> Result<i64> {
        match self {
            PackedElement::Integer(value) => Ok(*value),
            PackedElement::Bytes(text) => parse_canonical_i64(text).ok_or(RdbError::BadData),
        }
    }
}

fn parse_listpack(blob: &[u8]) -> Result<Vec<PackedElement>> {
    if blob.len() < LISTPACK_HEADER_BYTES + 1 {
        return Err(RdbError::BadData);
    }
    let total = u32::from_le_bytes(blob[0..4].try_into().expect("4 bytes")) as usize;
    let declared_count = u16::from_le_bytes([blob[4], blob[5]]);
    if total != blob.len() || blob[total - 1] != LISTPACK_END {
        return Err(RdbError::BadData);
    }
    let mut reader = Reader::new(&blob[LISTPACK_HEADER_BYTES..total - 1]);
    let mut elements = Vec::new();
    while reader.remaining() > 0 {
        let start = reader.position;
        let element = read_listpack_element(&mut reader)?;
        let backlen = listpack_backlen(reader.position - start);
        if reader.take(backlen.len())? != backlen.as_slice() {
            return Err(RdbError::BadData);
        }
        elements.push(element);
    }
    if declared_count != LISTPACK_UNKNOWN_COUNT && usize::from(declared_count) != elements.len() {
        return Err(RdbError::BadData);
    }
    Ok(elements)
}

fn read_listpack_element(reader: &mut Reader<'_>) -> Result<PackedElement> {
    let first = reader.byte()?;
    let element = match first {
        0x00..=0x7f => PackedElement::Integer(i64::from(first)),
        0x80..=0xbf => PackedElement::Bytes(reader.bytes(usize::from(first & 0x3f))?),
        0xc0..=0xdf => {
            let bits = (u64::from(first & 0x1f) << 8) | u64::from(reader.byte()?);
            PackedElement::Integer(sign_extend(bits, 13))
        }
        0xe0..=0xef => {
            let len = (usize::from(first & 0x0f) << 8) | usize::from(reader.byte()?);
            PackedElement::Bytes(reader.bytes(len)?)
        }
        0xf0 => {
            let len = u32::from_le_bytes(reader.array()?) as usize;
            PackedElement::Bytes(reader.bytes(len)?)
        }
        0xf1 => PackedElement::Integer(i64::from(i16::from_le_bytes(reader.array()?))),
        0xf2 => {
            let [a, b, c] = reader.array()?;
            PackedElement::Integer(sign_extend(u64::from(u32::from_le_bytes([a, b, c, 0])), 24))
        }
        0xf3 => PackedElement::Integer(i64::from(i32::from_le_bytes(reader.array()?))),
        0xf4 => PackedElement::Integer(i64::from_le_bytes(reader.array()?)),
        _ => return Err(RdbError::BadData),
    };
    Ok(element)
}

fn sign_extend(bits: u64, width: u32) -> i64 {
    let shift = 64 - width;
    ((bits << shift) as i64) >> shift
}

// ---------------------------------------------------------------------------
// Ziplist, zipmap and intset (read only: Redis 7.0 no longer writes the
// first two, and intsets are written by `write_intset`)
// ---------------------------------------------------------------------------

const ZIPLIST_HEADER_BYTES: usize = 10;
const ZIPLIST_END: u8 = 0xff;

fn parse_ziplist(blob: &[u8]) -> Result<Vec<PackedElement>> {
    if blob.len() < ZIPLIST_HEADER_BYTES + 1 {
        return Err(RdbError::BadData);
    }
    let total = u32::from_le_bytes(blob[0..4].try_into().expect("4 bytes")) as usize;
    let tail_offset = u32::from_le_bytes(blob[4..8].try_into().expect("4 bytes")) as usize;
    let declared_count = u16::from_le_bytes([blob[8], blob[9]]);
    if total != blob.len() || blob[total - 1] != ZIPLIST_END {
        return Err(RdbError::BadData);
    }
    let mut reader = Reader::new(&blob[..total - 1]);
    reader.position = ZIPLIST_HEADER_BYTES;
    let mut elements = Vec::new();
    let mut previous_len = 0usize;
    let mut last_start = ZIPLIST_HEADER_BYTES;
    while reader.remaining() > 0 {
        let start = reader.position;
        let first = reader.byte()?;
        let prevlen = if first < 0xfe {
            usize::from(first)
        } else if first == 0xfe {
            u32::from_le_bytes(reader.array()?) as usize
        } else {
            return Err(RdbError::BadData);
        };
        if prevlen != previous_len {
            return Err(RdbError::BadData);
        }
        elements.push(read_ziplist_payload(&mut reader)?);
        previous_len = reader.position - start;
        last_start = start;
    }
    if tail_offset != last_start {
        return Err(RdbError::BadData);
    }
    if declared_count != u16::MAX && usize::from(declared_count) != elements.len() {
        return Err(RdbError::BadData);
    }
    Ok(elements)
}

fn read_ziplist_payload(reader: &mut Reader<'_>) -> Result<PackedElement> {
    let encoding = reader.byte()?;
    let element = match encoding >> 6 {
        0 => PackedElement::Bytes(reader.bytes(usize::from(encoding & 0x3f))?),
        1 => {
            let len = (usize::from(encoding & 0x3f) << 8) | usize::from(reader.byte()?);
            PackedElement::Bytes(reader.bytes(len)?)
        }
        2 if encoding == 0x80 => {
            let len = u32::from_be_bytes(reader.array()?) as usize;
            PackedElement::Bytes(reader.bytes(len)?)
        }
        2 => return Err(RdbError::BadData),
        _ => match encoding {
            0xc0 => PackedElement::Integer(i64::from(i16::from_le_bytes(reader.array()?))),
            0xd0 => PackedElement::Integer(i64::from(i32::from_le_bytes(reader.array()?))),
            0xe0 => PackedElement::Integer(i64::from_le_bytes(reader.array()?)),
            0xf0 => {
                let [a, b, c] = reader.array()?;
                PackedElement::Integer(sign_extend(u64::from(u32::from_le_bytes([a, b, c, 0])), 24))
            }
            0xfe => PackedElement::Integer(i64::from(reader.byte()? as i8)),
            // 4-bit immediates 0001..1101 stand for 0..12.
            0xf1..=0xfd => PackedElement::Integer(i64::from(encoding & 0x0f) - 1),
            _ => return Err(RdbError::BadData),
        },
    };
    Ok(element)
}

/// Zipmap, the pre-2.6 small-hash encoding: a count byte, then per pair a
/// key length, key, value length, a count of free bytes, value, free bytes.
fn parse_zipmap(blob: &[u8]) -> Result<Vec<(Bytes, Bytes)>> {
    let mut reader = Reader::new(blob);
    reader.byte()?; // a count hint, saturated at 254: the pairs are counted instead
    let mut pairs = Vec::new();
    while let Some(key_len) = read_zipmap_length(&mut reader)? {
        let key = reader.bytes(key_len)?;
        let value_len = read_zipmap_length(&mut reader)?.ok_or(RdbError::BadData)?;
        let free = usize::from(reader.byte()?);
        let value = reader.bytes(value_len)?;
        reader.take(free)?;
        pairs.push((key, value));
    }
    if reader.remaining() != 0 {
        return Err(RdbError::BadData);
    }
    Ok(pairs)
}

/// A zipmap length, or `None` at the end marker.
fn read_zipmap_length(reader: &mut Reader<'_>) -> Result<Option<usize>> {
    match reader.byte()? {
        0xff => Ok(None),
        0xfe => Ok(Some(u32::from_le_bytes(reader.array()?) as usize)),
        len => Ok(Some(usize::from(len))),
    }
}

/// Intset: 4-byte element width (2, 4 or 8), 4-byte count, then the
/// members sorted ascending, all little-endian.
fn parse_intset(blob: &[u8]) -> Result<Vec<i64>> {
    let mut reader = Reader::new(blob);
    let width = u32::from_le_bytes(reader.array()?) as usize;
    let count = u32::from_le_bytes(reader.array()?) as usize;
    if !matches!(width, 2 | 4 | 8) || count.checked_mul(width) != Some(reader.remaining()) {
        return Err(RdbError::BadData);
    }
    let mut members = Vec::with_capacity(count);
    for _ in 0..count {
        let raw = reader.take(width)?;
        let member = match width {
            2 => i64::from(i16::from_le_bytes(raw.try_into().expect("2 bytes"))),
            4 => i64::from(i32::from_le_bytes(raw.try_into().expect("4 bytes"))),
            _ => i64::from_le_bytes(raw.try_into().expect("8 bytes")),
        };
        // Every intset is strictly ascending; anything else would load as a
        // set with duplicates or lookups that miss.
        if members.last().is_some_and(|&previous| previous >= member) {
            return Err(RdbError::BadData);
        }
        members.push(member);
    }
    Ok(members)
}

fn build_intset(members: &[i64]) -> Vec<u8> {
    let mut sorted = members.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let width: usize = if sorted.iter().all(|&m| i16::try_from(m).is_ok()) {
        2
    } else if sorted.iter().all(|&m| i32::try_from(m).is_ok()) {
        4
    } else {
        8
    };
    let mut blob = Vec::with_capacity(8 + sorted.len() * width);
    blob.extend_from_slice(&(width as u32).to_le_bytes());
    blob.extend_from_slice(&(sorted.len() as u32).to_le_bytes());
    for member in sorted {
        blob.extend_from_slice(&member.to_le_bytes()[..width]);
    }
    blob
}

// ---------------------------------------------------------------------------
// Writing values
// ---------------------------------------------------------------------------

/// A quicklist of listpack nodes, split where Redis would start a new node
/// with list-max-listpack-size -2 (8 KiB per node).
fn write_list(out: &mut Vec<u8>, items: &[Bytes]) {
    out.push(TYPE_LIST_QUICKLIST_2);
    let mut nodes: Vec<ListpackBuilder> = Vec::new();
    for item in items {
        let needs_new_node = match nodes.last() {
            None => true,
            Some(node) => node.total_bytes() + item.len() + LIST_ELEMENT_OVERHEAD > LIST_MAX_NODE_BYTES,
        };
        if needs_new_node {
            nodes.push(ListpackBuilder::default());
        }
        nodes.last_mut().expect("a node was just ensured").push_bytes(item);
    }
    write_length(out, nodes.len() as u64);
    for node in nodes {
        write_length(out, QUICKLIST_NODE_PACKED);
        write_string(out, &node.finish());
    }
}

fn write_set(out: &mut Vec<u8>, members: &[Bytes]) {
    if members.len() <= SET_MAX_INTSET_ENTRIES {
        let integers: Option<Vec<i64>> = members.iter().map(|m| parse_canonical_i64(m)).collect();
        if let Some(integers) = integers {
            out.push(TYPE_SET_INTSET);
            write_string(out, &build_intset(&integers));
            return;
        }
    }
    out.push(TYPE_SET);
    write_length(out, members.len() as u64);
    for member in members {
        write_string(out, member);
    }
}

fn write_zset(out: &mut Vec<u8>, members: &[(f64, Bytes)]) {
    let fits_listpack = members.len() <= ZSET_MAX_LISTPACK_ENTRIES
        && members.iter().all(|(_, member)| member.len() <= ZSET_MAX_LISTPACK_VALUE);
    if fits_listpack {
        out.push(TYPE_ZSET_LISTPACK);
        let mut listpack = ListpackBuilder::default();
        for (score, member) in members {
            listpack.push_bytes(member);
            listpack.push_bytes(format_score(*score).as_bytes());
        }
        write_string(out, &listpack.finish());
    } else {
        out.push(TYPE_ZSET_2);
        write_length(out, members.len() as u64);
        // Redis writes the skiplist from the greatest element down, so that
        // loading inserts each element at the head in O(1).
        for (score, member) in members.iter().rev() {
            write_string(out, member);
            write_binary_double(out, *score);
        }
    }
}

fn write_hash(out: &mut Vec<u8>, fields: &[(Bytes, Bytes)]) {
    let fits_listpack = fields.len() <= HASH_MAX_LISTPACK_ENTRIES
        && fields
            .iter()
            .all(|(field, value)| field.len() <= HASH_MAX_LISTPACK_VALUE && value.len() <= HASH_MAX_LISTPACK_VALUE);
    if fits_listpack {
        out.push(TYPE_HASH_LISTPACK);
        let mut listpack = ListpackBuilder::default();
        for (field, value) in fields {
            listpack.push_bytes(field);
            listpack.push_bytes(value);
        }
        write_string(out, &listpack.finish());
    } else {
        out.push(TYPE_HASH);
        write_length(out, fields.len() as u64);
        for (field, value) in fields {
            write_string(out, field);
            write_string(out, value);
        }
    }
}

/// One stream listpack ("macro node") being filled, as streamAppendItem
/// fills it: a master entry holding the first entry's field names, then
/// every entry delta-encoded against the master ID.
struct StreamNode<'a> {
    master_id: StreamId,
    master_fields: Vec<&'a [u8]>,
    entries: ListpackBuilder,
    entry_count: usize,
}

impl<'a> StreamNode<'a> {
    fn new(first: &'a RdbStreamEntry) -> Self {
        StreamNode {
            master_id: first.id,
            master_fields: first.fields.iter().map(|(field, _)| field.as_ref()).collect(),
            entries: ListpackBuilder::default(),
            entry_count: 0,
        }
    }

    fn master_entry(&self) -> ListpackBuilder {
        let mut master = ListpackBuilder::default();
        master.push_integer(self.entry_count as i64);
        master.push_integer(0); // deleted entries: we carry none
        master.push_integer(self.master_fields.len() as i64);
        for field in &self.master_fields {
            master.push_bytes(field);
        }
        master.push_integer(0); // the master entry's terminator
        master
    }

    fn total_bytes(&self) -> usize {
        self.master_entry().total_bytes() + self.entries.elements.len()
    }

    fn push(&mut self, entry: &RdbStreamEntry) {
        let same_fields = entry.fields.len() == self.master_fields.len()
            && entry.fields.iter().zip(&self.master_fields).all(|((field, _), master)| field.as_ref() == *master);
        let flags = if same_fields { STREAM_ITEM_SAME_FIELDS } else { 0 };
        self.entries.push_integer(flags);
        self.entries.push_integer(entry.id.ms.wrapping_sub(self.master_id.ms) as i64);
        self.entries.push_integer(entry.id.seq.wrapping_sub(self.master_id.seq) as i64);
        if same_fields {
            for (_, value) in &entry.fields {
                self.entries.push_bytes(value);
            }
        } else {
            self.entries.push_integer(entry.fields.len() as i64);
            for (field, value) in &entry.fields {
                self.entries.push_bytes(field);
                self.entries.push_bytes(value);
            }
        }
        // The element count of this entry, so it can be walked backwards.
        let fixed_elements = 3;
        let element_count =
            if same_fields { fixed_elements + entry.fields.len() } else { fixed_elements + 1 + 2 * entry.fields.len() };
        self.entries.push_integer(element_count as i64);
        self.entry_count += 1;
    }

    fn finish(self) -> Vec<u8> {
        let mut listpack = self.master_entry();
        listpack.elements.extend_from_slice(&self.entries.elements);
        listpack.count += self.entries.count;
        listpack.finish()
    }
}

fn split_stream_nodes(entries: &[RdbStreamEntry]) -> Vec<StreamNode<'_>> {
    let mut nodes: Vec<StreamNode<'_>> = Vec::new();
    for entry in entries {
        let payload_bytes: usize = entry.fields.iter().map(|(field, value)| field.len() + value.len()).sum();
        let needs_new_node = match nodes.last() {
            None => true,
            Some(node) => {
                node.total_bytes() + payload_bytes >= STREAM_NODE_MAX_BYTES
                    || node.entry_count >= STREAM_NODE_MAX_ENTRIES
            }
        };
        if needs_new_node {
            nodes.push(StreamNode::new(entry));
        }
        nodes.last_mut().expect("a node was just ensured").push(entry);
    }
    nodes
}

fn write_stream(out: &mut Vec<u8>, stream: &RdbStream) {
    out.push(TYPE_STREAM_LISTPACKS_2);
    let nodes = split_stream_nodes(&stream.entries);
    write_length(out, nodes.len() as u64);
    for node in nodes {
        let mut key = Vec::with_capacity(16);
        write_stream_id_raw(&mut key, node.master_id);
        write_string(out, &key);
        write_string(out, &node.finish());
    }
    write_length(out, stream.entries.len() as u64);
    for id in [stream.last_id, stream.first_id, stream.max_deleted_id] {
        write_length(out, id.ms);
        write_length(out, id.seq);
    }
    write_length(out, stream.entries_added);

    // Redis keeps groups, consumers and PELs in radix trees, so they come
    // out sorted by name or ID.
    let mut groups: Vec<&RdbConsumerGroup> = stream.groups.iter().collect();
    groups.sort_by(|a, b| a.name.cmp(&b.name));
    write_length(out, groups.len() as u64);
    for group in groups {
        write_string(out, &group.name);
        write_length(out, group.last_id.ms);
        write_length(out, group.last_id.seq);
        // Redis stores an unknown counter as -1 through an unsigned length.
        write_length(out, group.entries_read.unwrap_or(u64::MAX));

        let mut pending: Vec<&RdbPendingEntry> = group.pending.iter().collect();
        pending.sort_by_key(|entry| entry.id);
        write_length(out, pending.len() as u64);
        for entry in &pending {
            write_stream_id_raw(out, entry.id);
            out.extend_from_slice(&entry.delivery_time_ms.to_le_bytes());
            write_length(out, entry.delivery_count);
        }

        let mut consumers: Vec<&RdbConsumer> = group.consumers.iter().collect();
        consumers.sort_by(|a, b| a.name.cmp(&b.name));
        write_length(out, consumers.len() as u64);
        for consumer in consumers {
            write_string(out, &consumer.name);
            out.extend_from_slice(&consumer.seen_time_ms.to_le_bytes());
            let owned: Vec<&&RdbPendingEntry> =
                pending.iter().filter(|entry| entry.consumer == consumer.name).collect();
            write_length(out, owned.len() as u64);
            for entry in owned {
                write_stream_id_raw(out, entry.id);
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Reading
// ---------------------------------------------------------------------------

struct Reader<'a> {
    input: &'a [u8],
    position: usize,
}

/// What follows a length byte: a plain length or a special string encoding.
enum LengthOrEncoding {
    Length(u64),
    Encoding(u8),
}

impl<'a> Reader<'a> {
    fn new(input: &'a [u8]) -> Self {
        Reader { input, position: 0 }
    }

    fn remaining(&self) -> usize {
        self.input.len() - self.position
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8]> {
        if len > self.remaining() {
            return Err(RdbError::BadData);
        }
        let slice = &self.input[self.position..self.position + len];
        self.position += len;
        Ok(slice)
    }

    fn bytes(&mut self, len: usize) -> Result<Bytes> {
        Ok(Bytes::copy_from_slice(self.take(len)?))
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        Ok(self.take(N)?.try_into().expect("exact length"))
    }

    fn byte(&mut self) -> Result<u8> {
        Ok(self.array::<1>()?[0])
    }

    fn length_or_encoding(&mut self) -> Result<LengthOrEncoding> {
        let first = self.byte()?;
        let length = match first >> 6 {
            0 => u64::from(first & 0x3f),
            1 => (u64::from(first & 0x3f) << 8) | u64::from(self.byte()?),
            2 if first == 0x80 => u64::from(u32::from_be_bytes(self.array()?)),
            2 if first == 0x81 => u64::from_be_bytes(self.array()?),
            2 => return Err(RdbError::BadData),
            _ => return Ok(LengthOrEncoding::Encoding(first & 0x3f)),
        };
        Ok(LengthOrEncoding::Length(length))
    }

    fn length(&mut self) -> Result<u64> {
        match self.length_or_encoding()? {
            LengthOrEncoding::Length(len) => Ok(len),
            LengthOrEncoding::Encoding(_) => Err(RdbError::BadData),
        }
    }

    /// A count of things that each take at least one byte: anything larger
    /// than the bytes left is a lie, refused before allocating for it.
    fn count(&mut self) -> Result<usize> {
        let count = self.length()?;
        if count > self.remaining() as u64 {
            return Err(RdbError::BadData);
        }
        Ok(count as usize)
    }

    fn string(&mut self) -> Result<Bytes> {
        match self.length_or_encoding()? {
            LengthOrEncoding::Length(len) => {
                let len = usize::try_from(len).map_err(|_| RdbError::BadData)?;
                self.bytes(len)
            }
            LengthOrEncoding::Encoding(0) => Ok(i64_to_bytes(i64::from(self.byte()? as i8))),
            LengthOrEncoding::Encoding(1) => Ok(i64_to_bytes(i64::from(i16::from_le_bytes(self.array()?)))),
            LengthOrEncoding::Encoding(2) => Ok(i64_to_bytes(i64::from(i32::from_le_bytes(self.array()?)))),
            LengthOrEncoding::Encoding(3) => {
                let compressed_len = usize::try_from(self.length()?).map_err(|_| RdbError::BadData)?;
                let original_len = usize::try_from(self.length()?).map_err(|_| RdbError::BadData)?;
                let compressed = self.take(compressed_len)?;
                // Redis refuses an empty original: LZF never yields one.
                if original_len == 0 {
                    return Err(RdbError::BadData);
                }
                Ok(Bytes::from(lzf_decompress(compressed, original_len)?))
            }
            LengthOrEncoding::Encoding(_) => Err(RdbError::BadData),
        }
    }

    fn millis(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    fn binary_double(&mut self) -> Result<f64> {
        Ok(f64::from_le_bytes(self.array()?))
    }

    /// RDB_TYPE_ZSET's scores: a length byte with three special values,
    /// then the score as text.
    fn text_double(&mut self) -> Result<f64> {
        match self.byte()? {
            253 => Ok(f64::NAN),
            254 => Ok(f64::INFINITY),
            255 => Ok(f64::NEG_INFINITY),
            len => parse_score(self.take(usize::from(len))?),
        }
    }

    fn raw_stream_id(&mut self) -> Result<StreamId> {
        Ok(StreamId { ms: u64::from_be_bytes(self.array()?), seq: u64::from_be_bytes(self.array()?) })
    }

    fn length_stream_id(&mut self) -> Result<StreamId> {
        Ok(StreamId { ms: self.length()?, seq: self.length()? })
    }
}

fn read_object(reader: &mut Reader<'_>) -> Result<RdbValue> {
    let value = match reader.byte()? {
        TYPE_STRING => RdbValue::String(reader.string()?),
        TYPE_LIST => {
            let count = reader.count()?;
            let items = (0..count).map(|_| reader.string()).collect::<Result<Vec<_>>>()?;
            RdbValue::List(items)
        }
        TYPE_LIST_ZIPLIST => RdbValue::List(into_bytes(parse_ziplist(&reader.string()?)?)),
        TYPE_LIST_QUICKLIST => {
            let node_count = reader.count()?;
            let mut items = Vec::new();
            for _ in 0..node_count {
                items.extend(into_bytes(parse_ziplist(&reader.string()?)?));
            }
            RdbValue::List(items)
        }
        TYPE_LIST_QUICKLIST_2 => RdbValue::List(read_quicklist_2(reader)?),
        TYPE_SET => {
            let count = reader.count()?;
            let members = (0..count).map(|_| reader.string()).collect::<Result<Vec<_>>>()?;
            RdbValue::Set(members)
        }
        TYPE_SET_INTSET => {
            let members = parse_intset(&reader.string()?)?;
            RdbValue::Set(members.into_iter().map(i64_to_bytes).collect())
        }
        TYPE_ZSET => RdbValue::ZSet(read_skiplist_zset(reader, Reader::text_double)?),
        TYPE_ZSET_2 => RdbValue::ZSet(read_skiplist_zset(reader, Reader::binary_double)?),
        TYPE_ZSET_ZIPLIST => RdbValue::ZSet(in_zset_order(scored_pairs(parse_ziplist(&reader.string()?)?)?)),
        TYPE_ZSET_LISTPACK => RdbValue::ZSet(in_zset_order(scored_pairs(parse_listpack(&reader.string()?)?)?)),
        TYPE_HASH => {
            let count = reader.count()?;
            let mut fields = Vec::with_capacity(count);
            for _ in 0..count {
                fields.push((reader.string()?, reader.string()?));
            }
            RdbValue::Hash(fields)
        }
        TYPE_HASH_ZIPMAP => RdbValue::Hash(parse_zipmap(&reader.string()?)?),
        TYPE_HASH_ZIPLIST => RdbValue::Hash(pairs(parse_ziplist(&reader.string()?)?)?),
        TYPE_HASH_LISTPACK => RdbValue::Hash(pairs(parse_listpack(&reader.string()?)?)?),
        TYPE_STREAM_LISTPACKS => RdbValue::Stream(read_stream(reader, false)?),
        TYPE_STREAM_LISTPACKS_2 => RdbValue::Stream(read_stream(reader, true)?),
        _ => return Err(RdbError::BadData),
    };
    check_loadable(&value)?;
    Ok(value)
}

/// What Redis refuses after decoding: empty collections (it never keeps
/// one, so RESTORE reports "Bad data format") and duplicate members or
/// fields, which would break the structures they are loaded into.
fn check_loadable(value: &RdbValue) -> Result<()> {
    fn unique<'a>(mut keys: impl ExactSizeIterator<Item = &'a Bytes>) -> Result<()> {
        if keys.len() == 0 {
            return Err(RdbError::BadData);
        }
        let mut seen = HashSet::with_capacity(keys.len());
        if keys.all(|key| seen.insert(key)) {
            Ok(())
        } else {
            Err(RdbError::BadData)
        }
    }
    match value {
        RdbValue::String(_) | RdbValue::Stream(_) => Ok(()),
        RdbValue::List(items) if items.is_empty() => Err(RdbError::BadData),
        RdbValue::List(_) => Ok(()),
        RdbValue::Set(members) => unique(members.iter()),
        RdbValue::ZSet(members) => unique(members.iter().map(|(_, member)| member)),
        RdbValue::Hash(fields) => unique(fields.iter().map(|(field, _)| field)),
    }
}

fn into_bytes(elements: Vec<PackedElement>) -> Vec<Bytes> {
    elements.into_iter().map(PackedElement::into_bytes).collect()
}

fn pairs(elements: Vec<PackedElement>) -> Result<Vec<(Bytes, Bytes)>> {
    if !elements.len().is_multiple_of(2) {
        return Err(RdbError::BadData);
    }
    let mut elements = elements.into_iter().map(PackedElement::into_bytes);
    let mut pairs = Vec::new();
    while let (Some(first), Some(second)) = (elements.next(), elements.next()) {
        pairs.push((first, second));
    }
    Ok(pairs)
}

/// The skiplist encodings: a count, then member and score pairs (Redis
/// writes them from the greatest down).
fn read_skiplist_zset<'a>(
    reader: &mut Reader<'a>,
    read_score: fn(&mut Reader<'a>) -> Result<f64>,
) -> Result<Vec<(f64, Bytes)>> {
    let count = reader.count()?;
    let mut members = Vec::with_capacity(count);
    for _ in 0..count {
        let member = reader.string()?;
        let score = read_score(reader)?;
        if score.is_nan() {
            return Err(RdbError::BadData);
        }
        members.push((score, member));
    }
    Ok(in_zset_order(members))
}

/// Ascending by score, then by member bytes, as Redis orders a sorted set
/// (so -0 and 0 tie). Scores are never NaN here.
fn in_zset_order(mut members: Vec<(f64, Bytes)>) -> Vec<(f64, Bytes)> {
    members.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap_or(std::cmp::Ordering::Equal).then_with(|| a.1.cmp(&b.1)));
    members
}

fn scored_pairs(elements: Vec<PackedElement>) -> Result<Vec<(f64, Bytes)>> {
    pairs(elements)?
        .into_iter()
        .map(|(member, score)| {
            let score = parse_score(&score)?;
            if score.is_nan() {
                return Err(RdbError::BadData);
            }
            Ok((score, member))
        })
        .collect()
}

fn read_quicklist_2(reader: &mut Reader<'_>) -> Result<Vec<Bytes>> {
    let node_count = reader.count()?;
    let mut items = Vec::new();
    for _ in 0..node_count {
        match reader.length()? {
            // A single element too large for a listpack, stored as is.
            QUICKLIST_NODE_PLAIN => items.push(reader.string()?),
            QUICKLIST_NODE_PACKED => items.extend(into_bytes(parse_listpack(&reader.string()?)?)),
            _ => return Err(RdbError::BadData),
        }
    }
    Ok(items)
}

fn read_stream(reader: &mut Reader<'_>, version_2: bool) -> Result<RdbStream> {
    let node_count = reader.count()?;
    let mut entries: Vec<RdbStreamEntry> = Vec::new();
    for _ in 0..node_count {
        // The node's key is its master entry ID, 128 bits big-endian.
        let key = reader.string()?;
        if key.len() != 16 {
            return Err(RdbError::BadData);
        }
        let master_id = Reader::new(&key).raw_stream_id()?;
        let elements = parse_listpack(&reader.string()?)?;
        if elements.is_empty() {
            return Err(RdbError::BadData);
        }
        read_stream_node(master_id, elements, &mut entries)?;
    }
    if entries.windows(2).any(|pair| pair[0].id >= pair[1].id) {
        return Err(RdbError::BadData);
    }

    let length = reader.length()?;
    if length != entries.len() as u64 {
        return Err(RdbError::BadData);
    }
    let last_id = reader.length_stream_id()?;
    let (first_id, max_deleted_id, entries_added) = if version_2 {
        (reader.length_stream_id()?, reader.length_stream_id()?, reader.length()?)
    } else {
        // Redis 7.0 loading a 6.x stream: it assumes nothing was deleted
        // and takes the first ID from the entries.
        (entries.first().map(|entry| entry.id).unwrap_or_default(), StreamId::default(), length)
    };
    let mut stream = RdbStream { entries, last_id, entries_added, max_deleted_id, first_id, groups: Vec::new() };

    let group_count = reader.count()?;
    for _ in 0..group_count {
        let group = read_consumer_group(reader, &stream, version_2)?;
        stream.groups.push(group);
    }
    Ok(stream)
}

/// Decodes one stream listpack: the master entry, then entries of
/// flags, ID deltas, fields (or only values when they share the master's
/// field names) and a trailing element count.
fn read_stream_node(
    master_id: StreamId,
    elements: Vec<PackedElement>,
    entries: &mut Vec<RdbStreamEntry>,
) -> Result<()> {
    let mut elements = elements.into_iter();
    let mut next = || elements.next().ok_or(RdbError::BadData);
    let live_count = next()?.integer()?;
    let deleted_count = next()?.integer()?;
    let master_field_count = usize::try_from(next()?.integer()?).map_err(|_| RdbError::BadData)?;
    let mut master_fields = Vec::new();
    for _ in 0..master_field_count {
        master_fields.push(next()?.into_bytes());
    }
    if next()?.integer()? != 0 {
        return Err(RdbError::BadData);
    }

    let (mut live_seen, mut deleted_seen) = (0i64, 0i64);
    while live_seen + deleted_seen < live_count.saturating_add(deleted_count) {
        let flags = next()?.integer()?;
        let id = StreamId {
            ms: master_id.ms.wrapping_add(next()?.integer()? as u64),
            seq: master_id.seq.wrapping_add(next()?.integer()? as u64),
        };
        let mut fields = Vec::new();
        if flags & STREAM_ITEM_SAME_FIELDS != 0 {
            for field in &master_fields {
                fields.push((field.clone(), next()?.into_bytes()));
            }
        } else {
            let field_count = usize::try_from(next()?.integer()?).map_err(|_| RdbError::BadData)?;
            for _ in 0..field_count {
                fields.push((next()?.into_bytes(), next()?.into_bytes()));
            }
        }
        next()?.integer()?; // the element count, only needed to walk backwards
        if flags & STREAM_ITEM_DELETED != 0 {
            deleted_seen += 1;
        } else {
            live_seen += 1;
            entries.push(RdbStreamEntry { id, fields });
        }
    }
    if live_seen != live_count || deleted_seen != deleted_count || next().is_ok() {
        return Err(RdbError::BadData);
    }
    Ok(())
}

fn read_consumer_group(reader: &mut Reader<'_>, stream: &RdbStream, version_2: bool) -> Result<RdbConsumerGroup> {
    let name = reader.string()?;
    let last_id = reader.length_stream_id()?;
    let entries_read = if version_2 {
        Some(reader.length()?).filter(|&count| count != u64::MAX)
    } else {
        estimate_entries_read(stream, last_id)
    };

    let pending_count = reader.count()?;
    let mut pending: Vec<(StreamId, u64, u64)> = Vec::with_capacity(pending_count);
    for _ in 0..pending_count {
        let id = reader.raw_stream_id()?;
        pending.push((id, reader.millis()?, reader.length()?));
    }
    if pending.windows(2).any(|pair| pair[0].0 >= pair[1].0) {
        return Err(RdbError::BadData);
    }
    let mut owners: HashMap<StreamId, Option<Bytes>> = pending.iter().map(|&(id, ..)| (id, None)).collect();

    let consumer_count = reader.count()?;
    let mut consumers = Vec::with_capacity(consumer_count);
    for _ in 0..consumer_count {
        let consumer_name = reader.string()?;
        let seen_time_ms = reader.millis()?;
        let owned_count = reader.count()?;
        for _ in 0..owned_count {
            // Each consumer's PEL must point into the group's PEL, and an
            // entry has a single owner.
            let id = reader.raw_stream_id()?;
            match owners.get_mut(&id) {
                Some(owner @ None) => *owner = Some(consumer_name.clone()),
                _ => return Err(RdbError::BadData),
            }
        }
        consumers.push(RdbConsumer { name: consumer_name, seen_time_ms });
    }

    let pending = pending
        .into_iter()
        .map(|(id, delivery_time_ms, delivery_count)| {
            let consumer = owners.remove(&id).flatten().ok_or(RdbError::BadData)?;
            Ok(RdbPendingEntry { id, delivery_time_ms, delivery_count, consumer })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(RdbConsumerGroup { name, last_id, entries_read, pending, consumers })
}

/// A version-1 stream has no per-group read counter: Redis 7.0 estimates
/// it from the group's last ID (streamEstimateDistanceFromFirstEverEntry),
/// `None` standing for its "invalid" marker.
fn estimate_entries_read(stream: &RdbStream, group_last_id: StreamId) -> Option<u64> {
    if stream.entries_added == 0 {
        return Some(0);
    }
    if stream.entries.is_empty() && group_last_id <= stream.last_id {
        return Some(stream.entries_added);
    }
    if group_last_id == stream.last_id {
        return Some(stream.entries_added);
    }
    if group_last_id > stream.last_id {
        return None;
    }
    let length = stream.entries.len() as u64;
    let no_deletions_before_first =
        stream.max_deleted_id == StreamId::default() || stream.max_deleted_id < stream.first_id;
    if no_deletions_before_first {
        if group_last_id < stream.first_id {
            return Some(stream.entries_added.wrapping_sub(length));
        }
        if group_last_id == stream.first_id {
            return Some(stream.entries_added.wrapping_sub(length).wrapping_add(1));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Payloads captured from redis-server 7.0.15 (see the file's header).
    const REDIS_DUMPS: &str = include_str!("rdb/redis-7.0.15-dumps.txt");

    fn redis_dump(name: &str) -> Vec<u8> {
        let line = REDIS_DUMPS
            .lines()
            .filter(|line| !line.starts_with('#'))
            .find_map(|line| line.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
            .unwrap_or_else(|| panic!("no fixture {name}"));
        hex_decode(line)
    }

    fn all_redis_dumps() -> Vec<(String, Vec<u8>)> {
        REDIS_DUMPS
            .lines()
            .filter(|line| !line.starts_with('#'))
            .map(|line| {
                let (name, hex) = line.split_once(' ').expect("name and hex");
                (name.to_string(), hex_decode(hex))
            })
            .collect()
    }

    fn hex_decode(hex: &str) -> Vec<u8> {
        (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex")).collect()
    }

    /// Wraps an object body in a version and a correct checksum.
    fn seal(body: &[u8]) -> Vec<u8> {
        let mut payload = body.to_vec();
        payload.extend_from_slice(&RDB_VERSION.to_le_bytes());
        let checksum = crc64(0, &payload);
        payload.extend_from_slice(&checksum.to_le_bytes());
        payload
    }

    fn b(text: &str) -> Bytes {
        Bytes::copy_from_slice(text.as_bytes())
    }

    fn strings(items: &[&str]) -> Vec<Bytes> {
        items.iter().map(|item| b(item)).collect()
    }

    /// Sets and hashes carry no order (Redis keeps big ones in hash tables);
    /// compare them sorted.
    fn normalized(value: RdbValue) -> RdbValue {
        match value {
            RdbValue::Set(mut members) => {
                members.sort();
                RdbValue::Set(members)
            }
            RdbValue::Hash(mut fields) => {
                fields.sort();
                RdbValue::Hash(fields)
            }
            other => other,
        }
    }

    fn assert_round_trip(value: RdbValue) {
        let payload = dump(&value);
        assert_eq!(normalized(restore(&payload).expect("restore of our own dump")), normalized(value));
    }

    /// A deterministic byte source (xorshift64*), so tests need no seed.
    struct Noise(u64);

    impl Noise {
        fn next_u64(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn bytes(&mut self, len: usize) -> Vec<u8> {
            (0..len).map(|_| self.next_u64() as u8).collect()
        }
    }

    #[test]
    fn crc64_matches_redis_test_vector() {
        assert_eq!(crc64(0, b"123456789"), 0xe9c6_d914_c4b8_d9ca);
    }

    #[test]
    fn lzf_round_trips_random_repetitive_and_mixed_data() {
        let mut noise = Noise(0x9e37_79b9_7f4a_7c15);
        let mut samples: Vec<Vec<u8>> = vec![vec![b'a'; 3], vec![b'a'; 100_000], b"abcabcabcabcabcabcabcabc".to_vec()];
        for len in [3, 21, 100, 1000, 70_000] {
            samples.push(noise.bytes(len));
            // Small alphabet: many short matches at every distance.
            samples.push(noise.bytes(len).iter().map(|byte| b'a' + byte % 4).collect());
        }
        for sample in samples {
            // liblzf's worst case: one control byte per 32 literals.
            let limit = sample.len() + sample.len() / 32 + 4;
            let compressed = lzf_compress(&sample, limit).expect("fits in the worst-case bound");
            assert_eq!(lzf_decompress(&compressed, sample.len()).expect("decompresses"), sample);
        }
        assert!(lzf_compress(&noise.bytes(1000), 996).is_none(), "random data does not shrink");
    }

    #[test]
    fn lzf_refuses_lying_lengths_and_bad_references() {
        let compressed = lzf_compress(&[b'z'; 500], 496).expect("compresses");
        assert_eq!(lzf_decompress(&compressed, 499), Err(RdbError::BadData));
        assert_eq!(lzf_decompress(&compressed, 501), Err(RdbError::BadData));
        // A back reference before the start of the output.
        assert_eq!(lzf_decompress(&[0x20, 0x05], 3), Err(RdbError::BadData));
        // A literal run longer than the input.
        assert_eq!(lzf_decompress(&[0x05, b'a'], 6), Err(RdbError::BadData));
    }

    #[test]
    fn scores_are_formatted_like_redis_d2string() {
        let cases = [
            (1.0, "1"),
            (-3.0, "-3"),
            (2.5, "2.5"),
            (0.1, "0.10000000000000001"),
            (1e100, "1e+100"),
            (1.5e-7, "1.4999999999999999e-07"),
            (123456789012.0, "123456789012"),
            (1e18, "1000000000000000000"),
            (1e19, "1e+19"),
            (-0.0, "-0"),
            (f64::INFINITY, "inf"),
            (f64::NEG_INFINITY, "-inf"),
            (0.0001, "0.0001"),
            (12345.678, "12345.678"),
        ];
        for (score, text) in cases {
            assert_eq!(format_score(score), text, "{score}");
        }
    }

    #[test]
    fn canonical_integers_follow_string2ll() {
        for (text, value) in [("0", Some(0)), ("-1", Some(-1)), ("9223372036854775807", Some(i64::MAX))] {
            assert_eq!(parse_canonical_i64(text.as_bytes()), value);
        }
        assert_eq!(parse_canonical_i64(b"-9223372036854775808"), Some(i64::MIN));
        for text in ["", "-", "-0", "01", "+1", " 1", "1 ", "9223372036854775808", "-9223372036854775809", "1a"] {
            assert_eq!(parse_canonical_i64(text.as_bytes()), None, "{text:?}");
        }
    }

    #[test]
    fn strings_round_trip_in_every_encoding() {
        let mut noise = Noise(7);
        let mut values: Vec<Vec<u8>> =
            ["", "0", "-1", "127", "-128", "128", "32767", "-32769", "2147483647", "-2147483648"]
                .iter()
                .chain(&["2147483648", "01", "-0", "hello", "9223372036854775807", "-9223372036854775808"])
                .map(|text| text.as_bytes().to_vec())
                .collect();
        values.push(vec![0, 255, 10, 13]);
        values.push(vec![b'x'; 21]);
        values.push(vec![b'y'; 200_000]);
        values.push(noise.bytes(100_000));
        for value in values {
            assert_round_trip(RdbValue::String(Bytes::from(value)));
        }
    }

    #[test]
    fn collections_round_trip_small_and_large() {
        let mut noise = Noise(11);
        let numbered = |prefix: &str, count: usize| -> Vec<Bytes> {
            (0..count).map(|i| Bytes::from(format!("{prefix}{i}"))).collect()
        };
        // Lists: one listpack node, several nodes, and items larger than a node.
        assert_round_trip(RdbValue::List(strings(&[
            "a",
            "",
            "1",
            "-5",
            "70000",
            "-70000",
            "5000000000",
            "-4096",
            "4095",
        ])));
        assert_round_trip(RdbValue::List(numbered("item-", 20_000)));
        assert_round_trip(RdbValue::List(vec![
            Bytes::from(noise.bytes(20_000)),
            b("small"),
            Bytes::from(vec![b'q'; 9000]),
        ]));
        assert_round_trip(RdbValue::List(numbered("", 5000)));

        // Sets: each intset width, the intset size limit, strings.
        assert_round_trip(RdbValue::Set(strings(&["1", "-32768", "32767"])));
        assert_round_trip(RdbValue::Set(strings(&["1", "-2147483648", "2147483647"])));
        assert_round_trip(RdbValue::Set(strings(&["-9223372036854775808", "9223372036854775807", "0"])));
        assert_round_trip(RdbValue::Set(numbered("", 512)));
        assert_round_trip(RdbValue::Set(numbered("", 513)));
        assert_round_trip(RdbValue::Set(strings(&["a", "", "01", "1"])));
        assert_round_trip(RdbValue::Set(numbered("member:", 3000)));

        // Sorted sets: listpack and skiplist, with infinities and integers.
        let zset = |count: usize, member_len: usize| -> Vec<(f64, Bytes)> {
            let mut members: Vec<(f64, Bytes)> =
                (0..count).map(|i| (i as f64 * 0.37 - 10.0, Bytes::from(format!("{i:0member_len$}")))).collect();
            members[0].0 = f64::NEG_INFINITY;
            members[count - 1].0 = f64::INFINITY;
            members
        };
        assert_round_trip(RdbValue::ZSet(zset(5, 3)));
        assert_round_trip(RdbValue::ZSet(zset(128, 64)));
        assert_round_trip(RdbValue::ZSet(zset(3, 65)));
        assert_round_trip(RdbValue::ZSet(zset(1000, 8)));
        assert_round_trip(RdbValue::ZSet(vec![(-1.5e-300, b("tiny")), (-0.0, b("z")), (1e300, b("big"))]));

        // Hashes: listpack, too many fields, too long a value.
        let hash = |count: usize, value_len: usize| -> Vec<(Bytes, Bytes)> {
            (0..count).map(|i| (Bytes::from(format!("f{i}")), Bytes::from(format!("{i:0value_len$}")))).collect()
        };
        assert_round_trip(RdbValue::Hash(hash(3, 1)));
        assert_round_trip(RdbValue::Hash(hash(512, 64)));
        assert_round_trip(RdbValue::Hash(hash(513, 2)));
        assert_round_trip(RdbValue::Hash(hash(2, 65)));
        assert_round_trip(RdbValue::Hash(vec![(b(""), b("")), (Bytes::from(vec![0, 1, 2]), b("-12"))]));
    }

    fn sample_stream(entry_count: u64) -> RdbStream {
        let entries: Vec<RdbStreamEntry> = (1..=entry_count)
            .map(|i| {
                let fields = if i % 7 == 0 {
                    vec![
                        (b("other"), Bytes::from(vec![b'v'; (i as usize * 13) % 300])),
                        (b("n"), Bytes::from(i.to_string())),
                    ]
                } else {
                    vec![(b("name"), Bytes::from(format!("user{i}"))), (b("n"), Bytes::from(i.to_string()))]
                };
                RdbStreamEntry { id: StreamId { ms: 1_700_000_000_000 + i / 3, seq: i % 3 }, fields }
            })
            .collect();
        let last_id = entries.last().map(|entry| entry.id).unwrap_or_default();
        let first_id = entries.first().map(|entry| entry.id).unwrap_or_default();
        let pending_ids: Vec<StreamId> = entries.iter().take(6).map(|entry| entry.id).collect();
        let pending = pending_ids
            .iter()
            .enumerate()
            .map(|(i, &id)| RdbPendingEntry {
                id,
                delivery_time_ms: 1_700_000_000_500 + i as u64,
                delivery_count: i as u64 + 1,
                consumer: if i % 2 == 0 { b("alice") } else { b("bob") },
            })
            .collect();
        RdbStream {
            entries,
            last_id,
            entries_added: entry_count + 5,
            max_deleted_id: StreamId { ms: 3, seq: 0 },
            first_id,
            groups: vec![
                RdbConsumerGroup {
                    name: b("readers"),
                    last_id: pending_ids.last().copied().unwrap_or_default(),
                    entries_read: Some(6),
                    pending,
                    consumers: vec![
                        RdbConsumer { name: b("alice"), seen_time_ms: 1_700_000_001_000 },
                        RdbConsumer { name: b("bob"), seen_time_ms: 1_700_000_002_000 },
                        RdbConsumer { name: b("idle"), seen_time_ms: 0 },
                    ],
                },
                RdbConsumerGroup {
                    name: b("unknown-offset"),
                    last_id: StreamId::default(),
                    entries_read: None,
                    pending: Vec::new(),
                    consumers: Vec::new(),
                },
            ],
        }
    }

    #[test]
    fn streams_round_trip_with_groups_and_pending_entries() {
        assert_round_trip(RdbValue::Stream(RdbStream::default()));
        assert_round_trip(RdbValue::Stream(sample_stream(10)));
        assert_round_trip(RdbValue::Stream(sample_stream(2000)));
    }

    /// What the fixture script stored under each name.
    fn expected_redis_value(name: &str) -> Option<RdbValue> {
        let string = |text: &[u8]| Some(RdbValue::String(Bytes::copy_from_slice(text)));
        let value = match name {
            "str_empty" => return string(b""),
            "str_zero" => return string(b"0"),
            "str_neg1" => return string(b"-1"),
            "str_127" => return string(b"127"),
            "str_128" => return string(b"128"),
            "str_neg129" => return string(b"-129"),
            "str_32767" => return string(b"32767"),
            "str_32768" => return string(b"32768"),
            "str_i32max" => return string(b"2147483647"),
            "str_i32max_plus1" => return string(b"2147483648"),
            "str_i32min" => return string(b"-2147483648"),
            "str_11digits" => return string(b"12345678901"),
            "str_leading_zero" => return string(b"0123"),
            "str_hello" => return string(b"hello"),
            "str_binary" => return string(&[0, 255, 13, 10, 128]),
            "str_repetitive" => return string(&[b'a'; 100]),
            "str_text" => {
                return string(b"The quick brown fox jumps over the lazy dog; the quick brown fox jumps again.")
            }
            "str_incompressible" => return string(&(0..30).collect::<Vec<u8>>()),
            "str_21_same" => return string(&[b'x'; 21]),
            "str_i64max" => return string(b"9223372036854775807"),
            "list_small" => {
                RdbValue::List(strings(&["a", "b", "c", "1", "-5", "1000", "", "70000", "-70000", "5000000000"]))
            }
            "list_compressible" => RdbValue::List(vec![b("same-element"); 10]),
            "list_large" => RdbValue::List((0..2000).map(|i| Bytes::from(format!("element-{i}"))).collect()),
            "list_big_items" => RdbValue::List((0..7u8).map(|i| Bytes::from(vec![b'a' + i % 26; 3000])).collect()),
            "set_int16" => RdbValue::Set(strings(&["1", "2", "3", "-5", "32767"])),
            "set_int32" => RdbValue::Set(strings(&["1", "70000", "-70000"])),
            "set_int64" => RdbValue::Set(strings(&["5000000000", "-1", "9223372036854775807", "-9223372036854775808"])),
            "set_strings" => RdbValue::Set(strings(&["a", "b", "c"])),
            "set_large_ints" => RdbValue::Set((0..600).map(|i| Bytes::from((i * 3).to_string())).collect()),
            "zset_small" => RdbValue::ZSet(vec![
                (f64::NEG_INFINITY, b("c")),
                (-3.0, b("f")),
                (0.1, b("e")),
                (1.0, b("a")),
                (2.5, b("b")),
                (123456789012.0, b("h")),
                (1e100, b("g")),
                (f64::INFINITY, b("d")),
            ]),
            "zset_large" => {
                RdbValue::ZSet((0..200).map(|i| (f64::from(i) * 0.5, Bytes::from(format!("member:{i}")))).collect())
            }
            // ZADD stores "-0" as 0.
            "zset_scores" => RdbValue::ZSet(vec![
                (-1e-300, b("h")),
                (0.0, b("e")),
                (1.5e-7, b("b")),
                (0.0001, b("d")),
                (12345.678, b("c")),
                (1e18, b("f")),
                (4611686018427387904.0, b("g")),
                (1e19, b("a")),
            ]),
            "zset_long_member" => RdbValue::ZSet(vec![(1.0, Bytes::from(vec![b'm'; 65])), (2.0, b("short"))]),
            "hash_small" => RdbValue::Hash(vec![
                (b("f1"), b("v1")),
                (b("n"), b("123")),
                (b("neg"), b("-70000")),
                (b("empty"), b("")),
            ]),
            "hash_large" => RdbValue::Hash(
                (0..200).map(|i| (Bytes::from(format!("field:{i}")), Bytes::from(format!("value:{i}")))).collect(),
            ),
            "hash_table" => RdbValue::Hash(
                (0..600).map(|i| (Bytes::from(format!("field:{i}")), Bytes::from(format!("value:{i}")))).collect(),
            ),
            "hash_long_value" => RdbValue::Hash(vec![(b("f"), Bytes::from(vec![b'v'; 65]))]),
            "old_list_plain" => RdbValue::List(strings(&["x", "5", "zz"])),
            "old_list_ziplist" => RdbValue::List(
                ["a", "7", "-100", "300", "100000", "10000000", "5000000000"]
                    .iter()
                    .map(|text| b(text))
                    .chain([Bytes::from(vec![b'b'; 70])])
                    .collect(),
            ),
            "old_list_quicklist" => RdbValue::List(strings(&["a", "1", "b", "-2"])),
            "old_zset_text" => RdbValue::ZSet(vec![
                (f64::NEG_INFINITY, b("c")),
                (-2.0, b("d")),
                (1.5, b("a")),
                (f64::INFINITY, b("b")),
            ]),
            "old_zset_ziplist" => RdbValue::ZSet(vec![(1.0, b("a")), (2.5, b("b")), (f64::INFINITY, b("c"))]),
            "old_hash_ziplist" => RdbValue::Hash(vec![(b("f"), b("v")), (b("n"), b("12")), (b("m"), b("-7"))]),
            "old_hash_zipmap" => RdbValue::Hash(vec![(b("k1"), b("v1")), (b("key2"), b(""))]),
            "old_set_plain" => RdbValue::Set(strings(&["p", "q"])),
            "old_hash_plain" => RdbValue::Hash(vec![(b("f"), b("v"))]),
            _ => return None,
        };
        Some(value)
    }

    #[test]
    fn restores_every_redis_dump_to_the_value_stored() {
        let mut checked = 0;
        for (name, payload) in all_redis_dumps() {
            let restored = restore(&payload).unwrap_or_else(|error| panic!("{name}: {error}"));
            if let Some(expected) = expected_redis_value(&name) {
                assert_eq!(normalized(restored), normalized(expected), "{name}");
                checked += 1;
            }
        }
        assert!(checked >= 40, "only {checked} fixtures compared");
    }

    #[test]
    fn dumps_byte_for_byte_what_redis_dumps() {
        // Everything whose layout Redis decides deterministically. Left out:
        // set_strings and hash tables (hash-table order), stream_deleted
        // (we do not carry deleted entries), old_* (Redis converts them).
        let deterministic = [
            "str_empty",
            "str_zero",
            "str_neg1",
            "str_127",
            "str_128",
            "str_neg129",
            "str_32767",
            "str_32768",
            "str_i32max",
            "str_i32max_plus1",
            "str_i32min",
            "str_11digits",
            "str_leading_zero",
            "str_hello",
            "str_binary",
            "str_repetitive",
            "str_text",
            "str_incompressible",
            "str_21_same",
            "str_i64max",
            "list_small",
            "list_compressible",
            "list_large",
            "list_big_items",
            "set_int16",
            "set_int32",
            "set_int64",
            "zset_small",
            "zset_large",
            "zset_long_member",
            "zset_scores",
            "hash_small",
            "hash_large",
            "hash_long_value",
            "stream_simple",
            "stream_groups",
            "stream_big_values",
            "stream_empty",
        ];
        let mut mismatches = Vec::new();
        for name in deterministic {
            let redis = redis_dump(name);
            let ours = dump(&restore(&redis).expect("restores"));
            if ours != redis {
                mismatches.push(name);
            }
        }
        assert!(mismatches.is_empty(), "differ from Redis: {mismatches:?}");
    }

    #[test]
    fn dumps_expected_values_like_redis() {
        for name in ["str_text", "list_small", "set_int32", "zset_small", "zset_scores", "hash_small", "zset_large"] {
            let expected = expected_redis_value(name).expect("known fixture");
            assert_eq!(dump(&expected), redis_dump(name), "{name}");
        }
    }

    #[test]
    fn restores_redis_streams_with_groups() {
        let Ok(RdbValue::Stream(stream)) = restore(&redis_dump("stream_groups")) else { panic!("a stream") };
        assert_eq!(stream.entries.len(), 250);
        assert_eq!(stream.entries[41].id, StreamId { ms: 420, seq: 0 });
        assert_eq!(stream.entries[41].fields, vec![(b("k"), b("v42")), (b("n"), b("42"))]);
        assert_eq!(
            (stream.first_id, stream.last_id, stream.entries_added),
            (StreamId { ms: 10, seq: 0 }, StreamId { ms: 2500, seq: 0 }, 250)
        );
        let names: Vec<&[u8]> = stream.groups.iter().map(|group| group.name.as_ref()).collect();
        assert_eq!(names, [&b"g0"[..], b"g1", b"g2"]);
        let g1 = &stream.groups[1];
        assert_eq!((g1.last_id, g1.entries_read), (StreamId { ms: 50, seq: 0 }, Some(5)));
        let pending: Vec<(u64, &[u8])> =
            g1.pending.iter().map(|entry| (entry.id.ms, entry.consumer.as_ref())).collect();
        assert_eq!(pending, [(10, &b"alice"[..]), (30, b"alice"), (40, b"bob"), (50, b"bob")]);
        assert!(g1.pending.iter().all(|entry| entry.delivery_count == 1));
        let consumers: Vec<&[u8]> = g1.consumers.iter().map(|consumer| consumer.name.as_ref()).collect();
        assert_eq!(consumers, [&b"alice"[..], b"bob", b"idle"]);
        assert_eq!(stream.groups[2].entries_read, Some(10));

        let Ok(RdbValue::Stream(deleted)) = restore(&redis_dump("stream_deleted")) else { panic!("a stream") };
        let ids: Vec<u64> = deleted.entries.iter().map(|entry| entry.id.ms).collect();
        assert_eq!((ids, deleted.max_deleted_id, deleted.entries_added), (vec![1, 3], StreamId { ms: 2, seq: 0 }, 3));

        let Ok(RdbValue::Stream(empty)) = restore(&redis_dump("stream_empty")) else { panic!("a stream") };
        assert!(empty.entries.is_empty());
        assert_eq!(
            (empty.last_id, empty.max_deleted_id, empty.entries_added),
            (StreamId { ms: 7, seq: 7 }, StreamId { ms: 7, seq: 7 }, 1)
        );
    }

    #[test]
    fn restores_version_1_streams_estimating_group_offsets() {
        let Ok(RdbValue::Stream(stream)) = restore(&redis_dump("old_stream_v1")) else { panic!("a stream") };
        let ids: Vec<StreamId> = stream.entries.iter().map(|entry| entry.id).collect();
        assert_eq!(ids, [StreamId { ms: 1, seq: 1 }, StreamId { ms: 1, seq: 2 }, StreamId { ms: 5, seq: 0 }]);
        assert_eq!((stream.first_id, stream.entries_added), (StreamId { ms: 1, seq: 1 }, 3));
        // What XINFO STREAM FULL showed on Redis 7.0.15 after RESTORE.
        let offsets: Vec<Option<u64>> = stream.groups.iter().map(|group| group.entries_read).collect();
        assert_eq!(offsets, [None, Some(3), Some(0)]);
        let pending = &stream.groups[0].pending[0];
        assert_eq!((pending.delivery_time_ms, pending.delivery_count, pending.consumer.as_ref()), (1000, 2, &b"c"[..]));
        assert_eq!(stream.groups[0].consumers, vec![RdbConsumer { name: b("c"), seen_time_ms: 2000 }]);
    }

    #[test]
    fn refuses_bad_footers() {
        let good = redis_dump("str_hello");
        assert_eq!(restore(&good[..9]), Err(RdbError::BadPayload));
        let mut zero_crc = good.clone();
        zero_crc[good.len() - 8..].fill(0);
        assert_eq!(restore(&zero_crc), Err(RdbError::BadPayload), "RESTORE checks a zero CRC too");
        let mut newer = good[..good.len() - 10].to_vec();
        newer.extend_from_slice(&11u16.to_le_bytes());
        let checksum = crc64(0, &newer);
        newer.extend_from_slice(&checksum.to_le_bytes());
        assert_eq!(restore(&newer), Err(RdbError::BadPayload));
        assert_eq!(RdbError::BadPayload.to_string(), "DUMP payload version or checksum are wrong");
        assert_eq!(RdbError::BadData.to_string(), "Bad data format");
    }

    #[test]
    fn refuses_what_redis_refuses_inside_a_valid_envelope() {
        for body in [
            &[TYPE_LIST_QUICKLIST_2, 0][..],                      // an empty list
            &[TYPE_SET, 2, 1, b'a', 1, b'a'],                     // duplicate members
            &[TYPE_HASH, 1, 1, b'f'],                             // a field without a value
            &[6, 0],                                              // a module value
            &[TYPE_LIST_QUICKLIST_2, 1, 3, 1, b'a'],              // an unknown node container
            &[TYPE_STRING, 0xc3, 1, 0, 0],                        // LZF claiming an empty original
            &[TYPE_STRING, 0xc4],                                 // an unknown string encoding
            &[TYPE_SET_INTSET, 10, 2, 0, 0, 0, 2, 0, 0, 0, 9, 9], // intset count beyond its bytes
        ] {
            assert_eq!(restore(&seal(body)), Err(RdbError::BadData), "{body:?}");
        }
        // Redis ignores bytes after the object.
        let mut trailing = redis_dump("str_hello")[..7].to_vec();
        trailing.push(0);
        assert_eq!(restore(&seal(&trailing)), Ok(RdbValue::String(b("hello"))));
    }

    #[test]
    fn huge_declared_lengths_fail_without_allocating() {
        let mut list = vec![TYPE_LIST, 0x81];
        list.extend_from_slice(&u64::MAX.to_be_bytes());
        let mut string = vec![TYPE_STRING, 0x80];
        string.extend_from_slice(&u32::MAX.to_be_bytes());
        // LZF claiming 4 GiB from two bytes.
        let mut lzf = vec![TYPE_STRING, 0xc3, 2, 0x80];
        lzf.extend_from_slice(&u32::MAX.to_be_bytes());
        lzf.extend_from_slice(&[0, b'a']);
        for body in [list, string, lzf] {
            assert_eq!(restore(&seal(&body)), Err(RdbError::BadData));
        }
    }

    #[test]
    fn random_bodies_of_every_type_never_panic() {
        let mut noise = Noise(0xdead_beef);
        for type_byte in 0..=20u8 {
            for _ in 0..3000 {
                let len = (noise.next_u64() % 48) as usize;
                let mut body = vec![type_byte];
                body.extend(noise.bytes(len));
                let _ = restore(&seal(&body));
            }
        }
    }

    fn corpus() -> Vec<Vec<u8>> {
        let mut payloads: Vec<Vec<u8>> = all_redis_dumps().into_iter().map(|(_, payload)| payload).collect();
        payloads.push(dump(&RdbValue::Stream(sample_stream(12))));
        payloads.push(dump(&RdbValue::Hash((0..600).map(|i| (Bytes::from(format!("f{i}")), b("v"))).collect())));
        payloads.retain(|payload| payload.len() < 4000);
        payloads
    }

    #[test]
    fn every_truncation_is_refused() {
        for payload in corpus() {
            for len in 0..payload.len() {
                assert!(restore(&payload[..len]).is_err());
                // Resealed, so the decoder itself meets the cut.
                let body = &payload[..payload.len() - 10];
                if len < body.len() {
                    assert_eq!(restore(&seal(&body[..len])), Err(RdbError::BadData), "cut at {len}");
                }
            }
        }
    }

    #[test]
    fn flipped_bytes_are_caught_by_the_checksum_and_never_panic_the_decoder() {
        for payload in corpus() {
            for position in 0..payload.len() {
                for mask in [0x01, 0x80, 0xff] {
                    let mut flipped = payload.clone();
                    flipped[position] ^= mask;
                    assert!(restore(&flipped).is_err(), "flip at {position} accepted");
                    // Resealed: the decoder sees the damage; any result but a
                    // panic is fine.
                    if position < payload.len() - 10 {
                        let _ = restore(&seal(&flipped[..payload.len() - 10]));
                    }
                }
            }
        }
    }

    /// A throwaway redis-server, when one is installed, to check that Redis
    /// itself accepts what we write where the bytes cannot be compared.
    struct LiveRedis {
        child: std::process::Child,
        connection: std::io::BufReader<std::net::TcpStream>,
    }

    #[derive(Debug, PartialEq)]
    enum Reply {
        Status(String),
        Error(String),
        Integer(i64),
        Bulk(Vec<u8>),
    }

    impl LiveRedis {
        fn start() -> Option<LiveRedis> {
            let port = std::net::TcpListener::bind("127.0.0.1:0").ok()?.local_addr().ok()?.port();
            let mut child = std::process::Command::new("redis-server")
                .args(["--port", &port.to_string(), "--save", "", "--appendonly", "no", "--daemonize", "no"])
                .stdout(std::process::Stdio::null())
                .spawn()
                .ok()?;
            for _ in 0..100 {
                if let Ok(stream) = std::net::TcpStream::connect(("127.0.0.1", port)) {
                    return Some(LiveRedis { child, connection: std::io::BufReader::new(stream) });
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
            None
        }

        fn command(&mut self, args: &[&[u8]]) -> Reply {
            use std::io::{BufRead, Read, Write};
            let mut request = Vec::new();
            crate::protocol::encode_request(args, &mut request);
            self.connection.get_mut().write_all(&request).expect("send to redis-server");
            let mut line = Vec::new();
            self.connection.read_until(b'\n', &mut line).expect("reply from redis-server");
            let text = String::from_utf8_lossy(&line[1..line.len() - 2]).into_owned();
            match line[0] {
                b'+' => Reply::Status(text),
                b'-' => Reply::Error(text),
                b':' => Reply::Integer(text.parse().expect("integer reply")),
                b'$' => {
                    let len: usize = text.parse().expect("bulk length");
                    let mut data = vec![0; len + 2];
                    self.connection.read_exact(&mut data).expect("bulk data");
                    data.truncate(len);
                    Reply::Bulk(data)
                }
                other => panic!("unexpected reply type {other}"),
            }
        }
    }

    impl Drop for LiveRedis {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    #[test]
    fn redis_server_restores_our_dumps_where_bytes_cannot_be_compared() {
        let Some(mut redis) = LiveRedis::start() else {
            eprintln!("redis-server is not installed: skipped");
            return;
        };
        let numbered = |prefix: &str, count: usize| -> Vec<Bytes> {
            (0..count).map(|i| Bytes::from(format!("{prefix}{i}"))).collect()
        };
        let values = [
            RdbValue::Set(numbered("member:", 3000)),
            RdbValue::Set(numbered("", 513)),
            RdbValue::Hash(numbered("f", 513).into_iter().zip(numbered("v", 513)).collect()),
            RdbValue::Hash(vec![(b("long"), Bytes::from(vec![b'v'; 65])), (b("n"), b("-5"))]),
            RdbValue::ZSet((0..1000).map(|i| (f64::from(i) * 0.25 - 3.0, Bytes::from(format!("m{i}")))).collect()),
            RdbValue::List(numbered("item-", 20_000)),
            RdbValue::List(vec![Bytes::from(vec![b'x'; 20_000]), b("after")]),
            RdbValue::Stream(sample_stream(2000)),
            RdbValue::Stream(RdbStream::default()),
        ];
        for (index, value) in values.into_iter().enumerate() {
            let key = format!("key{index}");
            let reply = redis.command(&[b"RESTORE", key.as_bytes(), b"0", &dump(&value)]);
            assert_eq!(reply, Reply::Status("OK".into()), "value {index}");
            let Reply::Bulk(payload) = redis.command(&[b"DUMP", key.as_bytes()]) else { panic!("DUMP {index}") };
            assert_eq!(
                normalized(restore(&payload).expect("restores Redis's DUMP")),
                normalized(value),
                "value {index}"
            );
        }
        // And Redis refuses what we refuse.
        let mut zero_crc = dump(&RdbValue::String(b("x")));
        let len = zero_crc.len();
        zero_crc[len - 8..].fill(0);
        let reply = redis.command(&[b"RESTORE", b"bad", b"0", &zero_crc]);
        assert_eq!(reply, Reply::Error(format!("ERR {}", RdbError::BadPayload)));
        let reply = redis.command(&[b"RESTORE", b"bad", b"0", &seal(&[TYPE_LIST_QUICKLIST_2, 0])]);
        assert_eq!(reply, Reply::Error(format!("ERR {}", RdbError::BadData)));
    }

    #[test]
    fn redis_server_dumps_strings_and_scores_exactly_as_we_do() {
        let Some(mut redis) = LiveRedis::start() else {
            eprintln!("redis-server is not installed: skipped");
            return;
        };
        // Strings across LZF's decisions: lengths around the 20-byte floor,
        // small alphabets (many matches), runs, and long inputs.
        let mut noise = Noise(0x5eed);
        let mut samples: Vec<Vec<u8>> = Vec::new();
        for len in [19, 20, 21, 22, 24, 25, 30, 33, 64, 100, 255, 256, 300, 1000, 5000, 70_000] {
            for alphabet in [1u8, 2, 3, 4, 16, 64] {
                samples.push(noise.bytes(len).iter().map(|byte| b'a' + byte % alphabet).collect());
            }
        }
        for (index, sample) in samples.iter().enumerate() {
            let key = format!("string{index}");
            assert_eq!(redis.command(&[b"SET", key.as_bytes(), sample]), Reply::Status("OK".into()));
            let Reply::Bulk(payload) = redis.command(&[b"DUMP", key.as_bytes()]) else { panic!("DUMP") };
            assert_eq!(dump(&RdbValue::String(Bytes::from(sample.clone()))), payload, "sample {index}");
        }

        // Scores as d2string prints them into a listpack: arbitrary doubles,
        // sent in Rust's shortest round-trip form, which strtod reads back.
        for round in 0..20 {
            let members: Vec<(f64, Bytes)> = (0..100)
                .map(|i| {
                    let score = match i % 3 {
                        0 => f64::from_bits(noise.next_u64()),
                        1 => (noise.next_u64() % 1_000_000) as f64 / 1000.0,
                        _ => (noise.next_u64() as i64 >> (noise.next_u64() % 64)) as f64,
                    };
                    let score = if score.is_finite() { score } else { i as f64 };
                    (score, Bytes::from(format!("m{i}")))
                })
                .collect();
            let key = format!("zset{round}");
            let mut command: Vec<Vec<u8>> = vec![b"ZADD".to_vec(), key.clone().into_bytes()];
            for (score, member) in &members {
                command.push(score.to_string().into_bytes());
                command.push(member.to_vec());
            }
            let args: Vec<&[u8]> = command.iter().map(Vec::as_slice).collect();
            assert!(matches!(redis.command(&args), Reply::Integer(100)));
            let Reply::Bulk(payload) = redis.command(&[b"DUMP", key.as_bytes()]) else { panic!("DUMP") };
            assert_eq!(dump(&RdbValue::ZSet(in_zset_order(members))), payload, "round {round}");
        }
    }
}
