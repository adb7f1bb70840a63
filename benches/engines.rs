//! Each engine's hot operations through the real command path (parse
//! arguments, lock shards, apply, log), in-process on a temp dir:
//! GET/SET on RocksDB, LPUSH/LPOP, ZADD/ZRANGE, XADD, SADD in memory.

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use strata::client::Client;
use strata::commands::dispatch;
use strata::server::Server;

struct Bench {
    server: std::sync::Arc<Server>,
    client: Client,
    _dir: tempfile::TempDir,
}

impl Bench {
    fn new() -> Bench {
        let dir = tempfile::tempdir().expect("temp dir");
        let (server, client) = Server::open_in_process(dir.path()).expect("open server");
        Bench { server, client, _dir: dir }
    }

    fn run(&mut self, args: &[&[u8]]) {
        let argv: Vec<Bytes> = args.iter().map(|a| Bytes::copy_from_slice(a)).collect();
        let reply = dispatch(&self.server, &mut self.client, &argv);
        assert!(!matches!(reply, strata::protocol::Reply::Error(_)), "{reply:?}");
    }
}

fn engines(c: &mut Criterion) {
    let mut b = Bench::new();
    let value = vec![b'x'; 64];
    let mut group = c.benchmark_group("engines");
    group.throughput(Throughput::Elements(1));
    let mut i = 0u64;
    let mut key = move || {
        i = (i + 7919) % 100_000;
        format!("key:{i:06}").into_bytes()
    };
    group.bench_function("rocksdb_set", |bench| bench.iter(|| b.run(&[b"SET", &key(), &value])));
    group.bench_function("rocksdb_get", |bench| bench.iter(|| b.run(&[b"GET", &key()])));
    group.bench_function("list_lpush", |bench| bench.iter(|| b.run(&[b"LPUSH", b"list", &value])));
    group.bench_function("list_lpop", |bench| bench.iter(|| b.run(&[b"LPOP", b"list"])));
    group.bench_function("set_sadd", |bench| bench.iter(|| b.run(&[b"SADD", b"set", &key()])));
    group.bench_function("zset_zadd", |bench| {
        bench.iter(|| {
            let member = key();
            let score = (member[4] as u32 * 7).to_string();
            b.run(&[b"ZADD", b"zset", score.as_bytes(), &member])
        })
    });
    group.bench_function("zset_zrange_10", |bench| bench.iter(|| b.run(&[b"ZRANGE", b"zset", b"100", b"109"])));
    group.bench_function("stream_xadd", |bench| {
        bench.iter(|| b.run(&[b"XADD", b"stream", b"MAXLEN", b"~", b"10000", b"*", b"field", &value]))
    });
    group.finish();
}

criterion_group!(benches, engines);
criterion_main!(benches);
