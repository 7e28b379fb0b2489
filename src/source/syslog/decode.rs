//! Syslog messages to events as Flume's `SyslogUtils` makes them (syslogtcp, syslogudp) and
//! as its `SyslogParser` does (multiport_syslogtcp).
//!
//! STUB: the API the syslog sources are written against; the parsing itself (RFC 3164 and
//! 5424 headers, timestamps, keepFields, Invalid/Incomplete) replaces these bodies.

use crate::event::{Event, Headers};

/// Which parsed fields stay in the body (Flume's `keepFields`: `none`/`false`,
/// `all`/`true`, or a list naming `priority version timestamp hostname`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Keep {
    pub all: bool,
    pub priority: bool,
    pub version: bool,
    pub timestamp: bool,
    pub hostname: bool,
}

impl Keep {
    /// As Flume's `SyslogUtils.chooseFieldsToKeep`.
    pub fn from_flume(value: &str) -> Keep {
        let v = value.trim().to_ascii_lowercase();
        match v.as_str() {
            "false" | "none" => Keep::default(),
            "true" | "all" => Keep {
                all: true,
                ..Keep::default()
            },
            _ => Keep {
                all: false,
                priority: v.contains("priority"),
                version: v.contains("version"),
                timestamp: v.contains("timestamp"),
                hostname: v.contains("hostname"),
            },
        }
    }
}

/// One connection's (or one UDP socket's) decoder: `SyslogUtils` keeps the state of an
/// unfinished message between reads.
#[derive(Debug)]
pub struct Decoder {
    event_size: usize,
    keep: Keep,
    pending: Vec<u8>,
}

impl Decoder {
    /// `event_size`: Flume's `eventSize` (at least 10, as Flume raises smaller values).
    pub fn new(event_size: usize, keep: Keep) -> Decoder {
        Decoder {
            event_size: event_size.max(10),
            keep,
            pending: Vec::new(),
        }
    }

    /// Newline framing, as `SyslogUtils.extractEvent` on a TCP stream: takes bytes from the
    /// front of `input` until one event ends (at a `\n`, or at `eventSize` bytes: the event
    /// is then `Incomplete` and the rest starts the next one). Returns how many bytes it
    /// took and the event, or `None` when `input` ran out first (the part read is kept for
    /// the next call).
    pub fn feed(&mut self, input: &[u8]) -> (usize, Option<Event>) {
        for (i, &b) in input.iter().enumerate() {
            if b == b'\n' {
                if self.pending.is_empty() {
                    continue;
                }
                return (i + 1, Some(self.build()));
            }
            self.pending.push(b);
            if self.pending.len() == self.event_size {
                return (i + 1, Some(self.build()));
            }
        }
        (input.len(), None)
    }

    /// One UDP datagram, as `SyslogUDPSource` passes it to `extractEvent` (once: what
    /// follows a `\n` in the datagram is not read, as in Flume).
    pub fn datagram(&mut self, datagram: &[u8]) -> Event {
        self.pending.clear();
        let end = datagram
            .iter()
            .position(|&b| b == b'\n')
            .unwrap_or(datagram.len());
        self.pending.extend_from_slice(&datagram[..end]);
        self.build()
    }

    /// One whole message from an octet-counted frame (RFC 6587), which Flume cannot read:
    /// parsed as the same bytes on one line would be.
    pub fn message(&mut self, message: &[u8]) -> Event {
        self.pending.clear();
        self.pending.extend_from_slice(message);
        self.build()
    }

    fn build(&mut self) -> Event {
        let _ = self.keep;
        let body = std::mem::take(&mut self.pending);
        Event::with_headers(Headers::new(), bytes::Bytes::from(body))
    }
}

/// multiport_syslogtcp's parser (Flume's `SyslogParser`): one line (without its `\n`) to
/// one event, its body decoded from the port's charset.
#[derive(Debug, Clone)]
pub struct LineParser {
    keep: Keep,
}

impl LineParser {
    pub fn new(keep: Keep) -> LineParser {
        LineParser { keep }
    }

    /// `charset`: the port's `charset.port.<port>` or `charset.default` (a WHATWG label).
    pub fn parse(&self, line: &[u8], charset: &'static encoding_rs::Encoding) -> Event {
        let _ = (self.keep, charset);
        Event::new(bytes::Bytes::copy_from_slice(line))
    }
}
