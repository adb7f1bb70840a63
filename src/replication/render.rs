//! What a replica that is not Strata (a Redis replica, `redis-cli
//! --replica`) receives: the data and then each log record as the Redis
//! commands that make the same change, in RESP, with SELECT wherever the
//! database changes. Records hold effects, so each renders exactly: a
//! list insert or removal by index as a short Lua script over the indexes,
//! an XREADGROUP as the XCLAIMs Redis itself propagates, a score as the
//! shortest decimal that parses back to the same double.

use bytes::Bytes;
use strata_engines::encoding::{decode_expire_key, decode_meta_key, decode_sub_key, sub_prefix, HashBody, Meta};
use strata_engines::keyspace::{decode_db_map, decode_hash_version, ServerKey, Store};
use strata_engines::log::LogRecord;
use strata_engines::memory::{ListOp, MemEntry, MemOp, MemRecord, MemShard, MemValue, SetOp, StreamOp, ZSetOp};
use strata_engines::rocks::BatchWrite;
use strata_engines::{Cf, EngineError, KeyType, RocksEngine};

use crate::protocol::encode_request;

/// An RDB file with no keys (Redis 7.0's version 10, checksum 0: not
/// checked), sent as a full sync's payload before the data as commands.
pub const EMPTY_RDB: &[u8] = b"REDIS0010\xff\0\0\0\0\0\0\0\0";

/// Inserts ARGV[2] so that it ends up at index ARGV[1] (> 0).
const INSERT_AT: &str = "local k=KEYS[1] local i=tonumber(ARGV[1]) local t=redis.call('LRANGE',k,i,-1) \
redis.call('LTRIM',k,0,i-1) redis.call('RPUSH',k,ARGV[2]) \
for j=1,#t,1000 do redis.call('RPUSH',k,unpack(t,j,math.min(j+999,#t))) end return 1";

/// Removes the items at the indexes ARGV[2..] (ARGV[1] is a marker no
/// item holds).
const REMOVE_AT: &str = "local k=KEYS[1] for j=2,#ARGV do redis.call('LSET',k,ARGV[j],ARGV[1]) end \
return redis.call('LREM',k,0,ARGV[1])";

/// Arguments per command when a whole value is written (bounded lines).
const BATCH: usize = 1000;

/// Renders records in order; follows the database map (SWAPDB) and the
/// hash versions handed out, which tell a hash made anew from one changed.
pub struct Renderer {
    /// Physical database ids by logical index.
    db_map: Vec<u32>,
    /// The logical database the replica has selected.
    selected: Option<usize>,
    /// The highest hash version made before the next record.
    hash_mark: u64,
    marker: String,
}

/// What one record does to one RocksDB key.
#[derive(Default)]
struct KeyWrites {
    meta: Option<Option<Vec<u8>>>,
    fields: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    ttl_removed: bool,
}

impl Renderer {
    pub fn new(db_map: Vec<u32>, hash_mark: u64) -> Renderer {
        let marker = format!("\u{0}strata-removed-{}\u{0}", super::new_replid());
        Renderer { db_map, selected: None, hash_mark, marker }
    }

    /// Appends `args` as a RESP command.
    fn command(out: &mut Vec<u8>, args: &[&[u8]]) {
        encode_request(args, out);
    }

    /// SELECTs the logical database of `physical` if the replica is not in
    /// it; false when no logical database maps to it.
    fn select(&mut self, physical: u32, out: &mut Vec<u8>) -> bool {
        let Some(logical) = self.db_map.iter().position(|&p| p == physical) else { return false };
        if self.selected != Some(logical) {
            Renderer::command(out, &[b"SELECT", logical.to_string().as_bytes()]);
            self.selected = Some(logical);
        }
        true
    }

    /// The commands of one record.
    pub fn record(&mut self, engine: &RocksEngine, record: &LogRecord, out: &mut Vec<u8>) -> Result<(), EngineError> {
        let mut keys: Vec<((u32, Vec<u8>), KeyWrites)> = Vec::new();
        let mut flushed: Vec<u32> = Vec::new();
        let mut new_mark = None;
        let mut swapped_map = None;
        for write in engine.writes_of(&record.rocks)? {
            let (cf, key, value) = match write {
                BatchWrite::Put { cf, key, value } => (cf, key, Some(value)),
                BatchWrite::Delete { cf, key } => (cf, key, None),
                BatchWrite::DeleteRange { cf: Cf::Meta, from, .. } => {
                    if let Some(db) = from.get(..4).map(|d| u32::from_be_bytes(d.try_into().expect("4 bytes"))) {
                        flushed.push(db);
                    }
                    continue;
                }
                BatchWrite::DeleteRange { .. } => continue,
            };
            match cf {
                Cf::Meta => {
                    if let Some((db, _, user_key)) = decode_meta_key(key) {
                        key_writes(&mut keys, db, user_key).meta = Some(value.map(<[u8]>::to_vec));
                    }
                }
                Cf::Sub => {
                    if let Some(sub) = decode_sub_key(key) {
                        key_writes(&mut keys, sub.db, sub.key)
                            .fields
                            .push((sub.field.to_vec(), value.map(<[u8]>::to_vec)));
                    }
                }
                Cf::Expire => {
                    if let (Some((db, _, _, user_key)), None) = (decode_expire_key(key), value) {
                        key_writes(&mut keys, db, user_key).ttl_removed = true;
                    }
                }
                Cf::Default => match ServerKey::of(key) {
                    Some(ServerKey::HashVersion) => new_mark = value.and_then(decode_hash_version),
                    Some(ServerKey::DbMap) => swapped_map = value.map(decode_db_map),
                    _ => {}
                },
            }
        }
        if let Some(map) = swapped_map {
            let changed: Vec<usize> =
                (0..map.len().min(self.db_map.len())).filter(|&i| map[i] != self.db_map[i]).collect();
            if let [a, b] = changed[..] {
                Renderer::command(out, &[b"SWAPDB", a.to_string().as_bytes(), b.to_string().as_bytes()]);
            }
            self.db_map = map;
        }
        for db in &flushed {
            if self.select(*db, out) {
                Renderer::command(out, &[b"FLUSHDB"]);
            }
        }
        // Deletions first, then memory effects in order, then what RocksDB
        // keys become: a key lives in one engine, so this order ends as
        // the record does.
        for ((db, key), writes) in &keys {
            if matches!(writes.meta, Some(None)) && self.select(*db, out) {
                Renderer::command(out, &[b"DEL", key]);
            }
        }
        for mem in &record.mem {
            match mem {
                MemRecord::Op { db, op } => {
                    if self.select(*db, out) {
                        self.mem_op(op, out);
                    }
                }
                MemRecord::Flush { db } => {
                    if !flushed.contains(db) && self.select(*db, out) {
                        Renderer::command(out, &[b"FLUSHDB"]);
                    }
                }
                MemRecord::Publish { shard, channel, message } => {
                    let name: &[u8] = if *shard { b"SPUBLISH" } else { b"PUBLISH" };
                    Renderer::command(out, &[name, channel, message]);
                }
            }
        }
        for ((db, key), writes) in &keys {
            if !matches!(writes.meta, Some(None)) && self.select(*db, out) {
                self.rocks_key(key, writes, out)?;
            }
        }
        if let Some(mark) = new_mark {
            self.hash_mark = self.hash_mark.max(mark);
        }
        Ok(())
    }

    /// A RocksDB key's new state: a string written whole, a hash's fields
    /// (all of them when it was made anew: DEL first), its TTL.
    fn rocks_key(&self, key: &[u8], writes: &KeyWrites, out: &mut Vec<u8>) -> Result<(), EngineError> {
        let damaged = || EngineError::Corrupt("key metadata in a record".into());
        let meta = match &writes.meta {
            Some(Some(raw)) => Some(Meta::decode(raw).ok_or_else(damaged)?),
            _ => None,
        };
        if let Some(meta) = &meta {
            if meta.key_type == KeyType::String {
                Renderer::command(out, &[b"SET", key, meta.body]);
            } else if HashBody::decode(meta.body).ok_or_else(damaged)?.version > self.hash_mark {
                Renderer::command(out, &[b"DEL", key]);
            }
        }
        let (puts, deletes): (Vec<_>, Vec<_>) = writes.fields.iter().partition(|(_, value)| value.is_some());
        for chunk in puts.chunks(BATCH) {
            let mut args: Vec<&[u8]> = vec![b"HSET", key];
            for (field, value) in chunk {
                args.push(field);
                args.push(value.as_deref().expect("a put"));
            }
            Renderer::command(out, &args);
        }
        for chunk in deletes.chunks(BATCH) {
            let mut args: Vec<&[u8]> = vec![b"HDEL", key];
            args.extend(chunk.iter().map(|(field, _)| field.as_slice()));
            Renderer::command(out, &args);
        }
        match meta.map(|m| m.expire_ms) {
            Some(0) | None if writes.ttl_removed => Renderer::command(out, &[b"PERSIST", key]),
            Some(ms) if ms > 0 => Renderer::command(out, &[b"PEXPIREAT", key, ms.to_string().as_bytes()]),
            _ => {}
        }
        Ok(())
    }

    /// A memory key's whole value, in place of whatever the key held.
    pub fn mem_entry(&mut self, physical: u32, key: &Bytes, entry: &MemEntry, out: &mut Vec<u8>) {
        if self.select(physical, out) {
            Renderer::command(out, &[b"DEL", key]);
            self.mem_value(key, entry, out);
        }
    }

    fn mem_value(&self, key: &Bytes, entry: &MemEntry, out: &mut Vec<u8>) {
        let mut chunked = |name: &[u8], items: &mut dyn Iterator<Item = Vec<Vec<u8>>>| {
            let mut args: Vec<Vec<u8>> = Vec::new();
            for item in items {
                args.extend(item);
                if args.len() >= BATCH {
                    emit(out, name, key, &std::mem::take(&mut args));
                }
            }
            if !args.is_empty() {
                emit(out, name, key, &args);
            }
        };
        match &entry.value {
            MemValue::List(list) => chunked(b"RPUSH", &mut list.iter().map(|item| vec![item.to_vec()])),
            MemValue::Set(set) => chunked(b"SADD", &mut set.into_iter().map(|m| vec![m.to_vec()])),
            MemValue::ZSet(zset) => chunked(
                b"ZADD",
                &mut zset.iter().map(|(score, member)| vec![score_text(score).into_bytes(), member.to_vec()]),
            ),
            MemValue::Stream(stream) => {
                if stream.is_empty() {
                    // XADD makes a stream only with an entry: a group made
                    // and dropped at once makes an empty one.
                    Renderer::command(out, &[b"XGROUP", b"CREATE", key, self.marker.as_bytes(), b"0", b"MKSTREAM"]);
                    Renderer::command(out, &[b"XGROUP", b"DESTROY", key, self.marker.as_bytes()]);
                }
                for (id, fields) in stream.entries.iter() {
                    let mut args: Vec<&[u8]> = vec![b"XADD", key];
                    let id = id.to_string();
                    args.push(id.as_bytes());
                    args.extend(fields.iter());
                    Renderer::command(out, &args);
                }
                let (last, max_deleted) = (stream.last_id.to_string(), stream.max_deleted_id.to_string());
                let added = stream.entries_added.to_string();
                Renderer::command(
                    out,
                    &[
                        b"XSETID",
                        key,
                        last.as_bytes(),
                        b"ENTRIESADDED",
                        added.as_bytes(),
                        b"MAXDELETEDID",
                        max_deleted.as_bytes(),
                    ],
                );
                for (name, group) in &stream.groups {
                    let id = group.last_id.to_string();
                    let mut args: Vec<Vec<u8>> = vec![b"CREATE".to_vec(), key.to_vec(), name.to_vec(), id.into_bytes()];
                    if let Some(read) = group.entries_read {
                        args.extend([b"ENTRIESREAD".to_vec(), read.to_string().into_bytes()]);
                    }
                    emit_unkeyed(out, b"XGROUP", &args);
                    for consumer in group.consumers.keys() {
                        Renderer::command(out, &[b"XGROUP", b"CREATECONSUMER", key, name, consumer]);
                    }
                    for (id, pending) in &group.pending {
                        let (id, at, count) =
                            (id.to_string(), pending.delivered_ms.to_string(), pending.deliveries.to_string());
                        Renderer::command(
                            out,
                            &[
                                b"XCLAIM",
                                key,
                                name,
                                &pending.consumer,
                                b"0",
                                id.as_bytes(),
                                b"TIME",
                                at.as_bytes(),
                                b"RETRYCOUNT",
                                count.as_bytes(),
                                b"FORCE",
                                b"JUSTID",
                            ],
                        );
                    }
                }
            }
        }
        if entry.expire_ms > 0 {
            Renderer::command(out, &[b"PEXPIREAT", key, entry.expire_ms.to_string().as_bytes()]);
        }
    }

    fn mem_op(&self, op: &MemOp, out: &mut Vec<u8>) {
        let key: &[u8] = op.key();
        let text = |n: usize| n.to_string().into_bytes();
        match op {
            MemOp::Put { key, entry } => {
                Renderer::command(out, &[b"DEL", key]);
                self.mem_value(key, entry, out);
            }
            MemOp::Delete { .. } => Renderer::command(out, &[b"DEL", key]),
            MemOp::Expire { expire_ms: 0, .. } => Renderer::command(out, &[b"PERSIST", key]),
            MemOp::Expire { expire_ms, .. } => {
                Renderer::command(out, &[b"PEXPIREAT", key, expire_ms.to_string().as_bytes()])
            }
            MemOp::List { op, .. } => match op {
                ListOp::Push { front, items } => {
                    let name: &[u8] = if *front { b"LPUSH" } else { b"RPUSH" };
                    let items: Vec<Vec<u8>> = items.iter().map(|i| i.to_vec()).collect();
                    emit(out, name, key, &items);
                }
                ListOp::Pop { front, count } => {
                    let name: &[u8] = if *front { b"LPOP" } else { b"RPOP" };
                    Renderer::command(out, &[name, key, &text(*count)]);
                }
                ListOp::Set { index, item } => Renderer::command(out, &[b"LSET", key, &text(*index), item]),
                ListOp::Insert { index: 0, item } => Renderer::command(out, &[b"LPUSH", key, item]),
                ListOp::Insert { index, item } => {
                    Renderer::command(out, &[b"EVAL", INSERT_AT.as_bytes(), b"1", key, &text(*index), item])
                }
                ListOp::Trim { start, end } if start >= end => Renderer::command(out, &[b"DEL", key]),
                ListOp::Trim { start, end } => Renderer::command(out, &[b"LTRIM", key, &text(*start), &text(end - 1)]),
                ListOp::Remove { indexes } => {
                    let mut args: Vec<Vec<u8>> = vec![
                        REMOVE_AT.as_bytes().to_vec(),
                        b"1".to_vec(),
                        key.to_vec(),
                        self.marker.clone().into_bytes(),
                    ];
                    args.extend(indexes.iter().map(|i| text(*i)));
                    emit_unkeyed(out, b"EVAL", &args);
                }
            },
            MemOp::Set { op, .. } => {
                let (name, members): (&[u8], _) = match op {
                    SetOp::Add(members) => (b"SADD", members),
                    SetOp::Remove(members) => (b"SREM", members),
                };
                emit(out, name, key, &members.iter().map(|m| m.to_vec()).collect::<Vec<_>>());
            }
            MemOp::ZSet { op, .. } => match op {
                ZSetOp::Add(items) => {
                    let args: Vec<Vec<u8>> =
                        items.iter().flat_map(|(s, m)| [score_text(*s).into_bytes(), m.to_vec()]).collect();
                    emit(out, b"ZADD", key, &args);
                }
                ZSetOp::Remove(members) => {
                    emit(out, b"ZREM", key, &members.iter().map(|m| m.to_vec()).collect::<Vec<_>>())
                }
                ZSetOp::RemoveRanks { start, end } => {
                    Renderer::command(out, &[b"ZREMRANGEBYRANK", key, &text(*start), &text(end.saturating_sub(1))])
                }
            },
            MemOp::Stream { op, .. } => stream_op(key, op, out),
        }
    }
}

/// Everything a recovered snapshot holds (its RocksDB store and memory
/// shards), as commands handed to `flush` a megabyte or so at a time; the
/// renderer for the records after it.
pub fn render_snapshot(
    store: &Store,
    shards: &[MemShard],
    flush: &mut dyn FnMut(&mut Vec<u8>) -> std::io::Result<()>,
) -> Result<Renderer, EngineError> {
    let io = |e: std::io::Error| EngineError::Io("sending a full sync".into(), e);
    let db_map = (0..store.databases()).map(|i| store.physical(i)).collect();
    let mut renderer = Renderer::new(db_map, store.hash_mark());
    let mut out = Vec::with_capacity(1 << 20);
    let engine = &store.engine;
    let mut failed = None;
    engine.scan(Cf::Meta, &[], &[0xff; 4], false, &mut |raw_key, raw_meta| {
        let rendered = (|| {
            let (Some((db, slot, key)), Some(meta)) = (decode_meta_key(raw_key), Meta::decode(raw_meta)) else {
                return Err(EngineError::Corrupt("key metadata in a snapshot".into()));
            };
            if !renderer.select(db, &mut out) {
                return Ok(());
            }
            if meta.key_type == KeyType::String {
                Renderer::command(&mut out, &[b"SET", key, meta.body]);
            } else {
                let body = HashBody::decode(meta.body).ok_or_else(|| EngineError::Corrupt("hash metadata".into()))?;
                let prefix = sub_prefix(db, slot, key, body.version);
                let mut end = prefix.clone();
                end.push(0xff);
                let mut fields: Vec<Vec<u8>> = Vec::new();
                let mut inner = Ok(());
                engine.scan(Cf::Sub, &prefix, &end, false, &mut |sub, value| {
                    fields.extend([sub[prefix.len()..].to_vec(), value.to_vec()]);
                    if fields.len() >= BATCH {
                        emit(&mut out, b"HSET", key, &std::mem::take(&mut fields));
                    }
                    if out.len() >= 1 << 20 {
                        inner = flush(&mut out).map_err(io);
                    }
                    inner.is_ok()
                })?;
                inner?;
                if !fields.is_empty() {
                    emit(&mut out, b"HSET", key, &fields);
                }
            }
            if meta.expire_ms > 0 {
                Renderer::command(&mut out, &[b"PEXPIREAT", key, meta.expire_ms.to_string().as_bytes()]);
            }
            if out.len() >= 1 << 20 {
                flush(&mut out).map_err(io)?;
            }
            Ok(())
        })();
        match rendered {
            Ok(()) => true,
            Err(e) => {
                failed = Some(e);
                false
            }
        }
    })?;
    if let Some(e) = failed {
        return Err(e);
    }
    for shard in shards {
        for (physical, key, entry) in shard.entries() {
            renderer.mem_entry(physical, key, entry, &mut out);
            if out.len() >= 1 << 20 {
                flush(&mut out).map_err(io)?;
            }
        }
    }
    flush(&mut out).map_err(io)?;
    Ok(renderer)
}

/// The writes gathered for `key` of database `db`, new if none yet.
fn key_writes<'k>(keys: &'k mut Vec<((u32, Vec<u8>), KeyWrites)>, db: u32, key: &[u8]) -> &'k mut KeyWrites {
    let at = match keys.iter().position(|((d, k), _)| *d == db && k == key) {
        Some(at) => at,
        None => {
            keys.push(((db, key.to_vec()), KeyWrites::default()));
            keys.len() - 1
        }
    };
    &mut keys[at].1
}

/// `name key args...`
fn emit(out: &mut Vec<u8>, name: &[u8], key: &[u8], args: &[Vec<u8>]) {
    let mut all: Vec<&[u8]> = vec![name, key];
    all.extend(args.iter().map(Vec::as_slice));
    Renderer::command(out, &all);
}

/// `name args...`, for commands whose key is not their first argument.
fn emit_unkeyed(out: &mut Vec<u8>, name: &[u8], args: &[Vec<u8>]) {
    let mut all: Vec<&[u8]> = vec![name];
    all.extend(args.iter().map(Vec::as_slice));
    Renderer::command(out, &all);
}

/// The shortest decimal that parses back to `score` (Redis's strtod reads
/// `inf` and `-inf`).
fn score_text(score: f64) -> String {
    match score {
        f64::INFINITY => "inf".into(),
        f64::NEG_INFINITY => "-inf".into(),
        _ => format!("{score:?}"),
    }
}

fn stream_op(key: &[u8], op: &StreamOp, out: &mut Vec<u8>) {
    let claim = |out: &mut Vec<u8>, group: &[u8], consumer: &[u8], id: String, at: u64, justid: bool| {
        let at = at.to_string();
        let mut args: Vec<&[u8]> = vec![b"XCLAIM", key, group, consumer, b"0", id.as_bytes(), b"TIME", at.as_bytes()];
        args.extend_from_slice(if justid { &[b"FORCE" as &[u8], b"JUSTID"] } else { &[b"FORCE"] });
        Renderer::command(out, &args);
    };
    match op {
        StreamOp::Add { id, fields } => {
            let id = id.to_string();
            let mut args: Vec<&[u8]> = vec![b"XADD", key, id.as_bytes()];
            args.extend(fields.iter().map(|f| f.as_ref()));
            Renderer::command(out, &args);
        }
        StreamOp::Delete { ids } => {
            let ids: Vec<Vec<u8>> = ids.iter().map(|id| id.to_string().into_bytes()).collect();
            emit(out, b"XDEL", key, &ids);
        }
        StreamOp::Trim { through } => {
            // MINID keeps what is at or above: the ID after the last removed.
            let threshold = through.next().map_or_else(|| through.to_string(), |id| id.to_string());
            Renderer::command(out, &[b"XTRIM", key, b"MINID", threshold.as_bytes()]);
        }
        StreamOp::SetId { last_id, entries_added, max_deleted_id } => {
            let mut args: Vec<Vec<u8>> = vec![last_id.to_string().into_bytes()];
            if let Some(added) = entries_added {
                args.extend([b"ENTRIESADDED".to_vec(), added.to_string().into_bytes()]);
            }
            if let Some(id) = max_deleted_id {
                args.extend([b"MAXDELETEDID".to_vec(), id.to_string().into_bytes()]);
            }
            emit(out, b"XSETID", key, &args);
        }
        StreamOp::CreateGroup { group, last_id, entries_read }
        | StreamOp::SetGroupId { group, last_id, entries_read } => {
            let sub: &[u8] = if matches!(op, StreamOp::CreateGroup { .. }) { b"CREATE" } else { b"SETID" };
            let mut args: Vec<Vec<u8>> =
                vec![sub.to_vec(), key.to_vec(), group.to_vec(), last_id.to_string().into_bytes()];
            if sub == b"CREATE" {
                args.push(b"MKSTREAM".to_vec());
            }
            if let Some(read) = entries_read {
                args.extend([b"ENTRIESREAD".to_vec(), read.to_string().into_bytes()]);
            }
            emit_unkeyed(out, b"XGROUP", &args);
        }
        StreamOp::DestroyGroup { group } => Renderer::command(out, &[b"XGROUP", b"DESTROY", key, group]),
        StreamOp::CreateConsumer { group, consumer, .. } => {
            Renderer::command(out, &[b"XGROUP", b"CREATECONSUMER", key, group, consumer])
        }
        StreamOp::DeleteConsumer { group, consumer } => {
            Renderer::command(out, &[b"XGROUP", b"DELCONSUMER", key, group, consumer])
        }
        StreamOp::ReadGroup { group, consumer, now_ms, new, noack, history } => {
            // As Redis propagates XREADGROUP: the consumer, each delivery
            // as a forced XCLAIM, the group's last ID.
            Renderer::command(out, &[b"XGROUP", b"CREATECONSUMER", key, group, consumer]);
            if !noack {
                for id in new {
                    claim(out, group, consumer, id.to_string(), *now_ms, true);
                }
            }
            for id in history {
                claim(out, group, consumer, id.to_string(), *now_ms, false);
            }
            if let Some(last) = new.last() {
                Renderer::command(out, &[b"XGROUP", b"SETID", key, group, last.to_string().as_bytes()]);
            }
        }
        StreamOp::Ack { group, ids } => {
            let mut args: Vec<Vec<u8>> = vec![group.to_vec()];
            args.extend(ids.iter().map(|id| id.to_string().into_bytes()));
            emit(out, b"XACK", key, &args);
        }
        StreamOp::Claim { group, consumer, now_ms, claimed, count_delivery, dropped } => {
            Renderer::command(out, &[b"XGROUP", b"CREATECONSUMER", key, group, consumer]);
            for id in claimed {
                claim(out, group, consumer, id.to_string(), *now_ms, !count_delivery);
            }
            drop_pending(key, group, dropped, out);
        }
        StreamOp::ClaimIds(c) => {
            drop_pending(key, &c.group, &c.dropped, out);
            for id in &c.claimed {
                let (id, at) = (id.to_string(), c.delivered_ms.to_string());
                let mut args: Vec<Vec<u8>> = vec![
                    key.to_vec(),
                    c.group.to_vec(),
                    c.consumer.to_vec(),
                    b"0".to_vec(),
                    id.into_bytes(),
                    b"TIME".to_vec(),
                    at.into_bytes(),
                ];
                if let Some(count) = c.retry_count {
                    args.extend([b"RETRYCOUNT".to_vec(), count.to_string().into_bytes()]);
                }
                args.push(b"FORCE".to_vec());
                if !c.count_delivery {
                    args.push(b"JUSTID".to_vec());
                }
                if let Some(last) = c.last_id {
                    args.extend([b"LASTID".to_vec(), last.to_string().into_bytes()]);
                }
                emit_unkeyed(out, b"XCLAIM", &args);
            }
        }
    }
}

/// Pending entries whose stream entries are gone: acknowledged away.
fn drop_pending(key: &[u8], group: &[u8], ids: &[strata_engines::memory::StreamId], out: &mut Vec<u8>) {
    if !ids.is_empty() {
        let mut args: Vec<Vec<u8>> = vec![group.to_vec()];
        args.extend(ids.iter().map(|id| id.to_string().into_bytes()));
        emit(out, b"XACK", key, &args);
    }
}
