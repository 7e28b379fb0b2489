//! Fuzzes the http source's request reader (heads, Content-Length and chunked bodies,
//! pipelining) and its JSON handler with arbitrary bytes in arbitrary read splits: no
//! panic, the same requests (or the same error) whatever the split, bodies within the
//! limit, and every request's body through the JSON handler.
#![no_main]

use bytes::BytesMut;
use flume_fast::source::http::handler::Handler;
use flume_fast::source::http::request::{HttpError, Reader};
use libfuzzer_sys::fuzz_target;

const LIMIT: usize = 4096;

type Got = (Vec<(String, String, u8, bool, Vec<u8>)>, Option<HttpError>);

fn read_all(stream: &[u8], sizes: &[u8]) -> Got {
    let mut reader = Reader::new(LIMIT);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut rest = stream;
    let mut k = 0;
    while !rest.is_empty() {
        let n = match sizes.get(k % sizes.len().max(1)) {
            Some(s) => usize::from(*s) % 64 + 1,
            None => rest.len(),
        }
        .min(rest.len());
        k += 1;
        let (chunk, tail) = rest.split_at(n);
        rest = tail;
        buf.extend_from_slice(chunk);
        loop {
            match reader.next(&mut buf) {
                Ok(Some(req)) => {
                    assert!(req.body.len() <= LIMIT);
                    let _ = Handler::Json.events(&req.head, req.body.clone());
                    let h = req.head;
                    out.push((h.method, h.target, h.version, h.keep_alive, req.body.to_vec()));
                }
                Ok(None) => {
                    let _ = reader.take_continue();
                    break;
                }
                Err(e) => return (out, Some(e)),
            }
        }
    }
    (out, None)
}

fuzz_target!(|data: &[u8]| {
    let [n, rest @ ..] = data else { return };
    let (sizes, stream) = rest.split_at(rest.len().min(usize::from(*n % 8)));
    let whole = read_all(stream, &[]);
    let split = read_all(stream, sizes);
    // The error's kind may differ with the split (a head found too long before it is
    // found malformed), not whether there is one or what came before it.
    assert_eq!(whole.0, split.0);
    assert_eq!(whole.1.is_some(), split.1.is_some(), "{:?} vs {:?}", whole.1, split.1);
});
