//! Compression of snapshot chunks: the codecs of the design card (zstd,
//! snappy, lz4), one per part type, chosen by measurement
//! (`benches/codecs.rs`; the table is in the README).

/// How a stored chunk is compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    None,
    Zstd,
    Snappy,
    Lz4,
}

impl Codec {
    pub const ALL: [Codec; 4] = [Codec::None, Codec::Zstd, Codec::Snappy, Codec::Lz4];

    pub fn name(self) -> &'static str {
        match self {
            Codec::None => "none",
            Codec::Zstd => "zstd",
            Codec::Snappy => "snappy",
            Codec::Lz4 => "lz4",
        }
    }

    pub fn parse(name: &str) -> Option<Codec> {
        Codec::ALL.into_iter().find(|codec| codec.name() == name)
    }

    pub fn compress(self, data: &[u8]) -> Vec<u8> {
        match self {
            Codec::None => data.to_vec(),
            Codec::Zstd => zstd::bulk::compress(data, ZSTD_LEVEL).expect("zstd compresses any input"),
            Codec::Snappy => snap::raw::Encoder::new().compress_vec(data).expect("snappy compresses any input"),
            Codec::Lz4 => lz4::block::compress(data, None, false).expect("lz4 compresses any input"),
        }
    }

    /// The data `compress` was given, which was `len` bytes long; None when
    /// `stored` is not what it made.
    pub fn decompress(self, stored: &[u8], len: usize) -> Option<Vec<u8>> {
        let data = match self {
            Codec::None => Some(stored.to_vec()),
            Codec::Zstd => zstd::bulk::decompress(stored, len).ok(),
            Codec::Snappy => snap::raw::Decoder::new().decompress_vec(stored).ok(),
            Codec::Lz4 => lz4::block::decompress(stored, Some(len.try_into().ok()?)).ok(),
        }?;
        (data.len() == len).then_some(data)
    }
}

/// zstd's default level: the measurements' size/speed balance.
const ZSTD_LEVEL: i32 = 3;

/// The part a snapshot file belongs to, by its path in the snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PartKind {
    /// RocksDB's files (SSTs, already compressed by RocksDB, and metadata).
    Rocks,
    /// A memory checkpoint.
    Memory,
    /// Log segments.
    Log,
    /// Anything else (the manifest).
    Other,
}

impl PartKind {
    pub fn of(path: &str) -> PartKind {
        match path.split('/').next() {
            Some("rocksdb") => PartKind::Rocks,
            Some("checkpoints") => PartKind::Memory,
            Some("log") => PartKind::Log,
            _ => PartKind::Other,
        }
    }

    /// The codec chunks of this part are stored with: zstd for every part,
    /// as it stored each in the least space (a third or less, against
    /// about half for lz4 and snappy) at a speed a backup's disk or network
    /// keeps up with (the README has the table).
    pub fn codec(self) -> Codec {
        Codec::Zstd
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_codec_gives_back_what_it_was_given_and_refuses_garbage() {
        let inputs: [Vec<u8>; 4] = [
            Vec::new(),
            b"a".to_vec(),
            b"abc".repeat(10_000),
            (0..100_000u32).map(|i| (i * 7919 % 251) as u8).collect(),
        ];
        for codec in Codec::ALL {
            assert_eq!(Codec::parse(codec.name()), Some(codec));
            for input in &inputs {
                let stored = codec.compress(input);
                assert_eq!(codec.decompress(&stored, input.len()).as_ref(), Some(input), "{codec:?}");
                if codec != Codec::None && !input.is_empty() {
                    assert_eq!(codec.decompress(&stored, input.len() + 1), None, "{codec:?}: wrong length");
                    let garbage: Vec<u8> = stored.iter().map(|b| b ^ 0x5a).collect();
                    assert_ne!(codec.decompress(&garbage, input.len()).as_ref(), Some(input), "{codec:?}");
                }
            }
        }
    }
}
