//! String commands (RocksDB engine): the value lives in the key's metadata
//! record, so GET is one lookup and every change rewrites that record.
//!
//! Redis's exact rules matter here (argument order of checks, overflow
//! limits, INCRBYFLOAT's `long double`), so each handler notes where it
//! follows a Redis quirk on purpose.

use bytes::Bytes;
use strata_engines::keyspace::KeyMeta;
use strata_engines::KeyType;

use super::args::{pairs, parse_expire, parse_int, TimeUnit};
use super::{CommandTable, Ctx};
use crate::error::{CmdError, CmdResult};
use crate::long_double::{self, LongDouble};
use crate::notify;
use crate::protocol::{parse_i64, Reply};

pub fn register(table: &mut CommandTable) {
    table.register("get", get);
    table.register("set", set);
    table.register("setnx", setnx);
    table.register("setex", setex);
    table.register("psetex", psetex);
    table.register("getset", getset);
    table.register("getdel", getdel);
    table.register("getex", getex);
    table.register("mget", mget);
    table.register("mset", mset);
    table.register("msetnx", msetnx);
    table.register("append", append);
    table.register("strlen", strlen);
    table.register("incr", incr);
    table.register("decr", decr);
    table.register("incrby", incrby);
    table.register("decrby", decrby);
    table.register("incrbyfloat", incrbyfloat);
    table.register("getrange", getrange);
    table.register("substr", getrange);
    table.register("setrange", setrange);
    table.register("lcs", lcs);
    table.register("setbit", setbit);
    table.register("getbit", getbit);
    table.register("bitcount", bitcount);
    table.register("bitpos", bitpos);
    table.register("bitop", bitop);
    table.register("bitfield", bitfield);
    table.register("bitfield_ro", bitfield_ro);
}

/// The largest string a command may build (`proto-max-bulk-len`).
fn max_bulk_len(ctx: &Ctx) -> u64 {
    ctx.server.config.read().session().max_bulk_len.max(0) as u64
}

/// Redis's `checkStringLength`: a string may not grow past the limit.
fn check_length(total: u128, max: u64) -> Result<(), CmdError> {
    if total > max as u128 {
        Err(CmdError::StringTooLong)
    } else {
        Ok(())
    }
}

/// The TTL a string keeps when its value is rewritten in place.
fn kept_ttl(meta: Option<&KeyMeta>) -> u64 {
    meta.map_or(0, |m| m.expire_ms)
}

/// `GET key`
fn get(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    Ok(Reply::opt_bulk(read_string(ctx, &argv[1])?))
}

/// An expiry option of SET and GETEX.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum ExpireKind {
    Ex,
    Px,
    ExAt,
    PxAt,
}

impl ExpireKind {
    fn from_name(name: &[u8]) -> Option<ExpireKind> {
        [("EX", ExpireKind::Ex), ("PX", ExpireKind::Px), ("EXAT", ExpireKind::ExAt), ("PXAT", ExpireKind::PxAt)]
            .into_iter()
            .find(|(n, _)| name.eq_ignore_ascii_case(n.as_bytes()))
            .map(|(_, kind)| kind)
    }

    fn is_absolute(self) -> bool {
        matches!(self, ExpireKind::ExAt | ExpireKind::PxAt)
    }

    /// The absolute unix ms the argument names.
    fn resolve(self, arg: &[u8], now_ms: u64, command: &str) -> Result<u64, CmdError> {
        let unit = match self {
            ExpireKind::Ex | ExpireKind::ExAt => TimeUnit::Seconds,
            ExpireKind::Px | ExpireKind::PxAt => TimeUnit::Milliseconds,
        };
        parse_expire(arg, unit, !self.is_absolute(), now_ms, command)
    }
}

/// The options of SET and GETEX (Redis's
/// `parseExtendedStringArgumentsOrReply`). Repeating an option is allowed,
/// the last expiry wins; only conflicting options are a syntax error.
#[derive(Default)]
struct StringOptions<'a> {
    nx: bool,
    xx: bool,
    get: bool,
    keepttl: bool,
    persist: bool,
    expire: Option<(ExpireKind, &'a Bytes)>,
}

impl<'a> StringOptions<'a> {
    fn parse(options: &'a [Bytes], for_set: bool) -> Result<StringOptions<'a>, CmdError> {
        let mut o = StringOptions::default();
        let mut i = 0;
        while i < options.len() {
            let opt = &options[i];
            let is = |word: &str| opt.eq_ignore_ascii_case(word.as_bytes());
            let expire_kind = ExpireKind::from_name(opt);
            let next = options.get(i + 1);
            if is("NX") && !o.xx && for_set {
                o.nx = true;
            } else if is("XX") && !o.nx && for_set {
                o.xx = true;
            } else if is("GET") && for_set {
                o.get = true;
            } else if is("KEEPTTL") && !o.persist && o.expire.is_none() && for_set {
                o.keepttl = true;
            } else if is("PERSIST") && !for_set && o.expire.is_none() && !o.keepttl {
                o.persist = true;
            } else if let (Some(kind), Some(next)) = (expire_kind, next) {
                if o.keepttl || o.persist || o.expire.is_some_and(|(k, _)| k != kind) {
                    return Err(CmdError::Syntax);
                }
                o.expire = Some((kind, next));
                i += 1;
            } else {
                return Err(CmdError::Syntax);
            }
            i += 1;
        }
        Ok(o)
    }
}

/// When SET writes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Condition {
    Always,
    IfMissing,
    IfExists,
}

/// What SET does with the TTL.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Ttl {
    Clear,
    Keep,
    /// Absolute unix ms.
    At(u64),
}

/// What a SET-like write found and did.
struct SetOutcome {
    /// The old value, when `get` was asked (WRONGTYPE otherwise).
    old: Option<Bytes>,
    written: bool,
}

/// The common body of SET, SETNX, SETEX and PSETEX (`setGenericCommand`).
fn set_generic(
    ctx: &mut Ctx,
    key: &Bytes,
    value: &Bytes,
    condition: Condition,
    ttl: Ttl,
    get: bool,
) -> Result<SetOutcome, CmdError> {
    let outcome = ctx.run(|tx| {
        let old = tx.meta(key)?;
        let old_value = match &old {
            Some(meta) if get && meta.key_type != KeyType::String => return Err(CmdError::WrongType),
            Some(meta) if get => Some(Bytes::from(meta.body.clone())),
            _ => None,
        };
        let written = match condition {
            Condition::Always => true,
            Condition::IfMissing => old.is_none(),
            Condition::IfExists => old.is_some(),
        };
        if written {
            let expire_ms = match ttl {
                Ttl::Clear => 0,
                Ttl::Keep => kept_ttl(old.as_ref()),
                Ttl::At(ms) => ms,
            };
            if expire_ms != 0 && expire_ms <= tx.now_ms() {
                // Already expired: the key would never be seen again.
                tx.delete(key)?;
            } else {
                tx.set_string(key, old.as_ref(), value, expire_ms);
            }
            tx.notify(notify::STRING, "set", key);
            if let Ttl::At(_) = ttl {
                tx.notify(notify::GENERIC, "expire", key);
            }
        }
        Ok(SetOutcome { old: old_value, written })
    })?;
    if get {
        ctx.hit(key, outcome.old.is_some());
    }
    Ok(outcome)
}

/// `SET key value [NX | XX] [GET] [EX s | PX ms | EXAT ts | PXAT ts-ms | KEEPTTL]`
fn set(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    let opts = StringOptions::parse(&argv[3..], true)?;
    // The expiry is checked after the whole syntax, before the key is read.
    let ttl = match opts.expire {
        Some((kind, arg)) => Ttl::At(kind.resolve(arg, strata_engines::now_ms(), "set")?),
        None if opts.keepttl => Ttl::Keep,
        None => Ttl::Clear,
    };
    let condition = match (opts.nx, opts.xx) {
        (true, _) => Condition::IfMissing,
        (_, true) => Condition::IfExists,
        _ => Condition::Always,
    };
    let outcome = set_generic(ctx, &argv[1], &argv[2], condition, ttl, opts.get)?;
    Ok(match (opts.get, outcome.written) {
        (true, _) => Reply::opt_bulk(outcome.old),
        (false, true) => Reply::ok(),
        (false, false) => Reply::Nil,
    })
}

/// `SETNX key value`
fn setnx(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    let outcome = set_generic(ctx, &argv[1], &argv[2], Condition::IfMissing, Ttl::Clear, false)?;
    Ok(Reply::Integer(outcome.written as i64))
}

/// `SETEX key seconds value`
fn setex(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    let at = ExpireKind::Ex.resolve(&argv[2], strata_engines::now_ms(), "setex")?;
    set_generic(ctx, &argv[1], &argv[3], Condition::Always, Ttl::At(at), false)?;
    Ok(Reply::ok())
}

/// `PSETEX key milliseconds value`
fn psetex(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    let at = ExpireKind::Px.resolve(&argv[2], strata_engines::now_ms(), "psetex")?;
    set_generic(ctx, &argv[1], &argv[3], Condition::Always, Ttl::At(at), false)?;
    Ok(Reply::ok())
}

/// `GETSET key value`
fn getset(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    let (key, value) = (&argv[1], &argv[2]);
    let old = ctx.run(|tx| {
        let old = tx.meta_of(key, KeyType::String)?;
        tx.set_string(key, old.as_ref(), value, 0);
        tx.notify(notify::STRING, "set", key);
        Ok(old.map(|m| m.body))
    })?;
    ctx.hit(key, old.is_some());
    Ok(Reply::opt_bulk(old))
}

/// `GETDEL key`
fn getdel(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    let key = &argv[1];
    let old = ctx.run(|tx| {
        let old = tx.meta_of(key, KeyType::String)?;
        if old.is_some() {
            tx.delete(key)?;
            tx.notify(notify::GENERIC, "del", key);
        }
        Ok(old.map(|m| m.body))
    })?;
    ctx.hit(key, old.is_some());
    Ok(Reply::opt_bulk(old))
}

/// `GETEX key [EX seconds | PX milliseconds | EXAT unix-time-seconds | PXAT unix-time-milliseconds | PERSIST]`
fn getex(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    let key = &argv[1];
    let opts = StringOptions::parse(&argv[2..], false)?;
    let value = ctx.run(|tx| {
        // Redis reads the key before it validates the expiry: a missing key
        // answers nil whatever the expiry says.
        let Some(meta) = tx.meta_of(key, KeyType::String)? else {
            return Ok(None);
        };
        let expire = match opts.expire {
            Some((kind, arg)) => Some((kind, kind.resolve(arg, tx.now_ms(), "getex")?)),
            None => None,
        };
        match expire {
            Some((kind, at)) if kind.is_absolute() && at <= tx.now_ms() => {
                tx.delete(key)?;
                tx.notify(notify::GENERIC, "del", key);
            }
            Some((_, at)) => {
                let new = KeyMeta { expire_ms: at, ..meta.clone() };
                tx.put_meta(key, Some(&meta), &new);
                tx.notify(notify::GENERIC, "expire", key);
            }
            None if opts.persist && meta.expire_ms != 0 => {
                let new = KeyMeta { expire_ms: 0, ..meta.clone() };
                tx.put_meta(key, Some(&meta), &new);
                tx.notify(notify::GENERIC, "persist", key);
            }
            None => {}
        }
        Ok(Some(meta.body))
    })?;
    ctx.hit(key, value.is_some());
    Ok(Reply::opt_bulk(value))
}

/// `MGET key [key ...]`
fn mget(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    let keys: Vec<&[u8]> = argv[1..].iter().map(|k| &k[..]).collect();
    let found = ctx.run(|tx| {
        let mut found = Vec::with_capacity(keys.len());
        for key in &keys {
            found.push(tx.meta(key)?);
        }
        Ok(found)
    })?;
    let replies = found
        .into_iter()
        .zip(&keys)
        .map(|(meta, key)| {
            ctx.hit(key, meta.is_some());
            match meta {
                // A key of another type reads as nil, not WRONGTYPE.
                Some(m) if m.key_type == KeyType::String => Reply::bulk(m.body),
                _ => Reply::Nil,
            }
        })
        .collect();
    Ok(Reply::Array(replies))
}

/// `MSET key value [key value ...]`
fn mset(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    let pairs = pairs(argv, 1)?;
    ctx.run(|tx| {
        for (key, value) in &pairs {
            let old = tx.meta(key)?;
            tx.set_string(key, old.as_ref(), value, 0);
            tx.notify(notify::STRING, "set", key);
        }
        Ok(Reply::ok())
    })
}

/// `MSETNX key value [key value ...]`: all or nothing.
fn msetnx(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    let pairs = pairs(argv, 1)?;
    let keys: Vec<&[u8]> = pairs.iter().map(|(k, _)| &k[..]).collect();
    ctx.run(|tx| {
        for key in &keys {
            if tx.meta(key)?.is_some() {
                return Ok(Reply::Integer(0));
            }
        }
        for (key, value) in &pairs {
            // A key repeated in the command exists by its second time.
            let old = tx.meta(key)?;
            tx.set_string(key, old.as_ref(), value, 0);
            tx.notify(notify::STRING, "set", key);
        }
        Ok(Reply::Integer(1))
    })
}

/// `APPEND key value`
fn append(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    let (key, suffix) = (&argv[1], &argv[2]);
    let max = max_bulk_len(ctx);
    ctx.run(|tx| {
        let old = tx.meta_of(key, KeyType::String)?;
        let mut value = match &old {
            Some(meta) => {
                check_length(meta.body.len() as u128 + suffix.len() as u128, max)?;
                meta.body.clone()
            }
            None => Vec::new(),
        };
        value.extend_from_slice(suffix);
        tx.set_string(key, old.as_ref(), &value, kept_ttl(old.as_ref()));
        tx.notify(notify::STRING, "append", key);
        Ok(Reply::Integer(value.len() as i64))
    })
}

/// `STRLEN key`
fn strlen(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    let key = &argv[1];
    let len = ctx.run(|tx| Ok(tx.meta_of(key, KeyType::String)?.map(|m| m.body.len())))?;
    ctx.hit(key, len.is_some());
    Ok(Reply::Integer(len.unwrap_or(0) as i64))
}

/// Adds `delta` to the integer in `key` (Redis's `incrDecrCommand`).
fn incr_by(ctx: &mut Ctx, key: &Bytes, delta: i64) -> CmdResult {
    ctx.run(|tx| {
        let old = tx.meta_of(key, KeyType::String)?;
        let current = match &old {
            Some(meta) => parse_int(&meta.body)?,
            None => 0,
        };
        let value = current.checked_add(delta).ok_or(CmdError::Overflow)?;
        let text = itoa::Buffer::new().format(value).as_bytes().to_vec();
        tx.set_string(key, old.as_ref(), &text, kept_ttl(old.as_ref()));
        tx.notify(notify::STRING, "incrby", key);
        Ok(Reply::Integer(value))
    })
}

/// `INCR key`
fn incr(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    incr_by(ctx, &argv[1], 1)
}

/// `DECR key`
fn decr(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    incr_by(ctx, &argv[1], -1)
}

/// `INCRBY key increment`
fn incrby(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    let delta = parse_int(&argv[2])?;
    incr_by(ctx, &argv[1], delta)
}

/// `DECRBY key decrement`
fn decrby(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    let delta = parse_int(&argv[2])?;
    // -i64::MIN does not exist.
    let delta = delta.checked_neg().ok_or_else(|| CmdError::err("decrement would overflow"))?;
    incr_by(ctx, &argv[1], delta)
}

/// `INCRBYFLOAT key increment`: computed in x87 `long double` and printed
/// with `%.17Lf`, trailing zeros trimmed, as Redis does on x86-64.
fn incrbyfloat(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    let (key, increment) = (&argv[1], &argv[2]);
    ctx.run(|tx| {
        let old = tx.meta_of(key, KeyType::String)?;
        // Redis checks the stored value before the increment.
        let current = match &old {
            Some(meta) => long_double::parse(&meta.body).ok_or(CmdError::NotFloat)?,
            None => LongDouble::ZERO,
        };
        let increment = long_double::parse(increment).ok_or(CmdError::NotFloat)?;
        let sum = long_double::add(current, increment);
        if !sum.is_finite() {
            return Err(CmdError::err("increment would produce NaN or Infinity"));
        }
        let text = long_double::format_human(sum);
        tx.set_string(key, old.as_ref(), text.as_bytes(), kept_ttl(old.as_ref()));
        tx.notify(notify::STRING, "incrbyfloat", key);
        Ok(Reply::bulk(text.into_bytes()))
    })
}

/// Redis's GETRANGE index rule: the inclusive byte range of a string of
/// `len` bytes that `start..=end` names, if any.
fn byte_range(start: i64, end: i64, len: usize) -> Option<(usize, usize)> {
    let len = len as i64;
    if (start < 0 && end < 0 && start > end) || len == 0 {
        return None;
    }
    let start = if start < 0 { (len + start).max(0) } else { start };
    let end = if end < 0 { (len + end).max(0) } else { end.min(len - 1) };
    (start <= end).then_some((start as usize, end as usize))
}

/// `GETRANGE key start end` (and the old name `SUBSTR`)
fn getrange(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    let key = &argv[1];
    let start = parse_int(&argv[2])?;
    let end = parse_int(&argv[3])?;
    let value = ctx.run(|tx| Ok(tx.meta_of(key, KeyType::String)?.map(|m| m.body)))?;
    ctx.hit(key, value.is_some());
    let value = value.unwrap_or_default();
    Ok(match byte_range(start, end, value.len()) {
        Some((s, e)) => Reply::bulk(value[s..=e].to_vec()),
        None => Reply::bulk(Bytes::new()),
    })
}

/// `SETRANGE key offset value`
fn setrange(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    let (key, patch) = (&argv[1], &argv[3]);
    let offset = parse_int(&argv[2])?;
    if offset < 0 {
        return Err(CmdError::err("offset is out of range"));
    }
    let max = max_bulk_len(ctx);
    ctx.run(|tx| {
        let old = tx.meta_of(key, KeyType::String)?;
        if patch.is_empty() {
            // Nothing to write: not even a missing key is created.
            return Ok(Reply::Integer(old.map_or(0, |m| m.body.len() as i64)));
        }
        check_length(offset as u128 + patch.len() as u128, max)?;
        let mut value = old.as_ref().map_or_else(Vec::new, |m| m.body.clone());
        let offset = offset as usize;
        if value.len() < offset + patch.len() {
            value.resize(offset + patch.len(), 0);
        }
        value[offset..offset + patch.len()].copy_from_slice(patch);
        tx.set_string(key, old.as_ref(), &value, kept_ttl(old.as_ref()));
        tx.notify(notify::STRING, "setrange", key);
        Ok(Reply::Integer(value.len() as i64))
    })
}

/// `LCS key1 key2 [LEN] [IDX] [MINMATCHLEN len] [WITHMATCHLEN]`
fn lcs(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    let (key_a, key_b) = (&argv[1], &argv[2]);
    let max = max_bulk_len(ctx);
    let (a, b) = ctx.run(|tx| Ok((tx.meta(key_a)?, tx.meta(key_b)?)))?;
    ctx.hit(key_a, a.is_some());
    ctx.hit(key_b, b.is_some());
    // Redis reads the keys before it parses the options.
    let string_of = |meta: Option<KeyMeta>| match meta {
        Some(m) if m.key_type != KeyType::String => Err(CmdError::err("The specified keys must contain string values")),
        Some(m) => Ok(m.body),
        None => Ok(Vec::new()),
    };
    let (a, b) = match (string_of(a), string_of(b)) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => return Err(e),
    };
    let (mut get_len, mut get_idx, mut with_match_len, mut min_match_len) = (false, false, false, 0i64);
    let mut i = 3;
    while i < argv.len() {
        let opt = &argv[i];
        let is = |word: &str| opt.eq_ignore_ascii_case(word.as_bytes());
        if is("IDX") {
            get_idx = true;
        } else if is("LEN") {
            get_len = true;
        } else if is("WITHMATCHLEN") {
            with_match_len = true;
        } else if is("MINMATCHLEN") && i + 1 < argv.len() {
            min_match_len = parse_int(&argv[i + 1])?.max(0);
            i += 1;
        } else {
            return Err(CmdError::Syntax);
        }
        i += 1;
    }
    if get_idx && get_len {
        return Err(CmdError::err("If you want both the length and indexes, please just use IDX."));
    }
    let cells = (a.len() as u128 + 1) * (b.len() as u128 + 1) * 4;
    if cells > max as u128 {
        return Err(CmdError::err("Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len"));
    }
    let result = lcs_compute(&a, &b);
    if get_idx {
        let matches = result
            .ranges
            .iter()
            .filter(|r| min_match_len == 0 || r.len as i64 >= min_match_len)
            .map(|r| {
                let mut item = vec![
                    Reply::Array(vec![Reply::Integer(r.a.0 as i64), Reply::Integer(r.a.1 as i64)]),
                    Reply::Array(vec![Reply::Integer(r.b.0 as i64), Reply::Integer(r.b.1 as i64)]),
                ];
                if with_match_len {
                    item.push(Reply::Integer(r.len as i64));
                }
                Reply::Array(item)
            })
            .collect();
        Ok(Reply::Map(vec![
            (Reply::bulk_str("matches"), Reply::Array(matches)),
            (Reply::bulk_str("len"), Reply::Integer(result.text.len() as i64)),
        ]))
    } else if get_len {
        Ok(Reply::Integer(result.text.len() as i64))
    } else {
        Ok(Reply::bulk(result.text))
    }
}

/// One common run of LCS: inclusive index ranges in each string.
#[derive(Debug, PartialEq, Eq)]
struct LcsRange {
    a: (usize, usize),
    b: (usize, usize),
    len: usize,
}

struct LcsResult {
    text: Vec<u8>,
    /// From the end of the strings backwards, as Redis emits them.
    ranges: Vec<LcsRange>,
}

/// The longest common subsequence by Redis's dynamic programming table and
/// its exact backtracking order (ties go to `b`'s shorter prefix).
fn lcs_compute(a: &[u8], b: &[u8]) -> LcsResult {
    let width = b.len() + 1;
    let mut table = vec![0u32; (a.len() + 1) * width];
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            table[i * width + j] = if a[i - 1] == b[j - 1] {
                table[(i - 1) * width + j - 1] + 1
            } else {
                table[(i - 1) * width + j].max(table[i * width + j - 1])
            };
        }
    }
    let total = table[a.len() * width + b.len()] as usize;
    let mut text = vec![0u8; total];
    let mut ranges = Vec::new();
    let mut current: Option<LcsRange> = None;
    let (mut i, mut j, mut idx) = (a.len(), b.len(), total);
    while i > 0 && j > 0 {
        let mut emit = false;
        if a[i - 1] == b[j - 1] {
            text[idx - 1] = a[i - 1];
            match &mut current {
                None => current = Some(LcsRange { a: (i - 1, i - 1), b: (j - 1, j - 1), len: 1 }),
                // After a match the walk always steps diagonally, so a new
                // match extends the current range backwards.
                Some(r) => {
                    r.a.0 -= 1;
                    r.b.0 -= 1;
                    r.len += 1;
                }
            }
            if current.as_ref().is_some_and(|r| r.a.0 == 0 || r.b.0 == 0) {
                emit = true;
            }
            idx -= 1;
            i -= 1;
            j -= 1;
        } else {
            if table[(i - 1) * width + j] > table[i * width + j - 1] {
                i -= 1;
            } else {
                j -= 1;
            }
            emit = current.is_some();
        }
        if emit {
            ranges.extend(current.take());
        }
    }
    LcsResult { text, ranges }
}

const BIT_OFFSET_ERR: &str = "bit offset is not an integer or out of range";
const BIT_VALUE_ERR: &str = "bit is not an integer or out of range";

/// Redis's `getBitOffsetFromArgument`: a bit offset below
/// `8 * proto-max-bulk-len`; with `field_bits`, `#N` means N fields of
/// that width (BITFIELD).
fn parse_bit_offset(arg: &[u8], field_bits: Option<u32>, max_bulk: u64) -> Result<u64, CmdError> {
    let err = || CmdError::err(BIT_OFFSET_ERR);
    let (digits, multiplier) = match field_bits {
        Some(bits) if arg.len() > 1 && arg[0] == b'#' => (&arg[1..], bits as i64),
        _ => (arg, 1),
    };
    // Redis multiplies without an overflow check; wrapping keeps its answer.
    let offset = parse_i64(digits).ok_or_else(err)?.wrapping_mul(multiplier);
    if offset < 0 || (offset >> 3) as u64 >= max_bulk {
        return Err(err());
    }
    Ok(offset as u64)
}

/// The bit at `offset` (most significant bit of byte 0 first); zero past
/// the end.
fn bit_at(value: &[u8], offset: u64) -> bool {
    let byte = (offset >> 3) as usize;
    byte < value.len() && value[byte] & (0x80 >> (offset & 7)) != 0
}

/// `SETBIT key offset value`
fn setbit(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    let key = &argv[1];
    let offset = parse_bit_offset(&argv[2], None, max_bulk_len(ctx))?;
    let on = parse_i64(&argv[3]).ok_or_else(|| CmdError::err(BIT_VALUE_ERR))?;
    if on & !1 != 0 {
        return Err(CmdError::err(BIT_VALUE_ERR));
    }
    ctx.run(|tx| {
        let old = tx.meta_of(key, KeyType::String)?;
        let mut value = old.as_ref().map_or_else(Vec::new, |m| m.body.clone());
        let byte = (offset >> 3) as usize;
        let was = bit_at(&value, offset);
        if value.len() <= byte {
            value.resize(byte + 1, 0);
        }
        let mask = 0x80u8 >> (offset & 7);
        if on == 1 {
            value[byte] |= mask;
        } else {
            value[byte] &= !mask;
        }
        if old.as_ref().is_none_or(|m| m.body != value) {
            tx.set_string(key, old.as_ref(), &value, kept_ttl(old.as_ref()));
            tx.notify(notify::STRING, "setbit", key);
        }
        Ok(Reply::Integer(was as i64))
    })
}

/// `GETBIT key offset`
fn getbit(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    let key = &argv[1];
    let offset = parse_bit_offset(&argv[2], None, max_bulk_len(ctx))?;
    let value = ctx.run(|tx| Ok(tx.meta_of(key, KeyType::String)?.map(|m| m.body)))?;
    ctx.hit(key, value.is_some());
    Ok(Reply::Integer(value.is_some_and(|v| bit_at(&v, offset)) as i64))
}

/// Reads a string key for a bit command: None when missing, WRONGTYPE
/// for other types. Counts the keyspace hit or miss.
fn read_string(ctx: &mut Ctx, key: &Bytes) -> Result<Option<Vec<u8>>, CmdError> {
    let value = ctx.run(|tx| Ok(tx.meta_of(key, KeyType::String)?.map(|m| m.body)))?;
    ctx.hit(key, value.is_some());
    Ok(value)
}

/// `BYTE` or `BIT`: whether a range counts bits.
fn parse_bit_unit(arg: &[u8]) -> Result<bool, CmdError> {
    if arg.eq_ignore_ascii_case(b"BIT") {
        Ok(true)
    } else if arg.eq_ignore_ascii_case(b"BYTE") {
        Ok(false)
    } else {
        Err(CmdError::Syntax)
    }
}

/// Clamps a start/end pair to `0..total` the way BITCOUNT and BITPOS do;
/// None when the range is empty.
fn clamp_range(start: i64, end: i64, total: i64) -> Option<(u64, u64)> {
    let start = if start < 0 { (total + start).max(0) } else { start };
    let end = if end < 0 { (total + end).max(0) } else { end };
    let end = end.min(total - 1);
    (start <= end).then_some((start as u64, end as u64))
}

/// Set bits in the inclusive bit range `first..=last`.
fn count_bits(value: &[u8], first: u64, last: u64) -> u64 {
    let (first_byte, last_byte) = ((first >> 3) as usize, (last >> 3) as usize);
    let head_mask = 0xFFu8 >> (first & 7);
    let tail_mask = 0xFFu8 << (7 - (last & 7));
    if first_byte == last_byte {
        return (value[first_byte] & head_mask & tail_mask).count_ones() as u64;
    }
    let middle: u64 = value[first_byte + 1..last_byte].iter().map(|b| b.count_ones() as u64).sum();
    middle + (value[first_byte] & head_mask).count_ones() as u64 + (value[last_byte] & tail_mask).count_ones() as u64
}

/// The first bit equal to `bit` in the inclusive bit range `first..=last`.
fn find_bit(value: &[u8], bit: bool, first: u64, last: u64) -> Option<u64> {
    let mut pos = first;
    // Bit by bit up to a byte boundary, then whole bytes.
    while pos <= last {
        if pos & 7 == 0 && pos + 7 <= last {
            let byte = value[(pos >> 3) as usize];
            let skip = if bit { byte == 0 } else { byte == 0xFF };
            if skip {
                pos += 8;
                continue;
            }
        }
        if bit_at(value, pos) == bit {
            return Some(pos);
        }
        pos += 1;
    }
    None
}

/// `BITCOUNT key [start end [BYTE | BIT]]`
fn bitcount(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    // Redis 7.0 looks the key up before it reads the range.
    let Some(value) = read_string(ctx, &argv[1])? else {
        return Ok(Reply::Integer(0));
    };
    let len = value.len() as i64;
    let range = match argv.len() {
        2 => clamp_range(0, len * 8 - 1, len * 8),
        4 | 5 => {
            let start = parse_int(&argv[2])?;
            let end = parse_int(&argv[3])?;
            if start < 0 && end < 0 && start > end {
                return Ok(Reply::Integer(0));
            }
            let is_bit = argv.len() == 5 && parse_bit_unit(&argv[4])?;
            if is_bit {
                clamp_range(start, end, len * 8)
            } else {
                clamp_range(start, end, len).map(|(s, e)| (s * 8, e * 8 + 7))
            }
        }
        _ => return Err(CmdError::Syntax),
    };
    Ok(Reply::Integer(range.map_or(0, |(first, last)| count_bits(&value, first, last)) as i64))
}

/// `BITPOS key bit [start [end [BYTE | BIT]]]`
fn bitpos(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    let bit = parse_int(&argv[2])?;
    if bit != 0 && bit != 1 {
        return Err(CmdError::err("The bit argument must be 1 or 0."));
    }
    let bit = bit == 1;
    // A missing key is an endless run of zeros.
    let Some(value) = read_string(ctx, &argv[1])? else {
        return Ok(Reply::Integer(if bit { -1 } else { 0 }));
    };
    let len = value.len() as i64;
    let (range, end_given) = match argv.len() {
        3 => (clamp_range(0, len * 8 - 1, len * 8), false),
        4..=6 => {
            let start = parse_int(&argv[3])?;
            // Redis reads the unit before the end.
            let is_bit = argv.len() == 6 && parse_bit_unit(&argv[5])?;
            let end = if argv.len() >= 5 { Some(parse_int(&argv[4])?) } else { None };
            let range = if is_bit {
                clamp_range(start, end.unwrap_or(len * 8 - 1), len * 8)
            } else {
                clamp_range(start, end.unwrap_or(len - 1), len).map(|(s, e)| (s * 8, e * 8 + 7))
            };
            (range, end.is_some())
        }
        _ => return Err(CmdError::Syntax),
    };
    let Some((first, last)) = range else {
        return Ok(Reply::Integer(-1));
    };
    Ok(Reply::Integer(match find_bit(&value, bit, first, last) {
        Some(pos) => pos as i64,
        // Without an explicit end the string is taken as padded with zeros.
        None if !bit && !end_given => last as i64 + 1,
        None => -1,
    }))
}

/// A BITOP operation.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum BitOp {
    And,
    Or,
    Xor,
    Not,
}

/// BITOP over byte strings; shorter inputs are padded with zero bytes.
fn bitop_apply(op: BitOp, sources: &[Vec<u8>]) -> Vec<u8> {
    let max_len = sources.iter().map(Vec::len).max().unwrap_or(0);
    let byte = |src: &Vec<u8>, i: usize| src.get(i).copied().unwrap_or(0);
    (0..max_len)
        .map(|i| {
            let first = byte(&sources[0], i);
            sources[1..].iter().fold(if op == BitOp::Not { !first } else { first }, |acc, src| match op {
                BitOp::And => acc & byte(src, i),
                BitOp::Or => acc | byte(src, i),
                BitOp::Xor => acc ^ byte(src, i),
                BitOp::Not => acc,
            })
        })
        .collect()
}

/// `BITOP AND | OR | XOR | NOT destkey key [key ...]`
fn bitop(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    let op = [("AND", BitOp::And), ("OR", BitOp::Or), ("XOR", BitOp::Xor), ("NOT", BitOp::Not)]
        .into_iter()
        .find(|(name, _)| argv[1].eq_ignore_ascii_case(name.as_bytes()))
        .map(|(_, op)| op)
        .ok_or(CmdError::Syntax)?;
    if op == BitOp::Not && argv.len() != 4 {
        return Err(CmdError::err("BITOP NOT must be called with a single source key."));
    }
    let dest = &argv[2];
    let (len, hits) = ctx.run(|tx| {
        let mut sources = Vec::with_capacity(argv.len() - 3);
        let mut hits = Vec::with_capacity(argv.len() - 3);
        for key in &argv[3..] {
            let value = tx.meta_of(key, KeyType::String)?;
            hits.push(value.is_some());
            sources.push(value.map_or_else(Vec::new, |m| m.body));
        }
        let result = bitop_apply(op, &sources);
        if result.is_empty() {
            if tx.delete(dest)? {
                tx.notify(notify::GENERIC, "del", dest);
            }
        } else {
            let old = tx.meta(dest)?;
            tx.set_string(dest, old.as_ref(), &result, 0);
            tx.notify(notify::STRING, "set", dest);
        }
        Ok((result.len(), hits))
    })?;
    for (key, hit) in argv[3..].iter().zip(hits) {
        ctx.hit(key, hit);
    }
    Ok(Reply::Integer(len as i64))
}

/// What BITFIELD does on overflow.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Overflow {
    Wrap,
    Sat,
    Fail,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum FieldOp {
    Get,
    Set(i64),
    IncrBy(i64),
}

/// One BITFIELD operation, parsed.
#[derive(Clone, Copy, Debug)]
struct FieldCmd {
    op: FieldOp,
    signed: bool,
    bits: u32,
    offset: u64,
    overflow: Overflow,
}

const BITFIELD_TYPE_ERR: &str =
    "Invalid bitfield type. Use something like i16 u8. Note that u64 is not supported but i64 is.";

/// `i1`..`i64` or `u1`..`u63` (lower case, as Redis wants).
fn parse_field_type(arg: &[u8]) -> Result<(bool, u32), CmdError> {
    let err = || CmdError::err(BITFIELD_TYPE_ERR);
    let signed = match arg.first() {
        Some(b'i') => true,
        Some(b'u') => false,
        _ => return Err(err()),
    };
    // Redis reads the width as a C string: it stops at a NUL byte.
    let digits = &arg[1..];
    let digits = &digits[..digits.iter().position(|&b| b == 0).unwrap_or(digits.len())];
    let bits = parse_i64(digits).ok_or_else(err)?;
    if bits < 1 || bits > if signed { 64 } else { 63 } {
        return Err(err());
    }
    Ok((signed, bits as u32))
}

/// Parses the operations of BITFIELD / BITFIELD_RO.
fn parse_bitfield(argv: &[Bytes], max_bulk: u64) -> Result<Vec<FieldCmd>, CmdError> {
    let mut cmds = Vec::new();
    let mut overflow = Overflow::Wrap;
    let mut j = 2;
    while j < argv.len() {
        let remaining = argv.len() - j - 1;
        let sub = &argv[j];
        let is = |word: &str| sub.eq_ignore_ascii_case(word.as_bytes());
        let op_name = if is("GET") && remaining >= 2 {
            "GET"
        } else if is("SET") && remaining >= 3 {
            "SET"
        } else if is("INCRBY") && remaining >= 3 {
            "INCRBY"
        } else if is("OVERFLOW") && remaining >= 1 {
            let kind = &argv[j + 1];
            overflow = [("WRAP", Overflow::Wrap), ("SAT", Overflow::Sat), ("FAIL", Overflow::Fail)]
                .into_iter()
                .find(|(n, _)| kind.eq_ignore_ascii_case(n.as_bytes()))
                .map(|(_, o)| o)
                .ok_or_else(|| CmdError::err("Invalid OVERFLOW type specified"))?;
            j += 2;
            continue;
        } else {
            return Err(CmdError::Syntax);
        };
        let (signed, bits) = parse_field_type(&argv[j + 1])?;
        let offset = parse_bit_offset(&argv[j + 2], Some(bits), max_bulk)?;
        let op = match op_name {
            "GET" => FieldOp::Get,
            "SET" => FieldOp::Set(parse_int(&argv[j + 3])?),
            _ => FieldOp::IncrBy(parse_int(&argv[j + 3])?),
        };
        cmds.push(FieldCmd { op, signed, bits, offset, overflow });
        j += if op == FieldOp::Get { 3 } else { 4 };
    }
    Ok(cmds)
}

/// The `bits`-wide unsigned field at bit `offset` (zero past the end).
fn get_unsigned_field(value: &[u8], offset: u64, bits: u32) -> u64 {
    (0..bits as u64).fold(0u64, |acc, i| (acc << 1) | bit_at(value, offset + i) as u64)
}

/// The field read as two's complement.
fn get_signed_field(value: &[u8], offset: u64, bits: u32) -> i64 {
    let raw = get_unsigned_field(value, offset, bits);
    if bits < 64 && raw & (1 << (bits - 1)) != 0 {
        (raw | (u64::MAX << bits)) as i64
    } else {
        raw as i64
    }
}

/// Writes the low `bits` bits of `field` at bit `offset`; `value` must be
/// long enough.
fn set_field(value: &mut [u8], offset: u64, bits: u32, field: u64) {
    for i in 0..bits as u64 {
        let on = (field >> (bits as u64 - 1 - i)) & 1 == 1;
        let pos = offset + i;
        let mask = 0x80u8 >> (pos & 7);
        let byte = &mut value[(pos >> 3) as usize];
        if on {
            *byte |= mask;
        } else {
            *byte &= !mask;
        }
    }
}

/// Redis's `checkUnsignedBitfieldOverflow`: whether `value + incr`
/// overflows a `bits`-wide unsigned field, and the value WRAP or SAT gives.
fn unsigned_overflow(value: u64, incr: i64, bits: u32, overflow: Overflow) -> Option<u64> {
    let max = if bits == 64 { u64::MAX } else { (1u64 << bits) - 1 };
    let max_incr = max.wrapping_sub(value) as i64;
    let min_incr = (value as i64).wrapping_neg();
    let wrap = || value.wrapping_add(incr as u64) & !(u64::MAX.checked_shl(bits).unwrap_or(0));
    if value > max || (incr > 0 && incr > max_incr) {
        Some(if overflow == Overflow::Wrap { wrap() } else { max })
    } else if incr < 0 && incr < min_incr {
        Some(if overflow == Overflow::Wrap { wrap() } else { 0 })
    } else {
        None
    }
}

/// Redis's `checkSignedBitfieldOverflow`, quirks included (its limits
/// are computed with wrapping arithmetic).
fn signed_overflow(value: i64, incr: i64, bits: u32, overflow: Overflow) -> Option<i64> {
    let max = if bits == 64 { i64::MAX } else { (1i64 << (bits - 1)) - 1 };
    let min = -max - 1;
    let max_incr = (max as u64).wrapping_sub(value as u64) as i64;
    let min_incr = min.wrapping_sub(value);
    let wrap = || {
        let mut c = (value as u64).wrapping_add(incr as u64);
        if bits < 64 {
            let mask = u64::MAX << bits;
            if c & (1 << (bits - 1)) != 0 {
                c |= mask;
            } else {
                c &= !mask;
            }
        }
        c as i64
    };
    if value > max || (bits != 64 && incr > max_incr) || (value >= 0 && incr > 0 && incr > max_incr) {
        Some(if overflow == Overflow::Wrap { wrap() } else { max })
    } else if value < min || (bits != 64 && incr < min_incr) || (value < 0 && incr < 0 && incr < min_incr) {
        Some(if overflow == Overflow::Wrap { wrap() } else { min })
    } else {
        None
    }
}

/// Runs one SET or INCRBY on `value`: the reply value and whether it was
/// written (None when OVERFLOW FAIL refused it).
fn bitfield_write(value: &mut [u8], cmd: &FieldCmd) -> Option<i64> {
    let (bits, offset) = (cmd.bits, cmd.offset);
    if cmd.signed {
        let old = get_signed_field(value, offset, bits);
        let (new, overflowed, reply) = match cmd.op {
            FieldOp::IncrBy(incr) => {
                let limit = signed_overflow(old, incr, bits, cmd.overflow);
                let new = limit.unwrap_or_else(|| old.wrapping_add(incr));
                (new, limit.is_some(), new)
            }
            FieldOp::Set(new) => {
                let limit = signed_overflow(new, 0, bits, cmd.overflow);
                (limit.unwrap_or(new), limit.is_some(), old)
            }
            FieldOp::Get => unreachable!("GET is not a write"),
        };
        if overflowed && cmd.overflow == Overflow::Fail {
            return None;
        }
        set_field(value, offset, bits, new as u64);
        Some(reply)
    } else {
        let old = get_unsigned_field(value, offset, bits);
        let (new, overflowed, reply) = match cmd.op {
            FieldOp::IncrBy(incr) => {
                let limit = unsigned_overflow(old, incr, bits, cmd.overflow);
                let new = limit.unwrap_or_else(|| old.wrapping_add(incr as u64));
                (new, limit.is_some(), new)
            }
            FieldOp::Set(new) => {
                let limit = unsigned_overflow(new as u64, 0, bits, cmd.overflow);
                (limit.unwrap_or(new as u64), limit.is_some(), old)
            }
            FieldOp::Get => unreachable!("GET is not a write"),
        };
        if overflowed && cmd.overflow == Overflow::Fail {
            return None;
        }
        set_field(value, offset, bits, new);
        Some(reply as i64)
    }
}

fn bitfield_read(value: &[u8], cmd: &FieldCmd) -> i64 {
    if cmd.signed {
        get_signed_field(value, cmd.offset, cmd.bits)
    } else {
        get_unsigned_field(value, cmd.offset, cmd.bits) as i64
    }
}

/// The shared body of BITFIELD and BITFIELD_RO.
fn bitfield_generic(ctx: &mut Ctx, argv: &[Bytes], read_only_command: bool) -> CmdResult {
    let key = &argv[1];
    let cmds = parse_bitfield(argv, max_bulk_len(ctx))?;
    let writes: Vec<&FieldCmd> = cmds.iter().filter(|c| c.op != FieldOp::Get).collect();
    if writes.is_empty() {
        let value = read_string(ctx, key)?.unwrap_or_default();
        return Ok(Reply::Array(cmds.iter().map(|c| Reply::Integer(bitfield_read(&value, c))).collect()));
    }
    if read_only_command {
        return Err(CmdError::err("BITFIELD_RO only supports the GET subcommand"));
    }
    let highest = writes.iter().map(|c| c.offset + c.bits as u64 - 1).max().unwrap_or(0);
    ctx.run(|tx| {
        let old = tx.meta_of(key, KeyType::String)?;
        let mut value = old.as_ref().map_or_else(Vec::new, |m| m.body.clone());
        // Redis grows the string to the farthest write first, even when
        // OVERFLOW FAIL then refuses every write.
        let needed = (highest >> 3) as usize + 1;
        if value.len() < needed {
            value.resize(needed, 0);
        }
        let mut changes = 0;
        let replies = cmds
            .iter()
            .map(|c| match c.op {
                FieldOp::Get => Reply::Integer(bitfield_read(&value, c)),
                _ => bitfield_write(&mut value, c).inspect(|_| changes += 1).map_or(Reply::Nil, Reply::Integer),
            })
            .collect();
        tx.set_string(key, old.as_ref(), &value, kept_ttl(old.as_ref()));
        if changes > 0 {
            tx.notify(notify::STRING, "setbit", key);
        }
        Ok(Reply::Array(replies))
    })
}

/// `BITFIELD key [GET type offset | [OVERFLOW WRAP | SAT | FAIL] SET type offset value | INCRBY type offset increment ...]`
fn bitfield(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    bitfield_generic(ctx, argv, false)
}

/// `BITFIELD_RO key [GET type offset ...]`
fn bitfield_ro(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    bitfield_generic(ctx, argv, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_ranges_follow_getrange() {
        assert_eq!(byte_range(0, -1, 5), Some((0, 4)));
        assert_eq!(byte_range(-3, -1, 5), Some((2, 4)));
        assert_eq!(byte_range(-1, -3, 5), None);
        assert_eq!(byte_range(3, 1, 5), None);
        assert_eq!(byte_range(0, 100, 5), Some((0, 4)));
        assert_eq!(byte_range(-100, 0, 5), Some((0, 0)));
        assert_eq!(byte_range(0, 0, 0), None);
        assert_eq!(byte_range(i64::MIN, i64::MAX, 3), Some((0, 2)));
    }

    #[test]
    fn bits_count_and_search() {
        let v = [0b1010_0000u8, 0xFF, 0x00, 0x01];
        assert_eq!(count_bits(&v, 0, 31), 11);
        assert_eq!(count_bits(&v, 1, 1), 0);
        assert_eq!(count_bits(&v, 2, 9), 3);
        assert_eq!(find_bit(&v, true, 1, 31), Some(2));
        assert_eq!(find_bit(&v, false, 8, 15), None);
        assert_eq!(find_bit(&v, true, 16, 31), Some(31));
        assert_eq!(find_bit(&v, false, 0, 0), None);
    }

    #[test]
    fn bitop_pads_with_zeros() {
        let srcs = vec![vec![0xF0, 0x0F], vec![0xFF]];
        assert_eq!(bitop_apply(BitOp::And, &srcs), vec![0xF0, 0x00]);
        assert_eq!(bitop_apply(BitOp::Or, &srcs), vec![0xFF, 0x0F]);
        assert_eq!(bitop_apply(BitOp::Xor, &srcs), vec![0x0F, 0x0F]);
        assert_eq!(bitop_apply(BitOp::Not, &srcs[..1]), vec![0x0F, 0xF0]);
    }

    #[test]
    fn bitfield_fields_and_overflow() {
        let mut v = vec![0u8; 3];
        set_field(&mut v, 4, 8, 0xAB);
        assert_eq!(v, vec![0x0A, 0xB0, 0]);
        assert_eq!(get_unsigned_field(&v, 4, 8), 0xAB);
        assert_eq!(get_signed_field(&v, 4, 8), 0xABu8 as i8 as i64);
        assert_eq!(get_unsigned_field(&v, 20, 12), 0);
        assert_eq!(unsigned_overflow(250, 10, 8, Overflow::Wrap), Some(4));
        assert_eq!(unsigned_overflow(250, 10, 8, Overflow::Sat), Some(255));
        assert_eq!(unsigned_overflow(5, -10, 8, Overflow::Sat), Some(0));
        assert_eq!(unsigned_overflow(5, 10, 8, Overflow::Sat), None);
        // SET u8 -1 with SAT saturates to the maximum, as in Redis.
        assert_eq!(unsigned_overflow(u64::MAX, 0, 8, Overflow::Sat), Some(255));
        assert_eq!(signed_overflow(127, 1, 8, Overflow::Wrap), Some(-128));
        assert_eq!(signed_overflow(-128, -1, 8, Overflow::Sat), Some(-128));
        assert_eq!(signed_overflow(i64::MAX, 1, 64, Overflow::Wrap), Some(i64::MIN));
        assert_eq!(signed_overflow(0, i64::MAX, 64, Overflow::Wrap), None);
        // Redis's wrapping limit arithmetic: SET i8 to i64::MIN saturates high.
        assert_eq!(signed_overflow(i64::MIN, 0, 8, Overflow::Sat), Some(127));
    }

    #[test]
    fn lcs_ranges_like_redis() {
        let r = lcs_compute(b"ohmytext", b"mynewtext");
        assert_eq!(r.text, b"mytext");
        assert_eq!(
            r.ranges,
            vec![LcsRange { a: (4, 7), b: (5, 8), len: 4 }, LcsRange { a: (2, 3), b: (0, 1), len: 2 }]
        );
        assert!(lcs_compute(b"", b"abc").text.is_empty());
    }

    #[test]
    fn bit_offsets() {
        let max = 512 * 1024 * 1024;
        assert_eq!(parse_bit_offset(b"7", None, max), Ok(7));
        assert_eq!(parse_bit_offset(b"#2", Some(8), max), Ok(16));
        assert!(parse_bit_offset(b"#2", None, max).is_err());
        assert!(parse_bit_offset(b"-1", None, max).is_err());
        assert_eq!(parse_bit_offset(b"4294967295", None, max), Ok(4294967295));
        assert!(parse_bit_offset(b"4294967296", None, max).is_err());
    }
}
