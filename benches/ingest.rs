//! Hot paths of ingestion that need no sockets: parsing a Flume config, cutting a receive
//! buffer into line events, a JSON batch POSTed to the http source, and a memory channel
//! put/take/commit round of one batch.

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use flume_fast::channel::{Channel, ChannelKind, MemoryConfig};
use flume_fast::config::{load_str, Substitutions};
use flume_fast::event::Event;
use flume_fast::source::netcat::split_lines;
use std::path::Path;
use std::time::Duration;

fn config(c: &mut Criterion) {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/conf/examples/multiplexing.conf"
    ))
    .unwrap();
    let subs = Substitutions::default();
    c.bench_function("config/load multiplexing.conf", |b| {
        b.iter(|| load_str(Path::new("m.conf"), &text, None, &subs).unwrap())
    });
}

fn lines(c: &mut Criterion) {
    let line = [b'x'; 99]
        .iter()
        .copied()
        .chain([b'\n'])
        .collect::<Vec<u8>>();
    let buf: Vec<u8> = line.iter().copied().cycle().take(100 * 1000).collect();
    let mut g = c.benchmark_group("netcat");
    g.throughput(Throughput::Elements(1000));
    g.bench_function("split 1000 lines of 100 B", |b| {
        b.iter_batched(
            || BytesMut::from(&buf[..]),
            |mut b| split_lines(&mut b, 512),
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

/// The http source's request path without the socket: one POST of a JSON batch of 100
/// events (two headers, a 100-byte body each) read off the buffer and turned into events.
fn http_json(c: &mut Criterion) {
    use flume_fast::source::http::handler::Handler;
    use flume_fast::source::http::request::Reader;
    let one = format!(
        r#"{{"headers":{{"host":"web-01","seq":"12345"}},"body":"{}"}}"#,
        "x".repeat(100)
    );
    let json = format!("[{}]", vec![one; 100].join(","));
    let wire = format!(
        "POST / HTTP/1.1\r\nHost: h\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{json}",
        json.len()
    );
    let mut g = c.benchmark_group("http");
    g.throughput(Throughput::Elements(100));
    g.bench_function("POST of 100 JSON events to events", |b| {
        b.iter_batched(
            || BytesMut::from(wire.as_bytes()),
            |mut buf| {
                let req = Reader::new(1 << 20).next(&mut buf).unwrap().unwrap();
                Handler::Json.events(&req.head, req.body).unwrap()
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

fn memory_channel(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let ch = Channel::open(
        "c",
        &ChannelKind::Memory(MemoryConfig {
            capacity: 10_000,
            transaction_capacity: 1000,
            keep_alive: Duration::from_secs(3),
            body_budget: None,
        }),
        0,
        1,
    )
    .unwrap();
    let body = bytes::Bytes::from(vec![b'x'; 100]);
    let mut g = c.benchmark_group("memory channel");
    g.throughput(Throughput::Elements(1000));
    g.bench_function("put+take+commit 1000 events", |b| {
        b.iter(|| {
            let batch: Vec<Event> = (0..1000).map(|_| Event::new(body.clone())).collect();
            rt.block_on(ch.put(batch)).unwrap();
            ch.take(1000).commit();
        })
    });
    g.finish();
}

criterion_group!(benches, config, lines, http_json, memory_channel);
criterion_main!(benches);
