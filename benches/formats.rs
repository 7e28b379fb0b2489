//! The per-event encoders and decoders at the edges of the agent: the Avro RPC batch
//! decoder (what the avro source does per received frame), HDFS path escaping (per event,
//! to pick its bucket) and SequenceFile record encoding (per event written to HDFS).

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use flume_fast::avro_rpc::binary::Reader;
use flume_fast::avro_rpc::codec::{decode_batch, encode_batch};
use flume_fast::event::{Event, Headers};
use flume_fast::sink::hdfs::escape::{
    parse_time_zone, HostNames, Renderer, RoundUnit, Template, TimeSettings,
};
use flume_fast::sink::hdfs::seqfile::{SeqWriter, ValueType};

const N: usize = 1000;

fn events(with_headers: bool) -> Vec<Event> {
    (0..N)
        .map(|i| {
            let mut h = Headers::new();
            if with_headers {
                h.set("timestamp", (1_700_000_000_000u64 + i as u64).to_string());
                h.set("host", format!("web-{:02}", i % 16));
            }
            Event::with_headers(h, Bytes::from(vec![b'x'; 100]))
        })
        .collect()
}

fn avro_decode(c: &mut Criterion) {
    let mut g = c.benchmark_group("avro decode");
    g.throughput(Throughput::Elements(N as u64));
    for (name, with_headers) in [
        ("1000 x 100 B, no headers", false),
        ("1000 x 100 B, 2 headers", true),
    ] {
        let mut wire = BytesMut::new();
        encode_batch(&mut wire, &events(with_headers));
        // Java's Netty transport cuts a frame into 8 KiB buffers; decode the same way.
        let wire = wire.freeze();
        let segs: Vec<Bytes> = (0..wire.len())
            .step_by(8192)
            .map(|at| wire.slice(at..(at + 8192).min(wire.len())))
            .collect();
        g.bench_function(name, |b| {
            b.iter(|| decode_batch(&mut Reader::new(&segs)).unwrap())
        });
    }
    g.finish();
}

fn hdfs_escape(c: &mut Criterion) {
    let hosts = HostNames {
        localhost: "agent".into(),
        ip: "127.0.0.1".into(),
        fqdn: "agent.example".into(),
    };
    let template = Template::parse("/flume/%{host}/%Y-%m-%d/%H%M", &hosts).unwrap();
    let mut renderer = Renderer::new(TimeSettings {
        tz: parse_time_zone("UTC").unwrap(),
        round: Some((RoundUnit::Minute, 10)),
        use_local: false,
    });
    let evs = events(true);
    let mut g = c.benchmark_group("hdfs path");
    g.throughput(Throughput::Elements(N as u64));
    g.bench_function(
        "render /flume/%{host}/%Y-%m-%d/%H%M rounded, 1000 events",
        |b| {
            let mut out = String::new();
            b.iter(|| {
                for e in &evs {
                    out.clear();
                    renderer.render(&template, &e.headers, 0, &mut out).unwrap();
                }
            })
        },
    );
    g.finish();
}

fn seqfile(c: &mut Criterion) {
    let evs = events(false);
    let mut g = c.benchmark_group("sequencefile");
    g.throughput(Throughput::Elements(N as u64));
    g.bench_function("append 1000 x 100 B BytesWritable records", |b| {
        let mut w = SeqWriter::new(ValueType::Bytes, None, [7; 16]);
        let mut out = Vec::with_capacity(256 * 1024);
        b.iter(|| {
            out.clear();
            for (i, e) in evs.iter().enumerate() {
                w.append(i as i64, &e.body, &mut out);
            }
            w.flush(&mut out);
        })
    });
    g.finish();
}

criterion_group!(benches, avro_decode, hdfs_escape, seqfile);
criterion_main!(benches);
