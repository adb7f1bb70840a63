//! Strata's storage engines.
//!
//! `rocks` holds strings and hashes in RocksDB with the key layout of
//! `encoding`; `rowcache` answers repeated point lookups from memory;
//! `log` is the write-ahead log and its readers, `replay` applies its
//! records to the engines; `writeset` is a command's pending writes with read-your-own-writes;
//! `keyspace` is the type-level bookkeeping shared by every command
//! (metadata, expiry index, per-database counters); `metrics` the counters
//! the durability machinery reports through.

pub mod clock;
pub mod encoding;
pub mod faults;
pub mod keyspace;
pub mod log;
pub mod memory;
pub mod metrics;
pub mod replay;
pub mod rocks;
pub mod rowcache;
pub mod slots;
pub mod spin;
#[cfg(test)]
pub(crate) mod test_rng;
pub mod writeset;

pub use clock::now_ms;
pub use encoding::KeyType;
pub use metrics::DurabilityMetrics;
pub use rocks::{Cf, RocksConfig, RocksEngine};
pub use writeset::WriteSet;

/// An error from a storage engine.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    #[error("rocksdb: {0}")]
    Rocks(#[from] rocksdb::Error),
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    #[error("corrupt record: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Log(#[from] log::LogError),
    #[error(transparent)]
    Checkpoint(#[from] memory::checkpoint::CheckpointError),
    /// The files on disk cannot be put back together into one state.
    #[error("{0}")]
    Unrecoverable(String),
    /// RocksDB's memtables have no room until the next switch (see
    /// `rocks::MemtableRoom`), and none came in time.
    #[error("RocksDB's memtables are full until they are switched behind the log")]
    MemtableFull,
}
