//! The binary encoding of memory records and values, shared by the
//! write-ahead log (records) and checkpoints (whole entries).
//!
//! Little-endian, LEB128 varints for lengths and integers, one tag byte per
//! enum variant. Decoding never trusts a length: every count is checked
//! against the bytes left, so garbage gives `CodecError`, never a panic or
//! a huge allocation. Changing a layout means a new format version in the
//! files that carry it (log segments, checkpoints).

use std::collections::BTreeMap;

use bytes::Bytes;

use super::list::{ListOp, ListValue};
use super::set::SetOp;
use super::stream::{ClaimIds, ConsumerGroup, Entries, Pending, StreamId, StreamOp, StreamValue};
use super::zset::{SortedSet, ZSetOp};
use super::{MemEntry, MemOp, MemRecord, MemValue, Piece};

/// Bytes that do not decode as what they should be.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad encoding at byte {offset}: {what}")]
pub struct CodecError {
    pub offset: usize,
    pub what: &'static str,
}

/// Appends encoded values to a buffer.
pub struct Encoder<'b>(pub &'b mut Vec<u8>);

impl Encoder<'_> {
    pub fn u8(&mut self, v: u8) {
        self.0.push(v);
    }

    pub fn bool(&mut self, v: bool) {
        self.0.push(v as u8);
    }

    pub fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push(v as u8 | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }

    pub fn f64(&mut self, v: f64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }

    pub fn bytes(&mut self, v: &[u8]) {
        self.varint(v.len() as u64);
        self.0.extend_from_slice(v);
    }

    fn id(&mut self, id: StreamId) {
        self.varint(id.ms);
        self.varint(id.seq);
    }

    fn opt_id(&mut self, id: Option<StreamId>) {
        self.bool(id.is_some());
        if let Some(id) = id {
            self.id(id);
        }
    }

    fn opt_u64(&mut self, v: Option<u64>) {
        self.bool(v.is_some());
        if let Some(v) = v {
            self.varint(v);
        }
    }

    fn opt_i64(&mut self, v: Option<i64>) {
        self.bool(v.is_some());
        if let Some(v) = v {
            self.0.extend_from_slice(&v.to_le_bytes());
        }
    }

    fn list<T>(&mut self, items: &[T], mut each: impl FnMut(&mut Self, &T)) {
        self.varint(items.len() as u64);
        for item in items {
            each(self, item);
        }
    }

    fn byte_list(&mut self, items: &[Bytes]) {
        self.list(items, |e, b| e.bytes(b));
    }

    fn id_list(&mut self, ids: &[StreamId]) {
        self.list(ids, |e, id| e.id(*id));
    }

    pub fn record(&mut self, record: &MemRecord) {
        match record {
            MemRecord::Op { db, op } => {
                self.u8(0);
                self.varint(*db as u64);
                self.op(op);
            }
            MemRecord::Flush { db } => {
                self.u8(1);
                self.varint(*db as u64);
            }
            MemRecord::Publish { shard, channel, message } => {
                self.u8(2);
                self.bool(*shard);
                self.bytes(channel);
                self.bytes(message);
            }
        }
    }

    fn op(&mut self, op: &MemOp) {
        match op {
            MemOp::Put { key, entry } => {
                self.u8(0);
                self.bytes(key);
                self.entry(entry);
            }
            MemOp::Delete { key } => {
                self.u8(1);
                self.bytes(key);
            }
            MemOp::Expire { key, expire_ms } => {
                self.u8(2);
                self.bytes(key);
                self.varint(*expire_ms);
            }
            MemOp::List { key, op } => {
                self.u8(3);
                self.bytes(key);
                self.list_op(op);
            }
            MemOp::Set { key, op } => {
                self.u8(4);
                self.bytes(key);
                match op {
                    SetOp::Add(members) => {
                        self.u8(0);
                        self.byte_list(members);
                    }
                    SetOp::Remove(members) => {
                        self.u8(1);
                        self.byte_list(members);
                    }
                }
            }
            MemOp::ZSet { key, op } => {
                self.u8(5);
                self.bytes(key);
                self.zset_op(op);
            }
            MemOp::Stream { key, op } => {
                self.u8(6);
                self.bytes(key);
                self.stream_op(op);
            }
        }
    }

    fn list_op(&mut self, op: &ListOp) {
        match op {
            ListOp::Push { front, items } => {
                self.u8(0);
                self.bool(*front);
                self.byte_list(items);
            }
            ListOp::Pop { front, count } => {
                self.u8(1);
                self.bool(*front);
                self.varint(*count as u64);
            }
            ListOp::Set { index, item } => {
                self.u8(2);
                self.varint(*index as u64);
                self.bytes(item);
            }
            ListOp::Insert { index, item } => {
                self.u8(3);
                self.varint(*index as u64);
                self.bytes(item);
            }
            ListOp::Trim { start, end } => {
                self.u8(4);
                self.varint(*start as u64);
                self.varint(*end as u64);
            }
            ListOp::Remove { indexes } => {
                self.u8(5);
                self.list(indexes, |e, i| e.varint(*i as u64));
            }
        }
    }

    fn zset_op(&mut self, op: &ZSetOp) {
        match op {
            ZSetOp::Add(items) => {
                self.u8(0);
                self.list(items, |e, (score, member)| {
                    e.f64(*score);
                    e.bytes(member);
                });
            }
            ZSetOp::Remove(members) => {
                self.u8(1);
                self.byte_list(members);
            }
            ZSetOp::RemoveRanks { start, end } => {
                self.u8(2);
                self.varint(*start as u64);
                self.varint(*end as u64);
            }
        }
    }

    fn stream_op(&mut self, op: &StreamOp) {
        match op {
            StreamOp::Add { id, fields } => {
                self.u8(0);
                self.id(*id);
                self.byte_list(fields);
            }
            StreamOp::Delete { ids } => {
                self.u8(1);
                self.id_list(ids);
            }
            StreamOp::Trim { through } => {
                self.u8(2);
                self.id(*through);
            }
            StreamOp::SetId { last_id, entries_added, max_deleted_id } => {
                self.u8(3);
                self.id(*last_id);
                self.opt_u64(*entries_added);
                self.opt_id(*max_deleted_id);
            }
            StreamOp::CreateGroup { group, last_id, entries_read } => {
                self.u8(4);
                self.bytes(group);
                self.id(*last_id);
                self.opt_i64(*entries_read);
            }
            StreamOp::DestroyGroup { group } => {
                self.u8(5);
                self.bytes(group);
            }
            StreamOp::SetGroupId { group, last_id, entries_read } => {
                self.u8(6);
                self.bytes(group);
                self.id(*last_id);
                self.opt_i64(*entries_read);
            }
            StreamOp::CreateConsumer { group, consumer, now_ms } => {
                self.u8(7);
                self.bytes(group);
                self.bytes(consumer);
                self.varint(*now_ms);
            }
            StreamOp::DeleteConsumer { group, consumer } => {
                self.u8(8);
                self.bytes(group);
                self.bytes(consumer);
            }
            StreamOp::ReadGroup { group, consumer, now_ms, new, noack, history } => {
                self.u8(9);
                self.bytes(group);
                self.bytes(consumer);
                self.varint(*now_ms);
                self.id_list(new);
                self.bool(*noack);
                self.id_list(history);
            }
            StreamOp::Ack { group, ids } => {
                self.u8(10);
                self.bytes(group);
                self.id_list(ids);
            }
            StreamOp::Claim { group, consumer, now_ms, claimed, count_delivery, dropped } => {
                self.u8(11);
                self.bytes(group);
                self.bytes(consumer);
                self.varint(*now_ms);
                self.id_list(claimed);
                self.bool(*count_delivery);
                self.id_list(dropped);
            }
            StreamOp::ClaimIds(c) => {
                self.u8(12);
                self.bytes(&c.group);
                self.bytes(&c.consumer);
                self.varint(c.now_ms);
                self.varint(c.delivered_ms);
                self.id_list(&c.claimed);
                self.opt_u64(c.retry_count);
                self.bool(c.count_delivery);
                self.id_list(&c.dropped);
                self.opt_id(c.last_id);
            }
        }
    }

    /// A whole key: TTL and value.
    pub fn entry(&mut self, entry: &MemEntry) {
        self.varint(entry.expire_ms);
        match &entry.value {
            MemValue::List(list) => {
                self.u8(0);
                self.varint(list.len() as u64);
                list.iter().for_each(|item| self.bytes(item));
            }
            MemValue::Set(set) => self.set_members(set.len(), set.iter()),
            // In order: decoding builds the tree from ascending members in one pass.
            MemValue::ZSet(zset) => self.zset_members(zset.len(), zset.iter()),
            MemValue::Stream(stream) => {
                self.u8(3);
                self.stream(stream);
            }
        }
    }

    /// Some elements of a big value, encoded as an entry holding just them
    /// (see `memory::cut`).
    pub fn piece(&mut self, expire_ms: u64, piece: &Piece) {
        self.varint(expire_ms);
        match piece {
            Piece::Set(members) => self.set_members(members.len(), members.iter()),
            Piece::ZSet(members) => self.zset_members(members.len(), members.iter().cloned()),
        }
    }

    /// A set's type and members (a whole set's, or a piece's).
    fn set_members<'m>(&mut self, len: usize, members: impl Iterator<Item = &'m Bytes>) {
        self.u8(1);
        self.varint(len as u64);
        members.for_each(|member| self.bytes(member));
    }

    /// A sorted set's type and members (a whole set's, or a piece's).
    fn zset_members(&mut self, len: usize, members: impl Iterator<Item = (f64, Bytes)>) {
        self.u8(2);
        self.varint(len as u64);
        for (score, member) in members {
            self.f64(score);
            self.bytes(&member);
        }
    }

    fn stream(&mut self, s: &StreamValue) {
        self.varint(s.entries.len() as u64);
        for (id, fields) in s.entries.iter() {
            self.id(id);
            self.varint(fields.iter().count() as u64);
            fields.iter().for_each(|item| self.bytes(item));
        }
        self.id(s.last_id);
        self.varint(s.entries_added);
        self.id(s.max_deleted_id);
        self.varint(s.entries.nodes().count() as u64);
        for (id, appended) in s.entries.nodes() {
            self.id(id);
            self.varint(appended);
        }
        self.varint(s.groups.len() as u64);
        for (name, group) in &s.groups {
            self.bytes(name);
            self.id(group.last_id);
            self.opt_i64(group.entries_read);
            self.varint(group.pending.len() as u64);
            for (id, p) in &group.pending {
                self.id(*id);
                self.bytes(&p.consumer);
                self.varint(p.delivered_ms);
                self.varint(p.deliveries);
            }
            self.varint(group.consumers.len() as u64);
            for (consumer, seen) in &group.consumers {
                self.bytes(consumer);
                self.varint(*seen);
            }
        }
    }
}

/// Reads encoded values from a buffer.
/// Decoded byte strings are copies in allocations of their own.
pub struct Decoder {
    buf: Bytes,
    pos: usize,
}

impl Decoder {
    pub fn new(buf: &[u8]) -> Decoder {
        Decoder::shared(Bytes::copy_from_slice(buf))
    }

    /// A decoder over `buf` without copying it.
    pub fn shared(buf: Bytes) -> Decoder {
        Decoder { buf, pos: 0 }
    }

    pub fn is_empty(&self) -> bool {
        self.pos == self.buf.len()
    }

    pub fn position(&self) -> usize {
        self.pos
    }

    fn fail<T>(&self, what: &'static str) -> Result<T, CodecError> {
        Err(CodecError { offset: self.pos, what })
    }

    fn take(&mut self, n: usize) -> Result<&[u8], CodecError> {
        if self.buf.len() - self.pos < n {
            return self.fail("truncated");
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    /// Skips `n` bytes.
    pub fn skip(&mut self, n: usize) -> Result<(), CodecError> {
        self.take(n).map(|_| ())
    }

    pub fn u8(&mut self) -> Result<u8, CodecError> {
        Ok(self.take(1)?[0])
    }

    pub fn bool(&mut self) -> Result<bool, CodecError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => self.fail("bad boolean"),
        }
    }

    pub fn varint(&mut self) -> Result<u64, CodecError> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.u8()?;
            let bits = (byte & 0x7f) as u64;
            if shift == 63 && bits > 1 {
                return self.fail("varint overflow");
            }
            value |= bits << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        self.fail("varint too long")
    }

    fn usize(&mut self) -> Result<usize, CodecError> {
        let v = self.varint()?;
        usize::try_from(v).or_else(|_| self.fail("length out of range"))
    }

    fn u32(&mut self) -> Result<u32, CodecError> {
        let v = self.varint()?;
        u32::try_from(v).or_else(|_| self.fail("database out of range"))
    }

    pub fn fixed_u64(&mut self) -> Result<u64, CodecError> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }

    pub fn f64(&mut self) -> Result<f64, CodecError> {
        let raw = self.take(8)?;
        let v = f64::from_le_bytes(raw.try_into().expect("8 bytes"));
        if v.is_nan() {
            return self.fail("NaN score");
        }
        Ok(v)
    }

    pub fn bytes(&mut self) -> Result<Bytes, CodecError> {
        let len = self.usize()?;
        let start = self.pos;
        self.take(len)?;
        // Copied, not sliced: a slice would keep the whole checkpoint or
        // log buffer alive for as long as one value decoded from it lives.
        Ok(Bytes::copy_from_slice(&self.buf[start..start + len]))
    }

    /// A count of items that each take at least one byte: a count larger
    /// than the bytes left is garbage (and must not size an allocation).
    fn count(&mut self) -> Result<usize, CodecError> {
        let n = self.usize()?;
        if n > self.buf.len() - self.pos {
            return self.fail("count exceeds the data");
        }
        Ok(n)
    }

    fn list<T>(&mut self, mut each: impl FnMut(&mut Self) -> Result<T, CodecError>) -> Result<Vec<T>, CodecError> {
        let n = self.count()?;
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(each(self)?);
        }
        Ok(out)
    }

    fn byte_list(&mut self) -> Result<Vec<Bytes>, CodecError> {
        self.list(|d| d.bytes())
    }

    fn id(&mut self) -> Result<StreamId, CodecError> {
        Ok(StreamId::new(self.varint()?, self.varint()?))
    }

    fn id_list(&mut self) -> Result<Vec<StreamId>, CodecError> {
        self.list(|d| d.id())
    }

    fn opt_id(&mut self) -> Result<Option<StreamId>, CodecError> {
        Ok(if self.bool()? { Some(self.id()?) } else { None })
    }

    fn opt_i64(&mut self) -> Result<Option<i64>, CodecError> {
        Ok(if self.bool()? { Some(self.fixed_u64()? as i64) } else { None })
    }

    fn opt_u64(&mut self) -> Result<Option<u64>, CodecError> {
        Ok(if self.bool()? { Some(self.varint()?) } else { None })
    }

    pub fn record(&mut self) -> Result<MemRecord, CodecError> {
        match self.u8()? {
            0 => Ok(MemRecord::Op { db: self.u32()?, op: self.op()? }),
            1 => Ok(MemRecord::Flush { db: self.u32()? }),
            2 => Ok(MemRecord::Publish { shard: self.bool()?, channel: self.bytes()?, message: self.bytes()? }),
            _ => self.fail("unknown record tag"),
        }
    }

    fn op(&mut self) -> Result<MemOp, CodecError> {
        let tag = self.u8()?;
        let key = self.bytes()?;
        Ok(match tag {
            0 => MemOp::Put { key, entry: self.entry()? },
            1 => MemOp::Delete { key },
            2 => MemOp::Expire { key, expire_ms: self.varint()? },
            3 => MemOp::List { key, op: self.list_op()? },
            4 => {
                let op = match self.u8()? {
                    0 => SetOp::Add(self.byte_list()?),
                    1 => SetOp::Remove(self.byte_list()?),
                    _ => return self.fail("unknown set op"),
                };
                MemOp::Set { key, op }
            }
            5 => MemOp::ZSet { key, op: self.zset_op()? },
            6 => MemOp::Stream { key, op: self.stream_op()? },
            _ => return self.fail("unknown op tag"),
        })
    }

    fn list_op(&mut self) -> Result<ListOp, CodecError> {
        Ok(match self.u8()? {
            0 => ListOp::Push { front: self.bool()?, items: self.byte_list()? },
            1 => ListOp::Pop { front: self.bool()?, count: self.usize()? },
            2 => ListOp::Set { index: self.usize()?, item: self.bytes()? },
            3 => ListOp::Insert { index: self.usize()?, item: self.bytes()? },
            4 => ListOp::Trim { start: self.usize()?, end: self.usize()? },
            5 => ListOp::Remove { indexes: self.list(|d| d.usize())? },
            _ => return self.fail("unknown list op"),
        })
    }

    fn zset_op(&mut self) -> Result<ZSetOp, CodecError> {
        Ok(match self.u8()? {
            0 => ZSetOp::Add(self.list(|d| Ok((d.f64()?, d.bytes()?)))?),
            1 => ZSetOp::Remove(self.byte_list()?),
            2 => ZSetOp::RemoveRanks { start: self.usize()?, end: self.usize()? },
            _ => return self.fail("unknown sorted set op"),
        })
    }

    fn stream_op(&mut self) -> Result<StreamOp, CodecError> {
        Ok(match self.u8()? {
            0 => StreamOp::Add { id: self.id()?, fields: self.byte_list()? },
            1 => StreamOp::Delete { ids: self.id_list()? },
            2 => StreamOp::Trim { through: self.id()? },
            3 => {
                StreamOp::SetId { last_id: self.id()?, entries_added: self.opt_u64()?, max_deleted_id: self.opt_id()? }
            }
            4 => StreamOp::CreateGroup { group: self.bytes()?, last_id: self.id()?, entries_read: self.opt_i64()? },
            5 => StreamOp::DestroyGroup { group: self.bytes()? },
            6 => StreamOp::SetGroupId { group: self.bytes()?, last_id: self.id()?, entries_read: self.opt_i64()? },
            7 => StreamOp::CreateConsumer { group: self.bytes()?, consumer: self.bytes()?, now_ms: self.varint()? },
            8 => StreamOp::DeleteConsumer { group: self.bytes()?, consumer: self.bytes()? },
            9 => StreamOp::ReadGroup {
                group: self.bytes()?,
                consumer: self.bytes()?,
                now_ms: self.varint()?,
                new: self.id_list()?,
                noack: self.bool()?,
                history: self.id_list()?,
            },
            10 => StreamOp::Ack { group: self.bytes()?, ids: self.id_list()? },
            11 => StreamOp::Claim {
                group: self.bytes()?,
                consumer: self.bytes()?,
                now_ms: self.varint()?,
                claimed: self.id_list()?,
                count_delivery: self.bool()?,
                dropped: self.id_list()?,
            },
            12 => StreamOp::ClaimIds(Box::new(ClaimIds {
                group: self.bytes()?,
                consumer: self.bytes()?,
                now_ms: self.varint()?,
                delivered_ms: self.varint()?,
                claimed: self.id_list()?,
                retry_count: self.opt_u64()?,
                count_delivery: self.bool()?,
                dropped: self.id_list()?,
                last_id: self.opt_id()?,
            })),
            _ => return self.fail("unknown stream op"),
        })
    }

    pub fn entry(&mut self) -> Result<MemEntry, CodecError> {
        let expire_ms = self.varint()?;
        let value = match self.u8()? {
            0 => {
                // Packed straight from the buffer: no copy per item first.
                let mut list = ListValue::default();
                for _ in 0..self.count()? {
                    let len = self.usize()?;
                    list.push_back(self.take(len)?);
                }
                MemValue::List(list)
            }
            1 => MemValue::Set(self.byte_list()?.into_iter().collect()),
            2 => MemValue::ZSet(SortedSet::from_owned(self.list(|d| Ok((d.f64()?, d.bytes()?)))?)),
            3 => MemValue::Stream(self.stream()?),
            _ => return self.fail("unknown value type"),
        };
        Ok(MemEntry { expire_ms, value })
    }

    /// A piece of a big set or sorted set (`Encoder::piece`): its expiry
    /// and elements, without building a value of them.
    pub fn piece(&mut self) -> Result<(u64, Piece), CodecError> {
        let expire_ms = self.varint()?;
        let piece = match self.u8()? {
            1 => Piece::Set(self.byte_list()?),
            2 => Piece::ZSet(self.list(|d| Ok((d.f64()?, d.bytes()?)))?),
            _ => return self.fail("a key given twice, not as pieces of one set or sorted set"),
        };
        Ok((expire_ms, piece))
    }

    fn stream(&mut self) -> Result<StreamValue, CodecError> {
        let listed = self.list(|d| Ok((d.id()?, d.byte_list()?)))?;
        let last_id = self.id()?;
        let entries_added = self.varint()?;
        let max_deleted_id = self.id()?;
        let nodes: Vec<(StreamId, u64)> = self.list(|d| Ok((d.id()?, d.varint()?)))?;
        if !listed.windows(2).all(|pair| pair[0].0 < pair[1].0) || !nodes.windows(2).all(|pair| pair[0].0 < pair[1].0) {
            return self.fail("stream IDs out of order");
        }
        // Each entry goes into the last node starting at or before it.
        let mut entries = Entries::default();
        let mut node = 0;
        for (id, fields) in &listed {
            while nodes.get(node + 1).is_some_and(|(next, _)| next <= id) {
                node += 1;
            }
            match nodes.get(node) {
                Some((master, _)) if master <= id => entries.restore(*master, *id, fields),
                _ => return self.fail("stream entry outside its nodes"),
            }
        }
        for (master, appended) in nodes {
            entries.set_appended(master, appended);
        }
        let groups = self
            .list(|d| {
                let name = d.bytes()?;
                let last_id = d.id()?;
                let entries_read = d.opt_i64()?;
                let pending: BTreeMap<StreamId, Pending> = d
                    .list(|d| {
                        let id = d.id()?;
                        Ok((id, Pending { consumer: d.bytes()?, delivered_ms: d.varint()?, deliveries: d.varint()? }))
                    })?
                    .into_iter()
                    .collect();
                let consumers = d.list(|d| Ok((d.bytes()?, d.varint()?)))?.into_iter().collect();
                Ok((name, ConsumerGroup { last_id, entries_read, pending, consumers }))
            })?
            .into_iter()
            .collect();
        Ok(StreamValue { entries, last_id, entries_added, max_deleted_id, groups })
    }
}

/// Encodes records one after another.
pub fn encode_records(records: &[MemRecord], out: &mut Vec<u8>) {
    let mut e = Encoder(out);
    e.varint(records.len() as u64);
    records.iter().for_each(|r| e.record(r));
}

/// Decodes what `encode_records` wrote; the whole buffer must be used.
pub fn decode_records(buf: &[u8]) -> Result<Vec<MemRecord>, CodecError> {
    Decoder::new(buf).records()
}

impl Decoder {
    /// What `encode_records` wrote, up to the end of the buffer.
    pub fn records(&mut self) -> Result<Vec<MemRecord>, CodecError> {
        let records = self.list(|d| d.record())?;
        if !self.is_empty() {
            return self.fail("trailing bytes");
        }
        Ok(records)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    fn sample_records() -> Vec<MemRecord> {
        let mut stream = StreamValue::default();
        // Three nodes, one entry deleted and the first ones trimmed: what
        // a checkpoint keeps of the node structure comes back.
        for ms in 1..=250 {
            let fields = vec![b("f"), Bytes::from(vec![ms as u8; ms as usize])];
            super::super::stream::apply(&mut stream, &StreamOp::Add { id: StreamId::new(ms, 0), fields });
        }
        super::super::stream::apply(&mut stream, &StreamOp::Delete { ids: vec![StreamId::new(150, 0)] });
        super::super::stream::apply(&mut stream, &StreamOp::Trim { through: StreamId::new(40, 0) });
        super::super::stream::apply(
            &mut stream,
            &StreamOp::Add { id: StreamId::new(300, 1), fields: vec![b("f"), b("v")] },
        );
        super::super::stream::apply(
            &mut stream,
            &StreamOp::CreateGroup { group: b("g"), last_id: StreamId::MIN, entries_read: Some(-3) },
        );
        super::super::stream::apply(
            &mut stream,
            &StreamOp::ReadGroup {
                group: b("g"),
                consumer: b("c"),
                now_ms: 7,
                new: vec![StreamId::new(5, 1)],
                noack: false,
                history: vec![],
            },
        );
        let mut zset = SortedSet::default();
        zset.insert(f64::INFINITY, b"top");
        zset.insert(-1.5, b"low");
        vec![
            MemRecord::Op {
                db: 3,
                op: MemOp::List { key: b("l"), op: ListOp::Push { front: true, items: vec![b("a"), b("")] } },
            },
            MemRecord::Op { db: 0, op: MemOp::List { key: b("l"), op: ListOp::Remove { indexes: vec![0, 300] } } },
            MemRecord::Op {
                db: 0,
                op: MemOp::Set { key: b("s"), op: SetOp::Remove(vec![Bytes::from_static(b"\x00\xff")]) },
            },
            MemRecord::Op {
                db: 0,
                op: MemOp::ZSet { key: b("z"), op: ZSetOp::Add(vec![(f64::NEG_INFINITY, b("m"))]) },
            },
            MemRecord::Op { db: 0, op: MemOp::ZSet { key: b("z"), op: ZSetOp::RemoveRanks { start: 1, end: 9 } } },
            MemRecord::Op { db: 0, op: MemOp::Expire { key: b("z"), expire_ms: u64::MAX } },
            MemRecord::Op {
                db: 0,
                op: MemOp::Put { key: b("z2"), entry: MemEntry { expire_ms: 9, value: MemValue::ZSet(zset) } },
            },
            MemRecord::Op {
                db: 0,
                op: MemOp::Put { key: b("st"), entry: MemEntry { expire_ms: 0, value: MemValue::Stream(stream) } },
            },
            MemRecord::Op {
                db: 1,
                op: MemOp::Stream {
                    key: b("st"),
                    op: StreamOp::ClaimIds(Box::new(ClaimIds {
                        group: b("g"),
                        consumer: b("c2"),
                        now_ms: 1,
                        delivered_ms: 2,
                        claimed: vec![StreamId::MAX],
                        retry_count: Some(4),
                        count_delivery: true,
                        dropped: vec![],
                        last_id: None,
                    })),
                },
            },
            MemRecord::Op { db: 0, op: MemOp::Delete { key: b("gone") } },
            MemRecord::Flush { db: u32::MAX },
            MemRecord::Publish { shard: true, channel: b("news"), message: b("") },
        ]
    }

    #[test]
    fn records_round_trip() {
        let records = sample_records();
        let mut buf = Vec::new();
        encode_records(&records, &mut buf);
        assert_eq!(decode_records(&buf).unwrap(), records);
    }

    #[test]
    fn truncation_and_garbage_are_errors_not_panics() {
        let mut buf = Vec::new();
        encode_records(&sample_records(), &mut buf);
        for cut in 0..buf.len() {
            assert!(decode_records(&buf[..cut]).is_err(), "cut at {cut}");
        }
        // Flip every byte in turn: it may still decode (a changed value),
        // but it must never panic.
        for i in 0..buf.len() {
            let mut bad = buf.clone();
            bad[i] ^= 0xa5;
            let _ = decode_records(&bad);
        }
        let mut seed = 0x1234_5678u64;
        for _ in 0..2000 {
            let len = (seed % 64) as usize;
            let garbage: Vec<u8> = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed as u8
                })
                .collect();
            let _ = decode_records(&garbage);
        }
        // A count claiming more items than bytes left is refused up front.
        let mut huge = Vec::new();
        Encoder(&mut huge).varint(u64::MAX >> 1);
        assert!(decode_records(&huge).is_err());
    }
}
