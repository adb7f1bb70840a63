//! `cluster-config-file` (nodes.conf): the node's id and the applied
//! configuration in Redis's format (CLUSTER NODES lines and a `vars`
//! line), rewritten atomically after every applied change. The Raft log
//! holds the configuration itself; this file is what gives a restarted
//! node its id and what an operator reads.

use std::io::Write;
use std::path::{Path, PathBuf};

pub struct NodesFile {
    path: PathBuf,
    /// What the file holds as this process last wrote it (one save at a
    /// time: saves share the temporary file).
    written: parking_lot::Mutex<Option<String>>,
}

/// A node id: 40 hex characters, random, as Redis makes them.
pub fn new_node_name() -> String {
    let bytes: [u8; 20] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The id on the "myself" line of a nodes file's text.
fn myself_of(text: &str) -> Option<&str> {
    text.lines().find_map(|line| {
        let mut fields = line.split(' ');
        let (name, _, flags) = (fields.next()?, fields.next()?, fields.next()?);
        flags.split(',').any(|f| f == "myself").then_some(name)
    })
}

fn is_node_name(text: &str) -> bool {
    text.len() == 40 && text.bytes().all(|b| b.is_ascii_hexdigit())
}

impl NodesFile {
    /// `cluster-config-file` under the data directory (an absolute path
    /// stays as it is).
    pub fn new(dir: &Path, configured: &str) -> NodesFile {
        NodesFile { path: dir.join(configured), written: parking_lot::Mutex::new(None) }
    }

    /// This node's id and Raft id as the file gives them, None when there
    /// is no file; an error when the file cannot be read or names no node
    /// as "myself" (Redis refuses such a file too).
    pub fn load(&self) -> Result<Option<(String, u64)>, String> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("can't read the cluster config file {}: {e}", self.path.display())),
        };
        // An empty file is a new node, as in Redis.
        if text.trim().is_empty() {
            return Ok(None);
        }
        let corrupt =
            |why: &str| format!("Unrecoverable error: corrupted cluster config file {} ({why})", self.path.display());
        let mut name = None;
        let mut raft_id = None;
        for line in text.lines() {
            let fields: Vec<&str> = line.split(' ').collect();
            if fields.first() == Some(&"vars") {
                for pair in fields[1..].chunks(2) {
                    if let [key, value] = pair {
                        if *key == "strataRaftId" {
                            raft_id = Some(value.parse::<u64>().map_err(|_| corrupt("bad strataRaftId"))?);
                        }
                    }
                }
            } else if fields.len() >= 3 && fields[2].split(',').any(|f| f == "myself") && is_node_name(fields[0]) {
                name = Some(fields[0].to_string());
            }
        }
        match (name, raft_id) {
            (Some(name), Some(raft_id)) => Ok(Some((name, raft_id))),
            (None, _) => Err(corrupt("no line for this node")),
            (Some(_), None) => Err(corrupt("no strataRaftId")),
        }
    }

    /// Writes the node lines and the epoch to a temporary file renamed
    /// over the old one, unless the file holds them already. Synced when
    /// `durable` or when this node's id is not yet durably there (the first
    /// save of a run, a new id): the Raft DB keeps the configuration, this
    /// file is what must keep the id.
    pub fn save(&self, nodes: &str, current_epoch: u64, raft_id: u64, durable: bool) -> std::io::Result<()> {
        let mut written = self.written.lock();
        let text = format!("{nodes}vars currentEpoch {current_epoch} lastVoteEpoch 0 strataRaftId {raft_id}\n");
        if !durable && written.as_deref() == Some(text.as_str()) {
            return Ok(());
        }
        let sync = durable || written.as_deref().map(myself_of) != Some(myself_of(&text));
        let tmp = self.path.with_extension("tmp");
        {
            let mut file = std::fs::File::create(&tmp)?;
            file.write_all(text.as_bytes())?;
            if sync {
                file.sync_all()?;
            }
        }
        std::fs::rename(&tmp, &self.path)?;
        if let (true, Some(dir)) = (sync, self.path.parent()) {
            std::fs::File::open(dir)?.sync_all()?;
        }
        *written = Some(text);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_id_survives_a_save_and_garbage_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = NodesFile::new(dir.path(), "nodes.conf");
        assert_eq!(file.load(), Ok(None));
        let name = new_node_name();
        assert!(is_node_name(&name));
        let other = new_node_name();
        let lines = format!(
            "{other} 127.0.0.1:7001@17001 master - 0 0 1 connected 100\n\
             {name} 127.0.0.1:7000@17000 myself,master - 0 0 2 connected 0-99\n"
        );
        file.save(&lines, 2, 77, false).unwrap();
        assert_eq!(file.load(), Ok(Some((name, 77))));
        let text = std::fs::read_to_string(dir.path().join("nodes.conf")).unwrap();
        assert!(text.ends_with("vars currentEpoch 2 lastVoteEpoch 0 strataRaftId 77\n"));
        std::fs::write(dir.path().join("nodes.conf"), "").unwrap();
        assert_eq!(file.load(), Ok(None));
        let no_raft_id = format!("{} 1.2.3.4:1@2 myself,master - 0 0 0 connected\n", new_node_name());
        for garbage in ["not a nodes file\n", "zz 1.2.3.4:1@2 myself,master\n", "\u{0}\u{1}", &no_raft_id] {
            std::fs::write(dir.path().join("nodes.conf"), garbage).unwrap();
            assert!(file.load().is_err(), "{garbage:?}");
        }
    }
}
