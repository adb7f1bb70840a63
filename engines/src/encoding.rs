//! How keys and values are laid out in RocksDB.
//!
//! Column families:
//! - `meta`: one record per user key: `[db u32][slot u16][key]` →
//!   `[type u8][expire_ms u64][body]`. A string's body is its value (GET is
//!   one lookup); a hash's body is `[version u64][field count u64]`.
//! - `sub`: hash fields: `[db u32][slot u16][key len u32][key][version u64][field]`
//!   → value. The version is new each time a hash is created, so DEL of a
//!   huge hash only deletes its metadata; the old fields are invisible at
//!   once and the compaction filter drops them later.
//! - `expire`: index of keys with a TTL: `[db u32][expire_ms u64][slot u16][key]`
//!   → empty, so active expiry finds what is due with one range scan.
//! - `default`: server records (db map, per-db counters).
//!
//! The database comes first so that a database is one key range (FLUSHDB is
//! one range delete); the hash slot comes next, so that within a database
//! (cluster mode has only database 0) a slot range is one key range.

/// Which engine-wide type a key has. One type per key across all engines.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum KeyType {
    String = 0,
    Hash = 1,
    List = 2,
    Set = 3,
    ZSet = 4,
    Stream = 5,
}

impl KeyType {
    pub fn from_u8(tag: u8) -> Option<KeyType> {
        Some(match tag {
            0 => KeyType::String,
            1 => KeyType::Hash,
            2 => KeyType::List,
            3 => KeyType::Set,
            4 => KeyType::ZSet,
            5 => KeyType::Stream,
            _ => return None,
        })
    }

    /// The name TYPE answers and SCAN TYPE filters on.
    pub fn name(self) -> &'static str {
        match self {
            KeyType::String => "string",
            KeyType::Hash => "hash",
            KeyType::List => "list",
            KeyType::Set => "set",
            KeyType::ZSet => "zset",
            KeyType::Stream => "stream",
        }
    }
}

/// Length of the `[db][slot]` prefix of meta keys.
pub const META_PREFIX_LEN: usize = 6;
/// Length of the `[type][expire]` header of meta values.
pub const META_HEADER_LEN: usize = 9;

/// `[db][slot][key]`: the key of a meta record.
pub fn meta_key(db: u32, slot: u16, key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(META_PREFIX_LEN + key.len());
    out.extend_from_slice(&db.to_be_bytes());
    out.extend_from_slice(&slot.to_be_bytes());
    out.extend_from_slice(key);
    out
}

/// Splits a meta key into database, slot and user key.
pub fn decode_meta_key(raw: &[u8]) -> Option<(u32, u16, &[u8])> {
    if raw.len() < META_PREFIX_LEN {
        return None;
    }
    let db = u32::from_be_bytes(raw[0..4].try_into().ok()?);
    let slot = u16::from_be_bytes(raw[4..6].try_into().ok()?);
    Some((db, slot, &raw[META_PREFIX_LEN..]))
}

/// The first key of database `db` in `meta` (and `sub`, `expire`).
pub fn db_start(db: u32) -> Vec<u8> {
    db.to_be_bytes().to_vec()
}

/// The first key after database `db`.
pub fn db_end(db: u32) -> Vec<u8> {
    (db as u64 + 1).to_be_bytes()[4..].to_vec()
}

/// A decoded meta value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Meta<'a> {
    pub key_type: KeyType,
    /// Absolute expiry in unix milliseconds; 0 means no TTL.
    pub expire_ms: u64,
    pub body: &'a [u8],
}

impl<'a> Meta<'a> {
    pub fn decode(raw: &'a [u8]) -> Option<Meta<'a>> {
        if raw.len() < META_HEADER_LEN {
            return None;
        }
        Some(Meta {
            key_type: KeyType::from_u8(raw[0])?,
            expire_ms: u64::from_be_bytes(raw[1..9].try_into().ok()?),
            body: &raw[META_HEADER_LEN..],
        })
    }

    pub fn is_expired(&self, now_ms: u64) -> bool {
        self.expire_ms != 0 && self.expire_ms <= now_ms
    }
}

/// Encodes a meta value.
pub fn encode_meta(key_type: KeyType, expire_ms: u64, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(META_HEADER_LEN + body.len());
    out.push(key_type as u8);
    out.extend_from_slice(&expire_ms.to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// Rewrites the expiry of an encoded meta value in place.
pub fn set_meta_expire(raw: &mut [u8], expire_ms: u64) {
    raw[1..9].copy_from_slice(&expire_ms.to_be_bytes());
}

/// The body of a hash's meta record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HashBody {
    pub version: u64,
    pub len: u64,
}

impl HashBody {
    pub fn decode(body: &[u8]) -> Option<HashBody> {
        if body.len() != 16 {
            return None;
        }
        Some(HashBody {
            version: u64::from_be_bytes(body[0..8].try_into().ok()?),
            len: u64::from_be_bytes(body[8..16].try_into().ok()?),
        })
    }

    pub fn encode(&self) -> [u8; 16] {
        let mut out = [0u8; 16];
        out[0..8].copy_from_slice(&self.version.to_be_bytes());
        out[8..16].copy_from_slice(&self.len.to_be_bytes());
        out
    }
}

/// `[db][slot][key len][key][version]`: every field of one hash version
/// starts with this.
pub fn sub_prefix(db: u32, slot: u16, key: &[u8], version: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(META_PREFIX_LEN + 4 + key.len() + 8);
    out.extend_from_slice(&db.to_be_bytes());
    out.extend_from_slice(&slot.to_be_bytes());
    out.extend_from_slice(&(key.len() as u32).to_be_bytes());
    out.extend_from_slice(key);
    out.extend_from_slice(&version.to_be_bytes());
    out
}

/// A decoded `sub` key.
#[derive(Debug, PartialEq, Eq)]
pub struct SubKey<'a> {
    pub db: u32,
    pub slot: u16,
    pub key: &'a [u8],
    pub version: u64,
    pub field: &'a [u8],
}

pub fn decode_sub_key(raw: &[u8]) -> Option<SubKey<'_>> {
    let (db, slot, rest) = decode_meta_key(raw)?;
    let key_len = u32::from_be_bytes(rest.get(0..4)?.try_into().ok()?) as usize;
    let key = rest.get(4..4 + key_len)?;
    let version = u64::from_be_bytes(rest.get(4 + key_len..12 + key_len)?.try_into().ok()?);
    Some(SubKey { db, slot, key, version, field: &rest[12 + key_len..] })
}

/// `[db][expire][slot][key]`: an entry of the expiry index.
pub fn expire_key(db: u32, expire_ms: u64, slot: u16, key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(14 + key.len());
    out.extend_from_slice(&db.to_be_bytes());
    out.extend_from_slice(&expire_ms.to_be_bytes());
    out.extend_from_slice(&slot.to_be_bytes());
    out.extend_from_slice(key);
    out
}

/// Splits an expiry-index key into database, expiry, slot and user key.
pub fn decode_expire_key(raw: &[u8]) -> Option<(u32, u64, u16, &[u8])> {
    if raw.len() < 14 {
        return None;
    }
    Some((
        u32::from_be_bytes(raw[0..4].try_into().ok()?),
        u64::from_be_bytes(raw[4..12].try_into().ok()?),
        u16::from_be_bytes(raw[12..14].try_into().ok()?),
        &raw[14..],
    ))
}

/// The smallest key greater than every key starting with `prefix`, or
/// `None` when the prefix is all 0xff.
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last != 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sub_keys_round_trip() {
        let mut raw = sub_prefix(3, 77, b"h\x00ash", 42);
        raw.extend_from_slice(b"field");
        let sub = decode_sub_key(&raw).unwrap();
        assert_eq!(sub, SubKey { db: 3, slot: 77, key: b"h\x00ash", version: 42, field: b"field" });
        assert!(decode_sub_key(&raw[..10]).is_none());
    }

    #[test]
    fn meta_round_trip() {
        let raw = encode_meta(KeyType::Hash, 5, &HashBody { version: 9, len: 2 }.encode());
        let meta = Meta::decode(&raw).unwrap();
        assert_eq!(meta.key_type, KeyType::Hash);
        assert_eq!(meta.expire_ms, 5);
        assert_eq!(HashBody::decode(meta.body), Some(HashBody { version: 9, len: 2 }));
        assert!(Meta::decode(&raw[..3]).is_none());
        assert!(Meta::decode(&[99; 12]).is_none());
    }

    #[test]
    fn database_ranges_are_ordered() {
        assert!(meta_key(1, 16383, b"\xff\xff") < db_end(1));
        assert!(db_end(1) <= meta_key(2, 0, b""));
        assert_eq!(prefix_end(b"a\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_end(b"\xff"), None);
    }
}
