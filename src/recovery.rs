//! Startup recovery: open RocksDB, load the newest usable memory
//! checkpoint, then replay the log after each engine's own sequence.
//!
//! RocksDB knows the last sequence its flushed files hold (`applied_seq`);
//! each checkpoint shard knows its own. `Replay` applies a record to
//! RocksDB only above RocksDB's sequence and to a memory shard only above
//! that shard's, so nothing is applied twice. A torn last record is cut off; any other
//! damage stops startup with the file, offset and sequence.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::loading::LoadingProgress;

use strata_engines::log::{cut_torn_tail, list_segments, read_log};
use strata_engines::memory::checkpoint::{list_checkpoints, read_checkpoint};
use strata_engines::memory::{reshard, MemShard, SHARDS};
use strata_engines::replay::Replay;
use strata_engines::{EngineError, RocksConfig, RocksEngine};

/// Where the pieces live inside the data directory.
pub fn rocks_dir(dir: &Path) -> PathBuf {
    dir.join("rocksdb")
}

pub fn log_dir(dir: &Path) -> PathBuf {
    dir.join("log")
}

pub fn checkpoint_dir(dir: &Path) -> PathBuf {
    dir.join("checkpoints")
}

/// Present while a replica moves a full sync's data into its engines
/// (`Keyspace::load_synced`): a start that finds it begins empty, as the
/// engines may hold part old and part new data. The replica then syncs
/// again in full.
pub fn sync_mark(dir: &Path) -> PathBuf {
    dir.join("sync-in-progress")
}

/// Fsyncs directory `dir` (a file created or removed in it is durable).
pub fn sync_dir(dir: &Path) -> Result<(), EngineError> {
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(|e| EngineError::Io(dir.display().to_string(), e))
}

/// Empties `dir`'s engines if a full sync was under way when the server
/// stopped (`sync_mark`).
pub fn discard_unfinished_sync(dir: &Path) -> Result<(), EngineError> {
    let mark = sync_mark(dir);
    if !mark.exists() {
        return Ok(());
    }
    tracing::warn!("a full sync from the master did not finish before the server stopped: starting empty");
    for part in [rocks_dir(dir), log_dir(dir), checkpoint_dir(dir)] {
        match std::fs::remove_dir_all(&part) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(EngineError::Io(part.display().to_string(), e));
            }
            _ => {}
        }
    }
    sync_dir(dir)?;
    std::fs::remove_file(&mark).map_err(|e| EngineError::Io(mark.display().to_string(), e))?;
    sync_dir(dir)
}

/// What recovery found and did (INFO, metrics, the startup log line).
#[derive(Debug, Clone, Default)]
pub struct RecoveryReport {
    /// The sequence RocksDB's flushed files held.
    pub rocks_seq: u64,
    /// The checkpoint loaded (None: memory engines started empty).
    pub checkpoint: Option<PathBuf>,
    pub checkpoint_seq: u64,
    /// Records read from the log and applied to at least one engine, their
    /// bytes, and the time their replay took.
    pub records_replayed: u64,
    pub replayed_bytes: u64,
    pub replay_elapsed: Duration,
    /// The last sequence in the log: the next record gets this plus one.
    pub last_seq: u64,
    /// Bytes cut off a torn last record.
    pub torn_tail: Option<(PathBuf, u64)>,
    pub elapsed: Duration,
}

/// The recovered engines.
pub struct Recovered {
    pub engine: RocksEngine,
    pub shards: Vec<MemShard>,
    pub report: RecoveryReport,
}

/// Loads the newest checkpoint that reads back whole, in the shards it
/// was written with. A damaged one is skipped with a warning: the previous
/// one plus a longer replay gives the same state (the log is kept for it).
fn load_checkpoint(dir: &Path) -> (Option<PathBuf>, Vec<MemShard>, Vec<u64>) {
    for (_, path) in list_checkpoints(dir) {
        match read_checkpoint(&path) {
            Ok(images) => {
                let seqs = images.iter().map(|i| i.seq).collect();
                let shards = images.into_iter().map(|i| i.shard).collect();
                return (Some(path), shards, seqs);
            }
            Err(e) => tracing::warn!("skipping checkpoint: {e}"),
        }
    }
    (None, (0..SHARDS).map(|_| MemShard::default()).collect(), vec![0; SHARDS])
}

pub fn recover(
    dir: &Path,
    config: &RocksConfig,
    progress: &LoadingProgress,
    delay_per_record: Duration,
) -> Result<Recovered, EngineError> {
    let started = Instant::now();
    let file_size = |path: &Path| std::fs::metadata(path).map_or(0, |m| m.len());
    let log_bytes: u64 = list_segments(&log_dir(dir))?.iter().map(|s| file_size(&s.path)).sum();
    let newest_checkpoint = list_checkpoints(&checkpoint_dir(dir)).first().map_or(0, |(_, path)| file_size(path));
    progress.total_bytes.store(log_bytes + newest_checkpoint, Ordering::Relaxed);
    // RocksDB opens while the checkpoint loads: neither needs the other.
    let (engine, opened_ms, (checkpoint, mut shards, shard_seqs), checkpoint_ms) = std::thread::scope(|scope| {
        let loading = scope.spawn(|| {
            let loaded = load_checkpoint(&checkpoint_dir(dir));
            (loaded, started.elapsed().as_millis() as u64)
        });
        let engine = RocksEngine::open(&rocks_dir(dir), config);
        let opened_ms = started.elapsed().as_millis() as u64;
        let (loaded, loaded_ms) = loading.join().expect("checkpoint loader panicked");
        (engine, opened_ms, loaded, loaded_ms)
    });
    let engine = engine?;
    let rocks_seq = engine.applied_seq()?;
    progress.loaded_bytes.fetch_add(checkpoint.as_deref().map_or(0, file_size), Ordering::Relaxed);
    let checkpoint_seq = shard_seqs.iter().copied().min().unwrap_or(0);
    let from = rocks_seq.min(checkpoint_seq);
    // The last segment is made durable before its records are replayed
    // into RocksDB, which may flush them: RocksDB must never hold what a
    // power loss could take from the log. (It also stays the last segment
    // no longer: new records go to a new one.)
    if let Some(last) = list_segments(&log_dir(dir))?.last() {
        std::fs::File::open(&last.path)
            .and_then(|f| f.sync_all())
            .map_err(|e| EngineError::Io(last.path.display().to_string(), e))?;
    }
    let mut replayed = 0u64;
    let mut replayed_bytes = 0u64;
    let replay_started = Instant::now();
    let mut replay = Replay::new(&engine, rocks_seq, &mut shards, &shard_seqs);
    let end = read_log(&log_dir(dir), from, |record| {
        replay.apply(&record)?;
        replayed += 1;
        replayed_bytes += record.size as u64;
        progress.loaded_bytes.fetch_add(record.size as u64, Ordering::Relaxed);
        if !delay_per_record.is_zero() {
            std::thread::sleep(delay_per_record);
        }
        Ok::<(), EngineError>(())
    })?;
    replay.finish()?;
    let replay_elapsed = replay_started.elapsed();
    // Replay ran in the checkpoint's shards, each from its own sequence.
    if shards.len() != SHARDS {
        shards = reshard(shards);
    }
    let newest_engine = rocks_seq.max(shard_seqs.iter().copied().max().unwrap_or(0));
    if end.last_seq < newest_engine {
        return Err(EngineError::Unrecoverable(format!(
            "the log ends at sequence {} but an engine already holds sequence {newest_engine}: records are \
             missing from the log, so the engines cannot be brought to one state",
            end.last_seq
        )));
    }
    if let Some((path, offset)) = &end.torn {
        if end.unused_tail {
            tracing::info!(file = %path.display(), offset, "cutting unused space off the end of the log");
        } else {
            tracing::warn!(file = %path.display(), offset, "cutting a torn record off the end of the log");
        }
        cut_torn_tail(path, *offset)?;
    }
    tracing::info!(
        rocksdb_open_ms = opened_ms,
        checkpoint_ms,
        replay_ms = replay_elapsed.as_millis() as u64,
        "recovery phases"
    );
    let report = RecoveryReport {
        rocks_seq,
        checkpoint,
        checkpoint_seq,
        records_replayed: replayed,
        replayed_bytes,
        replay_elapsed,
        last_seq: end.last_seq,
        torn_tail: end.torn.filter(|_| !end.unused_tail),
        elapsed: started.elapsed(),
    };
    Ok(Recovered { engine, shards, report })
}

#[cfg(test)]
mod tests {
    use bytes::{Bytes, BytesMut};

    use crate::client::Client;
    use crate::protocol::ReplyEncoder;
    use crate::server::Server;

    /// Runs a command; its reply as RESP2 text.
    fn run(server: &Server, client: &mut Client, args: &[&str]) -> String {
        let argv: Vec<Bytes> = args.iter().map(|a| Bytes::copy_from_slice(a.as_bytes())).collect();
        let reply = crate::commands::dispatch(server, client, &argv);
        let mut out = BytesMut::new();
        ReplyEncoder { resp3: false }.encode(&reply, &mut out);
        String::from_utf8_lossy(&out).into_owned()
    }

    /// A deleted hash keeps its fields in RocksDB until compaction; after a
    /// restart the clock reads what it read when the hash was made (it was
    /// set back). A new hash of that name must show none of the old fields.
    #[test]
    fn a_hash_made_after_a_restart_with_the_clock_set_back_shows_no_old_field() {
        let dir = tempfile::tempdir().unwrap();
        strata_engines::clock::pin_for_tests(strata_engines::now_ms());
        let (server, mut client) = Server::open_in_process(dir.path()).unwrap();
        assert_eq!(run(&server, &mut client, &["HSET", "h", "old", "1"]), ":1\r\n");
        assert_eq!(run(&server, &mut client, &["DEL", "h"]), ":1\r\n");
        let log = &server.keyspace.log;
        log.write_through(log.last_seq()).unwrap();
        drop((server, client));
        let (server, mut client) = Server::open_in_process(dir.path()).unwrap();
        assert_eq!(run(&server, &mut client, &["HSET", "h", "new", "2"]), ":1\r\n");
        assert_eq!(run(&server, &mut client, &["HGETALL", "h"]), "*2\r\n$3\r\nnew\r\n$1\r\n2\r\n");
        assert_eq!(run(&server, &mut client, &["HLEN", "h"]), ":1\r\n");
        strata_engines::clock::pin_for_tests(0);
    }
}
