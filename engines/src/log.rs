//! The write-ahead log: one log and one sequence for every engine.
//!
//! A record is one command's (or one EXEC's) effects: the RocksDB batch it
//! applied and the memory records it made. Records live in segment files
//! named by their first sequence (`00000000000000000042.log`), each starting
//! with a header (magic, format version, first sequence, CRC). A record is
//! framed as `[payload length u32][CRC32C of payload u32][payload]`, the
//! payload being `[seq u64][RocksDB batch length varint][batch][memory
//! records]`. Between records, time marks (format 2): frames whose payload
//! is `[0 u64][unix ms u64]`, the commit time of the records after them
//! (one whenever the millisecond changes, and one at the start of each
//! segment), which point-in-time restore reads.
//!
//! Writers append under one short lock (which also orders their RocksDB
//! writes by sequence); connections then write the shared buffer out once
//! per batch of requests (group commit) and fsync per `appendfsync`: for
//! `always` a reply waits for the fsync that covers it, which one of the
//! waiting connections makes for all of them (`claim_lead`) and then wakes
//! exactly the ones it covered (`wait_turn`); for `everysec` a syncer
//! thread fsyncs once a second.
//!
//! A write or fsync that fails stops the log until a retry writes again
//! what the disk may have lost and fsyncs it (see `Log`).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, MutexGuard};

use bytes::Bytes;

use crate::memory::codec::{encode_records, Decoder, Encoder};
use crate::memory::MemRecord;
use crate::metrics::DurabilityMetrics;

pub const MAGIC: &[u8; 8] = b"STRATLOG";
/// Format 2 added time marks; format 1 segments (none) are still read.
pub const FORMAT_VERSION: u32 = 2;
/// magic, version u32, first sequence u64, CRC32C of the preceding bytes.
pub const HEADER_LEN: usize = 8 + 4 + 8 + 4;
/// length u32 + CRC u32.
const FRAME_HEAD: usize = 8;
/// The longest payload a frame holds: its length is a u32. A longer
/// record would corrupt the log, so commits check `record_fits` before
/// anything applies; a frame claiming more is garbage.
const MAX_PAYLOAD: usize = u32::MAX as usize - 1;

/// Whether a record of a RocksDB batch of `rocks` bytes and memory
/// records encoded in `mem` bytes fits in one frame (4 GiB: an EXEC of
/// big values, or a copy of a huge key, can reach it).
pub fn record_fits(rocks: usize, mem: usize) -> bool {
    // The sequence, then the batch behind its length (a varint).
    let payload = 8 + 10 + rocks + mem;
    payload <= crate::faults::injected_number("log-max-record").unwrap_or(MAX_PAYLOAD)
}

pub mod archive;
pub mod cursor;

pub use archive::Archiver;
pub use cursor::{LogCursor, LogReader, RetentionPin};

/// What can go wrong reading or writing the log.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LogError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("log corrupt in {path} at offset {offset} (after sequence {after_seq}): {what}")]
    Corrupt { path: PathBuf, offset: u64, after_seq: u64, what: String },
    /// The records a reader asked for were truncated away.
    #[error("the log starts at sequence {first}; sequence {wanted} onwards is needed")]
    NotRetained { first: u64, wanted: u64 },
    /// A write or fsync failed earlier and no retry has succeeded since
    /// (see `Log::failure`).
    #[error("writes to the log are stopped after an error: {0}")]
    Stopped(String),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> LogError + '_ {
    move |source| LogError::Io { path: path.to_path_buf(), source }
}

/// `appendfsync`: when the log is fsynced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// Before a write is acknowledged.
    Always = 0,
    /// Once a second in the background.
    EverySec = 1,
    /// When the OS decides.
    No = 2,
}

impl FsyncPolicy {
    pub fn parse(text: &str) -> Option<FsyncPolicy> {
        match text.to_ascii_lowercase().as_str() {
            "always" => Some(FsyncPolicy::Always),
            "everysec" => Some(FsyncPolicy::EverySec),
            "no" => Some(FsyncPolicy::No),
            _ => None,
        }
    }

    fn from_u8(v: u8) -> FsyncPolicy {
        match v {
            0 => FsyncPolicy::Always,
            1 => FsyncPolicy::EverySec,
            _ => FsyncPolicy::No,
        }
    }
}

/// A decoded record.
#[derive(Debug, Clone, PartialEq)]
pub struct LogRecord {
    pub seq: u64,
    /// A RocksDB `WriteBatch`'s data; empty when the record touched only
    /// memory engines.
    pub rocks: Bytes,
    pub mem: Vec<MemRecord>,
    /// `mem` as the frame holds it (`encode_records`): passed on as it is
    /// (a replica's stream, a replica's own log).
    pub mem_encoded: Bytes,
    /// Bytes the record takes in its segment, frame included (progress).
    pub size: usize,
    /// When it was committed, in unix milliseconds, as the time mark
    /// before it says (0 when its segment has none).
    pub time_ms: u64,
}

/// Appends one framed record to `out`.
pub fn encode_frame(seq: u64, rocks: &[u8], mem: &[MemRecord], out: &mut Vec<u8>) {
    frame(seq, rocks, out, |out| encode_records(mem, out));
}

/// Appends one framed record to `out`, its memory records already
/// encoded (`encode_records`).
pub fn encode_frame_encoded(seq: u64, rocks: &[u8], mem: &[u8], out: &mut Vec<u8>) {
    frame(seq, rocks, out, |out| out.extend_from_slice(mem));
}

/// Appends the frame of record `seq`; `mem` appends its memory records.
fn frame(seq: u64, rocks: &[u8], out: &mut Vec<u8>, mem: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    out.extend_from_slice(&[0; FRAME_HEAD]);
    out.extend_from_slice(&seq.to_le_bytes());
    Encoder(out).bytes(rocks);
    mem(out);
    let payload_len = out.len() - start - FRAME_HEAD;
    if payload_len > MAX_PAYLOAD {
        // Commits check `record_fits` first: a frame that lied about its
        // length would corrupt every record after it.
        out.truncate(start);
        panic!("a log record of {payload_len} bytes does not fit in a frame");
    }
    let crc = crc32c::crc32c(&out[start + FRAME_HEAD..]);
    out[start..start + 4].copy_from_slice(&(payload_len as u32).to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

fn decode_payload(payload: Bytes) -> Option<LogRecord> {
    let seq = u64::from_le_bytes(payload.get(..8)?.try_into().ok()?);
    let size = payload.len() + FRAME_HEAD;
    let mut d = Decoder::shared(payload.slice(8..));
    let rocks = d.bytes().ok()?;
    let mem_encoded = payload.slice(8 + d.position()..);
    let mem = d.records().ok()?;
    Some(LogRecord { seq, rocks, mem, mem_encoded, size, time_ms: 0 })
}

/// Appends a time mark: the records after it were committed at `ms`.
fn encode_mark(ms: u64, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0; FRAME_HEAD]);
    out.extend_from_slice(&0u64.to_le_bytes());
    out.extend_from_slice(&ms.to_le_bytes());
    let crc = crc32c::crc32c(&out[start + FRAME_HEAD..]);
    out[start..start + 4].copy_from_slice(&16u32.to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// A frame of a record stream sent over a socket (a replica's): the log's
/// own frames, so the receiver checks each record's checksum and order as
/// recovery does.
#[derive(Debug, PartialEq)]
pub enum StreamFrame {
    Record(LogRecord),
    /// The records after it were committed at this unix millisecond time
    /// (also sent alone, as a heartbeat).
    Mark(u64),
}

/// Appends a time mark frame (`StreamFrame::Mark`).
pub fn encode_mark_frame(ms: u64, out: &mut Vec<u8>) {
    encode_mark(ms, out);
}

/// The frame at the start of `buf` and the bytes it takes; None when `buf`
/// ends inside it.
pub fn decode_stream_frame(buf: &Bytes) -> Result<Option<(StreamFrame, usize)>, &'static str> {
    match frame_at(buf, 0, 0) {
        Frame::Record { record, end } => Ok(Some((StreamFrame::Record(record), end))),
        Frame::Mark { ms, end } => Ok(Some((StreamFrame::Mark(ms), end))),
        Frame::Passed { .. } => Err("a record with sequence 0"),
        Frame::Incomplete => Ok(None),
        Frame::Bad(what) => Err(what),
    }
}

/// One frame at `pos`, if a whole valid one is there.
enum Frame {
    Record {
        record: LogRecord,
        end: usize,
    },
    /// A whole, valid frame left undecoded (its sequence is not needed).
    Passed {
        seq: u64,
        end: usize,
    },
    /// A time mark: the records after it were committed at `ms`.
    Mark {
        ms: u64,
        end: usize,
    },
    /// The buffer ends inside the frame.
    Incomplete,
    Bad(&'static str),
}

/// The frame at `pos`; records at or below `decode_after` are checked but
/// not decoded.
fn frame_at(buf: &Bytes, pos: usize, decode_after: u64) -> Frame {
    let Some(head) = buf.get(pos..pos + FRAME_HEAD) else { return Frame::Incomplete };
    let len = u32::from_le_bytes(head[..4].try_into().expect("4 bytes")) as usize;
    let crc = u32::from_le_bytes(head[4..].try_into().expect("4 bytes"));
    if !(8..=MAX_PAYLOAD).contains(&len) {
        return Frame::Bad("impossible record length");
    }
    let Some(payload) = buf.get(pos + FRAME_HEAD..pos + FRAME_HEAD + len) else { return Frame::Incomplete };
    if crc32c::crc32c(payload) != crc {
        return Frame::Bad("checksum mismatch");
    }
    let seq = u64::from_le_bytes(payload[..8].try_into().expect("8 bytes"));
    if seq == 0 {
        return match payload.get(8..16) {
            Some(ms) if len == 16 => {
                Frame::Mark { ms: u64::from_le_bytes(ms.try_into().expect("8 bytes")), end: pos + FRAME_HEAD + len }
            }
            _ => Frame::Bad("undecodable time mark"),
        };
    }
    if seq <= decode_after {
        return Frame::Passed { seq, end: pos + FRAME_HEAD + len };
    }
    match decode_payload(buf.slice(pos + FRAME_HEAD..pos + FRAME_HEAD + len)) {
        Some(record) => Frame::Record { record, end: pos + FRAME_HEAD + len },
        None => Frame::Bad("undecodable record"),
    }
}

fn encode_header(first_seq: u64) -> Vec<u8> {
    let mut h = Vec::with_capacity(HEADER_LEN);
    h.extend_from_slice(MAGIC);
    h.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    h.extend_from_slice(&first_seq.to_le_bytes());
    let crc = crc32c::crc32c(&h);
    h.extend_from_slice(&crc.to_le_bytes());
    h
}

/// The first sequence a header names, or why it is not a header.
fn decode_header(buf: &[u8]) -> Result<u64, &'static str> {
    let h = buf.get(..HEADER_LEN).ok_or("file shorter than a segment header")?;
    if &h[..8] != MAGIC {
        return Err("not a Strata log segment (bad magic)");
    }
    if crc32c::crc32c(&h[..20]) != u32::from_le_bytes(h[20..24].try_into().expect("4 bytes")) {
        return Err("segment header checksum mismatch");
    }
    let version = u32::from_le_bytes(h[8..12].try_into().expect("4 bytes"));
    if !(1..=FORMAT_VERSION).contains(&version) {
        return Err("unsupported log format version");
    }
    match u64::from_le_bytes(h[12..20].try_into().expect("8 bytes")) {
        0 => Err("segment header names sequence 0"),
        first => Ok(first),
    }
}

/// A segment file and the first sequence its name gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub path: PathBuf,
    pub first_seq: u64,
}

pub fn segment_path(dir: &Path, first_seq: u64) -> PathBuf {
    dir.join(format!("{first_seq:020}.log"))
}

/// The segments in `dir`, in sequence order.
pub fn list_segments(dir: &Path) -> Result<Vec<Segment>, LogError> {
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(io_err(dir)(e)),
    };
    for entry in entries {
        let path = entry.map_err(io_err(dir))?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if let Some(first_seq) = name.strip_suffix(".log").and_then(|s| s.parse::<u64>().ok()) {
            out.push(Segment { path, first_seq });
        }
    }
    out.sort_by_key(|s| s.first_seq);
    Ok(out)
}

/// Writes a segment of records outside the running log (a snapshot's log
/// part): the header, then each record framed as the log frames it.
pub struct SegmentWriter {
    path: PathBuf,
    out: std::io::BufWriter<File>,
    next_seq: u64,
    bytes: u64,
    /// The time of the last mark written.
    mark_ms: u64,
}

impl SegmentWriter {
    /// A new segment in `dir` whose first record will be `first_seq`.
    pub fn create(dir: &Path, first_seq: u64) -> Result<SegmentWriter, LogError> {
        let path = segment_path(dir, first_seq);
        let file = OpenOptions::new().write(true).create_new(true).open(&path).map_err(io_err(&path))?;
        let mut out = std::io::BufWriter::new(file);
        let header = encode_header(first_seq);
        out.write_all(&header).map_err(io_err(&path))?;
        Ok(SegmentWriter { path, out, next_seq: first_seq, bytes: header.len() as u64, mark_ms: 0 })
    }

    /// Appends `record`, which must be the next in sequence, after a time
    /// mark when its time differs from the last.
    pub fn append(&mut self, record: &LogRecord) -> Result<(), LogError> {
        assert_eq!(record.seq, self.next_seq, "records go in sequence");
        let mut frame_bytes = Vec::with_capacity(record.size + 24);
        if record.time_ms != self.mark_ms {
            self.mark_ms = record.time_ms;
            encode_mark(record.time_ms, &mut frame_bytes);
        }
        encode_frame(record.seq, &record.rocks, &record.mem, &mut frame_bytes);
        self.out.write_all(&frame_bytes).map_err(io_err(&self.path))?;
        self.next_seq += 1;
        self.bytes += frame_bytes.len() as u64;
        Ok(())
    }

    /// Flushes and fsyncs the segment; its path and size.
    pub fn finish(self) -> Result<(PathBuf, u64), LogError> {
        let file = self.out.into_inner().map_err(|e| io_err(&self.path)(e.into_error()))?;
        file.sync_all().map_err(io_err(&self.path))?;
        Ok((self.path, self.bytes))
    }
}

/// Writes the records `first..=last` of the log in `from` into `dir` as
/// one segment (fsynced); its path. All of them must be there.
pub fn copy_records(from: &Path, dir: &Path, first: u64, last: u64) -> Result<PathBuf, LogError> {
    let mut writer = SegmentWriter::create(dir, first)?;
    let mut cursor = LogCursor::open(from, first - 1)?;
    while let Some(record) = cursor.next_record(last)? {
        writer.append(&record)?;
    }
    if cursor.position() != last {
        let (after_seq, what) = (cursor.position(), format!("the log ends before sequence {last}"));
        return Err(LogError::Corrupt { path: from.to_path_buf(), offset: 0, after_seq, what });
    }
    Ok(writer.finish()?.0)
}

/// Where a complete read of the log ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEnd {
    /// The last record's sequence (or the one before the first segment's
    /// first sequence when there are no records).
    pub last_seq: u64,
    /// A torn tail (a crash mid-write) in the last segment: its path and
    /// the offset of the first incomplete record. Cutting the file there
    /// keeps every complete record.
    pub torn: Option<(PathBuf, u64)>,
    /// Whether that tail is only zeros the log wrote ahead of its records
    /// (`ZERO_AHEAD`): unused space, not a torn record.
    pub unused_tail: bool,
}

/// Reads every record in order, checking frames, checksums and sequence
/// continuity, and calls `visit` for each record with a sequence above
/// `after`. Damage at the very end of the last segment is a torn write and
/// is reported in `LogEnd::torn`; damage anywhere else is `Corrupt`, naming
/// the file, the offset and the last good sequence.
pub fn read_log<E: From<LogError>>(
    dir: &Path,
    after: u64,
    mut visit: impl FnMut(LogRecord) -> Result<(), E>,
) -> Result<LogEnd, E> {
    let mut cursor = LogCursor::open(dir, after)?;
    while let Some(record) = cursor.next_record(u64::MAX)? {
        visit(record)?;
    }
    Ok(cursor.end()?)
}

/// Whether any complete record with sequence `seq` or later starts after
/// `from`: if so, the damage before it is not a torn tail but corruption.
fn has_valid_frame_after(buf: &Bytes, from: usize, seq: u64) -> bool {
    let plausible = |pos: usize| {
        // The sequence field first: cheap, and rules out nearly every
        // offset before a checksum is computed.
        buf.get(pos + FRAME_HEAD..pos + FRAME_HEAD + 8)
            .map(|raw| u64::from_le_bytes(raw.try_into().expect("8 bytes")))
            .is_some_and(|s| s >= seq && s - seq < 1 << 32)
    };
    (from..buf.len()).any(|pos| {
        plausible(pos) && matches!(frame_at(buf, pos, u64::MAX), Frame::Passed { seq: found, .. } if found >= seq)
    })
}

/// Cuts a torn tail off (or removes a segment torn inside its header).
pub fn cut_torn_tail(path: &Path, offset: u64) -> Result<(), LogError> {
    if offset == 0 {
        return std::fs::remove_file(path).map_err(io_err(path));
    }
    let file = OpenOptions::new().write(true).open(path).map_err(io_err(path))?;
    file.set_len(offset).map_err(io_err(path))?;
    file.sync_all().map_err(io_err(path))
}

/// What the log keeps for INFO beyond the shared metrics.
#[derive(Default)]
pub struct LogStats {
    pub last_fsync_micros: AtomicU64,
    /// The last write of records failed (cleared by the next that works).
    write_failed: AtomicBool,
    /// The last fsync failed (cleared by the next that works). Told apart
    /// from writes: after a failed fsync, records the OS took may still
    /// not be on disk.
    fsync_failed: AtomicBool,
}

/// Which operation on the log failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LogOp {
    Write,
    Fsync,
}

impl LogOp {
    fn name(self) -> &'static str {
        match self {
            LogOp::Write => "write",
            LogOp::Fsync => "fsync",
        }
    }
}

struct Appender {
    next_seq: u64,
    /// Framed records. The first `written` bytes are in the open segment
    /// already (its last ones) but not yet fsynced: after a failed fsync
    /// Linux may drop those pages from its cache, and a later fsync
    /// succeeds without them, so `Log::retry` writes them again. An fsync
    /// that works lets them go (`synced_to`).
    buf: Vec<u8>,
    written: usize,
    /// The time of the last mark appended (see the module comment), and
    /// whether the next record needs one whatever the time (a new segment).
    mark_ms: u64,
    mark_due: bool,
}

impl Appender {
    /// A time mark before the next record, if the clock has moved on since
    /// the last (marks never go back: a command that started earlier but
    /// commits later has the later time) or a segment has just started.
    fn mark(&mut self) {
        let now = crate::clock::now_ms();
        if now > self.mark_ms || self.mark_due {
            self.mark_ms = self.mark_ms.max(now);
            self.mark_due = false;
            encode_mark(self.mark_ms, &mut self.buf);
        }
    }

    /// An fsync made the open segment, `len` bytes long now, durable up
    /// to `synced_len`.
    fn synced_to(&mut self, len: u64, synced_len: u64) {
        let first = len - self.written as u64;
        let covered = (synced_len.saturating_sub(first) as usize).min(self.written);
        self.buf.drain(..covered);
        self.written -= covered;
    }
}

struct OpenSegment {
    file: Arc<File>,
    path: PathBuf,
    first_seq: u64,
    len: u64,
    /// The end of the zeros written ahead of `len` (see `ZERO_AHEAD`).
    zeroed: u64,
    opened: Instant,
}

/// Under `always`, the log writes this many zero bytes ahead of its
/// records and then overwrites them: an fdatasync of a write into blocks
/// the file already has flushes only the data, while one of an append
/// also commits the new size and blocks to the filesystem journal (105 us
/// against 150-385 us here, and a third less CPU; +12 % requests per
/// second at -P 1, +30 % for SET and HSET at -P 16). A crash leaves zeros
/// after the last record; recovery cuts them off like a torn record.
const ZERO_AHEAD: u64 = 1 << 20;

/// The zeros written ahead, allocated once (zero-initialized static data).
static ZEROS: [u8; ZERO_AHEAD as usize] = [0; ZERO_AHEAD as usize];

/// Written bytes past which the syncer fsyncs whatever the policy (`no`
/// included), so that what a failed fsync leaves to write again
/// (`Appender::written`) stays this small.
const UNSYNCED_LIMIT: u64 = 32 << 20;

/// `write_all_at`, or the error the `log-write` failpoint injects.
fn write_at(file: &File, bytes: &[u8], offset: u64) -> std::io::Result<()> {
    match crate::faults::injected_error("log-write") {
        Some(error) => Err(error),
        None => file.write_all_at(bytes, offset),
    }
}

/// `sync_data`, or the error the `log-fsync` failpoint injects.
fn fsync(file: &File) -> std::io::Result<()> {
    match crate::faults::injected_error("log-fsync") {
        Some(error) => Err(error),
        None => file.sync_data(),
    }
}

/// A claim on the next group fsync (`Log::claim_lead`). Letting go of it,
/// fsynced or not (its connection may be dropped before), wakes the
/// waiters it covered and the first it did not, who leads next.
pub struct Lead<'l> {
    log: &'l Log,
}

impl Lead<'_> {
    /// Writes out and fsyncs every record appended so far.
    pub fn sync(self) -> Result<(), LogError> {
        self.log.write_through(self.log.last_seq()).and_then(|()| self.log.sync_now())
    }
}

impl Drop for Lead<'_> {
    fn drop(&mut self) {
        self.log.leading.store(false, Ordering::Release);
        self.log.wake_waiters();
    }
}

/// The log's writing side.
///
/// A write or fsync that fails stops the log (`failure`): appended
/// records wait in memory, nothing more is written or fsynced, write
/// commands are refused, and `retry` (from the cron) writes again what
/// the disk may have lost and fsyncs; once that works the log goes on.
pub struct Log {
    dir: PathBuf,
    appender: Mutex<Appender>,
    segment: Mutex<OpenSegment>,
    /// Last sequence handed out / handed to the OS / fsynced.
    assigned: AtomicU64,
    written: AtomicU64,
    synced: AtomicU64,
    policy: AtomicU8,
    segment_bytes: u64,
    /// Set while a connection has claimed the next write and fsync for
    /// everyone (`claim_lead`).
    leading: AtomicBool,
    /// Connections waiting for a leader's fsync (`wait_turn`): the
    /// sequence each needs, and its waker.
    waiters: Mutex<Vec<(u64, Waker)>>,
    /// Wakes the syncer thread early (policy change, close).
    syncer_wake: (Mutex<()>, Condvar),
    stopping: AtomicBool,
    /// Held across each fsync and the bookkeeping of its outcome (taken
    /// after the segment lock when both are): a write-back error is
    /// reported once, to whichever fsync of the file asks first, so an
    /// fsync that overlapped a failed one could not vouch for anything.
    fsync_lock: Mutex<()>,
    /// Set when a write or fsync fails, cleared when `retry` succeeds.
    stopped: AtomicBool,
    /// The error that stopped the log, as strerror words it.
    stop_reason: Mutex<String>,
    /// Bytes written to the open segment since its last fsync.
    unsynced_bytes: AtomicU64,
    /// What readers of the running log still need (`reader`).
    pins: Arc<cursor::Pins>,
    /// Wakes readers waiting for records to be written (`wait_written`);
    /// how many wait, so that a group write with none takes no lock.
    written_wake: (Mutex<()>, Condvar),
    written_waiters: AtomicU64,
    pub stats: LogStats,
    pub metrics: Arc<DurabilityMetrics>,
}

/// The append lock: sequence numbers are handed out, and RocksDB batches
/// applied, in one order while it is held.
pub struct AppendGuard<'l> {
    appender: MutexGuard<'l, Appender>,
    assigned: &'l AtomicU64,
}

impl AppendGuard<'_> {
    /// The sequence the next `push` gets.
    pub fn next_seq(&self) -> u64 {
        self.appender.next_seq
    }

    /// Appends a record; returns its sequence.
    pub fn push(&mut self, rocks: &[u8], mem: &[MemRecord]) -> u64 {
        let seq = self.appender.next_seq;
        self.appender.mark();
        encode_frame(seq, rocks, mem, &mut self.appender.buf);
        self.advance(seq)
    }

    /// Appends a record whose memory records are encoded already
    /// (`encode_records`, outside the lock); returns its sequence.
    pub fn push_encoded(&mut self, rocks: &[u8], mem: &[u8]) -> u64 {
        let seq = self.appender.next_seq;
        self.appender.mark();
        encode_frame_encoded(seq, rocks, mem, &mut self.appender.buf);
        self.advance(seq)
    }

    fn advance(&mut self, seq: u64) -> u64 {
        self.appender.next_seq += 1;
        self.assigned.store(seq, Ordering::Release);
        seq
    }
}

impl Log {
    /// Starts a new segment at `next_seq` in `dir` (recovery has read and
    /// repaired what was there) and the syncer thread.
    pub fn open(
        dir: &Path,
        next_seq: u64,
        policy: FsyncPolicy,
        segment_bytes: u64,
        metrics: Arc<DurabilityMetrics>,
    ) -> Result<Arc<Log>, LogError> {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        let segment = create_segment(dir, next_seq).map_err(io_err(&segment_path(dir, next_seq)))?;
        let log = Arc::new(Log {
            dir: dir.to_path_buf(),
            appender: Mutex::new(Appender {
                next_seq,
                buf: Vec::with_capacity(1 << 16),
                written: 0,
                mark_ms: 0,
                mark_due: true,
            }),
            segment: Mutex::new(segment),
            assigned: AtomicU64::new(next_seq - 1),
            written: AtomicU64::new(next_seq - 1),
            synced: AtomicU64::new(next_seq - 1),
            policy: AtomicU8::new(policy as u8),
            segment_bytes,
            leading: AtomicBool::new(false),
            waiters: Mutex::new(Vec::new()),
            syncer_wake: (Mutex::new(()), Condvar::new()),
            stopping: AtomicBool::new(false),
            fsync_lock: Mutex::new(()),
            stopped: AtomicBool::new(false),
            stop_reason: Mutex::new(String::new()),
            unsynced_bytes: AtomicU64::new(0),
            pins: Arc::default(),
            written_wake: (Mutex::new(()), Condvar::new()),
            written_waiters: AtomicU64::new(0),
            stats: LogStats::default(),
            metrics,
        });
        let syncer = log.clone();
        std::thread::Builder::new()
            .name("strata-log-sync".into())
            .spawn(move || syncer.sync_loop())
            .map_err(io_err(dir))?;
        Ok(log)
    }

    pub fn lock(&self) -> AppendGuard<'_> {
        AppendGuard { appender: crate::spin::lock(&self.appender), assigned: &self.assigned }
    }

    /// The last sequence handed out.
    pub fn last_seq(&self) -> u64 {
        self.assigned.load(Ordering::Acquire)
    }

    pub fn written_seq(&self) -> u64 {
        self.written.load(Ordering::Acquire)
    }

    pub fn synced_seq(&self) -> u64 {
        self.synced.load(Ordering::Acquire)
    }

    /// Why the log stopped taking writes, if it has: the error of the
    /// write or fsync that failed, as strerror words it (Redis's MISCONF
    /// reply quotes it).
    pub fn failure(&self) -> Option<String> {
        if !self.stopped.load(Ordering::Acquire) {
            return None;
        }
        Some(self.stop_reason.lock().clone())
    }

    /// Whether the log is stopped (`failure` says why).
    #[inline]
    pub fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::Acquire)
    }

    /// Whether the last write of records to the log failed.
    pub fn write_failed(&self) -> bool {
        self.stats.write_failed.load(Ordering::Relaxed)
    }

    /// Whether the last fsync of the log failed.
    pub fn fsync_failed(&self) -> bool {
        self.stats.fsync_failed.load(Ordering::Relaxed)
    }

    fn check_running(&self) -> Result<(), LogError> {
        match self.failure() {
            None => Ok(()),
            Some(reason) => Err(LogError::Stopped(reason)),
        }
    }

    /// Stops the log after `op` on `path` failed (see `Log`), and tells
    /// the connections waiting for an fsync.
    fn stop(&self, op: LogOp, path: &Path, source: std::io::Error) -> LogError {
        let reason = crate::faults::strerror(&source);
        match op {
            LogOp::Write => self.stats.write_failed.store(true, Ordering::Relaxed),
            LogOp::Fsync => self.stats.fsync_failed.store(true, Ordering::Relaxed),
        }
        *self.stop_reason.lock() = reason.clone();
        if !self.stopped.swap(true, Ordering::AcqRel) {
            tracing::error!(
                file = %path.display(),
                "{} of the log failed: {reason}; write commands are refused until it can be written again",
                op.name()
            );
        }
        self.wake_all_waiters();
        LogError::Io { path: path.to_path_buf(), source }
    }

    pub fn policy(&self) -> FsyncPolicy {
        FsyncPolicy::from_u8(self.policy.load(Ordering::Relaxed))
    }

    pub fn set_policy(&self, policy: FsyncPolicy) {
        self.policy.store(policy as u8, Ordering::Relaxed);
        self.syncer_wake.1.notify_one();
    }

    /// Hands every record up to at least `seq` to the OS (one write(2) for
    /// everything buffered: group commit). A process crash after this loses
    /// none of them.
    pub fn write_through(&self, seq: u64) -> Result<(), LogError> {
        if self.written_seq() >= seq {
            return Ok(());
        }
        let mut segment = self.segment.lock();
        if self.written_seq() >= seq {
            return Ok(());
        }
        let mut appender = self.appender.lock();
        self.write_out(&mut segment, &mut appender)
    }

    /// Writes the buffer out, unless the log is stopped; both locks held
    /// (segment first).
    fn write_out(&self, segment: &mut OpenSegment, appender: &mut Appender) -> Result<(), LogError> {
        self.check_running()?;
        if segment.len >= self.segment_bytes && segment.first_seq <= self.written_seq() {
            // The next segment failed to start: it starts before more
            // records go in.
            self.start_segment(segment, appender, self.written_seq())?;
        }
        self.write_records(segment, appender)?;
        if segment.len >= self.segment_bytes {
            self.start_segment(segment, appender, self.written_seq())?;
        }
        Ok(())
    }

    /// Writes the buffered records after the segment's last; both locks
    /// held.
    fn write_records(&self, segment: &mut OpenSegment, appender: &mut Appender) -> Result<(), LogError> {
        let pending = &appender.buf[appender.written..];
        if pending.is_empty() {
            return Ok(());
        }
        let last = appender.next_seq - 1;
        let records = last - self.written_seq();
        let written = pending.len() as u64;
        let end = segment.len + written;
        if self.policy() == FsyncPolicy::Always && end > segment.zeroed {
            // Beyond the records only: they are written over what was
            // zeroed already, or extend the file (a big record).
            write_at(&segment.file, &ZEROS, end).map_err(|e| self.stop(LogOp::Write, &segment.path, e))?;
            segment.zeroed = end + ZERO_AHEAD;
        }
        // A failed write is retried at the same offset, whole frames only.
        write_at(&segment.file, pending, segment.len).map_err(|e| self.stop(LogOp::Write, &segment.path, e))?;
        self.stats.write_failed.store(false, Ordering::Relaxed);
        segment.len = end;
        appender.written = appender.buf.len();
        self.unsynced_bytes.store(appender.written as u64, Ordering::Relaxed);
        self.metrics.log_bytes_written.inc_by(written);
        self.metrics.group_commit_records.observe(records as f64);
        self.metrics.log_sequence.set(last as f64);
        self.written.store(last, Ordering::SeqCst);
        if self.written_waiters.load(Ordering::SeqCst) > 0 {
            let _wake = self.written_wake.0.lock();
            self.written_wake.1.notify_all();
        }
        Ok(())
    }

    /// Waits until a record after `seq` is written, or `timeout` passes;
    /// whether one is.
    pub fn wait_written(&self, seq: u64, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut wake = self.written_wake.0.lock();
        // Counted before the check: a write after it sees the waiter.
        self.written_waiters.fetch_add(1, Ordering::SeqCst);
        while self.written.load(Ordering::SeqCst) <= seq {
            if self.written_wake.1.wait_until(&mut wake, deadline).timed_out() {
                break;
            }
        }
        self.written_waiters.fetch_sub(1, Ordering::SeqCst);
        self.written_seq() > seq
    }

    /// Keeps the records after `after` from truncation while the pin is
    /// held.
    pub fn pin(&self, after: u64) -> RetentionPin {
        RetentionPin::new(&self.pins, after)
    }

    /// The directory of the log's segments.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A reader of the records after `after`, as they are written; the
    /// log keeps them until it has read them (truncation waits for it).
    pub fn reader(self: &Arc<Log>, after: u64) -> Result<LogReader, LogError> {
        // Pinned first: a truncation between the two could otherwise
        // remove the segment the cursor is about to open.
        let pin = RetentionPin::new(&self.pins, after);
        let cursor = LogCursor::open(&self.dir, after)?;
        Ok(LogReader::new(self.clone(), cursor, pin))
    }

    /// Writes out and fsyncs everything appended so far, with appends held
    /// off, then runs `then` before they resume: RocksDB switches its
    /// memtable there, so no RocksDB data ever becomes durable ahead of the
    /// log. Returns the sequence covered.
    pub fn barrier<R>(&self, then: impl FnOnce(u64) -> R) -> Result<(u64, R), LogError> {
        // Everything so far is fsynced first, with appends going on: the
        // fsync under the locks then covers only what came meanwhile.
        // Under everysec it had up to a memtable's worth of records to
        // flush while every writer waited (p99 of SET at -P 16).
        self.write_through(self.last_seq())?;
        self.sync_now()?;
        let mut segment = self.segment.lock();
        let mut appender = self.appender.lock();
        self.write_out(&mut segment, &mut appender)?;
        let last = appender.next_seq - 1;
        if self.synced_seq() < last {
            self.fsync_segment(&mut segment, &mut appender, false)?;
        }
        Ok((last, then(last)))
    }

    /// Closes the open segment (written out and fsynced) and starts a new
    /// one, so that everything so far can be truncated once the engines
    /// hold it (SAVE).
    pub fn rotate(&self) -> Result<(), LogError> {
        let mut segment = self.segment.lock();
        let mut appender = self.appender.lock();
        self.write_out(&mut segment, &mut appender)?;
        let last = appender.next_seq - 1;
        if segment.first_seq > last {
            return Ok(()); // Already empty.
        }
        self.start_segment(&mut segment, &mut appender, last)
    }

    /// Starts the log over after `seq`: every segment is deleted and a new
    /// one opened at `seq + 1`. A replica's full sync: its engines now hold
    /// the master's state at `seq` and its log goes on with the master's
    /// records. Nothing may be appended meanwhile, nor read (readers are
    /// gone).
    pub fn restart_after(&self, seq: u64) -> Result<(), LogError> {
        let mut segment = self.segment.lock();
        let mut appender = self.appender.lock();
        self.write_out(&mut segment, &mut appender)?;
        self.close_segment(&mut segment, &mut appender)?;
        let next = create_segment(&self.dir, seq + 1).map_err(io_err(&segment_path(&self.dir, seq + 1)))?;
        for old in list_segments(&self.dir)?.into_iter().filter(|s| s.path != next.path) {
            std::fs::remove_file(&old.path).map_err(io_err(&old.path))?;
        }
        File::open(&self.dir).and_then(|dir| dir.sync_all()).map_err(io_err(&self.dir))?;
        *segment = next;
        appender.next_seq = seq + 1;
        appender.buf.clear();
        appender.written = 0;
        appender.mark_due = true;
        for position in [&self.assigned, &self.written, &self.synced] {
            position.store(seq, Ordering::Release);
        }
        self.unsynced_bytes.store(0, Ordering::Relaxed);
        Ok(())
    }

    /// Rotates when the open segment holds records and was opened `age`
    /// ago or more (`log-archive-timeout`: the archive then lags the log by
    /// at most that much).
    pub fn rotate_if_older(&self, age: Duration) -> Result<(), LogError> {
        let due = {
            let segment = self.segment.lock();
            segment.opened.elapsed() >= age && segment.first_seq <= self.last_seq()
        };
        match due {
            true => self.rotate(),
            false => Ok(()),
        }
    }

    /// The last sequence truncation may remove and still keep the newest
    /// `bytes` of the log (whole segments): a replica that fell that far
    /// behind continues from the log (`repl-backlog-size`).
    pub fn keeping_newest(&self, bytes: u64) -> u64 {
        let mut kept = 0;
        for segment in list_segments(&self.dir).unwrap_or_default().iter().rev() {
            kept += std::fs::metadata(&segment.path).map_or(0, |m| m.len());
            if kept >= bytes {
                return segment.first_seq - 1;
            }
        }
        0
    }

    /// The first sequence the log still holds (its oldest segment's).
    pub fn first_retained_seq(&self) -> u64 {
        list_segments(&self.dir)
            .ok()
            .and_then(|s| s.first().map(|s| s.first_seq))
            .unwrap_or_else(|| self.last_seq() + 1)
    }

    /// The first sequence of the open segment: the segments before it are
    /// closed, whole and never written again.
    pub fn open_segment_first(&self) -> u64 {
        self.segment.lock().first_seq
    }

    /// Whether `close` has been called: background threads end.
    pub fn is_closing(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    /// Closes `segment`, whose last record is `last`, and opens the next.
    /// Records of a closed segment are durable before the next one starts,
    /// so fsyncs only ever need the open segment.
    fn start_segment(&self, segment: &mut OpenSegment, appender: &mut Appender, last: u64) -> Result<(), LogError> {
        self.close_segment(segment, appender)?;
        let next = create_segment(&self.dir, last + 1)
            .map_err(|e| self.stop(LogOp::Write, &segment_path(&self.dir, last + 1), e))?;
        *segment = next;
        appender.mark_due = true;
        self.unsynced_bytes.store(0, Ordering::Relaxed);
        Ok(())
    }

    /// Drops the zeros written ahead and fsyncs: a closed segment ends at
    /// its last record.
    fn close_segment(&self, segment: &mut OpenSegment, appender: &mut Appender) -> Result<(), LogError> {
        if segment.zeroed > segment.len {
            segment.file.set_len(segment.len).map_err(|e| self.stop(LogOp::Write, &segment.path, e))?;
            segment.zeroed = segment.len;
        }
        self.fsync_segment(segment, appender, false)
    }

    /// Fsyncs the open segment, whose lock (and the appender's) the
    /// caller holds: everything written is durable after it. Refused while
    /// the log is stopped, unless `retry` is the caller (it has written
    /// everything again).
    fn fsync_segment(
        &self,
        segment: &mut OpenSegment,
        appender: &mut Appender,
        retrying: bool,
    ) -> Result<(), LogError> {
        let _fsync = self.fsync_lock.lock();
        if !retrying {
            self.check_running()?;
        }
        let started = Instant::now();
        fsync(&segment.file).map_err(|e| self.stop(LogOp::Fsync, &segment.path, e))?;
        self.fsynced(started);
        appender.synced_to(segment.len, segment.len);
        self.unsynced_bytes.store(0, Ordering::Relaxed);
        self.mark_synced(self.written_seq());
        Ok(())
    }

    /// Notes an fsync that worked.
    fn fsynced(&self, started: Instant) {
        self.stats.fsync_failed.store(false, Ordering::Relaxed);
        self.metrics.log_fsync_seconds.observe(started.elapsed().as_secs_f64());
        self.stats.last_fsync_micros.store(started.elapsed().as_micros() as u64, Ordering::Relaxed);
    }

    /// After a failure (see `Log`): writes again what the open segment was
    /// given since its last fsync that worked (the zeros ahead too), then
    /// the records appended meanwhile, and fsyncs. The log takes writes
    /// again once that works. Nothing to do when it is not stopped.
    pub fn retry(&self) -> Result<(), LogError> {
        if !self.stopped.load(Ordering::Acquire) {
            return Ok(());
        }
        let mut segment = self.segment.lock();
        let mut appender = self.appender.lock();
        let segment = &mut *segment;
        segment.zeroed = segment.zeroed.min(segment.len);
        let unsynced = &appender.buf[..appender.written];
        if !unsynced.is_empty() {
            write_at(&segment.file, unsynced, segment.len - unsynced.len() as u64)
                .map_err(|e| self.stop(LogOp::Write, &segment.path, e))?;
        }
        self.write_records(segment, &mut appender)?;
        self.fsync_segment(segment, &mut appender, true)?;
        self.stats.write_failed.store(false, Ordering::Relaxed);
        self.stopped.store(false, Ordering::Release);
        tracing::warn!("the log can be written again: write commands are accepted");
        if segment.len >= self.segment_bytes {
            self.start_segment(segment, &mut appender, self.written_seq())?;
        }
        Ok(())
    }

    /// Claims the next write and fsync for everyone (`always`'s group
    /// commit), unless another connection has it (None). The first waiting
    /// connection to find nobody leading does it on its own thread, as
    /// Redis does once per event-loop pass, and the others wait for it
    /// (`wait_turn`). A syncer thread doing it cost two thread wakes per
    /// round and fsynced the few records that had come meanwhile (13 per
    /// fsync against Redis's 50 at 50 clients, -P 1; 20 led this way, at a
    /// fifth more requests per second).
    pub fn claim_lead(&self) -> Option<Lead<'_>> {
        let claimed = self.leading.compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed);
        claimed.ok().map(|_| Lead { log: self })
    }

    /// For a connection whose records up to `seq` must be fsynced: Ready
    /// when they are, when nobody is leading an fsync (the caller then
    /// leads one), or when the log is stopped; otherwise Pending until the
    /// leader's fsync is done, and the caller is woken if it covered `seq`,
    /// or if the caller is the first left uncovered (it leads the next
    /// round). Waking every waiter after every fsync cost the uncovered
    /// ones a wasted poll each.
    pub fn wait_turn(&self, seq: u64, cx: &mut Context<'_>) -> Poll<()> {
        // Under the waiters' lock, which the leader takes after letting go
        // of leadership: either the leader sees this waiter, or this sees
        // the leader gone (or a newer leader, who will see the waiter).
        let mut waiters = self.waiters.lock();
        let stopped = self.stopped.load(Ordering::Acquire);
        if self.synced_seq() >= seq || !self.leading.load(Ordering::Acquire) || stopped {
            return Poll::Ready(());
        }
        waiters.push((seq, cx.waker().clone()));
        Poll::Pending
    }

    /// After an fsync: wakes the waiters it covered, and the one with the
    /// lowest sequence of those it did not, to lead the next. After a
    /// failure, every waiter: none will be covered until a retry.
    fn wake_waiters(&self) {
        if self.stopped.load(Ordering::Acquire) {
            return self.wake_all_waiters();
        }
        let synced = self.synced_seq();
        let mut woken = Vec::new();
        {
            let mut waiters = self.waiters.lock();
            let mut index = 0;
            while index < waiters.len() {
                if waiters[index].0 <= synced {
                    woken.push(waiters.swap_remove(index).1);
                } else {
                    index += 1;
                }
            }
            let next = waiters.iter().enumerate().min_by_key(|(_, (seq, _))| *seq).map(|(index, _)| index);
            woken.extend(next.map(|index| waiters.swap_remove(index).1));
        }
        woken.into_iter().for_each(Waker::wake);
    }

    fn wake_all_waiters(&self) {
        let woken: Vec<Waker> = self.waiters.lock().drain(..).map(|(_, waker)| waker).collect();
        woken.into_iter().for_each(Waker::wake);
    }

    fn mark_synced(&self, seq: u64) {
        self.synced.fetch_max(seq, Ordering::AcqRel);
    }

    /// `everysec`: fsyncs what connections wrote out, once a second; under
    /// any policy, once `UNSYNCED_LIMIT` bytes wait for an fsync.
    fn sync_loop(&self) {
        let mut last_sync = Instant::now();
        let mut seen_seq = self.last_seq();
        let mut wake = self.syncer_wake.0.lock();
        while !self.stopping.load(Ordering::Acquire) {
            let second = self.policy() == FsyncPolicy::EverySec && last_sync.elapsed() >= Duration::from_secs(1);
            let piled_up = self.unsynced_bytes.load(Ordering::Relaxed) >= UNSYNCED_LIMIT;
            if (second || piled_up) && !self.stopped.load(Ordering::Acquire) {
                last_sync = Instant::now();
                // A failure stops the log and says so (`stop`); the cron
                // retries.
                let _ = MutexGuard::unlocked(&mut wake, || self.sync_now());
                // No record for a second: the buffer, grown to hold a
                // second of records under `everysec`, goes back.
                let mut appender = self.appender.lock();
                let last = self.last_seq();
                let idle = std::mem::replace(&mut seen_seq, last) == last;
                if idle && appender.buf.is_empty() && appender.buf.capacity() > 1 << 20 {
                    appender.buf = Vec::with_capacity(1 << 16);
                }
            }
            self.syncer_wake.1.wait_for(&mut wake, Duration::from_millis(100));
        }
    }

    /// Fsyncs what has been written out so far. The fsync runs outside the
    /// segment lock: writers go on meanwhile.
    pub fn sync_now(&self) -> Result<(), LogError> {
        let (file, path, first_seq, target, len) = {
            let segment = self.segment.lock();
            (segment.file.clone(), segment.path.clone(), segment.first_seq, self.written_seq(), segment.len)
        };
        if target <= self.synced_seq() {
            return Ok(());
        }
        {
            let _fsync = self.fsync_lock.lock();
            // A failure since (reported to another fsync) leaves nothing
            // this one could vouch for.
            self.check_running()?;
            let started = Instant::now();
            fsync(&file).map_err(|e| self.stop(LogOp::Fsync, &path, e))?;
            self.fsynced(started);
            self.mark_synced(target);
        }
        let segment = self.segment.lock();
        // A segment closed meanwhile was fsynced whole.
        if segment.first_seq == first_seq {
            let mut appender = self.appender.lock();
            appender.synced_to(segment.len, len);
            self.unsynced_bytes.store(appender.written as u64, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Writes out and fsyncs everything (retrying a stopped log first),
    /// and stops the syncer.
    pub fn close(&self) -> Result<(), LogError> {
        let closed = self.retry().and_then(|()| self.barrier(|_| ())).and_then(|_| {
            let mut segment = self.segment.lock();
            self.close_segment(&mut segment, &mut self.appender.lock())
        });
        self.stopping.store(true, Ordering::Release);
        self.syncer_wake.1.notify_one();
        closed
    }

    /// Deletes segments whose records are all at or below `seq` (both
    /// engines hold them durably elsewhere) and that no reader still needs
    /// (`reader`). The open segment stays.
    pub fn truncate_through(&self, seq: u64) -> Result<usize, LogError> {
        let seq = self.pins.lowest().map_or(seq, |pinned| pinned.min(seq));
        let open_first = self.segment.lock().first_seq;
        let segments = list_segments(&self.dir)?;
        let mut removed = 0;
        for pair in segments.windows(2) {
            let (segment, next) = (&pair[0], &pair[1]);
            if next.first_seq <= seq + 1 && segment.first_seq < open_first {
                match std::fs::remove_file(&segment.path) {
                    Ok(()) => removed += 1,
                    // Another truncation (the cron's, a SAVE's) got there first.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io_err(&segment.path)(e)),
                }
            }
        }
        Ok(removed)
    }

    /// Bytes of log in every segment on disk: the open one's up to its
    /// last record written out (not the zeros written ahead of it).
    pub fn disk_bytes(&self) -> u64 {
        let (open_path, open_len) = {
            let segment = self.segment.lock();
            (segment.path.clone(), segment.len)
        };
        list_segments(&self.dir)
            .unwrap_or_default()
            .iter()
            .map(|s| match s.path == open_path {
                true => open_len,
                false => std::fs::metadata(&s.path).map_or(0, |m| m.len()),
            })
            .sum()
    }
}

/// Creates segment `first_seq`, its header durable.
fn create_segment(dir: &Path, first_seq: u64) -> std::io::Result<OpenSegment> {
    let path = segment_path(dir, first_seq);
    // A file of this name can only be an empty (or torn-empty) segment left
    // by the last run, or by a start that failed: nothing in it is needed.
    if let Err(e) = std::fs::remove_file(&path) {
        if e.kind() != std::io::ErrorKind::NotFound {
            return Err(e);
        }
    }
    let mut file = OpenOptions::new().create_new(true).write(true).open(&path)?;
    file.write_all(&encode_header(first_seq))?;
    file.sync_all()?;
    File::open(dir)?.sync_all()?;
    let len = HEADER_LEN as u64;
    Ok(OpenSegment { file: Arc::new(file), path, first_seq, len, zeroed: len, opened: Instant::now() })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::memory::MemOp;
    use bytes::Bytes;

    fn record(i: u64) -> (Vec<u8>, Vec<MemRecord>) {
        let rocks = if i.is_multiple_of(2) { vec![i as u8; (i % 7) as usize] } else { Vec::new() };
        let mem = vec![MemRecord::Op { db: 0, op: MemOp::Delete { key: Bytes::from(format!("key{i}")) } }];
        (rocks, mem)
    }

    fn write_log(dir: &Path, count: u64, segment_bytes: u64) -> Arc<Log> {
        let log = Log::open(dir, 1, FsyncPolicy::No, segment_bytes, Default::default()).unwrap();
        for i in 1..=count {
            let (rocks, mem) = record(i);
            assert_eq!(log.lock().push(&rocks, &mem), i);
            if i.is_multiple_of(3) {
                log.write_through(i).unwrap();
            }
        }
        log.close().unwrap();
        log
    }

    /// `of` each record after `after` in the log in `dir`.
    pub(crate) fn each_record<T>(dir: &Path, after: u64, of: impl Fn(&LogRecord) -> T) -> Vec<T> {
        let mut out = Vec::new();
        read_log(dir, after, |record| {
            out.push(of(&record));
            Ok::<_, LogError>(())
        })
        .unwrap();
        out
    }

    fn read_all(dir: &Path, after: u64) -> Result<(Vec<u64>, LogEnd), LogError> {
        let mut seqs = Vec::new();
        let end = read_log(dir, after, |r| {
            let (rocks, mem) = record(r.seq);
            assert_eq!((r.rocks.to_vec(), r.mem), (rocks, mem));
            seqs.push(r.seq);
            Ok(())
        })?;
        Ok((seqs, end))
    }

    #[test]
    fn a_record_of_4_gib_or_more_does_not_fit_in_a_frame() {
        assert!(record_fits(1 << 20, 1 << 20));
        assert!(record_fits(MAX_PAYLOAD - 18 - 100, 100));
        assert!(!record_fits(MAX_PAYLOAD - 18 - 100, 101));
        assert!(!record_fits(0, 4 << 30));
    }

    #[test]
    fn records_round_trip_across_segments() {
        let dir = tempfile::tempdir().unwrap();
        write_log(dir.path(), 50, 200);
        assert!(list_segments(dir.path()).unwrap().len() > 3);
        let (seqs, end) = read_all(dir.path(), 0).unwrap();
        assert_eq!(seqs, (1..=50).collect::<Vec<_>>());
        assert_eq!(end, LogEnd { last_seq: 50, torn: None, unused_tail: false });
        let (seqs, _) = read_all(dir.path(), 20).unwrap();
        assert_eq!(seqs, (21..=50).collect::<Vec<_>>());
    }

    #[test]
    fn always_writes_zeros_ahead_that_closing_and_recovery_cut_off() {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(dir.path(), 1, FsyncPolicy::Always, 500, Default::default()).unwrap();
        for i in 1..=60 {
            let (rocks, mem) = record(i);
            log.lock().push(&rocks, &mem);
            log.claim_lead().expect("nobody else syncs").sync().unwrap();
        }
        let segments = list_segments(dir.path()).unwrap();
        assert!(segments.len() > 3, "{} segments", segments.len());
        let size = |path: &Path| std::fs::metadata(path).unwrap().len();
        for closed in &segments[..segments.len() - 1] {
            assert!(size(&closed.path) < 500 + 100, "a closed segment ends at its last record");
        }
        // As a crash leaves it: records, then zeros.
        let last = segments.last().unwrap();
        let (seqs, end) = read_all(dir.path(), 0).unwrap();
        assert_eq!(seqs, (1..=60).collect::<Vec<_>>());
        let (path, offset) = end.torn.clone().expect("the zeros ahead are cut off like a torn tail");
        assert!(end.unused_tail, "and told apart from one");
        assert_eq!(path, last.path);
        assert!(size(&path) > offset, "zeros follow the last record");
        assert!(std::fs::read(&path).unwrap()[offset as usize..].iter().all(|&b| b == 0));
        let closed: u64 = segments[..segments.len() - 1].iter().map(|s| size(&s.path)).sum();
        assert_eq!(log.disk_bytes(), closed + offset, "the log's size (aof_current_size) leaves the zeros out");
        cut_torn_tail(&path, offset).unwrap();
        let clean = |last_seq| LogEnd { last_seq, torn: None, unused_tail: false };
        assert_eq!(read_all(dir.path(), 0).unwrap(), ((1..=60).collect(), clean(60)));
        // A clean close leaves none.
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(dir.path(), 1, FsyncPolicy::Always, 1 << 20, Default::default()).unwrap();
        log.lock().push(b"", &record(1).1);
        log.claim_lead().unwrap().sync().unwrap();
        log.close().unwrap();
        assert_eq!(read_all(dir.path(), 0).unwrap().1, clean(1));
    }

    /// A waker that counts its wakes.
    struct CountWakes(std::sync::atomic::AtomicUsize);

    impl std::task::Wake for CountWakes {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn waker() -> (Arc<CountWakes>, Waker) {
        let count = Arc::new(CountWakes(Default::default()));
        (count.clone(), Waker::from(count))
    }

    #[test]
    fn an_fsync_wakes_the_waiters_it_covered_and_one_to_lead_the_next() {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(dir.path(), 1, FsyncPolicy::Always, 1 << 20, Default::default()).unwrap();
        let push = |i| log.lock().push(b"", &record(i).1);
        let turn = |seq, waker: &Waker| log.wait_turn(seq, &mut Context::from_waker(waker));
        let (count, w) = waker();
        push(1);
        assert_eq!(turn(1, &w), Poll::Ready(()), "nobody leads: the caller does");

        // Another connection leads: callers wait for it.
        let lead = log.claim_lead().expect("nobody leads yet");
        assert!(log.claim_lead().is_none(), "one lead at a time");
        let waiters: Vec<_> = (0..4).map(|_| waker()).collect();
        push(2);
        push(3);
        for (seq, (_, w)) in [2, 3, 5, 6].into_iter().zip(&waiters) {
            assert_eq!(turn(seq, w), Poll::Pending);
        }
        lead.sync().unwrap();
        assert_eq!(log.synced_seq(), 3);
        let wakes: Vec<_> = waiters.iter().map(|(c, _)| c.0.load(Ordering::Relaxed)).collect();
        assert_eq!(wakes, [1, 1, 1, 0], "2 and 3 were covered; 5 leads next, 6 sleeps on");
        assert_eq!(log.waiters.lock().len(), 1);
        assert_eq!(turn(3, &w), Poll::Ready(()), "fsynced already");
        assert_eq!(count.0.load(Ordering::Relaxed), 0, "a caller told Ready is not woken as well");

        // A lead given up unsynced (its connection dropped while it
        // yielded) wakes the first waiter to lead instead.
        let lead = log.claim_lead().expect("nobody leads");
        drop(lead);
        assert_eq!(waiters[3].0 .0.load(Ordering::Relaxed), 1, "6 leads next");
        assert_eq!(log.synced_seq(), 3, "nothing fsynced");
    }

    #[test]
    fn truncation_keeps_what_is_needed() {
        let dir = tempfile::tempdir().unwrap();
        let log = write_log(dir.path(), 50, 200);
        log.truncate_through(30).unwrap();
        let first = list_segments(dir.path()).unwrap()[0].first_seq;
        assert!(first <= 31 && first > 1, "first segment now starts at {first}");
        let (seqs, _) = read_all(dir.path(), 30).unwrap();
        assert_eq!(seqs, (31..=50).collect::<Vec<_>>());
        assert!(matches!(read_all(dir.path(), 0), Err(LogError::NotRetained { wanted: 1, .. })), "1.. are gone");
    }

    #[test]
    fn truncations_at_once_share_the_work_without_failing() {
        // The cron and a SAVE may truncate at the same time: both list the
        // same segments, and one finds some already gone.
        let dir = tempfile::tempdir().unwrap();
        let log = write_log(dir.path(), 3000, 40);
        let segments = list_segments(dir.path()).unwrap().len();
        assert!(segments > 500, "{segments} segments");
        let start = std::sync::Barrier::new(2);
        let removed: Vec<usize> = std::thread::scope(|s| {
            let truncate = || {
                start.wait();
                log.truncate_through(3000).unwrap()
            };
            let (a, b) = (s.spawn(truncate), s.spawn(truncate));
            vec![a.join().unwrap(), b.join().unwrap()]
        });
        assert_eq!(removed.iter().sum::<usize>(), segments - 1, "each segment removed once: {removed:?}");
        assert_eq!(list_segments(dir.path()).unwrap().len(), 1, "the open segment stays");
    }

    #[test]
    fn a_cut_anywhere_in_the_last_segment_keeps_exactly_the_complete_records() {
        let dir = tempfile::tempdir().unwrap();
        write_log(dir.path(), 12, 1 << 20);
        let segment = list_segments(dir.path()).unwrap().pop().unwrap();
        let full = Bytes::from(std::fs::read(&segment.path).unwrap());
        // Frame ends (time marks' too): the offsets at which a cut loses
        // nothing; and the ends of records.
        let (mut ends, mut record_ends) = (vec![HEADER_LEN], Vec::new());
        loop {
            let end = match frame_at(&full, *ends.last().unwrap(), u64::MAX) {
                Frame::Passed { end, .. } => {
                    record_ends.push(end);
                    end
                }
                Frame::Mark { end, .. } => end,
                _ => break,
            };
            ends.push(end);
        }
        assert_eq!(record_ends.len(), 12);
        assert!(ends.len() > 13, "a time mark starts the segment");
        for cut in 0..full.len() {
            std::fs::write(&segment.path, &full[..cut]).unwrap();
            let complete = record_ends.iter().filter(|&&e| e <= cut).count() as u64;
            let (seqs, end) = read_all(dir.path(), 0).unwrap();
            assert_eq!(seqs, (1..=complete).collect::<Vec<_>>(), "cut at {cut}");
            let expect_torn = !ends.contains(&cut);
            assert_eq!(end.torn.is_some(), expect_torn, "cut at {cut}");
            if let Some((path, offset)) = end.torn {
                cut_torn_tail(&path, offset).unwrap();
                let (again, end) = read_all(dir.path(), 0).unwrap();
                assert_eq!(again, seqs);
                assert_eq!(end.torn, None);
            }
        }
    }

    #[test]
    fn records_carry_the_commit_time_of_the_mark_before_them() {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(dir.path(), 1, FsyncPolicy::No, 200, Default::default()).unwrap();
        // Command start times; the fourth started before the third
        // committed, and commits after it: marks never go back.
        let starts = [1000, 1000, 1005, 1003, 1010, 1010, 1010, 1010, 1010, 1010, 1020, 1020];
        for (i, ms) in starts.iter().enumerate() {
            crate::clock::pin_for_tests(*ms);
            let (rocks, mem) = record(i as u64 + 1);
            log.lock().push(&rocks, &mem);
            log.write_through(i as u64 + 1).unwrap();
        }
        crate::clock::pin_for_tests(0);
        log.close().unwrap();
        let times = each_record(dir.path(), 0, |r| r.time_ms);
        assert_eq!(times, [1000, 1000, 1005, 1005, 1010, 1010, 1010, 1010, 1010, 1010, 1020, 1020]);
        // Each segment opens with a mark: its records' times are known
        // without the segments before it (an archive may not have them).
        let segments = list_segments(dir.path()).unwrap();
        assert!(segments.len() > 2);
        for segment in &segments {
            let bytes = Bytes::from(std::fs::read(&segment.path).unwrap());
            if bytes.len() > HEADER_LEN {
                assert!(matches!(frame_at(&bytes, HEADER_LEN, u64::MAX), Frame::Mark { .. }), "{segment:?}");
            }
        }
        let mut cursor = LogCursor::open(dir.path(), 7).unwrap();
        assert_eq!(cursor.next_record(u64::MAX).unwrap().map(|r| (r.seq, r.time_ms)), Some((8, 1010)));
        // A segment written outside the log keeps them.
        let copy = tempfile::tempdir().unwrap();
        let mut writer = SegmentWriter::create(copy.path(), 1).unwrap();
        read_log(dir.path(), 0, |r| writer.append(&r)).unwrap();
        writer.finish().unwrap();
        assert_eq!(each_record(copy.path(), 0, |r| r.time_ms), times);
    }

    #[test]
    fn a_segment_of_format_1_reads_without_times() {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = encode_header(1);
        bytes[8..12].copy_from_slice(&1u32.to_le_bytes());
        let crc = crc32c::crc32c(&bytes[..20]);
        bytes[20..24].copy_from_slice(&crc.to_le_bytes());
        for i in 1..=3 {
            let (rocks, mem) = record(i);
            encode_frame(i, &rocks, &mem, &mut bytes);
        }
        std::fs::write(segment_path(dir.path(), 1), &bytes).unwrap();
        assert_eq!(each_record(dir.path(), 0, |r| (r.seq, r.time_ms)), [(1, 0), (2, 0), (3, 0)]);
        bytes[8..12].copy_from_slice(&(FORMAT_VERSION + 1).to_le_bytes());
        let crc = crc32c::crc32c(&bytes[..20]);
        bytes[20..24].copy_from_slice(&crc.to_le_bytes());
        std::fs::write(segment_path(dir.path(), 1), &bytes).unwrap();
        assert!(matches!(read_all(dir.path(), 0), Err(LogError::Corrupt { .. })), "a newer format is refused");
    }

    #[test]
    fn damage_in_the_middle_is_corruption_with_a_clear_place() {
        let dir = tempfile::tempdir().unwrap();
        write_log(dir.path(), 12, 1 << 20);
        let segment = list_segments(dir.path()).unwrap().pop().unwrap();
        let full = std::fs::read(&segment.path).unwrap();
        for offset in [HEADER_LEN + 3, HEADER_LEN + 12, full.len() / 2] {
            let mut bad = full.clone();
            bad[offset] ^= 0x40;
            std::fs::write(&segment.path, &bad).unwrap();
            match read_all(dir.path(), 0) {
                Err(LogError::Corrupt { path, offset: at, .. }) => {
                    assert_eq!(path, segment.path);
                    assert!(at as usize <= offset, "reported {at} for damage at {offset}");
                }
                other => panic!("damage at {offset}: {other:?}"),
            }
        }
        // A damaged header is corruption too.
        let mut bad = full.clone();
        bad[2] = b'X';
        std::fs::write(&segment.path, &bad).unwrap();
        assert!(matches!(read_all(dir.path(), 0), Err(LogError::Corrupt { offset: 0, .. })));
    }

    #[test]
    fn damage_in_a_closed_segment_is_corruption_even_at_its_end() {
        let dir = tempfile::tempdir().unwrap();
        write_log(dir.path(), 30, 200);
        let first = list_segments(dir.path()).unwrap().remove(0);
        let full = std::fs::read(&first.path).unwrap();
        std::fs::write(&first.path, &full[..full.len() - 1]).unwrap();
        assert!(matches!(read_all(dir.path(), 0), Err(LogError::Corrupt { .. })));
    }

    #[test]
    fn garbage_segments_never_panic() {
        let dir = tempfile::tempdir().unwrap();
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for round in 0..200 {
            let len = (seed % 300) as usize;
            let mut bytes = if round % 2 == 0 { encode_header(1) } else { Vec::new() };
            bytes.extend((0..len).map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            }));
            std::fs::write(segment_path(dir.path(), 1), &bytes).unwrap();
            let _ = read_log(dir.path(), 0, |_| Ok::<(), LogError>(()));
        }
    }
}
