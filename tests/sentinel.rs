//! Automatic failover under Debian's redis-sentinel: one Strata master, two
//! Strata replicas and three sentinels on loopback ports. The master is
//! killed with SIGKILL under a client that confirms each write with
//! `WAIT 1 1000`; the sentinels elect a replica, the other follows it, the
//! old master comes back as a replica; every confirmed write is on the new
//! master and nothing appears twice.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, wait_until, Conn, TestServer, Value};

/// A redis-sentinel process, killed when dropped.
struct Sentinel {
    port: u16,
    child: Child,
}

impl Sentinel {
    fn start(dir: &Path, master_port: u16) -> Sentinel {
        let port = free_port();
        let config = dir.join(format!("sentinel-{port}.conf"));
        std::fs::write(
            &config,
            format!(
                "port {port}\nbind 127.0.0.1\ndaemonize no\ndir {}\nsentinel monitor mymaster 127.0.0.1 {master_port} 2\n\
                 sentinel down-after-milliseconds mymaster 2000\nsentinel failover-timeout mymaster 20000\n\
                 sentinel parallel-syncs mymaster 1\n",
                dir.display()
            ),
        )
        .unwrap();
        let child = Command::new("redis-sentinel")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-sentinel is installed (bash .ci/test installs it)");
        let sentinel = Sentinel { port, child };
        wait_until(Duration::from_secs(20), "redis-sentinel to listen", || Conn::try_connect(port).is_ok());
        sentinel
    }

    fn conn(&self) -> Conn {
        Conn::try_connect(self.port).expect("connect to sentinel")
    }

    /// The master's port as this sentinel knows it.
    fn master_port(&self) -> Option<u16> {
        match self.conn().call(&["SENTINEL", "get-master-addr-by-name", "mymaster"]) {
            Value::Array(addr) if addr.len() == 2 => match &addr[1] {
                Value::Bulk(port) => String::from_utf8_lossy(port).parse().ok(),
                _ => None,
            },
            _ => None,
        }
    }

    fn count(&self, what: &str) -> usize {
        match self.conn().call(&["SENTINEL", what, "mymaster"]) {
            Value::Array(items) => items.len(),
            _ => 0,
        }
    }
}

impl Drop for Sentinel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A Strata server with a config file of its own (sentinel makes it
/// rewrite it), replicating `master` when given.
fn node(dir: &Path, name: &str, master: Option<u16>) -> TestServer {
    let config = dir.join(format!("{name}.conf"));
    let line = master.map(|port| format!("replicaof 127.0.0.1 {port}\n")).unwrap_or_default();
    std::fs::write(&config, line).unwrap();
    TestServer::start_with_config(&config, &["--appendfsync", "always"])
}

#[test]
fn sentinel_fails_over_and_every_write_confirmed_by_wait_survives() {
    let dir = tempfile::tempdir().unwrap();
    let mut master = node(dir.path(), "master", None);
    let first = node(dir.path(), "first", Some(master.port));
    let second = node(dir.path(), "second", Some(master.port));
    let replicas = [&first, &second];
    let sentinels: Vec<Sentinel> = (0..3).map(|_| Sentinel::start(dir.path(), master.port)).collect();
    // Each sentinel found both replicas (INFO) and the other sentinels
    // (hello messages published through the master).
    wait_until(Duration::from_secs(30), "the sentinels to discover everything", || {
        sentinels.iter().all(|s| s.count("replicas") == 2 && s.count("sentinels") == 2)
    });

    let mut writer = master.conn();
    let mut confirmed = Vec::new();
    for i in 0..200 {
        writer.call(&["RPUSH", "log", &i.to_string()]);
        if matches!(writer.call(&["WAIT", "1", "1000"]), Value::Int(n) if n >= 1) {
            confirmed.push(i);
        }
    }
    assert!(confirmed.len() >= 190, "most writes confirmed: {}", confirmed.len());

    let old_port = master.port;
    let killed_at = Instant::now();
    master.kill();
    wait_until(Duration::from_secs(60), "a sentinel to name a new master", || {
        sentinels[0].master_port().is_some_and(|port| port != old_port)
    });
    let new_port = sentinels[0].master_port().unwrap();
    let promoted = replicas.iter().find(|r| r.port == new_port).expect("a replica was promoted");
    let other = replicas.iter().find(|r| r.port != new_port).unwrap();
    let mut new_master = promoted.conn();
    wait_until(Duration::from_secs(30), "the new master to take writes", || {
        matches!(new_master.call(&["RPUSH", "log", "after"]), Value::Int(_))
    });
    eprintln!("failover: {:.1} s from kill -9 to a write on the new master", killed_at.elapsed().as_secs_f64());

    // The other replica follows the new master.
    wait_until(Duration::from_secs(60), "the other replica to follow the new master", || {
        let mut conn = other.conn();
        conn.info_field("master_port") == new_port.to_string() && conn.info_field("master_link_status") == "up"
    });
    // The old master comes back as a replica of the new one.
    master.start_again();
    wait_until(Duration::from_secs(60), "the old master to rejoin as a replica", || {
        let mut conn = master.conn();
        conn.info_field("role") == "slave" && conn.info_field("master_link_status") == "up"
    });

    // Every confirmed write, once.
    let Value::Array(items) = new_master.call(&["LRANGE", "log", "0", "-1"]) else { panic!("LRANGE") };
    let items: Vec<String> = items.iter().map(common::text).collect();
    for i in &confirmed {
        assert_eq!(items.iter().filter(|v| **v == i.to_string()).count(), 1, "write {i} confirmed by WAIT");
    }
    let mut unique = items.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), items.len(), "nothing appears twice");
    let after = items.len() as i64;
    wait_until(Duration::from_secs(30), "both replicas to hold the same list", || {
        [other.port, master.port]
            .iter()
            .all(|&port| Conn::try_connect(port).is_ok_and(|mut c| c.call(&["LLEN", "log"]) == Value::Int(after)))
    });
}
