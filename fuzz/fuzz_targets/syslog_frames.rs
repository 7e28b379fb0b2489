//! Fuzzes syslogtcp's framing (newline-framed and RFC 6587 octet-counted messages, told
//! apart per message) over the decoder: a stream of any bytes, cut into any pieces, must
//! give the same events as the whole stream at once, never panic, and never hold more
//! than an octet count's digits plus eventSize bytes of each kind of unfinished message.
#![no_main]

use flume_fast::source::syslog::decode::{Decoder, Keep};
use flume_fast::source::syslog::framing::Framer;
use libfuzzer_sys::fuzz_target;

fn run(stream: &[u8], cuts: &[u8], event_size: usize) -> Vec<(String, Vec<u8>)> {
    let mut framer = Framer::new(event_size);
    let mut dec = Decoder::new(event_size, Keep::from_flume("none"));
    let mut out = Vec::new();
    let mut rest = stream;
    let mut k = 0;
    while !rest.is_empty() {
        let n = match cuts.get(k % cuts.len().max(1)) {
            Some(&c) => usize::from(c) % 17 + 1,
            None => rest.len(),
        }
        .min(rest.len());
        k += 1;
        let (piece, tail) = rest.split_at(n);
        rest = tail;
        framer.push(piece, &mut dec, &mut out);
        assert!(
            framer.held() <= 2 * event_size.max(10) + 9,
            "held {} with eventSize {event_size}",
            framer.held()
        );
    }
    out.iter()
        .map(|e| (e.headers.to_string(), e.body.to_vec()))
        .collect()
}

fuzz_target!(|data: &[u8]| {
    // eventSize, then up to 4 piece lengths, then the stream.
    let [size, rest @ ..] = data else { return };
    let event_size = usize::from(*size % 64) + 1;
    let (cuts, stream) = rest.split_at(rest.len().min(4));
    let whole = run(stream, &[], event_size);
    let pieces = run(stream, cuts, event_size);
    assert_eq!(whole, pieces);
});
