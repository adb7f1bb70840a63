//! Whole-database commands: DBSIZE FLUSHDB FLUSHALL SWAPDB.

use bytes::Bytes;

use super::args::{parse_int, Args};
use super::{CommandTable, Ctx};
use crate::error::{CmdError, CmdResult};
use crate::protocol::Reply;

pub fn register(table: &mut CommandTable) {
    table.register("dbsize", dbsize);
    table.register("flushdb", flushdb);
    table.register("flushall", flushall);
    table.register("swapdb", swapdb);
}

/// `DBSIZE`
fn dbsize(ctx: &mut Ctx, _argv: &[Bytes]) -> CmdResult {
    let db = ctx.client.db;
    Ok(Reply::Integer(ctx.tx().key_counts(db).0 as i64))
}

/// `[ASYNC | SYNC]`: both delete at once here (a range delete is O(1)).
fn parse_flush_mode(argv: &[Bytes]) -> Result<(), CmdError> {
    let mut args = Args::new(argv);
    if let Some(mode) = args.next_opt() {
        if !mode.eq_ignore_ascii_case(b"ASYNC") && !mode.eq_ignore_ascii_case(b"SYNC") {
            return Err(CmdError::Syntax);
        }
    }
    args.finish()
}

/// `FLUSHDB [ASYNC | SYNC]`
fn flushdb(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    parse_flush_mode(argv)?;
    ctx.run(|tx| tx.flush_database(tx.physical))?;
    ctx.server.pubsub.tracking.flush();
    Ok(Reply::ok())
}

/// `FLUSHALL [ASYNC | SYNC]`
fn flushall(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    parse_flush_mode(argv)?;
    let keyspace = &ctx.server.keyspace;
    ctx.run(|tx| {
        for db in 0..keyspace.databases() {
            tx.flush_database(keyspace.store.physical(db))?;
        }
        Ok(())
    })?;
    ctx.server.pubsub.tracking.flush();
    Ok(Reply::ok())
}

/// `SWAPDB index1 index2`
fn swapdb(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    if ctx.server.cluster.is_some() {
        return Err(CmdError::err("SWAPDB is not allowed in cluster mode"));
    }
    let index = |arg: &[u8]| -> Result<usize, CmdError> {
        let n = parse_int(arg).map_err(|_| CmdError::err("invalid first DB index"))?;
        Ok(n as usize)
    };
    let a = index(&argv[1])?;
    let b = parse_int(&argv[2]).map_err(|_| CmdError::err("invalid second DB index"))? as usize;
    let databases = ctx.server.keyspace.databases() as i64;
    let in_range = |n: usize| (n as i64) >= 0 && (n as i64) < databases;
    if !in_range(a) || !in_range(b) {
        return Err(CmdError::DbIndexOutOfRange);
    }
    let keyspace = &ctx.server.keyspace;
    ctx.run(|tx| tx.swap_databases(a, b))?;
    // Clients blocked in either database may find data there now.
    keyspace.blocking.signal_database(a);
    keyspace.blocking.signal_database(b);
    Ok(Reply::ok())
}
