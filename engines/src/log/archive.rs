//! Log archiving (`log-archive-repo`): every closed segment is copied into
//! a backup repository's `log/` directory before truncation may delete it,
//! as PostgreSQL archives its WAL. The archive, with the time marks in its
//! segments, is what point-in-time restore rolls a backup forward with.
//!
//! A thread copies each closed segment (to a temporary name, fsynced, then
//! renamed: a copy cut short is never taken for a segment) and holds a
//! retention pin at the last sequence archived, so truncation keeps what
//! it has not copied yet. The archive only grows at its end: of a closed
//! segment whose records the archive partly holds already, the same ones
//! (a server restored to a point within the archive goes on from there),
//! the rest is archived; one that starts after the archive's end leaves a
//! gap (archiving was off meanwhile: said in the server's log); one whose
//! records differ from the archive's (another server's archive, or this
//! server's before a restore to an earlier point) stops archiving with an
//! error. A copy that fails is tried again every second, the segments
//! kept meanwhile.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Condvar, Mutex, MutexGuard};

use super::{copy_records, io_err, list_segments, segment_path, Log, LogCursor, LogError, RetentionPin};

/// The directory of a repository's archived log.
pub fn archive_dir(repo: &Path) -> PathBuf {
    repo.join("log")
}

/// The last whole record in the segments of `dir` and its commit time
/// (None when there are none), read without decoding records.
pub fn log_end(dir: &Path) -> Result<Option<(u64, u64)>, LogError> {
    let Some(last) = list_segments(dir)?.pop() else { return Ok(None) };
    let mut cursor = LogCursor::open(dir, last.first_seq - 1)?;
    cursor.skip_to_end()?;
    Ok(Some((cursor.position(), cursor.time_ms())))
}

/// One archived segment, read whole and checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArchivedSegment {
    pub first_seq: u64,
    pub last_seq: u64,
    /// Commit times of its first and last records (unix ms).
    pub first_time_ms: u64,
    pub last_time_ms: u64,
}

/// Every segment of the archive in `dir`, each read whole: damage in any
/// of them is an error (`strata-backup verify`). Gaps between them are
/// not: they are where archiving was off.
pub fn check_archive(dir: &Path) -> Result<Vec<ArchivedSegment>, LogError> {
    let mut out = Vec::new();
    for segment in list_segments(dir)? {
        let mut cursor = LogCursor::open_segment(dir, segment.first_seq)?;
        let Some(first) = cursor.next_record(u64::MAX)? else { continue };
        let last_seq = cursor.skip_to_end()?;
        out.push(ArchivedSegment {
            first_seq: first.seq,
            last_seq,
            first_time_ms: first.time_ms,
            last_time_ms: cursor.time_ms(),
        });
    }
    Ok(out)
}

/// Where a time falls in an archive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeInArchive {
    /// The last record committed at or before it.
    At(u64),
    /// The archive's first record was committed after it (at `time_ms`).
    BeforeStart { first_seq: u64, time_ms: u64 },
    /// The archive's last record was committed before it: records after
    /// that may exist and not be archived yet.
    AfterEnd { last_seq: u64, time_ms: u64 },
}

/// The last record of the archive in `dir` committed at or before
/// `time_ms`. Only the first record of each segment is read until the one
/// holding the time is found; a gap before it is an error (the records in
/// it are unknown).
pub fn seq_at_time(dir: &Path, time_ms: u64) -> Result<Option<TimeInArchive>, LogError> {
    let segments = list_segments(dir)?;
    let mut start = None;
    for segment in &segments {
        let Some(first) = LogCursor::open_segment(dir, segment.first_seq)?.next_record(u64::MAX)? else { continue };
        if first.time_ms > time_ms {
            match start {
                Some(_) => break,
                None => return Ok(Some(TimeInArchive::BeforeStart { first_seq: first.seq, time_ms: first.time_ms })),
            }
        }
        start = Some(segment.first_seq);
    }
    let Some(start) = start else { return Ok(None) };
    let mut cursor = LogCursor::open(dir, start - 1)?;
    while let Some(record) = cursor.next_record(u64::MAX)? {
        if record.time_ms > time_ms {
            return Ok(Some(TimeInArchive::At(record.seq - 1)));
        }
    }
    Ok(Some(TimeInArchive::AfterEnd { last_seq: cursor.position(), time_ms: cursor.time_ms() }))
}

/// Where archiving stands, for INFO.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArchiveStatus {
    Off,
    Ok,
    Failing,
}

impl ArchiveStatus {
    pub fn name(self) -> &'static str {
        match self {
            ArchiveStatus::Off => "off",
            ArchiveStatus::Ok => "ok",
            ArchiveStatus::Failing => "err",
        }
    }
}

#[derive(Default)]
struct Settings {
    repo: Option<PathBuf>,
    timeout: Duration,
}

/// What the archiving thread keeps between passes.
#[derive(Default)]
struct Progress {
    /// The repository the pin and `end` are for.
    repo: Option<PathBuf>,
    pin: Option<RetentionPin>,
    /// The last sequence the archive holds (None: not read yet, or empty).
    end: Option<u64>,
    /// The last failure reported in the server's log (said once).
    reported: Option<String>,
}

pub struct Archiver {
    log: Arc<Log>,
    settings: Mutex<Settings>,
    progress: Mutex<Progress>,
    wake: (Mutex<()>, Condvar),
    failing: AtomicBool,
    /// The last sequence archived (0: none yet).
    pub archived_seq: AtomicU64,
}

impl Archiver {
    /// Starts the archiving thread for `log`; `repo` None leaves archiving
    /// off until `configure` turns it on. The thread ends when the log is
    /// closed.
    pub fn start(log: Arc<Log>, repo: Option<PathBuf>, timeout: Duration) -> Result<Arc<Archiver>, LogError> {
        let archiver = Arc::new(Archiver {
            log,
            settings: Mutex::new(Settings { repo, timeout }),
            progress: Mutex::default(),
            wake: (Mutex::new(()), Condvar::new()),
            failing: AtomicBool::new(false),
            archived_seq: AtomicU64::new(0),
        });
        let runner = archiver.clone();
        std::thread::Builder::new()
            .name("strata-log-archive".into())
            .spawn(move || runner.run())
            .map_err(io_err(archiver.log.dir()))?;
        Ok(archiver)
    }

    /// `log-archive-repo` (None: off) and `log-archive-timeout` (zero:
    /// segments close only when full).
    pub fn configure(&self, repo: Option<PathBuf>, timeout: Duration) {
        *self.settings.lock() = Settings { repo, timeout };
        self.wake.1.notify_one();
    }

    pub fn status(&self) -> ArchiveStatus {
        match (self.settings.lock().repo.is_some(), self.failing.load(Ordering::Relaxed)) {
            (false, _) => ArchiveStatus::Off,
            (true, false) => ArchiveStatus::Ok,
            (true, true) => ArchiveStatus::Failing,
        }
    }

    /// Archives what is due now rather than at the next pass.
    pub fn archive_now(&self) -> Result<(), LogError> {
        self.pass()
    }

    fn run(&self) {
        let mut wake = self.wake.0.lock();
        while !self.log.is_closing() {
            let _ = MutexGuard::unlocked(&mut wake, || self.pass());
            self.wake.1.wait_for(&mut wake, Duration::from_secs(1));
        }
    }

    /// Copies every closed segment the archive lacks; reports a failure in
    /// the server's log once, and its end.
    fn pass(&self) -> Result<(), LogError> {
        let (repo, timeout) = {
            let settings = self.settings.lock();
            (settings.repo.clone(), settings.timeout)
        };
        let mut progress = self.progress.lock();
        if progress.repo != repo {
            // Pinned before anything is listed: nothing can go meanwhile.
            let pin = repo.as_ref().map(|_| self.log.pin(0));
            *progress = Progress { repo: repo.clone(), pin, end: None, reported: None };
            self.failing.store(false, Ordering::Relaxed);
        }
        let Some(repo) = repo else { return Ok(()) };
        let result = self.archive(&repo, timeout, &mut progress);
        match &result {
            Ok(()) if progress.reported.take().is_some() => {
                tracing::warn!(repo = %repo.display(), "log archiving works again");
            }
            Ok(()) => {}
            Err(e) => {
                self.log.metrics.log_archive_failures.inc();
                let text = e.to_string();
                if progress.reported.as_ref() != Some(&text) {
                    tracing::error!(repo = %repo.display(), "log archiving failed: {text}; the segments are kept and \
                                    archiving is tried again every second");
                    progress.reported = Some(text);
                }
            }
        }
        self.failing.store(result.is_err(), Ordering::Relaxed);
        result
    }

    fn archive(&self, repo: &Path, timeout: Duration, progress: &mut Progress) -> Result<(), LogError> {
        if !timeout.is_zero() {
            self.log.rotate_if_older(timeout)?;
        }
        let dir = archive_dir(repo);
        if progress.end.is_none() {
            progress.end = log_end(&dir)?.map(|(seq, _)| seq);
        }
        let open_first = self.log.open_segment_first();
        let segments = list_segments(self.log.dir())?;
        for pair in segments.windows(2).filter(|pair| pair[0].first_seq < open_first) {
            let (first, last) = (pair[0].first_seq, pair[1].first_seq - 1);
            match progress.end {
                None => copy_segment(&pair[0].path, &dir, first)?,
                Some(end) if first == end + 1 => copy_segment(&pair[0].path, &dir, first)?,
                Some(end) if first > end + 1 => {
                    tracing::warn!(
                        repo = %repo.display(),
                        "the archived log misses sequences {} to {} (archiving was off): point-in-time restore \
                         cannot cross them",
                        end + 1,
                        first - 1
                    );
                    copy_segment(&pair[0].path, &dir, first)?;
                }
                // Records the archive holds already: the same ones, or
                // another history.
                Some(end) => {
                    let held = list_segments(&dir)?.first().map_or(first, |s| s.first_seq).max(first);
                    if !same_records(self.log.dir(), &dir, held, end.min(last))? {
                        return Err(LogError::Corrupt {
                            path: dir.clone(),
                            offset: 0,
                            after_seq: held - 1,
                            what: format!(
                                "the archive's records from sequence {held} differ from this server's (another \
                                 server's archive, or this one's before a restore): archive into another repository"
                            ),
                        });
                    }
                    if last <= end {
                        continue;
                    }
                    // What follows them, as a segment of its own.
                    copy_records_whole(self.log.dir(), &dir, end + 1, last)?;
                }
            }
            self.log.metrics.log_archived_segments.inc();
            progress.end = Some(last);
            self.archived_seq.store(last, Ordering::Relaxed);
            if let Some(pin) = &progress.pin {
                pin.advance(last);
            }
        }
        Ok(())
    }
}

/// Whether the records `first..=last` in the segments of `a` and of `b`
/// are the same (their bytes may differ: a restored log is written anew).
fn same_records(a: &Path, b: &Path, first: u64, last: u64) -> Result<bool, LogError> {
    let (mut ours, mut theirs) = (LogCursor::open(a, first - 1)?, LogCursor::open(b, first - 1)?);
    for _ in first..=last {
        match (ours.next_record(last)?, theirs.next_record(last)?) {
            (Some(x), Some(y)) if (x.seq, &x.rocks, &x.mem) == (y.seq, &y.rocks, &y.mem) => {}
            _ => return Ok(false),
        }
    }
    Ok(true)
}

/// Writes the records `first..=last` of the log in `from` into `dir` as
/// a segment of their own, put in place whole (as `copy_segment`).
fn copy_records_whole(from: &Path, dir: &Path, first: u64, last: u64) -> Result<(), LogError> {
    let incoming = dir.join("incoming");
    let _ = std::fs::remove_dir_all(&incoming);
    std::fs::create_dir_all(&incoming).map_err(io_err(&incoming))?;
    let written = copy_records(from, &incoming, first, last)?;
    let target = segment_path(dir, first);
    let place = || -> std::io::Result<()> {
        std::fs::rename(&written, &target)?;
        std::fs::File::open(dir)?.sync_all()?;
        std::fs::remove_dir(&incoming)
    };
    place().map_err(io_err(&target))
}

/// Copies segment `from` into `dir` as segment `first_seq`: to a temporary
/// name, fsynced, then renamed and the directory fsynced.
fn copy_segment(from: &Path, dir: &Path, first_seq: u64) -> Result<(), LogError> {
    let target = segment_path(dir, first_seq);
    let tmp = target.with_extension("log.tmp");
    let copy = || -> std::io::Result<()> {
        if let Some(error) = crate::faults::injected_error("log-archive") {
            return Err(error);
        }
        std::fs::create_dir_all(dir)?;
        std::fs::copy(from, &tmp)?;
        std::fs::File::open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, &target)?;
        std::fs::File::open(dir)?.sync_all()
    };
    copy().map_err(io_err(&target))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::FsyncPolicy;
    use bytes::Bytes;

    /// Records `from..=to` (written out; small segments close as they fill),
    /// then the open segment closed.
    fn write(log: &Log, from: u64, to: u64, tag: &str) {
        for i in from..=to {
            let mem = vec![crate::memory::MemRecord::Op {
                db: 0,
                op: crate::memory::MemOp::Delete { key: Bytes::from(format!("{tag}{i}")) },
            }];
            assert_eq!(log.lock().push(&[], &mem), i);
            log.write_through(i).unwrap();
        }
        log.rotate().unwrap();
    }

    fn archived_seqs(repo: &Path) -> Vec<u64> {
        let first = list_segments(&archive_dir(repo)).unwrap()[0].first_seq;
        crate::log::tests::each_record(&archive_dir(repo), first - 1, |r| r.seq)
    }

    #[test]
    fn closed_segments_are_archived_and_kept_from_truncation_until_they_are() {
        let (dir, repo) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let log = Log::open(dir.path(), 1, FsyncPolicy::No, 300, Default::default()).unwrap();
        let archiver = Archiver::start(log.clone(), None, Duration::ZERO).unwrap();
        write(&log, 1, 40, "a");
        archiver.archive_now().unwrap();
        assert_eq!(archiver.status(), ArchiveStatus::Off);
        assert!(list_segments(&archive_dir(repo.path())).unwrap().is_empty(), "off: nothing archived");

        archiver.configure(Some(repo.path().to_path_buf()), Duration::ZERO);
        archiver.archive_now().unwrap();
        assert_eq!(archiver.status(), ArchiveStatus::Ok);
        assert_eq!(archived_seqs(repo.path()), (1..=40).collect::<Vec<_>>());
        for segment in list_segments(&archive_dir(repo.path())).unwrap() {
            let local = segment_path(dir.path(), segment.first_seq);
            assert_eq!(std::fs::read(&segment.path).unwrap(), std::fs::read(local).unwrap(), "copied as it is");
        }
        assert_eq!(log_end(&archive_dir(repo.path())).unwrap().map(|(seq, _)| seq), Some(40));
        assert_eq!(archiver.archived_seq.load(Ordering::Relaxed), 40);
        assert!(log.truncate_through(40).unwrap() > 0, "archived segments may go");

        // Not archived yet: kept from truncation until they are.
        write(&log, 41, 60, "a");
        log.truncate_through(60).unwrap();
        assert_eq!(list_segments(dir.path()).unwrap()[0].first_seq, 41);
        archiver.archive_now().unwrap();
        assert_eq!(archived_seqs(repo.path()), (1..=60).collect::<Vec<_>>());
        log.truncate_through(60).unwrap();
        assert_eq!(list_segments(dir.path()).unwrap().len(), 1, "only the open segment is left");
        // Archiving off: the pin is let go.
        write(&log, 61, 70, "a");
        archiver.configure(None, Duration::ZERO);
        archiver.archive_now().unwrap();
        log.truncate_through(70).unwrap();
        assert_eq!(list_segments(dir.path()).unwrap().len(), 1);
        log.close().unwrap();
    }

    #[test]
    fn the_archive_grows_only_at_its_end() {
        let repo = tempfile::tempdir().unwrap();
        let archive = |first: u64, last: u64, tag: &str| {
            let dir = tempfile::tempdir().unwrap();
            let log = Log::open(dir.path(), first, FsyncPolicy::No, 300, Default::default()).unwrap();
            write(&log, first, last, tag);
            let archiver = Archiver::start(log.clone(), Some(repo.path().to_path_buf()), Duration::ZERO).unwrap();
            let result = archiver.archive_now();
            log.close().unwrap();
            (result, archiver.status())
        };
        assert!(matches!(archive(1, 30, "a"), (Ok(()), ArchiveStatus::Ok)));
        // Another history over the same sequences is refused, and nothing
        // of it is copied.
        let before = std::fs::read_dir(archive_dir(repo.path())).unwrap().count();
        let (refused, status) = archive(20, 50, "b");
        assert!(refused.unwrap_err().to_string().contains("archive into another repository"));
        assert_eq!(status, ArchiveStatus::Failing);
        assert_eq!(std::fs::read_dir(archive_dir(repo.path())).unwrap().count(), before);
        // The same history (a server restored within it goes on from
        // there): what follows the archive's end is archived.
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(dir.path(), 25, FsyncPolicy::No, 300, Default::default()).unwrap();
        write(&log, 25, 40, "a");
        let archiver = Archiver::start(log.clone(), Some(repo.path().to_path_buf()), Duration::ZERO).unwrap();
        archiver.archive_now().unwrap();
        log.close().unwrap();
        assert_eq!(archived_seqs(repo.path()), (1..=40).collect::<Vec<_>>());
        // After a gap (archiving was off): archived, the gap left as it is.
        assert!(matches!(archive(100, 120, "c"), (Ok(()), ArchiveStatus::Ok)));
        assert_eq!(log_end(&archive_dir(repo.path())).unwrap().map(|(seq, _)| seq), Some(120));
        let gap = crate::log::read_log(&archive_dir(repo.path()), 0, |_| Ok::<_, LogError>(()));
        assert!(gap.unwrap_err().to_string().contains("gap in the log"));
    }

    #[test]
    fn a_timeout_closes_the_open_segment_for_the_archive() {
        let (dir, repo) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let log = Log::open(dir.path(), 1, FsyncPolicy::No, 64 << 20, Default::default()).unwrap();
        let archiver =
            Archiver::start(log.clone(), Some(repo.path().to_path_buf()), Duration::from_millis(50)).unwrap();
        archiver.archive_now().unwrap();
        let mem = vec![crate::memory::MemRecord::Flush { db: 0 }];
        log.lock().push(&[], &mem);
        std::thread::sleep(Duration::from_millis(60));
        // The rotation closes it; the next pass archives it.
        archiver.archive_now().unwrap();
        archiver.archive_now().unwrap();
        assert_eq!(archived_seqs(repo.path()), [1]);
        // An empty open segment is not rotated.
        let open = log.open_segment_first();
        std::thread::sleep(Duration::from_millis(60));
        archiver.archive_now().unwrap();
        assert_eq!(log.open_segment_first(), open);
        log.close().unwrap();
    }

    #[test]
    fn a_time_finds_the_last_record_committed_by_then() {
        let (dir, repo) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let log = Log::open(dir.path(), 1, FsyncPolicy::No, 300, Default::default()).unwrap();
        // Record i is committed at 1000 + 10 * (i / 3): three per time.
        for i in 1..=60u64 {
            crate::clock::pin_for_tests(1000 + 10 * (i / 3));
            write(&log, i, i, "t");
        }
        crate::clock::pin_for_tests(0);
        let archiver = Archiver::start(log.clone(), Some(repo.path().to_path_buf()), Duration::ZERO).unwrap();
        archiver.archive_now().unwrap();
        log.close().unwrap();
        let archive = archive_dir(repo.path());
        let segments = check_archive(&archive).unwrap();
        assert_eq!(segments.len(), 60, "one segment per record: each was rotated");
        assert_eq!((segments[0].first_time_ms, segments[59].last_time_ms), (1000, 1200));
        let at = |ms| seq_at_time(&archive, ms).unwrap().unwrap();
        assert_eq!(at(1000), TimeInArchive::At(2));
        assert_eq!(at(1005), TimeInArchive::At(2));
        assert_eq!(at(1100), TimeInArchive::At(32));
        assert_eq!(at(1190), TimeInArchive::At(59));
        assert_eq!(at(999), TimeInArchive::BeforeStart { first_seq: 1, time_ms: 1000 });
        assert_eq!(at(1200), TimeInArchive::AfterEnd { last_seq: 60, time_ms: 1200 });
        // Damage in an archived segment, at its end too, is found.
        let path = segment_path(&archive, 7);
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 1]).unwrap();
        assert!(matches!(check_archive(&archive), Err(LogError::Corrupt { .. })));
    }
}
