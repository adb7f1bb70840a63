//! Applying log records to the engines. Each part of the data names the
//! sequence it already holds (RocksDB's flushed files, each memory shard's
//! checkpoint image), and a record is applied to a part only above that
//! part's sequence, so nothing is applied twice. Recovery replays the log
//! with it; a replica or a slot-migration target applies the records it is
//! sent the same way.

use crate::log::LogRecord;
use crate::memory::{shard_in, MemRecord, MemShard};
use crate::rocks::BatchData;
use crate::{EngineError, RocksEngine};

/// RocksDB writes of consecutive records are joined up to this size: the
/// order is kept, and a RocksDB write per record would dominate a replay.
const JOINED_BATCH: usize = 4 << 20;

/// Applies records in sequence order to RocksDB and the memory shards.
pub struct Replay<'e> {
    engine: &'e RocksEngine,
    /// The sequence RocksDB holds.
    rocks_seq: u64,
    shards: &'e mut [MemShard],
    /// The sequence each shard holds.
    shard_seqs: &'e [u64],
    joined: BatchData,
}

impl<'e> Replay<'e> {
    pub fn new(engine: &'e RocksEngine, rocks_seq: u64, shards: &'e mut [MemShard], shard_seqs: &'e [u64]) -> Self {
        assert_eq!(shards.len(), shard_seqs.len(), "a sequence per shard");
        Replay { engine, rocks_seq, shards, shard_seqs, joined: BatchData::default() }
    }

    /// Applies `record` to every part that does not hold it yet.
    pub fn apply(&mut self, record: &LogRecord) -> Result<(), EngineError> {
        if record.seq > self.rocks_seq && !record.rocks.is_empty() {
            self.joined.append(&record.rocks);
            if self.joined.len() >= JOINED_BATCH {
                self.write_joined()?;
            }
        }
        for mem in &record.mem {
            match mem {
                MemRecord::Op { db, op } => {
                    let shard = shard_in(op.key(), self.shards.len());
                    if record.seq > self.shard_seqs[shard] {
                        self.shards[shard].db(*db).apply(op);
                    }
                }
                MemRecord::Flush { db } => {
                    for (shard, &seq) in self.shards.iter_mut().zip(self.shard_seqs) {
                        if record.seq > seq {
                            shard.flush(*db);
                        }
                    }
                }
                // Delivered when it was published; a restart sends nothing.
                MemRecord::Publish { .. } => {}
            }
        }
        Ok(())
    }

    /// Writes what is still joined: every record applied so far is in the
    /// engines after it.
    pub fn finish(mut self) -> Result<(), EngineError> {
        self.write_joined()
    }

    fn write_joined(&mut self) -> Result<(), EngineError> {
        if !self.joined.is_empty() {
            self.engine.write_data(self.joined.data())?;
            self.joined.clear();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::memory::{MemEntry, MemOp, MemValue};
    use crate::RocksConfig;

    /// A key that lands in `shard` of two.
    fn key_in(shard: usize, n: u64) -> Bytes {
        (0..).map(|i| Bytes::from(format!("k{n}-{i}"))).find(|k| shard_in(k, 2) == shard).unwrap()
    }

    fn put(seq: u64, keys: &[Bytes]) -> LogRecord {
        let entry = MemEntry { expire_ms: 0, value: MemValue::Stream(Default::default()) };
        let mem =
            keys.iter().map(|key| MemRecord::Op { db: 0, op: MemOp::Put { key: key.clone(), entry: entry.clone() } });
        LogRecord { seq, rocks: Bytes::new(), mem: mem.collect(), mem_encoded: Bytes::new(), size: 0, time_ms: 0 }
    }

    #[test]
    fn each_shard_gets_only_the_records_above_its_own_sequence() {
        let dir = tempfile::tempdir().unwrap();
        let engine = RocksEngine::open(dir.path(), &RocksConfig::default()).unwrap();
        let mut shards = vec![MemShard::default(), MemShard::default()];
        let mut replay = Replay::new(&engine, 0, &mut shards, &[5, 2]);
        for seq in 1..=7 {
            replay.apply(&put(seq, &[key_in(0, seq), key_in(1, seq)])).unwrap();
        }
        replay
            .apply(&LogRecord {
                seq: 8,
                rocks: Bytes::new(),
                mem: vec![MemRecord::Flush { db: 1 }],
                mem_encoded: Bytes::new(),
                size: 0,
                time_ms: 0,
            })
            .unwrap();
        replay.finish().unwrap();
        let held = |shard: &mut MemShard, n: u64, which: usize| shard.db(0).get(&key_in(which, n)).is_some();
        let (first, second) = shards.split_at_mut(1);
        assert_eq!((1..=7).filter(|&n| held(&mut first[0], n, 0)).collect::<Vec<_>>(), [6, 7]);
        assert_eq!((1..=7).filter(|&n| held(&mut second[0], n, 1)).collect::<Vec<_>>(), [3, 4, 5, 6, 7]);
    }
}
