//! `compression-type = deflate`: Flume puts Netty's `JZlibEncoder`/`JZlibDecoder` first in
//! the pipeline, so each direction of the connection is one zlib stream (with the zlib
//! header) and every written frame ends with a sync flush, which lets the peer decode it
//! without waiting for more. Sans-IO: bytes in, bytes out.

use bytes::BytesMut;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

#[derive(Debug, thiserror::Error)]
#[error("corrupt deflate stream: {0}")]
pub struct InflateError(String);

pub struct Deflater(Compress);

impl Deflater {
    pub fn new(level: u32) -> Self {
        Deflater(Compress::new(Compression::new(level.min(9)), true))
    }

    /// Compresses `input` (one or more whole frames) onto `out`, sync-flushed.
    pub fn deflate(&mut self, input: &[u8], out: &mut Vec<u8>) {
        let mut consumed = 0;
        loop {
            out.reserve((input.len() - consumed) / 2 + 64);
            let room = out.capacity() - out.len();
            let before = (self.0.total_in(), self.0.total_out());
            self.0
                .compress_vec(&input[consumed..], out, FlushCompress::Sync)
                .expect("deflate of an in-memory buffer cannot fail");
            consumed += (self.0.total_in() - before.0) as usize;
            let wrote = (self.0.total_out() - before.1) as usize;
            // Done when all input is in and the flush fitted (space was left over).
            if consumed == input.len() && wrote < room {
                return;
            }
        }
    }
}

pub struct Inflater {
    z: Decompress,
    /// Compressed bytes received but not inflated yet.
    pending: BytesMut,
    /// The last step filled its output: zlib may hold more output for the same input.
    full: bool,
}

impl Default for Inflater {
    fn default() -> Self {
        Self::new()
    }
}

impl Inflater {
    pub fn new() -> Self {
        Inflater {
            z: Decompress::new(true),
            pending: BytesMut::new(),
            full: false,
        }
    }

    /// Where to put compressed bytes as they arrive.
    pub fn input(&mut self) -> &mut BytesMut {
        &mut self.pending
    }

    /// True while inflating may still produce output without more input.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty() || self.full
    }

    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// Inflates pending input onto `out`, at most `limit` bytes of output per call, so a
    /// small input that inflates hugely is handed over in bounded steps. Returns how many
    /// bytes it wrote; 0 with input pending means the input ends mid-block.
    pub fn inflate(&mut self, out: &mut BytesMut, limit: usize) -> Result<usize, InflateError> {
        let at = out.len();
        out.resize(at + limit, 0);
        let before = (self.z.total_in(), self.z.total_out());
        let status = self
            .z
            .decompress(&self.pending, &mut out[at..], FlushDecompress::Sync);
        let read = (self.z.total_in() - before.0) as usize;
        let wrote = (self.z.total_out() - before.1) as usize;
        out.truncate(at + wrote);
        self.full = wrote == limit;
        let status = status.map_err(|e| InflateError(e.to_string()))?;
        let _ = self.pending.split_to(read);
        if status == Status::StreamEnd && !self.pending.is_empty() {
            return Err(InflateError("data after the end of the zlib stream".into()));
        }
        Ok(wrote)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_deflated_one_by_one_inflate_as_they_arrive() {
        let mut d = Deflater::new(6);
        let mut i = Inflater::new();
        let mut plain = BytesMut::new();
        for n in 0..50 {
            let frame = vec![b'a' + (n % 26) as u8; 10_000 + n * 97];
            let mut wire = Vec::new();
            d.deflate(&frame, &mut wire);
            i.input().extend_from_slice(&wire);
            let start = plain.len();
            while i.has_pending() {
                if i.inflate(&mut plain, 4096).unwrap() == 0 {
                    break;
                }
            }
            // Sync flush: each frame is complete on arrival.
            assert_eq!(&plain[start..], &frame[..]);
        }
    }

    #[test]
    fn output_is_bounded_per_step_and_garbage_is_an_error() {
        let mut d = Deflater::new(9);
        let mut wire = Vec::new();
        d.deflate(&vec![0u8; 10 << 20], &mut wire);
        assert!(wire.len() < 64 << 10);
        let mut i = Inflater::new();
        i.input().extend_from_slice(&wire);
        let mut out = BytesMut::new();
        let n = i.inflate(&mut out, 1 << 16).unwrap();
        assert!(n <= 1 << 16 && out.len() <= 1 << 16);
        let mut bad = Inflater::new();
        bad.input().extend_from_slice(b"this is not zlib at all");
        assert!(bad.inflate(&mut BytesMut::new(), 1024).is_err());
    }
}
