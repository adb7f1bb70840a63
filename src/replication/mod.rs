//! Replication on the log: a replica holds the same records at the same
//! sequences as its master, so the replication offset is the log
//! sequence. A replica that reconnects asks for the records after its last
//! one (`PSYNC replid seq+1`) and gets them as long as the master's log
//! still holds them (`+CONTINUE`); otherwise the master sends a strict
//! snapshot (`+FULLRESYNC replid seq`, `transfer`) and then the records
//! after it. Records travel as the log's own frames, checked as recovery
//! checks them, and a replica applies them with the keys they touch locked
//! (`Keyspace::apply_replicated`).
//!
//! Replication ids follow Redis's rules: a node's history is named by
//! `replid`; a promoted replica keeps its master's id as `replid2`, valid
//! up to `second_repl_offset`, so its former siblings continue with it.
//! They survive restarts in `replication.json` of the data directory.

pub mod master;
pub mod render;
pub mod replica;
pub mod transfer;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use serde_json::json;

/// Capability a Strata replica announces (`REPLCONF capa strata`): it
/// takes snapshots and records in Strata's formats.
pub const STRATA_CAPA: &str = "strata";

/// A fresh replication id: 40 hex digits.
pub fn new_replid() -> String {
    (0..40).map(|_| format!("{:x}", rand::random::<u8>() % 16)).collect()
}

/// The ids naming this node's replication history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplIds {
    pub replid: String,
    /// The previous history's id ("000..." when none), valid up to and
    /// including sequence `second_repl_offset` (-1 when none).
    pub replid2: String,
    pub second_repl_offset: i64,
}

impl ReplIds {
    fn fresh() -> ReplIds {
        ReplIds { replid: new_replid(), replid2: "0".repeat(40), second_repl_offset: -1 }
    }

    /// Whether a replica whose history is `replid` up to `have` can go on
    /// from this node's log.
    pub fn continues(&self, replid: &str, have: u64) -> bool {
        replid == self.replid || (replid == self.replid2 && have as i64 <= self.second_repl_offset)
    }

    /// A new history starts after `last` (a replica promoted, a master
    /// whose id changed): the current one stays valid up to `last`.
    pub fn shift(&mut self, replid: String, last: u64) {
        self.replid2 = std::mem::replace(&mut self.replid, replid);
        self.second_repl_offset = last as i64;
    }
}

/// What this node replicates from, when it is a replica.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MasterAddr {
    pub host: String,
    pub port: u16,
}

/// The replica side's link, as INFO and ROLE show it.
#[derive(Default)]
pub struct LinkState {
    /// Redis's words: connect, connecting, sync, connected.
    pub state: Mutex<&'static str>,
    /// Unix ms of the last bytes from the master.
    pub last_io_ms: AtomicU64,
    /// Unix ms the link went down (0: up, or never connected).
    pub down_since_ms: AtomicU64,
    /// Full sync bytes expected (0: unknown, `$EOF` framing) and received.
    pub sync_read_bytes: AtomicU64,
    pub sync_started_ms: AtomicU64,
}

/// A replica attached to this node (master side).
pub struct AttachedReplica {
    pub client_id: u64,
    pub ip: String,
    /// The port it listens on (`REPLCONF listening-port`).
    pub port: u16,
    /// Redis's words: wait_bgsave, send_bulk, online.
    pub state: Mutex<&'static str>,
    /// The last sequence it acknowledged (`REPLCONF ACK`), and when.
    pub ack_seq: AtomicU64,
    pub ack_ms: AtomicU64,
    /// Set to make its link end.
    pub dropped: AtomicBool,
    /// For a replica that is not Strata: how its byte offsets map to
    /// sequences.
    pub plain: Option<PlainOffsets>,
}

/// A Redis replica counts the bytes of commands it has processed from the
/// offset of its full sync (`base`, the snapshot's sequence); `marks` hold
/// (bytes sent, last sequence in them) as records go out.
#[derive(Default)]
pub struct PlainOffsets {
    pub base: AtomicU64,
    pub marks: Mutex<std::collections::VecDeque<(u64, u64)>>,
    /// A WAIT asks it to acknowledge now (`REPLCONF GETACK *`).
    pub getack: AtomicBool,
    /// Whether it has acknowledged anything (redis-cli --replica never does).
    pub acked: AtomicBool,
}

impl PlainOffsets {
    /// The last sequence a replica that acknowledges byte offset `offset`
    /// is known to hold (at least the snapshot's); marks it has passed are
    /// let go (the caller keeps the highest sequence acknowledged).
    pub fn seq_at(&self, offset: u64) -> u64 {
        self.acked.store(true, Ordering::Relaxed);
        let base = self.base.load(Ordering::Acquire);
        let processed = offset.saturating_sub(base);
        let mut marks = self.marks.lock();
        let mut seq = base;
        while let Some(&(_, mark)) = marks.front().filter(|(bytes, _)| *bytes <= processed) {
            seq = mark;
            marks.pop_front();
        }
        seq
    }
}

/// A node's replication state: its ids, its master if any, and the
/// replicas attached to it.
pub struct Replication {
    dir: PathBuf,
    ids: Mutex<ReplIds>,
    master: Mutex<Option<MasterAddr>>,
    /// Bumped by every REPLICAOF: a link of an older one ends.
    pub epoch: AtomicU64,
    pub link: Arc<LinkState>,
    replicas: Mutex<Vec<Arc<AttachedReplica>>>,
    /// Woken whenever a replica acknowledges (WAIT).
    pub acked: tokio::sync::Notify,
    pub sync_full: AtomicU64,
    pub sync_partial_ok: AtomicU64,
    pub sync_partial_err: AtomicU64,
    /// `min-replicas-to-write` and `min-replicas-max-lag` (seconds).
    pub min_replicas: AtomicU64,
    pub min_replicas_max_lag: AtomicU64,
    /// `replica-serve-stale-data`.
    serve_stale: AtomicBool,
}

impl Replication {
    /// The state of data directory `dir`: a master starts a new history
    /// (what it had may not be what its replicas hold: a crash can take
    /// back records they received), a replica keeps its master's to
    /// continue from its own last record.
    pub fn open(dir: &Path, master: Option<MasterAddr>) -> Replication {
        let stored = std::fs::read(ids_path(dir))
            .ok()
            .and_then(|raw| serde_json::from_slice::<serde_json::Value>(&raw).ok())
            .and_then(|v| {
                Some(ReplIds {
                    replid: v["replid"].as_str()?.to_string(),
                    replid2: v["replid2"].as_str()?.to_string(),
                    second_repl_offset: v["second_repl_offset"].as_i64()?,
                })
            });
        let ids = match (&master, stored) {
            (Some(_), Some(stored)) => stored,
            _ => ReplIds::fresh(),
        };
        let replication = Replication {
            dir: dir.to_path_buf(),
            ids: Mutex::new(ids),
            master: Mutex::new(master),
            epoch: AtomicU64::new(0),
            link: Arc::default(),
            replicas: Mutex::new(Vec::new()),
            acked: tokio::sync::Notify::new(),
            sync_full: AtomicU64::new(0),
            sync_partial_ok: AtomicU64::new(0),
            sync_partial_err: AtomicU64::new(0),
            min_replicas: AtomicU64::new(0),
            min_replicas_max_lag: AtomicU64::new(10),
            serve_stale: AtomicBool::new(true),
        };
        if let Err(e) = replication.store_ids() {
            tracing::warn!("writing the replication ids: {e}");
        }
        replication
    }

    /// Takes the settings replication reads on every write.
    pub fn configure(&self, config: &crate::config::Config) {
        self.min_replicas.store(config.number("min-replicas-to-write") as u64, Ordering::Relaxed);
        self.min_replicas_max_lag.store(config.number("min-replicas-max-lag") as u64, Ordering::Relaxed);
        self.serve_stale.store(config.get("replica-serve-stale-data") != Some("no"), Ordering::Relaxed);
    }

    /// Whether a replica refuses commands that need fresh data: its link
    /// is down and `replica-serve-stale-data` is `no`.
    pub fn stale_refused(&self) -> bool {
        !self.serve_stale.load(Ordering::Relaxed) && self.is_replica() && *self.link.state.lock() != "connected"
    }

    pub fn ids(&self) -> ReplIds {
        self.ids.lock().clone()
    }

    /// Changes the ids and stores them (a failure is logged: the next
    /// start then begins a new history, which costs a full sync at worst).
    pub fn set_ids(&self, change: impl FnOnce(&mut ReplIds)) {
        change(&mut self.ids.lock());
        if let Err(e) = self.store_ids() {
            tracing::warn!("writing the replication ids: {e}");
        }
    }

    fn store_ids(&self) -> std::io::Result<()> {
        let ids = self.ids();
        let text = json!({"replid": ids.replid, "replid2": ids.replid2, "second_repl_offset": ids.second_repl_offset});
        let (path, tmp) = (ids_path(&self.dir), self.dir.join("replication.json.tmp"));
        std::fs::create_dir_all(&self.dir)?;
        std::fs::write(&tmp, text.to_string())?;
        std::fs::File::open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        std::fs::File::open(&self.dir)?.sync_all()
    }

    pub fn master(&self) -> Option<MasterAddr> {
        self.master.lock().clone()
    }

    pub fn is_replica(&self) -> bool {
        self.master.lock().is_some()
    }

    /// Makes this node a replica of `master`, or (None) a master. Returns
    /// the new epoch, which the caller's link thread runs under; attached
    /// replicas are dropped when this node changes history (they resync).
    pub fn set_master(&self, master: Option<MasterAddr>, last_seq: u64) -> u64 {
        let mut current = self.master.lock();
        let was_replica = current.is_some();
        *current = master;
        let epoch = self.epoch.fetch_add(1, Ordering::AcqRel) + 1;
        if current.is_none() && was_replica {
            // Promoted: a new history after everything received.
            self.set_ids(|ids| ids.shift(new_replid(), last_seq));
        }
        *self.link.state.lock() = "connect";
        epoch
    }

    pub fn attach(&self, replica: Arc<AttachedReplica>) {
        self.replicas.lock().push(replica);
    }

    pub fn detach(&self, client_id: u64) {
        self.replicas.lock().retain(|r| r.client_id != client_id);
        self.notify_acked();
    }

    pub fn has_replicas(&self) -> bool {
        !self.replicas.lock().is_empty()
    }

    pub fn replicas(&self) -> Vec<Arc<AttachedReplica>> {
        self.replicas.lock().clone()
    }

    /// Ends every attached replica's link (this node's history changed).
    pub fn drop_replicas(&self) {
        for replica in self.replicas.lock().iter() {
            replica.dropped.store(true, Ordering::Release);
        }
    }

    pub fn notify_acked(&self) {
        self.acked.notify_waiters();
    }

    /// Whether writes are refused for want of replicas
    /// (`min-replicas-to-write`): fewer online replicas than it asks for
    /// acknowledged within `min-replicas-max-lag` seconds.
    pub fn too_few_replicas(&self) -> bool {
        let wanted = self.min_replicas.load(Ordering::Relaxed);
        let max_lag = self.min_replicas_max_lag.load(Ordering::Relaxed);
        if wanted == 0 || max_lag == 0 || self.is_replica() {
            return false;
        }
        let now = strata_engines::now_ms();
        let good = self
            .replicas
            .lock()
            .iter()
            .filter(|r| {
                *r.state.lock() == "online" && now.saturating_sub(r.ack_ms.load(Ordering::Relaxed)) / 1000 <= max_lag
            })
            .count();
        (good as u64) < wanted
    }

    /// Asks the replicas that are not Strata to acknowledge at once, as
    /// Redis does for WAIT (Strata replicas acknowledge every batch).
    pub fn request_acks(&self) {
        for replica in self.replicas.lock().iter() {
            if let Some(plain) = &replica.plain {
                plain.getack.store(true, Ordering::Release);
            }
        }
    }

    /// Replicas that acknowledged `seq` or later.
    pub fn acked_by(&self, seq: u64) -> usize {
        self.replicas
            .lock()
            .iter()
            .filter(|r| *r.state.lock() == "online" && r.ack_seq.load(Ordering::Acquire) >= seq)
            .count()
    }
}

fn ids_path(dir: &Path) -> PathBuf {
    dir.join("replication.json")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_promoted_replica_continues_its_old_history_up_to_where_it_was() {
        let mut ids = ReplIds::fresh();
        let old = ids.replid.clone();
        ids.shift(new_replid(), 100);
        assert!(ids.continues(&old, 100));
        assert!(ids.continues(&old, 7));
        assert!(!ids.continues(&old, 101), "a replica past the promotion diverged");
        assert!(ids.continues(&ids.replid.clone(), 500));
        assert!(!ids.continues(&new_replid(), 0));
    }

    #[test]
    fn a_replica_keeps_its_ids_across_restarts_and_a_master_starts_a_new_history() {
        let dir = tempfile::tempdir().unwrap();
        let master = MasterAddr { host: "127.0.0.1".into(), port: 1 };
        let first = Replication::open(dir.path(), Some(master.clone())).ids();
        assert_eq!(Replication::open(dir.path(), Some(master)).ids(), first);
        assert_ne!(Replication::open(dir.path(), None).ids().replid, first.replid);
    }
}
