//! The raft layer end to end: in-process nodes on loopback ports, each with
//! its own RocksDB in a temp dir. Every wait is bounded.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde::Serialize;
use strata_cluster::raft::open_db;
use strata_cluster::raft::ClusterRaft;
use strata_cluster::raft::Error;
use strata_cluster::raft::Machine;
use strata_cluster::raft::RaftConfig;
use strata_cluster::raft::Role;
use tempfile::TempDir;
use tokio::io::AsyncReadExt;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::net::TcpStream;
use tokio::time::Instant;

/// How long any condition may take to come true.
const WAIT: Duration = Duration::from_secs(20);

/// A string map, set by [`Set`]; a set answers the previous value.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct Kv(BTreeMap<String, String>);

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Set(String, String);

impl Machine for Kv {
    type Entry = Set;
    type Response = Option<String>;

    fn apply(&mut self, Set(key, value): &Set) -> Option<String> {
        self.0.insert(key.clone(), value.clone())
    }
}

fn set(key: &str, value: &str) -> Set {
    Set(key.into(), value.into())
}

fn config() -> RaftConfig {
    RaftConfig {
        heartbeat: Duration::from_millis(100),
        election_timeout: Duration::from_millis(800),
        ..RaftConfig::default()
    }
}

fn any_port() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// Opens the node's DB, waiting while a stopped instance's tasks still hold
/// RocksDB's lock on it.
async fn reopen(dir: &Path) -> Arc<rocksdb::DB> {
    let deadline = Instant::now() + WAIT;
    loop {
        match open_db(dir) {
            Ok(db) => return db,
            Err(e) => assert!(Instant::now() < deadline, "cannot reopen {}: {e}", dir.display()),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Starts node `id` on `addr` over the DB in `dir`; its App handler echoes.
async fn start(id: u64, addr: SocketAddr, dir: &Path, config: RaftConfig) -> ClusterRaft<Kv> {
    let db = reopen(dir).await;
    let echo = move |_from: SocketAddr, request: Vec<u8>| async move {
        let mut reply = format!("{id}:").into_bytes();
        reply.extend(request);
        reply
    };
    ClusterRaft::start(id, addr, db, echo, config).await.unwrap()
}

/// Polls `condition` until it holds; fails the test after [`WAIT`].
async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn get(node: &ClusterRaft<Kv>, key: &str) -> Option<String> {
    node.state().0.get(key).cloned()
}

/// Node `id` (1-based) of a test's nodes, while it runs.
fn node(nodes: &[Option<ClusterRaft<Kv>>], id: u64) -> &ClusterRaft<Kv> {
    nodes[id as usize - 1].as_ref().unwrap()
}

async fn wait_leader(node: &ClusterRaft<Kv>) -> u64 {
    let metrics = node.wait_for(WAIT, |m| m.leader.is_some()).await.unwrap();
    metrics.leader.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_replicate_fail_over_and_restart() {
    let dirs: Vec<TempDir> = (0..3).map(|_| TempDir::new().unwrap()).collect();
    let mut nodes = Vec::new();
    for (i, dir) in dirs.iter().enumerate() {
        nodes.push(Some(start(i as u64 + 1, any_port(), dir.path(), config()).await));
    }
    let addrs: Vec<SocketAddr> = nodes.iter().map(|n| n.as_ref().unwrap().bus_addr()).collect();

    // Form the group: 1 alone, then 2 and 3 as learners, then voters.
    let n1 = node(&nodes, 1);
    n1.initialize_alone().await.unwrap();
    n1.wait_for(WAIT, |m| m.role == Role::Leader).await.unwrap();
    n1.initialize_alone().await.unwrap();
    for id in [2, 3] {
        n1.add_learner(id, addrs[id as usize - 1]).await.unwrap();
        assert!(n1.metrics().learners.contains_key(&id));
    }
    for id in [2, 3] {
        n1.promote(id).await.unwrap();
    }
    let metrics = n1.metrics();
    assert_eq!(metrics.voters, BTreeMap::from([(1, addrs[0]), (2, addrs[1]), (3, addrs[2])]));
    assert!(metrics.learners.is_empty());
    // A member is initialized already: initializing it alone does nothing.
    node(&nodes, 2).initialize_alone().await.unwrap();
    assert_eq!(node(&nodes, 2).metrics().voters.len(), 3);

    // A follower's writes go through the leader, which answers.
    let mut applied = node(&nodes, 1).subscribe();
    assert_eq!(node(&nodes, 3).write(set("a", "1")).await.unwrap(), None);
    assert_eq!(node(&nodes, 3).write(set("a", "2")).await.unwrap(), Some("1".into()));
    for id in 1..=3 {
        eventually("a=2 everywhere", || get(node(&nodes, id), "a").as_deref() == Some("2")).await;
    }
    assert!(applied.has_changed().unwrap());
    assert!(applied.borrow_and_update().is_some());

    // The leader stops: the others elect a new one and take writes.
    let old_leader = wait_leader(node(&nodes, 2)).await;
    let stopped = nodes[old_leader as usize - 1].take().unwrap();
    let started = Instant::now();
    stopped.shutdown().await;
    assert!(matches!(stopped.write(set("x", "y")).await, Err(Error::Stopped(_))));
    drop(stopped);
    let survivor = if old_leader == 1 { 2 } else { 1 };
    let new_leader = node(&nodes, survivor)
        .wait_for(WAIT, |m| m.leader.is_some_and(|leader| leader != old_leader))
        .await
        .unwrap()
        .leader
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(10), "failover took {:?}", started.elapsed());
    assert_ne!(new_leader, old_leader);
    assert_eq!(node(&nodes, survivor).write(set("b", "1")).await.unwrap(), None);

    // The old leader restarts from its DB on its port: it has what it had
    // applied at once, and catches up on the rest.
    let dir = dirs[old_leader as usize - 1].path();
    let restarted = start(old_leader, addrs[old_leader as usize - 1], dir, config()).await;
    assert_eq!(get(&restarted, "a").as_deref(), Some("2"));
    eventually("the restarted node catches up", || get(&restarted, "b").as_deref() == Some("1")).await;
    assert_eq!(restarted.write(set("c", "1")).await.unwrap(), None);
    nodes[old_leader as usize - 1] = Some(restarted);
    for id in 1..=3 {
        eventually("c=1 everywhere", || get(node(&nodes, id), "c").as_deref() == Some("1")).await;
    }
    let state = node(&nodes, 1).state().clone();
    for id in 2..=3 {
        assert_eq!(*node(&nodes, id).state(), state);
    }

    // Remove a voter: the group goes on with two.
    let leader = wait_leader(node(&nodes, 1)).await;
    let removed = if leader == 3 { 2 } else { 3 };
    node(&nodes, 1).remove(removed).await.unwrap();
    node(&nodes, leader).wait_for(WAIT, |m| m.voters.len() == 2 && !m.voters.contains_key(&removed)).await.unwrap();
    node(&nodes, 1).write(set("d", "1")).await.unwrap();

    for node in nodes.into_iter().flatten() {
        node.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_lone_node_joins_another_group_from_a_snapshot() {
    // Snapshot often and keep no log behind it, so a joining node can only
    // catch up from a snapshot.
    let config = RaftConfig { snapshot_every: 5, keep_after_snapshot: 0, ..config() };
    let (dir1, dir2) = (TempDir::new().unwrap(), TempDir::new().unwrap());
    let n1 = start(1, any_port(), dir1.path(), config.clone()).await;
    let n2 = start(2, any_port(), dir2.path(), config.clone()).await;

    n1.initialize_alone().await.unwrap();
    for i in 0..20 {
        n1.write(set(&format!("k{i}"), "group")).await.unwrap();
    }
    n1.wait_for(WAIT, |m| m.snapshot.is_some_and(|s| s >= 10)).await.unwrap();

    // Node 2 has a group of its own first.
    n2.initialize_alone().await.unwrap();
    n2.write(set("mine", "lone")).await.unwrap();
    assert_eq!(get(&n2, "mine").as_deref(), Some("lone"));

    let mut applied = n2.subscribe();
    n2.reset().await.unwrap();
    assert_eq!(*n2.state(), Kv::default());
    assert_eq!(*applied.borrow_and_update(), None);
    let metrics = n2.metrics();
    assert!(metrics.voters.is_empty(), "{metrics:?}");
    assert_eq!(metrics.last_applied, None);

    n1.add_learner(2, n2.bus_addr()).await.unwrap();
    eventually("node 2 follows node 1's state", || *n2.state() == *n1.state()).await;
    assert_eq!(get(&n2, "mine"), None);
    assert!(n2.metrics().snapshot.is_some(), "node 2 was sent a snapshot");
    n1.promote(2).await.unwrap();
    n2.write(set("joined", "yes")).await.unwrap();
    eventually("node 2's write is applied on node 1", || get(&n1, "joined").is_some()).await;

    // The installed snapshot and later entries survive a restart.
    let addr2 = n2.bus_addr();
    n2.shutdown().await;
    drop(n2);
    let n2 = start(2, addr2, dir2.path(), config).await;
    assert_eq!(get(&n2, "k19").as_deref(), Some("group"));
    eventually("the restarted node has the last write", || get(&n2, "joined").is_some()).await;

    n1.shutdown().await;
    n2.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_requests_round_trip_and_dead_peers_fail_fast() {
    let config = RaftConfig {
        request_timeout: Duration::from_millis(700),
        write_timeout: Duration::from_millis(700),
        ..config()
    };
    let (dir1, dir2) = (TempDir::new().unwrap(), TempDir::new().unwrap());
    let n1 = Arc::new(start(1, any_port(), dir1.path(), config.clone()).await);
    let n2 = start(2, any_port(), dir2.path(), config).await;

    // Nodes in no group talk App all the same (as MEET does), concurrently
    // and over reused connections.
    assert_eq!(n1.send_app(n2.bus_addr(), b"hello").await.unwrap(), b"2:hello");
    assert_eq!(n1.send_app(n1.bus_addr(), b"me").await.unwrap(), b"1:me");
    let requests: Vec<_> = (0..8).map(|i| format!("ping{i}")).collect();
    let replies = send_all(&n1, n2.bus_addr(), &requests).await;
    for (request, reply) in requests.iter().zip(replies) {
        assert_eq!(reply.unwrap(), format!("2:{request}").into_bytes());
    }
    let big = vec![7u8; 1 << 20];
    assert_eq!(n2.send_app(n1.bus_addr(), &big).await.unwrap().len(), big.len() + 2);

    // Nothing listens: refused at once.
    let dead = TcpListener::bind(any_port()).await.unwrap().local_addr().unwrap();
    let started = Instant::now();
    assert!(matches!(n1.send_app(dead, b"x").await, Err(Error::Unreachable { .. })));
    assert!(started.elapsed() < Duration::from_millis(700));

    // Something listens but never answers: the request times out.
    let silent = TcpListener::bind(any_port()).await.unwrap();
    let started = Instant::now();
    assert!(matches!(n1.send_app(silent.local_addr().unwrap(), b"x").await, Err(Error::Timeout { .. })));
    assert!(started.elapsed() < Duration::from_secs(2));

    // No group, no leader: a write gives up after the write timeout.
    let started = Instant::now();
    assert!(matches!(n1.write(set("a", "1")).await, Err(Error::NoLeader(_))));
    assert!(started.elapsed() < Duration::from_secs(2));

    // A stopped node's port is free again, and refuses.
    let addr2 = n2.bus_addr();
    n2.shutdown().await;
    assert!(matches!(n1.send_app(addr2, b"x").await, Err(Error::Unreachable { .. })));
    drop(TcpListener::bind(addr2).await.unwrap());

    n1.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_without_its_majority_gives_up_in_time() {
    let config = RaftConfig { write_timeout: Duration::from_millis(700), ..config() };
    let (dir1, dir2) = (TempDir::new().unwrap(), TempDir::new().unwrap());
    let n1 = start(1, any_port(), dir1.path(), config.clone()).await;
    let n2 = start(2, any_port(), dir2.path(), config).await;
    n1.initialize_alone().await.unwrap();
    n1.add_learner(2, n2.bus_addr()).await.unwrap();
    n1.promote(2).await.unwrap();
    n1.write(set("a", "1")).await.unwrap();

    n2.shutdown().await;
    let started = Instant::now();
    assert!(matches!(n1.write(set("a", "2")).await, Err(Error::Uncommitted(_))));
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(get(&n1, "a").as_deref(), Some("1"));
    n1.shutdown().await;
}

/// Sends every request at once.
async fn send_all(node: &Arc<ClusterRaft<Kv>>, to: SocketAddr, requests: &[String]) -> Vec<Result<Vec<u8>, Error>> {
    let mut tasks = tokio::task::JoinSet::new();
    for (i, request) in requests.iter().enumerate() {
        let (node, request) = (node.clone(), request.clone().into_bytes());
        tasks.spawn(async move { (i, node.send_app(to, &request).await) });
    }
    let mut replies: Vec<Option<Result<Vec<u8>, Error>>> = (0..requests.len()).map(|_| None).collect();
    while let Some(joined) = tasks.join_next().await {
        let (i, reply) = joined.unwrap();
        replies[i] = Some(reply);
    }
    replies.into_iter().map(Option::unwrap).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_the_bus_drops_the_connection_not_the_listener() {
    let dir = TempDir::new().unwrap();
    let node = start(1, any_port(), dir.path(), config()).await;
    let addr = node.bus_addr();

    let garbage: [&[u8]; 6] = [
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        &[0xff, 0xff, 0xff, 0xff, 1, 2, 3],
        &[0, 0, 0, 0],
        &[0, 0, 0, 3, 9, 0, 0],
        // A frame cut short.
        &[0, 0, 0, 100, 2, 1, 2, 3],
        &[0, 0],
    ];
    for bytes in garbage {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(bytes).await.unwrap();
        stream.shutdown().await.unwrap();
        // The node closes the connection (or waits for more): either way
        // nothing but an end comes back.
        let mut rest = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(2), stream.read_to_end(&mut rest)).await;
        if let Ok(read) = read {
            // A reset is as good as a close.
            if read.is_ok() {
                assert!(rest.is_empty(), "answered garbage {bytes:?} with {rest:?}");
            }
        }
        assert_eq!(node.send_app(addr, b"still there").await.unwrap(), b"1:still there");
    }

    // A whole frame with a bad raft request is answered with an error frame
    // and the connection goes on.
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let body = b"{not json";
    let mut frame = ((body.len() + 1) as u32).to_be_bytes().to_vec();
    frame.push(1);
    frame.extend_from_slice(body);
    stream.write_all(&frame).await.unwrap();
    let mut header = [0u8; 5];
    tokio::time::timeout(WAIT, stream.read_exact(&mut header)).await.unwrap().unwrap();
    assert_eq!(header[4], 3, "an error frame");
    let mut reason = vec![0u8; u32::from_be_bytes(header[..4].try_into().unwrap()) as usize - 1];
    stream.read_exact(&mut reason).await.unwrap();
    assert!(String::from_utf8_lossy(&reason).contains("bad raft request"));
    stream.write_all(&[0, 0, 0, 3, 2, b'h', b'i']).await.unwrap();
    let mut header = [0u8; 5];
    stream.read_exact(&mut header).await.unwrap();
    assert_eq!(header, [0, 0, 0, 5, 2]);
    let mut reply = [0u8; 4];
    stream.read_exact(&mut reply).await.unwrap();
    assert_eq!(&reply, b"1:hi");

    // A connection stuck mid-frame does not hold up the others.
    let mut stuck = TcpStream::connect(addr).await.unwrap();
    stuck.write_all(&[0, 0, 0, 50, 2, 1]).await.unwrap();
    assert_eq!(node.send_app(addr, b"ok").await.unwrap(), b"1:ok");
    drop(stuck);

    node.shutdown().await;
}
