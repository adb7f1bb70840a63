//! One client connection: read requests, run them in order, send their
//! replies as the socket takes them. Protocol only; commands run in
//! `commands::dispatch`.

use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::futures::Notified;

use crate::blocking::{BlockedCall, Wake};
use crate::client::{Client, ClientShared};
use crate::commands::dispatch;
use crate::config::SessionSettings;
use crate::keyspace::last_commit_on_thread;
use crate::protocol::{OutputBuffer, OutputMark, ParseOutcome, Reply, ReplyEncoder, RequestLimits, RequestParser};
use crate::server::Server;

const READ_CHUNK: usize = 16 * 1024;

/// Replies waiting for a client above which its requests are neither read
/// nor run until the socket takes them. Redis puts no limit on a normal
/// client's output by default: one that pipelines `GET big` and never
/// reads would make the server hold any amount.
const BACKPRESSURE_BYTES: usize = 64 * 1024 * 1024;

/// How often a connection looks at `timeout` (which CONFIG SET may change)
/// and at how long its client has been idle, as Redis's clientsCron visits
/// each client about once a second.
const IDLE_CHECK: Duration = Duration::from_secs(1);

/// Serves one client; `input` holds bytes already read from it (requests
/// that arrived while the server was loading).
pub async fn serve(server: Arc<Server>, socket: TcpStream, addr: SocketAddr, input: BytesMut) {
    let local = socket.local_addr().unwrap_or(addr);
    let shared = server.clients.add(addr, local);
    shared.fd.store(socket.as_raw_fd(), Ordering::Relaxed);
    let authenticated = server.config.read().requirepass().is_none();
    let mut client = Client::new(shared.clone(), authenticated);
    let handoff = match session(&server, socket, &mut client, input).await {
        Ok(handoff) => handoff,
        Err(e) => {
            tracing::debug!(client = client.shared.id, error = %e, "connection closed");
            None
        }
    };
    crate::commands::client_closed(&server, &mut client);
    match handoff {
        // The replica's link keeps the client listed until it ends.
        Some((socket, request)) => {
            shared.replica_link.store(true, Ordering::Relaxed);
            let serving = server.clone();
            let spawned = std::thread::Builder::new()
                .name("strata-repl-link".into())
                .spawn(move || crate::replication::master::serve(serving, socket, shared, request));
            if let Err(e) = spawned {
                tracing::error!("starting a replica's link: {e}");
                server.clients.remove(client.shared.id);
            }
        }
        None => server.clients.remove(shared.id),
    }
}

/// A connection handed to a replica's link (PSYNC, SYNC): its socket, in
/// blocking mode, and what the replica asked for.
type Handoff = (std::net::TcpStream, crate::replication::master::SyncRequest);

/// A client's socket and buffers.
struct Connection {
    socket: TcpStream,
    input: BytesMut,
    parser: RequestParser,
    output: OutputBuffer,
    /// Requests ran since their writes were last made durable: their
    /// replies must wait for that.
    unsynced: bool,
    /// Which of those replies acknowledge writes.
    acks: Acks,
    /// Since when the output has stayed over its class's soft limit
    /// (Redis's `obuf_soft_limit_reached_time`).
    over_soft_limit_since: Option<Instant>,
    /// The last read or write, from which `timeout` counts.
    last_io: Instant,
}

/// What a connection does after running the requests it has read.
enum Next {
    /// Reads and runs more.
    Serve,
    /// Sends the replies it has, then closes (QUIT, a protocol error).
    Quit,
    /// Closes at once (CLIENT KILL, shutdown, an output buffer limit).
    Close,
    /// Sends the replies it has, then becomes a replica's link.
    Replicate(crate::replication::master::SyncRequest),
}

async fn session(
    server: &Server,
    socket: TcpStream,
    client: &mut Client,
    input: BytesMut,
) -> std::io::Result<Option<Handoff>> {
    let mut conn = Connection {
        socket,
        input,
        parser: RequestParser::default(),
        output: OutputBuffer::default(),
        unsynced: false,
        acks: Acks::default(),
        over_soft_limit_since: None,
        last_io: Instant::now(),
    };
    let mut shutdown = server.shutdown_signal();
    // Registered once, and the only waiter (`wait_blocked` polls it too):
    // CLIENT KILL's one notification always reaches it.
    let shared = client.shared.clone();
    let killed = shared.kill_notify.notified();
    tokio::pin!(killed);
    let idle_check = tokio::time::sleep(IDLE_CHECK);
    tokio::pin!(idle_check);
    let mut quitting = false;
    loop {
        // The settings a batch of requests uses, under one config lock.
        let settings = server.config.read().session();
        // Messages that came before these requests were read go first, as
        // Redis writes them when they are published.
        if !conn.deliver_messages(client, &settings) {
            return Ok(None);
        }
        if !quitting {
            match run_requests(server, client, &mut conn, &settings, killed.as_mut()).await? {
                Next::Serve => {}
                Next::Quit => quitting = true,
                Next::Close => {
                    // What the socket takes at once still goes (CLIENT
                    // KILL's own reply to a client that killed itself).
                    conn.send(server, client).await?;
                    return Ok(None);
                }
                Next::Replicate(request) => {
                    while !conn.output.is_empty() {
                        conn.send(server, client).await?;
                        if !conn.output.is_empty() {
                            conn.socket.writable().await?;
                        }
                    }
                    let socket = conn.socket.into_std()?;
                    socket.set_nonblocking(false)?;
                    return Ok(Some((socket, request)));
                }
            }
        }
        if !conn.deliver_messages(client, &settings) {
            return Ok(None);
        }
        conn.send(server, client).await?;
        conn.publish(client);
        if quitting && conn.output.is_empty() {
            let _ = conn.socket.shutdown().await;
            return Ok(None);
        }
        let reading = !quitting && conn.output.bytes() < BACKPRESSURE_BYTES;
        if reading {
            conn.input.reserve(READ_CHUNK);
        }
        // The socket first, and the rest only when it waits: they were
        // polled on every read (kill and shutdown are also checked
        // between requests).
        tokio::select! {
            biased;
            ready = conn.socket.readable(), if reading => {
                ready?;
                if !conn.read(server, client, &settings)? {
                    return Ok(None);
                }
            }
            ready = conn.socket.writable(), if !conn.output.is_empty() => ready?,
            _ = shared.mailbox.arrived.notified() => {}
            _ = shutdown.changed() => return Ok(None),
            _ = &mut killed => return Ok(None),
            _ = &mut idle_check => {
                let timeout = Duration::from_secs(server.config.read().session().timeout_secs);
                let idle = conn.last_io.elapsed();
                if !timeout.is_zero() && idle >= timeout {
                    return Ok(None);
                }
                let next = if timeout.is_zero() { IDLE_CHECK } else { (timeout - idle).min(IDLE_CHECK) };
                idle_check.as_mut().reset((Instant::now() + next).into());
            }
        }
    }
}

/// Runs the requests read so far, in order, until one is incomplete, the
/// replies waiting reach `BACKPRESSURE_BYTES`, or the connection must close.
async fn run_requests(
    server: &Server,
    client: &mut Client,
    conn: &mut Connection,
    settings: &SessionSettings,
    mut killed: Pin<&mut Notified<'_>>,
) -> std::io::Result<Next> {
    let encoder_for = |client: &Client| ReplyEncoder { resp3: client.resp3 };
    loop {
        if client.shared.killed.load(Ordering::Relaxed) || server.is_shutting_down() {
            return Ok(Next::Close);
        }
        if conn.output.bytes() >= BACKPRESSURE_BYTES {
            return Ok(Next::Serve);
        }
        // Per request: an AUTH lifts the limits for the next one.
        let limits = RequestLimits {
            max_bulk_len: settings.max_bulk_len,
            auth_required: settings.password_set && !client.authenticated,
        };
        let argv = match conn.parser.parse(&mut conn.input, &limits) {
            Ok(ParseOutcome::Request(argv)) => argv,
            Ok(ParseOutcome::Incomplete { .. }) => return Ok(Next::Serve),
            Err(e) => {
                // Redis answers the protocol error, then closes.
                tracing::debug!(client = client.shared.id, error = %e, "protocol error");
                server.stats.record_error_text("ERR");
                let mark = conn.output.mark();
                conn.output.push_reply(encoder_for(client), &Reply::Error(format!("ERR {e}")));
                conn.acks.note(mark, conn.output.mark(), None);
                return Ok(Next::Quit);
            }
        };
        if argv.is_empty() {
            continue;
        }
        conn.unsynced = true;
        let args_bytes = argv.iter().map(|arg| arg.len()).sum();
        client.shared.buffers.args.store(args_bytes, Ordering::Relaxed);
        let committed = last_commit_on_thread();
        let mut reply = dispatch(server, client, &argv);
        let mut wrote = Some(last_commit_on_thread()).filter(|&seq| seq != committed);
        if let Some(call) = client.blocked.take() {
            match wait_blocked(server, client, conn, killed.as_mut(), call, settings).await? {
                Some(outcome) => reply = outcome,
                None => return Ok(Next::Close),
            }
            // Served by another client's write, which this reply must not
            // overtake to the log.
            conn.unsynced = true;
            wrote = Some(server.keyspace.log.last_seq());
        }
        if client.reply_wanted() {
            let mark = conn.output.mark();
            conn.output.push_reply(encoder_for(client), &reply);
            conn.acks.note(mark, conn.output.mark(), wrote);
            if conn.over_output_limit(client, settings) {
                return Ok(Next::Close);
            }
        }
        if client.close_after_reply {
            return Ok(Next::Quit);
        }
        if let Some(request) = client.handoff.take() {
            return Ok(Next::Replicate(request));
        }
    }
}

impl Connection {
    /// Reads what the client sent. False when the connection must close:
    /// the client closed it, or its query buffer is over the limit.
    fn read(&mut self, server: &Server, client: &Client, settings: &SessionSettings) -> std::io::Result<bool> {
        let read = match self.socket.try_read_buf(&mut self.input) {
            Ok(read) => read,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(true),
            Err(e) => return Err(e),
        };
        if read == 0 {
            return Ok(false);
        }
        self.last_io = Instant::now();
        server.stats.net_input_bytes.fetch_add(read as u64, Ordering::Relaxed);
        // As Redis's `lastinteraction`: set per read, not per command, from
        // the clock cached once per cron tick.
        client.shared.last_active_ms.store(server.ticked_uptime_ms(), Ordering::Relaxed);
        // Checked on every read, as Redis does, also while a big argument
        // is still arriving.
        if self.input.len() > settings.query_limit {
            tracing::warn!(client = client.shared.id, "closing client that reached max query buffer length");
            return Ok(false);
        }
        self.publish(client);
        Ok(true)
    }

    /// Makes the writes of the requests run so far durable (group commit),
    /// then writes as much of the replies as the socket takes now.
    async fn send(&mut self, server: &Server, client: &Client) -> std::io::Result<()> {
        if self.unsynced {
            // Every batch waits, not only writers: a reply must not show
            // data that a crash could still take back.
            if server.keyspace.make_durable().await.is_err() {
                self.refuse_unlogged_writes(server);
            }
            self.unsynced = false;
            self.acks = Acks::default();
        }
        if self.output.is_empty() {
            return Ok(());
        }
        let written = self.output.write_to(&self.socket)?;
        if written > 0 {
            self.last_io = Instant::now();
            server.stats.net_output_bytes.fetch_add(written as u64, Ordering::Relaxed);
            client.shared.last_active_ms.store(server.ticked_uptime_ms(), Ordering::Relaxed);
        }
        Ok(())
    }

    /// The log stopped (a failed write or fsync: `Log`) before it made the
    /// writes of the requests run so far durable: every reply from the
    /// first that acknowledges one becomes Redis's MISCONF error, and the
    /// connection stays open. The writes stay applied and their records
    /// wait in the log's memory: they become durable when the log's retry
    /// works, and are lost if the server dies first, so a client told
    /// MISCONF may find its write done or not, never half done. Replies
    /// before it (reads) go out as they are.
    fn refuse_unlogged_writes(&mut self, server: &Server) {
        let acks = std::mem::take(&mut self.acks);
        let Some(first) = acks.first_write.filter(|_| acks.last_seq > server.keyspace.durable_seq()) else {
            return;
        };
        let refusal =
            server.keyspace.write_refusal().unwrap_or_else(|| "MISCONF Errors writing to the AOF file".into());
        self.output.truncate(first);
        for _ in 0..acks.refused {
            server.stats.record_error_text(&refusal);
            self.output.push_reply(ReplyEncoder { resp3: false }, &Reply::Error(refusal.clone()));
        }
    }

    /// Redis's `checkClientOutputBufferLimits`: the replies waiting are
    /// over the client class's hard limit, or over its soft limit for
    /// longer than its seconds. Such a client is closed without the rest
    /// of its replies.
    fn over_output_limit(&mut self, client: &Client, settings: &SessionSettings) -> bool {
        let limit = settings.output_limits.of(client.class);
        let used = self.output.list_bytes() as u64;
        let hard = limit.hard > 0 && used >= limit.hard;
        let soft = limit.soft > 0 && used >= limit.soft;
        let soft_expired = match (soft, self.over_soft_limit_since) {
            (false, _) => {
                self.over_soft_limit_since = None;
                false
            }
            (true, None) => {
                self.over_soft_limit_since = Some(Instant::now());
                false
            }
            (true, Some(since)) => since.elapsed() > Duration::from_secs(limit.soft_seconds),
        };
        if !(hard || soft_expired) {
            return false;
        }
        tracing::warn!(
            client = client.shared.id,
            addr = %client.shared.addr,
            "client closed for overcoming of output buffer limits"
        );
        self.output = OutputBuffer::default();
        true
    }

    /// Adds the pub/sub messages waiting in the client's mailbox to its
    /// replies; false when that takes them over the output limit (the
    /// connection closes).
    fn deliver_messages(&mut self, client: &Client, settings: &SessionSettings) -> bool {
        if client.shared.mailbox.bytes() == 0 {
            return true;
        }
        let messages = client.shared.mailbox.take();
        if messages.is_empty() {
            return true;
        }
        let encoder = ReplyEncoder { resp3: client.resp3 };
        let subscribed = !client.subscriptions.is_empty();
        for reply in messages.iter().filter_map(|message| message.reply(client.resp3, subscribed)) {
            self.output.push_reply(encoder, &reply);
        }
        !self.over_output_limit(client, settings)
    }

    /// Shows the buffers' sizes to CLIENT LIST.
    fn publish(&self, client: &Client) {
        let sizes = &client.shared.buffers;
        let store = |size: &std::sync::atomic::AtomicUsize, value: usize| size.store(value, Ordering::Relaxed);
        let args = self.parser.partial_args_bytes();
        store(&sizes.query, self.input.len());
        store(&sizes.query_free, self.input.capacity() - self.input.len());
        store(&sizes.args, args);
        store(&sizes.reply_buffer, self.output.buffer_len());
        store(&sizes.reply_list, self.output.list_len());
        store(&sizes.reply_list_bytes, self.output.list_bytes());
        let fixed = std::mem::size_of::<Client>() + std::mem::size_of::<ClientShared>();
        let total = fixed + self.input.capacity() + args + self.output.buffer_capacity() + self.output.list_bytes();
        store(&sizes.total, total);
    }
}

/// The replies waiting for the log, and which acknowledge writes: should
/// the log fail to take their records, those are refused
/// (`Connection::refuse_unlogged_writes`).
#[derive(Default)]
struct Acks {
    /// Where the first reply that acknowledges a write starts.
    first_write: Option<OutputMark>,
    /// Replies from that one on.
    refused: usize,
    /// The last log sequence those replies depend on.
    last_seq: u64,
}

impl Acks {
    /// A reply was pushed from `mark` to `end` (nothing for SHUTDOWN's);
    /// `wrote`: its command's last log record.
    fn note(&mut self, mark: OutputMark, end: OutputMark, wrote: Option<u64>) {
        if end == mark {
            return;
        }
        if let Some(seq) = wrote {
            self.first_write.get_or_insert(mark);
            self.last_seq = self.last_seq.max(seq);
        }
        if self.first_write.is_some() {
            self.refused += 1;
        }
    }
}

/// Waits for a blocked command's outcome: served by another client's
/// write, timed out, or unblocked. Replies before it go out meanwhile;
/// input that arrives is kept for after (Redis does not run a blocked
/// client's next commands either). None when the connection must close
/// (disconnect, CLIENT KILL, shutdown, query buffer limit).
async fn wait_blocked(
    server: &Server,
    client: &Client,
    conn: &mut Connection,
    mut killed: Pin<&mut Notified<'_>>,
    call: BlockedCall,
    settings: &SessionSettings,
) -> std::io::Result<Option<Reply>> {
    let BlockedCall { waiter, mut wake, deadline, timeout_reply } = call;
    let blocking = &server.keyspace.blocking;
    let timer = async {
        match deadline {
            Some(at) => tokio::time::sleep_until(at.into()).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(timer);
    let mut timed_out = false;
    let mut shutdown = server.shutdown_signal();
    loop {
        if !conn.deliver_messages(client, settings) {
            blocking.remove(&waiter);
            return Ok(None);
        }
        // The replies of the pipeline so far go out while it waits.
        if let Err(e) = conn.send(server, client).await {
            blocking.remove(&waiter);
            return Err(e);
        }
        conn.publish(client);
        conn.input.reserve(READ_CHUNK);
        tokio::select! {
            outcome = &mut wake => {
                return Ok(Some(match outcome {
                    Ok(Wake::Served(reply)) => reply,
                    Ok(Wake::Unblocked(Some(error))) => error,
                    Ok(Wake::Unblocked(None)) | Err(_) => timeout_reply,
                }));
            }
            _ = &mut timer, if !timed_out => {
                timed_out = true;
                if blocking.remove(&waiter) {
                    return Ok(Some(timeout_reply));
                }
                // Being served right now: the reply is on its way.
            }
            ready = conn.socket.readable() => {
                if ready.is_err() || !matches!(conn.read(server, client, settings), Ok(true)) {
                    blocking.remove(&waiter);
                    return Ok(None);
                }
            }
            ready = conn.socket.writable(), if !conn.output.is_empty() => {
                if ready.is_err() {
                    blocking.remove(&waiter);
                    return Ok(None);
                }
            }
            _ = client.shared.mailbox.arrived.notified() => {}
            _ = &mut killed => {
                blocking.remove(&waiter);
                return Ok(None);
            }
            _ = shutdown.changed() => {
                blocking.remove(&waiter);
                return Ok(None);
            }
        }
    }
}
