//! The framing of a syslog TCP stream (syslogtcp): each message is either newline-framed
//! (what Flume reads: the decoder's `feed`) or octet-counted (RFC 6587 `LEN SP MSG`, what
//! rsyslog, syslog-ng and `logger --octet-count` send, which Flume cannot read). The kind
//! is decided per message from its first byte, as RFC 6587 receivers do: a digit starts a
//! count, anything else a line. Sans-IO: bytes in any splits give the same events.

use super::decode::Decoder;
use crate::event::Event;

/// Digits an octet count may have (up to 999,999,999 bytes); more, and the digits are
/// taken as the start of a newline-framed message instead.
const MAX_DIGITS: usize = 9;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before a message: `\n` between messages is skipped (Flume does so too).
    Between,
    /// Reading the digits of an octet count (in `buf`).
    Count,
    /// An octet-counted message of at most eventSize bytes, `left` still to come (in `buf`).
    Message { left: usize },
    /// An octet-counted message longer than eventSize: streamed through the decoder's
    /// newline framing, which cuts it at eventSize as Flume cuts a long line.
    Long { left: usize },
    /// A newline-framed message, through the decoder.
    Line,
    /// A line was cut at eventSize: its rest follows as the next message, newline-framed
    /// whatever its first byte (as in Flume); a `\n` right here only ends the line.
    Cut,
}

/// One connection's framing state.
#[derive(Debug)]
pub struct Framer {
    event_size: usize,
    state: State,
    buf: Vec<u8>,
    /// Bytes the decoder holds (fed since its last event), for the shard's buffer budget.
    in_decoder: usize,
}

impl Framer {
    pub fn new(event_size: usize) -> Framer {
        Framer {
            event_size: event_size.max(1),
            state: State::Between,
            buf: Vec::new(),
            in_decoder: 0,
        }
    }

    /// Bytes of unfinished messages held, here and in the decoder.
    pub fn held(&self) -> usize {
        self.buf.len() + self.in_decoder
    }

    /// Frames `input`, appending each finished message's event to `out`.
    pub fn push(&mut self, mut input: &[u8], dec: &mut Decoder, out: &mut Vec<Event>) {
        while let Some(&first) = input.first() {
            match self.state {
                State::Between => match first {
                    b'\n' => input = &input[1..],
                    b'0'..=b'9' => self.state = State::Count,
                    _ => self.state = State::Line,
                },
                State::Count => {
                    if first.is_ascii_digit() && self.buf.len() < MAX_DIGITS {
                        self.buf.push(first);
                        input = &input[1..];
                    } else if first == b' ' {
                        input = &input[1..];
                        let len = self
                            .buf
                            .iter()
                            .fold(0usize, |n, d| n * 10 + usize::from(d - b'0'));
                        self.buf.clear();
                        self.state = match len {
                            0 => State::Between,
                            n if n <= self.event_size => {
                                self.buf.reserve(n);
                                State::Message { left: n }
                            }
                            n => State::Long { left: n },
                        };
                    } else {
                        // Not a count: the digits start a newline-framed message.
                        let digits = std::mem::take(&mut self.buf);
                        self.state = State::Line;
                        self.feed(&digits, dec, out);
                    }
                }
                State::Message { left } => {
                    let n = left.min(input.len());
                    self.buf.extend_from_slice(&input[..n]);
                    input = &input[n..];
                    if n == left {
                        out.push(dec.message(&self.buf));
                        self.buf.clear();
                        self.state = State::Between;
                    } else {
                        self.state = State::Message { left: left - n };
                    }
                }
                State::Long { left } => {
                    let n = left.min(input.len());
                    self.feed(&input[..n], dec, out);
                    input = &input[n..];
                    if n == left {
                        // The frame's end ends the decoder's message as a newline would.
                        if let (_, Some(e)) = dec.feed(b"\n") {
                            out.push(e);
                        }
                        self.in_decoder = 0;
                        self.state = State::Between;
                    } else {
                        self.state = State::Long { left: left - n };
                    }
                }
                State::Cut => {
                    if first == b'\n' {
                        input = &input[1..];
                        self.state = State::Between;
                    } else {
                        self.state = State::Line;
                    }
                }
                State::Line => {
                    let (n, event) = dec.feed(input);
                    let ended_at_newline = n > 0 && input[n - 1] == b'\n';
                    input = &input[n..];
                    match event {
                        Some(e) => {
                            out.push(e);
                            self.in_decoder = 0;
                            self.state = if ended_at_newline {
                                State::Between
                            } else {
                                State::Cut
                            };
                        }
                        None => self.held_by_decoder(n),
                    }
                }
            }
        }
    }

    /// Counts `n` more bytes fed without an event. The decoder skips a `\n` that would
    /// start a message and never holds more than its eventSize (at least 10), so neither
    /// does the count.
    fn held_by_decoder(&mut self, n: usize) {
        self.in_decoder = (self.in_decoder + n).min(self.event_size.max(10));
    }

    /// All of `bytes` through the decoder's newline framing.
    fn feed(&mut self, mut bytes: &[u8], dec: &mut Decoder, out: &mut Vec<Event>) {
        while !bytes.is_empty() {
            let (n, event) = dec.feed(bytes);
            bytes = &bytes[n..];
            match event {
                Some(e) => {
                    out.push(e);
                    self.in_decoder = 0;
                }
                None => self.held_by_decoder(n),
            }
            if n == 0 {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::decode::Keep;
    use super::*;

    fn frame(input: &[&[u8]], event_size: usize) -> Vec<Vec<u8>> {
        let mut f = Framer::new(event_size);
        let mut dec = Decoder::new(event_size, Keep::default());
        let mut out = Vec::new();
        for chunk in input {
            f.push(chunk, &mut dec, &mut out);
        }
        out.iter().map(|e| e.body.to_vec()).collect()
    }

    #[test]
    fn newline_and_octet_counted_messages_mix_on_one_connection() {
        let wire: &[u8] = b"<13>one\n9 <13>two\nx\n<14>three\n\n9 <13>f\nour";
        let want: Vec<Vec<u8>> = vec![
            b"<13>one".to_vec(),
            b"<13>two\nx".to_vec(),
            b"<14>three".to_vec(),
            b"<13>f\nour".to_vec(),
        ];
        assert_eq!(frame(&[wire], 2500), want);
        // Byte by byte: the same messages.
        let bytes: Vec<&[u8]> = wire.chunks(1).collect();
        assert_eq!(frame(&bytes, 2500), want);
    }

    #[test]
    fn digits_not_followed_by_a_space_start_a_line() {
        assert_eq!(frame(&[b"123abc\n"], 2500), vec![b"123abc".to_vec()]);
        assert_eq!(
            frame(&[b"1234567890 x\n"], 2500),
            vec![b"1234567890 x".to_vec()]
        );
    }

    #[test]
    fn an_octet_count_over_event_size_is_cut_as_a_long_line() {
        let got = frame(&[b"24 <13>abcdefghijklmnopqrst<13>ok\n"], 10);
        assert_eq!(
            got,
            vec![
                b"<13>abcdef".to_vec(),
                b"ghijklmnop".to_vec(),
                b"qrst".to_vec(),
                b"<13>ok".to_vec()
            ]
        );
    }

    #[test]
    fn a_line_cut_just_before_its_newline_ends_there() {
        // The next message may then be octet-counted again.
        let got = frame(&[b"<13>abcdef\n7 <13>x\ny", b"<13>abcdefghij\n"], 10);
        assert_eq!(
            got,
            vec![
                b"<13>abcdef".to_vec(),
                b"<13>x\ny".to_vec(),
                b"<13>abcdef".to_vec(),
                b"ghij".to_vec()
            ]
        );
        // The rest of a cut line is a line even when it starts with digits.
        let got = frame(&[b"<13>abcdef12 <13>x\n"], 10);
        assert_eq!(got, vec![b"<13>abcdef".to_vec(), b"12 <13>x".to_vec()]);
    }

    #[test]
    fn what_is_held_is_bounded_by_event_size() {
        let mut f = Framer::new(10);
        let mut dec = Decoder::new(10, Keep::default());
        let mut out = Vec::new();
        f.push(b"7 <13>ab", &mut dec, &mut out);
        assert_eq!(f.held(), 6);
        f.push(b"c", &mut dec, &mut out);
        assert_eq!(out.len(), 1);
        f.push(b"<14>long lin", &mut dec, &mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(f.held(), 2);
    }
}
