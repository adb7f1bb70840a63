//! Set commands (memory engine). A set is an `IndexSet` of members (see
//! `strata_engines::memory::set`): O(1) membership and O(1) access by
//! position, which the random commands (SPOP, SRANDMEMBER) use.
//!
//! Every change is a recorded `SetOp` effect: SADD records only the members
//! it added, SPOP the members it chose, SMOVE a removal and an addition; the
//! *STORE commands replace the destination with one `MemOp::Put`.
//!
//! Redis returns members in its hash table's order; Strata returns them in
//! its own insertion order. SSCAN walks members in the order of a keyed
//! hash, and its cursor is a position in that order (see `crate::cursor`),
//! which keeps SCAN's guarantee: every member present for the whole
//! iteration is returned.

use bytes::Bytes;
use rand::Rng;
use strata_engines::memory::{MemEntry, MemOp, MemValue, SetOp, SetValue};
use strata_engines::KeyType;

use super::args::parse_int;
use super::{CommandTable, Ctx};
use crate::cursor::{member_position, next_by_position, parse_cursor, ScanOptions};
use crate::error::{CmdError, CmdResult};
use crate::glob::glob_match;
use crate::keyspace::Tx;
use crate::notify;
use crate::protocol::Reply;

pub fn register(table: &mut CommandTable) {
    table.register("sadd", sadd);
    table.register("srem", srem);
    table.register("smembers", smembers);
    table.register("sismember", sismember);
    table.register("smismember", smismember);
    table.register("scard", scard);
    table.register("spop", spop);
    table.register("srandmember", srandmember);
    table.register("smove", smove);
    table.register("sinter", sinter);
    table.register("sintercard", sintercard);
    table.register("sinterstore", sinterstore);
    table.register("sunion", sunion);
    table.register("sunionstore", sunionstore);
    table.register("sdiff", sdiff);
    table.register("sdiffstore", sdiffstore);
    table.register("sscan", sscan);
}

/// The set at `key`; None when missing; WRONGTYPE when it holds another type.
fn get_set<'t>(tx: &'t mut Tx, key: &[u8]) -> Result<Option<&'t SetValue>, CmdError> {
    match tx.mem_value(key, KeyType::Set)? {
        None => Ok(None),
        Some(MemValue::Set(set)) => Ok(Some(set)),
        Some(_) => Err(CmdError::WrongType),
    }
}

/// Records a set effect on `key`.
fn apply(tx: &mut Tx, key: &Bytes, op: SetOp) {
    tx.mem_apply(MemOp::Set { key: key.clone(), op });
}

/// A set reply (RESP3 `~`, RESP2 array).
fn set_reply<'a>(members: impl IntoIterator<Item = &'a Bytes>) -> Reply {
    Reply::Set(members.into_iter().cloned().map(Reply::Bulk).collect())
}

/// Runs a read of the set at `key` and counts the keyspace hit or miss.
fn read_set<R>(
    ctx: &mut Ctx,
    key: &[u8],
    body: impl Fn(Option<&SetValue>) -> Result<R, CmdError>,
) -> Result<R, CmdError> {
    let (found, result) = ctx.run(|tx| {
        let set = get_set(tx, key)?;
        Ok((set.is_some(), body(set)?))
    })?;
    ctx.hit(key, found);
    Ok(result)
}

/// `SADD key member [member ...]`
fn sadd(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    let (key, members) = (&argv[1], &argv[2..]);
    ctx.run(|tx| {
        let mut added = SetValue::default();
        let set = get_set(tx, key)?;
        for member in members {
            if !set.is_some_and(|s| s.contains(member)) {
                added.insert(member.clone());
            }
        }
        let count = added.len() as i64;
        if count > 0 {
            apply(tx, key, SetOp::Add(added.into_iter().collect()));
            tx.notify(notify::SET, "sadd", key);
        }
        Ok(Reply::Integer(count))
    })
}

/// `SREM key member [member ...]`
fn srem(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    let (key, members) = (&argv[1], &argv[2..]);
    ctx.run(|tx| {
        let Some(set) = get_set(tx, key)? else {
            return Ok(Reply::Integer(0));
        };
        let removed: SetValue = members.iter().filter(|m| set.contains(*m)).cloned().collect();
        let (count, emptied) = (removed.len() as i64, removed.len() == set.len());
        if count > 0 {
            apply(tx, key, SetOp::Remove(removed.into_iter().collect()));
            tx.notify(notify::SET, "srem", key);
            if emptied {
                tx.notify(notify::GENERIC, "del", key);
            }
        }
        Ok(Reply::Integer(count))
    })
}

/// `SMEMBERS key`
fn smembers(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    read_set(ctx, &argv[1], |set| Ok(set_reply(set.into_iter().flatten())))
}

/// `SISMEMBER key member`
fn sismember(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    let member = &argv[2];
    let found = read_set(ctx, &argv[1], |set| Ok(set.is_some_and(|s| s.contains(member))))?;
    Ok(Reply::Integer(found as i64))
}

/// `SMISMEMBER key member [member ...]`
fn smismember(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    let members = &argv[2..];
    read_set(ctx, &argv[1], |set| {
        Ok(Reply::Array(members.iter().map(|m| Reply::Integer(set.is_some_and(|s| s.contains(m)) as i64)).collect()))
    })
}

/// `SCARD key`
fn scard(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    let len = read_set(ctx, &argv[1], |set| Ok(set.map_or(0, |s| s.len())))?;
    Ok(Reply::Integer(len as i64))
}

/// `count` distinct members of `set` picked uniformly at random, in random
/// order (the whole set, in its own order, when `count` covers it).
fn distinct_sample(set: &SetValue, count: usize) -> Vec<Bytes> {
    if count >= set.len() {
        return set.iter().cloned().collect();
    }
    let mut rng = rand::rng();
    rand::seq::index::sample(&mut rng, set.len(), count).iter().filter_map(|i| set.get_index(i).cloned()).collect()
}

/// `SPOP key [count]`
fn spop(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    let key = &argv[1];
    let count = match &argv[2..] {
        [] => None,
        [count] => {
            let out_of_range = || CmdError::err("value is out of range, must be positive");
            let count = parse_int(count).map_err(|_| out_of_range())?;
            Some(usize::try_from(count).map_err(|_| out_of_range())?)
        }
        _ => return Err(CmdError::Syntax),
    };
    ctx.run(|tx| {
        let Some(set) = get_set(tx, key)? else {
            return Ok(if count.is_some() { Reply::Set(Vec::new()) } else { Reply::Nil });
        };
        let popped = match count {
            None => {
                let index = rand::rng().random_range(0..set.len());
                set.get_index(index).cloned().into_iter().collect()
            }
            Some(count) => distinct_sample(set, count),
        };
        if !popped.is_empty() {
            let emptied = popped.len() == set.len();
            apply(tx, key, SetOp::Remove(popped.clone()));
            tx.notify(notify::SET, "spop", key);
            if emptied {
                tx.notify(notify::GENERIC, "del", key);
            }
        }
        Ok(match count {
            None => Reply::opt_bulk(popped.into_iter().next()),
            Some(_) => set_reply(&popped),
        })
    })
}

/// `SRANDMEMBER key [count]`: a negative count allows repeats.
fn srandmember(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    use crate::protocol::RandomPicks;
    let count = match &argv[2..] {
        [] => None,
        [count] => {
            let count = parse_int(count)?;
            if count == i64::MIN {
                return Err(CmdError::err(format!(
                    "value is out of range, value must between {} and {}",
                    -i64::MAX,
                    i64::MAX
                )));
            }
            Some(count)
        }
        _ => return Err(CmdError::Syntax),
    };
    let resp3 = ctx.client.resp3;
    read_set(ctx, &argv[1], |set| {
        let Some(count) = count else {
            let member = set.and_then(|s| s.get_index(rand::rng().random_range(0..s.len())));
            return Ok(Reply::opt_bulk(member.cloned()));
        };
        let Some(set) = set else {
            return Ok(Reply::Array(Vec::new()));
        };
        let wanted = count.unsigned_abs();
        if count < 0 && RandomPicks::worth_streaming(wanted, set.len() as u64) {
            // Picked as the client reads: the reply is never held whole.
            let mut picks = RandomPicks::builder(resp3);
            for member in set {
                picks.push(&[Reply::Bulk(member.clone())]);
            }
            return Ok(picks.finish(wanted, wanted));
        }
        let members = if count >= 0 {
            distinct_sample(set, usize::try_from(count).unwrap_or(usize::MAX))
        } else {
            let mut rng = rand::rng();
            (0..count.unsigned_abs()).filter_map(|_| set.get_index(rng.random_range(0..set.len())).cloned()).collect()
        };
        Ok(Reply::bulks(members))
    })
}

/// `SMOVE source destination member`
fn smove(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    let (src, dst, member) = (&argv[1], &argv[2], &argv[3]);
    ctx.run(|tx| {
        // Redis answers 0 for a missing source before looking at the
        // destination's type.
        let Some(source) = get_set(tx, src)? else {
            return Ok(Reply::Integer(0));
        };
        let (present, emptied) = (source.contains(member), source.len() == 1);
        let in_destination = get_set(tx, dst)?.is_some_and(|set| set.contains(member));
        if src == dst || !present {
            return Ok(Reply::Integer(present as i64));
        }
        apply(tx, src, SetOp::Remove(vec![member.clone()]));
        tx.notify(notify::SET, "srem", src);
        if emptied {
            tx.notify(notify::GENERIC, "del", src);
        }
        apply(tx, dst, SetOp::Add(vec![member.clone()]));
        if !in_destination {
            tx.notify(notify::SET, "sadd", dst);
        }
        Ok(Reply::Integer(1))
    })
}

/// The set operations of SINTER, SUNION and SDIFF and their variants.
#[derive(Clone, Copy)]
enum Algebra {
    Inter,
    Union,
    Diff,
}

impl Algebra {
    /// The event of its STORE variant.
    fn store_event(self) -> &'static str {
        match self {
            Algebra::Inter => "sinterstore",
            Algebra::Union => "sunionstore",
            Algebra::Diff => "sdiffstore",
        }
    }
}

/// The result of `op` over the sets at `keys` (a missing key is an empty
/// set), and which keys exist. Every key's type is checked first, so a
/// wrong type anywhere is WRONGTYPE even when the result is already known.
fn combine(tx: &mut Tx, keys: &[Bytes], op: Algebra) -> Result<(SetValue, Vec<bool>), CmdError> {
    let mut sizes = Vec::with_capacity(keys.len());
    for key in keys {
        sizes.push(get_set(tx, key)?.map(|s| s.len()));
    }
    let found = sizes.iter().map(Option::is_some).collect();
    let mut result = SetValue::default();
    match op {
        Algebra::Inter => {
            if sizes.contains(&None) {
                return Ok((result, found));
            }
            // Start from the smallest set and keep what every other set has.
            let mut order: Vec<usize> = (0..keys.len()).collect();
            order.sort_by_key(|&i| sizes[i]);
            result = get_set(tx, &keys[order[0]])?.cloned().unwrap_or_default();
            for &i in &order[1..] {
                if result.is_empty() {
                    break;
                }
                if let Some(other) = get_set(tx, &keys[i])? {
                    result.retain(|m| other.contains(m));
                }
            }
        }
        Algebra::Union => {
            for key in keys {
                if let Some(set) = get_set(tx, key)? {
                    result.extend(set.iter().cloned());
                }
            }
        }
        Algebra::Diff => {
            result = get_set(tx, &keys[0])?.cloned().unwrap_or_default();
            for key in &keys[1..] {
                if result.is_empty() {
                    break;
                }
                if let Some(other) = get_set(tx, key)? {
                    result.retain(|m| !other.contains(m));
                }
            }
        }
    }
    Ok((result, found))
}

/// SINTER, SUNION, SDIFF: the result as a set reply.
fn combine_reply(ctx: &mut Ctx, keys: &[Bytes], op: Algebra) -> CmdResult {
    let (result, found) = ctx.run(|tx| combine(tx, keys, op))?;
    keys.iter().zip(found).for_each(|(key, f)| ctx.hit(key, f));
    Ok(set_reply(&result))
}

/// SINTERSTORE, SUNIONSTORE, SDIFFSTORE: replaces `dst` (whatever it
/// holds) with the result, or deletes it when the result is empty.
fn combine_store(ctx: &mut Ctx, dst: &Bytes, keys: &[Bytes], op: Algebra) -> CmdResult {
    let mut locks: Vec<&[u8]> = keys.iter().map(|k| k.as_ref()).collect();
    locks.push(dst);
    let (len, found) = ctx.run(|tx| {
        let (result, found) = combine(tx, keys, op)?;
        let len = result.len();
        if len == 0 {
            if tx.delete(dst)? {
                tx.notify(notify::GENERIC, "del", dst);
            }
        } else {
            tx.overwrite(dst, MemEntry { expire_ms: 0, value: MemValue::Set(result) })?;
            tx.notify(notify::SET, op.store_event(), dst);
        }
        Ok((len, found))
    })?;
    keys.iter().zip(found).for_each(|(key, f)| ctx.hit(key, f));
    Ok(Reply::Integer(len as i64))
}

/// `SINTER key [key ...]`
fn sinter(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    combine_reply(ctx, &argv[1..], Algebra::Inter)
}

/// `SUNION key [key ...]`
fn sunion(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    combine_reply(ctx, &argv[1..], Algebra::Union)
}

/// `SDIFF key [key ...]`
fn sdiff(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    combine_reply(ctx, &argv[1..], Algebra::Diff)
}

/// `SINTERSTORE destination key [key ...]`
fn sinterstore(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    combine_store(ctx, &argv[1], &argv[2..], Algebra::Inter)
}

/// `SUNIONSTORE destination key [key ...]`
fn sunionstore(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    combine_store(ctx, &argv[1], &argv[2..], Algebra::Union)
}

/// `SDIFFSTORE destination key [key ...]`
fn sdiffstore(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    combine_store(ctx, &argv[1], &argv[2..], Algebra::Diff)
}

/// `SINTERCARD numkeys key [key ...] [LIMIT limit]`: LIMIT 0 means none.
fn sintercard(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    let bad_numkeys = || CmdError::err("numkeys should be greater than 0");
    let numkeys = parse_int(&argv[1]).map_err(|_| bad_numkeys())?;
    if numkeys < 1 {
        return Err(bad_numkeys());
    }
    if numkeys > (argv.len() - 2) as i64 {
        return Err(CmdError::err("Number of keys can't be greater than number of args"));
    }
    let keys = &argv[2..2 + numkeys as usize];
    let mut limit = 0usize;
    let mut options = argv[2 + numkeys as usize..].iter();
    while let Some(option) = options.next() {
        match options.next() {
            Some(value) if option.eq_ignore_ascii_case(b"LIMIT") => {
                let negative = || CmdError::err("LIMIT can't be negative");
                limit = usize::try_from(parse_int(value).map_err(|_| negative())?).map_err(|_| negative())?;
            }
            _ => return Err(CmdError::Syntax),
        }
    }
    let (result, found) = ctx.run(|tx| combine(tx, keys, Algebra::Inter))?;
    keys.iter().zip(found).for_each(|(key, f)| ctx.hit(key, f));
    let len = if limit == 0 { result.len() } else { result.len().min(limit) };
    Ok(Reply::Integer(len as i64))
}

/// `SSCAN key cursor [MATCH pattern] [COUNT count]`: members in the order
/// of their keyed hash (`member_position`), from the position the cursor
/// holds. Each call is O(set size): it selects the next members without
/// keeping a sorted copy of the set, or anything else between calls.
fn sscan(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    let cursor = parse_cursor(&argv[2])?;
    // Redis checks the key before the options: a missing key answers an
    // empty scan whatever the options are.
    let options = ScanOptions::parse(&argv[3..], false);
    let (found, next) = read_set(ctx, &argv[1], |set| {
        let Some(set) = set else {
            return Ok((Vec::new(), 0));
        };
        let options = options.as_ref().map_err(Clone::clone)?;
        // COUNT is a hint (Redis returns more for small sets too). Each call
        // costs O(set size), so a call takes at least 1/64 of the set: a
        // full iteration stays O(64 * size) however small COUNT is.
        let batch = options.count.max(set.len() / 64);
        let (taken, next) = next_by_position(set.iter(), |m| member_position(m), cursor, batch);
        let found: Vec<Bytes> =
            taken.into_iter().filter(|m| options.pattern.is_none_or(|p| glob_match(p, m, false))).cloned().collect();
        Ok((found, next))
    })?;
    Ok(Reply::Array(vec![Reply::bulk_str(&next.to_string()), Reply::bulks(found)]))
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};

    use rand::{Rng, SeedableRng};

    use super::super::testing::TestServer;
    use super::*;

    type Model = HashMap<Vec<u8>, HashSet<Vec<u8>>>;
    type Combine = fn(&HashSet<Vec<u8>>, &HashSet<Vec<u8>>) -> HashSet<Vec<u8>>;

    fn bulk(reply: &Reply) -> Vec<u8> {
        match reply {
            Reply::Bulk(b) => b.to_vec(),
            other => panic!("expected a bulk, got {other:?}"),
        }
    }

    fn members(reply: &Reply) -> Vec<Vec<u8>> {
        match reply {
            Reply::Set(items) | Reply::Array(items) => items.iter().map(bulk).collect(),
            other => panic!("expected an aggregate, got {other:?}"),
        }
    }

    fn int(reply: &Reply) -> i64 {
        match reply {
            Reply::Integer(n) => *n,
            other => panic!("expected an integer, got {other:?}"),
        }
    }

    /// Checks every key of the model against SMEMBERS, SCARD and a full SSCAN.
    fn check_state(server: &mut TestServer, model: &Model, keys: &[&[u8]]) {
        for key in keys {
            let expected = model.get(*key).cloned().unwrap_or_default();
            let got: HashSet<Vec<u8>> = members(&server.run(&[b"SMEMBERS", key])).into_iter().collect();
            assert_eq!(got, expected, "SMEMBERS {}", String::from_utf8_lossy(key));
            assert_eq!(int(&server.run(&[b"SCARD", key])), expected.len() as i64);
            let mut cursor = b"0".to_vec();
            let mut scanned = Vec::new();
            loop {
                let reply = server.run(&[b"SSCAN", key, &cursor, b"COUNT", b"2"]);
                let Reply::Array(parts) = reply else { panic!("SSCAN reply {reply:?}") };
                cursor = bulk(&parts[0]);
                scanned.extend(members(&parts[1]));
                if cursor == b"0" {
                    break;
                }
            }
            let distinct: HashSet<Vec<u8>> = scanned.iter().cloned().collect();
            assert_eq!(distinct.len(), scanned.len(), "SSCAN returned a member twice without changes");
            assert_eq!(distinct, expected, "SSCAN {}", String::from_utf8_lossy(key));
        }
    }

    #[test]
    fn random_commands_match_a_hash_set_model_and_replay() {
        let mut server = TestServer::new();
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let keys: [&[u8]; 4] = [b"a", b"b", b"{a}c", b"d"];
        let mut model = Model::new();
        let pick_member = |rng: &mut rand::rngs::StdRng| vec![b'm', rng.random_range(0..12u8)];
        for step in 0..3000 {
            let key = keys[rng.random_range(0..keys.len())];
            let other = keys[rng.random_range(0..keys.len())];
            let m = pick_member(&mut rng);
            let n = pick_member(&mut rng);
            match rng.random_range(0..10) {
                0 | 1 => {
                    let added = int(&server.run(&[b"SADD", key, &m, &n]));
                    let set = model.entry(key.to_vec()).or_default();
                    let expected = set.insert(m.clone()) as i64 + set.insert(n.clone()) as i64;
                    assert_eq!(added, expected, "step {step}");
                }
                2 => {
                    let removed = int(&server.run(&[b"SREM", key, &m, &n]));
                    let set = model.entry(key.to_vec()).or_default();
                    assert_eq!(removed, set.remove(&m) as i64 + set.remove(&n) as i64);
                }
                3 => {
                    let count = rng.random_range(0..4usize);
                    let popped = members(&server.run(&[b"SPOP", key, count.to_string().as_bytes()]));
                    let set = model.entry(key.to_vec()).or_default();
                    assert_eq!(popped.len(), count.min(set.len()));
                    for p in popped {
                        assert!(set.remove(&p), "SPOP returned {p:?} twice or a non-member");
                    }
                }
                4 => {
                    let reply = server.run(&[b"SPOP", key]);
                    let set = model.entry(key.to_vec()).or_default();
                    match reply {
                        Reply::Nil => assert!(set.is_empty()),
                        reply => assert!(set.remove(&bulk(&reply))),
                    }
                }
                5 => {
                    let moved = int(&server.run(&[b"SMOVE", key, other, &m]));
                    let present = model.get(key).is_some_and(|s| s.contains(&m));
                    assert_eq!(moved, present as i64);
                    if present && key != other {
                        model.entry(key.to_vec()).or_default().remove(&m);
                        model.entry(other.to_vec()).or_default().insert(m.clone());
                    }
                }
                6..=8 => {
                    let (name, op): (&[u8], Combine) = match rng.random_range(0..3) {
                        0 => (b"SINTERSTORE", |a, b| a.intersection(b).cloned().collect()),
                        1 => (b"SUNIONSTORE", |a, b| a.union(b).cloned().collect()),
                        _ => (b"SDIFFSTORE", |a, b| a.difference(b).cloned().collect()),
                    };
                    let dst = keys[rng.random_range(0..keys.len())];
                    let empty = HashSet::new();
                    let expected = op(model.get(key).unwrap_or(&empty), model.get(other).unwrap_or(&empty));
                    let len = int(&server.run(&[name, dst, key, other]));
                    assert_eq!(len, expected.len() as i64);
                    model.insert(dst.to_vec(), expected);
                }
                _ => {
                    let count = rng.random_range(-5..5i64);
                    let got = members(&server.run(&[b"SRANDMEMBER", key, count.to_string().as_bytes()]));
                    let set = model.get(key).cloned().unwrap_or_default();
                    let wanted =
                        if count < 0 { count.unsigned_abs() as usize } else { (count as usize).min(set.len()) };
                    assert_eq!(got.len(), if set.is_empty() { 0 } else { wanted });
                    assert!(got.iter().all(|g| set.contains(g)));
                    if count >= 0 {
                        assert_eq!(got.iter().collect::<HashSet<_>>().len(), got.len());
                    }
                }
            }
            model.retain(|_, s| !s.is_empty());
            check_state(&mut server, &model, &keys);
        }
        server.assert_replay_matches();
    }

    #[test]
    fn store_replaces_a_string_destination_and_an_empty_result_deletes_it() {
        let mut server = TestServer::new();
        server.run(&[b"SET", b"dst", b"x"]);
        server.run(&[b"SADD", b"s", b"1", b"2"]);
        assert_eq!(int(&server.run(&[b"SUNIONSTORE", b"dst", b"s"])), 2);
        assert_eq!(int(&server.run(&[b"SCARD", b"dst"])), 2);
        assert_eq!(int(&server.run(&[b"SINTERSTORE", b"dst", b"s", b"missing"])), 0);
        assert_eq!(int(&server.run(&[b"EXISTS", b"dst"])), 0);
        server.assert_replay_matches();
    }
}
