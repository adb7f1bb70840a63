//! `strata-backup`: backups of a running Strata server into a repository
//! directory, and restores from them.
//!
//! ```text
//! strata-backup create  --repo DIR [-h HOST] [-p PORT] [-a PASSWORD] [--incremental] [--level LEVEL]
//! strata-backup list    --repo DIR [--json]
//! strata-backup verify  --repo DIR [--id ID]
//! strata-backup restore --repo DIR --to DATADIR [--id ID | --at-seq SEQ | --at-time RFC3339]
//! strata-backup prune   --repo DIR --keep-full N [--keep-incremental M]
//! ```
//!
//! `create` asks the server for a snapshot (SNAPSHOT.CREATE, at the level
//! given: strict, bounded or eventual; strict by default), reads
//! its files in chunks (SNAPSHOT.READ, each chunk's CRC32C checked) into
//! `DIR/backups/<id>/` (each compressed with its part's codec, see
//! `strata::codec`), and writes the backup's manifest last: a backup
//! without one is unfinished and ignored. `--incremental` stores only the
//! log records since the repository's newest backup (SNAPSHOT.CREATE
//! SINCE), or a full backup when the server's log no longer holds them or
//! the newest backup is eventual (its parts are at no one point to
//! continue from); a restore of an increment writes its chain, full backup
//! first, and a restore of an eventual backup stamps its parts at its
//! sequence (`strata::snapshot::stamp`).
//!
//! A server with `log-archive-repo DIR` copies its closed log segments into
//! `DIR/log/` (`strata_engines::log::archive`): a restore to a sequence or
//! time past the backups rolls the newest backup before it forward with
//! them. `--at-time` finds the last record committed at or before the
//! time in the archived log's time marks; without an archive it is
//! refused. Exit
//! status: 0 on success, 1
//! when a backup is damaged or a restore is refused, 2 on usage, I/O or
//! server errors.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Value};
use strata::codec::{Codec, PartKind};
use strata_engines::log::archive::{archive_dir, check_archive, seq_at_time, TimeInArchive};
use strata_engines::log::list_segments;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

const USAGE: &str = "Usage:
  strata-backup create  --repo DIR [-h HOST] [-p PORT] [-a PASSWORD] [--incremental]
                        [--level strict|bounded|eventual]
  strata-backup list    --repo DIR [--json]
  strata-backup verify  --repo DIR [--id ID]
  strata-backup restore --repo DIR --to DATADIR [--id ID | --at-seq SEQ | --at-time RFC3339]
  strata-backup prune   --repo DIR --keep-full N [--keep-incremental M]";

/// Bytes per chunk read from the server and stored in the repository.
const CHUNK: u64 = 4 << 20;

/// Why a command failed: `Refused` (exit 1) for damage and refusals,
/// `Failed` (exit 2) for usage, I/O and server errors.
enum Error {
    Refused(String),
    Failed(String),
}

fn failed(e: impl std::fmt::Display) -> Error {
    Error::Failed(e.to_string())
}

struct Options {
    command: String,
    repo: PathBuf,
    host: String,
    port: u16,
    password: Option<String>,
    json: bool,
    incremental: bool,
    level: String,
    id: Option<String>,
    at_seq: Option<u64>,
    /// `--at-time`, in unix milliseconds.
    at_time: Option<u64>,
    to: Option<PathBuf>,
    keep_full: Option<usize>,
    keep_incremental: Option<usize>,
}

fn parse(args: &[String]) -> Result<Options, Error> {
    let usage = || Error::Failed(USAGE.to_string());
    let command = args.first().ok_or_else(usage)?.clone();
    let mut options = Options {
        command,
        repo: PathBuf::new(),
        host: "127.0.0.1".into(),
        port: 6379,
        password: None,
        json: false,
        incremental: false,
        level: "strict".into(),
        id: None,
        at_seq: None,
        at_time: None,
        to: None,
        keep_full: None,
        keep_incremental: None,
    };
    let mut repo = None;
    let mut rest = args[1..].iter();
    while let Some(flag) = rest.next() {
        let mut value = || rest.next().cloned().ok_or_else(usage);
        match flag.as_str() {
            "--repo" => repo = Some(PathBuf::from(value()?)),
            "-h" => options.host = value()?,
            "-p" => options.port = value()?.parse().map_err(|_| usage())?,
            "-a" => options.password = Some(value()?),
            "--json" => options.json = true,
            "--incremental" => options.incremental = true,
            "--level" => match value()?.to_ascii_lowercase().as_str() {
                level @ ("strict" | "bounded" | "eventual") => options.level = level.to_string(),
                _ => return Err(usage()),
            },
            "--id" => options.id = Some(value()?),
            "--at-seq" => options.at_seq = Some(value()?.parse().map_err(|_| usage())?),
            "--at-time" => {
                let text = value()?;
                let time = OffsetDateTime::parse(&text, &Rfc3339)
                    .map_err(|e| Error::Failed(format!("--at-time {text}: not an RFC 3339 time ({e})")))?;
                options.at_time = Some((time.unix_timestamp_nanos() / 1_000_000).max(0) as u64);
            }
            "--to" => options.to = Some(PathBuf::from(value()?)),
            "--keep-full" => options.keep_full = Some(value()?.parse().map_err(|_| usage())?),
            "--keep-incremental" => options.keep_incremental = Some(value()?.parse().map_err(|_| usage())?),
            _ => return Err(usage()),
        }
    }
    options.repo = repo.ok_or_else(usage)?;
    Ok(options)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().is_some_and(|a| a == "--help") {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let result = parse(&args).and_then(|options| match options.command.as_str() {
        "create" => create(&options),
        "list" => list(&options),
        "verify" => verify(&options),
        "restore" => restore(&options),
        "prune" => prune(&options),
        _ => Err(Error::Failed(USAGE.to_string())),
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Error::Refused(why)) => {
            eprintln!("strata-backup: {why}");
            ExitCode::from(1)
        }
        Err(Error::Failed(why)) => {
            eprintln!("strata-backup: {why}");
            ExitCode::from(2)
        }
    }
}

/// A blocking RESP2 connection to the server.
struct Conn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

/// A reply; errors are returned as `Err`.
enum Reply {
    Bulk(Vec<u8>),
    Array(Vec<Reply>),
    Other,
}

impl Conn {
    fn open(options: &Options) -> Result<Conn, Error> {
        let stream = TcpStream::connect((options.host.as_str(), options.port))
            .map_err(|e| failed(format!("cannot connect to {}:{}: {e}", options.host, options.port)))?;
        let mut conn = Conn { reader: BufReader::new(stream.try_clone().map_err(failed)?), writer: stream };
        if let Some(password) = &options.password {
            conn.call(&["AUTH", password])?;
        }
        Ok(conn)
    }

    fn call(&mut self, args: &[&str]) -> Result<Reply, Error> {
        let mut request = Vec::new();
        strata::protocol::encode_request(args, &mut request);
        self.writer.write_all(&request).map_err(failed)?;
        self.read()
    }

    fn read(&mut self) -> Result<Reply, Error> {
        let mut line = Vec::new();
        if self.reader.read_until(b'\n', &mut line).map_err(failed)? == 0 {
            return Err(failed("the server closed the connection"));
        }
        let text = String::from_utf8_lossy(&line[1..line.len().saturating_sub(2)]).to_string();
        let number = || text.parse::<i64>().map_err(|_| failed(format!("bad reply line {text:?}")));
        match line[0] {
            b'-' => Err(failed(format!("the server answered: {text}"))),
            b'$' => match number()? {
                len if len < 0 => Ok(Reply::Other),
                len => {
                    let mut data = vec![0; len as usize + 2];
                    self.reader.read_exact(&mut data).map_err(failed)?;
                    data.truncate(len as usize);
                    Ok(Reply::Bulk(data))
                }
            },
            b'*' => (0..number()?.max(0)).map(|_| self.read()).collect::<Result<_, _>>().map(Reply::Array),
            _ => Ok(Reply::Other),
        }
    }
}

fn bulks(reply: Reply, count: usize) -> Result<Vec<Vec<u8>>, Error> {
    match reply {
        Reply::Array(items) if items.len() == count => items
            .into_iter()
            .map(|item| match item {
                Reply::Bulk(bytes) => Ok(bytes),
                _ => Err(failed("unexpected reply")),
            })
            .collect(),
        _ => Err(failed("unexpected reply")),
    }
}

/// A progress bar on a terminal, nothing otherwise (plain lines instead).
fn progress(total: u64) -> ProgressBar {
    if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        let bar = ProgressBar::new(total);
        bar.set_style(
            ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {bytes_per_sec} {msg}").expect("template"),
        );
        bar
    } else {
        ProgressBar::hidden()
    }
}

fn backups_dir(repo: &Path) -> PathBuf {
    repo.join("backups")
}

/// Finished backups (those with a manifest), oldest first.
fn finished(repo: &Path) -> Result<Vec<(String, Value)>, Error> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(backups_dir(repo)) else { return Ok(out) };
    for entry in entries {
        let path = entry.map_err(failed)?.path();
        let Ok(text) = std::fs::read(path.join("manifest.json")) else { continue };
        let manifest: Value = serde_json::from_slice(&text)
            .map_err(|e| Error::Refused(format!("{}: damaged manifest: {e}", path.display())))?;
        out.push((path.file_name().expect("a name").to_string_lossy().into_owned(), manifest));
    }
    out.sort_by_key(|(_, manifest)| manifest["created_unix_ms"].as_u64().unwrap_or(0));
    Ok(out)
}

/// Of `backups`, the one `--id` names, or the newest.
fn chosen<'b>(options: &Options, backups: &'b [(String, Value)]) -> Result<&'b (String, Value), Error> {
    let found = match &options.id {
        Some(id) => backups.iter().find(|(name, _)| name == id),
        None => backups.last(),
    };
    found.ok_or_else(|| Error::Refused(format!("no such backup in {}", options.repo.display())))
}

/// A snapshot the server made for this backup: its id and manifest.
struct Snapshot {
    id: String,
    manifest: Value,
}

impl Snapshot {
    fn request(conn: &mut Conn, args: &[&str]) -> Result<Snapshot, Error> {
        let [id, manifest] = <[Vec<u8>; 2]>::try_from(bulks(conn.call(args)?, 2)?).expect("two items");
        let manifest = serde_json::from_slice(&manifest).map_err(failed)?;
        Ok(Snapshot { id: String::from_utf8_lossy(&id).into_owned(), manifest })
    }

    fn files(&self) -> impl Iterator<Item = &Value> {
        self.manifest["files"].as_array().into_iter().flatten()
    }

    fn release(&self, conn: &mut Conn) {
        let _ = conn.call(&["SNAPSHOT.RELEASE", &self.id]);
    }
}

/// Whether a backup holds engine parts (a full backup, or an increment of
/// parts) rather than only log records.
fn holds_parts(manifest: &Value) -> bool {
    manifest["base"].is_null() || manifest["holds"] == "parts"
}

/// The table files the chain of backup `id` stores, by (path, identity):
/// each file's entry as stored, with the backup whose chunks hold it.
fn stored_tables(backups: &[(String, Value)], id: &str) -> Result<Vec<Value>, Error> {
    let mut tables = Vec::new();
    for (link, manifest) in chain(backups, id)? {
        for file in manifest["files"].as_array().into_iter().flatten().filter(|f| f["id"].is_string()) {
            let mut file = file.clone();
            if file["in"].is_null() {
                file["in"] = json!(link);
            }
            tables.push(file);
        }
    }
    Ok(tables)
}

fn create(options: &Options) -> Result<(), Error> {
    let mut conn = Conn::open(options)?;
    let backups = finished(&options.repo)?;
    let base = match (options.incremental, backups.last()) {
        (true, Some((id, manifest))) if manifest["level"] == "eventual" => {
            println!("backup {id} is eventual, with no one point to continue from: a full backup");
            None
        }
        (true, newest) => newest,
        (false, _) => None,
    };
    // An increment holds the log since its base, or the engines' parts with
    // the table files the chain stores already left out: the smaller.
    let (snapshot, stored) = match base {
        None => (Snapshot::request(&mut conn, &["SNAPSHOT.CREATE", "LEVEL", options.level.as_str()])?, Vec::new()),
        Some((base_id, base_manifest)) => {
            let since = base_manifest["seq"].as_u64().unwrap_or(0).to_string();
            let log = match Snapshot::request(&mut conn, &["SNAPSHOT.CREATE", "SINCE", &since]) {
                Ok(log) => Some(log),
                Err(Error::Failed(why)) if why.contains("onwards is needed") => {
                    println!("the server's log no longer holds what followed backup {base_id}: its parts instead");
                    None
                }
                Err(e) => return Err(e),
            };
            let parts = Snapshot::request(&mut conn, &["SNAPSHOT.CREATE", "LEVEL", "strict"])?;
            let stored = stored_tables(&backups, base_id)?;
            let is_stored = |file: &Value| stored.iter().any(|s| s["path"] == file["path"] && s["id"] == file["id"]);
            let size = |file: &Value| file["size"].as_u64().unwrap_or(0);
            let parts_bytes: u64 = parts.files().filter(|f| !is_stored(f)).map(size).sum();
            match log {
                Some(log) if log.files().map(size).sum::<u64>() <= parts_bytes => {
                    parts.release(&mut conn);
                    (log, Vec::new())
                }
                log => {
                    if let Some(log) = log {
                        log.release(&mut conn);
                    }
                    (parts, stored)
                }
            }
        }
    };
    let base = base.map(|(id, _)| id.clone());
    let created_unix_ms =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    let id = format!("{created_unix_ms}-{}", snapshot.manifest["seq"]);
    let dir = backups_dir(&options.repo).join(&id);
    std::fs::create_dir_all(dir.join("chunks")).map_err(failed)?;
    let new = |file: &&Value| !stored.iter().any(|s| s["path"] == file["path"] && s["id"] == file["id"]);
    let total: u64 = snapshot.files().filter(new).filter_map(|f| f["size"].as_u64()).sum();
    let bar = progress(total);
    let mut files = Vec::new();
    let mut stored_total = 0;
    for (index, file) in snapshot.files().enumerate() {
        let path = file["path"].as_str().ok_or_else(|| failed("bad snapshot manifest"))?;
        let size = file["size"].as_u64().ok_or_else(|| failed("bad snapshot manifest"))?;
        if let Some(kept) = stored.iter().find(|s| s["path"] == file["path"] && s["id"] == file["id"]) {
            // Stored by an earlier backup of the chain: named, not copied.
            files.push(kept.clone());
            continue;
        }
        bar.set_message(path.to_string());
        let mut chunks = Vec::new();
        let mut offset = 0;
        while offset < size {
            let (start, count) = (offset.to_string(), CHUNK.min(size - offset).to_string());
            let reply = conn.call(&["SNAPSHOT.READ", &snapshot.id, path, &start, &count])?;
            let [data, crc] = <[Vec<u8>; 2]>::try_from(bulks(reply, 2)?).expect("two items");
            let crc = String::from_utf8_lossy(&crc).into_owned();
            if data.is_empty() || format!("{:08x}", crc32c::crc32c(&data)) != crc {
                return Err(failed(format!("{path} at {offset}: the chunk read does not match its checksum")));
            }
            let name = format!("{index:06}-{:06}", chunks.len());
            let codec = PartKind::of(path).codec();
            let compressed = codec.compress(&data);
            std::fs::write(dir.join("chunks").join(&name), &compressed).map_err(failed)?;
            stored_total += compressed.len();
            chunks.push(json!({
                "file": name,
                "size": data.len(),
                "stored": compressed.len(),
                "crc32c": crc,
                "codec": codec.name(),
            }));
            offset += data.len() as u64;
            bar.inc(data.len() as u64);
        }
        let mut entry = json!({"path": path, "size": size, "chunks": chunks});
        if !file["id"].is_null() {
            entry["id"] = file["id"].clone();
        }
        files.push(entry);
    }
    bar.finish_and_clear();
    snapshot.release(&mut conn);
    let holds = if snapshot.manifest["kind"] == "incremental" { "log" } else { "parts" };
    let manifest = json!({
        "format": 1,
        "id": id,
        "kind": if base.is_some() { "incremental" } else { "full" },
        "base": base,
        "holds": holds,
        "level": snapshot.manifest["level"],
        "seq": snapshot.manifest["seq"],
        "created_unix_ms": created_unix_ms,
        "server": format!("{}:{}", options.host, options.port),
        "snapshot": snapshot.manifest,
        "files": files,
    });
    // Written last, through a rename: a backup cut short has none.
    let tmp = dir.join("manifest.json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(&manifest).expect("json")).map_err(failed)?;
    std::fs::rename(&tmp, dir.join("manifest.json")).map_err(failed)?;
    let kind = match (base.is_some(), holds) {
        (false, _) => "full",
        (true, "log") => "incremental (log)",
        (true, _) => "incremental (parts)",
    };
    println!(
        "{id}: {} {kind} backup of {total} bytes ({stored_total} stored) at sequence {} in {}",
        manifest["level"].as_str().unwrap_or_default(),
        manifest["seq"],
        dir.display()
    );
    Ok(())
}

fn list(options: &Options) -> Result<(), Error> {
    let backups = finished(&options.repo)?;
    if options.json {
        let rows: Vec<Value> = backups
            .iter()
            .map(|(id, m)| {
                json!({"id": id, "kind": m["kind"], "holds": holding_kind(m), "level": m["level"], "base": m["base"],
                       "seq": m["seq"], "created_unix_ms": m["created_unix_ms"], "bytes": bytes_of(m),
                       "stored": stored_of(m)})
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows).expect("json"));
    } else {
        for (id, m) in &backups {
            let (kind, level) = (m["kind"].as_str().unwrap_or("?"), m["level"].as_str().unwrap_or("?"));
            let (seq, bytes, stored) = (&m["seq"], bytes_of(m), stored_of(m));
            println!("{id}  {kind} ({})  {level}  seq {seq}  {bytes} bytes  {stored} stored", holding_kind(m));
        }
        let archive = archive_dir(&options.repo);
        if let (Some(first), Ok(Some((last, last_ms)))) =
            (list_segments(&archive).map_err(failed)?.first(), strata_engines::log::archive::log_end(&archive))
        {
            println!("archived log  seq {} to {last}  last committed {}", first.first_seq, rfc3339(last_ms));
        }
    }
    Ok(())
}

/// What a backup holds: engine parts or log records.
fn holding_kind(manifest: &Value) -> &'static str {
    if holds_parts(manifest) {
        "parts"
    } else {
        "log"
    }
}

/// Bytes this backup's own chunks take in the repository (table files an
/// earlier backup stores are not counted).
fn stored_of(manifest: &Value) -> u64 {
    let own = manifest["files"].as_array().into_iter().flatten().filter(|f| f["in"].is_null());
    own.flat_map(|f| f["chunks"].as_array().into_iter().flatten()).filter_map(|c| c["stored"].as_u64()).sum()
}

fn bytes_of(manifest: &Value) -> u64 {
    manifest["files"].as_array().into_iter().flatten().filter_map(|f| f["size"].as_u64()).sum()
}

/// Reads every chunk of backup `id` and checks it; with `to`, writes the
/// files there.
fn check_backup(repo: &Path, id: &str, manifest: &Value, to: Option<&Path>) -> Result<(), Error> {
    let plain = |name: &str| Path::new(name).components().all(|c| matches!(c, std::path::Component::Normal(_)));
    for file in manifest["files"].as_array().into_iter().flatten() {
        let path = file["path"].as_str().unwrap_or_default();
        // A table file an earlier backup of the chain stores is read there.
        let holder = file["in"].as_str().unwrap_or(id);
        if !plain(path) || !plain(holder) {
            return Err(Error::Refused(format!("{id}: the manifest names a file outside the backup: {path}")));
        }
        let dir = backups_dir(repo).join(holder);
        let mut out = match to {
            Some(to) => {
                let target = to.join(path);
                std::fs::create_dir_all(target.parent().expect("a parent")).map_err(failed)?;
                Some(std::fs::File::create(target).map_err(failed)?)
            }
            None => None,
        };
        let mut size = 0;
        for chunk in file["chunks"].as_array().into_iter().flatten() {
            let name = chunk["file"].as_str().unwrap_or_default();
            let damaged = || Error::Refused(format!("{id}: chunk {name} of {path} is damaged"));
            let stored = std::fs::read(dir.join("chunks").join(name))
                .map_err(|e| Error::Refused(format!("{id}: chunk {name} of {path}: {e}")))?;
            let codec = chunk["codec"].as_str().and_then(Codec::parse).ok_or_else(damaged)?;
            let len = chunk["size"].as_u64().ok_or_else(damaged)? as usize;
            if Some(stored.len() as u64) != chunk["stored"].as_u64() {
                return Err(damaged());
            }
            let data = codec.decompress(&stored, len).ok_or_else(damaged)?;
            if chunk["crc32c"].as_str() != Some(format!("{:08x}", crc32c::crc32c(&data)).as_str()) {
                return Err(damaged());
            }
            if let Some(out) = out.as_mut() {
                out.write_all(&data).map_err(failed)?;
            }
            size += data.len() as u64;
        }
        if Some(size) != file["size"].as_u64() {
            return Err(Error::Refused(format!("{id}: {path} is missing chunks")));
        }
        if let Some(out) = out {
            out.sync_all().map_err(failed)?;
        }
    }
    Ok(())
}

/// The backup whose chain restores to sequence `seq` with the least
/// written: the oldest one at or after `seq` whose chain's newest engine
/// parts hold nothing after it (the log rolls them forward to `seq`).
fn holding(backups: &[(String, Value)], seq: u64) -> Result<&(String, Value), Error> {
    let floor = |full: &Value| match full["level"].as_str() {
        // Parts at their own points, no log: only its own sequence.
        Some("eventual") => full["seq"].as_u64(),
        _ => {
            let parts = &full["snapshot"]["parts"];
            Some(parts["rocksdb"]["seq"].as_u64()?.max(parts["memory"]["seq"].as_u64()?))
        }
    };
    let mut candidates: Vec<&(String, Value)> = backups
        .iter()
        .filter(|(id, manifest)| {
            manifest["seq"].as_u64().is_some_and(|end| end >= seq)
                && chain(backups, id).is_ok_and(|links| {
                    let parts = links.iter().rfind(|(_, m)| holds_parts(m)).unwrap_or(&links[0]);
                    floor(&parts.1).is_some_and(|floor| floor <= seq)
                })
        })
        .collect();
    candidates.sort_by_key(|(_, manifest)| manifest["seq"].as_u64());
    candidates.first().copied().ok_or_else(|| {
        Error::Refused(format!("no backup in the repository restores to sequence {seq} (see strata-backup list)"))
    })
}

/// Backup `id` and the backups it continues, full backup first.
fn chain(backups: &[(String, Value)], id: &str) -> Result<Vec<(String, Value)>, Error> {
    let mut chain = Vec::new();
    let mut at = Some(id.to_string());
    while let Some(id) = at {
        let (_, manifest) = backups
            .iter()
            .find(|(name, _)| *name == id)
            .ok_or_else(|| Error::Refused(format!("backup {id} is missing from the chain")))?;
        if chain.len() > backups.len() {
            return Err(Error::Refused(format!("the chain of backup {id} loops")));
        }
        at = manifest["base"].as_str().map(str::to_string);
        chain.push((id, manifest.clone()));
    }
    chain.reverse();
    Ok(chain)
}

fn verify(options: &Options) -> Result<(), Error> {
    let backups = finished(&options.repo)?;
    let checked = match &options.id {
        Some(_) => std::slice::from_ref(chosen(options, &backups)?),
        None => &backups[..],
    };
    for (id, manifest) in checked {
        chain(&backups, id)?;
        check_backup(&options.repo, id, manifest, None)?;
        println!("{id}: ok");
    }
    if options.id.is_none() {
        verify_archive(&options.repo)?;
    }
    Ok(())
}

/// Reads every archived log segment whole; says where archiving was off.
fn verify_archive(repo: &Path) -> Result<(), Error> {
    let segments = check_archive(&archive_dir(repo)).map_err(|e| Error::Refused(format!("archived log: {e}")))?;
    let (Some(first), Some(last)) = (segments.first(), segments.last()) else { return Ok(()) };
    for pair in segments.windows(2).filter(|pair| pair[1].first_seq > pair[0].last_seq + 1) {
        println!(
            "archived log: sequences {} to {} are missing (archiving was off)",
            pair[0].last_seq + 1,
            pair[1].first_seq - 1
        );
    }
    println!(
        "archived log: ok, {} segment(s), sequences {} to {} ({} to {})",
        segments.len(),
        first.first_seq,
        last.last_seq,
        rfc3339(first.first_time_ms),
        rfc3339(last.last_time_ms)
    );
    Ok(())
}

fn restore(options: &Options) -> Result<(), Error> {
    let to = options.to.as_ref().ok_or_else(|| Error::Failed(USAGE.to_string()))?;
    if [options.id.is_some(), options.at_seq.is_some(), options.at_time.is_some()].iter().filter(|&&x| x).count() > 1 {
        return Err(Error::Failed(USAGE.to_string()));
    }
    if std::fs::read_dir(to).is_ok_and(|mut entries| entries.next().is_some()) {
        return Err(Error::Refused(format!("{} is not empty: nothing was restored", to.display())));
    }
    let backups = finished(&options.repo)?;
    let at_seq = match options.at_time {
        Some(ms) => Some(seq_at(&options.repo, ms)?),
        None => options.at_seq,
    };
    // The backup to restore, and the sequence to roll it forward from
    // with the archived log, when no backup holds the point.
    let ((id, manifest), roll_from) = match at_seq {
        None => (chosen(options, &backups)?, None),
        Some(seq) => match holding(&backups, seq) {
            Ok(found) => (found, None),
            Err(refusal) => {
                let base = newest_before(&backups, seq).ok_or(refusal)?;
                if !archive_dir(&options.repo).exists() {
                    return Err(Error::Refused(format!(
                        "no backup in {} restores to sequence {seq}, and it has no archived log to roll one \
                         forward: point-in-time restore needs log archiving (the server's log-archive-repo)",
                        options.repo.display()
                    )));
                }
                (base, base.1["seq"].as_u64())
            }
        },
    };
    let links = chain(&backups, id)?;
    // Restored beside the target first, and moved into place only once
    // every chunk has checked: the full backup, then each increment's log,
    // then the archived records after them.
    let name = to.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let staging = to.with_file_name(format!(".{name}.restoring"));
    let _ = std::fs::remove_dir_all(&staging);
    // From the newest link holding engine parts: the links before it are
    // not needed (it holds what they restore to).
    let links = &links[links.iter().rposition(|(_, m)| holds_parts(m)).unwrap_or(0)..];
    let staged = || -> Result<u64, Error> {
        for (id, manifest) in links {
            check_backup(&options.repo, id, manifest, Some(&staging))?;
        }
        let (_, full) = links.first().expect("a chain starts with its full backup");
        if full["level"] == "eventual" {
            let seq = full["seq"].as_u64().ok_or_else(|| failed("bad backup manifest"))?;
            strata::snapshot::stamp(&staging, seq)
                .map_err(|e| failed(format!("stamping the restored parts at sequence {seq}: {e}")))?;
        }
        let Some(seq) = at_seq else { return Ok(manifest["seq"].as_u64().unwrap_or_default()) };
        if let Some(from) = roll_from.filter(|&from| from < seq) {
            let log = strata::recovery::log_dir(&staging);
            std::fs::create_dir_all(&log).map_err(failed)?;
            strata_engines::log::copy_records(&archive_dir(&options.repo), &log, from + 1, seq).map_err(|e| {
                Error::Refused(format!("the archived log does not hold sequences {} to {seq}: {e}", from + 1))
            })?;
        }
        strata::snapshot::end_log_at(&staging, seq)
            .map_err(|e| failed(format!("ending the restored log at sequence {seq}: {e}")))?;
        Ok(seq)
    };
    let seq = staged().inspect_err(|_| {
        let _ = std::fs::remove_dir_all(&staging);
    })?;
    if to.exists() {
        std::fs::remove_dir(to).map_err(failed)?;
    }
    std::fs::rename(&staging, to).map_err(failed)?;
    let rolled = match roll_from {
        Some(from) => format!(", rolled forward from sequence {from} with the archived log"),
        None => String::new(),
    };
    println!("{id}: restored to {} at sequence {seq}{rolled}", to.display());
    Ok(())
}

/// The newest backup at or before sequence `seq` whose chain is whole:
/// the one the archived log rolls forward to `seq`.
fn newest_before(backups: &[(String, Value)], seq: u64) -> Option<&(String, Value)> {
    backups
        .iter()
        .filter(|(id, manifest)| manifest["seq"].as_u64().is_some_and(|end| end <= seq) && chain(backups, id).is_ok())
        .max_by_key(|(_, manifest)| manifest["seq"].as_u64())
}

/// The sequence `--at-time` names: the last record the archived log says
/// was committed at or before `ms`.
fn seq_at(repo: &Path, ms: u64) -> Result<u64, Error> {
    let refused = |why: String| Error::Refused(format!("--at-time {}: {why}", rfc3339(ms)));
    let found = seq_at_time(&archive_dir(repo), ms).map_err(|e| refused(format!("reading the archived log: {e}")))?;
    match found {
        Some(TimeInArchive::At(seq)) => Ok(seq),
        Some(TimeInArchive::BeforeStart { first_seq, time_ms }) => Err(refused(format!(
            "the archived log starts at sequence {first_seq}, committed at {}, after that time",
            rfc3339(time_ms)
        ))),
        Some(TimeInArchive::AfterEnd { last_seq, time_ms }) => Err(refused(format!(
            "the archived log ends at sequence {last_seq}, committed at {}: what the server committed after it is \
             not archived yet (--at-seq {last_seq} restores to that end)",
            rfc3339(time_ms)
        ))),
        None => Err(refused(format!(
            "{} has no archived log: point-in-time restore needs log archiving (the server's log-archive-repo)",
            repo.display()
        ))),
    }
}

/// Unix milliseconds as RFC 3339, in UTC.
fn rfc3339(ms: u64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .ok()
        .and_then(|time| time.format(&Rfc3339).ok())
        .unwrap_or_else(|| ms.to_string())
}

/// Keeps the newest `--keep-full` full backups, and the increments on
/// the newest `--keep-incremental` of them (all of them by default): an
/// increment continues the backup before it, so a chain's increments go
/// together. Removes the rest, increments first.
fn prune(options: &Options) -> Result<(), Error> {
    let keep = options.keep_full.ok_or_else(|| Error::Failed(USAGE.to_string()))?;
    let keep_incremental = options.keep_incremental.unwrap_or(keep).min(keep);
    let backups = finished(&options.repo)?;
    let fulls: Vec<&String> = backups.iter().filter(|(_, m)| m["base"].is_null()).map(|(id, _)| id).collect();
    let kept_fulls = &fulls[fulls.len().saturating_sub(keep)..];
    let with_increments = &fulls[fulls.len().saturating_sub(keep_incremental)..];
    for (id, manifest) in backups.iter().rev() {
        let full = chain(&backups, id).ok().and_then(|chain| chain.first().map(|(full, _)| full.clone()));
        let kept = match manifest["base"].is_null() {
            true => kept_fulls.contains(&id),
            false => full.is_some_and(|full| with_increments.contains(&&full)),
        };
        if !kept {
            std::fs::remove_dir_all(backups_dir(&options.repo).join(id)).map_err(failed)?;
            println!("{id}: removed");
        }
    }
    prune_archive(&options.repo)
}

/// Removes the archived log segments whose records are all at or before
/// the oldest backup left: no restore rolls forward from before it.
fn prune_archive(repo: &Path) -> Result<(), Error> {
    let backups = finished(repo)?;
    let Some(oldest) = backups.iter().filter_map(|(_, m)| m["seq"].as_u64()).min() else { return Ok(()) };
    let segments = list_segments(&archive_dir(repo)).map_err(failed)?;
    let unneeded: Vec<_> = segments.windows(2).take_while(|pair| pair[1].first_seq - 1 <= oldest).collect();
    for pair in &unneeded {
        std::fs::remove_file(&pair[0].path).map_err(failed)?;
    }
    if let (Some(first), Some(last)) = (unneeded.first(), unneeded.last()) {
        let (from, to) = (first[0].first_seq, last[1].first_seq - 1);
        println!("archived log: sequences {from} to {to} removed (before the oldest backup)");
    }
    Ok(())
}
