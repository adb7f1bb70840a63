//! TCP transport on the bus: the client side (a small connection pool per
//! peer, used by raft replication, forwarded writes and App requests) and the
//! listener that answers them.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::InstallSnapshotError;
use openraft::error::NetworkError;
use openraft::error::RPCError;
use openraft::error::RaftError;
use openraft::error::RemoteError;
use openraft::error::Unreachable;
use openraft::network::RPCOption;
use openraft::network::RaftNetwork;
use openraft::network::RaftNetworkFactory;
use openraft::raft::AppendEntriesRequest;
use openraft::raft::AppendEntriesResponse;
use openraft::raft::InstallSnapshotRequest;
use openraft::raft::InstallSnapshotResponse;
use openraft::raft::VoteRequest;
use openraft::raft::VoteResponse;
use parking_lot::Mutex;
use tokio::net::TcpListener;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::timeout;
use tokio::time::timeout_at;
use tokio::time::Instant;

use super::wire::read_frame;
use super::wire::write_frame;
use super::wire::Kind;
use super::wire::RaftReply;
use super::wire::RaftRequest;
use super::BusNode;
use super::Error;
use super::Machine;
use super::TypeConfig;

/// Idle connections kept per peer; more concurrent requests open more
/// connections, which are closed when returned to a full pool.
const IDLE_PER_PEER: usize = 4;
/// Connections the listener serves at once; more wait to be accepted.
const MAX_CONNECTIONS: usize = 512;
/// A connection that sends no request for this long is closed (the peer's
/// pool reconnects when it needs to).
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Writing a reply to a peer that does not read fails after this.
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// Sends requests to other nodes' bus addresses.
pub(crate) struct Transport {
    connect_timeout: Duration,
    idle: Mutex<HashMap<SocketAddr, Vec<TcpStream>>>,
}

impl Transport {
    pub(crate) fn new(connect_timeout: Duration) -> Transport {
        Transport { connect_timeout, idle: Mutex::new(HashMap::new()) }
    }

    /// Closes every idle connection.
    pub(crate) fn clear(&self) {
        self.idle.lock().clear();
    }

    /// Sends one request frame to `addr` and waits for the reply frame, all
    /// within `limit`. A pooled connection the peer has closed meanwhile (it
    /// restarted, or closed it for idleness) is retried once on a new one.
    pub(crate) async fn call(
        &self,
        addr: SocketAddr,
        kind: Kind,
        body: &[u8],
        limit: Duration,
    ) -> Result<(Kind, Vec<u8>), Error> {
        let deadline = Instant::now() + limit;
        let pooled = self.idle.lock().get_mut(&addr).and_then(Vec::pop);
        if let Some(mut stream) = pooled {
            match timeout_at(deadline, exchange(&mut stream, kind, body)).await {
                Err(_) => return Err(Error::Timeout { addr, timeout: limit }),
                Ok(Ok(Some(reply))) => {
                    self.put_back(addr, stream);
                    return Ok(reply);
                }
                Ok(Ok(None)) => {}
                Ok(Err(e)) if is_stale(&e) => {}
                Ok(Err(source)) => return Err(Error::Network { addr, source }),
            }
            tracing::debug!("bus connection to {addr} was closed; reconnecting");
        }
        let connect_deadline = deadline.min(Instant::now() + self.connect_timeout);
        let mut stream = match timeout_at(connect_deadline, TcpStream::connect(addr)).await {
            Err(_) => {
                let source = io::Error::new(io::ErrorKind::TimedOut, "connect timed out");
                return Err(Error::Unreachable { addr, source });
            }
            Ok(Err(source)) => return Err(Error::Unreachable { addr, source }),
            Ok(Ok(stream)) => stream,
        };
        // Requests are small and answered at once: don't let Nagle hold them.
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!("TCP_NODELAY on the bus connection to {addr}: {e}");
        }
        match timeout_at(deadline, exchange(&mut stream, kind, body)).await {
            Err(_) => Err(Error::Timeout { addr, timeout: limit }),
            Ok(Ok(Some(reply))) => {
                self.put_back(addr, stream);
                Ok(reply)
            }
            Ok(Ok(None)) => {
                let source = io::Error::new(io::ErrorKind::UnexpectedEof, "closed before answering");
                Err(Error::Network { addr, source })
            }
            Ok(Err(source)) => Err(Error::Network { addr, source }),
        }
    }

    /// Sends a raft request and decodes the reply.
    pub(crate) async fn call_raft<M: Machine>(
        &self,
        addr: SocketAddr,
        request: &RaftRequest<M>,
        limit: Duration,
    ) -> Result<RaftReply<M>, Error> {
        let protocol = |reason: String| Error::Protocol { addr, reason };
        let body = serde_json::to_vec(request).map_err(|e| protocol(format!("cannot encode the request: {e}")))?;
        match self.call(addr, Kind::Raft, &body, limit).await? {
            (Kind::Raft, reply) => serde_json::from_slice(&reply).map_err(|e| protocol(e.to_string())),
            (Kind::Error, reason) => Err(protocol(String::from_utf8_lossy(&reason).into_owned())),
            (kind, _) => Err(protocol(format!("{kind:?} frame answering a raft request"))),
        }
    }

    /// Sends an App request and returns the reply's bytes.
    pub(crate) async fn call_app(&self, addr: SocketAddr, request: &[u8], limit: Duration) -> Result<Vec<u8>, Error> {
        match self.call(addr, Kind::App, request, limit).await? {
            (Kind::App, reply) => Ok(reply),
            (Kind::Error, reason) => {
                Err(Error::Protocol { addr, reason: String::from_utf8_lossy(&reason).into_owned() })
            }
            (kind, _) => Err(Error::Protocol { addr, reason: format!("{kind:?} frame answering an App request") }),
        }
    }

    fn put_back(&self, addr: SocketAddr, stream: TcpStream) {
        let mut idle = self.idle.lock();
        let streams = idle.entry(addr).or_default();
        if streams.len() < IDLE_PER_PEER {
            streams.push(stream);
        }
    }
}

async fn exchange(stream: &mut TcpStream, kind: Kind, body: &[u8]) -> io::Result<Option<(Kind, Vec<u8>)>> {
    write_frame(stream, kind, body).await?;
    read_frame(stream).await
}

/// Whether a failure on a reused connection means the peer had closed it
/// before our request (so the request never ran).
fn is_stale(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionAborted)
}

/// openraft's view of the transport: one [`Peer`] per replication target.
pub(crate) struct Network<M> {
    transport: Arc<Transport>,
    _machine: PhantomData<fn() -> M>,
}

impl<M> Network<M> {
    pub(crate) fn new(transport: Arc<Transport>) -> Network<M> {
        Network { transport, _machine: PhantomData }
    }
}

impl<M: Machine> RaftNetworkFactory<TypeConfig<M>> for Network<M> {
    type Network = Peer<M>;

    async fn new_client(&mut self, target: u64, node: &BusNode) -> Peer<M> {
        Peer { transport: self.transport.clone(), target, addr: node.addr, _machine: PhantomData }
    }
}

/// Sends raft RPCs to one member.
pub(crate) struct Peer<M> {
    transport: Arc<Transport>,
    target: u64,
    addr: SocketAddr,
    _machine: PhantomData<fn() -> M>,
}

impl<M: Machine> Peer<M> {
    async fn send<E: std::error::Error>(
        &self,
        request: RaftRequest<M>,
        option: &RPCOption,
    ) -> Result<RaftReply<M>, RPCError<u64, BusNode, E>> {
        self.transport.call_raft(self.addr, &request, option.hard_ttl()).await.map_err(|e| match e {
            // openraft backs off from an unreachable node instead of retrying
            // at once.
            Error::Unreachable { .. } => RPCError::Unreachable(Unreachable::new(&e)),
            e => RPCError::Network(NetworkError::new(&e)),
        })
    }

    fn remote<E: std::error::Error>(&self, e: E) -> RPCError<u64, BusNode, E> {
        RPCError::RemoteError(RemoteError::new_with_node(self.target, BusNode { addr: self.addr }, e))
    }

    fn mismatch<E: std::error::Error>(&self) -> RPCError<u64, BusNode, E> {
        let e = Error::Protocol { addr: self.addr, reason: "reply does not match the request".into() };
        RPCError::Network(NetworkError::new(&e))
    }
}

impl<M: Machine> RaftNetwork<TypeConfig<M>> for Peer<M> {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig<M>>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RPCError<u64, BusNode, RaftError<u64>>> {
        match self.send(RaftRequest::AppendEntries(rpc), &option).await? {
            RaftReply::AppendEntries(reply) => reply.map_err(|e| self.remote(e)),
            _ => Err(self.mismatch()),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig<M>>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<u64>, RPCError<u64, BusNode, RaftError<u64, InstallSnapshotError>>> {
        match self.send(RaftRequest::InstallSnapshot(rpc), &option).await? {
            RaftReply::InstallSnapshot(reply) => reply.map_err(|e| self.remote(e)),
            _ => Err(self.mismatch()),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        option: RPCOption,
    ) -> Result<VoteResponse<u64>, RPCError<u64, BusNode, RaftError<u64>>> {
        match self.send(RaftRequest::Vote(rpc), &option).await? {
            RaftReply::Vote(reply) => reply.map_err(|e| self.remote(e)),
            _ => Err(self.mismatch()),
        }
    }
}

/// Answers the requests arriving on the bus.
pub(crate) trait Dispatch: Send + Sync + 'static {
    /// The reply frame to a request frame from `from`; `None` drops the
    /// connection.
    fn dispatch(
        self: Arc<Self>,
        from: SocketAddr,
        kind: Kind,
        body: Vec<u8>,
    ) -> impl Future<Output = Option<(Kind, Vec<u8>)>> + Send;
}

/// Accepts bus connections until `stop` turns true, serving each on a task
/// of its own; returns once every connection is closed.
pub(crate) async fn serve<D: Dispatch>(listener: TcpListener, dispatch: Arc<D>, mut stop: watch::Receiver<bool>) {
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            _ = stop.wait_for(|&stop| stop) => break,
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.wait_for(|&stop| stop) => break,
        };
        let (stream, from) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors, most likely: let some close.
                tracing::warn!("bus accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!("TCP_NODELAY on the bus connection from {from}: {e}");
        }
        let dispatch = dispatch.clone();
        connections.spawn(async move {
            serve_connection(stream, from, dispatch).await;
            drop(permit);
        });
    }
    // A stopped node answers nothing more, not even on open connections.
    connections.shutdown().await;
}

async fn serve_connection<D: Dispatch>(mut stream: TcpStream, from: SocketAddr, dispatch: Arc<D>) {
    loop {
        let (kind, body) = match timeout(IDLE_TIMEOUT, read_frame(&mut stream)).await {
            Ok(Ok(Some(frame))) => frame,
            Ok(Ok(None)) | Err(_) => return,
            Ok(Err(e)) => {
                // Frame boundaries are lost: drop the connection.
                tracing::debug!("bad frame on the bus from {from}: {e}");
                return;
            }
        };
        let Some((kind, body)) = dispatch.clone().dispatch(from, kind, body).await else {
            tracing::debug!("unanswerable {kind:?} request on the bus from {from}");
            return;
        };
        match timeout(REPLY_TIMEOUT, write_frame(&mut stream, kind, &body)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::debug!("bus reply to {from}: {e}");
                return;
            }
            Err(_) => {
                tracing::debug!("bus reply to {from} timed out");
                return;
            }
        }
    }
}
