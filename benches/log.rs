//! The write-ahead log: appending records under the log lock, group
//! commit (one write for many records), and an fsync-covered group commit
//! as `appendfsync always` does it, from several writer threads.

use std::sync::Arc;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use strata_engines::log::{FsyncPolicy, Log};
use strata_engines::memory::{ListOp, MemOp, MemRecord};

/// A record like one LPUSH of a 64-byte value (memory engine) plus a SET's
/// worth of RocksDB batch bytes.
fn sample() -> (Vec<u8>, Vec<MemRecord>) {
    let rocks = vec![7u8; 96];
    let mem = vec![MemRecord::Op {
        db: 0,
        op: MemOp::List {
            key: Bytes::from_static(b"key:000123"),
            op: ListOp::Push { front: true, items: vec![Bytes::from(vec![b'x'; 64])] },
        },
    }];
    (rocks, mem)
}

fn open(dir: &std::path::Path, policy: FsyncPolicy) -> Arc<Log> {
    Log::open(dir, 1, policy, 64 << 20, Default::default()).expect("open log")
}

fn append(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), FsyncPolicy::No);
    let (rocks, mem) = sample();
    let mut group = c.benchmark_group("log");
    group.throughput(Throughput::Elements(1));
    group.bench_function("append_one_record", |b| b.iter(|| log.lock().push(&rocks, &mem)));
    // Group commit: a batch of records, then one write(2) for all of them.
    for batch in [1u64, 16, 256] {
        group.throughput(Throughput::Elements(batch));
        group.bench_with_input(BenchmarkId::new("append_then_write_out", batch), &batch, |b, &batch| {
            b.iter(|| {
                let mut last = 0;
                for _ in 0..batch {
                    last = log.lock().push(&rocks, &mem);
                }
                log.write_through(last).unwrap();
            })
        });
    }
    group.finish();
    log.close().unwrap();
}

/// `appendfsync always` from 8 threads: each appends, then fsyncs or waits
/// for the thread fsyncing; fsyncs are shared.
fn always(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), FsyncPolicy::Always);
    let (rocks, mem) = sample();
    let mut group = c.benchmark_group("log_always");
    group.sample_size(10);
    const THREADS: u64 = 8;
    const PER_THREAD: u64 = 200;
    group.throughput(Throughput::Elements(THREADS * PER_THREAD));
    group.bench_function("8_writers_200_records_each", |b| {
        b.iter(|| {
            std::thread::scope(|scope| {
                for _ in 0..THREADS {
                    scope.spawn(|| {
                        for _ in 0..PER_THREAD {
                            let seq = log.lock().push(&rocks, &mem);
                            while log.synced_seq() < seq {
                                match log.claim_lead() {
                                    Some(lead) => lead.sync().unwrap(),
                                    None => std::thread::yield_now(),
                                }
                            }
                        }
                    });
                }
            })
        })
    });
    group.finish();
    log.close().unwrap();
}

criterion_group!(benches, append, always);
criterion_main!(benches);
