//! List commands (memory engine). A list is a `VecDeque<Bytes>` in the
//! key's lock shard; every change is a `ListOp` effect with indexes already
//! resolved, so replaying the records rebuilds the same lists.
//!
//! Argument parsing follows Redis's order for each command: some commands
//! parse every number before looking the key up (LRANGE, LTRIM, LREM), others
//! look the key up first (LINDEX, LSET), and the error a client sees depends
//! on it.

use bytes::Bytes;
use strata_engines::memory::{ListOp, ListValue, MemOp, MemValue};
use strata_engines::KeyType;

use super::args::{parse_int, MultiPop};
use super::{block_client, pop_first_or_block, CommandTable, Ctx};
use crate::blocking::parse_timeout;
use crate::error::{CmdError, CmdResult};
use crate::keyspace::Tx;
use crate::notify;
use crate::protocol::Reply;

pub fn register(table: &mut CommandTable) {
    table.register("lpush", lpush);
    table.register("rpush", rpush);
    table.register("lpushx", lpushx);
    table.register("rpushx", rpushx);
    table.register("lpop", lpop);
    table.register("rpop", rpop);
    table.register("llen", llen);
    table.register("lindex", lindex);
    table.register("lrange", lrange);
    table.register("lset", lset);
    table.register("linsert", linsert);
    table.register("ltrim", ltrim);
    table.register("lrem", lrem);
    table.register("lpos", lpos);
    table.register("lmove", lmove);
    table.register("rpoplpush", rpoplpush);
    table.register("lmpop", lmpop);
    table.register("blpop", blpop);
    table.register("brpop", brpop);
    table.register("blmove", blmove);
    table.register("brpoplpush", brpoplpush);
    table.register("blmpop", blmpop);
}

/// The list at `key`; None if missing; WRONGTYPE if it holds another type.
fn list_of<'t>(tx: &'t mut Tx, key: &[u8]) -> Result<Option<&'t ListValue>, CmdError> {
    match tx.mem_value(key, KeyType::List)? {
        None => Ok(None),
        Some(MemValue::List(list)) => Ok(Some(list)),
        Some(_) => Err(CmdError::WrongType),
    }
}

fn apply(tx: &mut Tx, key: &Bytes, op: ListOp) {
    tx.mem_apply(MemOp::List { key: key.clone(), op });
}

/// A push's event.
fn notify_push(tx: &mut Tx, key: &[u8], front: bool) {
    tx.notify(notify::LIST, if front { "lpush" } else { "rpush" }, key);
}

/// Pops `count` items from an end of the list at `key`, which holds `len`,
/// with the events Redis sends (and `del` when it empties).
fn pop_items(tx: &mut Tx, key: &Bytes, front: bool, count: usize, len: usize) {
    apply(tx, key, ListOp::Pop { front, count });
    tx.notify(notify::LIST, if front { "lpop" } else { "rpop" }, key);
    if count >= len {
        tx.notify(notify::GENERIC, "del", key);
    }
}

/// Runs a read of the list at `key` and counts the keyspace hit or miss.
fn read_list<R>(
    ctx: &mut Ctx,
    key: &[u8],
    body: impl Fn(Option<&ListValue>) -> Result<R, CmdError>,
) -> Result<R, CmdError> {
    let (found, result) = ctx.run(|tx| {
        let list = list_of(tx, key)?;
        Ok((list.is_some(), body(list)))
    })?;
    ctx.hit(key, found);
    result
}

/// `LEFT` or `RIGHT` (Redis's `getListPositionFromObjectOrReply`): true for
/// the head.
fn parse_end(arg: &[u8]) -> Result<bool, CmdError> {
    if arg.eq_ignore_ascii_case(b"left") {
        Ok(true)
    } else if arg.eq_ignore_ascii_case(b"right") {
        Ok(false)
    } else {
        Err(CmdError::Syntax)
    }
}

/// A non-negative integer; anything else fails with `message` (or Redis's
/// default for `getPositiveLongFromObjectOrReply`).
fn parse_positive(arg: &[u8], message: Option<&str>) -> Result<i64, CmdError> {
    let error = || CmdError::err(message.unwrap_or("value is out of range, must be positive"));
    match parse_int(arg) {
        Ok(n) if n >= 0 => Ok(n),
        _ => Err(error()),
    }
}

/// An index from the head (negative counts from the tail), if in range.
fn resolve_index(len: usize, index: i64) -> Option<usize> {
    let index = if index < 0 { index + len as i64 } else { index };
    (0..len as i64).contains(&index).then_some(index as usize)
}

/// The inclusive LRANGE/LTRIM range `start..=end` as `first..last`
/// (exclusive), or None when it selects nothing.
fn resolve_range(len: usize, start: i64, end: i64) -> Option<(usize, usize)> {
    let len = len as i64;
    let start = if start < 0 { (start + len).max(0) } else { start };
    let end = if end < 0 { end + len } else { end };
    if start > end || start >= len {
        return None;
    }
    Some((start as usize, end.min(len - 1) as usize + 1))
}

/// The first `count` items at one end, in the order they pop.
fn end_items(list: &ListValue, front: bool, count: usize) -> Vec<Bytes> {
    if front {
        list.iter().take(count).map(Bytes::copy_from_slice).collect()
    } else {
        list.iter().rev().take(count).map(Bytes::copy_from_slice).collect()
    }
}

fn push(ctx: &mut Ctx, argv: &[Bytes], front: bool, only_existing: bool) -> CmdResult {
    let key = &argv[1];
    let items = argv[2..].to_vec();
    let len = ctx.run(|tx| {
        let len = match list_of(tx, key)? {
            Some(list) => list.len(),
            None if only_existing => return Ok(0),
            None => 0,
        };
        let pushed = items.len();
        apply(tx, key, ListOp::Push { front, items });
        notify_push(tx, key, front);
        Ok(len + pushed)
    })?;
    Ok(Reply::Integer(len as i64))
}

/// `LPUSH key element [element ...]`
fn lpush(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    push(ctx, argv, true, false)
}

/// `RPUSH key element [element ...]`
fn rpush(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    push(ctx, argv, false, false)
}

/// `LPUSHX key element [element ...]`
fn lpushx(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    push(ctx, argv, true, true)
}

/// `RPUSHX key element [element ...]`
fn rpushx(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    push(ctx, argv, false, true)
}

fn pop(ctx: &mut Ctx, argv: &[Bytes], front: bool) -> CmdResult {
    let count = match argv.len() {
        2 => None,
        3 => Some(parse_positive(&argv[2], None)? as usize),
        _ => return Err(CmdError::WrongArity(String::from_utf8_lossy(&argv[0]).to_ascii_lowercase())),
    };
    let key = &argv[1];
    ctx.run(|tx| {
        let Some(list) = list_of(tx, key)? else {
            // With a count the reply is an array, so "nothing" is a null array.
            return Ok(if count.is_some() { Reply::NilArray } else { Reply::Nil });
        };
        if count == Some(0) {
            return Ok(Reply::Array(Vec::new()));
        }
        let (items, len) = (end_items(list, front, count.unwrap_or(1)), list.len());
        pop_items(tx, key, front, items.len(), len);
        Ok(match count {
            None => Reply::opt_bulk(items.into_iter().next()),
            Some(_) => Reply::bulks(items),
        })
    })
}

/// `LPOP key [count]`
fn lpop(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    pop(ctx, argv, true)
}

/// `RPOP key [count]`
fn rpop(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    pop(ctx, argv, false)
}

/// `LLEN key`
fn llen(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    let len = read_list(ctx, &argv[1], |list| Ok(list.map_or(0, |l| l.len())))?;
    Ok(Reply::Integer(len as i64))
}

/// `LINDEX key index`
fn lindex(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    read_list(ctx, &argv[1], |list| {
        // Redis looks the key up before it parses the index.
        let Some(list) = list else { return Ok(Reply::Nil) };
        let index = parse_int(&argv[2])?;
        Ok(Reply::opt_bulk(resolve_index(list.len(), index).and_then(|i| list.get(i)).map(Bytes::copy_from_slice)))
    })
}

/// `LRANGE key start stop`
fn lrange(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    let start = parse_int(&argv[2])?;
    let end = parse_int(&argv[3])?;
    read_list(ctx, &argv[1], |list| {
        let Some(list) = list else { return Ok(Reply::Array(Vec::new())) };
        Ok(match resolve_range(list.len(), start, end) {
            Some((first, last)) => Reply::bulk_array(last - first, list.range(first..last)),
            None => Reply::Array(Vec::new()),
        })
    })
}

/// `LSET key index element`
fn lset(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    let key = &argv[1];
    ctx.run(|tx| {
        let list = list_of(tx, key)?.ok_or(CmdError::NoSuchKey)?;
        let index = parse_int(&argv[2])?;
        let index = resolve_index(list.len(), index).ok_or_else(|| CmdError::err("index out of range"))?;
        apply(tx, key, ListOp::Set { index, item: argv[3].clone() });
        tx.notify(notify::LIST, "lset", key);
        Ok(Reply::ok())
    })
}

/// `LINSERT key BEFORE|AFTER pivot element`
fn linsert(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    let after = if argv[2].eq_ignore_ascii_case(b"after") {
        true
    } else if argv[2].eq_ignore_ascii_case(b"before") {
        false
    } else {
        return Err(CmdError::Syntax);
    };
    let (key, pivot) = (&argv[1], &argv[3]);
    let len = ctx.run(|tx| {
        let Some(list) = list_of(tx, key)? else { return Ok(0) };
        let Some(at) = list.iter().position(|item| item == pivot) else { return Ok(-1) };
        let len = list.len() as i64 + 1;
        apply(tx, key, ListOp::Insert { index: at + after as usize, item: argv[4].clone() });
        tx.notify(notify::LIST, "linsert", key);
        Ok(len)
    })?;
    Ok(Reply::Integer(len))
}

/// `LTRIM key start stop`
fn ltrim(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    let start = parse_int(&argv[2])?;
    let end = parse_int(&argv[3])?;
    let key = &argv[1];
    ctx.run(|tx| {
        let Some(list) = list_of(tx, key)? else { return Ok(Reply::ok()) };
        let len = list.len();
        let (start, end) = resolve_range(len, start, end).unwrap_or((0, 0));
        if (start, end) != (0, len) {
            apply(tx, key, ListOp::Trim { start, end });
        }
        tx.notify(notify::LIST, "ltrim", key);
        if start == end {
            tx.notify(notify::GENERIC, "del", key);
        }
        Ok(Reply::ok())
    })
}

/// `LREM key count element`
fn lrem(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    let count = parse_int(&argv[2])?;
    let (key, element) = (&argv[1], &argv[3]);
    let removed = ctx.run(|tx| {
        let Some(list) = list_of(tx, key)? else { return Ok(0) };
        // 0 removes every match; otherwise at most |count| from one end.
        let limit = if count == 0 { usize::MAX } else { count.unsigned_abs().min(usize::MAX as u64) as usize };
        let len = list.len();
        let is_match = |(_, item): &(usize, &[u8])| *item == &element[..];
        let mut indexes: Vec<usize> = if count < 0 {
            list.iter().rev().enumerate().filter(is_match).map(|(i, _)| len - 1 - i).take(limit).collect()
        } else {
            list.iter().enumerate().filter(is_match).map(|(i, _)| i).take(limit).collect()
        };
        if indexes.is_empty() {
            return Ok(0);
        }
        indexes.sort_unstable();
        let removed = indexes.len();
        apply(tx, key, ListOp::Remove { indexes });
        tx.notify(notify::LIST, "lrem", key);
        if removed == len {
            tx.notify(notify::GENERIC, "del", key);
        }
        Ok(removed)
    })?;
    Ok(Reply::Integer(removed as i64))
}

/// `LPOS key element [RANK rank] [COUNT num-matches] [MAXLEN len]`
fn lpos(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    let (mut rank, mut count, mut maxlen) = (1i64, None, 0i64);
    let mut options = argv[3..].iter();
    while let Some(option) = options.next() {
        // Every option takes a value; a missing one is a syntax error.
        let Some(value) = options.as_slice().first() else { return Err(CmdError::Syntax) };
        if option.eq_ignore_ascii_case(b"rank") {
            rank = parse_int(value)?;
            if rank == 0 {
                return Err(CmdError::err(
                    "RANK can't be zero: use 1 to start from the first match, 2 from the second ... \
                     or use negative to start from the end of the list",
                ));
            }
        } else if option.eq_ignore_ascii_case(b"count") {
            count = Some(parse_positive(value, Some("COUNT can't be negative"))?);
        } else if option.eq_ignore_ascii_case(b"maxlen") {
            maxlen = parse_positive(value, Some("MAXLEN can't be negative"))?;
        } else {
            return Err(CmdError::Syntax);
        }
        options.next();
    }
    let element = &argv[2];
    read_list(ctx, &argv[1], |list| {
        let Some(list) = list else {
            return Ok(if count.is_some() { Reply::Array(Vec::new()) } else { Reply::Nil });
        };
        let from_tail = rank < 0;
        // Redis 7.0 negates the rank in C `long` arithmetic: RANK
        // LONG_MIN stays negative and so matches from the first hit on.
        let rank = if from_tail { rank.wrapping_neg() } else { rank };
        let len = list.len();
        let mut found = Vec::new();
        let mut matches = 0i64;
        let items: Box<dyn Iterator<Item = &[u8]>> =
            if from_tail { Box::new(list.iter().rev()) } else { Box::new(list.iter()) };
        for (scanned, item) in items.enumerate() {
            if maxlen != 0 && scanned as i64 >= maxlen {
                break;
            }
            if item != &element[..] {
                continue;
            }
            matches += 1;
            if matches >= rank {
                found.push(if from_tail { len - scanned - 1 } else { scanned } as i64);
                match count {
                    None => break,
                    Some(count) if count != 0 && matches.wrapping_sub(rank).wrapping_add(1) >= count => break,
                    Some(_) => {}
                }
            }
        }
        Ok(match count {
            Some(_) => Reply::Array(found.into_iter().map(Reply::Integer).collect()),
            None => found.first().map_or(Reply::Nil, |&i| Reply::Integer(i)),
        })
    })
}

/// Pops one item from `src` and pushes it onto `dst` (LMOVE, RPOPLPUSH and
/// their blocking forms). None when `src` is missing.
fn move_in(tx: &mut Tx, src: &Bytes, dst: &Bytes, from_front: bool, to_front: bool) -> Result<Option<Bytes>, CmdError> {
    let Some(list) = list_of(tx, src)? else { return Ok(None) };
    let (item, len) = (end_items(list, from_front, 1).remove(0), list.len());
    // Both keys are checked before the first effect.
    list_of(tx, dst)?;
    // Push before popping: when source and destination are the same
    // key, the list never goes empty, so it keeps its TTL (as in Redis).
    apply(tx, dst, ListOp::Push { front: to_front, items: vec![item.clone()] });
    notify_push(tx, dst, to_front);
    let len = if src == dst { len + 1 } else { len };
    pop_items(tx, src, from_front, 1, len);
    Ok(Some(item))
}

fn move_item(ctx: &mut Ctx, src: &Bytes, dst: &Bytes, from_front: bool, to_front: bool) -> CmdResult {
    ctx.run(|tx| Ok(Reply::opt_bulk(move_in(tx, src, dst, from_front, to_front)?)))
}

/// `LMOVE source destination LEFT|RIGHT LEFT|RIGHT`
fn lmove(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    let from_front = parse_end(&argv[3])?;
    let to_front = parse_end(&argv[4])?;
    move_item(ctx, &argv[1], &argv[2], from_front, to_front)
}

/// `RPOPLPUSH source destination`
fn rpoplpush(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    move_item(ctx, &argv[1], &argv[2], false, true)
}

/// LMPOP's pop: from the first non-empty list in key order (the end word
/// is LEFT for the head); a key of another type met before it is an error.
/// None when every list is empty.
fn mpop_in(tx: &mut Tx, mpop: &MultiPop) -> Result<Option<Reply>, CmdError> {
    for key in mpop.keys {
        let Some(list) = list_of(tx, key)? else { continue };
        let (items, len) = (end_items(list, mpop.end, mpop.count), list.len());
        pop_items(tx, key, mpop.end, items.len(), len);
        return Ok(Some(Reply::Array(vec![Reply::Bulk(key.clone()), Reply::bulks(items)])));
    }
    Ok(None)
}

/// `LMPOP numkeys key [key ...] LEFT|RIGHT [COUNT count]`
fn lmpop(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    let mpop = MultiPop::parse(&argv[1..], parse_end)?;
    ctx.run(|tx| Ok(mpop_in(tx, &mpop)?.unwrap_or(Reply::NilArray)))
}

/// BLPOP and BRPOP: `key [key ...] timeout`.
fn blocking_pop(ctx: &mut Ctx, argv: &[Bytes], front: bool) -> CmdResult {
    pop_first_or_block(ctx, argv, |tx, key| {
        let Some(list) = list_of(tx, key)? else { return Ok(None) };
        let (item, len) = (end_items(list, front, 1).remove(0), list.len());
        pop_items(tx, key, front, 1, len);
        Ok(Some(Reply::Array(vec![Reply::Bulk(key.clone()), Reply::Bulk(item)])))
    })
}

/// `BLPOP key [key ...] timeout`
fn blpop(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    blocking_pop(ctx, argv, true)
}

/// `BRPOP key [key ...] timeout`
fn brpop(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    blocking_pop(ctx, argv, false)
}

/// BLMOVE and BRPOPLPUSH: waits for `src`, then moves one item.
fn blocking_move(ctx: &mut Ctx, argv: &[Bytes], from_front: bool, to_front: bool, timeout: &[u8]) -> CmdResult {
    let timeout = parse_timeout(timeout)?;
    let (src, dst) = (&argv[1], &argv[2]);
    let (server, client, tx) = ctx.parts();
    match move_in(tx, src, dst, from_front, to_front)? {
        Some(item) => Ok(Reply::Bulk(item)),
        // Redis answers a timed-out BLMOVE with a null array, like BLPOP.
        None => Ok(block_client(server, client, argv, std::slice::from_ref(src), timeout, Reply::NilArray)),
    }
}

/// `BLMOVE source destination LEFT|RIGHT LEFT|RIGHT timeout`
fn blmove(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    let from_front = parse_end(&argv[3])?;
    let to_front = parse_end(&argv[4])?;
    blocking_move(ctx, argv, from_front, to_front, &argv[5])
}

/// `BRPOPLPUSH source destination timeout`
fn brpoplpush(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    blocking_move(ctx, argv, false, true, &argv[3])
}

/// `BLMPOP timeout numkeys key [key ...] LEFT|RIGHT [COUNT count]`
fn blmpop(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    let mpop = MultiPop::parse(&argv[2..], parse_end)?;
    // Redis checks the timeout after the other arguments.
    let timeout = parse_timeout(&argv[1])?;
    let (server, client, tx) = ctx.parts();
    match mpop_in(tx, &mpop)? {
        Some(reply) => Ok(reply),
        None => Ok(block_client(server, client, argv, mpop.keys, timeout, Reply::NilArray)),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    use super::*;
    use crate::commands::testing::TestServer;

    fn bulks(items: impl IntoIterator<Item = Vec<u8>>) -> Reply {
        Reply::Array(items.into_iter().map(|i| Reply::Bulk(Bytes::from(i))).collect())
    }

    #[test]
    fn ranges_follow_redis() {
        assert_eq!(resolve_range(5, 0, -1), Some((0, 5)));
        assert_eq!(resolve_range(5, -100, 100), Some((0, 5)));
        assert_eq!(resolve_range(5, 3, 1), None);
        assert_eq!(resolve_range(5, 5, 10), None);
        assert_eq!(resolve_range(5, i64::MIN, i64::MIN), None);
        assert_eq!(resolve_index(3, -1), Some(2));
        assert_eq!(resolve_index(3, 3), None);
        assert_eq!(resolve_index(3, -4), None);
    }

    /// Random commands on a few keys, checked against a `VecDeque` model
    /// after every step, then replayed from the op records.
    #[test]
    fn model_based_random_commands() {
        let mut server = TestServer::new();
        let mut model: [VecDeque<Vec<u8>>; 3] = Default::default();
        let mut rng = StdRng::seed_from_u64(7);
        let names = [b"k0".to_vec(), b"k1".to_vec(), b"k2".to_vec()];
        for step in 0..4000 {
            let k = rng.random_range(0..3);
            let key = names[k].clone();
            let item = vec![b'a' + rng.random_range(0..4u8)];
            let small = rng.random_range(-6i64..7).to_string().into_bytes();
            let small2 = rng.random_range(-6i64..7).to_string().into_bytes();
            let len = model[k].len() as i64;
            let (args, expected): (Vec<Vec<u8>>, Reply) = match rng.random_range(0..12) {
                0 | 1 => {
                    let items: Vec<Vec<u8>> = (0..rng.random_range(1..4)).map(|i| vec![b'a' + i]).collect();
                    let front = rng.random_bool(0.5);
                    for i in &items {
                        if front {
                            model[k].push_front(i.clone())
                        } else {
                            model[k].push_back(i.clone())
                        }
                    }
                    let name = if front { b"lpush".to_vec() } else { b"rpush".to_vec() };
                    let mut args = vec![name, key];
                    args.extend(items);
                    (args, Reply::Integer(model[k].len() as i64))
                }
                2 => {
                    let n = rng.random_range(0..4usize);
                    let front = rng.random_bool(0.5);
                    let expected = if model[k].is_empty() {
                        Reply::NilArray
                    } else {
                        let mut out = Vec::new();
                        for _ in 0..n.min(model[k].len()) {
                            out.push(if front { model[k].pop_front() } else { model[k].pop_back() }.unwrap());
                        }
                        bulks(out)
                    };
                    let name = if front { b"lpop".to_vec() } else { b"rpop".to_vec() };
                    (vec![name, key, n.to_string().into_bytes()], expected)
                }
                3 => {
                    let start = if len == 0 { 0 } else { rng.random_range(0..len) };
                    let stop = start + rng.random_range(0..3);
                    let kept: VecDeque<Vec<u8>> =
                        model[k].iter().skip(start as usize).take((stop - start + 1) as usize).cloned().collect();
                    model[k] = kept;
                    (
                        vec![b"ltrim".to_vec(), key, start.to_string().into_bytes(), stop.to_string().into_bytes()],
                        Reply::ok(),
                    )
                }
                4 => {
                    let count: i64 = rng.random_range(-2..3);
                    let matches: Vec<usize> = (0..model[k].len()).filter(|&i| model[k][i] == item).collect();
                    let mut doomed: Vec<usize> = match count {
                        0 => matches,
                        c if c > 0 => matches.into_iter().take(c as usize).collect(),
                        c => matches.into_iter().rev().take(c.unsigned_abs() as usize).collect(),
                    };
                    doomed.sort_unstable();
                    for &i in doomed.iter().rev() {
                        model[k].remove(i);
                    }
                    (
                        vec![b"lrem".to_vec(), key, count.to_string().into_bytes(), item],
                        Reply::Integer(doomed.len() as i64),
                    )
                }
                5 => {
                    let after = rng.random_bool(0.5);
                    let expected = match (model[k].is_empty(), model[k].iter().position(|i| *i == item)) {
                        (true, _) => 0,
                        (false, None) => -1,
                        (false, Some(at)) => {
                            model[k].insert(at + after as usize, b"new".to_vec());
                            model[k].len() as i64
                        }
                    };
                    let side = if after { b"after".to_vec() } else { b"before".to_vec() };
                    (vec![b"linsert".to_vec(), key, side, item, b"new".to_vec()], Reply::Integer(expected))
                }
                6 => {
                    let index: i64 = std::str::from_utf8(&small).unwrap().parse().unwrap();
                    let expected = if model[k].is_empty() {
                        Reply::Error("ERR no such key".into())
                    } else {
                        match resolve_index(model[k].len(), index) {
                            Some(i) => {
                                model[k][i] = item.clone();
                                Reply::ok()
                            }
                            None => Reply::Error("ERR index out of range".into()),
                        }
                    };
                    (vec![b"lset".to_vec(), key, small, item], expected)
                }
                7 => {
                    let d = rng.random_range(0..3);
                    let (from_front, to_front) = (rng.random_bool(0.5), rng.random_bool(0.5));
                    let expected = match if from_front { model[k].pop_front() } else { model[k].pop_back() } {
                        None => Reply::Nil,
                        Some(moved) => {
                            if to_front {
                                model[d].push_front(moved.clone())
                            } else {
                                model[d].push_back(moved.clone())
                            }
                            Reply::Bulk(Bytes::from(moved))
                        }
                    };
                    let side = |front: bool| if front { b"left".to_vec() } else { b"right".to_vec() };
                    (vec![b"lmove".to_vec(), key, names[d].clone(), side(from_front), side(to_front)], expected)
                }
                8 => {
                    let n = rng.random_range(1..4usize);
                    let expected = match (0..3).find(|&i| !model[i].is_empty()) {
                        None => Reply::NilArray,
                        Some(i) => {
                            let take = n.min(model[i].len());
                            let popped: Vec<Vec<u8>> = model[i].drain(..take).collect();
                            Reply::Array(vec![Reply::Bulk(Bytes::from(names[i].clone())), bulks(popped)])
                        }
                    };
                    let args = [&b"lmpop"[..], b"3", b"k0", b"k1", b"k2", b"left", b"count"];
                    let mut args: Vec<Vec<u8>> = args.iter().map(|a| a.to_vec()).collect();
                    args.push(n.to_string().into_bytes());
                    (args, expected)
                }
                9 => {
                    let parse = |n: &[u8]| -> i64 { std::str::from_utf8(n).unwrap().parse().unwrap() };
                    let expected = match resolve_range(model[k].len(), parse(&small), parse(&small2)) {
                        Some((a, b)) => bulks(model[k].range(a..b).cloned()),
                        None => Reply::Array(Vec::new()),
                    };
                    (vec![b"lrange".to_vec(), key, small, small2], expected)
                }
                10 => {
                    let hits: Vec<i64> =
                        (0..model[k].len()).filter(|&i| model[k][i] == item).map(|i| i as i64).collect();
                    let expected = Reply::Array(hits.iter().rev().map(|&i| Reply::Integer(i)).collect());
                    (
                        vec![
                            b"lpos".to_vec(),
                            key,
                            item,
                            b"rank".to_vec(),
                            b"-1".to_vec(),
                            b"count".to_vec(),
                            b"0".to_vec(),
                        ],
                        expected,
                    )
                }
                _ => {
                    let index: i64 = std::str::from_utf8(&small).unwrap().parse().unwrap();
                    let expected = resolve_index(model[k].len(), index)
                        .map_or(Reply::Nil, |i| Reply::Bulk(Bytes::from(model[k][i].clone())));
                    (vec![b"lindex".to_vec(), key, small], expected)
                }
            };
            let refs: Vec<&[u8]> = args.iter().map(|a| &a[..]).collect();
            assert_eq!(server.run(&refs), expected, "step {step}: {:?}", String::from_utf8_lossy(&args.concat()));
            for (i, name) in names.iter().enumerate() {
                let all = server.run(&[b"lrange", name, b"0", b"-1"]);
                assert_eq!(all, bulks(model[i].iter().cloned()), "step {step}: key {i}");
            }
        }
        server.assert_replay_matches();
    }
}
