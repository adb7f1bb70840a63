//! Reading the log in order from any retained sequence. Recovery reads it
//! to its end; readers of a running log (increments, replicas, slot
//! migration) read what the log has written so far and wait for more
//! (`LogReader`), holding a pin that keeps the segments they still need
//! from truncation.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;

use super::{
    decode_header, frame_at, has_valid_frame_after, io_err, list_segments, segment_path, Frame, Log, LogEnd, LogError,
    LogRecord, FRAME_HEAD, HEADER_LEN,
};

/// Bytes read from a segment at a time (more when one record is bigger):
/// small, because a reader that has caught up with a running log reads
/// again from its position each time the log grows.
const CHUNK: usize = 64 << 10;

/// A position in the log: the records after `after`, in order.
pub struct LogCursor {
    dir: PathBuf,
    /// Records at or below this are checked but neither decoded nor
    /// returned.
    after: u64,
    /// The sequence the next record has.
    next: u64,
    segment: Option<SegmentReader>,
    /// The time of the last mark read (0: none yet).
    mark_ms: u64,
    /// Reads one closed segment only (`open_segment`).
    one_segment: bool,
}

/// The segment a cursor is in, read a chunk at a time.
struct SegmentReader {
    path: PathBuf,
    file: File,
    first_seq: u64,
    /// The file ends inside its header: a crash while it was written.
    torn_header: bool,
    /// File offset of `buf[0]`.
    base: u64,
    buf: Bytes,
    /// The next frame's position in `buf`.
    pos: usize,
}

impl SegmentReader {
    /// Opens the segment that must start at `first_seq`.
    fn open(dir: &Path, first_seq: u64) -> Result<Option<SegmentReader>, LogError> {
        let path = segment_path(dir, first_seq);
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(&path)(e)),
        };
        let mut segment =
            SegmentReader { path, file, first_seq, torn_header: false, base: 0, buf: Bytes::new(), pos: 0 };
        segment.reload(HEADER_LEN)?;
        match decode_header(&segment.buf) {
            Ok(first) if first == first_seq => {}
            Ok(_) => return Err(segment.corrupt(0, first_seq - 1, "header sequence differs from the file name")),
            // A crash while the header was being written: nothing after it.
            Err(_) if segment.buf.len() < HEADER_LEN => segment.torn_header = true,
            Err(what) => return Err(segment.corrupt(0, first_seq - 1, what)),
        }
        segment.pos = HEADER_LEN.min(segment.buf.len());
        Ok(Some(segment))
    }

    /// Reads the file again from the next frame on, enough for that frame
    /// if the file holds it: past the last record written, the open
    /// segment's bytes change under a reader.
    fn refresh(&mut self) -> Result<(), LogError> {
        self.reload(CHUNK)?;
        if self.frame_len() > self.buf.len() {
            self.reload(self.frame_len())?;
        }
        Ok(())
    }

    /// Reads up to `wanted` bytes (at least a chunk) from the next frame on.
    fn reload(&mut self, wanted: usize) -> Result<(), LogError> {
        self.base += self.pos as u64;
        self.pos = 0;
        let file_len = self.file.metadata().map_err(io_err(&self.path))?.len();
        let available = file_len.saturating_sub(self.base) as usize;
        let mut buf = vec![0; wanted.max(CHUNK).min(available)];
        let mut filled = 0;
        while filled < buf.len() {
            match self.file.read_at(&mut buf[filled..], self.base + filled as u64) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io_err(&self.path)(e)),
            }
        }
        buf.truncate(filled);
        self.buf = Bytes::from(buf);
        Ok(())
    }

    /// Bytes a whole frame at the position needs, as far as its length
    /// field says.
    fn frame_len(&self) -> usize {
        let head = self.buf.get(self.pos..self.pos + 4);
        FRAME_HEAD + head.map_or(0, |len| u32::from_le_bytes(len.try_into().expect("4 bytes")) as usize)
    }

    fn offset(&self) -> u64 {
        self.base + self.pos as u64
    }

    fn corrupt(&self, offset: u64, after_seq: u64, what: &str) -> LogError {
        LogError::Corrupt { path: self.path.clone(), offset, after_seq, what: what.to_string() }
    }
}

impl LogCursor {
    /// A cursor at the first record after `after`. The segment holding
    /// `after + 1` must still exist (unless there are no segments at all).
    pub fn open(dir: &Path, after: u64) -> Result<LogCursor, LogError> {
        let segments = list_segments(dir)?;
        let mut cursor =
            LogCursor { dir: dir.to_path_buf(), after, next: after + 1, segment: None, mark_ms: 0, one_segment: false };
        let Some(first) = segments.first() else { return Ok(cursor) };
        let Some(start) = segments.iter().rev().find(|s| s.first_seq <= after + 1) else {
            return Err(LogError::NotRetained { first: first.first_seq, wanted: after + 1 });
        };
        cursor.next = start.first_seq;
        cursor.segment = SegmentReader::open(dir, start.first_seq)?;
        Ok(cursor)
    }

    /// A cursor over the one segment of `dir` that starts at `first_seq`,
    /// a closed one (an archived segment): it ends where the segment ends,
    /// and damage anywhere in it, at its end too, is corruption.
    pub fn open_segment(dir: &Path, first_seq: u64) -> Result<LogCursor, LogError> {
        let path = segment_path(dir, first_seq);
        let missing = || io_err(&path)(std::io::ErrorKind::NotFound.into());
        let segment = SegmentReader::open(dir, first_seq)?.ok_or_else(missing)?;
        if segment.torn_header {
            return Err(segment.corrupt(0, first_seq - 1, "file shorter than a segment header"));
        }
        let dir = dir.to_path_buf();
        Ok(LogCursor {
            dir,
            after: first_seq - 1,
            next: first_seq,
            segment: Some(segment),
            mark_ms: 0,
            one_segment: true,
        })
    }

    /// The sequence of the last record read (or the start).
    pub fn position(&self) -> u64 {
        (self.next - 1).max(self.after)
    }

    /// The commit time of the last record read or passed over, in unix
    /// milliseconds (0 when its segment has no time marks).
    pub fn time_ms(&self) -> u64 {
        self.mark_ms
    }

    /// The next record after the cursor's start, if its sequence is at
    /// most `limit` and the log holds it. A running log passes the last
    /// sequence it has written (`Log::written_seq`): every record up to it
    /// is whole on disk. Recovery passes `u64::MAX` and reads to the end.
    pub fn next_record(&mut self, limit: u64) -> Result<Option<LogRecord>, LogError> {
        self.read(limit, self.after)
    }

    /// Reads to the end of the log, checking every record but decoding
    /// none; the last one's sequence.
    pub fn skip_to_end(&mut self) -> Result<u64, LogError> {
        self.read(u64::MAX, u64::MAX)?;
        Ok(self.position())
    }

    /// The next record up to `limit` after `decode_after` (those at or
    /// below it are checked and passed over).
    fn read(&mut self, limit: u64, decode_after: u64) -> Result<Option<LogRecord>, LogError> {
        let mut reloaded = false;
        while self.next <= limit {
            let Some(segment) = self.segment.as_mut() else {
                self.segment = SegmentReader::open(&self.dir, self.next)?;
                if self.segment.is_none() {
                    self.check_no_gap()?;
                    return Ok(None);
                }
                continue;
            };
            match frame_at(&segment.buf, segment.pos, decode_after) {
                Frame::Passed { seq, end } => {
                    self.check_sequence(seq)?;
                    self.segment.as_mut().expect("in a segment").pos = end;
                    reloaded = false;
                }
                Frame::Mark { ms, end } => {
                    self.mark_ms = ms;
                    self.segment.as_mut().expect("in a segment").pos = end;
                    reloaded = false;
                }
                Frame::Record { mut record, end } => {
                    self.check_sequence(record.seq)?;
                    self.segment.as_mut().expect("in a segment").pos = end;
                    record.time_ms = self.mark_ms;
                    return Ok(Some(record));
                }
                Frame::Incomplete | Frame::Bad(_) if !reloaded => {
                    segment.refresh()?;
                    reloaded = true;
                }
                Frame::Incomplete | Frame::Bad(_) => {
                    // The segment has no more records: the next one starts
                    // at `next`, or the log ends here for now.
                    let rest = segment.buf.len() - segment.pos;
                    if self.one_segment {
                        return match rest {
                            0 => Ok(None),
                            _ => Err(segment.corrupt(segment.offset(), self.next - 1, "damaged record")),
                        };
                    }
                    let next = match self.next > segment.first_seq {
                        true => SegmentReader::open(&self.dir, self.next)?,
                        false => None,
                    };
                    match next {
                        Some(next) if rest == 0 => self.segment = Some(next),
                        Some(_) => {
                            let (offset, what) = (segment.offset(), "damaged record before the next segment");
                            return Err(segment.corrupt(offset, self.next - 1, what));
                        }
                        None => {
                            self.check_no_gap()?;
                            return Ok(None);
                        }
                    }
                    reloaded = false;
                }
            }
        }
        Ok(None)
    }

    /// Where the log ends, once `next_record(u64::MAX)` has answered None:
    /// damage at the very end of the last segment is a torn write (a crash
    /// mid-write, or the zeros the log writes ahead), to be cut off;
    /// damage with a whole record after it is corruption.
    pub fn end(&mut self) -> Result<LogEnd, LogError> {
        let last_seq = self.position();
        let Some(segment) = &mut self.segment else {
            return Ok(LogEnd { last_seq, torn: None, unused_tail: false });
        };
        if segment.torn_header {
            return Ok(LogEnd { last_seq, torn: Some((segment.path.clone(), 0)), unused_tail: false });
        }
        // All of the rest: a whole record anywhere after the damage
        // makes it corruption.
        segment.reload(usize::MAX)?;
        let rest = &segment.buf[segment.pos..];
        if rest.is_empty() {
            return Ok(LogEnd { last_seq, torn: None, unused_tail: false });
        }
        if has_valid_frame_after(&segment.buf, segment.pos + 1, self.next) {
            let what = match frame_at(&segment.buf, segment.pos, u64::MAX) {
                Frame::Bad(what) => what,
                _ => "incomplete record",
            };
            return Err(segment.corrupt(segment.offset(), self.next - 1, what));
        }
        let unused_tail = rest.iter().all(|&b| b == 0);
        Ok(LogEnd { last_seq, torn: Some((segment.path.clone(), segment.offset())), unused_tail })
    }

    fn check_sequence(&mut self, seq: u64) -> Result<(), LogError> {
        if seq != self.next {
            let segment = self.segment.as_ref().expect("in a segment");
            return Err(segment.corrupt(segment.offset(), self.next - 1, "record out of sequence"));
        }
        self.next += 1;
        Ok(())
    }

    /// No segment starts at `next`: none may start after it either.
    fn check_no_gap(&self) -> Result<(), LogError> {
        match list_segments(&self.dir)?.into_iter().find(|s| s.first_seq > self.next) {
            Some(later) => Err(LogError::Corrupt {
                path: later.path,
                offset: 0,
                after_seq: self.next - 1,
                what: format!("gap in the log: expected sequence {}", self.next),
            }),
            None => Ok(()),
        }
    }
}

/// The readers of a running log: for each, the last sequence it no longer
/// needs. Truncation keeps every segment with a record after the lowest.
#[derive(Default)]
pub(super) struct Pins {
    next_id: AtomicU64,
    held: Mutex<HashMap<u64, u64>>,
}

impl Pins {
    /// The lowest sequence a reader still needs the records after.
    pub(super) fn lowest(&self) -> Option<u64> {
        self.held.lock().values().copied().min()
    }
}

/// Keeps the records after a sequence from truncation while held.
pub struct RetentionPin {
    pins: Arc<Pins>,
    id: u64,
}

impl RetentionPin {
    pub(super) fn new(pins: &Arc<Pins>, after: u64) -> RetentionPin {
        let id = pins.next_id.fetch_add(1, Ordering::Relaxed);
        pins.held.lock().insert(id, after);
        RetentionPin { pins: pins.clone(), id }
    }

    /// The records up to `seq` are no longer needed.
    pub fn advance(&self, seq: u64) {
        if let Some(after) = self.pins.held.lock().get_mut(&self.id) {
            *after = (*after).max(seq);
        }
    }
}

impl Drop for RetentionPin {
    fn drop(&mut self) {
        self.pins.held.lock().remove(&self.id);
    }
}

/// A reader of a running log: the records it has written, in order, from
/// a start sequence on; its segments are kept until read.
pub struct LogReader {
    log: Arc<Log>,
    cursor: LogCursor,
    pin: RetentionPin,
}

impl LogReader {
    pub(super) fn new(log: Arc<Log>, cursor: LogCursor, pin: RetentionPin) -> LogReader {
        LogReader { log, cursor, pin }
    }

    /// The next record, if the log has written it.
    pub fn next_record(&mut self) -> Result<Option<LogRecord>, LogError> {
        let record = self.cursor.next_record(self.log.written_seq())?;
        if let Some(record) = &record {
            self.pin.advance(record.seq);
        }
        Ok(record)
    }

    /// Waits until the log has written a record after the last one read,
    /// or `timeout` passes; whether it has.
    pub fn wait(&self, timeout: Duration) -> bool {
        self.log.wait_written(self.cursor.position(), timeout)
    }

    /// The sequence of the last record read.
    pub fn position(&self) -> u64 {
        self.cursor.position()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::FsyncPolicy;
    use crate::memory::{MemOp, MemRecord};

    fn push(log: &Log, i: u64) {
        let mem = vec![MemRecord::Op { db: 0, op: MemOp::Delete { key: Bytes::from(format!("key{i}")) } }];
        assert_eq!(log.lock().push(&vec![7; (i % 5) as usize], &mem), i);
    }

    /// Records `1..=n`, each written out (a segment is closed by the
    /// write that takes it past its size).
    fn write(log: &Log, n: u64) {
        for i in 1..=n {
            push(log, i);
            log.write_through(i).unwrap();
        }
    }

    fn key(record: &LogRecord) -> Bytes {
        match &record.mem[..] {
            [MemRecord::Op { op, .. }] => op.key().clone(),
            other => panic!("unexpected records {other:?}"),
        }
    }

    /// A log of records 1..=60 in small segments, all closed.
    fn sixty_records_in_closed_segments(dir: &Path) -> Arc<Log> {
        let log = Log::open(dir, 1, FsyncPolicy::No, 300, Default::default()).unwrap();
        write(&log, 60);
        log.rotate().unwrap();
        log
    }

    /// Everything the reader has now.
    fn drain(reader: &mut LogReader) -> Vec<u64> {
        let mut seqs = Vec::new();
        while let Some(record) = reader.next_record().unwrap() {
            assert_eq!(key(&record), format!("key{}", record.seq));
            seqs.push(record.seq);
        }
        seqs
    }

    #[test]
    fn a_reader_starts_anywhere_and_follows_the_open_segment_across_rotations() {
        for policy in [FsyncPolicy::Always, FsyncPolicy::No] {
            let dir = tempfile::tempdir().unwrap();
            let log = Log::open(dir.path(), 1, policy, 300, Default::default()).unwrap();
            write(&log, 40);
            assert!(list_segments(dir.path()).unwrap().len() > 3, "several segments");
            for after in [0, 1, 17, 39, 40] {
                let mut reader = log.reader(after).unwrap();
                assert_eq!(drain(&mut reader), (after + 1..=40).collect::<Vec<_>>(), "{policy:?} after {after}");
            }
            let mut reader = log.reader(10).unwrap();
            assert_eq!(drain(&mut reader).len(), 30);
            // Appended but not yet written: not for readers.
            push(&log, 41);
            assert_eq!(drain(&mut reader), Vec::<u64>::new());
            for i in 42..=80 {
                push(&log, i);
                if i % 4 == 0 {
                    log.write_through(i).unwrap();
                    assert_eq!(reader.position(), i - 4, "{policy:?}");
                    assert_eq!(drain(&mut reader), (i - 3..=i).collect::<Vec<_>>(), "{policy:?}");
                }
            }
            log.close().unwrap();
        }
    }

    #[test]
    fn a_waiting_reader_gets_every_record_once_while_a_writer_appends() {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(dir.path(), 1, FsyncPolicy::No, 2000, Default::default()).unwrap();
        let mut reader = log.reader(0).unwrap();
        let writer = {
            let log = log.clone();
            std::thread::spawn(move || {
                for i in 1..=3000 {
                    push(&log, i);
                    if i % 7 == 0 || i == 3000 {
                        log.write_through(i).unwrap();
                    }
                }
            })
        };
        let mut seqs = Vec::new();
        while seqs.len() < 3000 {
            seqs.extend(drain(&mut reader));
            if seqs.len() < 3000 {
                assert!(reader.wait(Duration::from_secs(10)), "the writer stopped at {}", reader.position());
            }
        }
        writer.join().unwrap();
        assert_eq!(seqs, (1..=3000).collect::<Vec<_>>());
        assert!(!reader.wait(Duration::from_millis(10)), "nothing more was written");
        log.close().unwrap();
    }

    #[test]
    fn truncation_keeps_what_a_reader_has_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let log = sixty_records_in_closed_segments(dir.path());
        let mut slow = log.reader(20).unwrap();
        let removed = log.truncate_through(60).unwrap();
        assert!(removed > 0, "segments before the reader's go");
        assert_eq!(drain(&mut slow), (21..=60).collect::<Vec<_>>(), "the reader's are kept");
        assert!(matches!(log.reader(0), Err(LogError::NotRetained { first, wanted: 1 }) if first > 1 && first <= 21));
        // Read: nothing holds the rest back now.
        log.truncate_through(60).unwrap();
        assert!(matches!(log.reader(20), Err(LogError::NotRetained { .. })));
        drop(slow);
        assert_eq!(list_segments(dir.path()).unwrap().len(), 1, "only the open segment is left");
        log.close().unwrap();
    }

    #[test]
    fn a_dropped_reader_holds_nothing_back() {
        let dir = tempfile::tempdir().unwrap();
        let log = sixty_records_in_closed_segments(dir.path());
        drop(log.reader(0).unwrap());
        log.truncate_through(60).unwrap();
        assert_eq!(list_segments(dir.path()).unwrap().len(), 1);
        log.close().unwrap();
    }

    /// Where record `seq` starts in a segment's bytes (time marks passed).
    fn record_offset(segment: &Bytes, seq: u64) -> usize {
        let mut pos = HEADER_LEN;
        loop {
            match frame_at(segment, pos, u64::MAX) {
                Frame::Passed { seq: found, .. } if found == seq => return pos,
                Frame::Passed { end, .. } | Frame::Mark { end, .. } => pos = end,
                _ => panic!("no record {seq}"),
            }
        }
    }

    /// Recovery reads a segment a chunk at a time: damage followed by a
    /// whole record that ends more than a chunk later is still corruption,
    /// not a torn tail to cut off.
    #[test]
    fn damage_before_a_record_bigger_than_a_chunk_is_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(dir.path(), 1, FsyncPolicy::No, 64 << 20, Default::default()).unwrap();
        for i in 1..=10 {
            assert_eq!(log.lock().push(&[i as u8; 100], &[]), i);
        }
        assert_eq!(log.lock().push(&vec![11; 3 * CHUNK], &[]), 11);
        log.close().unwrap();
        let segment = list_segments(dir.path()).unwrap().pop().unwrap();
        let mut bytes = std::fs::read(&segment.path).unwrap();
        // In record 10's payload.
        let tenth = record_offset(&Bytes::from(bytes.clone()), 10);
        bytes[tenth + FRAME_HEAD + 20] ^= 0x40;
        std::fs::write(&segment.path, &bytes).unwrap();
        let mut cursor = LogCursor::open(dir.path(), 0).unwrap();
        let mut read = 0;
        while cursor.next_record(u64::MAX).unwrap().is_some() {
            read += 1;
        }
        assert_eq!(read, 9, "stopped at the damage");
        assert!(matches!(cursor.end(), Err(LogError::Corrupt { .. })), "{:?}", cursor.end());
    }
}
