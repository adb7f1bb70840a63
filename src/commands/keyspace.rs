//! Generic keyspace commands: they work on a key whatever its type (DEL,
//! EXISTS, TYPE, RENAME, COPY, MOVE, the EXPIRE/TTL family, KEYS, SCAN,
//! RANDOMKEY, OBJECT). They go through `Tx::meta` and `KeyMeta`, so keys of
//! every engine share one code path; only copying a value (RENAME, COPY,
//! MOVE) needs to know where the type keeps its data.

use std::collections::VecDeque;

use bytes::Bytes;
use strata_cluster::{key_slot, SLOT_COUNT};
use strata_engines::encoding::{db_end, db_start, decode_meta_key, prefix_end, Meta};
use strata_engines::keyspace::{KeyMeta, KeyRef};
use strata_engines::memory::{MemOp, MemValue};
use strata_engines::{Cf, KeyType};

use super::args::{c_text, parse_int, Args};
use super::{CommandTable, Ctx};
use crate::cursor::{key_cursor, key_position, next_by_position, parse_cursor, split_key_cursor, ScanOptions};
use crate::error::{CmdError, CmdResult};
use crate::glob::glob_match;
use crate::keyspace::{is_memory_type, Tx};
use crate::notify;
use crate::protocol::Reply;

pub fn register(table: &mut CommandTable) {
    table.register("del", del);
    table.register("unlink", del);
    table.register("exists", exists);
    table.register("type", type_);
    table.register("rename", rename);
    table.register("renamenx", renamenx);
    table.register("copy", copy);
    table.register("move", move_);
    table.register("touch", touch);
    table.register("expire", expire);
    table.register("pexpire", pexpire);
    table.register("expireat", expireat);
    table.register("pexpireat", pexpireat);
    table.register("ttl", ttl);
    table.register("pttl", pttl);
    table.register("expiretime", expiretime);
    table.register("pexpiretime", pexpiretime);
    table.register("persist", persist);
    table.register("keys", keys);
    table.register("scan", scan);
    table.register("randomkey", randomkey);
    table.register("object|encoding", object_encoding);
    table.register("object|refcount", object_refcount);
    table.register("object|idletime", object_idletime);
    table.register("object|freq", object_freq);
    table.register("object|help", object_help);
}

/// `DEL key [key ...]` and `UNLINK key [key ...]` (deleting is O(1) for
/// every type here: a hash's fields are dropped by compaction).
fn del(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    let keys = &argv[1..];
    let deleted = ctx.run(|tx| {
        let mut deleted = 0;
        for key in keys {
            if tx.delete(key)? {
                tx.notify(notify::GENERIC, "del", key);
                deleted += 1;
            }
        }
        Ok(deleted)
    })?;
    Ok(Reply::Integer(deleted))
}

/// How many of `keys` exist (a key named twice counts twice).
fn count_existing(ctx: &mut Ctx, keys: &[Bytes]) -> Result<i64, CmdError> {
    let found =
        ctx.run(|tx| keys.iter().map(|key| Ok(tx.meta(key)?.is_some())).collect::<Result<Vec<bool>, CmdError>>())?;
    for (key, &hit) in keys.iter().zip(&found) {
        ctx.hit(key, hit);
    }
    Ok(found.iter().filter(|&&hit| hit).count() as i64)
}

/// `EXISTS key [key ...]`
fn exists(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    Ok(Reply::Integer(count_existing(ctx, &argv[1..])?))
}

/// `TOUCH key [key ...]`: Strata keeps no access clock, so touching a key
/// is just finding it.
fn touch(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    Ok(Reply::Integer(count_existing(ctx, &argv[1..])?))
}

/// `TYPE key`
fn type_(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    let key = &argv[1];
    let key_type = ctx.run(|tx| tx.key_type(key))?;
    ctx.hit(key, key_type.is_some());
    Ok(Reply::Status(key_type.map_or("none", KeyType::name)))
}

/// Stores a copy of `src` (in physical database `from_db`, described by
/// `meta`) as `dst` in `to_db`, replacing whatever `dst` held in any engine,
/// with the TTL kept. A string's value is its metadata; a hash gets a fresh
/// version with every field copied (fields are keyed by key name); a memory
/// value is copied whole.
fn copy_key(tx: &mut Tx, from_db: u32, src: &[u8], meta: &KeyMeta, to_db: u32, dst: &[u8]) -> Result<(), CmdError> {
    tx.delete_in(to_db, dst)?;
    if is_memory_type(meta.key_type) {
        let entry = tx.mem_entry_of(from_db, src).ok_or(CmdError::NoSuchKey)?;
        tx.mem_apply_in(to_db, MemOp::Put { key: Bytes::copy_from_slice(dst), entry });
        return Ok(());
    }
    let from = KeyRef { db: from_db, slot: key_slot(src), key: src };
    let to = KeyRef { db: to_db, slot: key_slot(dst), key: dst };
    let new = match meta.key_type {
        KeyType::Hash => {
            let old = meta.hash()?;
            let mut body = tx.txn.new_hash_body();
            body.len = super::hash::copy_hash_fields(&mut tx.txn, &from, old.version, &to, body.version)?;
            KeyMeta { key_type: KeyType::Hash, expire_ms: meta.expire_ms, body: body.encode().to_vec() }
        }
        _ => meta.clone(),
    };
    tx.txn.put_meta(&to, None, &new);
    tx.notify_physical(to_db, notify::NEW, "new", dst);
    Ok(())
}

/// RENAME and RENAMENX.
fn rename_generic(ctx: &mut Ctx, argv: &[Bytes], nx: bool) -> Result<bool, CmdError> {
    let (src, dst) = (&argv[1], &argv[2]);
    ctx.run(|tx| {
        let Some(meta) = tx.meta(src)? else {
            return Err(CmdError::NoSuchKey);
        };
        // Redis answers an existing key renamed to itself without touching it.
        if src == dst {
            return Ok(!nx);
        }
        let old_dst = tx.meta(dst)?;
        if nx && old_dst.is_some() {
            return Ok(false);
        }
        let db = tx.physical;
        copy_key(tx, db, src, &meta, db, dst)?;
        tx.delete(src)?;
        tx.notify(notify::GENERIC, "rename_from", src);
        tx.notify(notify::GENERIC, "rename_to", dst);
        Ok(true)
    })
}

/// `RENAME key newkey`
fn rename(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    rename_generic(ctx, argv, false)?;
    Ok(Reply::ok())
}

/// `RENAMENX key newkey`
fn renamenx(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    Ok(Reply::Integer(rename_generic(ctx, argv, true)? as i64))
}

/// A database index argument, checked as Redis's `getIntFromObjectOrReply`
/// followed by `selectDb`.
fn parse_db_index(arg: &[u8], databases: usize) -> Result<usize, CmdError> {
    let value = parse_int(arg)?;
    let value = i32::try_from(value)
        .map_err(|_| CmdError::err("value is out of range, value must between -2147483648 and 2147483647"))?;
    if value < 0 || value as usize >= databases {
        return Err(CmdError::DbIndexOutOfRange);
    }
    Ok(value as usize)
}

struct CopyArgs<'a> {
    src: &'a Bytes,
    dst: &'a Bytes,
    db: usize,
    replace: bool,
}

impl<'a> CopyArgs<'a> {
    fn parse(argv: &'a [Bytes], current_db: usize, databases: usize) -> Result<CopyArgs<'a>, CmdError> {
        let mut args = Args::new(argv);
        let src = args.next_bytes()?;
        let dst = args.next_bytes()?;
        let mut parsed = CopyArgs { src, dst, db: current_db, replace: false };
        while let Some(option) = args.next_opt() {
            if option.eq_ignore_ascii_case(b"REPLACE") {
                parsed.replace = true;
            } else if option.eq_ignore_ascii_case(b"DB") && !args.is_empty() {
                parsed.db = parse_db_index(args.next_bytes()?, databases)?;
            } else {
                return Err(CmdError::Syntax);
            }
        }
        if parsed.db == current_db && src == dst {
            return Err(CmdError::err("source and destination objects are the same"));
        }
        Ok(parsed)
    }
}

/// `COPY source destination [DB destination-db] [REPLACE]`
fn copy(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    let keyspace = &ctx.server.keyspace;
    let copy = CopyArgs::parse(argv, ctx.client.db, keyspace.databases())?;
    if ctx.server.cluster.is_some() && (ctx.client.db != 0 || copy.db != 0) {
        return Err(CmdError::err("Copying to another database is not allowed in cluster mode"));
    }
    let found = std::cell::Cell::new(false);
    let copied = ctx.run(|tx| {
        let Some(meta) = tx.meta(copy.src)? else {
            return Ok(false);
        };
        found.set(true);
        // Read under the locks: SWAPDB holds every lock while it remaps.
        let to_db = keyspace.store.physical(copy.db);
        if tx.meta_in(to_db, copy.dst)?.is_some() && !copy.replace {
            return Ok(false);
        }
        let from_db = tx.physical;
        copy_key(tx, from_db, copy.src, &meta, to_db, copy.dst)?;
        tx.notify_in(copy.db, notify::GENERIC, "copy_to", copy.dst);
        Ok(true)
    })?;
    ctx.hit(copy.src, found.get());
    Ok(Reply::Integer(copied as i64))
}

/// `MOVE key db`
fn move_(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    if ctx.server.cluster.is_some() {
        return Err(CmdError::err("MOVE is not allowed in cluster mode"));
    }
    let key = &argv[1];
    let keyspace = &ctx.server.keyspace;
    let target = parse_db_index(&argv[2], keyspace.databases())?;
    if target == ctx.client.db {
        return Err(CmdError::err("source and destination objects are the same"));
    }
    let moved = ctx.run(|tx| {
        let Some(meta) = tx.meta(key)? else {
            return Ok(false);
        };
        let to_db = keyspace.store.physical(target);
        if tx.meta_in(to_db, key)?.is_some() {
            return Ok(false);
        }
        let from_db = tx.physical;
        copy_key(tx, from_db, key, &meta, to_db, key)?;
        tx.delete(key)?;
        tx.notify(notify::GENERIC, "move_from", key);
        tx.notify_in(target, notify::GENERIC, "move_to", key);
        Ok(true)
    })?;
    Ok(Reply::Integer(moved as i64))
}

/// The conditions of EXPIRE and friends.
#[derive(Default)]
struct ExpireFlags {
    nx: bool,
    xx: bool,
    gt: bool,
    lt: bool,
}

impl ExpireFlags {
    /// Redis's `parseExtendedExpireArgumentsOrReply`.
    fn parse(options: &[Bytes]) -> Result<ExpireFlags, CmdError> {
        let mut flags = ExpireFlags::default();
        for option in options {
            match option.to_ascii_uppercase().as_slice() {
                b"NX" => flags.nx = true,
                b"XX" => flags.xx = true,
                b"GT" => flags.gt = true,
                b"LT" => flags.lt = true,
                _ => return Err(CmdError::err(format!("Unsupported option {}", c_text(option)))),
            }
        }
        if flags.nx && (flags.xx || flags.gt || flags.lt) {
            return Err(CmdError::err("NX and XX, GT or LT options at the same time are not compatible"));
        }
        if flags.gt && flags.lt {
            return Err(CmdError::err("GT and LT options at the same time are not compatible"));
        }
        Ok(flags)
    }

    /// Whether a key whose TTL is `current` (absolute ms, None for no TTL)
    /// may get the TTL `when`. No TTL counts as an infinite one.
    fn allows(&self, current: Option<i64>, when: i64) -> bool {
        match current {
            None => !(self.xx || self.gt),
            Some(current) => !(self.nx || (self.gt && when <= current) || (self.lt && when >= current)),
        }
    }
}

/// EXPIRE, PEXPIRE, EXPIREAT, PEXPIREAT: `name key time [NX | XX | GT | LT]`.
fn expire_generic(ctx: &mut Ctx, argv: &[Bytes], name: &str, seconds: bool, relative: bool) -> CmdResult {
    let key = &argv[1];
    let flags = ExpireFlags::parse(&argv[3..])?;
    let value = parse_int(&argv[2])?;
    // Negative times are allowed (the key is deleted); only overflow fails.
    let invalid = || CmdError::InvalidExpire(name.to_string());
    let ms = if seconds { value.checked_mul(1000).ok_or_else(invalid)? } else { value };
    let base = if relative { strata_engines::now_ms() as i64 } else { 0 };
    let when = ms.checked_add(base).ok_or_else(invalid)?;
    let changed = ctx.run(|tx| {
        let Some(meta) = tx.meta(key)? else {
            return Ok(false);
        };
        let current = (meta.expire_ms != 0).then_some(meta.expire_ms as i64);
        if !flags.allows(current, when) {
            return Ok(false);
        }
        if when <= tx.now_ms() as i64 {
            tx.delete(key)?;
            tx.notify(notify::GENERIC, "del", key);
        } else {
            tx.set_expire(key, &meta, when as u64);
            tx.notify(notify::GENERIC, "expire", key);
        }
        Ok(true)
    })?;
    Ok(Reply::Integer(changed as i64))
}

/// `EXPIRE key seconds [NX | XX | GT | LT]`
fn expire(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    expire_generic(ctx, argv, "expire", true, true)
}

/// `PEXPIRE key milliseconds [NX | XX | GT | LT]`
fn pexpire(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    expire_generic(ctx, argv, "pexpire", false, true)
}

/// `EXPIREAT key unix-time-seconds [NX | XX | GT | LT]`
fn expireat(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    expire_generic(ctx, argv, "expireat", true, false)
}

/// `PEXPIREAT key unix-time-milliseconds [NX | XX | GT | LT]`
fn pexpireat(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    expire_generic(ctx, argv, "pexpireat", false, false)
}

/// What a TTL-family command reports.
#[derive(Clone, Copy)]
enum TtlReport {
    Seconds,
    Millis,
    AtSeconds,
    AtMillis,
}

/// TTL, PTTL, EXPIRETIME, PEXPIRETIME: -2 for a missing key, -1 for a key
/// without a TTL.
fn ttl_generic(ctx: &mut Ctx, argv: &[Bytes], report: TtlReport) -> CmdResult {
    let key = &argv[1];
    let (meta, now) = ctx.run(|tx| Ok((tx.meta(key)?, tx.now_ms())))?;
    ctx.hit(key, meta.is_some());
    let Some(meta) = meta else {
        return Ok(Reply::Integer(-2));
    };
    if meta.expire_ms == 0 {
        return Ok(Reply::Integer(-1));
    }
    let expire = meta.expire_ms as i64;
    let left = (expire - now as i64).max(0);
    // Redis rounds to the nearest second, the absolute time too (in wider
    // arithmetic: an expiry near i64::MAX must not wrap).
    let round = |ms: i64| ((ms as i128 + 500) / 1000) as i64;
    Ok(Reply::Integer(match report {
        TtlReport::Seconds => round(left),
        TtlReport::Millis => left,
        TtlReport::AtSeconds => round(expire),
        TtlReport::AtMillis => expire,
    }))
}

/// `TTL key`
fn ttl(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    ttl_generic(ctx, argv, TtlReport::Seconds)
}

/// `PTTL key`
fn pttl(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    ttl_generic(ctx, argv, TtlReport::Millis)
}

/// `EXPIRETIME key`
fn expiretime(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    ttl_generic(ctx, argv, TtlReport::AtSeconds)
}

/// `PEXPIRETIME key`
fn pexpiretime(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    ttl_generic(ctx, argv, TtlReport::AtMillis)
}

/// `PERSIST key`
fn persist(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    let key = &argv[1];
    let removed = ctx.run(|tx| match tx.meta(key)? {
        Some(meta) if meta.expire_ms != 0 => {
            tx.set_expire(key, &meta, 0);
            tx.notify(notify::GENERIC, "persist", key);
            Ok(true)
        }
        _ => Ok(false),
    })?;
    Ok(Reply::Integer(removed as i64))
}

/// Up to `count` keys of `slot` in the current database, in key order
/// (CLUSTER GETKEYSINSLOT; keys expired but still stored included, as
/// Redis lists them).
pub(super) fn keys_in_slot(tx: &Tx, slot: u16, count: usize) -> Result<Vec<Bytes>, CmdError> {
    let mut keys = Vec::new();
    if count == 0 {
        return Ok(keys);
    }
    visit_keys(tx, Some(&slot.to_be_bytes()), &mut |position, key, _| {
        if position[..2] != slot.to_be_bytes() {
            return false;
        }
        keys.push(Bytes::copy_from_slice(key));
        keys.len() < count
    })?;
    Ok(keys)
}

/// Called with a key's position (`[slot][key]`), the key, and its type
/// (None when it expired but is still stored).
type KeyVisitor<'a> = dyn FnMut(&[u8], &[u8], Option<KeyType>) -> bool + 'a;

/// Visits the keys of the current database in every engine, in (slot, key)
/// order, from `from` (a position, inclusive; None = from the start), until
/// `visit` returns false. RocksDB is read with one iterator; the memory keys
/// of each slot are merged in as the iteration reaches that slot.
fn visit_keys(tx: &Tx, from: Option<&[u8]>, visit: &mut KeyVisitor) -> Result<(), CmdError> {
    let now = tx.now_ms();
    let physical = tx.physical;
    let mut start = db_start(physical);
    let mut next_slot = 0u16;
    let mut from_key: &[u8] = b"";
    if let Some(position) = from.filter(|p| p.len() >= 2) {
        start.extend_from_slice(position);
        next_slot = u16::from_be_bytes([position[0], position[1]]);
        from_key = &position[2..];
    }
    let first_slot = next_slot;
    // Memory keys of `slot` that come before `before` (all when None).
    let mut memory = VecDeque::<(Bytes, KeyType)>::new();
    let mut memory_slot = None::<u16>;
    let mut stopped = false;
    let mut emit_memory_until = |slot: u16, before: Option<&[u8]>, visit: &mut KeyVisitor| -> bool {
        // Finish the slots before `slot`, then the keys of `slot` below `before`.
        loop {
            if memory_slot.is_none() {
                if next_slot as usize >= SLOT_COUNT || next_slot > slot {
                    return true;
                }
                let from = if next_slot == first_slot { from_key } else { b"" };
                tx.visit_memory_slot(next_slot, from, &mut |k, e| {
                    memory.push_back((k.clone(), e.value.key_type()));
                    true
                });
                memory_slot = Some(next_slot);
                next_slot += 1;
            }
            let current = memory_slot.expect("loaded above");
            while let Some((key, key_type)) = memory.front() {
                if current == slot && before.is_some_and(|b| key.as_ref() >= b) {
                    return true;
                }
                let mut position = current.to_be_bytes().to_vec();
                position.extend_from_slice(key);
                if !visit(&position, key, Some(*key_type)) {
                    return false;
                }
                memory.pop_front();
            }
            memory_slot = None;
            if current >= slot {
                return true;
            }
        }
    };
    tx.txn.ws.scan(Cf::Meta, &start, &db_end(physical), false, &mut |raw, value| {
        let (Some((_, slot, key)), Some(meta)) = (decode_meta_key(raw), Meta::decode(value)) else {
            return true;
        };
        if !emit_memory_until(slot, Some(key), visit) {
            stopped = true;
            return false;
        }
        let key_type = (!meta.is_expired(now)).then_some(meta.key_type);
        if !visit(&raw[4..], key, key_type) {
            stopped = true;
            return false;
        }
        true
    })?;
    if !stopped {
        emit_memory_until(SLOT_COUNT as u16 - 1, None, visit);
    }
    Ok(())
}

/// `KEYS pattern`
fn keys(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    let pattern = &argv[1];
    let all = pattern.as_ref() == b"*";
    let found = ctx.run(|tx| {
        let mut found = Vec::new();
        visit_keys(tx, None, &mut |_, key, key_type| {
            if key_type.is_some() && (all || glob_match(pattern, key, false)) {
                found.push(Bytes::copy_from_slice(key));
            }
            true
        })?;
        Ok(found)
    })?;
    Ok(Reply::bulks(found))
}

/// `SCAN cursor [MATCH pattern] [COUNT count] [TYPE type]`: examines about
/// COUNT keys, slot by slot, and within a slot in the order of their keyed
/// hash (`cursor::key_position`). A call reads the slot it resumes in and
/// takes at least 1/64 of it, so a full iteration reads each key at most
/// 64 times however small COUNT is. The cursor holds the slot and the
/// position, not the database: SWAPDB or SELECT between calls resume at
/// the same place.
fn scan(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    let cursor = parse_cursor(&argv[1])?;
    let scan = ScanOptions::parse(&argv[2..], true)?;
    let (first_slot, first_at) = split_key_cursor(cursor);
    let (found, next) = ctx.run(|tx| {
        let mut found = Vec::new();
        let mut examined = 0;
        let mut slot = first_slot;
        let mut slot_keys = Vec::new();
        let mut next = 0;
        visit_keys(tx, Some(&first_slot.to_be_bytes()), &mut |position, key, key_type| {
            let key_slot = u16::from_be_bytes([position[0], position[1]]);
            if key_slot != slot {
                let at = if slot == first_slot { first_at } else { 0 };
                let keys = std::mem::take(&mut slot_keys);
                if let Some(cursor) = scan_slot(&scan, slot, keys, at, &mut examined, &mut found) {
                    next = cursor;
                    return false;
                }
                if examined >= scan.count {
                    // The next slot with keys, from its start.
                    next = key_cursor(key_slot, 0);
                    return false;
                }
                slot = key_slot;
            }
            slot_keys.push((Bytes::copy_from_slice(key), key_type));
            true
        })?;
        if next == 0 && !slot_keys.is_empty() {
            let at = if slot == first_slot { first_at } else { 0 };
            next = scan_slot(&scan, slot, slot_keys, at, &mut examined, &mut found).unwrap_or(0);
        }
        Ok((found, next))
    })?;
    Ok(Reply::Array(vec![Reply::bulk(next.to_string()), Reply::bulks(found)]))
}

/// Takes the keys of `slot` from position `at` on, within what is left of
/// SCAN's budget but at least 1/64 of the slot, into `found` if they pass
/// the filters; the cursor when the call ends inside the slot.
fn scan_slot(
    scan: &ScanOptions,
    slot: u16,
    keys: Vec<(Bytes, Option<KeyType>)>,
    at: u64,
    examined: &mut usize,
    found: &mut Vec<Bytes>,
) -> Option<u64> {
    let batch = scan.count.saturating_sub(*examined).max(1).max(keys.len() / 64);
    let (taken, next) = next_by_position(keys.into_iter(), |(key, _)| key_position(key), at, batch);
    *examined += taken.len();
    for (key, key_type) in taken {
        // A key that expired but is still stored counts as examined.
        let Some(key_type) = key_type else { continue };
        let type_ok = scan.type_name.is_none_or(|t| t.eq_ignore_ascii_case(key_type.name().as_bytes()));
        if type_ok && scan.pattern.is_none_or(|p| glob_match(p, &key, false)) {
            found.push(key);
        }
    }
    (next != 0).then(|| key_cursor(slot, next))
}

/// `RANDOMKEY`: the first live key at or after a random point of the
/// database (wrapping around), so every slot is equally likely to be picked.
fn randomkey(ctx: &mut Ctx, _argv: &[Bytes]) -> CmdResult {
    let key = ctx.run(|tx| {
        let mut pivot = (rand::random::<u16>() % SLOT_COUNT as u16).to_be_bytes().to_vec();
        pivot.extend_from_slice(&rand::random::<[u8; 4]>());
        let mut chosen = None;
        for after in [Some(pivot.as_slice()), None] {
            visit_keys(tx, after, &mut |_, key, key_type| {
                if key_type.is_some() {
                    chosen = Some(Bytes::copy_from_slice(key));
                }
                chosen.is_none()
            })?;
            if chosen.is_some() {
                break;
            }
        }
        Ok(chosen)
    })?;
    Ok(Reply::opt_bulk(key))
}

/// The key's metadata for an OBJECT subcommand (counted as a lookup).
fn object_lookup(ctx: &mut Ctx, key: &Bytes) -> Result<Option<KeyMeta>, CmdError> {
    let meta = ctx.run(|tx| tx.meta(key))?;
    // Counted, but no keymiss event: Redis looks it up with NONOTIFY.
    ctx.server.stats.hit(meta.is_some());
    Ok(meta)
}

/// Whether Redis would store this string as an integer (`string2l` on at
/// most 20 bytes).
fn int_encoded(value: &[u8]) -> Option<i64> {
    if value.len() > 20 {
        return None;
    }
    crate::protocol::parse_i64(value)
}

/// Redis's encoding name for a string as SET stores it.
fn string_encoding(value: &[u8]) -> &'static str {
    if int_encoded(value).is_some() {
        "int"
    } else if value.len() <= 44 {
        // OBJ_ENCODING_EMBSTR_SIZE_LIMIT
        "embstr"
    } else {
        "raw"
    }
}

/// Redis keeps a hash as a listpack while it has at most
/// hash-max-listpack-entries fields and no field or value is longer than
/// hash-max-listpack-value bytes.
fn hash_encoding(
    tx: &Tx,
    key: &[u8],
    meta: &KeyMeta,
    max_entries: u64,
    max_value: usize,
) -> Result<&'static str, CmdError> {
    let body = meta.hash()?;
    if body.len > max_entries {
        return Ok("hashtable");
    }
    let prefix = tx.key(key).sub_prefix(body.version);
    let end = prefix_end(&prefix).unwrap_or_else(|| db_end(tx.physical));
    let mut small = true;
    tx.txn.ws.scan(Cf::Sub, &prefix, &end, false, &mut |raw, value| {
        small = raw.len() - prefix.len() <= max_value && value.len() <= max_value;
        small
    })?;
    Ok(if small { "listpack" } else { "hashtable" })
}

fn config_number(ctx: &Ctx, name: &str) -> u64 {
    ctx.server.config.read().get(name).and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// `OBJECT ENCODING key`
fn object_encoding(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    let key = &argv[2];
    let max_entries = config_number(ctx, "hash-max-listpack-entries");
    let max_value = config_number(ctx, "hash-max-listpack-value") as usize;
    let max_intset = config_number(ctx, "set-max-intset-entries") as usize;
    let max_zset_entries = config_number(ctx, "zset-max-listpack-entries") as usize;
    let max_zset_value = config_number(ctx, "zset-max-listpack-value") as usize;
    let encoding = ctx.run(|tx| {
        let Some(meta) = tx.meta(key)? else {
            return Ok(None);
        };
        Ok(Some(match meta.key_type {
            KeyType::String => string_encoding(&meta.body),
            KeyType::Hash => hash_encoding(tx, key, &meta, max_entries, max_value)?,
            // Redis 7.0's only list and stream encodings.
            KeyType::List => "quicklist",
            KeyType::Stream => "stream",
            // Redis converts small sets and sorted sets to the general
            // encoding as they grow (and never back); Strata reports what
            // the current contents would have.
            KeyType::Set => match tx.mem_value(key, KeyType::Set)? {
                Some(MemValue::Set(set))
                    if set.len() <= max_intset && set.iter().all(|m| crate::protocol::parse_i64(m).is_some()) =>
                {
                    "intset"
                }
                _ => "hashtable",
            },
            KeyType::ZSet => match tx.mem_value(key, KeyType::ZSet)? {
                Some(MemValue::ZSet(zset))
                    if zset.len() <= max_zset_entries && zset.iter().all(|(_, m)| m.len() <= max_zset_value) =>
                {
                    "listpack"
                }
                _ => "skiplist",
            },
        }))
    })?;
    ctx.server.stats.hit(encoding.is_some());
    Ok(encoding.map_or(Reply::Nil, Reply::bulk_str))
}

/// `OBJECT REFCOUNT key`: Strata shares no values, except that Redis
/// reports the shared small integers (0..9999) with refcount INT_MAX unless
/// an LRU/LFU maxmemory policy disables sharing.
fn object_refcount(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    let Some(meta) = object_lookup(ctx, &argv[2])? else {
        return Ok(Reply::Nil);
    };
    let sharing = {
        let config = ctx.server.config.read();
        let maxmemory = config.get("maxmemory").and_then(crate::config::parse_memory).unwrap_or(0);
        let policy = config.get("maxmemory-policy").unwrap_or("noeviction");
        maxmemory == 0 || !(policy.ends_with("lru") || policy.ends_with("lfu"))
    };
    let shared = meta.key_type == KeyType::String
        && sharing
        && int_encoded(&meta.body).is_some_and(|n| (0..10_000).contains(&n));
    Ok(Reply::Integer(if shared { i32::MAX as i64 } else { 1 }))
}

fn lfu_policy(ctx: &Ctx) -> bool {
    ctx.server.config.read().get("maxmemory-policy").is_some_and(|p| p.ends_with("lfu"))
}

/// `OBJECT IDLETIME key`. Strata keeps no per-key access clock (the
/// metadata lives in RocksDB, and writing it on every read would cost a
/// write per read), so every key reports 0 seconds idle.
fn object_idletime(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    if object_lookup(ctx, &argv[2])?.is_none() {
        return Ok(Reply::Nil);
    }
    if lfu_policy(ctx) {
        return Err(CmdError::err(
            "An LFU maxmemory policy is selected, idle time not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.",
        ));
    }
    Ok(Reply::Integer(0))
}

/// Redis's LFU counter of a newly created key.
const LFU_INIT_VAL: i64 = 5;

/// `OBJECT FREQ key`. No access counts are kept (see IDLETIME): every key
/// reports the counter Redis gives a new key.
fn object_freq(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    if object_lookup(ctx, &argv[2])?.is_none() {
        return Ok(Reply::Nil);
    }
    if !lfu_policy(ctx) {
        return Err(CmdError::err(
            "An LFU maxmemory policy is not selected, access frequency not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.",
        ));
    }
    Ok(Reply::Integer(LFU_INIT_VAL))
}

/// `OBJECT HELP`
fn object_help(_ctx: &mut Ctx, _argv: &[Bytes]) -> CmdResult {
    const LINES: &[&str] = &[
        "OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "ENCODING <key>",
        "    Return the kind of internal representation used in order to store the value",
        "    associated with a <key>.",
        "FREQ <key>",
        "    Return the access frequency index of the <key>. The returned integer is",
        "    proportional to the logarithm of the recent access frequency of the key.",
        "IDLETIME <key>",
        "    Return the idle time of the <key>, that is the approximated number of",
        "    seconds elapsed since the last access to the key.",
        "REFCOUNT <key>",
        "    Return the number of references of the value associated with the specified",
        "    <key>.",
        "HELP",
        "    Prints this help.",
    ];
    Ok(Reply::Array(LINES.iter().copied().map(Reply::Status).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_encodings_follow_redis() {
        assert_eq!(string_encoding(b"123"), "int");
        assert_eq!(string_encoding(b"-9223372036854775808"), "int");
        assert_eq!(string_encoding(b"01"), "embstr");
        assert_eq!(string_encoding(b"12345678901234567890"), "embstr");
        assert_eq!(string_encoding(&[b'x'; 44]), "embstr");
        assert_eq!(string_encoding(&[b'x'; 45]), "raw");
        assert_eq!(string_encoding(b""), "embstr");
    }

    #[test]
    fn expire_flags_follow_redis() {
        let flags = |words: &[&str]| {
            let argv: Vec<Bytes> = words.iter().map(|w| Bytes::copy_from_slice(w.as_bytes())).collect();
            ExpireFlags::parse(&argv)
        };
        assert!(flags(&["nx", "xx"]).is_err());
        assert!(flags(&["gt", "lt"]).is_err());
        assert!(flags(&["xx", "gt"]).is_ok());
        let gt = flags(&["GT"]).unwrap();
        assert!(!gt.allows(None, 5));
        assert!(gt.allows(Some(4), 5));
        assert!(!gt.allows(Some(5), 5));
        let lt = flags(&["lt"]).unwrap();
        assert!(lt.allows(None, 5));
        assert!(!lt.allows(Some(5), 5));
        assert!(!flags(&["nx"]).unwrap().allows(Some(1), 5));
        assert!(!flags(&["xx"]).unwrap().allows(None, 5));
    }
}
