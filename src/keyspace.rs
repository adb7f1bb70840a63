//! The keyspace router: which engine holds a key, type checks across
//! engines, expiry, and the shard locks that make a command atomic.
//!
//! The command path names a command's keys; `Keyspace::transact` locks their shards
//! in a fixed order (no deadlock between multi-key commands), gives the
//! handler a `Tx` over the store, and commits the handler's writes as one
//! batch. Memory engines (lists, sets, sorted sets, streams) join here: a key
//! has one type in the whole server, and `Tx::meta` is where that is decided.

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use crossbeam_utils::CachePadded;
use parking_lot::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use smallvec::{smallvec, SmallVec};
use strata_cluster::key_slot;
use strata_engines::encoding::{decode_meta_key, decode_sub_key};
use strata_engines::keyspace::{Commit, KeyMeta, KeyRef, Sealed, ServerKey, Store, Txn};
use strata_engines::log::{Archiver, FsyncPolicy, Log, LogError, LogRecord};
use strata_engines::memory::cut::KeptBytes;
use strata_engines::memory::{
    shard_of, shard_of_slot, DbMut, ListOp, MemDb, MemEntry, MemOp, MemRecord, MemShard, MemValue, StreamOp, Undo,
    ZSetOp, SHARDS,
};
use strata_engines::rocks::BatchWrite;
use strata_engines::slots::data_key_slot;
use strata_engines::writeset::WriteSet;
use strata_engines::{Cf, DurabilityMetrics, EngineError, KeyType, RocksConfig};

use crate::blocking::Blocking;
use crate::checkpoint_interval::{interval, Costs, Reason, ASSUMED_REPLAY_BYTES_PER_SEC};
use crate::commands::multi::Watches;
use crate::error::CmdError;
use crate::loading::LoadingProgress;
use crate::notify::{self, KeyEvent};
use crate::pubsub::PubSub;
use crate::recovery::{self, RecoveryReport};

/// The wait before trying a failed checkpoint again, doubled at each
/// failure in a row up to the last.
const CHECKPOINT_RETRY_FIRST_MS: u64 = 1000;
const CHECKPOINT_RETRY_LAST_MS: u64 = 60_000;

thread_local! {
    /// A thread's buffer for memory records encoded outside the append
    /// lock (`Keyspace::commit_encoded`).
    static ENCODING: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
    /// The sequence of the last record committed on this thread.
    static LAST_COMMIT: Cell<u64> = const { Cell::new(0) };
}

/// Memory records, encoded for the log (`encode_records`): the thread's
/// buffer, taken only when there are records (string and hash commands
/// have none).
fn encode_records(records: &[MemRecord]) -> Vec<u8> {
    if records.is_empty() {
        return Vec::new();
    }
    let mut buf = ENCODING.take();
    strata_engines::memory::codec::encode_records(records, &mut buf);
    buf
}

/// What `encode_records` made of no records.
const NO_RECORDS: &[u8] = &[0];

fn put_back_encoding_buffer(mut buf: Vec<u8>) {
    if buf.capacity() == 0 {
        return;
    }
    buf.clear();
    // A huge transaction's buffer is not kept for the small ones after.
    if buf.capacity() <= 1 << 20 {
        ENCODING.set(buf);
    }
}

/// The sequence of the last record committed on this thread: a
/// connection reads it before and after a command to learn whether the
/// command wrote, and what its reply must wait for (`connection::flush`).
pub fn last_commit_on_thread() -> u64 {
    LAST_COMMIT.get()
}

/// When the background work of `Keyspace::maintain` kicks in.
#[derive(Clone, Debug)]
pub struct DurabilityConfig {
    pub fsync: FsyncPolicy,
    /// Start a new log segment past this size.
    pub segment_bytes: u64,
    /// Write a memory checkpoint once the log has grown this much since
    /// the last one (restart replays at most about this much).
    pub checkpoint_log_bytes: u64,
    /// Sleep per record replayed at startup (`key-load-delay`, tests only).
    pub replay_delay: std::time::Duration,
    /// `checkpoint-mtbf-hours`, `checkpoint-min-interval` and
    /// `checkpoint-max-interval` (seconds): see `checkpoint_interval`.
    pub checkpoint_mtbf_secs: u64,
    pub checkpoint_min_secs: u64,
    pub checkpoint_max_secs: u64,
    /// `log-max-size`: past this many bytes of log on disk (it cannot be
    /// truncated while checkpoints or RocksDB flushes fail), write
    /// commands are refused; 0 for no limit.
    pub log_max_bytes: u64,
    /// `log-archive-repo` (None: archiving off) and `log-archive-timeout`.
    pub archive_repo: Option<PathBuf>,
    pub archive_timeout: std::time::Duration,
}

impl Default for DurabilityConfig {
    fn default() -> Self {
        DurabilityConfig {
            fsync: FsyncPolicy::EverySec,
            segment_bytes: 64 << 20,
            checkpoint_log_bytes: 256 << 20,
            checkpoint_mtbf_secs: 24 * 3600,
            checkpoint_min_secs: 60,
            checkpoint_max_secs: 3600,
            replay_delay: std::time::Duration::ZERO,
            log_max_bytes: 0,
            archive_repo: None,
            archive_timeout: std::time::Duration::ZERO,
        }
    }
}

/// The server's keyspace across engines.
pub struct Keyspace {
    pub store: Store,
    /// Lock shards; each holds the memory engines' keys of its slots. On
    /// cache lines of their own: neighbours would bounce between cores.
    shards: Vec<CachePadded<RwLock<MemShard>>>,
    pub expired_keys: AtomicU64,
    /// When set, committed memory records are appended here: replay tests
    /// read them.
    #[cfg(test)]
    pub record_tap: parking_lot::Mutex<Option<Vec<MemRecord>>>,
    /// Clients blocked on keys (BLPOP ...); writes that add data signal it.
    pub blocking: Blocking,
    /// The write-ahead log every commit goes through.
    pub log: Arc<Log>,
    /// Copies its closed segments into a backup repository.
    pub archiver: Arc<Archiver>,
    pub durability: Durability,
    dir: PathBuf,
    config: DurabilityConfig,
    /// Held by each memtable switch, and by a snapshot while it cuts its
    /// RocksDB part (`with_memtable_switches_held`).
    switches: parking_lot::Mutex<()>,
    /// RocksDB's memtables are switched (flushed) once they hold this much.
    memtable_bytes: u64,
    /// What startup recovery found and did.
    pub recovery: RecoveryReport,
    /// WATCHed keys; every committed change to one marks its watchers.
    pub watches: Watches,
    /// `notify-keyspace-events` (CONFIG SET changes it), and where events
    /// are published (the server's pub/sub, attached once it exists).
    pub notify_flags: AtomicU32,
    pubsub: OnceLock<Arc<PubSub>>,
    /// This node is a replica: its data changes only by its master's
    /// records (`apply_replicated`); keys expire when the master deletes
    /// them, and what a read finds expired is not deleted here.
    pub following_master: AtomicBool,
}

/// Where each engine's durable state stands, for truncation, INFO and
/// metrics.
#[derive(Default)]
pub struct Durability {
    /// RocksDB's flushed files hold everything up to here.
    pub rocks_flushed_seq: AtomicU64,
    /// Memtables switched at this sequence are being flushed.
    rocks_switch_seq: AtomicU64,
    /// The oldest shard sequence of the newest checkpoint.
    pub checkpoint_seq: AtomicU64,
    pub checkpoint_in_progress: AtomicBool,
    pub last_checkpoint_ms: AtomicU64,
    pub last_checkpoint_unix: AtomicU64,
    pub checkpoint_failed: AtomicBool,
    /// Log bytes written when the last checkpoint started, and when (unix
    /// ms; the start of the server before the first).
    log_bytes_at_checkpoint: AtomicU64,
    pub checkpoint_started_unix_ms: AtomicU64,
    /// Bytes the checkpoint's cut in progress keeps beyond the live data
    /// (what writers changed during it), and what the last one kept.
    cut_kept_bytes: KeptBytes,
    pub last_cut_kept_bytes: AtomicU64,
    /// Log bytes written between the two checkpoints before, and the
    /// milliseconds between them: the write rate is measured over both
    /// windows, so it does not drop to nothing as a checkpoint starts.
    previous_window_bytes: AtomicU64,
    previous_window_ms: AtomicU64,
    /// Log bytes a restart replayed per second (0: too little was replayed
    /// to tell; `checkpoint_interval` assumes a speed).
    replay_bytes_per_sec: AtomicU64,
    /// What `checkpoint_interval` is computed from (CONFIG SET changes
    /// them).
    pub checkpoint_mtbf_secs: AtomicU64,
    pub checkpoint_min_secs: AtomicU64,
    pub checkpoint_max_secs: AtomicU64,
    /// Checkpoints failed in a row, and when the next try is due (each
    /// failure doubles the wait, up to `CHECKPOINT_RETRY_LAST`).
    checkpoint_failures_in_row: AtomicU64,
    checkpoint_retry_at_ms: AtomicU64,
    /// When the cron last retried a stopped log (once a second, as Redis
    /// retries a failed AOF write).
    log_retried_ms: AtomicU64,
    /// `log-max-size` (CONFIG SET changes it), and whether the log has
    /// reached it: write commands are refused until it is truncated.
    pub log_max_bytes: AtomicU64,
    log_full: AtomicBool,
    /// `repl-backlog-size`: the newest bytes of log kept for replicas'
    /// partial resyncs, whatever the engines hold, once replication is
    /// active (a replica attached, or this node replicates: as Redis
    /// creates its backlog).
    pub repl_backlog_bytes: AtomicU64,
    pub repl_backlog_active: AtomicBool,
    /// When the cron last warned that the log is half way to the limit.
    log_warned_ms: AtomicU64,
    /// RocksDB batch bytes applied since the last memtable switch: what the
    /// active memtables hold. (RocksDB's own size property counts arena
    /// blocks and memtable bloom filters allocated up front, megabytes
    /// before the first key.)
    rocks_bytes_unswitched: AtomicU64,
    /// The last sequence the cron saw, and when it changed: writes have
    /// paused once it stays put.
    seen_seq: AtomicU64,
    seen_changed_ms: AtomicU64,
    /// Log bytes written when the last SAVE (or quiet save) started.
    log_bytes_at_save: AtomicU64,
    pub save_in_progress: AtomicBool,
    /// RocksDB's compactions, off while recovering, are on again (the
    /// first cron turns them on: each column family's option change writes
    /// an options file, time better spent after the port answers).
    compactions_enabled: AtomicBool,
}

impl Keyspace {
    /// Opens the data directory `dir`: recovers every engine (see
    /// `recovery`), then starts a new log segment after the last record.
    pub fn open(
        dir: &Path,
        rocks: &RocksConfig,
        databases: usize,
        config: DurabilityConfig,
        metrics: Arc<DurabilityMetrics>,
        progress: &LoadingProgress,
    ) -> Result<Keyspace, EngineError> {
        recovery::discard_unfinished_sync(dir)?;
        let recovered = recovery::recover(dir, rocks, progress, config.replay_delay)?;
        let report = recovered.report;
        let log = Log::open(
            &recovery::log_dir(dir),
            report.last_seq + 1,
            config.fsync,
            config.segment_bytes,
            metrics.clone(),
        )?;
        let archiver = Archiver::start(log.clone(), config.archive_repo.clone(), config.archive_timeout)?;
        metrics.recovery_seconds.set(report.elapsed.as_secs_f64());
        metrics.recovery_records.inc_by(report.records_replayed);
        let durability = Durability::default();
        durability.rocks_flushed_seq.store(report.rocks_seq, Ordering::Relaxed);
        durability.checkpoint_seq.store(report.checkpoint_seq, Ordering::Relaxed);
        durability.log_max_bytes.store(config.log_max_bytes, Ordering::Relaxed);
        durability.checkpoint_started_unix_ms.store(strata_engines::now_ms(), Ordering::Relaxed);
        durability.checkpoint_mtbf_secs.store(config.checkpoint_mtbf_secs, Ordering::Relaxed);
        durability.checkpoint_min_secs.store(config.checkpoint_min_secs, Ordering::Relaxed);
        durability.checkpoint_max_secs.store(config.checkpoint_max_secs, Ordering::Relaxed);
        // A speed measured on a megabyte or more; less is mostly start-up.
        if report.replayed_bytes >= 1 << 20 {
            let speed = report.replayed_bytes as f64 / report.replay_elapsed.as_secs_f64().max(1e-3);
            durability.replay_bytes_per_sec.store(speed as u64, Ordering::Relaxed);
        }
        tracing::info!(
            records = report.records_replayed,
            last_seq = report.last_seq,
            checkpoint = ?report.checkpoint,
            ms = report.elapsed.as_millis() as u64,
            "recovered"
        );
        Ok(Keyspace {
            store: Store::new(recovered.engine, databases)?,
            shards: recovered.shards.into_iter().map(|shard| CachePadded::new(RwLock::new(shard))).collect(),
            expired_keys: AtomicU64::new(0),
            #[cfg(test)]
            record_tap: parking_lot::Mutex::new(None),
            blocking: Blocking::default(),
            log,
            archiver,
            durability,
            dir: dir.to_path_buf(),
            config,
            switches: parking_lot::Mutex::new(()),
            memtable_bytes: rocks.write_buffer_bytes as u64,
            recovery: report,
            watches: Watches::default(),
            notify_flags: AtomicU32::new(0),
            pubsub: OnceLock::new(),
            following_master: AtomicBool::new(false),
        })
    }

    pub fn databases(&self) -> usize {
        self.store.databases()
    }

    /// Where keyspace events are published.
    pub fn attach_pubsub(&self, pubsub: Arc<PubSub>) {
        let _ = self.pubsub.set(pubsub);
    }

    /// Publishes committed events (and read misses) as `notify-keyspace-events` asks.
    pub fn publish_events(&self, events: &[KeyEvent]) {
        if let (false, Some(pubsub)) = (events.is_empty(), self.pubsub.get()) {
            notify::publish(pubsub, self.notify_flags.load(Ordering::Relaxed), events);
        }
    }

    fn lock_keys(&self, keys: &[&[u8]], shared: bool) -> LockedShards<'_> {
        let lock = |s: usize| match shared {
            true => ShardGuard::Shared(strata_engines::spin::read(&self.shards[s])),
            false => ShardGuard::Exclusive(strata_engines::spin::write(&self.shards[s])),
        };
        // Most commands name one key: no list of shards to sort.
        if let [key] = keys {
            let shard = shard_of(key);
            return smallvec![(shard, lock(shard))];
        }
        let mut shards: SmallVec<[usize; 8]> = keys.iter().map(|k| shard_of(k)).collect();
        shards.sort_unstable();
        shards.dedup();
        shards.into_iter().map(|s| (s, lock(s))).collect()
    }

    fn lock_all(&self) -> LockedShards<'_> {
        self.shards.iter().enumerate().map(|(i, s)| (i, ShardGuard::Exclusive(s.write()))).collect()
    }

    /// Runs one command (or a whole EXEC) as one transaction: locks the
    /// shards `locking` names, gives `body` a `Tx`, then commits its writes
    /// atomically as one log record. A `body` that fails or panics leaves no
    /// effect (its memory effects are taken back, its RocksDB writes never
    /// applied); a panic goes on unwinding to the caller.
    pub fn transact<R>(
        &self,
        db: usize,
        locking: Locking,
        mut body: impl FnMut(&mut Tx) -> Result<R, CmdError>,
    ) -> Result<R, CmdError> {
        match locking {
            Locking::Keys { keys, shared: true } => {
                // Shared with other readers: clients reading one hot key from
                // several connection threads (`io-threads`) are served at
                // once. Should `body` find something to write after all (a
                // key to expire lazily), it runs again with the shards its own.
                let mut tx = self.tx(db, self.lock_keys(keys, true));
                let result = body(&mut tx);
                if !tx.wants_write() {
                    return result;
                }
                drop(tx);
                self.run_locked(db, self.lock_keys(keys, false), body)
            }
            Locking::Keys { keys, shared: false } => self.run_locked(db, self.lock_keys(keys, false), body),
            Locking::All => self.run_locked(db, self.lock_all(), body),
            Locking::Walk => {
                // Lazy expiry found without the key's lock is not written
                // back: another client may be changing the key. Active
                // expiry deletes it.
                body(&mut self.tx(db, LockedShards::new()))
            }
        }
    }

    fn tx<'s>(&'s self, db: usize, shards: LockedShards<'s>) -> Tx<'s> {
        Tx {
            txn: self.store.txn(),
            physical: self.store.physical(db),
            db,
            shards,
            records: Vec::new(),
            undos: Vec::new(),
            wants_write: false,
            last_slot: Default::default(),
            all_shards: &self.shards,
            blocking: &self.blocking,
            store: &self.store,
            watches: &self.watches,
            events: Vec::new(),
            notify_flags: self.notify_flags.load(Ordering::Relaxed),
        }
    }

    fn run_locked<'s, R>(
        &'s self,
        db: usize,
        shards: LockedShards<'s>,
        body: impl FnOnce(&mut Tx<'s>) -> Result<R, CmdError>,
    ) -> Result<R, CmdError> {
        let mut tx = self.tx(db, shards);
        let result = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| body(&mut tx))) {
            Ok(result) => result,
            Err(panic) => {
                // Nothing of a command that panicked stays, as for one that
                // failed; the caller answers the client with an error.
                tx.undo_memory();
                drop(tx);
                std::panic::resume_unwind(panic);
            }
        };
        if result.is_err() || self.following_master.load(Ordering::Acquire) {
            // Redis's rule: a failing command changes nothing. Its
            // RocksDB writes are never applied; its memory effects go back.
            // On a replica the only writes a command gets here with are
            // deletions of keys it found expired: the master's come.
            tx.undo_memory();
            if result.is_ok() {
                return result;
            }
        }
        let mut mem = Vec::new();
        let result = result.and_then(|value| match self.encode_for_log(&tx, &mut mem) {
            Ok(()) => Ok(value),
            Err(e) => {
                tx.undo_memory();
                Err(e)
            }
        });
        let Tx { txn, records, shards, events, .. } = tx;
        let expired = txn.expired;
        let committed = self.commit_encoded(txn, result.is_ok(), records, &mem);
        put_back_encoding_buffer(mem);
        committed?;
        // Published with the keys still held: a key's events go out in the
        // order of its commits.
        self.publish_events(&events);
        drop(shards);
        if expired > 0 && result.is_ok() {
            self.expired_keys.fetch_add(expired, Ordering::Relaxed);
        }
        result
    }

    /// Encodes a transaction's memory records into `mem` (outside the
    /// append lock) and checks that its record fits in a log frame: one of
    /// 4 GiB or more would corrupt the log, so the transaction is refused
    /// before anything is logged (the caller takes its memory effects back).
    fn encode_for_log(&self, tx: &Tx, mem: &mut Vec<u8>) -> Result<(), CmdError> {
        *mem = encode_records(&tx.records);
        let rocks = tx.txn.encoded_len_bound();
        if strata_engines::log::record_fits(rocks, mem.len()) {
            return Ok(());
        }
        mem.clear();
        Err(CmdError::err(format!(
            "the transaction's log record would take {} bytes, more than a log record holds (4 GiB); nothing was \
             applied",
            rocks + mem.len()
        )))
    }

    /// `commit_encoded`, encoding the records here (background work:
    /// expiry).
    fn commit(&self, txn: Txn, apply_rocks: bool, records: Vec<MemRecord>) -> Result<(), EngineError> {
        let mem = encode_records(&records);
        let committed = self.commit_encoded(txn, apply_rocks, records, &mem);
        put_back_encoding_buffer(mem);
        committed
    }

    /// The one place writes become real: under the log's append lock the
    /// RocksDB batch (`txn`'s writes, when `apply_rocks`) is applied and
    /// the record appended (`mem`: `records` encoded, empty for none), so sequence order
    /// is RocksDB's order; then the watchers of the changed keys are
    /// marked. The caller still holds the shards the writes touched.
    /// Durability comes later, per batch of requests (`make_durable`).
    fn commit_encoded(
        &self,
        txn: Txn,
        apply_rocks: bool,
        records: Vec<MemRecord>,
        mem: &[u8],
    ) -> Result<(), EngineError> {
        let changed = self.changed_keys(&txn.ws, &records);
        let rocks = Some(txn.finish()).filter(|c| apply_rocks && !c.is_empty());
        if rocks.is_some() || !records.is_empty() {
            let mut log = self.log.lock();
            let sealed = rocks.map(Commit::seal);
            let data = sealed.as_ref().map_or(&[][..], Sealed::data);
            let seq = log.push_encoded(data, if mem.is_empty() { NO_RECORDS } else { mem });
            self.durability.rocks_bytes_unswitched.fetch_add(data.len() as u64, Ordering::Relaxed);
            drop(log);
            LAST_COMMIT.set(seq);
            // RocksDB's memtable insert is most of a write's cost: outside
            // the append lock, two threads make theirs at once. The record
            // is in the log: whatever RocksDB does, the write happened.
            if let Some(sealed) = sealed {
                sealed.write();
            }
            #[cfg(test)]
            if let Some(tap) = self.record_tap.lock().as_mut() {
                tap.extend(records);
            }
        }
        self.touch_watched(changed);
        Ok(())
    }

    /// Applies a record of this node's master as the master committed it
    /// (a replica's stream): appended to the log at the master's sequence,
    /// so both logs hold the same records at the same sequences, and its
    /// RocksDB writes and memory effects applied with the shards of the
    /// keys it touches locked. Watchers and blocked clients hear of it as
    /// of a local write.
    pub fn apply_replicated(&self, record: &LogRecord) -> Result<(), EngineError> {
        let engine = &self.store.engine;
        let writes = engine.writes_of(&record.rocks)?;
        let mut everything = record.mem.iter().any(|m| matches!(m, MemRecord::Flush { .. }));
        let mut shards: SmallVec<[usize; 8]> = SmallVec::new();
        for write in &writes {
            match write {
                BatchWrite::Put { cf, key, .. } | BatchWrite::Delete { cf, key } => {
                    if let Some((_, slot)) = data_key_slot(*cf, key) {
                        shards.push(shard_of_slot(slot));
                    } else if matches!(ServerKey::of(key), Some(ServerKey::DbMap)) {
                        everything = true;
                    }
                }
                BatchWrite::DeleteRange { .. } => everything = true,
            }
        }
        for mem in &record.mem {
            if let MemRecord::Op { op, .. } = mem {
                shards.push(shard_of(op.key()));
            }
        }
        let mut locked = match everything {
            true => self.lock_all(),
            false => {
                shards.sort_unstable();
                shards.dedup();
                shards
                    .into_iter()
                    .map(|s| (s, ShardGuard::Exclusive(strata_engines::spin::write(&self.shards[s]))))
                    .collect()
            }
        };
        let batch = engine.batch_of(&writes);
        {
            let mut log = self.log.lock();
            if log.next_seq() != record.seq {
                return Err(EngineError::Corrupt(format!(
                    "the master sent record {} where this log expects {}",
                    record.seq,
                    log.next_seq()
                )));
            }
            log.push_encoded(batch.data(), &record.mem_encoded);
            self.durability.rocks_bytes_unswitched.fetch_add(batch.data().len() as u64, Ordering::Relaxed);
            engine.begin_write();
        }
        if !batch.is_empty() {
            engine.write(batch);
        }
        engine.end_write();
        self.store.follow(&writes);
        let mut changed: Vec<(u32, Bytes)> = Vec::new();
        for mem in &record.mem {
            match mem {
                MemRecord::Op { db, op } => {
                    let shard = shard_of(op.key());
                    let (_, guard) = locked.iter_mut().find(|(s, _)| *s == shard).expect("locked above");
                    guard.exclusive().db(*db).apply(op);
                    if let Some(logical) = self.store.logical(*db) {
                        self.blocking.signal(logical, op.key());
                    }
                    changed.push((*db, op.key().clone()));
                }
                MemRecord::Flush { db } => {
                    for (_, guard) in locked.iter_mut() {
                        guard.exclusive().flush(*db);
                    }
                }
                MemRecord::Publish { shard, channel, message } => {
                    if let Some(pubsub) = self.pubsub.get() {
                        match shard {
                            true => pubsub.spublish(channel, message),
                            false => pubsub.publish(channel, message),
                        };
                    }
                }
            }
        }
        for write in &writes {
            if let BatchWrite::Put { cf: Cf::Meta, key, .. } | BatchWrite::Delete { cf: Cf::Meta, key } = write {
                if let Some((db, _, key)) = decode_meta_key(key) {
                    changed.push((db, Bytes::copy_from_slice(key)));
                }
            }
        }
        self.touch_watched(changed);
        drop(locked);
        Ok(())
    }

    /// Puts a published message in the log, for the replicas' subscribers
    /// (`MemRecord::Publish`).
    pub fn log_publish(&self, shard: bool, channel: &Bytes, message: &Bytes) -> Result<(), EngineError> {
        let record = MemRecord::Publish { shard, channel: channel.clone(), message: message.clone() };
        self.commit(self.store.txn(), false, vec![record])
    }

    /// Makes this node's data what the data directory `synced` holds (a
    /// full sync's snapshot, written there by the replica's link):
    /// recovered there as at startup, then moved into the live engines,
    /// and the log started over after the snapshot's sequence. Commands
    /// wait meanwhile (every shard is locked). A crash before the new
    /// state is durable leaves a mark that makes the next start begin
    /// empty (`recovery::SYNC_MARK`): never a mix of old and new.
    pub fn load_synced(&self, synced: &Path, progress: &LoadingProgress) -> Result<u64, EngineError> {
        // The slow parts run before anything is locked: recovery, and
        // RocksDB's data written out as table files to take in.
        let recovered = recovery::recover(synced, &RocksConfig::default(), progress, Duration::ZERO)?;
        let seq = recovered.report.last_seq;
        let tables = recovered.engine.export_tables(&synced.join("tables"))?;
        let mark = recovery::sync_mark(&self.dir);
        std::fs::write(&mark, b"").map_err(|e| EngineError::Io(mark.display().to_string(), e))?;
        recovery::sync_dir(&self.dir)?;
        // No checkpoint may cut the shards while they are replaced.
        let d = &self.durability;
        self.claim_checkpointing();
        let replaced = (|| {
            let mut locked = self.lock_all();
            self.store.engine.replace_contents(&tables)?;
            if let Some(error) = strata_engines::faults::injected_error("repl-sync-load") {
                return Err(EngineError::Io("loading a full sync".into(), error));
            }
            self.store.reload()?;
            for ((_, guard), shard) in locked.iter_mut().zip(recovered.shards) {
                *guard.exclusive() = shard;
            }
            self.log.restart_after(seq)?;
            // The old checkpoints hold the old data, some at later sequences.
            let checkpoints = recovery::checkpoint_dir(&self.dir);
            for (_, old) in strata_engines::memory::checkpoint::list_checkpoints(&checkpoints) {
                std::fs::remove_file(&old).map_err(|e| EngineError::Io(old.display().to_string(), e))?;
            }
            for position in [&d.rocks_flushed_seq, &d.rocks_switch_seq, &d.checkpoint_seq] {
                position.store(0, Ordering::Relaxed);
            }
            Ok::<(), EngineError>(())
        })();
        d.checkpoint_in_progress.store(false, Ordering::Release);
        replaced?;
        drop(recovered.engine);
        self.save()?;
        std::fs::remove_file(&mark).map_err(|e| EngineError::Io(mark.display().to_string(), e))?;
        Ok(seq)
    }

    /// Makes every record appended so far durable per `appendfsync`
    /// before a connection sends its replies: handed to the OS at once
    /// (one write for everyone's records: group commit), and under
    /// `always` written and fsynced by one of the waiting connections, one
    /// write and one fsync serving every waiting client. Fails at once
    /// while the log is stopped (see `Log`): the connection then refuses
    /// the replies that acknowledge writes (`connection::flush`).
    pub async fn make_durable(&self) -> Result<(), EngineError> {
        let target = self.log.last_seq();
        if self.log.policy() != FsyncPolicy::Always {
            if self.log.written_seq() < target {
                // The other connections ready on this thread run first, and
                // their records join this write: one write(2) for many
                // pipelines, as Redis writes once per event-loop pass (a
                // write per pipeline was an eighth of the CPU under LPUSH).
                tokio::task::yield_now().await;
                self.log.write_through(target)?;
            }
            return Ok(());
        }
        // One waiting connection claims the write and fsync for everyone
        // and yields first: this thread's other ready connections add
        // their records (a yielded task resumes once its thread has
        // nothing else to run, as Redis fsyncs before its event loop
        // sleeps). The others wait without yielding, so the fsync that
        // covers them wakes them at once and their replies go out before
        // the next requests are read, as Redis writes its replies after
        // the fsync. The first left uncovered leads the next round.
        while self.log.synced_seq() < target {
            if let Some(reason) = self.log.failure() {
                return Err(LogError::Stopped(reason).into());
            }
            match self.log.claim_lead() {
                Some(lead) => {
                    tokio::task::yield_now().await;
                    lead.sync()?;
                }
                None => {
                    let mut waited = false;
                    std::future::poll_fn(|cx| match std::mem::replace(&mut waited, true) {
                        false => self.log.wait_turn(target, cx),
                        true => Poll::Ready(()),
                    })
                    .await
                }
            }
        }
        Ok(())
    }

    /// The last sequence a reply may acknowledge under `appendfsync`:
    /// fsynced under `always`, handed to the OS otherwise.
    pub fn durable_seq(&self) -> u64 {
        match self.log.policy() {
            FsyncPolicy::Always => self.log.synced_seq(),
            _ => self.log.written_seq(),
        }
    }

    /// Why write commands are refused now, if they are: Redis's MISCONF
    /// reply. The log stopped after a failed write or fsync (Redis's own
    /// text, quoting the error), RocksDB refuses writes, or the log
    /// reached `log-max-size`. Reads, and PING, are served meanwhile.
    #[inline]
    pub fn write_refusal(&self) -> Option<String> {
        // Asked before every command: three loads when all is well.
        let failing = self.log.is_stopped() || self.store.engine.write_failed();
        if !failing && !self.durability.log_full.load(Ordering::Relaxed) {
            return None;
        }
        self.refusal_text()
    }

    #[cold]
    fn refusal_text(&self) -> Option<String> {
        if let Some(reason) = self.log.failure() {
            return Some(format!("MISCONF Errors writing to the AOF file: {reason}"));
        }
        if let Some(reason) = self.store.engine.write_failure() {
            // Not "the AOF file": an operator looks at RocksDB's
            // directory and its LOG, where the cause is.
            return Some(format!("MISCONF Errors writing to RocksDB: {reason}"));
        }
        if self.durability.log_full.load(Ordering::Relaxed) {
            return Some(
                "MISCONF The log has reached log-max-size: it is truncated only after a checkpoint and a RocksDB \
                 flush succeed. Commands that may modify the data set are disabled. Please check the Strata logs \
                 for details about the error."
                    .into(),
            );
        }
        None
    }

    /// Background durability work, run by the cron: retries a stopped
    /// log once a second, switches RocksDB's memtables once they hold
    /// `write_buffer_bytes` or a write waits for room (behind a log
    /// barrier, so RocksDB is never durable ahead of the log), notes
    /// finished flushes, deletes log segments both engines hold, and
    /// watches the log's size.
    pub fn maintain(&self) -> Result<(), EngineError> {
        let engine = &self.store.engine;
        let d = &self.durability;
        if !d.compactions_enabled.swap(true, Ordering::Relaxed) {
            engine.enable_compactions()?;
        }
        let now = strata_engines::now_ms();
        if self.log.failure().is_some() && now >= d.log_retried_ms.load(Ordering::Relaxed) + 1000 {
            d.log_retried_ms.store(now, Ordering::Relaxed);
            // A failure was logged when it stopped the log.
            let _ = self.log.retry();
        }
        let last = self.log.last_seq();
        if d.seen_seq.swap(last, Ordering::Relaxed) != last {
            d.seen_changed_ms.store(now, Ordering::Relaxed);
        }
        let switched = d.rocks_switch_seq.load(Ordering::Relaxed);
        if switched > d.rocks_flushed_seq.load(Ordering::Relaxed) && !engine.flush_pending() {
            d.rocks_flushed_seq.fetch_max(switched, Ordering::Relaxed);
        }
        let full = d.rocks_bytes_unswitched.load(Ordering::Relaxed) >= self.memtable_bytes && !engine.flush_pending();
        // Neither engine can switch while the log or RocksDB fails; each
        // is retried on its own.
        let healthy = self.log.failure().is_none() && engine.write_failure().is_none();
        if healthy && (full || engine.switch_wanted()) {
            self.switch_memtables()?;
        }
        self.truncate_log()?;
        self.watch_log_size(now);
        Ok(())
    }

    /// Refuses writes once the log reaches `log-max-size` (the cron calls
    /// it), and warns from half way: the log is truncated only below what
    /// a checkpoint and RocksDB's flushed files hold, so failing ones make
    /// it grow until the disk is full.
    fn watch_log_size(&self, now: u64) {
        let d = &self.durability;
        let limit = d.log_max_bytes.load(Ordering::Relaxed);
        let bytes = self.log.disk_bytes();
        let full = limit > 0 && bytes >= limit;
        if full != d.log_full.swap(full, Ordering::Relaxed) {
            match full {
                true => tracing::error!(bytes, limit, "the log has reached log-max-size: write commands are refused"),
                false => {
                    tracing::warn!(bytes, limit, "the log is below log-max-size again: write commands are accepted")
                }
            }
        }
        if limit > 0 && bytes >= limit / 2 && now >= d.log_warned_ms.load(Ordering::Relaxed) + 60_000 {
            d.log_warned_ms.store(now, Ordering::Relaxed);
            tracing::warn!(
                bytes,
                limit,
                checkpoint_failures = d.checkpoint_failures_in_row.load(Ordering::Relaxed),
                "the log is growing towards log-max-size: it is truncated only after a checkpoint and a RocksDB \
                 flush succeed"
            );
        }
    }

    /// Switches RocksDB's memtables behind a log barrier (the log durable
    /// through them first); returns the sequence they hold.
    fn switch_memtables(&self) -> Result<u64, EngineError> {
        let _switching = self.switches.lock();
        // The backlog goes to RocksDB first, with writers going on: under
        // the barrier only what came meanwhile does (unless the memtables
        // have no room for it before the switch).
        self.store.engine.drain_if_idle()?;
        let (seq, switch) = self.log.barrier(|seq| {
            // Appends are held while the switch takes what the memtables
            // will hold: exactly the records up to `seq`. Writing them and
            // switching go on after, with appends going on too.
            self.durability.rocks_bytes_unswitched.store(0, Ordering::Relaxed);
            self.store.switch_memtables(seq)
        })?;
        switch.finish()?;
        self.durability.rocks_switch_seq.fetch_max(seq, Ordering::Relaxed);
        Ok(seq)
    }

    /// Runs `cut` with RocksDB's memtables kept from switching: its flushed
    /// files meanwhile hold nothing after the log's last sequence.
    pub fn with_memtable_switches_held<R>(&self, cut: impl FnOnce() -> R) -> R {
        let _held = self.switches.lock();
        cut()
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.dir
    }

    /// Whether writes have paused for a second after enough of them that a
    /// restart would replay a noticeable tail (a megabyte of log, or an
    /// eighth of the last checkpoint): then the cron runs a SAVE, so that
    /// a restart after a burst replays nothing, at no cost to writers.
    pub fn quiet_save_due(&self) -> bool {
        let d = &self.durability;
        let quiet_ms = strata_engines::now_ms().saturating_sub(d.seen_changed_ms.load(Ordering::Relaxed));
        let grown = self.log.metrics.log_bytes_written.get() - d.log_bytes_at_save.load(Ordering::Relaxed);
        let worth = (self.log.metrics.checkpoint_bytes.get() as u64 / 8).max(1 << 20);
        quiet_ms >= 1000 && grown >= worth && !d.save_in_progress.load(Ordering::Relaxed)
    }

    /// Whether a `save <seconds> <changes>` rule (`rules`: the config's
    /// pairs) is met, as Redis's serverCron checks them: at least
    /// `changes` changes since the last save (`rdb_changes_since_last_save`),
    /// which ended at least `seconds` ago (or the server started, before
    /// the first). After a failed save, not before its retry is due.
    pub fn save_rule_due(&self, rules: &str, started_unix: u64) -> bool {
        let d = &self.durability;
        if d.save_in_progress.load(Ordering::Relaxed) || d.checkpoint_in_progress.load(Ordering::Relaxed) {
            return false;
        }
        if d.checkpoint_failed.load(Ordering::Relaxed)
            && strata_engines::now_ms() < d.checkpoint_retry_at_ms.load(Ordering::Relaxed)
        {
            return false;
        }
        let changes = self.log.last_seq().saturating_sub(d.checkpoint_seq.load(Ordering::Relaxed));
        let last = match d.last_checkpoint_unix.load(Ordering::Relaxed) {
            0 => started_unix,
            at => at,
        };
        let elapsed = (strata_engines::now_ms() / 1000).saturating_sub(last);
        let numbers: Vec<u64> = rules.split_whitespace().filter_map(|n| n.parse().ok()).collect();
        numbers.chunks_exact(2).any(|rule| changes >= rule[1] && elapsed >= rule[0])
    }

    /// The interval between memory checkpoints in force, why, and what it
    /// was computed from (see `checkpoint_interval`): the last
    /// checkpoint's time, the log written per second since it started,
    /// the replay speed the last restart measured.
    pub fn checkpoint_interval(&self) -> (Duration, Reason, Costs) {
        let d = &self.durability;
        let load = |v: &AtomicU64| v.load(Ordering::Relaxed);
        let since_ms = strata_engines::now_ms().saturating_sub(load(&d.checkpoint_started_unix_ms));
        let grown = self.log.metrics.log_bytes_written.get() - load(&d.log_bytes_at_checkpoint);
        let window_ms = (since_ms + load(&d.previous_window_ms)).max(1000);
        let costs = Costs {
            checkpoint_secs: (self.log.metrics.checkpoints.get() > 0).then(|| load(&d.last_checkpoint_ms) as f64 / 1e3),
            log_bytes_per_sec: (grown + load(&d.previous_window_bytes)) as f64 * 1e3 / window_ms as f64,
            replay_bytes_per_sec: match load(&d.replay_bytes_per_sec) {
                0 => ASSUMED_REPLAY_BYTES_PER_SEC,
                measured => measured as f64,
            },
            mtbf_secs: load(&d.checkpoint_mtbf_secs) as f64,
        };
        let (min, max) = (load(&d.checkpoint_min_secs), load(&d.checkpoint_max_secs));
        let (interval, reason) = interval(&costs, Duration::from_secs(min), Duration::from_secs(max));
        (interval, reason, costs)
    }

    /// Whether the replay speed `checkpoint_interval` uses was measured by
    /// a restart (or assumed).
    pub fn replay_speed_measured(&self) -> bool {
        self.durability.replay_bytes_per_sec.load(Ordering::Relaxed) > 0
    }

    /// Whether a new memory checkpoint should be written (the cron starts
    /// it on its own thread): the interval in force has passed with
    /// writes since the last one, or the log has grown enough that a
    /// restart would replay too much; or a failed one is due for another
    /// try.
    pub fn checkpoint_due(&self) -> bool {
        let d = &self.durability;
        if d.checkpoint_failures_in_row.load(Ordering::Relaxed) > 0 {
            let due = strata_engines::now_ms() >= d.checkpoint_retry_at_ms.load(Ordering::Relaxed);
            return due && !d.checkpoint_in_progress.load(Ordering::Relaxed);
        }
        let grown = self.log.metrics.log_bytes_written.get() - d.log_bytes_at_checkpoint.load(Ordering::Relaxed);
        // Writing a checkpoint costs CPU in proportion to the data: once
        // the log since the last one is four times the checkpoint, writers
        // pay at most a quarter byte of checkpoint per byte of log (at 2x
        // a big list under RPUSH spent a quarter of the server's CPU on
        // checkpoints). At least every `checkpoint_log_bytes`, and a pause
        // in writes saves anyway (`quiet_save_due`).
        let worth = (4 * self.log.metrics.checkpoint_bytes.get() as u64).max(16 << 20);
        let since_ms = strata_engines::now_ms().saturating_sub(d.checkpoint_started_unix_ms.load(Ordering::Relaxed));
        let interval_passed = grown > 0 && u128::from(since_ms) >= self.checkpoint_interval().0.as_millis();
        (interval_passed || grown >= worth.min(self.config.checkpoint_log_bytes))
            && !d.checkpoint_in_progress.load(Ordering::Relaxed)
    }

    /// Writes a memory checkpoint of every shard as of one sequence, while
    /// writers go on: a versioned cut (`memory::cut`) begun on all shards
    /// at once, then walked shard by shard a batch per lock. Keeps the
    /// newest two checkpoints. A failed one is tried again after a second,
    /// then after twice as long each time (`checkpoint_due`), up to
    /// `CHECKPOINT_RETRY_LAST`.
    pub fn checkpoint(&self) -> Result<(), EngineError> {
        if self.durability.checkpoint_in_progress.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        self.checkpoint_claimed()
    }

    /// A checkpoint of its own, after the one in progress if there is one
    /// (a SAVE must hold what came before it: the one in progress cut
    /// earlier).
    fn checkpoint_after_any(&self) -> Result<(), EngineError> {
        self.claim_checkpointing();
        self.checkpoint_claimed()
    }

    /// Waits for a running checkpoint to end and marks one in progress:
    /// the caller checkpoints, or keeps checkpoints off the shards, until
    /// it clears `checkpoint_in_progress`.
    fn claim_checkpointing(&self) {
        while self.durability.checkpoint_in_progress.swap(true, Ordering::AcqRel) {
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Writes a checkpoint; the caller has set `checkpoint_in_progress`.
    fn checkpoint_claimed(&self) -> Result<(), EngineError> {
        let d = &self.durability;
        let started = std::time::Instant::now();
        // A panic is a failed checkpoint, reported and retried like one: it
        // must not leave one marked in progress forever.
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.write_checkpoint())).unwrap_or_else(
            |panic| {
                let why = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned());
                Err(EngineError::Io(
                    "memory checkpoint".into(),
                    std::io::Error::other(format!("panicked: {}", why.unwrap_or_default())),
                ))
            },
        );
        d.checkpoint_in_progress.store(false, Ordering::Release);
        d.checkpoint_failed.store(result.is_err(), Ordering::Relaxed);
        let metrics = &self.log.metrics;
        if result.is_err() {
            metrics.checkpoint_failures.inc();
            let failures = d.checkpoint_failures_in_row.fetch_add(1, Ordering::Relaxed) + 1;
            let wait = (CHECKPOINT_RETRY_FIRST_MS << (failures - 1).min(16)).min(CHECKPOINT_RETRY_LAST_MS);
            d.checkpoint_retry_at_ms.store(strata_engines::now_ms() + wait, Ordering::Relaxed);
        } else {
            d.checkpoint_failures_in_row.store(0, Ordering::Relaxed);
        }
        let (seq, bytes) = result?;
        d.checkpoint_seq.fetch_max(seq, Ordering::Relaxed);
        metrics.checkpoints.inc();
        metrics.checkpoint_bytes.set(bytes as f64);
        metrics.checkpoint_seconds.observe(started.elapsed().as_secs_f64());
        d.last_checkpoint_ms.store(started.elapsed().as_millis() as u64, Ordering::Relaxed);
        d.last_checkpoint_unix.store(strata_engines::now_ms() / 1000, Ordering::Relaxed);
        tracing::info!(seq, bytes, ms = started.elapsed().as_millis() as u64, "memory checkpoint written");
        Ok(())
    }

    fn write_checkpoint(&self) -> Result<(u64, u64), EngineError> {
        use strata_engines::memory::checkpoint::{list_checkpoints, CheckpointWriter, ShardBody};
        use strata_engines::memory::cut::PIECE;
        let dir = recovery::checkpoint_dir(&self.dir);
        let d = &self.durability;
        let (written, now) = (self.log.metrics.log_bytes_written.get(), strata_engines::now_ms());
        let previous_start = d.checkpoint_started_unix_ms.swap(now, Ordering::Relaxed);
        d.previous_window_ms.store(now.saturating_sub(previous_start), Ordering::Relaxed);
        d.previous_window_bytes
            .store(written - d.log_bytes_at_checkpoint.swap(written, Ordering::Relaxed), Ordering::Relaxed);
        // The previous checkpoint stays as a fallback should the newest
        // ever read back damaged; older ones go before this one is written,
        // so the disk never holds more than two.
        for (_, old) in list_checkpoints(&dir).into_iter().skip(1) {
            std::fs::remove_file(&old).map_err(|e| EngineError::Io(old.display().to_string(), e))?;
        }
        let mut writer = CheckpointWriter::create(&dir, SHARDS)?;
        d.cut_kept_bytes.store(0, Ordering::Relaxed);
        let cut = Cut::begin(&self.shards, &self.log, &d.cut_kept_bytes);
        let (mut body, mut batch) = (ShardBody::default(), ShardBody::default());
        for shard in &self.shards {
            body.clear();
            loop {
                // Each batch's lock is handed to a waiting command first
                // (the walk taking it straight back would keep that command
                // waiting for the whole shard), and the batch is encoded
                // and added to the shard's body outside the lock (lists
                // and streams are taken as copies that share their chunks;
                // growing a big buffer copies it).
                batch.clear();
                let mut guard = shard.write();
                let done = guard.walk_cut(PIECE, &mut batch);
                RwLockWriteGuard::unlock_fair(guard);
                body.append(&mut batch);
                if done {
                    break;
                }
            }
            writer.shard(cut.seq, &body)?;
        }
        // Effects in the checkpoint must not outlive a crash that loses
        // their log records: make the log durable through them first.
        self.log.write_through(cut.seq)?;
        self.log.sync_now()?;
        let (_, bytes) = writer.finish()?;
        d.last_cut_kept_bytes.store(d.cut_kept_bytes.load(Ordering::Relaxed), Ordering::Relaxed);
        Ok((cut.seq, bytes))
    }

    /// Deletes log segments below what RocksDB's flushed files and every
    /// kept checkpoint hold.
    fn truncate_log(&self) -> Result<(), EngineError> {
        use strata_engines::memory::checkpoint::list_checkpoints;
        let kept = list_checkpoints(&recovery::checkpoint_dir(&self.dir));
        // No checkpoint yet: the memory engines need the whole log.
        let memory = kept.iter().map(|(seq, _)| *seq).min().unwrap_or(0);
        let rocks = self.durability.rocks_flushed_seq.load(Ordering::Relaxed);
        let d = &self.durability;
        let backlog = match d.repl_backlog_active.load(Ordering::Relaxed) {
            true => self.log.keeping_newest(d.repl_backlog_bytes.load(Ordering::Relaxed)),
            false => u64::MAX,
        };
        self.log.truncate_through(memory.min(rocks).min(backlog))?;
        Ok(())
    }

    /// SAVE: RocksDB's memtables flushed and a memory checkpoint written, so
    /// that a restart replays (almost) nothing; then the log is truncated.
    /// Writers keep going meanwhile.
    pub fn save(&self) -> Result<(), EngineError> {
        let d = &self.durability;
        let racing = d.save_in_progress.swap(true, Ordering::AcqRel);
        d.log_bytes_at_save.store(self.log.metrics.log_bytes_written.get(), Ordering::Relaxed);
        let result = self.save_now();
        if !racing {
            d.save_in_progress.store(false, Ordering::Release);
        }
        result
    }

    fn save_now(&self) -> Result<(), EngineError> {
        let engine = &self.store.engine;
        let seq = self.switch_memtables()?;
        // Waiting with RocksDB's own flush call would also flush the new
        // memtable, whose records may not be durable in the log yet.
        while engine.flush_pending() {
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        self.durability.rocks_flushed_seq.fetch_max(seq, Ordering::Relaxed);
        self.checkpoint_after_any()?;
        self.log.rotate()?;
        self.truncate_log()
    }

    /// Clean shutdown: a SAVE at the last sequence, so the next start
    /// replays nothing, then the log closed, whether the SAVE worked or
    /// not (the next start then replays the log).
    pub fn shutdown(&self) -> Result<(), EngineError> {
        let saved = self.save();
        if let Err(e) = &saved {
            tracing::error!(error = %e, "saving at shutdown failed: the log is closed all the same and replayed at the next start");
        }
        self.log.close()?;
        saved
    }

    /// Every memory key of every database (tests compare it with a replay
    /// of the records).
    pub fn memory_image(&self) -> strata_engines::memory::MemImage {
        let mut image = Default::default();
        for shard in &self.shards {
            shard.read().add_to_image(&mut image);
        }
        image.retain(|_, keys: &mut std::collections::BTreeMap<Bytes, MemEntry>| !keys.is_empty());
        image
    }

    /// Keys and keys with a TTL in a logical database, across engines, for
    /// a caller that holds no shard (`Tx::key_counts` for one that may).
    pub fn key_counts(&self, db: usize) -> (u64, u64) {
        count_keys(&self.store, self.store.physical(db), |index, read| read(&self.shards[index].read()))
    }

    /// Keys of `slot` in a logical database, across engines: RocksDB's
    /// per-slot counter and the memory engines' slot index, so the cost is
    /// that of the slot's memory keys at most.
    pub fn keys_in_slot(&self, db: usize, slot: u16) -> u64 {
        let physical = self.store.physical(db);
        let stored = self.store.counters(physical).keys_in_slot(slot).max(0) as u64;
        let shard = self.shards[shard_of_slot(slot)].read();
        stored + shard.db_ref(physical).map_or(0, |mem| mem.keys_in_slot(slot, b"").count() as u64)
    }

    /// One active-expiry pass over every database (Redis's `activeExpireCycle`
    /// samples; the ordered expiry indexes let Strata take exactly the keys
    /// that are due). Returns how many keys were deleted.
    pub fn active_expire(&self, limit_per_db: usize) -> Result<usize, EngineError> {
        if self.following_master.load(Ordering::Acquire) {
            return Ok(0); // The master's deletions come as records.
        }
        let mut deleted = 0;
        let now = strata_engines::now_ms();
        let mut all_done = true;
        for db in 0..self.databases() {
            let physical = self.store.physical(db);
            // As Redis skips databases without volatile keys: the scan of
            // the expiry index applies RocksDB's write backlog first (3 % of
            // INCR's CPU, with no key to expire).
            if self.store.counters(physical).expires.load(Ordering::Relaxed) <= 0 {
                continue;
            }
            let due = self.store.due_expirations(physical, now, limit_per_db)?;
            all_done &= due.len() < limit_per_db;
            for (slot, key, expire) in due {
                let _guard = self.shards[shard_of_slot(slot)].write();
                let mut txn = self.store.txn();
                let reaped = txn.reap(&KeyRef { db: physical, slot, key: &key }, expire)?;
                self.commit(txn, true, Vec::new())?;
                if reaped {
                    deleted += 1;
                    self.publish_events(&[expired_event(db, &key)]);
                }
            }
        }
        for shard in &self.shards {
            // Most shards have nothing due: a shared look tells, without
            // taking the write lock from the connections or committing an
            // empty transaction (ten times a second for each of the 1024).
            if !shard.read().any_due(now) {
                continue;
            }
            let mut shard = shard.write();
            let mut records = Vec::new();
            for physical in shard.databases() {
                let mut mem = shard.db(physical);
                for key in mem.due(now, limit_per_db) {
                    let op = MemOp::Delete { key };
                    mem.apply(&op);
                    records.push(MemRecord::Op { db: physical, op });
                }
            }
            deleted += records.len();
            let events: Vec<KeyEvent> = records
                .iter()
                .filter_map(|record| match record {
                    MemRecord::Op { db, op } => Some(expired_event(self.store.logical(*db)?, op.key())),
                    MemRecord::Flush { .. } | MemRecord::Publish { .. } => None,
                })
                .collect();
            self.commit(self.store.txn(), true, records)?;
            self.publish_events(&events);
        }
        if all_done {
            self.store.engine.set_expired_before(now);
        }
        self.expired_keys.fetch_add(deleted as u64, Ordering::Relaxed);
        Ok(deleted)
    }
}

/// A key's expiry, as active expiry reports it.
fn expired_event(db: usize, key: &[u8]) -> KeyEvent {
    KeyEvent { class: notify::EXPIRED, event: "expired", db, key: Bytes::copy_from_slice(key) }
}

/// A handler's view of one logical database during a command.
pub struct Tx<'s> {
    pub txn: Txn<'s>,
    pub physical: u32,
    /// The logical database index (SELECT).
    pub db: usize,
    /// The locked shards, by index.
    shards: LockedShards<'s>,
    /// Memory effects made by this command, in order.
    records: Vec<MemRecord>,
    /// What takes each memory effect back, in order (a failed command
    /// leaves no effect).
    undos: Vec<TxUndo>,
    /// A read under shared locks found a write to make (`Keyspace::transact` with shared locks).
    wants_write: bool,
    /// The last key whose slot was asked for, and its slot: a command
    /// names its key to several steps (its shard, its engine, its RocksDB
    /// keys), and each hashing cost about 190 instructions.
    last_slot: std::cell::RefCell<Option<(SmallVec<[u8; 32]>, u16)>>,
    /// Every shard of the keyspace, for reads of shards not locked here.
    all_shards: &'s [CachePadded<RwLock<MemShard>>],
    blocking: &'s Blocking,
    store: &'s Store,
    watches: &'s Watches,
    /// Keyspace events to publish once the transaction commits, and the
    /// classes wanted (`notify-keyspace-events` as it began).
    events: Vec<KeyEvent>,
    notify_flags: u32,
}

impl<'s> Tx<'s> {
    /// Reports what the command did to `key` in this database (see
    /// `crate::notify`): published if the transaction commits.
    pub fn notify(&mut self, class: u32, event: &'static str, key: &[u8]) {
        self.notify_in(self.db, class, event, key);
    }

    /// `notify` for a key of logical database `db` (MOVE, COPY DB).
    pub fn notify_in(&mut self, db: usize, class: u32, event: &'static str, key: &[u8]) {
        if self.notify_flags & class != 0 {
            self.events.push(KeyEvent { class, event, db, key: Bytes::copy_from_slice(key) });
        }
    }

    /// `notify` for a key of physical database `physical`.
    pub fn notify_physical(&mut self, physical: u32, class: u32, event: &'static str, key: &[u8]) {
        if let Some(db) = self.store.logical(physical) {
            self.notify_in(db, class, event, key);
        }
    }

    /// RocksDB metadata of `k`, an expired key deleted (and reported).
    fn rocks_meta(&mut self, k: &KeyRef) -> Result<Option<KeyMeta>, EngineError> {
        let expired = self.txn.expired;
        let meta = self.txn.meta(k)?;
        if self.txn.expired > expired {
            self.notify_physical(k.db, notify::EXPIRED, "expired", k.key);
        }
        Ok(meta)
    }
    /// A key of this database, with its slot.
    pub fn key<'k>(&self, key: &'k [u8]) -> KeyRef<'k> {
        KeyRef { db: self.physical, slot: self.slot(key), key }
    }

    /// The hash slot of `key` (`key_slot`), remembered for the next ask.
    fn slot(&self, key: &[u8]) -> u16 {
        let mut last = self.last_slot.borrow_mut();
        if let Some((_, slot)) = last.as_ref().filter(|(last_key, _)| last_key.as_slice() == key) {
            return *slot;
        }
        let slot = key_slot(key);
        if key.len() <= 32 {
            *last = Some((SmallVec::from_slice(key), slot));
        }
        slot
    }

    /// The locked shard holding `key`: it must have been named to `run`.
    fn shard_guard(&mut self, key: &[u8]) -> &mut ShardGuard<'s> {
        let shard = shard_of_slot(self.slot(key));
        let (_, guard) = self.shards.iter_mut().find(|(index, _)| *index == shard).unwrap_or_else(|| {
            panic!("key {:?} is not among the command's keys (its key specs)", String::from_utf8_lossy(key))
        });
        guard
    }

    /// The memory database holding `key` in physical database `physical`,
    /// to change.
    fn mem_db_in(&mut self, physical: u32, key: &[u8]) -> DbMut<'_> {
        self.shard_guard(key).exclusive().db(physical)
    }

    /// The memory entry of `key` in `physical` as stored, expired or not.
    fn stored_entry(&mut self, physical: u32, key: &[u8]) -> Option<&MemEntry> {
        if self.shards.is_empty() {
            return None;
        }
        self.shard_guard(key).db_ref(physical)?.get(key)
    }

    /// The memory entry of `key` in `physical`, deleting it if expired.
    fn mem_entry_in(&mut self, physical: u32, key: &[u8]) -> Option<&MemEntry> {
        let now = self.txn.now_ms;
        let entry = self.stored_entry(physical, key)?;
        if entry.expire_ms == 0 || entry.expire_ms > now {
            return self.stored_entry(physical, key);
        }
        if matches!(self.shard_guard(key), ShardGuard::Shared(_)) {
            self.wants_write = true;
        } else {
            self.mem_apply_in(physical, MemOp::Delete { key: Bytes::copy_from_slice(key) });
            self.txn.expired += 1;
            self.notify_physical(physical, notify::EXPIRED, "expired", key);
        }
        None
    }

    /// Points the transaction at logical database `db` (a command of an
    /// EXEC after a SELECT).
    pub fn use_database(&mut self, db: usize) {
        self.db = db;
        self.physical = self.store.physical(db);
    }

    /// Reads shard `index`: through this transaction's own lock when it
    /// holds the shard (locking again would deadlock), else under a shared
    /// lock taken for the read alone.
    pub fn read_shard<R>(&self, index: usize, read: impl FnOnce(&MemShard) -> R) -> R {
        match self.shards.iter().find(|(held, _)| *held == index) {
            Some((_, guard)) => read(guard),
            None => read(&self.all_shards[index].read()),
        }
    }

    /// Keys and keys with a TTL in logical database `db`, across engines.
    pub fn key_counts(&self, db: usize) -> (u64, u64) {
        count_keys(self.store, self.store.physical(db), |index, read| self.read_shard(index, read))
    }

    /// Visits the live memory keys of `slot` in this database from `from`
    /// on (inclusive), in byte order, until `visit` returns false.
    pub fn visit_memory_slot(&self, slot: u16, from: &[u8], visit: &mut dyn FnMut(&Bytes, &MemEntry) -> bool) -> bool {
        let (physical, now_ms) = (self.physical, self.txn.now_ms);
        self.read_shard(shard_of_slot(slot), |shard| {
            let Some(db) = shard.db_ref(physical) else { return true };
            for key in db.keys_in_slot(slot, from) {
                let entry = db.get(key).expect("indexed keys exist");
                if entry.expire_ms != 0 && entry.expire_ms <= now_ms {
                    continue;
                }
                if !visit(key, entry) {
                    return false;
                }
            }
            true
        })
    }

    /// Marks this point: `rollback_to` takes back every effect after it.
    pub fn savepoint(&mut self) -> TxSavepoint {
        let (records, undos, events) = (self.records.len(), self.undos.len(), self.events.len());
        TxSavepoint { records, undos, events, txn: self.txn.savepoint() }
    }

    /// Takes back every effect since `savepoint`, in memory and RocksDB
    /// (a command of a MULTI that failed: the others' effects stay).
    pub fn rollback_to(&mut self, savepoint: TxSavepoint) {
        self.undo_memory_to(savepoint.undos);
        self.records.truncate(savepoint.records);
        self.events.truncate(savepoint.events);
        self.txn.rollback_to(savepoint.txn);
    }

    /// Takes back every memory effect of this transaction (and its events).
    fn undo_memory(&mut self) {
        self.undo_memory_to(0);
        self.records.clear();
        self.events.clear();
    }

    fn undo_memory_to(&mut self, len: usize) {
        while self.undos.len() > len {
            match self.undos.pop().expect("an undo") {
                TxUndo::Op { physical, undo } => {
                    let key = undo.key().clone();
                    self.mem_db_in(physical, &key).undo(undo)
                }
                TxUndo::Flush { shard, physical, db } => {
                    let (_, guard) = self.shards.iter_mut().find(|(index, _)| *index == shard).expect("locked");
                    guard.exclusive().unflush(physical, db);
                }
                TxUndo::Swap(a, b) => self.store.swap_map(a, b),
            }
        }
    }

    /// Whether this command changed something, or found a change to make
    /// (an expired key to delete).
    fn wants_write(&self) -> bool {
        self.wants_write || !self.records.is_empty() || self.txn.expired > 0 || !self.txn.ws.is_empty()
    }

    /// Applies a memory effect in `physical` and records it.
    pub fn mem_apply_in(&mut self, physical: u32, op: MemOp) {
        let key = op.key().clone();
        let created = self.notify_flags & notify::NEW != 0 && self.stored_entry(physical, &key).is_none();
        let undo = self.mem_db_in(physical, &key).apply_undoable(&op);
        if created && self.stored_entry(physical, &key).is_some() {
            self.notify_physical(physical, notify::NEW, "new", &key);
        }
        self.undos.push(TxUndo::Op { physical, undo });
        #[cfg(feature = "failpoints")]
        if fail::eval("mem-apply-panic", |key| key).flatten().is_some_and(|target| target.as_bytes() == key) {
            panic!("failpoint mem-apply-panic on key {target:?}", target = String::from_utf8_lossy(&key));
        }
        // Data arrived: clients blocked on this key may now be served. A
        // deleted key is signalled too: XREADGROUP waiters are told it went.
        let feeds_waiters = matches!(
            &op,
            MemOp::Put { .. }
                | MemOp::Delete { .. }
                | MemOp::List { op: ListOp::Push { .. }, .. }
                | MemOp::ZSet { op: ZSetOp::Add(_), .. }
                | MemOp::Stream { op: StreamOp::Add { .. }, .. }
        );
        if feeds_waiters {
            if let Some(logical) = self.store.logical(physical) {
                self.blocking.signal(logical, &key);
            }
        }
        self.records.push(MemRecord::Op { db: physical, op });
    }

    /// Stores a memory value at `key` in place of whatever it holds in any
    /// engine, as Redis's `setKey` does: `new` is reported only when
    /// nothing was there (STORE variants of SINTER, ZUNION...).
    pub fn overwrite(&mut self, key: &Bytes, entry: MemEntry) -> Result<(), CmdError> {
        let existed = self.delete(key)?;
        let flags = self.notify_flags;
        if existed {
            self.notify_flags &= !notify::NEW;
        }
        self.mem_apply(MemOp::Put { key: key.clone(), entry });
        self.notify_flags = flags;
        Ok(())
    }

    /// Applies a memory effect in this database and records it. The caller
    /// has checked types: a key holds one type across all engines.
    pub fn mem_apply(&mut self, op: MemOp) {
        self.mem_apply_in(self.physical, op);
    }

    /// The memory value at `key` if it holds `expected`; WRONGTYPE if the
    /// key holds anything else in any engine; None if it does not exist.
    pub fn mem_value(&mut self, key: &[u8], expected: KeyType) -> Result<Option<&MemValue>, CmdError> {
        let physical = self.physical;
        match self.mem_entry_in(physical, key).map(|e| e.value.key_type()) {
            Some(found) if found != expected => return Err(CmdError::WrongType),
            Some(_) => {}
            None => {
                let k = self.key(key);
                if self.rocks_meta(&k)?.is_some() {
                    return Err(CmdError::WrongType);
                }
                return Ok(None);
            }
        }
        Ok(self.stored_entry(physical, key).map(|e| &e.value))
    }

    /// The whole memory entry of `key` in `physical` (for RENAME, COPY...).
    pub fn mem_entry_of(&mut self, physical: u32, key: &[u8]) -> Option<MemEntry> {
        self.mem_entry_in(physical, key).cloned()
    }

    /// The key's metadata if it exists in any engine (expired keys are
    /// deleted here). A memory key's metadata has an empty body.
    pub fn meta(&mut self, key: &[u8]) -> Result<Option<KeyMeta>, CmdError> {
        let physical = self.physical;
        self.meta_in(physical, key)
    }

    /// `meta` in another physical database (COPY DB, MOVE).
    pub fn meta_in(&mut self, physical: u32, key: &[u8]) -> Result<Option<KeyMeta>, CmdError> {
        if let Some(entry) = self.mem_entry_in(physical, key) {
            return Ok(Some(KeyMeta {
                key_type: entry.value.key_type(),
                expire_ms: entry.expire_ms,
                body: Vec::new(),
            }));
        }
        let k = KeyRef { db: physical, slot: self.slot(key), key };
        Ok(self.rocks_meta(&k)?)
    }

    /// The key's metadata, or WRONGTYPE when it holds another type.
    pub fn meta_of(&mut self, key: &[u8], expected: KeyType) -> Result<Option<KeyMeta>, CmdError> {
        match self.meta(key)? {
            Some(meta) if meta.key_type != expected => Err(CmdError::WrongType),
            other => Ok(other),
        }
    }

    /// The key's type, if it exists.
    pub fn key_type(&mut self, key: &[u8]) -> Result<Option<KeyType>, CmdError> {
        Ok(self.meta(key)?.map(|m| m.key_type))
    }

    /// Deletes a key of any type. Returns whether it existed.
    pub fn delete(&mut self, key: &[u8]) -> Result<bool, CmdError> {
        let physical = self.physical;
        self.delete_in(physical, key)
    }

    /// `delete` in another physical database.
    pub fn delete_in(&mut self, physical: u32, key: &[u8]) -> Result<bool, CmdError> {
        if self.mem_entry_in(physical, key).is_some() {
            self.mem_apply_in(physical, MemOp::Delete { key: Bytes::copy_from_slice(key) });
            return Ok(true);
        }
        let k = KeyRef { db: physical, slot: self.slot(key), key };
        match self.rocks_meta(&k)? {
            Some(meta) => {
                self.txn.delete_key(&k, &meta)?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Creates or replaces a RocksDB key's metadata (and thus its TTL). A
    /// memory key of the same name (`old` says so) is deleted first.
    pub fn put_meta(&mut self, key: &[u8], old: Option<&KeyMeta>, new: &KeyMeta) {
        if old.is_none() {
            self.notify(notify::NEW, "new", key);
        }
        let old = match old {
            Some(meta) if is_memory_type(meta.key_type) => {
                self.mem_apply(MemOp::Delete { key: Bytes::copy_from_slice(key) });
                None
            }
            other => other,
        };
        let k = self.key(key);
        self.txn.put_meta(&k, old, new);
    }

    /// Changes the TTL of an existing key (0 removes it), whatever engine
    /// holds it. `meta` is what `meta` returned for it.
    pub fn set_expire(&mut self, key: &[u8], meta: &KeyMeta, expire_ms: u64) {
        if is_memory_type(meta.key_type) {
            self.mem_apply(MemOp::Expire { key: Bytes::copy_from_slice(key), expire_ms });
        } else {
            let new = KeyMeta { expire_ms, ..meta.clone() };
            self.put_meta(key, Some(meta), &new);
        }
    }

    /// Replaces whatever `key` holds with a string value and TTL.
    pub fn set_string(&mut self, key: &[u8], old: Option<&KeyMeta>, value: &[u8], expire_ms: u64) {
        let new = KeyMeta { key_type: KeyType::String, expire_ms, body: value.to_vec() };
        self.put_meta(key, old, &new);
    }

    /// Empties a physical database in every engine. The caller holds every
    /// shard (`Locking::All`).
    pub fn flush_database(&mut self, physical: u32) -> Result<(), CmdError> {
        assert_eq!(self.shards.len(), SHARDS, "flush needs every shard locked");
        // Redis touches the watched keys that the flush empties.
        if let Some(db) = self.store.logical(physical) {
            for key in self.watches.keys_in(db) {
                if self.stored(physical, &key)? {
                    self.watches.touch(db, &key);
                }
            }
        }
        for (index, shard) in &mut self.shards {
            if let Some(db) = shard.exclusive().flush(physical) {
                self.undos.push(TxUndo::Flush { shard: *index, physical, db });
            }
        }
        self.records.push(MemRecord::Flush { db: physical });
        // XREADGROUP waiters of the emptied database are told their keys went.
        if let Some(logical) = self.store.logical(physical) {
            self.blocking.signal_database(logical);
        }
        self.txn.flush_database(physical);
        Ok(())
    }

    pub fn now_ms(&self) -> u64 {
        self.txn.now_ms
    }

    /// SWAPDB: exchanges two logical databases. The caller holds every
    /// shard (`Locking::All`). As Redis, a key watched in either database
    /// is touched if it exists in either.
    pub fn swap_databases(&mut self, a: usize, b: usize) -> Result<(), CmdError> {
        let (pa, pb) = (self.store.physical(a), self.store.physical(b));
        for db in [a, b] {
            for key in self.watches.keys_in(db) {
                if a != b && (self.stored(pa, &key)? || self.stored(pb, &key)?) {
                    self.watches.touch(db, &key);
                }
            }
        }
        self.store.swap_databases(&mut self.txn, a, b);
        self.undos.push(TxUndo::Swap(a, b));
        Ok(())
    }

    /// Whether `key` is stored in `physical`, expired or not.
    fn stored(&mut self, physical: u32, key: &[u8]) -> Result<bool, CmdError> {
        if self.stored_entry(physical, key).is_some() {
            return Ok(true);
        }
        Ok(self.txn.raw_meta(&KeyRef { db: physical, slot: self.slot(key), key })?.is_some())
    }

    /// Whether `key` is still stored but past its TTL: Redis 7 fails EXEC
    /// when a watched key expired after WATCH, even if nothing deleted it.
    pub fn has_expired(&mut self, key: &[u8]) -> Result<bool, CmdError> {
        let (now, physical) = (self.txn.now_ms, self.physical);
        let due = |expire_ms: u64| expire_ms != 0 && expire_ms <= now;
        if let Some(entry) = self.stored_entry(physical, key) {
            return Ok(due(entry.expire_ms));
        }
        Ok(self.txn.raw_meta(&self.key(key))?.is_some_and(|meta| due(meta.expire_ms)))
    }
}

impl Keyspace {
    /// The (physical database, key) pairs a command's effects change, when
    /// someone WATCHes: every RocksDB key written (metadata or hash field)
    /// and every memory key an effect names. Writes that change nothing are
    /// never made, so they touch nothing (as Redis's signalModifiedKey).
    fn changed_keys(&self, ws: &WriteSet, records: &[MemRecord]) -> Vec<(u32, Bytes)> {
        let tracking = self.pubsub.get().is_some_and(|pubsub| pubsub.tracking.is_active());
        if self.watches.is_empty() && !tracking {
            return Vec::new();
        }
        let mut changed: Vec<(u32, Bytes)> = Vec::new();
        let mut add = |physical: u32, key: &[u8]| {
            if changed.last().is_none_or(|(p, k)| *p != physical || k.as_ref() != key) {
                changed.push((physical, Bytes::copy_from_slice(key)));
            }
        };
        for (cf, raw) in ws.pending_keys() {
            match cf {
                Cf::Meta => decode_meta_key(raw).into_iter().for_each(|(db, _, key)| add(db, key)),
                Cf::Sub => decode_sub_key(raw).into_iter().for_each(|sub| add(sub.db, sub.key)),
                Cf::Expire | Cf::Default => {}
            }
        }
        for record in records {
            if let MemRecord::Op { db, op } = record {
                if op.touches_watchers() {
                    add(*db, op.key());
                }
            }
        }
        changed
    }

    /// Marks the watchers of changed keys (see `changed_keys`),
    /// and the tracking clients that read them (CLIENT TRACKING).
    fn touch_watched(&self, changed: Vec<(u32, Bytes)>) {
        if changed.is_empty() {
            return;
        }
        for (physical, key) in &changed {
            if let Some(db) = self.store.logical(*physical) {
                self.watches.touch(db, key);
            }
        }
        if let Some(tracking) = self.pubsub.get().map(|pubsub| &pubsub.tracking).filter(|t| t.is_active()) {
            let keys: Vec<Bytes> = changed.into_iter().map(|(_, key)| key).collect();
            tracking.invalidate(&keys, crate::tracking::running());
        }
    }
}

/// Keys and keys with a TTL in physical database `physical`: RocksDB's
/// counters plus every memory shard, each read through `read_shard`.
fn count_keys(store: &Store, physical: u32, read_shard: impl Fn(usize, &mut dyn FnMut(&MemShard))) -> (u64, u64) {
    let counters = store.counters(physical);
    let mut keys = counters.keys.load(Ordering::Relaxed).max(0) as u64;
    let mut expires = counters.expires.load(Ordering::Relaxed).max(0) as u64;
    for index in 0..SHARDS {
        read_shard(index, &mut |shard| {
            if let Some(mem) = shard.db_ref(physical) {
                keys += mem.len() as u64;
                expires += mem.expires_len() as u64;
            }
        });
    }
    (keys, expires)
}

/// Which shards a transaction locks (see `Keyspace::transact`).
#[derive(Clone, Copy)]
pub enum Locking<'k> {
    /// The shards of these keys, shared by commands that only read.
    Keys { keys: &'k [&'k [u8]], shared: bool },
    /// Every shard, exclusive: FLUSHDB, SWAPDB, an EXEC of such commands.
    All,
    /// None up front: the command walks the keyspace a shard at a time
    /// (`Tx::read_shard`: SCAN, KEYS, DBSIZE ...), as Redis gives such
    /// commands no atomicity either.
    Walk,
}

/// What takes one memory effect of a `Tx` back.
enum TxUndo {
    Op {
        physical: u32,
        undo: Undo,
    },
    /// A database emptied in one shard: what it held.
    Flush {
        shard: usize,
        physical: u32,
        db: MemDb,
    },
    /// SWAPDB of these two logical databases.
    Swap(usize, usize),
}

/// A point in a `Tx` to go back to (see `Tx::savepoint`).
pub struct TxSavepoint {
    records: usize,
    undos: usize,
    events: usize,
    txn: strata_engines::keyspace::TxnSavepoint,
}

/// The shards a command locked, by index. Inline for one: most commands
/// name one key, and an allocation per command showed in GET's profile.
type LockedShards<'s> = SmallVec<[(usize, ShardGuard<'s>); 1]>;

/// A locked shard: shared by commands that only read, exclusive otherwise.
enum ShardGuard<'s> {
    Shared(RwLockReadGuard<'s, MemShard>),
    Exclusive(RwLockWriteGuard<'s, MemShard>),
}

impl ShardGuard<'_> {
    /// The shard to change. Only read-only commands take shared locks, and
    /// what it runs only reads (an expired key it finds sets `wants_write`
    /// instead of being deleted), so a change under one is a bug.
    fn exclusive(&mut self) -> &mut MemShard {
        match self {
            ShardGuard::Exclusive(guard) => guard,
            ShardGuard::Shared(_) => panic!("a read-only command changed a memory key"),
        }
    }
}

impl std::ops::Deref for ShardGuard<'_> {
    type Target = MemShard;

    fn deref(&self) -> &MemShard {
        match self {
            ShardGuard::Shared(guard) => guard,
            ShardGuard::Exclusive(guard) => guard,
        }
    }
}

/// A checkpoint's cut of every shard, begun at one sequence; dropping it
/// gives up whatever part is not walked yet.
struct Cut<'k> {
    shards: &'k [CachePadded<RwLock<MemShard>>],
    seq: u64,
}

impl<'k> Cut<'k> {
    /// Every shard locked at once (in index order, as `lock_all`), so no
    /// command is half applied, and the cut begun at the log's last
    /// sequence.
    fn begin(shards: &'k [CachePadded<RwLock<MemShard>>], log: &Log, kept: &KeptBytes) -> Cut<'k> {
        let mut guards: Vec<_> = shards.iter().map(|s| s.write()).collect();
        let seq = log.last_seq();
        guards.iter_mut().for_each(|shard| shard.begin_cut(seq, kept));
        Cut { shards, seq }
    }
}

impl Drop for Cut<'_> {
    fn drop(&mut self) {
        for shard in self.shards {
            shard.write().abandon_cut();
        }
    }
}

/// Whether a key of this type lives in a memory engine.
pub fn is_memory_type(key_type: KeyType) -> bool {
    !matches!(key_type, KeyType::String | KeyType::Hash)
}

#[cfg(test)]
impl Keyspace {
    /// Tests: `body` in a transaction over `keys`, locked exclusive.
    pub fn run<R>(
        &self,
        db: usize,
        keys: &[&[u8]],
        body: impl FnMut(&mut Tx) -> Result<R, CmdError>,
    ) -> Result<R, CmdError> {
        self.transact(db, Locking::Keys { keys, shared: false }, body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exclusive<'k>(keys: &'k [&'k [u8]]) -> Locking<'k> {
        Locking::Keys { keys, shared: false }
    }

    fn push(tx: &mut Tx, key: &'static [u8], item: &'static [u8]) {
        let (key, items) = (Bytes::from_static(key), vec![Bytes::from_static(item)]);
        tx.mem_apply(MemOp::List { key, op: ListOp::Push { front: false, items } });
    }

    fn set(tx: &mut Tx, key: &[u8], value: &[u8]) -> Result<(), CmdError> {
        let old = tx.meta(key)?;
        tx.set_string(key, old.as_ref(), value, 0);
        Ok(())
    }

    /// The list at `l` and the string at `s`, as a command sees them.
    fn state(keyspace: &Keyspace) -> (Vec<Vec<u8>>, Option<Vec<u8>>) {
        keyspace
            .transact(0, exclusive(&[b"l", b"s"]), |tx| {
                let list = match tx.mem_value(b"l", KeyType::List)? {
                    Some(MemValue::List(list)) => list.iter().map(<[u8]>::to_vec).collect(),
                    _ => Vec::new(),
                };
                Ok((list, tx.meta(b"s")?.map(|meta| meta.body)))
            })
            .unwrap()
    }

    fn records(keyspace: &Keyspace) -> usize {
        keyspace.record_tap.lock().as_ref().map_or(0, Vec::len)
    }

    #[test]
    fn a_failing_command_leaves_no_effect_in_memory_or_rocksdb() {
        let dir = tempfile::tempdir().unwrap();
        let (server, _client) = crate::server::Server::open_in_process(dir.path()).unwrap();
        let keyspace = &server.keyspace;
        *keyspace.record_tap.lock() = Some(Vec::new());
        keyspace
            .transact(0, exclusive(&[b"l", b"s"]), |tx| {
                push(tx, b"l", b"a");
                set(tx, b"s", b"v")
            })
            .unwrap();
        let failed = keyspace.transact(0, exclusive(&[b"l", b"s"]), |tx| {
            push(tx, b"l", b"b");
            set(tx, b"s", b"w")?;
            push(tx, b"l", b"c");
            Err::<(), _>(CmdError::WrongType)
        });
        assert!(failed.is_err());
        assert_eq!(state(keyspace), (vec![b"a".to_vec()], Some(b"v".to_vec())));
        assert_eq!(records(keyspace), 1, "nothing logged for the failed command");
    }

    #[test]
    fn a_command_rolled_back_to_its_savepoint_goes_and_the_others_stay() {
        let dir = tempfile::tempdir().unwrap();
        let (server, _client) = crate::server::Server::open_in_process(dir.path()).unwrap();
        let keyspace = &server.keyspace;
        *keyspace.record_tap.lock() = Some(Vec::new());
        keyspace.transact(0, exclusive(&[b"l", b"s"]), |tx| set(tx, b"s", b"v")).unwrap();
        keyspace
            .transact(0, exclusive(&[b"l", b"s"]), |tx| {
                push(tx, b"l", b"a");
                let savepoint = tx.savepoint();
                push(tx, b"l", b"b");
                set(tx, b"s", b"w")?;
                tx.rollback_to(savepoint);
                push(tx, b"l", b"c");
                Ok(())
            })
            .unwrap();
        assert_eq!(state(keyspace), (vec![b"a".to_vec(), b"c".to_vec()], Some(b"v".to_vec())));
        let tap = keyspace.record_tap.lock().clone().unwrap();
        let pushed: Vec<&MemOp> =
            tap.iter().filter_map(|r| if let MemRecord::Op { op, .. } = r { Some(op) } else { None }).collect();
        assert_eq!(pushed.len(), 2, "the EXEC logs a and c only: {pushed:?}");
    }

    #[test]
    fn a_transaction_gives_each_key_its_own_slot_when_keys_alternate() {
        let dir = tempfile::tempdir().unwrap();
        let (server, _client) = crate::server::Server::open_in_process(dir.path()).unwrap();
        let long = vec![b'x'; 40];
        let keys: [&[u8]; 7] = [b"a", b"{a}b", b"c", b"", &long, b"a", b"c"];
        server
            .keyspace
            .transact(0, exclusive(&keys), |tx| {
                for key in keys.iter().chain(keys.iter().rev()) {
                    assert_eq!(tx.key(key).slot, key_slot(key), "{key:?}");
                }
                Ok(())
            })
            .unwrap();
    }
}
