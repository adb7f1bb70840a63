//! Memory checkpoints: every memory key, shard by shard, each shard cut at
//! the log sequence it holds, so recovery loads the file and replays only
//! the log records after each shard's sequence.
//!
//! File: `[magic "STRATCKP"][version u32][shard count u32]`, then per shard
//! `[sequence u64][byte length u64][key count varint][(database varint,
//! key, entry)...]`
//! (entries in `codec`'s encoding), then the CRC32C of everything before
//! it. Written to a temp file, fsynced, renamed, directory fsynced: a
//! checkpoint is either whole or absent, and the temp file of one that
//! failed is removed (it would hold disk space a full disk needs back).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;

use super::codec::{Decoder, Encoder};
use super::cut::CutOutput;
use super::zset::cmp_elements;
#[cfg(test)]
use super::MemOp;
use super::{MemEntry, MemShard, MemValue, Piece, SortedSet};

pub const MAGIC: &[u8; 8] = b"STRATCKP";
pub const FORMAT_VERSION: u32 = 1;

/// A checkpoint that could not be written or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("checkpoint {path} is damaged: {what}")]
    Damaged { path: PathBuf, what: String },
}

/// One shard read back: its sequence and its keys.
pub struct ShardImage {
    pub seq: u64,
    pub shard: MemShard,
}

/// The file name of the checkpoint whose oldest shard is at `seq`: the log
/// must be kept from `seq + 1` for it to be usable.
pub fn checkpoint_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("checkpoint-{seq:020}.ckpt"))
}

/// Checkpoints in `dir`, newest first.
pub fn list_checkpoints(dir: &Path) -> Vec<(u64, PathBuf)> {
    let mut out: Vec<(u64, PathBuf)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let path = entry.path();
            let name = path.file_name()?.to_str()?;
            let seq = name.strip_prefix("checkpoint-")?.strip_suffix(".ckpt")?.parse().ok()?;
            Some((seq, path))
        })
        .collect();
    out.sort_by_key(|c| std::cmp::Reverse(c.0));
    out
}

/// Streams a checkpoint to a temp file; `finish` makes it visible.
pub struct CheckpointWriter {
    /// None once `finish` has taken it.
    out: Option<BufWriter<File>>,
    tmp: PathBuf,
    dir: PathBuf,
    crc: u32,
    bytes: u64,
    buf: Vec<u8>,
    min_seq: u64,
}

impl CheckpointWriter {
    pub fn create(dir: &Path, shards: usize) -> Result<CheckpointWriter, CheckpointError> {
        let io = |source| CheckpointError::Io { path: dir.to_path_buf(), source };
        std::fs::create_dir_all(dir).map_err(io)?;
        let tmp = dir.join("checkpoint.tmp");
        let file = File::create(&tmp).map_err(io)?;
        let mut writer = CheckpointWriter {
            out: Some(BufWriter::with_capacity(1 << 20, file)),
            tmp,
            dir: dir.to_path_buf(),
            crc: 0,
            bytes: 0,
            buf: Vec::new(),
            min_seq: u64::MAX,
        };
        let mut head = MAGIC.to_vec();
        head.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        head.extend_from_slice(&(shards as u32).to_le_bytes());
        writer.write(&head)?;
        Ok(writer)
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), CheckpointError> {
        self.crc = crc32c::crc32c_append(self.crc, bytes);
        self.bytes += bytes.len() as u64;
        let out = self.out.as_mut().expect("written before finish");
        out.write_all(bytes).map_err(|source| CheckpointError::Io { path: self.tmp.clone(), source })
    }

    /// Appends one shard, cut at `seq`. Shards must come in index order.
    pub fn shard(&mut self, seq: u64, body: &ShardBody) -> Result<(), CheckpointError> {
        assert!(body.later.is_empty(), "a shard body is settled before it is written");
        if let Some(error) = crate::faults::injected_error("checkpoint-shard") {
            return Err(CheckpointError::Io { path: self.tmp.clone(), source: error });
        }
        self.min_seq = self.min_seq.min(seq);
        let mut count = std::mem::take(&mut self.buf);
        count.clear();
        Encoder(&mut count).varint(body.count);
        // The length lets a reader decode shards in parallel.
        let mut head = seq.to_le_bytes().to_vec();
        head.extend_from_slice(&((count.len() + body.buf.len()) as u64).to_le_bytes());
        self.write(&head)?;
        self.write(&count)?;
        self.write(&body.buf)?;
        self.buf = count;
        Ok(())
    }

    /// Writes the checksum, fsyncs, renames into place and fsyncs the
    /// directory. Returns the final path and the file's size.
    pub fn finish(mut self) -> Result<(PathBuf, u64), CheckpointError> {
        let crc = self.crc.to_le_bytes();
        self.write(&crc)?;
        let tmp = self.tmp.clone();
        let io = |source| CheckpointError::Io { path: tmp.clone(), source };
        let out = self.out.take().expect("finished once");
        let file = out.into_inner().map_err(|e| io(e.into_error()))?;
        if let Some(error) = crate::faults::injected_error("checkpoint-write") {
            return Err(io(error));
        }
        file.sync_all().map_err(io)?;
        let path = checkpoint_path(&self.dir, self.min_seq);
        std::fs::rename(&tmp, &path).map_err(io)?;
        File::open(&self.dir).and_then(|d| d.sync_all()).map_err(io)?;
        Ok((path, self.bytes))
    }
}

impl Drop for CheckpointWriter {
    fn drop(&mut self) {
        // Renamed into place, or failed: a temp file left is a failure's.
        if let Err(e) = std::fs::remove_file(&self.tmp) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!("removing {}: {e}", self.tmp.display());
            }
        }
    }
}

/// One shard's entries, encoded as a cut's walk writes them.
#[derive(Default)]
pub struct ShardBody {
    count: u64,
    buf: Vec<u8>,
    /// What to encode after these once the shard's lock is let go: entries
    /// (`CutOutput::entry_later`) and pieces (sorted first).
    later: Vec<Later>,
}

enum Later {
    Entry(u32, Bytes, MemEntry),
    Piece(u32, Bytes, u64, Piece),
}

impl ShardBody {
    /// Every entry of `shard` as it is (tests, and shards no writer can
    /// reach).
    pub fn of(shard: &MemShard) -> ShardBody {
        let mut body = ShardBody::default();
        for (db, key, entry) in shard.entries() {
            body.entry(db, key, entry);
        }
        body
    }

    pub fn clear(&mut self) {
        self.count = 0;
        self.buf.clear();
        self.later.clear();
    }

    /// Encodes what was given to encode later. A sorted set's pieces are
    /// sorted first: loading joins sorted runs in one pass.
    pub fn settle(&mut self) {
        for later in std::mem::take(&mut self.later) {
            match later {
                Later::Entry(db, key, entry) => self.entry(db, &key, &entry),
                Later::Piece(db, key, expire_ms, mut piece) => {
                    if let Piece::ZSet(members) = &mut piece {
                        members.sort_unstable_by(cmp_elements);
                    }
                    self.keyed(db, &key).piece(expire_ms, &piece);
                }
            }
        }
    }

    /// Counts one more entry and encodes its database and key: the rest
    /// goes through the encoder returned.
    fn keyed(&mut self, db: u32, key: &Bytes) -> Encoder<'_> {
        self.count += 1;
        let mut e = Encoder(&mut self.buf);
        e.varint(db as u64);
        e.bytes(key);
        e
    }

    /// Adds the entries of `batch` after these.
    pub fn append(&mut self, batch: &mut ShardBody) {
        self.settle();
        batch.settle();
        self.count += batch.count;
        self.buf.extend_from_slice(&batch.buf);
    }

    pub fn len_bytes(&self) -> usize {
        self.buf.len()
    }
}

impl CutOutput for ShardBody {
    fn entry(&mut self, db: u32, key: &Bytes, entry: &MemEntry) {
        self.keyed(db, key).entry(entry);
    }

    fn entry_later(&mut self, db: u32, key: Bytes, entry: MemEntry) {
        self.later.push(Later::Entry(db, key, entry));
    }

    fn piece(&mut self, db: u32, key: &Bytes, expire_ms: u64, piece: Piece) {
        if !piece.is_empty() {
            self.later.push(Later::Piece(db, key.clone(), expire_ms, piece));
        }
    }
}

/// Reads a whole checkpoint: one image per shard of the server that wrote
/// it (see `memory::reshard`). The file is read shard by shard while every
/// core decodes the shards already read, so memory holds the decoded keys
/// plus a few shards' bytes, never the whole file; the checksum at the end
/// decides whether any of it is used.
pub fn read_checkpoint(path: &Path) -> Result<Vec<ShardImage>, CheckpointError> {
    let damaged = |what: String| CheckpointError::Damaged { path: path.to_path_buf(), what };
    let io = |source| CheckpointError::Io { path: path.to_path_buf(), source };
    let file = File::open(path).map_err(io)?;
    let size = file.metadata().map_err(io)?.len();
    if size < 20 {
        return Err(damaged("shorter than its header".into()));
    }
    let mut reader = ChecksummedReader { inner: std::io::BufReader::with_capacity(1 << 20, file), crc: 0 };
    let mut head = [0u8; 16];
    reader.read_exact(&mut head).map_err(io)?;
    if &head[..8] != MAGIC {
        return Err(damaged("not a Strata checkpoint (bad magic)".into()));
    }
    if u32::from_le_bytes(head[8..12].try_into().expect("4 bytes")) != FORMAT_VERSION {
        return Err(damaged("unsupported checkpoint format version".into()));
    }
    let shards = u32::from_le_bytes(head[12..16].try_into().expect("4 bytes")) as usize;
    // Shards split the hash slots, so there are at most as many.
    if !(1..=strata_cluster::SLOT_COUNT).contains(&shards) {
        return Err(damaged(format!("{shards} shards")));
    }
    // Every core takes the next shard read until none is left (recovery
    // opens RocksDB meanwhile, so fixed shares would leave one thread
    // waiting on the other). The queue holds one shard per decoder: the
    // reader stays ahead of them without buffering the file.
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(8);
    // Decoding copies what it keeps, so a shard's buffer goes back to the
    // reader for a later shard (fresh ones would each cost page faults).
    let (send, receive) = std::sync::mpsc::sync_channel::<(usize, u64, Bytes)>(threads);
    let receive = std::sync::Mutex::new(receive);
    let (give_back, spare) = std::sync::mpsc::channel::<Vec<u8>>();
    let (read, mut decoded) = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                let give_back = give_back.clone();
                let receive = &receive;
                scope.spawn(move || {
                    let mut done = Vec::new();
                    loop {
                        let next = receive.lock().expect("no decoder panics holding the queue").recv();
                        let Ok((i, seq, part)) = next else { return done };
                        done.push((i, decode_shard(seq, part.clone())));
                        // The reader may have finished: then nobody wants it.
                        let _ = give_back.send(Vec::from(part));
                    }
                })
            })
            .collect();
        let read = read_shards(&mut reader, size, shards, &send, &spare);
        drop(send);
        let decoded: Vec<_> =
            workers.into_iter().flat_map(|w| w.join().expect("checkpoint decoder panicked")).collect();
        (read, decoded)
    });
    read.map_err(|e| match e {
        ReadError::Io(source) => io(source),
        ReadError::Damaged(what) => damaged(what),
    })?;
    decoded.sort_unstable_by_key(|(i, _)| *i);
    decoded.into_iter().map(|(_, image)| image.map_err(damaged)).collect()
}

enum ReadError {
    Io(std::io::Error),
    Damaged(String),
}

/// Reads the shards after the header and hands each to the decoders, then
/// checks the checksum over everything read.
fn read_shards(
    reader: &mut ChecksummedReader,
    size: u64,
    shards: usize,
    decoders: &std::sync::mpsc::SyncSender<(usize, u64, Bytes)>,
    spare: &std::sync::mpsc::Receiver<Vec<u8>>,
) -> Result<(), ReadError> {
    let mut offset = 16u64;
    for i in 0..shards {
        let mut head = [0u8; 16];
        if offset + 16 > size - 4 {
            return Err(ReadError::Damaged(format!("shard {i} is cut short")));
        }
        reader.read_exact(&mut head).map_err(ReadError::Io)?;
        let seq = u64::from_le_bytes(head[..8].try_into().expect("8 bytes"));
        let len = u64::from_le_bytes(head[8..].try_into().expect("8 bytes"));
        offset += 16;
        // A length past the file is damage, not an allocation to try.
        if len > size - 4 - offset {
            return Err(ReadError::Damaged(format!("shard {i} is cut short")));
        }
        let mut part = spare.try_recv().unwrap_or_default();
        reader.read_into(len, &mut part).map_err(ReadError::Io)?;
        offset += len;
        decoders.send((i, seq, Bytes::from(part))).expect("the decoders run until the queue is closed");
    }
    if offset != size - 4 {
        return Err(ReadError::Damaged("trailing bytes".into()));
    }
    let computed = reader.crc;
    let mut crc = [0u8; 4];
    reader.read_exact(&mut crc).map_err(ReadError::Io)?;
    if computed != u32::from_le_bytes(crc) {
        return Err(ReadError::Damaged("checksum mismatch".into()));
    }
    Ok(())
}

/// A reader that keeps the CRC32C of what it has read.
struct ChecksummedReader {
    inner: std::io::BufReader<File>,
    crc: u32,
}

impl ChecksummedReader {
    fn read_exact(&mut self, buf: &mut [u8]) -> std::io::Result<()> {
        std::io::Read::read_exact(&mut self.inner, buf)?;
        self.crc = crc32c::crc32c_append(self.crc, buf);
        Ok(())
    }

    /// Reads `len` bytes into `buf` in place of what it held.
    fn read_into(&mut self, len: u64, buf: &mut Vec<u8>) -> std::io::Result<()> {
        buf.clear();
        std::io::Read::read_to_end(&mut std::io::Read::take(&mut self.inner, len), buf)?;
        if buf.len() as u64 != len {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        self.crc = crc32c::crc32c_append(self.crc, buf);
        Ok(())
    }
}

fn decode_shard(seq: u64, part: Bytes) -> Result<ShardImage, String> {
    let mut d = Decoder::shared(part);
    let keys = d.varint().map_err(|e| e.to_string())?;
    let mut dbs: std::collections::BTreeMap<u32, Vec<(Bytes, MemEntry)>> = Default::default();
    // A big value cut in pieces comes as several entries under its key:
    // their elements together are the value.
    let mut seen: std::collections::HashMap<(u32, Bytes), usize> = Default::default();
    let mut pieces: std::collections::HashMap<(u32, usize), Vec<(u64, Piece)>> = Default::default();
    for _ in 0..keys {
        let db = u32::try_from(d.varint().map_err(|e| e.to_string())?).map_err(|_| "database out of range")?;
        let key: Bytes = d.bytes().map_err(|e| e.to_string())?;
        let entries = dbs.entry(db).or_default();
        match seen.get(&(db, key.clone())) {
            Some(&at) => pieces.entry((db, at)).or_default().push(d.piece().map_err(|e| e.to_string())?),
            None => {
                let entry: MemEntry = d.entry().map_err(|e| e.to_string())?;
                seen.insert((db, key.clone()), entries.len());
                entries.push((key, entry));
            }
        }
    }
    if !d.is_empty() {
        return Err("trailing bytes in a shard".into());
    }
    for ((db, at), more) in pieces {
        join_pieces(&mut dbs.get_mut(&db).expect("seen")[at].1, more)?;
    }
    for entries in dbs.values_mut() {
        entries.retain(|(_, entry)| !entry.value.is_empty());
    }
    Ok(ShardImage { seq, shard: MemShard::from_entries(dbs) })
}

/// Joins the other pieces of a big value to its first. A sorted set is
/// built once from every piece's members in order, which is cheapest.
fn join_pieces(into: &mut MemEntry, pieces: Vec<(u64, Piece)>) -> Result<(), String> {
    if pieces.iter().any(|(expire_ms, _)| *expire_ms != into.expire_ms) {
        return Err("pieces of one key with different expiries".into());
    }
    let not_pieces = || "a key given twice, not as pieces of one set or sorted set".to_string();
    match &mut into.value {
        MemValue::Set(set) => {
            for (_, piece) in pieces {
                let Piece::Set(more) = piece else { return Err(not_pieces()) };
                set.extend(more);
            }
        }
        MemValue::ZSet(zset) => {
            let mut members = zset.iter().collect::<Vec<_>>();
            for (_, piece) in pieces {
                let Piece::ZSet(more) = piece else { return Err(not_pieces()) };
                members.extend(more);
            }
            // Each piece is a sorted run: a stable sort merges runs.
            members.sort_by(cmp_elements);
            *zset = SortedSet::from_owned(members);
        }
        _ => return Err(not_pieces()),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::{ListOp, MemValue};

    fn sample(n: usize) -> Vec<MemShard> {
        (0..n)
            .map(|i| {
                let mut shard = MemShard::default();
                for k in 0..i {
                    let key = Bytes::from(format!("k{i}-{k}"));
                    shard.db(k as u32 % 2).apply(&MemOp::List {
                        key,
                        op: ListOp::Push { front: false, items: vec![Bytes::from(vec![k as u8; k])] },
                    });
                }
                shard
            })
            .collect()
    }

    fn write(dir: &Path, shards: &[MemShard]) -> PathBuf {
        let mut w = CheckpointWriter::create(dir, shards.len()).unwrap();
        for (i, shard) in shards.iter().enumerate() {
            w.shard(100 + i as u64, &ShardBody::of(shard)).unwrap();
        }
        w.finish().unwrap().0
    }

    #[test]
    fn round_trip_keeps_every_shard_and_sequence() {
        let dir = tempfile::tempdir().unwrap();
        let shards = sample(5);
        let path = write(dir.path(), &shards);
        assert_eq!(list_checkpoints(dir.path()), vec![(100, path.clone())]);
        let images = read_checkpoint(&path).unwrap();
        for (i, image) in images.iter().enumerate() {
            assert_eq!(image.seq, 100 + i as u64);
            let mut a = Default::default();
            let mut b = Default::default();
            image.shard.add_to_image(&mut a);
            shards[i].add_to_image(&mut b);
            assert_eq!(a, b);
        }
        assert!(matches!(images[3].shard.db_ref(1).unwrap().get(b"k3-1").unwrap().value, MemValue::List(_)));
    }

    #[test]
    fn a_checkpoint_given_up_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = CheckpointWriter::create(dir.path(), 2).unwrap();
        writer.shard(1, &ShardBody::of(&sample(2)[1])).unwrap();
        assert!(dir.path().join("checkpoint.tmp").exists());
        // As when a write fails: the writer is dropped unfinished.
        drop(writer);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "its space is given back");
        let path = write(dir.path(), &sample(3));
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().map(|e| e.path()).collect();
        assert_eq!(left, vec![path], "a finished one leaves only itself");
    }

    #[test]
    fn any_damage_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), &sample(4));
        let full = std::fs::read(&path).unwrap();
        for i in 0..full.len() {
            let mut bad = full.clone();
            bad[i] ^= 0x11;
            std::fs::write(&path, &bad).unwrap();
            assert!(read_checkpoint(&path).is_err(), "flip at {i}");
        }
        for cut in 0..full.len() {
            std::fs::write(&path, &full[..cut]).unwrap();
            assert!(read_checkpoint(&path).is_err(), "cut at {cut}");
        }
        std::fs::write(&path, &full).unwrap();
        assert_eq!(read_checkpoint(&path).unwrap().len(), 4);
        // A whole file that claims no shards (or more than there are slots).
        let empty = write(dir.path(), &[]);
        assert!(matches!(read_checkpoint(&empty), Err(CheckpointError::Damaged { .. })));
    }
}
