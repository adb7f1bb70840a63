//! Failure detection and failover. Every node pings every other over the
//! bus; what it sees is its own (CLUSTER NODES' ping/pong times, `fail?`).
//! Only the Raft leader acts on it: a node silent for longer than
//! `cluster-node-timeout` is marked failed by one entry, and a failed
//! master's best replica (the highest replication offset among those
//! allowed) takes over by another. The leader also keeps Raft's
//! membership in line with the nodes the state names: new nodes become
//! voters up to five, forgotten ones leave.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use strata_cluster::state::{Applied, ClusterState, Entry};

use super::bus::{ask, bus_address, Answer, Message};
use super::{Cluster, Seen};
use crate::error::CmdError;

/// The most voters the Raft group keeps; further nodes are learners.
const MAX_VOTERS: usize = 5;

/// How long a manual failover may pause the master's writes (Redis's
/// CLUSTER_MF_TIMEOUT).
const MANUAL_FAILOVER_PAUSE: Duration = Duration::from_millis(5000);

pub async fn run(cluster: Weak<Cluster>) {
    // The leader's duties run beside the pings: a commit that waits for a
    // lost majority must not hold up noticing the loss.
    let leading = Arc::new(std::sync::atomic::AtomicBool::new(false));
    loop {
        let Some(cluster) = cluster.upgrade() else { return };
        let timeout = cluster.settings.node_timeout;
        let period = (timeout / 10).clamp(Duration::from_millis(100), Duration::from_secs(1));
        let was_ok = cluster.routes().ok;
        ping_all(&cluster).await;
        if cluster.is_ok(&cluster.state()) != was_ok {
            cluster.reconcile();
        }
        let idle = !leading.swap(true, std::sync::atomic::Ordering::AcqRel);
        if idle && cluster.metrics().leader == Some(cluster.raft_id) {
            let (cluster, leading) = (cluster.clone(), leading.clone());
            tokio::spawn(async move {
                if let Err(e) = lead(&cluster).await {
                    tracing::debug!("cluster leader duties: {e}");
                }
                leading.store(false, std::sync::atomic::Ordering::Release);
            });
        } else if idle {
            leading.store(false, std::sync::atomic::Ordering::Release);
        }
        drop(cluster);
        tokio::time::sleep(period).await;
    }
}

impl Cluster {
    /// What a Ping says of this node: its offset, how long its link to its
    /// master has been down, and the nodes it finds silent.
    pub(super) fn liveness_report(&self) -> (u64, u64, Vec<String>) {
        let link_down_ms = self.server().map_or(0, |server| {
            let since = server.replication.link.down_since_ms.load(std::sync::atomic::Ordering::Acquire);
            if server.replication.is_replica() && since != 0 {
                strata_engines::now_ms().saturating_sub(since)
            } else {
                0
            }
        });
        let timed_out = self.seen.lock().iter().filter(|(_, s)| s.timed_out).map(|(n, _)| n.clone()).collect();
        (self.replication_offset(), link_down_ms, timed_out)
    }

    /// Another node pinged this one: it is alive, and says which nodes it
    /// finds silent.
    pub(super) fn pinged_by(&self, from: &str, offset: u64, link_down_ms: u64, timed_out: Vec<String>) {
        self.heard_from(from, offset, link_down_ms);
        self.reports.lock().insert(from.to_string(), timed_out);
    }

    fn heard_from(&self, name: &str, offset: u64, link_down_ms: u64) {
        let now = strata_engines::now_ms();
        let mut seen = self.seen.lock();
        let entry = seen.entry(name.to_string()).or_default();
        if !entry.connected {
            entry.link_since_ms = now;
        }
        entry.connected = true;
        entry.ping_sent_ms = 0;
        entry.pong_received_ms = now;
        entry.timed_out = false;
        entry.repl_offset = offset;
        entry.link_down_ms = link_down_ms;
    }
}

/// Pings every other node at once and records who answered.
async fn ping_all(cluster: &Arc<Cluster>) {
    let state = cluster.state();
    let myself = cluster.myself();
    let (offset, link_down_ms, timed_out) = cluster.liveness_report();
    let ping = Message::Ping { from: myself.clone(), offset, link_down_ms, timed_out };
    let now = strata_engines::now_ms();
    let others: Vec<_> = state.nodes.values().filter(|n| n.name != myself).cloned().collect();
    {
        let mut seen = cluster.seen.lock();
        seen.retain(|name, _| state.nodes.contains_key(name));
        for node in &others {
            let entry =
                seen.entry(node.name.clone()).or_insert_with(|| Seen { pong_received_ms: 0, ..Seen::default() });
            if entry.ping_sent_ms == 0 {
                entry.ping_sent_ms = now;
            }
        }
    }
    // All at once: each exchange is bounded by its own timeout.
    let mut pings = tokio::task::JoinSet::new();
    let ping = Arc::new(ping);
    for node in &others {
        let (cluster, ping, address, name) = (cluster.clone(), ping.clone(), bus_address(node), node.name.clone());
        pings.spawn(async move { (name, ask(&cluster, &address, &ping).await) });
    }
    let answers = pings.join_all().await;
    let node_timeout = cluster.settings.node_timeout.as_millis() as u64;
    for (name, answer) in answers {
        match answer {
            Ok(Answer::Pong { offset, link_down_ms, timed_out }) => {
                cluster.heard_from(&name, offset, link_down_ms);
                cluster.reports.lock().insert(name, timed_out);
            }
            _ => {
                let mut seen = cluster.seen.lock();
                if let Some(entry) = seen.get_mut(&name) {
                    entry.connected = false;
                    // Silent since the first unanswered ping.
                    let silent_since = entry.ping_sent_ms.max(entry.pong_received_ms);
                    entry.timed_out = now.saturating_sub(silent_since) > node_timeout;
                }
            }
        }
    }
}

/// The leader's duties, one round.
async fn lead(cluster: &Arc<Cluster>) -> Result<(), String> {
    let state = cluster.state();
    keep_membership(cluster, &state).await?;
    let seen = cluster.seen.lock().clone();
    let myself = cluster.myself();
    for node in state.nodes.values() {
        // A leader marked failed before it led (an entry of a partition's
        // old leader, committed once the partition healed) clears itself.
        let silent = node.name != myself && seen.get(&node.name).is_some_and(|s| s.timed_out);
        if silent != node.failed {
            if silent {
                tracing::warn!(
                    "Marking node {} as failing (no answer for {:?}).",
                    node.name,
                    cluster.settings.node_timeout
                );
            } else {
                tracing::warn!("Clear FAIL state for node {}: it is reachable again.", node.name);
            }
            cluster
                .raft
                .write(Entry::SetFailed { node: node.name.clone(), failed: silent })
                .await
                .map_err(|e| e.to_string())?;
        }
    }
    let state = cluster.state();
    for master in state.nodes.values().filter(|n| n.is_master() && n.failed && state.slots.count_of(&n.name) > 0) {
        if let Some(replica) = best_replica(cluster, &state, &master.name, &seen) {
            tracing::warn!("Failover election: {replica} takes over the slots of failed master {}", master.name);
            cluster.commit(Entry::Failover { replica }).await.map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

/// The replica to promote for `master`: reachable, allowed to fail over,
/// its data recent enough (`cluster-replica-validity-factor`), with the
/// highest replication offset.
fn best_replica(cluster: &Cluster, state: &ClusterState, master: &str, seen: &HashMap<String, Seen>) -> Option<String> {
    let timeout = cluster.settings.node_timeout.as_millis() as u64;
    let factor = cluster.settings.replica_validity_factor;
    let myself = cluster.myself();
    state
        .replicas_of(master)
        .into_iter()
        .filter(|r| !r.failed && !r.nofailover)
        .filter_map(|r| {
            let (offset, link_down_ms) = if r.name == myself {
                let (offset, down, _) = cluster.liveness_report();
                (offset, down)
            } else {
                let s = seen.get(&r.name).filter(|s| s.connected && !s.timed_out)?;
                (s.repl_offset, s.link_down_ms)
            };
            // Redis's validity: data older than the master's silence plus
            // factor times the timeout is too old to take over with.
            let too_old = factor > 0 && link_down_ms > timeout.saturating_mul(factor + 1);
            (!too_old).then(|| (offset, r.name.clone()))
        })
        .max()
        .map(|(_, name)| name)
}

/// Raft's members follow the state: nodes it names are members (voters
/// while there are fewer than five), others are removed.
async fn keep_membership(cluster: &Arc<Cluster>, state: &ClusterState) -> Result<(), String> {
    let metrics = cluster.metrics();
    let named: Vec<u64> = state.nodes.values().map(|n| n.raft_id).collect();
    for id in metrics.voters.keys().chain(metrics.learners.keys()) {
        if !named.contains(id) && *id != cluster.raft_id {
            tracing::warn!("Removing Raft member {id:x}: the cluster forgot it");
            cluster.raft.remove(*id).await.map_err(|e| e.to_string())?;
            return Ok(());
        }
    }
    let member = |id: &u64| metrics.voters.contains_key(id) || metrics.learners.contains_key(id);
    if let Some(node) = state.nodes.values().find(|n| !member(&n.raft_id)) {
        let address = bus_address(node).parse().map_err(|_| format!("bad bus address {}", bus_address(node)))?;
        cluster.raft.add_learner(node.raft_id, address).await.map_err(|e| e.to_string())?;
    }
    if metrics.voters.len() < MAX_VOTERS {
        let reachable = |id: &u64| {
            let seen = cluster.seen.lock();
            state.nodes.values().any(|n| n.raft_id == *id && seen.get(&n.name).is_some_and(|s| s.connected))
        };
        if let Some(learner) = metrics.learners.keys().find(|id| named.contains(id) && reachable(id)) {
            cluster.raft.promote(*learner).await.map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

/// CLUSTER FAILOVER on a replica. Without FORCE the master pauses its
/// writes and says its offset; this replica takes over once it has
/// everything up to that offset, so no acknowledged write is lost.
pub async fn manual_failover(cluster: &Arc<Cluster>, force: bool) -> Result<(), CmdError> {
    let state = cluster.state();
    let myself = cluster.myself();
    let me = state.node(&myself).ok_or_else(|| CmdError::err("This node is not in the cluster"))?;
    let Some(master_name) = me.master.clone() else {
        return Err(CmdError::err("You should send CLUSTER FAILOVER to a replica"));
    };
    let master =
        state.node(&master_name).ok_or_else(|| CmdError::err("I'm a replica but my master is unknown to me"))?;
    if !force {
        let reachable = cluster.seen.lock().get(&master_name).is_some_and(|s| s.connected);
        if master.failed || !reachable {
            return Err(CmdError::err("Master is down or failed, please use CLUSTER FAILOVER FORCE"));
        }
        let pause = Message::PauseForFailover { millis: MANUAL_FAILOVER_PAUSE.as_millis() as u64 };
        let offset = match ask(cluster, &bus_address(master), &pause).await {
            Ok(Answer::Paused { offset }) => offset,
            Ok(other) => return Err(CmdError::err(format!("Manual failover: unexpected answer {other:?}"))),
            Err(e) => return Err(CmdError::err(format!("Manual failover: {e}"))),
        };
        let deadline = tokio::time::Instant::now() + MANUAL_FAILOVER_PAUSE;
        while cluster.replication_offset() < offset {
            if tokio::time::Instant::now() >= deadline {
                return Err(CmdError::err("Manual failover timed out: this replica did not catch up with its master"));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    tracing::warn!("{} failover user request accepted.", if force { "Forced" } else { "Manual" });
    match cluster.commit(Entry::Failover { replica: myself }).await {
        Ok(Applied::Err(e)) => Err(CmdError::Custom(e)),
        Ok(_) => {
            cluster.reconcile();
            Ok(())
        }
        Err(e) => Err(CmdError::Custom(format!("CLUSTERDOWN failover not committed: {e}"))),
    }
}
