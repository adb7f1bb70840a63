//! Strata's snapshot transfer commands (`snapshot`): a client asks for a
//! strict snapshot, reads its files in chunks of bounded size, each with
//! its CRC32C, and releases it. The snapshot lives under
//! `<dir>/snapshots/<id>` (hard links and a copy of the log's tail) until
//! released or until the server restarts.
//!
//! ```text
//! SNAPSHOT.CREATE [LEVEL strict|bounded|eventual] [SINCE seq]
//!                                          -> [id, manifest JSON]
//! SNAPSHOT.READ id path offset count       -> [bytes, crc32c as 8 hex digits]
//! SNAPSHOT.RELEASE id                      -> 1 if it existed, else 0
//! ```

use std::io::{Read, Seek, SeekFrom};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use serde_json::{json, Value};

use super::args::parse_int;
use super::{CommandTable, Ctx};
use crate::error::{CmdError, CmdResult};
use crate::protocol::Reply;
use crate::snapshot::{self, Level};

/// The most one SNAPSHOT.READ returns.
pub const MAX_CHUNK: u64 = 16 << 20;

/// Snapshots made by this process: ids are never reused.
static MADE: AtomicU64 = AtomicU64::new(0);

pub fn register(table: &mut CommandTable) {
    let own = |name: &str, arity: i64, summary: &str, arguments: Value| -> (&'static Value, &'static Value) {
        let info = json!([name, arity, ["admin", "noscript"], 0, 0, 0, ["@admin", "@slow", "@dangerous"], [], [], []]);
        let docs = json!({"summary": summary, "since": "0.1.0", "group": "server", "arguments": arguments});
        (Box::leak(Box::new(info)), Box::leak(Box::new(docs)))
    };
    let arg = |name: &str, kind: &str| json!({"name": name, "type": kind});
    let token = |name: &str| json!({"name": name, "type": "pure-token", "token": name.to_uppercase()});
    let arguments = json!([
        {"name": "level", "type": "block", "flags": ["optional"], "arguments": [token("level"),
            {"name": "level", "type": "oneof", "arguments": [token("strict"), token("bounded"), token("eventual")]}]},
        {"name": "since", "type": "block", "flags": ["optional"], "arguments": [token("since"), arg("seq", "integer")]},
    ]);
    let (info, docs) = own("snapshot.create", -1, "Takes a snapshot of every engine, or an increment", arguments);
    table.register_own(info, docs, create);
    let arguments =
        json!([arg("id", "string"), arg("path", "string"), arg("offset", "integer"), arg("count", "integer")]);
    let (info, docs) = own("snapshot.read", 5, "Reads a chunk of a snapshot's file, with its CRC32C", arguments);
    table.register_own(info, docs, read);
    let (info, docs) =
        own("snapshot.release", 2, "Deletes a snapshot taken by SNAPSHOT.CREATE", json!([arg("id", "string")]));
    table.register_own(info, docs, release);
}

/// Where the server keeps snapshots being read.
pub fn snapshots_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("snapshots")
}

/// The directory of snapshot `id`, if `id` can name one.
fn snapshot_dir(ctx: &Ctx, id: &[u8]) -> Result<PathBuf, CmdError> {
    let valid = !id.is_empty() && id.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'-');
    let dir = snapshots_dir(ctx.server.keyspace.data_dir()).join(String::from_utf8_lossy(id).as_ref());
    if !valid || !dir.is_dir() {
        return Err(CmdError::err("no such snapshot"));
    }
    Ok(dir)
}

/// `SNAPSHOT.CREATE [LEVEL strict|bounded|eventual] [SINCE seq]`: at the
/// level given (strict by default); with SINCE, an increment on the
/// snapshot taken at `seq` (its log records since, which the log must
/// still hold: strict by nature).
fn create(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    let (mut level, mut base) = (None, None);
    let mut args = argv[1..].iter();
    while let Some(arg) = args.next() {
        let value = args.next().ok_or(CmdError::Syntax)?;
        if arg.eq_ignore_ascii_case(b"LEVEL") && level.is_none() {
            level = Some(Level::parse(value).ok_or(CmdError::Syntax)?);
        } else if arg.eq_ignore_ascii_case(b"SINCE") && base.is_none() {
            match parse_int(value)? {
                seq if seq >= 0 => base = Some(seq as u64),
                _ => return Err(CmdError::err("the sequence must not be negative")),
            }
        } else {
            return Err(CmdError::Syntax);
        }
    }
    let level = level.unwrap_or(Level::Strict);
    if base.is_some() && level != Level::Strict {
        return Err(CmdError::err("an increment is strict: it holds the log's records up to now"));
    }
    let keyspace = &ctx.server.keyspace;
    let id = format!("{}-{}", keyspace.log.last_seq(), MADE.fetch_add(1, Ordering::Relaxed));
    let dir = snapshots_dir(keyspace.data_dir()).join(&id);
    let taken = match base {
        Some(base) => snapshot::take_since(keyspace, &dir, base),
        None => snapshot::take(keyspace, &dir, level),
    };
    match taken {
        Ok(manifest) => {
            let text = serde_json::to_string(&manifest.to_json()).expect("json");
            Ok(Reply::Array(vec![Reply::bulk(id), Reply::bulk(text)]))
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&dir);
            Err(CmdError::err(format!("snapshot failed: {e}")))
        }
    }
}

/// `SNAPSHOT.READ id path offset count`
fn read(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    let dir = snapshot_dir(ctx, &argv[1])?;
    let path = Path::new(std::str::from_utf8(&argv[2]).map_err(|_| CmdError::err("no such file in the snapshot"))?);
    if !path.components().all(|c| matches!(c, Component::Normal(_))) {
        return Err(CmdError::err("no such file in the snapshot"));
    }
    let (offset, count) = (parse_int(&argv[3])?, parse_int(&argv[4])?);
    if offset < 0 || count < 0 {
        return Err(CmdError::err("offset and count must not be negative"));
    }
    let path = dir.join(path);
    if !path.is_file() {
        return Err(CmdError::err("no such file in the snapshot"));
    }
    let mut file = std::fs::File::open(&path).map_err(|_| CmdError::err("no such file in the snapshot"))?;
    let mut chunk = Vec::new();
    file.seek(SeekFrom::Start(offset as u64))
        .and_then(|_| file.take((count as u64).min(MAX_CHUNK)).read_to_end(&mut chunk))
        .map_err(|e| CmdError::err(format!("reading the snapshot failed: {e}")))?;
    let crc = format!("{:08x}", crc32c::crc32c(&chunk));
    Ok(Reply::Array(vec![Reply::Bulk(Bytes::from(chunk)), Reply::bulk(crc)]))
}

/// `SNAPSHOT.RELEASE id`
fn release(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    match snapshot_dir(ctx, &argv[1]) {
        Ok(dir) => {
            std::fs::remove_dir_all(&dir).map_err(|e| CmdError::err(format!("releasing the snapshot failed: {e}")))?;
            Ok(Reply::Integer(1))
        }
        Err(_) => Ok(Reply::Integer(0)),
    }
}
