//! Hash commands (RocksDB engine). A hash's metadata record holds
//! `HashBody { version, len }`; each field is its own record in the `sub`
//! column family under `sub_prefix(version) + field`. `len` is kept exact
//! on every write, so HLEN is one lookup; DEL only drops the metadata (the
//! version makes the old fields unreachable and compaction removes them).
//!
//! `Hash` and `copy_hash_fields` are the helpers other families reuse
//! (RENAME, COPY and MOVE rewrite a hash's fields under the new key).

use std::collections::{BTreeSet, HashMap};

use bytes::Bytes;
use rand::seq::SliceRandom;
use rand::Rng;
use strata_engines::encoding::{prefix_end, HashBody};
use strata_engines::keyspace::{KeyMeta, KeyRef, Txn};
use strata_engines::{Cf, KeyType};

use super::args::{pairs, parse_int};
use super::{CommandTable, Ctx};
use crate::cursor::{parse_cursor, scan_runs, Ordered, ScanOptions};
use crate::error::{CmdError, CmdResult};
use crate::glob::glob_match;
use crate::keyspace::Tx;
use crate::long_double::{self, LongDouble};
use crate::notify;
use crate::protocol::{parse_i64, Reply};

pub fn register(table: &mut CommandTable) {
    table.register("hset", hset);
    table.register("hmset", hmset);
    table.register("hsetnx", hsetnx);
    table.register("hget", hget);
    table.register("hmget", hmget);
    table.register("hdel", hdel);
    table.register("hlen", hlen);
    table.register("hstrlen", hstrlen);
    table.register("hexists", hexists);
    table.register("hkeys", hkeys);
    table.register("hvals", hvals);
    table.register("hgetall", hgetall);
    table.register("hincrby", hincrby);
    table.register("hincrbyfloat", hincrbyfloat);
    table.register("hrandfield", hrandfield);
    table.register("hscan", hscan);
}

/// A field and its value.
type Entry = (Vec<u8>, Vec<u8>);

/// A hash opened by a command: its metadata and where its fields live.
/// Field writes go straight to the transaction; `save` writes the metadata.
pub(crate) struct Hash {
    /// The metadata as read; None for a hash this command creates.
    old: Option<KeyMeta>,
    pub body: HashBody,
    pub expire_ms: u64,
    /// `sub_prefix(version)`: every field's key starts with it.
    prefix: Vec<u8>,
    /// Whether `body.len` changed, so the metadata must be rewritten.
    changed: bool,
}

impl Hash {
    /// The hash at `key`; None when there is none; WRONGTYPE for another type.
    pub(crate) fn open(tx: &mut Tx, key: &[u8]) -> Result<Option<Hash>, CmdError> {
        let Some(meta) = tx.meta_of(key, KeyType::Hash)? else {
            return Ok(None);
        };
        let body = meta.hash()?;
        let prefix = tx.key(key).sub_prefix(body.version);
        Ok(Some(Hash { expire_ms: meta.expire_ms, old: Some(meta), body, prefix, changed: false }))
    }

    /// The hash at `key`, or a new empty one with a fresh version (stored by
    /// `save` only once it has a field).
    pub(crate) fn open_or_create(tx: &mut Tx, key: &[u8]) -> Result<Hash, CmdError> {
        if let Some(hash) = Hash::open(tx, key)? {
            return Ok(hash);
        }
        let body = tx.txn.new_hash_body();
        let prefix = tx.key(key).sub_prefix(body.version);
        Ok(Hash { old: None, body, expire_ms: 0, prefix, changed: false })
    }

    pub(crate) fn len(&self) -> u64 {
        self.body.len
    }

    fn field_key(&self, field: &[u8]) -> Vec<u8> {
        let mut key = Vec::with_capacity(self.prefix.len() + field.len());
        key.extend_from_slice(&self.prefix);
        key.extend_from_slice(field);
        key
    }

    pub(crate) fn get(&self, tx: &Tx, field: &[u8]) -> Result<Option<Vec<u8>>, CmdError> {
        Ok(tx.txn.ws.get(Cf::Sub, &self.field_key(field))?)
    }

    /// Sets a field; returns whether it is new.
    pub(crate) fn set(&mut self, tx: &mut Tx, field: &[u8], value: &[u8]) -> Result<bool, CmdError> {
        let key = self.field_key(field);
        let is_new = tx.txn.ws.get(Cf::Sub, &key)?.is_none();
        tx.txn.ws.put(Cf::Sub, key, value.to_vec());
        if is_new {
            self.body.len += 1;
            self.changed = true;
        }
        Ok(is_new)
    }

    /// Deletes a field; returns whether it existed.
    pub(crate) fn remove(&mut self, tx: &mut Tx, field: &[u8]) -> Result<bool, CmdError> {
        let key = self.field_key(field);
        if tx.txn.ws.get(Cf::Sub, &key)?.is_none() {
            return Ok(false);
        }
        tx.txn.ws.delete(Cf::Sub, key);
        self.body.len -= 1;
        self.changed = true;
        Ok(true)
    }

    /// Visits the fields in byte order, from just after `after` if given,
    /// until `visit` returns false.
    pub(crate) fn scan(
        &self,
        tx: &Tx,
        after: Option<&[u8]>,
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), CmdError> {
        scan_fields(&tx.txn, &self.prefix, after, visit)
    }

    /// Every field and value, in byte order.
    pub(crate) fn entries(&self, tx: &Tx) -> Result<Vec<Entry>, CmdError> {
        let mut out = Vec::with_capacity(self.body.len.min(1 << 16) as usize);
        self.scan(tx, None, &mut |field, value| {
            out.push((field.to_vec(), value.to_vec()));
            true
        })?;
        Ok(out)
    }

    /// Writes the metadata if the field count changed; deletes the key when
    /// its last field is gone (Redis never keeps an empty hash).
    pub(crate) fn save(self, tx: &mut Tx, key: &[u8]) -> Result<(), CmdError> {
        if !self.changed {
            return Ok(());
        }
        if self.body.len == 0 {
            if self.old.is_some() {
                tx.delete(key)?;
            }
            return Ok(());
        }
        let meta = KeyMeta { key_type: KeyType::Hash, expire_ms: self.expire_ms, body: self.body.encode().to_vec() };
        tx.put_meta(key, self.old.as_ref(), &meta);
        Ok(())
    }
}

/// Visits the fields under one hash version's `prefix` in byte order, from
/// just after `after` if given, until `visit` returns false.
fn scan_fields(
    txn: &Txn,
    prefix: &[u8],
    after: Option<&[u8]>,
    visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
) -> Result<(), CmdError> {
    let mut start = prefix.to_vec();
    if let Some(field) = after {
        // The smallest field greater than `field`.
        start.extend_from_slice(field);
        start.push(0);
    }
    // A sub prefix is never all 0xff (the slot is below 0x4000).
    let end = prefix_end(prefix).unwrap_or_else(|| vec![0xff; prefix.len() + 1]);
    txn.ws.scan(Cf::Sub, &start, &end, false, &mut |key, value| visit(&key[prefix.len()..], value))?;
    Ok(())
}

/// Copies every field of hash version `from_version` at `from` to version
/// `to_version` at `to` (the keys may be in different databases): RENAME,
/// COPY and MOVE need it because a field's record embeds the key name.
/// Returns how many fields were copied; the caller writes `to`'s metadata
/// with `HashBody { version: to_version, len: copied }`.
pub(crate) fn copy_hash_fields(
    txn: &mut Txn,
    from: &KeyRef,
    from_version: u64,
    to: &KeyRef,
    to_version: u64,
) -> Result<u64, CmdError> {
    let mut fields: Vec<Entry> = Vec::new();
    scan_fields(txn, &from.sub_prefix(from_version), None, &mut |field, value| {
        fields.push((field.to_vec(), value.to_vec()));
        true
    })?;
    let to_prefix = to.sub_prefix(to_version);
    for (field, value) in &fields {
        let mut key = to_prefix.clone();
        key.extend_from_slice(field);
        txn.ws.put(Cf::Sub, key, value.clone());
    }
    Ok(fields.len() as u64)
}

/// Runs a read of the hash at `key` and counts the keyspace hit or miss.
fn read_hash<R>(
    ctx: &mut Ctx,
    key: &[u8],
    body: impl Fn(&mut Tx, Option<Hash>) -> Result<R, CmdError>,
) -> Result<R, CmdError> {
    let (found, result) = ctx.run(|tx| {
        let hash = Hash::open(tx, key)?;
        let found = hash.is_some();
        Ok((found, body(tx, hash)?))
    })?;
    ctx.hit(key, found);
    Ok(result)
}

/// Sets the pairs; returns how many fields are new.
fn set_pairs(ctx: &mut Ctx, key: &[u8], pairs: &[(&Bytes, &Bytes)]) -> Result<i64, CmdError> {
    ctx.run(|tx| {
        let mut hash = Hash::open_or_create(tx, key)?;
        let mut created = 0;
        for (field, value) in pairs {
            created += hash.set(tx, field, value)? as i64;
        }
        hash.save(tx, key)?;
        tx.notify(notify::HASH, "hset", key);
        Ok(created)
    })
}

/// `HSET key field value [field value ...]`
fn hset(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    let pairs = pairs(argv, 2)?;
    Ok(Reply::Integer(set_pairs(ctx, &argv[1], &pairs)?))
}

/// `HMSET key field value [field value ...]`
fn hmset(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    let pairs = pairs(argv, 2)?;
    set_pairs(ctx, &argv[1], &pairs)?;
    Ok(Reply::ok())
}

/// `HSETNX key field value`
fn hsetnx(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    let (key, field, value) = (&argv[1], &argv[2], &argv[3]);
    ctx.run(|tx| {
        let mut hash = Hash::open_or_create(tx, key)?;
        if hash.get(tx, field)?.is_some() {
            return Ok(Reply::Integer(0));
        }
        hash.set(tx, field, value)?;
        hash.save(tx, key)?;
        tx.notify(notify::HASH, "hset", key);
        Ok(Reply::Integer(1))
    })
}

/// `HGET key field`
fn hget(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    let field = &argv[2];
    let value = read_hash(ctx, &argv[1], |tx, hash| match hash {
        Some(hash) => hash.get(tx, field),
        None => Ok(None),
    })?;
    Ok(Reply::opt_bulk(value))
}

/// `HMGET key field [field ...]`
fn hmget(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    let fields = &argv[2..];
    read_hash(ctx, &argv[1], |tx, hash| {
        let mut replies = Vec::with_capacity(fields.len());
        for field in fields {
            let value = match &hash {
                Some(hash) => hash.get(tx, field)?,
                None => None,
            };
            replies.push(Reply::opt_bulk(value));
        }
        Ok(Reply::Array(replies))
    })
}

/// `HDEL key field [field ...]`
fn hdel(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    let (key, fields) = (&argv[1], &argv[2..]);
    ctx.run(|tx| {
        let Some(mut hash) = Hash::open(tx, key)? else {
            return Ok(Reply::Integer(0));
        };
        let mut deleted = 0;
        for field in fields {
            deleted += hash.remove(tx, field)? as i64;
            if hash.len() == 0 {
                break;
            }
        }
        let emptied = hash.len() == 0;
        hash.save(tx, key)?;
        if deleted > 0 {
            tx.notify(notify::HASH, "hdel", key);
            if emptied {
                tx.notify(notify::GENERIC, "del", key);
            }
        }
        Ok(Reply::Integer(deleted))
    })
}

/// `HLEN key`
fn hlen(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    let len = read_hash(ctx, &argv[1], |_, hash| Ok(hash.map_or(0, |h| h.len())))?;
    Ok(Reply::Integer(len as i64))
}

/// `HSTRLEN key field`
fn hstrlen(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    let field = &argv[2];
    let value = read_hash(ctx, &argv[1], |tx, hash| match hash {
        Some(hash) => hash.get(tx, field),
        None => Ok(None),
    })?;
    Ok(Reply::Integer(value.map_or(0, |v| v.len() as i64)))
}

/// `HEXISTS key field`
fn hexists(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    let field = &argv[2];
    let exists = read_hash(ctx, &argv[1], |tx, hash| match hash {
        Some(hash) => Ok(hash.get(tx, field)?.is_some()),
        None => Ok(false),
    })?;
    Ok(Reply::Integer(exists as i64))
}

/// Every field and value of the hash at `key` (none when it is missing).
fn all_entries(ctx: &mut Ctx, key: &[u8]) -> Result<Vec<Entry>, CmdError> {
    read_hash(ctx, key, |tx, hash| match hash {
        Some(hash) => hash.entries(tx),
        None => Ok(Vec::new()),
    })
}

/// `HKEYS key`
fn hkeys(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    let entries = all_entries(ctx, &argv[1])?;
    Ok(Reply::bulks(entries.into_iter().map(|(field, _)| field)))
}

/// `HVALS key`
fn hvals(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    let entries = all_entries(ctx, &argv[1])?;
    Ok(Reply::bulks(entries.into_iter().map(|(_, value)| value)))
}

/// `HGETALL key`
fn hgetall(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    let entries = all_entries(ctx, &argv[1])?;
    Ok(Reply::Map(entries.into_iter().map(|(f, v)| (Reply::bulk(f), Reply::bulk(v))).collect()))
}

/// `HINCRBY key field increment`
fn hincrby(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    let (key, field) = (&argv[1], &argv[2]);
    let increment = parse_int(&argv[3])?;
    ctx.run(|tx| {
        let mut hash = Hash::open_or_create(tx, key)?;
        let current = match hash.get(tx, field)? {
            Some(value) => parse_i64(&value).ok_or_else(|| CmdError::err("hash value is not an integer"))?,
            None => 0,
        };
        let new = current.checked_add(increment).ok_or(CmdError::Overflow)?;
        hash.set(tx, field, new.to_string().as_bytes())?;
        hash.save(tx, key)?;
        tx.notify(notify::HASH, "hincrby", key);
        Ok(Reply::Integer(new))
    })
}

/// `HINCRBYFLOAT key field increment`: in C `long double`, as Redis does,
/// so the stored text is the one Redis would store.
fn hincrbyfloat(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    let (key, field) = (&argv[1], &argv[2]);
    let increment = long_double::parse(&argv[3]).ok_or(CmdError::NotFloat)?;
    if !increment.is_finite() {
        return Err(CmdError::err("value is NaN or Infinity"));
    }
    ctx.run(|tx| {
        let mut hash = Hash::open_or_create(tx, key)?;
        let current = match hash.get(tx, field)? {
            Some(value) => long_double::parse(&value).ok_or_else(|| CmdError::err("hash value is not a float"))?,
            None => LongDouble::ZERO,
        };
        let new = long_double::add(current, increment);
        if !new.is_finite() {
            return Err(CmdError::err("increment would produce NaN or Infinity"));
        }
        let text = long_double::format_human(new);
        hash.set(tx, field, text.as_bytes())?;
        hash.save(tx, key)?;
        tx.notify(notify::HASH, "hincrbyfloat", key);
        Ok(Reply::bulk(text.into_bytes()))
    })
}

/// Parsed `HRANDFIELD` options.
struct RandFieldArgs {
    /// None: one field as a bulk reply. Negative: repeats allowed.
    count: Option<i64>,
    with_values: bool,
}

impl RandFieldArgs {
    /// `HRANDFIELD key [count [WITHVALUES]]`, with Redis's range checks.
    fn parse(argv: &[Bytes]) -> Result<RandFieldArgs, CmdError> {
        let Some(count) = argv.get(2) else {
            return Ok(RandFieldArgs { count: None, with_values: false });
        };
        let count = parse_int(count)?;
        if count < -i64::MAX {
            return Err(CmdError::err(format!(
                "value is out of range, value must between {} and {}",
                -i64::MAX,
                i64::MAX
            )));
        }
        let with_values = match &argv[3..] {
            [] => false,
            [word] if word.eq_ignore_ascii_case(b"WITHVALUES") => true,
            _ => return Err(CmdError::Syntax),
        };
        // Redis bounds the count so that count * 2 reply items cannot overflow.
        if with_values && !(-(i64::MAX / 2)..=i64::MAX / 2).contains(&count) {
            return Err(CmdError::err("value is out of range"));
        }
        Ok(RandFieldArgs { count: Some(count), with_values })
    }
}

/// The entries at the given positions of the hash's field order.
fn entries_at(tx: &Tx, hash: &Hash, positions: &BTreeSet<u64>) -> Result<HashMap<u64, Entry>, CmdError> {
    let mut found = HashMap::with_capacity(positions.len());
    let mut wanted = positions.iter().peekable();
    let mut index = 0u64;
    hash.scan(tx, None, &mut |field, value| {
        if wanted.peek() == Some(&&index) {
            found.insert(index, (field.to_vec(), value.to_vec()));
            wanted.next();
        }
        index += 1;
        wanted.peek().is_some()
    })?;
    Ok(found)
}

/// `HRANDFIELD key [count [WITHVALUES]]`
fn hrandfield(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    use crate::protocol::RandomPicks;
    let args = RandFieldArgs::parse(argv)?;
    let resp3 = ctx.client.resp3;
    let key = &argv[1];
    read_hash(ctx, key, |tx, hash| {
        let mut rng = rand::rng();
        let Some(count) = args.count else {
            let Some(hash) = hash else {
                return Ok(Reply::Nil);
            };
            let position = rng.random_range(0..hash.len());
            let mut picked = entries_at(tx, &hash, &BTreeSet::from([position]))?;
            let (field, _) = picked.remove(&position).ok_or_else(missing_field)?;
            return Ok(Reply::bulk(field));
        };
        let Some(hash) = hash else {
            return Ok(Reply::Array(Vec::new()));
        };
        let len = hash.len();
        let wanted = count.unsigned_abs();
        if count < 0 && RandomPicks::worth_streaming(wanted, len) {
            // Picked as the client reads: the reply is never held whole.
            let mut picks = RandomPicks::builder(resp3);
            for (field, value) in hash.entries(tx)? {
                match (args.with_values, resp3) {
                    (false, _) => picks.push(&[Reply::bulk(field)]),
                    (true, true) => picks.push(&[Reply::bulks([field, value])]),
                    (true, false) => picks.push(&[Reply::bulk(field), Reply::bulk(value)]),
                }
            }
            let reply_len = if args.with_values && !resp3 { wanted * 2 } else { wanted };
            return Ok(picks.finish(reply_len, wanted));
        }
        let entries: Vec<Entry> = if wanted == 0 {
            Vec::new()
        } else if count < 0 || wanted == 1 {
            // Repeats allowed: `wanted` independent picks.
            let picks: Vec<u64> = (0..wanted).map(|_| rng.random_range(0..len)).collect();
            let found = entries_at(tx, &hash, &picks.iter().copied().collect())?;
            picks.iter().map(|p| found.get(p).cloned().ok_or_else(missing_field)).collect::<Result<_, _>>()?
        } else if wanted >= len {
            hash.entries(tx)?
        } else {
            let sample = rand::seq::index::sample(&mut rng, len as usize, wanted as usize);
            let positions: BTreeSet<u64> = sample.iter().map(|p| p as u64).collect();
            let mut picked: Vec<Entry> = entries_at(tx, &hash, &positions)?.into_values().collect();
            picked.shuffle(&mut rng);
            picked
        };
        Ok(entries_reply(entries, args.with_values, resp3))
    })
}

/// A hash's `len` promised a field that its records do not have.
fn missing_field() -> CmdError {
    CmdError::Storage("hash length does not match its fields".into())
}

/// HRANDFIELD's reply: fields; or with values, a flat array in RESP2 and
/// an array of [field, value] pairs in RESP3.
fn entries_reply(entries: Vec<Entry>, with_values: bool, resp3: bool) -> Reply {
    if !with_values {
        return Reply::bulks(entries.into_iter().map(|(field, _)| field));
    }
    if resp3 {
        return Reply::Array(entries.into_iter().map(|(f, v)| Reply::bulks([f, v])).collect());
    }
    Reply::bulks(entries.into_iter().flat_map(|(f, v)| [f, v]))
}

/// `HSCAN key cursor [MATCH pattern] [COUNT count]`: about COUNT fields
/// per call, in byte order by runs of fields that share a prefix (see
/// `cursor::scan_runs`), from the place the cursor holds.
fn hscan(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    let cursor = parse_cursor(&argv[2])?;
    // Redis checks the key before the options: a missing key answers an
    // empty scan whatever the options are.
    let options = ScanOptions::parse(&argv[3..], false);
    let key = &argv[1];
    let (found, next) = read_hash(ctx, key, |tx, hash| {
        let Some(hash) = hash else {
            return Ok((Vec::new(), 0));
        };
        let options = options.as_ref().map_err(Clone::clone)?;
        let (mut examined, next) = scan_runs(&Fields { tx, prefix: &hash.prefix }, cursor, options.count)?;
        examined.retain(|(field, _)| options.pattern.is_none_or(|p| glob_match(p, field, false)));
        Ok((examined, next))
    })?;
    Ok(Reply::Array(vec![
        Reply::bulk_str(&next.to_string()),
        Reply::bulks(found.into_iter().flat_map(|(f, v)| [f, v])),
    ]))
}

/// The fields of one hash version, as HSCAN walks them.
struct Fields<'a, 't> {
    tx: &'a Tx<'t>,
    /// `sub_prefix(version)`.
    prefix: &'a [u8],
}

impl Fields<'_, '_> {
    /// Visits the fields in `[from, to)` (`to` None: to the last) in byte
    /// order, or backwards, until `visit` returns false.
    fn visit(
        &self,
        from: &[u8],
        to: Option<&[u8]>,
        reverse: bool,
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), CmdError> {
        let prefix = self.prefix;
        let start = [prefix, from].concat();
        let end = match to {
            Some(to) => [prefix, to].concat(),
            // A sub prefix is never all 0xff (the slot is below 0x4000).
            None => prefix_end(prefix).unwrap_or_else(|| vec![0xff; prefix.len() + 1]),
        };
        self.tx.txn.ws.scan(Cf::Sub, &start, &end, reverse, &mut |raw, value| visit(&raw[prefix.len()..], value))?;
        Ok(())
    }

    /// The first `n` bytes of the first field visited.
    fn first(&self, from: &[u8], to: Option<&[u8]>, reverse: bool, n: usize) -> Result<Option<Vec<u8>>, CmdError> {
        let mut first = None;
        self.visit(from, to, reverse, &mut |field, _| {
            first = Some(field[..field.len().min(n)].to_vec());
            false
        })?;
        Ok(first)
    }
}

impl Ordered for Fields<'_, '_> {
    fn first_from(&self, from: &[u8], n: usize) -> Result<Option<Vec<u8>>, CmdError> {
        self.first(from, None, false, n)
    }

    fn last_before(&self, end: Option<&[u8]>, n: usize) -> Result<Option<Vec<u8>>, CmdError> {
        self.first(b"", end, true, n)
    }

    fn visit_from(&self, from: &[u8], visit: &mut dyn FnMut(&[u8], &[u8]) -> bool) -> Result<(), CmdError> {
        self.visit(from, None, false, visit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keyspace::Keyspace;
    use strata_engines::RocksConfig;

    fn keyspace(dir: &std::path::Path) -> Keyspace {
        let config = RocksConfig { block_cache_bytes: 1 << 20, write_buffer_bytes: 1 << 20, row_cache_bytes: 1 << 20 };
        Keyspace::open(dir, &config, 2, Default::default(), Default::default(), &Default::default()).unwrap()
    }

    fn entries_of(ks: &Keyspace, db: usize, key: &[u8]) -> Option<(u64, Vec<Entry>)> {
        ks.run(db, &[key], |tx| match Hash::open(tx, key)? {
            Some(hash) => Ok(Some((hash.len(), hash.entries(tx)?))),
            None => Ok(None),
        })
        .unwrap()
    }

    #[test]
    fn copy_hash_fields_rewrites_every_field_under_the_new_key() {
        let dir = tempfile::tempdir().unwrap();
        let ks = keyspace(dir.path());
        ks.run(0, &[b"src"], |tx| {
            let mut hash = Hash::open_or_create(tx, b"src")?;
            for (f, v) in [(&b"a"[..], &b"1"[..]), (b"\x00\xff", b""), (b"", b"empty field")] {
                hash.set(tx, f, v)?;
            }
            hash.save(tx, b"src")
        })
        .unwrap();
        // Copy into another key of database 0 and into database 1 (MOVE).
        for (db, key) in [(0usize, &b"dst"[..]), (1, b"src")] {
            ks.run(0, &[b"src", key], |tx| {
                let src = Hash::open(tx, b"src")?.expect("src exists");
                let version = tx.txn.new_hash_body().version;
                let to = KeyRef { db: ks.store.physical(db), slot: strata_cluster::key_slot(key), key };
                let from = tx.key(b"src");
                let copied = copy_hash_fields(&mut tx.txn, &from, src.body.version, &to, version)?;
                assert_eq!(copied, 3);
                let meta = KeyMeta {
                    key_type: KeyType::Hash,
                    expire_ms: 0,
                    body: HashBody { version, len: copied }.encode().to_vec(),
                };
                tx.txn.put_meta(&to, None, &meta);
                Ok(())
            })
            .unwrap();
        }
        let original = entries_of(&ks, 0, b"src").unwrap();
        assert_eq!(original.0, 3);
        assert_eq!(entries_of(&ks, 0, b"dst"), Some(original.clone()));
        assert_eq!(entries_of(&ks, 1, b"src"), Some(original));
    }

    #[test]
    fn deleting_the_last_field_deletes_the_key_and_a_new_hash_starts_empty() {
        let dir = tempfile::tempdir().unwrap();
        let ks = keyspace(dir.path());
        let set = |field: &'static [u8]| {
            ks.run(0, &[b"h"], |tx| {
                let mut hash = Hash::open_or_create(tx, b"h")?;
                hash.set(tx, field, b"v")?;
                hash.save(tx, b"h")
            })
            .unwrap()
        };
        set(b"a");
        set(b"b");
        ks.run(0, &[b"h"], |tx| {
            let mut hash = Hash::open(tx, b"h")?.unwrap();
            assert!(hash.remove(tx, b"a")?);
            assert!(!hash.remove(tx, b"a")?);
            assert!(hash.remove(tx, b"b")?);
            hash.save(tx, b"h")
        })
        .unwrap();
        assert_eq!(entries_of(&ks, 0, b"h"), None);
        set(b"c");
        assert_eq!(entries_of(&ks, 0, b"h"), Some((1, vec![(b"c".to_vec(), b"v".to_vec())])));
    }
}
