//! Cluster mode: this node's part in a Redis Cluster whose configuration
//! (nodes, slot owners, epochs, migration marks) is one state replicated
//! with Raft (`strata_cluster::raft`, openraft) over the cluster bus.
//!
//! Commands that change the configuration propose entries; every node
//! applies the committed entries in order and then brings itself in line
//! (`reconcile`): the routing table the command path reads, nodes.conf,
//! and replication (a node the state names a replica follows its master).
//! The bus also carries what is not configuration: MEET handshakes, pings
//! that measure liveness, and pub/sub messages.

mod bus;
mod detector;
mod nodes_file;
mod render;
mod route;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use strata_cluster::raft::{ClusterRaft, Metrics, RaftConfig};
use strata_cluster::state::{Applied, ClusterState, Entry, Node};

pub use render::{Seen, View};
pub use route::{OpenSlot, Request, Routes};

use crate::config::Config;
use crate::error::CmdError;
use crate::protocol::Reply;
use crate::replication::MasterAddr;
use crate::server::Server;
use nodes_file::NodesFile;

/// How long a configuration change may wait for the Raft group.
const PROPOSE_TIMEOUT: Duration = Duration::from_secs(10);

/// The settings Redis names `cluster-*` that this node acts on.
#[derive(Clone, Debug)]
pub struct Settings {
    pub node_timeout: Duration,
    pub require_full_coverage: bool,
    pub allow_reads_when_down: bool,
    pub allow_replica_migration: bool,
    pub replica_validity_factor: u64,
    pub replica_no_failover: bool,
    /// The address this node gives others: `cluster-announce-ip/port/
    /// bus-port/hostname`, else what it binds.
    pub ip: String,
    pub port: u16,
    pub bus_port: u16,
    pub hostname: String,
}

impl Settings {
    pub fn from_config(config: &Config) -> Settings {
        let yes = |name: &str| config.get(name) == Some("yes");
        let number = |name: &str| config.number(name).max(0) as u64;
        let announced = |name: &str| config.get(name).filter(|v| !v.is_empty()).map(str::to_string);
        let port = match number("cluster-announce-port") {
            0 => config.port(),
            port => port as u16,
        };
        let bus_port = match (number("cluster-announce-bus-port"), number("cluster-port")) {
            (0, 0) => port.wrapping_add(10000),
            (0, bus) | (bus, _) => bus as u16,
        };
        let bind =
            config.bind().into_iter().find(|b| b.parse::<std::net::IpAddr>().is_ok_and(|ip| !ip.is_unspecified()));
        Settings {
            node_timeout: Duration::from_millis(number("cluster-node-timeout").max(100)),
            require_full_coverage: yes("cluster-require-full-coverage"),
            allow_reads_when_down: yes("cluster-allow-reads-when-down"),
            allow_replica_migration: yes("cluster-allow-replica-migration"),
            replica_validity_factor: number("cluster-replica-validity-factor"),
            replica_no_failover: yes("cluster-replica-no-failover"),
            ip: announced("cluster-announce-ip").or(bind).unwrap_or_else(|| "127.0.0.1".into()),
            port,
            bus_port,
            hostname: announced("cluster-announce-hostname").unwrap_or_default(),
        }
    }

    fn bus_listen(&self, config: &Config) -> SocketAddr {
        // The bus listens on the port it announces unless cluster-port says
        // otherwise (an announced bus port may be a NAT's).
        let port = match config.number("cluster-port") {
            0 => config.port().wrapping_add(10000),
            port => port as u16,
        };
        let ip = config.bind().into_iter().find_map(|b| b.parse().ok()).unwrap_or([127, 0, 0, 1].into());
        SocketAddr::new(ip, port)
    }
}

/// Counts of bus messages by kind, for CLUSTER INFO.
#[derive(Default)]
pub struct BusStats {
    sent: Mutex<HashMap<&'static str, u64>>,
    received: Mutex<HashMap<&'static str, u64>>,
}

impl BusStats {
    fn sent(&self, kind: &'static str) {
        *self.sent.lock().entry(kind).or_default() += 1;
    }

    fn received(&self, kind: &'static str) {
        *self.received.lock().entry(kind).or_default() += 1;
    }
}

pub struct Cluster {
    /// This node's id (a hard CLUSTER RESET gives it a new one).
    myself: RwLock<String>,
    /// Its id in the Raft group, fixed for the node's life.
    raft_id: u64,
    settings: Settings,
    runtime: tokio::runtime::Runtime,
    raft: ClusterRaft<ClusterState>,
    routes: RwLock<Arc<Routes>>,
    /// The applied state as last read, and the notice of applies that
    /// says when to read it again.
    applied: Mutex<(tokio::sync::watch::Receiver<Option<u64>>, Arc<ClusterState>)>,
    /// What this node has seen of the others over the bus.
    seen: Mutex<HashMap<String, Seen>>,
    /// Nodes others reported timed out, by reporter (COUNT-FAILURE-REPORTS).
    reports: Mutex<HashMap<String, Vec<String>>>,
    file: NodesFile,
    server: OnceLock<Weak<Server>>,
    stats: BusStats,
    /// Unix ms until which writes are paused for a manual failover.
    paused_until_ms: AtomicU64,
}

impl Cluster {
    /// Opens this node's part: its id from nodes.conf (new if none), the
    /// Raft state under `<dir>/cluster-raft`, the bus listener. A node
    /// that has never been in a group starts one of its own.
    pub fn open(config: &Config, dir: &Path) -> Result<Arc<Cluster>, String> {
        let settings = Settings::from_config(config);
        let file = NodesFile::new(dir, config.get("cluster-config-file").unwrap_or("nodes.conf"));
        let (myself, raft_id) = file.load()?.unwrap_or_else(|| (nodes_file::new_node_name(), rand::random()));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("strata-cluster")
            .enable_all()
            .build()
            .map_err(|e| format!("cluster runtime: {e}"))?;
        let db = strata_cluster::raft::open_db(dir.join("cluster-raft")).map_err(|e| e.to_string())?;
        let listen = settings.bus_listen(config);
        let handler = bus::Handler::new();
        let answering = handler.clone();
        let app = move |_from, request| {
            let handler = answering.clone();
            async move { handler.answer(request).await }
        };
        let raft_config = RaftConfig {
            announce: format!("{}:{}", settings.ip, settings.bus_port).parse().ok(),
            // Bus exchanges bound their own waits (`bus::ask`).
            request_timeout: bus::JOIN_TIMEOUT,
            ..RaftConfig::default()
        };
        let raft = runtime
            .block_on(ClusterRaft::<ClusterState>::start(raft_id, listen, db, app, raft_config))
            .map_err(|e| format!("cluster bus on {listen}: {e}"))?;
        let read = ClusterState::clone(&raft.state());
        let applied = (raft.subscribe(), Arc::new(read));
        let cluster = Arc::new(Cluster {
            routes: RwLock::new(Arc::new(Routes::new(&ClusterState::default(), &myself, false, false))),
            applied: Mutex::new(applied),
            myself: RwLock::new(myself),
            raft_id,
            settings,
            runtime,
            raft,
            seen: Mutex::default(),
            reports: Mutex::default(),
            file,
            server: OnceLock::new(),
            stats: BusStats::default(),
            paused_until_ms: AtomicU64::new(0),
        });
        handler.attach(&cluster);
        if cluster.state().node(&cluster.myself()).is_none() {
            cluster.runtime.block_on(cluster.raft.initialize_alone()).map_err(|e| e.to_string())?;
            let joined = cluster.propose(Entry::Join { node: cluster.my_record(), slots: Vec::new() });
            if let Err(e) = joined {
                return Err(format!("starting this node's cluster: {e}"));
            }
        }
        cluster.reconcile();
        Ok(cluster)
    }

    /// Starts the work that needs the server: following what the state
    /// says of this node, and the failure detector.
    pub fn start(self: &Arc<Cluster>, server: &Arc<Server>) {
        let _ = self.server.set(Arc::downgrade(server));
        self.reconcile();
        let this = self.clone();
        let mut applied = self.raft.subscribe();
        self.runtime.spawn(async move {
            while applied.changed().await.is_ok() {
                this.reconcile();
            }
        });
        self.runtime.spawn(detector::run(Arc::downgrade(self)));
    }

    pub fn myself(&self) -> String {
        self.myself.read().clone()
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    fn server(&self) -> Option<Arc<Server>> {
        self.server.get().and_then(Weak::upgrade)
    }

    /// This node as it announces itself.
    fn my_record(&self) -> Node {
        let name = self.myself();
        let known = self.state().node(&name).cloned();
        Node {
            name,
            raft_id: self.raft_id,
            ip: self.settings.ip.clone(),
            port: self.settings.port,
            cport: self.settings.bus_port,
            hostname: self.settings.hostname.clone(),
            master: known.as_ref().and_then(|n| n.master.clone()),
            config_epoch: known.as_ref().map_or(0, |n| n.config_epoch),
            failed: false,
            nofailover: self.settings.replica_no_failover,
        }
    }

    /// The applied state (copied once per change).
    pub fn state(&self) -> Arc<ClusterState> {
        let mut applied = self.applied.lock();
        if applied.0.has_changed().unwrap_or(false) {
            applied.0.mark_unchanged();
            applied.1 = Arc::new(self.raft.state().clone());
        }
        applied.1.clone()
    }

    pub fn metrics(&self) -> Metrics {
        self.raft.metrics()
    }

    /// The routing table the command path reads.
    pub fn routes(&self) -> Arc<Routes> {
        self.routes.read().clone()
    }

    /// Commits an entry through the Raft group (its leader, wherever it
    /// is) and answers what applying it said.
    pub fn propose(&self, entry: Entry) -> Result<Applied, CmdError> {
        let applied = self.block_on(self.commit(entry), PROPOSE_TIMEOUT);
        match applied {
            Some(Ok(applied)) => {
                // The caller reads its own change next (CLUSTER NODES after
                // ADDSLOTS): the table follows before the reply.
                self.reconcile();
                Ok(applied)
            }
            Some(Err(e)) => {
                Err(CmdError::Custom(format!("CLUSTERDOWN The cluster configuration can't be changed now: {e}")))
            }
            None => {
                Err(CmdError::Custom("CLUSTERDOWN The cluster configuration can't be changed now: no quorum".into()))
            }
        }
    }

    /// Commits an entry and waits until this node has applied it too (the
    /// leader answers once it has applied it; a follower that proposed it
    /// must not answer before its own routing table follows).
    async fn commit(&self, entry: Entry) -> Result<Applied, strata_cluster::raft::Error> {
        let committed = self.raft.write(entry).await?;
        let mut applied = self.raft.subscribe();
        let deadline = tokio::time::Instant::now() + PROPOSE_TIMEOUT;
        while self.raft.state().applied_entries < committed.applied_entries {
            // Err: the deadline passed, or Raft was reset under us.
            if !matches!(tokio::time::timeout_at(deadline, applied.changed()).await, Ok(Ok(()))) {
                break;
            }
        }
        Ok(committed.applied)
    }

    /// Runs a future on the cluster's runtime from a thread that is not
    /// one of its own, waiting at most `timeout`.
    fn block_on<T: Send + 'static>(
        &self,
        future: impl std::future::Future<Output = T> + Send,
        timeout: Duration,
    ) -> Option<T> {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::scope(|scope| {
            scope.spawn(|| {
                let result = self.runtime.block_on(async { tokio::time::timeout(timeout, future).await });
                let _ = tx.send(result.ok());
            });
        });
        rx.recv().ok().flatten()
    }

    /// Renders with the applied state and what this node has seen.
    pub fn render<R>(&self, render: impl FnOnce(&View) -> R) -> R {
        let state = self.state();
        let seen = self.seen.lock().clone();
        let myself = self.myself();
        let view = View { state: &state, myself: &myself, seen: &seen, my_offset: self.replication_offset() };
        render(&view)
    }

    fn replication_offset(&self) -> u64 {
        self.server().map_or(0, |s| s.keyspace.log.last_seq())
    }

    /// Whether this node serves: every slot assigned to a node that has
    /// not failed (with `cluster-require-full-coverage`), and a majority
    /// of the Raft voters reachable (a minority partition stops).
    fn is_ok(&self, state: &ClusterState) -> bool {
        let covered = !self.settings.require_full_coverage
            || state
                .slots
                .ranges()
                .iter()
                .all(|(_, _, owner)| owner.and_then(|o| state.node(o)).is_some_and(|n| !n.failed));
        covered && self.quorum_reachable()
    }

    fn quorum_reachable(&self) -> bool {
        let metrics = self.raft.metrics();
        if metrics.voters.len() <= 1 {
            return metrics.voters.contains_key(&self.raft_id);
        }
        let seen = self.seen.lock();
        let state = self.state();
        let reachable = metrics
            .voters
            .keys()
            .filter(|&&id| {
                id == self.raft_id
                    || state.nodes.values().any(|n| n.raft_id == id && seen.get(&n.name).is_some_and(|s| !s.timed_out))
            })
            .count();
        reachable * 2 > metrics.voters.len()
    }

    /// Brings this node in line with the applied state: routing table,
    /// nodes.conf, and which master it replicates.
    pub fn reconcile(&self) {
        let state = self.state();
        let ok = self.is_ok(&state);
        let myself = self.myself();
        *self.routes.write() = Arc::new(Routes::new(&state, &myself, ok, self.settings.allow_reads_when_down));
        // Between leaving one group and receiving another's state (MEET),
        // this node is in no state: nothing to save or follow yet.
        if state.node(&myself).is_none() {
            return;
        }
        let nodes = self.render(|view| view.nodes());
        if let Err(e) = self.file.save(&nodes, state.current_epoch, self.raft_id, false) {
            tracing::warn!("Could not save the cluster config file: {e}");
        }
        let Some(server) = self.server() else { return };
        let routes = self.routes();
        server.keyspace.blocking.redirect(|waiter| {
            let keys: Vec<&[u8]> = waiter.keys.iter().map(|k| k.as_ref()).collect();
            // XREAD may wait on a replica for a READONLY client; the rest write.
            let reads = waiter.argv.first().is_some_and(|name| name.eq_ignore_ascii_case(b"xread"));
            let request = Request { keys: &keys, write: !reads, asking: false, readonly: reads, migrate: false };
            routes.check(&request).err().map(|e| e.to_reply())
        });
        let master = state
            .node(&myself)
            .and_then(|me| me.master.as_deref())
            .and_then(|m| state.node(m))
            .map(|m| MasterAddr { host: m.ip.clone(), port: m.port });
        if master.is_some() {
            // A manual failover's pause ends once this node is a replica.
            self.paused_until_ms.store(0, Ordering::Release);
        }
        if server.replication.master() != master {
            match &master {
                Some(m) => tracing::warn!(
                    "Configuration change detected. Reconfiguring myself as a replica of {}:{}",
                    m.host,
                    m.port
                ),
                None => tracing::warn!("Configuration change detected. This node is now a master"),
            }
            server.follow(master);
        }
    }

    /// CLUSTER INFO.
    pub fn info(&self) -> String {
        let state = self.state();
        let (assigned, ok, pfail, fail, size, known, my_epoch) = self.render(|view| {
            let (assigned, ok, pfail, fail) = view.slot_health();
            let my_epoch = state.node(view.myself).map_or(0, |n| state.shown_epoch(n));
            (assigned, ok, pfail, fail, view.size(), state.nodes.len(), my_epoch)
        });
        let mut info = format!(
            "cluster_state:{}\r\ncluster_slots_assigned:{assigned}\r\ncluster_slots_ok:{ok}\r\n\
             cluster_slots_pfail:{pfail}\r\ncluster_slots_fail:{fail}\r\ncluster_known_nodes:{known}\r\n\
             cluster_size:{size}\r\ncluster_current_epoch:{}\r\ncluster_my_epoch:{my_epoch}\r\n",
            if self.routes().ok { "ok" } else { "fail" },
            state.current_epoch,
        );
        for (direction, counts) in [("sent", &self.stats.sent), ("received", &self.stats.received)] {
            let counts = counts.lock();
            let mut kinds: Vec<_> = counts.iter().collect();
            kinds.sort();
            for (kind, count) in &kinds {
                info.push_str(&format!("cluster_stats_messages_{kind}_{direction}:{count}\r\n"));
            }
            let total: u64 = counts.values().sum();
            info.push_str(&format!("cluster_stats_messages_{direction}:{total}\r\n"));
        }
        info.push_str("total_cluster_links_buffer_limit_exceeded:0\r\n");
        info
    }

    /// CLUSTER LINKS: one outbound link per node this node pings.
    pub fn links(&self) -> Reply {
        let state = self.state();
        let myself = self.myself();
        let seen = self.seen.lock();
        let text = |s: &str| Reply::Bulk(bytes::Bytes::copy_from_slice(s.as_bytes()));
        let links = state
            .nodes
            .values()
            .filter(|n| n.name != myself)
            .filter_map(|node| {
                let seen = seen.get(&node.name)?;
                seen.connected.then(|| {
                    Reply::Map(vec![
                        (text("direction"), text("to")),
                        (text("node"), text(&node.name)),
                        (text("create-time"), Reply::Integer(seen.link_since_ms as i64)),
                        (text("events"), text("r")),
                        (text("send-buffer-allocated"), Reply::Integer(0)),
                        (text("send-buffer-used"), Reply::Integer(0)),
                    ])
                })
            })
            .collect();
        Reply::Array(links)
    }

    /// Open bus connections (INFO's `cluster_connections`).
    pub fn connections(&self) -> usize {
        self.seen.lock().values().filter(|s| s.connected).count() * 2
    }

    /// CLUSTER COUNT-FAILURE-REPORTS: how many other nodes say `name`
    /// does not answer them (None: unknown node).
    pub fn failure_reports(&self, name: &str) -> Option<usize> {
        self.state().node(name)?;
        Some(self.reports.lock().values().filter(|reported| reported.iter().any(|n| n == name)).count())
    }

    pub fn save_config(&self) -> std::io::Result<()> {
        let nodes = self.render(|view| view.nodes());
        self.file.save(&nodes, self.state().current_epoch, self.raft_id, true)
    }

    /// Whether writes are paused here for a manual failover.
    pub fn writes_paused(&self) -> bool {
        self.paused_until_ms.load(Ordering::Acquire) > strata_engines::now_ms()
    }

    /// CLUSTER MEET: see `bus::meet`.
    pub fn meet(self: &Arc<Cluster>, ip: &str, port: u16, cport: u16) -> Result<(), CmdError> {
        let this = self.clone();
        let target = format!("{ip}:{cport}");
        let (ip, meeting) = (ip.to_string(), target.clone());
        self.block_on(async move { bus::meet(&this, &ip, port, &meeting).await }, PROPOSE_TIMEOUT * 2)
            .unwrap_or_else(|| Err(CmdError::err(format!("Timed out meeting {target}"))))
    }

    /// CLUSTER FAILOVER: promote this replica (FORCE: without waiting for
    /// the master to hand over).
    pub fn manual_failover(self: &Arc<Cluster>, force: bool) -> Result<(), CmdError> {
        let this = self.clone();
        self.block_on(async move { detector::manual_failover(&this, force).await }, PROPOSE_TIMEOUT * 2)
            .unwrap_or_else(|| Err(CmdError::err("Manual failover timed out")))
    }

    /// CLUSTER RESET: leave the cluster and start alone again (HARD: with
    /// a new id and epochs from zero).
    pub fn reset(self: &Arc<Cluster>, hard: bool) -> Result<(), CmdError> {
        let this = self.clone();
        self.block_on(async move { bus::reset(&this, hard).await }, PROPOSE_TIMEOUT * 2)
            .unwrap_or_else(|| Err(CmdError::err("CLUSTER RESET timed out")))
    }

    /// PUBLISH in cluster mode reaches every node; SPUBLISH the nodes of
    /// the channel's shard. Sent in the background: the publisher gets the
    /// local count, as in Redis.
    pub fn broadcast_publish(self: &Arc<Cluster>, shard: Option<u16>, channel: &[u8], message: &[u8]) {
        bus::broadcast_publish(self, shard, channel, message);
    }

    pub fn shutdown(&self) {
        let _ = self.block_on(async { self.raft.shutdown().await }, Duration::from_secs(2));
    }
}
