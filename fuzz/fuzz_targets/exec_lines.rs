//! Fuzzes the exec source's line splitter (a command's output is outside input): fed in
//! any chunks, it must give exactly the lines Java's `readLine` gives for the whole
//! stream, each cut into pieces of at most `max` bytes, and never hold more than `max`.
#![no_main]

use bytes::Bytes;
use flume_fast::source::exec::lines::Lines;
use libfuzzer_sys::fuzz_target;

/// Java's readLine over the whole input: lines end at \n, \r or \r\n; a last line
/// without an ending counts when it is not empty.
fn reference(data: &[u8], max: usize) -> Vec<Vec<u8>> {
    let mut lines = Vec::new();
    let mut line = Vec::new();
    let mut i = 0;
    let mut ended = true;
    while i < data.len() {
        match data[i] {
            b'\n' => {
                lines.push(std::mem::take(&mut line));
                ended = true;
            }
            b'\r' => {
                lines.push(std::mem::take(&mut line));
                ended = true;
                if data.get(i + 1) == Some(&b'\n') {
                    i += 1;
                }
            }
            b => {
                line.push(b);
                ended = false;
            }
        }
        i += 1;
    }
    if !ended && !line.is_empty() {
        lines.push(line);
    }
    lines
        .into_iter()
        .flat_map(|l| {
            if l.is_empty() {
                vec![Vec::new()]
            } else {
                l.chunks(max).map(<[u8]>::to_vec).collect()
            }
        })
        .collect()
}

fuzz_target!(|data: &[u8]| {
    // max, then chunk lengths taken from the input itself, then the stream.
    let [m, cuts @ ..] = data else { return };
    let max = usize::from(*m % 16) + 1;
    let (sizes, stream) = cuts.split_at(cuts.len().min(4));
    let mut lines = Lines::new(max);
    let mut got: Vec<Vec<u8>> = Vec::new();
    let mut rest = stream;
    let mut k = 0;
    while !rest.is_empty() {
        let n = (usize::from(*sizes.get(k % sizes.len().max(1)).unwrap_or(&7)) % 9 + 1).min(rest.len());
        k += 1;
        let (chunk, tail) = rest.split_at(n);
        rest = tail;
        got.extend(lines.split(Bytes::copy_from_slice(chunk)).iter().map(|e| e.body.to_vec()));
        assert!(lines.held() <= max, "held {} > {max}", lines.held());
    }
    got.extend(lines.finish().iter().map(|e| e.body.to_vec()));
    assert_eq!(got, reference(stream, max));
});
