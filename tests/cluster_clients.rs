//! redis-rs's cluster client against three Strata nodes made a cluster by
//! `redis-cli --cluster create`, each with its bus on a `cluster-port` of
//! its own (so redis-cli reads the bus port from CLUSTER NODES and MEETs
//! with it).

mod common;

use std::process::Command;
use std::time::Duration;

use common::{free_port, wait_until, TestServer};
use redis::cluster::ClusterClient;
use redis::Commands;

fn cluster_node() -> TestServer {
    let bus = free_port().to_string();
    TestServer::start_with(&["--cluster-enabled", "yes", "--cluster-port", &bus, "--cluster-node-timeout", "2000"])
}

#[test]
fn redis_rs_cluster_client_reads_writes_and_pipelines() {
    let nodes: Vec<TestServer> = (0..3).map(|_| cluster_node()).collect();
    let addresses: Vec<String> = nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)).collect();
    let created = Command::new("redis-cli")
        .args(["--cluster", "create"])
        .args(&addresses)
        .args(["--cluster-yes"])
        .output()
        .expect("redis-cli runs");
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stdout));
    for node in &nodes {
        wait_until(
            Duration::from_secs(30),
            "cluster_state:ok",
            || matches!(node.conn().call(&["CLUSTER", "INFO"]), common::Value::Bulk(text) if text.starts_with(b"cluster_state:ok")),
        );
    }
    let urls: Vec<String> = nodes.iter().map(|n| format!("redis://127.0.0.1:{}/", n.port)).collect();
    let client = ClusterClient::new(urls).expect("cluster client");
    let mut conn = client.get_connection().expect("connects");
    for i in 0..300 {
        let _: () = conn.set(format!("key:{i}"), i).expect("SET");
    }
    for i in 0..300 {
        let value: i64 = conn.get(format!("key:{i}")).expect("GET");
        assert_eq!(value, i);
    }
    let _: () = conn.rpush("{q}list", &["a", "b"]).expect("RPUSH");
    let items: Vec<String> = conn.lrange("{q}list", 0, -1).expect("LRANGE");
    assert_eq!(items, ["a", "b"]);
    let values: Vec<Option<String>> =
        redis::cmd("MGET").arg("{q}x").arg("{q}y").query(&mut conn).expect("MGET in one slot");
    assert_eq!(values, [None, None]);
    let mut pipe = redis::cluster::cluster_pipe();
    for i in 0..50 {
        pipe.incr(format!("counter:{i}"), 1);
    }
    let counts: Vec<i64> = pipe.query(&mut conn).expect("pipeline");
    assert_eq!(counts, vec![1; 50]);
    let stored: usize = nodes
        .iter()
        .map(|n| match n.conn().call(&["DBSIZE"]) {
            common::Value::Int(n) => n as usize,
            other => panic!("DBSIZE answered {other:?}"),
        })
        .sum();
    assert_eq!(stored, 300 + 1 + 50);
}
