//! Snapshots of every engine at one point, without stopping writers: the
//! parts are what the engines already keep durably — RocksDB's flushed
//! files (a RocksDB checkpoint: hard links, no flush) and the newest memory
//! checkpoint — each naming the sequence it holds; the log from the oldest
//! part's sequence to the snapshot's rolls them all forward to it. A
//! snapshot directory is a data directory `strata-server --dir` starts
//! from, plus `manifest.json`.
//!
//! Three consistency levels (`Level`), chosen per snapshot: `strict` ends
//! exactly at the sequence the snapshot was requested at (the parts plus
//! the log up to it); `bounded` cuts fresh parts first (a RocksDB flush and
//! a memory checkpoint, each on its own) and rolls them forward to the
//! newer one's sequence, a point between the request and the snapshot's
//! end; `eventual` takes the parts as they are, each consistent in itself
//! and at its own sequence, with no log (restoring one stamps the parts at
//! the newer sequence: `stamp`).

use std::path::{Path, PathBuf};

use serde_json::json;
use strata_engines::log::{copy_records, LogCursor};
use strata_engines::memory::checkpoint::list_checkpoints;
use strata_engines::EngineError;

use crate::keyspace::Keyspace;
use crate::recovery;

/// A full snapshot's engine parts, or what an increment continues.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Engine parts: RocksDB's, holding `rocks_seq`, and the memory
    /// checkpoint, whose oldest shard holds `memory_seq` (0: none was
    /// written yet; the log holds everything).
    Full { rocks_seq: u64, memory_seq: u64 },
    /// An increment (`take_since`) on the snapshot taken at `base`, rolled
    /// forward by the log part alone.
    Incremental { base: u64 },
}

/// How a snapshot's parts come together (see the module comment).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Strict,
    Bounded,
    Eventual,
}

impl Level {
    pub fn parse(name: &[u8]) -> Option<Level> {
        [Level::Strict, Level::Bounded, Level::Eventual]
            .into_iter()
            .find(|l| name.eq_ignore_ascii_case(l.name().as_bytes()))
    }

    pub fn name(self) -> &'static str {
        match self {
            Level::Strict => "strict",
            Level::Bounded => "bounded",
            Level::Eventual => "eventual",
        }
    }
}

/// What a snapshot holds (`manifest.json`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    pub level: Level,
    /// The sequence the snapshot restores to (`eventual`: the newer part's;
    /// the older part holds less).
    pub seq: u64,
    /// What the log part rolls forward.
    pub kind: Kind,
    /// The records in the log part (none when the parts hold `seq`).
    pub log: Option<(u64, u64)>,
    /// Each file, relative to the snapshot directory, with its size.
    pub files: Vec<(PathBuf, u64)>,
    /// RocksDB's table files, relative to the snapshot directory, with
    /// their identities (`RocksCheckpoint::tables`): what an increment
    /// need not store again.
    pub tables: Vec<(PathBuf, String)>,
}

impl Manifest {
    pub fn to_json(&self) -> serde_json::Value {
        // Each part's keys: every database and hash slot (a slot range's
        // snapshot, for a migration, will name its own).
        let keys = json!({"databases": "all", "slots": [[0, strata_cluster::SLOT_COUNT - 1]]});
        let log = self.log.map(|(first, last)| json!({"dir": "log", "first": first, "last": last, "keys": keys}));
        let (kind, base, parts) = match self.kind {
            Kind::Full { rocks_seq, memory_seq } => {
                let parts = json!({
                    "rocksdb": {"engine": "rocksdb", "dir": "rocksdb", "seq": rocks_seq, "keys": keys},
                    "memory": {"engine": "memory", "dir": "checkpoints", "seq": memory_seq, "keys": keys},
                    "log": log,
                });
                ("full", None, parts)
            }
            Kind::Incremental { base } => ("incremental", Some(base), json!({"log": log})),
        };
        json!({
            "format": 1,
            "level": self.level.name(),
            "kind": kind,
            "base": base,
            "seq": self.seq,
            "parts": parts,
            "files": self.files.iter().map(|(path, size)| {
                let mut file = json!({"path": path.to_string_lossy(), "size": size});
                if let Some((_, id)) = self.tables.iter().find(|(table, _)| table == path) {
                    file["id"] = json!(id);
                }
                file
            }).collect::<Vec<_>>(),
        })
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> EngineError + '_ {
    move |e| EngineError::Io(path.display().to_string(), e)
}

/// A hard link of `from` at `to`, or a copy where links cannot be made
/// (another filesystem).
fn link_or_copy(from: &Path, to: &Path) -> Result<(), EngineError> {
    if std::fs::hard_link(from, to).is_err() {
        std::fs::copy(from, to).map_err(io(from))?;
    }
    Ok(())
}

/// Writes a snapshot of every engine at `level` into `out` (created;
/// refused if it is not empty). Writers go on meanwhile; only memtable
/// switches wait for the RocksDB checkpoint (hard links).
pub fn take(keyspace: &Keyspace, out: &Path, level: Level) -> Result<Manifest, EngineError> {
    create_empty(out)?;
    std::fs::create_dir_all(out.join("checkpoints")).map_err(io(out))?;
    // Nothing the parts need is truncated while they are chosen and read.
    let _pin = keyspace.log.pin(0);
    let no_checkpoint = list_checkpoints(&recovery::checkpoint_dir(keyspace.data_dir())).is_empty();
    if level == Level::Bounded || (level == Level::Eventual && no_checkpoint) {
        // Fresh parts (an eventual snapshot needs a memory part at least).
        keyspace.save()?;
    }
    // The newest memory checkpoint, linked first so that a newer one cannot
    // delete it meanwhile. It was finished before `seq` is read below, so
    // none of its shards holds anything after `seq`.
    let memory_seq = match list_checkpoints(&recovery::checkpoint_dir(keyspace.data_dir())).first() {
        Some((seq, path)) => {
            link_or_copy(path, &out.join("checkpoints").join(path.file_name().expect("a file name")))?;
            *seq
        }
        None => 0,
    };
    let (requested, rocks) = keyspace.with_memtable_switches_held(|| {
        let seq = keyspace.log.last_seq();
        let rocks = keyspace.store.engine.checkpoint_flushed(&out.join("rocksdb"))?;
        Ok::<_, EngineError>((seq, rocks))
    })?;
    let rocks_seq = rocks.seq;
    let tables = rocks.tables.into_iter().map(|(name, id)| (Path::new("rocksdb").join(name), id)).collect();
    let seq = match level {
        Level::Strict => requested,
        Level::Bounded | Level::Eventual => rocks_seq.max(memory_seq),
    };
    let log_dir = out.join("log");
    std::fs::create_dir_all(&log_dir).map_err(io(&log_dir))?;
    let from = memory_seq.min(rocks_seq);
    let log = match level {
        Level::Strict | Level::Bounded => {
            copy_log(keyspace, &log_dir, from, seq)?;
            (from < seq).then_some((from + 1, seq))
        }
        Level::Eventual => None,
    };
    let kind = Kind::Full { rocks_seq, memory_seq };
    finish(out, Manifest { level, seq, kind, log, files: Vec::new(), tables })
}

/// Ends the log of a restored data directory at `seq`: records after it
/// are dropped, so the server starts at exactly that sequence (a restore
/// to a point inside a backup's log part). The last segment kept is
/// rewritten beside itself and renamed over it.
pub fn end_log_at(dir: &Path, seq: u64) -> Result<(), EngineError> {
    use strata_engines::log::list_segments;
    let log_dir = recovery::log_dir(dir);
    let segments = list_segments(&log_dir)?;
    for segment in segments.iter().filter(|s| s.first_seq > seq) {
        std::fs::remove_file(&segment.path).map_err(io(&segment.path))?;
    }
    let Some(last) = segments.iter().rfind(|s| s.first_seq <= seq) else { return Ok(()) };
    let cut = dir.join("log.cut");
    let _ = std::fs::remove_dir_all(&cut);
    std::fs::create_dir_all(&cut).map_err(io(&cut))?;
    let written = copy_records(&log_dir, &cut, last.first_seq, seq)?;
    std::fs::rename(&written, &last.path).map_err(io(&written))?;
    std::fs::remove_dir(&cut).map_err(io(&cut))
}

/// Makes a data directory restored from an `eventual` snapshot start as
/// one at `seq`, the newer part's sequence: RocksDB and the memory
/// checkpoint are stamped as holding it (what the older one lacks stays
/// lacking: that is the level's bargain), and the next record is `seq + 1`.
pub fn stamp(dir: &Path, seq: u64) -> Result<(), EngineError> {
    use strata_engines::memory::checkpoint::{read_checkpoint, CheckpointWriter, ShardBody};
    let engine = strata_engines::RocksEngine::open(&recovery::rocks_dir(dir), &Default::default())?;
    engine.stamp_applied_seq(seq)?;
    drop(engine);
    let checkpoints = recovery::checkpoint_dir(dir);
    for (_, path) in list_checkpoints(&checkpoints) {
        let shards = read_checkpoint(&path)?;
        let mut writer = CheckpointWriter::create(&checkpoints, shards.len())?;
        for image in &shards {
            writer.shard(seq, &ShardBody::of(&image.shard))?;
        }
        std::fs::remove_file(&path).map_err(io(&path))?;
        writer.finish()?;
    }
    Ok(())
}

/// An increment on the snapshot at sequence `base`: the log's records
/// after it, up to now. O(changes): no part is copied. Fails with
/// `NotRetained` when the log no longer holds them (a full snapshot is
/// needed then).
pub fn take_since(keyspace: &Keyspace, out: &Path, base: u64) -> Result<Manifest, EngineError> {
    create_empty(out)?;
    let _pin = keyspace.log.pin(base);
    let seq = keyspace.log.last_seq();
    let log_dir = out.join("log");
    std::fs::create_dir_all(&log_dir).map_err(io(&log_dir))?;
    copy_log(keyspace, &log_dir, base, seq)?;
    let log = (base < seq).then_some((base + 1, seq));
    let kind = Kind::Incremental { base };
    finish(out, Manifest { level: Level::Strict, seq, kind, log, files: Vec::new(), tables: Vec::new() })
}

fn create_empty(out: &Path) -> Result<(), EngineError> {
    if std::fs::read_dir(out).is_ok_and(|mut entries| entries.next().is_some()) {
        return Err(EngineError::Io(
            out.display().to_string(),
            std::io::Error::new(std::io::ErrorKind::AlreadyExists, "the snapshot directory is not empty"),
        ));
    }
    std::fs::create_dir_all(out).map_err(io(out))
}

/// Lists the files of the snapshot in `manifest` and writes it.
fn finish(out: &Path, mut manifest: Manifest) -> Result<Manifest, EngineError> {
    manifest.files = files_in(out)?;
    let text = serde_json::to_vec_pretty(&manifest.to_json()).expect("json");
    let path = out.join("manifest.json");
    std::fs::write(&path, text).map_err(io(&path))?;
    Ok(manifest)
}

/// Copies the records `from + 1 ..= to` of the running log into one
/// segment in `dir`, named by its first record (none when there are no
/// records: an increment's segment then never meets its base's).
fn copy_log(keyspace: &Keyspace, dir: &Path, from: u64, to: u64) -> Result<(), EngineError> {
    let log = &keyspace.log;
    if from >= to {
        // Still an error when the log no longer holds what follows `from`.
        LogCursor::open(log.dir(), from)?;
        return Ok(());
    }
    log.write_through(to)?;
    copy_records(log.dir(), dir, from + 1, to)?;
    Ok(())
}

/// Every file under `dir`, with its size, in path order.
fn files_in(dir: &Path) -> Result<Vec<(PathBuf, u64)>, EngineError> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(at) = pending.pop() {
        for entry in std::fs::read_dir(&at).map_err(io(&at))? {
            let path = entry.map_err(io(&at))?.path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let size = std::fs::metadata(&path).map_err(io(&path))?.len();
                files.push((path.strip_prefix(dir).expect("under dir").to_path_buf(), size));
            }
        }
    }
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    use bytes::Bytes;

    use super::*;
    use crate::client::Client;
    use crate::protocol::Reply;
    use crate::server::Server;

    fn run(server: &Server, client: &mut Client, args: &[String]) -> Reply {
        let argv: Vec<Bytes> = args.iter().map(|a| Bytes::copy_from_slice(a.as_bytes())).collect();
        crate::commands::dispatch(server, client, &argv)
    }

    fn int(reply: Reply) -> i64 {
        match reply {
            Reply::Integer(n) => n,
            other => panic!("expected an integer, got {other:?}"),
        }
    }

    /// One transaction per step across both engines and every memory type.
    fn step(writer: usize, i: usize) -> Vec<Vec<String>> {
        let s = |parts: &[&str]| parts.iter().map(|p| p.to_string()).collect::<Vec<_>>();
        vec![
            s(&["MULTI"]),
            s(&["SET", &format!("s:{writer}:{i}"), &i.to_string()]),
            s(&["HSET", &format!("h:{writer}"), &format!("f{i}"), &i.to_string()]),
            s(&["RPUSH", &format!("l:{writer}"), &i.to_string()]),
            s(&["ZADD", &format!("z:{writer}"), &i.to_string(), &format!("m{i}")]),
            s(&["XADD", &format!("x:{writer}"), &format!("{}-1", i + 1), "f", &i.to_string()]),
            s(&["EXEC"]),
        ]
    }

    /// Takes a snapshot at `level` while two clients run transactions
    /// across both engines (with a checkpoint and a memtable switch on the
    /// way, so the parts and the log each hold some of them), and opens a
    /// server on it in a directory of its own (stamped first when the
    /// level is eventual). Returns the manifest, the steps each writer
    /// made, and the restored server.
    fn snapshot_under_transactions(level: Level) -> (Manifest, Vec<usize>, Arc<Server>, Client, tempfile::TempDir) {
        let source = tempfile::tempdir().unwrap();
        let target = tempfile::tempdir().unwrap();
        let (server, mut admin) = Server::open_in_process(source.path()).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let writers: Vec<_> = (0..2)
            .map(|writer| {
                let (server, stop) = (server.clone(), stop.clone());
                std::thread::spawn(move || {
                    let addr = SocketAddr::from(([127, 0, 0, 1], 1));
                    let mut client = Client::new(server.clients.add(addr, addr), true);
                    let mut i = 0;
                    while !stop.load(Ordering::Relaxed) {
                        for command in step(writer, i) {
                            assert!(!matches!(run(&server, &mut client, &command), Reply::Error(_)));
                        }
                        i += 1;
                    }
                    i
                })
            })
            .collect();
        let pause = || std::thread::sleep(std::time::Duration::from_millis(100));
        pause();
        server.keyspace.checkpoint().unwrap();
        pause();
        assert_eq!(run(&server, &mut admin, &["SAVE".to_string()]), Reply::ok());
        pause();
        let snapshot = target.path().join("snap");
        let manifest = take(&server.keyspace, &snapshot, level).unwrap();
        pause();
        stop.store(true, Ordering::Relaxed);
        let steps: Vec<usize> = writers.into_iter().map(|w| w.join().unwrap()).collect();
        assert!(manifest.seq > 0, "{manifest:?}");
        assert!(manifest.files.iter().any(|(path, _)| path.starts_with("rocksdb")), "{manifest:?}");
        drop((server, admin));
        if level == Level::Eventual {
            assert_eq!(manifest.log, None, "an eventual snapshot has no log");
            stamp(&snapshot, manifest.seq).unwrap();
        }
        let (restored, client) = Server::open_in_process(&snapshot).unwrap();
        assert_eq!(restored.keyspace.log.last_seq(), manifest.seq, "restored to the manifest's sequence");
        (manifest, steps, restored, client, target)
    }

    /// How many steps of `writer` each engine holds: (RocksDB, memory).
    /// Within an engine the steps are a prefix, each whole.
    fn steps_held(server: &Server, client: &mut Client, writer: usize, written: usize) -> (usize, usize) {
        let n = int(run(server, client, &["LLEN".into(), format!("l:{writer}")])) as usize;
        assert!(n > 0 && n < written, "writer {writer}: {n} of {written} steps in the snapshot");
        for (command, key) in [("ZCARD", "z"), ("XLEN", "x")] {
            let got = int(run(server, client, &[command.into(), format!("{key}:{writer}")]));
            assert_eq!(got as usize, n, "{command} of writer {writer}");
        }
        let rocks = int(run(server, client, &["HLEN".into(), format!("h:{writer}")])) as usize;
        let mut present = |i: usize| int(run(server, client, &["EXISTS".into(), format!("s:{writer}:{i}")]));
        assert_eq!((present(rocks - 1), present(rocks)), (1, 0), "the strings end where the hash does");
        (rocks, n)
    }

    /// Strict and bounded snapshots restore to one point: every
    /// transaction up to some step is whole there, none after it is there
    /// at all, and the log ends at the manifest's sequence.
    #[test]
    fn strict_and_bounded_snapshots_under_concurrent_transactions_restore_to_one_point() {
        for level in [Level::Strict, Level::Bounded] {
            let (manifest, steps, restored, mut client, _dir) = snapshot_under_transactions(level);
            assert_eq!(manifest.level, level);
            if let Kind::Full { rocks_seq, memory_seq } = manifest.kind {
                match level {
                    Level::Strict => assert!(manifest.seq >= rocks_seq.max(memory_seq)),
                    _ => assert_eq!(manifest.seq, rocks_seq.max(memory_seq), "bounded ends at the newer part"),
                }
            }
            for (writer, &written) in steps.iter().enumerate() {
                let (rocks, memory) = steps_held(&restored, &mut client, writer, written);
                assert_eq!(rocks, memory, "{level:?}: both engines at one point");
            }
        }
    }

    /// An eventual snapshot's parts are each at their own point: each
    /// engine holds a prefix of whole transactions, with no log to join
    /// them; stamped, it starts at the newer part's sequence.
    #[test]
    fn an_eventual_snapshot_restores_each_engine_at_its_own_point() {
        let (manifest, steps, restored, mut client, _dir) = snapshot_under_transactions(Level::Eventual);
        let Kind::Full { rocks_seq, memory_seq } = manifest.kind else { panic!("{manifest:?}") };
        assert_eq!(manifest.seq, rocks_seq.max(memory_seq));
        for (writer, &written) in steps.iter().enumerate() {
            steps_held(&restored, &mut client, writer, written);
        }
        // It takes writes on from there.
        assert_eq!(run(&restored, &mut client, &["SET".into(), "after".into(), "1".into()]), Reply::ok());
        assert_eq!(restored.keyspace.log.last_seq(), manifest.seq + 1);
    }
}
