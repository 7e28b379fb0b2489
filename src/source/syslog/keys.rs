//! The keys the syslog sources share (Flume's `SyslogSourceConfigurationConstants`), and
//! flume-fast's bounds on TCP connections.

use crate::config::keys::{KeyKind, KeySpec};

pub const HOST: KeySpec = KeySpec::new(
    "host",
    KeyKind::Str,
    None,
    "Host name or IP address to bind to (unset: every IPv4 address, 0.0.0.0)",
);
pub const PORT: KeySpec = KeySpec::required("port", KeyKind::PORT, "Port to bind to");
pub const EVENT_SIZE: KeySpec = KeySpec::new(
    "eventSize",
    KeyKind::int(1, 1 << 30),
    Some("2500"),
    "Largest message in bytes; a longer one is cut there (flume.syslog.status = Incomplete) and its rest becomes the next message",
);
pub const KEEP_FIELDS: KeySpec = KeySpec::new(
    "keepFields",
    KeyKind::Str,
    Some("none"),
    "Header fields kept in the body: none (false), all (true), or any of priority version timestamp hostname",
);
pub const CLIENT_IP_HEADER: KeySpec = KeySpec::new(
    "clientIPHeader",
    KeyKind::Str,
    None,
    "Header that receives the sender's IP address",
);
pub const CLIENT_HOSTNAME_HEADER: KeySpec = KeySpec::new(
    "clientHostnameHeader",
    KeyKind::Str,
    None,
    "Header that receives the sender's host name (reverse DNS, looked up once per connection; the IP address when it has none)",
);
pub const IDLE_TIMEOUT: KeySpec = KeySpec::new(
    "idle-timeout",
    KeyKind::NON_NEGATIVE,
    Some("300000"),
    "flume-fast: milliseconds a connection may stay silent, or stalled in the middle of a message or TLS handshake, before it is closed (0: never; Flume never closes one)",
);
pub const MAX_BUFFERED_BYTES: KeySpec = KeySpec::new(
    "max-buffered-bytes",
    KeyKind::int(1024, 1 << 40),
    Some("8388608"),
    "flume-fast: bytes of unfinished messages buffered over all of this source's connections on one shard; over it, connections holding a sixteenth of it or more stop being read (TCP pushes back) until it is below again",
);

/// The address to bind: `host`, or every IPv4 address when it is unset.
pub fn bind_host(host: &Option<String>) -> &str {
    host.as_deref().unwrap_or("0.0.0.0")
}
