//! The cluster's configuration as one replicated state: nodes, slot
//! owners, migration marks and epochs. Every change is an [`Entry`] that
//! Raft commits and every node applies in the same order, so the checks a
//! Redis node makes against its own view (is this slot busy? is that node
//! a master?) are made here, against the one state all nodes share, and
//! give Redis's error texts.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::SLOT_COUNT;

/// A node as the cluster knows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    /// Redis's node id: 40 hex characters, fixed for the node's life.
    pub name: String,
    /// The node's id in the Raft group.
    pub raft_id: u64,
    pub ip: String,
    pub port: u16,
    /// The cluster bus port.
    pub cport: u16,
    /// `cluster-announce-hostname` (empty: none).
    pub hostname: String,
    /// The master this node replicates (None: it is a master).
    pub master: Option<String>,
    pub config_epoch: u64,
    /// Marked failed by the leader's failure detector.
    pub failed: bool,
    /// `cluster-replica-no-failover`: never promoted automatically.
    pub nofailover: bool,
}

impl Node {
    /// A master at ip:port with its bus on cport, epoch 0, not failed.
    pub fn new(name: &str, raft_id: u64, ip: &str, port: u16, cport: u16) -> Node {
        Node {
            name: name.to_string(),
            raft_id,
            ip: ip.to_string(),
            port,
            cport,
            hostname: String::new(),
            master: None,
            config_epoch: 0,
            failed: false,
            nofailover: false,
        }
    }

    pub fn is_master(&self) -> bool {
        self.master.is_none()
    }
}

/// What `CLUSTER SETSLOT slot ...` asks for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SlotAction {
    Migrating(String),
    Importing(String),
    Stable,
    /// The slot now belongs to this node. `holds_keys` says whether the
    /// node that received the command still has keys in the slot (only
    /// it can know), `allow_replica_migration` is its
    /// `cluster-allow-replica-migration`.
    Node {
        owner: String,
        holds_keys: bool,
        allow_replica_migration: bool,
    },
}

/// One change to the configuration. `by` names the node a command was
/// sent to: Redis's checks are relative to "myself".
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Entry {
    /// A node joins (MEET), bringing the slots it claimed and its epoch
    /// while it was alone; a node already known updates its address.
    Join {
        node: Node,
        slots: Vec<u16>,
    },
    AddSlots {
        by: String,
        slots: Vec<u16>,
    },
    DelSlots {
        by: String,
        slots: Vec<u16>,
    },
    FlushSlots {
        by: String,
    },
    SetSlot {
        by: String,
        slot: u16,
        action: SlotAction,
    },
    Replicate {
        by: String,
        master: String,
    },
    Forget {
        by: String,
        node: String,
    },
    SetConfigEpoch {
        by: String,
        epoch: u64,
    },
    BumpEpoch {
        by: String,
    },
    /// The node leaves the cluster (CLUSTER RESET).
    Leave {
        node: String,
    },
    /// The leader's failure detector marks a node failed or back.
    SetFailed {
        node: String,
        failed: bool,
    },
    /// A replica takes its master's slots with a new epoch; the master
    /// and its other replicas become its replicas.
    Failover {
        replica: String,
    },
    /// Commands queued in one MULTI: applied in order, each answered.
    Batch(Vec<Entry>),
}

/// What applying an entry answered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Applied {
    Ok,
    /// An error reply's full text, e.g. "ERR Slot 5 is already busy".
    Err(String),
    /// BUMPEPOCH: whether the epoch moved, and the node's epoch.
    Epoch {
        bumped: bool,
        epoch: u64,
    },
    Batch(Vec<Applied>),
}

fn err(text: impl std::fmt::Display) -> Applied {
    Applied::Err(format!("ERR {text}"))
}

/// Slot owners by node name, stored as ranges (16384 names would make
/// every snapshot of the state hundreds of kilobytes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlotOwners(Vec<Option<String>>);

impl Default for SlotOwners {
    fn default() -> SlotOwners {
        SlotOwners(vec![None; SLOT_COUNT])
    }
}

impl SlotOwners {
    pub fn owner(&self, slot: u16) -> Option<&str> {
        self.0.get(slot as usize).and_then(|o| o.as_deref())
    }

    fn set(&mut self, slot: u16, owner: Option<String>) {
        self.0[slot as usize] = owner;
    }

    /// Runs of consecutive slots with the same owner: (first, last, owner).
    pub fn ranges(&self) -> Vec<(u16, u16, Option<&str>)> {
        let mut ranges: Vec<(u16, u16, Option<&str>)> = Vec::new();
        for (slot, owner) in self.0.iter().enumerate() {
            let owner = owner.as_deref();
            match ranges.last_mut() {
                Some((_, last, o)) if *o == owner => *last = slot as u16,
                _ => ranges.push((slot as u16, slot as u16, owner)),
            }
        }
        ranges
    }

    /// The ranges `name` owns, in slot order.
    pub fn ranges_of(&self, name: &str) -> Vec<(u16, u16)> {
        self.ranges().into_iter().filter(|r| r.2 == Some(name)).map(|r| (r.0, r.1)).collect()
    }

    pub fn count_of(&self, name: &str) -> usize {
        self.0.iter().filter(|o| o.as_deref() == Some(name)).count()
    }
}

impl Serialize for SlotOwners {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let owned: Vec<(u16, u16, &str)> =
            self.ranges().into_iter().filter_map(|(a, b, o)| o.map(|o| (a, b, o))).collect();
        owned.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for SlotOwners {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<SlotOwners, D::Error> {
        let owned: Vec<(u16, u16, String)> = Vec::deserialize(deserializer)?;
        let mut owners = SlotOwners::default();
        for (first, last, owner) in owned {
            if first > last || last as usize >= SLOT_COUNT {
                return Err(serde::de::Error::custom(format!("bad slot range {first}-{last}")));
            }
            for slot in first..=last {
                owners.set(slot, Some(owner.clone()));
            }
        }
        Ok(owners)
    }
}

/// The replicated configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterState {
    pub nodes: BTreeMap<String, Node>,
    pub slots: SlotOwners,
    /// slot -> (the owner migrating it, the node it goes to).
    pub migrating: BTreeMap<u16, (String, String)>,
    /// slot -> (the node importing it, the node it comes from).
    pub importing: BTreeMap<u16, (String, String)>,
    pub current_epoch: u64,
    /// Nodes removed by FORGET, newest last: FORGET of one of them again
    /// succeeds, as it would on each Redis node `redis-cli --cluster
    /// del-node` sends it to.
    #[serde(default)]
    pub forgotten: Vec<String>,
    /// Entries applied so far: the same on every node after the same
    /// entries, so a node that proposed one can wait until its own state
    /// has it.
    #[serde(default)]
    pub applied_entries: u64,
}

/// How many forgotten names are kept.
const FORGOTTEN_KEPT: usize = 64;

impl ClusterState {
    /// Whether applying `entry` would leave this state as it is and answer
    /// OK: a node that sees so answers without proposing (redis-cli sends
    /// `SETSLOT NODE` to every master after a slot moves; with one shared
    /// state only the first of them changes anything).
    pub fn changes_nothing(&self, entry: &Entry) -> bool {
        let Entry::SetSlot { by, slot, action } = entry else { return false };
        let by_is_master = self.node(by).is_some_and(Node::is_master);
        let marked_by = |marks: &BTreeMap<u16, (String, String)>| marks.get(slot).is_some_and(|(node, _)| node == by);
        match action {
            SlotAction::Node { owner, .. } => {
                by_is_master
                    && self.slots.owner(*slot) == Some(owner.as_str())
                    && self.node(owner).is_some_and(Node::is_master)
                    && !marked_by(&self.migrating)
                    && !marked_by(&self.importing)
            }
            SlotAction::Stable => {
                by_is_master && !self.migrating.contains_key(slot) && !self.importing.contains_key(slot)
            }
            _ => false,
        }
    }

    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.get(name)
    }

    /// The replicas of `master`, by name.
    pub fn replicas_of(&self, master: &str) -> Vec<&Node> {
        self.nodes.values().filter(|n| n.master.as_deref() == Some(master)).collect()
    }

    /// The epoch `CLUSTER NODES` and `cluster_my_epoch` show for a node:
    /// a replica shows its master's.
    pub fn shown_epoch(&self, node: &Node) -> u64 {
        node.master.as_deref().and_then(|m| self.nodes.get(m)).map_or(node.config_epoch, |m| m.config_epoch)
    }

    fn max_epoch(&self) -> u64 {
        self.nodes.values().map(|n| n.config_epoch).max().unwrap_or(0).max(self.current_epoch)
    }

    /// Redis's clusterBumpConfigEpochWithoutConsensus: a new epoch unless
    /// the node already holds the greatest one.
    fn bump_epoch(&mut self, name: &str) -> Applied {
        let max = self.max_epoch();
        let Some(node) = self.nodes.get(name) else { return err(format!("Unknown node {name}")) };
        if node.config_epoch == 0 || node.config_epoch != max {
            self.current_epoch += 1;
            let epoch = self.current_epoch;
            self.nodes.get_mut(name).expect("checked").config_epoch = epoch;
            Applied::Epoch { bumped: true, epoch }
        } else {
            Applied::Epoch { bumped: false, epoch: node.config_epoch }
        }
    }

    /// Checks that `name` is known and a master, with Redis's texts.
    fn known_master(&self, name: &str, unknown: &str) -> Result<&Node, Applied> {
        let node = self.nodes.get(name).ok_or_else(|| err(format!("{unknown} {name}")))?;
        if !node.is_master() {
            return Err(err("Target node is not a master"));
        }
        Ok(node)
    }

    fn add_slots(&mut self, by: &str, slots: &[u16]) -> Applied {
        if !self.nodes.contains_key(by) {
            return err(format!("Unknown node {by}"));
        }
        if let Some(&busy) = slots.iter().find(|&&s| self.slots.owner(s).is_some()) {
            return err(format!("Slot {busy} is already busy"));
        }
        for &slot in slots {
            self.importing.remove(&slot);
            self.slots.set(slot, Some(by.to_string()));
        }
        Applied::Ok
    }

    fn del_slots(&mut self, slots: &[u16]) -> Applied {
        if let Some(&free) = slots.iter().find(|&&s| self.slots.owner(s).is_none()) {
            return err(format!("Slot {free} is already unassigned"));
        }
        for &slot in slots {
            self.importing.remove(&slot);
            self.migrating.remove(&slot);
            self.slots.set(slot, None);
        }
        Applied::Ok
    }

    fn set_slot(&mut self, by: &str, slot: u16, action: &SlotAction) -> Applied {
        match self.nodes.get(by) {
            None => return err(format!("Unknown node {by}")),
            Some(node) if !node.is_master() => return err("Please use SETSLOT only with masters."),
            Some(_) => {}
        }
        let mine = self.slots.owner(slot) == Some(by);
        match action {
            SlotAction::Migrating(target) => {
                if !mine {
                    return err(format!("I'm not the owner of hash slot {slot}"));
                }
                if let Err(e) = self.known_master(target, "I don't know about node") {
                    return e;
                }
                self.migrating.insert(slot, (by.to_string(), target.clone()));
            }
            SlotAction::Importing(source) => {
                if mine {
                    return err(format!("I'm already the owner of hash slot {slot}"));
                }
                if let Err(e) = self.known_master(source, "I don't know about node") {
                    return e;
                }
                self.importing.insert(slot, (by.to_string(), source.clone()));
            }
            SlotAction::Stable => {
                self.migrating.remove(&slot);
                self.importing.remove(&slot);
            }
            SlotAction::Node { owner, holds_keys, allow_replica_migration } => {
                if let Err(e) = self.known_master(owner, "Unknown node") {
                    return e;
                }
                if mine && owner != by && *holds_keys {
                    return err(format!(
                        "Can't assign hashslot {slot} to a different node while I still hold keys for this hash slot."
                    ));
                }
                if !holds_keys && self.migrating.get(&slot).is_some_and(|(source, _)| source == by) {
                    self.migrating.remove(&slot);
                }
                self.slots.set(slot, Some(owner.clone()));
                if mine && owner != by && self.slots.count_of(by) == 0 && *allow_replica_migration {
                    self.nodes.get_mut(by).expect("checked").master = Some(owner.clone());
                }
                if owner == by && self.importing.get(&slot).is_some_and(|(importer, _)| importer == by) {
                    self.bump_epoch(by);
                    self.importing.remove(&slot);
                }
            }
        }
        Applied::Ok
    }

    fn replicate(&mut self, by: &str, master: &str) -> Applied {
        let Some(target) = self.nodes.get(master) else { return err(format!("Unknown node {master}")) };
        if master == by {
            return err("Can't replicate myself");
        }
        if !target.is_master() {
            return err("I can only replicate a master, not a replica.");
        }
        let Some(node) = self.nodes.get(by) else { return err(format!("Unknown node {by}")) };
        if node.is_master() && self.slots.count_of(by) != 0 {
            return err("To set a master the node must be empty and without assigned slots.");
        }
        self.migrating.retain(|_, (source, _)| source != by);
        self.importing.retain(|_, (importer, _)| importer != by);
        self.nodes.get_mut(by).expect("checked").master = Some(master.to_string());
        Applied::Ok
    }

    /// Removes a node with its slots and marks; its replicas are left
    /// without a master, as Redis leaves them.
    fn remove_node(&mut self, name: &str) {
        self.nodes.remove(name);
        for slot in 0..SLOT_COUNT as u16 {
            if self.slots.owner(slot) == Some(name) {
                self.slots.set(slot, None);
            }
        }
        self.migrating.retain(|_, (a, b)| a != name && b != name);
        self.importing.retain(|_, (a, b)| a != name && b != name);
        for node in self.nodes.values_mut() {
            if node.master.as_deref() == Some(name) {
                node.master = None;
            }
        }
    }

    fn join(&mut self, node: &Node, slots: &[u16]) -> Applied {
        if let Some(&taken) = slots.iter().find(|&&s| self.slots.owner(s).is_some_and(|o| o != node.name)) {
            return err(format!("Slot {taken} is already served by another node of the cluster"));
        }
        match self.nodes.get_mut(&node.name) {
            // A known node (restarted, or announcing a new address) keeps
            // its role and epoch.
            Some(known) => {
                known.ip = node.ip.clone();
                known.port = node.port;
                known.cport = node.cport;
                known.hostname = node.hostname.clone();
                known.raft_id = node.raft_id;
            }
            None => {
                self.nodes.insert(node.name.clone(), node.clone());
            }
        }
        self.current_epoch = self.current_epoch.max(node.config_epoch);
        for &slot in slots {
            self.slots.set(slot, Some(node.name.clone()));
        }
        Applied::Ok
    }

    fn failover(&mut self, replica: &str) -> Applied {
        let Some(master) = self.nodes.get(replica).and_then(|n| n.master.clone()) else {
            return err("You should send CLUSTER FAILOVER to a replica");
        };
        if !self.nodes.contains_key(&master) {
            return err("I'm a replica but my master is unknown to me");
        }
        self.current_epoch += 1;
        let epoch = self.current_epoch;
        for slot in 0..SLOT_COUNT as u16 {
            if self.slots.owner(slot) == Some(master.as_str()) {
                self.slots.set(slot, Some(replica.to_string()));
            }
        }
        for (_, (source, _)) in self.migrating.iter_mut() {
            if *source == master {
                *source = replica.to_string();
            }
        }
        for node in self.nodes.values_mut() {
            if node.name == replica {
                node.master = None;
                node.config_epoch = epoch;
                node.failed = false;
            } else if node.name == master || node.master.as_deref() == Some(master.as_str()) {
                node.master = Some(replica.to_string());
            }
        }
        Applied::Ok
    }

    /// Applies one committed entry.
    pub fn apply(&mut self, entry: &Entry) -> Applied {
        match entry {
            Entry::Join { node, slots } => self.join(node, slots),
            Entry::AddSlots { by, slots } => self.add_slots(by, slots),
            Entry::DelSlots { slots, .. } => self.del_slots(slots),
            Entry::FlushSlots { by } => {
                let owned: Vec<u16> = (0..SLOT_COUNT as u16).filter(|&s| self.slots.owner(s) == Some(by)).collect();
                for slot in owned {
                    self.slots.set(slot, None);
                }
                Applied::Ok
            }
            Entry::SetSlot { by, slot, action } => self.set_slot(by, *slot, action),
            Entry::Replicate { by, master } => self.replicate(by, master),
            Entry::Forget { by, node } => {
                if !self.nodes.contains_key(node) {
                    if self.forgotten.contains(node) {
                        return Applied::Ok;
                    }
                    return err(format!("Unknown node {node}"));
                }
                if node == by {
                    return err("I tried hard but I can't forget myself...");
                }
                if self.nodes.get(by).and_then(|n| n.master.as_deref()) == Some(node.as_str()) {
                    return err("Can't forget my master!");
                }
                self.remove_node(node);
                self.forgotten.push(node.clone());
                if self.forgotten.len() > FORGOTTEN_KEPT {
                    self.forgotten.remove(0);
                }
                Applied::Ok
            }
            Entry::SetConfigEpoch { by, epoch } => {
                if self.nodes.len() > 1 {
                    return err("The user can assign a config epoch only when the node does not know any other node.");
                }
                let Some(node) = self.nodes.get_mut(by) else { return err(format!("Unknown node {by}")) };
                if node.config_epoch != 0 {
                    return err("Node config epoch is already non-zero");
                }
                node.config_epoch = *epoch;
                self.current_epoch = self.current_epoch.max(*epoch);
                Applied::Ok
            }
            Entry::BumpEpoch { by } => self.bump_epoch(by),
            Entry::Leave { node } => {
                self.remove_node(node);
                Applied::Ok
            }
            Entry::SetFailed { node, failed } => match self.nodes.get_mut(node) {
                Some(n) => {
                    n.failed = *failed;
                    Applied::Ok
                }
                None => err(format!("Unknown node {node}")),
            },
            Entry::Failover { replica } => self.failover(replica),
            Entry::Batch(entries) => Applied::Batch(entries.iter().map(|e| self.apply(e)).collect()),
        }
    }
}

/// A committed entry's answer, and how many entries the state had applied
/// with it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Committed {
    pub applied: Applied,
    pub applied_entries: u64,
}

impl crate::raft::Machine for ClusterState {
    type Entry = Entry;
    type Response = Committed;

    fn apply(&mut self, entry: &Entry) -> Committed {
        let applied = ClusterState::apply(self, entry);
        self.applied_entries += 1;
        Committed { applied, applied_entries: self.applied_entries }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str) -> Node {
        Node::new(name, name.len() as u64, "127.0.0.1", 7000, 17000)
    }

    fn with_nodes(names: &[&str]) -> ClusterState {
        let mut state = ClusterState::default();
        for name in names {
            assert_eq!(state.apply(&Entry::Join { node: node(name), slots: vec![] }), Applied::Ok);
        }
        state
    }

    fn failed(applied: Applied) -> String {
        match applied {
            Applied::Err(text) => text,
            other => panic!("expected an error, got {other:?}"),
        }
    }

    #[test]
    fn slots_are_added_once_and_deleted_once() {
        let mut state = with_nodes(&["a", "b"]);
        assert_eq!(state.apply(&Entry::AddSlots { by: "a".into(), slots: vec![0, 1, 2, 5] }), Applied::Ok);
        let busy = state.apply(&Entry::AddSlots { by: "b".into(), slots: vec![3, 2] });
        assert_eq!(failed(busy), "ERR Slot 2 is already busy");
        assert_eq!(state.slots.owner(3), None, "a refused entry changes nothing");
        assert_eq!(state.slots.ranges_of("a"), vec![(0, 2), (5, 5)]);
        assert_eq!(
            failed(state.apply(&Entry::DelSlots { by: "b".into(), slots: vec![4] })),
            "ERR Slot 4 is already unassigned"
        );
        assert_eq!(state.apply(&Entry::DelSlots { by: "b".into(), slots: vec![5] }), Applied::Ok);
        assert_eq!(state.slots.count_of("a"), 3);
    }

    #[test]
    fn the_slot_map_serializes_as_ranges_and_reads_back() {
        let mut state = with_nodes(&["a", "b"]);
        state.apply(&Entry::AddSlots { by: "a".into(), slots: (0..8000).collect() });
        state.apply(&Entry::AddSlots { by: "b".into(), slots: (8000..16384).collect() });
        let json = serde_json::to_string(&state).unwrap();
        assert!(json.len() < 2000, "{} bytes", json.len());
        let back: ClusterState = serde_json::from_str(&json).unwrap();
        assert_eq!(back, state);
        assert!(serde_json::from_str::<SlotOwners>(r#"[[5,3,"a"]]"#).is_err());
        assert!(serde_json::from_str::<SlotOwners>(r#"[[0,16384,"a"]]"#).is_err());
    }

    #[test]
    fn a_slot_moves_with_redis_checks_and_epoch_bump() {
        let mut state = with_nodes(&["src", "dst"]);
        state.apply(&Entry::AddSlots { by: "src".into(), slots: vec![7] });
        let set = |state: &mut ClusterState, by: &str, action: SlotAction| {
            state.apply(&Entry::SetSlot { by: by.into(), slot: 7, action })
        };
        assert_eq!(
            failed(set(&mut state, "dst", SlotAction::Migrating("src".into()))),
            "ERR I'm not the owner of hash slot 7"
        );
        assert_eq!(
            failed(set(&mut state, "src", SlotAction::Importing("dst".into()))),
            "ERR I'm already the owner of hash slot 7"
        );
        assert_eq!(
            failed(set(&mut state, "src", SlotAction::Migrating("nobody".into()))),
            "ERR I don't know about node nobody"
        );
        assert_eq!(set(&mut state, "dst", SlotAction::Importing("src".into())), Applied::Ok);
        assert_eq!(set(&mut state, "src", SlotAction::Migrating("dst".into())), Applied::Ok);
        let give = |holds_keys| SlotAction::Node { owner: "dst".into(), holds_keys, allow_replica_migration: true };
        assert!(failed(set(&mut state, "src", give(true))).contains("while I still hold keys"));
        // The target closes the slot first: it owns it, a new epoch.
        assert_eq!(set(&mut state, "dst", give(false)), Applied::Ok);
        assert_eq!(state.slots.owner(7), Some("dst"));
        assert!(state.importing.is_empty());
        assert_eq!(state.nodes["dst"].config_epoch, 1);
        assert_eq!(state.migrating.get(&7), Some(&("src".to_string(), "dst".to_string())));
        // The source, now without keys there, clears its mark.
        assert_eq!(set(&mut state, "src", give(false)), Applied::Ok);
        assert!(state.migrating.is_empty());
    }

    #[test]
    fn only_setslots_that_change_something_need_proposing() {
        let mut state = with_nodes(&["a", "b", "c"]);
        state.apply(&Entry::AddSlots { by: "a".into(), slots: vec![7] });
        let node = |by: &str, owner: &str| Entry::SetSlot {
            by: by.into(),
            slot: 7,
            action: SlotAction::Node { owner: owner.into(), holds_keys: false, allow_replica_migration: true },
        };
        assert!(!state.changes_nothing(&node("c", "b")));
        state.apply(&Entry::SetSlot { by: "a".into(), slot: 7, action: SlotAction::Migrating("b".into()) });
        state.apply(&node("b", "b"));
        assert!(state.changes_nothing(&node("c", "b")), "another master, nothing to clear");
        assert!(!state.changes_nothing(&node("a", "b")), "the source still has its migrating mark");
        state.apply(&node("a", "b"));
        assert!(state.changes_nothing(&node("a", "b")));
        let stable = Entry::SetSlot { by: "c".into(), slot: 7, action: SlotAction::Stable };
        assert!(state.changes_nothing(&stable));
        assert!(!state.changes_nothing(&Entry::BumpEpoch { by: "c".into() }));
    }

    #[test]
    fn an_emptied_master_becomes_a_replica_of_the_new_owner() {
        let mut state = with_nodes(&["a", "b"]);
        state.apply(&Entry::AddSlots { by: "a".into(), slots: vec![1] });
        let action = SlotAction::Node { owner: "b".into(), holds_keys: false, allow_replica_migration: true };
        assert_eq!(state.apply(&Entry::SetSlot { by: "a".into(), slot: 1, action }), Applied::Ok);
        assert_eq!(state.nodes["a"].master.as_deref(), Some("b"));
        let refused = state.apply(&Entry::SetSlot { by: "a".into(), slot: 1, action: SlotAction::Stable });
        assert_eq!(failed(refused), "ERR Please use SETSLOT only with masters.");
    }

    #[test]
    fn replicate_forget_and_epochs_follow_redis() {
        let mut state = with_nodes(&["m"]);
        assert_eq!(state.apply(&Entry::SetConfigEpoch { by: "m".into(), epoch: 5 }), Applied::Ok);
        assert_eq!(
            failed(state.apply(&Entry::SetConfigEpoch { by: "m".into(), epoch: 6 })),
            "ERR Node config epoch is already non-zero"
        );
        state.apply(&Entry::Join { node: node("r"), slots: vec![] });
        assert!(failed(state.apply(&Entry::SetConfigEpoch { by: "r".into(), epoch: 6 })).contains("any other node"));
        state.apply(&Entry::AddSlots { by: "m".into(), slots: vec![0] });
        assert_eq!(
            failed(state.apply(&Entry::Replicate { by: "m".into(), master: "r".into() })),
            "ERR To set a master the node must be empty and without assigned slots."
        );
        assert_eq!(
            failed(state.apply(&Entry::Replicate { by: "r".into(), master: "r".into() })),
            "ERR Can't replicate myself"
        );
        assert_eq!(state.apply(&Entry::Replicate { by: "r".into(), master: "m".into() }), Applied::Ok);
        assert_eq!(state.shown_epoch(&state.nodes["r"]), 5);
        assert_eq!(
            failed(state.apply(&Entry::Forget { by: "r".into(), node: "m".into() })),
            "ERR Can't forget my master!"
        );
        assert_eq!(
            failed(state.apply(&Entry::Forget { by: "m".into(), node: "m".into() })),
            "ERR I tried hard but I can't forget myself..."
        );
        assert_eq!(state.apply(&Entry::BumpEpoch { by: "m".into() }), Applied::Epoch { bumped: false, epoch: 5 });
        assert_eq!(state.apply(&Entry::BumpEpoch { by: "r".into() }), Applied::Epoch { bumped: true, epoch: 6 });
        state.apply(&Entry::Join { node: node("x"), slots: vec![] });
        assert_eq!(state.apply(&Entry::Forget { by: "m".into(), node: "x".into() }), Applied::Ok);
        assert_eq!(
            state.apply(&Entry::Forget { by: "r".into(), node: "x".into() }),
            Applied::Ok,
            "again, from another node"
        );
        assert_eq!(failed(state.apply(&Entry::Forget { by: "r".into(), node: "y".into() })), "ERR Unknown node y");
    }

    #[test]
    fn failover_moves_slots_and_replicas_to_the_promoted_node() {
        let mut state = with_nodes(&["m", "r1", "r2"]);
        state.apply(&Entry::AddSlots { by: "m".into(), slots: vec![0, 1, 2] });
        state.apply(&Entry::Replicate { by: "r1".into(), master: "m".into() });
        state.apply(&Entry::Replicate { by: "r2".into(), master: "m".into() });
        state.apply(&Entry::SetFailed { node: "m".into(), failed: true });
        assert_eq!(state.apply(&Entry::Failover { replica: "r1".into() }), Applied::Ok);
        assert_eq!(state.slots.ranges_of("r1"), vec![(0, 2)]);
        assert!(state.nodes["r1"].is_master());
        assert_eq!(state.nodes["m"].master.as_deref(), Some("r1"));
        assert_eq!(state.nodes["r2"].master.as_deref(), Some("r1"));
        assert_eq!(state.nodes["r1"].config_epoch, state.current_epoch);
        assert_eq!(
            failed(state.apply(&Entry::Failover { replica: "r1".into() })),
            "ERR You should send CLUSTER FAILOVER to a replica"
        );
    }

    #[test]
    fn a_joining_node_brings_its_slots_unless_they_are_taken() {
        let mut state = with_nodes(&["a"]);
        state.apply(&Entry::AddSlots { by: "a".into(), slots: vec![0] });
        let mut b = node("b");
        b.config_epoch = 2;
        assert!(matches!(state.apply(&Entry::Join { node: b.clone(), slots: vec![0, 1] }), Applied::Err(_)));
        assert!(!state.nodes.contains_key("b"));
        assert_eq!(state.apply(&Entry::Join { node: b, slots: vec![1] }), Applied::Ok);
        assert_eq!(state.slots.owner(1), Some("b"));
        assert_eq!(state.current_epoch, 2);
    }

    #[test]
    fn a_batch_answers_each_entry() {
        let mut state = with_nodes(&["a"]);
        let batch = Entry::Batch(vec![
            Entry::AddSlots { by: "a".into(), slots: vec![1] },
            Entry::AddSlots { by: "a".into(), slots: vec![1] },
            Entry::DelSlots { by: "a".into(), slots: vec![1] },
        ]);
        assert_eq!(state.apply(&batch), Applied::Batch(vec![Applied::Ok, err("Slot 1 is already busy"), Applied::Ok]));
    }
}
