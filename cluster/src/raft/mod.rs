//! The Raft group that replicates the cluster configuration between nodes.
//!
//! Built on openraft 0.9 and generic over the replicated state ([`Machine`]),
//! which the host defines. Three pieces:
//! - `store`: the raft log, vote and applied machine in two RocksDB column
//!   families of a small DB of their own ([`open_db`]);
//! - `transport`: length-prefixed frames over TCP on the node's bus address,
//!   carrying the raft RPCs, writes forwarded to the leader and the host's
//!   opaque [`AppHandler`] requests;
//! - [`ClusterRaft`]: the handle the host starts, writes through and watches.

mod node;
mod store;
mod transport;
mod wire;

use std::collections::BTreeMap;
use std::fmt;
use std::fmt::Debug;
use std::future::Future;
use std::io;
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde::Serialize;

pub use node::ClusterRaft;
pub use store::open_db;
pub use store::LOG_CF;
pub use store::META_CF;

/// The replicated application state: entries change it deterministically.
pub trait Machine: Default + Clone + Serialize + DeserializeOwned + Send + Sync + 'static {
    type Entry: Clone + Debug + Serialize + DeserializeOwned + Send + Sync + 'static;
    type Response: Clone + Debug + Serialize + DeserializeOwned + Send + Sync + 'static;
    /// Applies one committed entry (must be deterministic).
    fn apply(&mut self, entry: &Self::Entry) -> Self::Response;
}

/// openraft's type configuration for a [`Machine`]. `declare_raft_types!`
/// cannot take a generic parameter, so the traits openraft wants are written
/// out by hand (a derive would demand them of `M` too).
pub struct TypeConfig<M>(PhantomData<fn() -> M>);

impl<M> Clone for TypeConfig<M> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<M> Copy for TypeConfig<M> {}
impl<M> Default for TypeConfig<M> {
    fn default() -> Self {
        TypeConfig(PhantomData)
    }
}
impl<M> PartialEq for TypeConfig<M> {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
impl<M> Eq for TypeConfig<M> {}
impl<M> PartialOrd for TypeConfig<M> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<M> Ord for TypeConfig<M> {
    fn cmp(&self, _: &Self) -> std::cmp::Ordering {
        std::cmp::Ordering::Equal
    }
}
impl<M> Debug for TypeConfig<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TypeConfig")
    }
}

impl<M: Machine> openraft::RaftTypeConfig for TypeConfig<M> {
    type D = M::Entry;
    type R = Applied<M::Response>;
    type NodeId = u64;
    type Node = BusNode;
    type Entry = openraft::Entry<Self>;
    type SnapshotData = io::Cursor<Vec<u8>>;
    type AsyncRuntime = openraft::TokioRuntime;
    type Responder = openraft::impls::OneshotResponder<Self>;
}

/// What applying one log entry answered. An enum rather than an `Option`:
/// JSON would read `Some(None)` of an `Option` response back as `None`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Applied<R> {
    /// The machine's response to an entry from [`ClusterRaft::write`].
    Response(R),
    /// Raft's own entries (blank, membership) have no response.
    Raft,
}

/// A group member as raft's membership records it: where its bus listens.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BusNode {
    pub addr: SocketAddr,
}

/// openraft wants a default node; no real member has an unspecified address.
impl Default for BusNode {
    fn default() -> Self {
        BusNode { addr: SocketAddr::from(([0, 0, 0, 0], 0)) }
    }
}

/// The future an [`AppHandler`] returns: the reply's bytes.
pub type AppFuture = Pin<Box<dyn Future<Output = Vec<u8>> + Send>>;

/// Answers the opaque `App` requests other nodes send to this node's bus
/// (MEET handshakes, failure-detection pings, pub/sub fan-out): the bytes
/// mean whatever the host says. `from` is the peer's socket address (its IP is
/// what a MEET without an announced address has to go by).
pub trait AppHandler: Send + Sync + 'static {
    fn handle(&self, from: SocketAddr, request: Vec<u8>) -> AppFuture;
}

impl<F, Fut> AppHandler for F
where
    F: Fn(SocketAddr, Vec<u8>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Vec<u8>> + Send + 'static,
{
    fn handle(&self, from: SocketAddr, request: Vec<u8>) -> AppFuture {
        Box::pin(self(from, request))
    }
}

/// Timings and limits of the raft layer; the defaults suit a LAN.
#[derive(Clone, Debug)]
pub struct RaftConfig {
    /// How often the leader sends heartbeats; also the deadline of one
    /// append-entries RPC.
    pub heartbeat: Duration,
    /// A follower that hears no leader for a random time in
    /// `[election_timeout, 2 * election_timeout)` stands for election.
    pub election_timeout: Duration,
    /// Connecting to a peer fails after this: a dead node answers quickly.
    pub connect_timeout: Duration,
    /// Deadline of an App request and of a snapshot transfer.
    pub request_timeout: Duration,
    /// Deadline of a write or membership change, forwarding and waiting for a
    /// leader included, and of a new learner catching up.
    pub write_timeout: Duration,
    /// Build a snapshot (and so allow purging the log) every this many
    /// applied entries.
    pub snapshot_every: u64,
    /// Entries kept in the log after a snapshot covers them, so a briefly
    /// lagging follower catches up from the log instead of a snapshot.
    pub keep_after_snapshot: u64,
    /// The bus address other nodes reach this one at, when it differs from
    /// the listening address (an unspecified IP, NAT). Used when this node
    /// puts itself into a membership ([`ClusterRaft::initialize_alone`]).
    pub announce: Option<SocketAddr>,
}

impl Default for RaftConfig {
    fn default() -> Self {
        RaftConfig {
            heartbeat: Duration::from_millis(150),
            election_timeout: Duration::from_millis(1000),
            connect_timeout: Duration::from_millis(500),
            request_timeout: Duration::from_secs(2),
            write_timeout: Duration::from_secs(5),
            snapshot_every: 1000,
            keep_after_snapshot: 100,
            announce: None,
        }
    }
}

/// What this node is in its group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Leader,
    Candidate,
    Follower,
    /// Not a voter (or not yet in any group: a fresh or reset node).
    Learner,
    Shutdown,
}

/// A snapshot of this node's view of the group, for INFO-style reporting and
/// for waiting on a condition ([`ClusterRaft::wait_for`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Metrics {
    pub id: u64,
    pub role: Role,
    pub term: u64,
    pub leader: Option<u64>,
    pub voters: BTreeMap<u64, SocketAddr>,
    pub learners: BTreeMap<u64, SocketAddr>,
    pub last_log_index: Option<u64>,
    pub last_applied: Option<u64>,
    /// The last entry the latest snapshot covers.
    pub snapshot: Option<u64>,
}

/// Errors of the raft layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No leader accepted the request before the deadline (an election is
    /// under way, or this node is cut off from the majority).
    #[error("no leader accepted the request within {0:?}")]
    NoLeader(Duration),
    /// The leader took the request but could not commit it in time (it is
    /// cut off from its majority, most likely): it may still take effect.
    #[error("the leader did not commit the request within {0:?}")]
    Uncommitted(Duration),
    /// The request was sent but no answer came in time: it may have taken
    /// effect or not.
    #[error("no answer from {addr} within {timeout:?}")]
    Timeout { addr: SocketAddr, timeout: Duration },
    /// The peer could not be reached: nothing was sent.
    #[error("cannot reach {addr}: {source}")]
    Unreachable { addr: SocketAddr, source: io::Error },
    /// The connection failed after the request was sent: it may have taken
    /// effect or not.
    #[error("connection to {addr} failed: {source}")]
    Network { addr: SocketAddr, source: io::Error },
    /// The peer answered with a frame we cannot read, or an error frame.
    #[error("bad answer from {addr}: {reason}")]
    Protocol { addr: SocketAddr, reason: String },
    /// The leader refused the request (e.g. promoting a node that is not a
    /// learner).
    #[error("refused: {0}")]
    Refused(String),
    /// A new learner did not catch up in time (it stays a learner).
    #[error("learner {id} did not catch up within {timeout:?}")]
    LearnerLagging { id: u64, timeout: Duration },
    /// Raft on this node has stopped (shut down, or a storage failure).
    #[error("raft stopped: {0}")]
    Stopped(String),
    /// [`ClusterRaft::wait_for`]'s condition did not hold in time.
    #[error("the awaited condition did not hold within {0:?}")]
    WaitTimeout(Duration),
    #[error("bad raft configuration: {0}")]
    Config(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: io::Error },
    #[error("raft storage: {0}")]
    Storage(String),
}
