//! Sorted-set commands (memory engine). Every handler parses its arguments
//! into typed values first (Redis reports syntax and number errors before
//! it looks at the key), then runs inside the command's transaction, reading the
//! `SortedSet` and applying `ZSetOp` effects.

use std::collections::HashMap;

use bytes::Bytes;
use rand::Rng;
use strata_engines::memory::{MemEntry, MemOp, MemValue, SortedSet, ZSetOp};
use strata_engines::KeyType;

use super::args::{parse_float, parse_float_opt, parse_int, parse_score_bound, MultiPop};
use super::{block_client, pop_first_or_block, CommandTable, Ctx};
use crate::blocking::parse_timeout;
use crate::cursor::{member_position, next_by_position, parse_cursor, ScanOptions};
use crate::error::{CmdError, CmdResult};
use crate::glob::glob_match;
use crate::keyspace::Tx;
use crate::notify;
use crate::protocol::Reply;

pub fn register(table: &mut CommandTable) {
    table.register("zadd", zadd);
    table.register("zincrby", zincrby);
    table.register("zrem", zrem);
    table.register("zcard", zcard);
    table.register("zscore", zscore);
    table.register("zmscore", zmscore);
    table.register("zrank", zrank);
    table.register("zrevrank", zrevrank);
    table.register("zcount", zcount);
    table.register("zlexcount", zlexcount);
    table.register("zrange", zrange);
    table.register("zrangestore", zrangestore);
    table.register("zrevrange", zrevrange);
    table.register("zrangebyscore", zrangebyscore);
    table.register("zrevrangebyscore", zrevrangebyscore);
    table.register("zrangebylex", zrangebylex);
    table.register("zrevrangebylex", zrevrangebylex);
    table.register("zremrangebyrank", zremrangebyrank);
    table.register("zremrangebyscore", zremrangebyscore);
    table.register("zremrangebylex", zremrangebylex);
    table.register("zpopmin", zpopmin);
    table.register("zpopmax", zpopmax);
    table.register("zmpop", zmpop);
    table.register("bzpopmin", bzpopmin);
    table.register("bzpopmax", bzpopmax);
    table.register("bzmpop", bzmpop);
    table.register("zrandmember", zrandmember);
    table.register("zunion", zunion);
    table.register("zinter", zinter);
    table.register("zdiff", zdiff);
    table.register("zunionstore", zunionstore);
    table.register("zinterstore", zinterstore);
    table.register("zdiffstore", zdiffstore);
    table.register("zintercard", zintercard);
    table.register("zscan", zscan);
}

// ---------------------------------------------------------------- helpers

/// The sorted set at `key`; None if missing; WRONGTYPE for another type.
fn zset_at<'t>(tx: &'t mut Tx, key: &[u8]) -> Result<Option<&'t SortedSet>, CmdError> {
    Ok(tx.mem_value(key, KeyType::ZSet)?.map(|value| match value {
        MemValue::ZSet(zset) => zset,
        other => unreachable!("mem_value returned a {:?} for a zset", other.key_type()),
    }))
}

fn zset_op(key: &Bytes, op: ZSetOp) -> MemOp {
    MemOp::ZSet { key: key.clone(), op }
}

/// Members with optional scores: flat in RESP2 (and without scores), a
/// [member, score] pair per element in RESP3.
fn scored_reply(items: Vec<(f64, Bytes)>, withscores: bool, resp3: bool) -> Reply {
    if !withscores {
        return Reply::Array(items.into_iter().map(|(_, m)| Reply::Bulk(m)).collect());
    }
    if resp3 {
        Reply::Array(items.into_iter().map(|(s, m)| Reply::Array(vec![Reply::Bulk(m), Reply::Double(s)])).collect())
    } else {
        Reply::Array(items.into_iter().flat_map(|(s, m)| [Reply::Bulk(m), Reply::Double(s)]).collect())
    }
}

/// Redis's `getRangeLongFromObjectOrReply` with a message: an integer of
/// at least `min`, else `text` (for non-integers too).
fn parse_range_int(arg: &[u8], min: i64, text: &str) -> Result<i64, CmdError> {
    match parse_int(arg) {
        Ok(value) if value >= min => Ok(value),
        _ => Err(CmdError::err(text)),
    }
}

/// A score interval (`zslParseRange`): `(` makes an end exclusive.
#[derive(Clone, Copy, Debug)]
struct ScoreRange {
    min: f64,
    min_ex: bool,
    max: f64,
    max_ex: bool,
}

impl ScoreRange {
    fn parse(min: &[u8], max: &[u8]) -> Result<ScoreRange, CmdError> {
        let bound = |arg: &[u8]| -> Option<(f64, bool)> {
            match arg.strip_prefix(b"(") {
                Some(rest) => Some((parse_score_bound(rest)?, true)),
                None => Some((parse_score_bound(arg)?, false)),
            }
        };
        let error = || CmdError::err("min or max is not a float");
        let (min, min_ex) = bound(min).ok_or_else(error)?;
        let (max, max_ex) = bound(max).ok_or_else(error)?;
        Ok(ScoreRange { min, min_ex, max, max_ex })
    }

    /// The ranks `start..end` of the elements in the interval.
    fn ranks(&self, zset: &SortedSet) -> (usize, usize) {
        let start = zset.count_while(|s, _| s < self.min || (self.min_ex && s == self.min));
        let end = zset.count_while(|s, _| s < self.max || (!self.max_ex && s == self.max));
        (start, end.max(start))
    }
}

/// One end of a lex interval (`zslParseLexRangeItem`).
#[derive(Clone, Debug)]
enum LexBound {
    NegInf,
    PosInf,
    Incl(Bytes),
    Excl(Bytes),
}

#[derive(Clone, Debug)]
struct LexRange {
    min: LexBound,
    max: LexBound,
}

impl LexRange {
    fn parse(min: &Bytes, max: &Bytes) -> Result<LexRange, CmdError> {
        let bound = |arg: &Bytes| match arg.first() {
            Some(b'-') if arg.len() == 1 => Some(LexBound::NegInf),
            Some(b'+') if arg.len() == 1 => Some(LexBound::PosInf),
            Some(b'[') => Some(LexBound::Incl(arg.slice(1..))),
            Some(b'(') => Some(LexBound::Excl(arg.slice(1..))),
            _ => None,
        };
        let error = || CmdError::err("min or max not valid string range item");
        Ok(LexRange { min: bound(min).ok_or_else(error)?, max: bound(max).ok_or_else(error)? })
    }

    /// The ranks `start..end` of the elements in the interval (members are
    /// assumed to share one score, as Redis assumes).
    fn ranks(&self, zset: &SortedSet) -> (usize, usize) {
        let start = zset.count_while(|_, m| match &self.min {
            LexBound::NegInf => false,
            LexBound::PosInf => true,
            LexBound::Incl(x) => m < x.as_ref(),
            LexBound::Excl(x) => m <= x.as_ref(),
        });
        let end = zset.count_while(|_, m| match &self.max {
            LexBound::NegInf => false,
            LexBound::PosInf => true,
            LexBound::Incl(x) => m <= x.as_ref(),
            LexBound::Excl(x) => m < x.as_ref(),
        });
        (start, end.max(start))
    }
}

/// Redis's rank normalisation (negative counts from the end); the
/// ascending ranks `start..end`, empty when out of range.
fn rank_range(start: i64, stop: i64, len: usize) -> (usize, usize) {
    let len = len as i64;
    let mut start = if start < 0 { len + start } else { start };
    let mut stop = if stop < 0 { len + stop } else { stop };
    if start < 0 {
        start = 0;
    }
    if start > stop || start >= len {
        return (0, 0);
    }
    if stop >= len {
        stop = len - 1;
    }
    (start as usize, stop as usize + 1)
}

// ---------------------------------------------------------------- ZADD

#[derive(Default, Clone, Copy)]
struct AddFlags {
    nx: bool,
    xx: bool,
    gt: bool,
    lt: bool,
    ch: bool,
    incr: bool,
}

/// The outcome of ZADD/ZINCRBY on one key.
fn zadd_generic(ctx: &mut Ctx, key: &Bytes, flags: AddFlags, pairs: Vec<(f64, Bytes)>) -> CmdResult {
    let nan = || CmdError::err("resulting score is not a number (NaN)");
    ctx.run(|tx| {
        let zset = zset_at(tx, key)?;
        let (mut added, mut updated, mut processed) = (0, 0, 0);
        let mut last_score = 0.0;
        // Sized and hashed for a command's few pairs (SipHash and growing
        // from empty were a tenth of a one-pair ZADD's instructions).
        let mut changes: HashMap<Bytes, f64, foldhash::fast::RandomState> =
            HashMap::with_capacity_and_hasher(pairs.len(), Default::default());
        let mut order: Vec<Bytes> = Vec::with_capacity(pairs.len());
        if zset.is_some() || !flags.xx {
            for (given, member) in pairs {
                // Small sets in Redis (listpack) store -0 as the integer 0
                // (ZINCRBY still answers the -0 it computed).
                let score = given + 0.0;
                let current = changes.get(&member).copied().or_else(|| zset.and_then(|z| z.score(&member)));
                let new_score = match current {
                    Some(current) => {
                        if flags.nx {
                            continue;
                        }
                        let score = if flags.incr { score + current } else { score };
                        if score.is_nan() {
                            return Err(nan());
                        }
                        if (flags.lt && score >= current) || (flags.gt && score <= current) {
                            continue;
                        }
                        processed += 1;
                        last_score = score;
                        if score == current {
                            continue;
                        }
                        updated += 1;
                        score
                    }
                    None if flags.xx => continue,
                    None => {
                        added += 1;
                        processed += 1;
                        last_score = given;
                        score
                    }
                };
                if changes.insert(member.clone(), new_score).is_none() {
                    order.push(member);
                }
            }
        }
        if !order.is_empty() {
            let items = order.into_iter().map(|m| (changes[&m], m)).collect();
            tx.mem_apply(zset_op(key, ZSetOp::Add(items)));
            tx.notify(notify::ZSET, if flags.incr { "zincr" } else { "zadd" }, key);
        }
        Ok(if flags.incr {
            if processed > 0 {
                Reply::Double(last_score)
            } else {
                Reply::Nil
            }
        } else {
            Reply::Integer(if flags.ch { added + updated } else { added })
        })
    })
}

/// `ZADD key [NX|XX] [GT|LT] [CH] [INCR] score member [score member ...]`
fn zadd(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    let mut flags = AddFlags::default();
    let mut index = 2;
    while index < argv.len() {
        let option = argv[index].to_ascii_uppercase();
        match option.as_slice() {
            b"NX" => flags.nx = true,
            b"XX" => flags.xx = true,
            b"GT" => flags.gt = true,
            b"LT" => flags.lt = true,
            b"CH" => flags.ch = true,
            b"INCR" => flags.incr = true,
            _ => break,
        }
        index += 1;
    }
    let rest = &argv[index..];
    if rest.is_empty() || !rest.len().is_multiple_of(2) {
        return Err(CmdError::Syntax);
    }
    if flags.nx && flags.xx {
        return Err(CmdError::err("XX and NX options at the same time are not compatible"));
    }
    if (flags.nx && (flags.gt || flags.lt)) || (flags.gt && flags.lt) {
        return Err(CmdError::err("GT, LT, and/or NX options at the same time are not compatible"));
    }
    if flags.incr && rest.len() > 2 {
        return Err(CmdError::err("INCR option supports a single increment-element pair"));
    }
    let pairs =
        rest.chunks_exact(2).map(|p| Ok((parse_float(&p[0])?, p[1].clone()))).collect::<Result<Vec<_>, CmdError>>()?;
    zadd_generic(ctx, &argv[1], flags, pairs)
}

/// `ZINCRBY key increment member`
fn zincrby(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    let increment = parse_float(&argv[2])?;
    let flags = AddFlags { incr: true, ..AddFlags::default() };
    zadd_generic(ctx, &argv[1], flags, vec![(increment, argv[3].clone())])
}

/// `ZREM key member [member ...]`
fn zrem(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    let key = &argv[1];
    ctx.run(|tx| {
        let Some(zset) = zset_at(tx, key)? else { return Ok(Reply::Integer(0)) };
        let mut seen: std::collections::HashSet<&[u8]> = std::collections::HashSet::new();
        let mut removed: Vec<Bytes> = Vec::new();
        for member in &argv[2..] {
            if zset.score(member).is_some() && seen.insert(member) {
                removed.push(member.clone());
            }
        }
        let (count, len) = (removed.len(), zset.len());
        if count > 0 {
            tx.mem_apply(zset_op(key, ZSetOp::Remove(removed)));
            removed_from(tx, key, "zrem", count, len);
        }
        Ok(Reply::Integer(count as i64))
    })
}

// ---------------------------------------------------------------- reads

/// Runs a read of one sorted set, counting the keyspace hit or miss.
fn read_zset<R>(
    ctx: &mut Ctx,
    key: &Bytes,
    read: impl Fn(Option<&SortedSet>) -> Result<R, CmdError>,
) -> Result<R, CmdError> {
    let (found, result) = ctx.run(|tx| {
        let zset = zset_at(tx, key)?;
        Ok((zset.is_some(), read(zset)))
    })?;
    ctx.hit(key, found);
    result
}

/// `ZCARD key`
fn zcard(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    read_zset(ctx, &argv[1], |z| Ok(Reply::Integer(z.map_or(0, |z| z.len() as i64))))
}

/// `ZSCORE key member`
fn zscore(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    read_zset(ctx, &argv[1], |z| Ok(z.and_then(|z| z.score(&argv[2])).map_or(Reply::Nil, Reply::Double)))
}

/// `ZMSCORE key member [member ...]`
fn zmscore(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    read_zset(ctx, &argv[1], |z| {
        Ok(Reply::Array(
            argv[2..].iter().map(|m| z.and_then(|z| z.score(m)).map_or(Reply::Nil, Reply::Double)).collect(),
        ))
    })
}

fn rank_generic(ctx: &mut Ctx, argv: &[Bytes], reverse: bool) -> CmdResult {
    read_zset(ctx, &argv[1], |z| {
        let Some(z) = z else { return Ok(Reply::Nil) };
        Ok(match z.rank(&argv[2]) {
            Some(rank) if reverse => Reply::Integer((z.len() - 1 - rank) as i64),
            Some(rank) => Reply::Integer(rank as i64),
            None => Reply::Nil,
        })
    })
}

/// `ZRANK key member`
fn zrank(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    rank_generic(ctx, argv, false)
}

/// `ZREVRANK key member`
fn zrevrank(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    rank_generic(ctx, argv, true)
}

/// `ZCOUNT key min max`
fn zcount(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    let range = ScoreRange::parse(&argv[2], &argv[3])?;
    read_zset(ctx, &argv[1], |z| {
        Ok(Reply::Integer(z.map_or(0, |z| {
            let (start, end) = range.ranks(z);
            (end - start) as i64
        })))
    })
}

/// `ZLEXCOUNT key min max`
fn zlexcount(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    let range = LexRange::parse(&argv[2], &argv[3])?;
    read_zset(ctx, &argv[1], |z| {
        Ok(Reply::Integer(z.map_or(0, |z| {
            let (start, end) = range.ranks(z);
            (end - start) as i64
        })))
    })
}

// ---------------------------------------------------------------- ZRANGE family

#[derive(Clone, Debug)]
enum RangeKind {
    Rank(i64, i64),
    Score(ScoreRange),
    Lex(LexRange),
}

/// A parsed ZRANGE-style request.
struct RangeRequest {
    kind: RangeKind,
    reverse: bool,
    /// LIMIT offset count (count < 0: no limit).
    offset: i64,
    count: i64,
    withscores: bool,
}

#[derive(Clone, Copy, PartialEq)]
enum KindArg {
    Auto,
    Score,
    Lex,
}

/// Parses `min max [options]` at `argv[first..]` like Redis's
/// `zrangeGenericCommand`: `kind`/`reverse` are fixed by the legacy
/// commands (None lets BYSCORE/BYLEX/REV choose); `store` forbids WITHSCORES.
fn parse_range(
    argv: &[Bytes],
    first: usize,
    kind: Option<KindArg>,
    reverse: Option<bool>,
    store: bool,
) -> Result<RangeRequest, CmdError> {
    let mut kind_arg = kind.unwrap_or(KindArg::Auto);
    let kind_fixed = kind.is_some();
    let mut rev = reverse.unwrap_or(false);
    let rev_fixed = reverse.is_some();
    let (mut offset, mut count, mut withscores) = (0i64, -1i64, false);
    let mut j = first + 2;
    while j < argv.len() {
        let left = argv.len() - j - 1;
        let option = argv[j].to_ascii_uppercase();
        match option.as_slice() {
            b"WITHSCORES" if !store => withscores = true,
            b"LIMIT" if left >= 2 => {
                offset = parse_int(&argv[j + 1])?;
                count = parse_int(&argv[j + 2])?;
                j += 2;
            }
            b"REV" if !rev_fixed && !rev => rev = true,
            b"BYLEX" if !kind_fixed && kind_arg == KindArg::Auto => kind_arg = KindArg::Lex,
            b"BYSCORE" if !kind_fixed && kind_arg == KindArg::Auto => kind_arg = KindArg::Score,
            _ => return Err(CmdError::Syntax),
        }
        j += 1;
    }
    if count != -1 && kind_arg == KindArg::Auto {
        return Err(CmdError::err("syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX"));
    }
    if withscores && kind_arg == KindArg::Lex {
        return Err(CmdError::err("syntax error, WITHSCORES not supported in combination with BYLEX"));
    }
    let (mut lo, mut hi) = (&argv[first], &argv[first + 1]);
    if rev && kind_arg != KindArg::Auto {
        // Reverse score and lex ranges are given as max, min.
        std::mem::swap(&mut lo, &mut hi);
    }
    let kind = match kind_arg {
        KindArg::Auto => RangeKind::Rank(parse_int(lo)?, parse_int(hi)?),
        KindArg::Score => RangeKind::Score(ScoreRange::parse(lo, hi)?),
        KindArg::Lex => RangeKind::Lex(LexRange::parse(lo, hi)?),
    };
    Ok(RangeRequest { kind, reverse: rev, offset, count, withscores })
}

/// The ascending ranks `start..end` the request selects, and whether to
/// walk them backwards.
fn select_ranks(request: &RangeRequest, zset: &SortedSet) -> (usize, usize) {
    let (start, end) = match &request.kind {
        RangeKind::Rank(start, stop) => {
            let (a, b) = rank_range(*start, *stop, zset.len());
            if request.reverse {
                // Ranks count from the top in reverse.
                let len = zset.len();
                return if a < b { (len - b, len - a) } else { (0, 0) };
            }
            return (a, b);
        }
        RangeKind::Score(range) => range.ranks(zset),
        RangeKind::Lex(range) => range.ranks(zset),
    };
    // LIMIT: skip `offset` in the walking direction, then take `count`.
    if request.offset < 0 {
        return (0, 0);
    }
    let available = end - start;
    let offset = (request.offset as u64).min(available as u64) as usize;
    let take = if request.count < 0 { available - offset } else { (request.count as usize).min(available - offset) };
    if request.reverse {
        (end - offset - take, end - offset)
    } else {
        (start + offset, start + offset + take)
    }
}

/// The selected elements in reply order.
fn select(request: &RangeRequest, zset: &SortedSet) -> Vec<(f64, Bytes)> {
    let (start, end) = select_ranks(request, zset);
    let mut items = zset.range(start, end);
    if request.reverse {
        items.reverse();
    }
    items
}

fn range_reply(ctx: &mut Ctx, key: &Bytes, request: RangeRequest) -> CmdResult {
    let resp3 = ctx.client.resp3;
    read_zset(ctx, key, |z| {
        let items = z.map(|z| select(&request, z)).unwrap_or_default();
        Ok(scored_reply(items, request.withscores, resp3))
    })
}

/// `ZRANGE key start stop [BYSCORE|BYLEX] [REV] [LIMIT offset count] [WITHSCORES]`
fn zrange(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    let request = parse_range(argv, 2, None, None, false)?;
    range_reply(ctx, &argv[1], request)
}

/// `ZREVRANGE key start stop [WITHSCORES]`
fn zrevrange(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    let request = parse_range(argv, 2, Some(KindArg::Auto), Some(true), false)?;
    range_reply(ctx, &argv[1], request)
}

/// `ZRANGEBYSCORE key min max [WITHSCORES] [LIMIT offset count]`
fn zrangebyscore(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    let request = parse_range(argv, 2, Some(KindArg::Score), Some(false), false)?;
    range_reply(ctx, &argv[1], request)
}

/// `ZREVRANGEBYSCORE key max min [WITHSCORES] [LIMIT offset count]`
fn zrevrangebyscore(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    let request = parse_range(argv, 2, Some(KindArg::Score), Some(true), false)?;
    range_reply(ctx, &argv[1], request)
}

/// `ZRANGEBYLEX key min max [LIMIT offset count]`
fn zrangebylex(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    let request = parse_range(argv, 2, Some(KindArg::Lex), Some(false), false)?;
    range_reply(ctx, &argv[1], request)
}

/// `ZREVRANGEBYLEX key max min [LIMIT offset count]`
fn zrevrangebylex(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    let request = parse_range(argv, 2, Some(KindArg::Lex), Some(true), false)?;
    range_reply(ctx, &argv[1], request)
}

/// Replaces `dst` with a sorted set of `items` (deleting it when empty);
/// the *STORE commands' write.
fn store_result(tx: &mut Tx, dst: &Bytes, items: Vec<(f64, Bytes)>, event: &'static str) -> Result<(), CmdError> {
    if items.is_empty() {
        if tx.delete(dst)? {
            tx.notify(notify::GENERIC, "del", dst);
        }
        return Ok(());
    }
    let mut zset = SortedSet::default();
    // As in ZADD: a small stored set keeps -0 as the integer 0.
    items.into_iter().for_each(|(s, m)| zset.insert(s + 0.0, &m));
    tx.overwrite(dst, MemEntry { expire_ms: 0, value: MemValue::ZSet(zset) })?;
    tx.notify(notify::ZSET, event, dst);
    Ok(())
}

/// The events of `count` members removed from `key`, which held `len`.
fn removed_from(tx: &mut Tx, key: &[u8], event: &'static str, count: usize, len: usize) {
    tx.notify(notify::ZSET, event, key);
    if count >= len {
        tx.notify(notify::GENERIC, "del", key);
    }
}

/// `ZRANGESTORE dst src min max [BYSCORE|BYLEX] [REV] [LIMIT offset count]`
fn zrangestore(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    let request = parse_range(argv, 3, None, None, true)?;
    let (dst, src) = (&argv[1], &argv[2]);
    ctx.run(|tx| {
        let items = zset_at(tx, src)?.map(|z| select(&request, z)).unwrap_or_default();
        let count = items.len() as i64;
        store_result(tx, dst, items, "zrangestore")?;
        Ok(Reply::Integer(count))
    })
}

// ---------------------------------------------------------------- removals

/// Removes the ranks a range selects from `key`; replies the count.
fn remove_range(
    ctx: &mut Ctx,
    key: &Bytes,
    event: &'static str,
    ranks: impl FnOnce(&SortedSet) -> (usize, usize),
) -> CmdResult {
    ctx.run(|tx| {
        let Some(zset) = zset_at(tx, key)? else { return Ok(Reply::Integer(0)) };
        let ((start, end), len) = (ranks(zset), zset.len());
        if start < end {
            tx.mem_apply(zset_op(key, ZSetOp::RemoveRanks { start, end }));
            removed_from(tx, key, event, end - start, len);
        }
        Ok(Reply::Integer((end.saturating_sub(start)) as i64))
    })
}

/// `ZREMRANGEBYRANK key start stop`
fn zremrangebyrank(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    let (start, stop) = (parse_int(&argv[2])?, parse_int(&argv[3])?);
    remove_range(ctx, &argv[1], "zremrangebyrank", |z| rank_range(start, stop, z.len()))
}

/// `ZREMRANGEBYSCORE key min max`
fn zremrangebyscore(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    let range = ScoreRange::parse(&argv[2], &argv[3])?;
    remove_range(ctx, &argv[1], "zremrangebyscore", |z| range.ranks(z))
}

/// `ZREMRANGEBYLEX key min max`
fn zremrangebylex(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    let range = LexRange::parse(&argv[2], &argv[3])?;
    remove_range(ctx, &argv[1], "zremrangebylex", |z| range.ranks(z))
}

/// Pops up to `count` lowest (or highest) elements of `key`, in pop order.
fn pop(tx: &mut Tx, key: &Bytes, count: usize, max: bool) -> Result<Vec<(f64, Bytes)>, CmdError> {
    let Some(zset) = zset_at(tx, key)? else { return Ok(Vec::new()) };
    let len = zset.len();
    let take = count.min(len);
    let (start, end) = if max { (len - take, len) } else { (0, take) };
    let mut items = zset.range(start, end);
    if max {
        items.reverse();
    }
    if take > 0 {
        tx.mem_apply(zset_op(key, ZSetOp::RemoveRanks { start, end }));
        removed_from(tx, key, if max { "zpopmax" } else { "zpopmin" }, take, len);
    }
    Ok(items)
}

fn pop_generic(ctx: &mut Ctx, argv: &[Bytes], max: bool) -> CmdResult {
    if argv.len() > 3 {
        return Err(CmdError::Syntax);
    }
    let count = match argv.get(2) {
        Some(arg) => Some(parse_range_int(arg, 0, "value is out of range, must be positive")? as usize),
        None => None,
    };
    let key = &argv[1];
    let resp3 = ctx.client.resp3;
    ctx.run(|tx| {
        let items = pop(tx, key, count.unwrap_or(1), max)?;
        // Without COUNT the reply is flat even in RESP3.
        Ok(scored_reply(items, true, resp3 && count.is_some()))
    })
}

/// `ZPOPMIN key [count]`
fn zpopmin(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    pop_generic(ctx, argv, false)
}

/// `ZPOPMAX key [count]`
fn zpopmax(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    pop_generic(ctx, argv, true)
}

/// MIN or MAX: true for MAX.
fn parse_min_max(arg: &[u8]) -> Result<bool, CmdError> {
    match arg.to_ascii_uppercase().as_slice() {
        b"MIN" => Ok(false),
        b"MAX" => Ok(true),
        _ => Err(CmdError::Syntax),
    }
}

/// ZMPOP's pop: from the first non-empty sorted set in key order (the end
/// word is MAX for the highest scores). None when every one is empty.
fn mpop_in(tx: &mut Tx, mpop: &MultiPop) -> Result<Option<Reply>, CmdError> {
    for key in mpop.keys {
        let items = pop(tx, key, mpop.count, mpop.end)?;
        if !items.is_empty() {
            // ZMPOP nests [member, score] pairs in both protocols.
            return Ok(Some(Reply::Array(vec![Reply::Bulk(key.clone()), scored_reply(items, true, true)])));
        }
    }
    Ok(None)
}

/// `ZMPOP numkeys key [key ...] MIN|MAX [COUNT count]`
fn zmpop(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    let mpop = MultiPop::parse(&argv[1..], parse_min_max)?;
    ctx.run(|tx| Ok(mpop_in(tx, &mpop)?.unwrap_or(Reply::NilArray)))
}

/// BZPOPMIN and BZPOPMAX: `key [key ...] timeout`.
fn blocking_pop(ctx: &mut Ctx, argv: &[Bytes], max: bool) -> CmdResult {
    pop_first_or_block(ctx, argv, |tx, key| {
        Ok(pop(tx, key, 1, max)?.pop().map(|(score, member)| {
            Reply::Array(vec![Reply::Bulk(key.clone()), Reply::Bulk(member), Reply::Double(score)])
        }))
    })
}

/// `BZPOPMIN key [key ...] timeout`
fn bzpopmin(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    blocking_pop(ctx, argv, false)
}

/// `BZPOPMAX key [key ...] timeout`
fn bzpopmax(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    blocking_pop(ctx, argv, true)
}

/// `BZMPOP timeout numkeys key [key ...] MIN|MAX [COUNT count]`
fn bzmpop(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    let mpop = MultiPop::parse(&argv[2..], parse_min_max)?;
    // Redis checks the timeout after the other arguments.
    let timeout = parse_timeout(&argv[1])?;
    let (server, client, tx) = ctx.parts();
    match mpop_in(tx, &mpop)? {
        Some(reply) => Ok(reply),
        None => Ok(block_client(server, client, argv, mpop.keys, timeout, Reply::NilArray)),
    }
}

/// `ZRANDMEMBER key [count [WITHSCORES]]`
fn zrandmember(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    use crate::protocol::RandomPicks;
    // Redis's order: the count, the syntax, then the count's range.
    let count = match argv.get(2) {
        Some(arg) => {
            let count = parse_int(arg)?;
            if count == i64::MIN {
                return Err(CmdError::err(format!(
                    "value is out of range, value must between {} and {}",
                    -i64::MAX,
                    i64::MAX
                )));
            }
            Some(count)
        }
        None => None,
    };
    if argv.len() > 4 {
        return Err(CmdError::Syntax);
    }
    let withscores = match argv.get(3) {
        Some(arg) if arg.eq_ignore_ascii_case(b"WITHSCORES") => true,
        Some(_) => return Err(CmdError::Syntax),
        None => false,
    };
    // Redis bounds the count so that doubling it for WITHSCORES cannot
    // overflow.
    if withscores && count.is_some_and(|count| !(-(i64::MAX / 2)..=i64::MAX / 2).contains(&count)) {
        return Err(CmdError::err("value is out of range"));
    }
    let resp3 = ctx.client.resp3;
    read_zset(ctx, &argv[1], |z| {
        let mut rng = rand::rng();
        let Some(count) = count else {
            return Ok(match z {
                Some(z) => {
                    let (_, member) = z.get_by_rank(rng.random_range(0..z.len())).expect("index in range");
                    Reply::Bulk(member.clone())
                }
                None => Reply::Nil,
            });
        };
        let Some(z) = z else { return Ok(Reply::Array(Vec::new())) };
        let wanted = count.unsigned_abs();
        if count < 0 && RandomPicks::worth_streaming(wanted, z.len() as u64) {
            // Picked as the client reads: the reply is never held whole.
            let mut picks = RandomPicks::builder(resp3);
            for (score, member) in z.iter() {
                match (withscores, resp3) {
                    (false, _) => picks.push(&[Reply::Bulk(member)]),
                    (true, true) => picks.push(&[Reply::Array(vec![Reply::Bulk(member), Reply::Double(score)])]),
                    (true, false) => picks.push(&[Reply::Bulk(member), Reply::Double(score)]),
                }
            }
            let len = if withscores && !resp3 { wanted * 2 } else { wanted };
            return Ok(picks.finish(len, wanted));
        }
        let items: Vec<(f64, Bytes)> = if count < 0 {
            // Negative: that many picks, repeats allowed.
            (0..count.unsigned_abs())
                .map(|_| {
                    let (s, m) = z.get_by_rank(rng.random_range(0..z.len())).expect("index in range");
                    (s, m.clone())
                })
                .collect()
        } else if count as u64 >= z.len() as u64 {
            z.range(0, z.len())
        } else {
            let mut picks = rand::seq::index::sample(&mut rng, z.len(), count as usize).into_vec();
            picks.sort_unstable();
            picks
                .into_iter()
                .map(|i| {
                    let (s, m) = z.get_by_rank(i).expect("index in range");
                    (s, m.clone())
                })
                .collect()
        };
        Ok(scored_reply(items, withscores, resp3))
    })
}

// ---------------------------------------------------------------- set operations

#[derive(Clone, Copy, PartialEq)]
enum SetOpKind {
    Union,
    Inter,
    Diff,
}

impl SetOpKind {
    /// The event of its STORE variant.
    fn store_event(self) -> &'static str {
        match self {
            SetOpKind::Union => "zunionstore",
            SetOpKind::Inter => "zinterstore",
            SetOpKind::Diff => "zdiffstore",
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Aggregate {
    Sum,
    Min,
    Max,
}

impl Aggregate {
    /// Redis's `zunionInterAggregate`: a NaN sum (inf + -inf) becomes 0.
    fn combine(self, acc: f64, value: f64) -> f64 {
        match self {
            Aggregate::Sum => {
                let sum = acc + value;
                if sum.is_nan() {
                    0.0
                } else {
                    sum
                }
            }
            Aggregate::Min => acc.min(value),
            Aggregate::Max => acc.max(value),
        }
    }
}

/// The options after the keys of ZUNION/ZINTER/ZDIFF[STORE].
struct SetOpOptions {
    weights: Vec<f64>,
    aggregate: Aggregate,
    withscores: bool,
}

fn parse_setop_options(
    options: &[Bytes],
    op: SetOpKind,
    numkeys: usize,
    store: bool,
) -> Result<SetOpOptions, CmdError> {
    let mut parsed = SetOpOptions { weights: vec![1.0; numkeys], aggregate: Aggregate::Sum, withscores: false };
    let mut j = 0;
    while j < options.len() {
        let remaining = options.len() - j;
        let option = &options[j];
        if op != SetOpKind::Diff && remaining > numkeys && option.eq_ignore_ascii_case(b"WEIGHTS") {
            for i in 0..numkeys {
                parsed.weights[i] =
                    parse_float_opt(&options[j + 1 + i]).ok_or_else(|| CmdError::err("weight value is not a float"))?;
            }
            j += 1 + numkeys;
        } else if op != SetOpKind::Diff && remaining >= 2 && option.eq_ignore_ascii_case(b"AGGREGATE") {
            parsed.aggregate = match options[j + 1].to_ascii_uppercase().as_slice() {
                b"SUM" => Aggregate::Sum,
                b"MIN" => Aggregate::Min,
                b"MAX" => Aggregate::Max,
                _ => return Err(CmdError::Syntax),
            };
            j += 2;
        } else if !store && option.eq_ignore_ascii_case(b"WITHSCORES") {
            parsed.withscores = true;
            j += 1;
        } else {
            return Err(CmdError::Syntax);
        }
    }
    Ok(parsed)
}

/// A source of a set operation: a sorted set, or a plain set (every
/// member scores 1).
fn source(tx: &mut Tx, key: &[u8]) -> Result<Vec<(Bytes, f64)>, CmdError> {
    match tx.key_type(key)? {
        None => Ok(Vec::new()),
        Some(KeyType::ZSet) => {
            Ok(zset_at(tx, key)?.map(|z| z.members().map(|(m, s)| (m.clone(), s)).collect()).unwrap_or_default())
        }
        Some(KeyType::Set) => match tx.mem_value(key, KeyType::Set)? {
            Some(MemValue::Set(set)) => Ok(set.iter().map(|m| (m.clone(), 1.0)).collect()),
            _ => Ok(Vec::new()),
        },
        Some(_) => Err(CmdError::WrongType),
    }
}

/// Computes a union, intersection or difference of the sources.
fn compute_setop(sources: Vec<Vec<(Bytes, f64)>>, op: SetOpKind, options: &SetOpOptions) -> Vec<(f64, Bytes)> {
    // Weighted scores; inf * 0 is taken as 0 as Redis does.
    let weighted = |score: f64, weight: f64| {
        let value = score * weight;
        if value.is_nan() {
            0.0
        } else {
            value
        }
    };
    let mut result: HashMap<Bytes, f64> = HashMap::new();
    match op {
        SetOpKind::Union | SetOpKind::Inter => {
            // Smallest first, as Redis iterates (it fixes the order in which
            // scores are aggregated).
            let mut indexed: Vec<(usize, Vec<(Bytes, f64)>)> = sources.into_iter().enumerate().collect();
            indexed.sort_by_key(|(_, s)| s.len());
            if op == SetOpKind::Inter {
                if indexed.iter().any(|(_, s)| s.is_empty()) {
                    return Vec::new();
                }
                let maps: Vec<HashMap<&Bytes, f64>> =
                    indexed[1..].iter().map(|(_, s)| s.iter().map(|(m, sc)| (m, *sc)).collect()).collect();
                let (first_index, first) = &indexed[0];
                'members: for (member, score) in first {
                    let mut acc = weighted(*score, options.weights[*first_index]);
                    for (map, (index, _)) in maps.iter().zip(&indexed[1..]) {
                        let Some(other) = map.get(member) else { continue 'members };
                        // Unlike the first source's, these products are not
                        // cleared of NaN: a NaN sum becomes 0 in `combine`.
                        acc = options.aggregate.combine(acc, *other * options.weights[*index]);
                    }
                    result.insert(member.clone(), acc);
                }
            } else {
                for (index, members) in &indexed {
                    for (member, score) in members {
                        let value = weighted(*score, options.weights[*index]);
                        result
                            .entry(member.clone())
                            .and_modify(|acc| *acc = options.aggregate.combine(*acc, value))
                            .or_insert(value);
                    }
                }
            }
        }
        SetOpKind::Diff => {
            let mut sources = sources.into_iter();
            let first = sources.next().unwrap_or_default();
            let others: Vec<std::collections::HashSet<Bytes>> =
                sources.map(|s| s.into_iter().map(|(m, _)| m).collect()).collect();
            for (member, score) in first {
                if !others.iter().any(|o| o.contains(&member)) {
                    result.insert(member, score);
                }
            }
        }
    }
    let mut items: Vec<(f64, Bytes)> = result.into_iter().map(|(m, s)| (s, m)).collect();
    items.sort_by(|a, b| a.0.partial_cmp(&b.0).expect("no NaN").then_with(|| a.1.cmp(&b.1)));
    items
}

/// ZUNION/ZINTER/ZDIFF and their STORE forms; `numkeys_index` is 1, or 2
/// after a destination.
fn setop_generic(ctx: &mut Ctx, argv: &[Bytes], op: SetOpKind, store: bool) -> CmdResult {
    let numkeys_index = if store { 2 } else { 1 };
    let name = String::from_utf8_lossy(&argv[0]).to_ascii_lowercase();
    let numkeys = parse_int(&argv[numkeys_index])?;
    if numkeys < 1 {
        return Err(CmdError::err(format!("at least 1 input key is needed for '{name}' command")));
    }
    if numkeys as u64 > (argv.len() - numkeys_index - 1) as u64 {
        return Err(CmdError::Syntax);
    }
    let numkeys = numkeys as usize;
    let keys = &argv[numkeys_index + 1..numkeys_index + 1 + numkeys];
    // Redis checks the keys' types before the options.
    let options = parse_setop_options(&argv[numkeys_index + 1 + numkeys..], op, numkeys, store);
    let dst = store.then(|| &argv[1]);
    let mut names: Vec<&[u8]> = keys.iter().map(|k| k.as_ref()).collect();
    if let Some(dst) = dst {
        names.push(dst);
    }
    let resp3 = ctx.client.resp3;
    ctx.run(|tx| {
        let sources = keys.iter().map(|k| source(tx, k)).collect::<Result<Vec<_>, CmdError>>()?;
        let options = options?;
        let items = compute_setop(sources, op, &options);
        match dst {
            Some(dst) => {
                let count = items.len() as i64;
                store_result(tx, dst, items, op.store_event())?;
                Ok(Reply::Integer(count))
            }
            None => Ok(scored_reply(items, options.withscores, resp3)),
        }
    })
}

/// `ZUNION numkeys key [key ...] [WEIGHTS weight ...] [AGGREGATE SUM|MIN|MAX] [WITHSCORES]`
fn zunion(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    setop_generic(ctx, argv, SetOpKind::Union, false)
}

/// `ZINTER numkeys key [key ...] [WEIGHTS weight ...] [AGGREGATE SUM|MIN|MAX] [WITHSCORES]`
fn zinter(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    setop_generic(ctx, argv, SetOpKind::Inter, false)
}

/// `ZDIFF numkeys key [key ...] [WITHSCORES]`
fn zdiff(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    setop_generic(ctx, argv, SetOpKind::Diff, false)
}

/// `ZUNIONSTORE destination numkeys key [key ...] [WEIGHTS weight ...] [AGGREGATE SUM|MIN|MAX]`
fn zunionstore(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    setop_generic(ctx, argv, SetOpKind::Union, true)
}

/// `ZINTERSTORE destination numkeys key [key ...] [WEIGHTS weight ...] [AGGREGATE SUM|MIN|MAX]`
fn zinterstore(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    setop_generic(ctx, argv, SetOpKind::Inter, true)
}

/// `ZDIFFSTORE destination numkeys key [key ...]`
fn zdiffstore(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    setop_generic(ctx, argv, SetOpKind::Diff, true)
}

/// `ZINTERCARD numkeys key [key ...] [LIMIT limit]`
fn zintercard(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    let numkeys = parse_int(&argv[1])?;
    if numkeys < 1 {
        return Err(CmdError::err("at least 1 input key is needed for 'zintercard' command"));
    }
    if numkeys as u64 > (argv.len() - 2) as u64 {
        return Err(CmdError::Syntax);
    }
    let numkeys = numkeys as usize;
    let keys = &argv[2..2 + numkeys];
    let parse_limit = || -> Result<usize, CmdError> {
        let mut limit = 0usize;
        let options = &argv[2 + numkeys..];
        let mut j = 0;
        while j < options.len() {
            if options[j].eq_ignore_ascii_case(b"LIMIT") && j + 1 < options.len() {
                limit = parse_range_int(&options[j + 1], 0, "LIMIT can't be negative")? as usize;
                j += 2;
            } else {
                return Err(CmdError::Syntax);
            }
        }
        Ok(limit)
    };
    let limit = parse_limit();
    ctx.run(|tx| {
        let sources = keys.iter().map(|k| source(tx, k)).collect::<Result<Vec<_>, CmdError>>()?;
        let limit = limit?;
        let options = SetOpOptions { weights: vec![1.0; numkeys], aggregate: Aggregate::Sum, withscores: false };
        let count = compute_setop(sources, SetOpKind::Inter, &options).len();
        Ok(Reply::Integer(if limit > 0 { count.min(limit) } else { count } as i64))
    })
}

// ---------------------------------------------------------------- ZSCAN

/// Redis keeps sets this small as a listpack (`zset-max-listpack-entries`).
const SMALL_SET: usize = 128;

/// `ZSCAN key cursor [MATCH pattern] [COUNT count]`
///
/// Walks members in the order of their keyed hash (`member_position`), from
/// the position the cursor holds, so a member present for the whole scan
/// is returned even if its score changes meanwhile. O(set size) per call.
fn zscan(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    let cursor = parse_cursor(&argv[2])?;
    let options = ScanOptions::parse(&argv[3..], false);
    let (found, next) = read_zset(ctx, &argv[1], |z| {
        let Some(z) = z else { return Ok((Vec::new(), 0)) };
        let options = options.as_ref().map_err(Clone::clone)?;
        if cursor == 0 && z.len() <= SMALL_SET {
            // Redis answers a small (listpack) set in one reply, in order.
            let found = z
                .iter()
                .filter(|(_, m)| options.pattern.is_none_or(|p| glob_match(p, m, false)))
                .map(|(s, m)| (m, s))
                .collect();
            return Ok((found, 0));
        }
        // As SSCAN: at least 1/64 of the set per call, so a full iteration
        // costs O(64 * size) however small COUNT is.
        let batch = options.count.max(z.len() / 64);
        let (taken, next) = next_by_position(z.members(), |(m, _)| member_position(m), cursor, batch);
        let found: Vec<(Bytes, f64)> = taken
            .into_iter()
            .filter(|(m, _)| options.pattern.is_none_or(|p| glob_match(p, m, false)))
            .map(|(m, s)| (m.clone(), s))
            .collect();
        Ok((found, next))
    })?;
    Ok(Reply::Array(vec![
        Reply::bulk_str(&next.to_string()),
        Reply::Array(
            found
                .into_iter()
                .flat_map(|(m, s)| [Reply::Bulk(m), Reply::bulk_str(&crate::protocol::encode_double(s))])
                .collect(),
        ),
    ]))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use rand::{Rng, SeedableRng};

    use super::super::testing::TestServer;
    use super::*;

    /// The model: per key, member → score.
    type Model = BTreeMap<Vec<u8>, BTreeMap<Vec<u8>, f64>>;

    fn sorted(zset: &BTreeMap<Vec<u8>, f64>) -> Vec<(f64, Vec<u8>)> {
        let mut items: Vec<(f64, Vec<u8>)> = zset.iter().map(|(m, s)| (*s, m.clone())).collect();
        items.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap().then_with(|| a.1.cmp(&b.1)));
        items
    }

    fn with_scores(items: &[(f64, Vec<u8>)]) -> Reply {
        Reply::Array(
            items.iter().flat_map(|(s, m)| [Reply::Bulk(Bytes::copy_from_slice(m)), Reply::Double(*s)]).collect(),
        )
    }

    fn model_rank_range(len: usize, start: i64, stop: i64) -> std::ops::Range<usize> {
        let (a, b) = rank_range(start, stop, len);
        a..b
    }

    #[test]
    fn random_commands_match_a_btreemap_model() {
        let mut server = TestServer::new();
        let mut model: Model = BTreeMap::new();
        let mut rng = rand::rngs::StdRng::seed_from_u64(42);
        let keys: [&[u8]; 3] = [b"za", b"zb", b"zc"];
        for _ in 0..3000 {
            let key = keys[rng.random_range(0..keys.len())];
            let member = format!("m{}", rng.random_range(0..40)).into_bytes();
            let score = rng.random_range(-10..10) as f64 / 2.0;
            let score_text = score.to_string();
            let entry = model.entry(key.to_vec()).or_default();
            let (args, expected): (Vec<Vec<u8>>, Reply) = match rng.random_range(0..9) {
                0 | 1 => {
                    let added = !entry.contains_key(&member);
                    entry.insert(member.clone(), score);
                    (
                        vec![b"ZADD".to_vec(), key.to_vec(), score_text.into_bytes(), member],
                        Reply::Integer(added as i64),
                    )
                }
                2 => {
                    let current = entry.get(&member).copied();
                    let applies = current.is_some_and(|c| score > c);
                    if applies {
                        entry.insert(member.clone(), score);
                    }
                    let args = vec![b"ZADD".to_vec(), key.to_vec(), b"XX".to_vec(), b"GT".to_vec(), b"CH".to_vec()];
                    ([args, vec![score_text.into_bytes(), member]].concat(), Reply::Integer(applies as i64))
                }
                3 => {
                    let new = entry.get(&member).copied().unwrap_or(0.0) + score;
                    entry.insert(member.clone(), new);
                    (vec![b"ZINCRBY".to_vec(), key.to_vec(), score_text.into_bytes(), member], Reply::Double(new))
                }
                4 => {
                    let removed = entry.remove(&member).is_some();
                    (vec![b"ZREM".to_vec(), key.to_vec(), member], Reply::Integer(removed as i64))
                }
                5 => {
                    let (a, b) = (rng.random_range(-8..8i64), rng.random_range(-8..8i64));
                    let items = sorted(entry);
                    let range = model_rank_range(items.len(), a, b);
                    for (_, m) in &items[range.clone()] {
                        entry.remove(m);
                    }
                    let args =
                        vec![b"ZREMRANGEBYRANK".to_vec(), key.to_vec(), a.to_string().into(), b.to_string().into()];
                    (args, Reply::Integer(range.len() as i64))
                }
                6 => {
                    let (lo, hi) = (score, score + 2.0);
                    let before = entry.len();
                    entry.retain(|_, s| !(*s > lo && *s <= hi));
                    let args = vec![
                        b"ZREMRANGEBYSCORE".to_vec(),
                        key.to_vec(),
                        format!("({lo}").into_bytes(),
                        hi.to_string().into_bytes(),
                    ];
                    (args, Reply::Integer((before - entry.len()) as i64))
                }
                7 => {
                    let count = rng.random_range(0..4usize);
                    let mut items = sorted(entry);
                    let max = rng.random_bool(0.5);
                    if max {
                        items.reverse();
                    }
                    items.truncate(count);
                    for (_, m) in &items {
                        entry.remove(m);
                    }
                    let name = if max { b"ZPOPMAX".to_vec() } else { b"ZPOPMIN".to_vec() };
                    (vec![name, key.to_vec(), count.to_string().into_bytes()], with_scores(&items))
                }
                _ => {
                    // ZUNIONSTORE into another key, replacing it.
                    let dst = keys[rng.random_range(0..keys.len())];
                    let source = entry.clone();
                    let other = model.get(keys[0]).cloned().unwrap_or_default();
                    let mut union = source;
                    for (m, s) in other {
                        *union.entry(m).or_insert(0.0) += s;
                    }
                    let count = union.len();
                    model.insert(dst.to_vec(), union);
                    let args =
                        vec![b"ZUNIONSTORE".to_vec(), dst.to_vec(), b"2".to_vec(), key.to_vec(), keys[0].to_vec()];
                    (args, Reply::Integer(count as i64))
                }
            };
            let argv: Vec<&[u8]> = args.iter().map(|a| a.as_slice()).collect();
            assert_eq!(
                server.run(&argv),
                expected,
                "{:?}",
                args.iter().map(|a| String::from_utf8_lossy(a)).collect::<Vec<_>>()
            );
            model.retain(|_, z| !z.is_empty());
            for key in keys {
                let items = model.get(key).map(sorted).unwrap_or_default();
                assert_eq!(server.run(&[b"ZRANGE", key, b"0", b"-1", b"WITHSCORES"]), with_scores(&items));
                if let Some((_, m)) = items.get(items.len() / 2) {
                    assert_eq!(server.run(&[b"ZRANK", key, m]), Reply::Integer((items.len() / 2) as i64));
                }
            }
        }
        server.assert_replay_matches();
    }

    #[test]
    fn set_operations_take_plain_sets_with_score_one() {
        use strata_engines::memory::SetOp;
        let mut server = TestServer::new();
        server.run(&[b"ZADD", b"z", b"2", b"a", b"5", b"b"]);
        let set = Bytes::from_static(b"s");
        server
            .server
            .keyspace
            .run(0, &[b"s"], |tx| {
                let members = vec![Bytes::from_static(b"a"), Bytes::from_static(b"c")];
                tx.mem_apply(MemOp::Set { key: set.clone(), op: SetOp::Add(members) });
                Ok(())
            })
            .unwrap();
        let bulk = |s: &str| Reply::Bulk(Bytes::copy_from_slice(s.as_bytes()));
        assert_eq!(
            server.run(&[b"ZUNION", b"2", b"z", b"s", b"WITHSCORES"]),
            Reply::Array(vec![
                bulk("c"),
                Reply::Double(1.0),
                bulk("a"),
                Reply::Double(3.0),
                bulk("b"),
                Reply::Double(5.0)
            ])
        );
        assert_eq!(server.run(&[b"ZINTER", b"2", b"s", b"z", b"WEIGHTS", b"10", b"1"]), Reply::Array(vec![bulk("a")]));
        assert_eq!(server.run(&[b"ZINTERCARD", b"2", b"s", b"z"]), Reply::Integer(1));
        assert_eq!(server.run(&[b"ZDIFFSTORE", b"d", b"2", b"s", b"z"]), Reply::Integer(1));
        assert_eq!(
            server.run(&[b"ZRANGE", b"d", b"0", b"-1", b"WITHSCORES"]),
            Reply::Array(vec![bulk("c"), Reply::Double(1.0)])
        );
        // ZRANGE itself does not read plain sets.
        assert_eq!(server.run(&[b"ZRANGE", b"s", b"0", b"-1"]), CmdError::WrongType.to_reply());
        server.assert_replay_matches();
    }
}
