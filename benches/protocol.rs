//! Request parsing and reply encoding throughput.

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use strata::protocol::{ParseOutcome, Reply, ReplyEncoder, RequestLimits, RequestParser};

fn set_frames(count: usize) -> Vec<u8> {
    let mut wire = Vec::new();
    for i in 0..count {
        let key = format!("key:{i:08}");
        wire.extend_from_slice(format!("*3\r\n$3\r\nSET\r\n${}\r\n{}\r\n$64\r\n", key.len(), key).as_bytes());
        wire.extend_from_slice(&[b'x'; 64]);
        wire.extend_from_slice(b"\r\n");
    }
    wire
}

fn parse(c: &mut Criterion) {
    const FRAMES: usize = 1000;
    let wire = set_frames(FRAMES);
    let limits = RequestLimits::default();
    let mut group = c.benchmark_group("parse");
    group.throughput(Throughput::Elements(FRAMES as u64));
    group.bench_function("set_64b_pipeline_1000", |b| {
        b.iter(|| {
            let mut buf = BytesMut::from(&wire[..]);
            let mut parser = RequestParser::default();
            let mut parsed = 0;
            while let Ok(ParseOutcome::Request(args)) = parser.parse(&mut buf, &limits) {
                parsed += args.len();
                if buf.is_empty() {
                    break;
                }
            }
            parsed
        })
    });
    group.finish();
}

fn encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("encode");
    let value = Bytes::from(vec![b'v'; 64]);
    group.throughput(Throughput::Elements(1000));
    group.bench_function("bulk_64b_x1000", |b| {
        let encoder = ReplyEncoder { resp3: false };
        let mut out = BytesMut::with_capacity(1 << 20);
        b.iter(|| {
            out.clear();
            for _ in 0..1000 {
                encoder.encode(&Reply::Bulk(value.clone()), &mut out);
            }
            out.len()
        })
    });
    let array = Reply::Array((0..100).map(|i| Reply::bulk(format!("member:{i}").into_bytes())).collect());
    group.throughput(Throughput::Elements(100));
    group.bench_function("array_100_bulks", |b| {
        let encoder = ReplyEncoder { resp3: false };
        let mut out = BytesMut::with_capacity(1 << 16);
        b.iter(|| {
            out.clear();
            encoder.encode(&array, &mut out);
            out.len()
        })
    });
    group.finish();
}

criterion_group!(benches, parse, encode);
criterion_main!(benches);
