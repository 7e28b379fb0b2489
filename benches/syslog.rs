//! The syslog decoder (syslogtcp's per-connection work): messages per second of
//! `Decoder::feed_shared` over a receive buffer of loggen-like lines, RFC 5424 and RFC
//! 3164, with the clock's second shared by runs of messages as on a live stream.

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use flume_fast::source::syslog::decode::{Clock, Decoder, Keep, LineParser};
use jiff::tz::TimeZone;
use std::rc::Rc;

const N: usize = 1000;

/// `N` lines as syslog-ng's loggen writes them (`--size 256`), ten per second.
fn lines(rfc5424: bool) -> Vec<u8> {
    let mut buf = Vec::new();
    for i in 0..N {
        let s = i / 10;
        let line = if rfc5424 {
            format!(
                "<38>1 2026-12-08T00:{:02}:{:02}+00:00 localhost prg00000 1234 - - \u{feff}seq: {i:010}, thread: 0000, runid: 1765152000, stamp: 2026-12-08T00:{:02}:{:02} ",
                s / 60, s % 60, s / 60, s % 60
            )
        } else {
            format!(
                "<38>Dec  8 00:{:02}:{:02} localhost prg00000[1234]: seq: {i:010}, thread: 0000, runid: 1765152000, stamp: 2026-12-08T00:{:02}:{:02} ",
                s / 60, s % 60, s / 60, s % 60
            )
        };
        buf.extend_from_slice(line.as_bytes());
        buf.resize(buf.len() + 256 - line.len().min(255) - 1, b'P');
        buf.push(b'\n');
    }
    buf
}

fn decode(c: &mut Criterion) {
    let tz = TimeZone::get("America/New_York").unwrap();
    let mut g = c.benchmark_group("syslog decode");
    g.throughput(Throughput::Elements(N as u64));
    for (name, rfc5424) in [
        ("1000 x 256 B RFC 5424", true),
        ("1000 x 256 B RFC 3164", false),
    ] {
        let buf = Rc::new(Bytes::from(lines(rfc5424)));
        let mut d = Decoder::with_clock(
            2500,
            Keep::default(),
            Clock::Fixed(1_765_152_000_000),
            tz.clone(),
        );
        g.bench_function(name, |b| {
            b.iter(|| {
                let mut events = Vec::with_capacity(N);
                let mut at = 0;
                while at < buf.len() {
                    let (n, e) = d.feed_shared(&buf, at);
                    at += n;
                    events.extend(e);
                }
                assert_eq!(events.len(), N);
                events
            })
        });
    }
    let buf = lines(true);
    let p = LineParser::with_clock(Keep::default(), Clock::Fixed(1_765_152_000_000), tz);
    g.bench_function("1000 x 256 B RFC 5424, multiport LineParser", |b| {
        b.iter(|| {
            buf.split(|&c| c == b'\n')
                .filter(|l| !l.is_empty())
                .map(|l| p.parse(l, encoding_rs::UTF_8))
                .collect::<Vec<_>>()
        })
    });
    g.finish();
}

criterion_group!(benches, decode);
criterion_main!(benches);
