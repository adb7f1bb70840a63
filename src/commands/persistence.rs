//! SAVE, BGSAVE, LASTSAVE: Redis's snapshot commands, mapped onto Strata's
//! persistence. A "save" flushes RocksDB's memtables and writes a memory
//! checkpoint, so that a restart replays nothing; writes are durable
//! through the log either way.

use std::sync::atomic::Ordering;

use bytes::Bytes;

use super::{CommandTable, Ctx};
use crate::error::{CmdError, CmdResult};
use crate::protocol::Reply;

pub fn register(table: &mut CommandTable) {
    table.register("save", save);
    table.register("bgsave", bgsave);
    table.register("lastsave", lastsave);
}

/// `SAVE`
fn save(ctx: &mut Ctx, _argv: &[Bytes]) -> CmdResult {
    if ctx.server.keyspace.durability.checkpoint_in_progress.load(Ordering::Relaxed) {
        return Err(CmdError::err("Background save already in progress"));
    }
    // As in Redis, SAVE holds up the clients of its thread until it is done.
    ctx.server.keyspace.save()?;
    Ok(Reply::ok())
}

/// `BGSAVE [SCHEDULE]`
fn bgsave(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    let schedule = match argv.get(1) {
        None => false,
        Some(arg) if arg.eq_ignore_ascii_case(b"SCHEDULE") && argv.len() == 2 => true,
        Some(_) => return Err(CmdError::Syntax),
    };
    let server = ctx.server;
    if server.keyspace.durability.checkpoint_in_progress.load(Ordering::Relaxed) {
        if schedule {
            return Ok(Reply::Status("Background saving scheduled"));
        }
        return Err(CmdError::err("Background save already in progress"));
    }
    let owner = server.this.upgrade().ok_or_else(|| CmdError::err("server is shutting down"))?;
    tokio::task::spawn_blocking(move || {
        if let Err(e) = owner.keyspace.save() {
            tracing::error!(error = %e, "background save failed");
        }
    });
    Ok(Reply::Status("Background saving started"))
}

/// `LASTSAVE`: unix time of the last completed checkpoint (or of startup).
fn lastsave(ctx: &mut Ctx, _argv: &[Bytes]) -> CmdResult {
    let last = ctx.server.keyspace.durability.last_checkpoint_unix.load(Ordering::Relaxed);
    Ok(Reply::Integer(if last == 0 { (ctx.server.started_unix_ms / 1000) as i64 } else { last as i64 }))
}
