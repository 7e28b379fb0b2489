//! The syslog sources (`syslogtcp`, `syslogudp`, `multiport_syslogtcp`) and the parsing
//! they share (`decode`).

pub mod decode;
pub mod java_time;
mod java_utf8;
mod line_parser;
mod rfc_match;
