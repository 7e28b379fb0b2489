//! The syslog sources (`syslogtcp`, `syslogudp`, `multiport_syslogtcp`) and the parsing
//! they share (`decode`), the TCP framing (`framing`), the connection plumbing of the two
//! TCP sources (`conn`) and the sender headers (`peer`).

mod conn;
pub mod decode;
pub mod framing;
mod keys;
pub mod multiport;
mod peer;
pub mod tcp;
pub mod udp;
