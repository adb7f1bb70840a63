//! Per-connection state, and the registry behind CLIENT LIST / KILL / INFO.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicI64, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use parking_lot::Mutex;
use serde_json::Value;

use indexmap::IndexSet;

use crate::config::ClientClass;
use crate::pubsub::{Kind, Subscriber};

/// What other connections may see of a client (CLIENT LIST) or do to it
/// (CLIENT KILL).
pub struct ClientShared {
    pub id: u64,
    pub addr: SocketAddr,
    pub local_addr: SocketAddr,
    pub created: Instant,
    pub name: Mutex<String>,
    pub db: AtomicU64,
    pub last_active_ms: AtomicU64,
    /// The running or last command's row in Redis's command table (its
    /// name first), null before the first: CLIENT LIST's `cmd`.
    last_command: AtomicPtr<Value>,
    pub resp: AtomicU64,
    pub lib_name: Mutex<String>,
    pub lib_ver: Mutex<String>,
    /// Set by CLIENT KILL; the connection closes before its next command.
    pub killed: AtomicBool,
    pub kill_notify: tokio::sync::Notify,
    /// Commands queued since MULTI, -1 outside MULTI (CLIENT LIST `multi=`).
    pub multi: AtomicI64,
    /// A watched key changed since WATCH: EXEC will fail (Redis's
    /// CLIENT_DIRTY_CAS). Set by whichever client made the change.
    pub dirty_cas: AtomicBool,
    /// The socket's file descriptor (CLIENT LIST `fd`), -1 without one.
    pub fd: AtomicI32,
    /// The connection's buffers as it last published them.
    pub buffers: BufferSizes,
    /// Pub/sub messages on their way to the connection.
    pub mailbox: Arc<crate::pubsub::Mailbox>,
    /// Channels, patterns and shard channels subscribed (CLIENT LIST's
    /// `sub`, `psub`, `ssub`).
    pub subscribed: [AtomicUsize; 3],
    /// A MONITOR client (CLIENT LIST's flag `O`).
    pub monitoring: AtomicBool,
    /// A replica's link (flag `S`).
    pub replica_link: AtomicBool,
    /// CLIENT TRACKING as CLIENT LIST shows it.
    pub tracking: crate::tracking::Shown,
}

/// A connection's buffers, published for CLIENT LIST by the connection
/// that owns them (Redis's meanings).
#[derive(Default)]
pub struct BufferSizes {
    /// Bytes read and not yet run (`qbuf`).
    pub query: AtomicUsize,
    /// Room left in the read buffer (`qbuf-free`).
    pub query_free: AtomicUsize,
    /// Bytes of the running command's arguments, or of those read so far of
    /// an incomplete request (`argv-mem`).
    pub args: AtomicUsize,
    /// Bytes in the reply buffer (`obl`).
    pub reply_buffer: AtomicUsize,
    /// Blocks and replies in the reply list (`oll`).
    pub reply_list: AtomicUsize,
    /// Memory of the reply list (`omem`).
    pub reply_list_bytes: AtomicUsize,
    /// Everything the connection holds (`tot-mem`).
    pub total: AtomicUsize,
}

impl ClientShared {
    /// Records the command being run (CLIENT LIST's `cmd`), by its row in
    /// Redis's command table (`Command::info`): a store per command.
    pub fn set_last_command(&self, info: &'static Value) {
        self.last_command.store(std::ptr::from_ref(info).cast_mut(), Ordering::Relaxed);
    }

    /// The name of the command running or last run ("NULL" before any, as
    /// Redis shows).
    pub fn last_command(&self) -> &'static str {
        // SAFETY: only `set_last_command` stores here, and it stores a
        // reference that lives for the whole program.
        let info: Option<&'static Value> = unsafe { self.last_command.load(Ordering::Relaxed).as_ref() };
        info.and_then(|info| info[0].as_str()).unwrap_or("NULL")
    }

    pub fn kill(&self) {
        self.killed.store(true, Ordering::Relaxed);
        self.kill_notify.notify_one();
    }

    /// One CLIENT LIST line, with Redis 7.0's fields.
    pub fn info_line(&self, now: Instant, started: Instant) -> String {
        let age = now.duration_since(self.created).as_secs();
        let active = self.last_active_ms.load(Ordering::Relaxed);
        let idle = (now.duration_since(started).as_millis() as u64).saturating_sub(active) / 1000;
        let multi = self.multi.load(Ordering::Relaxed);
        // Redis's flag letters, in Redis's order.
        let mut flags = String::new();
        if self.monitoring.load(Ordering::Relaxed) {
            flags.push('O');
        } else if self.replica_link.load(Ordering::Relaxed) {
            flags.push('S');
        }
        let [sub, psub, ssub] = self.subscribed.each_ref().map(|count| count.load(Ordering::Relaxed));
        if sub + psub + ssub > 0 {
            flags.push('P');
        }
        if multi >= 0 {
            flags.push('x');
        }
        let tracking = &self.tracking;
        for (shown, letter) in [(&tracking.on, 't'), (&tracking.broken, 'R'), (&tracking.bcast, 'B')] {
            if shown.load(Ordering::Relaxed) {
                flags.push(letter);
            }
        }
        if self.dirty_cas.load(Ordering::Relaxed) {
            flags.push('d');
        }
        if flags.is_empty() {
            flags.push('N');
        }
        let buffers = &self.buffers;
        let load = |size: &AtomicUsize| size.load(Ordering::Relaxed);
        let (obl, oll) = (load(&buffers.reply_buffer), load(&buffers.reply_list));
        // Redis watches for writability only while replies wait.
        let events = if obl + oll > 0 { "rw" } else { "r" };
        format!(
            "id={} addr={} laddr={} fd={} name={} age={} idle={} flags={} db={} sub={} psub={} ssub={} multi={} qbuf={} qbuf-free={} argv-mem={} multi-mem=0 rbs=1024 rbp=0 obl={} oll={} omem={} tot-mem={} events={} cmd={} user=default redir={} resp={}",
            self.id,
            self.addr,
            self.local_addr,
            self.fd.load(Ordering::Relaxed),
            self.name.lock(),
            age,
            idle,
            flags,
            self.db.load(Ordering::Relaxed),
            sub,
            psub,
            ssub,
            multi,
            load(&buffers.query),
            load(&buffers.query_free),
            load(&buffers.args),
            obl,
            oll,
            load(&buffers.reply_list_bytes),
            load(&buffers.total),
            events,
            self.last_command(),
            self.tracking.redirect_field(),
            self.resp.load(Ordering::Relaxed),
        )
    }
}

/// Every connected client by id.
#[derive(Default)]
pub struct ClientRegistry {
    next_id: AtomicU64,
    clients: Mutex<BTreeMap<u64, Arc<ClientShared>>>,
}

impl ClientRegistry {
    pub fn add(&self, addr: SocketAddr, local_addr: SocketAddr) -> Arc<ClientShared> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let shared = Arc::new(ClientShared {
            id,
            addr,
            local_addr,
            created: Instant::now(),
            name: Mutex::new(String::new()),
            db: AtomicU64::new(0),
            last_active_ms: AtomicU64::new(0),
            last_command: AtomicPtr::new(std::ptr::null_mut()),
            resp: AtomicU64::new(2),
            lib_name: Mutex::new(String::new()),
            lib_ver: Mutex::new(String::new()),
            killed: AtomicBool::new(false),
            kill_notify: tokio::sync::Notify::new(),
            multi: AtomicI64::new(-1),
            dirty_cas: AtomicBool::new(false),
            fd: AtomicI32::new(-1),
            buffers: BufferSizes::default(),
            mailbox: Arc::default(),
            subscribed: Default::default(),
            monitoring: AtomicBool::new(false),
            replica_link: AtomicBool::new(false),
            tracking: Default::default(),
        });
        self.clients.lock().insert(id, shared.clone());
        shared
    }

    pub fn remove(&self, id: u64) {
        self.clients.lock().remove(&id);
    }

    pub fn len(&self) -> usize {
        self.clients.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn all(&self) -> Vec<Arc<ClientShared>> {
        self.clients.lock().values().cloned().collect()
    }

    pub fn get(&self, id: u64) -> Option<Arc<ClientShared>> {
        self.clients.lock().get(&id).cloned()
    }
}

/// A connection's own state, owned by its task and lent to handlers.
pub struct Client {
    pub shared: Arc<ClientShared>,
    /// The selected logical database.
    pub db: usize,
    pub resp3: bool,
    pub authenticated: bool,
    /// Close the connection once this reply is written (QUIT, protocol errors).
    pub close_after_reply: bool,
    /// Set by a blocking command that found nothing: the connection waits.
    pub blocked: Option<crate::blocking::BlockedCall>,
    /// This is a blocked client's command being run again on its behalf;
    /// it must not block again (`unserved` says it found nothing again).
    pub retrying_blocked: bool,
    pub unserved: bool,
    /// The commands queued since MULTI; None outside MULTI.
    pub multi: Option<crate::commands::multi::MultiState>,
    /// The keys this client WATCHes, with their logical databases.
    pub watched: Vec<(usize, Bytes)>,
    /// EXEC is running this client's queued commands: blocking commands
    /// answer at once instead of blocking.
    pub in_exec: bool,
    /// Which `client-output-buffer-limit` applies: Normal until pub/sub or
    /// replication make a client something else.
    pub class: ClientClass,
    pub subscriptions: Subscriptions,
    /// CLIENT REPLY: OFF, SKIP in force for the command being run, and
    /// SKIP asked for the next one.
    pub reply_off: bool,
    pub reply_skip: bool,
    pub reply_skip_next: bool,
    /// CLIENT CACHING was given for the next command (OPTIN/OPTOUT).
    pub caching: bool,
    /// What a replica said of itself with REPLCONF before PSYNC.
    pub replica_port: u16,
    pub replica_address: Option<String>,
    pub replica_capabilities: Vec<String>,
    /// Set by PSYNC and SYNC: the connection becomes a replica's link.
    pub handoff: Option<crate::replication::master::SyncRequest>,
    /// ASKING came before the command being run (cluster mode): it may
    /// use a slot this node imports. Lasts one command.
    pub asking: bool,
    /// READONLY (cluster mode): a replica serves reads of its master's
    /// slots to this client.
    pub readonly: bool,
}

/// A client's pub/sub subscriptions, in the order it made them.
#[derive(Default)]
pub struct Subscriptions {
    pub channels: IndexSet<Bytes>,
    pub patterns: IndexSet<Bytes>,
    pub shard_channels: IndexSet<Bytes>,
}

impl Subscriptions {
    pub fn of_mut(&mut self, kind: Kind) -> &mut IndexSet<Bytes> {
        match kind {
            Kind::Channel => &mut self.channels,
            Kind::Pattern => &mut self.patterns,
            Kind::Shard => &mut self.shard_channels,
        }
    }

    /// The count a (un)subscription's reply shows: channels and patterns
    /// together, shard channels apart (Redis's).
    pub fn count(&self, kind: Kind) -> usize {
        match kind {
            Kind::Channel | Kind::Pattern => self.channels.len() + self.patterns.len(),
            Kind::Shard => self.shard_channels.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.channels.is_empty() && self.patterns.is_empty() && self.shard_channels.is_empty()
    }
}

impl Client {
    pub fn new(shared: Arc<ClientShared>, authenticated: bool) -> Client {
        Client {
            shared,
            db: 0,
            resp3: false,
            authenticated,
            close_after_reply: false,
            blocked: None,
            retrying_blocked: false,
            unserved: false,
            multi: None,
            watched: Vec::new(),
            in_exec: false,
            class: ClientClass::Normal,
            subscriptions: Subscriptions::default(),
            reply_off: false,
            reply_skip: false,
            reply_skip_next: false,
            caching: false,
            replica_port: 0,
            replica_address: None,
            replica_capabilities: Vec::new(),
            handoff: None,
            asking: false,
            readonly: false,
        }
    }

    /// After a command: whether its reply goes out (CLIENT REPLY), and the
    /// SKIP asked by this command taking effect for the next.
    pub fn reply_wanted(&mut self) -> bool {
        let wanted = !self.reply_off && !self.reply_skip;
        self.reply_skip = std::mem::take(&mut self.reply_skip_next);
        wanted
    }

    /// Where publishers reach this client.
    pub fn subscriber(&self) -> Subscriber {
        let shared = self.shared.clone();
        Subscriber { id: self.shared.id, mailbox: self.shared.mailbox.clone(), kill: Arc::new(move || shared.kill()) }
    }

    /// After (un)subscribing: CLIENT LIST's counts, and the output limit
    /// class (`pubsub` while subscribed to anything, as Redis's
    /// CLIENT_PUBSUB).
    pub fn subscriptions_changed(&mut self) {
        let subs = &self.subscriptions;
        let counts = [subs.channels.len(), subs.patterns.len(), subs.shard_channels.len()];
        for (shown, count) in self.shared.subscribed.iter().zip(counts) {
            shown.store(count, Ordering::Relaxed);
        }
        self.class = match subs.is_empty() {
            true => ClientClass::Normal,
            false => ClientClass::Pubsub,
        };
    }

    /// Whether a RESP2 connection may only subscribe, unsubscribe, PING,
    /// QUIT and RESET (Redis's CLIENT_PUBSUB context).
    pub fn in_pubsub_context(&self) -> bool {
        !self.resp3 && !self.subscriptions.is_empty()
    }

    pub fn select(&mut self, db: usize) {
        self.db = db;
        self.shared.db.store(db as u64, Ordering::Relaxed);
    }

    pub fn set_resp3(&mut self, resp3: bool) {
        self.resp3 = resp3;
        self.shared.resp.store(if resp3 { 3 } else { 2 }, Ordering::Relaxed);
    }
}
