//! CLUSTER NODES, SLOTS, SHARDS and INFO in Redis 7.0's formats, from the
//! applied state and what this node has seen of the others.

use std::collections::HashMap;

use bytes::Bytes;
use strata_cluster::state::{ClusterState, Node};

use crate::protocol::Reply;

/// What this node has seen of another over the bus (Redis keeps these
/// per node: they are not part of the replicated state).
#[derive(Clone, Debug, Default)]
pub struct Seen {
    /// Unix ms of the ping waiting for an answer (0: none).
    pub ping_sent_ms: u64,
    /// Unix ms of the last answer.
    pub pong_received_ms: u64,
    pub connected: bool,
    /// Unix ms the current connection was made.
    pub link_since_ms: u64,
    /// No answer for `cluster-node-timeout` ("fail?").
    pub timed_out: bool,
    /// The node's replication offset, as it last said.
    pub repl_offset: u64,
    /// How long its link to its master has been down, as it last said.
    pub link_down_ms: u64,
}

/// A node as rendered: the replicated record plus what was seen of it.
pub struct View<'a> {
    pub state: &'a ClusterState,
    pub myself: &'a str,
    pub seen: &'a HashMap<String, Seen>,
    /// This node's own replication offset.
    pub my_offset: u64,
}

impl View<'_> {
    fn seen(&self, name: &str) -> Seen {
        self.seen.get(name).cloned().unwrap_or_default()
    }

    fn offset_of(&self, node: &Node) -> u64 {
        if node.name == self.myself {
            self.my_offset
        } else {
            self.seen(&node.name).repl_offset
        }
    }

    fn flags(&self, node: &Node) -> String {
        let seen = self.seen(&node.name);
        let mut flags = Vec::new();
        if node.name == self.myself {
            flags.push("myself");
        }
        flags.push(if node.is_master() { "master" } else { "slave" });
        if seen.timed_out && !node.failed && node.name != self.myself {
            flags.push("fail?");
        }
        if node.failed {
            flags.push("fail");
        }
        if node.nofailover {
            flags.push("nofailover");
        }
        flags.join(",")
    }

    /// One line of CLUSTER NODES (and of CLUSTER REPLICAS).
    pub fn node_line(&self, node: &Node) -> String {
        let mut line = format!("{} {}:{}@{}", node.name, node.ip, node.port, node.cport);
        if !node.hostname.is_empty() {
            line.push(',');
            line.push_str(&node.hostname);
        }
        let seen = self.seen(&node.name);
        let connected = node.name == self.myself || seen.connected;
        line.push_str(&format!(
            " {} {} {} {} {} {}",
            self.flags(node),
            node.master.as_deref().unwrap_or("-"),
            seen.ping_sent_ms,
            seen.pong_received_ms,
            self.state.shown_epoch(node),
            if connected { "connected" } else { "disconnected" }
        ));
        for (first, last) in self.state.slots.ranges_of(&node.name) {
            if first == last {
                line.push_str(&format!(" {first}"));
            } else {
                line.push_str(&format!(" {first}-{last}"));
            }
        }
        if node.name == self.myself {
            for (slot, (source, target)) in &self.state.migrating {
                if source == self.myself {
                    line.push_str(&format!(" [{slot}->-{target}]"));
                }
            }
            for (slot, (importer, source)) in &self.state.importing {
                let migrating_too = self.state.migrating.get(slot).is_some_and(|(s, _)| s == self.myself);
                if importer == self.myself && !migrating_too {
                    line.push_str(&format!(" [{slot}-<-{source}]"));
                }
            }
        }
        line
    }

    /// CLUSTER NODES: a line per node, each ending in a newline.
    pub fn nodes(&self) -> String {
        self.state.nodes.values().map(|node| self.node_line(node) + "\n").collect()
    }

    /// The replicas CLUSTER SLOTS lists: not failed, and replicating.
    fn available_replicas(&self, master: &str) -> Vec<&Node> {
        self.state.replicas_of(master).into_iter().filter(|r| !r.failed && self.offset_of(r) != 0).collect()
    }

    fn node_entry(node: &Node) -> Reply {
        Reply::Array(vec![
            Reply::Bulk(Bytes::from(node.ip.clone())),
            Reply::Integer(node.port as i64),
            Reply::Bulk(Bytes::from(node.name.clone())),
            Reply::Map(vec![]),
        ])
    }

    /// CLUSTER SLOTS: a range per run of slots with one owner.
    pub fn slots(&self) -> Reply {
        let mut ranges = Vec::new();
        for (first, last, owner) in self.state.slots.ranges() {
            let Some(master) = owner.and_then(|o| self.state.node(o)) else { continue };
            let mut entry = vec![Reply::Integer(first as i64), Reply::Integer(last as i64), View::node_entry(master)];
            entry.extend(self.available_replicas(&master.name).into_iter().map(View::node_entry));
            ranges.push(Reply::Array(entry));
        }
        Reply::Array(ranges)
    }

    fn shard_node(&self, node: &Node) -> Reply {
        let offset = self.offset_of(node);
        let health = if node.failed {
            "fail"
        } else if !node.is_master() && offset == 0 {
            "loading"
        } else {
            "online"
        };
        let text = |s: &str| Reply::Bulk(Bytes::copy_from_slice(s.as_bytes()));
        let mut fields = vec![
            (text("id"), text(&node.name)),
            (text("port"), Reply::Integer(node.port as i64)),
            (text("ip"), text(&node.ip)),
            (text("endpoint"), text(&node.ip)),
        ];
        if !node.hostname.is_empty() {
            fields.push((text("hostname"), text(&node.hostname)));
        }
        fields.extend([
            (text("role"), text(if node.is_master() { "master" } else { "replica" })),
            (text("replication-offset"), Reply::Integer(offset as i64)),
            (text("health"), text(health)),
        ]);
        Reply::Map(fields)
    }

    /// CLUSTER SHARDS: a shard per master, with its slot ranges and nodes.
    pub fn shards(&self) -> Reply {
        let text = |s: &str| Reply::Bulk(Bytes::copy_from_slice(s.as_bytes()));
        let shards = self
            .state
            .nodes
            .values()
            .filter(|n| n.is_master())
            .map(|master| {
                let slots = self
                    .state
                    .slots
                    .ranges_of(&master.name)
                    .into_iter()
                    .flat_map(|(a, b)| [Reply::Integer(a as i64), Reply::Integer(b as i64)])
                    .collect();
                let mut nodes = vec![self.shard_node(master)];
                nodes.extend(self.state.replicas_of(&master.name).into_iter().map(|r| self.shard_node(r)));
                Reply::Map(vec![(text("slots"), Reply::Array(slots)), (text("nodes"), Reply::Array(nodes))])
            })
            .collect();
        Reply::Array(shards)
    }

    /// `cluster_size`: masters serving at least one slot.
    pub fn size(&self) -> usize {
        self.state.nodes.values().filter(|n| n.is_master() && self.state.slots.count_of(&n.name) > 0).count()
    }

    /// CLUSTER INFO's slot counts: assigned, ok, pfail, fail.
    pub fn slot_health(&self) -> (usize, usize, usize, usize) {
        let (mut assigned, mut ok, mut pfail, mut fail) = (0, 0, 0, 0);
        for (first, last, owner) in self.state.slots.ranges() {
            let Some(node) = owner.and_then(|o| self.state.node(o)) else { continue };
            let count = (last - first) as usize + 1;
            assigned += count;
            if node.failed {
                fail += count;
            } else if node.name != self.myself && self.seen(&node.name).timed_out {
                pfail += count;
            } else {
                ok += count;
            }
        }
        (assigned, ok, pfail, fail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_cluster::state::Entry;

    fn node(name: &str, port: u16) -> Node {
        Node::new(&name.repeat(40 / name.len()), port as u64, "127.0.0.1", port, port + 10000)
    }

    #[test]
    fn nodes_lines_follow_redis_7_0() {
        let (a, b, r) = (node("a", 7000), node("b", 7001), node("c", 7002));
        let mut state = ClusterState::default();
        for n in [&a, &b, &r] {
            state.apply(&Entry::Join { node: n.clone(), slots: vec![] });
        }
        state.apply(&Entry::AddSlots { by: a.name.clone(), slots: (0..100).chain([200]).collect() });
        state.apply(&Entry::AddSlots { by: b.name.clone(), slots: vec![100] });
        state.apply(&Entry::Replicate { by: r.name.clone(), master: a.name.clone() });
        state.apply(&Entry::SetSlot {
            by: a.name.clone(),
            slot: 5,
            action: strata_cluster::state::SlotAction::Migrating(b.name.clone()),
        });
        state.apply(&Entry::SetConfigEpoch { by: a.name.clone(), epoch: 0 });
        let mut seen = HashMap::new();
        seen.insert(
            b.name.clone(),
            Seen { pong_received_ms: 1700000000000, connected: true, timed_out: true, ..Default::default() },
        );
        let view = View { state: &state, myself: &a.name, seen: &seen, my_offset: 42 };
        let text = view.nodes();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            format!("{} 127.0.0.1:7000@17000 myself,master - 0 0 0 connected 0-99 200 [5->-{}]", a.name, b.name)
        );
        assert_eq!(lines[1], format!("{} 127.0.0.1:7001@17001 master,fail? - 0 1700000000000 0 connected 100", b.name));
        assert_eq!(lines[2], format!("{} 127.0.0.1:7002@17002 slave {} 0 0 0 disconnected", r.name, a.name));
        assert!(text.ends_with('\n'));
        assert_eq!(view.size(), 2);
        assert_eq!(view.slot_health(), (102, 101, 1, 0));
        // The replica has not replicated anything yet: CLUSTER SLOTS leaves it out.
        let Reply::Array(ranges) = view.slots() else { panic!() };
        assert_eq!(ranges.len(), 3);
        let Reply::Array(first) = &ranges[0] else { panic!() };
        assert_eq!(first.len(), 3);
    }
}
