//! Transactions: MULTI EXEC DISCARD WATCH UNWATCH, with Redis 7.0's rules.
//!
//! Inside MULTI, `dispatch` checks each command (unknown, arity, NOAUTH ...
//! fail the transaction) and queues it. EXEC runs the queue inside one
//! keyspace transaction over the queued commands' keys (`keys_to_lock`):
//! one `Tx` that every queued command runs in, one commit.
//!
//! WATCH is optimistic locking: the keyspace derives the keys each commit
//! changes from its effects (RocksDB writes, memory records, flushes, swaps,
//! expiry) and marks their watchers dirty; EXEC of a dirty client answers a
//! nil array and runs nothing.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;

use super::{Access, CommandTable, Ctx};
use crate::client::{Client, ClientShared};
use crate::error::{CmdError, CmdResult};
use crate::keyspace::Locking;
use crate::protocol::Reply;
use crate::server::Server;

pub fn register(table: &mut CommandTable) {
    table.register("multi", multi);
    table.register("exec", exec);
    table.register("discard", discard);
    table.register("watch", watch);
    table.register("unwatch", unwatch);
}

/// A client's transaction between MULTI and EXEC.
#[derive(Default)]
pub struct MultiState {
    /// The queued commands, in order.
    pub commands: Vec<Vec<Bytes>>,
    /// A command was refused while queueing: EXEC answers EXECABORT.
    pub failed: bool,
}

/// A key in a logical database.
type DbKey = (usize, Bytes);

/// Every watched key, by logical database, with its watchers.
#[derive(Default)]
pub struct Watches {
    keys: Mutex<HashMap<DbKey, Vec<Arc<ClientShared>>>>,
    /// Number of watched keys: writes skip all WATCH work while it is 0.
    count: AtomicUsize,
}

impl Watches {
    pub fn is_empty(&self) -> bool {
        self.count.load(Ordering::Relaxed) == 0
    }

    fn watch(&self, client: &Arc<ClientShared>, db: usize, key: Bytes) {
        let mut keys = self.keys.lock();
        let watchers = keys.entry((db, key)).or_default();
        if watchers.is_empty() {
            self.count.fetch_add(1, Ordering::Relaxed);
        }
        watchers.push(client.clone());
    }

    fn unwatch(&self, client_id: u64, db: usize, key: Bytes) {
        let mut keys = self.keys.lock();
        let entry = (db, key);
        if let Some(watchers) = keys.get_mut(&entry) {
            watchers.retain(|c| c.id != client_id);
            if watchers.is_empty() {
                keys.remove(&entry);
                self.count.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }

    /// `key` in logical database `db` changed: its watchers' EXEC will fail.
    pub fn touch(&self, db: usize, key: &[u8]) {
        if self.is_empty() {
            return;
        }
        if let Some(watchers) = self.keys.lock().get(&(db, Bytes::copy_from_slice(key))) {
            for client in watchers {
                client.dirty_cas.store(true, Ordering::Relaxed);
            }
        }
    }

    /// The watched keys of logical database `db` (FLUSHDB, SWAPDB).
    pub fn keys_in(&self, db: usize) -> Vec<Bytes> {
        if self.is_empty() {
            return Vec::new();
        }
        self.keys.lock().keys().filter(|(d, _)| *d == db).map(|(_, k)| k.clone()).collect()
    }
}

/// Commands that run at once inside MULTI instead of being queued (Redis
/// 7.0's list in processCommand; UNWATCH is queued there too).
pub(super) fn runs_inside_multi(name: &str) -> bool {
    matches!(name, "exec" | "discard" | "multi" | "watch" | "quit" | "reset")
}

/// Queues a checked command of a client in MULTI.
pub(super) fn queue(client: &mut Client, argv: &[Bytes]) -> Reply {
    let state = client.multi.as_mut().expect("client is in MULTI");
    state.commands.push(argv.to_vec());
    client.shared.multi.store(state.commands.len() as i64, Ordering::Relaxed);
    Reply::Status("QUEUED")
}

/// A command refused before it ran (unknown, arity, NOAUTH, not allowed in
/// a transaction): inside MULTI the transaction fails at EXEC; EXEC itself
/// refused ends it at once (Redis's execCommandAbort).
pub(super) fn reject(server: &Server, client: &mut Client, argv: &[Bytes], error: CmdError) -> Reply {
    if client.multi.is_none() {
        return error.to_reply();
    }
    if argv[0].eq_ignore_ascii_case(b"exec") {
        end_multi(client);
        unwatch_all(server, client);
        let text = error.to_string();
        let text = text.strip_prefix("ERR ").unwrap_or(&text);
        return Reply::Error(format!("EXECABORT Transaction discarded because of: {text}"));
    }
    if let Some(state) = client.multi.as_mut() {
        state.failed = true;
    }
    error.to_reply()
}

/// Leaves MULTI, returning what was queued.
fn end_multi(client: &mut Client) -> Option<MultiState> {
    client.shared.multi.store(-1, Ordering::Relaxed);
    client.multi.take()
}

/// Forgets every key the client watches, and whether one changed.
pub(crate) fn unwatch_all(server: &Server, client: &mut Client) {
    for (db, key) in client.watched.drain(..) {
        server.keyspace.watches.unwatch(client.shared.id, db, key);
    }
    client.shared.dirty_cas.store(false, Ordering::Relaxed);
}

/// RESET and disconnects: no transaction, no watched keys.
pub(crate) fn forget(server: &Server, client: &mut Client) {
    end_multi(client);
    unwatch_all(server, client);
}

/// `MULTI`
fn multi(ctx: &mut Ctx, _argv: &[Bytes]) -> CmdResult {
    if ctx.client.multi.is_some() {
        return Err(CmdError::err("MULTI calls can not be nested"));
    }
    ctx.client.multi = Some(MultiState::default());
    ctx.client.shared.multi.store(0, Ordering::Relaxed);
    Ok(Reply::ok())
}

/// `DISCARD`
fn discard(ctx: &mut Ctx, _argv: &[Bytes]) -> CmdResult {
    if end_multi(ctx.client).is_none() {
        return Err(CmdError::err("DISCARD without MULTI"));
    }
    unwatch_all(ctx.server, ctx.client);
    Ok(Reply::ok())
}

/// What EXEC locks (see `Access::Queued`): the keys of its queued commands
/// and the client's watched keys; None when a queued command needs every
/// shard (FLUSHALL, or a walk of the keyspace: DBSIZE, SCAN ...).
pub(super) fn keys_to_lock(server: &Server, client: &Client) -> Option<Vec<Bytes>> {
    let mut keys: Vec<Bytes> = client.watched.iter().map(|(_, key)| key.clone()).collect();
    for argv in client.multi.as_ref().map(|state| state.commands.as_slice()).unwrap_or_default() {
        // Queued commands passed lookup when they were queued.
        let row = server.commands.lookup(argv).ok()?;
        match row.access {
            Access::None => {}
            Access::Keys => keys.extend(row.keys(argv)?.into_iter().map(Bytes::copy_from_slice)),
            Access::All | Access::Walk | Access::Queued => return None,
        }
    }
    Some(keys)
}

/// `EXEC`: runs the queued commands atomically, in the one transaction
/// the command path opened over their keys; the array of their replies,
/// or a nil array when a watched key changed.
fn exec(ctx: &mut Ctx, _argv: &[Bytes]) -> CmdResult {
    let (server, client, tx) = ctx.parts();
    let Some(state) = end_multi(client) else {
        return Err(CmdError::err("EXEC without MULTI"));
    };
    if state.failed {
        unwatch_all(server, client);
        return Err(CmdError::Custom("EXECABORT Transaction discarded because of previous errors.".into()));
    }
    // The watched keys are locked now: none can change any more.
    let mut dirty = client.shared.dirty_cas.load(Ordering::Relaxed);
    for (db, key) in &client.watched {
        if dirty {
            break;
        }
        tx.use_database(*db);
        dirty = tx.has_expired(key)?;
    }
    // The transaction's own writes must not touch its watches.
    unwatch_all(server, client);
    if dirty {
        return Ok(Reply::NilArray);
    }
    if let Some(replies) = super::cluster::exec_as_one_entry(server, &state.commands) {
        return Ok(replies);
    }
    client.in_exec = true;
    let replies = state.commands.iter().map(|argv| super::execute(server, client, argv, Some(&mut *tx))).collect();
    client.in_exec = false;
    Ok(Reply::Array(replies))
}

/// `WATCH key [key ...]`: two transactions of its own (its row has no
/// `Access`), so that deleting what has expired commits before the watches
/// exist and does not mark them.
fn watch(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    let (server, client) = (ctx.server, &mut *ctx.client);
    if client.multi.is_some() {
        return Err(CmdError::err("WATCH inside MULTI is not allowed"));
    }
    let db = client.db;
    let keys: Vec<&[u8]> = argv[1..].iter().map(|key| key.as_ref()).collect();
    let locking = Locking::Keys { keys: &keys, shared: false };
    // Delete what has expired first, so that a watched key that expires
    // later was alive when watched (Redis fails EXEC for those only).
    server.keyspace.transact(db, locking, |tx| keys.iter().try_for_each(|key| tx.meta(key).map(drop)))?;
    // Registered under the keys' locks: a change after this touches them.
    server.keyspace.transact(db, locking, |_| {
        for key in &argv[1..] {
            if !client.watched.iter().any(|(d, k)| *d == db && k == key) {
                server.keyspace.watches.watch(&client.shared, db, key.clone());
                client.watched.push((db, key.clone()));
            }
        }
        Ok(())
    })?;
    Ok(Reply::ok())
}

/// `UNWATCH`
fn unwatch(ctx: &mut Ctx, _argv: &[Bytes]) -> CmdResult {
    unwatch_all(ctx.server, ctx.client);
    Ok(Reply::ok())
}

#[cfg(test)]
mod tests {
    use super::super::testing::TestServer;
    use crate::protocol::Reply;

    fn status(text: &'static str) -> Reply {
        Reply::Status(text)
    }

    #[test]
    fn exec_over_a_list_and_a_string_is_one_commit() {
        let mut t = TestServer::new();
        assert_eq!(t.run(&[b"MULTI"]), Reply::ok());
        assert_eq!(t.run(&[b"RPUSH", b"list", b"a", b"b"]), status("QUEUED"));
        assert_eq!(t.run(&[b"SET", b"str", b"v"]), status("QUEUED"));
        assert_eq!(t.run(&[b"LPOP", b"list"]), status("QUEUED"));
        assert_eq!(t.run(&[b"INCR", b"str"]), status("QUEUED"));
        let records_before = t.server.keyspace.record_tap.lock().as_ref().map_or(0, Vec::len);
        let batches_before = t.server.keyspace.store.engine.batches_written();
        let reply = t.run(&[b"EXEC"]);
        assert_eq!(
            reply,
            Reply::Array(vec![
                Reply::Integer(2),
                Reply::ok(),
                Reply::Bulk(bytes::Bytes::from_static(b"a")),
                Reply::Error("ERR value is not an integer or out of range".into()),
            ])
        );
        assert_eq!(t.server.keyspace.store.engine.batches_written(), batches_before + 1);
        let records_after = t.server.keyspace.record_tap.lock().as_ref().map_or(0, Vec::len);
        assert_eq!(records_after - records_before, 2, "RPUSH and LPOP records");
        t.assert_replay_matches();
        assert_eq!(t.run(&[b"GET", b"str"]), Reply::Bulk(bytes::Bytes::from_static(b"v")));
        assert_eq!(t.run(&[b"LRANGE", b"list", b"0", b"-1"]), Reply::Array(vec![Reply::bulk_str("b")]));
    }

    #[test]
    fn watch_sees_hash_field_writes_and_ignores_no_ops() {
        let mut t = TestServer::new();
        t.run(&[b"HSET", b"h", b"f", b"1"]);
        t.run(&[b"WATCH", b"h"]);
        t.run(&[b"HDEL", b"h", b"missing"]);
        t.run(&[b"MULTI"]);
        assert_eq!(t.run(&[b"EXEC"]), Reply::Array(vec![]));
        t.run(&[b"WATCH", b"h"]);
        t.run(&[b"HINCRBY", b"h", b"f", b"1"]);
        t.run(&[b"MULTI"]);
        assert_eq!(t.run(&[b"EXEC"]), Reply::NilArray);
    }
}
