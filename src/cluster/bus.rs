//! What nodes say to each other on the cluster bus besides Raft's own
//! messages: MEET handshakes and joins, pings, pub/sub, and a master's
//! hand-over in a manual failover. Messages are JSON in the Raft layer's
//! application frames; every exchange is bounded by a timeout.

use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use strata_cluster::state::{Applied, Entry, Node};

use super::Cluster;
use crate::error::CmdError;

/// How long an exchange that changes membership may take: admitting a
/// node waits until it has caught up with the log.
pub const JOIN_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Serialize, Deserialize)]
pub enum Message {
    /// Who are you, and how many nodes do you know?
    Hello,
    /// Add this node to your group, with the slots it claimed alone.
    Join { node: Node, slots: Vec<u16> },
    /// MEET this address yourself (you know no other node: you join me).
    Meet { ip: String, port: u16, cport: u16 },
    /// Liveness, with what the sender sees: its replication offset, how
    /// long its link to its master has been down, the nodes it finds
    /// unresponsive.
    Ping { from: String, offset: u64, link_down_ms: u64, timed_out: Vec<String> },
    /// Deliver a published message to this node's subscribers.
    Publish { shard: bool, channel: Vec<u8>, message: Vec<u8> },
    /// Manual failover: pause writes for `millis` and say your offset.
    PauseForFailover { millis: u64 },
}

#[derive(Debug, Serialize, Deserialize)]
pub enum Answer {
    Hello { name: String, known: usize },
    Done(Result<(), String>),
    Pong { offset: u64, link_down_ms: u64, timed_out: Vec<String> },
    Paused { offset: u64 },
}

impl Message {
    /// The name CLUSTER INFO counts it under (Redis's where one exists).
    fn kind(&self) -> &'static str {
        match self {
            Message::Hello | Message::Join { .. } | Message::Meet { .. } => "meet",
            Message::Ping { .. } => "ping",
            Message::Publish { shard: false, .. } => "publish",
            Message::Publish { shard: true, .. } => "publishshard",
            Message::PauseForFailover { .. } => "mfstart",
        }
    }
}

/// The bus's application handler: answers other nodes' messages for the
/// cluster it is attached to.
#[derive(Clone, Default)]
pub struct Handler {
    cluster: Arc<OnceLock<Weak<Cluster>>>,
}

impl Handler {
    pub fn new() -> Handler {
        Handler::default()
    }

    pub fn attach(&self, cluster: &Arc<Cluster>) {
        let _ = self.cluster.set(Arc::downgrade(cluster));
    }

    /// Answers one request (bytes in, bytes out).
    pub async fn answer(&self, request: Vec<u8>) -> Vec<u8> {
        let answer = match (serde_json::from_slice::<Message>(&request), self.cluster.get().and_then(Weak::upgrade)) {
            (Ok(message), Some(cluster)) => {
                cluster.stats.received(message.kind());
                handle(&cluster, message).await
            }
            (Err(e), _) => Answer::Done(Err(format!("bad bus message: {e}"))),
            (_, None) => Answer::Done(Err("this node is starting".into())),
        };
        serde_json::to_vec(&answer).expect("answers serialize")
    }
}

async fn handle(cluster: &Arc<Cluster>, message: Message) -> Answer {
    match message {
        Message::Hello => Answer::Hello { name: cluster.myself(), known: cluster.state().nodes.len() },
        Message::Join { node, slots } => Answer::Done(admit(cluster, node, slots).await),
        Message::Meet { ip, port, cport } => {
            let target = format!("{ip}:{cport}");
            Answer::Done(meet(cluster, &ip, port, &target).await.map_err(|e| e.to_string()))
        }
        Message::Ping { from, offset, link_down_ms, timed_out } => {
            cluster.pinged_by(&from, offset, link_down_ms, timed_out);
            let (offset, link_down_ms, timed_out) = cluster.liveness_report();
            Answer::Pong { offset, link_down_ms, timed_out }
        }
        Message::Publish { shard, channel, message } => {
            if let Some(server) = cluster.server() {
                let (channel, message) = (bytes::Bytes::from(channel), bytes::Bytes::from(message));
                match shard {
                    true => server.pubsub.spublish(&channel, &message),
                    false => server.pubsub.publish(&channel, &message),
                };
            }
            Answer::Done(Ok(()))
        }
        Message::PauseForFailover { millis } => {
            let until = strata_engines::now_ms() + millis;
            cluster.paused_until_ms.store(until, std::sync::atomic::Ordering::Release);
            tracing::warn!("Manual failover requested by a replica: writes paused for {millis} ms");
            Answer::Paused { offset: cluster.replication_offset() }
        }
    }
}

/// Sends a message to a bus address and reads the answer.
pub async fn ask(cluster: &Cluster, address: &str, message: &Message) -> Result<Answer, String> {
    cluster.stats.sent(message.kind());
    let request = serde_json::to_vec(message).expect("messages serialize");
    let address: std::net::SocketAddr = address.parse().map_err(|_| format!("bad bus address {address}"))?;
    let limit = match message {
        // A ping unanswered for half the node timeout is a missed ping.
        Message::Ping { .. } => {
            (cluster.settings.node_timeout / 2).clamp(Duration::from_millis(200), Duration::from_secs(2))
        }
        _ => JOIN_TIMEOUT,
    };
    let reply = tokio::time::timeout(limit, cluster.raft.send_app(address, &request))
        .await
        .map_err(|_| format!("no answer from {address}"))?
        .map_err(|e| format!("can't reach {address}: {e}"))?;
    serde_json::from_slice(&reply).map_err(|e| format!("bad answer from {address}: {e}"))
}

fn done(answer: Result<Answer, String>) -> Result<(), String> {
    match answer? {
        Answer::Done(result) => result,
        other => Err(format!("unexpected answer {other:?}")),
    }
}

/// The bus address of a node: ip:cport.
pub fn bus_address(node: &Node) -> String {
    format!("{}:{}", node.ip, node.cport)
}

/// The leader admits a node into the group: its record and slots as one
/// entry, then Raft membership as a learner so the log reaches it (the
/// detector makes it a voter while the group has fewer than five, and
/// keeps membership in line with the state if this step fails). Another
/// node passes the request on to the leader.
async fn admit(cluster: &Arc<Cluster>, node: Node, slots: Vec<u16>) -> Result<(), String> {
    let metrics = cluster.metrics();
    if metrics.leader != Some(cluster.raft_id) {
        let state = cluster.state();
        let leader = metrics
            .leader
            .and_then(|id| state.nodes.values().find(|n| n.raft_id == id))
            .ok_or("the cluster has no leader now")?;
        return done(ask(cluster, &bus_address(leader), &Message::Join { node, slots }).await);
    }
    let (raft_id, address) = (node.raft_id, bus_address(&node));
    if let Applied::Err(e) = cluster.commit(Entry::Join { node, slots }).await.map_err(|e| e.to_string())? {
        return Err(e);
    }
    let address = address.parse().map_err(|_| format!("bad bus address {address}"))?;
    cluster.raft.add_learner(raft_id, address).await.map_err(|e| e.to_string())
}

/// This node's IP as another node would reach it: the announced or bound
/// address, else the local end of a connection to `target`.
async fn my_ip_towards(cluster: &Cluster, target: &str) -> String {
    if cluster.settings.ip != "127.0.0.1" {
        return cluster.settings.ip.clone();
    }
    match tokio::net::TcpStream::connect(target).await.and_then(|s| s.local_addr()) {
        Ok(local) => local.ip().to_string(),
        Err(_) => cluster.settings.ip.clone(),
    }
}

/// CLUSTER MEET: the node that knows no other node joins the other's
/// group, whichever side received MEET; two groups of several nodes each
/// are not merged.
pub async fn meet(cluster: &Arc<Cluster>, ip: &str, port: u16, target: &str) -> Result<(), CmdError> {
    let unreachable = |e: String| CmdError::err(format!("Can't meet {ip}:{port}: {e}"));
    let (name, known) = match ask(cluster, target, &Message::Hello).await.map_err(unreachable)? {
        Answer::Hello { name, known } => (name, known),
        other => return Err(unreachable(format!("unexpected answer {other:?}"))),
    };
    let state = cluster.state();
    if name == cluster.myself() || state.node(&name).is_some() {
        return Ok(());
    }
    if state.nodes.len() <= 1 {
        return join_group(cluster, target).await.map_err(unreachable);
    }
    if known <= 1 {
        let me = cluster.my_record();
        let meet_me = Message::Meet { ip: my_ip_towards(cluster, target).await, port: me.port, cport: me.cport };
        return done(ask(cluster, target, &meet_me).await).map_err(unreachable);
    }
    Err(CmdError::err(format!(
        "Can't meet {ip}:{port}: both nodes are in clusters of several nodes (a node joins with MEET while it knows \
         no other node; use CLUSTER RESET on one side first)"
    )))
}

/// A lone node joins the group `target` belongs to, bringing its slots
/// and epoch; if the group refuses (slots taken), it starts alone again
/// with what it had.
async fn join_group(cluster: &Arc<Cluster>, target: &str) -> Result<(), String> {
    let mut me = cluster.my_record();
    me.ip = my_ip_towards(cluster, target).await;
    let myself = me.name.clone();
    let slots: Vec<u16> = cluster.state().slots.ranges_of(&myself).into_iter().flat_map(|(a, b)| a..=b).collect();
    cluster.raft.reset().await.map_err(|e| e.to_string())?;
    let joined = done(ask(cluster, target, &Message::Join { node: me.clone(), slots: slots.clone() }).await);
    if let Err(e) = joined {
        tracing::warn!("Joining the cluster at {target} failed ({e}): this node starts alone again");
        start_alone(cluster, me, slots).await?;
        return Err(e);
    }
    // The group's log reaches this node as a learner: wait until it has
    // applied its own joining.
    let deadline = tokio::time::Instant::now() + super::PROPOSE_TIMEOUT;
    while cluster.state().node(&myself).is_none() {
        if tokio::time::Instant::now() >= deadline {
            return Err("joined, but the cluster's state has not reached this node yet".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cluster.reconcile();
    Ok(())
}

/// A group of this node alone, holding `me` and `slots`.
async fn start_alone(cluster: &Arc<Cluster>, me: Node, slots: Vec<u16>) -> Result<(), String> {
    cluster.raft.reset().await.map_err(|e| e.to_string())?;
    cluster.raft.initialize_alone().await.map_err(|e| e.to_string())?;
    match cluster.commit(Entry::Join { node: me, slots }).await.map_err(|e| e.to_string())? {
        Applied::Err(e) => Err(e),
        _ => {
            cluster.reconcile();
            Ok(())
        }
    }
}

/// CLUSTER RESET: the node leaves its group (an entry the others apply)
/// and starts alone, a master without slots; HARD also takes a new id
/// and starts epochs from zero.
pub async fn reset(cluster: &Arc<Cluster>, hard: bool) -> Result<(), CmdError> {
    let myself = cluster.myself();
    let state = cluster.state();
    // A node already forgotten (redis-cli --cluster del-node) has left.
    if state.node(&myself).is_some() && state.nodes.len() > 1 {
        match cluster.commit(Entry::Leave { node: myself.clone() }).await {
            Ok(Applied::Err(e)) => return Err(CmdError::Custom(e)),
            Ok(_) => {}
            Err(e) => return Err(CmdError::Custom(format!("CLUSTERDOWN can't leave the cluster now: {e}"))),
        }
    }
    // Out of the group's membership before the reset: a pristine node
    // accepts any leader, and the old group's would take it back.
    let metrics = cluster.metrics();
    let members = metrics.voters.keys().chain(metrics.learners.keys());
    if members.filter(|&&id| id != cluster.raft_id).count() > 0 {
        if let Err(e) = cluster.raft.remove(cluster.raft_id).await {
            tracing::warn!("Leaving the cluster's Raft group: {e}");
        }
    }
    let mut me = cluster.my_record();
    me.master = None;
    if hard {
        me.name = super::nodes_file::new_node_name();
        me.config_epoch = 0;
        *cluster.myself.write() = me.name.clone();
    }
    cluster.seen.lock().clear();
    cluster.reports.lock().clear();
    start_alone(cluster, me, Vec::new()).await.map_err(CmdError::err)
}

/// Sends a published message to the other nodes (all of them, or the
/// nodes of the shard serving `shard`'s slot) in the background.
pub fn broadcast_publish(cluster: &Arc<Cluster>, shard: Option<u16>, channel: &[u8], message: &[u8]) {
    let state = cluster.state();
    let myself = cluster.myself();
    let owner = shard.and_then(|slot| state.slots.owner(slot).map(str::to_string));
    let targets: Vec<String> = state
        .nodes
        .values()
        .filter(|n| n.name != myself)
        .filter(|n| match &owner {
            None => shard.is_none(),
            Some(owner) => n.name == *owner || n.master.as_deref() == Some(owner.as_str()),
        })
        .map(bus_address)
        .collect();
    if targets.is_empty() {
        return;
    }
    let message = Message::Publish { shard: shard.is_some(), channel: channel.to_vec(), message: message.to_vec() };
    let cluster = cluster.clone();
    cluster.clone().runtime.spawn(async move {
        for target in targets {
            if let Err(e) = ask(&cluster, &target, &message).await {
                tracing::debug!("publish to {target}: {e}");
            }
        }
    });
}
