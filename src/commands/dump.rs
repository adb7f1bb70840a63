//! DUMP and RESTORE with Redis 7.0's payload (`crate::rdb`): a value of
//! any engine serialized as Redis serializes it, so payloads move between
//! Strata and Redis both ways (MIGRATE, `redis-cli --cluster import`).

use std::collections::BTreeMap;

use bytes::Bytes;
use strata_engines::memory::stream::{ConsumerGroup, Pending};
use strata_engines::memory::{ListValue, MemEntry, MemOp, MemValue, SortedSet, StreamId, StreamValue};
use strata_engines::KeyType;

use super::args::parse_int;
use super::hash::Hash;
use super::{CommandTable, Ctx};
use crate::error::{CmdError, CmdResult};
use crate::keyspace::{is_memory_type, Tx};
use crate::notify;
use crate::protocol::Reply;
use crate::rdb::{self, RdbConsumer, RdbConsumerGroup, RdbPendingEntry, RdbStream, RdbStreamEntry, RdbValue};

pub fn register(table: &mut CommandTable) {
    table.register("dump", dump);
    table.register("restore", restore);
    table.register("restore-asking", restore);
}

/// `DUMP key`
fn dump(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    let key = &argv[1];
    let value = ctx.run(|tx| value_of(tx, key))?;
    ctx.hit(key, value.is_some());
    Ok(match value {
        Some(value) => Reply::Bulk(Bytes::from(rdb::dump(&value))),
        None => Reply::Nil,
    })
}

/// The value at `key` in Redis's model, None when it is missing.
pub(super) fn value_of(tx: &mut Tx, key: &[u8]) -> Result<Option<RdbValue>, CmdError> {
    let Some(meta) = tx.meta(key)? else { return Ok(None) };
    if is_memory_type(meta.key_type) {
        let physical = tx.physical;
        let entry = tx.mem_entry_of(physical, key).ok_or(CmdError::NoSuchKey)?;
        return Ok(Some(from_memory(&entry.value)));
    }
    Ok(Some(match meta.key_type {
        KeyType::Hash => {
            let hash = Hash::open(tx, key)?.ok_or(CmdError::NoSuchKey)?;
            let entries = hash.entries(tx)?;
            RdbValue::Hash(entries.into_iter().map(|(f, v)| (Bytes::from(f), Bytes::from(v))).collect())
        }
        _ => RdbValue::String(Bytes::from(meta.body)),
    }))
}

fn rdb_id(id: StreamId) -> rdb::StreamId {
    rdb::StreamId { ms: id.ms, seq: id.seq }
}

fn our_id(id: rdb::StreamId) -> StreamId {
    StreamId { ms: id.ms, seq: id.seq }
}

fn from_memory(value: &MemValue) -> RdbValue {
    match value {
        MemValue::List(list) => RdbValue::List(list.iter().map(Bytes::copy_from_slice).collect()),
        MemValue::Set(set) => RdbValue::Set(set.into_iter().cloned().collect()),
        MemValue::ZSet(zset) => RdbValue::ZSet(zset.iter().collect()),
        MemValue::Stream(stream) => {
            let entries: Vec<RdbStreamEntry> = stream
                .entries
                .iter()
                .map(|(id, fields)| {
                    let items: Vec<Bytes> = fields.iter().map(Bytes::copy_from_slice).collect();
                    let fields = items.chunks_exact(2).map(|pair| (pair[0].clone(), pair[1].clone())).collect();
                    RdbStreamEntry { id: rdb_id(id), fields }
                })
                .collect();
            let groups = stream
                .groups
                .iter()
                .map(|(name, group)| RdbConsumerGroup {
                    name: name.clone(),
                    last_id: rdb_id(group.last_id),
                    entries_read: group.entries_read.and_then(|n| u64::try_from(n).ok()),
                    pending: group
                        .pending
                        .iter()
                        .map(|(id, p)| RdbPendingEntry {
                            id: rdb_id(*id),
                            delivery_time_ms: p.delivered_ms,
                            delivery_count: p.deliveries,
                            consumer: p.consumer.clone(),
                        })
                        .collect(),
                    consumers: group
                        .consumers
                        .iter()
                        .map(|(name, seen)| RdbConsumer { name: name.clone(), seen_time_ms: *seen })
                        .collect(),
                })
                .collect();
            RdbValue::Stream(RdbStream {
                first_id: entries.first().map_or_else(Default::default, |e| e.id),
                entries,
                last_id: rdb_id(stream.last_id),
                entries_added: stream.entries_added,
                max_deleted_id: rdb_id(stream.max_deleted_id),
                groups,
            })
        }
    }
}

fn to_memory(value: RdbValue) -> MemValue {
    match value {
        RdbValue::List(items) => {
            let mut list = ListValue::default();
            for item in &items {
                list.push_back(item);
            }
            MemValue::List(list)
        }
        RdbValue::Set(members) => MemValue::Set(members.into_iter().collect()),
        RdbValue::ZSet(members) => MemValue::ZSet(SortedSet::from_owned(members)),
        RdbValue::Stream(stream) => {
            let mut value = StreamValue::default();
            for entry in &stream.entries {
                let items: Vec<&Bytes> = entry.fields.iter().flat_map(|(f, v)| [f, v]).collect();
                value.entries.push(our_id(entry.id), &items);
            }
            value.last_id = our_id(stream.last_id);
            value.entries_added = stream.entries_added;
            value.max_deleted_id = our_id(stream.max_deleted_id);
            for group in stream.groups {
                let pending = group
                    .pending
                    .into_iter()
                    .map(|p| {
                        let owner = Pending {
                            consumer: p.consumer,
                            delivered_ms: p.delivery_time_ms,
                            deliveries: p.delivery_count,
                        };
                        (our_id(p.id), owner)
                    })
                    .collect();
                let consumers: BTreeMap<Bytes, u64> =
                    group.consumers.into_iter().map(|c| (c.name, c.seen_time_ms)).collect();
                let entries_read = group.entries_read.and_then(|n| i64::try_from(n).ok());
                value.groups.insert(
                    group.name,
                    ConsumerGroup { last_id: our_id(group.last_id), entries_read, pending, consumers },
                );
            }
            MemValue::Stream(value)
        }
        RdbValue::String(_) | RdbValue::Hash(_) => unreachable!("strings and hashes live in RocksDB"),
    }
}

/// `RESTORE key ttl serialized-value [REPLACE] [ABSTTL] [IDLETIME seconds] [FREQ frequency]`
fn restore(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    let key = &argv[1];
    let (mut replace, mut absolute, mut idle, mut freq) = (false, false, None, None);
    let mut options = argv[4..].iter();
    while let Some(option) = options.next() {
        if option.eq_ignore_ascii_case(b"REPLACE") {
            replace = true;
        } else if option.eq_ignore_ascii_case(b"ABSTTL") {
            absolute = true;
        } else if option.eq_ignore_ascii_case(b"IDLETIME") && freq.is_none() {
            let value = parse_int(options.next().ok_or(CmdError::Syntax)?)?;
            if value < 0 {
                return Err(CmdError::err("Invalid IDLETIME value, must be >= 0"));
            }
            idle = Some(value);
        } else if option.eq_ignore_ascii_case(b"FREQ") && idle.is_none() {
            let value = parse_int(options.next().ok_or(CmdError::Syntax)?)?;
            if !(0..=255).contains(&value) {
                return Err(CmdError::err("Invalid FREQ value, must be >= 0 and <= 255"));
            }
            freq = Some(value);
        } else {
            return Err(CmdError::Syntax);
        }
    }
    let ttl = parse_int(&argv[2])?;
    if ttl < 0 {
        return Err(CmdError::err("Invalid TTL value, must be >= 0"));
    }
    ctx.run(|tx| {
        let old = tx.meta(key)?;
        if old.is_some() && !replace {
            return Err(CmdError::Custom("BUSYKEY Target key name already exists.".into()));
        }
        let value = rdb::restore(&argv[3]).map_err(|e| CmdError::err(e.to_string()))?;
        let expire_ms = match ttl {
            0 => 0,
            _ if absolute => ttl as u64,
            _ => tx.now_ms().saturating_add(ttl as u64),
        };
        if old.is_some() {
            tx.delete(key)?;
        }
        // A TTL already past: the key is not created (Redis replies OK).
        if expire_ms != 0 && expire_ms <= tx.now_ms() {
            return Ok(());
        }
        match value {
            RdbValue::String(bytes) => tx.set_string(key, None, &bytes, expire_ms),
            RdbValue::Hash(fields) => {
                let mut hash = Hash::open_or_create(tx, key)?;
                for (field, value) in &fields {
                    hash.set(tx, field, value)?;
                }
                hash.expire_ms = expire_ms;
                hash.save(tx, key)?;
            }
            value => {
                let entry = MemEntry { expire_ms, value: to_memory(value) };
                tx.mem_apply(MemOp::Put { key: key.clone(), entry });
            }
        }
        tx.notify(notify::GENERIC, "restore", key);
        Ok(())
    })?;
    Ok(Reply::ok())
}
