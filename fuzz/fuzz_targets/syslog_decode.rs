//! Fuzzes the syslog decoders (bytes from any sender on the network): the stream decoder
//! fed in arbitrary splits must give the same events as fed whole (and from a shared
//! buffer), take every byte, keep each event within eventSize, and with keepFields=all
//! give bodies that are the input's own bytes, in order, separated only by newlines;
//! datagrams, octet-counted messages and multiport lines must not panic.
#![no_main]

use bytes::Bytes;
use flume_fast::event::Event;
use flume_fast::source::syslog::decode::{Clock, Decoder, Keep, LineParser};
use jiff::tz::TimeZone;
use libfuzzer_sys::fuzz_target;
use std::rc::Rc;
use std::sync::OnceLock;

const KEEPS: [&str; 4] = ["none", "all", "priority hostname", "timestamp version"];

fn tz() -> TimeZone {
    static TZ: OnceLock<TimeZone> = OnceLock::new();
    TZ.get_or_init(|| TimeZone::get("America/New_York").unwrap_or(TimeZone::UTC))
        .clone()
}

fn decoder(size: usize, keep: Keep) -> Decoder {
    Decoder::with_clock(size, keep, Clock::Fixed(1_765_152_000_000), tz())
}

fn view(e: &Event) -> (Vec<(String, String)>, Vec<u8>) {
    let h = e
        .headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    (h, e.body.to_vec())
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let size = 10 + usize::from(data[0]) % 120;
    let keep = Keep::from_flume(KEEPS[usize::from(data[1]) % KEEPS.len()]);
    let cut_seed = u16::from_le_bytes([data[2], data[3]]);
    let input = &data[4..];

    // Whole.
    let mut d = decoder(size, keep);
    let mut whole = Vec::new();
    let mut at = 0;
    while at < input.len() {
        let (n, e) = d.feed(&input[at..]);
        assert!(n > 0 && at + n <= input.len());
        at += n;
        whole.extend(e);
    }

    // In pieces of pseudo-random lengths.
    let mut d = decoder(size, keep);
    let mut split = Vec::new();
    let mut at = 0;
    let mut x = u32::from(cut_seed) | 1;
    while at < input.len() {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        let end = (at + 1 + (x as usize) % 17).min(input.len());
        let mut p = at;
        while p < end {
            let (n, e) = d.feed(&input[p..end]);
            p += n;
            split.extend(e);
        }
        at = end;
    }
    assert_eq!(
        whole.iter().map(view).collect::<Vec<_>>(),
        split.iter().map(view).collect::<Vec<_>>()
    );

    // From a shared buffer.
    let buf = Rc::new(Bytes::copy_from_slice(input));
    let mut d = decoder(size, keep);
    let mut shared = Vec::new();
    let mut at = 0;
    while at < buf.len() {
        let (n, e) = d.feed_shared(&buf, at);
        at += n;
        shared.extend(e);
    }
    assert_eq!(
        whole.iter().map(view).collect::<Vec<_>>(),
        shared.iter().map(view).collect::<Vec<_>>()
    );

    for e in &whole {
        // Raw bodies (kept whole, or Invalid) hold no more than eventSize bytes.
        if keep.all || e.headers.get("flume.syslog.status") == Some("Invalid") {
            assert!(e.body.len() <= size);
        }
    }
    if keep.all {
        // The bodies are the input, in order, with only newlines between them.
        let mut pos = 0;
        for e in &whole {
            while input.get(pos) == Some(&b'\n') && !input[pos..].starts_with(&e.body) {
                pos += 1;
            }
            assert!(
                input[pos..].starts_with(&e.body),
                "body not next in the input"
            );
            pos += e.body.len();
            // Cut at eventSize (Incomplete, or Invalid when the priority was bad too), or
            // ended by its newline.
            if e.body.len() < size {
                assert_eq!(input.get(pos), Some(&b'\n'));
                pos += 1;
            }
        }
    }

    let mut d = decoder(size, keep);
    let _ = d.datagram(input);
    let _ = d.message(input);
    let p = LineParser::with_clock(keep, Clock::Fixed(1_765_152_000_000), tz());
    for enc in [
        encoding_rs::UTF_8,
        encoding_rs::WINDOWS_1252,
        encoding_rs::SHIFT_JIS,
    ] {
        let _ = p.parse(input, enc);
    }
});
