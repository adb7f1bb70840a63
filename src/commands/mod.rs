//! The command table: one row per command, built from Redis's own command
//! metadata (`redis-commands.json`, dumped from redis-server 7.0 by
//! `redis-tests/tools/dump_command_meta.py`) plus the handler each family
//! registers. It drives dispatch, arity and unknown-command errors, the
//! COMMAND command, and key positions (later: cluster slot checks).

pub mod args;
mod cluster;
mod command;
mod connection;
mod database;
mod dump;
mod hash;
mod keyspace;
mod list;
pub mod migrate;
pub(crate) mod multi;
mod persistence;
mod pubsub;
mod replication;
mod server;
mod set;
pub(crate) mod snapshot;
mod stream;
mod string;
mod zset;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use bytes::Bytes;
use serde_json::Value;

use crate::client::Client;
use crate::error::{CmdError, CmdResult};
use crate::keyspace::{Locking, Tx};
use crate::protocol::Reply;
use crate::server::Server;
use args::c_text;
use smallvec::SmallVec;
pub use snapshot::snapshots_dir;

/// A command handler: parses its arguments into typed values, then executes.
pub type Handler = fn(&mut Ctx, &[Bytes]) -> CmdResult;

/// What a handler may touch: the server, the calling client, and the
/// transaction the command path opened over the command's keys.
pub struct Ctx<'a, 's> {
    pub server: &'a Server,
    pub client: &'a mut Client,
    tx: Option<&'a mut Tx<'s>>,
}

impl<'a, 's> Ctx<'a, 's> {
    /// The command's transaction. Every command that touches the keyspace
    /// has one (its row's `Access` says so).
    pub fn tx(&mut self) -> &mut Tx<'s> {
        self.tx.as_deref_mut().expect("the command table gives this command no transaction")
    }

    /// Counts a read of `key` as a keyspace hit or miss (INFO stats), and
    /// reports a miss as Redis's `keymiss` event.
    pub fn hit(&self, key: &[u8], found: bool) {
        self.server.stats.hit(found);
        if !found {
            let db = self.client.db;
            let event = crate::notify::KeyEvent {
                class: crate::notify::KEY_MISS,
                event: "keymiss",
                db,
                key: Bytes::copy_from_slice(key),
            };
            self.server.keyspace.publish_events(&[event]);
        }
    }

    /// Runs `body` in the command's transaction.
    pub fn run<R>(&mut self, body: impl FnOnce(&mut Tx<'s>) -> Result<R, CmdError>) -> Result<R, CmdError> {
        body(self.tx())
    }

    /// The server, the client and the transaction at once, for handlers
    /// that block the client or change its state inside the transaction.
    pub fn parts(&mut self) -> (&'a Server, &mut Client, &mut Tx<'s>) {
        let tx = self.tx.as_deref_mut().expect("the command table gives this command no transaction");
        (self.server, &mut *self.client, tx)
    }
}

/// How the command path sets up a command's transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// The command touches no key: no transaction (PING, CONFIG ...).
    None,
    /// The keys its key specs name, locked; shared by commands that only
    /// read (and do not block).
    Keys,
    /// Every shard, exclusive: commands that change a whole database.
    All,
    /// No lock up front: the command walks the keyspace shard by shard
    /// (SCAN, KEYS, RANDOMKEY, DBSIZE, INFO).
    Walk,
    /// EXEC: the keys of its queued commands and of the client's WATCH.
    Queued,
}

/// The commands that reach beyond their keys, and how.
fn access_of(name: &str, keys: bool) -> Access {
    match name {
        "flushdb" | "flushall" | "swapdb" => Access::All,
        "scan" | "keys" | "randomkey" | "dbsize" | "info" | "cluster|getkeysinslot" => Access::Walk,
        "exec" => Access::Queued,
        // Two transactions of its own (see `multi::watch`).
        "watch" => Access::None,
        // Their channel is a key for cluster routing only.
        "ssubscribe" | "sunsubscribe" | "spublish" => Access::None,
        _ if keys => Access::Keys,
        _ => Access::None,
    }
}

/// Per-command counters for INFO commandstats.
#[derive(Default)]
pub struct CommandStats {
    pub calls: AtomicU64,
    pub usec: AtomicU64,
    pub rejected_calls: AtomicU64,
    pub failed_calls: AtomicU64,
}

/// One row of the table.
pub struct Command {
    /// Full lower-case name: `get`, or `config|get` for a subcommand.
    pub name: String,
    /// Redis's convention: N exactly, or -N for at least N (name included).
    pub arity: i64,
    pub flags: Vec<String>,
    /// The flags every call checks, looked up once.
    write: bool,
    denyoom: bool,
    no_auth: bool,
    no_multi: bool,
    /// Runs on a replica whose link is down under
    /// `replica-serve-stale-data no`.
    stale: bool,
    pub first_key: i64,
    pub last_key: i64,
    pub step: i64,
    /// Its keys move with its arguments (numkeys, STREAMS ...): found from
    /// the key specs per call rather than first/last/step.
    movable_keys: bool,
    /// Whether a shared lock is enough (read-only, non-blocking commands).
    shared: bool,
    pub access: Access,
    pub acl_categories: Vec<String>,
    pub handler: Option<Handler>,
    /// Subcommands of a container command (CONFIG, CLIENT, OBJECT ...).
    pub subcommands: HashMap<String, Command>,
    /// Redis's COMMAND INFO row and COMMAND DOCS entry for this command.
    pub info: &'static Value,
    pub docs: &'static Value,
    pub stats: CommandStats,
}

impl Command {
    pub fn has_flag(&self, flag: &str) -> bool {
        self.flags.iter().any(|f| f == flag)
    }

    pub fn is_write(&self) -> bool {
        self.write
    }

    /// Whether the client's argument count fits the arity.
    fn arity_ok(&self, argc: usize) -> bool {
        let argc = argc as i64;
        if self.arity >= 0 {
            argc == self.arity
        } else {
            argc >= -self.arity
        }
    }

    /// The key arguments of a call: from first/last/step, or for commands
    /// whose keys move with their arguments from the key specs (as COMMAND
    /// GETKEYS finds them). None when the specs cannot place them in these
    /// arguments (a malformed call, which the handler refuses).
    pub fn keys<'a>(&self, argv: &'a [Bytes]) -> Option<SmallVec<[&'a [u8]; 4]>> {
        if self.movable_keys {
            let positions = command::movable_key_positions(self, argv)?;
            return Some(positions.into_iter().map(|p| argv[p].as_ref()).collect());
        }
        if self.first_key <= 0 || self.step <= 0 {
            return Some(SmallVec::new());
        }
        if self.first_key == self.last_key {
            // Most commands: one key, at a position the arity guarantees.
            return Some(SmallVec::from_buf_and_len([argv[self.first_key as usize].as_ref(); 4], 1));
        }
        let argc = argv.len() as i64;
        let last = if self.last_key < 0 { argc + self.last_key } else { self.last_key };
        Some(
            (self.first_key..=last.min(argc - 1))
                .step_by(self.step as usize)
                .map(|p| argv[p as usize].as_ref())
                .collect(),
        )
    }
}

/// Redis 7.0's metadata for every command, parsed once.
fn redis_meta() -> &'static Value {
    static META: OnceLock<Value> = OnceLock::new();
    META.get_or_init(|| {
        serde_json::from_str(include_str!("redis-commands.json")).expect("redis-commands.json is valid JSON")
    })
}

fn strings(value: &Value) -> Vec<String> {
    value.as_array().map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect()).unwrap_or_default()
}

fn row_from_info(info: &'static Value, docs: &'static Value) -> Command {
    let int = |i: usize| info[i].as_i64().unwrap_or(0);
    let flags = strings(&info[2]);
    let has = |flag: &str| flags.iter().any(|f| f == flag);
    let name = info[0].as_str().unwrap_or_default().to_string();
    let specs = info[8].as_array().map(Vec::as_slice).unwrap_or_default();
    let has_keys = has("movablekeys")
        || specs.iter().any(|spec| !strings(&spec["flags"]).iter().any(|f| f == "not_key"))
        || int(3) > 0;
    let mut subcommands = HashMap::new();
    if let Some(subs) = info[9].as_array() {
        for sub in subs {
            let name = sub[0].as_str().unwrap_or_default();
            let sub_docs = &docs["subcommands"][name];
            let short = name.split_once('|').map_or(name, |(_, s)| s).to_string();
            subcommands.insert(short, row_from_info(sub, sub_docs));
        }
    }
    Command {
        access: access_of(&name, has_keys),
        name,
        arity: int(1),
        write: has("write"),
        denyoom: has("denyoom"),
        no_auth: has("no_auth"),
        no_multi: has("no_multi"),
        stale: has("stale"),
        movable_keys: has("movablekeys"),
        shared: has("readonly") && !has("blocking"),
        flags,
        first_key: int(3),
        last_key: int(4),
        step: int(5),
        acl_categories: strings(&info[6]),
        handler: None,
        subcommands,
        info,
        docs,
        stats: CommandStats::default(),
    }
}

/// Every command Strata serves.
pub struct CommandTable {
    /// Looked up once per request: hashed with foldhash, which costs a
    /// fraction of the default SipHash on short names.
    commands: HashMap<String, Command, foldhash::fast::RandomState>,
}

impl CommandTable {
    /// The table with every family registered. A family that registers a
    /// name Redis does not have is a bug and aborts startup.
    pub fn new() -> CommandTable {
        let mut table = CommandTable { commands: HashMap::default() };
        connection::register(&mut table);
        database::register(&mut table);
        server::register(&mut table);
        command::register(&mut table);
        string::register(&mut table);
        hash::register(&mut table);
        keyspace::register(&mut table);
        list::register(&mut table);
        set::register(&mut table);
        zset::register(&mut table);
        stream::register(&mut table);
        persistence::register(&mut table);
        snapshot::register(&mut table);
        multi::register(&mut table);
        pubsub::register(&mut table);
        replication::register(&mut table);
        dump::register(&mut table);
        migrate::register(&mut table);
        cluster::register(&mut table);
        table.check();
        table
    }

    /// Binds a handler to a command (`get`) or subcommand (`config|get`).
    pub fn register(&mut self, name: &str, handler: Handler) {
        let meta = redis_meta();
        let (base, sub) = match name.split_once('|') {
            Some((b, s)) => (b, Some(s)),
            None => (name, None),
        };
        let entry = &meta["commands"][base];
        assert!(entry.is_object(), "'{base}' is not a Redis command");
        let row =
            self.commands.entry(base.to_string()).or_insert_with(|| row_from_info(&entry["info"], &entry["docs"]));
        match sub {
            None => row.handler = Some(handler),
            Some(sub) => {
                let sub_row =
                    row.subcommands.get_mut(sub).unwrap_or_else(|| panic!("'{name}' is not a Redis subcommand"));
                sub_row.handler = Some(handler);
            }
        }
    }

    /// Adds one of Strata's own commands, which Redis's metadata does not
    /// have: `info` is its COMMAND INFO row in Redis's layout (name, arity,
    /// flags, first key, last key, step, ACL categories, tips, key specs,
    /// subcommands) and `docs` its COMMAND DOCS entry. The key specs are
    /// what the command path locks, so a row whose specs it cannot read
    /// aborts startup.
    pub fn register_own(&mut self, info: &'static Value, docs: &'static Value, handler: Handler) {
        let mut row = row_from_info(info, docs);
        let name = row.name.clone();
        assert!(!name.is_empty() && name == name.to_ascii_lowercase(), "'{name}': a row's name is lower case");
        assert!(redis_meta()["commands"][name.as_str()].is_null(), "'{name}' is a Redis command");
        assert!(!self.commands.contains_key(&name), "'{name}' is registered twice");
        for spec in info[8].as_array().into_iter().flatten() {
            let begin = spec["begin_search"]["type"].as_str();
            let find = spec["find_keys"]["type"].as_str();
            assert!(
                matches!(begin, Some("index" | "keyword")) && matches!(find, Some("range" | "keynum")),
                "'{name}' has a key spec the command path cannot read: {spec}"
            );
        }
        row.handler = Some(handler);
        self.commands.insert(name, row);
    }

    /// Startup check: every row has a handler or (for containers) at least
    /// one subcommand with one; subcommands without handlers are dropped so
    /// COMMAND never advertises what Strata does not serve.
    fn check(&mut self) {
        for row in self.commands.values_mut() {
            row.subcommands.retain(|_, sub| sub.handler.is_some());
            assert!(
                row.handler.is_some() || !row.subcommands.is_empty(),
                "command '{}' registered without a handler",
                row.name
            );
            assert!(row.arity != 0, "command '{}' has arity 0", row.name);
        }
    }

    pub fn get(&self, name: &str) -> Option<&Command> {
        self.commands.get(name)
    }

    /// The served commands, in no particular order (as Redis's COMMAND).
    pub fn iter(&self) -> impl Iterator<Item = &Command> {
        self.commands.values()
    }

    pub fn len(&self) -> usize {
        self.commands.len()
    }

    pub fn is_empty(&self) -> bool {
        self.commands.is_empty()
    }

    /// Finds the row for a request, with Redis's errors for unknown
    /// commands, unknown subcommands and wrong arity.
    pub fn lookup(&self, argv: &[Bytes]) -> Result<&Command, CmdError> {
        // Lower-cased on the stack: every command name fits.
        let mut lower = [0u8; 32];
        let name = argv[0].get(..).filter(|n| n.len() <= lower.len()).and_then(|n| {
            lower[..n.len()].copy_from_slice(n);
            lower[..n.len()].make_ascii_lowercase();
            std::str::from_utf8(&lower[..n.len()]).ok()
        });
        let Some(row) = name.and_then(|name| self.commands.get(name)) else {
            return Err(unknown_command(argv));
        };
        let row = if !row.subcommands.is_empty() && argv.len() >= 2 {
            let sub = String::from_utf8_lossy(&argv[1]).to_ascii_lowercase();
            match row.subcommands.get(&sub) {
                Some(sub_row) => sub_row,
                None => {
                    return Err(CmdError::err(sanitize(&format!(
                        "unknown subcommand '{}'. Try {} HELP.",
                        truncate(&c_text(&argv[1]), 128),
                        row.name.to_ascii_uppercase()
                    ))))
                }
            }
        } else {
            row
        };
        if !row.arity_ok(argv.len()) {
            return Err(CmdError::WrongArity(row.name.clone()));
        }
        Ok(row)
    }
}

impl Default for CommandTable {
    fn default() -> Self {
        CommandTable::new()
    }
}

/// At most `max` bytes of `text` (Redis's `%.<max>s`).
fn truncate(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Redis replaces CR and LF in error texts with spaces.
fn sanitize(text: &str) -> String {
    text.replace(['\r', '\n'], " ")
}

/// `ERR unknown command 'foo', with args beginning with: 'a' 'b' `, exactly
/// as Redis 7 builds it (each argument cut so the list stays near 128 bytes).
fn unknown_command(argv: &[Bytes]) -> CmdError {
    let mut args = String::new();
    for arg in &argv[1..] {
        if args.len() >= 128 {
            break;
        }
        let room = 128 - args.len();
        args.push_str(&format!("'{}' ", truncate(&c_text(arg), room)));
    }
    CmdError::err(sanitize(&format!(
        "unknown command '{}', with args beginning with: {}",
        truncate(&c_text(&argv[0]), 128),
        args
    )))
}

/// Runs one command for a client, then serves clients it unblocked.
pub fn dispatch(server: &Server, client: &mut Client, argv: &[Bytes]) -> crate::protocol::Reply {
    let asked = client.asking;
    let reply = execute(server, client, argv, None);
    // ASKING lasts one command, or until EXEC ends the MULTI it began in.
    if asked && client.multi.is_none() && !argv.first().is_some_and(|name| name.eq_ignore_ascii_case(b"asking")) {
        client.asking = false;
    }
    serve_blocked(server);
    reply
}

/// Serves clients blocked on keys that the last command gave data to, in
/// FIFO order per key, by running each one's command again on its behalf.
/// A served command may feed further keys (BLMOVE), which are served in turn.
fn serve_blocked(server: &Server) {
    let blocking = &server.keyspace.blocking;
    while let Some((db, key)) = blocking.next_ready() {
        for waiter in blocking.waiters(db, &key) {
            if !blocking.claim(&waiter) {
                // Served through another of its keys, timed out, or being
                // served by a writer on another thread.
                continue;
            }
            let mut stand_in = Client::new(waiter.client.clone(), true);
            stand_in.db = waiter.db;
            stand_in.resp3 = waiter.client.resp.load(Ordering::Relaxed) == 3;
            stand_in.retrying_blocked = true;
            let reply = execute(server, &mut stand_in, &waiter.argv, None);
            if stand_in.unserved {
                blocking.release(&waiter);
                if waiter.independent {
                    // A reader (XREAD) waiting for a later ID than what
                    // arrived says nothing about the readers behind it.
                    continue;
                }
                // Still nothing for the longest waiter: the others wait too.
                break;
            }
            blocking.serve(&waiter, reply);
        }
    }
}

/// Makes the client wait for data on `keys`: call it from a blocking
/// command that found nothing, inside its transaction (the keys still
/// locked, so no write slips in between). When the command is being run
/// again for a blocked client, it stays blocked instead. `timeout_reply`
/// is what the client gets if the time runs out (and what a command that
/// may not block, inside MULTI, answers at once).
pub fn block_client(
    server: &Server,
    client: &mut Client,
    argv: &[Bytes],
    keys: &[Bytes],
    timeout: Option<std::time::Duration>,
    timeout_reply: crate::protocol::Reply,
) -> crate::protocol::Reply {
    block_client_as(server, client, argv, keys, timeout, timeout_reply, false)
}

/// `block_client` for commands that read without taking (XREAD,
/// XREADGROUP): every waiter on a key that gets data has its command run
/// again, not only those up to the first that still finds nothing.
pub fn block_reader(
    server: &Server,
    client: &mut Client,
    argv: &[Bytes],
    keys: &[Bytes],
    timeout: Option<std::time::Duration>,
    timeout_reply: crate::protocol::Reply,
) -> crate::protocol::Reply {
    block_client_as(server, client, argv, keys, timeout, timeout_reply, true)
}

fn block_client_as(
    server: &Server,
    client: &mut Client,
    argv: &[Bytes],
    keys: &[Bytes],
    timeout: Option<std::time::Duration>,
    timeout_reply: crate::protocol::Reply,
    independent: bool,
) -> crate::protocol::Reply {
    if client.in_exec {
        // Redis: inside MULTI a blocking command never blocks. It answers
        // as on timeout, except the list moves, which answer a nil bulk
        // there (and a nil array on timeout).
        let moves = argv[0].eq_ignore_ascii_case(b"blmove") || argv[0].eq_ignore_ascii_case(b"brpoplpush");
        return if moves { crate::protocol::Reply::Nil } else { timeout_reply };
    }
    if client.retrying_blocked {
        client.unserved = true;
    } else {
        let call = server.keyspace.blocking.block(
            client.shared.clone(),
            client.db,
            argv,
            keys.to_vec(),
            timeout,
            timeout_reply,
            independent,
        );
        client.blocked = Some(call);
    }
    crate::protocol::Reply::NoReply
}

/// BLPOP, BRPOP, BZPOPMIN, BZPOPMAX: `key [key ...] timeout`. Pops from
/// the first key that has data (`pop_one` answers for one key, None when
/// it is empty), else blocks on all of them.
pub fn pop_first_or_block(
    ctx: &mut Ctx,
    argv: &[Bytes],
    mut pop_one: impl FnMut(&mut Tx, &Bytes) -> Result<Option<crate::protocol::Reply>, CmdError>,
) -> CmdResult {
    let timeout = crate::blocking::parse_timeout(&argv[argv.len() - 1])?;
    let keys = &argv[1..argv.len() - 1];
    let (server, client, tx) = ctx.parts();
    for key in keys {
        if let Some(reply) = pop_one(tx, key)? {
            return Ok(reply);
        }
    }
    Ok(block_client(server, client, argv, keys, timeout, Reply::NilArray))
}

/// The connection is closing: its transaction and watches go.
pub fn client_closed(server: &Server, client: &mut Client) {
    multi::forget(server, client);
    pubsub::forget(server, client);
    server.pubsub.remove_monitor(client.shared.id);
    server.pubsub.tracking.disable(&client.shared);
}

/// Runs one command: lookup, auth and memory checks, handler, stats.
/// Inside MULTI a command that passes the checks is queued instead, and
/// one that fails them fails the transaction. EXEC runs its queued
/// commands through here with its transaction (`exec`).
pub(crate) fn execute(server: &Server, client: &mut Client, argv: &[Bytes], exec: Option<&mut Tx>) -> Reply {
    let row = match server.commands.lookup(argv) {
        Ok(row) => row,
        Err(e) => {
            server.stats.record_error(&e);
            return multi::reject(server, client, argv, e);
        }
    };
    let route = match client.authenticated || row.no_auth {
        true => cluster_route(server, client, row, argv),
        false => Ok(None),
    };
    let refusal = if !client.authenticated && !row.no_auth {
        Some(CmdError::NoAuth)
    } else if client.in_pubsub_context() && !pubsub::allowed_in_context(&row.name) {
        Some(CmdError::err(format!(
            "Can't execute '{}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this \
             context",
            row.name
        )))
    } else if let Err(redirect) = &route {
        Some(redirect.clone())
    } else if client.multi.is_some() && row.no_multi {
        Some(CmdError::err("Command not allowed inside a transaction"))
    } else if row.denyoom && over_maxmemory(server) {
        Some(CmdError::Custom("OOM command not allowed when used memory > 'maxmemory'.".into()))
    } else if row.is_write() && server.keyspace.following_master.load(Ordering::Acquire) && !client.retrying_blocked {
        Some(CmdError::Custom("READONLY You can't write against a read only replica.".into()))
    } else if !row.stale
        && server.keyspace.following_master.load(Ordering::Acquire)
        && server.replication.stale_refused()
    {
        Some(CmdError::Custom(
            "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.".into(),
        ))
    } else if row.is_write() && !client.in_exec && server.replication.too_few_replicas() {
        Some(CmdError::Custom("NOREPLICAS Not enough good replicas to write.".into()))
    } else {
        disk_refusal(server, client, row)
    };
    if let Some(error) = refusal {
        row.stats.rejected_calls.fetch_add(1, Ordering::Relaxed);
        server.stats.record_error(&error);
        return multi::reject(server, client, argv, error);
    }
    // Set before the command runs, as Redis does: CLIENT LIST shows the
    // caller's own command. A command EXEC runs leaves EXEC there.
    if !client.in_exec {
        client.shared.set_last_command(row.info);
    }
    if client.multi.is_some() && !multi::runs_inside_multi(&row.name) {
        return multi::queue(client, argv);
    }
    let handler = row.handler.expect("checked at startup");
    let id = client.shared.id;
    let (result, usec) = strata_engines::clock::timed(|| {
        let run = std::panic::AssertUnwindSafe(|| match exec {
            Some(tx) => crate::tracking::running_as(id, || run_queued(server, client, handler, argv, tx)),
            None => {
                let open = route.ok().flatten();
                crate::tracking::running_as(id, || run_in_transaction(server, client, row, handler, argv, open))
            }
        });
        // A bug must not take the server down: the transaction has taken
        // the command's effects back, and the client gets an error.
        std::panic::catch_unwind(run).unwrap_or_else(|_| {
            Err(CmdError::err(format!("internal error running '{}': the command was not applied", row.name)))
        })
    });
    row.stats.calls.fetch_add(1, Ordering::Relaxed);
    row.stats.usec.fetch_add(usec, Ordering::Relaxed);
    if server.pubsub.tracking.is_active() {
        track_reads(server, client, row, argv);
    }
    // Shown to MONITOR clients after it ran (a SELECT shows its new
    // database), as Redis does; administrative commands are not shown.
    if server.pubsub.has_monitors()
        && !client.retrying_blocked
        && !row.has_flag("admin")
        && !row.has_flag("skip_monitor")
    {
        server.pubsub.feed_monitors(client.db, &client.shared.addr.to_string(), argv);
    }
    server.stats.commands_processed.fetch_add(1, Ordering::Relaxed);
    match result {
        Ok(reply) => {
            if let Reply::Error(text) = &reply {
                row.stats.failed_calls.fetch_add(1, Ordering::Relaxed);
                server.stats.record_error_text(text);
            }
            reply
        }
        Err(e) => {
            row.stats.failed_calls.fetch_add(1, Ordering::Relaxed);
            server.stats.record_error(&e);
            e.to_reply()
        }
    }
}

/// Cluster mode: whether this node serves the command's keys (Redis's
/// getNodeByQuery), with `-MOVED`, `-ASK`, `-CROSSSLOT`, `-CLUSTERDOWN`
/// or `-TRYAGAIN` when it does not. EXEC is decided over all its queued
/// commands' keys; what EXEC then runs was decided with it. A slot being
/// migrated or imported is decided again under the keys' locks
/// (`open_slot_check`), where whether the keys exist is certain.
fn cluster_route(
    server: &Server,
    client: &Client,
    row: &Command,
    argv: &[Bytes],
) -> Result<Option<crate::cluster::OpenSlot>, CmdError> {
    let Some(cluster) = server.cluster.as_ref() else { return Ok(None) };
    if client.in_exec || client.retrying_blocked {
        return Ok(None);
    }
    let (keys, write) = request_keys(server, client, row, argv);
    if keys.is_empty() {
        return Ok(None);
    }
    // A manual failover pauses this master's writes until its replica
    // has them all; they are then redirected to the new master.
    while write && cluster.writes_paused() {
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    let keys: Vec<&[u8]> = keys.iter().map(|k| k.as_ref()).collect();
    cluster.routes().check(&crate::cluster::Request {
        keys: &keys,
        write,
        asking: client.asking || row.has_flag("asking"),
        readonly: client.readonly,
        migrate: row.name == "migrate",
    })
}

/// The keys a request names and whether it writes: for EXEC, those of its
/// queued commands.
fn request_keys(server: &Server, client: &Client, row: &Command, argv: &[Bytes]) -> (Vec<Bytes>, bool) {
    let own = |row: &Command, argv: &[Bytes]| -> Vec<Bytes> {
        row.keys(argv).unwrap_or_default().into_iter().map(Bytes::copy_from_slice).collect()
    };
    if row.name != "exec" {
        return (own(row, argv), row.is_write());
    }
    let (mut keys, mut write) = (Vec::new(), false);
    for queued in client.multi.as_ref().map(|m| m.commands.as_slice()).unwrap_or_default() {
        if let Ok(queued_row) = server.commands.lookup(queued) {
            keys.extend(own(queued_row, queued));
            write |= queued_row.is_write();
        }
    }
    (keys, write)
}

/// A request for a slot this node migrates or imports runs only if the
/// keys it names are here: counted under their locks, so a MIGRATE that
/// holds them cannot move one in between.
fn open_slot_check(open: &crate::cluster::OpenSlot, keys: &[Bytes], tx: &mut Tx) -> Result<(), CmdError> {
    let mut distinct: Vec<&Bytes> = keys.iter().collect();
    distinct.sort();
    distinct.dedup();
    let mut present = 0;
    for key in &distinct {
        if tx.meta(key)?.is_some() {
            present += 1;
        }
    }
    open.settle(distinct.len() - present, present)
}

/// CLIENT TRACKING: a read-only command's keys are remembered for its
/// client (unless OPTIN without CLIENT CACHING YES before it, or OPTOUT
/// with CLIENT CACHING NO); CLIENT CACHING lasts one command (outside
/// MULTI, and a CLIENT subcommand keeps it, as in Redis).
fn track_reads(server: &Server, client: &mut Client, row: &Command, argv: &[Bytes]) {
    let tracking = &server.pubsub.tracking;
    if let Some(mode) = tracking.mode(client.shared.id).filter(|mode| !mode.bcast) {
        let wanted = !((mode.optin && !client.caching) || (mode.optout && client.caching));
        if wanted && row.has_flag("readonly") && !row.has_flag("pubsub") {
            if let Some(keys) = row.keys(argv) {
                tracking.remember(client.shared.id, &keys);
            }
        }
    }
    if client.multi.is_none() && !row.name.starts_with("client|") {
        client.caching = false;
    }
}

/// Runs a handler in a transaction of its own, which locks what the row's
/// `Access` and key specs name.
fn run_in_transaction(
    server: &Server,
    client: &mut Client,
    row: &Command,
    handler: Handler,
    argv: &[Bytes],
    open_slot: Option<crate::cluster::OpenSlot>,
) -> CmdResult {
    let keyspace = &server.keyspace;
    let db = client.db;
    // EXEC locks what its queued commands and WATCH name (None: all).
    let queued = (row.access == Access::Queued).then(|| multi::keys_to_lock(server, client));
    let open_keys = open_slot.as_ref().map(|_| request_keys(server, client, row, argv).0);
    let in_tx = |tx: &mut Tx| {
        if let (Some(open), Some(keys)) = (&open_slot, &open_keys) {
            open_slot_check(open, keys, tx)?;
        }
        handler(&mut Ctx { server, client: &mut *client, tx: Some(tx) }, argv)
    };
    match row.access {
        Access::None => handler(&mut Ctx { server, client, tx: None }, argv),
        Access::All => keyspace.transact(db, Locking::All, in_tx),
        Access::Walk => keyspace.transact(db, Locking::Walk, in_tx),
        Access::Queued => match queued.flatten() {
            Some(owned) => {
                let keys: Vec<&[u8]> = owned.iter().map(|k| k.as_ref()).collect();
                keyspace.transact(db, Locking::Keys { keys: &keys, shared: false }, in_tx)
            }
            None => keyspace.transact(db, Locking::All, in_tx),
        },
        Access::Keys => match row.keys(argv) {
            Some(keys) => keyspace.transact(db, Locking::Keys { keys: &keys, shared: row.shared }, in_tx),
            // Arguments the key specs cannot place the keys in (the
            // handler refuses them): everything locked, to be safe.
            None => keyspace.transact(db, Locking::All, in_tx),
        },
    }
}

/// Runs a command of an EXEC in EXEC's transaction, in the client's
/// current database. A failing (or panicking) command's effects are taken
/// back; the other commands' stay (Redis's rule).
fn run_queued(server: &Server, client: &mut Client, handler: Handler, argv: &[Bytes], tx: &mut Tx) -> CmdResult {
    tx.use_database(client.db);
    let savepoint = tx.savepoint();
    let run = std::panic::AssertUnwindSafe(|| handler(&mut Ctx { server, client, tx: Some(&mut *tx) }, argv));
    match std::panic::catch_unwind(run) {
        Ok(result) => {
            if matches!(result, Err(_) | Ok(Reply::Error(_))) {
                tx.rollback_to(savepoint);
            }
            result
        }
        Err(panic) => {
            tx.rollback_to(savepoint);
            std::panic::resume_unwind(panic)
        }
    }
}

/// Redis's MISCONF: while the log or RocksDB cannot be written, or the log
/// is full, commands that write are refused, and EXEC when it holds one
/// (inside MULTI the refusal fails the transaction, as in Redis). Unlike
/// Redis, PING and reads are still served. What EXEC runs, and a blocked
/// client served by another's write, passed this check already.
fn disk_refusal(server: &Server, client: &Client, row: &Command) -> Option<CmdError> {
    let refusal = server.keyspace.write_refusal()?;
    if client.in_exec || client.retrying_blocked {
        return None;
    }
    let queued_write = || {
        let queued = client.multi.as_ref().map_or(&[][..], |m| &m.commands[..]);
        queued.iter().any(|argv| server.commands.lookup(argv).is_ok_and(Command::is_write))
    };
    (row.is_write() || (row.name == "exec" && queued_write())).then_some(CmdError::Custom(refusal))
}

/// Runs commands in-process against a real server on a temp dir, for
/// handler tests that look inside the engines (op-log replay).
/// `maxmemory` with the only policy so far, noeviction: commands that may
/// grow memory are refused while the server is over the limit.
fn over_maxmemory(server: &Server) -> bool {
    let limit = server.maxmemory.load(Ordering::Relaxed);
    limit > 0 && crate::memory_usage::used_bytes() > limit
}

#[cfg(test)]
pub mod testing {
    use std::sync::Arc;

    use bytes::Bytes;

    use crate::client::Client;
    use crate::protocol::Reply;
    use crate::server::Server;

    pub struct TestServer {
        pub server: Arc<Server>,
        pub client: Client,
        _dir: tempfile::TempDir,
    }

    impl TestServer {
        /// A server whose memory records are tapped (see `Keyspace::record_tap`).
        #[allow(clippy::new_without_default)] // A test server is never defaulted.
        pub fn new() -> TestServer {
            let dir = tempfile::tempdir().expect("temp dir");
            let (server, client) = Server::open_in_process(dir.path()).expect("open server");
            *server.keyspace.record_tap.lock() = Some(Vec::new());
            TestServer { server, client, _dir: dir }
        }

        pub fn run(&mut self, args: &[&[u8]]) -> Reply {
            let argv: Vec<Bytes> = args.iter().map(|a| Bytes::copy_from_slice(a)).collect();
            super::dispatch(&self.server, &mut self.client, &argv)
        }

        /// Checks that replaying every record so far rebuilds the memory state.
        pub fn assert_replay_matches(&self) {
            let records = self.server.keyspace.record_tap.lock().clone().unwrap_or_default();
            assert_eq!(strata_engines::memory::replay(&records), self.server.keyspace.memory_image());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(words: &[&str]) -> Vec<Bytes> {
        words.iter().map(|w| Bytes::copy_from_slice(w.as_bytes())).collect()
    }

    #[test]
    fn every_row_is_consistent_with_redis_metadata() {
        let table = CommandTable::new();
        for row in table.iter() {
            let entry = &redis_meta()["commands"][row.name.as_str()]["info"];
            if entry.is_null() {
                // Strata's own rows (`register_own`) carry their own metadata.
                assert!(row.name.starts_with("snapshot."), "{} is not a Redis command", row.name);
                continue;
            }
            assert_eq!(entry[1].as_i64(), Some(row.arity), "{}", row.name);
            assert_eq!(entry[3].as_i64(), Some(row.first_key), "{}", row.name);
            for sub in row.subcommands.values() {
                assert!(sub.handler.is_some(), "{}", sub.name);
                assert!(sub.name.starts_with(&format!("{}|", row.name)));
            }
        }
    }

    #[test]
    fn unknown_and_arity_errors_match_redis() {
        let table = CommandTable::new();
        let err = |words: &[&str]| table.lookup(&argv(words)).err().unwrap().to_string();
        assert_eq!(err(&["foo", "a", "b"]), "ERR unknown command 'foo', with args beginning with: 'a' 'b' ");
        assert_eq!(err(&["foo"]), "ERR unknown command 'foo', with args beginning with: ");
        assert_eq!(err(&["get"]), "ERR wrong number of arguments for 'get' command");
        assert_eq!(err(&["select", "1", "2"]), "ERR wrong number of arguments for 'select' command");
        assert_eq!(err(&["foo", "a\r\nb"]), "ERR unknown command 'foo', with args beginning with: 'a  b' ");
        assert!(table.lookup(&argv(&["GeT", "k"])).is_ok());
    }

    #[test]
    fn keys_come_from_first_last_step_or_the_key_specs() {
        let table = CommandTable::new();
        let keys = |words: &[&str]| {
            let argv = argv(words);
            let row = table.lookup(&argv).unwrap();
            row.keys(&argv).map(|keys| keys.iter().map(|k| String::from_utf8_lossy(k).to_string()).collect::<Vec<_>>())
        };
        assert_eq!(keys(&["set", "k", "v", "ex", "5"]).unwrap(), ["k"]);
        assert_eq!(keys(&["mset", "a", "1", "b", "2"]).unwrap(), ["a", "b"]);
        assert_eq!(keys(&["blpop", "a", "b", "0"]).unwrap(), ["a", "b"]);
        assert!(keys(&["swapdb", "0", "1"]).unwrap().is_empty());
        assert!(keys(&["ping"]).unwrap().is_empty());
        assert_eq!(keys(&["zunionstore", "d", "2", "a", "b", "weights", "1", "2"]).unwrap(), ["d", "a", "b"]);
        assert_eq!(keys(&["xread", "count", "2", "streams", "s1", "s2", "0", "0"]).unwrap(), ["s1", "s2"]);
        assert_eq!(keys(&["xgroup", "create", "s", "g", "$"]).unwrap(), ["s"]);
        // More keys announced than given: the specs cannot place them.
        assert_eq!(keys(&["zunionstore", "d", "5", "a"]), None);
        let access = |name: &str| table.get(name).unwrap().access;
        assert_eq!(access("get"), Access::Keys);
        assert_eq!(access("ping"), Access::None);
        assert_eq!(access("flushall"), Access::All);
        assert_eq!(access("scan"), Access::Walk);
        assert_eq!(access("exec"), Access::Queued);
    }

    #[test]
    fn own_commands_are_rows_with_their_own_key_specs() {
        fn touch_both(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
            // Both keys were locked from the row's key spec: the Tx has them.
            let found =
                ctx.run(|tx| Ok(tx.key_type(&argv[2])?.is_some() as i64 + tx.key_type(&argv[3])?.is_some() as i64))?;
            Ok(Reply::Integer(found))
        }
        let info: &'static Value = Box::leak(Box::new(serde_json::json!([
            "strata.both", -3, ["readonly", "movablekeys"], 0, 0, 0, ["@read", "@fast"], [],
            [{"flags": ["RO", "access"], "begin_search": {"type": "index", "spec": {"index": 1}},
              "find_keys": {"type": "keynum", "spec": {"keynumidx": 0, "firstkey": 1, "keystep": 1}}}],
            []
        ])));
        let docs: &'static Value =
            Box::leak(Box::new(serde_json::json!({"summary": "Counts which of two keys exist"})));
        let mut table = CommandTable::new();
        table.register_own(info, docs, touch_both);
        let line = argv(&["STRATA.BOTH", "2", "a", "{a}b"]);
        let row = table.lookup(&line).unwrap();
        assert_eq!(row.access, Access::Keys);
        assert!(row.shared, "a read-only row reads under shared locks");
        let keys: Vec<&[u8]> = row.keys(&line).unwrap().into_vec();
        assert_eq!(keys, [&b"a"[..], b"{a}b"]);
        assert_eq!(command::movable_key_positions(row, &line), Some(vec![2, 3]));
        // And the command path runs it with both keys locked.
        let mut server = testing::TestServer::new();
        let mut served = CommandTable::new();
        served.register_own(info, docs, touch_both);
        assert_eq!(server.run(&[b"SET", b"a", b"1"]), Reply::ok());
        let handler = served.get("strata.both").unwrap();
        let reply = run_in_transaction(&server.server, &mut server.client, handler, touch_both, &line, None);
        assert_eq!(reply.unwrap(), Reply::Integer(1));
    }

    #[test]
    #[should_panic(expected = "'get' is a Redis command")]
    fn own_commands_cannot_take_a_redis_name() {
        let info: &'static Value = Box::leak(Box::new(serde_json::json!(["get", 2, [], 1, 1, 1, [], [], [], []])));
        CommandTable::new().register_own(info, Box::leak(Box::new(Value::Null)), |_, _| Ok(Reply::ok()));
    }

    /// Reads run under shared shard locks; one that finds an expired key
    /// runs again under exclusive ones and deletes it, as Redis's lazy
    /// expiry does (no cron runs in process, so only the reads delete).
    #[test]
    fn reads_delete_the_expired_keys_they_find() {
        use crate::protocol::Reply;
        let mut server = testing::TestServer::new();
        let setup: [&[&[u8]]; 5] = [
            &[b"set", b"s", b"v"],
            &[b"hset", b"h", b"f", b"v"],
            &[b"rpush", b"l", b"a"],
            &[b"sadd", b"st", b"a"],
            &[b"zadd", b"z", b"1", b"a"],
        ];
        for args in setup {
            assert!(!server.run(args).is_error());
            assert_eq!(server.run(&[b"pexpire", args[1], b"1"]), Reply::Integer(1));
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
        assert_eq!(server.run(&[b"dbsize"]), Reply::Integer(5));
        let reads: [(&[&[u8]], Reply); 5] = [
            (&[b"get", b"s"], Reply::Nil),
            (&[b"hget", b"h", b"f"], Reply::Nil),
            (&[b"lrange", b"l", b"0", b"-1"], Reply::Array(Vec::new())),
            (&[b"scard", b"st"], Reply::Integer(0)),
            (&[b"zscore", b"z", b"a"], Reply::Nil),
        ];
        for (i, (args, expected)) in reads.into_iter().enumerate() {
            assert_eq!(server.run(args), expected, "{:?}", String::from_utf8_lossy(args[0]));
            assert_eq!(server.run(&[b"dbsize"]), Reply::Integer(4 - i as i64));
        }
        server.assert_replay_matches();
    }
}
