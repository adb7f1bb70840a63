//! A snapshot directory as one stream (a replica's full sync): each file
//! as its path, its size and its bytes in chunks of at most `CHUNK`, each
//! compressed with its part's codec (`codec::PartKind`) and checked by the
//! CRC32C of its bytes. The reader writes the files into a directory as
//! they arrive, holding one chunk at a time.
//!
//! ```text
//! "STRATASYNC" version:u32 seq:u64
//! per file:  path-len:u16 path size:u64
//!            per chunk: len:u32 stored-len:u32 codec:u8 crc32c:u32 stored
//! end:       path-len 0
//! ```

use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};

use crate::codec::{Codec, PartKind};

const MAGIC: &[u8; 10] = b"STRATASYNC";
const VERSION: u32 = 1;
/// The seed's chunk size.
pub const CHUNK: usize = 4 << 20;

/// A stream that could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("the snapshot stream is damaged: {0}")]
    Damaged(String),
}

/// Every file under `dir`, relative to it, sorted.
fn files_under(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut pending = vec![PathBuf::new()];
    while let Some(relative) = pending.pop() {
        for entry in std::fs::read_dir(dir.join(&relative))? {
            let entry = entry?;
            let path = relative.join(entry.file_name());
            if entry.file_type()?.is_dir() {
                pending.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Writes the snapshot in `dir`, which holds sequence `seq`, to `out`;
/// the bytes written.
pub fn send(dir: &Path, seq: u64, out: &mut impl Write) -> std::io::Result<u64> {
    let mut sent = 0u64;
    let mut put = |out: &mut dyn Write, bytes: &[u8]| -> std::io::Result<()> {
        sent += bytes.len() as u64;
        out.write_all(bytes)
    };
    let mut head = MAGIC.to_vec();
    head.extend_from_slice(&VERSION.to_le_bytes());
    head.extend_from_slice(&seq.to_le_bytes());
    put(out, &head)?;
    let mut chunk = vec![0u8; CHUNK];
    for relative in files_under(dir)? {
        let name = relative.to_string_lossy().into_owned();
        let mut file = std::fs::File::open(dir.join(&relative))?;
        let size = file.metadata()?.len();
        let mut head = (name.len() as u16).to_le_bytes().to_vec();
        head.extend_from_slice(name.as_bytes());
        head.extend_from_slice(&size.to_le_bytes());
        put(out, &head)?;
        let codec = PartKind::of(&name).codec();
        let mut left = size;
        while left > 0 {
            let len = left.min(CHUNK as u64) as usize;
            file.read_exact(&mut chunk[..len])?;
            let stored = codec.compress(&chunk[..len]);
            let mut head = (len as u32).to_le_bytes().to_vec();
            head.extend_from_slice(&(stored.len() as u32).to_le_bytes());
            head.push(Codec::ALL.iter().position(|c| *c == codec).expect("a known codec") as u8);
            head.extend_from_slice(&crc32c::crc32c(&chunk[..len]).to_le_bytes());
            put(out, &head)?;
            put(out, &stored)?;
            left -= len as u64;
        }
    }
    put(out, &0u16.to_le_bytes())?;
    Ok(sent)
}

/// Reads a stream `send` wrote into `dir` (created; it must not exist),
/// every file fsynced; returns the snapshot's sequence. `progress` is
/// told the bytes read so far.
pub fn receive(input: &mut impl Read, dir: &Path, mut progress: impl FnMut(u64)) -> Result<u64, TransferError> {
    let damaged = |what: &str| TransferError::Damaged(what.to_string());
    let mut read = 0u64;
    let mut take = |input: &mut dyn Read, buf: &mut [u8]| -> Result<(), TransferError> {
        input.read_exact(buf)?;
        read += buf.len() as u64;
        progress(read);
        Ok(())
    };
    let mut head = [0u8; 22];
    take(input, &mut head)?;
    if &head[..10] != MAGIC {
        return Err(damaged("not a Strata snapshot stream"));
    }
    if u32::from_le_bytes(head[10..14].try_into().expect("4 bytes")) != VERSION {
        return Err(damaged("unsupported snapshot stream version"));
    }
    let seq = u64::from_le_bytes(head[14..22].try_into().expect("8 bytes"));
    std::fs::create_dir(dir)?;
    let mut stored = Vec::new();
    loop {
        let mut len = [0u8; 2];
        take(input, &mut len)?;
        let len = u16::from_le_bytes(len) as usize;
        if len == 0 {
            break;
        }
        let mut name = vec![0u8; len];
        take(input, &mut name)?;
        let name = String::from_utf8(name).map_err(|_| damaged("a file name that is not UTF-8"))?;
        let relative = Path::new(&name);
        if !relative.components().all(|c| matches!(c, Component::Normal(_))) {
            return Err(damaged("a file name outside the snapshot"));
        }
        let path = dir.join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let mut size = [0u8; 8];
        take(input, &mut size)?;
        let mut left = u64::from_le_bytes(size);
        let mut file = std::fs::File::create(&path)?;
        while left > 0 {
            let mut head = [0u8; 13];
            take(input, &mut head)?;
            let len = u32::from_le_bytes(head[..4].try_into().expect("4 bytes")) as usize;
            let stored_len = u32::from_le_bytes(head[4..8].try_into().expect("4 bytes")) as usize;
            let codec = *Codec::ALL.get(head[8] as usize).ok_or_else(|| damaged("an unknown codec"))?;
            let crc = u32::from_le_bytes(head[9..13].try_into().expect("4 bytes"));
            // Bounds before any allocation: garbage must not size one.
            if len == 0 || len > CHUNK || len as u64 > left || stored_len > CHUNK + CHUNK / 8 + 1024 {
                return Err(damaged("a chunk of impossible size"));
            }
            stored.resize(stored_len, 0);
            take(input, &mut stored)?;
            let data = codec.decompress(&stored, len).ok_or_else(|| damaged("a chunk that does not decompress"))?;
            if crc32c::crc32c(&data) != crc {
                return Err(damaged("a chunk's checksum does not match"));
            }
            file.write_all(&data)?;
            left -= len as u64;
        }
        file.sync_all()?;
    }
    for relative in files_under(dir)?.iter().filter_map(|p| p.parent().map(Path::to_path_buf)) {
        std::fs::File::open(dir.join(relative))?.sync_all()?;
    }
    std::fs::File::open(dir)?.sync_all()?;
    Ok(seq)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(dir: &Path) {
        std::fs::create_dir_all(dir.join("rocksdb")).unwrap();
        std::fs::create_dir_all(dir.join("checkpoints")).unwrap();
        std::fs::write(dir.join("rocksdb/000001.sst"), vec![7u8; CHUNK + 5]).unwrap();
        std::fs::write(dir.join("rocksdb/CURRENT"), b"MANIFEST-000001\n").unwrap();
        std::fs::write(dir.join("checkpoints/empty"), b"").unwrap();
        std::fs::write(dir.join("manifest.json"), b"{}").unwrap();
    }

    #[test]
    fn a_directory_arrives_whole() {
        let from = tempfile::tempdir().unwrap();
        sample(from.path());
        let mut stream = Vec::new();
        let sent = send(from.path(), 42, &mut stream).unwrap();
        assert_eq!(sent, stream.len() as u64);
        let to = tempfile::tempdir().unwrap();
        let target = to.path().join("sync");
        let mut last = 0;
        assert_eq!(receive(&mut &stream[..], &target, |n| last = n).unwrap(), 42);
        assert_eq!(last, stream.len() as u64);
        for relative in files_under(from.path()).unwrap() {
            assert_eq!(
                std::fs::read(from.path().join(&relative)).unwrap(),
                std::fs::read(target.join(&relative)).unwrap()
            );
        }
    }

    #[test]
    fn damage_and_truncation_are_refused() {
        let from = tempfile::tempdir().unwrap();
        sample(from.path());
        let mut stream = Vec::new();
        send(from.path(), 1, &mut stream).unwrap();
        let to = tempfile::tempdir().unwrap();
        for cut in (0..stream.len()).step_by(97) {
            let target = to.path().join(format!("cut{cut}"));
            assert!(receive(&mut &stream[..cut], &target, |_| {}).is_err(), "cut at {cut}");
        }
        // A flip anywhere: refused, or (in a length or name) a different
        // but well-formed stream never equal to the original.
        for at in (0..stream.len()).step_by(53) {
            let mut bad = stream.clone();
            bad[at] ^= 0x20;
            let target = to.path().join(format!("flip{at}"));
            if receive(&mut &bad[..], &target, |_| {}).is_ok() {
                let same = files_under(from.path()).unwrap() == files_under(&target).unwrap()
                    && files_under(from.path())
                        .unwrap()
                        .iter()
                        .all(|p| std::fs::read(from.path().join(p)).unwrap() == std::fs::read(target.join(p)).unwrap());
                assert!(!same || (14..22).contains(&at), "flip at {at} went unnoticed");
            }
        }
        let outside = {
            let mut s = MAGIC.to_vec();
            s.extend_from_slice(&VERSION.to_le_bytes());
            s.extend_from_slice(&1u64.to_le_bytes());
            s.extend_from_slice(&5u16.to_le_bytes());
            s.extend_from_slice(b"../x1");
            s
        };
        assert!(matches!(
            receive(&mut &outside[..], &to.path().join("outside"), |_| {}),
            Err(TransferError::Damaged(_))
        ));
    }
}
