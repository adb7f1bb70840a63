//! Stream commands (memory engine). A stream is a `BTreeMap` of entries by
//! ID (see `strata_engines::memory::stream`) plus its last generated ID,
//! entries-added counter and max deleted ID.
//!
//! Every change is a recorded `StreamOp`: XADD records the ID it resolved
//! (a `*` ID reads the clock, so the op must carry the result), the trims
//! record the last ID they removed. Approximate trimming (`~`) removes
//! whole nodes from the head, like Redis; the stream value emulates
//! Redis's nodes of `stream-node-max-entries` (100) entries (the node byte
//! limit, `stream-node-max-bytes`, is not emulated).

use std::time::{Duration, Instant};

use bytes::Bytes;
use strata_engines::memory::stream::{ClaimIds, ConsumerGroup, Fields};
use strata_engines::memory::{MemEntry, MemOp, MemValue, StreamId, StreamOp, StreamValue};
use strata_engines::KeyType;

use super::args::{c_text, parse_int};
use super::{block_reader, CommandTable, Ctx};
use crate::error::{CmdError, CmdResult};
use crate::keyspace::Tx;
use crate::notify;
use crate::protocol::Reply;

/// Entries per radix-tree node (`stream-node-max-entries`).
const NODE_ENTRIES: usize = strata_engines::memory::stream::NODE_ENTRIES as usize;

pub fn register(table: &mut CommandTable) {
    table.register("xadd", xadd);
    table.register("xlen", xlen);
    table.register("xrange", xrange);
    table.register("xrevrange", xrevrange);
    table.register("xdel", xdel);
    table.register("xtrim", xtrim);
    table.register("xsetid", xsetid);
    table.register("xread", xread);
    table.register("xreadgroup", xreadgroup);
    table.register("xgroup|create", xgroup);
    table.register("xgroup|destroy", xgroup);
    table.register("xgroup|createconsumer", xgroup);
    table.register("xgroup|delconsumer", xgroup);
    table.register("xgroup|setid", xgroup);
    table.register("xack", xack);
    table.register("xpending", xpending);
    table.register("xautoclaim", xautoclaim);
    table.register("xclaim", xclaim);
    table.register("xgroup|help", xgroup_help);
    table.register("xinfo|stream", xinfo_stream);
    table.register("xinfo|groups", xinfo_groups);
    table.register("xinfo|consumers", xinfo_consumers);
    table.register("xinfo|help", xinfo_help);
}

fn invalid_id() -> CmdError {
    CmdError::err("Invalid stream ID specified as stream command argument")
}

/// Redis's `string2ull`: an unsigned 64-bit decimal.
fn parse_u64(text: &[u8]) -> Option<u64> {
    let text = text.strip_prefix(b"+").unwrap_or(text);
    if text.is_empty() || !text.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(text).ok()?.parse().ok()
}

/// An ID argument (`streamGenericParseIDOrReply`): `ms-seq`, `ms` (with
/// `missing_seq`), and unless `strict` the `-` and `+` shorthands. With
/// `allow_auto_seq`, `ms-*` parses to `(ms, None)`.
fn parse_id_full(
    arg: &[u8],
    missing_seq: u64,
    strict: bool,
    allow_auto_seq: bool,
) -> Result<(u64, Option<u64>), CmdError> {
    if arg.len() > 127 {
        return Err(invalid_id());
    }
    match arg {
        b"-" | b"+" if strict => Err(invalid_id()),
        b"-" => Ok((0, Some(0))),
        b"+" => Ok((u64::MAX, Some(u64::MAX))),
        _ => {
            let (ms, seq) = match arg.iter().position(|&b| b == b'-') {
                Some(dash) => (&arg[..dash], Some(&arg[dash + 1..])),
                None => (arg, None),
            };
            let ms = parse_u64(ms).ok_or_else(invalid_id)?;
            let seq = match seq {
                None => Some(missing_seq),
                Some(b"*") if allow_auto_seq => None,
                Some(seq) => Some(parse_u64(seq).ok_or_else(invalid_id)?),
            };
            Ok((ms, seq))
        }
    }
}

/// A strict ID (no `-`/`+`), as XDEL, XSETID, MINID and XREAD take.
fn parse_strict_id(arg: &[u8]) -> Result<StreamId, CmdError> {
    let (ms, seq) = parse_id_full(arg, 0, true, false)?;
    Ok(StreamId::new(ms, seq.unwrap_or(0)))
}

/// A range bound of XRANGE: `-`, `+`, an ID, or `(ID` (exclusive).
fn parse_range_bound(arg: &[u8], missing_seq: u64) -> Result<(StreamId, bool), CmdError> {
    let (text, exclusive, strict) = match arg.strip_prefix(b"(") {
        Some(rest) if arg.len() > 1 => (rest, true, true),
        _ => (arg, false, false),
    };
    let (ms, seq) = parse_id_full(text, missing_seq, strict, false)?;
    Ok((StreamId::new(ms, seq.unwrap_or(missing_seq)), exclusive))
}

/// The stream at `key`; None when missing; WRONGTYPE when it holds another type.
fn get_stream<'t>(tx: &'t mut Tx, key: &[u8]) -> Result<Option<&'t StreamValue>, CmdError> {
    match tx.mem_value(key, KeyType::Stream)? {
        None => Ok(None),
        Some(MemValue::Stream(stream)) => Ok(Some(stream)),
        Some(_) => Err(CmdError::WrongType),
    }
}

fn apply(tx: &mut Tx, key: &Bytes, op: StreamOp) {
    // A read or claim that makes a consumer reports it, as XGROUP
    // CREATECONSUMER does.
    let joining = match &op {
        StreamOp::ReadGroup { group, consumer, .. } | StreamOp::Claim { group, consumer, .. } => {
            Some((group.clone(), consumer.clone()))
        }
        StreamOp::ClaimIds(claim) => Some((claim.group.clone(), claim.consumer.clone())),
        _ => None,
    };
    let has_consumer = |tx: &mut Tx, (group, consumer): &(Bytes, Bytes)| {
        let stream = get_stream(tx, key).ok().flatten();
        stream.and_then(|s| s.groups.get(group)).is_some_and(|g| g.consumers.contains_key(consumer))
    };
    let joining = joining.filter(|joining| !has_consumer(tx, joining));
    tx.mem_apply(MemOp::Stream { key: key.clone(), op });
    if joining.is_some_and(|joining| has_consumer(tx, &joining)) {
        tx.notify(notify::STREAM, "xgroup-createconsumer", key);
    }
}

fn id_reply(id: StreamId) -> Reply {
    Reply::bulk(id.to_string())
}

/// One entry: `[id, [field, value, ...]]`.
fn entry_reply(id: StreamId, fields: Fields) -> Reply {
    Reply::Array(vec![
        id_reply(id),
        Reply::Array(fields.iter().map(|f| Reply::Bulk(Bytes::copy_from_slice(f))).collect()),
    ])
}

/// Entries from `start` to `end` inclusive (reversed if `rev`), at most
/// `count` (0 = all).
fn range_reply(stream: &StreamValue, start: StreamId, end: StreamId, count: usize, rev: bool) -> Reply {
    if start > end {
        return Reply::Array(Vec::new());
    }
    let range = stream.entries.range(start..=end);
    let limit = if count == 0 { usize::MAX } else { count };
    let entries: Vec<Reply> = if rev {
        range.rev().take(limit).map(|(id, f)| entry_reply(id, f)).collect()
    } else {
        range.take(limit).map(|(id, f)| entry_reply(id, f)).collect()
    };
    Reply::Array(entries)
}

/// A trimming strategy of XADD and XTRIM.
#[derive(Clone, Copy, Debug)]
enum Strategy {
    MaxLen(usize),
    MinId(StreamId),
}

/// The trimming options of XADD and XTRIM.
#[derive(Debug, Default)]
struct TrimArgs {
    strategy: Option<Strategy>,
    approx: bool,
    /// Most entries removed by an approximate trim; 0 = no limit.
    limit: usize,
}

impl TrimArgs {
    /// The ID of the last entry this trim removes, if any, and how many.
    fn plan(&self, stream: &StreamValue) -> Option<(StreamId, usize)> {
        let strategy = self.strategy?;
        let remove = if self.approx {
            // Whole nodes from the head (Redis's `streamTrim`), within LIMIT.
            let mut remove = 0;
            for node in stream.entries.node_entries() {
                if self.limit > 0 && remove + node.len() > self.limit {
                    break;
                }
                let whole = match strategy {
                    Strategy::MaxLen(max) => stream.len() - remove - node.len() >= max,
                    Strategy::MinId(min) => node.last().is_some_and(|last| *last < min),
                };
                if !whole {
                    break;
                }
                remove += node.len();
            }
            remove
        } else {
            match strategy {
                Strategy::MaxLen(max) => stream.len().saturating_sub(max),
                Strategy::MinId(min) => stream.entries.range(..min).count(),
            }
        };
        if remove == 0 {
            return None;
        }
        let (through, _) = stream.entries.iter().nth(remove - 1).expect("fewer removed than present");
        Some((through, remove))
    }
}

/// What XADD was given before its field/value pairs.
#[derive(Debug, Default)]
struct AddArgs {
    trim: TrimArgs,
    no_mkstream: bool,
    /// None for `*`; `(ms, None)` for `ms-*`.
    id: Option<(u64, Option<u64>)>,
}

/// Parses XADD's options (`xadd`) or XTRIM's, the way Redis's
/// `streamParseAddOrTrimArgsOrReply` does: options until the ID (XADD) or
/// the end (XTRIM). Returns the index after the ID for XADD.
fn parse_add_or_trim(argv: &[Bytes], xadd: bool) -> Result<(AddArgs, usize), CmdError> {
    let mut args = AddArgs::default();
    let mut limit: Option<i64> = None;
    let mut i = 2;
    while i < argv.len() {
        let more = argv.len() - 1 - i;
        let opt = argv[i].as_ref();
        let is = |word: &str| opt.eq_ignore_ascii_case(word.as_bytes());
        if xadd && opt == b"*" {
            break;
        } else if (is("maxlen") || is("minid")) && more > 0 {
            if args.trim.strategy.is_some() {
                return Err(CmdError::err(
                    "syntax error, MAXLEN and MINID options at the same time are not compatible",
                ));
            }
            args.trim.approx = false;
            let next = argv[i + 1].as_ref();
            if more >= 2 && (next == b"~" || next == b"=") {
                args.trim.approx = next == b"~";
                i += 1;
            }
            let threshold = &argv[i + 1];
            args.trim.strategy = Some(if is("maxlen") {
                let max = parse_int(threshold)?;
                if max < 0 {
                    return Err(CmdError::err("The MAXLEN argument must be >= 0."));
                }
                Strategy::MaxLen(max as usize)
            } else {
                Strategy::MinId(parse_strict_id(threshold)?)
            });
            i += 1;
        } else if is("limit") && more > 0 {
            let n = parse_int(&argv[i + 1])?;
            if n < 0 {
                return Err(CmdError::err("The LIMIT argument must be >= 0."));
            }
            limit = Some(n);
            i += 1;
        } else if xadd && is("nomkstream") {
            args.no_mkstream = true;
        } else if xadd {
            // Anything else is the ID (or a syntax error reported as a bad ID).
            args.id = Some(parse_id_full(opt, 0, true, true)?);
            break;
        } else {
            return Err(CmdError::Syntax);
        }
        i += 1;
    }
    if limit.is_some_and(|n| n > 0) && args.trim.strategy.is_none() {
        return Err(CmdError::err("syntax error, LIMIT cannot be used without specifying a trimming strategy"));
    }
    if !xadd && args.trim.strategy.is_none() {
        return Err(CmdError::err("syntax error, XTRIM must be called with a trimming strategy"));
    }
    match limit {
        Some(_) if !args.trim.approx => {
            return Err(CmdError::err("syntax error, LIMIT cannot be used without the special ~ option"));
        }
        Some(n) => args.trim.limit = n as usize,
        // Redis's default: 100 nodes' worth.
        None => args.trim.limit = if args.trim.approx { 100 * NODE_ENTRIES } else { 0 },
    }
    // `*` or the explicit ID sits at `i`; fields start after it.
    Ok((args, i + 1))
}

/// The ID XADD gives a new entry: the explicit one, or the next after
/// `last` for `*` (clock-based) and `ms-*`. None when it would not exceed
/// `last`.
fn resolve_add_id(requested: Option<(u64, Option<u64>)>, last: StreamId, now_ms: u64) -> Option<StreamId> {
    match requested {
        None if now_ms > last.ms => Some(StreamId::new(now_ms, 0)),
        None => last.next(),
        Some((ms, None)) if ms > last.ms => Some(StreamId::new(ms, 0)),
        Some((ms, None)) if ms == last.ms => last.seq.checked_add(1).map(|seq| StreamId::new(ms, seq)),
        Some((ms, Some(seq))) if StreamId::new(ms, seq) > last => Some(StreamId::new(ms, seq)),
        Some(_) => None,
    }
}

/// `XADD key [NOMKSTREAM] [MAXLEN|MINID [=|~] threshold [LIMIT count]] *|id field value [field value ...]`
fn xadd(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    let (args, field_pos) = parse_add_or_trim(argv, true)?;
    let fields = argv.get(field_pos..).unwrap_or_default();
    if fields.len() < 2 || !fields.len().is_multiple_of(2) {
        return Err(CmdError::WrongArity("xadd".into()));
    }
    if args.id == Some((0, Some(0))) {
        return Err(CmdError::err("The ID specified in XADD must be greater than 0-0"));
    }
    let key = &argv[1];
    ctx.run(|tx| {
        let now_ms = tx.txn.now_ms;
        let (last, exists) = match get_stream(tx, key)? {
            Some(stream) => (stream.last_id, true),
            None if args.no_mkstream => return Ok(Reply::Nil),
            None => (StreamId::MIN, false),
        };
        if last == StreamId::MAX {
            return Err(CmdError::err("The stream has exhausted the last possible ID, unable to add more items"));
        }
        let Some(id) = resolve_add_id(args.id, last, now_ms) else {
            return Err(CmdError::err("The ID specified in XADD is equal or smaller than the target stream top item"));
        };
        debug_assert!(exists || last == StreamId::MIN);
        apply(tx, key, StreamOp::Add { id, fields: fields.to_vec() });
        tx.notify(notify::STREAM, "xadd", key);
        let stream = get_stream(tx, key)?.expect("just added");
        if let Some((through, _)) = args.trim.plan(stream) {
            apply(tx, key, StreamOp::Trim { through });
            tx.notify(notify::STREAM, "xtrim", key);
        }
        Ok(id_reply(id))
    })
}

/// `XTRIM key MAXLEN|MINID [=|~] threshold [LIMIT count]`
fn xtrim(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    let key = &argv[1];
    // Redis checks the options before it looks at the key.
    let (args, _) = parse_add_or_trim(argv, false)?;
    ctx.run(|tx| {
        let Some(stream) = get_stream(tx, key)? else {
            return Ok(Reply::Integer(0));
        };
        let Some((through, removed)) = args.trim.plan(stream) else {
            return Ok(Reply::Integer(0));
        };
        apply(tx, key, StreamOp::Trim { through });
        tx.notify(notify::STREAM, "xtrim", key);
        Ok(Reply::Integer(removed as i64))
    })
}

/// `XLEN key`
fn xlen(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    let key = &argv[1];
    let (found, len) = ctx.run(|tx| {
        let stream = get_stream(tx, key)?;
        Ok((stream.is_some(), stream.map_or(0, |s| s.len())))
    })?;
    ctx.hit(key, found);
    Ok(Reply::Integer(len as i64))
}

/// `XRANGE key start end [COUNT count]`
fn xrange(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    range_command(ctx, argv, false)
}

/// `XREVRANGE key end start [COUNT count]`
fn xrevrange(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    range_command(ctx, argv, true)
}

fn range_command(ctx: &mut Ctx, argv: &[Bytes], rev: bool) -> CmdResult {
    let (start_arg, end_arg) = if rev { (&argv[3], &argv[2]) } else { (&argv[2], &argv[3]) };
    let (mut start, start_ex) = parse_range_bound(start_arg, 0)?;
    if start_ex {
        start = start.next().ok_or_else(|| CmdError::err("invalid start ID for the interval"))?;
    }
    let (mut end, end_ex) = parse_range_bound(end_arg, u64::MAX)?;
    if end_ex {
        end = end.prev().ok_or_else(|| CmdError::err("invalid end ID for the interval"))?;
    }
    // None = no COUNT; Some(0) (or negative) = a null reply.
    let mut count: Option<usize> = None;
    let mut j = 4;
    while j < argv.len() {
        if argv[j].eq_ignore_ascii_case(b"count") && j + 1 < argv.len() {
            count = Some(parse_int(&argv[j + 1])?.max(0) as usize);
            j += 2;
        } else {
            return Err(CmdError::Syntax);
        }
    }
    let key = &argv[1];
    let (found, reply) = ctx.run(|tx| {
        let Some(stream) = get_stream(tx, key)? else {
            return Ok((false, Reply::Array(Vec::new())));
        };
        let reply = match count {
            Some(0) => Reply::NilArray,
            _ => range_reply(stream, start, end, count.unwrap_or(0), rev),
        };
        Ok((true, reply))
    })?;
    ctx.hit(key, found);
    Ok(reply)
}

/// `XDEL key id [id ...]`
fn xdel(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    let key = &argv[1];
    ctx.run(|tx| {
        // Redis answers 0 for a missing key before parsing the IDs.
        let Some(stream) = get_stream(tx, key)? else {
            return Ok(Reply::Integer(0));
        };
        let ids = argv[2..].iter().map(|arg| parse_strict_id(arg)).collect::<Result<Vec<_>, _>>()?;
        let mut removed: Vec<StreamId> = ids.into_iter().filter(|id| stream.entries.contains(*id)).collect();
        removed.sort();
        removed.dedup();
        let count = removed.len() as i64;
        if count > 0 {
            apply(tx, key, StreamOp::Delete { ids: removed });
            tx.notify(notify::STREAM, "xdel", key);
        }
        Ok(Reply::Integer(count))
    })
}

/// `XSETID key last-id [ENTRIESADDED entries-added] [MAXDELETEDID max-deleted-id]`
fn xsetid(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    let last_id = parse_strict_id(&argv[2])?;
    let mut entries_added = None;
    let mut max_deleted_id = None;
    let mut i = 3;
    while i < argv.len() {
        let more = i + 1 < argv.len();
        if argv[i].eq_ignore_ascii_case(b"entriesadded") && more {
            let n = parse_int(&argv[i + 1])?;
            if n < 0 {
                return Err(CmdError::err("entries_added must be positive"));
            }
            entries_added = Some(n as u64);
        } else if argv[i].eq_ignore_ascii_case(b"maxdeletedid") && more {
            let id = parse_strict_id(&argv[i + 1])?;
            if last_id < id {
                return Err(CmdError::err(
                    "The ID specified in XSETID is smaller than the provided max_deleted_entry_id",
                ));
            }
            max_deleted_id = Some(id);
        } else {
            return Err(CmdError::Syntax);
        }
        i += 2;
    }
    // Redis only records a non-zero max deleted ID.
    let max_deleted_id = max_deleted_id.filter(|id| *id != StreamId::MIN);
    let key = &argv[1];
    ctx.run(|tx| {
        let Some(stream) = get_stream(tx, key)? else {
            return Err(CmdError::NoSuchKey);
        };
        // Redis 7.0 does not compare with the current max deleted ID.
        if !stream.is_empty() {
            if last_id < stream.last_entry_id() {
                return Err(CmdError::err("The ID specified in XSETID is smaller than the target stream top item"));
            }
            if entries_added.is_some_and(|n| (stream.len() as u64) > n) {
                return Err(CmdError::err(
                    "The entries_added specified in XSETID is smaller than the target stream length",
                ));
            }
        }
        apply(tx, key, StreamOp::SetId { last_id, entries_added, max_deleted_id });
        tx.notify(notify::STREAM, "xsetid", key);
        Ok(Reply::ok())
    })
}

/// `XREAD [COUNT count] [BLOCK milliseconds] STREAMS key [key ...] id [id ...]`
///
/// With BLOCK and nothing to read, the client waits until an XADD gives
/// one of the streams an entry after its ID (`$` = the stream's last ID
/// when the call blocks), or the time runs out (a nil array).
fn xread(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    read_command(ctx, argv, false)
}

/// `XREADGROUP GROUP group consumer [COUNT count] [BLOCK milliseconds] [NOACK] STREAMS key [key ...] id [id ...]`
///
/// Only `>` reads block (history reads always answer); a blocked client is
/// served the entries new to its group when they arrive, and an error if
/// the stream or the group goes away meanwhile.
fn xreadgroup(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    read_command(ctx, argv, true)
}

/// What one stream of an XREAD/XREADGROUP asks for.
enum ReadFrom {
    /// Entries after this ID (XREAD), or pending entries of the consumer
    /// after it (XREADGROUP with an ID).
    After(StreamId),
    /// `>`: entries never delivered to the group.
    New,
}

/// BLOCK's argument: milliseconds, 0 = forever (None).
fn parse_block_timeout(arg: &[u8]) -> Result<Option<Duration>, CmdError> {
    let ms = parse_int(arg).map_err(|_| CmdError::err("timeout is not an integer or out of range"))?;
    if ms < 0 {
        return Err(CmdError::err("timeout is negative"));
    }
    let timeout = Duration::from_millis(ms as u64);
    // A deadline past what the clock can represent is as good as forever.
    Ok((ms > 0 && Instant::now().checked_add(timeout).is_some()).then_some(timeout))
}

fn read_command(ctx: &mut Ctx, argv: &[Bytes], group_read: bool) -> CmdResult {
    let mut count = 0usize;
    // Some(timeout) with BLOCK.
    let mut block: Option<Option<Duration>> = None;
    let mut noack = false;
    let mut group: Option<(&Bytes, &Bytes)> = None;
    let mut streams_at = None;
    let mut i = 1;
    while i < argv.len() {
        let more = argv.len() - i - 1;
        let opt = &argv[i];
        if opt.eq_ignore_ascii_case(b"group") && more >= 2 {
            if !group_read {
                return Err(CmdError::err(
                    "The GROUP option is only supported by XREADGROUP. You called XREAD instead.",
                ));
            }
            group = Some((&argv[i + 1], &argv[i + 2]));
            i += 3;
        } else if opt.eq_ignore_ascii_case(b"noack") {
            if !group_read {
                return Err(CmdError::err(
                    "The NOACK option is only supported by XREADGROUP. You called XREAD instead.",
                ));
            }
            noack = true;
            i += 1;
        } else if opt.eq_ignore_ascii_case(b"block") && more > 0 {
            block = Some(parse_block_timeout(&argv[i + 1])?);
            i += 2;
        } else if opt.eq_ignore_ascii_case(b"count") && more > 0 {
            count = parse_int(&argv[i + 1])?.max(0) as usize;
            i += 2;
        } else if opt.eq_ignore_ascii_case(b"streams") && more > 0 {
            if !more.is_multiple_of(2) {
                // Redis 7.0 words it this way for XREADGROUP too.
                return Err(CmdError::err(
                    "Unbalanced XREAD list of streams: for each stream key an ID or '$' must be specified.",
                ));
            }
            streams_at = Some(i + 1);
            break;
        } else {
            return Err(CmdError::Syntax);
        }
    }
    let Some(streams_at) = streams_at else {
        return Err(CmdError::Syntax);
    };
    if group_read && group.is_none() {
        return Err(CmdError::err("Missing GROUP option for XREADGROUP"));
    }
    let n = (argv.len() - streams_at) / 2;
    let keys = &argv[streams_at..streams_at + n];
    let id_args = &argv[streams_at + n..];
    let (server, client, tx) = ctx.parts();
    // Run again for a blocked client (see `serve_blocked`): the stream or
    // the group may be gone, which Redis reports rather than waiting on.
    let retrying = client.retrying_blocked;
    let mut run = |tx: &mut Tx| {
        let now_ms = tx.txn.now_ms;
        // Resolve every ID (and group) first, as Redis does before serving.
        let mut from = Vec::with_capacity(n);
        for (key, arg) in keys.iter().zip(id_args) {
            let stream = match get_stream(tx, key) {
                Err(CmdError::WrongType) if retrying && !group_read => {
                    // A plain reader keeps waiting for the key to be a stream again.
                    return Ok(block_reader(server, client, argv, keys, None, Reply::NilArray));
                }
                Err(CmdError::WrongType) | Ok(None) if retrying && group_read => {
                    return Err(CmdError::Custom("UNBLOCKED the stream key no longer exists".into()));
                }
                other => other?,
            };
            if let Some((group, _)) = group {
                if !stream.is_some_and(|s| s.groups.contains_key(group)) {
                    if retrying {
                        return Err(CmdError::Custom(
                            "NOGROUP the consumer group this client was blocked on no longer exists".into(),
                        ));
                    }
                    return Err(CmdError::Custom(format!(
                        "NOGROUP No such key '{}' or consumer group '{}' in XREADGROUP with GROUP option",
                        c_text(key),
                        c_text(group)
                    )));
                }
            }
            if arg.as_ref() == b"$" {
                if group_read {
                    return Err(CmdError::err("The $ ID is meaningless in the context of XREADGROUP: you want to read the history of this consumer by specifying a proper ID, or use the > ID to get new messages. The $ ID would just return an empty result set."));
                }
                from.push(ReadFrom::After(stream.map_or(StreamId::MIN, |s| s.last_id)));
            } else if arg.as_ref() == b">" {
                if !group_read {
                    return Err(CmdError::err(
                        "The > ID can be specified only when calling XREADGROUP using the GROUP <group> <consumer> option.",
                    ));
                }
                from.push(ReadFrom::New);
            } else {
                from.push(ReadFrom::After(parse_strict_id(arg)?));
            }
        }
        let mut served = Vec::new();
        for (key, from) in keys.iter().zip(&from) {
            let Some(stream) = get_stream(tx, key)? else { continue };
            let Some((group, consumer)) = group else {
                let ReadFrom::After(gt) = *from else { unreachable!("> is refused for XREAD") };
                if stream.last_entry_id() > gt && !stream.is_empty() {
                    let start = gt.next().expect("an entry exceeds it");
                    served.push((key.clone(), range_reply(stream, start, StreamId::MAX, count, false)));
                }
                continue;
            };
            let g = stream.groups.get(group).expect("checked above");
            let limit = if count == 0 { usize::MAX } else { count };
            let (reply, op) = match *from {
                ReadFrom::New => {
                    if stream.is_empty() || stream.last_entry_id() <= g.last_id {
                        continue;
                    }
                    let (new, replies): (Vec<StreamId>, Vec<Reply>) = stream
                        .entries
                        .range((std::ops::Bound::Excluded(g.last_id), std::ops::Bound::Unbounded))
                        .take(limit)
                        .map(|(id, fields)| (id, entry_reply(id, fields)))
                        .unzip();
                    (Reply::Array(replies), new_read(group, consumer, now_ms, new, noack, Vec::new()))
                }
                ReadFrom::After(gt) => {
                    // The consumer's own pending entries after `gt`; a
                    // deleted entry shows as its ID with a null body.
                    let mut history = Vec::new();
                    let mut replies = Vec::new();
                    for id in consumer_pending(g, consumer).filter(|id| *id > gt).take(limit) {
                        match stream.entries.get(id) {
                            Some(fields) => {
                                history.push(id);
                                replies.push(entry_reply(id, fields));
                            }
                            None => replies.push(Reply::Array(vec![id_reply(id), Reply::NilArray])),
                        }
                    }
                    (Reply::Array(replies), new_read(group, consumer, now_ms, Vec::new(), noack, history))
                }
            };
            apply(tx, key, op);
            served.push((key.clone(), reply));
        }
        if !served.is_empty() {
            return Ok(if client.resp3 {
                Reply::Map(served.into_iter().map(|(key, entries)| (Reply::Bulk(key), entries)).collect())
            } else {
                Reply::Array(
                    served.into_iter().map(|(key, entries)| Reply::Array(vec![Reply::Bulk(key), entries])).collect(),
                )
            });
        }
        let Some(timeout) = block else {
            return Ok(Reply::NilArray);
        };
        // Block on each key once; the command run again when one of them
        // gets an entry reads after the IDs resolved now, so `$` becomes
        // the stream's last ID at this moment.
        let mut blocked_argv = argv.to_vec();
        for (j, from) in from.iter().enumerate() {
            if let (ReadFrom::After(id), true) = (from, id_args[j].as_ref() == b"$") {
                blocked_argv[streams_at + n + j] = Bytes::from(id.to_string());
            }
        }
        let mut wait_keys: Vec<Bytes> = Vec::with_capacity(n);
        for key in keys {
            if !wait_keys.contains(key) {
                wait_keys.push(key.clone());
            }
        }
        Ok(block_reader(server, client, &blocked_argv, &wait_keys, timeout, Reply::NilArray))
    };
    run(tx)
}

fn new_read(
    group: &Bytes,
    consumer: &Bytes,
    now_ms: u64,
    new: Vec<StreamId>,
    noack: bool,
    history: Vec<StreamId>,
) -> StreamOp {
    StreamOp::ReadGroup { group: group.clone(), consumer: consumer.clone(), now_ms, new, noack, history }
}

/// The IDs pending for `consumer`, in order.
fn consumer_pending<'g>(group: &'g ConsumerGroup, consumer: &'g [u8]) -> impl Iterator<Item = StreamId> + 'g {
    group.pending.iter().filter(move |(_, p)| p.consumer.as_ref() == consumer).map(|(id, _)| *id)
}

fn no_group_key_error() -> CmdError {
    CmdError::err(
        "The XGROUP subcommand requires the key to exist. Note that for CREATE you may want to use the MKSTREAM option to create an empty stream automatically.",
    )
}

/// `XGROUP CREATE key group id|$ [MKSTREAM] [ENTRIESREAD entries-read]`,
/// `XGROUP DESTROY key group`, `XGROUP CREATECONSUMER key group consumer`,
/// `XGROUP DELCONSUMER key group consumer`,
/// `XGROUP SETID key group id|$ [ENTRIESREAD entries-read]`
fn xgroup(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    let sub = String::from_utf8_lossy(&argv[1]).to_ascii_lowercase();
    let syntax = || {
        CmdError::err(format!(
            "unknown subcommand or wrong number of arguments for '{}'. Try XGROUP HELP.",
            c_text(&argv[1])
        ))
    };
    // ENTRIESREAD: a count, or -1 for "unknown".
    let parse_entries_read = |arg: &[u8]| -> Result<Option<i64>, CmdError> {
        let n = parse_int(arg)?;
        if n < -1 {
            return Err(CmdError::err("value for ENTRIESREAD must be positive or -1"));
        }
        Ok((n >= 0).then_some(n))
    };
    let mut mkstream = false;
    let mut entries_read = None;
    match sub.as_str() {
        "create" => {
            if argv.len() > 8 {
                return Err(syntax());
            }
            let mut i = 5;
            while i < argv.len() {
                if argv[i].eq_ignore_ascii_case(b"mkstream") {
                    mkstream = true;
                    i += 1;
                } else if argv[i].eq_ignore_ascii_case(b"entriesread") && i + 1 < argv.len() {
                    entries_read = parse_entries_read(&argv[i + 1])?;
                    i += 2;
                } else {
                    return Err(syntax());
                }
            }
        }
        "setid" => {
            if argv.len() == 7 && argv[5].eq_ignore_ascii_case(b"entriesread") {
                entries_read = parse_entries_read(&argv[6])?;
            } else if argv.len() != 5 {
                return Err(syntax());
            }
        }
        "destroy" if argv.len() != 4 => return Err(syntax()),
        "createconsumer" | "delconsumer" if argv.len() != 5 => return Err(syntax()),
        _ => {}
    }
    let (key, group) = (&argv[2], &argv[3]);
    let (blocking, db) = (&ctx.server.keyspace.blocking, ctx.client.db);
    ctx.run(|tx| {
        let now_ms = tx.txn.now_ms;
        let stream = get_stream(tx, key)?;
        if stream.is_none() && !(sub == "create" && mkstream) {
            return Err(no_group_key_error());
        }
        let g = stream.and_then(|s| s.groups.get(group));
        if g.is_none() && matches!(sub.as_str(), "setid" | "createconsumer" | "delconsumer") {
            return Err(CmdError::Custom(format!(
                "NOGROUP No such consumer group '{}' for key name '{}'",
                c_text(group),
                c_text(key)
            )));
        }
        let id_arg = |stream: Option<&StreamValue>| -> Result<StreamId, CmdError> {
            if argv[4].as_ref() == b"$" {
                Ok(stream.map_or(StreamId::MIN, |s| s.last_id))
            } else {
                parse_strict_id(&argv[4])
            }
        };
        let (op, reply, event) = match sub.as_str() {
            "create" => {
                let last_id = id_arg(stream)?;
                if g.is_some() {
                    return Err(CmdError::Custom("BUSYGROUP Consumer Group name already exists".into()));
                }
                if stream.is_none() {
                    // MKSTREAM: the new key is a change WATCH sees.
                    let entry = MemEntry { expire_ms: 0, value: MemValue::Stream(Default::default()) };
                    tx.mem_apply(MemOp::Put { key: key.clone(), entry });
                }
                (StreamOp::CreateGroup { group: group.clone(), last_id, entries_read }, Reply::ok(), "xgroup-create")
            }
            "setid" => {
                let last_id = id_arg(stream)?;
                let op = StreamOp::SetGroupId { group: group.clone(), last_id, entries_read };
                (op, Reply::ok(), "xgroup-setid")
            }
            "destroy" => {
                if g.is_none() {
                    return Ok(Reply::Integer(0));
                }
                // Clients blocked in XREADGROUP on this group learn it is gone.
                blocking.signal(db, key);
                (StreamOp::DestroyGroup { group: group.clone() }, Reply::Integer(1), "xgroup-destroy")
            }
            "createconsumer" => {
                let consumer = &argv[4];
                if g.is_some_and(|g| g.consumers.contains_key(consumer)) {
                    return Ok(Reply::Integer(0));
                }
                (
                    StreamOp::CreateConsumer { group: group.clone(), consumer: consumer.clone(), now_ms },
                    Reply::Integer(1),
                    "xgroup-createconsumer",
                )
            }
            "delconsumer" => {
                let consumer = &argv[4];
                let Some(g) = g.filter(|g| g.consumers.contains_key(consumer)) else {
                    return Ok(Reply::Integer(0));
                };
                let pending = consumer_pending(g, consumer).count() as i64;
                let op = StreamOp::DeleteConsumer { group: group.clone(), consumer: consumer.clone() };
                (op, Reply::Integer(pending), "xgroup-delconsumer")
            }
            other => unreachable!("xgroup|{other} is not registered"),
        };
        apply(tx, key, op);
        tx.notify(notify::STREAM, event, key);
        Ok(reply)
    })
}

/// `XACK key group id [id ...]`
fn xack(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    let (key, group) = (&argv[1], &argv[2]);
    ctx.run(|tx| {
        let Some(g) = get_stream(tx, key)?.and_then(|s| s.groups.get(group)) else {
            return Ok(Reply::Integer(0));
        };
        let ids = argv[3..].iter().map(|arg| parse_strict_id(arg)).collect::<Result<Vec<_>, _>>()?;
        let mut acked: Vec<StreamId> = ids.into_iter().filter(|id| g.pending.contains_key(id)).collect();
        acked.sort();
        acked.dedup();
        let count = acked.len() as i64;
        if count > 0 {
            apply(tx, key, StreamOp::Ack { group: group.clone(), ids: acked });
        }
        Ok(Reply::Integer(count))
    })
}

/// `XPENDING key group [[IDLE min-idle-time] start end count [consumer]]`
fn xpending(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    let argc = argv.len();
    if argc != 3 && !(6..=9).contains(&argc) {
        return Err(CmdError::Syntax);
    }
    // The extended form: parsed before the key is looked up, as Redis does.
    let mut extended = None;
    if argc >= 6 {
        let mut at = 3;
        let mut min_idle = 0;
        if argv[3].eq_ignore_ascii_case(b"idle") {
            min_idle = parse_int(&argv[4])?;
            if argc < 8 {
                return Err(CmdError::Syntax);
            }
            at += 2;
        }
        let count = parse_int(argv.get(at + 2).ok_or(CmdError::Syntax)?)?.max(0) as usize;
        let (mut start, start_ex) = parse_range_bound(&argv[at], 0)?;
        if start_ex {
            start = start.next().ok_or_else(|| CmdError::err("invalid start ID for the interval"))?;
        }
        let (mut end, end_ex) = parse_range_bound(&argv[at + 1], u64::MAX)?;
        if end_ex {
            end = end.prev().ok_or_else(|| CmdError::err("invalid end ID for the interval"))?;
        }
        extended = Some((min_idle, start, end, count, argv.get(at + 3)));
    }
    let (key, group) = (&argv[1], &argv[2]);
    ctx.run(|tx| {
        let now_ms = tx.txn.now_ms as i64;
        let Some(g) = get_stream(tx, key)?.and_then(|s| s.groups.get(group)) else {
            return Err(CmdError::Custom(format!(
                "NOGROUP No such key '{}' or consumer group '{}'",
                c_text(key),
                c_text(group)
            )));
        };
        let Some((min_idle, start, end, count, consumer)) = extended else {
            // Summary: count, first and last IDs, pending per consumer.
            let (Some(first), Some(last)) = (g.pending.keys().next(), g.pending.keys().next_back()) else {
                return Ok(Reply::Array(vec![Reply::Integer(0), Reply::Nil, Reply::Nil, Reply::NilArray]));
            };
            let per_consumer = g
                .consumers
                .keys()
                .map(|c| (c, consumer_pending(g, c).count()))
                .filter(|(_, n)| *n > 0)
                .map(|(c, n)| Reply::Array(vec![Reply::Bulk(c.clone()), Reply::bulk(n.to_string())]))
                .collect();
            return Ok(Reply::Array(vec![
                Reply::Integer(g.pending.len() as i64),
                id_reply(*first),
                id_reply(*last),
                Reply::Array(per_consumer),
            ]));
        };
        if let Some(c) = consumer {
            if !g.consumers.contains_key(c) {
                return Ok(Reply::Array(Vec::new()));
            }
        }
        if start > end {
            return Ok(Reply::Array(Vec::new()));
        }
        let rows = g
            .pending
            .range(start..=end)
            .filter(|(_, p)| consumer.is_none_or(|c| p.consumer == *c))
            .filter(|(_, p)| min_idle == 0 || now_ms - p.delivered_ms as i64 >= min_idle)
            .take(count)
            .map(|(id, p)| {
                Reply::Array(vec![
                    id_reply(*id),
                    Reply::Bulk(p.consumer.clone()),
                    Reply::Integer((now_ms - p.delivered_ms as i64).max(0)),
                    Reply::Integer(p.deliveries as i64),
                ])
            })
            .collect();
        Ok(Reply::Array(rows))
    })
}

/// `XAUTOCLAIM key group consumer min-idle-time start [COUNT count] [JUSTID]`
fn xautoclaim(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    let (key, group, consumer) = (&argv[1], &argv[2], &argv[3]);
    let min_idle =
        parse_int(&argv[4]).map_err(|_| CmdError::err("Invalid min-idle-time argument for XAUTOCLAIM"))?.max(0) as u64;
    let (mut start, start_ex) = parse_range_bound(&argv[5], 0)?;
    if start_ex {
        start = start.next().ok_or_else(|| CmdError::err("invalid start ID for the interval"))?;
    }
    let mut count = 100usize;
    let mut justid = false;
    let mut j = 6;
    while j < argv.len() {
        if argv[j].eq_ignore_ascii_case(b"count") && j + 1 < argv.len() {
            let n = parse_int(&argv[j + 1]).map_err(|_| CmdError::err("COUNT must be > 0"))?;
            if !(1..=i64::MAX / 10).contains(&n) {
                return Err(CmdError::err("COUNT must be > 0"));
            }
            count = n as usize;
            j += 2;
        } else if argv[j].eq_ignore_ascii_case(b"justid") {
            justid = true;
            j += 1;
        } else {
            return Err(CmdError::Syntax);
        }
    }
    ctx.run(|tx| {
        let now_ms = tx.txn.now_ms;
        let stream = get_stream(tx, key)?;
        let Some((stream, g)) = stream.and_then(|s| s.groups.get(group).map(|g| (s, g))) else {
            return Err(CmdError::Custom(format!(
                "NOGROUP No such key '{}' or consumer group '{}'",
                c_text(key),
                c_text(group)
            )));
        };
        // Redis looks at no more than ten pending entries per claimed one.
        let mut attempts = count * 10;
        let mut left = count;
        let (mut claimed, mut dropped, mut replies) = (Vec::new(), Vec::new(), Vec::new());
        let mut pending = g.pending.range(start..);
        while attempts > 0 && left > 0 {
            let Some((id, p)) = pending.next() else { break };
            attempts -= 1;
            let Some(fields) = stream.entries.get(*id) else {
                dropped.push(*id);
                left -= 1;
                continue;
            };
            if min_idle > 0 && now_ms.saturating_sub(p.delivered_ms) < min_idle {
                continue;
            }
            claimed.push(*id);
            replies.push(if justid { id_reply(*id) } else { entry_reply(*id, fields) });
            left -= 1;
        }
        // The cursor for the next call: the next pending entry, or 0-0.
        let next = pending.next().map_or(StreamId::MIN, |(id, _)| *id);
        let deleted = Reply::Array(dropped.iter().map(|id| id_reply(*id)).collect());
        // As Redis 7.0: the consumer is made (or seen) only when it claims
        // something; entries whose stream entry is gone just leave the PEL.
        if !claimed.is_empty() {
            let count_delivery = !justid;
            let (group, consumer) = (group.clone(), consumer.clone());
            apply(tx, key, StreamOp::Claim { group, consumer, now_ms, claimed, count_delivery, dropped });
        } else if !dropped.is_empty() {
            apply(tx, key, StreamOp::Ack { group: group.clone(), ids: dropped });
        }
        Ok(Reply::Array(vec![id_reply(next), Reply::Array(replies), deleted]))
    })
}

/// `XCLAIM key group consumer min-idle-time id [id ...] [IDLE ms] [TIME unix-time-milliseconds] [RETRYCOUNT count] [FORCE] [JUSTID] [LASTID lastid]`
fn xclaim(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    let (key, group, consumer) = (&argv[1], &argv[2], &argv[3]);
    ctx.run(|tx| {
        let now_ms = tx.txn.now_ms;
        // Redis looks up the group first, then parses the arguments.
        let Some((stream, g)) = get_stream(tx, key)?.and_then(|s| s.groups.get(group).map(|g| (s, g))) else {
            return Err(CmdError::Custom(format!(
                "NOGROUP No such key '{}' or consumer group '{}'",
                c_text(key),
                c_text(group)
            )));
        };
        let min_idle =
            parse_int(&argv[4]).map_err(|_| CmdError::err("Invalid min-idle-time argument for XCLAIM"))?.max(0) as u64;
        // The IDs run until the first argument that is not one.
        let mut ids = Vec::new();
        let mut j = 5;
        while let Some(id) = argv.get(j).and_then(|arg| parse_strict_id(arg).ok()) {
            ids.push(id);
            j += 1;
        }
        let (mut force, mut justid) = (false, false);
        let mut retry_count = None;
        let mut delivered: Option<i64> = None;
        let mut last_id = None;
        let int_option = |arg: &[u8], name: &str| {
            parse_int(arg).map_err(|_| CmdError::err(format!("Invalid {name} option argument for XCLAIM")))
        };
        while j < argv.len() {
            let more = j + 1 < argv.len();
            let opt = &argv[j];
            if opt.eq_ignore_ascii_case(b"force") {
                force = true;
            } else if opt.eq_ignore_ascii_case(b"justid") {
                justid = true;
            } else if opt.eq_ignore_ascii_case(b"idle") && more {
                j += 1;
                delivered = Some(now_ms as i64 - int_option(&argv[j], "IDLE")?);
            } else if opt.eq_ignore_ascii_case(b"time") && more {
                j += 1;
                delivered = Some(int_option(&argv[j], "TIME")?);
            } else if opt.eq_ignore_ascii_case(b"retrycount") && more {
                j += 1;
                let n = int_option(&argv[j], "RETRYCOUNT")?;
                // Redis treats a negative count as "not given".
                retry_count = u64::try_from(n).ok();
            } else if opt.eq_ignore_ascii_case(b"lastid") && more {
                j += 1;
                last_id = Some(parse_strict_id(&argv[j])?);
            } else {
                return Err(CmdError::err(format!("Unrecognized XCLAIM option '{}'", c_text(opt))));
            }
            j += 1;
        }
        // A bogus delivery time (negative or in the future) becomes now.
        let delivered_ms = match delivered {
            Some(t) if t >= 0 && t as u64 <= now_ms => t as u64,
            _ => now_ms,
        };
        let (mut claimed, mut dropped, mut replies) = (Vec::new(), Vec::new(), Vec::new());
        for id in ids {
            let pending = g.pending.get(&id);
            let Some(fields) = stream.entries.get(id) else {
                if pending.is_some() && !dropped.contains(&id) {
                    dropped.push(id);
                }
                continue;
            };
            match pending {
                Some(p) if min_idle > 0 && now_ms.saturating_sub(p.delivered_ms) < min_idle => continue,
                None if !force && !claimed.contains(&id) => continue,
                _ => {}
            }
            claimed.push(id);
            replies.push(if justid { id_reply(id) } else { entry_reply(id, fields) });
        }
        let last_id = last_id.filter(|id| *id > g.last_id);
        if !claimed.is_empty() || !dropped.is_empty() || last_id.is_some() {
            let op = StreamOp::ClaimIds(Box::new(ClaimIds {
                group: group.clone(),
                consumer: consumer.clone(),
                now_ms,
                delivered_ms,
                claimed,
                retry_count,
                count_delivery: !justid,
                dropped,
                last_id,
            }));
            apply(tx, key, op);
        }
        Ok(Reply::Array(replies))
    })
}

/// The number of nodes of Redis's radix tree (`rax`) holding `keys`
/// (distinct, sorted, all `depth..` bytes long past a shared prefix): a
/// compressed node for a shared run of bytes, a branching node where keys
/// diverge, and a leaf node for each key.
fn rax_nodes(keys: &[[u8; 16]], depth: usize) -> usize {
    match keys {
        [] => 1,
        [_] if depth == 16 => 1,
        [_] => 2,
        _ => {
            let (first, last) = (&keys[0], &keys[keys.len() - 1]);
            let shared = (depth..16).take_while(|&i| first[i] == last[i]).count();
            if shared > 0 {
                return 1 + rax_nodes(keys, depth + shared);
            }
            let mut nodes = 1;
            let mut rest = keys;
            while let Some(head) = rest.first() {
                let run = rest.iter().take_while(|k| k[depth] == head[depth]).count();
                nodes += rax_nodes(&rest[..run], depth + 1);
                rest = &rest[run..];
            }
            nodes
        }
    }
}

/// Redis's key for a node: the ID in big-endian bytes.
fn rax_key(id: StreamId) -> [u8; 16] {
    let mut key = [0; 16];
    key[..8].copy_from_slice(&id.ms.to_be_bytes());
    key[8..].copy_from_slice(&id.seq.to_be_bytes());
    key
}

/// `XINFO STREAM key [FULL [COUNT count]]`
///
/// `radix-tree-keys` and `radix-tree-nodes` describe the emulated nodes
/// (see the module comment). FULL lists up to `count` (default 10, 0 = all)
/// entries, and as many pending entries per group and per consumer.
fn xinfo_stream(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    let key = &argv[2];
    ctx.run(|tx| {
        // Redis looks the key up before it parses the options.
        let Some(stream) = get_stream(tx, key)? else {
            return Err(CmdError::NoSuchKey);
        };
        let syntax = || {
            CmdError::err(format!(
                "unknown subcommand or wrong number of arguments for '{}'. Try XINFO HELP.",
                c_text(&argv[1])
            ))
        };
        let full = match &argv[3..] {
            [] => None,
            [full] if full.eq_ignore_ascii_case(b"full") => Some(10),
            [full, count, n] if full.eq_ignore_ascii_case(b"full") && count.eq_ignore_ascii_case(b"count") => {
                // 0 means no limit; a negative COUNT is the default.
                let n = parse_int(n)?;
                Some(if n < 0 { 10 } else { n as usize })
            }
            _ => return Err(syntax()),
        };
        let node_keys: Vec<[u8; 16]> = stream.entries.nodes().map(|(id, _)| rax_key(id)).collect();
        let field = |name: &str, value: Reply| (Reply::bulk_str(name), value);
        let mut fields = vec![
            field("length", Reply::Integer(stream.len() as i64)),
            field("radix-tree-keys", Reply::Integer(node_keys.len() as i64)),
            field("radix-tree-nodes", Reply::Integer(rax_nodes(&node_keys, 0) as i64)),
            field("last-generated-id", id_reply(stream.last_id)),
            field("max-deleted-entry-id", id_reply(stream.max_deleted_id)),
            field("entries-added", Reply::Integer(stream.entries_added as i64)),
            field("recorded-first-entry-id", id_reply(stream.first_entry_id())),
        ];
        let Some(count) = full else {
            let edge = |entry: Option<(StreamId, Fields)>| entry.map_or(Reply::Nil, |(id, f)| entry_reply(id, f));
            fields.push(field("groups", Reply::Integer(stream.groups.len() as i64)));
            fields.push(field("first-entry", edge(stream.entries.first())));
            fields.push(field("last-entry", edge(stream.entries.last())));
            return Ok(Reply::Map(fields));
        };
        let limit = if count == 0 { usize::MAX } else { count };
        fields.push(field("entries", range_reply(stream, StreamId::MIN, StreamId::MAX, count, false)));
        let groups = stream
            .groups
            .iter()
            .map(|(name, g)| {
                let pending = g
                    .pending
                    .iter()
                    .take(limit)
                    .map(|(id, p)| {
                        Reply::Array(vec![
                            id_reply(*id),
                            Reply::Bulk(p.consumer.clone()),
                            Reply::Integer(p.delivered_ms as i64),
                            Reply::Integer(p.deliveries as i64),
                        ])
                    })
                    .collect();
                let consumers = g
                    .consumers
                    .iter()
                    .map(|(consumer, seen_ms)| {
                        let own = g.pending.iter().filter(|(_, p)| p.consumer == *consumer);
                        let rows = own
                            .clone()
                            .take(limit)
                            .map(|(id, p)| {
                                Reply::Array(vec![
                                    id_reply(*id),
                                    Reply::Integer(p.delivered_ms as i64),
                                    Reply::Integer(p.deliveries as i64),
                                ])
                            })
                            .collect();
                        Reply::Map(vec![
                            field("name", Reply::Bulk(consumer.clone())),
                            field("seen-time", Reply::Integer(*seen_ms as i64)),
                            field("pel-count", Reply::Integer(own.count() as i64)),
                            field("pending", Reply::Array(rows)),
                        ])
                    })
                    .collect();
                Reply::Map(vec![
                    field("name", Reply::Bulk(name.clone())),
                    field("last-delivered-id", id_reply(g.last_id)),
                    field("entries-read", g.entries_read.map_or(Reply::Nil, Reply::Integer)),
                    field("lag", stream.group_lag(g).map_or(Reply::Nil, Reply::Integer)),
                    field("pel-count", Reply::Integer(g.pending.len() as i64)),
                    field("pending", Reply::Array(pending)),
                    field("consumers", Reply::Array(consumers)),
                ])
            })
            .collect();
        fields.push(field("groups", Reply::Array(groups)));
        Ok(Reply::Map(fields))
    })
}

/// `XINFO GROUPS key`
fn xinfo_groups(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    let key = &argv[2];
    ctx.run(|tx| {
        let Some(stream) = get_stream(tx, key)? else {
            return Err(CmdError::NoSuchKey);
        };
        let field = |name: &str, value: Reply| (Reply::bulk_str(name), value);
        let rows = stream
            .groups
            .iter()
            .map(|(name, g)| {
                Reply::Map(vec![
                    field("name", Reply::Bulk(name.clone())),
                    field("consumers", Reply::Integer(g.consumers.len() as i64)),
                    field("pending", Reply::Integer(g.pending.len() as i64)),
                    field("last-delivered-id", id_reply(g.last_id)),
                    field("entries-read", g.entries_read.map_or(Reply::Nil, Reply::Integer)),
                    field("lag", stream.group_lag(g).map_or(Reply::Nil, Reply::Integer)),
                ])
            })
            .collect();
        Ok(Reply::Array(rows))
    })
}

/// `XINFO HELP`
fn xinfo_help(_ctx: &mut Ctx, _argv: &[Bytes]) -> CmdResult {
    const LINES: &[&str] = &[
        "XINFO <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "CONSUMERS <key> <groupname>",
        "    Show consumers of <groupname>.",
        "GROUPS <key>",
        "    Show the stream consumer groups.",
        "STREAM <key> [FULL [COUNT <count>]",
        "    Show information about the stream.",
        "HELP",
        "    Prints this help.",
    ];
    Ok(Reply::Array(LINES.iter().copied().map(Reply::Status).collect()))
}

/// `XGROUP HELP`
fn xgroup_help(_ctx: &mut Ctx, _argv: &[Bytes]) -> CmdResult {
    const LINES: &[&str] = &[
        "XGROUP <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "CREATE <key> <groupname> <id|$> [option]",
        "    Create a new consumer group. Options are:",
        "    * MKSTREAM",
        "      Create the empty stream if it does not exist.",
        "    * ENTRIESREAD entries_read",
        "      Set the group's entries_read counter (internal use).",
        "CREATECONSUMER <key> <groupname> <consumer>",
        "    Create a new consumer in the specified group.",
        "DELCONSUMER <key> <groupname> <consumer>",
        "    Remove the specified consumer.",
        "DESTROY <key> <groupname>",
        "    Remove the specified group.",
        "SETID <key> <groupname> <id|$> [ENTRIESREAD entries_read]",
        "    Set the current group ID and entries_read counter.",
        "HELP",
        "    Prints this help.",
    ];
    Ok(Reply::Array(LINES.iter().copied().map(Reply::Status).collect()))
}

/// `XINFO CONSUMERS key group`
fn xinfo_consumers(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    let (key, group) = (&argv[2], &argv[3]);
    ctx.run(|tx| {
        let now_ms = tx.txn.now_ms;
        let Some(stream) = get_stream(tx, key)? else {
            return Err(CmdError::NoSuchKey);
        };
        let Some(g) = stream.groups.get(group) else {
            return Err(CmdError::Custom(format!(
                "NOGROUP No such consumer group '{}' for key name '{}'",
                c_text(group),
                c_text(key)
            )));
        };
        let rows = g
            .consumers
            .iter()
            .map(|(name, seen_ms)| {
                Reply::Map(vec![
                    (Reply::bulk_str("name"), Reply::Bulk(name.clone())),
                    (Reply::bulk_str("pending"), Reply::Integer(consumer_pending(g, name).count() as i64)),
                    (Reply::bulk_str("idle"), Reply::Integer(now_ms.saturating_sub(*seen_ms) as i64)),
                ])
            })
            .collect();
        Ok(Reply::Array(rows))
    })
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};

    use rand::{Rng, SeedableRng};

    use super::super::testing::TestServer;
    use super::*;

    type Id = (u64, u64);

    #[derive(Default)]
    struct ModelStream {
        entries: BTreeMap<Id, Vec<Vec<u8>>>,
        last: Id,
    }

    fn bulk(reply: &Reply) -> Vec<u8> {
        match reply {
            Reply::Bulk(b) => b.to_vec(),
            other => panic!("expected a bulk, got {other:?}"),
        }
    }

    fn int(reply: &Reply) -> i64 {
        match reply {
            Reply::Integer(n) => *n,
            other => panic!("expected an integer, got {other:?}"),
        }
    }

    fn parse_id(text: &[u8]) -> Id {
        let text = std::str::from_utf8(text).expect("utf-8 id");
        let (ms, seq) = text.split_once('-').expect("ms-seq");
        (ms.parse().expect("ms"), seq.parse().expect("seq"))
    }

    fn entries(reply: &Reply) -> Vec<(Id, Vec<Vec<u8>>)> {
        let Reply::Array(items) = reply else { panic!("expected entries, got {reply:?}") };
        items
            .iter()
            .map(|item| match item {
                Reply::Array(pair) => match &pair[1] {
                    Reply::Array(fields) => (parse_id(&bulk(&pair[0])), fields.iter().map(bulk).collect()),
                    other => panic!("fields {other:?}"),
                },
                other => panic!("entry {other:?}"),
            })
            .collect()
    }

    fn id_text(id: Id) -> Vec<u8> {
        format!("{}-{}", id.0, id.1).into_bytes()
    }

    fn check_state(server: &mut TestServer, model: &HashMap<Vec<u8>, ModelStream>, keys: &[&[u8]], step: usize) {
        for key in keys {
            let expected: Vec<(Id, Vec<Vec<u8>>)> =
                model.get(*key).map(|s| s.entries.iter().map(|(id, f)| (*id, f.clone())).collect()).unwrap_or_default();
            assert_eq!(entries(&server.run(&[b"XRANGE", key, b"-", b"+"])), expected, "step {step}");
            let mut reversed = expected.clone();
            reversed.reverse();
            assert_eq!(entries(&server.run(&[b"XREVRANGE", key, b"+", b"-"])), reversed, "step {step}");
            assert_eq!(int(&server.run(&[b"XLEN", key])), expected.len() as i64);
            let exists = int(&server.run(&[b"EXISTS", key]));
            assert_eq!(exists, model.contains_key(*key) as i64, "an emptied stream stays; step {step}");
        }
    }

    #[test]
    fn random_commands_match_a_btreemap_model_and_replay() {
        let mut server = TestServer::new();
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let keys: [&[u8]; 3] = [b"a", b"b", b"{a}c"];
        let mut model: HashMap<Vec<u8>, ModelStream> = HashMap::new();
        for step in 0..2500 {
            let key = keys[rng.random_range(0..keys.len())];
            let id: Id = (rng.random_range(0..40), rng.random_range(0..3));
            let value = vec![rng.random::<u8>()];
            match rng.random_range(0..9) {
                0..=2 => {
                    let reply = server.run(&[b"XADD", key, &id_text(id), b"f", &value]);
                    let stream = model.get(key);
                    let last = stream.map_or((0, 0), |s| s.last);
                    if id == (0, 0) {
                        assert!(reply.is_error(), "0-0 is refused");
                    } else if id <= last {
                        assert!(reply.is_error(), "step {step}: {id:?} <= {last:?} accepted");
                    } else {
                        assert_eq!(bulk(&reply), id_text(id));
                        let s = model.entry(key.to_vec()).or_default();
                        s.entries.insert(id, vec![b"f".to_vec(), value]);
                        s.last = id;
                    }
                }
                3 => {
                    // `ms-*`: the next sequence of that millisecond, or 0.
                    let reply = server.run(&[b"XADD", key, format!("{}-*", id.0).as_bytes(), b"g", &value]);
                    let last = model.get(key).map_or((0, 0), |s| s.last);
                    let expected = if id.0 > last.0 {
                        Some((id.0, 0))
                    } else if id.0 == last.0 {
                        Some((id.0, last.1 + 1))
                    } else {
                        None
                    };
                    match expected {
                        Some(new) => {
                            assert_eq!(parse_id(&bulk(&reply)), new, "step {step}");
                            let s = model.entry(key.to_vec()).or_default();
                            s.entries.insert(new, vec![b"g".to_vec(), value]);
                            s.last = new;
                        }
                        None => assert!(reply.is_error(), "step {step}"),
                    }
                }
                4 => {
                    let other: Id = (rng.random_range(0..40), rng.random_range(0..3));
                    let removed = int(&server.run(&[b"XDEL", key, &id_text(id), &id_text(other)]));
                    let mut expected = 0;
                    if let Some(s) = model.get_mut(key) {
                        expected += s.entries.remove(&id).is_some() as i64;
                        expected += s.entries.remove(&other).is_some() as i64;
                    }
                    assert_eq!(removed, expected, "step {step}");
                }
                5 => {
                    let max = rng.random_range(0..6usize);
                    let removed = int(&server.run(&[b"XTRIM", key, b"MAXLEN", max.to_string().as_bytes()]));
                    let mut expected = 0;
                    if let Some(s) = model.get_mut(key) {
                        while s.entries.len() > max {
                            s.entries.pop_first();
                            expected += 1;
                        }
                    }
                    assert_eq!(removed, expected, "step {step}");
                }
                6 => {
                    let removed = int(&server.run(&[b"XTRIM", key, b"MINID", b"=", &id_text(id)]));
                    let mut expected = 0;
                    if let Some(s) = model.get_mut(key) {
                        let kept = s.entries.split_off(&id);
                        expected = s.entries.len() as i64;
                        s.entries = kept;
                    }
                    assert_eq!(removed, expected, "step {step}");
                }
                7 => {
                    // XADD with an exact MAXLEN: append, then trim.
                    let max = rng.random_range(1..5usize);
                    let reply = server.run(&[b"XADD", key, b"MAXLEN", max.to_string().as_bytes(), b"*", b"t", &value]);
                    let new = parse_id(&bulk(&reply));
                    let s = model.entry(key.to_vec()).or_default();
                    assert!(new > s.last, "step {step}: * gave {new:?} after {:?}", s.last);
                    s.entries.insert(new, vec![b"t".to_vec(), value]);
                    s.last = new;
                    while s.entries.len() > max {
                        s.entries.pop_first();
                    }
                }
                _ => {
                    // XREAD after an ID returns what XRANGE ( would.
                    let reply = server.run(&[b"XREAD", b"COUNT", b"3", b"STREAMS", key, &id_text(id)]);
                    let expected: Vec<(Id, Vec<Vec<u8>>)> = model
                        .get(key)
                        .map(|s| s.entries.range((id.0, id.1 + 1)..).take(3).map(|(i, f)| (*i, f.clone())).collect())
                        .unwrap_or_default();
                    if expected.is_empty() {
                        assert_eq!(reply, Reply::NilArray, "step {step}");
                    } else {
                        let Reply::Array(streams) = reply else { panic!("XREAD {reply:?}") };
                        let Reply::Array(pair) = &streams[0] else { panic!("XREAD stream {streams:?}") };
                        assert_eq!(bulk(&pair[0]), key.to_vec());
                        assert_eq!(entries(&pair[1]), expected, "step {step}");
                    }
                }
            }
            check_state(&mut server, &model, &keys, step);
        }
        server.assert_replay_matches();
    }

    /// XPENDING's extended rows as (id, consumer, deliveries).
    fn pending_rows(reply: &Reply) -> Vec<(Id, Vec<u8>, i64)> {
        let Reply::Array(rows) = reply else { panic!("XPENDING {reply:?}") };
        rows.iter()
            .map(|row| match row {
                Reply::Array(cols) => (parse_id(&bulk(&cols[0])), bulk(&cols[1]), int(&cols[3])),
                other => panic!("row {other:?}"),
            })
            .collect()
    }

    #[test]
    fn random_group_commands_match_a_model_and_replay() {
        let mut server = TestServer::new();
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        let consumers: [&[u8]; 3] = [b"c1", b"c2", b"c3"];
        // The model: entries, the group's last delivered ID, pending entries.
        let mut entries: BTreeMap<Id, ()> = BTreeMap::new();
        let mut last_delivered: Id = (0, 0);
        let mut pending: BTreeMap<Id, (Vec<u8>, i64)> = BTreeMap::new();
        let mut next_ms = 1;
        assert_eq!(server.run(&[b"XGROUP", b"CREATE", b"s", b"g", b"0", b"MKSTREAM"]), Reply::ok());
        for step in 0..2000 {
            let consumer = consumers[rng.random_range(0..consumers.len())];
            match rng.random_range(0..9) {
                0 | 1 => {
                    let id = (next_ms, 0);
                    next_ms += 1;
                    assert_eq!(bulk(&server.run(&[b"XADD", b"s", &id_text(id), b"f", b"v"])), id_text(id));
                    entries.insert(id, ());
                }
                2 | 3 => {
                    let count = rng.random_range(1..4usize);
                    let reply = server.run(&[
                        b"XREADGROUP",
                        b"GROUP",
                        b"g",
                        consumer,
                        b"COUNT",
                        count.to_string().as_bytes(),
                        b"STREAMS",
                        b"s",
                        b">",
                    ]);
                    let new: Vec<Id> = entries
                        .range((std::ops::Bound::Excluded(last_delivered), std::ops::Bound::Unbounded))
                        .take(count)
                        .map(|(id, _)| *id)
                        .collect();
                    if new.is_empty() {
                        assert_eq!(reply, Reply::NilArray, "step {step}");
                    } else {
                        let Reply::Array(streams) = reply else { panic!("step {step}: {reply:?}") };
                        let Reply::Array(pair) = &streams[0] else { panic!("{streams:?}") };
                        let got: Vec<Id> = entries_of(&pair[1]);
                        assert_eq!(got, new, "step {step}");
                        for id in new {
                            pending.insert(id, (consumer.to_vec(), 1));
                            last_delivered = id;
                        }
                    }
                }
                4 => {
                    // History read: redelivers the consumer's pending entries.
                    let reply = server.run(&[b"XREADGROUP", b"GROUP", b"g", consumer, b"STREAMS", b"s", b"0"]);
                    let Reply::Array(streams) = reply else { panic!("step {step}: {reply:?}") };
                    let Reply::Array(pair) = &streams[0] else { panic!("{streams:?}") };
                    let mine: Vec<Id> = pending.iter().filter(|(_, (c, _))| c == consumer).map(|(id, _)| *id).collect();
                    assert_eq!(entries_of(&pair[1]), mine, "step {step}");
                    for id in mine {
                        if entries.contains_key(&id) {
                            pending.get_mut(&id).expect("pending").1 += 1;
                        }
                    }
                }
                5 => {
                    let ids: Vec<Id> = (0..2).map(|_| (rng.random_range(1..next_ms.max(2)), 0)).collect();
                    let reply = server.run(&[b"XACK", b"s", b"g", &id_text(ids[0]), &id_text(ids[1])]);
                    let mut expected = 0;
                    for id in &ids {
                        expected += pending.remove(id).is_some() as i64;
                    }
                    assert_eq!(int(&reply), expected, "step {step}");
                }
                6 => {
                    let id = (rng.random_range(1..next_ms.max(2)), 0);
                    let removed = int(&server.run(&[b"XDEL", b"s", &id_text(id)]));
                    assert_eq!(removed, entries.remove(&id).is_some() as i64, "step {step}");
                }
                8 if rng.random_bool(0.5) => {
                    // XAUTOCLAIM with no idle minimum: the first two pending
                    // entries move to `consumer`, or are dropped if deleted.
                    let reply = server.run(&[b"XAUTOCLAIM", b"s", b"g", consumer, b"0", b"-", b"COUNT", b"2"]);
                    let Reply::Array(parts) = reply else { panic!("step {step}: {reply:?}") };
                    let first_two: Vec<Id> = pending.keys().take(2).copied().collect();
                    let (mut claimed, mut dropped) = (Vec::new(), Vec::new());
                    for id in &first_two {
                        if entries.contains_key(id) {
                            claimed.push(*id);
                            let p = pending.get_mut(id).expect("pending");
                            *p = (consumer.to_vec(), p.1 + 1);
                        } else {
                            dropped.push(*id);
                            pending.remove(id);
                        }
                    }
                    assert_eq!(entries_of(&parts[1]), claimed, "step {step}");
                    let Reply::Array(deleted) = &parts[2] else { panic!("{parts:?}") };
                    assert_eq!(deleted.iter().map(|d| parse_id(&bulk(d))).collect::<Vec<_>>(), dropped);
                }
                7 => {
                    // Move the group back or forth, with or without a read counter.
                    let to = (rng.random_range(0..next_ms + 1), 0);
                    let counter = rng.random_range(-1..next_ms as i64 + 1).to_string();
                    let to_text = id_text(to);
                    let mut args: Vec<&[u8]> = vec![b"XGROUP", b"SETID", b"s", b"g", &to_text];
                    let with_counter = rng.random_bool(0.5);
                    if with_counter {
                        args.extend([b"ENTRIESREAD".as_slice(), counter.as_bytes()]);
                    }
                    assert_eq!(server.run(&args), Reply::ok(), "step {step}");
                    last_delivered = to;
                    let info = server.run(&[b"XINFO", b"GROUPS", b"s"]);
                    let Reply::Array(groups) = info else { panic!("XINFO GROUPS {info:?}") };
                    let Reply::Map(fields) = &groups[0] else { panic!("group {groups:?}") };
                    assert_eq!(bulk(&fields[3].1), id_text(to), "step {step}");
                    let expected = match counter.as_str() {
                        "-1" => Reply::Nil,
                        n if with_counter => Reply::Integer(n.parse().expect("int")),
                        _ => Reply::Nil,
                    };
                    assert_eq!(fields[4].1, expected, "entries-read as set; step {step}");
                }
                _ => {
                    if rng.random_bool(0.1) {
                        let dropped = pending.iter().filter(|(_, (c, _))| c == consumer).count() as i64;
                        let reply = int(&server.run(&[b"XGROUP", b"DELCONSUMER", b"s", b"g", consumer]));
                        assert!(reply == dropped || (dropped == 0 && reply == 0), "step {step}");
                        pending.retain(|_, (c, _)| c != consumer);
                    }
                }
            }
            let expected: Vec<(Id, Vec<u8>, i64)> = pending.iter().map(|(id, (c, n))| (*id, c.clone(), *n)).collect();
            assert_eq!(
                pending_rows(&server.run(&[b"XPENDING", b"s", b"g", b"-", b"+", b"100000"])),
                expected,
                "step {step}"
            );
        }
        server.assert_replay_matches();
    }

    /// The IDs of an entries reply (deleted entries, with a null body, too).
    fn entries_of(reply: &Reply) -> Vec<Id> {
        let Reply::Array(items) = reply else { panic!("entries {reply:?}") };
        items
            .iter()
            .map(|item| match item {
                Reply::Array(pair) => parse_id(&bulk(&pair[0])),
                other => panic!("entry {other:?}"),
            })
            .collect()
    }
}
