//! The RocksDB engine: opens the database with Strata's column families,
//! options and compaction filters, and applies write batches.

use std::ffi::CStr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};

use parking_lot::{Condvar, Mutex, MutexGuard};

use rocksdb::compaction_filter::{CompactionFilter, Decision};
use rocksdb::compaction_filter_factory::{CompactionFilterContext, CompactionFilterFactory};
use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamilyDescriptor, DBCompressionType, Direction, FlushOptions, IteratorMode,
    MergeOperands, Options, ReadOptions, WriteBatch, WriteOptions, DB,
};

use crate::clock::now_ms;
use crate::encoding::{decode_sub_key, meta_key, HashBody, KeyType, Meta};
use crate::memory::list::put_varint;
use crate::rowcache::{self, Lookup, RowCache, RowCacheStats};
use crate::EngineError;

/// Default-family key holding `applied_seq` (see `RocksEngine::applied_seq`).
const APPLIED_SEQ_KEY: &[u8] = b"applied_seq";

/// A column family of Strata's RocksDB database.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Cf {
    Default,
    Meta,
    Sub,
    Expire,
}

impl Cf {
    pub const ALL: [Cf; 4] = [Cf::Default, Cf::Meta, Cf::Sub, Cf::Expire];

    fn name(self) -> &'static str {
        match self {
            Cf::Default => "default",
            Cf::Meta => "meta",
            Cf::Sub => "sub",
            Cf::Expire => "expire",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// RocksDB's `WriteBatch` record tags (db/dbformat.h), each in the default
/// column family or followed by a column family id.
mod tag {
    pub const DELETION: u8 = 0x0;
    pub const VALUE: u8 = 0x1;
    pub const CF_DELETION: u8 = 0x4;
    pub const CF_VALUE: u8 = 0x5;
    pub const CF_RANGE_DELETION: u8 = 0xE;
    pub const RANGE_DELETION: u8 = 0xF;
}

/// Tuning knobs, named after the config parameters that set them.
#[derive(Clone, Debug)]
pub struct RocksConfig {
    pub block_cache_bytes: usize,
    pub write_buffer_bytes: usize,
    /// The budget of the row cache (see `rowcache`).
    pub row_cache_bytes: usize,
}

impl Default for RocksConfig {
    fn default() -> Self {
        RocksConfig { block_cache_bytes: 256 << 20, write_buffer_bytes: 8 << 20, row_cache_bytes: 64 << 20 }
    }
}

/// Writes to apply as one atomic batch (see `RocksEngine::put` and
/// `RocksEngine::write`), with what they leave in the row cache.
#[derive(Default)]
pub struct Batch {
    /// RocksDB's `WriteBatch` data, encoded here: building a RocksDB
    /// `WriteBatch` per command would take an FFI call and a C++
    /// allocation per record and a name lookup per column family.
    data: Vec<u8>,
    /// Puts (Some) and deletes (None) of cached column families.
    cached: Vec<(Cf, Vec<u8>, Option<Vec<u8>>)>,
    range_deleted: bool,
}

impl Batch {
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The batch as RocksDB's `WriteBatch` data, as the log stores it.
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// Appends a record as `WriteBatch` does: the tag (`default_tag` in
    /// the default family, else `cf_tag` and the family id), then each
    /// part with its length, and counts it in the header.
    fn record(&mut self, (default_tag, cf_tag): (u8, u8), cf_id: u32, parts: &[&[u8]]) {
        // Room for the whole record at once (tag, id, lengths, parts).
        let size = 6 + parts.iter().map(|part| 5 + part.len()).sum::<usize>();
        if self.data.is_empty() {
            // Room for a command's usual few records: growing record by
            // record reallocated twice per SET.
            self.data.reserve((BatchData::HEADER + size).max(256));
            self.data.extend_from_slice(&[0; BatchData::HEADER]);
        } else {
            self.data.reserve(size);
        }
        // RocksDB's varint32 (util/coding.h) is the lists' varint: 7 bits
        // a byte, low group first.
        if cf_id == 0 {
            self.data.push(default_tag);
        } else {
            self.data.push(cf_tag);
            put_varint(&mut self.data, cf_id.into());
        }
        for part in parts {
            put_varint(&mut self.data, part.len() as u64);
            self.data.extend_from_slice(part);
        }
        let count = u32::from_le_bytes(self.data[8..12].try_into().expect("4 bytes")) + 1;
        self.data[8..12].copy_from_slice(&count.to_le_bytes());
    }
}

/// The varint32 at `pos`, which moves past it.
fn varint(data: &[u8], pos: &mut usize) -> Option<usize> {
    let mut value = 0usize;
    for shift in (0..35).step_by(7) {
        let byte = *data.get(*pos)?;
        *pos += 1;
        value |= ((byte & 0x7f) as usize) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// A RocksDB checkpoint (`RocksEngine::checkpoint_flushed`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RocksCheckpoint {
    /// The sequence its files hold.
    pub seq: u64,
    /// Each table file's name in the checkpoint and an identity: its
    /// family, size, entry and deletion counts and a checksum of its key
    /// range. Table files never change once written, so a file with the
    /// same name and identity in an earlier backup is the same file (an
    /// increment stores only the new ones).
    pub tables: Vec<(String, String)>,
}

/// A memtable switch begun (`RocksEngine::switch_memtables`): drains are
/// kept out until `finish`; dropped unfinished, the backlog it took goes
/// back and nothing is switched.
pub struct PendingSwitch<'e> {
    engine: &'e RocksEngine,
    buffers: Option<MutexGuard<'e, DrainBuffers>>,
    generation: Option<u64>,
}

impl PendingSwitch<'_> {
    /// Writes the backlog taken at the switch's sequence and starts
    /// flushing the memtables.
    pub fn finish(mut self) -> Result<(), EngineError> {
        let engine = self.engine;
        let writeback = &*engine.writeback;
        let mut buffers = self.buffers.take().expect("finished once");
        let switched = writeback.write_taken(&mut buffers, self.generation).and_then(|()| {
            let mut options = FlushOptions::default();
            options.set_wait(false);
            let cfs: Vec<_> = Cf::ALL.iter().map(|&cf| engine.cf(cf)).collect();
            Ok(engine.db.flush_cfs_opt(&cfs, &options)?)
        });
        writeback.room.end_switch(switched.is_ok());
        switched
    }
}

impl Drop for PendingSwitch<'_> {
    fn drop(&mut self) {
        if let Some(mut buffers) = self.buffers.take() {
            let writeback = &*self.engine.writeback;
            if self.generation.is_some() {
                writeback.put_back(&mut buffers.spare);
            }
            writeback.room.end_switch(false);
        }
    }
}

/// One write of a `WriteBatch` (see `RocksEngine::writes_of`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BatchWrite<'a> {
    Put { cf: Cf, key: &'a [u8], value: &'a [u8] },
    Delete { cf: Cf, key: &'a [u8] },
    DeleteRange { cf: Cf, from: &'a [u8], to: &'a [u8] },
}

/// Several RocksDB `WriteBatch`es' data joined into one, as RocksDB's own
/// `WriteBatchInternal::Append` does: a 12-byte header (sequence, count)
/// then the records; joining adds the counts and concatenates the records.
#[derive(Default)]
pub struct BatchData {
    data: Vec<u8>,
}

impl BatchData {
    const HEADER: usize = 12;

    pub fn append(&mut self, batch: &[u8]) {
        if batch.len() <= Self::HEADER {
            return;
        }
        if self.data.is_empty() {
            self.data.extend_from_slice(&batch[..Self::HEADER]);
            self.data[..8].fill(0);
        } else {
            let count = |d: &[u8]| u32::from_le_bytes(d[8..12].try_into().expect("4 bytes"));
            let total = count(&self.data) + count(batch);
            self.data[8..12].copy_from_slice(&total.to_le_bytes());
        }
        self.data.extend_from_slice(&batch[Self::HEADER..]);
    }

    pub fn len(&self) -> usize {
        self.data.len()
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    pub fn data(&self) -> &[u8] {
        &self.data
    }

    pub fn clear(&mut self) {
        self.data.clear();
    }
}

/// Buffers `sort_batch` reuses from one drain to the next: a drain of
/// megabytes into fresh allocations had the kernel zeroing pages for 3 %
/// of MSET's CPU.
#[derive(Default)]
struct SortScratch {
    records: Vec<SortRecord>,
    sorted: Vec<u8>,
}

/// A record of a batch: its column family, where its key and its bytes
/// are in the data, and a prefix of (family, key) that orders most pairs
/// without reading the keys.
struct SortRecord {
    prefix: u128,
    cf: usize,
    key: std::ops::Range<usize>,
    span: std::ops::Range<usize>,
}

/// The `WriteBatch` data in key order with each key's last write only
/// (what applying it in order leaves), built in `scratch`, so that RocksDB
/// inserts each key next to the previous one instead of searching its
/// skiplist from the top. None for records other than puts and deletes,
/// which keep their order.
fn sort_batch<'s>(data: &[u8], scratch: &'s mut SortScratch) -> Option<&'s [u8]> {
    fn slice<'a>(data: &'a [u8], pos: &mut usize) -> Option<&'a [u8]> {
        let len = varint(data, pos)?;
        let bytes = data.get(*pos..*pos + len)?;
        *pos += len;
        Some(bytes)
    }
    use tag::{CF_DELETION, CF_VALUE, DELETION, VALUE};
    let records = &mut scratch.records;
    records.clear();
    let mut pos = BatchData::HEADER;
    while pos < data.len() {
        let start = pos;
        let tag = data[pos];
        pos += 1;
        let cf = match tag {
            CF_DELETION | CF_VALUE => varint(data, &mut pos)?,
            DELETION | VALUE => 0,
            _ => return None,
        };
        let key = slice(data, &mut pos)?;
        let key_at = pos - key.len();
        if matches!(tag, VALUE | CF_VALUE) {
            slice(data, &mut pos)?;
        }
        records.push(SortRecord { prefix: 0, cf, key: key_at..key_at + key.len(), span: start..pos });
    }
    // The bytes every key of a family starts with (the fields of one hash
    // share their hash's): the prefix is taken after them, where it still
    // tells keys apart.
    let mut heads: Vec<(usize, &[u8])> = Vec::new();
    for record in records.iter() {
        let key = &data[record.key.clone()];
        match heads.iter_mut().find(|(cf, _)| *cf == record.cf) {
            Some((_, head)) => *head = &head[..head.iter().zip(key).take_while(|(a, b)| a == b).count()],
            None => heads.push((record.cf, key)),
        }
    }
    for record in records.iter_mut() {
        let skip = heads.iter().find(|(cf, _)| *cf == record.cf).map_or(0, |(_, head)| head.len());
        let key = &data[record.key.start + skip..record.key.end];
        // Big-endian: the family in the top byte, then the key's next 15
        // bytes, zero-padded (a shorter key with the same bytes is a tie,
        // which the full comparison settles).
        let mut prefix = [0u8; 16];
        prefix[0] = record.cf.min(255) as u8;
        let len = key.len().min(15);
        prefix[1..1 + len].copy_from_slice(&key[..len]);
        record.prefix = u128::from_be_bytes(prefix);
    }
    let id = |r: &SortRecord| (r.cf, &data[r.key.clone()]);
    // Stable: a key's writes stay in order, and the last one is kept. The
    // prefix first: a backlog of thousands of records is sorted without a
    // pass over its keys' bytes per comparison.
    records.sort_by(|a, b| a.prefix.cmp(&b.prefix).then_with(|| id(a).cmp(&id(b))));
    let out = &mut scratch.sorted;
    out.clear();
    out.extend_from_slice(&[0; BatchData::HEADER]);
    let mut count = 0u32;
    for (i, record) in records.iter().enumerate() {
        if records.get(i + 1).is_some_and(|next| id(next) == id(record)) {
            continue;
        }
        out.extend_from_slice(&data[record.span.clone()]);
        count += 1;
    }
    out[8..12].copy_from_slice(&count.to_le_bytes());
    Some(out)
}

/// Batches the row cache holds and RocksDB does not yet (see
/// `RocksEngine::write`), joined in log order.
#[derive(Default)]
struct Backlog {
    joined: BatchData,
    /// The generation of the last batch joined.
    generation: u64,
}

/// The backlog size at which the drainer thread applies it to RocksDB.
/// Big: the memtable's skiplist finds each key's place from the last one's,
/// which is near when a sorted batch holds thousands of keys (at 64 KB the
/// insert walked down several cache-missing levels per key; at 4 MB SET
/// and INCR cost 16-20 % less server CPU).
const BACKLOG_DUE: usize = 4 << 20;
/// The backlog size at which a writer applies it at once, before its reply
/// (the drainer fell behind).
const BACKLOG_FULL: usize = 16 << 20;
/// How long a backlog short of due waits for the drainer.
const CATCH_UP: std::time::Duration = std::time::Duration::from_secs(1);
/// The drainer's pauses between tries while RocksDB refuses writes:
/// the first, doubled each time up to the last.
const RETRY_FIRST: std::time::Duration = std::time::Duration::from_millis(100);
const RETRY_LAST: std::time::Duration = std::time::Duration::from_secs(2);

/// Bytes a memtable entry takes beyond its key and value, counted
/// generously (skiplist links, sequence number, lengths, alignment).
const ENTRY_OVERHEAD: u64 = 64;
/// How long a drain that readers need waits for room in the memtables.
const ROOM_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Keeps RocksDB from flushing memtables on its own. Writes reach RocksDB
/// before their log records are durable (the drainer is behind the log,
/// not behind its fsyncs), so a flush RocksDB starts by itself could make
/// RocksDB durable ahead of the log: after a power loss RocksDB would hold
/// writes the log and the memory engines lost, half a MULTI. Strata
/// switches memtables behind a log barrier (`switch_memtables`), and
/// RocksDB's own trigger (`write_buffer_size`) is twice what this lets in
/// between two switches, counting `ENTRY_OVERHEAD` per record. A drain
/// that finds no room asks for a switch and, when readers need it, waits
/// for it (without holding up other drains); one that was only to shorten
/// the backlog gives up. Writes made during a switch are let in: the
/// barrier made every record durable.
struct MemtableRoom {
    /// What the memtables may take between two switches.
    limit: u64,
    state: Mutex<RoomState>,
    freed: Condvar,
    /// A write found no room: the keyspace's cron switches at once.
    wanted: AtomicBool,
}

#[derive(Default)]
struct RoomState {
    /// Taken since the last switch (`memtable_size` of each batch).
    used: u64,
    /// What the last write refused asked for.
    refused: u64,
    switching: bool,
    /// The engine is closing: nobody waits any more.
    closed: bool,
}

impl MemtableRoom {
    /// Whether there is room for `size`; when there is none, asks for a
    /// switch.
    fn check(&self, size: u64) -> Result<(), EngineError> {
        let mut state = self.state.lock();
        if !state.switching && state.used + size > self.limit {
            state.refused = size;
            self.wanted.store(true, Ordering::Relaxed);
            return Err(EngineError::MemtableFull);
        }
        Ok(())
    }

    /// Counts `size` written.
    fn take(&self, size: u64) {
        self.state.lock().used += size;
    }

    /// Waits until the write refused last would find room (a switch
    /// freed it, or one is under way), up to `deadline`: false if it did
    /// not come.
    fn wait_for_room(&self, deadline: std::time::Instant) -> bool {
        let mut state = self.state.lock();
        while !state.switching && state.used + state.refused > self.limit {
            if state.closed || self.freed.wait_until(&mut state, deadline).timed_out() {
                return false;
            }
        }
        true
    }

    /// Room taken for a write that failed.
    fn give_back(&self, size: u64) {
        let mut state = self.state.lock();
        state.used = state.used.saturating_sub(size);
    }

    /// A switch begins: every write is let in until `end_switch`.
    fn begin_switch(&self) {
        self.state.lock().switching = true;
        self.freed.notify_all();
    }

    /// A switch ends; the memtables are empty again if it `switched`.
    fn end_switch(&self, switched: bool) {
        let mut state = self.state.lock();
        state.switching = false;
        if switched {
            state.used = 0;
            self.wanted.store(false, Ordering::Relaxed);
        }
        drop(state);
        self.freed.notify_all();
    }

    fn close(&self) {
        self.state.lock().closed = true;
        self.freed.notify_all();
    }
}

/// What a batch costs the memtables: its bytes and `ENTRY_OVERHEAD` per
/// record (the count is in the batch's header).
fn memtable_size(data: &[u8]) -> u64 {
    let records = data.get(8..12).map_or(0, |raw| u32::from_le_bytes(raw.try_into().expect("4 bytes")));
    data.len() as u64 + ENTRY_OVERHEAD * records as u64
}

/// How a drain deals with a busy moment.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Patience {
    /// Waits for a drain under way and for room in the memtables (up to
    /// `ROOM_WAIT`): readers that need RocksDB to hold every write, and
    /// the drainer thread.
    Wait,
    /// Waits for a drain under way (writers past `BACKLOG_FULL` slow down
    /// with it), not for room: the backlog can wait for the next switch.
    NoRoomWait,
    /// Skips when a drain is under way or there is no room.
    Skip,
}

/// Handles the compaction filters need: the database itself (to look up the
/// metadata a hash field belongs to) and the active-expiry watermark.
#[derive(Default)]
struct FilterShared {
    db: OnceLock<Weak<DB>>,
    /// Every key that expired before this time has been deleted by active
    /// expiry (and counted); meta records older than it are garbage.
    expired_before_ms: AtomicU64,
}

/// What writes wait in before RocksDB has them (see `RocksEngine::write`),
/// shared with the drainer thread that applies them.
struct Writeback {
    db: Arc<DB>,
    write_options: WriteOptions,
    cache: RowCache,
    backlog: Mutex<Backlog>,
    /// Whether the backlog has reached `BACKLOG_DUE` (the drainer's cue).
    due: AtomicBool,
    /// Wakes the drainer (waited on with the backlog's lock).
    wake: Condvar,
    stopping: AtomicBool,
    /// Held while the backlog is written to RocksDB (writes in log
    /// order), with the buffers a drain reuses.
    draining: Mutex<DrainBuffers>,
    /// The generation through which RocksDB holds the backlog, and the
    /// last batch whose writes the row cache does not hold (a range
    /// delete, or any batch with the cache off): reads drain the backlog
    /// first while RocksDB is behind that one.
    applied: AtomicU64,
    uncovered: AtomicU64,
    room: MemtableRoom,
    /// Why the last write to RocksDB failed, while no write has worked
    /// since (`RocksEngine::write_failure`).
    failure: Mutex<Option<String>>,
    failed: AtomicBool,
}

/// What a drain reuses: the spare backlog buffer swapped in for the one
/// drained, and the sorting buffers.
#[derive(Default)]
struct DrainBuffers {
    spare: BatchData,
    sort: SortScratch,
}

/// The id RocksDB gives `cf` in `WriteBatch` records, read off a record it
/// encodes (ids are RocksDB's to assign, when a family is created).
fn cf_id(db: &DB, cf: Cf) -> u32 {
    let handle = db.cf_handle(cf.name()).expect("column family opened at start");
    let mut probe = WriteBatch::default();
    probe.put_cf(handle, b"", b"");
    let record = &probe.data()[BatchData::HEADER..];
    match record[0] {
        tag::VALUE => 0,
        _ => varint(record, &mut 1).expect("a family id") as u32,
    }
}

/// The RocksDB engine.
pub struct RocksEngine {
    db: Arc<DB>,
    /// Each family's id in `WriteBatch` records, by `Cf::index`.
    cf_ids: [u32; Cf::ALL.len()],
    shared: Arc<FilterShared>,
    writeback: Arc<Writeback>,
    drainer: Option<std::thread::JoinHandle<()>>,
    /// Batches sealed into the log and not yet written (see `begin_write`).
    in_flight: AtomicU64,
    /// Batches written so far (tests check that one EXEC is one batch).
    batches: AtomicU64,
    /// Point reads' options, made once: `get_pinned_cf` creates and frees
    /// a C++ `ReadOptions` per read.
    point_read: ReadOptions,
}

impl RocksEngine {
    pub fn open(dir: &Path, config: &RocksConfig) -> Result<RocksEngine, EngineError> {
        std::fs::create_dir_all(dir).map_err(|e| EngineError::Io(dir.display().to_string(), e))?;
        let shared = Arc::new(FilterShared::default());
        let cache = Cache::new_lru_cache(config.block_cache_bytes);

        let mut db_options = Options::default();
        db_options.create_if_missing(true);
        db_options.create_missing_column_families(true);
        db_options.increase_parallelism(2);
        db_options.set_max_background_jobs(2);
        // Writers are already serialized by the log's append lock: RocksDB's
        // own write-group spinning only burns a core.
        db_options.set_enable_write_thread_adaptive_yield(false);
        db_options.set_keep_log_file_num(4);
        // Strata's own log is the write-ahead log of every engine: RocksDB
        // writes skip RocksDB's WAL, and memtables are flushed as one cut
        // across column families (`switch_memtables`) at a point the log
        // already holds durably.
        db_options.set_atomic_flush(true);
        // One thread at a time writes (see `RocksEngine::write`), in key
        // order: the memtable's skiplist then finds each key's place from
        // the last one's, which it only remembers for writes one at a time.
        db_options.set_allow_concurrent_memtable_write(false);

        let cf_options = |cf: Cf| {
            let mut block = BlockBasedOptions::default();
            block.set_block_cache(&cache);
            block.set_bloom_filter(10.0, false);
            block.set_cache_index_and_filter_blocks(true);
            block.set_pin_l0_filter_and_index_blocks_in_cache(true);
            let mut options = Options::default();
            options.set_block_based_table_factory(&block);
            // Strata switches memtables itself at `write_buffer_bytes`, and
            // never lets them reach RocksDB's own trigger (`MemtableRoom`).
            options.set_write_buffer_size(config.write_buffer_bytes * 8);
            options.set_max_write_buffer_number(4);
            // Most point lookups (the read before every write) miss the
            // memtable; a bloom filter answers that without a skiplist walk.
            // It is sized from `write_buffer_size` and zeroed up front, at
            // every open: a fifth of `write_buffer_bytes`.
            options.set_memtable_whole_key_filtering(true);
            options.set_memtable_prefix_bloom_ratio(0.025);
            // Flushes write L0 uncompressed: compaction reads those files
            // soon, and LZ4 at flush was a quarter of its CPU (MSET), on
            // the cores the connections need. Levels below compress.
            let mut levels = [DBCompressionType::Lz4; 7];
            levels[0] = DBCompressionType::None;
            options.set_compression_per_level(&levels);
            options.set_bottommost_compression_type(DBCompressionType::Zstd);
            options.set_level_compaction_dynamic_level_bytes(true);
            // Off while recovery runs (it competes for the CPU with
            // loading); `enable_compactions` turns them on once serving.
            options.set_disable_auto_compactions(true);
            match cf {
                Cf::Default => options.set_merge_operator_associative("add_i64", add_i64),
                Cf::Meta => options.set_compaction_filter_factory(MetaFilterFactory(shared.clone())),
                Cf::Sub => options.set_compaction_filter_factory(SubFilterFactory(shared.clone())),
                Cf::Expire => {}
            }
            ColumnFamilyDescriptor::new(cf.name(), options)
        };
        let descriptors: Vec<_> = Cf::ALL.iter().map(|&cf| cf_options(cf)).collect();
        // Nor a flush at close: what RocksDB has not flushed, the log holds
        // (and it may hold writes whose records did not reach the disk).
        let db_options = db_options.get_options_from_string("avoid_flush_during_shutdown=true")?;
        let db = DB::open_cf_descriptors(&db_options, dir, descriptors)?;
        let db = Arc::new(db);
        let _ = shared.db.set(Arc::downgrade(&db));
        let mut write_options = WriteOptions::default();
        write_options.disable_wal(true);
        let writeback = Arc::new(Writeback {
            db: db.clone(),
            write_options,
            cache: RowCache::new(config.row_cache_bytes),
            backlog: Mutex::new(Backlog::default()),
            due: AtomicBool::new(false),
            wake: Condvar::new(),
            stopping: AtomicBool::new(false),
            draining: Mutex::new(DrainBuffers::default()),
            applied: AtomicU64::new(0),
            uncovered: AtomicU64::new(0),
            room: MemtableRoom {
                limit: config.write_buffer_bytes as u64 * 4,
                state: Mutex::new(RoomState::default()),
                freed: Condvar::new(),
                wanted: AtomicBool::new(false),
            },
            failure: Mutex::new(None),
            failed: AtomicBool::new(false),
        });
        let drained = writeback.clone();
        let drainer = std::thread::Builder::new()
            .name("strata-rocks-drain".into())
            .spawn(move || drained.drain_loop())
            .map_err(|e| EngineError::Io("starting the RocksDB drainer thread".into(), e))?;
        let cf_ids = Cf::ALL.map(|cf| cf_id(&db, cf));
        Ok(RocksEngine {
            db,
            cf_ids,
            shared,
            writeback,
            drainer: Some(drainer),
            in_flight: AtomicU64::new(0),
            batches: AtomicU64::new(0),
            point_read: ReadOptions::default(),
        })
    }

    /// The writes of a `WriteBatch`'s data (a log record's), in order, as
    /// `put`, `delete` and `delete_range` make them; an error for anything
    /// else (not written by this engine, or damaged).
    pub fn writes_of<'a>(&self, data: &'a [u8]) -> Result<Vec<BatchWrite<'a>>, EngineError> {
        let damaged = || EngineError::Corrupt("a RocksDB batch this engine cannot read".into());
        let slice = |pos: &mut usize| -> Option<&'a [u8]> {
            let len = varint(data, pos)?;
            let bytes = data.get(*pos..*pos + len)?;
            *pos += len;
            Some(bytes)
        };
        let mut writes = Vec::new();
        let mut pos = BatchData::HEADER.min(data.len());
        while pos < data.len() {
            let tag = data[pos];
            pos += 1;
            let id = match tag {
                tag::CF_VALUE | tag::CF_DELETION | tag::CF_RANGE_DELETION => {
                    varint(data, &mut pos).ok_or_else(damaged)?
                }
                _ => 0,
            };
            let cf = Cf::ALL[self.cf_ids.iter().position(|&known| known as usize == id).ok_or_else(damaged)?];
            let first = slice(&mut pos).ok_or_else(damaged)?;
            writes.push(match tag {
                tag::VALUE | tag::CF_VALUE => {
                    BatchWrite::Put { cf, key: first, value: slice(&mut pos).ok_or_else(damaged)? }
                }
                tag::DELETION | tag::CF_DELETION => BatchWrite::Delete { cf, key: first },
                tag::RANGE_DELETION | tag::CF_RANGE_DELETION => {
                    BatchWrite::DeleteRange { cf, from: first, to: slice(&mut pos).ok_or_else(damaged)? }
                }
                _ => return Err(damaged()),
            });
        }
        Ok(writes)
    }

    pub fn put(&self, batch: &mut Batch, cf: Cf, key: Vec<u8>, value: Vec<u8>) {
        batch.record((tag::VALUE, tag::CF_VALUE), self.cf_ids[cf.index()], &[&key, &value]);
        if rowcache::cached(cf) {
            batch.cached.push((cf, key, Some(value)));
        }
    }

    pub fn delete(&self, batch: &mut Batch, cf: Cf, key: Vec<u8>) {
        batch.record((tag::DELETION, tag::CF_DELETION), self.cf_ids[cf.index()], &[&key]);
        if rowcache::cached(cf) {
            batch.cached.push((cf, key, None));
        }
    }

    pub fn delete_range(&self, batch: &mut Batch, cf: Cf, from: &[u8], to: &[u8]) {
        batch.record((tag::RANGE_DELETION, tag::CF_RANGE_DELETION), self.cf_ids[cf.index()], &[from, to]);
        batch.range_deleted |= rowcache::cached(cf);
    }

    /// A batch of this engine holding `writes` (read from another node's
    /// batch with `writes_of`: its column family ids may differ), with the
    /// row cache's entries for them.
    pub fn batch_of(&self, writes: &[BatchWrite]) -> Batch {
        let mut batch = Batch::default();
        for write in writes {
            match *write {
                BatchWrite::Put { cf, key, value } => self.put(&mut batch, cf, key.to_vec(), value.to_vec()),
                BatchWrite::Delete { cf, key } => self.delete(&mut batch, cf, key.to_vec()),
                BatchWrite::DeleteRange { cf, from, to } => self.delete_range(&mut batch, cf, from, to),
            }
        }
        batch
    }

    /// Writes everything this engine holds as RocksDB table files under
    /// `scratch`, one per column family that holds anything, for another
    /// engine to take in place of its own (`replace_contents`). Writers may
    /// go on: the files hold what was applied when each family was read.
    pub fn export_tables(&self, scratch: &Path) -> Result<Vec<(Cf, std::path::PathBuf)>, EngineError> {
        self.drain()?;
        std::fs::create_dir_all(scratch).map_err(|e| EngineError::Io(scratch.display().to_string(), e))?;
        let mut tables = Vec::new();
        for cf in Cf::ALL {
            let path = scratch.join(format!("{}.sst", cf.name()));
            let options = Options::default();
            let mut writer = rocksdb::SstFileWriter::create(&options);
            writer.open(&path)?;
            let mut any = false;
            for item in self.db.iterator_cf(self.cf(cf), IteratorMode::Start) {
                let (key, value) = item?;
                writer.put(&key, &value)?;
                any = true;
            }
            if any {
                writer.finish()?;
                tables.push((cf, path));
            }
        }
        Ok(tables)
    }

    /// Replaces everything this engine holds with the tables
    /// `export_tables` wrote (a replica's full sync): every column family
    /// emptied, the files ingested. Nobody may read or write meanwhile.
    pub fn replace_contents(&self, tables: &[(Cf, std::path::PathBuf)]) -> Result<(), EngineError> {
        self.drain()?;
        for cf in Cf::ALL {
            // Everything from the first key to the last, then the last.
            let handle = self.cf(cf);
            let first = self.db.iterator_cf(handle, IteratorMode::Start).next().transpose()?;
            let last = self.db.iterator_cf(handle, IteratorMode::End).next().transpose()?;
            if let (Some((first, _)), Some((last, _))) = (first, last) {
                self.db.delete_range_cf(handle, &first, &last)?;
                self.db.delete_cf(handle, &last)?;
            }
            let files: Vec<&std::path::PathBuf> = tables.iter().filter(|(c, _)| *c == cf).map(|(_, p)| p).collect();
            if !files.is_empty() {
                self.db.ingest_external_file_cf(handle, files)?;
            }
        }
        self.writeback.cache.clear();
        Ok(())
    }

    fn cf(&self, cf: Cf) -> &rocksdb::ColumnFamily {
        self.db.cf_handle(cf.name()).expect("column family opened at start")
    }

    /// A point lookup, through the row cache for the families it holds.
    pub fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, EngineError> {
        if !rowcache::cached(cf) {
            return self.read(cf, key);
        }
        match self.writeback.cache.lookup(cf, key) {
            Lookup::Hit(value) => Ok(value),
            Lookup::Miss(token) => {
                let value = self.read(cf, key)?;
                self.writeback.cache.fill(cf, key, value.as_deref(), token);
                Ok(value)
            }
        }
    }

    fn read(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, EngineError> {
        // Keys the cache holds are read from RocksDB only when the cache
        // misses them, and it never drops a write RocksDB lacks; the other
        // families wait for the backlog, and so does every read while a
        // batch the cache does not cover waits in it.
        let writeback = &*self.writeback;
        if !rowcache::cached(cf)
            || writeback.applied.load(Ordering::Acquire) < writeback.uncovered.load(Ordering::Acquire)
        {
            self.drain()?;
        }
        Ok(self.db.get_pinned_cf_opt(self.cf(cf), key, &self.point_read)?.map(|v| v.to_vec()))
    }

    pub fn row_cache_stats(&self) -> RowCacheStats {
        self.writeback.cache.stats()
    }

    /// Visits keys in `[start, end)` in order (or reverse order) until
    /// `visit` returns false.
    pub fn scan(
        &self,
        cf: Cf,
        start: &[u8],
        end: &[u8],
        reverse: bool,
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), EngineError> {
        self.drain()?;
        let mut read = ReadOptions::default();
        read.set_iterate_lower_bound(start.to_vec());
        read.set_iterate_upper_bound(end.to_vec());
        let mode = if reverse { IteratorMode::End } else { IteratorMode::From(start, Direction::Forward) };
        for item in self.db.iterator_cf_opt(self.cf(cf), read, mode) {
            let (key, value) = item?;
            if !visit(&key, &value) {
                break;
            }
        }
        Ok(())
    }

    /// Marks a batch as on its way: the log holds it and `write` follows.
    /// Called with the log's append lock held, so a memtable switch (under
    /// that lock too) sees every batch before its cut and waits for them.
    pub fn begin_write(&self) {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
    }

    /// The batch marked by `begin_write` was written (or dropped).
    pub fn end_write(&self) {
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
    }

    /// Applies a batch (atomically for every reader that holds a lock on
    /// its keys), write-back: its keys' new values go to the row cache at
    /// once, and the batch joins a backlog that the drainer thread writes
    /// to RocksDB as one sorted batch (`Writeback::drain`), in log order.
    /// One RocksDB write per command cost as much as its memtable inserts.
    /// Lookups find the values in the cache (which keeps them until
    /// RocksDB has them); scans and reads of other families drain the
    /// backlog first. Writers of a key hold its shard lock, so the cache
    /// and the backlog follow the log's order for every key.
    ///
    /// It cannot fail: the batch's log record is appended already, so the
    /// write has happened whatever RocksDB says. Should RocksDB refuse the
    /// backlog, the backlog keeps it and the drainer tries again, while
    /// `write_failure` refuses new write commands.
    pub fn write(&self, batch: Batch) {
        self.batches.fetch_add(1, Ordering::Relaxed);
        let Batch { data, cached, range_deleted } = batch;
        let writeback = &*self.writeback;
        let (generation, size) = {
            let mut backlog = writeback.backlog.lock();
            backlog.joined.append(&data);
            backlog.generation += 1;
            if range_deleted || !writeback.cache.enabled() {
                writeback.uncovered.store(backlog.generation, Ordering::Release);
            }
            if backlog.joined.len() >= BACKLOG_DUE && !writeback.due.swap(true, Ordering::Relaxed) {
                writeback.wake.notify_one();
            }
            (backlog.generation, backlog.joined.len())
        };
        if range_deleted {
            // Every shard is locked (FLUSHDB, FLUSHALL): no reader looks
            // until reads drain the backlog (`uncovered`).
            writeback.cache.clear();
        }
        for (cf, key, value) in cached {
            writeback.cache.update(cf, &key, value.as_deref(), generation);
        }
        if size >= BACKLOG_FULL {
            // The drainer fell behind: this writer helps. A failure is the
            // drainer's to retry.
            let _ = writeback.drain(Patience::NoRoomWait);
        }
    }

    /// Writes the backlog to RocksDB, waiting for a drain in progress and,
    /// if need be, for room in the memtables (`MemtableRoom`).
    pub fn drain(&self) -> Result<(), EngineError> {
        self.writeback.drain(Patience::Wait)
    }

    /// Writes the backlog to RocksDB if that can be done at once (no other
    /// drain under way, room in the memtables); Ok either way.
    pub fn drain_if_idle(&self) -> Result<(), EngineError> {
        match self.writeback.drain(Patience::Skip) {
            Err(EngineError::MemtableFull) => Ok(()),
            other => other,
        }
    }

    /// Applies a batch given as its data (`Batch::data`), as the log
    /// stores it: replay at startup, before anything reads through the
    /// cache (a cache something was read into is cleared). Let in whatever
    /// room the memtables have: the records it applies are on disk.
    pub fn write_data(&self, data: &[u8]) -> Result<(), EngineError> {
        self.drain()?;
        let writeback = &*self.writeback;
        writeback.write_rocks(data)?;
        if writeback.cache.is_populated() {
            writeback.cache.clear();
        }
        Ok(())
    }

    /// Whether writes to RocksDB fail (`write_failure` says why).
    #[inline]
    pub fn write_failed(&self) -> bool {
        self.writeback.failed.load(Ordering::Acquire)
    }

    /// Why writes to RocksDB fail, while they do (none has worked since
    /// the last that failed): write commands are refused meanwhile.
    pub fn write_failure(&self) -> Option<String> {
        if !self.writeback.failed.load(Ordering::Acquire) {
            return None;
        }
        self.writeback.failure.lock().clone()
    }

    /// Whether a write is waiting for the memtables to be switched
    /// (`MemtableRoom`): the keyspace switches them at once.
    pub fn switch_wanted(&self) -> bool {
        self.writeback.room.wanted.load(Ordering::Relaxed)
    }

    /// How many batches `write` has applied.
    pub fn batches_written(&self) -> u64 {
        self.batches.load(Ordering::Relaxed)
    }

    /// Turns background compactions on (they are off while recovering).
    pub fn enable_compactions(&self) -> Result<(), EngineError> {
        for cf in Cf::ALL {
            self.db.set_options_cf(self.cf(cf), &[("disable_auto_compactions", "false")])?;
        }
        Ok(())
    }

    /// The last log sequence whose RocksDB writes are durable in SST files
    /// (stored by `switch_memtables`; 0 for a new database).
    /// A RocksDB checkpoint in `path` (a new directory; its files are hard
    /// links where `path` is on the same filesystem) of what the flushed
    /// files hold, without flushing: the memtables hold records the log may
    /// not have made durable. Returns the log sequence it holds.
    pub fn checkpoint_flushed(&self, path: &Path) -> Result<RocksCheckpoint, EngineError> {
        rocksdb::checkpoint::Checkpoint::new(&self.db)?.create_checkpoint_with_log_size(path, u64::MAX)?;
        let names = Cf::ALL.map(Cf::name);
        let copy = DB::open_cf_for_read_only(&Options::default(), path, names, false)?;
        let raw = copy.get_cf(&copy.cf_handle(Cf::Default.name()).expect("default column family"), APPLIED_SEQ_KEY)?;
        let seq = raw.and_then(|raw| raw.try_into().ok().map(u64::from_le_bytes)).unwrap_or(0);
        let tables = copy
            .live_files()?
            .into_iter()
            .map(|file| {
                let mut identity = Vec::new();
                for part in [file.start_key.unwrap_or_default(), file.end_key.unwrap_or_default()] {
                    identity.extend_from_slice(&(part.len() as u64).to_le_bytes());
                    identity.extend_from_slice(&part);
                }
                let id = format!(
                    "{}:{}:{}:{}:{:08x}",
                    file.column_family_name,
                    file.size,
                    file.num_entries,
                    file.num_deletions,
                    crc32c::crc32c(&identity)
                );
                (file.name.trim_start_matches('/').to_string(), id)
            })
            .collect();
        Ok(RocksCheckpoint { seq, tables })
    }

    pub fn applied_seq(&self) -> Result<u64, EngineError> {
        Ok(self
            .get(Cf::Default, APPLIED_SEQ_KEY)?
            .and_then(|raw| raw.try_into().ok().map(u64::from_le_bytes))
            .unwrap_or(0))
    }

    /// Records that everything up to `seq` is in the memtables (waiting
    /// for the batches in flight to get there) and writes `batch` with it;
    /// takes the backlog so far, and keeps drains out until the switch
    /// `finish`es: writing that backlog and starting to flush the memtables
    /// (all column families as one cut). The caller holds the log's append
    /// lock, and the log is durable through `seq`; it lets go of the lock
    /// before `finish` (appends meanwhile reach the cache and the backlog,
    /// not the memtables, which drains alone write).
    pub fn switch_memtables(&self, mut batch: Batch, seq: u64) -> PendingSwitch<'_> {
        let writeback = &*self.writeback;
        // Every record is durable: writes waiting for room go in, and
        // finish (writers in flight may be among them).
        writeback.room.begin_switch();
        while self.in_flight.load(Ordering::Acquire) > 0 {
            std::thread::yield_now();
        }
        self.put(&mut batch, Cf::Default, APPLIED_SEQ_KEY.to_vec(), seq.to_le_bytes().to_vec());
        self.write(batch);
        // Held until the room is counted again from zero: no drain slips
        // into the new memtables uncounted, nor after `seq` into these.
        let mut buffers = writeback.draining.lock();
        let generation = writeback.take_backlog(&mut buffers, false).expect("unguarded");
        PendingSwitch { engine: self, buffers: Some(buffers), generation }
    }

    /// Whether switched memtables are still being flushed.
    pub fn flush_pending(&self) -> bool {
        Cf::ALL.iter().any(|&cf| self.property(cf, "rocksdb.num-immutable-mem-table").unwrap_or(0) > 0)
    }

    /// Records durably that RocksDB holds everything up to `seq` (a
    /// restored snapshot whose parts are stamped at one sequence).
    pub fn stamp_applied_seq(&self, seq: u64) -> Result<(), EngineError> {
        let mut batch = Batch::default();
        self.put(&mut batch, Cf::Default, APPLIED_SEQ_KEY.to_vec(), seq.to_le_bytes().to_vec());
        self.write(batch);
        self.flush()
    }

    /// Flushes every memtable and waits, outside any log barrier: for tests
    /// of the engine alone and tools (the server switches memtables behind
    /// the log).
    pub fn flush(&self) -> Result<(), EngineError> {
        let writeback = &*self.writeback;
        writeback.room.begin_switch();
        let mut buffers = writeback.draining.lock();
        let flushed = writeback.drain_locked(&mut buffers, false).and_then(|()| {
            let cfs: Vec<_> = Cf::ALL.iter().map(|&cf| self.cf(cf)).collect();
            Ok(self.db.flush_cfs_opt(&cfs, &FlushOptions::default())?)
        });
        writeback.room.end_switch(flushed.is_ok());
        flushed
    }

    /// Compacts everything (tests use it to run the compaction filters).
    pub fn compact_all(&self) {
        for cf in Cf::ALL {
            self.db.compact_range_cf(self.cf(cf), None::<&[u8]>, None::<&[u8]>);
        }
    }

    /// Tells the compaction filter that every key expiring before `ms` has
    /// been deleted by active expiry.
    pub fn set_expired_before(&self, ms: u64) {
        self.shared.expired_before_ms.fetch_max(ms, Ordering::Relaxed);
    }

    /// An integer property of the database, e.g. `rocksdb.estimate-num-keys`.
    pub fn property(&self, cf: Cf, name: &str) -> Option<u64> {
        self.db.property_int_value_cf(self.cf(cf), name).ok().flatten()
    }

    /// Bytes of SST files on disk.
    pub fn disk_bytes(&self) -> u64 {
        Cf::ALL.iter().filter_map(|&cf| self.property(cf, "rocksdb.total-sst-files-size")).sum()
    }
}

/// The merge operator of per-database counters: operands are i64 deltas.
fn add_i64(_key: &[u8], existing: Option<&[u8]>, operands: &MergeOperands) -> Option<Vec<u8>> {
    let decode = |raw: &[u8]| raw.try_into().map(i64::from_le_bytes).unwrap_or(0);
    let mut total = existing.map(decode).unwrap_or(0);
    for operand in operands {
        total = total.wrapping_add(decode(operand));
    }
    Some(total.to_le_bytes().to_vec())
}

/// Drops meta records of keys that expired before active expiry's watermark.
struct MetaFilterFactory(Arc<FilterShared>);
struct MetaFilter {
    expired_before_ms: u64,
}

impl CompactionFilterFactory for MetaFilterFactory {
    type Filter = MetaFilter;

    fn create(&mut self, _context: CompactionFilterContext) -> MetaFilter {
        MetaFilter { expired_before_ms: self.0.expired_before_ms.load(Ordering::Relaxed) }
    }

    fn name(&self) -> &CStr {
        c"strata-meta-filter-factory"
    }
}

impl CompactionFilter for MetaFilter {
    fn filter(&mut self, _level: u32, _key: &[u8], value: &[u8]) -> Decision {
        match Meta::decode(value) {
            Some(meta) if meta.expire_ms != 0 && meta.expire_ms < self.expired_before_ms => Decision::Remove,
            _ => Decision::Keep,
        }
    }

    fn name(&self) -> &CStr {
        c"strata-meta-filter"
    }
}

/// Drops hash fields whose hash no longer exists: deleted, replaced by a
/// newer version or another type, or expired.
struct SubFilterFactory(Arc<FilterShared>);
struct SubFilter {
    db: Option<Arc<DB>>,
    now_ms: u64,
    /// The last hash looked up: its meta key, and the version whose fields
    /// are live (None: none are). A compaction meets a hash's fields one
    /// after another, and a meta lookup per field was most of its cost
    /// under HSET on one big hash. A hash deleted meanwhile keeps fields
    /// until a later compaction; a newer version's fields cannot be in
    /// this compaction's input.
    last: Option<(Vec<u8>, Option<u64>)>,
}

impl CompactionFilterFactory for SubFilterFactory {
    type Filter = SubFilter;

    fn create(&mut self, _context: CompactionFilterContext) -> SubFilter {
        SubFilter { db: self.0.db.get().and_then(Weak::upgrade), now_ms: now_ms(), last: None }
    }

    fn name(&self) -> &CStr {
        c"strata-sub-filter-factory"
    }
}

impl SubFilter {
    /// The version of the hash at `meta_key` whose fields are live; Err
    /// when that cannot be known.
    fn live_version(db: &DB, meta_key: &[u8], now_ms: u64) -> Result<Option<u64>, ()> {
        let meta_cf = db.cf_handle(Cf::Meta.name()).ok_or(())?;
        Ok(match db.get_pinned_cf(meta_cf, meta_key).map_err(|_| ())? {
            Some(raw) => match Meta::decode(&raw) {
                Some(meta) if meta.key_type == KeyType::Hash && !meta.is_expired(now_ms) => {
                    HashBody::decode(meta.body).map(|h| h.version)
                }
                _ => None,
            },
            None => None,
        })
    }
}

impl CompactionFilter for SubFilter {
    fn filter(&mut self, _level: u32, key: &[u8], _value: &[u8]) -> Decision {
        let (Some(db), Some(sub)) = (&self.db, decode_sub_key(key)) else {
            return Decision::Keep;
        };
        let meta_key = meta_key(sub.db, sub.slot, sub.key);
        let live = match &self.last {
            Some((last_key, version)) if *last_key == meta_key => *version,
            _ => match SubFilter::live_version(db, &meta_key, self.now_ms) {
                Ok(version) => {
                    self.last = Some((meta_key, version));
                    version
                }
                // When in doubt, keep: a field must never be lost to an I/O error.
                Err(()) => return Decision::Keep,
            },
        };
        if live == Some(sub.version) {
            Decision::Keep
        } else {
            Decision::Remove
        }
    }

    fn name(&self) -> &CStr {
        c"strata-sub-filter"
    }
}

impl Writeback {
    /// The drainer thread: applies the backlog whenever it is due, and
    /// what is left of it once a second (the cache keeps every entry
    /// RocksDB lacks, and scans would find it to apply).
    fn drain_loop(&self) {
        let mut retry = RETRY_FIRST;
        loop {
            let due = {
                let mut backlog = self.backlog.lock();
                if !self.due.load(Ordering::Relaxed) && !self.stopping.load(Ordering::Acquire) {
                    self.wake.wait_for(&mut backlog, CATCH_UP);
                }
                self.due.load(Ordering::Relaxed)
            };
            if self.stopping.load(Ordering::Acquire) {
                return;
            }
            #[cfg(feature = "failpoints")]
            fail::fail_point!("rocks-drainer");
            match self.drain(Patience::Wait) {
                Ok(()) => retry = RETRY_FIRST,
                // The switch it asked for comes with the next cron tick.
                Err(EngineError::MemtableFull) => {}
                Err(_) => {
                    // The backlog keeps the batch (`write_rocks` said why,
                    // once); the next drain tries again, less often.
                    std::thread::sleep(retry);
                    retry = (retry * 2).min(RETRY_LAST);
                }
            }
            if !due {
                // Writes slowed down: the buffers kept for the next drain
                // (megabytes) go back, and the backlog's grown one too.
                let mut buffers = self.draining.lock();
                *buffers = DrainBuffers::default();
                let mut backlog = self.backlog.lock();
                if backlog.joined.is_empty() {
                    backlog.joined = BatchData::default();
                }
            }
        }
    }

    fn drain(&self, patience: Patience) -> Result<(), EngineError> {
        let deadline = std::time::Instant::now() + ROOM_WAIT;
        loop {
            let mut buffers = match patience {
                Patience::Wait | Patience::NoRoomWait => self.draining.lock(),
                Patience::Skip => match self.draining.try_lock() {
                    Some(buffers) => buffers,
                    None => return Ok(()),
                },
            };
            match self.drain_locked(&mut buffers, true) {
                // Waits for the switch it asked for without holding up
                // other drains (writers past `BACKLOG_FULL` give up at once).
                Err(EngineError::MemtableFull) if patience == Patience::Wait => {
                    drop(buffers);
                    if !self.room.wait_for_room(deadline) {
                        return Err(EngineError::MemtableFull);
                    }
                }
                other => return other,
            }
        }
    }

    /// Writes the backlog to RocksDB, if the memtables have room for it
    /// (unless `guarded` is false: a switch is under way, everything is
    /// durable); the caller holds `draining`.
    fn drain_locked(&self, buffers: &mut DrainBuffers, guarded: bool) -> Result<(), EngineError> {
        let generation = self.take_backlog(buffers, guarded)?;
        self.write_taken(buffers, generation)
    }

    /// Moves the backlog into `buffers.spare` (the backlog goes on in the
    /// spare buffer, already grown); the generation of its last batch
    /// (None when it was empty). `guarded`: refused when the memtables
    /// have no room for it.
    fn take_backlog(&self, buffers: &mut DrainBuffers, guarded: bool) -> Result<Option<u64>, EngineError> {
        let mut backlog = self.backlog.lock();
        if backlog.joined.is_empty() {
            self.due.store(false, Ordering::Relaxed);
            return Ok(None);
        }
        // Checked before any work: writers past `BACKLOG_FULL` ask on every
        // write while the memtables are full.
        if guarded {
            self.room.check(memtable_size(backlog.joined.data()))?;
        }
        self.due.store(false, Ordering::Relaxed);
        std::mem::swap(&mut backlog.joined, &mut buffers.spare);
        Ok(Some(backlog.generation))
    }

    /// Writes what `take_backlog` took to RocksDB. Should RocksDB refuse
    /// the write, the backlog keeps it, in front of what came since (the
    /// next drain tries again), and the cache keeps its values: readers
    /// still see every write.
    fn write_taken(&self, buffers: &mut DrainBuffers, generation: Option<u64>) -> Result<(), EngineError> {
        let Some(generation) = generation else { return Ok(()) };
        let DrainBuffers { spare: joined, sort } = buffers;
        if let Err(e) = self.write_rocks(sort_batch(joined.data(), sort).unwrap_or(joined.data())) {
            self.put_back(joined);
            return Err(e);
        }
        joined.clear();
        self.cache.set_applied(generation);
        self.applied.store(generation, Ordering::Release);
        Ok(())
    }

    /// Puts a taken backlog back in front of what came since.
    fn put_back(&self, taken: &mut BatchData) {
        let mut backlog = self.backlog.lock();
        let mut retry = std::mem::take(taken);
        retry.append(backlog.joined.data());
        self.due.store(retry.len() >= BACKLOG_DUE, Ordering::Relaxed);
        backlog.joined = retry;
    }

    /// Writes a batch to RocksDB's memtables, counting the room it takes
    /// (`MemtableRoom`). A failure is remembered until a write works again.
    fn write_rocks(&self, data: &[u8]) -> Result<(), EngineError> {
        let size = memtable_size(data);
        self.room.take(size);
        let written = match crate::faults::injected_error("rocks-write") {
            Some(error) => Err(EngineError::Io("writing to RocksDB".into(), error)),
            None => self.db.write_opt(WriteBatch::from_data(data), &self.write_options).map_err(EngineError::from),
        };
        match &written {
            Ok(()) => {
                if self.failed.swap(false, Ordering::AcqRel) {
                    tracing::warn!("RocksDB takes writes again: write commands are accepted");
                }
            }
            Err(e) => {
                self.room.give_back(size);
                let reason = match e {
                    EngineError::Io(_, error) => crate::faults::strerror(error),
                    EngineError::Rocks(error) => error.clone().into_string(),
                    other => other.to_string(),
                };
                *self.failure.lock() = Some(reason);
                if !self.failed.swap(true, Ordering::AcqRel) {
                    tracing::error!("writing to RocksDB failed: {e}; write commands are refused until a retry works");
                }
            }
        }
        written
    }
}

impl Drop for RocksEngine {
    fn drop(&mut self) {
        self.writeback.stopping.store(true, Ordering::Release);
        self.writeback.room.close();
        self.writeback.wake.notify_one();
        if let Some(drainer) = self.drainer.take() {
            let _ = drainer.join();
        }
        // RocksDB closes without flushing (`avoid_flush_during_shutdown`),
        // and the backlog is dropped: the log holds both.
        // Compaction filters hold the database while they run; wait for them
        // so the last reference is never dropped on a compaction thread.
        self.db.cancel_all_background_work(true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Random puts and deletes over a few keys in every column family,
    /// joined as the backlog joins them: the sorted batch leaves RocksDB
    /// exactly as the batches applied in order do.
    fn sorted_batch(data: &[u8]) -> Option<Vec<u8>> {
        sort_batch(data, &mut SortScratch::default()).map(<[u8]>::to_vec)
    }

    #[test]
    fn batches_are_encoded_as_rocksdb_encodes_them() {
        let dir = tempfile::tempdir().unwrap();
        let engine = RocksEngine::open(dir.path(), &RocksConfig::default()).unwrap();
        let (mut ours, mut theirs) = (Batch::default(), WriteBatch::default());
        let mut written = Vec::new();
        // Lengths on each side of a varint byte boundary.
        for (i, len) in [0, 1, 127, 128, 300, 16_383, 16_384, 70_000].into_iter().enumerate() {
            for cf in Cf::ALL {
                let (key, value) = (vec![b'k'; len], vec![i as u8; len / 2 + 1]);
                engine.put(&mut ours, cf, key.clone(), value.clone());
                theirs.put_cf(engine.cf(cf), &key, &value);
                engine.delete(&mut ours, cf, key.clone());
                theirs.delete_cf(engine.cf(cf), &key);
                engine.delete_range(&mut ours, cf, &key, &value);
                theirs.delete_range_cf(engine.cf(cf), &key, &value);
                written.push((cf, key, value));
            }
        }
        assert!(engine.cf_ids.iter().any(|&id| id > 0), "{:?}", engine.cf_ids);
        assert_eq!(ours.data(), theirs.data());
        // And read back as written; a cut batch is refused.
        let expected: Vec<BatchWrite> = written
            .iter()
            .flat_map(|(cf, key, value)| {
                let cf = *cf;
                [
                    BatchWrite::Put { cf, key, value },
                    BatchWrite::Delete { cf, key },
                    BatchWrite::DeleteRange { cf, from: key, to: value },
                ]
            })
            .collect();
        assert_eq!(engine.writes_of(ours.data()).unwrap(), expected);
        for cut in [13, ours.data().len() / 2, ours.data().len() - 1] {
            assert!(engine.writes_of(&ours.data()[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn a_sorted_backlog_leaves_what_the_batches_in_order_leave() {
        let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
        let config = RocksConfig { row_cache_bytes: 0, ..RocksConfig::default() };
        let engines: Vec<_> = dirs.iter().map(|d| RocksEngine::open(d.path(), &config).unwrap()).collect();
        let mut joined = BatchData::default();
        let mut rng = crate::test_rng::TestRng(0x2545_f491_4f6c_dd1d);
        let mut next = move |n: u64| rng.below(n);
        for _ in 0..300 {
            let mut batch = Batch::default();
            for _ in 0..1 + next(4) {
                let cf = Cf::ALL[next(4) as usize];
                // One family's keys share a head longer than the sort
                // prefix, as the fields of one hash do; another's differ
                // only after the bytes the prefix holds.
                let key = match cf {
                    Cf::Sub => format!("hash:with-a-long-shared-head:{}", next(20)).into_bytes(),
                    Cf::Meta => format!("m{}-then-sixteen-bytes-{}", next(2), next(20)).into_bytes(),
                    _ => format!("key{}", next(20)).into_bytes(),
                };
                match next(3) {
                    0 => engines[0].delete(&mut batch, cf, key),
                    _ => engines[0].put(&mut batch, cf, key, vec![b'v'; next(300) as usize]),
                }
            }
            joined.append(batch.data());
        }
        let sorted = sorted_batch(joined.data()).expect("puts and deletes only");
        assert!(sorted.len() < joined.len(), "each key's earlier writes are dropped");
        // In (family, key) order, each key once: RocksDB inserts each next
        // to the one before.
        #[derive(Default)]
        struct Ids(Vec<(u32, Vec<u8>)>);
        impl rocksdb::WriteBatchIteratorCf for Ids {
            fn put_cf(&mut self, cf: u32, key: &[u8], _: &[u8]) {
                self.0.push((cf, key.to_vec()));
            }
            fn delete_cf(&mut self, cf: u32, key: &[u8]) {
                self.0.push((cf, key.to_vec()));
            }
            fn merge_cf(&mut self, cf: u32, key: &[u8], _: &[u8]) {
                self.0.push((cf, key.to_vec()));
            }
        }
        let mut ids = Ids::default();
        WriteBatch::from_data(&sorted).iterate_cf(&mut ids);
        assert!(ids.0.windows(2).all(|w| w[0] < w[1]), "{:?}", ids.0);
        // Buffers reused after a bigger batch (as drains reuse them) sort
        // the same.
        let mut scratch = SortScratch::default();
        sort_batch(joined.data(), &mut scratch).expect("puts and deletes only");
        let mut first_batch = Batch::default();
        engines[0].put(&mut first_batch, Cf::Sub, b"z".to_vec(), b"1".to_vec());
        engines[0].put(&mut first_batch, Cf::Meta, b"a".to_vec(), b"2".to_vec());
        let reused = sort_batch(first_batch.data(), &mut scratch).map(<[u8]>::to_vec);
        assert_eq!(reused, sorted_batch(first_batch.data()));
        engines[0].write_data(joined.data()).unwrap();
        engines[1].write_data(&sorted).unwrap();
        for cf in Cf::ALL {
            let dump = |engine: &RocksEngine| {
                let mut out = Vec::new();
                engine
                    .scan(cf, b"", b"\xff", false, &mut |k, v| {
                        out.push((k.to_vec(), v.to_vec()));
                        true
                    })
                    .unwrap();
                out
            };
            let (a, b) = (dump(&engines[0]), dump(&engines[1]));
            assert!(!a.is_empty() || cf == Cf::Default);
            assert_eq!(a, b, "{cf:?}");
        }
        // Anything else keeps its order: no sorting.
        let mut ranged = Batch::default();
        engines[0].delete_range(&mut ranged, Cf::Meta, b"a", b"b");
        assert_eq!(sorted_batch(ranged.data()), None);
        assert_eq!(sorted_batch(&joined.data()[..joined.len() - 1]), None, "a cut record");
    }

    /// A backlog that comes due is applied by the drainer thread, with no
    /// writer or reader waiting for it.
    #[test]
    fn the_drainer_applies_a_due_backlog_on_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let engine = RocksEngine::open(dir.path(), &RocksConfig::default()).unwrap();
        let value = vec![b'v'; 1000];
        let mut written = 0;
        for i in 0..u32::MAX {
            let mut batch = Batch::default();
            engine.put(&mut batch, Cf::Meta, format!("key{i:08}").into_bytes(), value.clone());
            written += batch.data().len();
            engine.write(batch);
            // Past due (batches join without their headers), short of
            // coming due twice.
            if written > BACKLOG_DUE * 3 / 2 {
                break;
            }
        }
        let in_rocksdb = || engine.db.get_cf(engine.cf(Cf::Meta), b"key00000000").unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while in_rocksdb().is_none() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(in_rocksdb(), Some(value), "the drainer wrote the backlog");
        assert!(engine.writeback.backlog.lock().joined.len() < BACKLOG_DUE);
    }

    /// Writes wait in the backlog while a small cache evicts around them:
    /// every read, point or scan, sees the last write of every key.
    #[test]
    fn written_back_values_are_read_before_and_after_rocksdb_has_them() {
        let dir = tempfile::tempdir().unwrap();
        let config = RocksConfig { row_cache_bytes: 64 * 2048, ..RocksConfig::default() };
        let engine = RocksEngine::open(dir.path(), &config).unwrap();
        let key = |i: u32| format!("key{:05}", i % 3000).into_bytes();
        for i in 0..21_000u32 {
            let mut batch = Batch::default();
            engine.put(&mut batch, Cf::Meta, key(i), i.to_le_bytes().to_vec());
            engine.write(batch);
            if i % 7000 == 0 {
                engine.drain().unwrap();
            }
        }
        let last = |k: u32| (18_000 + k).to_le_bytes().to_vec();
        for k in 0..3000 {
            assert_eq!(engine.get(Cf::Meta, &key(k)).unwrap(), Some(last(k)), "key {k} before the drain");
        }
        let mut scanned = 0;
        engine
            .scan(Cf::Meta, b"key", b"kez", false, &mut |k, v| {
                let index: u32 = std::str::from_utf8(&k[3..]).unwrap().parse().unwrap();
                assert_eq!(v, &last(index)[..]);
                scanned += 1;
                true
            })
            .unwrap();
        assert_eq!(scanned, 3000, "a scan drains the backlog first");
        // Without a log, what RocksDB holds after a close is what it flushed.
        engine.flush().unwrap();
        drop(engine);
        let engine = RocksEngine::open(dir.path(), &config).unwrap();
        for k in (0..3000).step_by(97) {
            assert_eq!(engine.get(Cf::Meta, &key(k)).unwrap(), Some(last(k)), "key {k} after reopening");
        }
    }

    fn put_keys(engine: &RocksEngine, keys: std::ops::Range<u32>, value: &[u8]) {
        for i in keys {
            let mut batch = Batch::default();
            engine.put(&mut batch, Cf::Meta, format!("key{i:08}").into_bytes(), value.to_vec());
            engine.write(batch);
        }
    }

    /// RocksDB flushes nothing on its own, however much is written between
    /// two switches: the memtables take what they have room for, the rest
    /// waits in the backlog (readers find it in the cache) and a switch is
    /// asked for; a scan, which needs RocksDB whole, waits for it.
    #[test]
    fn rocksdb_never_flushes_memtables_on_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let config = RocksConfig { write_buffer_bytes: 256 << 10, ..RocksConfig::default() };
        let engine = RocksEngine::open(dir.path(), &config).unwrap();
        let value = vec![b'v'; 1000];
        // Twenty times RocksDB's own trigger (`write_buffer_size`).
        let keys = 0..(20 * 8 * (256 << 10) / 1000);
        put_keys(&engine, keys.clone(), &value);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !engine.switch_wanted() && std::time::Instant::now() < deadline {
            engine.drain_if_idle().unwrap();
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert!(engine.switch_wanted(), "the memtables filled up and asked for a switch");
        // Anything RocksDB flushed by itself would be in SST files by now.
        std::thread::sleep(std::time::Duration::from_millis(300));
        assert_eq!(engine.disk_bytes(), 0, "RocksDB flushed memtables on its own");
        assert!(!engine.writeback.backlog.lock().joined.is_empty(), "the rest waits in the backlog");
        let last = format!("key{:08}", keys.end - 1).into_bytes();
        assert_eq!(engine.get(Cf::Meta, &last).unwrap(), Some(value.clone()), "read from the cache");
        std::thread::scope(|s| {
            let scan = s.spawn(|| {
                let mut count = 0;
                engine
                    .scan(Cf::Meta, b"key", b"kez", false, &mut |_, _| {
                        count += 1;
                        true
                    })
                    .unwrap();
                count
            });
            std::thread::sleep(std::time::Duration::from_millis(100));
            engine.switch_memtables(Batch::default(), 1).finish().unwrap();
            assert_eq!(scan.join().unwrap(), keys.len(), "the scan waited for the switch and saw every key");
        });
        assert!(!engine.switch_wanted());
        while engine.flush_pending() {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert!(engine.disk_bytes() > 0, "the switch flushed");
        assert_eq!(engine.applied_seq().unwrap(), 1);
    }

    /// A close flushes nothing either: what RocksDB had not flushed, the
    /// log holds (and replays), and it may hold writes whose log records
    /// never reached the disk.
    #[test]
    fn a_close_keeps_only_what_was_flushed() {
        let dir = tempfile::tempdir().unwrap();
        let engine = RocksEngine::open(dir.path(), &RocksConfig::default()).unwrap();
        put_keys(&engine, 0..10, b"flushed");
        engine.switch_memtables(Batch::default(), 10).finish().unwrap();
        while engine.flush_pending() {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        put_keys(&engine, 10..20, b"later");
        engine.drain().unwrap();
        drop(engine);
        let engine = RocksEngine::open(dir.path(), &RocksConfig::default()).unwrap();
        assert_eq!(engine.applied_seq().unwrap(), 10);
        assert_eq!(engine.get(Cf::Meta, b"key00000009").unwrap(), Some(b"flushed".to_vec()));
        assert_eq!(engine.get(Cf::Meta, b"key00000010").unwrap(), None, "left to the log");
    }
}
