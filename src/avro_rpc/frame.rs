//! Netty transport framing, as Avro's `NettyTransportCodec` writes it: a frame is
//! `serial: i32 BE`, `count: i32 BE`, then `count` buffers, each `length: i32 BE` + bytes.
//! One frame carries one request or one response; the serial pairs them.
//!
//! The decoder is sans-IO: it looks at the bytes received so far and cuts a complete frame
//! off the front, its buffers being zero-copy slices. Every declared length is checked
//! against `max_frame` before waiting for the bytes, so a peer cannot make us hold more
//! than one maximum frame, whatever it claims.

use bytes::{BufMut, Bytes, BytesMut};

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum FrameError {
    #[error("frame declares {0} buffers (negative)")]
    NegativeCount(i32),
    #[error("frame declares {count} buffers, more than a {max}-byte frame can hold")]
    TooManyBuffers { count: i32, max: usize },
    #[error("frame buffer declares a negative length ({0})")]
    NegativeLength(i32),
    #[error("frame would be {size} bytes or more, above the maximum frame size of {max} bytes")]
    TooLarge { size: u64, max: usize },
    #[error("frame has no buffers")]
    Empty,
}

/// One decoded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub serial: i32,
    pub buffers: Vec<Bytes>,
}

/// Cuts frames off a receive buffer. Keeps its place inside a partial frame so a large
/// frame arriving in many reads is scanned once.
#[derive(Debug)]
pub struct FrameDecoder {
    max_frame: usize,
    /// Buffers of the current frame whose length prefix has been checked.
    seen: usize,
    /// Offset just past the last checked buffer.
    offset: usize,
    /// Payload bytes of the checked buffers.
    payload: u64,
}

impl FrameDecoder {
    /// `max_frame` bounds the payload of one frame (the sum of its buffers).
    pub fn new(max_frame: usize) -> Self {
        FrameDecoder {
            max_frame,
            seen: 0,
            offset: 8,
            payload: 0,
        }
    }

    /// Returns the next complete frame, `None` if more bytes are needed.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        if buf.len() < 8 {
            return Ok(None);
        }
        let serial = i32::from_be_bytes(buf[0..4].try_into().unwrap());
        let count = i32::from_be_bytes(buf[4..8].try_into().unwrap());
        if count < 0 {
            return Err(FrameError::NegativeCount(count));
        }
        if count == 0 {
            return Err(FrameError::Empty);
        }
        // Each buffer costs at least its 4-byte length prefix.
        if count as usize > self.max_frame / 4 + 1 {
            return Err(FrameError::TooManyBuffers {
                count,
                max: self.max_frame,
            });
        }
        while self.seen < count as usize {
            if buf.len() < self.offset + 4 {
                return Ok(None);
            }
            let len = i32::from_be_bytes(buf[self.offset..self.offset + 4].try_into().unwrap());
            if len < 0 {
                return Err(FrameError::NegativeLength(len));
            }
            let payload = self.payload + len as u64;
            if payload > self.max_frame as u64 {
                return Err(FrameError::TooLarge {
                    size: payload,
                    max: self.max_frame,
                });
            }
            if buf.len() < self.offset + 4 + len as usize {
                return Ok(None);
            }
            self.payload = payload;
            self.offset += 4 + len as usize;
            self.seen += 1;
        }
        let whole = buf.split_to(self.offset).freeze();
        let mut buffers = Vec::with_capacity(count as usize);
        let mut at = 8;
        for _ in 0..count {
            let len = i32::from_be_bytes(whole[at..at + 4].try_into().unwrap()) as usize;
            buffers.push(whole.slice(at + 4..at + 4 + len));
            at += 4 + len;
        }
        *self = FrameDecoder::new(self.max_frame);
        Ok(Some(Frame { serial, buffers }))
    }
}

/// Where a single-buffer frame being written starts, to patch its length at the end.
#[must_use]
pub struct FrameStart(usize);

/// Starts a frame of one buffer in `out`; write the payload, then call `finish_frame`.
pub fn begin_frame(out: &mut BytesMut, serial: i32) -> FrameStart {
    let start = out.len();
    out.put_i32(serial);
    out.put_i32(1);
    out.put_i32(0);
    FrameStart(start)
}

pub fn finish_frame(out: &mut BytesMut, start: FrameStart) {
    let len = (out.len() - start.0 - 12) as i32;
    out[start.0 + 8..start.0 + 12].copy_from_slice(&len.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame_bytes(serial: i32, bufs: &[&[u8]]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&serial.to_be_bytes());
        v.extend_from_slice(&(bufs.len() as i32).to_be_bytes());
        for b in bufs {
            v.extend_from_slice(&(b.len() as i32).to_be_bytes());
            v.extend_from_slice(b);
        }
        v
    }

    #[test]
    fn decodes_frames_fed_one_byte_at_a_time() {
        let mut wire = frame_bytes(7, &[b"abc", b"", b"defg"]);
        wire.extend(frame_bytes(8, &[b"x"]));
        let mut dec = FrameDecoder::new(1024);
        let mut buf = BytesMut::new();
        let mut frames = Vec::new();
        for b in wire {
            buf.put_u8(b);
            while let Some(f) = dec.decode(&mut buf).unwrap() {
                frames.push(f);
            }
        }
        assert!(buf.is_empty());
        assert_eq!(frames.len(), 2);
        assert_eq!(frames[0].serial, 7);
        assert_eq!(frames[0].buffers, [&b"abc"[..], b"", b"defg"]);
        assert_eq!(frames[1].buffers, [&b"x"[..]]);
    }

    #[test]
    fn refuses_huge_or_negative_declarations_before_the_bytes_arrive() {
        let mut dec = FrameDecoder::new(1 << 20);
        let mut buf = BytesMut::new();
        buf.put_i32(1);
        buf.put_i32(1);
        buf.put_i32(i32::MAX);
        assert!(matches!(
            dec.decode(&mut buf),
            Err(FrameError::TooLarge { .. })
        ));
        let mut buf = BytesMut::from(&frame_bytes(1, &[])[..]);
        buf[4..8].copy_from_slice(&(-1i32).to_be_bytes());
        assert_eq!(
            FrameDecoder::new(64).decode(&mut buf),
            Err(FrameError::NegativeCount(-1))
        );
        let mut buf = BytesMut::from(&frame_bytes(1, &[])[..]);
        buf[4..8].copy_from_slice(&(1_000_000i32).to_be_bytes());
        assert!(matches!(
            FrameDecoder::new(64).decode(&mut buf),
            Err(FrameError::TooManyBuffers { .. })
        ));
    }

    #[test]
    fn written_frames_decode() {
        let mut out = BytesMut::new();
        let s = begin_frame(&mut out, 42);
        out.put_slice(b"payload");
        finish_frame(&mut out, s);
        let f = FrameDecoder::new(64).decode(&mut out).unwrap().unwrap();
        assert_eq!(f.serial, 42);
        assert_eq!(f.buffers, [&b"payload"[..]]);
    }
}
