//! Raft storage in two RocksDB column families.
//!
//! `raft_log` holds the entries, keyed by big-endian index so the keys sort
//! as the log. `raft_meta` holds the vote, the committed and last purged log
//! ids, the applied machine (with its last applied log id and membership) and
//! the latest snapshot. Everything raft needs durable before it goes on (the
//! vote, appended entries, the applied machine, snapshots) is written with a
//! synced WAL write.

// openraft's storage traits return its `StorageError` (224 bytes); the
// helpers here return it too rather than convert back and forth.
#![allow(clippy::result_large_err)]

use std::fmt::Debug;
use std::io::Cursor;
use std::marker::PhantomData;
use std::ops::Bound;
use std::ops::RangeBounds;
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use openraft::storage::LogFlushed;
use openraft::storage::LogState;
use openraft::storage::RaftLogStorage;
use openraft::storage::RaftStateMachine;
use openraft::storage::Snapshot;
use openraft::AnyError;
use openraft::EntryPayload;
use openraft::LogId;
use openraft::OptionalSend;
use openraft::RaftLogReader;
use openraft::RaftSnapshotBuilder;
use openraft::SnapshotMeta;
use openraft::StorageError;
use openraft::StorageIOError;
use openraft::StoredMembership;
use openraft::Vote;
use parking_lot::RwLock;
use rocksdb::ColumnFamily;
use rocksdb::ColumnFamilyDescriptor;
use rocksdb::Direction;
use rocksdb::IteratorMode;
use rocksdb::Options;
use rocksdb::WriteBatch;
use rocksdb::WriteOptions;
use rocksdb::DB;
use serde::Deserialize;
use serde::Serialize;
use tokio::sync::watch;

use super::Applied;
use super::BusNode;
use super::Error;
use super::Machine;
use super::TypeConfig;

/// Column family of the raft log.
pub const LOG_CF: &str = "raft_log";
/// Column family of the vote, log pointers, applied machine and snapshot.
pub const META_CF: &str = "raft_meta";

const VOTE: &[u8] = b"vote";
const COMMITTED: &[u8] = b"committed";
const PURGED: &[u8] = b"purged";
const MACHINE: &[u8] = b"machine";
const SNAPSHOT_META: &[u8] = b"snapshot_meta";
const SNAPSHOT_DATA: &[u8] = b"snapshot_data";
const META_KEYS: [&[u8]; 6] = [VOTE, COMMITTED, PURGED, MACHINE, SNAPSHOT_META, SNAPSHOT_DATA];

type C<M> = TypeConfig<M>;
type StorageResult<T> = Result<T, StorageError<u64>>;

/// Creates or opens a RocksDB at `path` with the two column families the raft
/// store needs (and the WAL on, as by default). Meant for a small DB of its
/// own under the host's data directory.
pub fn open_db(path: impl AsRef<Path>) -> Result<Arc<DB>, Error> {
    let mut options = Options::default();
    options.create_if_missing(true);
    options.create_missing_column_families(true);
    let families = [LOG_CF, META_CF].map(|name| ColumnFamilyDescriptor::new(name, Options::default()));
    let db = DB::open_cf_descriptors(&options, path, families).map_err(|e| Error::Storage(e.to_string()))?;
    Ok(Arc::new(db))
}

/// The applied machine, shared between the state machine store (which
/// writes it), the host (which reads it) and every store generation a
/// [`reset`](super::ClusterRaft::reset) creates.
pub(crate) struct Shared<M> {
    pub(crate) machine: Arc<RwLock<M>>,
    /// The last applied log index, sent after every apply batch, snapshot
    /// install and reset.
    pub(crate) applied: watch::Sender<Option<u64>>,
}

/// Lets a [`reset`](super::ClusterRaft::reset) retire the stores of the raft
/// instance it shut down: openraft may still be finishing an apply on another
/// task, and that must not land after the wipe. Every write holds the read
/// side while it checks and writes; retiring takes the write side.
pub(crate) struct Fence(RwLock<bool>);

impl Fence {
    pub(crate) fn new() -> Arc<Fence> {
        Arc::new(Fence(RwLock::new(true)))
    }

    /// Runs `write` unless the fence is retired; blocks [`Fence::retire`]
    /// meanwhile.
    fn pass<T>(&self, write: impl FnOnce() -> StorageResult<T>) -> StorageResult<T> {
        let live = self.0.read();
        if !*live {
            return Err(StorageIOError::write(AnyError::error("raft store retired by a reset")).into());
        }
        write()
    }

    /// Refuses every later write; returns once no write is under way.
    pub(crate) fn retire(&self) {
        *self.0.write() = false;
    }
}

/// Wipes the raft log and every raft_meta key, so the next store generation
/// starts as a pristine node.
pub(crate) fn wipe(db: &DB) -> Result<(), Error> {
    let log = cf(db, LOG_CF).map_err(|e| Error::Storage(e.to_string()))?;
    let meta = cf(db, META_CF).map_err(|e| Error::Storage(e.to_string()))?;
    let mut batch = WriteBatch::default();
    delete_log_from(&mut batch, log, 0);
    for key in META_KEYS {
        batch.delete_cf(meta, key);
    }
    db.write_opt(batch, &synced()).map_err(|e| Error::Storage(e.to_string()))
}

/// Deletes the log entries from `index` on.
fn delete_log_from(batch: &mut WriteBatch, log: &ColumnFamily, index: u64) {
    batch.delete_range_cf(log, index_key(index), index_key(u64::MAX));
    // delete_range's end is exclusive.
    batch.delete_cf(log, index_key(u64::MAX));
}

/// Opens the log store and state machine store of one raft instance over
/// `db`. The applied machine is loaded from raft_meta into `shared`; raft
/// replays the committed log entries after it.
pub(crate) fn open<M: Machine>(
    db: Arc<DB>,
    shared: Arc<Shared<M>>,
    fence: Arc<Fence>,
) -> Result<(LogStore<M>, MachineStore<M>), Error> {
    for name in [LOG_CF, META_CF] {
        cf(&db, name).map_err(|e| Error::Storage(e.to_string()))?;
    }
    let log = LogStore { db: db.clone(), fence: fence.clone(), _machine: PhantomData };
    let record: Option<MachineRecord<M>> = get_json(&db, MACHINE).map_err(|e| Error::Storage(e.to_string()))?;
    let (applied, membership, machine) = match record {
        Some(r) => (r.applied, r.membership, r.machine),
        None => (None, StoredMembership::default(), M::default()),
    };
    *shared.machine.write() = machine;
    shared.applied.send_replace(applied.map(|id| id.index));
    let machine = MachineStore { db, fence, shared, applied, membership };
    Ok((log, machine))
}

/// The applied machine as raft_meta keeps it. `T` is `&M` when writing and
/// `M` when reading.
#[derive(Serialize, Deserialize)]
struct MachineRecord<T> {
    applied: Option<LogId<u64>>,
    membership: StoredMembership<u64, BusNode>,
    machine: T,
}

/// The raft log (and vote) of one raft instance.
pub(crate) struct LogStore<M> {
    db: Arc<DB>,
    fence: Arc<Fence>,
    _machine: PhantomData<fn() -> M>,
}

impl<M> Clone for LogStore<M> {
    fn clone(&self) -> Self {
        LogStore { db: self.db.clone(), fence: self.fence.clone(), _machine: PhantomData }
    }
}

impl<M: Machine> LogStore<M> {
    fn put_meta(&self, key: &[u8], value: &impl Serialize, sync: bool) -> StorageResult<()> {
        let bytes = serde_json::to_vec(value).map_err(|e| StorageIOError::write(&e))?;
        self.fence.pass(|| {
            let options = if sync { synced() } else { WriteOptions::default() };
            let meta = cf(&self.db, META_CF).map_err(StorageIOError::write)?;
            self.db.put_cf_opt(meta, key, bytes, &options).map_err(|e| StorageIOError::write(&e).into())
        })
    }

    fn last_entry(&self) -> StorageResult<Option<openraft::Entry<C<M>>>> {
        let log = cf(&self.db, LOG_CF).map_err(StorageIOError::read_logs)?;
        match self.db.iterator_cf(log, IteratorMode::End).next() {
            None => Ok(None),
            Some(item) => {
                let (_, value) = item.map_err(|e| StorageIOError::read_logs(&e))?;
                Ok(Some(serde_json::from_slice(&value).map_err(|e| StorageIOError::read_logs(&e))?))
            }
        }
    }
}

impl<M: Machine> RaftLogReader<C<M>> for LogStore<M> {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> StorageResult<Vec<openraft::Entry<C<M>>>> {
        let start = match range.start_bound() {
            Bound::Included(&i) => i,
            Bound::Excluded(&i) => i.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let log = cf(&self.db, LOG_CF).map_err(StorageIOError::read_logs)?;
        let mut entries = Vec::new();
        for item in self.db.iterator_cf(log, IteratorMode::From(&index_key(start), Direction::Forward)) {
            let (key, value) = item.map_err(|e| StorageIOError::read_logs(&e))?;
            if !range.contains(&key_index(&key)) {
                break;
            }
            entries.push(serde_json::from_slice(&value).map_err(|e| StorageIOError::read_logs(&e))?);
        }
        Ok(entries)
    }
}

impl<M: Machine> RaftLogStorage<C<M>> for LogStore<M> {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> StorageResult<LogState<C<M>>> {
        let last_purged_log_id: Option<LogId<u64>> = get_json(&self.db, PURGED).map_err(StorageIOError::read)?;
        let last_log_id = match self.last_entry()? {
            Some(entry) => Some(entry.log_id),
            None => last_purged_log_id,
        };
        Ok(LogState { last_purged_log_id, last_log_id })
    }

    async fn get_log_reader(&mut self) -> Self {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<u64>) -> StorageResult<()> {
        self.put_meta(VOTE, vote, true)
    }

    async fn read_vote(&mut self) -> StorageResult<Option<Vote<u64>>> {
        Ok(get_json(&self.db, VOTE).map_err(StorageIOError::read_vote)?)
    }

    /// Not synced: after a crash raft only learns the commit point again from
    /// the leader a little later.
    async fn save_committed(&mut self, committed: Option<LogId<u64>>) -> StorageResult<()> {
        self.put_meta(COMMITTED, &committed, false)
    }

    async fn read_committed(&mut self) -> StorageResult<Option<LogId<u64>>> {
        Ok(get_json::<Option<LogId<u64>>>(&self.db, COMMITTED).map_err(StorageIOError::read)?.flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<C<M>>) -> StorageResult<()>
    where
        I: IntoIterator<Item = openraft::Entry<C<M>>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let log = cf(&self.db, LOG_CF).map_err(StorageIOError::write_logs)?;
        let mut batch = WriteBatch::default();
        for entry in entries {
            let value = serde_json::to_vec(&entry).map_err(|e| StorageIOError::write_logs(&e))?;
            batch.put_cf(log, index_key(entry.log_id.index), value);
        }
        // The synced write returns once the entries are durable, so the
        // callback can be told at once.
        self.fence.pass(|| self.db.write_opt(batch, &synced()).map_err(|e| StorageIOError::write_logs(&e).into()))?;
        callback.log_io_completed(Ok(()));
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId<u64>) -> StorageResult<()> {
        let log = cf(&self.db, LOG_CF).map_err(StorageIOError::write_logs)?;
        let mut batch = WriteBatch::default();
        delete_log_from(&mut batch, log, log_id.index);
        self.fence.pass(|| self.db.write_opt(batch, &synced()).map_err(|e| StorageIOError::write_logs(&e).into()))
    }

    async fn purge(&mut self, log_id: LogId<u64>) -> StorageResult<()> {
        let log = cf(&self.db, LOG_CF).map_err(StorageIOError::write_logs)?;
        let meta = cf(&self.db, META_CF).map_err(StorageIOError::write_logs)?;
        let mut batch = WriteBatch::default();
        // The purge pointer and the deletion go together: the log state never
        // shows a hole.
        batch.put_cf(meta, PURGED, serde_json::to_vec(&log_id).map_err(|e| StorageIOError::write_logs(&e))?);
        batch.delete_range_cf(log, index_key(0), index_key(log_id.index + 1));
        self.fence.pass(|| self.db.write_opt(batch, &synced()).map_err(|e| StorageIOError::write_logs(&e).into()))
    }
}

/// The state machine of one raft instance: applies entries to the shared
/// machine and persists it after every batch, so a restart resumes from it.
pub(crate) struct MachineStore<M> {
    db: Arc<DB>,
    fence: Arc<Fence>,
    shared: Arc<Shared<M>>,
    applied: Option<LogId<u64>>,
    membership: StoredMembership<u64, BusNode>,
}

impl<M: Machine> MachineStore<M> {
    /// The machine record as of now, serialized.
    fn record(&self, machine: &M) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec(&MachineRecord { applied: self.applied, membership: self.membership.clone(), machine })
    }
}

/// Builds a snapshot from the machine as it was when raft asked for the
/// builder: raft may build while later entries are being applied.
pub(crate) struct SnapshotBuilder {
    db: Arc<DB>,
    fence: Arc<Fence>,
    applied: Option<LogId<u64>>,
    membership: StoredMembership<u64, BusNode>,
    /// The machine's JSON.
    data: Vec<u8>,
}

impl<M: Machine> RaftSnapshotBuilder<C<M>> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> StorageResult<Snapshot<C<M>>> {
        // Unique per build: the time tells apart two snapshots of one log id.
        let nanos = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        let snapshot_id = match self.applied {
            Some(id) => format!("{}-{}-{nanos}", id.leader_id, id.index),
            None => format!("none-{nanos}"),
        };
        let meta = SnapshotMeta { last_log_id: self.applied, last_membership: self.membership.clone(), snapshot_id };
        let batch = snapshot_batch(&self.db, &meta, &self.data, None)?;
        self.fence.pass(|| write_snapshot(&self.db, &meta, batch))?;
        Ok(Snapshot { meta, snapshot: Box::new(Cursor::new(self.data.clone())) })
    }
}

impl<M: Machine> RaftStateMachine<C<M>> for MachineStore<M> {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> StorageResult<(Option<LogId<u64>>, StoredMembership<u64, BusNode>)> {
        Ok((self.applied, self.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> StorageResult<Vec<Applied<M::Response>>>
    where
        I: IntoIterator<Item = openraft::Entry<C<M>>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let fence = self.fence.clone();
        let shared = self.shared.clone();
        let responses = fence.pass(|| {
            let mut machine = shared.machine.write();
            let mut responses = Vec::new();
            for entry in entries {
                self.applied = Some(entry.log_id);
                responses.push(match entry.payload {
                    EntryPayload::Blank => Applied::Raft,
                    EntryPayload::Normal(change) => Applied::Response(machine.apply(&change)),
                    EntryPayload::Membership(membership) => {
                        self.membership = StoredMembership::new(Some(entry.log_id), membership);
                        Applied::Raft
                    }
                });
            }
            // Writes are rare and the machine small: persisting all of it per
            // batch keeps restart simple (load it, replay what follows). Not
            // synced: the entries are in the synced log already, and the next
            // synced write of this DB (every append is one) makes this one
            // durable too, as RocksDB's WAL is one ordered file.
            let record = self.record(&machine).map_err(|e| StorageIOError::write_state_machine(&e))?;
            drop(machine);
            let meta = cf(&self.db, META_CF).map_err(StorageIOError::write_state_machine)?;
            self.db
                .put_cf_opt(meta, MACHINE, record, &WriteOptions::default())
                .map_err(|e| StorageIOError::write_state_machine(&e))?;
            Ok(responses)
        })?;
        self.shared.applied.send_replace(self.applied.map(|id| id.index));
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> SnapshotBuilder {
        // Serializing cannot fail for a machine that serialized on every
        // apply; should it, the snapshot is empty and installing it fails
        // loudly on the receiver.
        let data = serde_json::to_vec(&*self.shared.machine.read()).unwrap_or_else(|e| {
            tracing::error!("cannot serialize the raft machine for a snapshot: {e}");
            Vec::new()
        });
        SnapshotBuilder {
            db: self.db.clone(),
            fence: self.fence.clone(),
            applied: self.applied,
            membership: self.membership.clone(),
            data,
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> StorageResult<Box<Cursor<Vec<u8>>>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<u64, BusNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> StorageResult<()> {
        let data = snapshot.into_inner();
        let machine: M =
            serde_json::from_slice(&data).map_err(|e| StorageIOError::read_snapshot(Some(meta.signature()), &e))?;
        let record = serde_json::to_vec(&MachineRecord {
            applied: meta.last_log_id,
            membership: meta.last_membership.clone(),
            machine: &machine,
        })
        .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), &e))?;
        let batch = snapshot_batch(&self.db, meta, &data, Some(record))?;
        self.fence.pass(|| {
            write_snapshot(&self.db, meta, batch)?;
            *self.shared.machine.write() = machine;
            Ok(())
        })?;
        self.applied = meta.last_log_id;
        self.membership = meta.last_membership.clone();
        self.shared.applied.send_replace(self.applied.map(|id| id.index));
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> StorageResult<Option<Snapshot<C<M>>>> {
        let meta: Option<SnapshotMeta<u64, BusNode>> =
            get_json(&self.db, SNAPSHOT_META).map_err(StorageIOError::read)?;
        let Some(meta) = meta else { return Ok(None) };
        let signature = Some(meta.signature());
        let meta_cf = cf(&self.db, META_CF).map_err(|e| StorageIOError::read_snapshot(signature.clone(), e))?;
        let data = self
            .db
            .get_cf(meta_cf, SNAPSHOT_DATA)
            .map_err(|e| StorageIOError::read_snapshot(signature.clone(), &e))?
            .ok_or_else(|| StorageIOError::read_snapshot(signature, AnyError::error("snapshot data missing")))?;
        Ok(Some(Snapshot { meta, snapshot: Box::new(Cursor::new(data)) }))
    }
}

/// A batch that stores a snapshot's meta and data (and, when installing one,
/// the machine record it replaces): they change together.
fn snapshot_batch(
    db: &DB,
    meta: &SnapshotMeta<u64, BusNode>,
    data: &[u8],
    machine_record: Option<Vec<u8>>,
) -> StorageResult<WriteBatch> {
    let meta_bytes =
        serde_json::to_vec(meta).map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), &e))?;
    let meta_cf = cf(db, META_CF).map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), e))?;
    let mut batch = WriteBatch::default();
    batch.put_cf(meta_cf, SNAPSHOT_META, meta_bytes);
    batch.put_cf(meta_cf, SNAPSHOT_DATA, data);
    if let Some(record) = machine_record {
        batch.put_cf(meta_cf, MACHINE, record);
    }
    Ok(batch)
}

fn write_snapshot(db: &DB, meta: &SnapshotMeta<u64, BusNode>, batch: WriteBatch) -> StorageResult<()> {
    db.write_opt(batch, &synced()).map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), &e).into())
}

fn synced() -> WriteOptions {
    let mut options = WriteOptions::default();
    options.set_sync(true);
    options
}

fn cf<'a>(db: &'a DB, name: &str) -> Result<&'a ColumnFamily, AnyError> {
    db.cf_handle(name).ok_or_else(|| AnyError::error(format!("column family {name} missing")))
}

/// Reads and parses a raft_meta value; a missing key is `None`.
fn get_json<T: serde::de::DeserializeOwned>(db: &DB, key: &[u8]) -> Result<Option<T>, AnyError> {
    let meta = cf(db, META_CF)?;
    match db.get_cf(meta, key).map_err(|e| AnyError::new(&e))? {
        None => Ok(None),
        Some(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| AnyError::new(&e)),
    }
}

fn index_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

fn key_index(key: &[u8]) -> u64 {
    // Every key in raft_log is written by `index_key`.
    key.try_into().map(u64::from_be_bytes).unwrap_or(u64::MAX)
}
