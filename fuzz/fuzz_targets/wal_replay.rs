//! Replays arbitrary bytes as a shard's segments (and, from the first byte's choice, a
//! checkpoint): replay must report damage, never panic, loop or allocate without bound,
//! and the scanner must always make progress to the end of each segment.
#![no_main]

use bytes::Bytes;
use flume_fast::channel::wal::checkpoint::Checkpoint;
use flume_fast::channel::wal::record::{Framing, Scanner};
use flume_fast::channel::wal::replay::{replay, SegmentInput};
use flume_fast::channel::wal::segment::{check_header, encode_header_version, HEADER_LEN};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    // Mode bit 0: give each segment a valid header so the fuzzer reaches the frames.
    // Mode bit 1: split off a checkpoint from the front. Bits 2..3: number of segments.
    // Bit 4: a version 1 header (frames without their LSN) instead of the current one.
    let (ckpt, rest) = if mode & 2 != 0 && rest.len() >= 2 {
        let n = (usize::from(rest[0]) << 8 | usize::from(rest[1])).min(rest.len() - 2);
        (Checkpoint::decode(&rest[2..2 + n]).ok(), &rest[2 + n..])
    } else {
        (None, rest)
    };
    let parts = usize::from(mode >> 2) % 4 + 1;
    let version = if mode & 16 != 0 { 1 } else { 2 };
    let chunk = rest.len().div_ceil(parts).max(1);
    let mut segs = Vec::new();
    let mut start = 0u64;
    for piece in rest.chunks(chunk) {
        let mut bytes = Vec::with_capacity(HEADER_LEN + piece.len());
        if mode & 1 != 0 {
            bytes.extend_from_slice(&encode_header_version(version, 0, start));
        }
        bytes.extend_from_slice(piece);
        let len = bytes.len() as u64;
        let framing = check_header(&bytes).map_or(Framing::V1, |(_, f)| f);
        let mut scan = Scanner::new(&bytes, HEADER_LEN.min(bytes.len()), framing);
        for _ in scan.by_ref() {}
        assert!(scan.end() <= bytes.len());
        segs.push(SegmentInput {
            start,
            name: format!("{start:020}.wal"),
            data: Bytes::from(bytes),
        });
        start += len;
    }
    let r = replay(&segs, ckpt.as_ref());
    assert_eq!(r.segments.len(), segs.len());
    let mut prev = None;
    for seq in r.live.keys() {
        assert!(seq < r.next_seq || seq == u64::MAX, "live seq {seq} >= next_seq {}", r.next_seq);
        assert!(prev < Some(seq), "live seqs out of order: {prev:?} then {seq}");
        prev = Some(seq);
    }
});
