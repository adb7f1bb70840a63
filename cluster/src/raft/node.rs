//! [`ClusterRaft`]: one node of the raft group, as the host drives it.

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::ChangeMembershipError;
use openraft::error::ClientWriteError;
use openraft::error::InitializeError;
use openraft::error::RaftError;
use openraft::ChangeMembers;
use openraft::LogId;
use openraft::Raft;
use openraft::RaftMetrics;
use openraft::ServerState;
use openraft::SnapshotPolicy;
use parking_lot::RwLock;
use parking_lot::RwLockReadGuard;
use rocksdb::DB;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::timeout_at;
use tokio::time::Instant;

use super::store;
use super::store::Fence;
use super::store::Shared;
use super::transport;
use super::transport::Dispatch;
use super::transport::Network;
use super::transport::Transport;
use super::wire::Kind;
use super::wire::LeaderOp;
use super::wire::RaftReply;
use super::wire::RaftRequest;
use super::wire::Refusal;
use super::AppHandler;
use super::Applied;
use super::BusNode;
use super::Error;
use super::Machine;
use super::Metrics;
use super::RaftConfig;
use super::Role;
use super::TypeConfig;

/// Pause before asking again for a leader (an election is under way, or the
/// leader just moved).
const RETRY_PAUSE: Duration = Duration::from_millis(50);

/// One node of the raft group that replicates `M`: owns the raft instance,
/// its storage in the host's DB and the bus listener. Cheap to share behind
/// an `Arc`; every method takes `&self`.
pub struct ClusterRaft<M: Machine> {
    core: Arc<Core<M>>,
    stop: watch::Sender<bool>,
    listener: tokio::sync::Mutex<Option<JoinHandle<()>>>,
}

/// What the handle and the bus listener share.
struct Core<M: Machine> {
    id: u64,
    /// The bus address other nodes reach this one at.
    addr: SocketAddr,
    config: RaftConfig,
    raft_config: Arc<openraft::Config>,
    db: Arc<DB>,
    shared: Arc<Shared<M>>,
    transport: Arc<Transport>,
    app: Arc<dyn AppHandler>,
    /// The running raft instance; [`ClusterRaft::reset`] replaces it.
    current: RwLock<Instance<M>>,
    /// Serializes reset and shutdown.
    lifecycle: tokio::sync::Mutex<()>,
}

/// A raft instance and the fence of its stores.
struct Instance<M: Machine> {
    raft: Raft<TypeConfig<M>>,
    fence: Arc<Fence>,
}

impl<M: Machine> Clone for Instance<M> {
    fn clone(&self) -> Self {
        Instance { raft: self.raft.clone(), fence: self.fence.clone() }
    }
}

impl<M: Machine> ClusterRaft<M> {
    /// Starts node `id`: listens on `bus_addr` (port 0 picks a free one, see
    /// [`ClusterRaft::bus_addr`]) and runs raft over the column families of
    /// `db` (see [`open_db`](super::open_db)). On a DB that already holds
    /// raft state the node resumes where it stopped; a fresh one waits, as a
    /// learner of no group, to be initialized or added to a group.
    /// `app` answers other nodes' [`send_app`](ClusterRaft::send_app)s.
    pub async fn start(
        id: u64,
        bus_addr: SocketAddr,
        db: Arc<DB>,
        app: impl AppHandler,
        config: RaftConfig,
    ) -> Result<ClusterRaft<M>, Error> {
        let raft_config = Arc::new(openraft_config(&config)?);
        let listener = TcpListener::bind(bus_addr).await.map_err(|source| Error::Bind { addr: bus_addr, source })?;
        let local = listener.local_addr().map_err(|source| Error::Bind { addr: bus_addr, source })?;
        let addr = config.announce.unwrap_or(local);
        let shared =
            Arc::new(Shared { machine: Arc::new(RwLock::new(M::default())), applied: watch::Sender::new(None) });
        let transport = Arc::new(Transport::new(config.connect_timeout));
        let instance = new_instance(id, &raft_config, &db, &shared, &transport).await?;
        let core = Arc::new(Core {
            id,
            addr,
            config,
            raft_config,
            db,
            shared,
            transport,
            app: Arc::new(app),
            current: RwLock::new(instance),
            lifecycle: tokio::sync::Mutex::new(()),
        });
        let (stop, stopped) = watch::channel(false);
        let listener = tokio::spawn(transport::serve(listener, core.clone(), stopped));
        tracing::info!("raft node {id} listening on the bus at {local}");
        Ok(ClusterRaft { core, stop, listener: tokio::sync::Mutex::new(Some(listener)) })
    }

    /// This node's raft id.
    pub fn id(&self) -> u64 {
        self.core.id
    }

    /// The bus address other nodes reach this node at.
    pub fn bus_addr(&self) -> SocketAddr {
        self.core.addr
    }

    /// Makes this node a group of its own, sole voter and so leader. Does
    /// nothing when the node is already in a group (initialized before, or
    /// added by a leader).
    pub async fn initialize_alone(&self) -> Result<(), Error> {
        let raft = self.core.raft();
        if raft.is_initialized().await.map_err(|e| Error::Stopped(e.to_string()))? {
            return Ok(());
        }
        let members = BTreeMap::from([(self.core.id, BusNode { addr: self.core.addr })]);
        match raft.initialize(members).await {
            Ok(()) | Err(RaftError::APIError(InitializeError::NotAllowed(_))) => Ok(()),
            Err(RaftError::APIError(e)) => Err(Error::Refused(e.to_string())),
            Err(RaftError::Fatal(e)) => Err(Error::Stopped(e.to_string())),
        }
    }

    /// Commits `entry` through the group's leader (forwarded when this node
    /// is not the leader) and returns the machine's response once it is
    /// applied on the leader. Retries while no leader is known, up to
    /// [`RaftConfig::write_timeout`].
    ///
    /// On [`Error::Uncommitted`], [`Error::Timeout`] or [`Error::Network`]
    /// the entry may have been applied or not; make entries safe to repeat
    /// (e.g. carry an epoch).
    pub async fn write(&self, entry: M::Entry) -> Result<M::Response, Error> {
        match self.leader_op(LeaderOp::Write(entry)).await? {
            Applied::Response(response) => Ok(response),
            Applied::Raft => Err(Error::Refused("the leader answered a write without a response".into())),
        }
    }

    /// Adds node `id` at bus address `addr` as a learner (non-voting member)
    /// and waits until it has caught up with the log, up to
    /// [`RaftConfig::write_timeout`] ([`Error::LearnerLagging`]: it stays a
    /// learner and keeps catching up). A node already in the group keeps its
    /// recorded address.
    pub async fn add_learner(&self, id: u64, addr: SocketAddr) -> Result<(), Error> {
        self.leader_op(LeaderOp::AddLearner { id, node: BusNode { addr } }).await.map(drop)
    }

    /// Makes learner `id` a voter. Raft stays available while a majority of
    /// the voters is: the host keeps their number odd and small (at most 5).
    pub async fn promote(&self, id: u64) -> Result<(), Error> {
        self.leader_op(LeaderOp::Promote(id)).await.map(drop)
    }

    /// Removes node `id` from the group, voter or learner. A removed node
    /// keeps its own log and state; [`ClusterRaft::reset`] it before it joins
    /// a group again.
    pub async fn remove(&self, id: u64) -> Result<(), Error> {
        self.leader_op(LeaderOp::Remove(id)).await.map(drop)
    }

    /// Wipes this node's raft log, vote and machine and restarts it as a
    /// pristine node, so that another group's leader can add it as a learner
    /// (a lone node joining another group). Its old group must no longer
    /// count it as a member: a pristine node accepts any leader.
    pub async fn reset(&self) -> Result<(), Error> {
        let _lifecycle = self.core.lifecycle.lock().await;
        if *self.stop.borrow() {
            return Err(Error::Stopped("the node was shut down".into()));
        }
        let old = self.core.current.read().clone();
        if let Err(e) = old.raft.shutdown().await {
            tracing::warn!("raft node {} did not stop cleanly for a reset: {e}", self.core.id);
        }
        // The old state machine task may still be applying: fence it off
        // before wiping what it writes.
        old.fence.retire();
        store::wipe(&self.core.db)?;
        let core = &self.core;
        let fresh = new_instance(core.id, &core.raft_config, &core.db, &core.shared, &core.transport).await?;
        *core.current.write() = fresh;
        tracing::info!("raft node {} reset to a pristine node", core.id);
        Ok(())
    }

    /// Read access to the applied machine. Hold it briefly: applying waits
    /// for it.
    pub fn state(&self) -> RwLockReadGuard<'_, M> {
        self.core.shared.machine.read()
    }

    /// The applied machine, for a host that keeps a handle of its own.
    pub fn machine(&self) -> Arc<RwLock<M>> {
        self.core.shared.machine.clone()
    }

    /// Changes after every applied batch of entries, installed snapshot and
    /// reset, to the last applied log index (`None`: nothing applied).
    pub fn subscribe(&self) -> watch::Receiver<Option<u64>> {
        self.core.shared.applied.subscribe()
    }

    /// This node's view of the group now.
    pub fn metrics(&self) -> Metrics {
        to_metrics(&self.core.raft().metrics().borrow())
    }

    /// Waits until `condition` holds for this node's [`Metrics`], up to
    /// `limit`, and returns them.
    pub async fn wait_for(&self, limit: Duration, condition: impl Fn(&Metrics) -> bool) -> Result<Metrics, Error> {
        let deadline = Instant::now() + limit;
        loop {
            let mut metrics = self.core.raft().metrics();
            loop {
                let now = to_metrics(&metrics.borrow_and_update());
                if condition(&now) {
                    return Ok(now);
                }
                match timeout_at(deadline, metrics.changed()).await {
                    Err(_) => return Err(Error::WaitTimeout(limit)),
                    Ok(Ok(())) => {}
                    // The instance stopped (a reset replaces it): look again.
                    Ok(Err(_)) => break,
                }
            }
            if timeout_at(deadline, tokio::time::sleep(RETRY_PAUSE)).await.is_err() {
                return Err(Error::WaitTimeout(limit));
            }
        }
    }

    /// Sends an opaque App request to the node listening at `addr` (in this
    /// group or not) and returns its handler's reply, within
    /// [`RaftConfig::request_timeout`].
    pub async fn send_app(&self, addr: SocketAddr, request: &[u8]) -> Result<Vec<u8>, Error> {
        self.core.transport.call_app(addr, request, self.core.config.request_timeout).await
    }

    /// Stops raft and the bus listener; the port is free when this returns.
    /// Later calls fail with [`Error::Stopped`].
    pub async fn shutdown(&self) {
        let _lifecycle = self.core.lifecycle.lock().await;
        self.stop.send_replace(true);
        if let Some(listener) = self.listener.lock().await.take() {
            if let Err(e) = listener.await {
                tracing::warn!("raft node {} bus listener: {e}", self.core.id);
            }
        }
        if let Err(e) = self.core.raft().shutdown().await {
            tracing::warn!("raft node {} did not stop cleanly: {e}", self.core.id);
        }
        self.core.transport.clear();
    }

    /// Runs `op` on the leader: here when this node leads, else forwarded to
    /// the leader it (or the node it asked) knows of, until one takes it or
    /// the write timeout passes.
    async fn leader_op(&self, op: LeaderOp<M>) -> Result<Applied<M::Response>, Error> {
        let limit = self.core.config.write_timeout;
        let deadline = Instant::now() + limit;
        let mut hint: Option<(u64, BusNode)> = None;
        loop {
            let target = match hint.take() {
                Some((leader, node)) if leader != self.core.id => Some(node),
                _ => match self.core.run_local(op.clone(), deadline).await {
                    Ok(done) => return Ok(done),
                    Err(Refusal::NotLeader(leader)) => {
                        leader.filter(|(leader, _)| *leader != self.core.id).map(|(_, node)| node)
                    }
                    Err(Refusal::Busy(_)) => None,
                    Err(refusal) => return Err(refusal.into_error(limit)),
                },
            };
            if let Some(node) = target {
                let remaining = deadline.saturating_duration_since(Instant::now());
                match self.core.transport.call_raft(node.addr, &RaftRequest::Leader(op.clone()), remaining).await {
                    Ok(RaftReply::Leader(Ok(done))) => return Ok(done),
                    Ok(RaftReply::Leader(Err(Refusal::NotLeader(leader)))) => hint = leader,
                    // The leader is going away or busy, or gone (nothing was
                    // sent): ask again after a pause.
                    Ok(RaftReply::Leader(Err(Refusal::Stopped(_) | Refusal::Busy(_))))
                    | Err(Error::Unreachable { .. }) => {}
                    Ok(RaftReply::Leader(Err(refusal))) => return Err(refusal.into_error(limit)),
                    Ok(_) => {
                        let reason = "reply does not match a forwarded request".into();
                        return Err(Error::Protocol { addr: node.addr, reason });
                    }
                    Err(e) => return Err(e),
                }
            }
            if Instant::now() + RETRY_PAUSE >= deadline {
                return Err(Error::NoLeader(limit));
            }
            tokio::time::sleep(RETRY_PAUSE).await;
        }
    }
}

/// Stops the listener if the host forgot [`ClusterRaft::shutdown`] (raft
/// stops once the last handle to it is gone).
impl<M: Machine> Drop for ClusterRaft<M> {
    fn drop(&mut self) {
        self.stop.send_replace(true);
    }
}

impl<M: Machine> Core<M> {
    fn raft(&self) -> Raft<TypeConfig<M>> {
        self.current.read().raft.clone()
    }

    /// Runs `op` on this node's raft: done only when this node leads. A
    /// leader cut off from its majority commits nothing; openraft would wait
    /// for it without end, so the wait stops at `deadline`.
    async fn run_local(&self, op: LeaderOp<M>, deadline: Instant) -> Result<Applied<M::Response>, Refusal> {
        let raft = self.raft();
        let change_membership = |change| within(deadline, raft.change_membership(change, false));
        match op {
            LeaderOp::Write(entry) => {
                within(deadline, raft.client_write(entry)).await?.map(|written| written.data).map_err(refusal)
            }
            LeaderOp::AddLearner { id, node } => {
                // Not openraft's blocking add: that waits without a bound.
                let added = within(deadline, raft.add_learner(id, node, false)).await?.map_err(refusal)?;
                self.wait_caught_up(&raft, id, added.log_id, deadline).await.map(|()| Applied::Raft)
            }
            LeaderOp::Promote(id) => {
                let change = ChangeMembers::AddVoterIds(BTreeSet::from([id]));
                change_membership(change).await?.map(|_| Applied::Raft).map_err(refusal)
            }
            LeaderOp::Remove(id) => {
                let is_voter = raft.metrics().borrow().membership_config.membership().voter_ids().any(|v| v == id);
                // `retain = false`: a removed voter leaves the group entirely
                // instead of staying on as a learner.
                let change = match is_voter {
                    true => ChangeMembers::RemoveVoters(BTreeSet::from([id])),
                    false => ChangeMembers::RemoveNodes(BTreeSet::from([id])),
                };
                change_membership(change).await?.map(|_| Applied::Raft).map_err(refusal)
            }
        }
    }

    /// Waits until the leader has replicated to learner `id` up to the
    /// membership entry that added it.
    async fn wait_caught_up(
        &self,
        raft: &Raft<TypeConfig<M>>,
        id: u64,
        added: LogId<u64>,
        deadline: Instant,
    ) -> Result<(), Refusal> {
        let caught_up = |metrics: &RaftMetrics<u64, BusNode>| {
            let matched = metrics.replication.as_ref().and_then(|replication| replication.get(&id).copied());
            matched.flatten().is_some_and(|matched| matched.index >= added.index)
        };
        let mut metrics = raft.metrics();
        let outcome = timeout_at(deadline, metrics.wait_for(|m| caught_up(m) || m.state != ServerState::Leader))
            .await
            .map(|waited| waited.map(|m| caught_up(&m)));
        match outcome {
            Ok(Ok(true)) => Ok(()),
            // Leadership moved on: the learner catches up from the new leader.
            Ok(Ok(false)) | Err(_) => Err(Refusal::LearnerLagging { id }),
            Ok(Err(_)) => Err(Refusal::Stopped("raft stopped".into())),
        }
    }

    async fn answer(&self, request: RaftRequest<M>) -> RaftReply<M> {
        let raft = self.raft();
        match request {
            RaftRequest::AppendEntries(rpc) => RaftReply::AppendEntries(raft.append_entries(rpc).await),
            RaftRequest::Vote(rpc) => RaftReply::Vote(raft.vote(rpc).await),
            RaftRequest::InstallSnapshot(rpc) => RaftReply::InstallSnapshot(raft.install_snapshot(rpc).await),
            RaftRequest::Leader(op) => {
                RaftReply::Leader(self.run_local(op, Instant::now() + self.config.write_timeout).await)
            }
        }
    }
}

impl<M: Machine> Dispatch for Core<M> {
    async fn dispatch(self: Arc<Self>, from: SocketAddr, kind: Kind, body: Vec<u8>) -> Option<(Kind, Vec<u8>)> {
        match kind {
            Kind::App => Some((Kind::App, self.app.handle(from, body).await)),
            Kind::Raft => {
                let request = match serde_json::from_slice(&body) {
                    Ok(request) => request,
                    // The frame was whole, so the connection can go on.
                    Err(e) => return Some((Kind::Error, format!("bad raft request: {e}").into_bytes())),
                };
                let reply = self.answer(request).await;
                Some(match serde_json::to_vec(&reply) {
                    Ok(reply) => (Kind::Raft, reply),
                    Err(e) => (Kind::Error, format!("cannot encode the reply: {e}").into_bytes()),
                })
            }
            Kind::Error => None,
        }
    }
}

impl Refusal {
    fn into_error(self, limit: Duration) -> Error {
        match self {
            Refusal::NotLeader(_) | Refusal::Busy(_) => Error::NoLeader(limit),
            Refusal::LearnerLagging { id } => Error::LearnerLagging { id, timeout: limit },
            Refusal::Uncommitted => Error::Uncommitted(limit),
            Refusal::Stopped(reason) => Error::Stopped(reason),
            Refusal::Failed(reason) => Error::Refused(reason),
        }
    }
}

fn refusal(e: RaftError<u64, ClientWriteError<u64, BusNode>>) -> Refusal {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(forward)) => {
            Refusal::NotLeader(forward.leader_id.zip(forward.leader_node))
        }
        RaftError::APIError(ClientWriteError::ChangeMembershipError(ChangeMembershipError::InProgress(e))) => {
            Refusal::Busy(e.to_string())
        }
        RaftError::APIError(ClientWriteError::ChangeMembershipError(e)) => Refusal::Failed(e.to_string()),
        RaftError::Fatal(e) => Refusal::Stopped(e.to_string()),
    }
}

/// Awaits `future` until `deadline`; past it, the op may still commit.
async fn within<T>(deadline: Instant, future: impl Future<Output = T>) -> Result<T, Refusal> {
    timeout_at(deadline, future).await.map_err(|_| Refusal::Uncommitted)
}

/// Opens the stores over `db` and starts a raft instance on them.
async fn new_instance<M: Machine>(
    id: u64,
    raft_config: &Arc<openraft::Config>,
    db: &Arc<DB>,
    shared: &Arc<Shared<M>>,
    transport: &Arc<Transport>,
) -> Result<Instance<M>, Error> {
    let fence = Fence::new();
    let (log, machine) = store::open(db.clone(), shared.clone(), fence.clone())?;
    let network = Network::new(transport.clone());
    let raft =
        Raft::new(id, raft_config.clone(), network, log, machine).await.map_err(|e| Error::Stopped(e.to_string()))?;
    Ok(Instance { raft, fence })
}

fn openraft_config(config: &RaftConfig) -> Result<openraft::Config, Error> {
    let millis = |d: Duration| d.as_millis().try_into().unwrap_or(u64::MAX);
    let election = millis(config.election_timeout);
    openraft::Config {
        cluster_name: "strata".into(),
        heartbeat_interval: millis(config.heartbeat),
        election_timeout_min: election,
        election_timeout_max: election.saturating_mul(2),
        install_snapshot_timeout: millis(config.request_timeout),
        snapshot_policy: SnapshotPolicy::LogsSinceLast(config.snapshot_every),
        max_in_snapshot_log_to_keep: config.keep_after_snapshot,
        ..Default::default()
    }
    .validate()
    .map_err(|e| Error::Config(e.to_string()))
}

fn to_metrics(metrics: &RaftMetrics<u64, BusNode>) -> Metrics {
    let membership = metrics.membership_config.membership();
    let addrs = |ids: &mut dyn Iterator<Item = u64>| -> BTreeMap<u64, SocketAddr> {
        ids.filter_map(|id| membership.get_node(&id).map(|node| (id, node.addr))).collect()
    };
    Metrics {
        id: metrics.id,
        role: match metrics.state {
            ServerState::Leader => Role::Leader,
            ServerState::Candidate => Role::Candidate,
            ServerState::Follower => Role::Follower,
            ServerState::Learner => Role::Learner,
            ServerState::Shutdown => Role::Shutdown,
        },
        term: metrics.current_term,
        leader: metrics.current_leader,
        voters: addrs(&mut membership.voter_ids()),
        learners: addrs(&mut membership.learner_ids()),
        last_log_index: metrics.last_log_index,
        last_applied: metrics.last_applied.map(|id| id.index),
        snapshot: metrics.snapshot.map(|id| id.index),
    }
}
