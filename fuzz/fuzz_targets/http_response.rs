//! Fuzzes the http sink's reading of a server's answer (outside input): the head parser
//! and the chunked-body skipper. A head found in a prefix must be the head of the whole
//! input; the skipper fed in any pieces must consume what it consumes fed at once, never
//! more than it was given, and never hold an unfinished line past its bound.
#![no_main]

use flume_fast::sink::http::response::{parse_head, Chunked, Framing, MAX_HEAD};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let split = data.first().copied().unwrap_or(1).max(1) as usize;
    let data = data.get(1..).unwrap_or_default();
    match parse_head(data) {
        Ok(Some(h)) => {
            assert!(h.len <= data.len());
            // Any longer prefix that holds the head gives the same head.
            assert_eq!(parse_head(&data[..h.len]), Ok(Some(h)));
            if h.framing == Framing::Chunked {
                skip(&data[h.len..], split);
            }
        }
        Ok(None) => assert!(data.len() <= MAX_HEAD),
        Err(_) => {}
    }
    skip(data, split);
});

/// The body fed whole, then in pieces of `split` bytes: both consume the same bytes.
fn skip(body: &[u8], split: usize) {
    let mut whole = Chunked::default();
    let whole_result = whole.feed(body);
    if let Ok(n) = whole_result {
        assert!(n <= body.len());
    }
    let mut pieces = Chunked::default();
    let mut held: Vec<u8> = Vec::new();
    let mut used = 0;
    let mut failed = false;
    for piece in body.chunks(split) {
        if pieces.is_done() {
            break;
        }
        held.extend_from_slice(piece);
        match pieces.feed(&held) {
            Ok(n) => {
                assert!(n <= held.len());
                used += n;
                held.drain(..n);
            }
            Err(_) => {
                failed = true;
                break;
            }
        }
    }
    match whole_result {
        Ok(n) if !failed => {
            assert_eq!(pieces.is_done(), whole.is_done());
            if whole.is_done() {
                assert_eq!(used, n);
            }
        }
        _ => {}
    }
}
