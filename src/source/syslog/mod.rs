//! The syslog sources (`syslogtcp`, `syslogudp`, `multiport_syslogtcp`) and the parsing
//! they share (`decode`), the TCP framing (`framing`), the connection plumbing of the two
//! TCP sources (`conn`) and the sender headers (`peer`).

mod conn;
pub mod decode;
pub mod framing;
pub mod java_time;
mod java_utf8;
mod keys;
mod line_parser;
pub mod multiport;
mod peer;
mod rfc_match;
pub mod tcp;
pub mod udp;
