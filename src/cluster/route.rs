//! Which node serves a request: Redis's getNodeByQuery over the applied
//! cluster state, compiled into a table the command path reads without
//! locks (rebuilt after each applied entry).
//!
//! The decision has two steps because of open slots: whether the keys of
//! a request exist decides ASK and TRYAGAIN while a slot migrates, and
//! that must be looked at under the keys' locks (a MIGRATE holding them
//! could otherwise move a key between the look and the command).

use std::collections::{HashMap, HashSet};

use strata_cluster::state::ClusterState;
use strata_cluster::{key_slot, SLOT_COUNT};

use crate::error::CmdError;

/// No node: the slot is not served.
const NOBODY: u16 = u16::MAX;

/// The routing table as of one applied state.
#[derive(Debug)]
pub struct Routes {
    /// Per slot: an index into `addresses`, or NOBODY.
    owners: Vec<u16>,
    /// "endpoint:port" of each node that owns slots.
    addresses: Vec<String>,
    /// This node's index in `addresses` (None: it owns no slot).
    myself: Option<u16>,
    /// The master this node replicates, when it is a replica.
    my_master: Option<u16>,
    /// Slots this node owns and migrates: slot -> target address.
    migrating: HashMap<u16, String>,
    /// Slots this node imports.
    importing: HashSet<u16>,
    /// `cluster_state:ok`.
    pub ok: bool,
    /// `cluster-allow-reads-when-down`.
    reads_when_down: bool,
}

/// What the command path knows about a request.
pub struct Request<'a> {
    pub keys: &'a [&'a [u8]],
    pub write: bool,
    /// ASKING came before it, or it is RESTORE-ASKING.
    pub asking: bool,
    /// The client said READONLY.
    pub readonly: bool,
    /// MIGRATE is served locally while its slot is open.
    pub migrate: bool,
}

/// A request whose slot is open: it is served only if the keys it names
/// are here (the command path counts them under their locks).
#[derive(Debug, PartialEq, Eq)]
pub struct OpenSlot {
    pub slot: u16,
    /// Migrating away: where to ASK when every key is missing.
    pub ask: Option<String>,
    /// More than one distinct key: some missing means TRYAGAIN.
    multiple_keys: bool,
}

impl OpenSlot {
    /// The decision once `missing` of the keys were found missing and
    /// `present` present.
    pub fn settle(&self, missing: usize, present: usize) -> Result<(), CmdError> {
        if missing == 0 {
            return Ok(());
        }
        match &self.ask {
            Some(_) if present > 0 => Err(try_again()),
            Some(target) => Err(CmdError::Custom(format!("ASK {} {target}", self.slot))),
            None if self.multiple_keys => Err(try_again()),
            None => Ok(()),
        }
    }
}

fn try_again() -> CmdError {
    CmdError::Custom("TRYAGAIN Multiple keys request during rehashing of slot".into())
}

pub fn cross_slot() -> CmdError {
    CmdError::Custom("CROSSSLOT Keys in request don't hash to the same slot".into())
}

impl Routes {
    /// Compiles the table for node `myself`; `ok` is the cluster's state
    /// as this node sees it.
    pub fn new(state: &ClusterState, myself: &str, ok: bool, reads_when_down: bool) -> Routes {
        let mut addresses = Vec::new();
        let mut index_of: HashMap<&str, u16> = HashMap::new();
        let mut owners = vec![NOBODY; SLOT_COUNT];
        for (first, last, owner) in state.slots.ranges() {
            let Some(owner) = owner else { continue };
            let Some(node) = state.node(owner) else { continue };
            let index = *index_of.entry(owner).or_insert_with(|| {
                addresses.push(format!("{}:{}", node.ip, node.port));
                (addresses.len() - 1) as u16
            });
            owners[first as usize..=last as usize].fill(index);
        }
        let address_of = |name: &str| state.node(name).map(|n| format!("{}:{}", n.ip, n.port));
        let my_master = state.node(myself).and_then(|n| n.master.as_deref()).and_then(|m| index_of.get(m).copied());
        Routes {
            myself: index_of.get(myself).copied(),
            my_master,
            migrating: state
                .migrating
                .iter()
                .filter(|(_, (source, _))| source == myself)
                .filter_map(|(slot, (_, target))| address_of(target).map(|a| (*slot, a)))
                .collect(),
            importing: state
                .importing
                .iter()
                .filter(|(_, (importer, _))| importer == myself)
                .map(|(s, _)| *s)
                .collect(),
            owners,
            addresses,
            ok,
            reads_when_down,
        }
    }

    /// Where a request goes: served here (None), served here if its keys
    /// are (Some(open slot)), or an error reply that redirects it.
    pub fn check(&self, request: &Request) -> Result<Option<OpenSlot>, CmdError> {
        let Some((&first, rest)) = request.keys.split_first() else { return Ok(None) };
        let slot = key_slot(first);
        let mut multiple_keys = false;
        for key in rest {
            if *key != first {
                if key_slot(key) != slot {
                    return Err(cross_slot());
                }
                multiple_keys = true;
            }
        }
        let owner = self.owners[slot as usize];
        if owner == NOBODY {
            return Err(CmdError::Custom("CLUSTERDOWN Hash slot not served".into()));
        }
        if !self.ok {
            if !self.reads_when_down {
                return Err(CmdError::Custom("CLUSTERDOWN The cluster is down".into()));
            }
            if request.write {
                return Err(CmdError::Custom("CLUSTERDOWN The cluster is down and only accepts read commands".into()));
            }
        }
        let mine = Some(owner) == self.myself;
        let migrating = mine.then(|| self.migrating.get(&slot)).flatten();
        let importing = migrating.is_none() && self.importing.contains(&slot);
        if (migrating.is_some() || importing) && request.migrate {
            return Ok(None);
        }
        if let Some(target) = migrating {
            return Ok(Some(OpenSlot { slot, ask: Some(target.clone()), multiple_keys }));
        }
        if importing && request.asking {
            return Ok(multiple_keys.then_some(OpenSlot { slot, ask: None, multiple_keys }));
        }
        if request.readonly && !request.write && self.my_master == Some(owner) {
            return Ok(None);
        }
        if mine {
            return Ok(None);
        }
        Err(CmdError::Custom(format!("MOVED {slot} {}", self.addresses[owner as usize])))
    }

    /// The slots this node serves as owner.
    pub fn owns(&self, slot: u16) -> bool {
        self.myself.is_some() && self.owners[slot as usize] == self.myself.unwrap_or(NOBODY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_cluster::state::{Entry, Node, SlotAction};

    fn node(name: &str, port: u16) -> Node {
        Node::new(name, port as u64, "127.0.0.1", port, port + 10000)
    }

    /// Slots 0..8192 on "a" (port 7000), the rest on "b" (7001); "r"
    /// replicates "a".
    fn state() -> ClusterState {
        let mut state = ClusterState::default();
        for (name, port) in [("a", 7000), ("b", 7001), ("r", 7002)] {
            state.apply(&Entry::Join { node: node(name, port), slots: vec![] });
        }
        state.apply(&Entry::AddSlots { by: "a".into(), slots: (0..8192).collect() });
        state.apply(&Entry::AddSlots { by: "b".into(), slots: (8192..16384).collect() });
        state.apply(&Entry::Replicate { by: "r".into(), master: "a".into() });
        state
    }

    fn request<'a>(keys: &'a [&'a [u8]], write: bool) -> Request<'a> {
        Request { keys, write, asking: false, readonly: false, migrate: false }
    }

    fn error(result: Result<Option<OpenSlot>, CmdError>) -> String {
        match result {
            Err(CmdError::Custom(text)) => text,
            other => panic!("expected a redirection, got {other:?}"),
        }
    }

    // key_slot("foo") = 12182 (b), key_slot("bar") = 5061 (a).
    #[test]
    fn keys_are_served_by_their_owner_or_moved() {
        let routes = Routes::new(&state(), "a", true, false);
        assert_eq!(routes.check(&request(&[b"bar"], true)).ok(), Some(None));
        assert_eq!(error(routes.check(&request(&[b"foo"], false))), "MOVED 12182 127.0.0.1:7001");
        assert_eq!(error(routes.check(&request(&[b"foo", b"bar"], false))), cross_slot().to_string());
        assert_eq!(routes.check(&request(&[b"{bar}x", b"bar", b"bar"], true)).ok(), Some(None));
        assert_eq!(routes.check(&request(&[], true)).ok(), Some(None));
    }

    #[test]
    fn unserved_slots_and_a_down_cluster_refuse() {
        let mut state = state();
        state.apply(&Entry::DelSlots { by: "b".into(), slots: vec![12182] });
        let routes = Routes::new(&state, "a", false, false);
        assert_eq!(error(routes.check(&request(&[b"foo"], false))), "CLUSTERDOWN Hash slot not served");
        assert_eq!(error(routes.check(&request(&[b"bar"], false))), "CLUSTERDOWN The cluster is down");
        let reads = Routes::new(&state, "a", false, true);
        assert_eq!(reads.check(&request(&[b"bar"], false)).ok(), Some(None));
        assert!(error(reads.check(&request(&[b"bar"], true))).contains("only accepts read commands"));
    }

    #[test]
    fn a_readonly_replica_serves_reads_of_its_master() {
        let routes = Routes::new(&state(), "r", true, false);
        let mut read = request(&[b"bar"], false);
        assert_eq!(error(routes.check(&read)), "MOVED 5061 127.0.0.1:7000");
        read.readonly = true;
        assert_eq!(routes.check(&read).ok(), Some(None));
        let mut write = request(&[b"bar"], true);
        write.readonly = true;
        assert_eq!(error(routes.check(&write)), "MOVED 5061 127.0.0.1:7000");
        let mut other = request(&[b"foo"], false);
        other.readonly = true;
        assert_eq!(error(routes.check(&other)), "MOVED 12182 127.0.0.1:7001");
    }

    #[test]
    fn open_slots_ask_and_try_again_as_redis_does() {
        let mut state = state();
        let slot = 5061; // "bar" on a, moving to b
        state.apply(&Entry::SetSlot { by: "b".into(), slot, action: SlotAction::Importing("a".into()) });
        state.apply(&Entry::SetSlot { by: "a".into(), slot, action: SlotAction::Migrating("b".into()) });
        let source = Routes::new(&state, "a", true, false);
        let open = source.check(&request(&[b"bar"], true)).unwrap().unwrap();
        assert_eq!(open.settle(0, 1).ok(), Some(()));
        assert_eq!(open.settle(1, 0).unwrap_err().to_string(), "ASK 5061 127.0.0.1:7001");
        let both = source.check(&request(&[b"bar", b"{bar}2"], true)).unwrap().unwrap();
        assert!(both.settle(1, 1).unwrap_err().to_string().starts_with("TRYAGAIN"));
        let mut migrate = request(&[b"bar"], true);
        migrate.migrate = true;
        assert_eq!(source.check(&migrate).ok(), Some(None));

        let target = Routes::new(&state, "b", true, false);
        assert_eq!(error(target.check(&request(&[b"bar"], true))), "MOVED 5061 127.0.0.1:7000");
        let mut asking = request(&[b"bar"], true);
        asking.asking = true;
        assert_eq!(target.check(&asking).ok(), Some(None));
        let keys: [&[u8]; 2] = [b"bar", b"{bar}2"];
        let mut asking_two = request(&keys, true);
        asking_two.asking = true;
        let open = target.check(&asking_two).unwrap().unwrap();
        assert!(open.settle(1, 1).unwrap_err().to_string().starts_with("TRYAGAIN"));
        assert_eq!(open.settle(0, 2).ok(), Some(()));
    }
}
