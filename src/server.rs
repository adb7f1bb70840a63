//! The server: shared state, listeners, background cycles, shutdown.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use parking_lot::RwLock;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::client::ClientRegistry;
use crate::commands::CommandTable;
use crate::config::{ClientClass, Config};
use crate::connection;
use crate::keyspace::{DurabilityConfig, Keyspace};
use crate::loading::LoadingProgress;
use crate::pubsub::PubSub;
use crate::replication::{MasterAddr, Replication};
use crate::stats::Stats;
use strata_engines::log::FsyncPolicy;
use strata_engines::DurabilityMetrics;

/// Everything connections share.
pub struct Server {
    pub config: RwLock<Config>,
    pub keyspace: Keyspace,
    pub commands: CommandTable,
    pub stats: Stats,
    pub clients: ClientRegistry,
    pub pubsub: Arc<PubSub>,
    pub replication: Replication,
    pub started: Instant,
    pub started_unix_ms: u64,
    /// `uptime_ms` as of the cron's last tick, as Redis caches its clock
    /// once per loop: per-read bookkeeping reads this, not the clock.
    ticked_ms: AtomicU64,
    pub run_id: String,
    /// The port actually bound (differs from the config when it asked for 0).
    pub port: AtomicU16,
    shutdown_tx: watch::Sender<bool>,
    shutting_down: AtomicBool,
    /// `maxmemory` in bytes (0 = no limit), read by every denyoom command.
    pub maxmemory: AtomicU64,
    /// This server, for work a command starts in the background (BGSAVE).
    pub this: std::sync::Weak<Server>,
    /// Started with the first connection (in-process servers have none).
    connection_threads: OnceLock<ConnectionThreads>,
    /// MIGRATE's connections to its targets.
    pub migrate_sockets: crate::commands::migrate::MigrateSockets,
    /// This node's part in a cluster (`cluster-enabled yes`).
    pub cluster: Option<Arc<crate::cluster::Cluster>>,
}

/// `replicaof`'s value, "host port" (empty: none).
pub fn parse_master_addr(text: &str) -> Option<MasterAddr> {
    let (host, port) = text.trim().split_once(' ')?;
    Some(MasterAddr { host: host.to_string(), port: port.trim().parse().ok()? })
}

/// The threads serving connections, `io-threads` of them, each running a
/// single-threaded runtime: a connection stays on the thread it is handed
/// to, with its buffers in that core's cache, and a thread's ready
/// connections add their records to one group fsync before their replies
/// go out together, as in Redis's event loop. Tokio's work-stealing
/// runtime on two workers moved connections between cores and fsynced 18
/// records at a time against 24-30 on one thread: at -P 1 under `always`
/// it served 8-30 % fewer requests for 15-50 % more CPU per request.
struct ConnectionThreads {
    runtimes: Vec<tokio::runtime::Handle>,
    next: AtomicUsize,
}

impl ConnectionThreads {
    fn start(count: usize) -> ConnectionThreads {
        let runtimes = (0..count)
            .map(|index| {
                let runtime =
                    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
                let handle = runtime.handle().clone();
                std::thread::Builder::new()
                    .name(format!("strata-io-{index}"))
                    .spawn(move || runtime.block_on(std::future::pending::<()>()))
                    .expect("connection thread");
                handle
            })
            .collect();
        ConnectionThreads { runtimes, next: AtomicUsize::new(0) }
    }

    /// The thread for the next connection, in turn.
    fn next(&self) -> &tokio::runtime::Handle {
        &self.runtimes[self.next.fetch_add(1, Ordering::Relaxed) % self.runtimes.len()]
    }
}

/// How a server run can fail to start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("can't open the data directory: {0}")]
    Storage(#[from] strata_engines::EngineError),
    #[error("could not create server TCP listening socket {0}: {1}")]
    Bind(String, std::io::Error),
    #[error("cluster mode: {0}")]
    Cluster(String),
}

impl Server {
    /// Opens the data directory (recovering every engine; `progress` tells
    /// how far it got) and builds the server.
    pub fn open(config: Config, progress: &LoadingProgress) -> Result<Arc<Server>, StartError> {
        let dir = config.dir();
        let log_config = DurabilityConfig {
            fsync: FsyncPolicy::parse(config.get("appendfsync").unwrap_or("everysec")).unwrap_or(FsyncPolicy::EverySec),
            replay_delay: Duration::from_micros(config.get("key-load-delay").and_then(|v| v.parse().ok()).unwrap_or(0)),
            log_max_bytes: config.get("log-max-size").and_then(|v| v.parse().ok()).unwrap_or(0),
            checkpoint_mtbf_secs: config.number("checkpoint-mtbf-hours") as u64 * 3600,
            checkpoint_min_secs: config.number("checkpoint-min-interval") as u64,
            checkpoint_max_secs: config.number("checkpoint-max-interval") as u64,
            archive_repo: config.log_archive().0,
            archive_timeout: config.log_archive().1,
            ..DurabilityConfig::default()
        };
        let keyspace = Keyspace::open(
            &dir,
            &strata_engines::RocksConfig::default(),
            config.databases(),
            log_config,
            Arc::new(DurabilityMetrics::default()),
            progress,
        )?;
        // Snapshots left from the last run (no client can still be reading
        // them), and full syncs a replica was receiving when it stopped.
        let syncs = std::fs::read_dir(&dir).into_iter().flatten().flatten().map(|entry| entry.path());
        let leftovers = syncs
            .filter(|path| path.is_dir() && path.file_name().is_some_and(|n| n.to_string_lossy().starts_with("sync-")));
        for leftover in std::iter::once(crate::commands::snapshots_dir(&dir)).chain(leftovers) {
            if !leftover.exists() {
                continue;
            }
            if let Err(e) = std::fs::remove_dir_all(&leftover) {
                tracing::warn!(dir = %leftover.display(), error = %e, "removing what the last run left failed");
            }
        }
        let (shutdown_tx, _) = watch::channel(false);
        let run_id: String = (0..40).map(|_| format!("{:x}", rand::random::<u8>() % 16)).collect();
        let maxmemory = config.get("maxmemory").and_then(|v| v.parse().ok()).unwrap_or(0);
        let pubsub = Arc::new(PubSub::new(config.session().output_limits.of(ClientClass::Pubsub).hard));
        keyspace.attach_pubsub(pubsub.clone());
        pubsub.tracking.max_keys.store(config.number("tracking-table-max-keys") as u64, Ordering::Relaxed);
        keyspace.notify_flags.store(config.notify_flags(), Ordering::Relaxed);
        // In cluster mode the cluster's state says whom to replicate.
        let cluster = match config.get("cluster-enabled") == Some("yes") {
            true => Some(crate::cluster::Cluster::open(&config, &dir).map_err(StartError::Cluster)?),
            false => None,
        };
        let master = config.get("replicaof").filter(|_| cluster.is_none()).and_then(parse_master_addr);
        keyspace.following_master.store(master.is_some(), Ordering::Relaxed);
        let replication = Replication::open(&dir, master);
        replication.configure(&config);
        keyspace.durability.repl_backlog_bytes.store(config.number("repl-backlog-size") as u64, Ordering::Relaxed);
        Ok(Arc::new_cyclic(|this| Server {
            this: this.clone(),
            maxmemory: AtomicU64::new(maxmemory),
            port: AtomicU16::new(config.port()),
            config: RwLock::new(config),
            keyspace,
            commands: CommandTable::new(),
            stats: Stats::default(),
            clients: ClientRegistry::default(),
            pubsub,
            replication,
            started: Instant::now(),
            ticked_ms: AtomicU64::new(0),
            started_unix_ms: strata_engines::now_ms(),
            run_id,
            shutdown_tx,
            shutting_down: AtomicBool::new(false),
            connection_threads: OnceLock::new(),
            migrate_sockets: Default::default(),
            cluster,
        }))
    }

    /// Makes this node a replica of `master`, or (None) a master: the
    /// link thread of the new epoch starts; the old one ends.
    pub fn follow(&self, master: Option<MasterAddr>) {
        let following = master.is_some();
        let value = master.as_ref().map(|m| format!("{} {}", m.host, m.port)).unwrap_or_default();
        if let Err(e) = self.config.write().set("replicaof", &value) {
            tracing::warn!("keeping replicaof in the configuration: {e}");
        }
        // Write commands are refused before the link starts applying.
        self.keyspace.following_master.store(following, Ordering::Release);
        let epoch = self.replication.set_master(master, self.keyspace.log.last_seq());
        self.replication.drop_replicas();
        if following {
            self.start_link(epoch);
        }
    }

    /// Starts the link to the master the configuration names, if any (once
    /// the server listens: the link tells the master its port).
    pub fn start_replication(&self) {
        if self.replication.is_replica() {
            self.start_link(self.replication.epoch.load(Ordering::Acquire));
        }
    }

    /// Starts the link to the master for replication epoch `epoch`; this
    /// node now keeps a backlog, as Redis does once it replicates.
    fn start_link(&self, epoch: u64) {
        self.keyspace.durability.repl_backlog_active.store(true, Ordering::Relaxed);
        if let Some(server) = self.this.upgrade() {
            crate::replication::replica::start(server, epoch);
        }
    }

    /// Asks the server to stop: listeners close, connections finish the
    /// command they are running and close, storage is flushed.
    pub fn request_shutdown(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
        self.shutdown_tx.send_replace(true);
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::SeqCst)
    }

    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown_tx.subscribe()
    }

    /// A server on `dir` with one in-process client and no listener: tests
    /// and benchmarks drive commands through `commands::dispatch`.
    pub fn open_in_process(dir: &std::path::Path) -> Result<(Arc<Server>, crate::client::Client), StartError> {
        let mut config = Config::default();
        config.set("dir", &dir.to_string_lossy()).expect("dir takes any path");
        let server = Server::open(config, &LoadingProgress::default())?;
        let addr = SocketAddr::from(([127, 0, 0, 1], 1));
        let client = crate::client::Client::new(server.clients.add(addr, addr), true);
        Ok((server, client))
    }

    /// Serves a client on one of the connection threads, starting with
    /// `input` (what it sent while the server was loading).
    pub fn serve_connection(self: &Arc<Self>, socket: TcpStream, addr: SocketAddr, input: bytes::BytesMut) {
        let threads = self.connection_threads.get_or_init(|| ConnectionThreads::start(self.config.read().io_threads()));
        // A socket belongs to the runtime that registered it: it moves
        // across as a std socket (still non-blocking).
        let socket = match socket.into_std() {
            Ok(socket) => socket,
            Err(e) => return tracing::warn!(error = %e, "handing a connection to its thread failed"),
        };
        let server = self.clone();
        threads.next().spawn(async move {
            match TcpStream::from_std(socket) {
                Ok(socket) => connection::serve(server, socket, addr, input).await,
                Err(e) => tracing::warn!(error = %e, "handing a connection to its thread failed"),
            }
        });
    }

    /// Milliseconds since the server started.
    pub fn uptime_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// `uptime_ms` as of the cron's last tick (a tenth of a second old at
    /// `hz 10`).
    pub fn ticked_uptime_ms(&self) -> u64 {
        self.ticked_ms.load(Ordering::Relaxed)
    }
}

/// Binds `port` on each of the `bind` addresses (a leading `-` marks one
/// that may be missing, as in Redis). The metrics endpoint listens where
/// the server does.
pub(crate) async fn bind_all(addresses: &[String], port: u16) -> Result<Vec<TcpListener>, StartError> {
    let mut listeners = Vec::new();
    for address in addresses {
        let (optional, host) = match address.strip_prefix('-') {
            Some(host) => (true, host.to_string()),
            None => (false, address.clone()),
        };
        let host = if host == "*" { "0.0.0.0".to_string() } else { host };
        let target = if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") };
        match TcpListener::bind(&target).await {
            Ok(listener) => listeners.push(listener),
            Err(_) if optional => continue,
            Err(e) => return Err(StartError::Bind(target, e)),
        }
    }
    Ok(listeners)
}

/// Serves on `listeners` (bound by `loading::start`) until shutdown is
/// requested (SHUTDOWN, SIGTERM, SIGINT).
pub async fn run(server: Arc<Server>, listeners: Vec<TcpListener>) -> Result<(), StartError> {
    if let Some(addr) = listeners.first().and_then(|l| l.local_addr().ok()) {
        server.port.store(addr.port(), Ordering::Relaxed);
    }
    let metrics_listeners = crate::metrics::bind(&server).await?;
    for listener in &listeners {
        if let Ok(addr) = listener.local_addr() {
            tracing::info!(%addr, "Ready to accept connections");
        }
    }
    tokio::spawn(cron(server.clone()));
    server.start_replication();
    if let Some(cluster) = &server.cluster {
        cluster.start(&server);
    }
    tokio::spawn(watch_signals(server.clone()));
    let mut tasks = Vec::new();
    for listener in listeners {
        tasks.push(tokio::spawn(accept_loop(server.clone(), listener)));
    }
    tasks.extend(crate::metrics::spawn(&server, metrics_listeners));
    let mut shutdown = server.shutdown_signal();
    while !*shutdown.borrow_and_update() {
        if shutdown.changed().await.is_err() {
            break;
        }
    }
    for task in &tasks {
        task.abort();
    }
    // Let connections finish the command they are running.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !server.clients.is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    if let Some(cluster) = &server.cluster {
        cluster.shutdown();
    }
    if let Err(e) = server.keyspace.shutdown() {
        tracing::error!(error = %e, "saving the engines at shutdown failed");
    }
    tracing::info!("Strata is now ready to exit, bye bye...");
    Ok(())
}

async fn accept_loop(server: Arc<Server>, listener: TcpListener) {
    loop {
        let (socket, addr) = match listener.accept().await {
            Ok(pair) => pair,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let refusal = Admission::new(&server.config.read()).refusal(server.clients.len(), addr);
        if let Some(line) = refusal {
            server.stats.rejected_connections.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(refuse(socket, line));
            continue;
        }
        server.stats.connections_received.fetch_add(1, Ordering::Relaxed);
        let _ = socket.set_nodelay(true);
        server.serve_connection(socket, addr, bytes::BytesMut::new());
    }
}

/// Redis's answer to a connection over `maxclients`.
const MAX_CLIENTS_REACHED: &str = "-ERR max number of clients reached\r\n";

/// Redis 7.0's answer to a client from another host while protected mode
/// is on and no password is set.
const PROTECTED_MODE_DENIED: &str = "-DENIED Redis is running in protected mode because protected mode is enabled and \
    no password is set for the default user. In this mode connections are only accepted from the loopback interface. \
    If you want to connect from external computers to Redis you may adopt one of the following solutions: \
    1) Just disable protected mode sending the command 'CONFIG SET protected-mode no' from the loopback interface by \
    connecting to Redis from the same host the server is running, however MAKE SURE Redis is not publicly accessible \
    from internet if you do so. Use CONFIG REWRITE to make this change permanent. 2) Alternatively you can just \
    disable the protected mode by editing the Redis configuration file, and setting the protected mode option to \
    'no', and then restarting the server. 3) If you started the server manually just for testing, restart it with \
    the '--protected-mode no' option. 4) Setup a an authentication password for the default user. NOTE: You only \
    need to do one of the above things in order for the server to start accepting connections from the outside.\r\n";

/// The checks a new connection passes before it is served, in Redis's
/// order: `maxclients` (Redis's `acceptCommonHandler`), then protected
/// mode (`clientAcceptHandler`). Both also apply while the server loads.
pub(crate) struct Admission {
    maxclients: usize,
    /// `protected-mode yes` and no password: only loopback clients.
    loopback_only: bool,
}

impl Admission {
    pub(crate) fn new(config: &Config) -> Admission {
        Admission {
            maxclients: config.maxclients(),
            loopback_only: config.protected_mode() && config.requirepass().is_none(),
        }
    }

    /// The error a connection from `peer` is turned away with while
    /// `connected` clients are connected; None lets it in.
    pub(crate) fn refusal(&self, connected: usize, peer: SocketAddr) -> Option<&'static str> {
        if connected >= self.maxclients {
            Some(MAX_CLIENTS_REACHED)
        } else if self.loopback_only && !peer.ip().to_canonical().is_loopback() {
            // 127.0.0.0/8 and ::1 (also as an IPv4-mapped address, from a
            // dual-stack listener) are loopback, as in Redis's connIsLocal.
            Some(PROTECTED_MODE_DENIED)
        } else {
            None
        }
    }
}

/// Answers a refused connection with Redis's error, then closes it.
pub(crate) async fn refuse(mut socket: TcpStream, error: &'static str) {
    let _ = socket.write_all(error.as_bytes()).await;
}

/// The periodic work Redis does in `serverCron`: active expiry at `hz`,
/// and the engines' background durability work (the log's syncer thread
/// does the `everysec` fsync).
async fn cron(server: Arc<Server>) {
    let mut shutdown = server.shutdown_signal();
    loop {
        server.ticked_ms.store(server.uptime_ms(), Ordering::Relaxed);
        let maintained = server.clone();
        let result = tokio::task::spawn_blocking(move || maintained.keyspace.maintain()).await;
        if let Ok(Err(e)) = result {
            tracing::error!(error = %e, "background durability work failed");
        }
        let rules = server.config.read().get("save").unwrap_or_default().to_string();
        if server.keyspace.quiet_save_due() || server.keyspace.save_rule_due(&rules, server.started_unix_ms / 1000) {
            let saving = server.clone();
            tokio::task::spawn_blocking(move || {
                if let Err(e) = saving.keyspace.save() {
                    tracing::error!(error = %e, "background save failed");
                }
            });
        } else if server.keyspace.checkpoint_due() {
            let checkpointing = server.clone();
            tokio::task::spawn_blocking(move || {
                if let Err(e) = checkpointing.keyspace.checkpoint() {
                    tracing::error!(error = %e, "memory checkpoint failed");
                }
            });
        }
        server.migrate_sockets.close_idle();
        let period = Duration::from_millis(1000 / server.config.read().hz());
        tokio::select! {
            _ = tokio::time::sleep(period) => {}
            _ = shutdown.changed() => return,
        }
        let keyspace_server = server.clone();
        let result = tokio::task::spawn_blocking(move || keyspace_server.keyspace.active_expire(200)).await;
        if let Ok(Err(e)) = result {
            tracing::error!(error = %e, "active expiry failed");
        }
    }
}

async fn watch_signals(server: Arc<Server>) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        return;
    };
    tokio::select! {
        _ = term.recv() => tracing::warn!("Received SIGTERM scheduling shutdown..."),
        _ = int.recv() => tracing::warn!("Received SIGINT scheduling shutdown..."),
    }
    server.request_shutdown();
}

/// The address a test or tool should connect to.
pub fn local_addr(server: &Server) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], server.port.load(Ordering::Relaxed)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admission(settings: &[(&str, &str)]) -> Admission {
        let mut config = Config::default();
        for (name, value) in settings {
            config.set(name, value).unwrap();
        }
        Admission::new(&config)
    }

    fn peer(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    #[test]
    fn protected_mode_admits_only_loopback_clients_while_no_password_is_set() {
        let protected = admission(&[]);
        for local in ["127.0.0.1:5000", "127.0.0.2:5000", "[::1]:5000", "[::ffff:127.0.0.1]:5000"] {
            assert_eq!(protected.refusal(0, peer(local)), None, "{local}");
        }
        for remote in ["10.254.0.1:5000", "192.168.1.2:5000", "[fd00::2]:5000", "[::ffff:10.0.0.1]:5000"] {
            assert_eq!(protected.refusal(0, peer(remote)), Some(PROTECTED_MODE_DENIED), "{remote}");
        }
        let remote = peer("10.254.0.1:5000");
        assert_eq!(admission(&[("protected-mode", "no")]).refusal(0, remote), None);
        assert_eq!(admission(&[("requirepass", "secret")]).refusal(0, remote), None);
    }

    #[test]
    fn maxclients_is_checked_before_protected_mode() {
        let admission = admission(&[("maxclients", "2")]);
        assert_eq!(admission.refusal(1, peer("127.0.0.1:5000")), None);
        assert_eq!(admission.refusal(2, peer("127.0.0.1:5000")), Some(MAX_CLIENTS_REACHED));
        assert_eq!(admission.refusal(2, peer("10.254.0.1:5000")), Some(MAX_CLIENTS_REACHED));
    }

    #[test]
    fn the_protected_mode_refusal_is_redis_7_0s_text() {
        assert!(PROTECTED_MODE_DENIED.starts_with("-DENIED Redis is running in protected mode because protected mode is enabled and no password is set for the default user. In this mode connections are only accepted from the loopback interface. If you want"));
        assert!(PROTECTED_MODE_DENIED
            .ends_with("in order for the server to start accepting connections from the outside.\r\n"));
        assert!(!PROTECTED_MODE_DENIED.contains("  "));
        assert_eq!(PROTECTED_MODE_DENIED.len(), 1067);
    }
}
