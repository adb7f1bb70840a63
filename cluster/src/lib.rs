//! Redis Cluster hash slots.
//!
//! Every key belongs to one of 16384 slots: CRC16 (XMODEM) of the key, or of
//! the first non-empty `{hashtag}` in it, modulo 16384 — exactly Redis's
//! `keyHashSlot`, so cluster-aware clients route keys to the same slot.

pub mod raft;
pub mod state;

/// Number of hash slots in a Redis cluster.
pub const SLOT_COUNT: usize = 16384;

/// CRC16-CCITT (XMODEM), the checksum Redis Cluster uses for key slots.
/// Every command computes it for its keys: four bytes at a time, from four
/// independent table lookups (a byte at a time, each lookup waits for the
/// one before).
pub fn crc16(data: &[u8]) -> u16 {
    let mut chunks = data.chunks_exact(4);
    let mut crc: u16 = 0;
    for chunk in &mut chunks {
        let x = ((crc as u32) << 16) ^ u32::from_be_bytes(chunk.try_into().expect("4 bytes"));
        crc = CRC16_TABLES[3][(x >> 24) as usize]
            ^ CRC16_TABLES[2][((x >> 16) & 0xff) as usize]
            ^ CRC16_TABLES[1][((x >> 8) & 0xff) as usize]
            ^ CRC16_TABLES[0][(x & 0xff) as usize];
    }
    for &byte in chunks.remainder() {
        crc = (crc << 8) ^ CRC16_TABLES[0][(((crc >> 8) as u8) ^ byte) as usize];
    }
    crc
}

/// The hash slot of `key`, honouring `{hashtag}`s as Redis does: the part
/// between the first `{` and the next `}` is hashed when it is non-empty.
pub fn key_slot(key: &[u8]) -> u16 {
    let hashed = match key.iter().position(|&b| b == b'{') {
        Some(open) => match key[open + 1..].iter().position(|&b| b == b'}') {
            Some(0) | None => key,
            Some(len) => &key[open + 1..open + 1 + len],
        },
        None => key,
    };
    crc16(hashed) & (SLOT_COUNT as u16 - 1)
}

/// `CRC16_TABLES[k][b]`: the CRC of byte `b` followed by `k` zero bytes.
const CRC16_TABLES: [[u16; 256]; 4] = build_crc16_tables();

const fn build_crc16_tables() -> [[u16; 256]; 4] {
    let mut tables = [[0u16; 256]; 4];
    let mut i = 0;
    while i < 256 {
        let mut crc = (i as u16) << 8;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 0x8000 != 0 { (crc << 1) ^ 0x1021 } else { crc << 1 };
            bit += 1;
        }
        tables[0][i] = crc;
        i += 1;
    }
    let mut k = 1;
    while k < 4 {
        let mut i = 0;
        while i < 256 {
            // One more zero byte through the byte-at-a-time step.
            let prev = tables[k - 1][i];
            tables[k][i] = (prev << 8) ^ tables[0][(prev >> 8) as usize];
            i += 1;
        }
        k += 1;
    }
    tables
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc16_matches_the_reference_vector() {
        // The check value of CRC-16/XMODEM.
        assert_eq!(crc16(b"123456789"), 0x31C3);
    }

    #[test]
    fn crc16_four_bytes_at_a_time_matches_the_bitwise_definition() {
        let bitwise = |data: &[u8]| {
            let mut crc: u16 = 0;
            for &byte in data {
                crc ^= (byte as u16) << 8;
                for _ in 0..8 {
                    crc = if crc & 0x8000 != 0 { (crc << 1) ^ 0x1021 } else { crc << 1 };
                }
            }
            crc
        };
        let mut data = Vec::new();
        let mut x = 0x9e37_79b9u32;
        for len in 0..200 {
            assert_eq!(crc16(&data), bitwise(&data), "length {len}");
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            data.push(x as u8);
        }
    }

    #[test]
    fn slots_match_redis() {
        // Values from `CLUSTER KEYSLOT` on a real Redis.
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"bar"), 5061);
        assert_eq!(key_slot(b""), 0);
        assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"user1000"));
        assert_eq!(key_slot(b"{user1000}.followers"), key_slot(b"{user1000}.following"));
        // An empty tag hashes the whole key; only the first `{` counts.
        assert_eq!(key_slot(b"foo{}{bar}"), crc16(b"foo{}{bar}") & 16383);
        assert_eq!(key_slot(b"foo{{bar}}zap"), crc16(b"{bar") & 16383);
        assert_eq!(key_slot(b"foo{bar}{zap}"), key_slot(b"bar"));
    }
}
