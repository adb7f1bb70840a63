//! Which codec wins for each part of a snapshot. A mixed dataset (strings,
//! hashes, lists, sorted sets, streams) is written in process, half before
//! a SAVE and half after (so the log part holds records too), and
//! snapshotted; each part's files are cut into the 4 MB chunks
//! strata-backup stores and compressed with every codec. Prints, per part
//! and codec, the stored size as a share of the original and the
//! compression and decompression speeds.
//!
//! `cargo bench --bench codecs [-- <scale>]` (scale 1: about 60 MB of data).

use std::path::Path;
use std::time::Instant;

use bytes::Bytes;
use strata::client::Client;
use strata::codec::{Codec, PartKind};
use strata::commands::dispatch;
use strata::server::Server;

const CHUNK: usize = 4 << 20;

fn run(server: &Server, client: &mut Client, args: &[String]) {
    let argv: Vec<Bytes> = args.iter().map(|a| Bytes::copy_from_slice(a.as_bytes())).collect();
    dispatch(server, client, &argv);
}

/// Text that looks like application data: words from a small vocabulary
/// and numbers.
fn value(rng: &mut u64, len: usize) -> String {
    const WORDS: [&str; 16] = [
        "user", "order", "status", "shipped", "pending", "alice", "bob", "paris", "berlin", "item", "price", "total",
        "session", "token", "true", "false",
    ];
    let mut out = String::new();
    while out.len() < len {
        *rng ^= *rng << 13;
        *rng ^= *rng >> 7;
        *rng ^= *rng << 17;
        if rng.is_multiple_of(3) {
            out.push_str(&(*rng % 100_000).to_string());
        } else {
            out.push_str(WORDS[(*rng % 16) as usize]);
        }
        out.push(if rng.is_multiple_of(5) { ':' } else { ' ' });
    }
    out.truncate(len);
    out
}

fn write(server: &Server, client: &mut Client, scale: usize, half: usize, rng: &mut u64) {
    let s = |parts: &[String]| parts.to_vec();
    for i in (half * 50_000 * scale)..((half + 1) * 50_000 * scale) {
        run(server, client, &s(&["SET".into(), format!("user:{i}:profile"), value(rng, 50)]));
    }
    for i in (half * 5_000 * scale)..((half + 1) * 5_000 * scale) {
        let mut hset = vec!["HSET".to_string(), format!("order:{i}")];
        for f in 0..10 {
            hset.extend([format!("field{f}"), value(rng, 20)]);
        }
        run(server, client, &hset);
    }
    for key in 0..100 {
        for i in 0..(500 * scale) {
            run(server, client, &s(&["RPUSH".into(), format!("list:{key}"), value(rng, 30)]));
            let score = (*rng % 1_000_000).to_string();
            run(server, client, &s(&["ZADD".into(), format!("zset:{key}"), score, format!("member:{half}:{i}")]));
            let id = format!("{}-{}", half * 1_000_000 + i + 1, key);
            run(server, client, &s(&["XADD".into(), format!("stream:{key}"), id, "event".into(), value(rng, 40)]));
        }
    }
}

fn files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files(&path, out);
        } else {
            out.push(path);
        }
    }
}

fn main() {
    let scale: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(1);
    let data = tempfile::tempdir().unwrap();
    let (server, mut client) = Server::open_in_process(data.path()).unwrap();
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    write(&server, &mut client, scale, 0, &mut rng);
    run(&server, &mut client, &["SAVE".to_string()]);
    write(&server, &mut client, scale, 1, &mut rng);
    let out = tempfile::tempdir().unwrap();
    let snapshot = out.path().join("snapshot");
    strata::snapshot::take(&server.keyspace, &snapshot, strata::snapshot::Level::Strict).unwrap();
    let mut paths = Vec::new();
    files(&snapshot, &mut paths);
    println!("{:<8} {:<7} {:>12} {:>8} {:>10} {:>10}", "part", "codec", "bytes", "stored", "comp MB/s", "dec MB/s");
    for kind in [PartKind::Rocks, PartKind::Memory, PartKind::Log] {
        let mut chunks = Vec::new();
        for path in &paths {
            let relative = path.strip_prefix(&snapshot).unwrap().to_string_lossy().into_owned();
            if PartKind::of(&relative) == kind {
                let bytes = std::fs::read(path).unwrap();
                chunks.extend(bytes.chunks(CHUNK).map(<[u8]>::to_vec));
            }
        }
        let original: usize = chunks.iter().map(Vec::len).sum();
        for codec in Codec::ALL {
            let started = Instant::now();
            let stored: Vec<Vec<u8>> = chunks.iter().map(|c| codec.compress(c)).collect();
            let compress_secs = started.elapsed().as_secs_f64();
            let started = Instant::now();
            for (stored, chunk) in stored.iter().zip(&chunks) {
                assert_eq!(codec.decompress(stored, chunk.len()).as_deref(), Some(&chunk[..]));
            }
            let decompress_secs = started.elapsed().as_secs_f64();
            let stored_bytes: usize = stored.iter().map(Vec::len).sum();
            let mb = original as f64 / 1e6;
            println!(
                "{:<8} {:<7} {:>12} {:>7.1}% {:>10.0} {:>10.0}",
                format!("{kind:?}").to_lowercase(),
                codec.name(),
                original,
                100.0 * stored_bytes as f64 / original.max(1) as f64,
                mb / compress_secs.max(1e-9),
                mb / decompress_secs.max(1e-9),
            );
        }
    }
}
